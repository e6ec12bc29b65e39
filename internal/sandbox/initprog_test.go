package sandbox_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The init program must build as a static binary whether or not cgo is on:
// a dynamically linked init would load the C library in every sandbox. Only
// package net (and what uses it) would link cgo in.
func TestInitProgramLinksNoCgo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"github.com/keyhole/keyhole/cmd/keyhole-sandbox-init").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"runtime/cgo", "net", "os/user"} {
		if slices.Contains(deps, bad) {
			t.Errorf("keyhole-sandbox-init depends on %s", bad)
		}
	}
}
