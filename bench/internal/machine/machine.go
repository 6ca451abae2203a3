// Package machine holds what Warden's benchmark programs print about the
// machine they ran on and how they summarise latencies, so that figures
// from different benchmarks are computed and labelled alike. It never
// measures anything itself.
package machine

import (
	"os"
	"slices"
	"strings"
	"time"
)

// Percentile is the nearest-rank q-th percentile of lat, which it sorts;
// 0 for no samples.
func Percentile(lat []time.Duration, q int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := (q*len(lat)+99)/100 - 1
	return lat[max(0, min(i, len(lat)-1))]
}

// CPUModel is the processor's model name from /proc/cpuinfo.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu unknown"
}

// LoadAvg is the 1, 5 and 15 minute load averages from /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
