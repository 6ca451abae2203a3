package initproc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// LandlockABI returns the kernel's Landlock ABI version, 0 when Landlock is
// unavailable.
func LandlockABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// landlockRuleset builds a Landlock ruleset for the spec's paths and ports,
// handling every right the kernel's ABI knows (best effort downgrades to the
// running kernel). It returns the ruleset fd; the caller restricts the
// thread with it.
func landlockRuleset(s Landlock) (int, uint32, error) {
	var rules []landlock.Rule
	for _, p := range s.RO {
		if isDir(p) {
			rules = append(rules, landlock.RODirs(p))
		} else {
			rules = append(rules, landlock.ROFiles(p))
		}
	}
	for _, p := range s.RW {
		if isDir(p) {
			rules = append(rules, landlock.RWDirs(p).WithRefer())
		} else {
			rules = append(rules, landlock.RWFiles(p))
		}
	}
	for _, p := range s.Dev {
		rules = append(rules, landlock.RWFiles(p).WithIoctlDev().IgnoreIfMissing())
	}
	for _, port := range s.Connect {
		rules = append(rules, landlock.ConnectTCP(port))
	}
	for _, port := range s.Bind {
		rules = append(rules, landlock.BindTCP(port))
	}
	fd, flags, err := landlock.V11.BestEffort().NewRulesetFD(rules...)
	if err != nil {
		return -1, 0, fmt.Errorf("building Landlock ruleset: %w", err)
	}
	if fd < 0 {
		return -1, 0, errors.New("building Landlock ruleset: Landlock is not available")
	}
	return fd, flags, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Securebits that make uid 0 an ordinary uid for good: no capabilities from
// being root or from execve, none kept across setuid, no ambient raise.
const secureBitsLocked = 1<<0 | 1<<1 | // SECBIT_NOROOT(_LOCKED)
	1<<2 | 1<<3 | // SECBIT_NO_SETUID_FIXUP(_LOCKED)
	1<<5 | // SECBIT_KEEP_CAPS_LOCKED
	1<<6 | 1<<7 // SECBIT_NO_CAP_AMBIENT_RAISE(_LOCKED)

// dropCapabilities empties every capability set of the calling thread,
// including the bounding and ambient sets, and locks securebits so that
// execve cannot restore any. It affects only the calling thread. Securebits
// and the bounding set need CAP_SETPCAP, held here in the sandbox's user
// namespace; a thread without it (no namespaces, unprivileged host user)
// holds no capabilities to lose, and no_new_privs stops it gaining any, so
// what counts is the final check that nothing is held.
func dropCapabilities() (detail string, err error) {
	bitsErr := unix.Prctl(unix.PR_SET_SECUREBITS, secureBitsLocked, 0, 0, 0)
	kept := 0
	for c := 0; c <= lastCap(); c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && isCapBound(c) {
			kept++
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return "", fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return "", fmt.Errorf("clearing capabilities: %w", err)
	}
	if err := capsEmpty(); err != nil {
		return "", err
	}
	switch {
	case kept > 0 && bitsErr != nil:
		return "bounding set and securebits kept (no CAP_SETPCAP); nothing held", nil
	case kept > 0:
		return "bounding set kept (no CAP_SETPCAP); nothing held", nil
	case bitsErr != nil:
		return "securebits not locked (no CAP_SETPCAP); nothing held", nil
	}
	return "all sets empty, securebits locked", nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() int {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && n < 128 {
			return n
		}
	}
	return 63
}

func isCapBound(c int) bool {
	r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
	return err == nil && r == 1
}

// capsEmpty checks, with capget, that the calling thread holds nothing.
func capsEmpty() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	for _, d := range data {
		if d.Effective|d.Permitted|d.Inheritable != 0 {
			return errors.New("capabilities remain after dropping them")
		}
	}
	return nil
}

// confineThread applies, to the calling (locked) thread only, everything
// that a tool started from it inherits: capabilities dropped, no_new_privs,
// Landlock and seccomp. rulesetFD < 0 skips Landlock; prog == nil skips
// seccomp. It returns the first error of a mechanism in require and records
// every outcome in in.
func confineThread(rulesetFD int, rulesetFlags uint32, prog []unix.SockFilter, in func(string, bool, string), require map[string]bool) error {
	if detail, err := dropCapabilities(); err != nil {
		in(MechCapsDropped, false, err.Error())
		if require[MechCapsDropped] {
			return err
		}
	} else {
		in(MechCapsDropped, true, detail)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		// Without no_new_privs neither Landlock nor seccomp can be applied
		// by an unprivileged thread: nothing below would hold.
		in(MechNoNewPrivs, false, err.Error())
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	in(MechNoNewPrivs, true, "")
	if rulesetFD >= 0 {
		if err := ll.LandlockRestrictSelf(rulesetFD, rulesetFlags); err != nil {
			in(MechLandlockFS, false, err.Error())
			if require[MechLandlockFS] {
				return fmt.Errorf("applying Landlock: %w", err)
			}
		} else {
			in(MechLandlockFS, true, "")
		}
	}
	if prog != nil {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fp))); e != 0 {
			in(MechSeccomp, false, e.Error())
			if require[MechSeccomp] {
				return fmt.Errorf("installing seccomp filter: %w", e)
			}
		} else {
			in(MechSeccomp, true, "")
		}
	}
	return nil
}
