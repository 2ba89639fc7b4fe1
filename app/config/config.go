// Package config loads the one configuration struct of cardata from the
// environment. It is read once in main and passed down; nothing else reads
// environment variables.
package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"cardata/policies"
)

// Config is every setting the binary knows. Field comments name the variable.
type Config struct {
	DatabaseURL     string         // DATABASE_URL
	ListenAddr      string         // LISTEN_ADDR
	MetricsAddr     string         // METRICS_ADDR: Prometheus /metrics listener, apart from the public one; "" when off
	PublicURL       string         // PUBLIC_URL: base URL printed and used in e-mails
	BillingTimezone *time.Location // BILLING_TIMEZONE
	LogLevel        string         // LOG_LEVEL: debug, info, warn, error

	SessionIdleTimeout time.Duration // SESSION_IDLE_TIMEOUT
	SessionMaxAge      time.Duration // SESSION_MAX_AGE
	CookieSecure       bool          // COOKIE_SECURE: set Secure on cookies (when served over TLS)
	CookieDomain       string        // COOKIE_DOMAIN

	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
	DBMaxOpenConns  int           // DB_MAX_OPEN_CONNS
	BcryptCost      int           // BCRYPT_COST

	// The pool budget: each subsystem's share of DB_MAX_OPEN_CONNS (0:
	// sized from the pool). app/db.PlanPool checks at start that the shares
	// leave HTTP requests their part.
	DBPoolJobs     int // DB_POOL_JOBS: scheduler session + e-mail outbox + job runs at once
	DBPoolPush     int // DB_POOL_PUSH: push worker loop + push attempts in the database at once
	DBPoolIngest   int // DB_POOL_INGEST: ingest batches written at once
	DBPoolAPIReads int // DB_POOL_API_READS: provider API read batches at once
	DBPoolLedger   int // DB_POOL_LEDGER: delivery-ledger commits at once

	LoginMaxFailuresPerAccount int           // LOGIN_MAX_FAILURES_ACCOUNT
	LoginMaxFailuresPerAddress int           // LOGIN_MAX_FAILURES_ADDRESS
	LoginThrottleWindow        time.Duration // LOGIN_THROTTLE_WINDOW

	RegistrationRateLimit        int   // REGISTRATION_RATE_LIMIT: public registrations per client address per hour
	RegistrationDailyUploadBytes int64 // REGISTRATION_DAILY_UPLOAD_BYTES: registration documents stored per client address per 24 hours

	SMTPHost     string // SMTP_HOST: empty keeps all e-mail in the outbox
	SMTPPort     int    // SMTP_PORT
	SMTPUser     string // SMTP_USER
	SMTPPassword string // SMTP_PASSWORD (secret, never logged)
	// SecretsKey encrypts the secrets that must stay recoverable (webhook
	// signing secrets) at rest: SECRETS_KEY, 32 bytes in base64; required
	// unless PUBLIC_URL is a loopback address (development). Never logged.
	SecretsKey []byte
	SMTPFrom   string // SMTP_FROM

	APITokenTTL  time.Duration // API_TOKEN_TTL: lifetime of provider API access tokens
	APIRateLimit int           // API_RATE_LIMIT: requests per second per API client (token bucket refill)
	APIRateBurst int           // API_RATE_BURST: bucket size per API client

	ReadingsRetention time.Duration // READINGS_RETENTION: how long the reading history is kept (dropped by day partition)

	OutboxRetention time.Duration // OUTBOX_RETENTION: how long sent e-mails stay in the outbox (pending and failed ones stay)

	// TrustedProxies: TRUSTED_PROXIES, comma-separated addresses or CIDR
	// ranges of the reverse proxies in front of the app. Only a request from
	// one of them has its X-Forwarded-For read, from the right, skipping
	// trusted hops; empty: the client address is the TCP peer.
	TrustedProxies []netip.Prefix

	// StaffOIDC signs staff in through the company's OpenID Connect
	// provider (STAFF_OIDC_*); off when its Issuer is empty.
	StaffOIDC OIDC
	// CustomerOIDC signs vehicle owners in to /my through the
	// manufacturer's customer identity (CUSTOMER_OIDC_*); off when empty.
	CustomerOIDC OIDC
	// DevIdP (DEV_IDP=1, development only) runs the in-process development
	// identity provider on DevIdPAddr (DEV_IDP_ADDR; staff there, vehicle
	// owners on the next port) and points StaffOIDC and CustomerOIDC at it.
	DevIdP     bool
	DevIdPAddr string

	// StaffTOTPRequiredRoles (STAFF_TOTP_REQUIRED_ROLES, comma-separated
	// staff roles, default admin; empty or none: no role) are the roles
	// whose local accounts must use an authenticator app (TOTP): one
	// without is sent to set it up right after the password and can do
	// nothing else until it has.
	StaffTOTPRequiredRoles []string
	// LocalStaffSignIn (LOCAL_STAFF_SIGNIN, default on): off hides the
	// staff password form and refuses local staff password sign-ins, so
	// staff sign in through the company's provider only; valid only with
	// STAFF_OIDC_ISSUER or DEV_IDP. Turning it on again is the break-glass
	// path.
	LocalStaffSignIn bool
}

// OIDC is one OpenID Connect provider cardata signs people in through.
type OIDC struct {
	Issuer       string   // *_OIDC_ISSUER: the issuer URL as the discovery document states it
	ClientID     string   // *_OIDC_CLIENT_ID
	ClientSecret string   // *_OIDC_CLIENT_SECRET (secret, never logged)
	Scopes       []string // *_OIDC_SCOPES besides openid (default: profile email)
	// RoleClaim (STAFF_OIDC_ROLE_CLAIM, default groups) is the ID-token
	// claim that lists the person's groups or roles; a dotted name reads a
	// nested claim (realm_access.roles).
	RoleClaim string
	// RoleMap (STAFF_OIDC_ROLE_MAP, "group=role,group=role") gives the
	// cardata roles of each claim value; a group may be named twice.
	RoleMap map[string][]string
}

// Enabled reports whether the provider is configured.
func (o OIDC) Enabled() bool { return o.Issuer != "" }

// DevIdPClientSecret is the development identity provider's client secret:
// it serves loopback addresses only, so it need not be secret.
const DevIdPClientSecret = "cardata-dev-idp-secret"

// DevRoleMap is the development identity provider's group mapping.
const DevRoleMap = "cardata-partner-managers=partner_manager,cardata-finance=finance,cardata-support=support," +
	"cardata-admins=admin,cardata-auditors=auditor"

// MinOutboxRetention is the shortest OUTBOX_RETENTION accepted: a sent
// e-mail stays browsable for at least a day.
const MinOutboxRetention = 24 * time.Hour

// Load reads the environment. Every error names the variable at fault.
func Load() (Config, error) { return LoadFrom(os.LookupEnv) }

// LoadFrom reads settings through lookup, so tests can pass a map.
func LoadFrom(lookup func(string) (string, bool)) (Config, error) {
	r := reader{lookup: lookup}
	c := Config{
		DatabaseURL:                r.str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cardata?sslmode=disable"),
		ListenAddr:                 r.str("LISTEN_ADDR", "127.0.0.1:8080"),
		PublicURL:                  r.str("PUBLIC_URL", ""),
		LogLevel:                   r.str("LOG_LEVEL", "info"),
		SessionIdleTimeout:         r.duration("SESSION_IDLE_TIMEOUT", 30*time.Minute),
		SessionMaxAge:              r.duration("SESSION_MAX_AGE", 12*time.Hour),
		CookieSecure:               r.boolean("COOKIE_SECURE", false),
		CookieDomain:               r.str("COOKIE_DOMAIN", ""),
		ShutdownTimeout:            r.duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		DBMaxOpenConns:             r.integer("DB_MAX_OPEN_CONNS", 20, 1, 1000),
		DBPoolJobs:                 r.integer("DB_POOL_JOBS", 0, 0, 1000),
		DBPoolPush:                 r.integer("DB_POOL_PUSH", 0, 0, 1000),
		DBPoolIngest:               r.integer("DB_POOL_INGEST", 0, 0, 1000),
		DBPoolAPIReads:             r.integer("DB_POOL_API_READS", 0, 0, 1000),
		DBPoolLedger:               r.integer("DB_POOL_LEDGER", 0, 0, 1000),
		BcryptCost:                 r.integer("BCRYPT_COST", 11, 4, 16),
		LoginMaxFailuresPerAccount: r.integer("LOGIN_MAX_FAILURES_ACCOUNT", 5, 1, 1000),
		LoginMaxFailuresPerAddress: r.integer("LOGIN_MAX_FAILURES_ADDRESS", 20, 1, 100000),
		LoginThrottleWindow:        r.duration("LOGIN_THROTTLE_WINDOW", 15*time.Minute),
		RegistrationRateLimit:      r.integer("REGISTRATION_RATE_LIMIT", 10, 1, 1000000),
		SMTPHost:                   r.str("SMTP_HOST", ""),
		SMTPPort:                   r.integer("SMTP_PORT", 587, 1, 65535),
		SMTPUser:                   r.str("SMTP_USER", ""),
		SMTPPassword:               r.str("SMTP_PASSWORD", ""),
		SMTPFrom:                   r.str("SMTP_FROM", "CarData Partner Office <noreply@cardata.local>"),
		APITokenTTL:                r.duration("API_TOKEN_TTL", 15*time.Minute),
		APIRateLimit:               r.integer("API_RATE_LIMIT", 20, 1, 1000000),
		APIRateBurst:               r.integer("API_RATE_BURST", 100, 1, 1000000),
		ReadingsRetention:          r.duration("READINGS_RETENTION", 30*24*time.Hour),
		OutboxRetention:            r.duration("OUTBOX_RETENTION", 90*24*time.Hour),
	}
	c.RegistrationDailyUploadBytes = int64(r.integer("REGISTRATION_DAILY_UPLOAD_BYTES", 50<<20, 1<<20, 1<<40))
	tz := r.str("BILLING_TIMEZONE", "Europe/Berlin")
	if loc, err := time.LoadLocation(tz); err != nil {
		r.fail("BILLING_TIMEZONE", "unknown time zone %q", tz)
	} else {
		c.BillingTimezone = loc
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		r.fail("DATABASE_URL", "must be a postgres:// URL")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		r.fail("LISTEN_ADDR", "must be host:port, got %q", c.ListenAddr)
	}
	// Set but empty turns the metrics listener off, so this is not r.str.
	c.MetricsAddr = "127.0.0.1:9090"
	if v, ok := lookup("METRICS_ADDR"); ok {
		c.MetricsAddr = strings.TrimSpace(v)
	}
	if strings.EqualFold(c.MetricsAddr, "off") {
		c.MetricsAddr = ""
	}
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		r.fail("METRICS_ADDR", "must be host:port, empty or off, got %q", c.MetricsAddr)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		r.fail("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.SessionIdleTimeout > c.SessionMaxAge {
		r.fail("SESSION_IDLE_TIMEOUT", "must not exceed SESSION_MAX_AGE")
	}
	if c.OutboxRetention < MinOutboxRetention {
		r.fail("OUTBOX_RETENTION", "must be at least 24h (1d), got %s", c.OutboxRetention)
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.ListenAddr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if k := strings.TrimSpace(r.str("SECRETS_KEY", "")); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			key, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(k, "="))
		}
		if err != nil || len(key) != 32 {
			r.fail("SECRETS_KEY", "must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")
		}
		c.SecretsKey = key
	} else if u, err := url.Parse(c.PublicURL); err == nil && !loopbackHost(u.Hostname()) {
		r.fail("SECRETS_KEY", "is required when PUBLIC_URL (%s) is not a loopback address: it encrypts webhook signing secrets at rest (`openssl rand -base64 32`)", c.PublicURL)
	}
	for _, item := range strings.Split(r.str("TRUSTED_PROXIES", ""), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(item); err == nil {
			c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
		} else if addr, err := netip.ParseAddr(item); err == nil {
			c.TrustedProxies = append(c.TrustedProxies, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
		} else {
			r.fail("TRUSTED_PROXIES", "must be comma-separated IP addresses or CIDR ranges, got %q", item)
		}
	}
	c.StaffOIDC = r.oidc("STAFF", true)
	c.CustomerOIDC = r.oidc("CUSTOMER", false)
	c.DevIdP = r.boolean("DEV_IDP", false)
	c.DevIdPAddr = r.str("DEV_IDP_ADDR", "127.0.0.1:8081")
	if c.DevIdP {
		r.devIdP(&c)
	}
	c.StaffTOTPRequiredRoles = r.roles("STAFF_TOTP_REQUIRED_ROLES", []string{policies.RoleAdmin})
	c.LocalStaffSignIn = r.onOff("LOCAL_STAFF_SIGNIN", true)
	if !c.LocalStaffSignIn && !c.StaffOIDC.Enabled() {
		r.fail("LOCAL_STAFF_SIGNIN", "off is only valid with STAFF_OIDC_ISSUER or DEV_IDP: otherwise no staff member could sign in")
	}
	if r.err != nil {
		return Config{}, r.err
	}
	return c, nil
}

// oidc reads PREFIX_OIDC_*; staff providers also have a role mapping.
func (r *reader) oidc(prefix string, roles bool) OIDC {
	n := func(s string) string { return prefix + "_OIDC_" + s }
	o := OIDC{Issuer: strings.TrimRight(r.str(n("ISSUER"), ""), " "), ClientID: r.str(n("CLIENT_ID"), ""),
		ClientSecret: r.str(n("CLIENT_SECRET"), ""), Scopes: strings.Fields(r.str(n("SCOPES"), "profile email"))}
	if o.Issuer == "" {
		return OIDC{}
	}
	if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		r.fail(n("ISSUER"), "must be the provider's issuer URL (https://...), got %q", o.Issuer)
	}
	if o.ClientID == "" {
		r.fail(n("CLIENT_ID"), "is required when %s is set", n("ISSUER"))
	}
	if roles {
		o.RoleClaim = r.str(n("ROLE_CLAIM"), "groups")
		o.RoleMap = r.roleMap(n("ROLE_MAP"), r.str(n("ROLE_MAP"), ""))
		if len(o.RoleMap) == 0 {
			r.fail(n("ROLE_MAP"), "is required when %s is set: which groups give which cardata roles, e.g. cardata-finance=finance,cardata-admins=admin", n("ISSUER"))
		}
	}
	return o
}

// roleMap reads a role mapping, failing on the variable name.
func (r *reader) roleMap(name, v string) map[string][]string {
	m, err := ParseRoleMap(v)
	if err != nil {
		r.fail(name, "%s", err)
	}
	return m
}

// ParseRoleMap parses "group=role,group=role" (also ';' or new lines
// between entries; the role follows the last '=', so a group may contain
// one; a group named twice gets both roles).
func ParseRoleMap(v string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, item := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ';' || c == '\n' }) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndex(item, "=")
		group, role := "", ""
		if i > 0 {
			group, role = strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
		}
		if group == "" || role == "" {
			return nil, fmt.Errorf("entries are group=role, got %q", item)
		}
		out[group] = append(out[group], role)
	}
	return out, nil
}

// devIdP points both providers at the development identity provider, and
// refuses it anywhere but on a loopback address.
func (r *reader) devIdP(c *Config) {
	host, port, err := net.SplitHostPort(c.DevIdPAddr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p <= 0 || p >= 65535 || !loopbackHost(host) {
		r.fail("DEV_IDP_ADDR", "must be a loopback host:port (the development identity provider serves this machine only), got %q", c.DevIdPAddr)
		return
	}
	if u, err := url.Parse(c.PublicURL); err != nil || !loopbackHost(u.Hostname()) {
		r.fail("DEV_IDP", "is for development only: PUBLIC_URL (%s) must be a loopback address", c.PublicURL)
		return
	}
	if c.StaffOIDC.Enabled() || c.CustomerOIDC.Enabled() {
		r.fail("DEV_IDP", "cannot be combined with STAFF_OIDC_ISSUER or CUSTOMER_OIDC_ISSUER")
		return
	}
	c.StaffOIDC = OIDC{Issuer: "http://" + net.JoinHostPort(host, port) + "/oidc", ClientID: "cardata-dev-staff",
		ClientSecret: DevIdPClientSecret, Scopes: []string{"profile", "email", "groups"}, RoleClaim: "groups",
		RoleMap: r.roleMap("STAFF_OIDC_ROLE_MAP", DevRoleMap)}
	c.CustomerOIDC = OIDC{Issuer: "http://" + net.JoinHostPort(host, strconv.Itoa(p+1)) + "/oidc", ClientID: "cardata-dev-customer",
		ClientSecret: DevIdPClientSecret, Scopes: []string{"profile", "email"}}
}

// LogValue keeps secrets out of logs whenever the config is logged.
func (c Config) Redacted() map[string]any {
	dsn := c.DatabaseURL
	if u, err := url.Parse(dsn); err == nil {
		dsn = u.Redacted()
	}
	return map[string]any{
		"database_url": dsn, "listen_addr": c.ListenAddr, "metrics_addr": c.MetricsAddr, "public_url": c.PublicURL,
		"billing_timezone": c.BillingTimezone.String(), "cookie_secure": c.CookieSecure,
		"session_idle_timeout": c.SessionIdleTimeout.String(), "session_max_age": c.SessionMaxAge.String(),
		"smtp_host": c.SMTPHost, "smtp_password_set": c.SMTPPassword != "", "secrets_key_set": len(c.SecretsKey) > 0,
		"readings_retention": c.ReadingsRetention.String(), "outbox_retention": c.OutboxRetention.String(),
		"trusted_proxies":   fmt.Sprint(c.TrustedProxies),
		"staff_oidc_issuer": c.StaffOIDC.Issuer, "customer_oidc_issuer": c.CustomerOIDC.Issuer, "dev_idp": c.DevIdP,
		"staff_totp_required_roles": strings.Join(c.StaffTOTPRequiredRoles, ","), "local_staff_signin": c.LocalStaffSignIn,
	}
}

type reader struct {
	lookup func(string) (string, bool)
	err    error
}

func (r *reader) fail(name, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("configuration: %s: %s", name, fmt.Sprintf(format, args...))
	}
}

func (r *reader) str(name, def string) string {
	if v, ok := r.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := parseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, "must be a positive duration such as 30m, 12h or 90d, got %q", v)
		return def
	}
	return d
}

// parseDuration is time.ParseDuration plus whole days ("90d"), the natural
// unit of retention periods.
func parseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("invalid number of days %q", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func (r *reader) integer(name string, def, min, max int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, "must be an integer between %d and %d, got %q", min, max, v)
		return def
	}
	return n
}

// roles reads a comma-separated list of staff roles; set but empty, or
// "none", is no role.
func (r *reader) roles(name string, def []string) []string {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	out := []string{}
	if v = strings.TrimSpace(v); strings.EqualFold(v, "none") {
		return out
	}
	for _, role := range strings.Split(v, ",") {
		role = strings.TrimSpace(role)
		if role == "" {
			continue
		}
		if !policies.IsStaffRole(role) {
			r.fail(name, "unknown role %q (known: %s; or none)", role, strings.Join(policies.StaffRoles, ", "))
			return def
		}
		out = append(out, role)
	}
	return out
}

// onOff reads on/off (or any boolean spelling).
func (r *reader) onOff(name string, def bool) bool {
	switch v := strings.ToLower(r.str(name, "")); v {
	case "":
		return def
	case "on", "yes":
		return true
	case "off", "no":
		return false
	}
	return r.boolean(name, def)
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "must be true or false, got %q", v)
		return def
	}
	return b
}

// loopbackHost reports a development host (localhost or a loopback address).
func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
