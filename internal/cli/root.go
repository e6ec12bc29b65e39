// Package cli implements the keyhole command line: the server and worker
// programs and the commands that manage a running server through its HTTP API.
//
// Every flag can also be set through an environment variable named after it:
// --data-dir is KEYHOLE_DATA_DIR, --listen is KEYHOLE_LISTEN. A flag given on
// the command line wins over the environment.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Stdio is the standard streams a command reads and writes.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// ExitError asks Main to exit with Code. A non-empty Message is printed first.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Message
}

// Main runs the command line given by args and returns the process exit code.
// Errors are printed as one line on stdio.Err; nothing panics out of Main.
func Main(ctx context.Context, args []string, stdio Stdio) int {
	root := newRootCmd(stdio)
	root.SetArgs(args)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Message != "" {
			fmt.Fprintf(stdio.Err, "keyhole: %s\n", exit.Message)
		}
		return exit.Code
	}
	fmt.Fprintf(stdio.Err, "keyhole: %s\n", oneLine(err.Error()))
	return 1
}

func newRootCmd(stdio Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "keyhole",
		Short: "Let agents use sensitive APIs without ever holding the keys",
		Long: "keyhole keeps API keys in an encrypted store and lets agents, bots and\n" +
			"scripts use them through tools, MCP and a sandbox, without seeing them.",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %q)", err, cmd.CommandPath()+" --help")
	})

	addGlobalFlags(root)
	for _, add := range commands {
		root.AddCommand(add(stdio))
	}
	return root
}

// commands lists the constructors of the top-level commands. Each file that
// defines a command adds itself here from an init function, which keeps the
// commands independent of each other.
var commands []func(Stdio) *cobra.Command

func register(f func(Stdio) *cobra.Command) { commands = append(commands, f) }

// envName is the environment variable that sets the flag called name.
func envName(name string) string {
	return "KEYHOLE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets each flag of cmd that was not given on the command line from
// its environment variable, when that is set.
func applyEnv(cmd *cobra.Command) error {
	var firstErr error
	visit := func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || f.Name == "help" {
			return
		}
		v, ok := lookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("invalid %s=%q: %v", envName(f.Name), v, err)
		}
	}
	cmd.Flags().VisitAll(visit)
	return firstErr
}

// oneLine folds a multi-line message so the CLI always prints one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
