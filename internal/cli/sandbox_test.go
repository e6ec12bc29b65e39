package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/sandbox"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"64M", 64 << 20, true},
		{"64MiB", 64 << 20, true},
		{"1.5G", 3 << 29, true},
		{"512k", 512 << 10, true},
		{"", 0, false},
		{"-1M", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		got, err := sandbox.ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("sandbox.ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSandboxExecBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sandbox", "exec", "--memory", "lots", "--", "true"}, "--memory"},
		{[]string{"sandbox", "exec", "--mount", "/a", "--", "true"}, "SRC:DST"},
		{[]string{"sandbox", "exec", "--net", "wifi", "--", "true"}, "net mode"},
		{[]string{"sandbox", "exec", "--net", "broker", "--", "true"}, "broker socket"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Main(t.Context(), tt.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
		if code == 0 || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: status %d, stderr %q; want failure mentioning %q",
				tt.args, code, errOut.String(), tt.want)
		}
		if diff := cmp.Diff("", out.String()); diff != "" {
			t.Errorf("%v: stdout (-want +got):\n%s", tt.args, diff)
		}
	}
}
