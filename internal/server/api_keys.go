package server

import (
	"net/http"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
)

// RotateResult reports a data key rotation.
type RotateResult struct {
	Workspace string `json:"workspace"`
	Version   int    `json:"version"`
	Resealed  int    `json:"resealed"`
}

// RewrapResult reports a key-encryption-key rotation.
type RewrapResult struct {
	Rewrapped int `json:"rewrapped"`
}

func (s *Server) keyEndpoints() []endpoint {
	return []endpoint{
		{method: "POST", path: "/api/v1/workspaces/{ws}/keys/rotate", scope: auth.Admin, tag: "keys",
			summary: "Make a new data key version and re-encrypt every value under it",
			resp:    RotateResult{}, h: s.rotateKey},
		{method: "POST", path: "/api/v1/keys/rewrap", scope: auth.Admin, tag: "keys",
			summary: "Wrap every data key again under the current key service " +
				"(admin of the default workspace only)",
			resp: RewrapResult{}, h: s.rewrapKeys},
	}
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c *call) error {
	version, n, err := s.keys.Rotate(r.Context(), c.ws.ID)
	s.resources.Invalidate(c.ws.ID)
	outcome := audit.OK
	if err != nil {
		outcome = audit.Failed
	}
	aerr := s.audit.Append(r.Context(), audit.Record{Workspace: c.ws.Name, Actor: c.p.actor(),
		Action: "key.rotate", Target: "data_key", Outcome: outcome,
		Detail: map[string]any{"version": version, "resealed": n}})
	if err != nil {
		return err
	}
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, RotateResult{Workspace: c.ws.Name, Version: version, Resealed: n})
	return nil
}

func (s *Server) rewrapKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	if !s.isOperator(c.p) {
		return fault.New(fault.Forbidden, "", "only an admin token of the default workspace can rewrap data keys")
	}
	n, err := s.keys.Rewrap(r.Context())
	outcome := audit.OK
	if err != nil {
		outcome = audit.Failed
	}
	aerr := s.audit.Append(r.Context(), audit.Record{Workspace: c.p.workspace.Name,
		Actor: c.p.actor(), Action: "key.rewrap", Target: "kek", Outcome: outcome,
		Detail: map[string]any{"rewrapped": n}})
	if err != nil {
		return err
	}
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, RewrapResult{Rewrapped: n})
	return nil
}
