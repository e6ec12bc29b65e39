package tool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"text/template/parse"
)

// maxRenderedBytes bounds what one template may produce, so a template that
// loops over a large argument cannot exhaust memory.
const maxRenderedBytes = 256 << 10

// ErrUnsafeValue is wrapped by errors that refuse an argument value because
// of where it would land: a line break in a header, "../" as a path
// segment, an empty path segment.
var ErrUnsafeValue = errors.New("unsafe argument value")

// escaper names the function appended to every output action of a
// template, so each value is escaped for where it lands whatever the
// template author wrote.
type escaper string

const (
	escText escaper = "keyhole_text" // plain text: query, form, header, string leaf
	escPath escaper = "keyhole_path" // one URL path segment
	escJSON escaper = "keyhole_json" // a JSON value: a body leaf that is one action
)

// funcs are the functions templates may call.
var funcs = template.FuncMap{
	"squote":  func(v any) string { return quoteEscape(text(v), '\'') },
	"dquote":  func(v any) string { return quoteEscape(text(v), '"') },
	"json":    jsonText,
	"lower":   func(v any) string { return strings.ToLower(text(v)) },
	"upper":   func(v any) string { return strings.ToUpper(text(v)) },
	"trim":    func(v any) string { return strings.TrimSpace(text(v)) },
	"default": defaultValue,

	string(escText): text,
	string(escPath): pathSegment,
	string(escJSON): jsonText,
}

// text is how a value prints: nothing for a missing one.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case map[string]any, []any:
		s, _ := jsonText(v)
		return s
	}
	return fmt.Sprint(v)
}

// quoteEscape escapes s for use between two q quotes in a search language
// that escapes with a backslash, such as Stripe's.
func quoteEscape(s string, q byte) string {
	if strings.IndexByte(s, q) < 0 && strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == q || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func jsonText(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("json: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func defaultValue(def, v any) any {
	if v == nil || v == "" {
		return def
	}
	return v
}

// pathSegment escapes v as one URL path segment, refusing values that would
// change which resource the path names.
func pathSegment(v any) (string, error) {
	s := text(v)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: a value in the URL path is empty", ErrUnsafeValue)
	case s == "." || s == "..":
		return "", fmt.Errorf("%w: %q is not allowed as a URL path segment", ErrUnsafeValue, s)
	case hasControl(s):
		return "", fmt.Errorf("%w: a value in the URL path holds a control character",
			ErrUnsafeValue)
	}
	return url.PathEscape(s), nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// textTemplate is one compiled template field of a tool.
type textTemplate struct {
	where    string             // field name for messages, e.g. "http.query.query"
	constant string             // the text, when it holds no action
	tmpl     *template.Template // nil when constant
	single   bool               // the template is one action and nothing else
}

// compileTemplate parses src, appends esc to every output action and, when
// lint is set, refuses an action quoted in the text around it but not piped
// to the matching quote escaper.
func compileTemplate(where, src string, esc escaper, lint bool) (*textTemplate, error) {
	t, err := template.New(where).Option("missingkey=zero").Funcs(funcs).Parse(src)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: ")
		return nil, fmt.Errorf("%s: bad template: %s", where, msg)
	}
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("%s: define, block and template are not supported", where)
	}
	tt := &textTemplate{where: where}
	if t.Tree == nil || !hasAction(t.Tree.Root) {
		tt.constant = textOf(t.Tree)
		return tt, nil
	}

	_, err = walkActions(t.Tree.Root, 0, func(quote byte, a *parse.ActionNode) error {
		if lint {
			if err := lintQuote(quote, a); err != nil {
				return err
			}
		}
		a.Pipe.Cmds = append(a.Pipe.Cmds, &parse.CommandNode{
			NodeType: parse.NodeCommand,
			Pos:      a.Pos,
			Args:     []parse.Node{parse.NewIdentifier(string(esc)).SetPos(a.Pos)},
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	tt.tmpl = t
	nodes := t.Tree.Root.Nodes
	_, tt.single = nodes[0].(*parse.ActionNode)
	tt.single = tt.single && len(nodes) == 1
	return tt, nil
}

func textOf(tree *parse.Tree) string {
	if tree == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range tree.Root.Nodes {
		if t, ok := n.(*parse.TextNode); ok {
			b.Write(t.Text)
		}
	}
	return b.String()
}

func hasAction(list *parse.ListNode) bool {
	for _, n := range list.Nodes {
		if _, ok := n.(*parse.TextNode); !ok {
			return true
		}
	}
	return false
}

// actionVisitor is called with an output action and the quote it sits in
// (0 when none).
type actionVisitor func(quote byte, a *parse.ActionNode) error

// walkActions calls visit for every action that writes output, tracking
// whether the text before it left a quote open. It returns the quote state
// at the end of the list; a branch is assumed to close what it opens.
func walkActions(list *parse.ListNode, quote byte, visit actionVisitor) (byte, error) {
	if list == nil {
		return quote, nil
	}
	for _, n := range list.Nodes {
		var err error
		switch n := n.(type) {
		case *parse.TextNode:
			quote = scanQuotes(quote, n.Text)
		case *parse.ActionNode:
			if len(n.Pipe.Decl) == 0 {
				err = visit(quote, n)
			}
		case *parse.IfNode:
			err = walkBranch(&n.BranchNode, quote, visit)
		case *parse.RangeNode:
			err = walkBranch(&n.BranchNode, quote, visit)
		case *parse.WithNode:
			err = walkBranch(&n.BranchNode, quote, visit)
		case *parse.TemplateNode:
			err = errors.New("template calls are not supported")
		}
		if err != nil {
			return quote, err
		}
	}
	return quote, nil
}

func walkBranch(b *parse.BranchNode, quote byte, visit actionVisitor) error {
	if _, err := walkActions(b.List, quote, visit); err != nil {
		return err
	}
	_, err := walkActions(b.ElseList, quote, visit)
	return err
}

// scanQuotes returns the quote open after text, given the one open before
// it; a backslash escapes the next character inside quotes.
func scanQuotes(quote byte, text []byte) byte {
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote != 0 && c == '\\':
			i++
		case c == quote:
			quote = 0
		}
	}
	return quote
}

// lintQuote refuses an action inside a quoted string that is not piped to
// the escaper for that quote: the classic way to break out of a search
// string.
func lintQuote(quote byte, a *parse.ActionNode) error {
	want := map[byte]string{'\'': "squote", '"': "dquote"}[quote]
	if want == "" {
		return nil
	}
	cmds := a.Pipe.Cmds
	if id, ok := cmds[len(cmds)-1].Args[0].(*parse.IdentifierNode); ok && id.Ident == want {
		return nil
	}
	return fmt.Errorf("the action %s sits inside quotes: end it with | %s, as in {{ %s | %s }}",
		a, want, a.Pipe, want)
}

// execute renders the template over args into b.
func (t *textTemplate) execute(b *bytes.Buffer, args map[string]any) error {
	if t.tmpl == nil {
		b.WriteString(t.constant)
		return nil
	}
	start := b.Len()
	err := t.tmpl.Execute(&limitedBuffer{b: b, limit: start + maxRenderedBytes}, args)
	if err == nil {
		return nil
	}
	b.Truncate(start)
	if errors.Is(err, ErrUnsafeValue) {
		return fmt.Errorf("%s: %w", t.where, firstUnsafe(err))
	}
	msg := strings.TrimPrefix(err.Error(), "template: ")
	return fmt.Errorf("%s: template failed: %s", t.where, msg)
}

// render returns the template's text over args.
func (t *textTemplate) render(args map[string]any) (string, error) {
	if t.tmpl == nil {
		return t.constant, nil
	}
	var b bytes.Buffer
	if err := t.execute(&b, args); err != nil {
		return "", err
	}
	return b.String(), nil
}

// firstUnsafe digs the ErrUnsafeValue error out of template's wrapping, so
// the message is ours and not the template engine's.
func firstUnsafe(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == ErrUnsafeValue {
			return e
		}
	}
	return err
}

var errTooLong = fmt.Errorf("%w: the rendered value is longer than %d bytes", ErrUnsafeValue,
	maxRenderedBytes)

// limitedBuffer fails writes that would grow b past limit.
type limitedBuffer struct {
	b     *bytes.Buffer
	limit int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.limit {
		return 0, errTooLong
	}
	return l.b.Write(p)
}
