package tool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/itchyny/gojq"
)

// A Tool is a compiled tool definition: its schema, templates and output
// expression parsed once, ready to be called many times concurrently.
type Tool struct {
	def   *Definition
	input *inputSchema

	method      string
	base        *url.URL // scheme and host
	path        *textTemplate
	staticQuery string // the query written into the URL, if any
	query       []namedTemplate
	headers     []namedTemplate
	form        []namedTemplate
	body        *bodyNode

	auth     *Auth
	timeout  time.Duration
	maxBytes int64
	output   *gojq.Code
}

type namedTemplate struct {
	name string
	tmpl *textTemplate
}

// validName is what tool, toolset and route names look like; MCP clients
// accept these as tool names.
var validName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// Compile checks d and compiles it into a callable Tool. Every problem is
// reported, each naming the field it is in. Compile does not check hosts
// against resources; [Validate] does both.
func Compile(d *Definition) (*Tool, error) {
	t := &Tool{def: d}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	add(CheckName(d.Name))
	var err error
	t.input, err = compileSchema(d.Input)
	add(err)
	if d.HTTP == nil {
		add(errors.New("http: missing: this tool has no request to make"))
	} else {
		add(t.compileHTTP(d.HTTP))
	}
	if d.Output != "" {
		t.output, err = compileOutput(d.Output)
		add(err)
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("tool %s: %w", d.Name, errors.Join(errs...))
	}
	return t, nil
}

// compileOutput compiles a jq expression. gojq gives it no access to the
// environment, files or modules.
func compileOutput(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("output: bad jq expression %q: %v", src, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("output: bad jq expression %q: %v", src, err)
	}
	return code, nil
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

func (t *Tool) compileHTTP(h *HTTP) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	t.method = h.Method
	if t.method == "" {
		t.method = http.MethodGet
	}
	if !slices.Contains(methods, t.method) {
		add(fmt.Errorf("http.method %q: use one of %s", h.Method, strings.Join(methods, ", ")))
	}
	add(t.compileURL(h.URL))
	add(t.compileParts(h))
	add(t.compileLimits(h))
	if h.Auth != nil {
		add(checkAuth("http.auth", h.Auth))
		t.auth = h.Auth
	}
	return errors.Join(errs...)
}

// compileURL splits the URL into its fixed origin, its path template and
// any fixed query.
func (t *Tool) compileURL(raw string) error {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "https" && scheme != "http") {
		return fmt.Errorf("http.url %q: must be an absolute https URL", raw)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	origin := rest[:end]
	if strings.Contains(origin, "{{") {
		return fmt.Errorf("http.url: the host must be fixed text, not a template")
	}
	base, err := url.Parse(scheme + "://" + origin)
	if err != nil || base.Host == "" || base.User != nil {
		return fmt.Errorf("http.url %q: not a valid URL with a host", raw)
	}
	if err := checkCanonical(base.Hostname()); err != nil {
		return fmt.Errorf("http.url: %w", err)
	}
	t.base = base

	pathPart, query, _ := strings.Cut(rest[end:], "?")
	if strings.Contains(rest[end:], "#") {
		return errors.New("http.url: fragments are not sent to servers; remove the #")
	}
	if strings.Contains(query, "{{") {
		return errors.New("http.url: templates in the URL's query are not allowed; " +
			"put templated parameters under http.query")
	}
	if _, err := url.ParseQuery(query); err != nil {
		return fmt.Errorf("http.url: bad query: %v", err)
	}
	t.staticQuery = query
	t.path, err = compileTemplate("http.url", pathPart, escPath, false)
	return err
}

func (t *Tool) compileParts(h *HTTP) error {
	var errs []error
	var err error
	t.query, err = compileNamed("http.query", h.Query, true)
	errs = append(errs, err)
	t.form, err = compileNamed("http.form", h.Form, true)
	errs = append(errs, err)
	t.headers, err = compileNamed("http.headers", h.Headers, true)
	errs = append(errs, err)
	for _, nt := range t.headers {
		errs = append(errs, checkHeaderName("http.headers", nt.name))
	}
	if h.Body != nil {
		t.body, err = compileBody("http.body", h.Body)
		errs = append(errs, err)
	}

	if h.Body != nil && h.Form != nil {
		errs = append(errs, errors.New("http: body and form cannot both be set"))
	}
	if (h.Body != nil || h.Form != nil) && (t.method == "GET" || t.method == "HEAD") {
		errs = append(errs, fmt.Errorf("http: a %s request carries no body or form", t.method))
	}
	return errors.Join(errs...)
}

func (t *Tool) compileLimits(h *HTTP) error {
	t.timeout = time.Duration(h.Timeout)
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	if t.timeout < 0 || t.timeout > MaxTimeout {
		return fmt.Errorf("http.timeout %s: must be between 0 and %s", t.timeout, MaxTimeout)
	}
	t.maxBytes = h.MaxResponseBytes
	if t.maxBytes == 0 {
		t.maxBytes = DefaultMaxResponseBytes
	}
	if t.maxBytes < 0 || t.maxBytes > MaxMaxResponseBytes {
		return fmt.Errorf("http.max_response_bytes %d: must be between 1 and %d",
			t.maxBytes, MaxMaxResponseBytes)
	}
	return nil
}

// compileNamed compiles a map of templates in name order, so requests are
// built the same way every time.
func compileNamed(where string, m map[string]string, lint bool) ([]namedTemplate, error) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)

	var errs []error
	out := make([]namedTemplate, 0, len(m))
	for _, name := range names {
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: a name is empty", where))
			continue
		}
		tt, err := compileTemplate(where+"."+name, m[name], escText, lint)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, namedTemplate{name: name, tmpl: tt})
	}
	return out, errors.Join(errs...)
}

// reservedHeaders are set by the HTTP client or by keyhole itself.
var reservedHeaders = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade",
	"Te", "Trailer", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
}

func checkHeaderName(where, name string) error {
	if !isToken(name) {
		return fmt.Errorf("%s: %q is not a valid header name", where, name)
	}
	if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)) {
		return fmt.Errorf("%s: %s is set by keyhole and cannot be configured", where, name)
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// checkAuth checks that exactly one kind of auth is set and names fields.
func checkAuth(where string, a *Auth) error {
	var errs []error
	if a.Resource == "" {
		errs = append(errs, fmt.Errorf("%s.resource: missing", where))
	}
	kinds := 0
	for _, set := range []bool{a.Bearer != "", a.Basic != nil, a.Header != nil,
		a.Query != nil, a.OAuth2 != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		errs = append(errs, fmt.Errorf("%s: set exactly one of bearer, basic, header, "+
			"query and oauth2", where))
	}
	if a.Basic != nil && a.Basic.Username == "" {
		errs = append(errs, fmt.Errorf("%s.basic.username: missing", where))
	}
	if a.Header != nil {
		errs = append(errs, checkNamed(where+".header", a.Header))
		if a.Header.Name != "" && !isToken(a.Header.Name) {
			errs = append(errs, fmt.Errorf("%s.header.name %q: not a valid header name",
				where, a.Header.Name))
		}
	}
	if a.Query != nil {
		errs = append(errs, checkNamed(where+".query", a.Query))
	}
	return errors.Join(errs...)
}

func checkNamed(where string, f *NamedField) error {
	if f.Name == "" || f.Value == "" {
		return fmt.Errorf("%s: both name and value (a field of the resource) are needed", where)
	}
	return nil
}

// bodyNode is one compiled value of a JSON body.
type bodyNode struct {
	literal []byte        // encoded JSON of a value with no template
	tmpl    *textTemplate // a string leaf with actions
	fields  []bodyField   // an object, keys in order
	items   []*bodyNode   // an array
	kind    byte          // 'l' literal, 't' template, 'o' object, 'a' array
}

type bodyField struct {
	key  []byte // encoded JSON key with its colon
	node *bodyNode
}

func compileBody(where string, v any) (*bodyNode, error) {
	switch v := v.(type) {
	case map[string]any:
		return compileObject(where, v)
	case []any:
		n := &bodyNode{kind: 'a'}
		for i, e := range v {
			item, err := compileBody(fmt.Sprintf("%s[%d]", where, i), e)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, item)
		}
		return n, nil
	case string:
		tt, err := compileTemplate(where, v, escText, true)
		if err != nil {
			return nil, err
		}
		if tt.tmpl == nil {
			return literalNode(where, v)
		}
		if tt.single {
			tt, err = compileTemplate(where, v, escJSON, true)
		}
		return &bodyNode{kind: 't', tmpl: tt}, err
	case nil, bool, int, int64, uint64, float64, json.Number:
		return literalNode(where, v)
	}
	return nil, fmt.Errorf("%s: unsupported value of type %T (object keys must be text)", where, v)
}

func compileObject(where string, m map[string]any) (*bodyNode, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	n := &bodyNode{kind: 'o'}
	for _, k := range keys {
		child, err := compileBody(where+"."+k, m[k])
		if err != nil {
			return nil, err
		}
		key, _ := jsonText(k)
		n.fields = append(n.fields, bodyField{key: []byte(key + ":"), node: child})
	}
	return n, nil
}

func literalNode(where string, v any) (*bodyNode, error) {
	s, err := jsonText(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &bodyNode{kind: 'l', literal: []byte(s)}, nil
}

// render writes the node as JSON into b.
func (n *bodyNode) render(b *bytes.Buffer, args map[string]any) error {
	switch n.kind {
	case 'l':
		b.Write(n.literal)
	case 't':
		return n.renderTemplate(b, args)
	case 'o':
		b.WriteByte('{')
		for i, f := range n.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(f.key)
			if err := f.node.render(b, args); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for i, item := range n.items {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := item.render(b, args); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	}
	return nil
}

// renderTemplate writes a string leaf: a lone action writes its value as
// JSON; text around actions makes the leaf a JSON string.
func (n *bodyNode) renderTemplate(b *bytes.Buffer, args map[string]any) error {
	if n.tmpl.single {
		return n.tmpl.execute(b, args)
	}
	s, err := n.tmpl.render(args)
	if err != nil {
		return err
	}
	enc, _ := jsonText(s)
	b.WriteString(enc)
	return nil
}

// Name returns the tool's name.
func (t *Tool) Name() string { return t.def.Name }

// Description returns the tool's description.
func (t *Tool) Description() string { return t.def.Description }

// Definition returns the definition the tool was compiled from. Callers must
// not modify it.
func (t *Tool) Definition() *Definition { return t.def }

// InputSchema returns the input JSON Schema as JSON, as MCP's tools/list
// publishes it.
func (t *Tool) InputSchema() json.RawMessage { return t.input.raw }

// Method returns the HTTP method the tool uses.
func (t *Tool) Method() string { return t.method }

// Host returns the upstream host (with its port, if the URL names one).
func (t *Tool) Host() string { return t.base.Host }

// Resources returns the resource paths whose credentials the tool uses.
func (t *Tool) Resources() []string {
	if t.auth == nil {
		return nil
	}
	return []string{t.auth.Resource}
}

// SensitiveFields returns the JSON pointers of the input properties marked
// "x-sensitive": true; "*" stands for every item of an array.
func (t *Tool) SensitiveFields() []string {
	out := make([]string, len(t.input.sensitive))
	for i, p := range t.input.sensitive {
		out[i] = "/" + strings.Join(p, "/")
	}
	slices.Sort(out)
	return out
}

// MaskArguments returns args with the value of every x-sensitive property
// replaced by "[SENSITIVE]", for audit records and logs. Arguments that are
// not a JSON object are replaced whole.
func (t *Tool) MaskArguments(args json.RawMessage) json.RawMessage {
	var v map[string]any
	if err := json.Unmarshal(args, &v); err != nil || v == nil {
		return json.RawMessage(`"` + sensitiveMask + `"`)
	}
	out, err := json.Marshal(t.input.mask(v))
	if err != nil {
		return json.RawMessage(`"` + sensitiveMask + `"`)
	}
	return out
}
