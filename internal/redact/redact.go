package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
)

// Mask is what every redacted secret is replaced with.
const Mask = "[REDACTED]"

// MinSecretLen is the shortest value a Redactor matches. Shorter values carry
// no secret worth hiding, and masking every occurrence of two characters
// would destroy the data around them.
const MinSecretLen = 4

// minEncodedLen is the shortest derived (encoded) form a Redactor matches; a
// shorter base64 fragment would match ordinary text far too often.
const minEncodedLen = 6

// maxInline is how many patterns next tracks without allocating.
const maxInline = 32

// A Redactor replaces secret values and their encoded forms with [Mask]. It
// is safe for concurrent use; the zero value and nil redact nothing.
type Redactor struct {
	patterns [][]byte // longest first, so ties go to the longest match
	first    [256]bool
	maxLen   int
}

// New returns a Redactor for the given secret values. Empty values and values
// shorter than [MinSecretLen] are ignored.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			continue
		}
		for _, f := range Forms(s) {
			if seen[f] {
				continue
			}
			seen[f] = true
			r.patterns = append(r.patterns, []byte(f))
		}
	}
	slices.SortStableFunc(r.patterns, func(a, b []byte) int { return len(b) - len(a) })
	for _, p := range r.patterns {
		r.first[p[0]] = true
		r.maxLen = max(r.maxLen, len(p))
	}
	return r
}

// Empty reports whether r matches nothing, so redaction can be skipped.
func (r *Redactor) Empty() bool { return r == nil || len(r.patterns) == 0 }

// Forms returns the texts a Redactor matches for one secret: the value
// itself, its URL query and path escapes, its JSON string escapes, and the
// base64 text it produces at each of the three byte alignments in standard
// and URL alphabets. Only the base64 characters that depend on the secret
// alone are kept, so the secret is found inside a longer encoded value
// (an HTTP basic credential, a JWT) too.
func Forms(secret string) []string {
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	forms = append(forms, jsonForms(secret)...)
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for offset := range 3 {
			if core := base64Core(enc, secret, offset); len(core) >= minEncodedLen {
				forms = append(forms, core)
			}
		}
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// jsonForms returns s as it appears inside a JSON string, with and without
// the escaping of <, > and & that Go's encoder applies by default.
func jsonForms(s string) []string {
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	html, _ := json.Marshal(s)

	unquote := func(b []byte) string {
		return string(bytes.TrimSuffix(bytes.TrimSpace(b), []byte(`"`))[1:])
	}
	return []string{unquote(plain.Bytes()), unquote(html)}
}

// base64Core encodes secret as if offset other bytes preceded it and returns
// only the characters made of the secret's own bits.
func base64Core(enc *base64.Encoding, secret string, offset int) string {
	buf := make([]byte, offset+len(secret))
	copy(buf[offset:], secret)
	text := enc.EncodeToString(buf)

	from := (8*offset + 5) / 6
	to := 8 * (offset + len(secret)) / 6
	if to <= from {
		return ""
	}
	return text[from:to]
}

// String returns s with every secret replaced by [Mask].
func (r *Redactor) String(s string) string {
	if r.Empty() || !r.contains([]byte(s)) {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// Bytes returns b with every secret replaced by [Mask]. When b holds no
// secret it is returned as it is, without a copy.
func (r *Redactor) Bytes(b []byte) []byte {
	if r.Empty() {
		return b
	}
	out, _ := r.replace(nil, b, true)
	if out == nil {
		return b
	}
	return out
}

// contains reports whether any pattern occurs in b.
func (r *Redactor) contains(b []byte) bool {
	for _, p := range r.patterns {
		if bytes.Contains(b, p) {
			return true
		}
	}
	return false
}

// replace appends b to dst with every complete match masked. Unless final, it
// stops before the first byte that could begin a match still to be completed
// by later data, and returns that offset as held; final processes all of b.
// When final is set and b holds no match, replace returns a nil slice.
func (r *Redactor) replace(dst, b []byte, final bool) (out []byte, held int) {
	var inline [maxInline]int
	var next []int
	if len(r.patterns) <= maxInline {
		next = inline[:len(r.patterns)]
	} else {
		next = make([]int, len(r.patterns))
	}
	for i := range next {
		next[i] = -2 // not searched yet
	}

	last := 0
	for {
		start, end := r.nextMatch(b, last, next)
		if start < 0 {
			break
		}
		if !final && r.couldGrow(b[start:], end-start) {
			return append(dst, b[last:start]...), start
		}
		dst = append(dst, b[last:start]...)
		dst = append(dst, Mask...)
		last = end
	}

	held = len(b)
	if !final {
		held = r.partialFrom(b, last)
	}
	if dst == nil && final && last == 0 {
		return nil, held
	}
	return append(dst, b[last:held]...), held
}

// nextMatch returns the leftmost, longest match in b starting at or after
// from. next caches, per pattern, where it next occurs (-1: nowhere, -2: not
// searched yet), so a buffer is scanned once per pattern overall.
func (r *Redactor) nextMatch(b []byte, from int, next []int) (start, end int) {
	start = -1
	for i, p := range r.patterns {
		if next[i] == -1 {
			continue
		}
		if next[i] < from {
			j := bytes.Index(b[from:], p)
			if j < 0 {
				next[i] = -1
				continue
			}
			next[i] = from + j
		}
		if start < 0 || next[i] < start {
			start, end = next[i], next[i]+len(p)
		}
	}
	return start, end
}

// couldGrow reports whether rest, which begins with a match of length n,
// could turn into a longer match once more data arrives.
func (r *Redactor) couldGrow(rest []byte, n int) bool {
	for _, p := range r.patterns {
		if len(p) <= n {
			return false // patterns are sorted longest first
		}
		if len(rest) < len(p) && bytes.HasPrefix(p, rest) {
			return true
		}
	}
	return false
}

// partialFrom returns the earliest offset at or after from where the rest of
// b is a proper prefix of some pattern, or len(b) when there is none.
func (r *Redactor) partialFrom(b []byte, from int) int {
	from = max(from, len(b)-r.maxLen+1)
	for j := from; j < len(b); j++ {
		if !r.first[b[j]] {
			continue
		}
		for _, p := range r.patterns {
			if len(p) > len(b)-j && bytes.HasPrefix(p, b[j:]) {
				return j
			}
		}
	}
	return len(b)
}

// Header returns a copy of h with every value redacted, or h itself when
// no value holds a secret.
func (r *Redactor) Header(h map[string][]string) map[string][]string {
	if r.Empty() {
		return h
	}
	var out map[string][]string
	for k, vs := range h {
		for i, v := range vs {
			red := r.String(v)
			if red == v {
				continue
			}
			if out == nil {
				out = cloneHeader(h)
			}
			out[k][i] = red
		}
	}
	if out == nil {
		return h
	}
	return out
}

func cloneHeader(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		out[k] = slices.Clone(vs)
	}
	return out
}

// Contains reports whether s holds any secret or encoded form of one. Tests
// use it to assert that output is clean.
func (r *Redactor) Contains(s string) bool {
	return !r.Empty() && r.contains([]byte(s))
}
