// Package bridge is `warden mcp connect`: a stdio-to-streamable-HTTP bridge
// for MCP clients that can only launch stdio servers (Claude Desktop, Claude
// Code, Cursor). It carries newline-delimited JSON-RPC from stdin to the
// gateway and the gateway's messages back to stdout, presenting the agent's
// X.509-SVID over mTLS and the current task grant in a header.
//
// It holds no grant checking, policy or audit logic: the agent's side is
// untrusted, and every decision is the gateway's. It does not confine the
// agent either: an agent that can run code on its own machine is beyond any
// gateway's reach.
package bridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxMessage bounds one JSON-RPC message in either direction.
const MaxMessage = 16 << 20

// Options configure a bridge.
type Options struct {
	URL    string       // the gateway's MCP endpoint
	Client *http.Client // with the agent's mTLS certificate
	// Grant returns the current grant (read afresh for every message, so a
	// new task's grant is picked up without restarting the client).
	Grant func() (string, error)
	Log   *slog.Logger
}

// Bridge relays one MCP session.
type Bridge struct {
	o   Options
	out *json.Encoder
	wmu sync.Mutex

	mu        sync.Mutex
	session   string
	version   string
	initID    json.RawMessage
	streaming bool
}

// Run relays messages between in/out and the gateway until in ends or ctx
// is done; then it ends the session at the gateway.
func Run(ctx context.Context, in io.Reader, out io.Writer, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{o: o, out: json.NewEncoder(out)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), MaxMessage)
	var wg, stream sync.WaitGroup
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		msg := append(json.RawMessage(nil), line...)
		var head struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.Unmarshal(msg, &head); err != nil {
			b.writeError(nil, -32700, "parse error: "+err.Error())
			continue
		}
		if head.Method == "initialize" {
			b.mu.Lock()
			b.initID = head.ID
			b.mu.Unlock()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.post(ctx, msg, head.ID); err != nil {
				o.Log.Error("relaying a message to the gateway failed", "method", head.Method, "err", err)
				if len(head.ID) > 0 && head.Method != "" {
					b.writeError(head.ID, -32000, "Warden gateway: "+err.Error())
				}
			}
		}()
		if head.Method == "notifications/initialized" {
			b.startStream(ctx, &stream)
		}
	}
	err := sc.Err()
	wg.Wait() // answers to what the client sent
	cancel()
	stream.Wait()
	b.end()
	if err != nil {
		return fmt.Errorf("reading from the MCP client: %w", err)
	}
	return nil
}

// post sends one message and relays whatever the gateway answers.
func (b *Bridge) post(ctx context.Context, msg json.RawMessage, id json.RawMessage) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.o.URL, bytes.NewReader(msg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if err := b.headers(req); err != nil {
		return err
	}
	resp, err := b.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		b.mu.Lock()
		if b.session == "" {
			b.session = sid
		}
		b.mu.Unlock()
	}
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("gateway answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return b.relay(resp)
}

func (b *Bridge) headers(req *http.Request) error {
	if b.o.Grant != nil {
		g, err := b.o.Grant()
		if err != nil {
			return fmt.Errorf("reading the grant: %w", err)
		}
		if g != "" {
			req.Header.Set("Warden-Grant", g)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.session != "" {
		req.Header.Set("Mcp-Session-Id", b.session)
	}
	if b.version != "" {
		req.Header.Set("Mcp-Protocol-Version", b.version)
	}
	return nil
}

// relay writes the messages of a response (one JSON body or an SSE stream)
// to the client.
func (b *Bridge) relay(resp *http.Response) error {
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		return b.relaySSE(resp.Body)
	case strings.HasPrefix(ct, "application/json"):
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessage+1))
		if err != nil {
			return err
		}
		if len(body) > MaxMessage {
			return errors.New("message from the gateway is too large")
		}
		if len(bytes.TrimSpace(body)) > 0 {
			b.write(body)
		}
	}
	return nil
}

func (b *Bridge) relaySSE(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxMessage)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() > 0 {
				b.write(append([]byte(nil), data.Bytes()...))
				data.Reset()
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
		}
	}
	if data.Len() > 0 {
		b.write(data.Bytes())
	}
	return sc.Err()
}

// write sends one message to the client, noting the protocol version when
// it is the initialize result.
func (b *Bridge) write(msg []byte) {
	var head struct {
		ID     json.RawMessage `json:"id"`
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if json.Unmarshal(msg, &head) != nil {
		b.o.Log.Error("the gateway sent a message that is not JSON; dropped")
		return
	}
	b.mu.Lock()
	if b.initID != nil && bytes.Equal(head.ID, b.initID) && head.Result.ProtocolVersion != "" {
		b.version = head.Result.ProtocolVersion
	}
	b.mu.Unlock()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_ = b.out.Encode(json.RawMessage(msg))
}

func (b *Bridge) writeError(id json.RawMessage, code int, msg string) {
	e := map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}}
	if id == nil {
		e["id"] = nil
	}
	raw, _ := json.Marshal(e)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_ = b.out.Encode(json.RawMessage(raw))
}

// startStream opens the stream on which the gateway sends what is not an
// answer to a request (list_changed notifications), reconnecting while the
// session lasts.
func (b *Bridge) startStream(ctx context.Context, wg *sync.WaitGroup) {
	b.mu.Lock()
	if b.streaming {
		b.mu.Unlock()
		return
	}
	b.streaming = true
	b.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		backoff := 500 * time.Millisecond
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.o.URL, nil)
			req.Header.Set("Accept", "text/event-stream")
			if err := b.headers(req); err != nil {
				return
			}
			resp, err := b.o.Client.Do(req)
			if err == nil {
				if resp.StatusCode == http.StatusMethodNotAllowed {
					resp.Body.Close()
					return // the gateway offers no such stream
				}
				if resp.StatusCode < 300 {
					backoff = 500 * time.Millisecond
					_ = b.relaySSE(resp.Body)
				}
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}()
}

// end tells the gateway the session is over.
func (b *Bridge) end() {
	b.mu.Lock()
	sid := b.session
	b.mu.Unlock()
	if sid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, b.o.URL, nil)
	_ = b.headers(req)
	if resp, err := b.o.Client.Do(req); err == nil {
		resp.Body.Close()
	}
}
