package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// `warden assess` on a deployment that `warden serve` is running: it
// assesses without taking the server's locks, and its exit status says
// whether the target is met or the assessment could not be made.
func TestAssessCLI(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)

	out, err := run(ctx, "assess", "--dir", dir, "--no-probe")
	if err != nil {
		t.Fatalf("assess while serving: %v\n%s", err, out)
	}
	for _, s := range []string{"PHASE", "Access scoping", "overall", "fix:"} {
		if !strings.Contains(out, s) {
			t.Errorf("table output lacks %q:\n%s", s, out)
		}
	}

	out, err = run(ctx, "assess", "--dir", dir, "--no-probe", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Overall string `json:"overall"`
		Phases  []struct {
			ID string `json:"id"`
		} `json:"phases"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Phases) != 8 {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	// a fresh deployment has no policy and no lock: below foundation
	if rep.Overall != "none" {
		t.Errorf("overall %s, want none", rep.Overall)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--target", "foundation"}, 1, "target foundation not met"},
		{[]string{"--framework", "hipaa", "--format", "markdown"}, 0, "164.312"},
		{[]string{"--format", "sarif"}, 0, `"version": "2.1.0"`},
		{[]string{"--format", "oscal"}, 0, `"assessment-results"`},
		{[]string{"--format", "html"}, 0, "<!DOCTYPE html>"},
		{[]string{"--target", "best"}, 2, "--target"},
		{[]string{"--framework", "iso-27001"}, 2, "unknown framework"},
		{[]string{"--format", "pdf"}, 2, "--format"},
		{[]string{"--dir", filepath.Join(t.TempDir(), "none")}, 2, "warden init"},
	} {
		args := append([]string{"assess", "--dir", dir, "--no-probe"}, tc.args...)
		out, err := run(ctx, args...)
		if got := exitCode(err); got != tc.code {
			t.Errorf("%v: exit %d, want %d (%v)", tc.args, got, tc.code, err)
		}
		msg := out
		if err != nil {
			msg += err.Error()
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%v: output and error lack %q", tc.args, tc.want)
		}
	}
}
