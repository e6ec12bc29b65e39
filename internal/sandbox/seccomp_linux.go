package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The deny-list filter is assembled by github.com/elastic/go-seccomp-bpf
// from the policy in seccomp_policy_test.go and checked in as
// seccomp_table_linux.go; "go test -run TestSeccompTable -update" rewrites
// it. Loading a ready program keeps the library, and the syscall tables it
// builds for every architecture at start-up, out of each sandbox's init.

// auditArch is the AUDIT_ARCH value of the architectures keyhole supports.
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}

// loadSeccomp installs both filters on the calling thread. no_new_privs
// must be set already.
func loadSeccomp() error {
	deny, ok := denyFilter[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("seccomp: no filter for %s", runtime.GOARCH)
	}
	if err := loadFilter(deny); err != nil {
		return fmt.Errorf("seccomp deny filter: %w", err)
	}
	guard, err := guardFilter(runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := loadFilter(guard); err != nil {
		return fmt.Errorf("seccomp guard filter: %w", err)
	}
	return nil
}

// guardFilter kills any syscall made through another ABI (i386 or x32,
// which the deny list lets through) and refuses packet sockets, raw sockets
// and the terminal-injecting ioctls. It compares only the low 32 bits of
// these int arguments, as the kernel does, so high garbage cannot slip by.
func guardFilter(goarch string) ([]unix.SockFilter, error) {
	arch, ok := auditArch[goarch]
	if !ok {
		return nil, fmt.Errorf("seccomp: no filter for %s", goarch)
	}
	const (
		kill  = 0x80000000 // SECCOMP_RET_KILL_PROCESS
		allow = 0x7fff0000 // SECCOMP_RET_ALLOW
		eperm = 0x00050000 | uint32(unix.EPERM)
		arg0  = 16 // offsetof(struct seccomp_data, args[0]), low half
		arg1  = 24
	)
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 4, Size: 4},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch, SkipTrue: 1},
		/* 2 */ bpf.RetConstant{Val: kill},
		/* 3 */ bpf.LoadAbsolute{Off: 0, Size: 4},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
		/* 5 */ bpf.RetConstant{Val: kill},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_SOCKET, SkipTrue: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_IOCTL, SkipTrue: 8},
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
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble guard filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return filter, nil
}

// loadFilter installs a filter on the calling thread.
func loadFilter(filter []unix.SockFilter) error {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0,
		uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return errno
	}
	return nil
}
