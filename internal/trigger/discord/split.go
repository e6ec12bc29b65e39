package discord

import (
	"strings"
	"unicode"
	"unicode/utf16"
)

// MaxMessageLength is Discord's limit on a message's content.
const MaxMessageLength = 2000

// truncatedMark ends the last part of a text that did not fit.
const truncatedMark = "… (truncated)"

// Split cuts text into parts of at most MaxMessageLength characters, counted
// in UTF-16 code units as Discord counts them. Each cut falls after the last
// newline in the second half of the part, else after the last space there,
// else at the limit. At most maxParts parts are returned (no cap when
// maxParts <= 0); if the text needs more, the last part is cut short and
// ends with "… (truncated)". Blank text gives no parts.
func Split(text string, maxParts int) []string {
	rest := []rune(strings.TrimSpace(text))
	var parts []string
	for len(rest) > 0 {
		if maxParts > 0 && len(parts) == maxParts-1 && units(rest) > MaxMessageLength {
			return append(parts, truncate(rest))
		}
		cut := cutPoint(rest, MaxMessageLength)
		part := strings.TrimRightFunc(string(rest[:cut]), unicode.IsSpace)
		if part != "" {
			parts = append(parts, part)
		}
		rest = rest[cut:]
	}
	return parts
}

// cutPoint returns how many runes of r start the next part.
func cutPoint(r []rune, limit int) int {
	end := fit(r, limit)
	if end == len(r) {
		return end
	}
	for _, sep := range []rune{'\n', ' '} {
		for i := end - 1; i >= end/2; i-- {
			if r[i] == sep {
				return i + 1
			}
		}
	}
	return end
}

// fit returns the longest prefix of r, in runes, that is at most limit
// UTF-16 code units.
func fit(r []rune, limit int) int {
	n := 0
	for i, c := range r {
		n += utf16.RuneLen(c)
		if n > limit {
			return i
		}
	}
	return len(r)
}

func truncate(r []rune) string {
	room := MaxMessageLength - units([]rune(truncatedMark))
	head := strings.TrimRightFunc(string(r[:fit(r, room)]), unicode.IsSpace)
	return head + truncatedMark
}

func units(r []rune) int {
	n := 0
	for _, c := range r {
		n += utf16.RuneLen(c)
	}
	return n
}
