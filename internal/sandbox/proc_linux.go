package sandbox

import (
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initProc is a started init: a child of this process, or of the runner's
// zygote.
type initProc interface {
	Pid() int
	Signal(sig os.Signal) error
	// Wait blocks until the init has been reaped and returns what it
	// spent; zero when it was reaped by someone else.
	Wait() procUsage
}

// procUsage is what an init and the children it reaped spent, as its
// parent saw when it reaped it. How the command ended comes from the init
// itself.
type procUsage struct {
	cpu    time.Duration
	maxRSS int64 // bytes
}

// cmdProc is an init started by this process.
type cmdProc struct{ cmd *exec.Cmd }

func (p cmdProc) Pid() int                   { return p.cmd.Process.Pid }
func (p cmdProc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p cmdProc) Wait() procUsage {
	p.cmd.Wait()
	return usageOf(p.cmd.ProcessState)
}

func usageOf(ps *os.ProcessState) procUsage {
	var u procUsage
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.maxRSS = ru.Maxrss << 10
	}
	return u
}

// initAttr is how an init is cloned: into fresh namespaces, a private
// network one unless netHost, as the sandbox user.
func initAttr(netHost bool) *syscall.SysProcAttr {
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if !netHost {
		flags |= unix.CLONE_NEWNET
	}
	return &syscall.SysProcAttr{
		Cloneflags:  flags,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: UserID, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: GroupID, HostID: os.Getgid(), Size: 1}},
		// The init runs as the unprivileged sandbox user; these ambient
		// capabilities, valid only inside its own user namespace, let it
		// mount the sandbox's file system and bring up loopback.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP},
		Setsid:      true,
	}
}

// initCmd is the command that starts an init from program path. ctl is the
// control socket's child end; stdio, when not nil, become its standard
// streams (/dev/null otherwise); cgroup, when not nil, is the v2 cgroup it
// is cloned into.
func initCmd(path string, netHost bool, ctl *os.File, stdio []*os.File, cgroup *os.File) *exec.Cmd {
	cmd := &exec.Cmd{
		Path:        path,
		Args:        []string{initArg0},
		Env:         initEnv,
		ExtraFiles:  []*os.File{ctl},
		SysProcAttr: initAttr(netHost),
	}
	if stdio != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	}
	if cgroup != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cgroup.Fd())
	}
	return cmd
}
