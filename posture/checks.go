package posture

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/respond"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

// result is what a check found: whether the control passes, the live
// values it looked at, and, when it knows one, a fix more precise than the
// catalogue's.
type result struct {
	pass        bool
	unreachable bool // no configuration of this version passes it
	evidence    []string
	fix         string
}

func (r *result) add(format string, a ...any) {
	r.evidence = append(r.evidence, fmt.Sprintf(format, a...))
}

// failf records a failing fact.
func (r *result) failf(format string, a ...any) {
	r.pass = false
	r.add(format, a...)
}

type checkFunc func(s *snapshot, c Control) result

// checks are the catalogue's checks by name. Each reads only the snapshot.
var checks = map[string]checkFunc{
	"agents_enrolled":        checkAgentsEnrolled,
	"keys_distinct":          checkKeysDistinct,
	"svid_lifetimes":         checkSVIDLifetimes,
	"deployer_measured":      checkDeployerMeasured,
	"code_digest_measured":   checkCodeDigestMeasured,
	"keys_hardware_attested": checkKeysHardwareAttested,
	"upstreams_tls":          checkUpstreamsTLS,
	"grant_lifetimes":        checkGrantLifetimes,
	"policy_active":          checkPolicyActive,
	"grant_budgets":          checkGrantBudgets,
	"grant_constraints":      checkGrantConstraints,
	"grant_delegation":       checkGrantDelegation,
	"approval_high_risk":     checkApprovalHighRisk,
	"grants_just_in_time":    checkGrantsJustInTime,
	"sandbox_filesystem":     checkSandboxFilesystem,
	"sandbox_required":       checkSandboxRequired,
	"sandbox_egress":         checkSandboxEgress,
	"sandbox_limits":         checkSandboxLimits,
	"sandbox_seccomp":        checkSandboxSeccomp,
	"sandbox_no_host_writes": checkSandboxNoHostWrites,
	"sandbox_ephemeral":      checkSandboxEphemeral,
	"injection_detection":    checkInjectionDetection,
	"injection_blocked":      checkInjectionBlocked,
	"taint_flow":             checkTaintFlow,
	"secret_detection":       checkSecretDetection,
	"secrets_pii_redacted":   checkSecretsPIIRedacted,
	"exfiltration_blocked":   checkExfiltrationBlocked,
	"egress_deny_default":    checkEgressDenyDefault,
	"volume_budget":          checkVolumeBudget,
	"memory_provenance":      checkMemoryProvenance,
	"memory_integrity":       checkMemoryIntegrity,
	"memory_quarantine":      checkMemoryQuarantine,
	"memory_withhold":        checkMemoryWithhold,
	"memory_snapshots":       checkMemorySnapshots,
	"audit_log":              checkAuditLog,
	"audit_sync":             checkAuditSync,
	"detection_autorevoke":   checkDetectionAutoRevoke,
	"playbooks_full":         checkPlaybooksFull,
	"detection_slo":          checkDetectionSLO,
	"audit_published":        checkAuditPublished,
	"tools_pinned":           checkToolsPinned,
	"rugpull_detection":      checkRugPull,
	"servers_digest_pinned":  checkServersDigestPinned,
	"servers_signed":         checkServersSigned,
	"files_protected":        checkFilesProtected,
}

// ---------------------------------------------------------------- helpers

func (s *snapshot) activeAgents() []identity.Record {
	var out []identity.Record
	for _, a := range s.agents {
		if a.Status == identity.StatusActive {
			out = append(out, a)
		}
	}
	return out
}

func (s *snapshot) preset() tier.Preset { return s.cfg.Preset() }

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// newestSVID returns the newest SVID of a kind issued to an agent.
func (s *snapshot) newestSVID(id string, kind string) (identity.SVIDRecord, bool) {
	for _, r := range s.svids[id] {
		if r.Kind == kind {
			return r, true
		}
	}
	return identity.SVIDRecord{}, false
}

var actionRank = map[tier.FindingAction]int{"": 0, tier.ActionLog: 1, tier.ActionRedact: 2, tier.ActionBlock: 3}

// inspectAction is the action the inspector applies to a finding kind: the
// tier's, or a stricter override from warden.yaml (inspect.New refuses a
// looser one).
func (s *snapshot) inspectAction(kind string) (tier.FindingAction, string) {
	p := s.preset()
	base := map[string]tier.FindingAction{"injection": p.InjectionAction, "secret": p.SecretAction, "pii": p.PIIAction, "exfiltration": tier.ActionLog}[kind]
	if kind == "exfiltration" && p.Tier >= tier.Advanced {
		base = tier.ActionBlock
	}
	if v, ok := s.cfg.Inspect.Actions[kind]; ok && actionRank[v] > actionRank[base] {
		return v, fmt.Sprintf("inspect.actions.%s: %s (tier %s: %s)", kind, v, p.Tier, base)
	}
	return base, fmt.Sprintf("%s findings: %s (tier %s)", kind, base, p.Tier)
}

// stdioUpstreams are the upstreams Warden launches.
func (s *snapshot) stdioUpstreams() []config.Upstream {
	var out []config.Upstream
	for _, u := range s.cfg.Gateway.Upstreams {
		if u.Stdio != nil {
			out = append(out, u)
		}
	}
	return out
}

// profilesInUse are the sandbox profiles Warden would launch with: the
// default (used by `warden sandbox run` and by upstreams naming none) and
// every profile an upstream names.
func (s *snapshot) profilesInUse() []namedProfile {
	seen := map[string]bool{}
	var out []namedProfile
	addProfile := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		p, ok := s.cfg.Sandbox.Profile(name)
		if !ok && name == "default" {
			p = sandbox.DefaultProfile()
		}
		out = append(out, namedProfile{name: name, p: p})
	}
	addProfile("default")
	for _, u := range s.stdioUpstreams() {
		if u.Stdio.Sandbox != "" {
			addProfile(u.Stdio.Sandbox)
		}
	}
	return out
}

type namedProfile struct {
	name string
	p    config.SandboxProfile
}

// needMechanisms fails r unless every named mechanism is in force.
func (s *snapshot) needMechanisms(r *result, names ...string) {
	if s.mech == nil {
		r.failf("sandbox mechanisms unknown: %v", s.mechErr)
		return
	}
	r.add("mechanisms from %s", s.mechFrom)
	var on, off []string
	for _, n := range names {
		if s.mech.Has(n) {
			d := s.mech.Detail[n]
			if d != "" {
				n += " (" + d + ")"
			}
			on = append(on, n)
		} else {
			off = append(off, n)
		}
	}
	if len(on) > 0 {
		r.add("in force: %s", strings.Join(on, ", "))
	}
	if len(off) > 0 {
		r.failf("NOT in force on this host: %s", strings.Join(off, ", "))
	}
	for _, l := range s.audit.launches {
		if l.refused {
			continue
		}
		if miss := l.mech.Missing(names); len(miss) > 0 {
			r.failf("launch of %s at %s ran without %s", l.upstream, ts(l.at), strings.Join(miss, ", "))
		}
	}
}

// ----------------------------------------------------------------- identity

func checkAgentsEnrolled(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.agentsErr != nil {
		r.failf("reading the identity registry: %v", s.agentsErr)
		return r
	}
	active := s.activeAgents()
	if len(active) == 0 {
		r.add("no active agent is registered")
	}
	var fixes []string
	for _, a := range active {
		if a.KeyThumbprint == "" {
			r.failf("agent %s: registered %s, never enrolled: no key, no SVID", a.Name, ts(a.CreatedAt))
			fixes = append(fixes, "warden agent join-token "+a.Name+" (then enrol), or warden agent disable "+a.Name)
			continue
		}
		x, ok := s.newestSVID(a.ID.String(), "x509")
		if !ok {
			r.failf("agent %s: key %s enrolled but no X.509-SVID recorded", a.Name, short(a.KeyThumbprint, 12))
			continue
		}
		r.add("agent %s: key %s, X.509-SVID from the Warden CA issued %s, expires %s", a.Name, short(a.KeyThumbprint, 12), ts(x.IssuedAt), ts(x.ExpiresAt))
	}
	if len(fixes) > 0 {
		r.fix = "Run: " + strings.Join(fixes, "; ")
	}
	return r
}

func checkKeysDistinct(s *snapshot, _ Control) result {
	r := result{pass: true}
	byFP := map[string][]string{}
	var line []string
	for _, k := range s.keys {
		if k.err != nil {
			r.failf("key %s: %v", k.purpose, k.err)
			continue
		}
		byFP[k.fingerprint] = append(byFP[k.fingerprint], string(k.purpose))
		line = append(line, fmt.Sprintf("%s %s", k.purpose, k.fingerprint))
	}
	r.add("public key fingerprints (SHA-256 of SPKI, first 8 bytes): %s", strings.Join(line, ", "))
	for fp, ps := range byFP {
		if len(ps) > 1 {
			sort.Strings(ps)
			r.failf("one key (%s) serves %s", fp, strings.Join(ps, " and "))
		}
	}
	return r
}

func checkSVIDLifetimes(s *snapshot, c Control) result {
	r := result{pass: true}
	p := tier.For(c.Tier)
	id := s.cfg.Identity
	if id.X509SVIDMaxTTL > p.X509SVIDMaxTTL {
		r.failf("identity.x509_svid_max_ttl %v exceeds %v", id.X509SVIDMaxTTL, p.X509SVIDMaxTTL)
	} else {
		r.add("identity.x509_svid_max_ttl %v (at most %v)", id.X509SVIDMaxTTL, p.X509SVIDMaxTTL)
	}
	if id.JWTSVIDMaxTTL > p.JWTSVIDMaxTTL {
		r.failf("identity.jwt_svid_max_ttl %v exceeds %v", id.JWTSVIDMaxTTL, p.JWTSVIDMaxTTL)
	} else {
		r.add("identity.jwt_svid_max_ttl %v (at most %v)", id.JWTSVIDMaxTTL, p.JWTSVIDMaxTTL)
	}
	for _, a := range s.activeAgents() {
		for _, k := range []struct {
			kind string
			max  time.Duration
		}{{"x509", p.X509SVIDMaxTTL}, {"jwt", p.JWTSVIDMaxTTL}} {
			sv, ok := s.newestSVID(a.ID.String(), k.kind)
			if !ok {
				continue
			}
			life := sv.ExpiresAt.Sub(sv.IssuedAt)
			if life > k.max {
				r.failf("agent %s: newest %s-SVID (issued %s) lives %v, above %v", a.Name, k.kind, ts(sv.IssuedAt), ceilSecond(life), k.max)
			} else {
				r.add("agent %s: newest %s-SVID lives %v", a.Name, k.kind, ceilSecond(life))
			}
		}
	}
	return r
}

func checkDeployerMeasured(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.agentsErr != nil {
		r.failf("reading the identity registry: %v", s.agentsErr)
		return r
	}
	active := s.activeAgents()
	if len(active) == 0 {
		r.add("no active agent is registered")
	}
	for _, a := range active {
		rb := a.Attestation().RegisteredBy
		id, err := spiffeid.FromString(rb.Value)
		role, _, rerr := identity.RoleOf(id)
		switch {
		case rb.Source != identity.Measured:
			r.failf("agent %s: registrant %q is %s, not measured", a.Name, rb.Value, rb.Source)
		case err != nil || rerr != nil || role != identity.RoleAdmin || id.TrustDomain().String() != s.cfg.TrustDomain:
			r.failf("agent %s: registered by %q, not an operator identity of %s that Warden authenticated", a.Name, rb.Value, s.cfg.TrustDomain)
		default:
			r.add("agent %s: registered by %s (measured: Warden authenticated the operator's SVID)", a.Name, rb.Value)
		}
	}
	return r
}

func checkCodeDigestMeasured(s *snapshot, _ Control) result {
	r := result{unreachable: true}
	r.add("Warden records an agent's code digest as an asserted claim (typed by the operator at registration); no claim of this version is measured, so none earns credit")
	for _, a := range s.activeAgents() {
		if cd := a.Attestation().CodeDigest; cd != nil {
			r.add("agent %s: code_digest %s (%s)", a.Name, short(cd.Value, 24), cd.Source)
		} else {
			r.add("agent %s: no code digest recorded", a.Name)
		}
	}
	return r
}

func checkKeysHardwareAttested(s *snapshot, _ Control) result {
	r := result{unreachable: true}
	r.add("agent keys are generated on the agent's side and bound by proof of possession (RFC 7638 thumbprint at enrolment); this version verifies no TPM or SPIRE attestation of them")
	r.add("active agents holding software keys: %d", len(s.activeAgents()))
	return r
}

func checkUpstreamsTLS(s *snapshot, _ Control) result {
	r := result{pass: true}
	for _, u := range s.cfg.Gateway.Upstreams {
		var raw string
		switch {
		case u.HTTP != nil:
			raw = u.HTTP.URL
		case u.SSE != nil:
			raw = u.SSE.URL
		case u.Stdio != nil:
			r.add("upstream %s: stdio, launched by Warden (pipes, no network)", u.Name)
			continue
		default:
			r.add("upstream %s: builtin, in process", u.Name)
			continue
		}
		pu, err := url.Parse(raw)
		if err != nil || pu.Scheme != "https" {
			r.failf("upstream %s: %s is not TLS", u.Name, raw)
			continue
		}
		r.add("upstream %s: %s over TLS", u.Name, pu.Host)
	}
	r.add("agents reach the gateway and the control plane over TLS only (mTLS with X.509-SVIDs, or JWT-SVID with DPoP)")
	return r
}

// ------------------------------------------------------------------ access

func (s *snapshot) tasksOK(r *result) bool {
	if s.tasksErr != nil {
		r.failf("reading open tasks: %v", s.tasksErr)
		return false
	}
	return true
}

func lifetime(t grant.Task) time.Duration { return t.ExpiresAt.Sub(t.CreatedAt) }

// ceilSecond rounds a lifetime up to the second for display: a grant's
// expiry and a certificate's NotAfter are kept to the second, their issue
// time to the nanosecond, so the difference falls just short of the lifetime
// that was granted.
func ceilSecond(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) }

func checkGrantLifetimes(s *snapshot, c Control) result {
	return grantCeiling(s, tier.For(c.Tier), true, false)
}

func checkGrantsJustInTime(s *snapshot, _ Control) result {
	return grantCeiling(s, tier.For(tier.Optimized), true, true)
}

func checkGrantDelegation(s *snapshot, c Control) result {
	return grantCeiling(s, tier.For(c.Tier), false, true)
}

// grantCeiling checks the deployment's ceilings (what the grant service
// refuses above) and every open task against the preset p.
func grantCeiling(s *snapshot, p tier.Preset, ttl, depth bool) result {
	r := result{pass: true}
	dp := s.preset()
	if ttl {
		if dp.GrantMaxTTL > p.GrantMaxTTL {
			r.failf("tier %s lets a grant live up to %v, above %v", dp.Tier, dp.GrantMaxTTL, p.GrantMaxTTL)
		} else {
			r.add("tier %s refuses grants longer than %v", dp.Tier, dp.GrantMaxTTL)
		}
	}
	if depth {
		if dp.GrantMaxDelegation > p.GrantMaxDelegation {
			r.failf("tier %s lets a grant be delegated %d levels deep, above %d", dp.Tier, dp.GrantMaxDelegation, p.GrantMaxDelegation)
		} else {
			r.add("tier %s refuses delegation deeper than %d", dp.Tier, dp.GrantMaxDelegation)
		}
	}
	if !s.tasksOK(&r) {
		return r
	}
	var longest time.Duration
	for _, t := range s.tasks {
		if ttl {
			l := lifetime(t)
			longest = max(longest, l)
			if l > p.GrantMaxTTL {
				r.failf("open task %s (agent %s, %q) lives %v, above %v; expires %s", t.ID, t.Agent, short(t.Intent, 40), ceilSecond(l), p.GrantMaxTTL, ts(t.ExpiresAt))
			}
		}
		if depth && t.Depth > p.GrantMaxDelegation {
			r.failf("open task %s (agent %s) may be delegated %d levels, above %d", t.ID, t.Agent, t.Depth, p.GrantMaxDelegation)
		}
	}
	if ttl {
		r.add("open tasks: %d; the longest-lived lives %v", len(s.tasks), ceilSecond(longest))
	} else {
		r.add("open tasks checked: %d", len(s.tasks))
	}
	return r
}

func checkPolicyActive(s *snapshot, _ Control) result {
	r := result{pass: true}
	switch {
	case s.policy == nil:
		r.failf("no Cedar policy is active (%v): every call is denied until one is applied", s.policyErr)
	case s.policy.Policies == 0:
		r.failf("active policy version %d (%s) holds no policy", s.policy.Version, s.policy.Name)
	default:
		v := s.policy
		r.add("active policy version %d: %s, %d policies, sha256 %s, applied %s by %s", v.Version, v.Name, v.Policies, short(v.Digest, 16), ts(v.AppliedAt), v.AppliedBy)
	}
	return r
}

func checkGrantBudgets(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.tasksOK(&r) {
		return r
	}
	for _, t := range s.tasks {
		if t.Budget <= 0 {
			r.failf("open task %s has no call budget", t.ID)
		} else if t.Used >= int64(t.Budget) {
			r.add("open task %s: budget %d spent", t.ID, t.Budget)
		}
	}
	r.add("open tasks: %d, each with a call budget reserved before every forwarded call", len(s.tasks))
	return r
}

var sensitiveLabels = []string{"writes", "egress", "destructive"}

func sensitive(labels []string) bool {
	if len(labels) == 0 {
		return true // labels fail closed: none set means all five
	}
	for _, l := range labels {
		if slices.Contains(sensitiveLabels, l) {
			return true
		}
	}
	return false
}

// entrySensitive reports whether a scope entry can reach a tool labelled
// writes, egress or destructive, and names one.
func (s *snapshot) entrySensitive(pattern string) (bool, string) {
	if s.tools != nil {
		matched := false
		for _, t := range s.tools {
			if ok, _ := path.Match(pattern, t.id); ok {
				matched = true
				if sensitive(t.labels) {
					return true, t.id
				}
			}
		}
		if matched {
			return false, ""
		}
	}
	server, tool, ok := strings.Cut(pattern, ".")
	if !ok || strings.ContainsAny(server, "*?[\\") {
		return true, pattern // reaches servers unknown here: fail closed
	}
	u, ok := s.cfg.Gateway.Upstream(server)
	if !ok {
		return true, pattern
	}
	if strings.ContainsAny(tool, "*?[\\") {
		// only the labelled tools are known here; others carry all labels
		return true, pattern
	}
	labels, _ := u.Labels(tool)
	return sensitive(labels), pattern
}

func checkGrantConstraints(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.tasksOK(&r) {
		return r
	}
	n := 0
	for _, t := range s.tasks {
		for _, e := range t.Scope {
			sens, tool := s.entrySensitive(e.Tool)
			if !sens {
				continue
			}
			n++
			if len(e.Args) == 0 {
				r.failf("open task %s (agent %s) allows %s (reaches %s: writes, egress or destructive) with no argument constraint", t.ID, t.Agent, e.Tool, tool)
			}
		}
	}
	r.add("sensitive scope entries: %d, in open tasks: %d", n, len(s.tasks))
	r.add("note: the grant service does not yet refuse an unconstrained grant at mint; this control is checked over the open grants")
	return r
}

func checkApprovalHighRisk(s *snapshot, _ Control) result {
	r := result{pass: true}
	if p := s.preset(); !p.ApprovalForHighRisk {
		r.failf("tier %s does not hold destructive or unlabelled calls for a human", p.Tier)
	} else {
		r.add("tier %s holds destructive and unlabelled calls for approval (single use, bound to the exact call)", p.Tier)
	}
	return r
}

// ----------------------------------------------------------------- sandbox

func checkSandboxFilesystem(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.mech == nil {
		r.failf("sandbox mechanisms unknown: %v", s.mechErr)
		return r
	}
	r.add("mechanisms from %s", s.mechFrom)
	ns := s.mech.Has(sandbox.MechMountNS) && s.mech.Has(sandbox.MechPivotRoot)
	ll := s.mech.Has(sandbox.MechLandlockFS)
	switch {
	case ns && ll:
		r.add("filesystem confined twice: a minimal read-only root (mount namespace, pivot_root) and Landlock")
	case ns:
		r.add("filesystem confined by a minimal read-only root (mount namespace, pivot_root); Landlock not in force")
	case ll:
		r.add("filesystem confined by Landlock; no private root")
	default:
		r.failf("no filesystem confinement on this host: neither a private root nor Landlock is in force")
	}
	for _, l := range s.audit.launches {
		if l.refused {
			r.add("launch of %s at %s was refused: a required mechanism was missing", l.upstream, ts(l.at))
			continue
		}
		if !(l.mech.Has(sandbox.MechMountNS) && l.mech.Has(sandbox.MechPivotRoot)) && !l.mech.Has(sandbox.MechLandlockFS) {
			r.failf("launch of %s at %s ran with no filesystem confinement", l.upstream, ts(l.at))
		}
	}
	r.add("%d stdio upstreams launched by Warden in their sandbox profile; %d sandbox launches in the audit log's newest %d records",
		len(s.stdioUpstreams()), len(s.audit.launches), s.audit.scanned)
	return r
}

func checkSandboxRequired(s *snapshot, _ Control) result {
	r := result{pass: true}
	p := s.preset()
	if !p.SandboxRequired {
		r.failf("tier %s runs a tool server without a missing mechanism, with a logged warning", p.Tier)
		return r
	}
	r.add("tier %s refuses a launch without: %s", p.Tier, strings.Join(sandbox.Required(p), ", "))
	return r
}

func checkSandboxEgress(s *snapshot, _ Control) result {
	r := result{pass: true}
	s.needMechanisms(&r, sandbox.MechNetNS, sandbox.MechEgress)
	for _, np := range s.profilesInUse() {
		switch np.p.Network {
		case "", config.NetworkNone:
			r.add("profile %s: no network (loopback only)", np.name)
		case config.NetworkEgress:
			var hosts []string
			for _, e := range np.p.Egress {
				hosts = append(hosts, fmt.Sprintf("%s:%v", e.Host, e.Ports))
				if e.AllowPrivate {
					r.add("profile %s: %s may resolve to private addresses (allow_private)", np.name, e.Host)
				}
			}
			r.add("profile %s: egress only to %s, through the proxy", np.name, strings.Join(hosts, ", "))
		}
	}
	if !s.preset().SandboxEgressList {
		r.failf("tier %s does not require the egress allow-list mechanism", s.preset().Tier)
	}
	return r
}

func checkSandboxLimits(s *snapshot, _ Control) result {
	r := result{pass: true}
	s.needMechanisms(&r, sandbox.MechMemoryLimit, sandbox.MechPidsLimit, sandbox.MechFilesLimit)
	for _, np := range s.profilesInUse() {
		l := np.p.Limits
		r.add("profile %s: memory %s, pids %s, open files %s", np.name, orDefault(sizeOr(l.Memory), "1GiB (default)"),
			orDefault(intOr(l.Pids), "256 (default)"), orDefault(intOr(l.OpenFiles), "1024 (default)"))
	}
	return r
}

func sizeOr(b config.ByteSize) string {
	if b == 0 {
		return ""
	}
	return b.String()
}

func intOr(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func checkSandboxSeccomp(s *snapshot, _ Control) result {
	r := result{pass: true}
	s.needMechanisms(&r, sandbox.MechSeccomp)
	if p := s.preset(); !p.SandboxSeccomp {
		r.failf("tier %s does not refuse a launch without seccomp", p.Tier)
	}
	return r
}

func checkSandboxNoHostWrites(s *snapshot, _ Control) result {
	r := result{pass: true}
	for _, np := range s.profilesInUse() {
		if len(np.p.ReadWrite) > 0 {
			r.failf("profile %s: host paths writable: %s", np.name, strings.Join(np.p.ReadWrite, ", "))
		}
		if np.p.Workspace != "" {
			r.failf("profile %s: workspace is the host directory %s", np.name, np.p.Workspace)
		}
		if len(np.p.ReadWrite) == 0 && np.p.Workspace == "" {
			r.add("profile %s: writes only to a private workspace and /tmp, removed at exit", np.name)
		}
	}
	return r
}

func checkSandboxEphemeral(s *snapshot, _ Control) result {
	r := result{pass: true}
	ups := s.stdioUpstreams()
	if len(ups) == 0 {
		r.add("no stdio upstream: nothing is launched for agents")
	}
	for _, u := range ups {
		if u.Stdio.PerSession {
			r.add("upstream %s: one sandbox per agent session", u.Name)
		} else {
			r.failf("upstream %s: one sandbox shared by every session (per_session: false)", u.Name)
		}
	}
	return r
}

// ------------------------------------------------------------------- input

func checkInjectionDetection(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.inspectorErr != nil {
		r.failf("the inspector does not start: %v", s.inspectorErr)
		return r
	}
	a, why := s.inspectAction("injection")
	r.add("injection detector loaded, threshold %.3f; %s", s.threshold, why)
	if actionRank[a] < actionRank[tier.ActionLog] {
		r.failf("injection findings are not acted on")
	}
	return r
}

func checkInjectionBlocked(s *snapshot, _ Control) result {
	r := result{pass: true}
	a, why := s.inspectAction("injection")
	r.add("%s", why)
	if actionRank[a] < actionRank[tier.ActionRedact] {
		r.failf("high-confidence injection in tool results is only %sged, and reaches the agent", a)
	}
	return r
}

var flowRank = map[tier.FlowRule]int{tier.FlowOff: 0, tier.FlowHeuristic: 1, tier.FlowSound: 2}

func checkTaintFlow(s *snapshot, c Control) result {
	r := result{pass: true}
	want := tier.For(c.Tier).Flow
	have := s.preset().Flow
	if flowRank[have] < flowRank[want] {
		r.failf("flow rule %s at tier %s; want %s", have, s.preset().Tier, want)
	} else {
		r.add("flow rule %s at tier %s", have, s.preset().Tier)
	}
	var untrusted []string
	for _, u := range s.cfg.Gateway.Upstreams {
		for t, l := range u.Tools {
			if slices.Contains(l, "untrusted_output") {
				untrusted = append(untrusted, u.Name+"."+t)
			}
		}
	}
	sort.Strings(untrusted)
	r.add("tools labelled untrusted_output (taint the session): %s; unlabelled tools carry every label", orDefault(strings.Join(untrusted, ", "), "none"))
	return r
}

// ------------------------------------------------------------------ output

// matchesAnything reports whether an allow-list pattern exempts any value.
func matchesAnything(pattern string) bool {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return false
	}
	for _, probe := range []string{"", "AKIAIOSFODNN7EXAMPLE", "ghp_0123456789abcdefghijklmnopqrstuvwxyz", "sk-live-0123456789"} {
		if !re.MatchString(probe) {
			return false
		}
	}
	return true
}

func checkSecretDetection(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.inspectorErr != nil {
		r.failf("the inspector does not start: %v", s.inspectorErr)
		return r
	}
	_, why := s.inspectAction("secret")
	r.add("DLP scanner on every outgoing argument; %s", why)
	for _, p := range s.cfg.Inspect.AllowSecrets {
		if matchesAnything(p) {
			r.failf("inspect.allow_secrets %q exempts every value from secret detection", p)
		} else {
			r.add("inspect.allow_secrets %q exempts only matching values", p)
		}
	}
	return r
}

func checkSecretsPIIRedacted(s *snapshot, _ Control) result {
	r := result{pass: true}
	for _, k := range []string{"secret", "pii"} {
		a, why := s.inspectAction(k)
		r.add("%s", why)
		if actionRank[a] < actionRank[tier.ActionRedact] {
			r.failf("%s in outgoing arguments is only logged", k)
		}
	}
	return r
}

// broadHost reports whether an allow_hosts entry covers a whole top-level
// domain.
func broadHost(h string) bool {
	rest, ok := strings.CutPrefix(h, "*.")
	return ok && !strings.Contains(rest, ".")
}

func checkExfiltrationBlocked(s *snapshot, _ Control) result {
	r := result{pass: true}
	a, why := s.inspectAction("exfiltration")
	r.add("%s", why)
	if a != tier.ActionBlock {
		r.failf("a destination outside the allow-list is only logged")
	}
	deny := len(s.cfg.Inspect.AllowHosts) > 0 || s.preset().SandboxEgressList
	if !deny {
		r.failf("destinations not listed anywhere are allowed: tier %s denies unlisted hosts only when inspect.allow_hosts or the task lists some", s.preset().Tier)
	} else {
		r.add("hosts not on the task's --egress list or inspect.allow_hosts are denied")
	}
	for _, h := range s.cfg.Inspect.AllowHosts {
		if broadHost(h) {
			r.failf("inspect.allow_hosts %q allows a whole top-level domain", h)
		}
	}
	if len(s.cfg.Inspect.AllowHosts) > 0 {
		r.add("inspect.allow_hosts: %s", strings.Join(s.cfg.Inspect.AllowHosts, ", "))
	}
	return r
}

func checkEgressDenyDefault(s *snapshot, _ Control) result {
	r := checkExfiltrationBlocked(s, Control{})
	a, why := s.inspectAction("secret")
	r.add("%s", why)
	if a != tier.ActionBlock {
		r.failf("a secret in an outgoing argument is not blocked")
	}
	for _, h := range s.cfg.Inspect.AllowHosts {
		if strings.Contains(h, "*") && !broadHost(h) {
			r.failf("inspect.allow_hosts %q is a wildcard: list exact hosts", h)
		}
	}
	return r
}

func checkVolumeBudget(s *snapshot, _ Control) result {
	r := result{pass: true}
	b := s.cfg.Inspect.VolumeBudgetBytes
	from := "inspect.volume_budget_bytes"
	if b == 0 && s.preset().Tier == tier.Optimized {
		b, from = 16<<20, "tier optimized default"
	}
	if b <= 0 {
		r.failf("no outbound volume budget: a task may send any amount")
	} else {
		r.add("each task may send at most %d bytes of arguments (%s)", b, from)
	}
	return r
}

// ------------------------------------------------------------------ memory

// looksLikeMemory reports whether an upstream appears to be a memory
// server (a heuristic on its name and command line).
func looksLikeMemory(u config.Upstream) bool {
	text := u.Name
	if u.Stdio != nil {
		text += " " + u.Stdio.Command + " " + strings.Join(u.Stdio.Args, " ")
	}
	if u.HTTP != nil {
		text += " " + u.HTTP.URL
	}
	return strings.Contains(strings.ToLower(text), "memory")
}

func checkMemoryProvenance(s *snapshot, _ Control) result {
	r := result{pass: true}
	builtin := false
	for _, u := range s.cfg.Gateway.Upstreams {
		switch {
		case u.Builtin == "memory":
			builtin = true
			r.add("upstream %s: Warden's memory (every write signed with its agent, task and source)", u.Name)
		case u.Guard == "memory":
			r.add("upstream %s: third-party memory guarded (writes recorded with provenance, unrecorded reads withheld)", u.Name)
		case looksLikeMemory(u):
			r.failf("upstream %s looks like a memory server (heuristic: its name or command) and is not guarded", u.Name)
		}
	}
	if !builtin {
		r.add("Warden's builtin memory is not served")
	}
	if s.mem.err == nil {
		r.add("memory store: %d namespaces, %d entries", s.mem.namespaces, s.mem.entries)
	}
	return r
}

func checkMemoryIntegrity(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.mem.err != nil {
		r.failf("reading memory: %v", s.mem.err)
	}
	r.add("verified now: %d entries in %d namespaces (signature and chain of each)", s.mem.entries, s.mem.namespaces)
	for _, p := range s.mem.problems {
		r.failf("memory entry %s", p)
	}
	return r
}

func checkMemoryQuarantine(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.inspectorErr != nil {
		r.failf("the injection detector that quarantines instruction-like writes does not start: %v", s.inspectorErr)
		return r
	}
	mode := "mark (served with provenance; reading one taints the session)"
	if s.cfg.Memory.Withhold(s.cfg.Tier) {
		mode = "withhold"
	}
	r.add("instruction-like writes quarantined by the injection detector (threshold %.3f); untrusted entries: %s", s.threshold, mode)
	if !s.preset().MemorySigned {
		r.failf("tier %s does not require signed memory verified on read", s.preset().Tier)
	}
	return r
}

func checkMemoryWithhold(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.cfg.Memory.Withhold(s.cfg.Tier) {
		r.add("untrusted entries withheld (memory.untrusted %s, tier %s)", orDefault(s.cfg.Memory.Untrusted, "unset"), s.cfg.Tier)
	} else {
		r.failf("untrusted entries are served, marked (memory.untrusted %s, tier %s)", orDefault(s.cfg.Memory.Untrusted, "unset"), s.cfg.Tier)
	}
	return r
}

func checkMemorySnapshots(s *snapshot, _ Control) result {
	r := result{pass: true}
	if n := len(s.mem.snapshots); n > 0 {
		last := s.mem.snapshots[n-1]
		r.add("%d signed snapshots; newest %s by %s at %s", n, last.Name, last.CreatedBy, ts(last.CreatedAt))
	} else {
		r.add("no snapshot taken yet")
	}
	if !respond.Automatic(s.preset(), respond.ActSnapshotMemory) {
		r.failf("tier %s does not snapshot memory automatically when detection fires", s.preset().Tier)
	} else if s.rules != nil && !ruleSetHas(s.rules, respond.ActSnapshotMemory) {
		r.failf("no rule of the pack snapshots memory")
	} else {
		r.add("detection snapshots memory automatically at tier %s", s.preset().Tier)
	}
	return r
}

// -------------------------------------------------------------- monitoring

func checkAuditLog(s *snapshot, _ Control) result {
	r := result{pass: true}
	a := s.audit
	if a.err != nil {
		r.failf("the audit log cannot be read: %v", a.err)
		return r
	}
	if a.checkpoint == nil {
		r.failf("%d records and no signed checkpoint yet", a.size)
		return r
	}
	r.add("%d records; newest checkpoint covers %d, signature verified (origin %s)", a.size, a.checkpoint.Size, a.checkpoint.Origin)
	return r
}

func checkAuditSync(s *snapshot, _ Control) result {
	r := result{pass: true}
	if s.auditMode != tier.AuditSync {
		r.failf("audit mode %s, from %s: an event can be lost in a crash after its call was answered", s.auditMode, s.auditModeFrom)
	} else {
		r.add("audit mode sync, from %s", s.auditModeFrom)
	}
	return r
}

func ruleSetHas(rs *respond.RuleSet, a respond.ActionType) bool {
	for _, rule := range rs.Rules {
		for _, act := range rule.Actions {
			if act.Type == a {
				return true
			}
		}
	}
	return false
}

func (s *snapshot) rulesOK(r *result) bool {
	if s.rulesErr != nil {
		r.failf("the rule pack does not compile: %v", s.rulesErr)
		return false
	}
	r.add("%d detection rules compiled (built-in pack%s)", len(s.rules.Rules), func() string {
		if len(s.ruleFiles) > 0 {
			return " and " + strings.Join(s.ruleFiles, ", ")
		}
		return ""
	}())
	return true
}

func checkDetectionAutoRevoke(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.rulesOK(&r) {
		return r
	}
	if !ruleSetHas(s.rules, respond.ActRevokeGrant) {
		r.failf("no rule revokes a grant")
	}
	if p := s.preset(); !respond.Automatic(p, respond.ActRevokeGrant) {
		r.failf("tier %s only recommends revocation (notify runs, containment waits for a human)", p.Tier)
	} else {
		r.add("tier %s revokes grants, kills sessions and holds sensitive calls automatically", p.Tier)
	}
	if s.audit.findings+s.audit.actions > 0 {
		r.add("in the newest %d audit records: %d detection findings, %d response actions", s.audit.scanned, s.audit.findings, s.audit.actions)
	}
	return r
}

func checkPlaybooksFull(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.rulesOK(&r) {
		return r
	}
	p := s.preset()
	for _, a := range []respond.ActionType{respond.ActDisableAgent, respond.ActKillSandboxes, respond.ActSnapshotMemory} {
		if !respond.Automatic(p, a) {
			r.failf("%s is only recommended at tier %s", a, p.Tier)
		} else if !ruleSetHas(s.rules, a) {
			r.failf("no rule of the pack runs %s", a)
		} else {
			r.add("%s runs automatically", a)
		}
	}
	return r
}

func checkDetectionSLO(s *snapshot, _ Control) result {
	r := result{pass: true}
	want := tier.For(tier.Optimized).DetectionMaxBehind
	have := s.preset().DetectionMaxBehind
	switch {
	case have == 0:
		r.failf("tier %s never denies calls while detection lags", s.preset().Tier)
	case have > want:
		r.failf("calls are denied (detection_backlog) only once detection lags more than %v; want at most %v", have, want)
	default:
		r.add("calls denied with detection_backlog once detection lags an agent by more than %v", have)
	}
	return r
}

func checkAuditPublished(s *snapshot, _ Control) result {
	r := result{pass: true}
	if len(s.cfg.Audit.Publish) == 0 {
		r.failf("audit.publish is empty: checkpoints stay on this host, where root could replace them along with the log")
	}
	for _, p := range s.cfg.Audit.Publish {
		where := p.Path + p.URL + p.Address
		r.add("checkpoints published to %s %s", p.Type, orDefault(where, "(local syslog)"))
	}
	r.add("events exportable as OCSF: warden audit export")
	return r
}

// ------------------------------------------------------------------ supply

func (s *snapshot) lockOK(r *result) bool {
	if s.lockErr != nil {
		r.failf("no usable lock: %v", s.lockErr)
		return false
	}
	return true
}

func checkToolsPinned(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.lockOK(&r) {
		return r
	}
	for _, u := range s.cfg.Gateway.Upstreams {
		sl, ok := s.lock.Servers[u.Name]
		switch {
		case !ok:
			r.failf("upstream %s is not in %s", u.Name, s.lockPath)
		case len(sl.Tools) == 0:
			r.failf("upstream %s: no tool pinned", u.Name)
		default:
			r.add("upstream %s: %d tools pinned (description, schemas, annotations by SHA-256)", u.Name, len(sl.Tools))
		}
	}
	return r
}

func checkRugPull(s *snapshot, _ Control) result {
	r := result{pass: true}
	every := s.cfg.Supply.Relist()
	if every > config.DefaultRelistInterval {
		r.failf("tools are listed again only every %v", every)
	} else {
		r.add("every upstream's tools listed again every %v and compared with the lock; a change is quarantined until approved", every)
	}
	if s.lockErr != nil {
		r.failf("nothing to compare with: %v", s.lockErr)
	}
	r.add("the description scanner holds back tools at or above severity %s", s.cfg.Supply.Severity())
	return r
}

func checkServersDigestPinned(s *snapshot, _ Control) result {
	r := result{pass: true}
	if !s.lockOK(&r) {
		return r
	}
	for _, u := range s.cfg.Gateway.Upstreams {
		sl := s.lock.Servers[u.Name]
		switch {
		case u.Builtin != "":
			r.add("upstream %s: builtin, Warden's own code", u.Name)
		case u.Stdio == nil:
			r.failf("upstream %s: remote; its code cannot be pinned (URL only)", u.Name)
		case sl == nil:
			r.failf("upstream %s is not in the lock", u.Name)
		case sl.Identity.NPM != nil:
			r.add("upstream %s: npm %s@%s pinned with %d packages", u.Name, sl.Identity.NPM.Name, sl.Identity.NPM.Version, len(sl.Identity.NPM.Packages))
		case len(sl.Identity.Files) > 0:
			r.add("upstream %s: %d files pinned by SHA-256", u.Name, len(sl.Identity.Files))
		default:
			r.failf("upstream %s: no digest pinned", u.Name)
		}
	}
	return r
}

func checkServersSigned(s *snapshot, _ Control) result {
	r := result{pass: true}
	for _, u := range s.cfg.Gateway.Upstreams {
		switch {
		case u.Builtin != "":
			r.add("upstream %s: builtin, part of Warden's binary", u.Name)
		case u.Stdio == nil:
			r.failf("upstream %s: remote; no signature can be verified before use", u.Name)
		default:
			sig, ok := s.cfg.Supply.Signatures[u.Name]
			switch {
			case !ok:
				r.failf("upstream %s: no signature configured (supply.signatures.%s)", u.Name, u.Name)
			case sig.Sigstore != nil:
				r.add("upstream %s: Sigstore bundle verified offline, identity %s issued by %s", u.Name, sig.Sigstore.Identity, sig.Sigstore.Issuer)
			default:
				r.add("upstream %s: minisign signature verified before launch", u.Name)
			}
		}
	}
	return r
}

func checkFilesProtected(s *snapshot, _ Control) result {
	r := result{pass: true}
	for _, f := range []string{s.dir.Config(), s.lockPath} {
		fi, err := os.Stat(f)
		if err != nil {
			r.failf("%s: %v", f, err)
			continue
		}
		if fi.Mode().Perm()&0o022 != 0 {
			r.failf("%s is writable by others (mode %v)", f, fi.Mode().Perm())
		} else {
			r.add("%s: mode %v", f, fi.Mode().Perm())
		}
	}
	return r
}
