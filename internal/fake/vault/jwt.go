package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Vault's defaults for a JWT role.
const (
	defaultTokenTTL   = 768 * time.Hour
	defaultClockSkew  = 60 * time.Second
	defaultExpLeeway  = 150 * time.Second
	defaultNbfLeeway  = 150 * time.Second
	fetchTimeoutLimit = 10 * time.Second
)

// jwtMount is one enabled JWT auth method.
type jwtMount struct {
	configured  bool
	boundIssuer string
	keys        gooidc.KeySet
	roles       map[string]*jwtRole
}

// jwtRole is a role_type jwt role.
type jwtRole struct {
	BoundAudiences  []string
	BoundSubject    string
	BoundClaims     map[string][]string
	BoundClaimsGlob bool
	UserClaim       string
	TokenTTL        time.Duration
	TokenMaxTTL     time.Duration
	TokenPolicies   []string
	ClockSkew       time.Duration // negative: none
	ExpLeeway       time.Duration
	NbfLeeway       time.Duration
}

// token is a client token the server handed out.
type token struct {
	accessor string
	policies []string
	expires  time.Time
	meta     map[string]string
	ttl      time.Duration
}

// authResponse is the auth block of a login answer.
type authResponse struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
}

func (h *Handler) enableAuth(w http.ResponseWriter, path string, body map[string]any) {
	if typ, _ := body["type"].(string); typ != "jwt" {
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("this server only knows "+
			"auth method type jwt, not %q", typ))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.jwt[path]; ok {
		writeErrors(w, http.StatusBadRequest,
			fmt.Sprintf("path is already in use at %s/", path))
		return
	}
	h.jwt[path] = &jwtMount{roles: map[string]*jwtRole{}}
	noContent(w)
}

// auth serves auth/{mount}/….
func (h *Handler) auth(w http.ResponseWriter, r *http.Request, path string,
	body map[string]any) {
	h.mu.Lock()
	name, rest, ok := mountOf(h.jwt, strings.TrimPrefix(path, "auth/"))
	m := h.jwt[name]
	h.mu.Unlock()
	if !ok {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q", path))
		return
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	role, isRole := strings.CutPrefix(rest, "role/")
	switch {
	case write && rest == "login":
		h.login(w, r, m, body)
	case !h.isRoot(r):
		writeErrors(w, http.StatusForbidden, "permission denied")
	case write && rest == "config":
		h.configure(w, r, m, body)
	case write && isRole && role != "":
		h.putRole(w, m, role, body)
	default:
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q", path))
	}
}

// configure sets where the mount gets its keys: a JWKS URL, or an OIDC
// discovery URL that is fetched now, as Vault does.
func (h *Handler) configure(w http.ResponseWriter, r *http.Request, m *jwtMount,
	body map[string]any) {
	jwksURL, _ := body["jwks_url"].(string)
	discovery, _ := body["oidc_discovery_url"].(string)
	issuer, _ := body["bound_issuer"].(string)
	if (jwksURL == "") == (discovery == "") {
		writeErrors(w, http.StatusBadRequest, "exactly one of 'jwt_validation_pubkeys', "+
			"'jwks_url' or 'oidc_discovery_url' must be set")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), fetchTimeoutLimit)
	defer cancel()
	ctx = gooidc.ClientContext(ctx, h.client)

	var keys gooidc.KeySet
	if jwksURL != "" {
		keys = gooidc.NewRemoteKeySet(ctx, jwksURL)
	} else {
		p, err := gooidc.NewProvider(ctx, discovery)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "error checking oidc discovery URL: "+
				err.Error())
			return
		}
		var doc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		_ = p.Claims(&doc)
		keys = gooidc.NewRemoteKeySet(ctx, doc.JWKSURI)
		if issuer == "" {
			issuer = discovery
		}
	}

	h.mu.Lock()
	m.configured, m.boundIssuer, m.keys = true, issuer, keys
	h.mu.Unlock()
	noContent(w)
}

func (h *Handler) putRole(w http.ResponseWriter, m *jwtMount, name string,
	body map[string]any) {
	role, err := decodeRole(body)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	m.roles[name] = role
	h.mu.Unlock()
	noContent(w)
}

func decodeRole(body map[string]any) (*jwtRole, error) {
	if t, ok := body["role_type"].(string); ok && t != "jwt" {
		return nil, fmt.Errorf("this server only knows role_type jwt, not %q", t)
	}
	role := &jwtRole{UserClaim: str(body["user_claim"]),
		BoundSubject: str(body["bound_subject"]), BoundClaims: map[string][]string{},
		BoundAudiences: list(body["bound_audiences"]),
		TokenPolicies:  list(body["token_policies"])}
	if role.UserClaim == "" {
		return nil, fmt.Errorf("a user claim must be defined on the role")
	}
	switch str(body["bound_claims_type"]) {
	case "", "string":
	case "glob":
		role.BoundClaimsGlob = true
	default:
		return nil, fmt.Errorf("invalid 'bound_claims_type': %v", body["bound_claims_type"])
	}
	claims, _ := body["bound_claims"].(map[string]any)
	for k, v := range claims {
		role.BoundClaims[k] = list(v)
	}
	return role, decodeDurations(role, body)
}

func decodeDurations(role *jwtRole, body map[string]any) error {
	for _, d := range []struct {
		field string
		dst   *time.Duration
		def   time.Duration
	}{
		{"token_ttl", &role.TokenTTL, defaultTokenTTL},
		{"token_max_ttl", &role.TokenMaxTTL, 0},
		{"clock_skew_leeway", &role.ClockSkew, defaultClockSkew},
		{"expiration_leeway", &role.ExpLeeway, defaultExpLeeway},
		{"not_before_leeway", &role.NbfLeeway, defaultNbfLeeway},
	} {
		v, err := duration(body[d.field])
		if err != nil {
			return fmt.Errorf("invalid %s: %v", d.field, err)
		}
		*d.dst = v
		if v == 0 {
			*d.dst = d.def
		}
	}
	if role.TokenMaxTTL > 0 && role.TokenTTL > role.TokenMaxTTL {
		role.TokenTTL = role.TokenMaxTTL
	}
	return nil
}

// duration reads a Vault duration: seconds as a number or a string of
// digits, a Go duration string, or -1 for none.
func duration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case float64:
		if v < 0 {
			return -1, nil
		}
		return time.Duration(v) * time.Second, nil
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return duration(float64(n))
		}
		return time.ParseDuration(v)
	}
	return 0, fmt.Errorf("%v is not a duration", v)
}

func str(v any) string { s, _ := v.(string); return s }

// list reads a Vault list: a JSON array or a comma-separated string.
func list(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

// login checks a JWT against a role and hands out a token.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, m *jwtMount,
	body map[string]any) {
	h.mu.Lock()
	role, ok := m.roles[str(body["role"])]
	configured, keys, issuer := m.configured, m.keys, m.boundIssuer
	h.mu.Unlock()
	switch {
	case str(body["role"]) == "":
		writeErrors(w, http.StatusBadRequest, "missing role")
		return
	case !ok:
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("role %q could not be found",
			str(body["role"])))
		return
	case !configured:
		writeErrors(w, http.StatusBadRequest, "could not load configuration")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), fetchTimeoutLimit)
	defer cancel()
	claims, err := h.validate(ctx, keys, issuer, role, str(body["jwt"]))
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	writeResponse(w, response{Auth: h.grant(role, str(body["role"]), claims)})
}

// validate verifies a JWT's signature and claims as the role demands and
// returns its claims.
func (h *Handler) validate(ctx context.Context, keys gooidc.KeySet, issuer string,
	role *jwtRole, raw string) (map[string]any, error) {
	if raw == "" {
		return nil, fmt.Errorf("missing token")
	}
	payload, err := keys.VerifySignature(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("error validating token: failed to verify signature: %v", err)
	}
	var std jwt.Claims
	var claims map[string]any
	if json.Unmarshal(payload, &std) != nil || json.Unmarshal(payload, &claims) != nil {
		return nil, fmt.Errorf("error validating token: claims are not a JSON object")
	}
	if err := checkStandard(std, issuer, role, h.now()); err != nil {
		return nil, fmt.Errorf("error validating token: %v", err)
	}
	if err := checkBound(role, claims); err != nil {
		return nil, fmt.Errorf("error validating claims: %v", err)
	}
	if _, ok := claims[role.UserClaim]; !ok {
		return nil, fmt.Errorf("claim %q not found in token", role.UserClaim)
	}
	return claims, nil
}

func checkStandard(c jwt.Claims, issuer string, role *jwtRole, now time.Time) error {
	switch {
	case issuer != "" && c.Issuer != issuer:
		return fmt.Errorf("invalid issuer (iss) claim")
	case role.BoundSubject != "" && c.Subject != role.BoundSubject:
		return fmt.Errorf("invalid subject (sub) claim")
	case len(role.BoundAudiences) == 0 && len(c.Audience) > 0:
		return fmt.Errorf("audience claim found in JWT but no audiences bound to the role")
	case len(role.BoundAudiences) > 0 && !slices.ContainsFunc(role.BoundAudiences,
		c.Audience.Contains):
		return fmt.Errorf("invalid audience (aud) claim: audience claim does not match " +
			"any expected audience")
	case c.Expiry == nil:
		return fmt.Errorf("no expiration time (exp) claim")
	case now.After(c.Expiry.Time().Add(leeway(role.ExpLeeway))):
		return fmt.Errorf("invalid expiration time (exp) claim: token is expired")
	case c.NotBefore != nil && now.Before(c.NotBefore.Time().Add(-leeway(role.NbfLeeway))):
		return fmt.Errorf("invalid not before (nbf) claim: token not yet valid")
	case c.IssuedAt != nil && now.Before(c.IssuedAt.Time().Add(-leeway(role.ClockSkew))):
		return fmt.Errorf("invalid issued at (iat) claim: token issued in the future")
	}
	return nil
}

func leeway(d time.Duration) time.Duration { return max(d, 0) }

// checkBound checks bound_claims: each bound claim must be in the token
// and match one of the bound values (one of them, for a list claim).
func checkBound(role *jwtRole, claims map[string]any) error {
	for name, allowed := range role.BoundClaims {
		v, ok := claims[strings.TrimPrefix(name, "/")]
		if !ok {
			return fmt.Errorf("claim %q is missing", name)
		}
		var got []string
		if vs, isList := v.([]any); isList {
			for _, e := range vs {
				got = append(got, fmt.Sprint(e))
			}
		} else {
			got = []string{fmt.Sprint(v)}
		}
		if !anyMatch(got, allowed, role.BoundClaimsGlob) {
			return fmt.Errorf("claim %q does not match any associated bound claim values",
				name)
		}
	}
	return nil
}

func anyMatch(got, allowed []string, glob bool) bool {
	for _, g := range got {
		for _, a := range allowed {
			if g == a || (glob && globMatch(a, g)) {
				return true
			}
		}
	}
	return false
}

// globMatch reports whether s matches pattern, in which * stands for any
// run of characters.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// grant stores a new token for a successful login.
func (h *Handler) grant(role *jwtRole, name string, claims map[string]any) *authResponse {
	policies := append([]string{"default"}, role.TokenPolicies...)
	tok := &token{accessor: newID(""), policies: policies, ttl: role.TokenTTL,
		expires: h.now().Add(role.TokenTTL), meta: map[string]string{"role": name}}
	id := "hvs." + strings.ReplaceAll(newID(""), "-", "")
	h.mu.Lock()
	h.tokens[id] = tok
	h.mu.Unlock()
	return &authResponse{ClientToken: id, Accessor: tok.accessor, Policies: policies,
		TokenPolicies: policies, Metadata: tok.meta,
		LeaseDuration: int(role.TokenTTL / time.Second), Renewable: true,
		EntityID: newID(""), TokenType: "service", Orphan: true}
}

// lookup returns the live token a request carries, or nil. An expired token
// is deleted, as Vault revokes it.
func (h *Handler) lookup(r *http.Request) *token {
	id := tokenOf(r)
	if id == h.root {
		return &token{policies: []string{"root"}}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	tok, ok := h.tokens[id]
	if !ok {
		return nil
	}
	if !h.now().Before(tok.expires) {
		delete(h.tokens, id)
		return nil
	}
	return tok
}

func (h *Handler) lookupSelf(w http.ResponseWriter, r *http.Request) {
	tok := h.lookup(r)
	if tok == nil {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	ttl := 0
	if !tok.expires.IsZero() {
		ttl = int(tok.expires.Sub(h.now()) / time.Second)
	}
	writeResponse(w, response{Data: map[string]any{"accessor": tok.accessor,
		"policies": tok.policies, "ttl": ttl, "creation_ttl": int(tok.ttl / time.Second),
		"meta": tok.meta, "renewable": ttl > 0}})
}
