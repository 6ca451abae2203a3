package authz

import (
	"testing"

	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/policy"
)

func TestMintPolicyRefusesOnlyWhatNoCallCouldUse(t *testing.T) {
	f := newFixture(t, testPolicies)
	set, err := policy.Compile("t.cedar", []byte(testPolicies+`
@id("never-shell")
forbid (principal, action, resource == Tool::"shell.exec");
`))
	if err != nil {
		t.Fatal(err)
	}
	eng := policy.NewEngine(set)
	declared := map[string][]string{"files.delete": {"destructive"}, "files.read_file": {"reads"}}
	m := MintPolicy{Policy: eng, Labels: func(tool string) ([]string, bool) { l, ok := declared[tool]; return l, ok }}
	rec := f.caller.Record
	cases := []struct {
		tool   string
		refuse bool
	}{
		{"files.read_file", false}, // declared reads: permitted
		{"files.delete", true},     // declared destructive: forbidden whatever the arguments
		{"files.rename", false},    // labels unknown: some labelling would be permitted
		{"search.web", false},      // permitted by the first policy
		{"shell.exec", true},       // forbidden by id, whatever its labels
		{"mail.send", true},        // no policy permits mail at all
	}
	for _, c := range cases {
		err := m.Precheck(ctx, rec, grant.TaskRef{ID: "t"}, c.tool)
		if (err != nil) != c.refuse {
			t.Errorf("%s: err = %v, want refuse=%v", c.tool, err, c.refuse)
		}
		if err != nil && grant.CodeOf(err) != grant.CodePolicyForbids {
			t.Errorf("%s: code %s", c.tool, grant.CodeOf(err))
		}
	}
	// With no policy loaded, nothing can be minted, and the reason says so.
	var unloaded *policy.Engine
	err = MintPolicy{Policy: unloaded}.Precheck(ctx, rec, grant.TaskRef{ID: "t"}, "files.read_file")
	if grant.CodeOf(err) != grant.CodeStateUnavailable {
		t.Errorf("unavailable policy: %v", err)
	}
}
