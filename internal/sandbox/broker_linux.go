package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// brokerDials serialises the init's requests for broker connections, so
// each "conn" reply from the parent answers the request before it.
var brokerDials sync.Mutex

// serveBroker accepts connections on 127.0.0.1 inside the sandbox and
// splices each to a fresh connection to the broker's Unix socket. The init
// cannot open that socket itself, since the host's file system is gone, so
// the parent dials it and passes the descriptor over the control channel.
func (in *initProcess) serveBroker() {
	rc, err := in.listener.SyscallConn()
	if err != nil {
		return
	}
	for {
		var nfd int
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			return aerr != unix.EAGAIN
		})
		if err == nil {
			err = aerr
		}
		if errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		go in.bridge(nfd)
	}
}

func (in *initProcess) bridge(conn int) {
	c, _, err := pollable(conn, "broker-client")
	if err != nil {
		return
	}
	fd := in.dialBroker()
	if fd < 0 {
		c.Close()
		return
	}
	b, _, err := pollable(fd, "broker")
	if err != nil {
		c.Close()
		return
	}
	splice(c, b)
}

// dialBroker asks the parent for a broker connection; -1 means none.
func (in *initProcess) dialBroker() int {
	brokerDials.Lock()
	defer brokerDials.Unlock()
	if err := in.ctl.send(&message{Type: msgDial}); err != nil {
		return -1
	}
	return <-in.conns
}

// splice copies both ways until both sides are done, passing half-closes on.
func splice(a, b *os.File) {
	var wg sync.WaitGroup
	copyHalf := func(dst, src *os.File) {
		defer wg.Done()
		io.Copy(dst, src)
		if rc, err := dst.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
		}
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// listenLoopback opens a listening TCP socket on 127.0.0.1:port (any port
// when 0) and returns it with the port it got.
func listenLoopback(port int) (*os.File, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, err
	}
	if port, err = bindLoopback(fd, port); err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	f, _, err := pollable(fd, "broker-listener")
	if err != nil {
		return nil, 0, err
	}
	return f, port, nil
}

// bindLoopback binds socket fd to 127.0.0.1:port and listens on it.
func bindLoopback(fd, port int) (int, error) {
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, err
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	in4, ok := got.(*unix.SockaddrInet4)
	if !ok {
		return 0, errors.New("not an IPv4 socket")
	}
	return in4.Port, nil
}

// brokerDialTimeout bounds one connection attempt to the broker's socket.
const brokerDialTimeout = 5 * time.Second

// dialBrokerSocket opens a connection to the broker and returns it as a
// file the caller closes once it has passed the descriptor on.
func dialBrokerSocket(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// A Unix socket's connect waits for room in the listener's backlog for
	// as long as its send timeout allows.
	tv := unix.NsecToTimeval(brokerDialTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "broker"), nil
}
