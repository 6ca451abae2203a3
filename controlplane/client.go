package controlplane

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/policy"
)

// Client calls the control-plane API. It verifies that the server presents
// an X.509-SVID of role controlplane in the expected trust domain, chained
// to the given roots, besides the usual hostname check.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client that authenticates with cred (mTLS) and trusts
// cred's bundle.
func NewClient(baseURL string, cred *credential.Credential) (*Client, error) {
	tc := tlsConfig(cred.Roots, cred.ID.TrustDomain())
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c := cred.TLSCertificate()
		return &c, nil
	}
	return newClient(baseURL, tc)
}

// NewAnonymousClient returns a client without a client certificate, for
// first enrolment with a join token and for reading the trust bundle.
func NewAnonymousClient(baseURL string, roots []*x509.Certificate, td spiffeid.TrustDomain) (*Client, error) {
	return newClient(baseURL, tlsConfig(roots, td))
}

func newClient(baseURL string, tc *tls.Config) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("control plane URL %q: want https://host:port", baseURL)
	}
	return &Client{
		base: strings.TrimRight(baseURL, "/"),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}},
	}, nil
}

func tlsConfig(roots []*x509.Certificate, td spiffeid.TrustDomain) *tls.Config {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		// After the standard chain and hostname checks, require that the
		// server is Warden's control plane, not any other workload that
		// holds an SVID from the same CA.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("control plane presented no certificate")
			}
			return identity.CheckPeer(cs.PeerCertificates[0], td, identity.RoleControlPlane)
		},
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends a JSON request and decodes a JSON answer; an error answer becomes
// an *APIError with the server's code and message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the control plane at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading control plane answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return &eb.Error
		}
		return fmt.Errorf("control plane answered %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding control plane answer: %w", err)
	}
	return nil
}

// RegisterAgent registers an agent and returns it with its join token.
func (c *Client) RegisterAgent(ctx context.Context, req AgentRequest) (*RegisterResponse, error) {
	var out RegisterResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/agents", req, &out)
}

// ListAgents lists agents, deleted ones included.
func (c *Client) ListAgents(ctx context.Context) ([]Agent, error) {
	var out AgentList
	return out.Agents, c.do(ctx, http.MethodGet, "/v1/agents", nil, &out)
}

// GetAgent shows one agent.
func (c *Client) GetAgent(ctx context.Context, name string) (*Agent, error) {
	var out Agent
	return &out, c.do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(name), nil, &out)
}

// DisableAgent disables an agent: its SVIDs fail verification from the next
// request on.
func (c *Client) DisableAgent(ctx context.Context, name string) (*Agent, error) {
	var out Agent
	return &out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/disable", nil, &out)
}

// EnableAgent re-enables a disabled agent.
func (c *Client) EnableAgent(ctx context.Context, name string) (*Agent, error) {
	var out Agent
	return &out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/enable", nil, &out)
}

// DeleteAgent deletes an agent for good; its name is never reused.
func (c *Client) DeleteAgent(ctx context.Context, name string) (*Agent, error) {
	var out Agent
	return &out, c.do(ctx, http.MethodDelete, "/v1/agents/"+url.PathEscape(name), nil, &out)
}

// NewJoinToken issues a fresh join token for an agent.
func (c *Client) NewJoinToken(ctx context.Context, name string) (*JoinTokenResponse, error) {
	var out JoinTokenResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/join-token", nil, &out)
}

// Bundle fetches the SPIFFE trust bundle document.
func (c *Client) Bundle(ctx context.Context) ([]byte, error) {
	var out []byte
	return out, c.do(ctx, http.MethodGet, "/v1/bundle", nil, &out)
}

// X509SVID requests an X.509-SVID with the SPIFFE ID want for key: with
// joinToken for the first one, or (joinToken empty, client built with
// NewClient) to renew. Naming the ID in the CSR makes the control plane
// refuse, without using up the token, a token issued for another identity.
func (c *Client) X509SVID(ctx context.Context, joinToken string, key crypto.Signer, want spiffeid.ID) ([]*x509.Certificate, []*x509.Certificate, error) {
	u, err := url.Parse(want.String())
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate signing request: %w", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	var out X509SVIDResponse
	if err := c.do(ctx, http.MethodPost, "/v1/svid/x509", X509SVIDRequest{JoinToken: joinToken, CSR: string(csr)}, &out); err != nil {
		return nil, nil, err
	}
	chain, err := identity.ParseCerts([]byte(out.CertChain))
	if err != nil {
		return nil, nil, fmt.Errorf("control plane returned a bad certificate chain: %w", err)
	}
	roots, err := identity.ParseCerts([]byte(out.Bundle))
	if err != nil {
		return nil, nil, fmt.Errorf("control plane returned a bad bundle: %w", err)
	}
	return chain, roots, nil
}

// JWTSVID mints a JWT-SVID for the given audiences (ttl 0: the default).
func (c *Client) JWTSVID(ctx context.Context, audience []string, ttl time.Duration) (*JWTSVIDResponse, error) {
	req := JWTSVIDRequest{Audience: audience}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	var out JWTSVIDResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/svid/jwt", req, &out)
}

// Verify asks the control plane to verify an SVID.
func (c *Client) Verify(ctx context.Context, req VerifyRequest) (*VerifyResponse, error) {
	var out VerifyResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/svid/verify", req, &out)
}

// OpenTask opens a task and returns it with its grant.
func (c *Client) OpenTask(ctx context.Context, req TaskRequest) (*TaskResponse, error) {
	var out TaskResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/tasks", req, &out)
}

// ListTasks lists tasks: all (operators) or the caller's own (agents);
// agent filters by agent name, open to open tasks.
func (c *Client) ListTasks(ctx context.Context, agent string, open bool) ([]grant.Task, error) {
	q := url.Values{}
	if agent != "" {
		q.Set("agent", agent)
	}
	if open {
		q.Set("open", "true")
	}
	var out TaskList
	return out.Tasks, c.do(ctx, http.MethodGet, "/v1/tasks?"+q.Encode(), nil, &out)
}

// GetTask shows a task.
func (c *Client) GetTask(ctx context.Context, id string) (*grant.Task, error) {
	var out grant.Task
	return &out, c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil, &out)
}

// CompleteTask completes a task: its grant and every grant delegated from it
// stop allowing anything.
func (c *Client) CompleteTask(ctx context.Context, id string) (*grant.Task, error) {
	var out grant.Task
	return &out, c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/complete", nil, &out)
}

// RevokeTask revokes a task and its delegated descendants.
func (c *Client) RevokeTask(ctx context.Context, id, reason string) (*grant.Task, error) {
	var out grant.Task
	return &out, c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/revoke", RevokeRequest{Reason: reason}, &out)
}

// DelegateTask hands part of task id to another agent.
func (c *Client) DelegateTask(ctx context.Context, id string, req DelegateRequest) (*TaskResponse, error) {
	var out TaskResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/delegate", req, &out)
}

// Authorize asks for a decision on one call.
func (c *Client) Authorize(ctx context.Context, req AuthorizeRequest) (*authz.Decision, error) {
	var out authz.Decision
	return &out, c.do(ctx, http.MethodPost, "/v1/authorize", req, &out)
}

// ApplyPolicy stores a policy file as the new active version.
func (c *Client) ApplyPolicy(ctx context.Context, req PolicyRequest) (*policy.Version, error) {
	var out policy.Version
	return &out, c.do(ctx, http.MethodPost, "/v1/policies", req, &out)
}

// ListPolicies lists the stored policy versions, newest first.
func (c *Client) ListPolicies(ctx context.Context) ([]policy.Version, error) {
	var out PolicyList
	return out.Versions, c.do(ctx, http.MethodGet, "/v1/policies", nil, &out)
}
