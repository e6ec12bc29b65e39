package server

import (
	"net/http"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/resource"
)

// resourceList is the body of a resource listing.
type resourceList struct {
	Resources []*resource.Info `json:"resources"`
}

// typeList is the body of a resource type listing.
type typeList struct {
	Types []*resource.Type `json:"types"`
}

func (s *Server) resourceEndpoints() []endpoint {
	const base = "/api/v1/workspaces/{ws}/resources"
	return []endpoint{
		{method: "GET", path: base, scope: auth.ResourcesRead, tag: "resources",
			summary: "List resources (metadata only, nothing decrypted)",
			query:   []param{{"prefix", "only paths starting with this"}},
			resp:    resourceList{}, h: s.listResources},
		{method: "GET", path: base + "/{path...}", scope: auth.ResourcesRead, tag: "resources",
			summary: "Get a resource with secret fields masked; reveal=true shows them " +
				"(needs secrets:reveal, audited)",
			query: []param{{"reveal", "true to show secret fields"}},
			resp:  resource.Info{}, h: s.getResource},
		{method: "PUT", path: base + "/{path...}", scope: auth.ResourcesWrite, tag: "resources",
			summary: "Create or replace a resource; the value is validated against its type",
			body:    resource.SetRequest{}, resp: resource.Info{}, h: s.putResource},
		{method: "DELETE", path: base + "/{path...}", scope: auth.ResourcesWrite, tag: "resources",
			summary: "Delete a resource", status: http.StatusNoContent, h: s.deleteResource},
		{method: "GET", path: "/api/v1/workspaces/{ws}/resource-types", scope: auth.ResourcesRead,
			tag: "resources", summary: "List built-in and custom resource types",
			resp: typeList{}, h: s.listTypes},
	}
}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request, c *call) error {
	list, err := s.resources.List(r.Context(), c.ws, r.URL.Query().Get("prefix"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resourceList{Resources: list})
	return nil
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request, c *call) error {
	path := r.PathValue("path")
	var info *resource.Info
	var err error
	switch r.URL.Query().Get("reveal") {
	case "", "false":
		info, err = s.resources.Get(r.Context(), c.ws, path)
	case "true":
		if !auth.Allows(c.p.scopes, auth.SecretsReveal) {
			return fault.New(fault.Forbidden, "missing_scope",
				"revealing secret values needs the scope %s, which this token (%s) lacks",
				auth.SecretsReveal, c.p.name)
		}
		info, err = s.resources.Reveal(r.Context(), c.ws, c.p.actor(), path)
	default:
		return fault.New(fault.Invalid, "", "reveal must be true or false")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) putResource(w http.ResponseWriter, r *http.Request, c *call) error {
	var req resource.SetRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	req.Path = r.PathValue("path")
	info, err := s.resources.Set(r.Context(), c.ws, c.p.actor(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.resources.Delete(r.Context(), c.ws, c.p.actor(), r.PathValue("path")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listTypes(w http.ResponseWriter, r *http.Request, c *call) error {
	types, err := s.resources.Types(r.Context(), c.ws.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, typeList{Types: types})
	return nil
}
