package onboarding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/identity"
)

// Company sign-in: a provider's users may sign in to the partner portal
// through their own company's OpenID Connect provider (Entra ID, Okta,
// Keycloak ...), configured by the provider's administrator in the portal.
// The flow is policies/identity's (code flow with PKCE, state, nonce,
// go-oidc verification), one relying party per provider. Accounts stay
// invitation-only: the company's provider proves who someone is, and
// only a person the provider's administrator invited (an existing provider
// user of that provider with that e-mail address) gets in; nobody is
// created at sign-in.

// Sealer seals recoverable secrets at rest (webhooks.Secrets under
// SECRETS_KEY; app wires it). A nil Sealer stores them in clear.
type Sealer interface {
	SealString(plain, purpose string) (string, error)
	OpenString(stored, purpose string) (string, error)
}

// sealPurpose binds a sealed client secret to its use: a ciphertext made
// for anything else never opens as one.
const sealPurpose = "provider-oidc-client-secret"

// CompanySignInCallbackPath is the partner portal's one callback for every
// provider's company sign-in (the redirect URI registered at the company's
// provider).
const CompanySignInCallbackPath = "/portal/oidc/callback"

// MaxSignInDomains bounds the e-mail domains of one configuration.
const MaxSignInDomains = 20

// SignInConfig is a provider's company identity provider as the portal
// shows it: never the client secret, only whether one is set.
type SignInConfig struct {
	ProviderID int64
	Issuer     string
	ClientID   string
	SecretSet  bool
	Enabled    bool
	Domains    []string
	Version    int
	UpdatedAt  time.Time
	UpdatedBy  string
}

// signInConfigRow is the stored configuration (provider_sign_in_configs).
type signInConfigRow struct {
	ProviderID   int64 `gorm:"primaryKey"`
	Issuer       string
	ClientID     string
	ClientSecret string // sealed
	Enabled      bool
	Version      int
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string
}

func (signInConfigRow) TableName() string { return "provider_sign_in_configs" }

// rpName is the relying party's name of a provider's company sign-in.
func rpName(providerID int64) string { return fmt.Sprintf("provider-%d", providerID) }

// ProviderOfRP is the provider whose company sign-in an RP name (an
// identity.PendingProvider answer) belongs to; 0 when it is none.
func ProviderOfRP(name string) int64 {
	id, err := strconv.ParseInt(strings.TrimPrefix(name, "provider-"), 10, 64)
	if !strings.HasPrefix(name, "provider-") || err != nil || id <= 0 {
		return 0
	}
	return id
}

// CompanySignInRedirectURL is the redirect URI a provider registers at
// its company's identity provider.
func (s *Service) CompanySignInRedirectURL() string { return s.link(CompanySignInCallbackPath) }

// FindSignInConfig returns providerID's company sign-in; nil when none is
// configured.
func (s *Service) FindSignInConfig(ctx context.Context, providerID int64) (*SignInConfig, error) {
	var row signInConfigRow
	err := s.DB.WithContext(ctx).Where("provider_id = ?", providerID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(err, "load company sign-in")
	}
	out := &SignInConfig{ProviderID: row.ProviderID, Issuer: row.Issuer, ClientID: row.ClientID, SecretSet: row.ClientSecret != "",
		Enabled: row.Enabled, Version: row.Version, UpdatedAt: row.UpdatedAt, UpdatedBy: row.UpdatedBy}
	if err := s.DB.WithContext(ctx).Table("provider_sign_in_domains").Where("provider_id = ?", providerID).
		Order("domain").Pluck("domain", &out.Domains).Error; err != nil {
		return nil, errs.Wrap(err, "load company sign-in domains")
	}
	return out, nil
}

// SignInSettings is the input of SaveSignInConfig. An empty ClientSecret
// keeps the stored one.
type SignInSettings struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Domains      string // separated by commas, spaces or new lines
}

// ParseDomains splits a list of e-mail domains (commas, blanks, new
// lines; a leading "@" is dropped), lower-cased, each once.
func ParseDomains(list string) []string {
	var out []string
	for _, d := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(d), "@"), "."))
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// validDomain accepts a DNS name of at least two labels.
func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") || net.ParseIP(d) != nil {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkIssuer refuses an issuer that is no https URL (http on loopback in
// development only) or carries a query or fragment, which an issuer never has.
func (s *Service) checkIssuer(v *errs.Validation, issuer string) {
	u, err := url.Parse(issuer)
	switch {
	case issuer == "":
		v.Add("issuer", "issuer_required", "enter the issuer URL of your company's identity provider")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" || u.User != nil || len(issuer) > 500:
		v.Add("issuer", "issuer_invalid", "enter the issuer as an https URL, exactly as your identity provider states it")
	case u.Scheme == "http" && !(s.SignInLoopback && isLoopbackHost(u.Hostname())):
		v.Add("issuer", "issuer_not_https", "the issuer must be an https URL")
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ErrDiscovery is the issuer's field error when its discovery document
// cannot be read or does not fit.
const errDiscovery = "no OpenID Connect discovery document could be read at this issuer (its /.well-known/openid-configuration), or it names another issuer: check the URL and that cardata can reach it"

// SaveSignInConfig creates or changes providerID's company sign-in. The
// issuer's discovery document is read before anything is stored (a field
// error when it cannot be); each domain must be that of an active user of
// the provider (someone who accepted an invitation there: proof that the
// provider can receive mail at the domain) and free of other providers'
// configurations. The client secret is sealed; the audit entry never
// holds it.
func (s *Service) SaveSignInConfig(ctx context.Context, providerID int64, in SignInSettings) (*SignInConfig, error) {
	in.Issuer = strings.TrimSpace(in.Issuer)
	in.ClientID = strings.TrimSpace(in.ClientID)
	in.ClientSecret = strings.TrimSpace(in.ClientSecret)
	domains := ParseDomains(in.Domains)
	cur, err := s.FindSignInConfig(ctx, providerID)
	if err != nil {
		return nil, err
	}
	var v errs.Validation
	s.checkIssuer(&v, in.Issuer)
	if in.ClientID == "" || len(in.ClientID) > 255 {
		v.Add("client_id", "client_id_required", "enter the client id (application id) cardata has at your identity provider")
	}
	if in.ClientSecret == "" && (cur == nil || !cur.SecretSet) {
		v.Add("client_secret", "client_secret_required", "enter the client secret")
	}
	if len(in.ClientSecret) > 1000 {
		v.Add("client_secret", "client_secret_too_long", "the client secret is too long")
	}
	switch {
	case len(domains) == 0:
		v.Add("domains", "domains_required", "enter at least one e-mail domain, e.g. example.com")
	case len(domains) > MaxSignInDomains:
		v.Add("domains", "domains_too_many", "enter at most %d domains", MaxSignInDomains)
	default:
		for _, d := range domains {
			if !validDomain(d) {
				v.Add("domains", "domain_invalid", "%q is not an e-mail domain (like example.com)", d)
				break
			}
		}
	}
	db := s.DB.WithContext(ctx)
	if !v.Has("domains") {
		for _, d := range domains {
			var n int64
			if err := db.Table("provider_users").Where("provider_id = ? AND active AND (password_hash <> '' OR oidc_subject IS NOT NULL) AND lower(email) LIKE ?",
				providerID, "%@"+escapeLike(d)).Count(&n).Error; err != nil {
				return nil, errs.Wrap(err, "check domain")
			}
			if n == 0 {
				v.Add("domains", "domain_unproven", "none of your active users has an address at %s: invite someone there first (their accepted invitation shows that the domain is yours)", d)
				break
			}
			var owner []int64
			if err := db.Table("provider_sign_in_domains").Where("domain = ? AND provider_id <> ?", d, providerID).Pluck("provider_id", &owner).Error; err != nil {
				return nil, errs.Wrap(err, "check domain")
			}
			if len(owner) > 0 {
				v.Add("domains", "domain_taken", "%s is already used by another company's sign-in; contact CarData support", d)
				break
			}
		}
	}
	secret := in.ClientSecret
	if secret == "" && cur != nil {
		if secret, err = s.openSecret(ctx, providerID); err != nil {
			return nil, err
		}
	}
	if !v.Has("issuer") && !v.Has("client_id") && secret != "" {
		rp, err := s.newRP(providerID, in.Issuer, in.ClientID, secret)
		if err != nil {
			v.Add("issuer", "issuer_invalid", "enter the issuer as an https URL, exactly as your identity provider states it")
		} else if cerr := rp.Check(ctx); cerr != nil {
			v.Add("issuer", "issuer_discovery_failed", "%s", errDiscovery)
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	sealed, err := s.seal(secret)
	if err != nil {
		return nil, errs.Wrap(err, "seal client secret")
	}
	by := policies.ActorOf(ctx, nil).Name
	now := s.now()
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT 1 FROM providers WHERE id = ? FOR UPDATE`, providerID).Error; err != nil {
			return errs.Wrap(err, "lock provider")
		}
		row := signInConfigRow{ProviderID: providerID, Issuer: in.Issuer, ClientID: in.ClientID, ClientSecret: sealed,
			Enabled: true, Version: 1, CreatedAt: now, UpdatedAt: now, UpdatedBy: by}
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "provider_id"}},
			DoUpdates: clause.Assignments(map[string]any{"issuer": in.Issuer, "client_id": in.ClientID, "client_secret": sealed,
				"version": gorm.Expr("provider_sign_in_configs.version + 1"), "updated_at": now, "updated_by": by})}).
			Create(&row).Error; err != nil {
			return errs.Wrap(err, "store company sign-in")
		}
		if err := tx.Exec(`DELETE FROM provider_sign_in_domains WHERE provider_id = ?`, providerID).Error; err != nil {
			return errs.Wrap(err, "store domains")
		}
		for _, d := range domains {
			if err := tx.Exec(`INSERT INTO provider_sign_in_domains (domain, provider_id) VALUES (?, ?)`, d, providerID).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) || strings.Contains(err.Error(), "23505") {
					var v errs.Validation
					v.Add("domains", "domain_taken", "%s is already used by another company's sign-in; contact CarData support", d)
					return v.Err()
				}
				return errs.Wrap(err, "store domains")
			}
		}
		secretNote := "client secret kept"
		switch {
		case cur == nil || !cur.SecretSet:
			secretNote = "client secret set"
		case in.ClientSecret != "":
			secretNote = "client secret replaced"
		}
		verb := "configured"
		if cur != nil {
			verb = "changed"
		}
		return audit.Recordf(ctx, tx, "provider.sign_in_configure", "provider", fmt.Sprint(providerID),
			"company sign-in %s: issuer %s, client id %s, domains %s; %s", errs.Term(verb), in.Issuer, in.ClientID,
			strings.Join(domains, ", "), errs.Term(secretNote))
	})
	if err != nil {
		return nil, err
	}
	return s.FindSignInConfig(ctx, providerID)
}

// SetSignInEnabled switches providerID's company sign-in on or off.
// Switching it off ends the sessions started through it at once.
func (s *Service) SetSignInEnabled(ctx context.Context, providerID int64, enabled bool) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE provider_sign_in_configs SET enabled = ?, version = version + 1, updated_at = ?, updated_by = ?
			WHERE provider_id = ? AND enabled <> ?`, enabled, s.now(), policies.ActorOf(ctx, nil).Name, providerID, enabled)
		if res.Error != nil {
			return errs.Wrap(res.Error, "switch company sign-in")
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Table("provider_sign_in_configs").Where("provider_id = ?", providerID).Count(&n).Error; err != nil {
				return errs.Wrap(err, "find company sign-in")
			}
			if n == 0 {
				return notFound("company_sign_in")
			}
			return nil // already so
		}
		if enabled {
			return audit.Record(ctx, tx, "provider.sign_in_enable", "provider", fmt.Sprint(providerID), "company sign-in enabled")
		}
		ended, err := s.endSignInSessions(tx, providerID)
		if err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "provider.sign_in_disable", "provider", fmt.Sprint(providerID),
			"company sign-in disabled; %d sessions started through it ended", ended)
	})
}

// RemoveSignInConfig deletes providerID's company sign-in and its
// domains, and ends the sessions started through it. Users keep their
// link to their company identity: a configuration of the same issuer
// later finds them again.
func (s *Service) RemoveSignInConfig(ctx context.Context, providerID int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row signInConfigRow
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("provider_id = ?", providerID).Take(&row).Error; err != nil {
			return translate(err, "company_sign_in")
		}
		if err := tx.Exec(`DELETE FROM provider_sign_in_configs WHERE provider_id = ?`, providerID).Error; err != nil {
			return errs.Wrap(err, "remove company sign-in")
		}
		ended, err := s.endSignInSessions(tx, providerID)
		if err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "provider.sign_in_remove", "provider", fmt.Sprint(providerID),
			"company sign-in removed (issuer %s, client id %s); %d sessions started through it ended", row.Issuer, row.ClientID, ended)
	})
}

func (s *Service) endSignInSessions(tx *gorm.DB, providerID int64) (int64, error) {
	res := tx.Exec(`DELETE FROM sessions WHERE subject_kind = ? AND identity_provider = ?`, policies.KindProvider, rpName(providerID))
	return res.RowsAffected, errs.Wrap(res.Error, "end company sign-in sessions")
}

func (s *Service) seal(plain string) (string, error) {
	if s.Secrets == nil {
		return plain, nil
	}
	return s.Secrets.SealString(plain, sealPurpose)
}

func (s *Service) openSecret(ctx context.Context, providerID int64) (string, error) {
	var sealed []string
	if err := s.DB.WithContext(ctx).Table("provider_sign_in_configs").Where("provider_id = ?", providerID).
		Pluck("client_secret", &sealed).Error; err != nil {
		return "", errs.Wrap(err, "load client secret")
	}
	if len(sealed) != 1 {
		return "", nil
	}
	if s.Secrets == nil {
		if strings.HasPrefix(sealed[0], "enc1:") {
			return "", errs.Wrap(errors.New("client secret is sealed but SECRETS_KEY is not set"), "open client secret")
		}
		return sealed[0], nil
	}
	plain, err := s.Secrets.OpenString(sealed[0], sealPurpose)
	return plain, errs.Wrap(err, "open client secret")
}

func (s *Service) newRP(providerID int64, issuer, clientID, secret string) (*identity.RP, error) {
	hc := s.SignInHTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return identity.New(s.DB, identity.Settings{Name: rpName(providerID), Issuer: issuer, ClientID: clientID,
		ClientSecret: secret, RedirectURL: s.CompanySignInRedirectURL(), Scopes: []string{"profile", "email"}, HTTPClient: hc})
}

// RPCache keeps one relying party per provider and configuration version,
// so a provider's discovery document is read once per configuration.
type RPCache struct {
	mu  sync.Mutex
	rps map[int64]cachedRP
}

type cachedRP struct {
	version int
	rp      *identity.RP
}

// SignInRP is the relying party of providerID's company sign-in; nil when
// it has none or it is disabled.
func (s *Service) SignInRP(ctx context.Context, providerID int64) (*identity.RP, error) {
	var row signInConfigRow
	err := s.DB.WithContext(ctx).Where("provider_id = ? AND enabled", providerID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(err, "load company sign-in")
	}
	if c := s.SignInRPs; c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if got, ok := c.rps[providerID]; ok && got.version == row.Version {
			return got.rp, nil
		}
	}
	secret := row.ClientSecret
	if s.Secrets != nil {
		if secret, err = s.Secrets.OpenString(row.ClientSecret, sealPurpose); err != nil {
			return nil, errs.Wrap(err, "open client secret")
		}
	}
	rp, err := s.newRP(providerID, row.Issuer, row.ClientID, secret)
	if err != nil {
		return nil, errs.Wrap(err, "company sign-in")
	}
	if c := s.SignInRPs; c != nil {
		if c.rps == nil {
			c.rps = map[int64]cachedRP{}
		}
		c.rps[providerID] = cachedRP{version: row.Version, rp: rp}
	}
	return rp, nil
}

// emailDomain is the domain of an address, lower-cased; "" when it is none.
func emailDomain(email string) string {
	a, err := mail.ParseAddress(strings.TrimSpace(email))
	if err != nil {
		return ""
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(a.Address[at+1:])
}

// SignInRPForEmail is the relying party of the provider whose enabled
// company sign-in allows email's domain, with that provider's id; nil
// when none does (the caller answers the same either way).
func (s *Service) SignInRPForEmail(ctx context.Context, email string) (*identity.RP, int64, error) {
	d := emailDomain(email)
	if d == "" {
		return nil, 0, nil
	}
	var ids []int64
	if err := s.DB.WithContext(ctx).Raw(`SELECT d.provider_id FROM provider_sign_in_domains d
		JOIN provider_sign_in_configs c ON c.provider_id = d.provider_id AND c.enabled
		JOIN providers p ON p.id = d.provider_id AND p.status <> ?
		WHERE d.domain = ?`, string(StatusTerminated), d).Scan(&ids).Error; err != nil {
		return nil, 0, errs.Wrap(err, "find company sign-in")
	}
	if len(ids) != 1 {
		return nil, 0, nil
	}
	rp, err := s.SignInRP(ctx, ids[0])
	if err != nil || rp == nil {
		return nil, 0, err
	}
	return rp, ids[0], nil
}

// CompanyIdentity is a person the provider's company identity provider
// signed in (a verified ID token, policies/identity).
type CompanyIdentity struct {
	Issuer, Subject string
	// Email is the ID token's address; EmailVerified is its email_verified
	// claim, nil when the token has none.
	Email         string
	EmailVerified *bool
	// Entered is the address the person entered to start the sign-in.
	Entered string
}

// Refusals of SignInCompany; the messages are for the person signing in.
var (
	ErrCompanyNoEmail = errs.New(errs.Forbidden, "oidc_no_email",
		"Your company account has no e-mail address CarData could use; ask your company's CarData administrator")
	ErrCompanyOtherEmail = errs.New(errs.Forbidden, "oidc_email_mismatch",
		"You signed in at your company with another address than the one you entered; sign out there and start again")
	ErrCompanyUnverified = errs.New(errs.Forbidden, "oidc_email_unverified",
		"Your company's identity provider does not vouch for your e-mail address; ask your company's CarData administrator")
	ErrCompanyDomain = errs.New(errs.Forbidden, "oidc_domain_not_allowed",
		"Your company's sign-in does not allow addresses of this domain; ask your company's CarData administrator")
	ErrCompanyNoAccount = errs.New(errs.Forbidden, "oidc_not_invited",
		"There is no partner portal account for your address: ask your company's CarData administrator for an invitation")
	ErrCompanyInactive = errs.New(errs.Forbidden, "provider_user_inactive",
		"Your partner portal account is deactivated; ask your company's CarData administrator")
	ErrCompanyIdentityTaken = errs.New(errs.Forbidden, "oidc_identity_taken",
		"Your partner portal account is linked to another person at your company's identity provider; ask your company's CarData administrator")
	ErrCompanyOff = errs.New(errs.Forbidden, "oidc_company_sign_in_off",
		"Your company's sign-in to CarData is switched off; sign in with your password or ask your company's CarData administrator")
)

// SignInCompany finds the provider user of providerID that a person
// signed in by the provider's company identity provider is: the ID
// token's address must be the one they entered, not declared unverified
// (email_verified false), of a domain the configuration allows, and that
// of an active, invited user of this provider (a user of any other
// provider is refused like a stranger; nobody is created). At the first
// sign-in the user is linked to the identity's subject, and a pending
// invitation counts as accepted; later sign-ins must name the same
// subject. Every sign-in and refusal is audited.
func (s *Service) SignInCompany(ctx context.Context, providerID int64, id CompanyIdentity) (*ProviderUser, error) {
	ctx = policies.WithPrincipal(ctx, policies.System("company identity provider "+id.Issuer))
	email := strings.ToLower(strings.TrimSpace(id.Email))
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		email = ""
	}
	entered := strings.ToLower(strings.TrimSpace(id.Entered))
	var refusal *errs.Error
	var out ProviderUser
	now := s.now()
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// refuse audits the refusal: its summary's format is "company
		// sign-in refused (%s): %s (subject %s) through %s: " and why (each
		// such format in the audit-onboarding catalogs).
		refuse := func(e *errs.Error, objectID, why string, args ...any) error {
			refusal = e
			return audit.Recordf(ctx, tx, "provider_user.sign_in_refused", "provider", objectID,
				"company sign-in refused (%s): %s (subject %s) through %s: "+why, append([]any{e.Code, email, id.Subject, id.Issuer}, args...)...)
		}
		pid := fmt.Sprint(providerID)
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext('provider_oidc'), hashtext(?))`, id.Issuer+" "+id.Subject).Error; err != nil {
			return errs.Wrap(err, "lock identity")
		}
		var cfg signInConfigRow
		err := tx.Where("provider_id = ? AND enabled", providerID).Take(&cfg).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return refuse(ErrCompanyOff, pid, "the provider's company sign-in is off or removed")
		}
		if err != nil {
			return errs.Wrap(err, "load company sign-in")
		}
		switch {
		case email == "":
			return refuse(ErrCompanyNoEmail, pid, "the ID token carries no usable e-mail address")
		case entered != "" && email != entered:
			return refuse(ErrCompanyOtherEmail, pid, "the address entered was %s", entered)
		case id.EmailVerified != nil && !*id.EmailVerified:
			return refuse(ErrCompanyUnverified, pid, "email_verified is false")
		}
		var allowed int64
		if err := tx.Table("provider_sign_in_domains").Where("provider_id = ? AND domain = ?", providerID, emailDomain(email)).
			Count(&allowed).Error; err != nil {
			return errs.Wrap(err, "check domain")
		}
		if allowed == 0 {
			return refuse(ErrCompanyDomain, pid, "the domain is not among the configuration's domains")
		}
		var u ProviderUser
		err = tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("lower(email) = ? AND provider_id = ?", email, providerID).Take(&u).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			// Invitation-only: nobody is created at sign-in, and a user of
			// another provider is a stranger here.
			return refuse(ErrCompanyNoAccount, pid, "no invited user of this provider has that address")
		}
		if err != nil {
			return errs.Wrap(err, "find provider user")
		}
		uid := fmt.Sprint(u.ID)
		var status []string
		if err := tx.Table("providers").Where("id = ?", providerID).Pluck("status", &status).Error; err != nil {
			return errs.Wrap(err, "provider status")
		}
		if !u.Active || len(status) != 1 || Status(status[0]) == StatusTerminated {
			return refuse(ErrCompanyInactive, pid, "user %s is deactivated or the provider terminated", uid)
		}
		linked := u.OIDCSubject != nil && u.OIDCIssuer != nil
		switch {
		case linked && *u.OIDCIssuer == id.Issuer && *u.OIDCSubject != id.Subject:
			return refuse(ErrCompanyIdentityTaken, pid, "user %s is linked to subject %s", uid, *u.OIDCSubject)
		case !linked && u.PasswordHash == "" && (u.InviteExpiresAt == nil || !u.InviteExpiresAt.After(now)):
			return refuse(ErrCompanyNoAccount, pid, "the invitation of user %s has expired", uid)
		}
		var taken int64
		if err := tx.Table("provider_users").Where("oidc_issuer = ? AND oidc_subject = ? AND id <> ?", id.Issuer, id.Subject, u.ID).
			Count(&taken).Error; err != nil {
			return errs.Wrap(err, "check identity")
		}
		if taken > 0 {
			return refuse(ErrCompanyIdentityTaken, pid, "the subject is linked to another provider user")
		}
		upd := map[string]any{"last_login_at": now}
		if !linked || *u.OIDCIssuer != id.Issuer {
			upd["oidc_issuer"], upd["oidc_subject"], upd["updated_at"] = id.Issuer, id.Subject, now
			item := audit.ItemOf("provider_user.identity_link", "provider", pid,
				"%s now signs in through the company identity provider %s as subject %s", u.Email, id.Issuer, id.Subject)
			if u.PasswordHash == "" && u.InviteTokenHash != nil {
				upd["invite_token_hash"], upd["invite_expires_at"] = nil, nil
				item = audit.ItemOf("provider_user.identity_link", "provider", pid,
					"%s now signs in through the company identity provider %s as subject %s (invitation accepted)", u.Email, id.Issuer, id.Subject)
			}
			if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
				return err
			}
		}
		if err := tx.Model(&ProviderUser{}).Where("id = ?", u.ID).Updates(upd).Error; err != nil {
			return errs.Wrap(err, "record sign-in")
		}
		if err := audit.Recordf(ctx, tx, "provider_user.sign_in", "provider", pid,
			"%s signed in through the company identity provider %s (subject %s)", u.Email, id.Issuer, id.Subject); err != nil {
			return err
		}
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	return s.FindProviderUserByID(ctx, out.ID)
}

// RecordCompanySignInFailure audits a company sign-in that the identity
// check refused (token, nonce, audience ...) after its provider was known.
func (s *Service) RecordCompanySignInFailure(ctx context.Context, providerID int64, code, cause string) error {
	ctx = policies.WithPrincipal(ctx, policies.System("company sign-in"))
	if len(cause) > 500 {
		cause = cause[:500]
	}
	return audit.Recordf(ctx, s.DB.WithContext(ctx), "provider_user.sign_in_refused", "provider", fmt.Sprint(providerID),
		"company sign-in refused (%s): %s", code, cause)
}

// CompanySignInOf is the provider whose company sign-in the callback's
// state belongs to (identity.PendingProvider); a refusal of kind
// Unauthorized when it is none (replayed, expired, forged).
func (s *Service) CompanySignInOf(ctx context.Context, state string) (int64, error) {
	name, err := identity.PendingProvider(ctx, s.DB, state, s.now())
	if err != nil {
		return 0, err
	}
	id := ProviderOfRP(name)
	if id == 0 {
		return 0, identity.ErrState
	}
	return id, nil
}
