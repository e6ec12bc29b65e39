// Command keyhole-sandbox-init is keyhole's sandbox init as a program of its
// own: the PID 1 of every sandbox, without the rest of keyhole.
//
// Without it keyhole runs its own binary as the init. That binary carries
// every dependency of keyhole, and their package initialisation costs each
// sandbox about 15 ms of CPU before the init's first line; this program
// carries only the sandbox, is static whether or not cgo is on, and starts
// in a fraction of that. It also serves as the zygote a keyhole server
// clones its inits from. Build it from the same checkout as keyhole and
// install it beside keyhole, which then uses it (or name it with
// --sandbox-init):
//
//	go build -o . ./cmd/...     # ./keyhole and ./keyhole-sandbox-init
//	go build -o /usr/local/bin/ ./cmd/keyhole ./cmd/keyhole-sandbox-init
//
// keyhole checks it at start by running one sandbox through it. It is
// started by keyhole only; run by hand it exits with status 2.
package main

import (
	"fmt"
	"os"

	"github.com/keyhole/keyhole/internal/sandbox"
)

func main() {
	if !sandbox.IsInit() {
		fmt.Fprintln(os.Stderr, "keyhole-sandbox-init: keyhole starts this program as the init "+
			"of its sandboxes; give its path to keyhole server --sandbox-init")
		os.Exit(2)
	}
	os.Exit(sandbox.InitMain())
}
