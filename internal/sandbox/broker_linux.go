package sandbox

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// brokerDials serialises the init's requests for broker connections, so
// each "conn" reply from the parent answers the request before it.
var brokerDials sync.Mutex

// serveBroker accepts connections on 127.0.0.1 inside the sandbox and
// splices each to a fresh connection to the broker's Unix socket. The init
// cannot open that socket itself, since the host's file system is gone, so
// the parent dials it and passes the descriptor over the control channel.
func (in *initProcess) serveBroker() {
	for {
		c, err := in.listener.Accept()
		if err != nil {
			return
		}
		go in.bridge(c)
	}
}

func (in *initProcess) bridge(c net.Conn) {
	fd := in.dialBroker()
	if fd < 0 {
		c.Close()
		return
	}
	f := os.NewFile(uintptr(fd), "broker")
	bc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		c.Close()
		return
	}
	splice(c, bc)
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
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// brokerDialTimeout bounds one connection attempt to the broker's socket.
const brokerDialTimeout = 5 * time.Second

// dialBrokerSocket opens a connection to the broker and returns it as a
// file the caller closes once it has passed the descriptor on.
func dialBrokerSocket(path string) (*os.File, error) {
	c, err := net.DialTimeout("unix", path, brokerDialTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("broker socket is not a unix socket")
	}
	return uc.File()
}
