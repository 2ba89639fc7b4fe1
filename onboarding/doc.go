// Package onboarding owns providers and their path to data access:
// registration, review, provider users, API clients, markets and market
// access, and data containers.
package onboarding
