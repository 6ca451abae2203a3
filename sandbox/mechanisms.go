package sandbox

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/warden-run/warden/sandbox/internal/initproc"
	"github.com/warden-run/warden/tier"
)

// Mechanism names, as they appear in Mechanisms.List, in events and in
// `warden sandbox check`.
const (
	MechUserNS         = initproc.MechUserNS         // new user namespace
	MechMountNS        = initproc.MechMountNS        // new mount namespace
	MechPIDNS          = initproc.MechPIDNS          // new PID namespace (kill of the whole tree)
	MechIPCNS          = initproc.MechIPCNS          // new IPC namespace
	MechUTSNS          = initproc.MechUTSNS          // new UTS namespace
	MechNetNS          = initproc.MechNetNS          // new network namespace (loopback only)
	MechPivotRoot      = initproc.MechPivotRoot      // minimal root of read-only bind mounts
	MechUnprivileged   = initproc.MechUnprivileged   // sandbox uid 0 is an unprivileged host uid
	MechNoNewPrivs     = initproc.MechNoNewPrivs     // no privilege gain through execve
	MechCapsDropped    = initproc.MechCapsDropped    // no capabilities, bounding set empty
	MechFDsClosed      = initproc.MechFDsClosed      // only stdin, stdout, stderr reach the tool
	MechNonDumpable    = initproc.MechNonDumpable    // the init cannot be read or traced
	MechLandlockFS     = initproc.MechLandlockFS     // Landlock filesystem rules
	MechLandlockNet    = initproc.MechLandlockNet    // Landlock TCP bind/connect rules (ABI 4+)
	MechLandlockScoped = initproc.MechLandlockScoped // Landlock signal and abstract-socket scoping (ABI 6+)
	MechSeccomp        = initproc.MechSeccomp        // seccomp filter
	MechMemoryLimit    = initproc.MechMemoryLimit
	MechPidsLimit      = initproc.MechPidsLimit
	MechCPULimit       = initproc.MechCPULimit
	MechFilesLimit     = initproc.MechFilesLimit
	MechEgress         = initproc.MechEgress // no route out but the allow-list proxy
)

// allMechanisms lists every mechanism in the order they are reported.
var allMechanisms = []string{
	MechUserNS, MechMountNS, MechPIDNS, MechIPCNS, MechUTSNS, MechNetNS,
	MechPivotRoot, MechUnprivileged, MechNoNewPrivs, MechCapsDropped,
	MechFDsClosed, MechNonDumpable, MechLandlockFS, MechLandlockNet,
	MechLandlockScoped, MechSeccomp, MechMemoryLimit, MechPidsLimit,
	MechCPULimit, MechFilesLimit, MechEgress,
}

// optionalMechanisms are layered extras whose absence never refuses a launch:
// Landlock's network and scoping rules depend on the kernel's ABI and repeat
// what the network namespace and the PID namespace already enforce; CPU
// limits need a cgroup, which an unprivileged Warden does not have.
var optionalMechanisms = map[string]bool{
	MechLandlockNet:    true,
	MechLandlockScoped: true,
	MechCPULimit:       true,
}

// Required returns the mechanisms whose absence refuses a launch at the given
// tier preset. Foundation requires none (a missing mechanism is a logged
// warning); Advanced and Optimized require every mechanism except the
// optional layers, and seccomp only where the preset asks for it.
func Required(p tier.Preset) []string {
	if !p.SandboxRequired {
		return nil
	}
	var req []string
	for _, m := range allMechanisms {
		if optionalMechanisms[m] || (m == MechSeccomp && !p.SandboxSeccomp) {
			continue
		}
		if m == MechEgress && !p.SandboxEgressList {
			continue
		}
		req = append(req, m)
	}
	return req
}

// Mechanisms records what confined one launch. The assessment (package
// posture) reads it; every launch event carries it.
type Mechanisms struct {
	InForce     map[string]bool   `json:"in_force"`
	Detail      map[string]string `json:"detail,omitempty"` // how, e.g. "cgroup v1", "rlimit", "ABI 7"
	LandlockABI int               `json:"landlock_abi"`
	UIDMap      string            `json:"uid_map,omitempty"` // "0 65534 1": sandbox uid 0 is host uid 65534
	Warnings    []string          `json:"warnings,omitempty"`
}

func newMechanisms() Mechanisms {
	return Mechanisms{InForce: map[string]bool{}, Detail: map[string]string{}}
}

func (m *Mechanisms) set(name string, ok bool, detail string) {
	if m.InForce == nil {
		*m = newMechanisms()
	}
	m.InForce[name] = ok
	if detail != "" {
		m.Detail[name] = detail
	}
}

// Has reports whether the named mechanism was in force.
func (m Mechanisms) Has(name string) bool { return m.InForce[name] }

// Missing returns the mechanisms among want that were not in force.
func (m Mechanisms) Missing(want []string) []string {
	var out []string
	for _, w := range want {
		if !m.InForce[w] {
			out = append(out, w)
		}
	}
	return out
}

// Mechanism is one line of a Mechanisms report.
type Mechanism struct {
	Name    string
	InForce bool
	Detail  string
}

// List returns every mechanism in a stable order.
func (m Mechanisms) List() []Mechanism {
	out := make([]Mechanism, 0, len(allMechanisms))
	for _, n := range allMechanisms {
		out = append(out, Mechanism{Name: n, InForce: m.InForce[n], Detail: m.Detail[n]})
	}
	return out
}

// Attrs renders the report as flat event attributes: "mech.<name>" is
// "on" or "off", with the detail after a colon.
func (m Mechanisms) Attrs() map[string]string {
	a := make(map[string]string, len(allMechanisms)+2)
	for _, x := range m.List() {
		v := "off"
		if x.InForce {
			v = "on"
		}
		if x.Detail != "" {
			v += ":" + x.Detail
		}
		a["mech."+x.Name] = v
	}
	a["landlock_abi"] = strconv.Itoa(m.LandlockABI)
	if m.UIDMap != "" {
		a["uid_map"] = m.UIDMap
	}
	if len(m.Warnings) > 0 {
		a["warnings"] = strings.Join(m.Warnings, "; ")
	}
	return a
}

// String renders the mechanisms in force, for logs.
func (m Mechanisms) String() string {
	var on, off []string
	for _, x := range m.List() {
		if x.InForce {
			on = append(on, x.Name)
		} else {
			off = append(off, x.Name)
		}
	}
	return fmt.Sprintf("in force: %s; missing: %s", strings.Join(on, ","), strings.Join(off, ","))
}
