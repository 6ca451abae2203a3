package redteam

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Env is one pack's simulated environment: the state its tools act on.
// Every tool is a deterministic function over this state; nothing leaves
// the process. An Env is reset before each run.
type Env struct {
	pack *Pack

	mu     sync.Mutex
	state  map[string][]Record
	desc   map[string]string // tool id -> description as listed
	served map[string]bool   // injection points shown in a result since the reset
	next   int               // id counter
}

// pointsField is a record's hidden field listing the injection points its
// values carry (never shown).
const pointsField = "_points"

// NewEnv returns the pack's environment in its initial, benign state.
func NewEnv(p *Pack) *Env {
	e := &Env{pack: p}
	e.Reset(nil)
	return e
}

// Reset restores the initial state, with text planted after the benign
// default of each injection point it names.
func (e *Env) Reset(planted map[string]string) {
	render := func(s string) (string, []string) {
		var pts []string
		out := pointRe.ReplaceAllStringFunc(s, func(m string) string {
			name := pointRe.FindStringSubmatch(m)[1]
			pts = append(pts, name)
			return pointText(e.pack.Points[name].Default, planted[name])
		})
		return out, pts
	}
	st := make(map[string][]Record, len(e.pack.State))
	for c, rs := range e.pack.State {
		out := make([]Record, len(rs))
		for i, r := range rs {
			var pts []string
			nr := make(Record, len(r)+1)
			for k, v := range r {
				nr[k] = mapStrings(v, func(s string) string {
					o, p := render(s)
					pts = append(pts, p...)
					return o
				})
			}
			if len(pts) > 0 {
				nr[pointsField] = pts
			}
			out[i] = nr
		}
		st[c] = out
	}
	desc := map[string]string{}
	for _, s := range e.pack.Servers {
		for _, t := range s.Tools {
			d, _ := render(t.Description)
			desc[s.Name+"."+t.Name] = d
		}
	}
	e.mu.Lock()
	e.state, e.desc, e.served, e.next = st, desc, map[string]bool{}, 0
	e.mu.Unlock()
}

// pointText is what an injection point holds: its benign text, and the
// attacker's after it.
func pointText(def, planted string) string {
	switch {
	case planted == "":
		return def
	case def == "":
		return planted
	}
	return def + "\n\n" + planted
}

func mapStrings(v any, fn func(string) string) any {
	switch x := v.(type) {
	case string:
		return fn(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = mapStrings(e, fn)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mapStrings(e, fn)
		}
		return out
	}
	return v
}

// Served returns the injection points shown in results since the reset.
func (e *Env) Served() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.served))
	for p := range e.served {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Snapshot returns a deep copy of the state, for checks.
func (e *Env) Snapshot() map[string][]Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string][]Record, len(e.state))
	for c, rs := range e.state {
		cp := make([]Record, len(rs))
		for i, r := range rs {
			nr := make(Record, len(r))
			for k, v := range r {
				nr[k] = v
			}
			cp[i] = nr
		}
		out[c] = cp
	}
	return out
}

// Servers builds the pack's MCP servers over this environment, by name.
func (e *Env) Servers() map[string]*mcp.Server {
	out := map[string]*mcp.Server{}
	for _, s := range e.pack.Servers {
		srv := mcp.NewServer(&mcp.Implementation{Name: "redteam-" + e.pack.Name + "-" + s.Name, Version: "1"}, nil)
		for i := range s.Tools {
			t := &s.Tools[i]
			id := s.Name + "." + t.Name
			e.mu.Lock()
			d := e.desc[id]
			e.mu.Unlock()
			srv.AddTool(&mcp.Tool{Name: t.Name, Description: d, InputSchema: t.schema()},
				func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					var args map[string]any
					if len(req.Params.Arguments) > 0 {
						if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
							return errResult("arguments are not a JSON object: " + err.Error()), nil
						}
					}
					out, failed := e.Call(id, args)
					if failed {
						return errResult(out), nil
					}
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out}}}, nil
				})
		}
		out[s.Name] = srv
	}
	return out
}

func errResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// schema is the tool's input schema.
func (t *ToolSpec) schema() map[string]any {
	props := map[string]any{}
	var req []string
	for n, ps := range t.Params {
		typ := ps.Type
		if typ == "" {
			typ = "string"
		}
		p := map[string]any{"type": typ}
		if typ == "array" {
			p["items"] = map[string]any{"type": "string"}
		}
		if ps.Description != "" {
			p["description"] = ps.Description
		}
		props[n] = p
		if !t.optional(n) {
			req = append(req, n)
		}
	}
	sort.Strings(req)
	s := map[string]any{"type": "object", "properties": props}
	if len(req) > 0 {
		s["required"] = req
	}
	return s
}

// Call runs tool id with args over the state. It returns the result text
// and whether it is an error result.
func (e *Env) Call(id string, args map[string]any) (string, bool) {
	t, ok := e.pack.Tool(id)
	if !ok {
		return "no such tool: " + id, true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for n, ps := range t.Params {
		v, given := args[n]
		if !given {
			if !t.optional(n) {
				return fmt.Sprintf("missing required argument %q", n), true
			}
			continue
		}
		if !typeOK(ps.Type, v) {
			return fmt.Sprintf("argument %q: want a %s", n, orString(ps.Type)), true
		}
	}
	switch t.Op {
	case OpList:
		return e.list(t, args, false), false
	case OpSearch:
		return e.list(t, args, true), false
	case OpGet:
		return e.get(t, args)
	case OpCreate:
		return e.create(t, args)
	case OpUpdate:
		return e.update(t, args)
	case OpDelete:
		return e.delete(t, args)
	case OpPay:
		return e.pay(t, args)
	case OpFetch:
		return e.fetch(t, args)
	case OpShell:
		return e.shell(t, str(args["command"]))
	case OpSQL:
		return e.sql(t, str(args["query"]))
	}
	return "unknown op " + t.Op, true
}

func orString(s string) string {
	if s == "" {
		return "string"
	}
	return s
}

func typeOK(typ string, v any) bool {
	switch typ {
	case "", "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = str(e)
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// list shows the records matching the filters (search: any field containing
// the query).
func (e *Env) list(t *ToolSpec, args map[string]any, search bool) string {
	var out []Record
	for _, r := range e.state[t.Collection] {
		ok := true
		for n, ps := range t.Params {
			v, given := args[n]
			if !given || str(v) == "" {
				continue
			}
			if search && ps.field(n) == "query" {
				if !recordContains(r, str(v)) {
					ok = false
				}
				continue
			}
			have := str(r[ps.field(n)])
			if ps.Match == "contains" || search {
				ok = ok && strings.Contains(strings.ToLower(have), strings.ToLower(str(v)))
			} else {
				ok = ok && strings.EqualFold(have, str(v))
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return e.show(t, out)
}

func recordContains(r Record, q string) bool {
	q = strings.ToLower(q)
	for k, v := range r {
		if k == pointsField {
			continue
		}
		if strings.Contains(strings.ToLower(str(v)), q) {
			return true
		}
	}
	return false
}

// show renders records as "field: value" lines, the key first, and notes
// the injection points they carry as served.
func (e *Env) show(t *ToolSpec, rs []Record) string {
	if len(rs) == 0 {
		return "(no results)"
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString("\n---\n")
		}
		writeRecord(&b, r, t.key(), t.Fields)
		if pts, ok := r[pointsField].([]string); ok {
			for _, p := range pts {
				e.served[p] = true
			}
		}
	}
	return b.String()
}

func writeRecord(b *strings.Builder, r Record, key string, fields []string) {
	if len(fields) == 0 {
		for k := range r {
			if k != key && k != pointsField {
				fields = append(fields, k)
			}
		}
		sort.Strings(fields)
		if _, ok := r[key]; ok {
			fields = append([]string{key}, fields...)
		}
	}
	for _, f := range fields {
		v, ok := r[f]
		if !ok {
			continue
		}
		fmt.Fprintf(b, "%s: %s\n", f, str(v))
	}
}

func (e *Env) find(c, key, val string) int {
	for i, r := range e.state[c] {
		if str(r[key]) == val {
			return i
		}
	}
	return -1
}

func (e *Env) keyArg(t *ToolSpec, args map[string]any) string {
	n, _ := t.paramFor(t.key())
	return str(args[n])
}

func (e *Env) get(t *ToolSpec, args map[string]any) (string, bool) {
	k := e.keyArg(t, args)
	i := e.find(t.Collection, t.key(), k)
	if i < 0 {
		return fmt.Sprintf("no %s %q", singular(t.Collection), k), true
	}
	return e.show(t, []Record{e.state[t.Collection][i]}), false
}

func (e *Env) newID(c string) string {
	e.next++
	return fmt.Sprintf("%s-%d", singular(c), 100+e.next)
}

func singular(c string) string {
	c = strings.TrimSuffix(c, "s")
	return strings.ReplaceAll(c, "_", "-")
}

// record builds a record from the parameters and Set.
func (t *ToolSpec) record(args map[string]any) Record {
	r := Record{}
	for n, ps := range t.Params {
		if v, ok := args[n]; ok {
			r[ps.field(n)] = v
		}
	}
	for k, v := range t.Set {
		r[k] = v
	}
	return r
}

func (e *Env) create(t *ToolSpec, args map[string]any) (string, bool) {
	r := t.record(args)
	if k := str(r[t.key()]); k == "" {
		r[t.key()] = e.newID(t.Collection)
	} else if i := e.find(t.Collection, t.key(), k); i >= 0 {
		if !t.Upsert {
			return fmt.Sprintf("%s %q already exists", singular(t.Collection), k), true
		}
		e.state[t.Collection][i] = r
		return fmt.Sprintf("ok: wrote %s %s", singular(t.Collection), k), false
	}
	e.state[t.Collection] = append(e.state[t.Collection], r)
	return fmt.Sprintf("ok: created %s %s", singular(t.Collection), str(r[t.key()])), false
}

func (e *Env) update(t *ToolSpec, args map[string]any) (string, bool) {
	k := e.keyArg(t, args)
	i := e.find(t.Collection, t.key(), k)
	if i < 0 {
		return fmt.Sprintf("no %s %q", singular(t.Collection), k), true
	}
	r := e.state[t.Collection][i]
	for f, v := range t.record(args) {
		r[f] = v
	}
	return fmt.Sprintf("ok: updated %s %s", singular(t.Collection), k), false
}

func (e *Env) delete(t *ToolSpec, args map[string]any) (string, bool) {
	k := e.keyArg(t, args)
	i := e.find(t.Collection, t.key(), k)
	if i < 0 {
		return fmt.Sprintf("no %s %q", singular(t.Collection), k), true
	}
	e.state[t.Collection] = append(e.state[t.Collection][:i:i], e.state[t.Collection][i+1:]...)
	return fmt.Sprintf("ok: deleted %s %s", singular(t.Collection), k), false
}

// pay records a payment and debits the paying account.
func (e *Env) pay(t *ToolSpec, args map[string]any) (string, bool) {
	r := t.record(args)
	amount, ok := r["amount"].(float64)
	if !ok || amount <= 0 || math.IsInf(amount, 0) || math.IsNaN(amount) {
		return "amount must be a positive number", true
	}
	acc := t.Account
	if acc == "" {
		acc = "accounts"
	}
	i := 0
	if from := str(r["from"]); from != "" {
		if i = e.find(acc, "id", from); i < 0 {
			return fmt.Sprintf("no account %q", from), true
		}
	}
	if len(e.state[acc]) == 0 {
		return "no account to pay from", true
	}
	a := e.state[acc][i]
	bal, _ := a["balance"].(float64)
	if bal < amount {
		return fmt.Sprintf("insufficient funds: %s has %s", str(a["id"]), str(bal)), true
	}
	a["balance"] = math.Round((bal-amount)*100) / 100
	r["from"] = a["id"]
	if str(r[t.key()]) == "" {
		r[t.key()] = e.newID(t.Collection)
	}
	e.state[t.Collection] = append(e.state[t.Collection], r)
	return fmt.Sprintf("ok: payment %s of %s to %s sent", str(r[t.key()]), str(amount), str(r["to"])), false
}

// fetch logs an HTTP request and answers it from the pages collection.
func (e *Env) fetch(t *ToolSpec, args map[string]any) (string, bool) {
	raw := str(args["url"])
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "not an http(s) URL: " + raw, true
	}
	log := t.logCollection()
	entry := Record{"url": raw, "host": u.Hostname()}
	for n, ps := range t.Params {
		if f := ps.field(n); f != "url" {
			if v, ok := args[n]; ok {
				entry[f] = v
			}
		}
	}
	e.state[log] = append(e.state[log], entry)
	return e.page(t, raw), false
}

func (e *Env) page(t *ToolSpec, raw string) string {
	c := t.Collection
	if c == "" {
		c = "pages"
	}
	base := strings.SplitN(raw, "?", 2)[0]
	for _, p := range e.state[c] {
		if pu := str(p["url"]); pu == raw || pu == base {
			return e.show(&ToolSpec{Key: "url", Fields: []string{"url", "content"}}, []Record{p})
		}
	}
	return "HTTP 200 OK"
}

func (t *ToolSpec) logCollection() string {
	if t.Log != "" {
		return t.Log
	}
	switch t.Op {
	case OpFetch:
		return "http_log"
	case OpShell:
		return "shell_log"
	case OpSQL:
		return "sql_log"
	}
	return ""
}
