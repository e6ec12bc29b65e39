package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A Warm runner starts its inits from a zygote: one small process, the init
// program in another role, that clones each init on request. Cloning into
// a new user namespace cannot share the caller's memory the way a plain
// fork-and-exec does, so the kernel copies the caller's page tables, and a
// server with a large heap would pay milliseconds of CPU per sandbox for
// memory the init never uses. The zygote's own memory is a few megabytes.
//
// The zygote holds nothing of keyhole's: it is started with the init's
// environment and no descriptor but its socket, and it only ever clones the
// init program it is, as the sandbox user, with the descriptors the runner
// sends with each request.

// zygoteArg0 is the argv[0] that marks the init program started as a zygote.
const zygoteArg0 = "keyhole-sandbox-zygote"

// spawnRequest asks the zygote for an init. The descriptors that come with
// it are the control socket's child end, then the three standard streams
// when Stdio, then the v2 cgroup to clone into when Cgroup.
type spawnRequest struct {
	NetHost bool `json:"net_host,omitempty"`
	Stdio   bool `json:"stdio,omitempty"`
	Cgroup  bool `json:"cgroup,omitempty"`
}

// reapedInit is what an init the zygote started spent.
type reapedInit struct {
	CPUNS     int64 `json:"cpu_ns"`
	MaxRSSKiB int64 `json:"max_rss_kib"`
}

// zygoteMain serves spawn requests until the runner closes the socket.
func zygoteMain() int {
	ch, err := openControl()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keyhole sandbox zygote: %v\n", err)
		return 125
	}
	// Between bursts of requests the zygote gives back the pages that
	// cloning touched.
	trim := time.AfterFunc(spareTrimAfter, trimMemory)
	for {
		m, fds, err := ch.recv()
		if err != nil {
			return 0
		}
		trim.Reset(spareTrimAfter)
		if m.Type != msgSpawn || m.Spawn == nil {
			closeFDs(fds)
			ch.send(&message{Type: msgError, Error: fmt.Sprintf("unexpected %q message", m.Type)})
			continue
		}
		spawnInit(ch, m.Spawn, fds)
	}
}

// spawnInit starts one init as req and fds ask, replies with its pid and a
// pidfd, and reports its exit once reaped.
func spawnInit(ch *channel, req *spawnRequest, fds []int) {
	want := 1
	if req.Stdio {
		want += 3
	}
	if req.Cgroup {
		want++
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "spawn")
	}
	defer closeFiles(files)
	if len(files) != want {
		ch.send(&message{Type: msgError, Error: fmt.Sprintf("spawn: want %d descriptors, got %d", want, len(files))})
		return
	}
	var stdio []*os.File
	var cgroup *os.File
	if req.Stdio {
		stdio = files[1:4]
	}
	if req.Cgroup {
		cgroup = files[len(files)-1]
	}
	cmd := initCmd("/proc/self/exe", req.NetHost, files[0], stdio, cgroup)
	if err := cmd.Start(); err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		ch.send(&message{Type: msgError, Error: err.Error(), Errno: int(errno)})
		return
	}
	pid := cmd.Process.Pid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		pidfd = -1
	}
	ch.send(&message{Type: msgSpawned, Pid: pid}, pidfd)
	if pidfd >= 0 {
		unix.Close(pidfd)
	}
	go func() {
		cmd.Wait()
		u := usageOf(cmd.ProcessState)
		ch.send(&message{Type: msgReaped, Pid: pid,
			Reaped: &reapedInit{CPUNS: int64(u.cpu), MaxRSSKiB: u.maxRSS >> 10}})
	}()
}

// zygote is the runner's end of a zygote.
type zygote struct {
	ch   *channel
	cmd  *exec.Cmd
	gone chan struct{} // closed when the zygote's socket is closed
	quit chan struct{} // closed once the zygote process is reaped

	reqMu   sync.Mutex // one spawn request at a time
	replies chan spawnReply

	mu      sync.Mutex
	next    *zygoteProc         // the init the pending request starts
	procs   map[int]*zygoteProc // inits started and not yet reaped
	closing bool
}

type spawnReply struct {
	proc *zygoteProc
	err  error
}

// errZygoteGone means the zygote exited; the runner starts another.
var errZygoteGone = errors.New("sandbox: the zygote exited")

// startZygote starts the init program at path as a zygote.
func startZygote(path string) (*zygote, error) {
	ctl, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: []string{zygoteArg0}, Env: initEnv,
		ExtraFiles: []*os.File{child}, SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	err = cmd.Start()
	child.Close()
	if err != nil {
		ctl.close()
		return nil, fmt.Errorf("sandbox: start zygote: %w", err)
	}
	z := &zygote{ch: ctl, cmd: cmd, gone: make(chan struct{}), quit: make(chan struct{}),
		replies: make(chan spawnReply, 1), procs: map[int]*zygoteProc{}}
	go func() {
		cmd.Wait()
		close(z.quit)
	}()
	go z.read()
	return z, nil
}

// alive reports whether the zygote still takes requests.
func (z *zygote) alive() bool {
	select {
	case <-z.gone:
		return false
	default:
		return true
	}
}

// spawn asks the zygote for an init; see spawnRequest for the files.
func (z *zygote) spawn(netHost bool, ctl *os.File, stdio []*os.File, cgroup *os.File) (*zygoteProc, error) {
	z.reqMu.Lock()
	defer z.reqMu.Unlock()
	p := &zygoteProc{pidfd: -1, reaped: make(chan struct{})}
	z.mu.Lock()
	z.next = p
	z.mu.Unlock()
	req := &spawnRequest{NetHost: netHost, Stdio: stdio != nil, Cgroup: cgroup != nil}
	fds := []int{int(ctl.Fd())}
	for _, f := range stdio {
		fds = append(fds, int(f.Fd()))
	}
	if cgroup != nil {
		fds = append(fds, int(cgroup.Fd()))
	}
	if err := z.ch.send(&message{Type: msgSpawn, Spawn: req}, fds...); err != nil {
		return nil, errZygoteGone
	}
	select {
	case r := <-z.replies:
		return r.proc, r.err
	case <-z.gone:
		return nil, errZygoteGone
	case <-time.After(setupTimeout):
		// A zygote that does not answer is ended; the runner starts this
		// init itself and the next from a new zygote.
		z.cmd.Process.Kill()
		<-z.gone
		return nil, errZygoteGone
	}
}

// read dispatches the zygote's replies and reports until its socket closes.
func (z *zygote) read() {
	for {
		m, fds, err := z.ch.recv()
		if err != nil {
			z.lost()
			return
		}
		switch m.Type {
		case msgSpawned:
			z.mu.Lock()
			p := z.next
			z.next = nil
			if p != nil {
				p.pid = m.Pid
				if len(fds) == 1 {
					p.pidfd, fds = fds[0], nil
				}
				z.procs[m.Pid] = p
			}
			z.mu.Unlock()
			closeFDs(fds)
			z.replies <- spawnReply{proc: p}
		case msgError:
			closeFDs(fds)
			z.mu.Lock()
			z.next = nil
			z.mu.Unlock()
			err := fmt.Errorf("%s", m.Error)
			if m.Errno != 0 {
				err = fmt.Errorf("zygote: %w", syscall.Errno(m.Errno))
			}
			z.replies <- spawnReply{err: err}
		case msgReaped:
			closeFDs(fds)
			z.mu.Lock()
			p := z.procs[m.Pid]
			delete(z.procs, m.Pid)
			last := z.closing && len(z.procs) == 0
			z.mu.Unlock()
			if p != nil && m.Reaped != nil {
				p.finish(procUsage{cpu: time.Duration(m.Reaped.CPUNS),
					maxRSS: m.Reaped.MaxRSSKiB << 10})
			}
			if last {
				z.ch.close()
			}
		default:
			closeFDs(fds)
		}
	}
}

// lost handles the zygote's end: the inits it started live on, reparented,
// and are watched through their pidfds instead.
func (z *zygote) lost() {
	z.mu.Lock()
	close(z.gone)
	procs := z.procs
	z.procs = map[int]*zygoteProc{}
	z.mu.Unlock()
	for _, p := range procs {
		go p.watchOrphan()
	}
}

// close ends the zygote once every init it started has been reaped, and
// waits for it to exit when none is left.
func (z *zygote) close() {
	z.mu.Lock()
	z.closing = true
	last := len(z.procs) == 0
	z.mu.Unlock()
	if !last {
		return
	}
	z.ch.close()
	select {
	case <-z.quit:
	case <-time.After(5 * time.Second):
		z.cmd.Process.Kill()
	}
}

// zygoteProc is an init the zygote started.
type zygoteProc struct {
	pid    int
	reaped chan struct{}
	once   sync.Once
	usage  procUsage

	mu    sync.Mutex
	pidfd int // -1 without pidfd support, and once reaped
}

func (p *zygoteProc) Pid() int { return p.pid }

// Signal sends sig through the pidfd, which cannot reach another process
// that took the pid; the lock keeps finish from closing it meanwhile.
func (p *zygoteProc) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return errors.New("sandbox: unsupported signal")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.reaped:
		return os.ErrProcessDone
	default:
	}
	if p.pidfd >= 0 {
		return unix.PidfdSendSignal(p.pidfd, s, nil, 0)
	}
	return unix.Kill(p.pid, s)
}

func (p *zygoteProc) Wait() procUsage {
	<-p.reaped
	return p.usage
}

func (p *zygoteProc) finish(u procUsage) {
	p.once.Do(func() {
		p.usage = u
		p.mu.Lock()
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
			p.pidfd = -1
		}
		close(p.reaped)
		p.mu.Unlock()
	})
}

// watchOrphan waits for an init whose zygote is gone to exit.
func (p *zygoteProc) watchOrphan() {
	p.mu.Lock()
	pidfd := p.pidfd
	p.mu.Unlock()
	// Only finish, below, closes the pidfd.
	if pidfd >= 0 {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err != unix.EINTR {
				break
			}
		}
	} else {
		for unix.Kill(p.pid, 0) == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.finish(procUsage{})
}
