package sandbox

import (
	"bytes"
	"context"
	"testing"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

func TestSmoke(t *testing.T) {
	rec := &events.Recorder{}
	l, err := New(Options{Tier: tier.Advanced, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	ex, p, err := l.Run(context.Background(), Spec{Args: []string{"/bin/sh", "-c", "id; grep -E 'Cap|NoNew|Seccomp' /proc/self/status; ls -la / /dev; cat /etc/hosts; pwd; env; ls /proc"}, Stdout: &out, Stderr: &errb})
	t.Logf("err=%v exit=%+v\nout:\n%s\nerr:\n%s", err, ex, out.String(), errb.String())
	if p != nil {
		t.Logf("mech: %s", p.Mechanisms())
		t.Logf("warnings: %v", p.Mechanisms().Warnings)
	}
}
