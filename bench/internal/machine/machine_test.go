package machine

import (
	"os"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(100-i) * time.Millisecond
	}
	for _, c := range []struct {
		lat  []time.Duration
		q    int
		want time.Duration
	}{
		{lat, 50, 50 * time.Millisecond},
		{lat, 99, 99 * time.Millisecond},
		{[]time.Duration{7}, 99, 7},
		{nil, 50, 0},
	} {
		if p := Percentile(c.lat, c.q); p != c.want {
			t.Errorf("p%d of %d = %v, want %v", c.q, len(c.lat), p, c.want)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin for 100 ms of wall time: at least 10 ms of CPU shows.
	x := 0
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time went from %v to %v after spinning (%d loops)", before, after, x)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}
