package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// ApplyFile is one file given to apply: YAML documents separated by ---, or
// one JSON document.
type ApplyFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ApplyRequest asks to apply configuration, all or nothing.
type ApplyRequest struct {
	Files  []ApplyFile `json:"files"`
	DryRun bool        `json:"dry_run,omitempty"`
}

// Change is what apply did, or would do, to one object.
type Change struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"` // created, updated or unchanged
	Source string `json:"source"`
}

// ApplyResult lists the changes of an apply.
type ApplyResult struct {
	DryRun  bool     `json:"dry_run"`
	Changes []Change `json:"changes"`
}

// ConfigProblem is one reason an apply was refused.
type ConfigProblem struct {
	Source  string `json:"source"`
	Kind    string `json:"kind,omitempty"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
}

// ConfigObject is a stored configuration object.
type ConfigObject struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int64           `json:"version"`
	UpdatedAt time.Time       `json:"updated_at"`
	Spec      json.RawMessage `json:"spec"`
}

type configList struct {
	Objects []ConfigObject `json:"objects"`
}

func (s *Server) configEndpoints() []endpoint {
	const base = "/api/v1/workspaces/{ws}"
	return []endpoint{
		{method: "POST", path: base + "/apply", scope: auth.ConfigWrite, tag: "config",
			summary: "Apply YAML or JSON configuration documents, all or nothing; dry_run only reports",
			body:    ApplyRequest{}, resp: ApplyResult{}, h: s.apply},
		{method: "GET", path: base + "/config/{kind}", scope: auth.ConfigRead, tag: "config",
			summary: "List configuration objects of a kind (tool, toolset, route, …)",
			resp:    configList{}, h: s.listConfig},
		{method: "GET", path: base + "/config/{kind}/{name}", scope: auth.ConfigRead, tag: "config",
			summary: "Get one configuration object", resp: ConfigObject{}, h: s.getConfig},
		{method: "DELETE", path: base + "/config/{kind}/{name}", scope: auth.ConfigWrite, tag: "config",
			summary: "Delete a configuration object no other object refers to",
			status:  http.StatusNoContent, h: s.deleteConfig},
	}
}

// decoded is a document of an apply after decoding.
type decoded struct {
	doc  document
	kind *Kind
	name string
	spec any
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, c *call) error {
	var req ApplyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	objs, problems := s.decodeAll(req.Files)
	if len(problems) > 0 {
		return problemsError(problems)
	}

	result := ApplyResult{DryRun: req.DryRun, Changes: []Change{}}
	errDryRun := errors.New("dry run")
	err := s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if err := tx.Lock(r.Context(), "config:"+c.ws.Name); err != nil {
			return err
		}
		changes, err := s.applyTx(r.Context(), tx, c, objs, req.DryRun)
		if err != nil {
			return err
		}
		result.Changes = changes
		if req.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return err
	}
	s.broker.Invalidate(c.ws.ID)
	writeJSON(w, http.StatusOK, result)
	return nil
}

// decodeAll splits and decodes every document, collecting every problem.
func (s *Server) decodeAll(files []ApplyFile) ([]decoded, []ConfigProblem) {
	var objs []decoded
	var problems []ConfigProblem
	seen := map[objectRef]string{}
	for _, f := range files {
		docs := splitDocuments(f.Name, f.Content)
		if len(docs) == 0 {
			problems = append(problems, ConfigProblem{Source: f.Name, Message: "no documents"})
		}
		for _, doc := range docs {
			d, err := s.decodeOne(doc)
			if err != nil {
				problems = append(problems, ConfigProblem{Source: doc.source, Message: err.Error()})
				continue
			}
			ref := objectRef{d.kind.Name, d.name}
			if prev, dup := seen[ref]; dup {
				problems = append(problems, ConfigProblem{Source: doc.source, Kind: ref.kind,
					Name: ref.name, Message: "defined twice; the other is at " + prev})
				continue
			}
			seen[ref] = doc.source
			objs = append(objs, d)
		}
	}
	if len(files) == 0 {
		problems = append(problems, ConfigProblem{Message: "nothing to apply: give at least one file"})
	}
	return objs, problems
}

func (s *Server) decodeOne(doc document) (decoded, error) {
	kindName, err := peekKind(doc.text)
	if err != nil {
		return decoded{}, err
	}
	k, err := s.kind(kindName)
	if err != nil {
		return decoded{}, err
	}
	name, spec, err := k.Decode(doc.text)
	if err != nil {
		return decoded{}, err
	}
	if err := checkName(k.Name, name); err != nil {
		return decoded{}, err
	}
	return decoded{doc: doc, kind: k, name: name, spec: spec}, nil
}

// applyTx validates every object against the configuration the apply would
// leave, then writes the ones that change.
func (s *Server) applyTx(ctx context.Context, tx *store.Tx, c *call, objs []decoded, dryRun bool) ([]Change, error) {
	view := &configView{s: s, tx: tx, ws: c.ws, pending: map[objectRef]any{}}
	for _, o := range objs {
		view.pending[objectRef{o.kind.Name, o.name}] = o.spec
	}
	var problems []ConfigProblem
	for _, o := range objs {
		if o.kind.Validate == nil {
			continue
		}
		if err := o.kind.Validate(ctx, view, o.spec); err != nil {
			problems = append(problems, ConfigProblem{Source: o.doc.source, Kind: o.kind.Name,
				Name: o.name, Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		return nil, problemsError(problems)
	}

	changes := make([]Change, 0, len(objs))
	for _, o := range objs {
		ch, err := s.writeObject(ctx, tx, c, o, dryRun)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

func (s *Server) writeObject(ctx context.Context, tx *store.Tx, c *call, o decoded, dryRun bool) (Change, error) {
	ch := Change{Kind: o.kind.Name, Name: o.name, Source: o.doc.source, Action: "created"}
	spec, err := canonical(o.spec)
	if err != nil {
		return ch, err
	}
	old, err := tx.Object(ctx, c.ws.ID, o.kind.Name, o.name)
	switch {
	case err == nil && old.Spec == spec:
		ch.Action = "unchanged"
		return ch, nil
	case err == nil:
		ch.Action = "updated"
	case !errors.Is(err, store.ErrNotFound):
		return ch, err
	}
	if dryRun {
		return ch, nil
	}
	obj, err := tx.PutObject(ctx, c.ws.ID, o.kind.Name, o.name, spec)
	if err != nil {
		return ch, err
	}
	return ch, s.audit.AppendTx(ctx, tx, audit.Record{Workspace: c.ws.Name, Actor: c.p.actor(),
		Action: "config." + strings.TrimSuffix(ch.Action, "d"), Target: o.kind.Name + "/" + o.name,
		Detail: map[string]any{"version": obj.Version, "source": o.doc.source}})
}

// problemsError turns apply problems into one error listing them all.
func problemsError(problems []ConfigProblem) error {
	lines := make([]string, len(problems))
	for i, p := range problems {
		what := p.Source
		if p.Kind != "" {
			what += " (" + p.Kind + " " + p.Name + ")"
		}
		lines[i] = what + ": " + p.Message
	}
	e := fault.New(fault.Invalid, "invalid_config", "nothing was applied: %s", strings.Join(lines, "; "))
	e.Details = problems
	return e
}

func (s *Server) listConfig(w http.ResponseWriter, r *http.Request, c *call) error {
	k, err := s.kind(r.PathValue("kind"))
	if err != nil {
		return err
	}
	objs, err := s.db.Direct().Objects(r.Context(), c.ws.ID, k.Name)
	if err != nil {
		return err
	}
	out := configList{Objects: []ConfigObject{}}
	for _, o := range objs {
		out.Objects = append(out.Objects, configObject(o))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func configObject(o *store.Object) ConfigObject {
	return ConfigObject{Kind: o.Kind, Name: o.Name, Version: o.Version,
		UpdatedAt: o.UpdatedAt, Spec: json.RawMessage(o.Spec)}
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request, c *call) error {
	k, err := s.kind(r.PathValue("kind"))
	if err != nil {
		return err
	}
	o, err := s.db.Direct().Object(r.Context(), c.ws.ID, k.Name, r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "", "%s %q does not exist", k.Name, r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, configObject(o))
	return nil
}

func (s *Server) deleteConfig(w http.ResponseWriter, r *http.Request, c *call) error {
	k, err := s.kind(r.PathValue("kind"))
	if err != nil {
		return err
	}
	target := objectRef{k.Name, r.PathValue("name")}
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if err := tx.Lock(r.Context(), "config:"+c.ws.Name); err != nil {
			return err
		}
		if err := s.checkUnreferenced(r.Context(), tx, c.ws, target); err != nil {
			return err
		}
		err := tx.DeleteObject(r.Context(), c.ws.ID, target.kind, target.name)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "%s %q does not exist", target.kind, target.name)
		}
		if err != nil {
			return err
		}
		return s.audit.AppendTx(r.Context(), tx, audit.Record{Workspace: c.ws.Name,
			Actor: c.p.actor(), Action: "config.delete", Target: target.String()})
	})
	if err != nil {
		return err
	}
	s.broker.Invalidate(c.ws.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkUnreferenced refuses to delete an object another one needs.
func (s *Server) checkUnreferenced(ctx context.Context, tx *store.Tx, ws *store.Workspace, target objectRef) error {
	all, err := tx.Objects(ctx, ws.ID, "")
	if err != nil {
		return err
	}
	for _, o := range all {
		k := s.kinds[o.Kind]
		if k == nil || k.Refs == nil {
			continue
		}
		_, spec, err := k.Decode([]byte(o.Spec))
		if err != nil {
			continue
		}
		for _, ref := range k.Refs(spec) {
			if ref == target {
				return fault.New(fault.Conflict, "in_use",
					"%s is used by %s/%s; change or delete that first", target, o.Kind, o.Name)
			}
		}
	}
	return nil
}
