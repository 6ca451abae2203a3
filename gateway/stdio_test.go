package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/internal/demotools"
)

// pipeConn is a stdioConn whose server side the test writes and reads.
func pipeConn(t testing.TB, max int) (c *stdioConn, toClient io.WriteCloser, fromClient io.ReadCloser) {
	t.Helper()
	cr, sw, err := os.Pipe() // server writes, client reads
	if err != nil {
		t.Fatal(err)
	}
	sr, cw, err := os.Pipe() // client writes, server reads
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&stdioTransport{r: cr, w: cw, max: max}).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); sw.Close(); sr.Close() })
	return conn.(*stdioConn), sw, sr
}

func TestStdioConnRead(t *testing.T) {
	resp := `{"jsonrpc":"2.0","id":1,"result":{"ok":true}}`
	for _, tc := range []struct {
		name    string
		sent    string
		max     int
		wantIDs []int64 // ids of the responses read, in order
		wantErr string
	}{
		{name: "one message", sent: resp + "\n", wantIDs: []int64{1}},
		{name: "CRLF and blank lines", sent: "\n\r\n" + resp + "\r\n", wantIDs: []int64{1}},
		{name: "batch from an older server", sent: `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]` + "\n", wantIDs: []int64{1, 2}},
		{name: "message longer than the reader's buffer", sent: `{"jsonrpc":"2.0","id":7,"result":{"text":"` + strings.Repeat("x", 200<<10) + `"}}` + "\n", max: 1 << 20, wantIDs: []int64{7}},
		{name: "over the limit", sent: `{"jsonrpc":"2.0","id":7,"result":{"text":"` + strings.Repeat("x", 200<<10) + `"}}` + "\n", max: 100 << 10, wantErr: "over the 102400-byte limit"},
		{name: "not JSON", sent: "hello\n", wantErr: "not one JSON value"},
		{name: "trailing data", sent: resp + ` {"more":1}` + "\n", wantErr: "not one JSON value"},
		{name: "empty batch", sent: "[]\n", wantErr: "empty batch"},
		{name: "not a JSON-RPC message", sent: `{"hello":"world"}` + "\n", wantErr: "reading from the upstream server"},
		{name: "cut short by exit", sent: `{"jsonrpc":"2.0","id":1`, wantErr: io.ErrUnexpectedEOF.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			c, w, _ := pipeConn(t, max)
			go func() { _, _ = io.WriteString(w, tc.sent); w.Close() }()
			var ids []int64
			var err error
			for {
				var m jsonrpc.Message
				if m, err = c.Read(context.Background()); err != nil {
					break
				}
				r, ok := m.(*jsonrpc.Response)
				if !ok {
					t.Fatalf("read %T, want a response", m)
				}
				ids = append(ids, r.ID.Raw().(int64))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the messages: %v, want EOF", err)
			}
			if len(ids) != len(tc.wantIDs) {
				t.Fatalf("ids = %v, want %v", ids, tc.wantIDs)
			}
			for i := range ids {
				if ids[i] != tc.wantIDs[i] {
					t.Fatalf("ids = %v, want %v", ids, tc.wantIDs)
				}
			}
		})
	}
}

func TestStdioConnCloseUnblocksRead(t *testing.T) {
	c, _, _ := pipeConn(t, 1<<20)
	done := make(chan error, 1)
	go func() { _, err := c.Read(context.Background()); done <- err }()
	time.Sleep(10 * time.Millisecond) // let Read block
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read returned a message after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := c.Close(); err != nil { // Close may be called again
		t.Fatal(err)
	}
}

// Concurrent writes arrive as whole lines, one message each.
func TestStdioConnConcurrentWrites(t *testing.T) {
	c, _, r := pipeConn(t, 1<<20)
	const n = 64
	big := strings.Repeat("y", 100<<10) // larger than a pipe's buffer
	lines := make(chan []string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		lines <- strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, err := jsonrpc.MakeID(fmt.Sprint("r", i))
			if err != nil {
				t.Error(err)
				return
			}
			req := &jsonrpc.Request{ID: id, Method: "tools/call", Params: json.RawMessage(`{"name":"echo","arguments":{"text":"` + big + `"}}`)}
			if err := c.Write(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c.w.Close()
	got := <-lines
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for _, l := range got {
		if _, err := jsonrpc.DecodeMessage([]byte(l)); err != nil {
			t.Fatalf("a line is not one message: %v", err)
		}
	}
}

func FuzzStdioDecodeLine(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"result":{}}`, `[{"jsonrpc":"2.0","method":"x"}]`, `[]`, `{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"m"}}`, `[1,2]`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		msgs, err := decodeLine(line)
		if err == nil && len(msgs) == 0 {
			t.Fatal("no error and no message")
		}
	})
}

// BenchmarkStdioTransport is one tool call from an SDK client to a demo
// server over real pipes, through the SDK's IOTransport and through the
// gateway's stdioTransport, side by side:
// go test -run '^$' -bench StdioTransport -benchmem ./gateway
func BenchmarkStdioTransport(b *testing.B) {
	for _, tc := range []struct {
		name string
		tr   func(r io.ReadCloser, w io.WriteCloser) mcp.Transport
	}{
		{"sdk", func(r io.ReadCloser, w io.WriteCloser) mcp.Transport { return &mcp.IOTransport{Reader: r, Writer: w} }},
		{"warden", func(r io.ReadCloser, w io.WriteCloser) mcp.Transport {
			return &stdioTransport{r: r, w: w, max: mcp.DefaultMaxLineLength}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			cr, sw, _ := os.Pipe()
			sr, cw, _ := os.Pipe()
			srv, err := demotools.New("files")
			if err != nil {
				b.Fatal(err)
			}
			ss, err := srv.Connect(ctx, &mcp.IOTransport{Reader: sr, Writer: sw}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ss.Close()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx, tc.tr(cr, cw), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			p := &mcp.CallToolParams{Name: "read_file", Arguments: json.RawMessage(`{"path": "/finance/invoices/INV-42.txt"}`)}
			b.ReportAllocs()
			for b.Loop() {
				if r, err := cs.CallTool(ctx, p); err != nil || r.IsError {
					b.Fatalf("%v %+v", err, r)
				}
			}
		})
	}
}
