package grant

import (
	"slices"
	"strings"
)

// MaxEgressHosts bounds a task's egress allow-list.
const MaxEgressHosts = 256

// normEgress checks and normalises a task's egress allow-list: exact host
// names or "*.example.com" (any subdomain).
func normEgress(hosts []string) ([]string, error) {
	if len(hosts) > MaxEgressHosts {
		return nil, errorf(CodeInvalidInput, "egress lists %d hosts; at most %d", len(hosts), MaxEgressHosts)
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		s := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		base := strings.TrimPrefix(s, "*.")
		if base == "" || len(s) > 253 || strings.ContainsAny(base, "*/:@?#[]\\ \t") {
			return nil, errorf(CodeInvalidInput, "egress: %q is not a host name (use api.example.com or *.example.com)", h)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// hostCovered reports whether host pattern h is within pattern p: the same
// host, or a host or wildcard under p's wildcard.
func hostCovered(h, p string) bool {
	if h == p {
		return true
	}
	if !strings.HasPrefix(p, "*.") {
		return false
	}
	return strings.HasSuffix(h, p[1:]) // a.x and *.a.x are under *.x
}

// narrowEgress is a delegated task's allow-list: what it asks, each host
// within the parent's list; nothing asked inherits the parent's.
func narrowEgress(asked, parent []string) ([]string, error) {
	if len(parent) == 0 {
		return asked, nil
	}
	if len(asked) == 0 {
		return parent, nil
	}
	for _, h := range asked {
		if !slices.ContainsFunc(parent, func(p string) bool { return hostCovered(h, p) }) {
			return nil, errorf(CodeDelegationWidening, "the delegation asks to reach %s, outside the parent's egress allow-list (%s)", h, strings.Join(parent, ", "))
		}
	}
	return asked, nil
}

// EgressHosts is the task's egress allow-list: the hosts its egress list names
// and those of its url_host_in constraints. Empty means the task names
// none (the deployment's allow-list alone applies).
func (c *Claims) EgressHosts() []string {
	out := append(slices.Clone(c.Egress), c.Scope.Hosts()...)
	slices.Sort(out)
	return slices.Compact(out)
}
