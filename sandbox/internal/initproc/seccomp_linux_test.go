package initproc

import (
	"encoding/binary"
	"runtime"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData lays out struct seccomp_data for x/net/bpf's VM, which loads
// words big-endian: each 32-bit field the filter reads is stored so that the
// VM sees the value the kernel would.
func seccompData(arch uint32, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))       // low word, where the filter looks
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32)) // high word
	}
	return b
}

func TestSeccompFilterDecisions(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table below uses amd64 syscall numbers")
	}
	raw, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	const x86 = unix.AUDIT_ARCH_X86_64
	eperm := retErrno | uint32(unix.EPERM)
	for _, tc := range []struct {
		name string
		data []byte
		want uint32
	}{
		{"read", seccompData(x86, unix.SYS_READ, 0, 0, 0), 0x7fff0000},
		{"i386 getpid", seccompData(unix.AUDIT_ARCH_I386, 20), retKillProcess},
		{"x32 read", seccompData(x86, x32Bit|unix.SYS_READ), retKillProcess},
		{"tcp socket", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0), 0x7fff0000},
		{"mptcp socket", seccompData(x86, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP), retErrno | uint32(unix.EPROTONOSUPPORT)},
		{"ioctl TCGETS", seccompData(x86, unix.SYS_IOCTL, 0, unix.TCGETS), 0x7fff0000},
		{"ioctl TIOCSTI", seccompData(x86, unix.SYS_IOCTL, 0, tiocsti), eperm},
		{"ioctl TIOCSTI high bits", seccompData(x86, unix.SYS_IOCTL, 0, 0xdead000000000000|tiocsti), eperm},
		{"ioctl TIOCLINUX", seccompData(x86, unix.SYS_IOCTL, 0, tioclinux), eperm},
		{"clone thread", seccompData(x86, unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND), 0x7fff0000},
		{"clone newuser", seccompData(x86, unix.SYS_CLONE, unix.CLONE_NEWUSER), eperm},
		{"clone newnet", seccompData(x86, unix.SYS_CLONE, unix.CLONE_NEWNET|uint64(unix.SIGCHLD)), eperm},
		{"clone3", seccompData(x86, unix.SYS_CLONE3), retErrno | uint32(unix.ENOSYS)},
		{"ptrace", seccompData(x86, unix.SYS_PTRACE), eperm},
		{"getrlimit", seccompData(x86, unix.SYS_GETRLIMIT, unix.RLIMIT_DATA, 0x7ffd0000), 0x7fff0000},
		{"prlimit64 get", seccompData(x86, unix.SYS_PRLIMIT64, 0, unix.RLIMIT_DATA, 0, 0x7ffd0000), 0x7fff0000},
		{"prlimit64 set", seccompData(x86, unix.SYS_PRLIMIT64, 0, unix.RLIMIT_DATA, 0x7ffd0010, 0), eperm},
		{"prlimit64 set, pointer with a zero low word", seccompData(x86, unix.SYS_PRLIMIT64, 0, unix.RLIMIT_DATA, 0x7f0000000000, 0), eperm},
		{"setrlimit", seccompData(x86, unix.SYS_SETRLIMIT, unix.RLIMIT_DATA, 0x7ffd0010), eperm},
		{"mount", seccompData(x86, unix.SYS_MOUNT), eperm},
		{"unshare", seccompData(x86, unix.SYS_UNSHARE), eperm},
		{"setns", seccompData(x86, unix.SYS_SETNS), eperm},
		{"bpf", seccompData(x86, unix.SYS_BPF), eperm},
		{"keyctl", seccompData(x86, unix.SYS_KEYCTL), eperm},
		{"perf_event_open", seccompData(x86, unix.SYS_PERF_EVENT_OPEN), eperm},
		{"io_uring_setup", seccompData(x86, unix.SYS_IO_URING_SETUP), eperm},
		{"kexec_load", seccompData(x86, unix.SYS_KEXEC_LOAD), eperm},
		{"finit_module", seccompData(x86, unix.SYS_FINIT_MODULE), eperm},
	} {
		got, err := vm.Run(tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if uint32(got) != tc.want {
			t.Errorf("%s: filter returned %#x, want %#x", tc.name, uint32(got), tc.want)
		}
	}
}
