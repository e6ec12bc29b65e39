package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Runner starts sandboxes. The zero value is ready to use from the keyhole
// binary.
type Runner struct {
	// InitPath is the keyhole binary run as the sandbox's init. Empty means
	// /proc/self/exe, this very binary, which must call IsInit and InitMain
	// at the top of main.
	InitPath string
	// CgroupParent is a cgroup v2 directory to create sandboxes under,
	// such as a subtree delegated by systemd. Empty picks this process's
	// own cgroups.
	CgroupParent string
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
	// Warm starts inits from a zygote and keeps inits started ahead, in
	// their namespaces and cgroups with the common part of the root built,
	// so that a Start with NetNone or NetBroker only has to add the job's
	// mounts and start the command. Close ends them.
	Warm bool
	// Spares is how many inits a Warm runner keeps ahead: as many as
	// sandboxes start at once. 1 when 0.
	Spares int
	// SpareIdle is how long an unused spare init is kept before it is
	// ended, so that a runner holds no processes once jobs stop coming.
	// One minute when 0.
	SpareIdle time.Duration

	mu       sync.Mutex
	spares   []*Sandbox    // inits started ahead, waiting for a job, oldest first
	spawning int           // spares being started
	changed  chan struct{} // closed when a spare finishes starting
	closed   bool

	zyg      *zygote        // a Warm runner's; nil until first needed
	spawns   sync.WaitGroup // goroutines starting spares
	cleanups sync.WaitGroup // sandboxes whose init is still exiting
}

// Run runs spec in a sandbox with a zero Runner and waits for it to end
// and for its init to have exited.
func Run(ctx context.Context, spec *Spec) (*Result, error) {
	var r Runner
	defer r.Close()
	return r.Run(ctx, spec)
}

// Run runs spec in a sandbox and waits for it to end. An error means the
// sandbox could not be set up or the command could not start; a command
// that ran and failed is a Result with a non-zero status.
func (r *Runner) Run(ctx context.Context, spec *Spec) (*Result, error) {
	sb, err := r.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return sb.Wait()
}

// Sandbox is one running sandbox.
type Sandbox struct {
	proc   initProc
	reaped procUsage // what the init spent, once done is closed
	ctl    *channel
	cg     *cgroup
	spec   *Spec
	limits Limits
	// cgroupParent is Runner.CgroupParent.
	cgroupParent string
	log          *slog.Logger
	started      time.Time
	port         int
	done         chan struct{}   // closed when the init has exited
	exited       chan struct{}   // closed when the init reports the tree gone
	ctlDone      chan struct{}   // closed when the control loop has returned
	copies       sync.WaitGroup  // copies between the command's pipes and the spec's streams
	cleanups     *sync.WaitGroup // the runner's: counts inits still exiting
	ended        func()          // called once Wait has the result, if set
	idle         *time.Timer     // ends a spare left unused; nil otherwise
	waitOnce     sync.Once
	result       *Result
	waitErr      error

	mu     sync.Mutex
	killed KillReason // why keyhole ended the tree, if it did
	exit   *initExit  // as the init reported it
}

// initEnv is the whole environment of the init: Go runtime settings, and
// nothing of keyhole's own environment. The collector is off while the
// binary's packages initialise, which allocates a few megabytes that stay
// referenced anyway; collecting during it cost a quarter of the init's
// start-up. InitMain turns it back on (initGCPercent).
var initEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// initGCPercent is the init's GOGC once it runs: a small heap, since its
// memory counts against the sandbox's limit.
const initGCPercent = 50

// Start sets up a sandbox for spec and starts its command. It returns once
// the command runs; the sandbox ends, and Wait returns, when the command
// exits, its time is up, a limit is breached or ctx is cancelled.
func (r *Runner) Start(ctx context.Context, spec *Spec) (*Sandbox, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if r.Warm && spec.Net != NetHost {
		defer r.scheduleRefill()
		if sb := r.takeSpare(ctx); sb != nil {
			started, err := sb.startWarm(ctx, spec)
			if err == nil {
				started.ended = r.refill
			}
			if !errors.Is(err, errSpareUnfit) {
				return started, err
			}
			// The spare could not take the job's limits, such as a memory
			// limit below what it holds; a fresh init enters its cgroups
			// with nothing charged yet.
		}
	}
	sb := r.newSandbox(spec)
	sb.started = time.Now()
	// A v2 cgroup is entered at clone time, so it must exist first; v1
	// cgroups are made while the init starts up.
	if r.cgroupsAtClone() {
		cg, err := newCgroup(r.CgroupParent, sb.limits)
		if err != nil {
			return nil, err
		}
		sb.cg = cg
	}
	if err := sb.startInit(ctx, r.zygote(), r.initPath()); err != nil {
		sb.cleanup()
		return nil, err
	}
	go sb.serveControl()
	go sb.watch(ctx)
	return sb, nil
}

func (r *Runner) newSandbox(spec *Spec) *Sandbox {
	return &Sandbox{spec: spec, limits: spec.Limits.withDefaults(), log: r.logger(),
		done: make(chan struct{}), exited: make(chan struct{}), ctlDone: make(chan struct{}),
		cgroupParent: r.CgroupParent, cleanups: &r.cleanups}
}

// cgroupsAtClone reports whether sandboxes enter a v2 cgroup at clone time.
func (r *Runner) cgroupsAtClone() bool {
	l, err := findCgroups()
	return r.CgroupParent != "" || err == nil && l.v2 != ""
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// zygote returns a Warm runner's zygote, starting one when there is none
// or the last has exited; nil, and inits are started directly, when the
// runner is not Warm or a zygote cannot start.
func (r *Runner) zygote() *zygote {
	if !r.Warm {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if r.zyg != nil && r.zyg.alive() {
		return r.zyg
	}
	z, err := startZygote(r.initPath())
	if err != nil {
		r.logger().Warn("sandbox: inits start without a zygote", "error", err)
		return nil
	}
	r.zyg = z
	return z
}

func (r *Runner) initPath() string {
	if r.InitPath == "" {
		return "/proc/self/exe"
	}
	return r.InitPath
}

// startInit starts the init in fresh namespaces, puts it in the cgroups,
// sends it the configuration and waits until the command runs.
func (sb *Sandbox) startInit(ctx context.Context, z *zygote, initPath string) error {
	ctl, child, err := socketPair()
	if err != nil {
		return err
	}
	sb.ctl = ctl
	stdio, err := sb.openStdio()
	if err != nil {
		child.Close()
		return err
	}
	err = sb.startProc(z, initPath, child, stdio)
	closeFiles(stdio)
	if err != nil {
		return err
	}
	if err := sb.handshake(ctx); err != nil {
		sb.kill(KilledCancelled)
		<-sb.done
		return err
	}
	return nil
}

// startProc starts the init, from the zygote z when there is one, with
// child as its control socket and stdio (nil for a spare) as its standard
// streams, and closes child. A v2 cgroup is entered at clone time; v1
// cgroups are joined once the init runs.
func (sb *Sandbox) startProc(z *zygote, initPath string, child *os.File, stdio []*os.File) error {
	defer child.Close()
	var cgFile *os.File
	if sb.cg != nil {
		f, err := sb.cg.open()
		if err != nil {
			return err
		}
		defer f.Close()
		cgFile = f
	}
	netHost := sb.spec.Net == NetHost
	proc, err := initProc(nil), errZygoteGone
	if z != nil {
		var zp *zygoteProc
		if zp, err = z.spawn(netHost, child, stdio, cgFile); err == nil {
			proc = zp
		}
	}
	if errors.Is(err, errZygoteGone) {
		cmd := initCmd(initPath, netHost, child, stdio, cgFile)
		if err = cmd.Start(); err == nil {
			proc = cmdProc{cmd}
		}
	}
	if err != nil {
		return namespaceError(err)
	}
	sb.proc = proc
	go func() {
		sb.reaped = proc.Wait()
		close(sb.done)
	}()
	return nil
}

// setupTimeout bounds how long building a sandbox may take.
const setupTimeout = 30 * time.Second

// handshake sends the configuration, joins the v1 cgroups while the init
// builds the sandbox, lets the init go on and waits for it to report that
// the command runs. The init forks nothing before the go message, so no
// process escapes the cgroups.
func (sb *Sandbox) handshake(ctx context.Context) error {
	if err := sb.ctl.send(&message{Type: msgConfig, Config: sb.initConfig()}); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if sb.cg == nil {
		cg, err := newCgroup(sb.cgroupParent, sb.limits)
		if err != nil {
			return err
		}
		sb.cg = cg
		if err := sb.cg.add(sb.proc.Pid()); err != nil {
			// An init that failed its setup quickly is gone already;
			// its own report says more than the cgroup's refusal.
			var se *StartError
			if errors.As(sb.awaitStarted(), &se) {
				return se
			}
			return err
		}
	}
	// An init that failed its setup has gone; awaitStarted reports why.
	sb.ctl.send(&message{Type: msgGo})
	return sb.awaitStartedCtx(ctx)
}

// awaitStartedCtx is awaitStarted bounded by ctx and setupTimeout.
func (sb *Sandbox) awaitStartedCtx(ctx context.Context) error {
	got := make(chan error, 1)
	go func() { got <- sb.awaitStarted() }()
	select {
	case err := <-got:
		return err
	case <-ctx.Done():
		return fmt.Errorf("sandbox: starting: %w", ctx.Err())
	case <-time.After(setupTimeout):
		return errors.New("sandbox: the init did not start the command in time")
	}
}

func (sb *Sandbox) awaitStarted() error {
	m, fds, err := sb.ctl.recv()
	closeFDs(fds)
	if err != nil {
		return fmt.Errorf("sandbox: the init exited during setup (%v); "+
			"see its standard error", err)
	}
	switch m.Type {
	case msgStarted:
		sb.port = m.Port
		return nil
	case msgError:
		return &StartError{Kind: startKind(m.Kind), Message: m.Error}
	}
	return fmt.Errorf("sandbox: unexpected %q message from the init", m.Type)
}

func (sb *Sandbox) initConfig() *initConfig {
	l := sb.limits
	return &initConfig{
		Command: sb.spec.Command, Env: sb.spec.commandEnv(), Dir: sb.spec.Dir,
		Mounts: sb.spec.Mounts, Net: sb.netMode(), BrokerPort: sb.spec.BrokerPort,
		TimeoutNS: int64(l.Timeout), MaxFileSize: l.MaxFileSize,
		TmpSize: l.TmpSize, OpenFiles: l.OpenFiles,
	}
}

func (sb *Sandbox) netMode() NetMode {
	if sb.spec.Net == "" {
		return NetNone
	}
	return sb.spec.Net
}

// BrokerURL is the address the command reaches the broker at, as it sees
// it in KEYHOLE_BROKER_URL; empty unless the net mode is NetBroker.
func (sb *Sandbox) BrokerURL() string {
	if sb.port == 0 {
		return ""
	}
	return "http://127.0.0.1:" + strconv.Itoa(sb.port)
}

// Pid is the host process id of the sandbox's init.
func (sb *Sandbox) Pid() int { return sb.proc.Pid() }

// Signal sends sig to the init, which passes it on to the command.
func (sb *Sandbox) Signal(sig os.Signal) error {
	if err := sb.proc.Signal(sig); err != nil {
		return fmt.Errorf("sandbox: signal: %w", err)
	}
	return nil
}

// Kill ends the whole tree at once; Wait then reports KilledCancelled.
func (sb *Sandbox) Kill() { sb.kill(KilledCancelled) }

// kill ends the tree: SIGKILL to the init takes its PID namespace, and so
// every process in it, down with it.
func (sb *Sandbox) kill(reason KillReason) {
	sb.mu.Lock()
	// A command that already ended on its own was not killed.
	if sb.killed == KilledNone && sb.exit == nil {
		sb.killed = reason
	}
	sb.mu.Unlock()
	sb.proc.Signal(unix.SIGKILL)
}

// cleanup releases what a sandbox took once its init is gone or was never
// started. It also waits for the copies into the spec's writers, which end
// once no process holds the pipes: a failed Start must not return while
// they may still write to the caller's buffers.
func (sb *Sandbox) cleanup() {
	if sb.ctl != nil {
		sb.ctl.close()
	}
	sb.copies.Wait()
	if sb.cg == nil {
		return
	}
	if err := sb.cg.remove(); err != nil {
		sb.log.Warn("sandbox: cleanup", "error", err)
	}
}
