// Package tier owns Warden's maturity tiers and the one table of concrete
// settings each tier selects. Every part of Warden reads its tier-dependent
// settings from here and nowhere else, so that "tier: advanced" means the same
// thing to the identity service, the gateway, the audit log and the assessment.
//
// This package holds data only: it never reads configuration files, never
// enforces anything and never changes at run time.
package tier

import (
	"fmt"
	"time"
)

// Tier is a maturity tier. The zero value is not a tier; parse names with Parse.
type Tier int

// The three tiers, ordered from least to most strict.
const (
	Foundation Tier = iota + 1
	Advanced
	Optimized
)

// All lists the tiers from least to most strict.
var All = []Tier{Foundation, Advanced, Optimized}

// Parse turns "foundation", "advanced" or "optimized" into a Tier.
func Parse(s string) (Tier, error) {
	switch s {
	case "foundation":
		return Foundation, nil
	case "advanced":
		return Advanced, nil
	case "optimized":
		return Optimized, nil
	}
	return 0, fmt.Errorf("unknown tier %q: want foundation, advanced or optimized", s)
}

func (t Tier) String() string {
	switch t {
	case Foundation:
		return "foundation"
	case Advanced:
		return "advanced"
	case Optimized:
		return "optimized"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// Valid reports whether t is one of the three tiers.
func (t Tier) Valid() bool { return t >= Foundation && t <= Optimized }

// MarshalText implements encoding.TextMarshaler.
func (t Tier) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid tier %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Tier) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Stricter returns the stricter of two tiers. An agent registered at a higher
// tier than its deployment only tightens its own calls; it never loosens them.
func Stricter(a, b Tier) Tier {
	if a > b {
		return a
	}
	return b
}

// AuditMode is how durably the audit log records an event before the call it
// describes is answered.
type AuditMode string

// Audit durability modes.
const (
	AuditAsync AuditMode = "async" // bounded in-memory batch; documented loss window
	AuditSync  AuditMode = "sync"  // answered only after the event is durable
)

// FindingAction is what the gateway does with an inspection finding.
type FindingAction string

// Finding actions, from least to most intrusive.
const (
	ActionLog    FindingAction = "log"
	ActionRedact FindingAction = "redact"
	ActionBlock  FindingAction = "block"
)

// FlowRule is the taint rule applied to sensitive sinks.
type FlowRule string

// Taint flow rules.
const (
	FlowOff       FlowRule = "off"       // taint is recorded, not enforced
	FlowHeuristic FlowRule = "heuristic" // deny when argument values match untrusted content seen
	FlowSound     FlowRule = "sound"     // once tainted, every sensitive argument must be fixed by the grant
)

// Preset is the table of concrete settings a tier selects.
type Preset struct {
	Tier Tier

	// Identity.
	X509SVIDMaxTTL time.Duration // ceiling on an X.509-SVID's lifetime
	JWTSVIDMaxTTL  time.Duration // ceiling on a JWT-SVID's lifetime
	JoinTokenTTL   time.Duration // lifetime of a one-time enrolment token

	// Access scoping.
	GrantMaxTTL         time.Duration // ceiling on a task grant's lifetime
	GrantMaxDelegation  int           // how deep a grant may be delegated
	RequireBudget       bool          // every grant must carry a call budget
	RequireConstraints  bool          // grants to writes/egress/destructive tools must constrain arguments
	ApprovalForHighRisk bool          // destructive calls are held for a human

	// Sandboxing.
	SandboxRequired   bool // a stdio upstream that cannot be confined is refused, not run with a warning
	SandboxSeccomp    bool // the seccomp filter is required
	SandboxEgressList bool // network egress only through the allow-list proxy

	// Input and output controls.
	InjectionAction FindingAction // on high-confidence injection in what flows in
	SecretAction    FindingAction // on secrets in what flows out
	PIIAction       FindingAction // on PII in what flows out
	Flow            FlowRule

	// Memory.
	MemorySigned            bool // entries signed and verified on every read
	MemoryWithholdUntrusted bool // untrusted entries withheld rather than served marked

	// Monitoring and response.
	Audit              AuditMode
	AutoRevoke         bool          // detection rules revoke grants automatically
	DetectionMaxBehind time.Duration // deny with detection_backlog beyond this lag (0: never)
}

var presets = map[Tier]Preset{
	Foundation: {
		Tier:               Foundation,
		X509SVIDMaxTTL:     24 * time.Hour,
		JWTSVIDMaxTTL:      time.Hour,
		JoinTokenTTL:       time.Hour,
		GrantMaxTTL:        8 * time.Hour,
		GrantMaxDelegation: 3,
		InjectionAction:    ActionLog,
		SecretAction:       ActionLog,
		PIIAction:          ActionLog,
		Flow:               FlowOff,
		Audit:              AuditAsync,
	},
	Advanced: {
		Tier:                    Advanced,
		X509SVIDMaxTTL:          time.Hour,
		JWTSVIDMaxTTL:           15 * time.Minute,
		JoinTokenTTL:            15 * time.Minute,
		GrantMaxTTL:             time.Hour,
		GrantMaxDelegation:      2,
		RequireBudget:           true,
		RequireConstraints:      true,
		SandboxRequired:         true,
		SandboxEgressList:       true,
		InjectionAction:         ActionBlock,
		SecretAction:            ActionRedact,
		PIIAction:               ActionRedact,
		Flow:                    FlowHeuristic,
		MemorySigned:            true,
		MemoryWithholdUntrusted: false,
		Audit:                   AuditSync,
		AutoRevoke:              true,
		DetectionMaxBehind:      time.Second,
	},
	Optimized: {
		Tier:                Optimized,
		X509SVIDMaxTTL:      time.Hour,
		JWTSVIDMaxTTL:       5 * time.Minute,
		JoinTokenTTL:        10 * time.Minute,
		GrantMaxTTL:         15 * time.Minute,
		GrantMaxDelegation:  1,
		RequireBudget:       true,
		RequireConstraints:  true,
		ApprovalForHighRisk: true,
		SandboxRequired:     true,
		SandboxSeccomp:      true,
		SandboxEgressList:   true,
		// Every injection finding's spans are removed rather than the
		// whole result withheld: the session is tainted either way, and
		// the sound flow rule, not the detector, is what stops a hijacked
		// agent here; withholding whole results only cost utility.
		InjectionAction:         ActionRedact,
		SecretAction:            ActionBlock,
		PIIAction:               ActionRedact,
		Flow:                    FlowSound,
		MemorySigned:            true,
		MemoryWithholdUntrusted: true,
		Audit:                   AuditSync,
		AutoRevoke:              true,
		DetectionMaxBehind:      250 * time.Millisecond,
	},
}

// For returns the preset of a tier. It panics on an invalid tier, which can
// only come from a programming error: tiers enter Warden through Parse.
func For(t Tier) Preset {
	p, ok := presets[t]
	if !ok {
		panic(fmt.Sprintf("tier.For(%d): not a tier", int(t)))
	}
	return p
}
