package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// namespaceError turns a failure to start the init into an error that says
// what to change when the kernel refused the namespaces.
func namespaceError(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("sandbox: start init: %w", err)
	}
	switch errno {
	case unix.EPERM, unix.EACCES, unix.ENOSPC, unix.EINVAL, unix.EUSERS:
		return fmt.Errorf("%w (%v): %s; see docs/SANDBOX.md", ErrNoUserNamespaces,
			errno, namespaceAdvice())
	}
	return fmt.Errorf("sandbox: start init: %w", err)
}

// namespaceAdvice names the setting most likely to blame.
func namespaceAdvice() string {
	switch {
	case readSysctl("kernel/unprivileged_userns_clone") == "0":
		return "enable them with sysctl kernel.unprivileged_userns_clone=1"
	case readSysctl("user/max_user_namespaces") == "0":
		return "enable them with sysctl user.max_user_namespaces=15000"
	case readSysctl("kernel/apparmor_restrict_unprivileged_userns") == "1":
		return "AppArmor restricts them: install an AppArmor profile for keyhole " +
			"that allows userns, or set kernel.apparmor_restrict_unprivileged_userns=0"
	case inContainer():
		return "keyhole runs in a container whose seccomp profile or missing " +
			"capabilities block them: run the container with " +
			"--security-opt seccomp=unconfined and --security-opt apparmor=unconfined, " +
			"or on a host or VM"
	}
	return "the kernel may lack CONFIG_USER_NS, or a security module blocks them"
}

func readSysctl(name string) string {
	data, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func inContainer() bool {
	for _, p := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return os.Getenv("container") != ""
}

// Probe reports whether this kernel lets keyhole create a sandbox's
// namespaces, by starting /bin/true in them. It returns nil or an error
// wrapping ErrNoUserNamespaces that says how to fix it.
func Probe() error {
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
			unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: UserID, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: GroupID, HostID: os.Getgid(), Size: 1}},
	}}
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, attr)
	if err != nil {
		return namespaceError(err)
	}
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	for errors.Is(err, syscall.EINTR) {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
	}
	return nil
}
