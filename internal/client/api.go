package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/vaultref"
)

// Health reports whether the server answers /healthz with 200.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "GET", "/healthz", nil, nil, nil)
}

// Whoami describes the client's token.
type Whoami struct {
	Workspace string   `json:"workspace"`
	Token     string   `json:"token"`
	TokenID   string   `json:"token_id"`
	Scopes    []string `json:"scopes"`
}

// Whoami returns what the server knows of the client's token.
func (c *Client) Whoami(ctx context.Context) (*Whoami, error) {
	var out Whoami
	return &out, c.do(ctx, "GET", "/api/v1/whoami", nil, nil, &out)
}

// Workspaces lists the workspaces the token can see.
func (c *Client) Workspaces(ctx context.Context) ([]server.WorkspaceInfo, error) {
	var out struct {
		Workspaces []server.WorkspaceInfo `json:"workspaces"`
	}
	return out.Workspaces, c.do(ctx, "GET", "/api/v1/workspaces", nil, nil, &out)
}

// CreateWorkspace creates a workspace.
func (c *Client) CreateWorkspace(ctx context.Context, name string) (*server.WorkspaceInfo, error) {
	var out server.WorkspaceInfo
	in := map[string]string{"name": name}
	return &out, c.do(ctx, "POST", "/api/v1/workspaces", nil, in, &out)
}

// Resources lists the resources under prefix.
func (c *Client) Resources(ctx context.Context, prefix string) ([]*resource.Info, error) {
	var out struct {
		Resources []*resource.Info `json:"resources"`
	}
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	return out.Resources, c.do(ctx, "GET", c.ws("/resources"), q, nil, &out)
}

// Resource returns a resource, its secret fields masked unless reveal.
func (c *Client) Resource(ctx context.Context, path string, reveal bool) (*resource.Info, error) {
	if err := resource.CheckPath(path); err != nil {
		return nil, err
	}
	var out resource.Info
	q := url.Values{}
	if reveal {
		q.Set("reveal", "true")
	}
	return &out, c.do(ctx, "GET", c.ws("/resources/", path), q, nil, &out)
}

// SetResource creates or replaces a resource.
func (c *Client) SetResource(ctx context.Context, path string, req resource.SetRequest) (*resource.Info, error) {
	if err := resource.CheckPath(path); err != nil {
		return nil, err
	}
	var out resource.Info
	return &out, c.do(ctx, "PUT", c.ws("/resources/", path), nil, req, &out)
}

// DeleteResource deletes a resource.
func (c *Client) DeleteResource(ctx context.Context, path string) error {
	if err := resource.CheckPath(path); err != nil {
		return err
	}
	return c.do(ctx, "DELETE", c.ws("/resources/", path), nil, nil, nil)
}

// ResourceTypes lists the workspace's resource types.
func (c *Client) ResourceTypes(ctx context.Context) ([]*resource.Type, error) {
	var out struct {
		Types []*resource.Type `json:"types"`
	}
	return out.Types, c.do(ctx, "GET", c.ws("/resource-types"), nil, nil, &out)
}

// Tokens lists the workspace's tokens.
func (c *Client) Tokens(ctx context.Context, withRevoked bool) ([]server.TokenInfo, error) {
	var out struct {
		Tokens []server.TokenInfo `json:"tokens"`
	}
	q := url.Values{}
	if withRevoked {
		q.Set("revoked", "true")
	}
	return out.Tokens, c.do(ctx, "GET", c.ws("/tokens"), q, nil, &out)
}

// CreateToken creates a token. Its secret is in the result, once.
func (c *Client) CreateToken(ctx context.Context, name string, scopes []string, expires time.Duration) (*server.CreatedToken, error) {
	in := map[string]any{"name": name, "scopes": scopes}
	if expires > 0 {
		in["expires_in"] = expires.String()
	}
	var out server.CreatedToken
	return &out, c.do(ctx, "POST", c.ws("/tokens"), nil, in, &out)
}

// RevokeToken revokes a token by id or name.
func (c *Client) RevokeToken(ctx context.Context, idOrName string) (*server.TokenInfo, error) {
	var out server.TokenInfo
	return &out, c.do(ctx, "DELETE", c.ws("/tokens/", idOrName), nil, nil, &out)
}

// AuditQuery selects audit entries.
type AuditQuery struct {
	Since  string // RFC 3339 time or duration back from now
	Action string
	After  int64
	Limit  int
}

// Audit lists audit entries.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]audit.Entry, error) {
	v := url.Values{}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out struct {
		Entries []audit.Entry `json:"entries"`
	}
	return out.Entries, c.do(ctx, "GET", c.ws("/audit"), v, nil, &out)
}

// VerifyAudit checks the workspace's audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (*audit.Verification, error) {
	var out audit.Verification
	return &out, c.do(ctx, "GET", c.ws("/audit/verify"), nil, nil, &out)
}

// RotateKey makes a new data key version for the workspace.
func (c *Client) RotateKey(ctx context.Context) (*server.RotateResult, error) {
	var out server.RotateResult
	return &out, c.do(ctx, "POST", c.ws("/keys/rotate"), nil, nil, &out)
}

// RewrapKeys wraps every data key under the server's current key service.
func (c *Client) RewrapKeys(ctx context.Context) (*server.RewrapResult, error) {
	var out server.RewrapResult
	return &out, c.do(ctx, "POST", "/api/v1/keys/rewrap", nil, nil, &out)
}

// Apply applies configuration files.
func (c *Client) Apply(ctx context.Context, files []server.ApplyFile, dryRun bool) (*server.ApplyResult, error) {
	var out server.ApplyResult
	in := server.ApplyRequest{Files: files, DryRun: dryRun}
	return &out, c.do(ctx, "POST", c.ws("/apply"), nil, in, &out)
}

// Config lists configuration objects of a kind.
func (c *Client) Config(ctx context.Context, kind string) ([]server.ConfigObject, error) {
	var out struct {
		Objects []server.ConfigObject `json:"objects"`
	}
	return out.Objects, c.do(ctx, "GET", c.ws("/config/", kind), nil, nil, &out)
}

// ConfigObject returns one configuration object.
func (c *Client) ConfigObject(ctx context.Context, kind, name string) (*server.ConfigObject, error) {
	var out server.ConfigObject
	return &out, c.do(ctx, "GET", c.ws("/config/", kind, "/", name), nil, nil, &out)
}

// DeleteConfig deletes a configuration object.
func (c *Client) DeleteConfig(ctx context.Context, kind, name string) error {
	return c.do(ctx, "DELETE", c.ws("/config/", kind, "/", name), nil, nil, nil)
}

// CallTool calls a tool with JSON arguments.
func (c *Client) CallTool(ctx context.Context, name string, args json.RawMessage) (*server.ToolCallResult, error) {
	var out server.ToolCallResult
	in := server.ToolCallRequest{Arguments: args}
	return &out, c.do(ctx, "POST", c.ws("/tools/", name, "/call"), nil, in, &out)
}

// Enqueue queues a job. With wait > 0 the server waits that long for it to
// finish before answering.
func (c *Client) Enqueue(ctx context.Context, req jobs.Request, wait time.Duration) (*server.JobInfo, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out server.JobInfo
	return &out, c.do(ctx, "POST", c.ws("/jobs"), q, req, &out)
}

// Job returns a job; with wait > 0 the server waits that long for it to
// finish.
func (c *Client) Job(ctx context.Context, id string, wait time.Duration) (*server.JobInfo, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out server.JobInfo
	return &out, c.do(ctx, "GET", c.ws("/jobs/", id), q, nil, &out)
}

// Jobs lists jobs, newest first.
func (c *Client) Jobs(ctx context.Context, state, name string, limit int) ([]server.JobInfo, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if name != "" {
		q.Set("name", name)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Jobs []server.JobInfo `json:"jobs"`
	}
	return out.Jobs, c.do(ctx, "GET", c.ws("/jobs"), q, nil, &out)
}

// CancelJob cancels a job.
func (c *Client) CancelJob(ctx context.Context, id string) (*server.JobInfo, error) {
	var out server.JobInfo
	return &out, c.do(ctx, "POST", c.ws("/jobs/", id, "/cancel"), nil, nil, &out)
}

// JobLogs returns a job's output after seq.
func (c *Client) JobLogs(ctx context.Context, id string, after int64) ([]server.LogChunk, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	var out struct {
		Logs []server.LogChunk `json:"logs"`
	}
	return out.Logs, c.do(ctx, "GET", c.ws("/jobs/", id, "/logs"), q, nil, &out)
}

// FollowJobLogs streams a job's output to emit until the job ends, and
// returns the finished job.
func (c *Client) FollowJobLogs(ctx context.Context, id string, after int64,
	emit func(server.LogChunk)) (*server.JobInfo, error) {
	q := url.Values{"follow": {"true"}}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	resp, err := c.stream(ctx, "GET", c.ws("/jobs/", id, "/logs"), q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var final *server.JobInfo
	err = readEvents(resp.Body, func(event string, data []byte) error {
		switch event {
		case "log":
			var l server.LogChunk
			if err := json.Unmarshal(data, &l); err != nil {
				return err
			}
			emit(l)
		case "end":
			final = &server.JobInfo{}
			return json.Unmarshal(data, final)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if final == nil {
		return nil, errors.New("the log stream ended before the job did")
	}
	return final, nil
}

// SetVaultSettings sets the workspace's Vault settings; check logs in first.
func (c *Client) SetVaultSettings(ctx context.Context, s vaultref.Settings, check bool) (*vaultref.Settings, error) {
	var out vaultref.Settings
	in := server.VaultSettingsRequest{Settings: s, Check: check}
	return &out, c.do(ctx, "PUT", c.ws("/settings/vault"), nil, in, &out)
}

// VaultSettings returns the workspace's Vault settings.
func (c *Client) VaultSettings(ctx context.Context) (*vaultref.Settings, error) {
	var out vaultref.Settings
	return &out, c.do(ctx, "GET", c.ws("/settings/vault"), nil, nil, &out)
}

// RotateSigningKey adds a signing key for identity tokens.
func (c *Client) RotateSigningKey(ctx context.Context) (*server.SigningKeyResult, error) {
	var out server.SigningKeyResult
	return &out, c.do(ctx, "POST", "/api/v1/keys/signing/rotate", nil, nil, &out)
}

// MigrateResource moves a resource's value to Vault or back into keyhole.
func (c *Client) MigrateResource(ctx context.Context, path string, req server.MigrateRequest) (*resource.Info, error) {
	if err := resource.CheckPath(path); err != nil {
		return nil, err
	}
	var out resource.Info
	return &out, c.do(ctx, "POST", c.ws("/resources/", path), nil, req, &out)
}

// Triggers lists a workspace's triggers with their live state.
func (c *Client) Triggers(ctx context.Context) ([]server.TriggerInfo, error) {
	var out struct {
		Triggers []server.TriggerInfo `json:"triggers"`
	}
	return out.Triggers, c.do(ctx, "GET", c.ws("/triggers"), nil, nil, &out)
}
