// Command keyhole lets AI agents, bots and scripts call sensitive APIs while
// the keys stay in keyhole's encrypted store.
//
// Run "keyhole help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyhole/keyhole/internal/cli"
	"github.com/keyhole/keyhole/internal/sandbox"
)

func main() {
	if sandbox.IsInit() {
		os.Exit(sandbox.InitMain())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
