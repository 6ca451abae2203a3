package config

import (
	"fmt"

	"github.com/warden-run/warden/tier"
)

// Memory configures Warden's memory server (package memory).
type Memory struct {
	// Untrusted says what a read does with entries written by a session
	// that had ingested untrusted content: "withhold" them, or "mark" them
	// (served with their provenance; reading them taints the session).
	// Default: the tier's (Optimized withholds). "mark" at a tier that
	// withholds is refused.
	Untrusted string `yaml:"untrusted,omitempty"`
}

// Withhold reports whether untrusted entries are withheld at tier t.
func (m Memory) Withhold(t tier.Tier) bool {
	return m.Untrusted == "withhold" || t.Valid() && tier.For(t).MemoryWithholdUntrusted
}

func (m Memory) validate(t tier.Tier) error {
	switch m.Untrusted {
	case "", "withhold":
	case "mark":
		if t.Valid() && tier.For(t).MemoryWithholdUntrusted {
			return fmt.Errorf("memory.untrusted: mark is looser than tier %s allows (it withholds)", t)
		}
	default:
		return fmt.Errorf("memory.untrusted %q: want withhold or mark", m.Untrusted)
	}
	return nil
}
