package machine

import (
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
