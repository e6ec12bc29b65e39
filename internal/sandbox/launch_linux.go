package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// launchError is a failure to start the command, with the kind the parent
// turns into an exit status.
type launchError struct {
	kind string
	err  error
}

func (e *launchError) Error() string { return e.err.Error() }
func (e *launchError) Unwrap() error { return e.err }

// launch starts the command on a thread of its own that first takes on every
// restriction the command must carry: no_new_privs, rlimits, Landlock, no
// capabilities and the seccomp filters. The command inherits that thread's
// state at fork; the thread then exits, so the rest of the init keeps the
// powers it needs to supervise. It returns the command's pid.
func launch(cfg *initConfig, env []string) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread dies with this goroutine.
		runtime.LockOSThread()
		pid, err := restrictAndStart(cfg, env)
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

func restrictAndStart(cfg *initConfig, env []string) (int, error) {
	path, err := findProgram(cfg.Command[0], env)
	if err != nil {
		return 0, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("set no_new_privs: %w", err)
	}
	if err := setRlimits(cfg); err != nil {
		return 0, err
	}
	if err := restrictLandlock(cfg); err != nil {
		return 0, err
	}
	if err := dropCapabilities(); err != nil {
		return 0, err
	}
	if err := loadSeccomp(); err != nil {
		return 0, err
	}
	attr := &syscall.ProcAttr{
		Dir:   WorkDir,
		Env:   env,
		Files: []uintptr{0, 1, 2},
		// A session of its own: the command has no controlling terminal,
		// so it cannot push keystrokes into the caller's (TIOCSTI).
		Sys: &syscall.SysProcAttr{Setsid: true},
	}
	pid, err := syscall.ForkExec(path, cfg.Command, attr)
	if err != nil {
		return 0, execError(cfg.Command[0], err)
	}
	return pid, nil
}

// setRlimits sets the second line of limits. They are process-wide, so the
// init carries them too; it writes no files and holds few descriptors.
func setRlimits(cfg *initConfig) error {
	limits := []struct {
		res int
		val uint64
	}{
		{unix.RLIMIT_NOFILE, uint64(cfg.OpenFiles)},
		{unix.RLIMIT_FSIZE, uint64(cfg.MaxFileSize)},
		{unix.RLIMIT_CORE, 0},
	}
	for _, l := range limits {
		// syscall.Setrlimit also stops Go restoring its own NOFILE value
		// in the child.
		rl := syscall.Rlimit{Cur: l.val, Max: l.val}
		if err := syscall.Setrlimit(l.res, &rl); err != nil {
			return fmt.Errorf("set rlimit %d: %w", l.res, err)
		}
	}
	return nil
}

// dropCapabilities empties every capability set of the calling thread and
// locks the securebits, so nothing the command executes can regain one.
func dropCapabilities() error {
	for c := 0; c <= 63; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// NOROOT, NO_SETUID_FIXUP, KEEP_CAPS and NO_CAP_AMBIENT_RAISE, each
	// with its lock bit (linux/securebits.h).
	const secbits = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, secbits, 0, 0, 0); err != nil {
		return fmt.Errorf("lock securebits: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}

// findProgram resolves name against PATH in env, as a shell would.
func findProgram(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name)
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", &launchError{kindNotFound, fmt.Errorf("%s: command not found", name)}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return &launchError{kindNotFound, fmt.Errorf("%s: no such file", p)}
	case fi.IsDir() || unix.Access(p, unix.X_OK) != nil:
		return &launchError{kindPermission, fmt.Errorf("%s: permission denied", p)}
	}
	return nil
}

func execError(name string, err error) error {
	kind := kindSetup
	switch {
	case errors.Is(err, unix.ENOENT):
		kind = kindNotFound
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		kind = kindPermission
	}
	return &launchError{kind, fmt.Errorf("start %s: %w", name, err)}
}
