package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestJSONLAppendsOneObjectPerLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	for round := 0; round < 2; round++ { // reopening appends, never truncates
		s, err := OpenJSONL(path)
		if err != nil {
			t.Fatal(err)
		}
		e := New(ClassAccountChange, ActivityCreate, "identity")
		e.Warden = &Warden{Agent: "spiffe://example.org/agent/a", Reason: "registered"}
		if err := s.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Emit(context.Background(), e); err == nil {
			t.Fatal("emit after close succeeded")
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("event log mode %v, want 0600", fi.Mode().Perm())
	}
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", lines+1, err)
		}
		if m["class_uid"] != float64(3001) || m["type_uid"] != float64(300101) || m["category_uid"] != float64(3) {
			t.Errorf("OCSF ids wrong: %v %v %v", m["class_uid"], m["type_uid"], m["category_uid"])
		}
		md := m["metadata"].(map[string]any)
		if md["version"] != OCSFVersion || md["uid"] == "" {
			t.Errorf("metadata = %v", md)
		}
		if m["unmapped"].(map[string]any)["reason"] != "registered" {
			t.Errorf("unmapped = %v", m["unmapped"])
		}
		lines++
	}
	if lines != 2 {
		t.Fatalf("got %d lines, want 2", lines)
	}
}

func TestMultiTriesEverySinkAndReportsFirstError(t *testing.T) {
	bad := &Recorder{Err: errors.New("disk full")}
	good := &Recorder{}
	err := Multi{bad, good}.Emit(context.Background(), New(ClassAPIActivity, ActivityRead, "test"))
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("err = %v, want disk full", err)
	}
	if len(good.Events()) != 1 {
		t.Fatal("a failing sink starved the next one")
	}
}

func TestNewIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 32 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}
