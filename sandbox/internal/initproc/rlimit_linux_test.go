package initproc

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReportRlimits: a lowered soft limit counts as in force only while the
// seccomp filter stops the tool from raising it; a refused one never does.
func TestReportRlimits(t *testing.T) {
	lowered := []loweredLimit{
		{res: unix.RLIMIT_NOFILE, mech: MechFilesLimit, detail: "rlimit 128"},
		{res: unix.RLIMIT_DATA, mech: MechMemoryLimit, detail: "rlimit data 1024", err: errors.New("operation not permitted")},
	}
	for _, tc := range []struct {
		name        string
		seccomp     bool
		wantFailed  bool
		wantInForce map[string]bool
		wantDetail  map[string]string
	}{
		{"with seccomp", true, true,
			map[string]bool{MechFilesLimit: true, MechMemoryLimit: false},
			map[string]string{MechFilesLimit: "rlimit 128", MechMemoryLimit: "operation not permitted"}},
		{"without seccomp", false, true,
			map[string]bool{MechFilesLimit: false, MechMemoryLimit: false},
			map[string]string{MechFilesLimit: "the tool could raise", MechMemoryLimit: "operation not permitted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inForce, detail := map[string]bool{}, map[string]string{}
			failed := reportRlimits(lowered, tc.seccomp, func(m string, on bool, d string) { inForce[m], detail[m] = on, d })
			if failed != tc.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tc.wantFailed)
			}
			for m, want := range tc.wantInForce {
				if inForce[m] != want || !strings.Contains(detail[m], tc.wantDetail[m]) {
					t.Errorf("%s: in force %v (%q), want %v (%q)", m, inForce[m], detail[m], want, tc.wantDetail[m])
				}
			}
		})
	}
	if reportRlimits(lowered[:1], true, func(string, bool, string) {}) {
		t.Error("a limit lowered under seccomp reported as failed")
	}
}

// TestLowerAndRestoreRlimits: only the soft limit moves, and it comes back.
func TestLowerAndRestoreRlimits(t *testing.T) {
	var before unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &before); err != nil {
		t.Fatal(err)
	}
	if before.Cur < 64 {
		t.Skipf("open-files soft limit %d is already below the test's", before.Cur)
	}
	lowered := lowerRlimits(Rlimits{NoFile: 64})
	var during unix.Rlimit
	_ = unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &during)
	restoreRlimits(lowered)
	var after unix.Rlimit
	_ = unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &after)
	if len(lowered) != 1 || lowered[0].err != nil {
		t.Fatalf("lowering: %+v", lowered)
	}
	if during.Cur != 64 || during.Max != before.Max {
		t.Errorf("while lowered: %+v, want soft 64 and hard %d", during, before.Max)
	}
	if after != before {
		t.Errorf("after restoring: %+v, want %+v", after, before)
	}
}
