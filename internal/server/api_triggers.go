package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/trigger/spec"
)

// TriggerInfo is a trigger with its live state across the cluster.
type TriggerInfo struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Run         string     `json:"run"`
	Disabled    bool       `json:"disabled,omitempty"`
	State       string     `json:"state"`
	Holder      string     `json:"holder,omitempty"`
	LastEventAt *time.Time `json:"last_event_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Events      int64      `json:"events"`
	LastTick    *time.Time `json:"last_tick,omitempty"`
	NextTick    *time.Time `json:"next_tick,omitempty"`
	// Path is where a webhook trigger takes deliveries.
	Path string `json:"path,omitempty"`
}

type triggerList struct {
	Triggers []TriggerInfo `json:"triggers"`
}

func (s *Server) triggerEndpoints() []endpoint {
	return []endpoint{
		{method: "GET", path: "/api/v1/workspaces/{ws}/triggers", scope: auth.ConfigRead,
			tag: "triggers", summary: "List triggers with their state: connected, last event, last error",
			resp: triggerList{}, h: s.listTriggers},
	}
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request, c *call) error {
	ctx := r.Context()
	objs, err := s.db.Direct().Objects(ctx, c.ws.ID, spec.Kind)
	if err != nil {
		return err
	}
	states, err := s.db.Direct().TriggerStates(ctx, c.ws.ID)
	if err != nil {
		return err
	}
	out := triggerList{Triggers: []TriggerInfo{}}
	for _, obj := range objs {
		def, err := spec.Decode([]byte(obj.Spec))
		if err != nil {
			continue
		}
		out.Triggers = append(out.Triggers, triggerInfo(c.ws, def, states[def.Name]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func triggerInfo(ws *store.Workspace, def *spec.Trigger, st *store.TriggerState) TriggerInfo {
	info := TriggerInfo{Name: def.Name, Type: def.Type, Run: def.Run.String(),
		Disabled: def.Disabled, State: "idle"}
	if st != nil {
		info.LastError, info.Events = st.LastError, st.Events
		info.LastEventAt, info.LastTick = timePtr(st.LastEventAt), timePtr(st.LastTick)
		if st.LeaseUntil.After(time.Now()) {
			info.Holder = st.Holder
			info.State = st.State
		} else if st.State != "" {
			info.State = st.State
		}
	}
	switch def.Type {
	case spec.Webhook:
		info.State, info.Path = "listening", "/hooks/"+ws.Name+"/"+def.Name
	case spec.Schedule:
		info.State = "scheduled"
		if sched, err := def.Schedule(); err == nil {
			info.NextTick = timePtr(sched.Next(time.Now()))
		}
	}
	if def.Disabled {
		info.State = "disabled"
	}
	return info
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func decodeTrigger(doc []byte) (string, any, error) {
	d, err := spec.Decode(doc)
	if err != nil {
		return "", nil, err
	}
	return d.Name, d, nil
}

// validateTrigger checks that what a trigger runs exists and that the
// resources it reads exist, are of the right type and allow its hosts.
func validateTrigger(ctx context.Context, v *configView, s any) error {
	def := s.(*spec.Trigger)
	for _, ref := range triggerRefs(def) {
		if _, ok, err := v.Lookup(ctx, ref.kind, ref.name); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%s %q does not exist; apply it first", ref.kind, ref.name)
			}
			return fmt.Errorf("trigger %s: %w", def.Name, err)
		}
	}
	check := func(path, wantType string, urls ...string) error {
		r, err := v.tx.Resource(ctx, v.ws.ID, path)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("trigger %s: resource %s does not exist; create it with keyhole resource set",
				def.Name, path)
		}
		if err != nil {
			return err
		}
		if wantType != "" && r.Type != wantType {
			return fmt.Errorf("trigger %s: resource %s is of type %s, not %s",
				def.Name, path, r.Type, wantType)
		}
		for _, u := range urls {
			cred := &resource.Credential{Path: path, AllowedHosts: r.AllowedHosts}
			if err := checkCredentialURL(u, cred); err != nil {
				return fmt.Errorf("trigger %s: %w", def.Name, err)
			}
		}
		return nil
	}
	switch def.Type {
	case spec.Discord:
		gateway, api := def.DiscordURLs()
		return check(def.Resource, "discord", gateway, api)
	case spec.Webhook:
		return check(def.Auth.Resource, "")
	case spec.WebSocket:
		for _, h := range def.Headers {
			if h.Resource != "" {
				if err := check(h.Resource, "", def.URL); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// triggerRefs names what a trigger runs, so that it cannot be deleted from
// under the trigger.
func triggerRefs(s any) []objectRef {
	def := s.(*spec.Trigger)
	kind, name := def.Run.Kind()
	switch kind {
	case "script":
		return []objectRef{{jobs.KindScript, name}}
	case "tool":
		return []objectRef{{tool.KindTool, name}}
	}
	return []objectRef{{agent.Kind, name}}
}
