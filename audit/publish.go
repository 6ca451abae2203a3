package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/warden-run/warden/config"
)

// Publisher sends checkpoints somewhere the gateway host's root cannot
// rewrite: a file on another mount, an HTTP collector or witness, syslog.
type Publisher interface {
	Publish(ctx context.Context, cp *Checkpoint) error
	// String names the sink in messages.
	String() string
}

// NewPublisher builds the publisher a config entry describes.
func NewPublisher(p config.AuditPublish) (Publisher, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	switch p.Type {
	case "file":
		return &FilePublisher{Path: p.Path}, nil
	case "http":
		return &HTTPPublisher{URL: p.URL, Client: &http.Client{Timeout: timeout}}, nil
	case "syslog":
		return &SyslogPublisher{Network: p.Network, Address: p.Address}, nil
	}
	return nil, fmt.Errorf("unknown publisher type %q", p.Type)
}

// FilePublisher appends every checkpoint note to a file, one after another,
// and syncs it. `warden audit verify --from-checkpoint` reads such a file.
type FilePublisher struct {
	Path string
	mu   sync.Mutex
}

// Publish implements Publisher.
func (f *FilePublisher) Publish(_ context.Context, cp *Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("publishing checkpoint to %s: %w", f.Path, err)
	}
	return appendSynced(f.Path, cp.Note)
}

func (f *FilePublisher) String() string { return "file " + f.Path }

// appendSynced appends b to the file at path (0600) and syncs it.
func appendSynced(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("appending to %s: %w", path, err)
	}
	_, err = fh.Write(b)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("appending to %s: %w", path, err)
	}
	return nil
}

// HTTPPublisher POSTs each checkpoint note (text/plain) to URL and requires a
// 2xx answer.
type HTTPPublisher struct {
	URL    string
	Client *http.Client
}

// Publish implements Publisher.
func (h *HTTPPublisher) Publish(ctx context.Context, cp *Checkpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(cp.Note))
	if err != nil {
		return fmt.Errorf("publishing checkpoint to %s: %w", h.URL, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("publishing checkpoint to %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publishing checkpoint to %s: %s", h.URL, resp.Status)
	}
	return nil
}

func (h *HTTPPublisher) String() string { return "http " + h.URL }

// SyslogPublisher sends each checkpoint as one syslog message (facility
// auth, severity notice, tag warden-audit):
//
//	checkpoint origin=<origin> size=<n> root=<base64> note=<base64 of the signed note>
type SyslogPublisher struct {
	Network, Address string

	mu sync.Mutex
	w  *syslog.Writer
}

// Publish implements Publisher.
func (s *SyslogPublisher) Publish(_ context.Context, cp *Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		w, err := syslog.Dial(s.Network, s.Address, syslog.LOG_AUTH|syslog.LOG_NOTICE, "warden-audit")
		if err != nil {
			return fmt.Errorf("publishing checkpoint to syslog: %w", err)
		}
		s.w = w
	}
	msg := fmt.Sprintf("checkpoint origin=%s size=%d root=%s note=%s", cp.Origin, cp.Size,
		base64.StdEncoding.EncodeToString(cp.Root), base64.StdEncoding.EncodeToString(cp.Note))
	if err := s.w.Notice(msg); err != nil {
		s.w.Close()
		s.w = nil // redial next time
		return fmt.Errorf("publishing checkpoint to syslog: %w", err)
	}
	return nil
}

func (s *SyslogPublisher) String() string {
	if s.Network == "" {
		return "syslog (local)"
	}
	return "syslog " + s.Network + "://" + s.Address
}

// publisher sends checkpoints to every sink in the background. A newer
// checkpoint replaces one not yet sent: it proves everything the older one
// did. Sinks that failed are retried with the next checkpoint.
type publisher struct {
	sinks   []Publisher
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	next     *Checkpoint
	failures map[string]int
	lastErr  error
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

func newPublisher(sinks []Publisher, log *slog.Logger) *publisher {
	p := &publisher{sinks: sinks, timeout: 10 * time.Second, log: log,
		failures: map[string]int{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *publisher) offer(cp *Checkpoint) {
	if len(p.sinks) == 0 {
		return
	}
	p.mu.Lock()
	p.next = cp
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer close(p.done)
	retry := time.NewTicker(30 * time.Second) // sinks that failed, while the log is idle
	defer retry.Stop()
	for {
		select {
		case <-retry.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
			p.publishPending(ctx)
			cancel()
		case <-p.wake:
			ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
			p.publishPending(ctx)
			cancel()
		case <-p.stop:
			return
		}
	}
}

// publishPending sends the newest offered checkpoint to every sink.
func (p *publisher) publishPending(ctx context.Context) error {
	p.mu.Lock()
	cp := p.next
	p.next = nil
	p.mu.Unlock()
	if cp == nil {
		return nil
	}
	var first error
	failed := false
	for _, s := range p.sinks {
		if err := s.Publish(ctx, cp); err != nil {
			p.log.Warn("audit: checkpoint not published", "sink", s.String(), "size", cp.Size, "err", err)
			p.mu.Lock()
			p.failures[s.String()]++
			p.lastErr = err
			p.mu.Unlock()
			failed = true
			if first == nil {
				first = err
			}
		}
	}
	if failed {
		// Keep it for the next attempt unless a newer one arrived.
		p.mu.Lock()
		if p.next == nil {
			p.next = cp
		}
		p.mu.Unlock()
	}
	return first
}

// close stops the background sender and publishes what is pending now,
// within ctx.
func (p *publisher) close(ctx context.Context) error {
	close(p.stop)
	<-p.done
	err := p.publishPending(ctx)
	for _, s := range p.sinks {
		if sp, ok := s.(*SyslogPublisher); ok {
			sp.mu.Lock()
			if sp.w != nil {
				sp.w.Close()
				sp.w = nil
			}
			sp.mu.Unlock()
		}
	}
	return err
}
