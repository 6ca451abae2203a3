package respond

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var secret = []byte("a-shared-secret-of-32-bytes-long")

// The webhook posts a Slack-compatible body signed with HMAC-SHA256 over
// the timestamp and the body; the receiver's check (Verify) accepts it and
// refuses a tampered body, another secret or a stale timestamp.
func TestWebhookSignedSlackPayload(t *testing.T) {
	type got struct {
		body []byte
		sig  string
		id   string
	}
	gotc := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotc <- got{b, r.Header.Get(HeaderSignature), r.Header.Get(HeaderDelivery)}
	}))
	defer srv.Close()
	n, err := NewNotifier(NotifierOptions{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	n.Start(ctx)
	defer n.Close()
	a := Alert{ID: "al1", Rule: "denied-then-retried", Title: "A refused call is retried", Level: "high", Agent: agentA, Task: "t1",
		Tool: "payments.send", Key: "agent=" + agentA, Value: 3, Time: time.Now(), Actions: []Action{{Type: ActRevokeGrant}, {Type: ActNotify}}}
	done := make(chan error, 1)
	m := AlertMessage(a)
	m.Done = func(_ int, err error) { done <- err }
	if !n.Send(m) {
		t.Fatal("not queued")
	}
	g := <-gotc
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.id != "al1" {
		t.Fatalf("delivery id %q", g.id)
	}
	if err := Verify(secret, g.sig, g.body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if Verify(secret, g.sig, append(g.body, ' '), time.Now(), 5*time.Minute) == nil {
		t.Fatal("a tampered body verified")
	}
	if Verify([]byte("another-secret-another-secret!!"), g.sig, g.body, time.Now(), 5*time.Minute) == nil {
		t.Fatal("another secret verified")
	}
	if Verify(secret, g.sig, g.body, time.Now().Add(time.Hour), 5*time.Minute) == nil {
		t.Fatal("a stale signature verified")
	}
	var p struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type   string `json:"type"`
			Fields []struct{ Type, Text string }
		} `json:"blocks"`
		Warden Alert `json:"warden"`
	}
	if err := json.Unmarshal(g.body, &p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Text, "denied-then-retried") || len(p.Blocks) != 2 || p.Blocks[1].Fields[0].Type != "mrkdwn" ||
		!strings.Contains(p.Blocks[1].Fields[0].Text, agentA) || p.Warden.Rule != "denied-then-retried" {
		t.Fatalf("payload %s", g.body)
	}
}

func TestWebhookRetries(t *testing.T) {
	var calls atomic.Int32
	status := http.StatusInternalServerError
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	n, err := NewNotifier(NotifierOptions{URL: srv.URL, Secret: secret, Attempts: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Start(ctx)
	defer n.Close()
	send := func() (int, error) {
		type res struct {
			n   int
			err error
		}
		c := make(chan res, 1)
		n.Send(Message{ID: "m", Text: "x", Done: func(a int, err error) { c <- res{a, err} }})
		r := <-c
		return r.n, r.err
	}
	if attempts, err := send(); err == nil || attempts != 3 || calls.Load() != 3 {
		t.Fatalf("500: %d attempts, %v, %d calls", attempts, err, calls.Load())
	}
	mu.Lock()
	status = http.StatusBadRequest
	mu.Unlock()
	calls.Store(0)
	if attempts, err := send(); err == nil || attempts != 1 || calls.Load() != 1 {
		t.Fatalf("400 is not retried: %d attempts, %v", attempts, err)
	}
}

func TestWebhookQueueFullDropsWithoutBlocking(t *testing.T) {
	n, err := NewNotifier(NotifierOptions{URL: "https://127.0.0.1:1/hook", Secret: secret, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	// not started: nothing drains the queue, so a Send that blocked would
	// never return
	queued := make(chan int, 1)
	go func() {
		ok := 0
		for range 10 {
			if n.Send(Message{ID: "m"}) {
				ok++
			}
		}
		queued <- ok
	}()
	select {
	case ok := <-queued:
		if ok != 2 {
			t.Fatalf("queued %d, want 2", ok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a full queue")
	}
	if _, _, dropped := n.Stats(); dropped != 8 {
		t.Fatalf("dropped %d", dropped)
	}
	if _, err := NewNotifier(NotifierOptions{URL: "https://x.test/", Secret: []byte("short")}); err == nil {
		t.Fatal("a short secret was accepted")
	}
	if _, err := NewNotifier(NotifierOptions{URL: "ftp://x.test/", Secret: secret}); err == nil {
		t.Fatal("a non-http URL was accepted")
	}
}
