package tool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// builtRequest is a tool's request rendered from one call's arguments. It
// can be turned into an *http.Request more than once, for a retry.
type builtRequest struct {
	method      string
	url         *url.URL
	header      http.Header
	body        []byte
	contentType string
}

// build renders every template of t over args, escaping each value for
// where it lands.
func (t *Tool) build(args map[string]any) (*builtRequest, error) {
	u, err := t.buildURL(args)
	if err != nil {
		return nil, err
	}
	b := &builtRequest{method: t.method, url: u, header: make(http.Header, len(t.headers)+2)}
	b.header.Set("Accept", "application/json")
	for _, h := range t.headers {
		v, err := h.tmpl.render(args)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(v, "\r\n") || hasControl(strings.ReplaceAll(v, "\t", " ")) {
			return nil, fmt.Errorf("http.headers.%s: %w: the value holds a line break or "+
				"control character", h.name, ErrUnsafeValue)
		}
		b.header.Set(h.name, v)
	}
	if err := t.buildBody(b, args); err != nil {
		return nil, err
	}
	return b, nil
}

func (t *Tool) buildURL(args map[string]any) (*url.URL, error) {
	var path bytes.Buffer
	if err := t.path.execute(&path, args); err != nil {
		return nil, err
	}
	escaped := path.String()
	for _, seg := range strings.Split(escaped, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("http.url: %w: the path has a %q segment", ErrUnsafeValue, seg)
		}
	}
	unescaped, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, fmt.Errorf("http.url: the path %q is not valid: %v", escaped, err)
	}

	u := *t.base
	u.Path, u.RawPath = unescaped, escaped
	u.RawQuery, err = renderValues(t.query, args, t.staticQuery)
	return &u, err
}

// renderValues encodes named templates as URL values after any fixed
// query; a value that renders empty is left out.
func renderValues(named []namedTemplate, args map[string]any, fixed string) (string, error) {
	if len(named) == 0 {
		return fixed, nil
	}
	values := make(url.Values, len(named))
	for _, n := range named {
		v, err := n.tmpl.render(args)
		if err != nil {
			return "", err
		}
		if v != "" {
			values.Set(n.name, v)
		}
	}
	enc := values.Encode()
	if fixed != "" && enc != "" {
		return fixed + "&" + enc, nil
	}
	return fixed + enc, nil
}

func (t *Tool) buildBody(b *builtRequest, args map[string]any) error {
	switch {
	case t.body != nil:
		var buf bytes.Buffer
		if err := t.body.render(&buf, args); err != nil {
			return err
		}
		b.body, b.contentType = buf.Bytes(), "application/json"
	case t.def.HTTP.Form != nil:
		enc, err := renderValues(t.form, args, "")
		if err != nil {
			return err
		}
		b.body, b.contentType = []byte(enc), "application/x-www-form-urlencoded"
	}
	return nil
}

// request returns a new *http.Request for the rendered request. The first
// request may own the rendered headers; later ones get a copy.
func (b *builtRequest) request(ctx context.Context, first bool) (*http.Request, error) {
	var body io.Reader
	if b.body != nil {
		body = bytes.NewReader(b.body)
	}
	req, err := http.NewRequestWithContext(ctx, b.method, "", body)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	u := *b.url
	req.URL, req.Host = &u, u.Host
	req.Header = b.header
	if !first {
		req.Header = b.header.Clone()
	}
	if b.contentType != "" {
		req.Header.Set("Content-Type", b.contentType)
	}
	return req, nil
}
