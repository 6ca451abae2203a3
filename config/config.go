// Package config owns warden.yaml: its schema, its defaults and its
// validation, and the layout of Warden's data directory.
//
// Each part of Warden reads its own section from the loaded Config; this
// package only parses and checks the file, resolves tier presets against it,
// and never acts on what it reads.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/warden-run/warden/tier"
)

// FileName is the configuration file inside the data directory.
const FileName = "warden.yaml"

// Config is warden.yaml.
type Config struct {
	// TrustDomain is the SPIFFE trust domain of every identity Warden issues.
	TrustDomain string `yaml:"trust_domain"`
	// Tier selects the preset of concrete settings (foundation, advanced, optimized).
	Tier tier.Tier `yaml:"tier"`

	ControlPlane ControlPlane `yaml:"control_plane"`
	Identity     Identity     `yaml:"identity"`
	Events       Events       `yaml:"events"`
	Audit        Audit        `yaml:"audit,omitempty"`
	Inspect      Inspect      `yaml:"inspect,omitempty"`
	Sandbox      Sandbox      `yaml:"sandbox,omitempty"`
	Supply       Supply       `yaml:"supply,omitempty"`
	Gateway      Gateway      `yaml:"gateway"`
	Memory       Memory       `yaml:"memory,omitempty"`
}

// ControlPlane configures the control-plane API server.
type ControlPlane struct {
	// Listen is the address of the HTTPS API. Loopback by default: exposing
	// it is a deliberate choice.
	Listen string `yaml:"listen"`
	// ServerNames are extra DNS names put in the server certificate.
	ServerNames []string `yaml:"server_names,omitempty"`
}

// Identity configures SVID issuance. Zero values take the tier preset; a
// value above the tier's ceiling is refused at load.
type Identity struct {
	X509SVIDTTL    time.Duration `yaml:"x509_svid_ttl"`
	X509SVIDMaxTTL time.Duration `yaml:"x509_svid_max_ttl"`
	JWTSVIDTTL     time.Duration `yaml:"jwt_svid_ttl"`
	JWTSVIDMaxTTL  time.Duration `yaml:"jwt_svid_max_ttl"`
	JoinTokenTTL   time.Duration `yaml:"join_token_ttl"`
	// AdminSVIDTTL is the lifetime of operator credentials issued by
	// `warden init` and `warden admin credentials`.
	AdminSVIDTTL time.Duration `yaml:"admin_svid_ttl"`
}

// Events configures the foundation's event record.
type Events struct {
	// JSONL is the path of the JSONL event file, relative to the data directory.
	JSONL string `yaml:"jsonl"`
}

// Default returns the configuration `warden init` writes.
func Default(trustDomain string, t tier.Tier) *Config {
	c := &Config{
		TrustDomain:  trustDomain,
		Tier:         t,
		ControlPlane: ControlPlane{Listen: "127.0.0.1:8443"},
		Identity: Identity{
			X509SVIDTTL:  time.Hour,
			JWTSVIDTTL:   5 * time.Minute,
			AdminSVIDTTL: 30 * 24 * time.Hour,
		},
		Events: Events{JSONL: "events.jsonl"},
		// Warden's own memory server is served through the gateway from
		// the start; agents reach its tools as memory.<tool>.
		Gateway: Gateway{Upstreams: []Upstream{{Name: "memory", Builtin: "memory"}}},
	}
	c.applyDefaults()
	return c
}

// Preset returns the tier preset the deployment runs at.
func (c *Config) Preset() tier.Preset { return tier.For(c.Tier) }

// TrustDomainID returns the parsed trust domain.
func (c *Config) TrustDomainID() spiffeid.TrustDomain {
	td, _ := spiffeid.TrustDomainFromString(c.TrustDomain) // validated at load
	return td
}

func (c *Config) applyDefaults() {
	p := tier.For(c.Tier)
	id := &c.Identity
	if id.X509SVIDMaxTTL == 0 {
		id.X509SVIDMaxTTL = p.X509SVIDMaxTTL
	}
	if id.X509SVIDTTL == 0 {
		id.X509SVIDTTL = min(time.Hour, id.X509SVIDMaxTTL)
	}
	if id.JWTSVIDMaxTTL == 0 {
		id.JWTSVIDMaxTTL = p.JWTSVIDMaxTTL
	}
	if id.JWTSVIDTTL == 0 {
		id.JWTSVIDTTL = min(5*time.Minute, id.JWTSVIDMaxTTL)
	}
	if id.JoinTokenTTL == 0 {
		id.JoinTokenTTL = p.JoinTokenTTL
	}
	if id.AdminSVIDTTL == 0 {
		id.AdminSVIDTTL = 30 * 24 * time.Hour
	}
	if c.ControlPlane.Listen == "" {
		c.ControlPlane.Listen = "127.0.0.1:8443"
	}
	if c.Events.JSONL == "" {
		c.Events.JSONL = "events.jsonl"
	}
	c.Gateway.applyDefaults()
}

// Validate checks the configuration for values Warden cannot run with, and
// for settings looser than the tier allows.
func (c *Config) Validate() error {
	var errs []error
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs = append(errs, fmt.Errorf("trust_domain %q: %w", c.TrustDomain, err))
	}
	if !c.Tier.Valid() {
		errs = append(errs, errors.New("tier: missing; want foundation, advanced or optimized"))
		return errors.Join(errs...)
	}
	if _, _, err := net.SplitHostPort(c.ControlPlane.Listen); err != nil {
		errs = append(errs, fmt.Errorf("control_plane.listen %q: %w", c.ControlPlane.Listen, err))
	}
	p := tier.For(c.Tier)
	id := c.Identity
	for _, d := range []struct {
		name       string
		v, ceiling time.Duration
	}{
		{"identity.x509_svid_max_ttl", id.X509SVIDMaxTTL, p.X509SVIDMaxTTL},
		{"identity.x509_svid_ttl", id.X509SVIDTTL, id.X509SVIDMaxTTL},
		{"identity.jwt_svid_max_ttl", id.JWTSVIDMaxTTL, p.JWTSVIDMaxTTL},
		{"identity.jwt_svid_ttl", id.JWTSVIDTTL, id.JWTSVIDMaxTTL},
		{"identity.join_token_ttl", id.JoinTokenTTL, p.JoinTokenTTL},
	} {
		switch {
		case d.v <= 0:
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		case d.v > d.ceiling:
			errs = append(errs, fmt.Errorf("%s %v exceeds its ceiling %v at tier %s", d.name, d.v, d.ceiling, c.Tier))
		}
	}
	if id.AdminSVIDTTL <= 0 || id.AdminSVIDTTL > 90*24*time.Hour {
		errs = append(errs, fmt.Errorf("identity.admin_svid_ttl %v: want more than 0 and at most 2160h (90 days)", id.AdminSVIDTTL))
	}
	errs = append(errs, c.Audit.validate(c.Tier), c.Inspect.validate(), c.Sandbox.validate(), c.Supply.validate(), c.Gateway.validate(c.Sandbox), c.Memory.validate(c.Tier))
	return errors.Join(errs...)
}

// Parse reads a configuration, rejecting unknown keys (a typo in a security
// setting must not be silently ignored), fills defaults from the tier preset
// and validates the result.
func Parse(r io.Reader) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("configuration is empty")
		}
		return nil, fmt.Errorf("parsing configuration: %w", err)
	}
	if !c.Tier.Valid() {
		return nil, errors.New("configuration: tier is missing; want foundation, advanced or optimized")
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return &c, nil
}

// Load reads and parses the configuration at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal renders the configuration as YAML with a header comment.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Warden configuration. Settings left out take the tier's preset;\n" +
		"# a setting looser than the tier allows is refused at start.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// Save writes the configuration to path atomically with mode 0600.
func (c *Config) Save(path string) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so a crash leaves either the old or the new file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
