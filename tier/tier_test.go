package tier

import "testing"

func TestParseRoundTrip(t *testing.T) {
	for _, tr := range All {
		got, err := Parse(tr.String())
		if err != nil || got != tr {
			t.Errorf("Parse(%q) = %v, %v", tr.String(), got, err)
		}
	}
	if _, err := Parse("gold"); err == nil {
		t.Error("Parse accepted an unknown tier")
	}
}

// Each tier must be at least as strict as the one below it on every setting
// that has an order; a preset that loosens something as the tier rises is a bug.
func TestPresetsOnlyTightenAsTierRises(t *testing.T) {
	for i := 1; i < len(All); i++ {
		lo, hi := For(All[i-1]), For(All[i])
		if hi.X509SVIDMaxTTL > lo.X509SVIDMaxTTL || hi.JWTSVIDMaxTTL > lo.JWTSVIDMaxTTL ||
			hi.JoinTokenTTL > lo.JoinTokenTTL || hi.GrantMaxTTL > lo.GrantMaxTTL ||
			hi.GrantMaxDelegation > lo.GrantMaxDelegation {
			t.Errorf("%v loosens a lifetime or depth of %v", hi.Tier, lo.Tier)
		}
		for _, b := range [][2]bool{
			{lo.RequireBudget, hi.RequireBudget}, {lo.RequireConstraints, hi.RequireConstraints},
			{lo.ApprovalForHighRisk, hi.ApprovalForHighRisk}, {lo.SandboxRequired, hi.SandboxRequired},
			{lo.SandboxSeccomp, hi.SandboxSeccomp}, {lo.SandboxEgressList, hi.SandboxEgressList},
			{lo.MemorySigned, hi.MemorySigned}, {lo.MemoryWithholdUntrusted, hi.MemoryWithholdUntrusted},
			{lo.AutoRevoke, hi.AutoRevoke},
		} {
			if b[0] && !b[1] {
				t.Errorf("%v turns off a requirement that %v has", hi.Tier, lo.Tier)
			}
		}
		if lo.Audit == AuditSync && hi.Audit != AuditSync {
			t.Errorf("%v weakens audit durability", hi.Tier)
		}
	}
}

func TestStricter(t *testing.T) {
	if Stricter(Foundation, Optimized) != Optimized || Stricter(Advanced, Foundation) != Advanced {
		t.Fatal("Stricter picked the looser tier")
	}
}
