package discord_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/trigger/discord"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	line := strings.Repeat("a", 999) + "\n" // 1000 characters
	tests := []struct {
		name     string
		text     string
		maxParts int
		want     []string
	}{
		{"blank", "  \n ", 5, nil},
		{"short", "hello", 5, []string{"hello"}},
		{"exactly the limit", strings.Repeat("x", 2000), 5, []string{strings.Repeat("x", 2000)}},
		{"at a newline", strings.Repeat(line, 3), 5,
			[]string{strings.TrimSpace(strings.Repeat(line, 2)), strings.TrimSpace(line)}},
		{"at a space", strings.Repeat("word ", 500), 5,
			[]string{strings.TrimSpace(strings.Repeat("word ", 400)),
				strings.TrimSpace(strings.Repeat("word ", 100))}},
		{"mid-word when no break", strings.Repeat("y", 2500), 5,
			[]string{strings.Repeat("y", 2000), strings.Repeat("y", 500)}},
		{"truncated", strings.Repeat("z", 5000), 2,
			[]string{strings.Repeat("z", 2000), strings.Repeat("z", 1987) + "… (truncated)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := discord.Split(tc.text, tc.maxParts)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Split (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitCountsUTF16(t *testing.T) {
	t.Parallel()
	// Each emoji is one rune but two UTF-16 code units, as Discord counts.
	parts := discord.Split(strings.Repeat("😀", 1500), 0)
	if len(parts) != 2 {
		t.Fatalf("got %d parts, want 2", len(parts))
	}
	for _, p := range parts {
		if n := len(utf16.Encode([]rune(p))); n > discord.MaxMessageLength {
			t.Errorf("part is %d UTF-16 units", n)
		}
	}
}

func TestTokenNeverPrints(t *testing.T) {
	t.Parallel()
	tok := discord.Token(canaryToken)
	for _, s := range []string{
		tok.String(), tok.GoString(), sprintf("%v %s %q %x %d %+v %#v", tok),
	} {
		noCanary(t, "formatted token", s)
	}
	b, _ := tok.MarshalText()
	noCanary(t, "marshaled token", string(b))
}

func sprintf(format string, v any) string {
	n := strings.Count(format, "%")
	args := make([]any, n)
	for i := range args {
		args[i] = v
	}
	return fmt.Sprintf(format, args...)
}
