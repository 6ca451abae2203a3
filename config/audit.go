package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/warden-run/warden/tier"
)

// Audit configures the tamper-evident audit log (package audit). Every zero
// value takes a default; the durability mode takes the tier preset, and may
// be set only to something at least as strict.
type Audit struct {
	// Mode overrides the tier's durability: "sync" (an event is durable
	// before the call it records is answered) or "async" (bounded buffer,
	// documented loss window). "async" at a tier whose preset is sync is
	// refused.
	Mode tier.AuditMode `yaml:"mode,omitempty"`
	// Origin names the log in its signed checkpoints. Default
	// "<trust_domain>/warden/audit".
	Origin string `yaml:"origin,omitempty"`
	// CheckpointInterval is how often a checkpoint is signed and published
	// when the log has grown. Default 10s; between 100ms and 1h.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval,omitempty"`
	// SegmentBytes starts a new segment file past this size. Default 64 MiB.
	SegmentBytes int64 `yaml:"segment_bytes,omitempty"`
	// MaxBatchBytes bounds one group commit. Default 8 MiB.
	MaxBatchBytes int `yaml:"max_batch_bytes,omitempty"`
	// MaxPending bounds the events queued and not yet written; Emit waits
	// when it is reached. Default 16384. In async mode it bounds what a
	// crash of the process can lose.
	MaxPending int `yaml:"max_pending,omitempty"`
	// AsyncFlushInterval is how often async mode syncs to disk: what a power
	// loss can lose. Default 200ms; at most 10s.
	AsyncFlushInterval time.Duration `yaml:"async_flush_interval,omitempty"`
	// MaxEventBytes refuses events larger than this. Default 1 MiB.
	MaxEventBytes int `yaml:"max_event_bytes,omitempty"`
	// VerifyOnOpen runs the full verification before the log is opened for
	// writing (start-up then costs about 1 s per million events); without
	// it, opening checks the structure and the newest checkpoint only.
	VerifyOnOpen bool `yaml:"verify_on_open,omitempty"`
	// Publish lists where checkpoints are sent, off the host.
	Publish []AuditPublish `yaml:"publish,omitempty"`
}

// AuditPublish is one external checkpoint sink.
type AuditPublish struct {
	// Type is "file", "http" or "syslog".
	Type string `yaml:"type"`
	// Path (file) is an absolute path, best on another mount or host: every
	// checkpoint is appended to it.
	Path string `yaml:"path,omitempty"`
	// URL (http) receives each checkpoint note as a POST (text/plain).
	URL string `yaml:"url,omitempty"`
	// Network and Address (syslog) name the syslog server ("udp",
	// "tcp" or "unixgram", and its address); both empty means the local
	// syslog daemon.
	Network string `yaml:"network,omitempty"`
	Address string `yaml:"address,omitempty"`
	// Timeout bounds one publication. Default 5s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// EffectiveMode is the durability the log runs with at tier t: the stricter
// of the preset and the override.
func (c Audit) EffectiveMode(t tier.Tier) tier.AuditMode {
	if c.Mode == tier.AuditSync {
		return tier.AuditSync
	}
	if !t.Valid() {
		return tier.AuditSync
	}
	return tier.For(t).Audit
}

// OriginFor is the checkpoint origin for a trust domain.
func (c Audit) OriginFor(trustDomain string) string {
	if c.Origin != "" {
		return c.Origin
	}
	return trustDomain + "/warden/audit"
}

func (c Audit) validate(t tier.Tier) error {
	var errs []error
	switch c.Mode {
	case "", tier.AuditSync:
	case tier.AuditAsync:
		if t.Valid() && tier.For(t).Audit == tier.AuditSync {
			errs = append(errs, fmt.Errorf("audit.mode async is weaker than tier %s, which requires sync", t))
		}
	default:
		errs = append(errs, fmt.Errorf("audit.mode %q: want sync or async", c.Mode))
	}
	for _, r := range []byte(c.Origin) {
		if r <= ' ' || r == '+' {
			errs = append(errs, fmt.Errorf("audit.origin %q: no spaces or '+'", c.Origin))
			break
		}
	}
	if d := c.CheckpointInterval; d != 0 && (d < 100*time.Millisecond || d > time.Hour) {
		errs = append(errs, fmt.Errorf("audit.checkpoint_interval %v: want between 100ms and 1h", d))
	}
	if d := c.AsyncFlushInterval; d < 0 || d > 10*time.Second {
		errs = append(errs, fmt.Errorf("audit.async_flush_interval %v: want between 0 and 10s", d))
	}
	if c.SegmentBytes < 0 || c.MaxBatchBytes < 0 || c.MaxPending < 0 || c.MaxEventBytes < 0 {
		errs = append(errs, errors.New("audit: sizes must not be negative"))
	}
	if c.MaxEventBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("audit.max_event_bytes %d: at most 16 MiB", c.MaxEventBytes))
	}
	for i, p := range c.Publish {
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("audit.publish[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (p AuditPublish) validate() error {
	if p.Timeout < 0 {
		return fmt.Errorf("timeout %v must not be negative", p.Timeout)
	}
	switch p.Type {
	case "file":
		if !filepath.IsAbs(p.Path) {
			return fmt.Errorf("file sink path %q must be absolute (and best on another mount)", p.Path)
		}
	case "http":
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("http sink url %q: want an http(s) URL", p.URL)
		}
	case "syslog":
		switch p.Network {
		case "", "udp", "tcp", "unix", "unixgram":
		default:
			return fmt.Errorf("syslog network %q: want udp, tcp, unix or unixgram", p.Network)
		}
		if (p.Network == "") != (p.Address == "") {
			return errors.New("syslog: set both network and address, or neither for the local daemon")
		}
	default:
		return fmt.Errorf("type %q: want file, http or syslog", p.Type)
	}
	return nil
}
