package sandbox

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestParseMount(t *testing.T) {
	tests := []struct {
		in      string
		want    Mount
		wantErr bool
	}{
		{"/a:/b", Mount{Source: "/a", Target: "/b"}, false},
		{"/a:/b:ro", Mount{Source: "/a", Target: "/b"}, false},
		{"/a:/b:rw", Mount{Source: "/a", Target: "/b", Writable: true}, false},
		{"/a", Mount{}, true},
		{"/a:/b:rx", Mount{}, true},
		{":/b", Mount{}, true},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseMount(%q) error %v, want error %v", tt.in, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseMount(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Command: []string{"true"}}
	tests := []struct {
		name   string
		change func(*Spec)
		valid  bool
	}{
		{"minimal", func(*Spec) {}, true},
		{"no command", func(s *Spec) { s.Command = nil }, false},
		{"relative dir", func(s *Spec) { s.Dir = "job" }, false},
		{"mount over /proc", func(s *Spec) { s.Mounts = []Mount{{"/x", "/proc", false}} }, false},
		{"mount in /dev", func(s *Spec) { s.Mounts = []Mount{{"/x", "/dev/sda", false}} }, false},
		{"unclean target", func(s *Spec) { s.Mounts = []Mount{{"/x", "/a/../b", false}} }, false},
		{"bad env", func(s *Spec) { s.Env = []string{"NOEQUALS"} }, false},
		{"broker without socket", func(s *Spec) { s.Net = NetBroker }, false},
		{"socket without broker", func(s *Spec) { s.BrokerSocket = "/s" }, false},
		{"unknown net", func(s *Spec) { s.Net = "wifi" }, false},
		{"tiny memory", func(s *Spec) { s.Limits.Memory = 1024 }, false},
		{"broker", func(s *Spec) { s.Net, s.BrokerSocket = NetBroker, "/s" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.change(&s)
			err := s.validate()
			if (err == nil) != tt.valid {
				t.Errorf("validate() = %v, want valid %v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("error %v does not wrap ErrInvalidSpec", err)
			}
		})
	}
}

// TestGuardFilter runs the guard filter in a BPF interpreter on crafted
// seccomp_data records.
func TestGuardFilter(t *testing.T) {
	filter, err := guardFilter("amd64")
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(filter))
	for i, f := range filter {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insts, _ := bpf.Disassemble(raw)
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow = 0x7fff0000
		eperm = 0x00050000 | uint32(unix.EPERM)
		kill  = 0x80000000
	)
	native := uint32(unix.AUDIT_ARCH_X86_64)
	tests := []struct {
		name string
		arch uint32
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{"read", native, unix.SYS_READ, [6]uint64{}, allow},
		{"i386 abi", 0x40000003, unix.SYS_READ, [6]uint64{}, kill},
		{"x32 abi", native, 0x40000000 | unix.SYS_READ, [6]uint64{}, kill},
		{"tcp socket", native, unix.SYS_SOCKET, [6]uint64{unix.AF_INET, unix.SOCK_STREAM}, allow},
		{"raw socket", native, unix.SYS_SOCKET, [6]uint64{unix.AF_INET, unix.SOCK_RAW}, eperm},
		{"raw socket cloexec", native, unix.SYS_SOCKET,
			[6]uint64{unix.AF_INET, unix.SOCK_RAW | unix.SOCK_CLOEXEC}, eperm},
		{"raw socket high bits", native, unix.SYS_SOCKET,
			[6]uint64{unix.AF_INET6, 1<<40 | unix.SOCK_RAW}, eperm},
		{"packet socket", native, unix.SYS_SOCKET, [6]uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, eperm},
		{"tiocsti", native, unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI}, eperm},
		{"tiocsti high bits", native, unix.SYS_IOCTL, [6]uint64{0, 1<<33 | unix.TIOCSTI}, eperm},
		{"tcgets", native, unix.SYS_IOCTL, [6]uint64{0, unix.TCGETS}, allow},
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the table uses x86-64 syscall numbers")
	}
	for _, tt := range tests {
		// The interpreter loads words big-endian, as for packets; seccomp
		// loads them in native order. Writing each 32-bit word big-endian
		// at its x86-64 offset makes both see the same values.
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], tt.nr)
		binary.BigEndian.PutUint32(data[4:], tt.arch)
		for i, a := range tt.args {
			binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
			binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
		}
		got, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != tt.want {
			t.Errorf("%s: filter returned %#x, want %#x", tt.name, got, tt.want)
		}
	}
}
