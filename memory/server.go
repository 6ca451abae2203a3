package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/policy"
)

// The gateway's in-process protocol with built-in upstreams: it puts the
// caller's context in a forwarded call's _meta under MetaCaller (never
// anything the agent sent), and reads MetaTaint from the result,
// {"sources": [...], "content": "..."}: the ids and the text of
// untrusted content the result carried, which taint the session.
const (
	MetaCaller = "warden.dev/caller"
	MetaTaint  = "warden.dev/taint"
)

// Caller is the context the gateway passes with each call.
type Caller struct {
	Agent   string   `json:"agent"` // SPIFFE ID
	Name    string   `json:"name"`  // agent name
	Task    string   `json:"task"`
	Session string   `json:"session"`
	Call    string   `json:"call"`
	Sources []string `json:"sources,omitempty"` // untrusted calls the session ingested
	Owner   string   `json:"owner,omitempty"`
	Model   string   `json:"model,omitempty"`
	Tier    string   `json:"tier,omitempty"`
}

// Detector finds instruction-like content (inspect.Detector).
type Detector interface {
	Detect(text string) inspect.Verdict
}

// Policy decides reads and writes of namespaces other than the caller's
// own (*policy.Store).
type Policy interface {
	Decide(ctx context.Context, req policy.Request) policy.Decision
}

// Options configure the memory server.
type Options struct {
	Store    *Store
	Detector Detector // nil: no quarantine on write
	Policy   Policy   // nil: only the caller's own namespaces
	Events   events.Sink
	Log      *slog.Logger
	// Withhold leaves untrusted entries out of reads instead of serving
	// them marked with their provenance (the tier's memory policy).
	Withhold bool
}

// Server is Warden's memory server.
type Server struct {
	o        Options
	mcp      *mcp.Server
	mu       sync.Mutex
	reported map[string]bool // tamper problems already raised
	graphs   graphCache      // graphs built from verified entries (cache.go)
}

// NewServer builds the memory server.
func NewServer(o Options) (*Server, error) {
	if o.Store == nil || o.Events == nil {
		return nil, errors.New("memory server needs a store and an event sink")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, reported: map[string]bool{}}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "warden-memory", Title: "Warden memory", Version: "1"}, nil)
	s.register()
	return s, nil
}

// MCP returns the server to serve (in process, behind the gateway).
func (s *Server) MCP() *mcp.Server { return s.mcp }

const nsHelp = "memory namespace: agent (yours, the default), task (this task's), shared, or agent/<name>, user/<id>, task/<id> where policy allows"

type (
	createEntitiesIn struct {
		Entities  []EntityArg `json:"entities"`
		Namespace string      `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	createRelationsIn struct {
		Relations []RelationArg `json:"relations"`
		Namespace string        `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	addObservationsIn struct {
		Observations []ObservationArg `json:"observations"`
		Namespace    string           `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	deleteEntitiesIn struct {
		EntityNames []string `json:"entityNames"`
		Namespace   string   `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	deleteObservationsIn struct {
		Deletions []DeletionArg `json:"deletions"`
		Namespace string        `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	deleteRelationsIn struct {
		Relations []RelationArg `json:"relations"`
		Namespace string        `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	readGraphIn struct {
		Namespace string `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	searchNodesIn struct {
		Query     string `json:"query" jsonschema:"text to match against entity names, types and observations"`
		Namespace string `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
	openNodesIn struct {
		Names     []string `json:"names" jsonschema:"entity names to retrieve"`
		Namespace string   `json:"namespace,omitempty" jsonschema:"memory namespace (default: yours)"`
	}
)

func (s *Server) register() {
	addWrite(s, "create_entities", "Create multiple new entities in the knowledge graph", OpCreateEntities,
		func(g *Graph, in createEntitiesIn) (json.RawMessage, any, error) {
			created := []EntityArg{}
			for _, e := range in.Entities {
				if e.Name == "" {
					return nil, nil, errors.New("an entity needs a name")
				}
				if g.entity(e.Name) == nil && !containsEntity(created, e.Name) {
					if e.Observations == nil {
						e.Observations = []string{}
					}
					created = append(created, e)
				}
			}
			p, _ := json.Marshal(createEntities{Entities: created})
			return p, created, nil
		},
		func(in createEntitiesIn) string { return in.Namespace },
		func(in createEntitiesIn) []string {
			var t []string
			for _, e := range in.Entities {
				t = append(append(t, e.Name, e.EntityType), e.Observations...)
			}
			return t
		})
	addWrite(s, "create_relations", "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice", OpCreateRelations,
		func(g *Graph, in createRelationsIn) (json.RawMessage, any, error) {
			created := []RelationArg{}
			for _, r := range in.Relations {
				if !g.hasRelation(r) {
					created = append(created, r)
				}
			}
			p, _ := json.Marshal(createRelations{Relations: created})
			return p, created, nil
		},
		func(in createRelationsIn) string { return in.Namespace },
		func(in createRelationsIn) []string {
			var t []string
			for _, r := range in.Relations {
				t = append(t, r.From, r.To, r.RelationType)
			}
			return t
		})
	addWrite(s, "add_observations", "Add new observations to existing entities in the knowledge graph", OpAddObservations,
		func(g *Graph, in addObservationsIn) (json.RawMessage, any, error) {
			type added struct {
				EntityName        string   `json:"entityName"`
				AddedObservations []string `json:"addedObservations"`
			}
			out := []added{}
			for _, o := range in.Observations {
				ent := g.entity(o.EntityName)
				if ent == nil {
					return nil, nil, fmt.Errorf("Entity with name %s not found", o.EntityName)
				}
				a := added{EntityName: o.EntityName, AddedObservations: []string{}}
				for _, c := range o.Contents {
					dup := false
					for _, x := range ent.Observations {
						dup = dup || x.Text == c
					}
					if !dup {
						a.AddedObservations = append(a.AddedObservations, c)
					}
				}
				out = append(out, a)
			}
			p, _ := json.Marshal(addObservations{Observations: in.Observations})
			return p, out, nil
		},
		func(in addObservationsIn) string { return in.Namespace },
		func(in addObservationsIn) []string {
			var t []string
			for _, o := range in.Observations {
				t = append(t, o.Contents...)
			}
			return t
		})
	addWrite(s, "delete_entities", "Delete multiple entities and their associated relations from the knowledge graph", OpDeleteEntities,
		func(_ *Graph, in deleteEntitiesIn) (json.RawMessage, any, error) {
			p, _ := json.Marshal(deleteEntities{EntityNames: in.EntityNames})
			return p, "Entities deleted successfully", nil
		},
		func(in deleteEntitiesIn) string { return in.Namespace }, nil)
	addWrite(s, "delete_observations", "Delete specific observations from entities in the knowledge graph", OpDeleteObservations,
		func(_ *Graph, in deleteObservationsIn) (json.RawMessage, any, error) {
			p, _ := json.Marshal(deleteObservations{Deletions: in.Deletions})
			return p, "Observations deleted successfully", nil
		},
		func(in deleteObservationsIn) string { return in.Namespace }, nil)
	addWrite(s, "delete_relations", "Delete multiple relations from the knowledge graph", OpDeleteRelations,
		func(_ *Graph, in deleteRelationsIn) (json.RawMessage, any, error) {
			p, _ := json.Marshal(deleteRelations{Relations: in.Relations})
			return p, "Relations deleted successfully", nil
		},
		func(in deleteRelationsIn) string { return in.Namespace }, nil)

	addRead(s, "read_graph", "Read the entire knowledge graph",
		func(g *Graph, _ readGraphIn) *Graph { return g }, func(in readGraphIn) string { return in.Namespace })
	addRead(s, "search_nodes", "Search for nodes in the knowledge graph based on a query",
		func(g *Graph, in searchNodesIn) *Graph { return g.Search(in.Query) }, func(in searchNodesIn) string { return in.Namespace })
	addRead(s, "open_nodes", "Open specific nodes in the knowledge graph by their names",
		func(g *Graph, in openNodesIn) *Graph { return g.Open(in.Names) }, func(in openNodesIn) string { return in.Namespace })
}

func containsEntity(es []EntityArg, name string) bool {
	for _, e := range es {
		if e.Name == name {
			return true
		}
	}
	return false
}

// addWrite registers a write tool: plan turns the input into the entry's
// payload and the tool's answer given the current graph; texts are what
// the quarantine check reads.
func addWrite[In any](s *Server, name, desc, op string, plan func(*Graph, In) (json.RawMessage, any, error),
	ns func(In) string, texts func(In) []string) {
	mcp.AddTool(s.mcp, &mcp.Tool{Name: name, Description: desc}, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		c, err := callerOf(req)
		if err != nil {
			return failure(err), nil, nil
		}
		space, err := s.namespace(ctx, c, ns(in), policy.Write)
		if err != nil {
			return failure(err), nil, nil
		}
		g, err := s.graph(ctx, c, space)
		if err != nil {
			return failure(err), nil, nil
		}
		payload, answer, err := plan(g, in)
		if err != nil {
			return failure(err), nil, nil
		}
		var t []string
		if texts != nil {
			t = texts(in)
		}
		e, why, err := s.append(ctx, c, space, op, payload, t)
		if err != nil {
			return failure(err), nil, nil
		}
		if e.Status == Quarantined {
			return refused(ReasonQuarantined, fmt.Sprintf("Warden quarantined this write (%s): it came from a session that had read untrusted content (%s) and reads like instructions (%s); it will not be served", e.ID(), strings.Join(c.Sources, ", "), why)), nil, nil
		}
		return jsonResult(answer), nil, nil
	})
}

// addRead registers a read tool: pick selects from the verified graph.
func addRead[In any](s *Server, name, desc string, pick func(*Graph, In) *Graph, ns func(In) string) {
	mcp.AddTool(s.mcp, &mcp.Tool{Name: name, Description: desc, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
			c, err := callerOf(req)
			if err != nil {
				return failure(err), nil, nil
			}
			space, err := s.namespace(ctx, c, ns(in), policy.Read)
			if err != nil {
				return failure(err), nil, nil
			}
			g, err := s.graph(ctx, c, space)
			if err != nil {
				return failure(err), nil, nil
			}
			served := pick(g, in).Serve(s.o.Withhold)
			r := jsonResult(map[string]any{"entities": served.Entities, "relations": served.Relations})
			if served.Withheld > 0 {
				r.Content = append(r.Content, &mcp.TextContent{Text: fmt.Sprintf("Warden withheld %d untrusted memory entries (written by sessions that had read untrusted content).", served.Withheld)})
			}
			if len(served.Untrusted) > 0 {
				var ids []string
				for _, p := range served.Untrusted {
					ids = append(ids, "memory:"+p.Entry)
				}
				r.Meta = mcp.Meta{MetaTaint: map[string]any{"sources": ids, "content": strings.Join(served.UntrustedText, "\n")}}
			}
			if err := s.recordRead(ctx, c, space, served); err != nil {
				return failure(err), nil, nil // what an agent is served is always on record
			}
			return r, nil, nil
		})
}

// metaDecision is the gateway's _meta key for a refusal's machine-readable
// decision; Warden's memory refuses in the same shape.
const metaDecision = "warden.dev/decision"

// refused is a write Warden's memory refused, as the gateway refuses.
func refused(code, msg string) *mcp.CallToolResult {
	r := failure(errors.New(msg))
	r.Meta = mcp.Meta{metaDecision: map[string]any{"allow": false, "code": code, "stage": "memory",
		"reasons": []map[string]string{{"source": "memory", "code": code, "message": msg}}}}
	return r
}

func failure(err error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
}

func jsonResult(v any) *mcp.CallToolResult {
	if s, ok := v.(string); ok {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return failure(err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}

// callerOf reads the context the gateway attached. The server is reachable
// only in process through the gateway, which never forwards an agent's own
// _meta: a call without this context did not come through the gateway.
func callerOf(req *mcp.CallToolRequest) (*Caller, error) {
	raw, ok := req.Params.Meta[MetaCaller]
	if !ok {
		return nil, errors.New("Warden memory answers only calls that come through the gateway")
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var c Caller
	if err := json.Unmarshal(b, &c); err != nil || c.Agent == "" || c.Name == "" {
		return nil, errors.New("Warden memory: the gateway's caller context is malformed")
	}
	return &c, nil
}

// namespace resolves the namespace a call names and checks the caller may
// use it: its own agent namespace and its task's are its own; any other
// needs policy to permit the read or write on Memory::"<namespace>".
func (s *Server) namespace(ctx context.Context, c *Caller, asked string, action policy.Action) (string, error) {
	own := "agent/" + c.Name
	ns := asked
	switch asked {
	case "", "agent":
		return own, nil
	case "task":
		if c.Task == "" {
			return "", errors.New("no task namespace: the call has no task")
		}
		return "task/" + c.Task, nil
	}
	if ns == own || c.Task != "" && ns == "task/"+c.Task {
		return ns, nil
	}
	if ns != "shared" && !strings.HasPrefix(ns, "agent/") && !strings.HasPrefix(ns, "user/") && !strings.HasPrefix(ns, "task/") {
		return "", fmt.Errorf("namespace %q: %s", asked, nsHelp)
	}
	if err := checkNS(ns); err != nil {
		return "", err
	}
	if s.o.Policy == nil {
		return "", fmt.Errorf("namespace %s is not yours, and no policy is configured to allow it", ns)
	}
	d := s.o.Policy.Decide(ctx, policy.Request{
		Agent:  policy.Agent{Name: c.Name, SPIFFEID: c.Agent, Owner: c.Owner, Model: c.Model, Tier: c.Tier},
		Action: action, Target: policy.Memory{Namespace: ns},
		Task: policy.Task{ID: c.Task},
	})
	if !d.Allow {
		return "", fmt.Errorf("policy does not let %s %s namespace %s: %s", c.Name, action, ns, d.String())
	}
	return ns, nil
}

// graph loads and verifies a namespace, raising an event for each problem
// found (once), and rebuilds its graph from the authentic entries.
func (s *Server) graph(ctx context.Context, c *Caller, ns string) (*Graph, error) {
	entries, probs, err := s.o.Store.Load(ctx, ns)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		key := p.String()
		s.mu.Lock()
		seen := s.reported[key]
		s.reported[key] = true
		s.mu.Unlock()
		if seen {
			continue
		}
		e := events.New(events.ClassDetectionFinding, events.ActivityCreate, "memory")
		e.SeverityID = events.SeverityHigh
		e.FindingInfo = &events.FindingInfo{UID: events.NewID(), Title: "memory tampered with outside Warden", Types: []string{ReasonTampered}}
		e.Message = "memory entry withheld: " + key
		e.Warden = &events.Warden{Agent: c.Agent, Task: c.Task, Reason: ReasonTampered, Attrs: map[string]string{"ns": p.NS, "seq": strconv.FormatInt(p.Seq, 10), "problem": p.Reason}}
		if err := s.o.Events.Emit(ctx, e); err != nil {
			s.o.Log.Error("could not record a memory integrity problem", "problem", key, "err", err)
		}
	}
	return s.graphs.build(ns, entries, len(probs) == 0), nil
}

// append writes an entry with its provenance; from a tainted session,
// instruction-like content is quarantined.
func (s *Server) append(ctx context.Context, c *Caller, ns, op string, payload json.RawMessage, texts []string) (*Entry, string, error) {
	e := Entry{NS: ns, Op: op, Payload: payload, Agent: c.Agent, Task: c.Task, Session: c.Session, Call: c.Call, Trust: Trusted, Status: Active}
	var why string
	if len(c.Sources) > 0 {
		e.Trust, e.Sources = Untrusted, append([]string(nil), c.Sources...)
		sort.Strings(e.Sources)
		if s.o.Detector != nil {
			for _, t := range texts {
				if v := s.o.Detector.Detect(t); v.Injection {
					e.Status, why = Quarantined, strings.Join(v.Reasons, "; ")
					if why == "" {
						why = fmt.Sprintf("injection score %.2f", v.Score)
					}
					break
				}
			}
		}
	}
	out, err := s.o.Store.Append(ctx, e)
	if err != nil {
		return nil, "", err
	}
	if out.Status == Quarantined {
		f := events.New(events.ClassDetectionFinding, events.ActivityCreate, "memory")
		f.SeverityID = events.SeverityHigh
		f.FindingInfo = &events.FindingInfo{UID: events.NewID(), Title: "memory write quarantined", Types: []string{ReasonQuarantined}}
		f.Message = fmt.Sprintf("instruction-like memory write %s from a session that had read %s: %s", out.ID(), strings.Join(out.Sources, ", "), why)
		f.Warden = &events.Warden{Agent: c.Agent, Task: c.Task, Reason: ReasonQuarantined, Attrs: map[string]string{"ns": ns, "entry": out.ID(), "sources": strings.Join(out.Sources, ",")}}
		if err := s.o.Events.Emit(ctx, f); err != nil {
			s.o.Log.Error("could not record a quarantined memory write", "entry", out.ID(), "err", err)
		}
	}
	return out, why, nil
}

// recordRead records a digest of what a read served: with the entries'
// hashes in the log, an investigator can prove what the agent knew.
func (s *Server) recordRead(ctx context.Context, c *Caller, ns string, served *Served) error {
	ids := make([]string, 0, len(served.Entries))
	for id := range served.Entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		fmt.Fprintf(h, "%s %s\n", id, served.Entries[id])
	}
	e := events.New(events.ClassAPIActivity, events.ActivityRead, "memory")
	e.StatusID = events.StatusSuccess
	e.Actor = &events.Actor{User: &events.User{UID: c.Agent, Name: c.Name, Type: "agent"}, Session: &events.Session{UID: c.Session}}
	e.Resources = []events.Resource{{UID: ns, Type: "memory_namespace"}}
	e.Warden = &events.Warden{Agent: c.Agent, Task: c.Task, Reason: ReasonRead, Attrs: map[string]string{
		"ns": ns, "served_digest": hex.EncodeToString(h.Sum(nil)), "entries": strconv.Itoa(len(ids)),
		"untrusted": strconv.Itoa(len(served.Untrusted)), "withheld": strconv.Itoa(served.Withheld), "call": c.Call}}
	if err := s.o.Events.Emit(ctx, e); err != nil {
		return fmt.Errorf("the read could not be recorded, so nothing is served: %w", err)
	}
	return nil
}
