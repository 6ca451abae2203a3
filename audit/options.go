package audit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/tier"
)

// Options configures a Log. Key, Origin and Mode are required; zero values of
// the rest take the defaults below.
type Options struct {
	// Key is the dedicated audit-checkpoint key (keys/checkpoint.key).
	Key ed25519.PrivateKey
	// Origin names the log in its checkpoints and is the key's name in the
	// signed notes (e.g. "example.org/warden/audit").
	Origin string
	// Mode is the durability: tier.AuditSync or tier.AuditAsync.
	Mode tier.AuditMode

	// CheckpointInterval is how often a checkpoint is signed and published
	// when the log has grown (default 10s). One is also signed on Close.
	CheckpointInterval time.Duration
	// SegmentBytes is the size after which a new segment file is started
	// (default 64 MiB).
	SegmentBytes int64
	// MaxBatchBytes bounds the bytes one group commit writes (default 8 MiB).
	MaxBatchBytes int
	// MaxPending bounds the events queued and not yet written. Emit waits
	// (until its context ends) when the queue is full: the async loss window
	// on a crash is at most this many events (default 16384).
	MaxPending int
	// AsyncFlushInterval is how often async mode syncs what it has written
	// (default 200ms): the loss window on power loss or a kernel crash.
	AsyncFlushInterval time.Duration
	// MaxEventBytes bounds one encoded event (default 1 MiB); a larger event
	// is refused, and so is the call it describes.
	MaxEventBytes int
	// Publishers receive every checkpoint, off the host.
	Publishers []Publisher
	// VerifyOnOpen runs the full verification (every record, every
	// checkpoint) before opening, instead of the cheap structural checks.
	// Open then costs about as much as `warden audit verify`.
	VerifyOnOpen bool
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("audit: a checkpoint key (Ed25519) is required")
	}
	if !validName(o.Origin) {
		return fmt.Errorf("audit: origin %q must be non-empty with no spaces or '+'", o.Origin)
	}
	if o.Mode != tier.AuditSync && o.Mode != tier.AuditAsync {
		return fmt.Errorf("audit: mode %q: want sync or async", o.Mode)
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 16384
	}
	if o.AsyncFlushInterval <= 0 {
		o.AsyncFlushInterval = 200 * time.Millisecond
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxEventBytes > maxBody-bodyPrefix {
		return fmt.Errorf("audit: max event size %d exceeds the format's %d", o.MaxEventBytes, maxBody-bodyPrefix)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// OptionsFrom builds Options from warden.yaml: the mode is the stricter of
// the tier preset and the configured override, the origin defaults to
// "<trust domain>/warden/audit", and the configured publishers are built.
// The caller supplies the key (see EnsureKey and KeyPath).
func OptionsFrom(c *config.Config, key ed25519.PrivateKey, logger *slog.Logger) (Options, error) {
	a := c.Audit
	o := Options{
		Key:                key,
		Origin:             a.OriginFor(c.TrustDomain),
		Mode:               a.EffectiveMode(c.Tier),
		CheckpointInterval: a.CheckpointInterval,
		SegmentBytes:       a.SegmentBytes,
		MaxBatchBytes:      a.MaxBatchBytes,
		MaxPending:         a.MaxPending,
		AsyncFlushInterval: a.AsyncFlushInterval,
		MaxEventBytes:      a.MaxEventBytes,
		VerifyOnOpen:       a.VerifyOnOpen,
		Logger:             logger,
	}
	for i, p := range a.Publish {
		pub, err := NewPublisher(p)
		if err != nil {
			return Options{}, fmt.Errorf("audit.publish[%d]: %w", i, err)
		}
		o.Publishers = append(o.Publishers, pub)
	}
	return o, nil
}
