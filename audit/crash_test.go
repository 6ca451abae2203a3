package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// The helper process: the test binary re-executed with AUDIT_HELPER set.
// It appends to a real log in a real process so that the parent can kill -9
// it or starve it of disk.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv("AUDIT_HELPER")
	if role == "" {
		t.Skip("helper process only")
	}
	seed, _ := hex.DecodeString(os.Getenv("AUDIT_HELPER_KEY"))
	key := ed25519.NewKeyFromSeed(seed)
	dir := os.Getenv("AUDIT_HELPER_DIR")
	var err error
	switch role {
	case "crash":
		err = crashChild(dir, key)
	case "diskfull":
		err = diskFullChild(dir, key)
	}
	if err != nil {
		fmt.Println("helper error:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// crashChild appends from 8 goroutines and prints each event id once Emit
// has acknowledged it, until it is killed.
func crashChild(dir string, key ed25519.PrivateKey) error {
	o := testOptions(key, tier.AuditSync)
	o.SegmentBytes = 256 << 10 // roll segments under load too
	o.CheckpointInterval = 50 * time.Millisecond
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	fmt.Println("ready")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				e := testEvent(g*1_000_000+i, 512)
				if err := l.Emit(context.Background(), e); err != nil {
					fmt.Println("emit error:", err)
					os.Exit(4)
				}
				mu.Lock()
				os.Stdout.WriteString("ack " + e.Metadata.UID + "\n")
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	return nil
}

// diskFullChild fills its file-size limit, reports which events were
// acknowledged and that the rest were denied, then gets the space back.
func diskFullChild(dir string, key ed25519.PrivateKey) error {
	signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of dying
	o := testOptions(key, tier.AuditSync)
	o.AsyncFlushInterval = 20 * time.Millisecond // repair attempts
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		return err
	}
	ctx := context.Background()
	fi, err := os.Stat(filepath.Join(dir, segName(0)))
	if err != nil {
		return err
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		return err
	}
	limit := unix.Rlimit{Cur: uint64(fi.Size()) + 20_000, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &limit); err != nil {
		return err
	}
	denied := 0
	for i := 0; i < 10_000 && denied < 5; i++ {
		e := testEvent(i, 512)
		if err := l.Emit(ctx, e); err != nil {
			fmt.Println("denied", strings.ReplaceAll(err.Error(), "\n", " "))
			denied++
			continue
		}
		if denied > 0 {
			return errors.New("an event was acknowledged while the disk was full")
		}
		fmt.Println("ack", e.Metadata.UID)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e := testEvent(99, 512)
		err := l.Emit(ctx, e)
		if err == nil {
			fmt.Println("ack", e.Metadata.UID)
			fmt.Println("recovered")
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("log did not recover once space was back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l.Close(ctx)
}

func startHelper(t *testing.T, role, dir string, key ed25519.PrivateKey) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "AUDIT_HELPER="+role, "AUDIT_HELPER_DIR="+dir,
		"AUDIT_HELPER_KEY="+hex.EncodeToString(key.Seed()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	return cmd, sc
}

// storedIDs opens the log as its next writer would (recovering it), and
// returns the ids of every stored event.
func storedIDs(t *testing.T, dir string, key ed25519.PrivateKey) map[string]bool {
	t.Helper()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	closeLog(t, l)
	r, err := OpenReader(dir, verifierFor(t, key))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ids := map[string]bool{}
	err = r.Scan(context.Background(), 0, func(rec Record) error {
		var e events.Event
		if err := json.Unmarshal(rec.Event, &e); err != nil {
			return err
		}
		ids[e.Metadata.UID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestKill9UnderLoadLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	dir := t.TempDir()
	key := testKey(t)
	acked := map[string]bool{}
	for round := 0; round < 3; round++ {
		cmd, sc := startHelper(t, "crash", dir, key)
		n := 0
		killed := false
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "ack "); ok {
				acked[id] = true
				n++
			} else if line != "ready" {
				t.Errorf("helper: %s", line)
			}
			if n == 1500+round*500 && !killed {
				// kill -9 in the middle of appending under load
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		timer.Stop()
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended with %v, want killed", round, err)
		}
		ids := storedIDs(t, dir, key)
		missing := 0
		for id := range acked {
			if !ids[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged events are missing after kill -9", round, missing, len(acked))
		}
		rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: verifierFor(t, key)})
		if err != nil {
			t.Fatalf("round %d: log does not verify after kill -9: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged so far, %d stored, log verifies (%d records, torn bytes %d)", round, len(acked), len(ids), rep.Size, rep.TornBytes)
	}
}

func TestDiskFullDeniesInSyncMode(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	key := testKey(t)
	cmd, sc := startHelper(t, "diskfull", dir, key)
	acked := map[string]bool{}
	var denied []string
	recovered := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ack "):
			acked[strings.TrimPrefix(line, "ack ")] = true
		case strings.HasPrefix(line, "denied "):
			denied = append(denied, line)
		case line == "recovered":
			recovered = true
		default:
			t.Logf("helper: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if len(denied) < 5 || !recovered || len(acked) < 2 {
		t.Fatalf("acked %d, denied %d, recovered %v", len(acked), len(denied), recovered)
	}
	if !strings.Contains(denied[0], "file too large") || !strings.Contains(denied[0], "audit") {
		t.Errorf("denial does not say why: %s", denied[0])
	}
	ids := storedIDs(t, dir, key)
	for id := range acked {
		if !ids[id] {
			t.Fatalf("acknowledged event %s missing", id)
		}
	}
	if len(ids) != len(acked) {
		t.Errorf("stored %d events, acknowledged %d: a denied event was kept", len(ids), len(acked))
	}
	if _, err := Verify(context.Background(), dir, VerifyOptions{Verifier: verifierFor(t, key)}); err != nil {
		t.Fatalf("log does not verify after running out of space: %v", err)
	}
}

func TestUnwritableDirectoryRefusesToOpen(t *testing.T) {
	key := testKey(t)
	base := t.TempDir()
	notDir := filepath.Join(base, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"beneath a regular file": filepath.Join(notDir, "audit")}
	if os.Geteuid() != 0 { // root ignores permission bits
		ro := filepath.Join(base, "ro")
		os.Mkdir(ro, 0o500)
		cases["read-only directory"] = filepath.Join(ro, "audit")
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			l, err := Open(context.Background(), dir, testOptions(key, tier.AuditSync))
			if err == nil {
				l.Close(context.Background())
				t.Fatal("Open succeeded on an unwritable directory")
			}
			if !strings.Contains(err.Error(), "audit") {
				t.Errorf("error does not say what failed: %v", err)
			}
		})
	}
}
