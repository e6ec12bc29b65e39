package sandbox

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] that marks the keyhole binary as a sandbox's init.
const initArg0 = "keyhole-sandbox-init"

// initName is the init's process name, NUL-terminated.
var initName = []byte("keyhole-init\x00")

// controlFD is the descriptor the init inherits its control channel on.
const controlFD = 3

// hostname is the sandbox's host name.
const hostname = "sandbox"

// IsInit reports whether this process was started as a sandbox's init, or
// as the zygote that starts inits. The keyhole binary checks it first thing
// in main and then calls InitMain.
func IsInit() bool {
	return len(os.Args) > 0 && (os.Args[0] == initArg0 || os.Args[0] == zygoteArg0)
}

// InitMain runs the sandbox's PID 1 and returns the process exit status. It
// builds the sandbox's file system, starts the command with every
// restriction in place, reaps zombies, forwards signals, bridges broker
// connections and ends the whole tree when the command exits or its time is
// up.
//
// A spare init, started ahead of its job, is first told to prepare: it
// builds everything of the sandbox that does not depend on the job and
// waits. The job's configuration then only adds the job's own mounts.
func InitMain() int {
	if os.Args[0] == zygoteArg0 {
		return zygoteMain()
	}
	// Started as /proc/self/exe by a zygote, it would show as "exe".
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&initName[0])), 0, 0, 0)
	ctl, err := openControl()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keyhole sandbox init: %v\n", err)
		return 125
	}
	in := &initProcess{ctl: ctl, conns: make(chan int, 1)}
	m, fds, err := ctl.recv()
	if err == nil && m.Type == msgPrepare {
		closeFDs(fds)
		if err := in.prepare(NetNone); err != nil {
			in.fail(err)
			return 125
		}
		if err := ctl.send(&message{Type: msgPrepared}); err != nil {
			return 125
		}
		// A spare left waiting gives back the pages its setup touched.
		trim := time.AfterFunc(spareTrimAfter, trimMemory)
		m, fds, err = ctl.recv()
		trim.Stop()
	}
	if err != nil || m.Type != msgConfig || m.Config == nil {
		fmt.Fprintf(os.Stderr, "keyhole sandbox init: no configuration: %v\n", err)
		return 125
	}
	in.cfg = m.Config
	if err := takeStdio(in.cfg, fds); err != nil {
		in.fail(err)
		return 125
	}
	if !in.prepared {
		if err := in.prepare(in.cfg.Net); err != nil {
			in.fail(err)
			return 125
		}
	}
	if err := in.start(); err != nil {
		in.fail(err)
		return 125
	}
	return in.supervise()
}

// fail reports a setup failure to the parent.
func (in *initProcess) fail(err error) {
	kind := kindSetup
	var le *launchError
	if errors.As(err, &le) {
		kind = le.kind
	}
	in.ctl.send(&message{Type: msgError, Error: err.Error(), Kind: kind})
}

// openControl is how the init and the zygote start: with the collector at
// its running setting, every inherited descriptor but the control channel
// marked close-on-exec (a handle on a host folder reaching the command
// would undo the mount namespace), and that channel opened.
func openControl() (*channel, error) {
	debug.SetGCPercent(initGCPercent)
	if err := markInheritedCloexec(); err != nil {
		return nil, err
	}
	return newChannel(controlFD)
}

// markInheritedCloexec sets close-on-exec on every descriptor above the
// control channel.
func markInheritedCloexec() error {
	err := unix.CloseRange(controlFD+1, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close inherited descriptors: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > controlFD {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	return nil
}

// takeStdio makes the descriptors sent with the configuration the init's,
// and so the command's, standard streams.
func takeStdio(cfg *initConfig, fds []int) error {
	if !cfg.Stdio {
		closeFDs(fds)
		return nil
	}
	if len(fds) != 3 {
		closeFDs(fds)
		return fmt.Errorf("want 3 standard streams, got %d", len(fds))
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("take standard stream %d: %w", i, err)
		}
		unix.Close(fd)
	}
	return nil
}

// initProcess is the state of a running init.
type initProcess struct {
	cfg      *initConfig
	ctl      *channel
	listener *os.File // the broker listener, with NetBroker
	portNum  int      // the listener's port
	conns    chan int // broker connections the parent sends
	sigs     chan os.Signal
	pid      int
	timedOut atomic.Bool
	prepared bool // the common part of the sandbox is built
}

// forwarded are the signals the init passes on to the command.
var forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT, unix.SIGALRM}

// prepare builds what every sandbox with network mode net has in common:
// the root with the system folders, /etc, /proc and /dev, pivoted into with
// the host's tree kept aside for the job's own mounts, loopback, and the
// signals to forward.
func (in *initProcess) prepare(net NetMode) error {
	unix.Umask(0o022)
	// Not dumpable: the command, though it shares the init's user, cannot
	// read the init's memory or descriptors through /proc/1.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make init undumpable: %w", err)
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("set host name: %w", err)
	}
	if err := buildCommonRoot(net); err != nil {
		return err
	}
	if net != NetHost {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	in.sigs = make(chan os.Signal, 32)
	signal.Notify(in.sigs, forwarded...)
	in.prepared = true
	return nil
}

// start adds the job's mounts and starts the command.
func (in *initProcess) start() error {
	if err := finishRoot(in.cfg); err != nil {
		return err
	}
	if err := in.listenBroker(); err != nil {
		return err
	}
	env := in.cfg.Env
	if in.listener != nil {
		env = append(env, BrokerURLName+"=http://127.0.0.1:"+strconv.Itoa(in.portNum))
	}
	// The parent joins the cgroups while the init builds the sandbox; the
	// command may only start once that is done.
	m, fds, err := in.ctl.recv()
	closeFDs(fds)
	if err != nil {
		return fmt.Errorf("wait for cgroups: %w", err)
	}
	if m.Type != msgGo {
		return fmt.Errorf("wait for cgroups: unexpected %q message", m.Type)
	}
	pid, err := launch(in.cfg, env)
	if err != nil {
		return err
	}
	in.pid = pid
	return in.ctl.send(&message{Type: msgStarted, Port: in.portNum})
}

// trimAfter is how long the command runs before the init trims its own
// memory; spareTrimAfter is how long a spare waits for a job before it does.
const (
	trimAfter      = 20 * time.Millisecond
	spareTrimAfter = 100 * time.Millisecond
)

// supervise waits for the command, then ends the tree and reports.
func (in *initProcess) supervise() int {
	parentGone := make(chan struct{})
	go in.readControl(parentGone)
	if in.listener != nil {
		go in.serveBroker()
	}
	// Trimming takes a few milliseconds of the init's one thread, during
	// which it would not notice the command's exit; a command that ends at
	// once is not worth trimming for.
	trim := time.After(trimAfter)
	var timeout <-chan time.Time
	if in.cfg.TimeoutNS > 0 {
		timeout = time.After(time.Duration(in.cfg.TimeoutNS))
	}
	exited := make(chan initExit, 1)
	go in.reap(exited)
	var exit initExit
	for done := false; !done; {
		select {
		case exit = <-exited:
			done = true
		case <-trim:
			trimMemory()
		case sig := <-in.sigs:
			unix.Kill(in.pid, sig.(syscall.Signal))
		case <-timeout:
			in.timedOut.Store(true)
			killTree()
		case <-parentGone:
			killTree()
			return 125
		}
	}
	killTree()
	reapAll()
	exit.TimedOut = in.timedOut.Load()
	exit.CPUNS, exit.MaxRSSKiB = childUsage()
	// The tree is gone; with the init's own copies of the standard streams
	// closed, the parent reads the command's output to its end without
	// waiting for the init to exit.
	releaseStdio()
	in.ctl.send(&message{Type: msgExit, Exit: &exit})
	return 0
}

// reapAll waits until every process in the sandbox has been reaped. A
// process forked as the tree was being killed is killed on the next round.
func reapAll() {
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				killTree()
			}
		}
	}()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil && err != unix.EINTR {
			return
		}
	}
}

// childUsage is the CPU time and the largest resident set of the reaped
// tree.
func childUsage() (cpuNS, maxRSSKiB int64) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) != nil {
		return 0, 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), ru.Maxrss
}

// releaseStdio points the init's standard streams at /dev/null.
func releaseStdio() {
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for i := range 3 {
		unix.Dup3(fd, i, 0)
	}
	unix.Close(fd)
}

// reap waits for children, orphans included, until the command exits, and
// then sends how it ended. A blocking wait4 wakes sooner than SIGCHLD.
func (in *initProcess) reap(exited chan<- initExit) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			exited <- initExit{Code: -1, Signal: int(unix.SIGKILL)}
			return
		}
		if pid != in.pid {
			continue
		}
		if ws.Signaled() {
			exited <- initExit{Code: -1, Signal: int(ws.Signal())}
		} else {
			exited <- initExit{Code: ws.ExitStatus()}
		}
		return
	}
}

// killTree ends every other process in the sandbox's PID namespace.
func killTree() { unix.Kill(-1, unix.SIGKILL) }

// readControl delivers broker connections and notices the parent's death.
func (in *initProcess) readControl(parentGone chan<- struct{}) {
	for {
		m, fds, err := in.ctl.recv()
		if err != nil {
			close(parentGone)
			return
		}
		if m.Type == msgConn && len(fds) == 1 {
			in.conns <- fds[0]
			continue
		}
		if m.Type == msgConn {
			in.conns <- -1
		}
		closeFDs(fds)
	}
}

// listenBroker opens, for the broker mode, the listener the command reaches
// the broker on.
func (in *initProcess) listenBroker() error {
	if in.cfg.Net != NetBroker {
		return nil
	}
	l, port, err := listenLoopback(in.cfg.BrokerPort)
	if err != nil {
		return fmt.Errorf("listen for broker connections on 127.0.0.1:%d: %w", in.cfg.BrokerPort, err)
	}
	in.portNum = port
	in.listener = l
	return nil
}

// loopbackUp sets the IFF_UP flag of "lo".
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}
