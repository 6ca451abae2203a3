package mcptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// TSClientOptions configures one run of the TypeScript SDK client.
type TSClientOptions struct {
	// Headers are extra HTTP headers on every request (e.g. Warden-Grant).
	Headers map[string]string
	// CertFile and KeyFile are a PEM client certificate chain and its key,
	// presented for mTLS; both or neither.
	CertFile, KeyFile string
	// CAFile is a PEM bundle that verifies the server's certificate.
	CAFile string
	// TimeoutMS is the SDK's per-request timeout; zero means 30 s.
	TimeoutMS int
}

// TSTool is one tool as the TypeScript client listed it.
type TSTool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
	Meta         json.RawMessage `json:"_meta,omitempty"`
}

// TSContent is one content block of a tool result.
type TSContent struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

// TSCallResult is a tools/call result as the TypeScript client received it.
type TSCallResult struct {
	Content           []TSContent     `json:"content"`
	IsError           bool            `json:"isError,omitempty"`
	StructuredContent json.RawMessage `json:"structuredContent,omitempty"`
	Meta              json.RawMessage `json:"_meta,omitempty"`
}

// Text joins the text content blocks.
func (r *TSCallResult) Text() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range r.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// TSCallError is a JSON-RPC error that answered tools/call.
type TSCallError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// TSClientResult is what client.mjs printed.
type TSClientResult struct {
	ProtocolVersion string          `json:"protocolVersion"`
	SessionID       string          `json:"sessionId,omitempty"`
	ServerInfo      json.RawMessage `json:"serverInfo,omitempty"`
	Tools           []TSTool        `json:"tools"`
	// Call is set when a tool was called and answered with a result
	// (including a result with isError).
	Call *TSCallResult `json:"call,omitempty"`
	// CallError is set when tools/call was answered with a JSON-RPC error.
	CallError *TSCallError `json:"callError,omitempty"`
	// Error is the transport failure reported with a non-zero exit status.
	Error string `json:"error,omitempty"`
	// HTTPStatus is the HTTP status of a failed request, when there was one.
	HTTPStatus int `json:"httpStatus,omitempty"`
}

// ToolNames lists the names of the listed tools, in order.
func (r *TSClientResult) ToolNames() []string {
	names := make([]string, len(r.Tools))
	for i, t := range r.Tools {
		names[i] = t.Name
	}
	return names
}

// ErrTSTransport is wrapped by RunTSClient's error when the client exited
// non-zero after a transport failure (connection, TLS, HTTP status, or a
// failing initialize or tools/list); the result still carries its message.
var ErrTSTransport = errors.New("TypeScript MCP client: transport failure")

// RunTSClient runs testdata/npm/client.mjs against the streamable HTTP MCP
// endpoint url: connect, list every tool, and, when tool is not empty, call
// it with args (a JSON object; nil means {}). A tool result with isError and
// a JSON-RPC error for the call are results, not errors; a transport failure
// returns the result with its Error set and an error wrapping ErrTSTransport.
func (m *Modules) RunTSClient(ctx context.Context, url, tool string, args json.RawMessage, opts TSClientOptions) (*TSClientResult, error) {
	argv := []string{m.ClientScript(), url}
	if tool != "" {
		if args == nil {
			args = json.RawMessage("{}")
		}
		argv = append(argv, tool, string(args))
	}
	cmd := exec.CommandContext(ctx, m.Node, argv...)
	cmd.Dir = m.Dir
	env := os.Environ()
	if len(opts.Headers) > 0 {
		h, err := json.Marshal(opts.Headers)
		if err != nil {
			return nil, fmt.Errorf("encoding headers: %w", err)
		}
		env = append(env, "MCP_CLIENT_HEADERS="+string(h))
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("TSClientOptions: CertFile and KeyFile go together")
	}
	if opts.CertFile != "" {
		env = append(env, "MCP_CLIENT_CERT="+opts.CertFile, "MCP_CLIENT_KEY="+opts.KeyFile)
	}
	if opts.CAFile != "" {
		env = append(env, "MCP_CLIENT_CA="+opts.CAFile)
	}
	if opts.TimeoutMS > 0 {
		env = append(env, fmt.Sprintf("MCP_CLIENT_TIMEOUT_MS=%d", opts.TimeoutMS))
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	var res TSClientResult
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:] // the result is the last line
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return nil, fmt.Errorf("TypeScript MCP client (%v): output %q is not its JSON result: %w; stderr: %s",
			runErr, stdout.String(), err, stderr.String())
	}
	if runErr != nil {
		var ee *exec.ExitError
		if errors.As(runErr, &ee) && ee.ExitCode() == 1 {
			return &res, fmt.Errorf("%w: %s", ErrTSTransport, res.Error)
		}
		return &res, fmt.Errorf("TypeScript MCP client: %w: %s; stderr: %s", runErr, res.Error, stderr.String())
	}
	return &res, nil
}
