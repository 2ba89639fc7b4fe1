// Package jobs runs background work: the scheduler with its one registry of
// jobs and run history, and the e-mail outbox. It sits low in the import
// graph so every domain package can enqueue e-mail in its own transaction;
// job bodies are plain functions that app wires in.
package jobs
