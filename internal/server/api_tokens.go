package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// TokenInfo describes a token; never its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Workspace string     `json:"workspace"`
	Scopes    []string   `json:"scopes"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedToken is a new token: shown once, never again.
type CreatedToken struct {
	TokenInfo
	Secret string `json:"token"`
}

// tokenRequest asks for a new token.
type tokenRequest struct {
	Name string `json:"name"`
	// Scopes the token holds.
	Scopes []string `json:"scopes"`
	// ExpiresIn is a Go duration such as "24h"; empty for no expiry.
	ExpiresIn string `json:"expires_in,omitempty"`
}

type tokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

func (s *Server) tokenEndpoints() []endpoint {
	const base = "/api/v1/workspaces/{ws}/tokens"
	return []endpoint{
		{method: "GET", path: base, scope: auth.Admin, tag: "tokens",
			summary: "List the workspace's live tokens; revoked=true adds revoked ones",
			query:   []param{{"revoked", "true to include revoked tokens"}},
			resp:    tokenList{}, h: s.listTokens},
		{method: "POST", path: base, scope: auth.Admin, tag: "tokens",
			summary: "Create a token; the response is the only time its secret is shown",
			body:    tokenRequest{}, resp: CreatedToken{}, status: http.StatusCreated, h: s.createToken},
		{method: "DELETE", path: base + "/{token}", scope: auth.Admin, tag: "tokens",
			summary: "Revoke a token by id or name", resp: TokenInfo{}, h: s.revokeToken},
	}
}

func tokenInfo(t *store.Token) TokenInfo {
	in := TokenInfo{ID: t.ID, Name: t.Name, Workspace: t.Workspace, Scopes: t.Scopes,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt}
	if !t.ExpiresAt.IsZero() {
		in.ExpiresAt = &t.ExpiresAt
	}
	if !t.RevokedAt.IsZero() {
		in.RevokedAt = &t.RevokedAt
	}
	return in
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	list, err := s.db.Direct().Tokens(r.Context(), c.ws.ID, r.URL.Query().Get("revoked") == "true")
	if err != nil {
		return err
	}
	out := tokenList{Tokens: []TokenInfo{}}
	for _, t := range list {
		out.Tokens = append(out.Tokens, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkName("token", req.Name); err != nil {
		return err
	}
	if len(req.Scopes) == 0 {
		return fault.New(fault.Invalid, "", "a token needs at least one scope, e.g. --scope resources:read")
	}
	for _, sc := range req.Scopes {
		if err := auth.CheckScope(sc); err != nil {
			return fault.Wrap(fault.Invalid, "invalid_scope", err, err.Error())
		}
	}
	var ttl time.Duration
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return fault.New(fault.Invalid, "", "expires_in %q must be a positive duration such as 24h", req.ExpiresIn)
		}
		ttl = d
	}

	var created *CreatedToken
	err := s.db.InTx(r.Context(), func(tx *store.Tx) error {
		var err error
		created, err = s.createTokenTx(r.Context(), tx, c.ws, c.p.actor(), req.Name, req.Scopes, ttl)
		return err
	})
	if errors.Is(err, store.ErrExists) {
		return fault.New(fault.Conflict, "", "a live token called %q exists; revoke it first or pick another name", req.Name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, created)
	return nil
}

// createTokenTx issues a token and audits it.
func (s *Server) createTokenTx(ctx context.Context, tx *store.Tx, ws *store.Workspace, actor, name string,
	scopes []string, ttl time.Duration) (*CreatedToken, error) {
	secret, hash := auth.NewToken()
	t := &store.Token{ID: auth.NewID("tok_"), WorkspaceID: ws.ID, Workspace: ws.Name, Name: name,
		Hash: hash, Scopes: slices.Compact(slices.Sorted(slices.Values(scopes))), CreatedBy: actor}
	if ttl > 0 {
		t.ExpiresAt = time.Now().Add(ttl).UTC().Truncate(time.Microsecond)
	}
	if err := tx.InsertToken(ctx, t); err != nil {
		return nil, err
	}
	detail := map[string]any{"id": t.ID, "scopes": t.Scopes}
	if ttl > 0 {
		detail["expires_at"] = t.ExpiresAt
	}
	err := s.audit.AppendTx(ctx, tx, audit.Record{Workspace: ws.Name, Actor: actor,
		Action: "token.create", Target: name, Detail: detail})
	if err != nil {
		return nil, err
	}
	return &CreatedToken{TokenInfo: tokenInfo(t), Secret: secret}, nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var t *store.Token
	err := s.db.InTx(r.Context(), func(tx *store.Tx) error {
		var err error
		if t, err = tx.RevokeToken(r.Context(), c.ws.ID, r.PathValue("token")); err != nil {
			return err
		}
		return s.audit.AppendTx(r.Context(), tx, audit.Record{Workspace: c.ws.Name,
			Actor: c.p.actor(), Action: "token.revoke", Target: t.Name,
			Detail: map[string]any{"id": t.ID}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "", "no live token %q in workspace %s", r.PathValue("token"), c.ws.Name)
	}
	if err != nil {
		return err
	}
	s.tokens.DeleteFunc(func(string) bool { return true })
	writeJSON(w, http.StatusOK, tokenInfo(t))
	return nil
}
