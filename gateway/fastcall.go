package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
)

// This file serves the commonest request, a plain tools/call in a session
// the SDK has already set up, in the HTTP handler's own goroutine.
//
// Why: the SDK's streamable HTTP server hands each request from the HTTP
// handler to the session's reader goroutine, runs it on a goroutine of its
// own and hands the response back to the HTTP handler to write. Measured
// inside the gateway at concurrency 1 (bench/gateway, echo through
// server-everything), those hand-offs took about 120 µs of the 385 µs a
// call spent in Warden, the upstream's round trip 177 µs and Warden's
// checks 40 µs. At concurrency 1 every hand-off can wait for a parked
// thread to wake.
//
// What stays the same: the call goes through the same pipeline (callTool)
// with the same session state, and what it returns is what the SDK would
// have returned, as one application/json body, which the streamable HTTP
// transport allows for any request and both SDK clients read. Anything
// else is left to the SDK, untouched: other methods and notifications,
// batches, calls that carry _meta (progress tokens, per-request protocol
// fields) or fields other than name and arguments, sessions whose
// initialize Warden did not see or that are not yet initialised, protocol
// versions this path was not written against, and requests the SDK would
// refuse.

// fastVersions are the protocol versions whose tools/call the fast path
// serves: the SDK handles those calls the way serveFastCall does (later
// versions add multi-round-trip results and per-request metadata).
var fastVersions = []string{"2025-03-26", "2025-06-18", "2025-11-25"}

// serveFastCall serves r if it is a plain tools/call on the aggregate
// endpoint and reports whether it did. When it did not, r's body is as it
// was for the SDK to read. A notifications/cancelled for a call this path
// is serving cancels it (and still goes on to the SDK).
func (g *Gateway) serveFastCall(w http.ResponseWriter, r *http.Request, sid string) bool {
	if r.Method != http.MethodPost || r.URL.Path != "/mcp" || !fastHeaders(r) {
		return false
	}
	st := g.sessions.lookup(sid)
	if st == nil || !st.aggregate.Load() {
		return false
	}
	if ip := st.ss.InitializeParams(); ip == nil || !slices.Contains(fastVersions, ip.ProtocolVersion) {
		return false
	}
	body, ok := g.peekBody(r)
	if !ok {
		return false
	}
	req, ok := plainRequest(body)
	if !ok {
		return false
	}
	switch req.Method {
	case "notifications/cancelled":
		st.cancelFast(req.Params)
		return false
	case "tools/call":
	default:
		return false
	}
	if !req.ID.IsValid() {
		return false
	}
	name, args, ok := plainCallParams(req.Params)
	if !ok || !g.servedOnAggregate(name) {
		return false
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := st.trackFast(req.ID, cancel)
	defer done()
	growStack(0) // see stack.go
	call := &mcp.CallToolRequest{
		Session: st.ss,
		Params:  &mcp.CallToolParamsRaw{Name: name, Arguments: args},
		Extra:   &mcp.RequestExtra{Header: r.Header},
	}
	res, err := g.callTool(ctx, call, name)
	if err == nil && res == nil {
		err = errors.New("the pipeline returned no result")
	}
	resp := &jsonrpc.Response{ID: req.ID}
	if err == nil {
		if res.Content == nil { // as the SDK does: "content": [], not null
			res.Content = []mcp.Content{}
		}
		resp.Result, err = json.Marshal(res)
	}
	if err != nil {
		resp.Result, resp.Error = nil, wireError(err)
	}
	data, err := jsonrpc.EncodeMessage(resp)
	if err != nil {
		g.log.Error("encoding a tools/call response", "err", err)
		data, _ = jsonrpc.EncodeMessage(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "encoding the result failed"}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return true
}

// wireError is err as the SDK sends a handler's error: its own code when
// it is (or wraps) a JSON-RPC error, else code 0 with the message.
func wireError(err error) *jsonrpc.Error {
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		if je == err {
			return je
		}
		return &jsonrpc.Error{Code: je.Code, Message: err.Error()}
	}
	return &jsonrpc.Error{Message: err.Error()}
}

// fastHeaders reports whether the SDK would accept r's headers: JSON
// content, both response types accepted, a protocol version header absent
// or one the fast path serves, and (on a loopback listener) a loopback
// Host, the SDK's DNS-rebinding check.
func fastHeaders(r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return false
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if !strings.Contains(accept, "application/json") || !strings.Contains(accept, "text/event-stream") {
		return false
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(fastVersions, v) {
		return false
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isLoopback(la.String()) && !isLoopback(r.Host) {
		return false
	}
	return true
}

// isLoopback reports whether a host or host:port names this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// peekBody reads r's body, up to the configured message limit, and puts
// it back for whoever reads it next. It reports false for a body over the
// limit or one that could not be read; the SDK then answers it.
func (g *Gateway) peekBody(r *http.Request) ([]byte, bool) {
	limit := g.cfg.MaxMessageBytes
	if limit <= 0 {
		limit = config.DefaultMaxMessageBytes
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	return body, err == nil && int64(len(body)) <= limit
}

// plainRequest decodes body if it is one JSON-RPC request (not a batch),
// as the SDK would.
func plainRequest(body []byte) (*jsonrpc.Request, bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return nil, false
	}
	m, err := decodeMessage(body)
	if err != nil {
		return nil, false
	}
	req, ok := m.(*jsonrpc.Request)
	return req, ok
}

// plainCallParams returns the name and arguments of tools/call params
// that hold nothing else (no _meta), the arguments absent or an object.
func plainCallParams(params json.RawMessage) (name string, args json.RawMessage, ok bool) {
	if len(params) == 0 || params[0] != '{' {
		return "", nil, false
	}
	haveName := false
	err := eachMember(params, 0, 2, func(key, v []byte) error {
		switch string(key) {
		case "name":
			if v[0] != '"' {
				return errNotPlain
			}
			s, err := decodeString(v)
			name, haveName = s, true
			return err
		case "arguments":
			if v[0] != '{' {
				return errNotPlain
			}
			args = json.RawMessage(v)
			return nil
		}
		return errNotPlain
	})
	return name, args, err == nil && haveName
}

var errNotPlain = errors.New("not a plain tools/call")

// trackFast records a call the fast path is serving, so that the client's
// notifications/cancelled can reach it; the returned function forgets it.
func (st *session) trackFast(id jsonrpc.ID, cancel context.CancelFunc) func() {
	st.mu.Lock()
	if st.fast == nil {
		st.fast = map[jsonrpc.ID]context.CancelFunc{}
	}
	st.fast[id] = cancel
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		delete(st.fast, id)
		st.mu.Unlock()
	}
}

// cancelFast cancels the fast-path call a notifications/cancelled names.
func (st *session) cancelFast(params json.RawMessage) {
	var p struct {
		RequestID any `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil {
		return
	}
	id, err := jsonrpc.MakeID(p.RequestID)
	if err != nil {
		return
	}
	st.mu.Lock()
	cancel := st.fast[id]
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
