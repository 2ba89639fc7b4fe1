// Package policies decides who may do what: the principal acting in a
// request, the casbin model and policy that authorize routes by role, and
// (in subpackages) sessions, the audit trail and the error type every
// domain package shares.
package policies

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	stringadapter "github.com/casbin/casbin/v2/persist/string-adapter"
)

// Staff roles.
const (
	RolePartnerManager = "partner_manager"
	RoleFinance        = "finance"
	RoleSupport        = "support"
	RoleAdmin          = "admin"
	RoleAuditor        = "auditor"
)

// StaffRoles lists the staff roles in display order.
var StaffRoles = []string{RolePartnerManager, RoleFinance, RoleSupport, RoleAdmin, RoleAuditor}

// RoleLabel is the human name of a role.
func RoleLabel(role string) string {
	switch role {
	case RolePartnerManager:
		return "Partner manager"
	case RoleFinance:
		return "Finance"
	case RoleSupport:
		return "Support"
	case RoleAdmin:
		return "Administrator"
	case RoleAuditor:
		return "Auditor"
	}
	return strings.ReplaceAll(role, "_", " ")
}

// IsStaffRole reports whether role is one of StaffRoles.
func IsStaffRole(role string) bool { return slices.Contains(StaffRoles, role) }

// Kind of principal.
const (
	KindStaff    = "staff"
	KindProvider = "provider" // a provider user in the portal or an API client
	KindCustomer = "customer"
	KindGateway  = "gateway" // a telemetry ingest gateway
	KindSystem   = "system"  // jobs and CLI
)

// Principal is whoever acts in a request.
type Principal struct {
	Kind       string
	ID         int64
	Email      string
	Name       string
	Roles      []string
	ProviderID int64 // for KindProvider: the only provider whose data it may see
	SessionID  int64
	// Lang is the person's remembered language ("de", "en"; "" when they
	// never chose), read with the account on every request.
	Lang string
	// Subject is the identity provider's subject when the session was
	// started through OpenID Connect (policies/identity); empty otherwise.
	Subject string
	// Sandbox marks a sandbox API client (KindProvider with the provider_api
	// role): it sees only its provider's simulated fleet, sandbox containers,
	// sandbox webhook endpoints and sandbox deliveries.
	Sandbox bool
}

// HasRole reports whether p holds role directly.
func (p *Principal) HasRole(role string) bool { return p != nil && slices.Contains(p.Roles, role) }

// Label names the principal in audit entries and logs.
func (p *Principal) Label() string {
	if p == nil {
		return "anonymous"
	}
	if p.Email != "" {
		return p.Email
	}
	return fmt.Sprintf("%s:%d", p.Kind, p.ID)
}

// System is the principal for scheduled jobs and CLI commands.
func System(name string) *Principal {
	return &Principal{Kind: KindSystem, Name: name, Email: name}
}

type ctxKey struct{}

// WithPrincipal stores p in ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

//go:embed rules/*
var rules embed.FS

// Enforcer authorizes (roles, path, method) against the embedded policy.
type Enforcer struct {
	e *casbin.Enforcer
	// routeDecisions caches AllowedRoute: the policy is embedded and route
	// patterns are finite, so a decision never changes while the process runs.
	routeDecisions sync.Map
	// pathDecisions caches Allowed for concrete paths, bounded.
	pathDecisions decisions
}

// NewEnforcer loads the model and every rules/*.csv file, in name order.
func NewEnforcer() (*Enforcer, error) {
	mdl, lines, err := load()
	if err != nil {
		return nil, err
	}
	e, err := casbin.NewEnforcer(mdl, stringadapter.NewAdapter(strings.Join(lines, "\n")))
	if err != nil {
		return nil, fmt.Errorf("casbin policy: %w", err)
	}
	// the model's matchers with their patterns compiled once (match.go)
	e.AddFunction("pathMatch", keyMatch2Func)
	e.AddFunction("methodMatch", regexMatchFunc)
	return &Enforcer{e: e}, nil
}

// load reads the model and the policy lines of every rules/*.csv file.
func load() (model.Model, []string, error) {
	m, err := fs.ReadFile(rules, "rules/model.conf")
	if err != nil {
		return nil, nil, err
	}
	mdl, err := model.NewModelFromString(string(m))
	if err != nil {
		return nil, nil, fmt.Errorf("casbin model: %w", err)
	}
	files, _ := fs.Glob(rules, "rules/*.csv")
	sort.Strings(files)
	var lines []string
	for _, f := range files {
		b, err := fs.ReadFile(rules, f)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			lines = append(lines, l)
		}
	}
	return mdl, lines, nil
}

// Allowed reports whether any of roles may call method on path.
func (en *Enforcer) Allowed(roles []string, path, method string) bool {
	for _, r := range roles {
		key := r + "\x00" + method + "\x00" + path
		if allowed, ok := en.pathDecisions.get(key); ok {
			if allowed {
				return true
			}
			continue
		}
		ok, err := en.e.Enforce(r, path, method)
		allowed := err == nil && ok
		if err == nil {
			en.pathDecisions.put(key, allowed)
		}
		if allowed {
			return true
		}
	}
	return false
}

// AllowedRoute is Allowed for a registered route pattern (such as
// /admin/users/:id); its decisions are cached for the life of the process.
func (en *Enforcer) AllowedRoute(roles []string, pattern, method string) bool {
	for _, r := range roles {
		key := r + "\x00" + method + "\x00" + pattern
		if v, ok := en.routeDecisions.Load(key); ok {
			if v.(bool) {
				return true
			}
			continue
		}
		ok, err := en.e.Enforce(r, pattern, method)
		allowed := err == nil && ok
		if err == nil {
			en.routeDecisions.Store(key, allowed)
		}
		if allowed {
			return true
		}
	}
	return false
}

// RolesAllowed lists the roles (from candidates) that may call method on path.
func (en *Enforcer) RolesAllowed(candidates []string, path, method string) []string {
	var out []string
	for _, r := range candidates {
		if en.Allowed([]string{r}, path, method) {
			out = append(out, r)
		}
	}
	return out
}

// Covered reports whether any policy line at all matches (path, method);
// the route-walk test uses it to fail on routes nobody thought about.
func (en *Enforcer) Covered(path, method string) bool {
	policies, _ := en.e.GetPolicy()
	for _, p := range policies {
		if len(p) < 3 {
			continue
		}
		ok, err := en.e.Enforce(p[0], path, method)
		if err == nil && ok {
			return true
		}
	}
	return false
}

// Request describes the HTTP request (or CLI run) an action came from; the
// audit trail records it.
type Request struct {
	ID         string
	ClientAddr string
}

type reqKey struct{}

// WithRequest stores r in ctx.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, reqKey{}, r)
}

// RequestFrom returns the request info in ctx (zero when absent).
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(reqKey{}).(Request)
	return r
}
