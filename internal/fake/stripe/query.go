package stripe

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// searchFields lists the fields each resource's search accepts.
var searchFields = map[string][]string{
	"customers": {"email", "name", "metadata"},
	"invoices":  {"customer", "customer_email", "status", "number", "metadata"},
}

func customerField(c Customer, name string) string {
	switch name {
	case "email":
		return c.Email
	case "name":
		return c.Name
	}
	if key, ok := strings.CutPrefix(name, "metadata."); ok {
		return c.Metadata[key]
	}
	return ""
}

func invoiceField(in Invoice, name string) string {
	switch name {
	case "customer":
		return in.Customer
	case "customer_email":
		return in.CustomerEmail
	case "status":
		return in.Status
	case "number":
		return in.Number
	}
	if key, ok := strings.CutPrefix(name, "metadata."); ok {
		return in.Metadata[key]
	}
	return ""
}

// query is a parsed search query: clauses joined all by AND or all by OR.
type query struct {
	clauses []clause
	or      bool
}

type clause struct {
	field string // "metadata.KEY" for metadata['KEY']
	value string
}

func (q *query) matches(field func(string) string) bool {
	for _, c := range q.clauses {
		hit := strings.EqualFold(field(c.field), c.value)
		if hit && q.or {
			return true
		}
		if !hit && !q.or {
			return false
		}
	}
	return !q.or
}

// parseQuery parses Stripe's search query language, limited to exact-match
// clauses, and checks each field against allowed.
func parseQuery(src string, allowed []string) (*query, error) {
	p := &parser{src: src}
	q := &query{}
	joiner := ""
	for {
		c, err := p.clause(allowed)
		if err != nil {
			return nil, fmt.Errorf("Invalid search query %q: %v.", src, err)
		}
		q.clauses = append(q.clauses, c)
		p.space()
		if p.done() {
			return q, nil
		}
		word := p.word()
		if word != "AND" && word != "OR" {
			return nil, fmt.Errorf("Invalid search query %q: expected AND or OR at "+
				"position %d.", src, p.pos)
		}
		if joiner != "" && word != joiner {
			return nil, fmt.Errorf("Invalid search query %q: AND and OR cannot be "+
				"combined in one query.", src)
		}
		joiner, q.or = word, word == "OR"
	}
}

type parser struct {
	src string
	pos int
}

func (p *parser) done() bool { return p.pos >= len(p.src) }

func (p *parser) space() {
	for !p.done() && p.src[p.pos] == ' ' {
		p.pos++
	}
}

// word reads letters, digits and underscores.
func (p *parser) word() string {
	p.space()
	start := p.pos
	for !p.done() && isWordByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func isWordByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func (p *parser) clause(allowed []string) (clause, error) {
	name := p.word()
	if name == "" {
		return clause{}, fmt.Errorf("expected a field name at position %d", p.pos)
	}
	if !slices.Contains(allowed, name) {
		return clause{}, fmt.Errorf("field %q is not a supported search field; use one "+
			"of %s", name, strings.Join(allowed, ", "))
	}
	if name == "metadata" {
		key, err := p.metadataKey()
		if err != nil {
			return clause{}, err
		}
		name = "metadata." + key
	}
	if p.done() || p.src[p.pos] != ':' {
		return clause{}, fmt.Errorf("expected ':' after %s", name)
	}
	p.pos++
	value, err := p.quoted()
	return clause{field: name, value: value}, err
}

func (p *parser) metadataKey() (string, error) {
	if !strings.HasPrefix(p.src[p.pos:], "[") {
		return "", errors.New("metadata needs a key, as in metadata['key']")
	}
	p.pos++
	key, err := p.quoted()
	if err != nil {
		return "", err
	}
	if p.done() || p.src[p.pos] != ']' {
		return "", errors.New("expected ']' after the metadata key")
	}
	p.pos++
	return key, nil
}

// quoted reads a string in single or double quotes, where a backslash
// escapes the next character.
func (p *parser) quoted() (string, error) {
	if p.done() || (p.src[p.pos] != '\'' && p.src[p.pos] != '"') {
		return "", fmt.Errorf("expected a quoted value at position %d", p.pos)
	}
	q := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for !p.done() {
		c := p.src[p.pos]
		p.pos++
		switch {
		case c == '\\' && !p.done():
			b.WriteByte(p.src[p.pos])
			p.pos++
		case c == q:
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated quoted value")
}
