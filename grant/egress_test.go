package grant

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/tier"
)

func TestEgressAllowList(t *testing.T) {
	if _, err := normEgress([]string{"https://evil.example/"}); err == nil {
		t.Error("a URL was taken for a host")
	}
	if got, _ := normEgress([]string{"API.example.com.", "*.corp.example", "api.example.com"}); !slices.Equal(got, []string{"*.corp.example", "api.example.com"}) {
		t.Errorf("normalised: %v", got)
	}
	parent := []string{"*.corp.example", "api.example.com"}
	for _, c := range []struct {
		asked []string
		want  []string
		ok    bool
	}{
		{nil, parent, true}, // inherits: no list would be wider
		{[]string{"files.corp.example"}, []string{"files.corp.example"}, true},
		{[]string{"*.eu.corp.example"}, []string{"*.eu.corp.example"}, true},
		{[]string{"corp.example"}, nil, false}, // *.x does not cover x
		{[]string{"evil.example"}, nil, false},
		{[]string{"*.example.com"}, nil, false},
	} {
		got, err := narrowEgress(c.asked, parent)
		if (err == nil) != c.ok || c.ok && !slices.Equal(got, c.want) {
			t.Errorf("narrow %v: %v %v", c.asked, got, err)
		}
	}
	if got, _ := narrowEgress([]string{"x.example"}, nil); !slices.Equal(got, []string{"x.example"}) {
		t.Errorf("a parent without a list: %v", got)
	}
}

type labels map[string][]string

func (l labels) ToolLabels(tool string) ([]string, bool) { v, ok := l[tool]; return v, ok }

func TestRequireConstraints(t *testing.T) {
	s := &Service{}
	known := labels{"files.read": {"reads"}, "files.write": {"writes"}, "mail.send": {"egress"}}
	s.policy = labelPolicy{known}
	adv := tier.For(tier.Advanced)
	for _, c := range []struct {
		scope string
		ok    bool
	}{
		{`[{"tool": "files.read"}]`, true},
		{`[{"tool": "files.write"}]`, false},
		{`[{"tool": "files.write", "args": {"path": {"path_within": ["/data"]}}}]`, true},
		{`[{"tool": "files.write", "args": {"path": {"description": "where"}}}]`, false}, // a description constrains nothing
		{`[{"tool": "mail.send"}]`, false},
		{`[{"tool": "files.*"}]`, false},    // a pattern could match a write
		{`[{"tool": "other.tool"}]`, false}, // labels not known: all of them
	} {
		var sc Scope
		if err := json.Unmarshal([]byte(c.scope), &sc); err != nil {
			t.Fatal(err)
		}
		err := s.requireConstraints(adv, sc)
		if (err == nil) != c.ok || err != nil && CodeOf(err) != CodeConstraintsRequired {
			t.Errorf("%s: %v", c.scope, err)
		}
		if err := s.requireConstraints(tier.For(tier.Foundation), sc); err != nil {
			t.Errorf("foundation refused %s: %v", c.scope, err)
		}
	}
}

// labelPolicy is a grant Policy that knows tool labels and permits all.
type labelPolicy struct{ labels }

func (labelPolicy) Precheck(context.Context, *identity.Record, TaskRef, string) error { return nil }
func (labelPolicy) MayDelegate(context.Context, *identity.Record, *identity.Record, TaskRef) error {
	return nil
}
