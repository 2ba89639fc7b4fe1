package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"cardata/app/demo"
)

// revokeAsCustomer signs in at /my as the vehicle's holder and revokes the
// consent there, as the customer would in the browser (session cookie and
// the CSRF double-submit cookie).
func revokeAsCustomer(ctx context.Context, base, email string, consentID int64) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		res, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return nil
	}
	post := func(path string, form url.Values) (status int, location, body string, err error) {
		u, _ := url.Parse(base)
		for _, ck := range jar.Cookies(u) {
			if ck.Name == "cardata_csrf" {
				form.Set("_csrf", ck.Value)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := c.Do(req)
		if err != nil {
			return 0, "", "", err
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		return res.StatusCode, res.Header.Get("Location"), string(b), nil
	}
	if err := get("/my/login"); err != nil {
		return err
	}
	st, loc, body, err := post("/my/login", url.Values{"email": {email}, "password": {demo.Password}})
	if err != nil {
		return err
	}
	if st != http.StatusSeeOther || strings.Contains(loc, "login") {
		return fmt.Errorf("sign-in of %s at /my answered %d (%s): %s", email, st, loc, body)
	}
	if err := get("/my"); err != nil {
		return err
	}
	st, loc, body, err = post(fmt.Sprintf("/my/consents/%d/revoke", consentID), url.Values{})
	if err != nil {
		return err
	}
	if st != http.StatusSeeOther || loc != "/my" {
		return fmt.Errorf("revoking consent %d answered %d (%s): %s", consentID, st, loc, body)
	}
	return nil
}
