package grant

import (
	"slices"
	"testing"
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
