package sandbox

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// NetMode says what network a sandbox sees.
type NetMode string

const (
	// NetNone gives the sandbox a network namespace with only a loopback
	// interface: nothing outside the sandbox can be reached.
	NetNone NetMode = "none"

	// NetBroker is NetNone plus a listener on 127.0.0.1 inside the sandbox
	// whose connections keyhole's init forwards to Spec.BrokerSocket.
	NetBroker NetMode = "broker"

	// NetHost shares the host's network namespace. It is meant for trusted
	// tools only: the sandbox can reach whatever the host can.
	NetHost NetMode = "host"
)

// Defaults applied to the zero fields of Limits, so that every sandbox is
// bounded even when its caller sets nothing.
const (
	DefaultMemory      int64         = 512 << 20
	DefaultCPU         float64       = 1
	DefaultPids        int           = 256
	DefaultTimeout     time.Duration = 5 * time.Minute
	DefaultMaxFileSize int64         = 256 << 20
	DefaultTmpSize     int64         = 64 << 20
	DefaultOpenFiles   int           = 1024
)

// The user the command runs as inside the sandbox. It maps to the user that
// runs keyhole; see docs/SANDBOX.md for what that means when that is root.
const (
	UserName = "sandbox"
	UserID   = 1000
	GroupID  = 1000
)

// Fixed paths inside the sandbox.
const (
	WorkDir = "/work"
	TmpDir  = "/tmp"
)

// Limits bounds what one sandbox may spend. A zero field takes the matching
// Default value.
type Limits struct {
	// Memory is the most memory, in bytes, the whole process tree may use,
	// page cache and tmpfs included. Going past it ends the tree.
	Memory int64
	// CPU is the share of CPU time in cores: 0.5 is half of one core.
	CPU float64
	// Pids is the most processes and threads alive at once. Reaching it
	// ends the tree.
	Pids int
	// Timeout is the most wall time the command may run.
	Timeout time.Duration
	// MaxFileSize is the largest file, in bytes, the command may write.
	MaxFileSize int64
	// TmpSize is the size, in bytes, of the tmpfs mounted at /tmp.
	TmpSize int64
	// OpenFiles is the most file descriptors one process may hold.
	OpenFiles int
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.Memory == 0 {
		l.Memory = DefaultMemory
	}
	if l.CPU == 0 {
		l.CPU = DefaultCPU
	}
	if l.Pids == 0 {
		l.Pids = DefaultPids
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.TmpSize == 0 {
		l.TmpSize = DefaultTmpSize
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = DefaultOpenFiles
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.Memory < 8<<20:
		return fmt.Errorf("memory limit %d bytes is below the 8 MiB minimum", l.Memory)
	case l.CPU < 0.01:
		return fmt.Errorf("cpu limit %g is below the 0.01 core minimum", l.CPU)
	case l.Pids < 4:
		return fmt.Errorf("pids limit %d is below the minimum of 4", l.Pids)
	case l.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", l.Timeout)
	case l.MaxFileSize < 0:
		return fmt.Errorf("max file size %d is negative", l.MaxFileSize)
	case l.TmpSize < 4096:
		return fmt.Errorf("tmp size %d bytes is below one page", l.TmpSize)
	case l.OpenFiles < 16:
		return fmt.Errorf("open files limit %d is below the minimum of 16", l.OpenFiles)
	}
	return nil
}

// Mount makes a host path visible inside the sandbox.
type Mount struct {
	// Source is the absolute host path.
	Source string
	// Target is the absolute path inside the sandbox.
	Target string
	// Writable mounts read-write; mounts are read-only otherwise.
	Writable bool
}

// ParseMount parses the command-line form SRC:DST[:ro|rw].
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Mount{}, fmt.Errorf("mount %q: want SRC:DST or SRC:DST:ro|rw", s)
	}
	m := Mount{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
		case "rw":
			m.Writable = true
		default:
			return Mount{}, fmt.Errorf("mount %q: mode %q is neither ro nor rw", s, parts[2])
		}
	}
	return m, nil
}

// reservedTargets are sandbox paths keyhole builds itself; a Mount may not
// replace them or sit beneath the ones that are not plain folders.
var reservedTargets = []string{"/", "/proc", "/dev", "/etc", "/usr", "/bin", "/sbin",
	"/lib", "/lib32", "/lib64", "/libx32", TmpDir, WorkDir}

func (m Mount) validate() error {
	if !filepath.IsAbs(m.Source) {
		return fmt.Errorf("mount source %q is not an absolute path", m.Source)
	}
	if !path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target {
		return fmt.Errorf("mount target %q is not a clean absolute path", m.Target)
	}
	for _, r := range reservedTargets {
		if m.Target == r {
			return fmt.Errorf("mount target %q is reserved by the sandbox", m.Target)
		}
	}
	for _, r := range []string{"/proc", "/dev"} {
		if strings.HasPrefix(m.Target, r+"/") {
			return fmt.Errorf("mount target %q is inside %s", m.Target, r)
		}
	}
	return nil
}

// Spec describes one command to run in a sandbox.
type Spec struct {
	// Command is the program and its arguments. A program without a slash
	// is looked up in PATH inside the sandbox.
	Command []string
	// Dir is the host job folder, mounted read-write at /work, the working
	// directory. Empty gives an empty /work on a tmpfs of Limits.TmpSize.
	Dir string
	// Mounts are extra host paths to show inside.
	Mounts []Mount
	// Env holds KEY=VALUE pairs for the command. Nothing else of keyhole's
	// environment is passed; PATH, HOME, TMPDIR and LANG get defaults when
	// Env does not set them.
	Env []string
	// Limits bounds what the sandbox may spend.
	Limits Limits
	// Net is the network the sandbox sees; empty means NetNone.
	Net NetMode
	// BrokerSocket is the broker's Unix socket; NetBroker requires it.
	BrokerSocket string
	// BrokerPort is the port of the broker listener on 127.0.0.1 inside the
	// sandbox; 0 lets the init choose one. Either way the command sees
	// KEYHOLE_BROKER_URL and Sandbox.BrokerURL reports it.
	BrokerPort int

	// Stdin, Stdout and Stderr are the command's standard streams; nil
	// means /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Environment variables keyhole sets for the command.
const (
	defaultPath   = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
	defaultLang   = "C.UTF-8"
	BrokerURLName = "KEYHOLE_BROKER_URL"
)

// commandEnv returns the environment of the command: the caller's pairs
// with the four defaults added where the caller did not set them.
func (s *Spec) commandEnv() []string {
	env := make([]string, 0, len(s.Env)+4)
	have := make(map[string]bool, len(s.Env))
	for _, kv := range s.Env {
		k, _, _ := strings.Cut(kv, "=")
		have[k] = true
		env = append(env, kv)
	}
	defaults := [][2]string{{"PATH", defaultPath}, {"HOME", WorkDir},
		{"TMPDIR", TmpDir}, {"LANG", defaultLang}}
	for _, d := range defaults {
		if !have[d[0]] {
			env = append(env, d[0]+"="+d[1])
		}
	}
	return env
}

// ErrInvalidSpec is wrapped by every error about a Spec that cannot run.
var ErrInvalidSpec = errors.New("sandbox: invalid spec")

func (s *Spec) validate() error {
	if err := s.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return nil
}

func (s *Spec) check() error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("no command given")
	}
	if s.Dir != "" && !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("dir %q is not an absolute path", s.Dir)
	}
	for _, m := range s.Mounts {
		if err := m.validate(); err != nil {
			return err
		}
	}
	for _, kv := range s.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "\x00") || strings.Contains(kv, "\x00") {
			return fmt.Errorf("env entry %q is not KEY=VALUE", kv)
		}
	}
	if err := s.checkNet(); err != nil {
		return err
	}
	return s.Limits.withDefaults().validate()
}

func (s *Spec) checkNet() error {
	switch s.Net {
	case "", NetNone, NetHost:
		if s.BrokerSocket != "" {
			return errors.New("a broker socket needs net mode broker")
		}
	case NetBroker:
		if s.BrokerSocket == "" {
			return errors.New("net mode broker needs a broker socket")
		}
	default:
		return fmt.Errorf("net mode %q is not none, broker or host", s.Net)
	}
	if s.BrokerPort < 0 || s.BrokerPort > 65535 {
		return fmt.Errorf("broker port %d is out of range", s.BrokerPort)
	}
	return nil
}
