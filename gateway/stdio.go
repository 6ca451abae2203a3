package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioTransport speaks MCP's stdio transport (newline-delimited JSON-RPC)
// to an upstream server the gateway launched.
//
// Why not the SDK's IOTransport: it reads on a goroutine of its own and
// hands each message to the connection's reader over a channel, then
// parses each message twice (first as a batch, then as one message). Every
// upstream answer is on a call's critical path; reading in Read itself and
// parsing once takes a goroutine switch and a parse off each of them. The
// parse is decodeMessage's, not the SDK's DecodeMessage (see decode.go).
type stdioTransport struct {
	r   io.ReadCloser
	w   io.WriteCloser
	max int // the longest message accepted from the server, in bytes
}

func (t *stdioTransport) Connect(context.Context) (mcp.Connection, error) {
	return &stdioConn{rd: bufio.NewReaderSize(t.r, 64<<10), r: t.r, w: t.w, max: t.max}, nil
}

// stdioConn is one connection over the server's standard streams. The
// SDK calls Read from one goroutine, Write from many, Close from any.
type stdioConn struct {
	rd    *bufio.Reader
	r     io.ReadCloser
	queue []jsonrpc.Message // the rest of a batch, for Read

	wmu sync.Mutex
	w   io.WriteCloser

	max       int
	closeOnce sync.Once
	closeErr  error
}

// Read returns the next message. Close unblocks it: the read end of the
// pipe is closed under it.
func (c *stdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(c.queue) > 0 {
		m := c.queue[0]
		c.queue = c.queue[1:]
		return m, nil
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		msgs, err := decodeLine(line)
		if err != nil {
			return nil, fmt.Errorf("reading from the upstream server: %w", err)
		}
		c.queue = msgs[1:]
		return msgs[0], nil
	}
}

// readLine returns the next line, without its newline, in a slice of its
// own (decoded messages keep parts of it).
func (c *stdioConn) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := c.rd.ReadSlice('\n')
		if len(line)+len(chunk) > c.max {
			return nil, fmt.Errorf("the upstream server sent a message over the %d-byte limit", c.max)
		}
		switch {
		case err == nil: // appended to nil, the chunk is copied out of the reader's buffer
			return append(line, chunk[:len(chunk)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		case errors.Is(err, io.EOF) && len(line)+len(chunk) > 0:
			return nil, io.ErrUnexpectedEOF // a message cut short by the server's exit
		default:
			return nil, err
		}
	}
}

// decodeLine decodes one line: a message or, from servers on protocol
// versions before 2025-06-18, a batch of them. Messages of a batch are
// handed on one by one and answered one by one, which JSON-RPC peers
// accept. The line must be one valid JSON value before decodeMessage,
// which relies on it, looks at it.
func decodeLine(line []byte) ([]jsonrpc.Message, error) {
	if !json.Valid(line) {
		return nil, errors.New("a line is not one JSON value")
	}
	if line[0] != '[' {
		m, err := decodeMessage(line)
		if err != nil {
			return nil, err
		}
		return []jsonrpc.Message{m}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(line, &raws); err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, errors.New("an empty batch")
	}
	msgs := make([]jsonrpc.Message, len(raws))
	for i, raw := range raws {
		m, err := decodeMessage(raw)
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// Write writes msg as one line in one write, so that concurrent messages
// never interleave.
func (c *stdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encoding a message for the upstream server: %w", err)
	}
	data = append(data, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err = c.w.Write(data)
	return err
}

func (c *stdioConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = errors.Join(c.r.Close(), c.w.Close()) })
	return c.closeErr
}

func (c *stdioConn) SessionID() string { return "" }
