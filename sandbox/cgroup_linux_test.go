package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The sweep removes what crashed Warden processes left (empty sandbox
// cgroups past the age limit) and nothing else. A directory here stands in
// for a cgroup: like the kernel with a cgroup that holds a process, rmdir
// refuses one that is not empty.
func TestSweepCgroups(t *testing.T) {
	now := time.Now()
	root := t.TempDir()
	m := cgroupMounts{V1: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}}
	type dir struct {
		name     string
		age      time.Duration
		busy     bool // holds a process
		wantGone bool
	}
	dirs := []dir{
		{name: "sandbox-left-by-a-crash", age: time.Hour, wantGone: true},
		{name: "sandbox-just-created", age: time.Second},
		{name: "sandbox-running", age: time.Hour, busy: true},
		{name: "not-a-sandbox", age: time.Hour},
	}
	for _, mnt := range m.V1 {
		for _, d := range dirs {
			p := filepath.Join(mnt, "warden", d.name)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if d.busy {
				if err := os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte("42\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(p, now.Add(-d.age), now.Add(-d.age)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := sweepCgroups(m, staleCgroupAge, now); n != 2 {
		t.Errorf("removed %d directories, want 2 (one per hierarchy)", n)
	}
	for _, mnt := range m.V1 {
		for _, d := range dirs {
			_, err := os.Stat(filepath.Join(mnt, "warden", d.name))
			if gone := os.IsNotExist(err); gone != d.wantGone {
				t.Errorf("%s/%s: gone = %v, want %v", filepath.Base(mnt), d.name, gone, d.wantGone)
			}
		}
	}
	// No hierarchy, or no warden directory in it yet: nothing to do.
	if n := sweepCgroups(cgroupMounts{V2Available: true, V2: filepath.Join(root, "absent")}, staleCgroupAge, now); n != 0 {
		t.Errorf("removed %d from a hierarchy without a warden directory", n)
	}
}
