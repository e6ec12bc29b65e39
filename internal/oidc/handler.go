package oidc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Paths of the issuer's endpoints, relative to the issuer URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// Discovery is the issuer's OpenID Provider metadata. keyhole issues tokens
// to its own jobs only, so there is no authorization or token endpoint.
type Discovery struct {
	Issuer            string   `json:"issuer"`
	JWKSURI           string   `json:"jwks_uri"`
	ResponseTypes     []string `json:"response_types_supported"`
	SubjectTypes      []string `json:"subject_types_supported"`
	SigningAlgorithms []string `json:"id_token_signing_alg_values_supported"`
	Scopes            []string `json:"scopes_supported"`
	ClaimsSupported   []string `json:"claims_supported"`
}

// Discovery returns the discovery document.
func (i *Issuer) Discovery() Discovery {
	return Discovery{
		Issuer:            i.url,
		JWKSURI:           i.JWKSURL(),
		ResponseTypes:     []string{"id_token"},
		SubjectTypes:      []string{"public"},
		SigningAlgorithms: []string{Algorithm},
		Scopes:            []string{"openid"},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
			"workspace", "job_id", "job_kind", "job_name", "trigger"},
	}
}

// JWKSURL returns the URL of the issuer's key set.
func (i *Issuer) JWKSURL() string { return i.url + JWKSPath }

// DiscoveryURL returns the URL of the issuer's discovery document.
func (i *Issuer) DiscoveryURL() string { return i.url + DiscoveryPath }

// Handler serves the discovery document and the key set at their paths
// under the issuer URL's path, and 404 elsewhere. Mount it at the server
// root (or at the issuer URL's path); it needs no authentication.
func (i *Issuer) Handler() http.Handler {
	base := i.basePath()
	mux := http.NewServeMux()
	mux.Handle("GET "+base+DiscoveryPath, i.DiscoveryHandler())
	mux.Handle("GET "+base+JWKSPath, i.JWKSHandler())
	return mux
}

func (i *Issuer) basePath() string {
	u, _ := url.Parse(i.url) // checked by NewIssuer
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

// DiscoveryHandler serves the discovery document.
func (i *Issuer) DiscoveryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, "public, max-age=300", i.Discovery())
	})
}

// JWKSHandler serves the key set. It answers 503 when the database cannot
// be read.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set, err := i.PublicKeys(r.Context())
		if err != nil {
			i.log.ErrorContext(r.Context(), "oidc: key set unavailable", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, "no-store",
				map[string]string{"error": "signing keys are unavailable"})
			return
		}
		// Short caching: a rotated key must reach verifiers soon, and
		// most refetch on an unknown key ID anyway.
		writeJSON(w, http.StatusOK, "public, max-age=60", set)
	})
}

func writeJSON(w http.ResponseWriter, status int, cache string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
