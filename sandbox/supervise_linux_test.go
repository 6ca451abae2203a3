package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

func TestSupervisorStdioRestartAndContain(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := h.l.Supervise(ctx, Spec{Name: "echo", Profile: withHostile(DefaultProfile()), Args: []string{testEnv.hostile, "echo"}, Tool: "echo"},
		RestartPolicy{MaxRestarts: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	for i := 0; i < 2; i++ {
		p, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		// An MCP-style exchange over the pipes.
		fmt.Fprintf(p.Stdin(), "{\"jsonrpc\":\"2.0\",\"id\":%d}\n", i)
		line, err := bufio.NewReader(p.Stdout()).ReadString('\n')
		if err != nil || line != fmt.Sprintf("{\"jsonrpc\":\"2.0\",\"id\":%d}\n", i) {
			t.Fatalf("instance %d answered %q, %v", i, line, err)
		}
		if i == 0 {
			p.Stdin().Close() // the server exits on EOF: the supervisor restarts it
			if ex := p.Wait(); ex.Reason != ExitNormal {
				t.Fatalf("first instance: %v", ex)
			}
			continue
		}
		s.Contain("rule r7")
		if ex := p.Wait(); ex.Reason != ExitContained {
			t.Fatalf("contained instance: %v", ex)
		}
	}
	if _, err := s.Next(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("after containment Next = %v, want ErrStopped", err)
	}
	if ex := s.Exits(); len(ex) != 2 {
		t.Fatalf("exits %v", ex)
	}
	if len(h.rec.Find("contained")) != 1 || len(h.rec.Find("sandbox_started")) != 2 {
		t.Errorf("events: %d contained, %d started", len(h.rec.Find("contained")), len(h.rec.Find("sandbox_started")))
	}
}

func TestSupervisorGivesUp(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := h.l.Supervise(ctx, Spec{Profile: withHostile(DefaultProfile()), Args: []string{testEnv.hostile, "exit", "3"}},
		RestartPolicy{MaxRestarts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	for {
		if _, err := s.Next(ctx); err != nil {
			if !errors.Is(err, ErrGaveUp) {
				t.Fatalf("Next = %v, want ErrGaveUp", err)
			}
			break
		}
	}
	if n := len(s.Exits()); n != 3 {
		t.Fatalf("%d runs, want 3 (one start, two restarts)", n)
	}
	for _, ex := range s.Exits() {
		if ex.Reason != ExitNormal || ex.Code != 3 {
			t.Errorf("exit %v", ex)
		}
	}
}

func TestSessionEndKillsTree(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := h.l.StartStdio(ctx, Spec{Profile: DefaultProfile(), Args: []string{"/bin/sh", "-c", "/bin/sleep 67 & /bin/sleep 67 & exec /bin/sleep 67"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := countProcs("/bin/sleep\x0067\x00"); n != 3 {
		t.Fatalf("%d sleepers running, want 3", n)
	}
	cancel()
	ex := p.Wait()
	if ex.Reason != ExitSessionEnd {
		t.Fatalf("exit %v, want session_end", ex)
	}
	if left := countProcs("/bin/sleep\x0067\x00"); left > 0 {
		t.Errorf("%d processes outlived the session", left)
	}
	exits := h.rec.Find(string(ExitSessionEnd))
	if len(exits) != 1 || exits[0].API.Operation != "sandbox.exit" {
		t.Errorf("exit event: %+v", exits)
	}
}

func TestLaunchEventRecordsMechanisms(t *testing.T) {
	h := newHarness(t)
	_, ex := h.run(DefaultProfile(), "exit", "0")
	if !ex.Success() {
		t.Fatal(ex)
	}
	ev := h.rec.Find("sandbox_started")
	if len(ev) != 1 {
		t.Fatalf("%d launch events", len(ev))
	}
	a := ev[0].Warden.Attrs
	for _, m := range []string{MechUserNS, MechPivotRoot, MechSeccomp, MechLandlockFS, MechFDsClosed} {
		if a["mech."+m] == "" || a["mech."+m][:2] != "on" {
			t.Errorf("launch event: mech.%s = %q", m, a["mech."+m])
		}
	}
	// A launch whose record cannot be made is refused at tiers with a
	// synchronous audit log.
	l, err := New(Options{Tier: tier.Advanced, Sink: &events.Recorder{Err: errors.New("log down")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(context.Background(), Spec{Profile: DefaultProfile(), Args: []string{"/bin/true"}}); err == nil {
		t.Fatal("launched without a record at tier advanced")
	}
}

func TestRequiredByTier(t *testing.T) {
	if r := Required(tier.For(tier.Foundation)); len(r) != 0 {
		t.Errorf("foundation requires %v", r)
	}
	adv, opt := Required(tier.For(tier.Advanced)), Required(tier.For(tier.Optimized))
	if requires(adv, MechSeccomp) || !requires(opt, MechSeccomp) {
		t.Errorf("seccomp: advanced %v, optimized %v", adv, opt)
	}
	for _, m := range []string{MechUserNS, MechPivotRoot, MechLandlockFS, MechEgress, MechMemoryLimit, MechUnprivileged} {
		if !requires(adv, m) {
			t.Errorf("advanced does not require %s", m)
		}
	}
	if requires(opt, MechLandlockNet) || requires(opt, MechCPULimit) {
		t.Errorf("optional layers required: %v", opt)
	}
}

// TestNoNamespacesFallback: where namespaces cannot be created, Foundation
// runs the tool with Landlock, seccomp and limits and says so; Advanced
// refuses.
func TestNoNamespacesFallback(t *testing.T) {
	h := newHarness(t)
	h.l.noNamespaces = true
	if _, err := h.l.Start(context.Background(), Spec{Profile: withHostile(DefaultProfile()), Args: []string{testEnv.hostile, "exit", "0"}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("advanced without namespaces: %v, want ErrRefused", err)
	}
	l, err := New(Options{Tier: tier.Foundation, Sink: h.rec, DataDir: h.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	l.noNamespaces = true
	h.l = l
	out, ex := h.run(DefaultProfile(), "read", "/etc/shadow", h.home+"/canary", h.dataDir+"/canary", "/etc/ld.so.cache")
	if !ex.Success() {
		t.Fatalf("exit %v", ex)
	}
	expectBlocked(t, out, "read:/etc/shadow", "read:"+h.home+"/canary", "read:"+h.dataDir+"/canary")
	expectOK(t, out, "read:/etc/ld.so.cache")
	out, _ = h.run(DefaultProfile(), "write", "/tmp/hostile-outside-"+h.rec.Events()[0].Metadata.UID)
	expectBlocked(t, out, "write:/tmp/hostile-outside-"+h.rec.Events()[0].Metadata.UID)
	ev := h.rec.Find("sandbox_started")
	last := ev[len(ev)-1]
	if last.Warden.Attrs["mech.user_ns"] != "off" || !strings.Contains(last.Warden.Attrs["warnings"], "namespaces unavailable") {
		t.Errorf("fallback not recorded: %v", last.Warden.Attrs)
	}
}

// TestPrewarm: with Options.Prewarm a launch takes an init started ahead of
// need, the next one is made in the background, and Close ends the spare.
func TestPrewarm(t *testing.T) {
	h := newHarness(t)
	l, err := New(Options{Tier: tier.Advanced, Sink: h.rec, DataDir: h.dataDir, Prewarm: true})
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	for i := 0; i < 3; i++ {
		out, ex := h.run(DefaultProfile(), "read", "/etc/shadow", "/etc/hosts")
		if !ex.Success() {
			t.Fatalf("run %d: %v", i, ex)
		}
		expectBlocked(t, out, "read:/etc/shadow")
		expectOK(t, out, "read:/etc/hosts")
	}
	time.Sleep(100 * time.Millisecond) // let the refill finish
	if n := countChildrenPrefix("warden-sandbox-init\x00"); n < 1 {
		t.Errorf("no spare init waiting (%d)", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countChildrenPrefix("warden-sandbox-init\x00"); n != 0 {
		t.Errorf("%d inits left after Close", n)
	}
}

// TestPrewarmAfterRefusedSetup: a launch whose root cannot be built fails
// with its reason, and the launches after it still work (the spare that was
// spent on it is replaced, not left broken).
func TestPrewarmAfterRefusedSetup(t *testing.T) {
	h := newHarness(t)
	l, err := New(Options{Tier: tier.Advanced, Sink: h.rec, DataDir: h.dataDir, Prewarm: true})
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	defer l.Close()
	bad := DefaultProfile()
	bad.ReadWrite = []string{"/usr/bin/env"} // a file inside the read-only system tree: no mount point can be made
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ex, _, err := l.Run(ctx, Spec{Profile: bad, Args: []string{testEnv.hostile, "read", "/etc/hosts"}}); err == nil && ex.Success() {
		t.Fatal("a root that cannot be built ran")
	}
	for i := 0; i < 3; i++ {
		out, ex := h.run(DefaultProfile(), "read", "/etc/hosts")
		if !ex.Success() {
			t.Fatalf("launch %d after a refused one: %v", i, ex)
		}
		expectOK(t, out, "read:/etc/hosts")
	}
}

// The same with StartStdio, as the gateway launches upstreams, retrying
// soon after the refusal.
func TestPrewarmStdioAfterRefusedSetup(t *testing.T) {
	h := newHarness(t)
	l, err := New(Options{Tier: tier.Advanced, Sink: h.rec, DataDir: h.dataDir, Prewarm: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := DefaultProfile()
	bad.ReadWrite = []string{"/usr/bin/env"}
	good := DefaultProfile()
	good.ReadOnly = []string{testEnv.hostileDir}
	for i := 0; i < 2; i++ {
		if p, err := l.StartStdio(ctx, Spec{Profile: bad, Args: []string{testEnv.hostile, "read", "/etc/hosts"}}); err == nil {
			p.Kill(ExitSessionEnd, "test")
			t.Fatal("a root that cannot be built started")
		}
		time.Sleep(200 * time.Millisecond)
		p, err := l.StartStdio(ctx, Spec{Profile: good, Args: []string{testEnv.hostile, "read", "/etc/hosts"}})
		if err != nil {
			t.Fatalf("round %d: launch after a refused one: %v", i, err)
		}
		out, _ := io.ReadAll(p.Stdout())
		if ex := p.Wait(); !ex.Success() {
			t.Fatalf("round %d: %v", i, ex)
		}
		expectOK(t, string(out), "read:/etc/hosts")
	}
}

// A read-only path inside another read-only path (a command inside the
// directory that holds it, as the supply chain's verified snapshots are
// exposed) is not bound a second time: the root builds, and the command
// runs.
func TestReadOnlyPathInsideAnother(t *testing.T) {
	h := newHarness(t)
	p := DefaultProfile()
	p.ReadOnly = []string{testEnv.hostile} // the harness adds its directory
	out, ex := h.run(p, "read", "/etc/hosts")
	if !ex.Success() {
		t.Fatalf("%v\n%s", ex, out)
	}
	expectOK(t, out, "read:/etc/hosts")
}
