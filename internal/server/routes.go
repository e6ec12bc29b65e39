package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// endpoints is the API, in the order the OpenAPI document lists it.
func (s *Server) endpoints() []endpoint {
	var out []endpoint
	for _, group := range [][]endpoint{
		s.metaEndpoints(), s.workspaceEndpoints(), s.resourceEndpoints(),
		s.tokenEndpoints(), s.auditEndpoints(), s.keyEndpoints(), s.configEndpoints(),
		s.toolEndpoints(), s.jobEndpoints(), s.triggerEndpoints(), s.vaultEndpoints(),
	} {
		out = append(out, group...)
	}
	return out
}

// routes builds the server's handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, e := range s.endpoints() {
		mux.Handle(e.method+" "+e.path, s.serve(e))
	}
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("/mcp/{ws}/{toolset}", s.serveMCP)
	mux.HandleFunc("POST /hooks/{ws}/{name}", s.serveHook)
	mux.Handle("GET /.well-known/", s.issuer.Handler())
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: apiError{Code: "not_found",
			Message: "no API route " + r.Method + " " + r.URL.Path + "; see /api/v1/openapi.json"}})
	})
	mux.HandleFunc("/hooks/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: apiError{Code: "not_found",
			Message: "webhook deliveries are POST /hooks/WORKSPACE/NAME, not " +
				r.Method + " " + r.URL.Path}})
	})
	return recoverPanics(s, refuseUncleanPaths(mux))
}

// refuseUncleanPaths answers API and webhook paths with empty, "." or ".."
// segments with an error. net/http would redirect them to a cleaned path,
// which could turn a write to one resource path into a write to another.
func refuseUncleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if jsonPath(p) && (strings.Contains(p, "//") ||
			strings.Contains(p+"/", "/./") || strings.Contains(p+"/", "/../")) {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: apiError{Code: "invalid_path",
				Message: "the URL path " + strconv.Quote(p) + " has an empty, . or .. segment"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in a handler into a 500 with a JSON body and a
// log line, instead of a dropped connection and a stack trace to the client.
func recoverPanics(s *Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "server: handler panicked",
					"method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: apiError{
					Code: "internal", Message: "internal error; the server log has the details"}})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// healthStatus is the body of /healthz.
type healthStatus struct {
	Status string    `json:"status"`
	Time   time.Time `json:"time"`
}

// whoami describes the caller's token.
type whoami struct {
	Workspace string   `json:"workspace"`
	Token     string   `json:"token"`
	TokenID   string   `json:"token_id"`
	Scopes    []string `json:"scopes"`
}

func (s *Server) metaEndpoints() []endpoint {
	return []endpoint{
		{method: "GET", path: "/healthz", scope: public, tag: "meta",
			summary: "Health: 200 once the server is ready, 503 while starting or stopping",
			resp:    healthStatus{}, h: s.healthz},
		{method: "GET", path: "/api/v1/openapi.json", scope: public, tag: "meta",
			summary: "This OpenAPI document", h: s.openapi},
		{method: "GET", path: "/api/v1/whoami", tag: "meta",
			summary: "The calling token's workspace, name and scopes", resp: whoami{},
			h: func(w http.ResponseWriter, r *http.Request, c *call) error {
				writeJSON(w, http.StatusOK, whoami{Workspace: c.p.workspace.Name,
					Token: c.p.name, TokenID: c.p.tokenID, Scopes: c.p.scopes})
				return nil
			}},
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ *call) error {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthStatus{Status: "starting", Time: time.Now().UTC()})
		return nil
	}
	writeJSON(w, http.StatusOK, healthStatus{Status: "ok", Time: time.Now().UTC()})
	return nil
}

// jsonPath reports whether p is under a prefix whose errors are JSON.
func jsonPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/hooks/")
}
