package tool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/redact"
)

// Errors a call can fail with, besides [ErrInvalidArguments],
// [ErrUnsafeValue], [ErrHostNotAllowed] and [ErrCredential]. A failed
// [Result] wraps one of them in its Err.
var (
	ErrUpstream         = errors.New("upstream error")
	ErrTimeout          = errors.New("timed out")
	ErrResponseTooLarge = errors.New("response too large")
	ErrOutput           = errors.New("output expression failed")
)

// maxErrorBody bounds how much of an upstream error body a result quotes.
const maxErrorBody = 8 << 10

// maxOutputs bounds how many values an output expression may emit.
const maxOutputs = 10000

// Result is the outcome of one tool call: what the caller sees and what the
// audit log records. It never holds a secret: Content and Err are redacted.
type Result struct {
	Tool      string        // tool name
	Method    string        // HTTP method
	Host      string        // upstream host
	Resources []string      // resource paths whose credentials the call used
	Status    int           // upstream HTTP status; 0 when no response came
	Started   time.Time     // when the call began
	Duration  time.Duration // how long the whole call took

	// Content is JSON for the caller: the shaped response on success, or
	// an object {"error": …, "status": …, "body": …} when IsError.
	Content json.RawMessage

	// IsError is set when the call failed; Err then says why and wraps one
	// of the package's Err… values.
	IsError bool
	Err     error
}

// ExecutorOptions tunes an [Executor]. A nil *ExecutorOptions means defaults.
type ExecutorOptions struct {
	// Transport sends requests; NewTransport(nil) when nil. Tests may
	// pass one that trusts a local TLS server.
	Transport http.RoundTripper

	// Logger receives debug records of calls; nil discards them.
	Logger *slog.Logger
}

// An Executor calls HTTP tools. It holds the connection pool and the OAuth2
// token cache, so share one across calls; it is safe for concurrent use.
type Executor struct {
	client    *http.Client
	auth      *Authenticator
	redactors *redact.Cache
	log       *slog.Logger
}

// NewExecutor returns an Executor.
func NewExecutor(opts *ExecutorOptions) *Executor {
	if opts == nil {
		opts = &ExecutorOptions{}
	}
	rt := opts.Transport
	if rt == nil {
		rt = NewTransport(nil)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Executor{
		client:    &http.Client{Transport: rt, CheckRedirect: sameOriginRedirects},
		auth:      NewAuthenticator(rt),
		redactors: redact.NewCache(0),
		log:       log,
	}
}

// Call validates args against t's input schema, makes t's request with the
// credential src hands out, and shapes and redacts the response. Call never
// returns nil: a failed call is a Result with IsError and Err set whose
// Content explains the failure to the caller.
func (e *Executor) Call(ctx context.Context, t *Tool, src CredentialSource,
	args json.RawMessage) *Result {
	res := &Result{
		Tool:      t.def.Name,
		Method:    t.method,
		Host:      t.base.Host,
		Resources: t.Resources(),
		Started:   time.Now(),
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()

	red, err := e.call(ctx, t, src, args, res)
	if err != nil {
		res.fail(red, err)
	}
	res.Duration = time.Since(res.Started)
	e.log.DebugContext(ctx, "tool: call", "tool", res.Tool, "host", res.Host,
		"status", res.Status, "duration", res.Duration, "error", res.Err)
	return res
}

// call does the work of Call. It returns the redactor for the secrets the
// call used (possibly empty), so a failure can be redacted too.
func (e *Executor) call(ctx context.Context, t *Tool, src CredentialSource,
	raw json.RawMessage, res *Result) (*redact.Redactor, error) {
	args, err := t.input.validate(raw)
	if err != nil {
		return nil, err
	}
	req, err := t.build(args)
	if err != nil {
		return nil, err
	}

	var cred *Credential
	if t.auth != nil {
		cred, err = credential(ctx, src, t.auth.Resource)
		if err != nil {
			return nil, err
		}
		if err := CheckURL(req.url, cred.AllowedHosts); err != nil {
			return nil, fmt.Errorf("resource %s: %w", cred.Path, err)
		}
	}

	resp, sent, err := e.send(ctx, t, req, cred)
	red := e.redactorFor(cred, sent)
	if err != nil {
		return red, requestError(ctx, t, err)
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	return red, t.shape(ctx, resp, red, res)
}

func credential(ctx context.Context, src CredentialSource, path string) (*Credential, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: no credentials are available for %s", ErrCredential, path)
	}
	cred, err := src.Credential(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%w: resource %s: %v", ErrCredential, path, err)
	}
	if cred == nil {
		return nil, fmt.Errorf("%w: resource %s not found", ErrCredential, path)
	}
	return cred, nil
}

func (e *Executor) redactorFor(cred *Credential, sent []string) *redact.Redactor {
	if cred == nil {
		return nil
	}
	return e.redactors.Get(append(cred.Secrets(), sent...)...)
}

// send makes the request with the credential applied. When an OAuth2
// upstream answers 401, the token is dropped and the request made once more
// with a fresh one.
func (e *Executor) send(ctx context.Context, t *Tool, b *builtRequest,
	cred *Credential) (*http.Response, []string, error) {
	var sent []string
	for attempt := 0; ; attempt++ {
		req, err := b.request(ctx, attempt == 0)
		if err != nil {
			return nil, sent, err
		}
		if t.auth != nil {
			s, err := e.auth.Apply(ctx, req, t.auth, cred)
			sent = append(sent, s...)
			if err != nil {
				return nil, sent, err
			}
		}
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, sent, err
		}
		retry := resp.StatusCode == http.StatusUnauthorized && attempt == 0 &&
			t.auth != nil && t.auth.OAuth2 != nil
		if !retry {
			return resp, sent, nil
		}
		drain(resp)
		e.auth.Invalidate(cred)
	}
}

// drain reads a little of a body we discard, so its connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// requestError classifies a failure to get a response. Its message names
// the host but not the URL, whose query may carry a credential.
func requestError(ctx context.Context, t *Tool, err error) error {
	switch {
	case errors.Is(err, ErrCredential), errors.Is(err, ErrHostNotAllowed):
		return err
	case ctx.Err() != nil || isTimeout(err):
		return fmt.Errorf("%w: no response from %s within %s", ErrTimeout, t.base.Host, t.timeout)
	case errors.Is(err, errBadAddress):
		return fmt.Errorf("%w: %s resolves only to local or reserved addresses",
			ErrHostNotAllowed, t.base.Hostname())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%w: request to %s failed: %v", ErrUpstream, t.base.Host, err)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// shape reads the response and turns it into the result's content: a 2xx
// body through the output expression, anything else into an error.
func (t *Tool) shape(ctx context.Context, resp *http.Response, red *redact.Redactor,
	res *Result) error {
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return fmt.Errorf("%w: %s sent a %s-encoded body, which cannot be checked for secrets",
			ErrUpstream, t.base.Host, enc)
	}
	body, err := readCapped(ctx, resp.Body, t.maxBytes)
	if err != nil {
		return fmt.Errorf("%w (from %s)", err, t.base.Host)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &UpstreamError{Status: resp.StatusCode, Body: red.Bytes(errorBody(body))}
	}
	out, err := t.applyOutput(ctx, body)
	if err != nil {
		return err
	}
	res.Content = red.Bytes(out)
	return nil
}

// readCapped reads at most limit bytes of body.
func readCapped(ctx context.Context, body io.Reader, limit int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(body, limit+1))
	switch {
	case ctx.Err() != nil || isTimeout(err):
		return nil, fmt.Errorf("%w: the response body did not arrive in time", ErrTimeout)
	case err != nil:
		return nil, fmt.Errorf("%w: the response body broke off after %d bytes: %v",
			ErrUpstream, n, errors.Unwrap(err))
	case n > limit:
		return nil, fmt.Errorf("%w: the response is larger than %d bytes", ErrResponseTooLarge,
			limit)
	}
	return b.Bytes(), nil
}

// applyOutput runs the output expression over a JSON body. Without an
// expression the body passes as it is: JSON stays JSON, and anything else
// becomes a JSON string.
func (t *Tool) applyOutput(ctx context.Context, body []byte) (json.RawMessage, error) {
	if t.output == nil {
		if json.Valid(body) {
			return body, nil
		}
		return json.Marshal(strings.ToValidUTF8(string(body), "\uFFFD"))
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: the response is not JSON", ErrOutput)
	}
	var outs []any
	iter := t.output.RunWithContext(ctx, v)
	for {
		o, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := o.(error); ok {
			return nil, fmt.Errorf("%w: %v", ErrOutput, err)
		}
		if outs = append(outs, o); len(outs) > maxOutputs {
			return nil, fmt.Errorf("%w: more than %d results", ErrOutput, maxOutputs)
		}
	}
	return marshalOutputs(outs)
}

// marshalOutputs writes one result as itself and several as an array.
func marshalOutputs(outs []any) (json.RawMessage, error) {
	var v any = outs
	switch len(outs) {
	case 0:
		v = nil
	case 1:
		v = outs[0]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UpstreamError is an upstream answer outside 2xx.
type UpstreamError struct {
	Status int
	Body   json.RawMessage // the error body: JSON as sent, or text as a JSON string
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream answered %d %s", e.Status, http.StatusText(e.Status))
}

// Unwrap lets errors.Is match [ErrUpstream].
func (e *UpstreamError) Unwrap() error { return ErrUpstream }

// errorBody keeps an error body as JSON when it is JSON, and otherwise as a
// JSON string of its first maxErrorBody bytes.
func errorBody(body []byte) json.RawMessage {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	if len(trimmed) <= maxErrorBody && json.Valid(trimmed) {
		var b bytes.Buffer
		if json.Compact(&b, trimmed) == nil {
			return b.Bytes()
		}
	}
	if len(trimmed) > maxErrorBody {
		trimmed = append(trimmed[:maxErrorBody:maxErrorBody], "…"...)
	}
	enc, _ := json.Marshal(strings.ToValidUTF8(string(trimmed), "\uFFFD"))
	return enc
}

// fail records err on the result with content for the caller, both
// redacted.
func (r *Result) fail(red *redact.Redactor, err error) {
	msg := red.String(err.Error())
	r.IsError = true
	r.Err = &redactedError{msg: msg, err: err}

	content := struct {
		Error    string            `json:"error"`
		Status   int               `json:"status,omitempty"`
		Body     json.RawMessage   `json:"body,omitempty"`
		Problems []ArgumentProblem `json:"problems,omitempty"`
	}{Error: msg, Status: r.Status}
	var ue *UpstreamError
	if errors.As(err, &ue) {
		content.Body = ue.Body
	}
	var ae *ArgumentError
	if errors.As(err, &ae) {
		content.Problems = ae.Problems
	}
	b, _ := json.Marshal(content)
	r.Content = red.Bytes(b)
}

// redactedError carries a redacted message while still matching the
// package's sentinel errors with errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is matches what the original error matched, without exposing it through
// Unwrap, where its unredacted text could be read.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// As finds typed errors in the original; those types hold no secret text
// of their own: an UpstreamError's body is redacted before it is stored.
func (e *redactedError) As(target any) bool { return errors.As(e.err, target) }
