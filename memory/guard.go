package memory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
)

// ReasonGuardWrite records what was written through a guarded server.
const ReasonGuardWrite = "memory_guard_write"

var guardMigrations = []string{
	`CREATE TABLE memory_guard (
		server     TEXT NOT NULL,
		digest     TEXT NOT NULL,
		kind       TEXT NOT NULL,
		agent      TEXT NOT NULL,
		task       TEXT NOT NULL,
		session    TEXT NOT NULL,
		call       TEXT NOT NULL,
		trust      TEXT NOT NULL,
		sources    TEXT NOT NULL,
		written_at INTEGER NOT NULL,
		PRIMARY KEY (server, digest)
	);`,
}

// Guard watches a third-party memory server behind the gateway (one with
// the knowledge-graph tools of @modelcontextprotocol/server-memory), which
// Warden cannot sign or chain: it records a digest and the provenance of
// every entity, observation and relation written through the gateway, and
// on every read withholds what it never saw written (changed or planted out
// of band, an event each), and withholds or marks what an untrusted session
// wrote, as Warden's own memory server does.
type Guard struct {
	db       *store.DB
	events   events.Sink
	log      *slog.Logger
	withhold bool
	now      func() time.Time

	mu       sync.Mutex
	reported map[string]bool
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	DB       *store.DB
	Events   events.Sink
	Log      *slog.Logger
	Withhold bool // withhold untrusted items instead of marking them
}

// NewGuard migrates the guard's table.
func NewGuard(ctx context.Context, o GuardOptions) (*Guard, error) {
	if o.DB == nil || o.Events == nil {
		return nil, errors.New("memory guard needs a database and an event sink")
	}
	if err := o.DB.Migrate(ctx, "memory_guard", guardMigrations); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Guard{db: o.DB, events: o.Events, log: o.Log, withhold: o.Withhold, now: time.Now, reported: map[string]bool{}}, nil
}

// GuardedCall is one completed call to a guarded server.
type GuardedCall struct {
	Server string // the upstream's name
	Tool   string // the tool's name on that server
	Args   json.RawMessage
	// Result is the server's answer; reads are rewritten in place.
	Result *mcp.CallToolResult
	Caller Caller
}

// item is one piece of a knowledge graph, as the guard keys it.
type item struct {
	kind, digest string
}

func itemOf(kind string, parts ...string) item {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return item{kind, hex.EncodeToString(h.Sum(nil))}
}

func entityItem(name, typ string) item         { return itemOf("entity", name, typ) }
func observationItem(entity, text string) item { return itemOf("observation", entity, text) }
func relationItem(r RelationArg) item          { return itemOf("relation", r.From, r.RelationType, r.To) }

// Tainting is the untrusted content a read served: it taints the reading
// session.
type Tainting struct {
	Sources []string // ids of the writes that put it there
	Content string   // its text, for the flow rules to match
}

// Observe takes note of a completed call. A successful write is recorded; a
// read has what was never written through Warden withheld, and untrusted
// items withheld or marked. It returns the untrusted content a read served.
// An error means the call's result must not reach the agent.
func (g *Guard) Observe(ctx context.Context, c *GuardedCall) (Tainting, error) {
	if c.Result == nil || c.Result.IsError {
		return Tainting{}, nil
	}
	switch c.Tool {
	case "create_entities", "add_observations", "create_relations":
		return Tainting{}, g.recordWrite(ctx, c)
	case "read_graph", "search_nodes", "open_nodes":
		return g.checkRead(ctx, c)
	}
	return Tainting{}, nil
}

// writtenItems lists what a write's arguments put in the graph.
func writtenItems(tool string, args json.RawMessage) ([]item, error) {
	var in struct {
		Entities     []EntityArg      `json:"entities"`
		Observations []ObservationArg `json:"observations"`
		Relations    []RelationArg    `json:"relations"`
	}
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, fmt.Errorf("reading the %s arguments: %w", tool, err)
	}
	var out []item
	for _, e := range in.Entities {
		out = append(out, entityItem(e.Name, e.EntityType))
		for _, o := range e.Observations {
			out = append(out, observationItem(e.Name, o))
		}
	}
	for _, o := range in.Observations {
		for _, t := range o.Contents {
			out = append(out, observationItem(o.EntityName, t))
		}
	}
	for _, r := range in.Relations {
		out = append(out, relationItem(r))
	}
	return out, nil
}

func (g *Guard) recordWrite(ctx context.Context, c *GuardedCall) error {
	items, err := writtenItems(c.Tool, c.Args)
	if err != nil {
		return err
	}
	trust, sources := Trusted, "[]"
	if len(c.Caller.Sources) > 0 {
		trust = Untrusted
		b, _ := json.Marshal(c.Caller.Sources)
		sources = string(b)
	}
	at := g.now().UnixNano()
	sum := sha256.New()
	err = g.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, it := range items {
			sum.Write([]byte(it.digest))
			// The first provenance of an item stands, unless a later write
			// of it came from an untrusted session: then that one does.
			if _, err := tx.ExecContext(ctx, `INSERT INTO memory_guard (server, digest, kind, agent, task, session, call, trust, sources, written_at)
				VALUES (?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT (server, digest) DO UPDATE SET agent = excluded.agent, task = excluded.task, session = excluded.session,
					call = excluded.call, trust = excluded.trust, sources = excluded.sources, written_at = excluded.written_at
				WHERE excluded.trust = 'untrusted' AND memory_guard.trust = 'trusted'`,
				c.Server, it.digest, it.kind, c.Caller.Agent, c.Caller.Task, c.Caller.Session, c.Caller.Call, trust, sources, at); err != nil {
				return fmt.Errorf("recording a write through memory server %s: %w", c.Server, err)
			}
		}
		ev := events.New(events.ClassAPIActivity, events.ActivityCreate, "memory")
		ev.StatusID = events.StatusSuccess
		ev.Message = fmt.Sprintf("%d items written through memory server %s (%s)", len(items), c.Server, trust)
		ev.Actor = &events.Actor{User: &events.User{UID: c.Caller.Agent, Name: c.Caller.Name, Type: "agent"}, Session: &events.Session{UID: c.Caller.Session}}
		ev.Warden = &events.Warden{Agent: c.Caller.Agent, Task: c.Caller.Task, Tool: c.Server + "." + c.Tool, Reason: ReasonGuardWrite, Attrs: map[string]string{
			"server": c.Server, "items": strconv.Itoa(len(items)), "digest": hex.EncodeToString(sum.Sum(nil)), "trust": trust, "call": c.Caller.Call}}
		return g.events.Emit(ctx, ev)
	})
	if err != nil {
		// The server has the write but Warden has no record of it: later
		// reads will withhold it as unknown. Say so now.
		return fmt.Errorf("memory server %s stored the write, but Warden could not record it, so it will be withheld from reads: %w", c.Server, err)
	}
	return nil
}

// guardRecord is the provenance the guard holds for an item.
type guardRecord struct {
	Agent, Task, Call, Trust string
	Sources                  []string
	At                       int64
}

func (g *Guard) lookup(ctx context.Context, server string, items []item) (map[string]*guardRecord, error) {
	out := map[string]*guardRecord{}
	const batch = 400 // SQLite's bound-parameter limit is far above this
	for i := 0; i < len(items); i += batch {
		part := items[i:min(i+batch, len(items))]
		args := []any{server}
		for _, it := range part {
			args = append(args, it.digest)
		}
		rows, err := g.db.QueryContext(ctx, `SELECT digest, agent, task, call, trust, sources, written_at FROM memory_guard
			WHERE server = ? AND digest IN (?`+strings.Repeat(",?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("reading the records of memory server %s: %w", server, err)
		}
		for rows.Next() {
			var d, src string
			r := &guardRecord{}
			if err := rows.Scan(&d, &r.Agent, &r.Task, &r.Call, &r.Trust, &src, &r.At); err != nil {
				rows.Close()
				return nil, err
			}
			if json.Unmarshal([]byte(src), &r.Sources) != nil {
				r.Trust = Untrusted // a record Warden cannot read is not trusted
			}
			out[d] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// servedGraph is a read's answer, as server-memory shapes it.
type servedGraph struct {
	Entities  []EntityArg   `json:"entities"`
	Relations []RelationArg `json:"relations"`
}

// parseGraph reads the graph a read returned: its structured content when
// there is one, else its text. An answer the guard cannot read is not
// served.
func parseGraph(r *mcp.CallToolResult) (*servedGraph, error) {
	var g servedGraph
	if r.StructuredContent != nil {
		b, err := json.Marshal(r.StructuredContent)
		if err == nil && json.Unmarshal(b, &g) == nil {
			return &g, nil
		}
	}
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			if err := json.Unmarshal([]byte(t.Text), &g); err != nil {
				return nil, fmt.Errorf("the answer is not a knowledge graph: %w", err)
			}
			return &g, nil
		}
	}
	return nil, errors.New("the answer holds no knowledge graph")
}

func (g *Guard) checkRead(ctx context.Context, c *GuardedCall) (Tainting, error) {
	var none Tainting
	in, err := parseGraph(c.Result)
	if err != nil {
		return none, fmt.Errorf("Warden could not check what memory server %s returned, so it is not served: %w", c.Server, err)
	}
	var items []item
	for _, e := range in.Entities {
		items = append(items, entityItem(e.Name, e.EntityType))
		for _, o := range e.Observations {
			items = append(items, observationItem(e.Name, o))
		}
	}
	for _, r := range in.Relations {
		items = append(items, relationItem(r))
	}
	known, err := g.lookup(ctx, c.Server, items)
	if err != nil {
		return none, fmt.Errorf("Warden could not check what memory server %s returned, so it is not served: %w", c.Server, err)
	}

	out := servedGraph{Entities: []EntityArg{}, Relations: []RelationArg{}}
	var unknown []string
	withheld := 0
	var taint []string
	var tainted []string // the untrusted texts served
	h := sha256.New()
	// keep decides one item, whose text is text: served as is, served
	// marked, or withheld.
	keep := func(it item, what, text string) (string, bool) {
		r := known[it.digest]
		if r == nil {
			unknown = append(unknown, what)
			g.flag(ctx, c, it, what)
			return "", false
		}
		if r.Trust == Trusted {
			fmt.Fprintln(h, it.digest)
			return "", true
		}
		if g.withhold {
			withheld++
			return "", false
		}
		fmt.Fprintln(h, it.digest)
		tainted = append(tainted, text)
		id := "memory:" + c.Server + "@" + r.Call
		if !slices.Contains(taint, id) {
			taint = append(taint, id)
		}
		return markGuarded(r), true
	}
	kept := map[string]bool{}
	for _, e := range in.Entities {
		prefix, ok := keep(entityItem(e.Name, e.EntityType), fmt.Sprintf("entity %q", e.Name), e.Name+" "+e.EntityType)
		if !ok {
			continue
		}
		se := EntityArg{Name: e.Name, EntityType: e.EntityType, Observations: []string{}}
		if prefix != "" {
			se.EntityType = prefix + e.EntityType
		}
		for _, o := range e.Observations {
			if p, ok := keep(observationItem(e.Name, o), fmt.Sprintf("observation of %q", e.Name), o); ok {
				se.Observations = append(se.Observations, p+o)
			}
		}
		out.Entities = append(out.Entities, se)
		kept[e.Name] = true
	}
	for _, r := range in.Relations {
		if !kept[r.From] && !kept[r.To] {
			continue // both ends withheld
		}
		if p, ok := keep(relationItem(r), fmt.Sprintf("relation %s -%s-> %s", r.From, r.RelationType, r.To), r.From+" "+r.RelationType+" "+r.To); ok {
			r.RelationType = p + r.RelationType
			out.Relations = append(out.Relations, r)
		}
	}

	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return none, err
	}
	c.Result.Content = []mcp.Content{&mcp.TextContent{Text: string(b)}}
	c.Result.StructuredContent = out
	if len(unknown) > 0 {
		c.Result.Content = append(c.Result.Content, &mcp.TextContent{Text: fmt.Sprintf(
			"Warden withheld %d items that were never written through it (changed or planted outside Warden): %s.", len(unknown), strings.Join(unknown, "; "))})
	}
	if withheld > 0 {
		c.Result.Content = append(c.Result.Content, &mcp.TextContent{Text: fmt.Sprintf(
			"Warden withheld %d untrusted memory items (written by sessions that had read untrusted content).", withheld)})
	}
	ev := events.New(events.ClassAPIActivity, events.ActivityRead, "memory")
	ev.StatusID = events.StatusSuccess
	ev.Actor = &events.Actor{User: &events.User{UID: c.Caller.Agent, Name: c.Caller.Name, Type: "agent"}, Session: &events.Session{UID: c.Caller.Session}}
	ev.Warden = &events.Warden{Agent: c.Caller.Agent, Task: c.Caller.Task, Tool: c.Server + "." + c.Tool, Reason: ReasonRead, Attrs: map[string]string{
		"server": c.Server, "served_digest": hex.EncodeToString(h.Sum(nil)), "unknown": strconv.Itoa(len(unknown)),
		"untrusted": strconv.Itoa(len(taint)), "withheld": strconv.Itoa(withheld), "call": c.Caller.Call}}
	if err := g.events.Emit(ctx, ev); err != nil {
		return none, fmt.Errorf("the read could not be recorded, so nothing is served: %w", err)
	}
	sort.Strings(taint)
	return Tainting{Sources: taint, Content: strings.Join(tainted, "\n")}, nil
}

// flag raises, once per item, the event for something read back that was
// never written through Warden.
func (g *Guard) flag(ctx context.Context, c *GuardedCall, it item, what string) {
	key := c.Server + "/" + it.digest
	g.mu.Lock()
	seen := g.reported[key]
	g.reported[key] = true
	g.mu.Unlock()
	if seen {
		return
	}
	e := events.New(events.ClassDetectionFinding, events.ActivityCreate, "memory")
	e.SeverityID = events.SeverityHigh
	e.FindingInfo = &events.FindingInfo{UID: events.NewID(), Title: "memory changed outside Warden", Types: []string{ReasonTampered}}
	e.Message = fmt.Sprintf("memory server %s returned %s, which was never written through Warden; withheld", c.Server, what)
	e.Warden = &events.Warden{Agent: c.Caller.Agent, Task: c.Caller.Task, Tool: c.Server + "." + c.Tool, Reason: ReasonTampered,
		Attrs: map[string]string{"server": c.Server, "kind": it.kind, "item": it.digest}}
	if err := g.events.Emit(ctx, e); err != nil {
		g.log.Error("could not record memory changed outside Warden", "server", c.Server, "item", it.digest, "err", err)
	}
}

func markGuarded(r *guardRecord) string {
	src := strings.Join(r.Sources, ", ")
	if src == "" {
		src = "untrusted content"
	}
	return fmt.Sprintf("[UNTRUSTED memory, written by %s in task %s at %s after reading %s] ", r.Agent, r.Task,
		time.Unix(0, r.At).UTC().Format(time.RFC3339), src)
}
