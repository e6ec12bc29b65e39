package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// The parent and the init talk over one SOCK_SEQPACKET socket pair: each
// packet is one JSON message, and broker connections travel as SCM_RIGHTS
// file descriptors beside a "conn" message.
const (
	msgPrepare  = "prepare"  // parent → spare init: build the common part of the root now
	msgPrepared = "prepared" // spare init → parent: done, waiting for a config
	msgConfig   = "config"   // parent → init: what to build and run
	msgGo       = "go"       // parent → init: the cgroups are joined, start
	msgStarted  = "started"  // init → parent: the command runs
	msgError    = "error"    // init → parent: setup or exec failed
	msgDial     = "dial"     // init → parent: give me a broker connection
	msgConn     = "conn"     // parent → init: here it is (or why not)
	msgExit     = "exit"     // init → parent: the command ended

	msgSpawn   = "spawn"   // parent → zygote: start an init
	msgSpawned = "spawned" // zygote → parent: started (or msgError)
	msgReaped  = "reaped"  // zygote → parent: an init it started has exited
)

// message is one packet on the control channel.
type message struct {
	Type   string      `json:"type"`
	Config *initConfig `json:"config,omitempty"`
	Port   int         `json:"port,omitempty"`
	Error  string      `json:"error,omitempty"`
	Kind   string      `json:"kind,omitempty"`
	Exit   *initExit   `json:"exit,omitempty"`

	Spawn  *spawnRequest `json:"spawn,omitempty"`
	Pid    int           `json:"pid,omitempty"`
	Errno  int           `json:"errno,omitempty"`
	Reaped *reapedInit   `json:"reaped,omitempty"`
}

// initConfig is what the parent tells the init to build.
type initConfig struct {
	Command     []string `json:"command"`
	Env         []string `json:"env"`
	Dir         string   `json:"dir,omitempty"`
	Mounts      []Mount  `json:"mounts,omitempty"`
	Net         NetMode  `json:"net"`
	BrokerPort  int      `json:"broker_port,omitempty"`
	TimeoutNS   int64    `json:"timeout_ns"`
	MaxFileSize int64    `json:"max_file_size"`
	TmpSize     int64    `json:"tmp_size"`
	OpenFiles   int      `json:"open_files"`
	// Stdio says the configuration message carries the command's stdin,
	// stdout and stderr, for an init started ahead of its job.
	Stdio bool `json:"stdio,omitempty"`

	// sourceFDs are the init's handles on the mount sources during setup.
	sourceFDs []int
}

// initExit is how the command ended, as its init saw it.
type initExit struct {
	Code     int  `json:"code"`
	Signal   int  `json:"signal,omitempty"`
	TimedOut bool `json:"timed_out,omitempty"`
	// CPUNS and MaxRSSKiB are what the command's tree spent, every process
	// in it reaped: user and system time, and the largest resident set.
	CPUNS     int64 `json:"cpu_ns"`
	MaxRSSKiB int64 `json:"max_rss_kib"`
}

// maxMessage bounds one control packet; a config with thousands of mounts
// and variables still fits.
const maxMessage = 1 << 20

// channel is one end of the control socket pair. It is a plain descriptor
// in Go's poller rather than a net.Conn, so that the init links no part of
// package net and builds as a static program whether or not cgo is on.
type channel struct {
	f  *os.File
	rc syscall.RawConn
}

// socketPair returns the parent's channel and the file the init inherits.
func socketPair() (*channel, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create control socket: %w", err)
	}
	ch, err := newChannel(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return ch, os.NewFile(uintptr(fds[1]), "sandbox-control"), nil
}

// newChannel wraps a SOCK_SEQPACKET descriptor; it takes ownership of fd.
func newChannel(fd int) (*channel, error) {
	f, rc, err := pollable(fd, "sandbox-control")
	if err != nil {
		return nil, fmt.Errorf("open control socket: %w", err)
	}
	return &channel{f: f, rc: rc}, nil
}

// pollable makes fd close-on-exec and non-blocking, and wraps it in a file
// whose reads and writes wait in Go's poller; the file owns fd. The init's
// control channel arrives without close-on-exec, and no descriptor of the
// init may reach the command.
func pollable(fd int, name string) (*os.File, syscall.RawConn, error) {
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// send writes m, passing the descriptors in fds that are not negative.
func (c *channel) send(m *message, fds ...int) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	var oob []byte
	if fds = slices.DeleteFunc(fds, func(fd int) bool { return fd < 0 }); len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	var serr error
	err = c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), data, oob, nil, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// recv reads one message and the descriptors that came with it.
func (c *channel) recv() (*message, []int, error) {
	size, err := c.nextSize()
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, max(size, 1))
	oob := make([]byte, unix.CmsgSpace(maxRights*4))
	var n, oobn int
	var rerr error
	err = c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, errPeerGone
	}
	var fds []int
	if oobn > 0 {
		if fds, err = parseRights(oob[:oobn]); err != nil {
			return nil, nil, err
		}
	}
	m := new(message)
	if err := json.Unmarshal(buf[:n], m); err != nil {
		closeFDs(fds)
		return nil, nil, fmt.Errorf("decode control message: %w", err)
	}
	return m, fds, nil
}

// maxRights is the most descriptors one message carries: a spawn request's
// control socket, standard streams and cgroup.
const maxRights = 5

// nextSize waits for the next packet and returns its length, so that recv
// allocates no more than it needs: the init's memory is part of the limit.
func (c *channel) nextSize() (int, error) {
	var size int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		size, _, rerr = unix.Recvfrom(int(fd), nil,
			unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, fmt.Errorf("read control socket: %w", err)
	}
	if size > maxMessage {
		return 0, fmt.Errorf("control message of %d bytes is too large", size)
	}
	return size, nil
}

// errPeerGone means the other end of the control channel closed it.
var errPeerGone = errors.New("control channel closed")

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message rights: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("parse control message rights: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func (c *channel) close() error { return c.f.Close() }

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}
