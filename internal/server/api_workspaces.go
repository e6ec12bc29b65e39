package server

import (
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// WorkspaceInfo describes a workspace.
type WorkspaceInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

type workspaceList struct {
	Workspaces []WorkspaceInfo `json:"workspaces"`
}

type workspaceRequest struct {
	Name string `json:"name"`
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// checkName checks the name of a workspace, token or configuration object.
func checkName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fault.New(fault.Invalid, "invalid_name",
			"%s name %q must be 1-63 lower case letters, digits, '-' or '_', starting with a letter or digit",
			what, name)
	}
	return nil
}

func (s *Server) workspaceEndpoints() []endpoint {
	return []endpoint{
		{method: "GET", path: "/api/v1/workspaces", tag: "workspaces",
			summary: "List workspaces: all of them for an admin of the default workspace, else the token's own",
			resp:    workspaceList{}, h: s.listWorkspaces},
		{method: "POST", path: "/api/v1/workspaces", scope: auth.Admin, tag: "workspaces",
			summary: "Create a workspace (admin of the default workspace only)",
			body:    workspaceRequest{}, resp: WorkspaceInfo{}, status: http.StatusCreated,
			h: s.createWorkspace},
	}
}

func (s *Server) isOperator(p *principal) bool {
	return p.workspace.Name == DefaultWorkspace && auth.Allows(p.scopes, auth.Admin)
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, c *call) error {
	out := workspaceList{Workspaces: []WorkspaceInfo{}}
	if !s.isOperator(c.p) {
		ws := c.p.workspace
		out.Workspaces = append(out.Workspaces, WorkspaceInfo{Name: ws.Name, CreatedAt: ws.CreatedAt})
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	all, err := s.db.Direct().Workspaces(r.Context())
	if err != nil {
		return err
	}
	for _, ws := range all {
		out.Workspaces = append(out.Workspaces, WorkspaceInfo{Name: ws.Name, CreatedAt: ws.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	if !s.isOperator(c.p) {
		return fault.New(fault.Forbidden, "", "only an admin token of the default workspace can create workspaces")
	}
	var req workspaceRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkName("workspace", req.Name); err != nil {
		return err
	}
	var ws *store.Workspace
	err := s.db.InTx(r.Context(), func(tx *store.Tx) error {
		var err error
		ws, err = s.createWorkspaceTx(r.Context(), tx, req.Name, c.p.actor())
		return err
	})
	if errors.Is(err, store.ErrExists) {
		return fault.New(fault.Conflict, "", "workspace %q already exists", req.Name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, WorkspaceInfo{Name: ws.Name, CreatedAt: ws.CreatedAt})
	return nil
}
