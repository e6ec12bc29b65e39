package tool

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrCredential is wrapped by errors about a credential that cannot be used:
// a missing field, a wrong resource type, a token endpoint that fails.
var ErrCredential = errors.New("credential unusable")

// tokenMargin is how long before its expiry a cached OAuth2 token is
// replaced, so it does not expire in flight.
const tokenMargin = 30 * time.Second

// defaultTokenLife is how long a token that states no expiry is kept.
const defaultTokenLife = 10 * time.Minute

// An Authenticator puts credentials on outgoing requests as an [Auth] says
// and caches OAuth2 tokens until they expire. It is safe for concurrent use;
// share one across calls.
type Authenticator struct {
	client *http.Client // for token requests; never follows redirects

	mu     sync.Mutex
	tokens map[string]*oauthToken // by tokenKey
}

type oauthToken struct {
	mu      sync.Mutex // held while fetching, so one fetch serves all waiters
	value   string
	expires time.Time
}

// NewAuthenticator returns an Authenticator that fetches OAuth2 tokens over
// rt ([NewTransport] when nil).
func NewAuthenticator(rt http.RoundTripper) *Authenticator {
	if rt == nil {
		rt = NewTransport(nil)
	}
	client := &http.Client{
		Transport:     rt,
		Timeout:       30 * time.Second,
		CheckRedirect: noRedirects,
	}
	return &Authenticator{client: client, tokens: map[string]*oauthToken{}}
}

// noRedirects keeps token requests, which carry the client secret, from
// following any redirect.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Apply puts cred on req as a says. It returns the credential values the
// request now carries (including a fetched OAuth2 token), which the caller
// must redact from whatever comes back. Errors wrap [ErrCredential] or
// [ErrHostNotAllowed] and hold no secret.
func (a *Authenticator) Apply(ctx context.Context, req *http.Request, auth *Auth,
	cred *Credential) ([]string, error) {
	switch {
	case auth.Bearer != "":
		v, err := credField(cred, auth.Bearer)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+v)
		return []string{v}, nil
	case auth.Basic != nil:
		return applyBasic(req, auth.Basic, cred)
	case auth.Header != nil:
		v, err := credField(cred, auth.Header.Value)
		if err != nil {
			return nil, err
		}
		req.Header.Set(auth.Header.Name, v)
		return []string{v}, nil
	case auth.Query != nil:
		return applyQuery(req, auth.Query, cred)
	case auth.OAuth2 != nil:
		tok, err := a.token(ctx, cred)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return []string{tok}, nil
	}
	return nil, fmt.Errorf("%w: auth names no kind", ErrCredential)
}

func credField(cred *Credential, name string) (string, error) {
	v, err := cred.Field(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrCredential, err)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", fmt.Errorf("%w: resource %s: field %q holds a line break", ErrCredential,
			cred.Path, name)
	}
	return v, nil
}

func applyBasic(req *http.Request, b *BasicAuth, cred *Credential) ([]string, error) {
	user, err := credField(cred, b.Username)
	if err != nil {
		return nil, err
	}
	if b.Password == "" {
		req.SetBasicAuth(user, "")
		return []string{user, user + ":"}, nil
	}
	pass, err := credField(cred, b.Password)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, pass)
	return []string{pass, user + ":" + pass}, nil
}

func applyQuery(req *http.Request, q *NamedField, cred *Credential) ([]string, error) {
	v, err := credField(cred, q.Value)
	if err != nil {
		return nil, err
	}
	values := req.URL.Query()
	values.Set(q.Name, v)
	req.URL.RawQuery = values.Encode()
	return []string{v}, nil
}

// Invalidate forgets the OAuth2 token cached for cred, so the next Apply
// fetches a new one. Callers do this when an upstream answers 401.
func (a *Authenticator) Invalidate(cred *Credential) {
	key, err := tokenKey(cred)
	if err != nil {
		return
	}
	a.mu.Lock()
	delete(a.tokens, key)
	a.mu.Unlock()
}

// token returns a cached or freshly fetched OAuth2 access token.
func (a *Authenticator) token(ctx context.Context, cred *Credential) (string, error) {
	key, err := tokenKey(cred)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	tok, ok := a.tokens[key]
	if !ok {
		tok = &oauthToken{}
		a.tokens[key] = tok
	}
	a.mu.Unlock()

	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.value != "" && time.Now().Before(tok.expires) {
		return tok.value, nil
	}
	value, life, err := a.fetchToken(ctx, cred)
	if err != nil {
		return "", err
	}
	tok.value, tok.expires = value, time.Now().Add(life)
	return value, nil
}

// tokenKey identifies a client: the resource and a digest of its settings,
// so a rotated secret gets a token of its own.
func tokenKey(cred *Credential) (string, error) {
	h := sha256.New()
	for _, f := range []string{"tokenURL", "clientId", "clientSecret"} {
		v, err := credField(cred, f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:%s", len(v), v)
	}
	fmt.Fprint(h, scopes(cred))
	return cred.Path + "\x00" + string(h.Sum(nil)), nil
}

func scopes(cred *Credential) string {
	switch v := cred.Fields["scopes"].(type) {
	case string:
		return v
	case []any:
		parts := make([]string, 0, len(v))
		for _, s := range v {
			parts = append(parts, fmt.Sprint(s))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// fetchToken asks the resource's token endpoint for a client-credentials
// token. The endpoint must be an allowed host: the client secret goes there.
func (a *Authenticator) fetchToken(ctx context.Context,
	cred *Credential) (string, time.Duration, error) {
	req, err := tokenRequest(ctx, cred)
	if err != nil {
		return "", 0, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("%w: resource %s: token request to %s failed", ErrCredential,
			cred.Path, req.URL.Host)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body is not quoted: token endpoints may echo the client secret.
		return "", 0, fmt.Errorf("%w: resource %s: token endpoint %s answered %s",
			ErrCredential, cred.Path, req.URL.Host, resp.Status)
	}

	var body struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	if err != nil || body.AccessToken == "" {
		return "", 0, fmt.Errorf("%w: resource %s: token endpoint %s sent no access_token",
			ErrCredential, cred.Path, req.URL.Host)
	}
	return body.AccessToken, tokenLife(body.ExpiresIn), nil
}

func tokenRequest(ctx context.Context, cred *Credential) (*http.Request, error) {
	tokenURL, _ := credField(cred, "tokenURL") // tokenKey checked the fields
	id, _ := credField(cred, "clientId")
	secret, _ := credField(cred, "clientSecret")
	u, err := url.Parse(tokenURL)
	if err != nil {
		return nil, fmt.Errorf("%w: resource %s: tokenURL is not a URL", ErrCredential, cred.Path)
	}
	if err := CheckURL(u, cred.AllowedHosts); err != nil {
		return nil, fmt.Errorf("resource %s: tokenURL: %w", cred.Path, err)
	}

	form := url.Values{"grant_type": {"client_credentials"}}
	if s := scopes(cred); s != "" {
		form.Set("scope", s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(),
		strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: resource %s: %v", ErrCredential, cred.Path, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req, nil
}

func tokenLife(expiresIn json.Number) time.Duration {
	secs, err := expiresIn.Int64()
	if err != nil || secs <= 0 {
		return defaultTokenLife
	}
	return max(time.Duration(secs)*time.Second-tokenMargin, time.Second)
}
