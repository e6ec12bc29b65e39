package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// Version is keyhole's version, shown in the OpenAPI document.
var Version = "0.1.0-dev"

// openapi serves the OpenAPI 3.1 document built from the endpoint table.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request, _ *call) error {
	writeJSON(w, http.StatusOK, s.openAPIDocument())
	return nil
}

var pathParam = regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)

func (s *Server) openAPIDocument() map[string]any {
	paths := map[string]map[string]any{}
	for _, e := range s.endpoints() {
		p := pathParam.ReplaceAllString(e.path, "{$1}")
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(e.method)] = operation(e)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "keyhole API",
			"version": Version,
			"description": "Manage keyhole's encrypted resources, tokens, configuration and " +
				"audit log. Errors are {\"error\": {\"code\", \"message\"}}.",
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"token": map[string]any{"type": "http", "scheme": "bearer",
					"description": "a keyhole token (kh_…); each operation names the scope it needs"},
			},
			"schemas": map[string]any{"Error": schemaOf(errorBody{})},
		},
		"paths": paths,
	}
}

func operation(e endpoint) map[string]any {
	op := map[string]any{"summary": e.summary, "tags": []string{e.tag},
		"operationId": operationID(e)}
	var params []map[string]any
	for _, m := range pathParam.FindAllStringSubmatch(e.path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
			"schema": map[string]any{"type": "string"}})
	}
	for _, q := range e.query {
		params = append(params, map[string]any{"name": q.name, "in": "query",
			"description": q.desc, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	switch e.scope {
	case public:
		op["security"] = []any{}
	case "":
		op["security"] = []any{map[string]any{"token": []string{}}}
	default:
		op["security"] = []any{map[string]any{"token": []string{e.scope}}}
		op["description"] = "Needs scope " + e.scope + "."
	}
	if e.body != nil {
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": schemaOf(e.body)}}}
	}

	status := e.status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if e.resp != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(e.resp)}}
	}
	errRef := map[string]any{"description": "error", "content": map[string]any{
		"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	op["responses"] = map[string]any{strconv.Itoa(status): ok, "default": errRef}
	return op
}

func operationID(e endpoint) string {
	id := strings.ToLower(e.method)
	for _, part := range strings.Split(e.path, "/") {
		part = strings.Trim(part, "{}.")
		if part == "" || part == "api" || part == "v1" {
			continue
		}
		id += "_" + strings.ReplaceAll(part, "-", "_")
	}
	return id
}

var schemaTypes = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[json.RawMessage](): {},
	reflect.TypeFor[time.Time]():       {Type: "string", Format: "date-time"},
	reflect.TypeFor[any]():             {},
}

// schemaOf returns the JSON Schema of v's type, or an open schema when the
// type cannot be described.
func schemaOf(v any) any {
	s, err := jsonschema.ForType(reflect.TypeOf(v), &jsonschema.ForOptions{
		IgnoreInvalidTypes: true, TypeSchemas: schemaTypes})
	if err != nil {
		return map[string]any{}
	}
	return s
}
