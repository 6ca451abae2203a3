package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/warden-run/warden/tier"
)

// Inspect configures the input and output controls (package inspect).
// Everything is optional: zero values take the tier preset and the model's
// calibrated threshold. Overrides may only tighten what the tier sets; a
// looser action is refused when the inspector starts.
type Inspect struct {
	// InjectionThreshold lowers the detector's score threshold (0: the
	// model's own, chosen on dev_tune). Raising it above the model's is
	// refused: that would loosen the control.
	InjectionThreshold float64 `yaml:"injection_threshold,omitempty"`
	// Actions override the tier's action per finding kind: keys injection,
	// secret, pii, exfiltration; values log, redact, block.
	Actions map[string]tier.FindingAction `yaml:"actions,omitempty"`
	// AllowHosts are hosts (exact, or "*.example.com") every task's
	// arguments may point at, in addition to the task's own allow-list.
	AllowHosts []string `yaml:"allow_hosts,omitempty"`
	// AllowSecrets are regular expressions of values known not to be
	// secrets (test fixtures), exempt from secret detection.
	AllowSecrets []string `yaml:"allow_secrets,omitempty"`
	// VolumeBudgetBytes is the per-task budget of outbound argument bytes
	// (0: unlimited below Optimized; Optimized defaults to 16 MiB).
	VolumeBudgetBytes int64 `yaml:"volume_budget_bytes,omitempty"`
	// MaxScanBytes bounds how much of one value is scanned (default 4 MiB);
	// a value longer than this is blocked rather than passed half-read.
	MaxScanBytes int `yaml:"max_scan_bytes,omitempty"`
}

// InspectActionKeys are the finding kinds whose action can be overridden.
func InspectActionKeys() []string { return []string{"injection", "secret", "pii", "exfiltration"} }

func (c Inspect) validate() error {
	var errs []error
	if c.InjectionThreshold < 0 || c.InjectionThreshold >= 1 {
		errs = append(errs, fmt.Errorf("inspect.injection_threshold %v: want a value in (0,1), or 0 for the model's", c.InjectionThreshold))
	}
	for k, v := range c.Actions {
		known := false
		for _, want := range InspectActionKeys() {
			known = known || k == want
		}
		if !known {
			errs = append(errs, fmt.Errorf("inspect.actions: unknown finding kind %q; want one of %s", k, strings.Join(InspectActionKeys(), ", ")))
		}
		switch v {
		case tier.ActionLog, tier.ActionRedact, tier.ActionBlock:
		default:
			errs = append(errs, fmt.Errorf("inspect.actions.%s: %q is not an action; want log, redact or block", k, v))
		}
	}
	for _, h := range c.AllowHosts {
		if h == "" || strings.ContainsAny(h, "/: ") || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			errs = append(errs, fmt.Errorf("inspect.allow_hosts: %q is not a host name or *.domain pattern", h))
		}
	}
	for _, x := range c.AllowSecrets {
		if _, err := regexp.Compile(x); err != nil {
			errs = append(errs, fmt.Errorf("inspect.allow_secrets %q: %w", x, err))
		}
	}
	if c.VolumeBudgetBytes < 0 {
		errs = append(errs, errors.New("inspect.volume_budget_bytes must not be negative"))
	}
	if c.MaxScanBytes < 0 {
		errs = append(errs, errors.New("inspect.max_scan_bytes must not be negative"))
	}
	return errors.Join(errs...)
}
