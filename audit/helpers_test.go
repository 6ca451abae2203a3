package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

const testOrigin = "example.org/warden/audit"

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions(key ed25519.PrivateKey, mode tier.AuditMode) Options {
	return Options{Key: key, Origin: testOrigin, Mode: mode, Logger: quietLogger(), CheckpointInterval: time.Hour}
}

func openLog(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// testEvent is a gateway decision for agent a%d and task t%d, padded so that
// its JSON is about size bytes.
func testEvent(i, size int) events.Event {
	e := events.New(events.ClassAPIActivity, events.ActivityCreate, "gateway")
	e.API = &events.API{Operation: "tools/call"}
	e.ActionID = events.ActionAllowed
	e.DispositionID = events.DispositionAllowed
	e.Warden = &events.Warden{Agent: fmt.Sprintf("spiffe://example.org/agent/a%d", i%3), Task: fmt.Sprintf("t%d", i%5), Tool: "files.read"}
	if size > 0 {
		b, _ := json.Marshal(&e)
		if pad := size - len(b); pad > 0 {
			e.Message = strings.Repeat("x", pad)
		}
	}
	return e
}

func emitN(t testing.TB, l *Log, from, n int) []events.Event {
	t.Helper()
	var out []events.Event
	for i := from; i < from+n; i++ {
		e := testEvent(i, 0)
		if err := l.Emit(context.Background(), e); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

func verifierFor(t testing.TB, key ed25519.PrivateKey) note.Verifier {
	t.Helper()
	vk, err := VerifierKey(testOrigin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vk)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
