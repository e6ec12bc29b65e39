package agent

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/keyhole/keyhole/internal/tool"
)

// Public API base URLs, used when the resource has no baseURL.
const (
	AnthropicBaseURL = "https://api.anthropic.com/"
	OpenAIBaseURL    = "https://api.openai.com/v1/"
)

// endpoint is where a run's model calls go and the key they carry.
type endpoint struct {
	base    *url.URL
	key     string
	allowed []string
}

// endpointOf reads the base URL and API key of an LLM resource and checks
// that the key may be sent to that URL.
func endpointOf(provider string, cred *tool.Credential) (*endpoint, error) {
	raw := AnthropicBaseURL
	if provider == ProviderOpenAI {
		raw = OpenAIBaseURL
	}
	if v, ok := cred.Fields["baseURL"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("resource %s: field baseURL is not text", cred.Path)
		}
		raw = s
	}

	base, err := url.Parse(raw)
	if err != nil || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("resource %s: baseURL must be an absolute http or https URL "+
			"without query or fragment, such as https://llm.example.com/v1", cred.Path)
	}
	if err := tool.CheckURL(base, cred.AllowedHosts); err != nil {
		return nil, fmt.Errorf("resource %s: %w", cred.Path, err)
	}
	key, err := cred.Field("apiKey")
	if err != nil {
		return nil, err
	}
	return &endpoint{base: base, key: key, allowed: slices.Clone(cred.AllowedHosts)}, nil
}

// isPublicOpenAI reports whether the endpoint is OpenAI's own API rather
// than a compatible server.
func (ep *endpoint) isPublicOpenAI() bool { return ep.base.Host == "api.openai.com" }

// httpClient returns a client that sends over transport, checks every
// request's URL against the resource's allowed hosts and follows no
// redirect, so the key cannot be led to another host.
func (ep *endpoint) httpClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: &hostGuard{next: transport, allowed: ep.allowed},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// hostGuard refuses requests to hosts the credential may not reach.
type hostGuard struct {
	next    http.RoundTripper
	allowed []string
}

// RoundTrip sends req if its host is allowed.
func (g *hostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := tool.CheckURL(req.URL, g.allowed); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("agent: refusing to send the LLM key: %w", err)
	}
	return g.next.RoundTrip(req)
}
