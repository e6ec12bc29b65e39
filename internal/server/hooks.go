package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/trigger"
	"github.com/keyhole/keyhole/internal/trigger/spec"
	"github.com/keyhole/keyhole/internal/trigger/webhook"
)

// maxHookBody bounds a webhook delivery.
const maxHookBody = 1 << 20

// HookResponse is what a webhook delivery is answered with.
type HookResponse struct {
	JobID  string          `json:"job_id"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// serveHook answers POST /hooks/{ws}/{name}: it verifies the delivery
// against the trigger's secret, queues its job and, in sync mode, waits for
// the job's result.
func (s *Server) serveHook(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	start := time.Now()
	if err := s.hook(rec, r); err != nil {
		if errors.Is(err, trigger.ErrQueueFull) {
			rec.Header().Set("Retry-After", "5")
		}
		s.writeError(rec, r, err)
	}
	s.metrics.observeRequest("POST /hooks/{ws}/{name}", rec.status(), time.Since(start))
}

func (s *Server) hook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	wsName, name := r.PathValue("ws"), r.PathValue("name")
	notFound := fault.New(fault.NotFound, "", "no webhook trigger %q in workspace %q", name, wsName)
	ws, err := s.workspace(ctx, wsName)
	if err != nil {
		return notFound
	}
	def, err := s.webhookTrigger(ctx, ws, name)
	if err != nil {
		return notFound
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		return fault.New(fault.TooLarge, "", "the delivery is over %d bytes", maxHookBody)
	}
	if err := s.verifyHook(ctx, ws, def, r.Header, body); err != nil {
		return err
	}

	j, err := s.triggers.submit(ctx, ws, def, hookEvent(r, body, def))
	if err != nil {
		if errors.Is(err, trigger.ErrQueueFull) {
			return fault.Wrap(fault.TooMany, "", err, err.Error()+"; retry later")
		}
		return err
	}
	status := http.StatusAccepted
	if def.Mode == spec.ModeSync {
		if j, err = s.jobs.Wait(ctx, ws, j.ID, def.SyncTimeout()); err != nil {
			return err
		}
		if store.JobDone(j.State) {
			status = http.StatusOK
		}
	}
	resp := HookResponse{JobID: j.ID, State: j.State, Reason: j.Reason}
	if j.Result != "" {
		resp.Result = json.RawMessage(j.Result)
	}
	writeJSON(w, status, resp)
	return nil
}

// webhookTrigger returns the enabled webhook trigger called name.
func (s *Server) webhookTrigger(ctx context.Context, ws *store.Workspace, name string) (*spec.Trigger, error) {
	obj, err := s.db.Direct().Object(ctx, ws.ID, spec.Kind, name)
	if err != nil {
		return nil, err
	}
	def, err := spec.Decode([]byte(obj.Spec))
	if err != nil {
		return nil, err
	}
	if def.Type != spec.Webhook || def.Disabled {
		return nil, store.ErrNotFound
	}
	return def, nil
}

// verifyHook checks a delivery against the trigger's secret. A failure is
// recorded on the trigger and audited, and answered with 401.
func (s *Server) verifyHook(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	h http.Header, body []byte) error {
	secret, err := s.hookSecret(ctx, ws, def.Auth)
	if err != nil {
		s.logger.ErrorContext(ctx, "trigger: webhook secret", "trigger", def.Name, "error", err)
		return fault.New(fault.Unavailable, "", "webhook %s cannot verify deliveries now: "+
			"its secret is unavailable; see the server log", def.Name)
	}
	err = verifySignature(def.Auth, secret, h, body)
	if err == nil {
		return nil
	}

	msg := "the delivery is not authenticated: " + strings.TrimPrefix(err.Error(), "webhook: ")
	_ = s.db.InTx(ctx, func(tx *store.Tx) error {
		return tx.NoteTriggerEvent(ctx, ws.ID, def.Name, time.Now(), msg)
	})
	s.audit.Enqueue(audit.Record{Workspace: ws.Name, Actor: "webhook", Action: "trigger.webhook",
		Target: def.Name, Outcome: audit.Denied, Detail: map[string]any{"reason": msg}})
	return fault.New(fault.Unauthorized, "bad_signature", "%s", msg)
}

func verifySignature(a *spec.WebhookAuth, secret []byte, h http.Header, body []byte) error {
	switch a.Type {
	case spec.AuthHMAC:
		return webhook.HMAC{Secret: secret, Header: a.Header}.Verify(h, body)
	case spec.AuthStripe:
		return webhook.Stripe{Secret: secret, Tolerance: time.Duration(a.Tolerance)}.Verify(h, body)
	}
	name, want := a.Header, string(secret)
	if name == "" {
		name, want = "Authorization", "Bearer "+want
	}
	got := h.Get(name)
	if got == "" {
		return fmt.Errorf("%w: expected %s", webhook.ErrSignatureMissing, name)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%w: %s holds the wrong token", webhook.ErrSignatureMismatch, name)
	}
	return nil
}

// hookSecret opens the field of the resource that holds a webhook's secret.
func (s *Server) hookSecret(ctx context.Context, ws *store.Workspace, a *spec.WebhookAuth) ([]byte, error) {
	cred, err := s.resources.Open(ctx, ws.ID, a.Resource)
	if err != nil {
		return nil, err
	}
	field := a.Field
	if field == "" && len(cred.SecretFields) == 1 {
		field = cred.SecretFields[0]
	}
	v, ok := cred.Fields[field].(string)
	if !ok || v == "" {
		return nil, fmt.Errorf("resource %s has no text field %q to verify with", a.Resource, field)
	}
	return []byte(v), nil
}

// hookEvent is what a delivery gives a job. Headers that authenticate it
// are left out: the job needs what was sent, not the proof.
func hookEvent(r *http.Request, body []byte, def *spec.Trigger) map[string]any {
	skip := map[string]bool{"authorization": true, "cookie": true,
		strings.ToLower(webhook.StripeHeader): true, strings.ToLower(webhook.DefaultHMACHeader): true}
	if def.Auth.Header != "" {
		skip[strings.ToLower(def.Auth.Header)] = true
	}
	headers := map[string]any{}
	for name, values := range r.Header {
		if n := strings.ToLower(name); !skip[n] {
			headers[n] = strings.Join(values, ", ")
		}
	}
	query := map[string]any{}
	for name, values := range r.URL.Query() {
		query[name] = strings.Join(values, ", ")
	}
	event := map[string]any{"message": string(body), "headers": headers, "query": query}
	var v any
	if json.Unmarshal(body, &v) == nil {
		event["body"] = v
	}
	return event
}
