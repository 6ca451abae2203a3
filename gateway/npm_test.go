package gateway_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/mcptest"
)

func envMap(kv []string) map[string]string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

// npmUpstreams are the real MCP servers from npm, launched over stdio by the
// gateway.
func npmUpstreams(t *testing.T, root string) []config.Upstream {
	ecmd, eargs := mcptest.EverythingServer(t)
	fcmd, fargs := mcptest.FilesystemServer(t, root)
	mcmd, margs, menv := mcptest.MemoryServer(t)
	return []config.Upstream{
		{Name: "everything", Stdio: &config.StdioUpstream{Command: ecmd, Args: eargs},
			Tools: map[string][]string{"echo": {"reads"}, "get-sum": {"reads"}, "trigger-long-running-operation": {"reads"}}},
		{Name: "filesystem", Stdio: &config.StdioUpstream{Command: fcmd, Args: fargs},
			Tools: map[string][]string{"read_text_file": {"reads"}, "list_directory": {"reads"}, "write_file": {"writes"}}},
		{Name: "memory", Stdio: &config.StdioUpstream{Command: mcmd, Args: margs, Env: envMap(menv)}},
	}
}

const npmPolicy = `
@id("npm-servers")
permit (principal, action == Action::"call", resource)
when { resource.server == "everything" || resource.server == "filesystem" || resource.server == "memory" };
`

func TestRealNPMServersThroughTheGateway(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "notes.txt"), []byte("quarterly numbers"), 0o644)
	e := start(t, npmUpstreams(t, root), nil)
	if _, err := e.d.Policy.Apply(ctx, "npm.cedar", []byte(npmPolicy), policyMeta()); err != nil {
		t.Fatal(err)
	}
	a := e.agent(t, "a")
	scope := `[
		{"tool": "everything.echo"},
		{"tool": "everything.trigger-long-running-operation"},
		{"tool": "filesystem.read_text_file", "args": {"path": {"path_within": ["` + root + `"]}}},
		{"tool": "memory.*"}
	]`
	_, tok := e.grantFor(t, a, scope, 100)

	// The official Go SDK client.
	var progress atomic.Int32
	cs, err := e.clientWith(t, a, tok, &mcp.ClientOptions{ProgressNotificationHandler: func(contextT, *mcp.ProgressNotificationClientRequest) { progress.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	names := toolNames(t, cs)
	for _, want := range []string{"everything.echo", "filesystem.read_text_file", "memory.create_entities", "memory.read_graph"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	if slices.Contains(names, "everything.get-sum") || slices.Contains(names, "filesystem.write_file") {
		t.Errorf("tools/list shows tools outside the grant: %v", names)
	}
	if r := call(t, cs, "everything.echo", `{"message": "hello through Warden"}`); r.IsError || !strings.Contains(r.Content[0].(*mcp.TextContent).Text, "hello through Warden") {
		t.Fatalf("echo: %+v", r.Content)
	}
	if r := call(t, cs, "filesystem.read_text_file", `{"path": "`+filepath.Join(root, "notes.txt")+`"}`); r.IsError || !strings.Contains(r.Content[0].(*mcp.TextContent).Text, "quarterly") {
		t.Fatalf("read_text_file: %+v", r.Content)
	}
	if got := decision(t, call(t, cs, "filesystem.read_text_file", `{"path": "`+root+`/../../etc/passwd"}`)); got != "constraint_violated" {
		t.Fatalf("path escape: %q", got)
	}
	if got := decision(t, call(t, cs, "everything.get-sum", `{"a": 1, "b": 2}`)); got != "tool_not_granted" {
		t.Fatalf("ungranted tool: %q", got)
	}
	if r := call(t, cs, "memory.create_entities", `{"entities": [{"name": "Warden", "entityType": "project", "observations": ["zero trust"]}]}`); r.IsError {
		t.Fatalf("memory: %+v", r.Content)
	}
	// Progress notifications pass through, token rewritten both ways.
	params := &mcp.CallToolParams{Name: "everything.trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 3}}
	params.SetProgressToken("p-1")
	if r, err := cs.CallTool(ctx, params); err != nil || r.IsError {
		t.Fatalf("long-running operation: %v %+v", err, r)
	}
	if progress.Load() == 0 {
		t.Error("no progress notification reached the agent")
	}

	// The official TypeScript SDK client, over mTLS with the grant header.
	certFile, keyFile, caFile := e.writeCreds(t, a)
	res, err := mcptest.RunTSClient(t, e.url, "everything.echo", json.RawMessage(`{"message": "from TypeScript"}`),
		mcptest.TSClientOptions{Headers: map[string]string{gateway.HeaderGrant: tok}, CertFile: certFile, KeyFile: keyFile, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if res.Call == nil || !strings.Contains(string(mustJSON(res.Call)), "from TypeScript") {
		t.Fatalf("TypeScript client: %+v", res)
	}
	var tsNames []string
	for _, tool := range res.Tools {
		tsNames = append(tsNames, tool.Name)
	}
	if !slices.Contains(tsNames, "everything.echo") || slices.Contains(tsNames, "everything.get-sum") {
		t.Errorf("TypeScript client sees %v", tsNames)
	}
	denied, err := mcptest.RunTSClient(t, e.url, "everything.get-sum", json.RawMessage(`{"a": 1, "b": 2}`),
		mcptest.TSClientOptions{Headers: map[string]string{gateway.HeaderGrant: tok}, CertFile: certFile, KeyFile: keyFile, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if denied.Call == nil || !strings.Contains(string(mustJSON(denied.Call)), "tool_not_granted") {
		t.Fatalf("TypeScript client, ungranted tool: %+v", denied)
	}
	// Without a client certificate the TypeScript client is refused.
	anon, _ := mcptest.RunTSClient(t, e.url, "everything.echo", json.RawMessage(`{"message": "x"}`),
		mcptest.TSClientOptions{Headers: map[string]string{gateway.HeaderGrant: tok}, CAFile: caFile})
	if anon == nil || anon.HTTPStatus != 401 {
		t.Fatalf("anonymous TypeScript client: %+v", anon)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// writeCreds writes the agent's certificate chain, key and the CA root as
// PEM files (for the TypeScript client).
func (e *env) writeCreds(t *testing.T, a *agentCred) (string, string, string) {
	t.Helper()
	dir := t.TempDir()
	var chain []*x509.Certificate
	for _, der := range a.cert.Certificate {
		c, _ := x509.ParseCertificate(der)
		chain = append(chain, c)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(a.key)
	files := map[string][]byte{
		"cert.pem": identity.EncodeCerts(chain),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.pem":   identity.EncodeCerts(e.roots),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
}

// Resources and prompts are reads: a grant names them as the pseudo-tools
// server.read_resource (argument uri) and server.get_prompt (name, arguments).
func TestResourcesAndPromptsAreAuthorizedAsReads(t *testing.T) {
	e := start(t, npmUpstreams(t, t.TempDir()), nil)
	if _, err := e.d.Policy.Apply(ctx, "npm.cedar", []byte(npmPolicy+`
@id("reads")
permit (principal, action == Action::"read", resource);
@id("no-features-doc")
forbid (principal, action == Action::"read", resource == Resource::"demo://resource/static/document/features.md");
`), policyMeta()); err != nil {
		t.Fatal(err)
	}
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[
		{"tool": "everything.read_resource", "args": {"uri": {"pattern": "^demo://resource/static/document/"}}},
		{"tool": "everything.get_prompt", "args": {"name": {"enum": ["simple-prompt"]}}}
	]`, 50)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for r, err := range cs.Resources(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, r.URI)
	}
	if len(uris) == 0 || slices.Contains(uris, "demo://resource/static/document/features.md") {
		t.Fatalf("resources/list = %v (want the documents, without the forbidden one)", uris)
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://resource/static/document/architecture.md"})
	if err != nil || len(res.Contents) == 0 {
		t.Fatalf("reading an allowed resource: %v", err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://resource/static/document/features.md"}); err == nil || !strings.Contains(err.Error(), "policy_forbid") {
		t.Fatalf("reading a forbidden resource: %v", err)
	}
	var prompts []string
	for p, err := range cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, p.Name)
	}
	if !slices.Contains(prompts, "everything.simple-prompt") {
		t.Fatalf("prompts/list = %v", prompts)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "everything.simple-prompt"}); err != nil {
		t.Fatalf("allowed prompt: %v", err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "everything.args-prompt", Arguments: map[string]string{"city": "x", "state": "y"}}); err == nil || !strings.Contains(err.Error(), "constraint_violated") {
		t.Fatalf("prompt outside the grant: %v", err)
	}
}
