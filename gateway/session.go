package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/inspect"
)

// session is an agent's MCP session at the gateway.
type session struct {
	id    string
	owner string // the agent's SPIFFE ID
	ss    *mcp.ServerSession

	mu       sync.Mutex
	inflight map[*inflightCall]struct{}
	taint    []string         // ids of calls whose untrusted output the session ingested
	inspect  *inspect.Session // the same, with the content, for the flow rules
	findings []string         // kinds of inspection findings raised in the session
	own      map[string]*conn // per-session upstream processes, by upstream
	ended    bool
	fast     map[jsonrpc.ID]context.CancelFunc // calls the fast path is serving (fastcall.go)
	// aggregate is set when the aggregate endpoint's MCP layer passes this
	// session's initialize through Warden's middleware: the fast path
	// serves only those sessions.
	aggregate atomic.Bool
}

// upstreamConn returns this session's own connection to u, starting its
// process on first use; the process ends with the session.
func (st *session) upstreamConn(ctx context.Context, u *upstream) (*conn, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return nil, errors.New("session ended")
	}
	if c := st.own[u.cfg.Name]; c != nil {
		select {
		case <-c.done: // died: start a fresh one
			c.close()
		default:
			return c, nil
		}
	}
	c, err := u.connect(ctx)
	if err != nil {
		return nil, err
	}
	if st.own == nil {
		st.own = map[string]*conn{}
	}
	st.own[u.cfg.Name] = c
	return c, nil
}

// end closes the session's own upstream processes.
func (st *session) end() {
	st.mu.Lock()
	own := st.own
	st.own, st.ended = nil, true
	st.mu.Unlock()
	for _, c := range own {
		c.close()
	}
}

// inflightCall is a call being forwarded, cancellable by revocation.
type inflightCall struct {
	agent  string
	tasks  []string // the grant's task and its ancestors
	cancel context.CancelCauseFunc
}

// sessions tracks who owns each session and what is in flight, so that a
// revocation can cancel calls and a disabled agent's streams can be closed.
type sessions struct {
	mu     sync.Mutex
	owners map[string]string   // session id -> agent SPIFFE ID
	byID   map[string]*session // sessions seen by the MCP layer
}

func newSessions() *sessions {
	return &sessions{owners: map[string]string{}, byID: map[string]*session{}}
}

// claim records the agent that opened a session.
func (s *sessions) claim(id, agent string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.owners[id]; !ok {
		s.owners[id] = agent
	}
}

func (s *sessions) owner(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.owners[id]
	return o, ok
}

// lookup returns the state of the session with this id, if the MCP layer
// has passed a request of it to the pipeline.
func (s *sessions) lookup(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// get returns the state of an MCP session, creating it on first sight and
// forgetting it when the session ends.
func (s *sessions) get(ss *mcp.ServerSession, agent string) *session {
	id := ss.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.byID[id]; ok && st.ss == ss {
		return st
	}
	st := &session{id: id, owner: agent, ss: ss, inflight: map[*inflightCall]struct{}{}, inspect: inspect.NewSession(inspect.TaintLimits{})}
	s.byID[id] = st
	go func() {
		_ = ss.Wait()
		s.mu.Lock()
		if s.byID[id] == st {
			delete(s.byID, id)
			delete(s.owners, id)
		}
		s.mu.Unlock()
		st.end()
	}()
	return st
}

// track registers a call in flight; the returned function unregisters it.
func (st *session) track(c *inflightCall) func() {
	st.mu.Lock()
	st.inflight[c] = struct{}{}
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		delete(st.inflight, c)
		st.mu.Unlock()
	}
}

// cancelWhere cancels the in-flight calls matching match, with cause, and
// reports how many. When closeSession is set, sessions owned by agent are
// closed too (their streams end).
func (s *sessions) cancelWhere(match func(*inflightCall) bool, cause error, closeOwner string) int {
	s.mu.Lock()
	all := make([]*session, 0, len(s.byID))
	for _, st := range s.byID {
		all = append(all, st)
	}
	s.mu.Unlock()
	n := 0
	for _, st := range all {
		st.mu.Lock()
		for c := range st.inflight {
			if match(c) {
				c.cancel(cause)
				n++
			}
		}
		st.mu.Unlock()
		if closeOwner != "" && st.owner == closeOwner {
			_ = st.ss.Close()
		}
	}
	return n
}

func (s *sessions) closeAll() {
	s.mu.Lock()
	all := make([]*session, 0, len(s.byID))
	for _, st := range s.byID {
		all = append(all, st)
	}
	s.mu.Unlock()
	for _, st := range all {
		_ = st.ss.Close()
	}
}

// count returns the number of live sessions.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}
