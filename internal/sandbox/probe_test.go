package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeEnv names the probe action the test binary runs inside a sandbox.
const probeEnv = "KEYHOLE_PROBE"

// probes are the actions the test binary can take inside a sandbox. Each
// prints what happened, one line per attempt, for the test to check.
var probes = map[string]func(args []string) int{
	"read":     probeRead,
	"environ":  probeEnviron,
	"procs":    probeProcs,
	"connect":  probeConnect,
	"resolve":  probeResolve,
	"http":     probeHTTP,
	"syscalls": probeSyscalls,
	"membomb":  probeMemBomb,
	"fill":     probeFill,
	"write":    probeWrite,
	"status":   probeStatus,
	"fds":      probeFDs,
	"kill1":    probeKillInit,
}

func runProbe(action string, args []string) int {
	f, ok := probes[action]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown probe %q\n", action)
		return 2
	}
	return f(args)
}

// errName is the errno name of err, or "ok".
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if e, ok := err.(syscall.Errno); ok {
		errno = e
	} else if pe, ok := err.(*os.PathError); ok {
		errno, _ = pe.Err.(syscall.Errno)
	} else if se, ok := err.(*os.SyscallError); ok {
		errno, _ = se.Err.(syscall.Errno)
	}
	if errno != 0 {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func probeRead(args []string) int {
	for _, p := range args {
		data, err := os.ReadFile(p)
		if pe, ok := err.(*os.PathError); ok && pe.Err == syscall.EISDIR {
			var entries []os.DirEntry
			entries, err = os.ReadDir(p)
			data = []byte(fmt.Sprint(len(entries), " entries"))
		}
		fmt.Printf("%s: %s %q\n", p, errName(err), data)
	}
	return 0
}

func probeEnviron([]string) int {
	fmt.Println(strings.Join(os.Environ(), "\n"))
	matches, _ := filepath.Glob("/proc/*/environ")
	for _, p := range matches {
		data, err := os.ReadFile(p)
		fmt.Printf("%s: %s %q\n", p, errName(err), data)
	}
	return 0
}

func probeProcs([]string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			fmt.Printf("pid %s %q\n", e.Name(), cmd)
		}
	}
	return 0
}

func probeConnect(args []string) int {
	for _, addr := range args {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		fmt.Printf("connect %s: %s\n", addr, connectError(err))
	}
	return 0
}

func connectError(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if oe, ok := err.(*net.OpError); ok {
		if se, ok := oe.Err.(*os.SyscallError); ok {
			errno, _ = se.Err.(syscall.Errno)
		}
	}
	if errno != 0 {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func probeResolve(args []string) int {
	for _, name := range args {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		fmt.Printf("resolve %s: %v %v\n", name, addrs, err)
	}
	return 0
}

func probeHTTP(args []string) int {
	url := os.Getenv("KEYHOLE_BROKER_URL") + args[0]
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Printf("get %s: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("get %s: %d %s\n", url, resp.StatusCode, body)
	return 0
}

// syscallAttempts try each call the seccomp filter must refuse, with
// arguments that would do no harm even if it did not.
var syscallAttempts = map[string]func() error{
	"mount":           func() error { return unix.Mount("none", "/tmp", "tmpfs", 0, "") },
	"umount2":         func() error { return unix.Unmount("/tmp", unix.MNT_DETACH) },
	"pivot_root":      func() error { return unix.PivotRoot("/tmp", "/tmp") },
	"chroot":          func() error { return unix.Chroot("/tmp") },
	"ptrace_attach":   func() error { return raw(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1) },
	"ptrace_traceme":  func() error { return raw(unix.SYS_PTRACE, unix.PTRACE_TRACEME) },
	"process_vm_read": func() error { return raw(unix.SYS_PROCESS_VM_READV, 1) },
	"process_vm_write": func() error {
		return raw(unix.SYS_PROCESS_VM_WRITEV, 1)
	},
	"kexec_load":      func() error { return raw(unix.SYS_KEXEC_LOAD) },
	"kexec_file_load": func() error { return raw(unix.SYS_KEXEC_FILE_LOAD, 0, 0, 0) },
	"bpf":             func() error { return raw(unix.SYS_BPF, 0) },
	"perf_event_open": func() error { return raw(unix.SYS_PERF_EVENT_OPEN) },
	"keyctl":          func() error { return raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID) },
	"add_key":         func() error { return raw(unix.SYS_ADD_KEY) },
	"request_key":     func() error { return raw(unix.SYS_REQUEST_KEY) },
	"userfaultfd":     func() error { return raw(unix.SYS_USERFAULTFD) },
	"init_module":     func() error { return raw(unix.SYS_INIT_MODULE) },
	"finit_module":    func() error { return raw(unix.SYS_FINIT_MODULE, 0) },
	"delete_module":   func() error { return raw(unix.SYS_DELETE_MODULE) },
	"unshare_user":    func() error { return unix.Unshare(unix.CLONE_NEWUSER) },
	"unshare_net":     func() error { return unix.Unshare(unix.CLONE_NEWNET) },
	"clone_newuser":   func() error { return forkWith(unix.CLONE_NEWUSER) },
	"clone_newns":     func() error { return forkWith(unix.CLONE_NEWNS) },
	"clone3":          func() error { return raw(unix.SYS_CLONE3) },
	"setns":           func() error { return raw(unix.SYS_SETNS, 0) },
	"reboot":          func() error { return raw(unix.SYS_REBOOT) },
	"swapon":          func() error { return raw(unix.SYS_SWAPON) },
	"io_uring_setup":  func() error { return raw(unix.SYS_IO_URING_SETUP, 1) },
	"open_by_handle":  func() error { return raw(unix.SYS_OPEN_BY_HANDLE_AT) },
	"socket_raw": func() error {
		return raw(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	},
	"socket_raw_high_bits": func() error {
		return raw(unix.SYS_SOCKET, unix.AF_INET, 1<<32|unix.SOCK_RAW, unix.IPPROTO_ICMP)
	},
	"socket_packet": func() error { return raw(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_DGRAM) },
	"tiocsti": func() error {
		c := byte('x')
		return raw(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
	},
}

// raw makes a syscall and closes whatever descriptor it returns.
func raw(nr uintptr, args ...uintptr) error {
	var a [6]uintptr
	copy(a[:], args)
	r, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if errno != 0 {
		return errno
	}
	if nr == unix.SYS_SOCKET || nr == unix.SYS_USERFAULTFD || nr == unix.SYS_BPF {
		unix.Close(int(r))
	}
	return nil
}

// forkWith starts /bin/true with namespace clone flags.
func forkWith(flags uintptr) error {
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: flags}}
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, attr)
	if err == nil {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
	return err
}

func probeSyscalls([]string) int {
	for name, try := range syscallAttempts {
		fmt.Printf("%s %s\n", name, errName(try()))
	}
	return 0
}

// probeMemBomb allocates and touches memory until something stops it.
func probeMemBomb([]string) int {
	var hold [][]byte
	for i := 0; ; i++ {
		b := make([]byte, 8<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		hold = append(hold, b)
		if i%8 == 0 {
			fmt.Fprintf(os.Stderr, "holding %d MiB\n", len(hold)*8)
		}
	}
}

// probeFill writes to args[0] in 256 KiB steps until the write fails.
func probeFill(args []string) int {
	f, err := os.Create(args[0])
	if err != nil {
		fmt.Printf("create: %s\n", errName(err))
		return 0
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	total := 0
	for {
		n, err := f.Write(chunk)
		total += n
		if err != nil {
			fmt.Printf("wrote %d: %s\n", total, errName(err))
			return 0
		}
	}
}

func probeWrite(args []string) int {
	for _, p := range args {
		err := os.WriteFile(p, []byte("x"), 0o644)
		fmt.Printf("write %s: %s\n", p, errName(err))
	}
	return 0
}

func probeStatus([]string) int {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(data)) {
		for _, k := range []string{"Uid:", "Gid:", "Cap", "NoNewPrivs:", "Seccomp:"} {
			if strings.HasPrefix(line, k) {
				fmt.Print(strings.Join(strings.Fields(line), " "), "\n")
			}
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("hostname %s\n", host)
	return 0
}

// probeFDs lists the probe's open descriptors and where they lead.
func probeFDs([]string) int {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Printf("fd %s -> %s\n", e.Name(), target)
	}
	return 0
}

// probeKillInit asks whether it may signal the init (signal 0 sends none).
func probeKillInit([]string) int {
	fmt.Printf("kill 1: %s\n", errName(unix.Kill(1, 0)))
	return 0
}
