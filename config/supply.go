package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Supply configures tool pinning, the description scanner and server
// verification (package supply). Every field is optional.
type Supply struct {
	// Lock is the path of warden.lock, relative to the data directory
	// unless absolute. Default: warden.lock in the data directory.
	Lock string `yaml:"lock,omitempty"`
	// RelistInterval is how often the gateway lists every upstream's tools
	// again, to catch a server that changes its tools without saying so.
	// Default 5m; at least 10s.
	RelistInterval time.Duration `yaml:"relist_interval,omitempty"`
	// MaxSeverity is the description scanner's severity at and above which
	// a tool is not exposed: low, medium, high (default) or critical.
	MaxSeverity string `yaml:"max_severity,omitempty"`
	// Signatures are checked before a stdio server is launched, by
	// upstream name.
	Signatures map[string]SupplySignature `yaml:"signatures,omitempty"`
}

// SupplySignature is one server's signature: exactly one of Minisign and
// Sigstore.
type SupplySignature struct {
	// Artifact is the signed file; default: the server's command. For
	// Sigstore, "npm" verifies the bundle against the pinned npm package's
	// tarball digest (npm provenance).
	Artifact string          `yaml:"artifact,omitempty"`
	Minisign *SupplyMinisign `yaml:"minisign,omitempty"`
	Sigstore *SupplySigstore `yaml:"sigstore,omitempty"`
}

// SupplyMinisign is a minisign (Ed25519) public key and signature file.
type SupplyMinisign struct {
	PublicKey string `yaml:"public_key"`
	Signature string `yaml:"signature"`
}

// SupplySigstore is a Sigstore bundle verified offline against a pinned
// trusted root, with the signer's certificate identity.
type SupplySigstore struct {
	Bundle      string `yaml:"bundle"`
	TrustedRoot string `yaml:"trusted_root"`
	// Identity is the certificate's subject alternative name (a regular
	// expression when it starts with "^").
	Identity string `yaml:"identity"`
	// Issuer is the OIDC issuer that vouched for the identity.
	Issuer string `yaml:"issuer"`
}

// Supply defaults.
const (
	DefaultLockFile       = "warden.lock"
	DefaultRelistInterval = 5 * time.Minute
	DefaultMaxSeverity    = "high"
)

// LockPath is the lock's path in data directory d.
func (s Supply) LockPath(d Dir) string {
	if s.Lock == "" {
		return d.Path(DefaultLockFile)
	}
	return d.Path(s.Lock)
}

// Relist is the re-list interval, default applied.
func (s Supply) Relist() time.Duration {
	if s.RelistInterval == 0 {
		return DefaultRelistInterval
	}
	return s.RelistInterval
}

// Severity is the scanner's blocking severity, default applied.
func (s Supply) Severity() string {
	if s.MaxSeverity == "" {
		return DefaultMaxSeverity
	}
	return strings.ToLower(s.MaxSeverity)
}

func (s Supply) validate() error {
	var errs []error
	if s.RelistInterval != 0 && s.RelistInterval < 10*time.Second {
		errs = append(errs, fmt.Errorf("supply.relist_interval %v: want at least 10s", s.RelistInterval))
	}
	switch s.Severity() {
	case "low", "medium", "high", "critical":
	default:
		errs = append(errs, fmt.Errorf("supply.max_severity %q: want low, medium, high or critical", s.MaxSeverity))
	}
	names := make([]string, 0, len(s.Signatures))
	for n := range s.Signatures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sig := s.Signatures[n]
		where := "supply.signatures." + n
		switch {
		case (sig.Minisign == nil) == (sig.Sigstore == nil):
			errs = append(errs, fmt.Errorf("%s: set exactly one of minisign and sigstore", where))
		case sig.Minisign != nil:
			if sig.Minisign.PublicKey == "" || sig.Minisign.Signature == "" {
				errs = append(errs, fmt.Errorf("%s.minisign: public_key and signature are required", where))
			}
			if sig.Artifact == "npm" {
				errs = append(errs, fmt.Errorf("%s: artifact npm needs a sigstore bundle (npm provenance)", where))
			}
		case sig.Sigstore != nil:
			g := sig.Sigstore
			if g.Bundle == "" || g.TrustedRoot == "" || g.Identity == "" || g.Issuer == "" {
				errs = append(errs, fmt.Errorf("%s.sigstore: bundle, trusted_root, identity and issuer are required", where))
			}
		}
	}
	return errors.Join(errs...)
}
