package respond

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Webhook headers.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" under the shared secret>"; a receiver recomputes it,
	// compares in constant time and refuses stale timestamps.
	HeaderSignature = "X-Warden-Signature"
	// HeaderDelivery is the message id, the same on every retry, so that a
	// receiver can drop duplicates.
	HeaderDelivery = "X-Warden-Delivery"
)

// NotifierOptions configure the webhook.
type NotifierOptions struct {
	URL    string
	Secret []byte // HMAC key; required: an unsigned notification could be forged by anyone who finds the URL
	// Timeout bounds one delivery attempt (default 5s).
	Timeout time.Duration
	// Attempts bounds deliveries of one message (default 5).
	Attempts int
	// Backoff is the wait before the second attempt, quadrupling after
	// (default 200ms, capped at 10s).
	Backoff time.Duration
	// Queue bounds messages waiting (default 256); beyond it a message is
	// dropped and counted, never waited for.
	Queue  int
	Client *http.Client
	Log    *slog.Logger
}

// Message is one notification.
type Message struct {
	ID     string            // stable across retries
	Text   string            // the headline, Slack mrkdwn
	Fields map[string]string // shown as Slack section fields, in key order
	Order  []string          // field order
	Warden any               // machine-readable detail, under "warden"
	// Done, when set, is called once with the delivery's result.
	Done func(attempts int, err error)
}

// Notifier posts messages to a webhook from its own goroutine, with
// retries; Send never blocks.
type Notifier struct {
	o       NotifierOptions
	q       chan Message
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	dropped uint64
	sent    uint64
	failed  uint64
	now     func() time.Time
}

// NewNotifier checks the options and returns a notifier (not started).
func NewNotifier(o NotifierOptions) (*Notifier, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want http(s)://host/path", o.URL)
	}
	if len(o.Secret) < 16 {
		return nil, errors.New("webhook secret: at least 16 bytes (the receiver checks the HMAC signature)")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{o: o, q: make(chan Message, o.Queue), now: time.Now}, nil
}

// Start delivers queued messages until ctx ends or Close.
func (n *Notifier) Start(ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-ctx.Done():
				n.drain(ctx.Err())
				return
			case m, ok := <-n.q:
				if !ok {
					return
				}
				n.deliver(ctx, m)
			}
		}
	}()
}

// drain fails what is still queued when the notifier stops.
func (n *Notifier) drain(cause error) {
	for {
		select {
		case m, ok := <-n.q:
			if !ok {
				return
			}
			if m.Done != nil {
				m.Done(0, fmt.Errorf("notifier stopped before delivery: %w", cause))
			}
		default:
			return
		}
	}
}

// Close stops taking messages and waits for the ones queued to be tried.
func (n *Notifier) Close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.q)
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// Send queues a message. It never blocks: when the queue is full the
// message is dropped (counted, and its Done told) and false returned.
func (n *Notifier) Send(m Message) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		if m.Done != nil {
			go m.Done(0, errors.New("notifier closed"))
		}
		return false
	}
	select {
	case n.q <- m:
		return true
	default:
		n.dropped++
		if m.Done != nil {
			go m.Done(0, errors.New("notification queue full: dropped"))
		}
		return false
	}
}

// Stats returns messages delivered, failed after every attempt, and dropped.
func (n *Notifier) Stats() (sent, failed, dropped uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent, n.failed, n.dropped
}

func (n *Notifier) deliver(ctx context.Context, m Message) {
	body, err := json.Marshal(payload(m))
	if err == nil {
		wait := n.o.Backoff
		for attempt := 1; attempt <= n.o.Attempts; attempt++ {
			if attempt > 1 {
				select {
				case <-ctx.Done():
					err = ctx.Err()
				case <-time.After(wait):
				}
				if ctx.Err() != nil {
					break
				}
				wait = min(wait*4, 10*time.Second)
			}
			var retry bool
			retry, err = n.post(ctx, m.ID, body)
			if err == nil || !retry {
				n.finish(m, attempt, err)
				return
			}
			n.o.Log.Warn("webhook delivery failed; retrying", "message", m.ID, "attempt", attempt, "err", err)
		}
	}
	n.finish(m, n.o.Attempts, err)
}

func (n *Notifier) finish(m Message, attempts int, err error) {
	n.mu.Lock()
	if err == nil {
		n.sent++
	} else {
		n.failed++
	}
	n.mu.Unlock()
	if err != nil {
		n.o.Log.Error("webhook delivery failed", "message", m.ID, "attempts", attempts, "err", err)
	}
	if m.Done != nil {
		m.Done(attempts, err)
	}
}

// post makes one attempt and says whether a failure is worth retrying.
func (n *Notifier) post(ctx context.Context, id string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.o.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "warden-respond")
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderSignature, Sign(n.o.Secret, n.now(), body))
	resp, err := n.o.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("posting to the webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook refused the message: %s", resp.Status)
	}
}

// Sign returns the signature header value for a body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against a body: the HMAC must match and
// the timestamp be within tolerance of now (replays of old deliveries fail).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for len(header) > 0 {
		var part string
		part, header, _ = cut(header, ',')
		k, v, _ := cut(part, '=')
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("malformed signature header")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return errors.New("signature timestamp outside tolerance")
	}
	want := Sign(secret, time.Unix(t, 0), body)
	_, wantSig, _ := cut(want, ',')
	_, wantSig, _ = cut(wantSig, '=')
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errors.New("malformed signature")
	}
	w, _ := hex.DecodeString(wantSig)
	if !hmac.Equal(got, w) {
		return errors.New("signature mismatch")
	}
	return nil
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// payload renders a message Slack-compatibly: text (the fallback and
// notification line), blocks (a section with the headline and one with
// up to ten fields); other receivers read "warden".
func payload(m Message) map[string]any {
	blocks := []map[string]any{{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": m.Text}}}
	var fields []map[string]any
	for _, k := range m.Order {
		v, ok := m.Fields[k]
		if !ok || v == "" || len(fields) == 10 {
			continue
		}
		if len(v) > 1900 {
			v = v[:1900] + "…"
		}
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + k + "*\n" + v})
	}
	if len(fields) > 0 {
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	out := map[string]any{"text": m.Text, "blocks": blocks}
	if m.Warden != nil {
		out["warden"] = m.Warden
	}
	return out
}
