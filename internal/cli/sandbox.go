package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/sandbox"
)

func init() { register(newSandboxCmd) }

func newSandboxCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run commands in keyhole's Linux sandbox",
	}
	cmd.AddCommand(newSandboxExecCmd(stdio))
	return cmd
}

// sandboxExecFlags holds the flags of "keyhole sandbox exec" as given.
type sandboxExecFlags struct {
	dir          string
	mounts       []string
	env          []string
	memory       string
	cpu          float64
	pids         int
	timeout      time.Duration
	maxFileSize  string
	tmpSize      string
	net          string
	brokerSocket string
	brokerPort   int
}

func newSandboxExecCmd(stdio Stdio) *cobra.Command {
	var f sandboxExecFlags
	cmd := &cobra.Command{
		Use:   "exec [flags] -- CMD [ARGS...]",
		Short: "Run one command in a sandbox and exit with its status",
		Long: "Run one command in a fresh sandbox: its own namespaces, a read-only\n" +
			"system, a private /tmp, the job folder at /work, no network unless asked\n" +
			"for, and limits on memory, CPU, processes, file size and time. The exit\n" +
			"status is the command's, or 128+N when signal N ended it.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(args)
			if err != nil {
				return err
			}
			spec.Stdin, spec.Stdout, spec.Stderr = stdio.In, stdio.Out, stdio.Err
			return runSandbox(cmd.Context(), spec, stdio)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "job folder, mounted read-write at /work")
	fl.StringArrayVar(&f.mounts, "mount", nil, "extra mount SRC:DST[:ro|rw], read-only by default")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable K=V for the command")
	fl.StringVar(&f.memory, "memory", "512M", "memory limit of the whole tree")
	fl.Float64Var(&f.cpu, "cpu", 1, "CPU limit in cores")
	fl.IntVar(&f.pids, "pids", 256, "most processes and threads at once")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "most wall time")
	fl.StringVar(&f.maxFileSize, "max-file-size", "256M", "largest file the command may write")
	fl.StringVar(&f.tmpSize, "tmp-size", "64M", "size of /tmp")
	fl.StringVar(&f.net, "net", "none", "network: none, broker or host")
	fl.StringVar(&f.brokerSocket, "broker-socket", "", "broker's Unix socket, with --net broker")
	fl.IntVar(&f.brokerPort, "broker-port", 0, "port of the broker listener inside; 0 picks one")
	return cmd
}

// spec turns the flags into a sandbox.Spec.
func (f *sandboxExecFlags) spec(args []string) (*sandbox.Spec, error) {
	spec := &sandbox.Spec{Command: args, Env: f.env, Net: sandbox.NetMode(f.net),
		BrokerPort: f.brokerPort}
	var err error
	if spec.Dir, err = absPath(f.dir); err != nil {
		return nil, err
	}
	if spec.BrokerSocket, err = absPath(f.brokerSocket); err != nil {
		return nil, err
	}
	for _, m := range f.mounts {
		mnt, err := sandbox.ParseMount(m)
		if err != nil {
			return nil, fmt.Errorf("--mount: %w", err)
		}
		if mnt.Source, err = absPath(mnt.Source); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, mnt)
	}
	spec.Limits, err = f.limits()
	return spec, err
}

func (f *sandboxExecFlags) limits() (sandbox.Limits, error) {
	l := sandbox.Limits{CPU: f.cpu, Pids: f.pids, Timeout: f.timeout}
	if f.timeout <= 0 {
		return l, errors.New("--timeout must be positive")
	}
	sizes := []struct {
		flag string
		val  string
		dst  *int64
	}{{"memory", f.memory, &l.Memory}, {"max-file-size", f.maxFileSize, &l.MaxFileSize},
		{"tmp-size", f.tmpSize, &l.TmpSize}}
	for _, s := range sizes {
		n, err := sandbox.ParseSize(s.val)
		if err != nil {
			return l, fmt.Errorf("--%s: %w", s.flag, err)
		}
		*s.dst = n
	}
	return l, nil
}

func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return a, nil
}

// killGrace is how long a command has to exit after keyhole passes on an
// interrupt before the whole tree is killed.
const killGrace = 2 * time.Second

// runSandbox runs spec and turns its result into the process exit status.
// An interrupt is passed on to the command first and kills the tree only
// if the command does not exit within killGrace.
func runSandbox(ctx context.Context, spec *sandbox.Spec, stdio Stdio) error {
	var runner sandbox.Runner
	// Close waits for the init to exit and its cgroups to go.
	defer runner.Close()
	if init := sandbox.SiblingInit(); init != "" && sandbox.CheckInitProgram(init) == nil {
		runner.InitPath = init // keyhole-sandbox-init installed beside keyhole starts faster
	}
	sb, err := runner.Start(context.WithoutCancel(ctx), spec)
	var se *sandbox.StartError
	if errors.As(err, &se) {
		return &ExitError{Code: se.ExitStatus(), Message: se.Message}
	}
	if err != nil {
		return err
	}
	stop := forwardSignals(ctx, sb)
	res, err := sb.Wait()
	stop()
	if err != nil {
		return err
	}
	if res.Killed != sandbox.KilledNone {
		fmt.Fprintf(stdio.Err, "keyhole: killed: %s\n", res.Killed)
	}
	if code := res.Status(); code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// forwardSignals passes SIGINT, SIGTERM and SIGHUP on to the sandbox, and
// kills it when ctx is cancelled and the command is still running after
// killGrace. The returned function stops forwarding.
func forwardSignals(ctx context.Context, sb *sandbox.Sandbox) func() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		var grace <-chan time.Time
		cancelled := ctx.Done()
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				sb.Signal(s)
			case <-cancelled:
				cancelled, grace = nil, time.After(killGrace)
			case <-grace:
				sb.Kill()
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
