package supply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/events"
)

// VetterOptions configure a Vetter.
type VetterOptions struct {
	// Store holds warden.lock. Required: with no lock every tool is held
	// back.
	Store *Store
	// Scanner, when set, scans every listed tool; tools with a finding at
	// or above MaxSeverity are held back.
	Scanner     *Scanner
	MaxSeverity Severity
	// Sink receives one OCSF Detection Finding per change (a tool new,
	// changed or gone since it was pinned, or newly flagged by the
	// scanner), once per change rather than per listing. Required.
	Sink events.Sink
	Log  *slog.Logger
}

// Vetter is the gateway's Vet hook: it holds back (quarantines) every tool
// that is not pinned in warden.lock exactly as listed, and every tool the
// description scanner flags at or above the configured severity.
type Vetter struct {
	o VetterOptions

	mu       sync.Mutex
	listings map[string][]*mcp.Tool     // last listing of each server
	idx      *nameIndex                 // over listings, rebuilt when names change
	idxGen   int                        // bumped on each rebuild
	cache    map[*mcp.Tool]*vetted      // per listed tool (pointers change on re-list)
	reported map[string]string          // server.tool -> fingerprint of the state last reported
	removed  map[string]map[string]bool // server -> pinned tools reported gone
}

type vetted struct {
	surface  Surface
	hashes   ToolHashes
	err      error
	gen      int // idxGen the findings were computed at
	findings []Finding
}

// NewVetter returns a Vetter.
func NewVetter(o VetterOptions) (*Vetter, error) {
	if o.Store == nil || o.Sink == nil {
		return nil, errors.New("supply: the vetter needs the lock store and an event sink")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Scanner != nil && o.MaxSeverity == 0 {
		o.MaxSeverity = SeverityHigh
	}
	return &Vetter{o: o, listings: map[string][]*mcp.Tool{}, cache: map[*mcp.Tool]*vetted{}, reported: map[string]string{}, removed: map[string]map[string]bool{}}, nil
}

// Reason codes of the quarantine events.
const (
	ReasonNoLock       = "lock_missing"
	ReasonLockInvalid  = "lock_invalid"
	ReasonServerNew    = "server_not_pinned"
	ReasonToolNew      = "tool_not_pinned"
	ReasonToolChanged  = "tool_changed"
	ReasonToolRemoved  = "tool_removed"
	ReasonToolPoisoned = "tool_poisoned"
)

// verdict is why one tool is held back.
type verdict struct {
	codes   []string
	reasons []string
	parts   []string
	top     Severity
}

func (v *verdict) add(code, reason string, sev Severity) {
	v.codes = append(v.codes, code)
	v.reasons = append(v.reasons, reason)
	v.top = max(v.top, sev)
}

// Vet implements gateway.Options.Vet.
func (v *Vetter) Vet(ctx context.Context, server string, tools []*mcp.Tool) map[string]string {
	lock, lerr := v.o.Store.Current()

	v.mu.Lock()
	v.observe(server, tools)
	out := map[string]string{}
	type emit struct {
		key string
		fp  string
		ev  events.Event
	}
	var emits []emit
	var sl *ServerLock
	if lerr == nil {
		sl = lock.Servers[server]
	}
	for _, t := range tools {
		if t == nil {
			continue
		}
		c := v.vet(server, t)
		var vd verdict
		switch {
		case c.err != nil:
			vd.add(ReasonToolChanged, "its definition cannot be hashed ("+c.err.Error()+")", SeverityHigh)
		case errors.Is(lerr, ErrNoLock):
			vd.add(ReasonNoLock, "no warden.lock: run `warden tools lock` and review what it pins", SeverityMedium)
		case lerr != nil:
			vd.add(ReasonLockInvalid, "warden.lock cannot be used ("+lerr.Error()+"); every tool is held back", SeverityHigh)
		case sl == nil:
			vd.add(ReasonServerNew, fmt.Sprintf("server %s is not in warden.lock: review with `warden tools diff %s`, pin with `warden tools approve %s`", server, server, server), SeverityMedium)
		default:
			pinned := sl.Tools[t.Name]
			switch {
			case pinned == nil:
				vd.add(ReasonToolNew, fmt.Sprintf("new tool, not in warden.lock: review with `warden tools diff %s`, approve with `warden tools approve %s.%s`", server, server, t.Name), SeverityMedium)
			case pinned.SHA256 != c.hashes:
				vd.parts = pinned.SHA256.changed(c.hashes)
				vd.add(ReasonToolChanged, fmt.Sprintf("changed since it was pinned (%s): review with `warden tools diff %s`, approve with `warden tools approve %s.%s`", strings.Join(vd.parts, ", "), server, server, t.Name), SeverityHigh)
			}
		}
		var accept []string
		if p, ok := lock.toolOrNil(server, t.Name); ok {
			accept = p.AcceptFindings
		}
		if v.o.Scanner != nil {
			if top := Max(c.findings, accept); top >= v.o.MaxSeverity {
				vd.add(ReasonToolPoisoned, "the description scanner flags it: "+summarize(c.findings, accept, v.o.MaxSeverity), top)
			}
		}
		if len(vd.reasons) == 0 {
			delete(v.reported, server+"."+t.Name)
			continue
		}
		reason := strings.Join(vd.reasons, "; ")
		out[t.Name] = reason
		key := server + "." + t.Name
		fp := sum(reason + "\x00" + c.hashes.Description + c.hashes.InputSchema + c.hashes.OutputSchema + c.hashes.Annotations + c.hashes.Title)
		if v.reported[key] != fp {
			emits = append(emits, emit{key, fp, v.event(server, t.Name, vd, reason, c, sl)})
		}
	}
	// Pinned tools the server stopped listing: reported once.
	if sl != nil {
		listed := map[string]bool{}
		for _, t := range tools {
			if t != nil {
				listed[t.Name] = true
			}
		}
		gone := v.removed[server]
		if gone == nil {
			gone = map[string]bool{}
			v.removed[server] = gone
		}
		for _, n := range sortedKeys(sl.Tools) {
			if listed[n] {
				delete(gone, n)
				continue
			}
			if !gone[n] {
				var vd verdict
				vd.add(ReasonToolRemoved, "pinned in warden.lock but no longer listed by the server", SeverityLow)
				e := v.event(server, n, vd, vd.reasons[0], nil, sl)
				emits = append(emits, emit{"removed:" + server + "." + n, "", e})
			}
		}
	}
	v.mu.Unlock()

	for _, e := range emits {
		err := v.o.Sink.Emit(ctx, e.ev)
		v.mu.Lock()
		switch {
		case err != nil:
			v.o.Log.Error("recording a held-back tool failed; it stays held back and is reported again", "tool", e.key, "err", err)
		case strings.HasPrefix(e.key, "removed:"):
			s, n, _ := strings.Cut(strings.TrimPrefix(e.key, "removed:"), ".")
			if v.removed[s] != nil {
				v.removed[s][n] = true
			}
		default:
			v.reported[e.key] = e.fp
			v.o.Log.Warn("tool held back", "tool", e.key, "reason", out[strings.TrimPrefix(e.key, server+".")])
		}
		v.mu.Unlock()
	}
	return out
}

// toolOrNil is Lock.Tool that tolerates a nil lock.
func (l *Lock) toolOrNil(server, tool string) (*ToolLock, bool) {
	if l == nil {
		return nil, false
	}
	return l.Tool(server, tool)
}

// observe records a server's listing and keeps the cache to the tools
// listed now. Called with v.mu held.
func (v *Vetter) observe(server string, tools []*mcp.Tool) {
	prev := v.listings[server]
	same := len(prev) == len(tools)
	for i := 0; same && i < len(tools); i++ {
		same = prev[i] == tools[i]
	}
	if same && v.idx != nil {
		return
	}
	names := func(ts []*mcp.Tool) string {
		var b strings.Builder
		for _, t := range ts {
			if t != nil {
				b.WriteString(t.Name)
				b.WriteByte(0)
			}
		}
		return b.String()
	}
	namesChanged := names(prev) != names(tools) || v.idx == nil
	v.listings[server] = tools
	live := map[*mcp.Tool]bool{}
	for _, ts := range v.listings {
		for _, t := range ts {
			live[t] = true
		}
	}
	for t := range v.cache {
		if !live[t] {
			delete(v.cache, t)
		}
	}
	if namesChanged {
		all := make([]Listed, 0, len(v.listings))
		for _, s := range sortedKeys(v.listings) {
			all = append(all, Listed{Server: s, Tools: v.listings[s]})
		}
		v.idx = newNameIndex(all)
		v.idxGen++
	}
}

// vet returns the (cached) hashes and findings of a listed tool. Called
// with v.mu held; the scan is bounded per tool.
func (v *Vetter) vet(server string, t *mcp.Tool) *vetted {
	c := v.cache[t]
	if c == nil {
		c = &vetted{gen: -1}
		c.surface, c.err = SurfaceOf(t)
		if c.err == nil {
			c.hashes = c.surface.Hashes()
		}
		v.cache[t] = c
	}
	if v.o.Scanner != nil && c.gen != v.idxGen {
		c.findings = v.o.Scanner.ScanTool(server, t, v.idx)
		c.gen = v.idxGen
	}
	return c
}

// summarize names the findings at or above min, worst first.
func summarize(fs []Finding, accept []string, min Severity) string {
	var top []Finding
	for _, f := range fs {
		if f.Severity >= min && !slicesContains(accept, f.Rule) {
			top = append(top, f)
		}
	}
	sort.SliceStable(top, func(i, j int) bool { return top[i].Severity > top[j].Severity })
	var parts []string
	for i, f := range top {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(top)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %s): %s", f.Rule, f.Severity, f.Field, f.Reason))
	}
	return strings.Join(parts, "; ")
}

// event renders a hold-back as an OCSF Detection Finding.
func (v *Vetter) event(server, tool string, vd verdict, reason string, c *vetted, sl *ServerLock) events.Event {
	e := events.New(events.ClassDetectionFinding, events.ActivityCreate, "supply")
	id := server + "." + tool
	code := vd.codes[0]
	types := []string{"tool_poisoning"}
	switch code {
	case ReasonToolChanged, ReasonToolRemoved:
		types = []string{"rug_pull"}
	case ReasonToolNew, ReasonServerNew, ReasonNoLock:
		types = []string{"unpinned_tool"}
	}
	e.SeverityID = ocsfSeverity(vd.top)
	e.StatusCode = code
	e.Message = id + " held back: " + reason
	e.Metadata.Profiles = []string{"security_control"}
	e.FindingInfo = &events.FindingInfo{UID: e.Metadata.UID, Title: id + " " + strings.ReplaceAll(code, "_", " "), Types: types}
	e.Resources = []events.Resource{{UID: id, Type: "tool", Name: tool}}
	e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionQuarantined
	if code == ReasonToolRemoved {
		e.ActionID, e.DispositionID = events.ActionAllowed, events.DispositionLogged
	}
	e.Policy = &events.Policy{UID: "supply." + code, Name: "tool pinning"}
	attrs := map[string]string{"server": server, "reasons": strings.Join(vd.codes, ",")}
	if len(vd.parts) > 0 {
		attrs["changed"] = strings.Join(vd.parts, ",")
	}
	if c != nil && c.err == nil {
		attrs["description_sha256"] = c.hashes.Description
		attrs["input_schema_sha256"] = c.hashes.InputSchema
		if sl != nil {
			if p := sl.Tools[tool]; p != nil {
				attrs["pinned_description_sha256"] = p.SHA256.Description
				attrs["pinned_input_schema_sha256"] = p.SHA256.InputSchema
			}
		}
		var rules []string
		for _, f := range c.findings {
			if f.Severity >= SeverityMedium {
				rules = append(rules, f.Rule)
			}
		}
		if len(rules) > 0 {
			attrs["scanner_rules"] = strings.Join(dedupeSorted(rules), ",")
		}
	}
	e.Warden = &events.Warden{Tool: id, Reason: code, Attrs: attrs}
	return e
}

func dedupeSorted(s []string) []string {
	sort.Strings(s)
	return dedupe(s)
}

func ocsfSeverity(s Severity) events.Severity {
	switch s {
	case SeverityCritical:
		return events.SeverityCritical
	case SeverityHigh:
		return events.SeverityHigh
	case SeverityMedium:
		return events.SeverityMedium
	case SeverityLow:
		return events.SeverityLow
	}
	return events.SeverityInformational
}
