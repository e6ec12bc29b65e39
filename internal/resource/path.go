package resource

import (
	"strings"

	"github.com/keyhole/keyhole/internal/fault"
)

// MaxPathLen is the longest resource path accepted.
const MaxPathLen = 255

// CheckPath checks a resource path: slash-separated segments such as
// f/bot/stripe, each starting with a letter or digit and holding only
// letters, digits, '.', '_' and '-'. It refuses empty segments, "." and "..",
// leading or trailing slashes and control characters, with a message saying
// which rule the path breaks.
func CheckPath(p string) error {
	bad := func(why string) error {
		return fault.New(fault.Invalid, "invalid_path",
			"resource path %q is not valid: %s; use slash-separated names like f/bot/stripe",
			printable(p), why)
	}
	switch {
	case p == "":
		return bad("it is empty")
	case len(p) > MaxPathLen:
		return bad("it is longer than 255 bytes")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		return bad("it starts or ends with a slash")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return bad("it has an empty segment")
		}
		if seg == "." || seg == ".." {
			return bad("it has a . or .. segment")
		}
		for i, r := range seg {
			if r < 0x20 || r == 0x7f {
				return bad("it holds a control character")
			}
			if !isNameRune(r) || (i == 0 && !isAlnum(r)) {
				return bad("segment " + printable(seg) +
					" must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
			}
		}
	}
	return nil
}

// CheckPrefix checks a prefix given to list resources: empty, or a path or
// the start of one, possibly ending in a slash.
func CheckPrefix(p string) error {
	trimmed := strings.TrimSuffix(p, "/")
	if trimmed == "" && p == "" {
		return nil
	}
	return CheckPath(trimmed)
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func isNameRune(r rune) bool { return isAlnum(r) || r == '.' || r == '_' || r == '-' }

// printable quotes control characters so a message about a bad path cannot
// itself carry them to a terminal or a log.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			b.WriteString("\\x")
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
