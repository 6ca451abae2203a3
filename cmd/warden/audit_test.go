package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// auditRun runs the CLI and returns its standard output and error.
func auditRun(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	if stdin != nil {
		root.SetIn(stdin)
	}
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// auditFixture writes a log of 30 events (checkpoints at 10 and 30) and a
// file publisher's copy of its checkpoints, and returns the data directory,
// the verifier key and the external checkpoint file.
func auditFixture(t *testing.T) (string, string, string) {
	t.Helper()
	data := t.TempDir()
	key, err := audit.EnsureKey(audit.KeyPath(config.Dir(data)))
	if err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(t.TempDir(), "published")
	l, err := audit.Open(context.Background(), audit.Dir(config.Dir(data)), audit.Options{
		Key: key, Origin: "example.org/warden/audit", Mode: tier.AuditSync,
		Publishers: []audit.Publisher{&audit.FilePublisher{Path: ext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		e := events.New(events.ClassAPIActivity, events.ActivityCreate, "gateway")
		e.API = &events.API{Operation: "tools/call"}
		e.ActionID = events.ActionAllowed
		e.Warden = &events.Warden{Agent: "spiffe://example.org/agent/" + []string{"alice", "bob"}[i%2], Task: "task-7", Tool: "files.read"}
		if i == 20 {
			e = events.New(events.ClassDetectionFinding, events.ActivityCreate, "respond")
			e.FindingInfo = &events.FindingInfo{UID: "f1", Title: "exfiltration attempt"}
			e.Warden = &events.Warden{Agent: "spiffe://example.org/agent/bob", Reason: "exfil"}
		}
		if err := l.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			if _, err := l.CheckpointNow(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile(audit.PublicKeyPath(audit.Dir(config.Dir(data))))
	if err != nil {
		t.Fatal(err)
	}
	return data, strings.TrimSpace(string(vkey)), ext
}

func exitCode(err error) int {
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestAuditCLIVerifyProveTailExport(t *testing.T) {
	data, vkey, ext := auditFixture(t)

	out, err := auditRun(t, nil, "--dir", data, "audit", "verify", "--key", vkey, "--from-checkpoint", ext)
	if err != nil || !strings.Contains(out, "verified: 30 records") || !strings.Contains(out, "external") {
		t.Fatalf("verify: %q, %v", out, err)
	}

	// proofs travel as files and check with only the key (no --dir)
	proof, err := auditRun(t, nil, "--dir", data, "audit", "proof", "--index", "20", "--key", vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "audit.pub")
	os.WriteFile(keyFile, []byte(vkey+"\n"), 0o644)
	out, err = auditRun(t, strings.NewReader(proof), "--dir", t.TempDir(), "audit", "check-proof", "--key", keyFile, "-")
	if err != nil || !strings.Contains(out, "record 20 is in the log") || !strings.Contains(out, "exfiltration attempt") {
		t.Fatalf("check-proof inclusion: %q, %v", out, err)
	}
	cons, err := auditRun(t, nil, "--dir", data, "audit", "consistency", "--old", "10", "--key", vkey)
	if err != nil {
		t.Fatal(err)
	}
	// check against the checkpoint of size 10 that the external sink holds
	old := filepath.Join(t.TempDir(), "old.cp")
	for _, n := range audit.SplitNotes([]byte(mustRead(t, ext))) {
		if bytes.Contains(n, []byte("\n10\n")) {
			os.WriteFile(old, n, 0o644)
		}
	}
	out, err = auditRun(t, strings.NewReader(cons), "audit", "check-proof", "--key", vkey, "--old-checkpoint", old, "-")
	if err != nil || !strings.Contains(out, "consistency proof verified") {
		t.Fatalf("check-proof consistency: %q, %v", out, err)
	}
	bad := strings.Replace(proof, `"index": 20`, `"index": 21`, 1)
	_, err = auditRun(t, strings.NewReader(bad), "audit", "check-proof", "--key", vkey, "-")
	if exitCode(err) != auditExitBadProof {
		t.Fatalf("a doctored proof: exit %d (%v), want %d", exitCode(err), err, auditExitBadProof)
	}

	out, err = auditRun(t, nil, "--dir", data, "audit", "tail", "--agent", "spiffe://example.org/agent/bob", "-n", "6", "--key", vkey)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 6 || !strings.HasPrefix(lines[5], "29 ") || !strings.Contains(out, "reason=exfil") {
		t.Fatalf("tail --agent: %q, %v", out, err)
	}

	out, err = auditRun(t, nil, "--dir", data, "audit", "export", "--format", "ocsf", "--key", vkey)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		md := m["metadata"].(map[string]any)
		if md["sequence"] != float64(n) || md["version"] != events.OCSFVersion {
			t.Fatalf("event %d metadata %v", n, md)
		}
		switch m["class_uid"] {
		case float64(6003):
			if !strings.Contains(sc.Text(), `"security_control"`) || m["src_endpoint"] == nil || m["actor"] == nil {
				t.Fatalf("API Activity without its required attributes or profile: %s", sc.Text())
			}
		case float64(2004):
			if m["finding_info"].(map[string]any)["title"] != "exfiltration attempt" {
				t.Fatalf("finding: %s", sc.Text())
			}
		}
		n++
	}
	if n != 30 {
		t.Fatalf("exported %d events", n)
	}
}

func TestAuditCLIFailsWithSpecificStatus(t *testing.T) {
	data, vkey, ext := auditFixture(t)
	seg := filepath.Join(audit.Dir(config.Dir(data)), "00000000000000000000.seg")
	b := []byte(mustRead(t, seg))
	i := bytes.LastIndex(b, []byte("task-7"))
	b[i] = 'T'
	os.WriteFile(seg, b, 0o600)
	_, err := auditRun(t, nil, "--dir", data, "audit", "verify", "--key", vkey, "--from-checkpoint", ext)
	if exitCode(err) != auditExitTampered || !strings.Contains(err.Error(), "at index 29") {
		t.Fatalf("verify of a tampered log: exit %d, %v", exitCode(err), err)
	}
	_, err = auditRun(t, nil, "--dir", t.TempDir(), "audit", "verify")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "verifier key") {
		t.Fatalf("verify without a log: exit %d, %v", exitCode(err), err)
	}
	_, err = auditRun(t, nil, "--dir", data, "audit", "export", "--format", "csv", "--key", vkey)
	if err == nil || !strings.Contains(err.Error(), "want ocsf or jsonl") {
		t.Fatalf("export --format csv: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
