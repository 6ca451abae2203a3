package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sandbox configures the confinement of tool servers and commands (package
// sandbox). Upstream servers name a profile; `warden sandbox run --profile P`
// does too. A profile named "default" replaces the built-in default profile
// (no network, read-only system paths, a private workspace).
type Sandbox struct {
	Profiles map[string]SandboxProfile `yaml:"profiles,omitempty"`
}

// SandboxProfile is one named sandbox: what a confined process sees of the
// host, what it may reach and how much it may use. Everything not listed is
// invisible: the root is built from read-only system paths plus the paths
// given here.
type SandboxProfile struct {
	// ReadOnly are host paths visible read-only at the same path.
	ReadOnly []string `yaml:"ro,omitempty"`
	// ReadWrite are host paths visible writable at the same path. They must
	// be writable by User on the host.
	ReadWrite []string `yaml:"rw,omitempty"`
	// Workspace is a host directory mounted writable at /workspace (the
	// working directory and $HOME). Empty: a private empty directory per
	// launch, removed when the process ends.
	Workspace string `yaml:"workspace,omitempty"`
	// Env is the process's environment, exactly: nothing of Warden's own
	// environment is inherited. PATH, HOME and TMPDIR get defaults unless
	// set here; proxy variables are added for network egress.
	Env map[string]string `yaml:"env,omitempty"`
	// PassEnv names variables copied from Warden's environment, for values
	// that must not be written in this file.
	PassEnv []string `yaml:"pass_env,omitempty"`
	// Network is "none" (the default: loopback only) or "egress" (outbound
	// only through Warden's proxy, to the hosts in Egress).
	Network string `yaml:"network,omitempty"`
	// Egress lists the destinations allowed with network "egress".
	Egress []EgressRule `yaml:"egress,omitempty"`
	// ListenPorts are TCP ports the process may bind (inside its own network
	// namespace, so only reachable from inside the sandbox).
	ListenPorts []int `yaml:"listen_ports,omitempty"`
	// Limits bound the resources the process tree may use.
	Limits SandboxLimits `yaml:"limits,omitempty"`
	// User is the host account (name, uid or uid:gid) that the sandbox's
	// uid 0 maps to when Warden runs as root. Default: nobody (65534).
	// When Warden runs unprivileged the sandbox maps to Warden's own user
	// and User must be empty.
	User string `yaml:"user,omitempty"`
}

// EgressRule allows connections to one host on some ports.
type EgressRule struct {
	// Host is a DNS name ("api.github.com"), a wildcard over subdomains
	// ("*.githubusercontent.com", which matches only names with at least one
	// more label, and which only clients honouring the proxy variables can
	// reach), or an IP literal (allowed only when listed).
	Host string `yaml:"host"`
	// Ports are the TCP ports allowed on Host; at least one.
	Ports []int `yaml:"ports"`
	// AllowPrivate permits Host to resolve to private, loopback, link-local
	// or otherwise non-public addresses. Off by default: a public name that
	// resolves to an internal address (DNS rebinding) is refused.
	AllowPrivate bool `yaml:"allow_private,omitempty"`
}

// SandboxLimits bound the resources of a sandboxed process tree. Zero takes
// the default noted on each field.
type SandboxLimits struct {
	Memory    ByteSize      `yaml:"memory,omitempty"`     // default 1GiB
	CPU       float64       `yaml:"cpu,omitempty"`        // CPUs; default 1
	Pids      int           `yaml:"pids,omitempty"`       // processes and threads, the sandbox's init included; default 256
	OpenFiles int           `yaml:"open_files,omitempty"` // per process; default 1024
	WallClock time.Duration `yaml:"wall_clock,omitempty"` // default none (a tool server lives as long as its session)
	Tmp       ByteSize      `yaml:"tmp,omitempty"`        // size of the private /tmp; default 64MiB
}

// Network modes of a sandbox profile.
const (
	NetworkNone   = "none"
	NetworkEgress = "egress"
)

// Profile returns the named profile, if configured.
func (c Sandbox) Profile(name string) (SandboxProfile, bool) {
	p, ok := c.Profiles[name]
	return p, ok
}

// ProfileNames returns the configured profile names, sorted.
func (c Sandbox) ProfileNames() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Character-class checks, written out rather than as package-level regular
// expressions: warden.yaml is read rarely, but every process of the binary
// (a sandbox's init included) would pay for compiling them at start.
func allIn(s string, ok func(i int, c byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(i, s[i]) {
			return false
		}
	}
	return true
}

func isLowerDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func validProfileName(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && allIn(s, func(i int, c byte) bool {
		return isLowerDigit(c) || i > 0 && (c == '_' || c == '.' || c == '-')
	})
}

func validEnvName(s string) bool {
	return s != "" && allIn(s, func(i int, c byte) bool {
		return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9'
	})
}

func validUser(s string) bool {
	digits := func(t string) bool {
		return t != "" && allIn(t, func(_ int, c byte) bool { return c >= '0' && c <= '9' })
	}
	if u, g, ok := strings.Cut(s, ":"); ok {
		return digits(u) && digits(g)
	}
	if digits(s) {
		return true
	}
	name := strings.TrimSuffix(s, "$")
	return name != "" && allIn(name, func(i int, c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-')
	})
}

func validHostLabel(l string) bool {
	return len(l) >= 1 && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-' &&
		allIn(l, func(_ int, c byte) bool { return isLowerDigit(c) || c == '-' })
}

func (c Sandbox) validate() error {
	var errs []error
	for _, name := range c.ProfileNames() {
		if !validProfileName(name) {
			errs = append(errs, fmt.Errorf("sandbox.profiles: name %q: want lower-case letters, digits, '.', '_' or '-'", name))
			continue
		}
		if err := c.Profiles[name].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sandbox.profiles.%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks a profile for values the sandbox cannot enforce.
func (p SandboxProfile) Validate() error {
	var errs []error
	seen := map[string]string{}
	for _, set := range []struct {
		key   string
		paths []string
	}{{"ro", p.ReadOnly}, {"rw", p.ReadWrite}} {
		for _, path := range set.paths {
			if err := checkSandboxPath(path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", set.key, err))
				continue
			}
			if path == "/" {
				errs = append(errs, fmt.Errorf("%s: %q would expose the whole host", set.key, path))
			}
			if prev, dup := seen[path]; dup {
				errs = append(errs, fmt.Errorf("%s: %q is already listed in %s", set.key, path, prev))
			}
			seen[path] = set.key
		}
	}
	if p.Workspace != "" {
		if err := checkSandboxPath(p.Workspace); err != nil {
			errs = append(errs, fmt.Errorf("workspace: %w", err))
		} else if p.Workspace == "/" {
			errs = append(errs, errors.New("workspace: \"/\" would expose the whole host"))
		}
	}
	for k := range p.Env {
		if !validEnvName(k) {
			errs = append(errs, fmt.Errorf("env: %q is not a valid variable name", k))
		}
	}
	for _, k := range p.PassEnv {
		if !validEnvName(k) {
			errs = append(errs, fmt.Errorf("pass_env: %q is not a valid variable name", k))
		}
	}
	switch p.Network {
	case "", NetworkNone:
		if len(p.Egress) > 0 {
			errs = append(errs, errors.New("egress: rules need network: egress"))
		}
	case NetworkEgress:
		if len(p.Egress) == 0 {
			errs = append(errs, errors.New("network egress: list at least one egress rule"))
		}
	default:
		errs = append(errs, fmt.Errorf("network %q: want none or egress", p.Network))
	}
	for i, r := range p.Egress {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("egress[%d]: %w", i, err))
		}
	}
	for _, port := range p.ListenPorts {
		if port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("listen_ports: %d is not a TCP port", port))
		}
	}
	l := p.Limits
	if l.Memory < 0 || l.Tmp < 0 || l.CPU < 0 || l.Pids < 0 || l.OpenFiles < 0 || l.WallClock < 0 {
		errs = append(errs, errors.New("limits: values must not be negative"))
	}
	if l.Memory != 0 && l.Memory < 16<<20 {
		errs = append(errs, fmt.Errorf("limits.memory %v: at least 16MiB", l.Memory))
	}
	if l.Pids != 0 && l.Pids < 16 {
		errs = append(errs, fmt.Errorf("limits.pids %d: at least 16 (the sandbox's init counts)", l.Pids))
	}
	if l.OpenFiles != 0 && l.OpenFiles < 16 {
		errs = append(errs, fmt.Errorf("limits.open_files %d: at least 16", l.OpenFiles))
	}
	if p.User != "" && !validUser(p.User) {
		errs = append(errs, fmt.Errorf("user %q: want an account name, a uid or uid:gid", p.User))
	}
	return errors.Join(errs...)
}

// checkSandboxPath accepts absolute, clean paths outside the pseudo
// filesystems the sandbox provides for itself.
func checkSandboxPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not absolute", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("%q is not clean (want %q)", p, filepath.Clean(p))
	}
	if p == "/tmp" {
		return fmt.Errorf("%q: the sandbox provides a private /tmp itself", p)
	}
	for _, own := range []string{"/proc", "/sys", "/dev", "/workspace", "/run/warden"} {
		if p == own || strings.HasPrefix(p, own+"/") {
			return fmt.Errorf("%q: the sandbox provides %s itself", p, own)
		}
	}
	return nil
}

func (r EgressRule) validate() error {
	var errs []error
	if _, err := netip.ParseAddr(r.Host); err != nil {
		if !ValidEgressHost(r.Host) {
			errs = append(errs, fmt.Errorf("host %q: want a lower-case DNS name, *.name or an IP address", r.Host))
		}
	}
	if len(r.Ports) == 0 {
		errs = append(errs, fmt.Errorf("host %q: list the allowed ports", r.Host))
	}
	for _, port := range r.Ports {
		if port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("host %q: %d is not a TCP port", r.Host, port))
		}
	}
	return errors.Join(errs...)
}

// ValidEgressHost reports whether h is a lower-case DNS name with at least two
// labels, optionally prefixed by "*." for a wildcard over its subdomains.
func ValidEgressHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !validHostLabel(l) {
			return false
		}
	}
	return true
}

// ByteSize is a size in bytes, written as an integer with an optional unit:
// K, M, G (powers of 1000) or KiB, MiB, GiB (powers of 1024).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseByteSize parses "512MiB", "1G", "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative integer with an optional unit (KiB, MiB, GiB, K, M, G)", s)
	}
	if n > 0 && mult > (1<<62)/n {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

func (b ByteSize) String() string {
	for i := 3; i >= 0; i-- {
		m := ByteSize(byteUnits[i].mult)
		if b >= m && b%m == 0 {
			return strconv.FormatInt(int64(b/m), 10) + byteUnits[i].suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
