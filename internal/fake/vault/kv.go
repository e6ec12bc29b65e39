package vault

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"
)

// kvMount is one KV version 2 secrets engine.
type kvMount struct {
	secrets map[string][]kvVersion // by path, oldest version first
}

type kvVersion struct {
	data    map[string]any
	created time.Time
}

func (h *Handler) mount(w http.ResponseWriter, path string, body map[string]any) {
	typ := str(body["type"])
	opts, _ := body["options"].(map[string]any)
	if typ != "kv-v2" && (typ != "kv" || str(opts["version"]) != "2") {
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("this server only mounts KV "+
			"version 2 (type kv with options version 2, or kv-v2), not %q", typ))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.kv[path]; ok {
		writeErrors(w, http.StatusBadRequest,
			fmt.Sprintf("path is already in use at %s/", path))
		return
	}
	h.kv[path] = &kvMount{secrets: map[string][]kvVersion{}}
	noContent(w)
}

// Put stores data as a new version of the secret at mount/path, as a
// write with the root token would. It is for test setup; the mount must
// exist.
func (h *Handler) Put(mount, path string, data map[string]any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.kv[mount]
	if !ok {
		return fmt.Errorf("no KV mount %q", mount)
	}
	m.secrets[path] = append(m.secrets[path], kvVersion{data: maps.Clone(data),
		created: h.now()})
	return nil
}

// secret serves {kv}/data/{path}.
func (h *Handler) secret(w http.ResponseWriter, r *http.Request, path string,
	body map[string]any) {
	h.mu.Lock()
	name, rest, ok := mountOf(h.kv, path)
	h.mu.Unlock()
	key, isData := strings.CutPrefix(rest, "data/")
	if !ok || !isData || key == "" {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q", path))
		return
	}

	tok := h.lookup(r)
	if tok == nil {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.readSecret(w, tok, path, name, key)
	case http.MethodPost, http.MethodPut:
		h.writeSecret(w, tok, path, name, key, body)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

func (h *Handler) readSecret(w http.ResponseWriter, tok *token, path, mount, key string) {
	if !h.allowed(tok, path, "read") {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	h.mu.Lock()
	versions := h.kv[mount].secrets[key]
	h.mu.Unlock()
	if len(versions) == 0 {
		writeErrors(w, http.StatusNotFound) // Vault: 404 with no messages
		return
	}
	v := versions[len(versions)-1]
	writeResponse(w, response{MountType: "kv", Data: map[string]any{
		"data": v.data,
		"metadata": map[string]any{
			"created_time":    v.created.UTC().Format(time.RFC3339Nano),
			"custom_metadata": nil,
			"deletion_time":   "",
			"destroyed":       false,
			"version":         len(versions),
		},
	}})
}

func (h *Handler) writeSecret(w http.ResponseWriter, tok *token, path, mount, key string,
	body map[string]any) {
	h.mu.Lock()
	exists := len(h.kv[mount].secrets[key]) > 0
	h.mu.Unlock()
	capability := "create"
	if exists {
		capability = "update"
	}
	if !h.allowed(tok, path, capability) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	data, ok := body["data"].(map[string]any)
	if !ok {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	if err := h.Put(mount, key, data); err != nil {
		writeErrors(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.mu.Lock()
	n := len(h.kv[mount].secrets[key])
	h.mu.Unlock()
	writeResponse(w, response{Data: map[string]any{
		"created_time": h.now().UTC().Format(time.RFC3339Nano), "custom_metadata": nil,
		"deletion_time": "", "destroyed": false, "version": n}})
}
