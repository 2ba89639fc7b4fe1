// Package devidp is the development identity provider: a real OpenID
// Provider (github.com/oauth2-proxy/mockoidc: discovery, authorization
// code flow with PKCE, RS256-signed ID tokens, published keys) that runs
// inside cardata for `make run` (DEV_IDP=1) and inside the tests. Instead
// of a password it shows a page of demo identities: whoever opens it signs
// in as anyone, which is why config refuses it off loopback addresses.
//
// One Provider is one issuer with one client: `make run` starts two, the
// company's identity for staff and the manufacturer's customer identity
// for /my. Tests queue identities (Queue) to skip the page, and an
// Identity can spoil its own ID token (wrong audience, expiry, nonce, a
// signature by a key the provider does not publish) to prove that cardata
// refuses it.
package devidp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Identity is a person the provider can sign in.
type Identity struct {
	Subject string
	Email   string
	Name    string
	Groups  []string // the groups claim (staff providers)
	Note    string   // shown on the page: what this identity demonstrates

	// Spoil changes the ID token's standard claims before it is signed
	// (tests: another audience, an expiry in the past, another nonce).
	Spoil func(*mockoidc.IDTokenClaims)
	// ForeignKey signs the ID token with a key the provider does not
	// publish, under the published key's id.
	ForeignKey bool
}

// ID is the subject (mockoidc.User).
func (i *Identity) ID() string { return i.Subject }

type claims struct {
	*mockoidc.IDTokenClaims
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

// Claims are the ID token's claims for the requested scopes (mockoidc.User).
func (i *Identity) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	if i.Spoil != nil {
		i.Spoil(base)
	}
	c := &claims{IDTokenClaims: base}
	if slices.Contains(scopes, "email") {
		c.Email, c.EmailVerified = i.Email, i.Email != ""
	}
	if slices.Contains(scopes, "profile") {
		c.Name = i.Name
	}
	if slices.Contains(scopes, "groups") {
		c.Groups = i.Groups
	}
	return c, nil
}

// Userinfo is the userinfo endpoint's answer (mockoidc.User).
func (i *Identity) Userinfo(scopes []string) ([]byte, error) {
	c, _ := i.Claims(scopes, &mockoidc.IDTokenClaims{RegisteredClaims: &jwt.RegisteredClaims{Subject: i.Subject}})
	return json.Marshal(c)
}

// Provider is one running development identity provider.
type Provider struct {
	Title      string // "Company identity (staff)"
	m          *mockoidc.MockOIDC
	identities []Identity
	foreign    *mockoidc.Keypair // the unpublished key (ForeignKey), under the published key's id

	mu     sync.Mutex // one request at a time: mockoidc's stores are plain maps
	queued []Identity
	srv    *http.Server
	done   chan struct{}
}

// Start serves a provider on addr (host:port; port 0 picks one) for one
// client. Its issuer is http://ADDR/oidc.
func Start(addr, title, clientID, clientSecret string, identities []Identity) (*Provider, error) {
	// A key of its own (mockoidc's default key is published with it).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, err
	}
	m.ClientID, m.ClientSecret = clientID, clientSecret
	m.CodeChallengeMethodsSupported = []string{"S256"}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("development identity provider on %s: %w", addr, err)
	}
	p := &Provider{Title: title, m: m, identities: identities, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", p.index)
	mux.HandleFunc(mockoidc.AuthorizationEndpoint, p.authorize)
	mux.HandleFunc(mockoidc.TokenEndpoint, p.token)
	mux.HandleFunc(mockoidc.UserinfoEndpoint, p.serial(m.Userinfo))
	mux.HandleFunc(mockoidc.JWKSEndpoint, p.serial(m.JWKS))
	mux.HandleFunc(mockoidc.DiscoveryEndpoint, p.discovery)
	mux.HandleFunc(mockoidc.IssuerBase+"/logout", p.logout)
	// mockoidc names its endpoints after Server.Addr; it never serves
	// through this server itself (its Start is not called).
	p.srv = &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.Server = p.srv
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return p, nil
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.m.Issuer() }

// Addr is the provider's base URL (its page of identities).
func (p *Provider) Addr() string { return p.m.Addr() }

// Close stops the provider and waits for it.
func (p *Provider) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
	<-p.done
}

// Queue makes the next authorization sign in id without showing the page
// (tests).
func (p *Provider) Queue(id Identity) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queued = append(p.queued, id)
}

func (p *Provider) serial(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		h(w, r)
	}
}

func (p *Provider) find(subject string) (Identity, bool) {
	for _, id := range p.identities {
		if id.Subject == subject {
			return id, true
		}
	}
	return Identity{}, false
}

// authorize shows the page of identities, or signs in the one chosen on
// it (or queued by a test) through mockoidc's authorization endpoint.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var id Identity
	switch sub := r.Form.Get("dev_identity"); {
	case sub != "":
		found, ok := p.find(sub)
		if !ok {
			http.Error(w, "no such identity", http.StatusBadRequest)
			return
		}
		id = found
		if r.Form.Get("dev_groups") == "1" {
			id.Groups = r.Form["dev_group"]
		}
	case len(p.queued) > 0:
		id, p.queued = p.queued[0], p.queued[1:]
	default:
		p.page(w, r)
		return
	}
	p.m.QueueUser(&id)
	p.m.Authorize(w, r)
}

// token is mockoidc's token endpoint; an identity with ForeignKey gets
// its ID token signed again with the unpublished key.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	foreign := false
	if s, err := p.m.SessionStore.GetSessionByID(r.Form.Get("code")); err == nil {
		if id, ok := s.User.(*Identity); ok {
			foreign = id.ForeignKey
		}
	}
	rec := httptest.NewRecorder()
	p.m.Token(rec, r)
	body := rec.Body.Bytes()
	if foreign && rec.Code == http.StatusOK && p.foreign == nil {
		// Made when first needed: only tests sign with it.
		kp, err := mockoidc.RandomKeypair(2048)
		if err == nil {
			kp.Kid, err = p.m.Keypair.KeyID()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		p.foreign = kp
	}
	if foreign && rec.Code == http.StatusOK {
		var res map[string]any
		if err := json.Unmarshal(body, &res); err == nil {
			if raw, _ := res["id_token"].(string); raw != "" {
				var c jwt.MapClaims
				if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err == nil {
					if signed, err := p.foreign.SignJWT(c); err == nil {
						res["id_token"] = signed
						body, _ = json.Marshal(res)
					}
				}
			}
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// discovery is mockoidc's document plus the end-session endpoint, so the
// relying party's logout ends the provider's session too.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.serial(p.m.Discovery)(rec, r)
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		http.Error(w, "discovery", http.StatusInternalServerError)
		return
	}
	doc["end_session_endpoint"] = p.Issuer() + "/logout"
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

// logout ends the (stateless) provider session and returns the browser to
// the relying party, on this machine only.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	back := r.URL.Query().Get("post_logout_redirect_uri")
	if u, err := url.Parse(back); err == nil && (u.Scheme == "http" || u.Scheme == "https") && loopback(u.Hostname()) {
		http.Redirect(w, r, back, http.StatusFound)
		return
	}
	p.render(w, "Signed out", nil, "You have signed out of the development identity provider.")
}

func loopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// index lists the identities outside a sign-in.
func (p *Provider) index(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	p.render(w, p.Title, nil, "")
}

// page is the identities page inside a sign-in: each identity is a form
// that carries the authorization request on.
func (p *Provider) page(w http.ResponseWriter, r *http.Request) {
	p.render(w, p.Title, r.Form, "")
}

type pageData struct {
	Title      string
	Message    string
	Action     string
	Params     url.Values // the authorization request, nil outside a sign-in
	Identities []Identity
	Groups     []string // every group any identity has, for the check boxes
	Issuer     string
}

func (p *Provider) render(w http.ResponseWriter, title string, params url.Values, msg string) {
	d := pageData{Title: title, Message: msg, Action: mockoidc.AuthorizationEndpoint, Identities: p.identities, Issuer: p.Issuer()}
	if params != nil {
		d.Params = url.Values{}
		for k, v := range params {
			if !strings.HasPrefix(k, "dev_") {
				d.Params[k] = v
			}
		}
	}
	for _, id := range p.identities {
		for _, g := range id.Groups {
			if !slices.Contains(d.Groups, g) {
				d.Groups = append(d.Groups, g)
			}
		}
	}
	slices.Sort(d.Groups)
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"has": slices.Contains[[]string, string]}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · development identity provider</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f3ea;color:#222}
.banner{background:#b3261e;color:#fff;padding:10px 16px;font-weight:600}
main{max-width:760px;margin:0 auto;padding:16px}
h1{font-size:1.3rem;margin:8px 0}
.id{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 14px;margin:10px 0}
.id h2{font-size:1rem;margin:0 0 2px}
.muted{color:#666;font-size:.9rem}
.groups{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0}
.groups label{font-size:.9rem;white-space:nowrap}
button{font:inherit;padding:8px 14px;border-radius:6px;border:1px solid #1f4e8c;background:#1f4e8c;color:#fff;cursor:pointer}
code{font-size:.85rem;word-break:break-all}
</style></head><body>
<div class="banner" role="alert">Development identity provider: not for production. Anyone who can open this page signs in as anyone.</div>
<main>
<h1>{{.Title}}</h1>
{{with .Message}}<p>{{.}}</p>{{end}}
{{if .Params}}<p>Choose who signs in to CarData.{{if .Groups}} Untick a group to see how CarData treats someone removed from it.{{end}}</p>
{{else}}<p class="muted">The demo identities below sign in from CarData's sign-in pages ("Sign in with ..."). Issuer <code>{{.Issuer}}</code>.</p>{{end}}
{{$d := .}}
{{range .Identities}}
<section class="id">
  <h2>{{.Name}}</h2>
  <div class="muted">{{.Email}}{{with .Note}} · {{.}}{{end}}</div>
  {{if $d.Params}}
  <form method="get" action="{{$d.Action}}">
    {{range $k, $vs := $d.Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
    <input type="hidden" name="dev_identity" value="{{.Subject}}">
    {{if $d.Groups}}<input type="hidden" name="dev_groups" value="1">
    <div class="groups">{{$id := .}}{{range $d.Groups}}<label><input type="checkbox" name="dev_group" value="{{.}}"{{if has $id.Groups .}} checked{{end}}> {{.}}</label>{{end}}</div>{{end}}
    <button type="submit" data-subject="{{.Subject}}">Sign in as {{.Name}}</button>
  </form>
  {{else}}{{with .Groups}}<div class="muted">groups: {{range $i, $g := .}}{{if $i}}, {{end}}{{$g}}{{end}}</div>{{end}}{{end}}
</section>
{{end}}
</main></body></html>`))
