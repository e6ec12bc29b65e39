package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM inside the sandbox. Most already need a
// capability the command lacks; the filter is the second wall, and it also
// shuts kernel interfaces that need none (userfaultfd, io_uring, bpf, keys).
var deniedSyscalls = []string{
	"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
	"fspick", "move_mount", "open_tree", "mount_setattr",
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	"init_module", "finit_module", "delete_module",
	"bpf", "perf_event_open", "userfaultfd",
	"keyctl", "add_key", "request_key",
	"unshare", "setns",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"name_to_handle_at", "open_by_handle_at", "acct", "quotactl", "quotactl_fd",
	"syslog", "settimeofday", "clock_settime", "clock_adjtime", "vhangup",
}

// legacySyscalls are denied too where the architecture still has them.
var legacySyscalls = []string{"uselib", "create_module", "get_kernel_syms",
	"query_module", "nfsservctl", "ioperm", "iopl", "lookup_dcookie", "_sysctl"}

// namespaceFlags are the clone flags that make a namespace.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompPolicy is the deny-list filter, assembled by go-seccomp-bpf.
func seccompPolicy() (seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, fmt.Errorf("seccomp: %w", err)
	}
	names := deniedSyscalls
	for _, n := range legacySyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	cloneArg := uint32(0)
	if runtime.GOARCH == "s390x" {
		cloneArg = 1
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: names},
			{Action: seccomp.ActionErrno, NamesWithCondtions: []seccomp.NameWithConditions{{
				Name: "clone",
				Conditions: seccomp.ArgumentConditions{{
					Argument: cloneArg, Operation: seccomp.BitsSet, Value: namespaceFlags,
				}},
			}}},
			// clone3 passes its flags in memory, out of a filter's sight;
			// ENOSYS makes the C library fall back to clone.
			{Action: seccomp.Action(uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)),
				Names: []string{"clone3"}},
		},
	}, nil
}

// loadSeccomp installs both filters on the calling thread. no_new_privs
// must be set already.
func loadSeccomp() error {
	policy, err := seccompPolicy()
	if err != nil {
		return err
	}
	if err := seccomp.LoadFilter(seccomp.Filter{Policy: policy}); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	guard, err := guardFilter()
	if err != nil {
		return err
	}
	return loadRawFilter(guard)
}

// guardFilter kills any syscall made through another ABI (i386 or x32,
// which would dodge the deny list) and refuses packet sockets, raw sockets
// and the terminal-injecting ioctls. It compares only the low 32 bits of
// these int arguments, as the kernel does, so high garbage cannot slip by.
func guardFilter() ([]bpf.RawInstruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	socketNr, ok1 := info.SyscallNames["socket"]
	ioctlNr, ok2 := info.SyscallNames["ioctl"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("seccomp: no socket or ioctl syscall on %s", info.Name)
	}
	const (
		kill  = uint32(seccomp.ActionKillProcess)
		allow = uint32(seccomp.ActionAllow)
		eperm = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
		arg0  = 16 // offsetof(struct seccomp_data, args[0]), low half
		arg1  = 24
	)
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 4, Size: 4},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		/* 2 */ bpf.RetConstant{Val: kill},
		/* 3 */ bpf.LoadAbsolute{Off: 0, Size: 4},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
		/* 5 */ bpf.RetConstant{Val: kill},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(socketNr), SkipTrue: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ioctlNr), SkipTrue: 8},
		/* 8 */ bpf.RetConstant{Val: allow},
		// socket(domain, type, protocol)
		/* 9 */ bpf.LoadAbsolute{Off: arg0, Size: 4},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_PACKET, SkipTrue: 9},
		/* 11 */ bpf.LoadAbsolute{Off: arg1, Size: 4},
		/* 12 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf},
		/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SOCK_RAW, SkipTrue: 6},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SOCK_PACKET, SkipTrue: 5},
		/* 15 */ bpf.RetConstant{Val: allow},
		// ioctl(fd, request, ...)
		/* 16 */ bpf.LoadAbsolute{Off: arg1, Size: 4},
		/* 17 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.TIOCSTI, SkipTrue: 2},
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.TIOCLINUX, SkipTrue: 1},
		/* 19 */ bpf.RetConstant{Val: allow},
		/* 20 */ bpf.RetConstant{Val: eperm},
	}
	return bpf.Assemble(prog)
}

// loadRawFilter installs an assembled filter on the calling thread.
func loadRawFilter(raw []bpf.RawInstruction) error {
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0,
		uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp guard filter: %w", errno)
	}
	return nil
}
