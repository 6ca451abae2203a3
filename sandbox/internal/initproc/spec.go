package initproc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Arg0 is the argv[0] with which the host re-executes its own binary as
// the sandbox's init. MaybeInit looks for it.
const Arg0 = "warden-sandbox-init"

// File descriptors of the init, after stdin, stdout and stderr.
const (
	specFD   = 3 // host -> init: the spec, then held open: EOF means the host is gone
	statusFD = 4 // init -> host: JSON lines, a report then the tool's exit
	stdioFD  = 5 // host -> init: a Unix socket carrying the tool's stdin, stdout and stderr
)

// GoAhead is the byte the host sends after the spec once the init is in
// its cgroup and every host-side mechanism is in place: the init starts the
// tool only after reading it.
const GoAhead = 'G'

// Kinds of Mount.
const (
	MountBind    = "bind"    // Src bound at Dst, read-only unless RW
	MountTmpfs   = "tmpfs"   // a tmpfs at Dst with options Data
	MountSymlink = "symlink" // a symlink at Dst pointing to Src
	MountCopy    = "copy"    // the small host file Src copied to Dst (cheaper than a bind)
)

// Spec is everything the init needs, sent by the host over specFD as a
// length-prefixed JSON document.
type Spec struct {
	Probe      bool     `json:"probe,omitempty"`      // build everything, report, run no tool
	Namespaces bool     `json:"namespaces,omitempty"` // the init runs in new namespaces
	NetNS      bool     `json:"net_ns,omitempty"`     // among them a network namespace
	Root       string   `json:"root,omitempty"`       // host directory to build the root on
	Mounts     []Mount  `json:"mounts,omitempty"`
	Files      []File   `json:"files,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	Dir        string   `json:"dir"`
	Landlock   Landlock `json:"landlock"`
	Limits     Rlimits  `json:"limits"`
	Proxy      *Proxy   `json:"proxy,omitempty"`
	Require    []string `json:"require,omitempty"`
}

type Mount struct {
	Kind string `json:"kind"`
	Src  string `json:"src,omitempty"`
	Dst  string `json:"dst"`
	RW   bool   `json:"rw,omitempty"`
	Data string `json:"data,omitempty"`
}

type File struct {
	Path string `json:"path"`
	Data string `json:"data"`
}

// Landlock lists paths as the tool will see them (inside the root).
type Landlock struct {
	RO      []string `json:"ro,omitempty"`
	RW      []string `json:"rw,omitempty"`
	Dev     []string `json:"dev,omitempty"` // device files: read, write, ioctl
	Connect []uint16 `json:"connect,omitempty"`
	Bind    []uint16 `json:"bind,omitempty"`
}

type Rlimits struct {
	NoFile uint64 `json:"nofile"`
	NProc  uint64 `json:"nproc"`
	Data   uint64 `json:"data,omitempty"` // 0 when a cgroup limits memory
}

// Proxy tells the init which loopback forwarders to run.
type Proxy struct {
	Socket   string      `json:"socket"` // the proxy's Unix socket, inside the root
	Port     uint16      `json:"port"`   // 127.0.0.1:Port speaks HTTP proxy
	Forwards []Forwarder `json:"forwards,omitempty"`
}

// Forwarder listens on Addr:Port inside the sandbox and tunnels to Host:Port
// through the proxy, for clients that ignore proxy variables.
type Forwarder struct {
	Addr string `json:"addr"`
	Host string `json:"host"`
	Port uint16 `json:"port"`
}

// Report is the init's first status line: what it put in force, or why
// it could not start the tool.
type Report struct {
	OK          bool              `json:"ok"`
	Stage       string            `json:"stage,omitempty"`
	Error       string            `json:"error,omitempty"`
	InForce     map[string]bool   `json:"in_force,omitempty"`
	Detail      map[string]string `json:"detail,omitempty"`
	LandlockABI int               `json:"landlock_abi,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	ToolPID     int               `json:"tool_pid,omitempty"` // in the init's PID namespace
}

// Exit is the init's last status line: how the tool ended.
type Exit struct {
	Exited bool `json:"exited"`
	Code   int  `json:"code"`
	Signal int  `json:"signal,omitempty"`
}

// StatusLine is one line on statusFD; exactly one field is set.
type StatusLine struct {
	Report *Report `json:"report,omitempty"`
	Exit   *Exit   `json:"exit,omitempty"`
}

const maxSpecSize = 1 << 20

// Prep is the first message on specFD: what the init can build before
// anyone knows what it will run (the root's mount point and the mounts every
// sandbox has). A spare init does this while it waits.
type Prep struct {
	Root   string  `json:"root,omitempty"` // host directory to build the root on; empty: no root
	Mounts []Mount `json:"mounts,omitempty"`
}

// WriteSpec sends the launch's spec (the second message).
func WriteSpec(w io.Writer, s *Spec) error { return writeMsg(w, s) }

// WritePrep sends the preparation (the first message).
func WritePrep(w io.Writer, p *Prep) error { return writeMsg(w, p) }

// ReadSpec reads the launch's spec.
func ReadSpec(r io.Reader) (*Spec, error) {
	var s Spec
	return &s, readMsg(r, &s)
}

func readPrep(r io.Reader) (*Prep, error) {
	var p Prep
	return &p, readMsg(r, &p)
}

func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding sandbox spec: %w", err)
	}
	if len(b) > maxSpecSize {
		return errors.New("sandbox spec is larger than 1 MiB")
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return fmt.Errorf("sending sandbox spec: %w", err)
	}
	return nil
}

func readMsg(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("reading sandbox spec: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxSpecSize {
		return fmt.Errorf("sandbox spec of %d bytes is too large", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("reading sandbox spec: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding sandbox spec: %w", err)
	}
	return nil
}
