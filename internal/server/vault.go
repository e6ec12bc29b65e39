package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/vaultref"
)

// workspaceSettings is the settings document of a workspace.
type workspaceSettings struct {
	Vault *vaultref.Settings `json:"vault,omitempty"`
}

func (s *Server) settings(ctx context.Context, wsID int64) (*store.Workspace, workspaceSettings, error) {
	var out workspaceSettings
	ws, err := s.db.Direct().WorkspaceByID(ctx, wsID)
	if err != nil {
		return nil, out, err
	}
	if err := json.Unmarshal([]byte(ws.Settings), &out); err != nil {
		return nil, out, fmt.Errorf("workspace %s: stored settings: %w", ws.Name, err)
	}
	return ws, out, nil
}

// openVaultValue fetches a Vault-held resource for the broker, logging in as
// the caller the context names.
func (s *Server) openVaultValue(ctx context.Context, row *store.Resource, typ *resource.Type) (map[string]any, error) {
	ws, settings, err := s.settings(ctx, row.WorkspaceID)
	if err != nil {
		return nil, err
	}
	if settings.Vault == nil {
		return nil, fault.New(fault.Unavailable, "vault_not_configured",
			"resource %s is held in Vault, but workspace %s has no Vault settings "+
				"(keyhole workspace vault --addr …)", row.Path, ws.Name)
	}
	caller, ok := oidc.ClaimsFrom(ctx)
	if !ok {
		caller = oidc.JobClaims{Workspace: ws.Name, JobKind: "server", JobName: "keyhole"}
	}
	cred, err := s.vault.Credential(ctx, vaultref.Request{Settings: *settings.Vault, Caller: caller,
		Path: row.Path, Reference: row.Reference, Type: typ, AllowedHosts: row.AllowedHosts})
	if err != nil {
		return nil, err
	}
	return cred.Fields, nil
}

// checkVaultReference admits a Vault reference for a resource.
func (s *Server) checkVaultReference(ctx context.Context, ws *store.Workspace, ref string) error {
	if err := vaultref.CheckReference(ref); err != nil {
		return fault.Wrap(fault.Invalid, "invalid_reference", err, err.Error())
	}
	_, settings, err := s.settings(ctx, ws.ID)
	if err != nil {
		return err
	}
	if settings.Vault == nil {
		return fault.New(fault.Invalid, "vault_not_configured",
			"workspace %s has no Vault settings; set them first with keyhole workspace vault", ws.Name)
	}
	return nil
}

// VaultSettingsRequest sets a workspace's Vault settings.
type VaultSettingsRequest struct {
	vaultref.Settings
	// Check logs in to Vault with the settings before saving them.
	Check bool `json:"check,omitempty"`
}

// SigningKeyResult reports a signing key rotation.
type SigningKeyResult struct {
	Keys []oidc.KeyInfo `json:"keys"`
}

func (s *Server) vaultEndpoints() []endpoint {
	return []endpoint{
		{method: "GET", path: "/api/v1/workspaces/{ws}/settings/vault", scope: auth.Admin, tag: "vault",
			summary: "The workspace's Vault settings", resp: vaultref.Settings{}, h: s.getVaultSettings},
		{method: "PUT", path: "/api/v1/workspaces/{ws}/settings/vault", scope: auth.Admin, tag: "vault",
			summary: "Set the workspace's Vault settings; check=true logs in first",
			body:    VaultSettingsRequest{}, resp: vaultref.Settings{}, h: s.putVaultSettings},
		{method: "POST", path: "/api/v1/keys/signing/rotate", scope: auth.Admin, tag: "keys",
			summary: "Add a signing key for identity tokens; older keys stay published until their tokens expire " +
				"(admin of the default workspace only)",
			resp: SigningKeyResult{}, h: s.rotateSigningKey},
		{method: "POST", path: "/api/v1/workspaces/{ws}/resources/{path...}", scope: auth.ResourcesWrite,
			tag: "vault", summary: "Move a resource's value between keyhole and Vault: {\"migrate_to\": \"vault\"|\"local\"}",
			body: MigrateRequest{}, resp: resource.Info{}, h: s.migrateResource},
	}
}

func (s *Server) getVaultSettings(w http.ResponseWriter, r *http.Request, c *call) error {
	_, settings, err := s.settings(r.Context(), c.ws.ID)
	if err != nil {
		return err
	}
	if settings.Vault == nil {
		return fault.New(fault.NotFound, "", "workspace %s has no Vault settings", c.ws.Name)
	}
	writeJSON(w, http.StatusOK, settings.Vault)
	return nil
}

func (s *Server) putVaultSettings(w http.ResponseWriter, r *http.Request, c *call) error {
	var req VaultSettingsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	vs, err := req.Settings.Normalize()
	if err != nil {
		return fault.Wrap(fault.Invalid, "invalid_settings", err, err.Error())
	}
	if req.Check {
		caller := oidc.JobClaims{Workspace: c.ws.Name, JobKind: "admin", JobName: "settings-check"}
		if err := s.vault.CheckLogin(r.Context(), vs, caller); err != nil {
			return err
		}
	}
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		ws, err := tx.WorkspaceByID(r.Context(), c.ws.ID)
		if err != nil {
			return err
		}
		var all map[string]any
		if err := json.Unmarshal([]byte(ws.Settings), &all); err != nil || all == nil {
			all = map[string]any{}
		}
		all["vault"] = vs
		b, _ := json.Marshal(all)
		if err := tx.SetWorkspaceSettings(r.Context(), ws.ID, string(b)); err != nil {
			return err
		}
		return s.audit.AppendTx(r.Context(), tx, audit.Record{Workspace: c.ws.Name, Actor: c.p.actor(),
			Action: "workspace.vault", Target: c.ws.Name,
			Detail: map[string]any{"addr": vs.Addr, "role": vs.Role, "jwt_mount": vs.JWTMount}})
	})
	if err != nil {
		return err
	}
	s.vault.Purge()
	writeJSON(w, http.StatusOK, vs)
	return nil
}

func (s *Server) rotateSigningKey(w http.ResponseWriter, r *http.Request, c *call) error {
	if !s.isOperator(c.p) {
		return fault.New(fault.Forbidden, "", "only an admin token of the default workspace can rotate signing keys")
	}
	k, err := s.issuer.Rotate(r.Context())
	if err != nil {
		return err
	}
	s.audit.Enqueue(audit.Record{Workspace: c.p.workspace.Name, Actor: c.p.actor(),
		Action: "key.rotate_signing", Target: k.KID})
	keys, err := s.issuer.Keys(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SigningKeyResult{Keys: keys})
	return nil
}

// MigrateRequest moves a resource's value between backends.
type MigrateRequest struct {
	MigrateTo string `json:"migrate_to"` // vault or local
	// Reference is where to put the value in Vault; by default Prefix and
	// the resource's path.
	Reference string `json:"reference,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	// Role is a Vault role allowed to write, when the workspace's role only
	// reads.
	Role string `json:"role,omitempty"`
}

func (s *Server) migrateResource(w http.ResponseWriter, r *http.Request, c *call) error {
	var req MigrateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	path := r.PathValue("path")
	_, settings, err := s.settings(r.Context(), c.ws.ID)
	if err != nil {
		return err
	}
	if settings.Vault == nil {
		return fault.New(fault.Invalid, "vault_not_configured",
			"workspace %s has no Vault settings (keyhole workspace vault …)", c.ws.Name)
	}
	vs := *settings.Vault
	if req.Role != "" {
		vs.Role = req.Role
	}
	caller := oidc.JobClaims{Workspace: c.ws.Name, JobKind: "admin", JobName: "secrets-migrate"}
	var info *resource.Info
	switch req.MigrateTo {
	case "vault":
		info, err = s.migrateToVault(r.Context(), c, path, req, vs, caller)
	case "local":
		info, err = s.migrateToLocal(r.Context(), c, path, vs, caller)
	default:
		return fault.New(fault.Invalid, "", "migrate_to must be vault or local")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) migrateToVault(ctx context.Context, c *call, path string, req MigrateRequest,
	vs vaultref.Settings, caller oidc.JobClaims) (*resource.Info, error) {
	cur, err := s.resources.Reveal(ctx, c.ws, c.p.actor(), path)
	if errors.Is(err, nil) && cur.Reference != "" {
		return nil, fault.New(fault.Conflict, "", "resource %s is already held in Vault", path)
	}
	if err != nil {
		return nil, err
	}
	ref := req.Reference
	if ref == "" {
		if ref, err = vaultref.ReferenceFor(req.Prefix, path); err != nil {
			return nil, fault.Wrap(fault.Invalid, "invalid_reference", err, err.Error())
		}
	}
	if err := s.vault.Write(ctx, vs, caller, ref, cur.Value); err != nil {
		return nil, err
	}
	return s.resources.Set(ctx, c.ws, c.p.actor(), resource.SetRequest{Path: path, Type: cur.Type,
		Description: cur.Description, AllowedHosts: cur.AllowedHosts, Vault: ref})
}

func (s *Server) migrateToLocal(ctx context.Context, c *call, path string, vs vaultref.Settings,
	caller oidc.JobClaims) (*resource.Info, error) {
	cur, err := s.resources.Get(ctx, c.ws, path)
	if err != nil {
		return nil, err
	}
	if cur.Reference == "" {
		return nil, fault.New(fault.Conflict, "", "resource %s is already held by keyhole", path)
	}
	typ, err := s.resources.Type(ctx, c.ws.ID, cur.Type)
	if err != nil {
		return nil, err
	}
	fields, err := s.vault.Read(ctx, vs, caller, cur.Reference, typ)
	if err != nil {
		return nil, err
	}
	value, _ := json.Marshal(fields)
	clear(fields)
	return s.resources.Set(ctx, c.ws, c.p.actor(), resource.SetRequest{Path: path, Type: cur.Type,
		Description: cur.Description, AllowedHosts: cur.AllowedHosts, Value: value})
}

// jobIDToken signs a script job's identity token for audience. The
// workspace's Vault audience is refused: a job must not log in to Vault as
// keyhole does.
func (s *Server) jobIDToken(ctx context.Context, r *jobs.Run, audience string) (string, error) {
	_, settings, err := s.settings(ctx, r.Workspace.ID)
	if err != nil {
		return "", err
	}
	if settings.Vault != nil && settings.Vault.Audience == audience {
		return "", fmt.Errorf("audience %q is the one keyhole uses for Vault; "+
			"a script cannot have a token for it", audience)
	}
	sc, err := jobs.DecodeScript([]byte(r.Job.Spec))
	if err != nil {
		return "", err
	}
	ttl := min(time.Duration(sc.Timeout)+time.Minute, time.Hour)
	if sc.Timeout == 0 {
		ttl = jobs.DefaultTimeout + time.Minute
	}
	claims := oidc.JobClaims{Workspace: r.Workspace.Name, JobID: r.Job.ID, JobKind: r.Job.Kind,
		JobName: r.Job.Name, Trigger: r.Job.Trigger}
	tok, err := s.issuer.Issue(ctx, claims, audience, ttl)
	if err != nil {
		return "", err
	}
	s.audit.Enqueue(audit.Record{Workspace: r.Workspace.Name, Actor: "job:" + r.Job.ID,
		Action: "job.id_token", Target: r.Job.Name, Detail: map[string]any{"audience": audience,
			"ttl_s": int(ttl.Seconds())}})
	return tok, nil
}
