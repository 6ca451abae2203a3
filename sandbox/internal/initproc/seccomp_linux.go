package initproc

import (
	"errors"
	"fmt"
	"runtime"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM inside the sandbox: debugging and memory
// access of other processes, (re)mounting and namespace changes, kernel
// keyrings, BPF, performance counters, kernel modules and kexec, io_uring
// (which bypasses seccomp for the operations it queues), userfaultfd (a
// kernel-race amplifier), setrlimit (the tool's limits are soft limits it
// must not raise; prlimit64 is handled in the prefix) and administrative
// calls. Names missing from the running architecture's table are skipped.
var deniedSyscalls = []string{
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns", "setrlimit",
	"bpf", "keyctl", "add_key", "request_key", "perf_event_open", "fanotify_init",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
	"swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog",
	"lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "uselib", "vhangup",
	"iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"nfsservctl", "_sysctl", "create_module", "get_kernel_syms", "query_module",
}

// Values the hand-built prefix checks.
const (
	ipprotoMPTCP = 262        // IPPROTO_MPTCP, not covered by Landlock's TCP rules
	tiocsti      = 0x5412     // TIOCSTI: push input into a terminal
	tioclinux    = 0x541C     // TIOCLINUX: console selection paste, same effect
	cloneNSFlags = 0x7E020000 // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
	x32Bit       = 0x40000000 // __X32_SYSCALL_BIT

	retKillProcess = 0x80000000
	retErrno       = 0x00050000

	offNr   = 0
	offArch = 4
)

func offArgLow(i int) uint32 { return uint32(16 + 8*i) } // little-endian low word of args[i]

// nativeAudit returns the audit architecture of the running binary.
func nativeAudit() (uint32, error) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, nil
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, nil
	}
	return 0, fmt.Errorf("seccomp filter: architecture %s is not supported", runtime.GOARCH)
}

// seccompProgram builds the filter: a hand-built prefix that kills any
// syscall made through a foreign ABI (32-bit int 0x80 on amd64, x32), refuses
// MPTCP sockets, namespace-creating clone flags, clone3 (whose flags a filter
// cannot read; libc falls back to clone) and the TIOCSTI/TIOCLINUX ioctls
// (comparing only the 32 bits the kernel reads) and prlimit64 calls that set
// a limit, followed by go-seccomp-bpf's deny list.
func seccompProgram() ([]bpf.RawInstruction, error) {
	audit, err := nativeAudit()
	if err != nil {
		return nil, err
	}
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	var names []string
	for _, n := range deniedSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls:      []seccomp.SyscallGroup{{Action: seccomp.ActionErrno, Names: names}},
	}
	tail, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assembling seccomp deny list: %w", err)
	}

	eperm := uint32(retErrno | uint32(unix.EPERM))
	enosys := uint32(retErrno | uint32(unix.ENOSYS))
	eproto := uint32(retErrno | uint32(unix.EPROTONOSUPPORT))
	prog, err := assemblePrefix(audit, eperm, enosys, eproto)
	if err != nil {
		return nil, err
	}
	prog = append(prog, tail...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling seccomp filter: %w", err)
	}
	return raw, nil
}

// asm is a tiny forward-only BPF assembler with labels, so that no jump
// offset in the prefix is counted by hand.
type asm struct {
	ins    []bpf.Instruction
	labels map[string]int
	fix    []asmFix
}

type asmFix struct {
	at          int
	true, false string // labels; "" is the next instruction
}

func (a *asm) op(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) label(name string) { a.labels[name] = len(a.ins) }

// jif appends a conditional jump to label t when true, f when false ("" is
// fall through).
func (a *asm) jif(cond bpf.JumpTest, val uint32, t, f string) {
	a.fix = append(a.fix, asmFix{at: len(a.ins), true: t, false: f})
	a.ins = append(a.ins, bpf.JumpIf{Cond: cond, Val: val})
}

// jmp appends an unconditional jump to label t.
func (a *asm) jmp(t string) {
	a.fix = append(a.fix, asmFix{at: len(a.ins), true: t})
	a.ins = append(a.ins, bpf.Jump{})
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, label string) (int, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := a.labels[label]
		if !ok {
			return 0, fmt.Errorf("seccomp prefix: undefined label %q", label)
		}
		n := to - from - 1
		if n < 0 || n > 255 {
			return 0, fmt.Errorf("seccomp prefix: jump to %q out of range", label)
		}
		return n, nil
	}
	for _, f := range a.fix {
		t, err := skip(f.at, f.true)
		if err != nil {
			return nil, err
		}
		switch j := a.ins[f.at].(type) {
		case bpf.JumpIf:
			fl, err := skip(f.at, f.false)
			if err != nil {
				return nil, err
			}
			j.SkipTrue, j.SkipFalse = uint8(t), uint8(fl)
			a.ins[f.at] = j
		case bpf.Jump:
			a.ins[f.at] = bpf.Jump{Skip: uint32(t)}
		}
	}
	return a.ins, nil
}

// assemblePrefix builds the hand-written part of the filter. It ends at the
// label "cont", where the deny list that follows takes over.
func assemblePrefix(audit, eperm, enosys, eproto uint32) ([]bpf.Instruction, error) {
	a := &asm{labels: map[string]int{}}
	a.op(bpf.LoadAbsolute{Off: offArch, Size: 4})
	a.jif(bpf.JumpEqual, audit, "", "kill") // foreign architecture (int 0x80 on amd64)
	a.op(bpf.LoadAbsolute{Off: offNr, Size: 4})
	if runtime.GOARCH == "amd64" {
		a.jif(bpf.JumpGreaterOrEqual, x32Bit, "kill", "") // x32 ABI
	}
	a.jif(bpf.JumpEqual, uint32(unix.SYS_SOCKET), "socket", "")
	a.jif(bpf.JumpEqual, uint32(unix.SYS_IOCTL), "ioctl", "")
	a.jif(bpf.JumpEqual, uint32(unix.SYS_CLONE), "clone", "")
	a.jif(bpf.JumpEqual, uint32(unix.SYS_CLONE3), "enosys", "")
	a.jif(bpf.JumpEqual, uint32(unix.SYS_PRLIMIT64), "prlimit", "")
	a.jmp("cont")

	a.label("prlimit") // prlimit64(pid, resource, new, old): reading is allowed, setting is not
	a.op(bpf.LoadAbsolute{Off: offArgLow(2), Size: 4})
	a.jif(bpf.JumpEqual, 0, "", "eperm")
	a.op(bpf.LoadAbsolute{Off: offArgLow(2) + 4, Size: 4}) // a pointer's high word
	a.jif(bpf.JumpEqual, 0, "cont", "eperm")

	a.label("socket") // socket(domain, type, protocol)
	a.op(bpf.LoadAbsolute{Off: offArgLow(2), Size: 4})
	a.jif(bpf.JumpEqual, ipprotoMPTCP, "eproto", "cont")

	a.label("ioctl") // ioctl(fd, request, ...): the kernel reads 32 bits of request
	a.op(bpf.LoadAbsolute{Off: offArgLow(1), Size: 4})
	a.jif(bpf.JumpEqual, tiocsti, "eperm", "")
	a.jif(bpf.JumpEqual, tioclinux, "eperm", "cont")

	a.label("clone") // clone(flags, ...) on amd64 and arm64
	a.op(bpf.LoadAbsolute{Off: offArgLow(0), Size: 4})
	a.jif(bpf.JumpBitsSet, cloneNSFlags, "eperm", "cont")

	a.label("kill")
	a.op(bpf.RetConstant{Val: retKillProcess})
	a.label("eperm")
	a.op(bpf.RetConstant{Val: eperm})
	a.label("enosys")
	a.op(bpf.RetConstant{Val: enosys})
	a.label("eproto")
	a.op(bpf.RetConstant{Val: eproto})
	a.label("cont")
	return a.resolve()
}

// seccompFilter returns the filter in the form seccomp(2) takes.
func seccompFilter() ([]unix.SockFilter, error) {
	raw, err := seccompProgram()
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 || len(raw) > 4096 {
		return nil, errors.New("seccomp filter: bad program length")
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
