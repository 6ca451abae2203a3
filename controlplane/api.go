package controlplane

import (
	"time"

	"github.com/warden-run/warden/identity"
)

// The JSON bodies of the /v1 API. docs/openapi.yaml describes the same
// shapes; a test keeps the two in step.

// ErrorBody is every error response: a stable code and a message for humans.
type ErrorBody struct {
	Error APIError `json:"error"`
}

// APIError is the error inside ErrorBody.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return e.Message + " (" + e.Code + ")" }

// AgentRequest registers an agent.
type AgentRequest struct {
	Name       string            `json:"name"`
	Owner      string            `json:"owner"`
	Model      string            `json:"model"`
	CodeDigest string            `json:"code_digest,omitempty"`
	Tier       string            `json:"tier,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Agent is a registered agent as the API shows it.
type Agent struct {
	SPIFFEID      string               `json:"spiffe_id"`
	Name          string               `json:"name"`
	Owner         string               `json:"owner"`
	Model         string               `json:"model"`
	CodeDigest    string               `json:"code_digest,omitempty"`
	Tier          string               `json:"tier"`
	Labels        map[string]string    `json:"labels,omitempty"`
	Status        string               `json:"status"`
	Enrolled      bool                 `json:"enrolled"`
	KeyThumbprint string               `json:"key_thumbprint,omitempty"`
	RegisteredBy  string               `json:"registered_by"`
	CreatedAt     time.Time            `json:"created_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
	Attestation   identity.Attestation `json:"attestation"`
}

func agentView(r *identity.Record) Agent {
	return Agent{
		SPIFFEID: r.ID.String(), Name: r.Name, Owner: r.Owner, Model: r.Model, CodeDigest: r.CodeDigest,
		Tier: r.Tier.String(), Labels: r.Labels, Status: string(r.Status), Enrolled: r.KeyThumbprint != "",
		KeyThumbprint: r.KeyThumbprint, RegisteredBy: r.RegisteredBy,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Attestation: r.Attestation(),
	}
}

// RegisterResponse answers a registration with the agent's one-time join token.
type RegisterResponse struct {
	Agent              Agent     `json:"agent"`
	JoinToken          string    `json:"join_token"`
	JoinTokenExpiresAt time.Time `json:"join_token_expires_at"`
}

// JoinTokenResponse carries a new join token.
type JoinTokenResponse struct {
	SPIFFEID  string    `json:"spiffe_id"`
	JoinToken string    `json:"join_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AgentList is the list of agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// X509SVIDRequest asks for an X.509-SVID: with a join token for the first one
// (no client certificate), or over mTLS with the current SVID to renew.
type X509SVIDRequest struct {
	JoinToken string `json:"join_token,omitempty"`
	CSR       string `json:"csr"` // PEM "CERTIFICATE REQUEST"
}

// X509SVIDResponse carries an issued X.509-SVID.
type X509SVIDResponse struct {
	SPIFFEID  string    `json:"spiffe_id"`
	CertChain string    `json:"cert_chain"` // PEM: leaf, then intermediate
	Bundle    string    `json:"bundle"`     // PEM: trust roots
	ExpiresAt time.Time `json:"expires_at"`
}

// JWTSVIDRequest asks for a JWT-SVID.
type JWTSVIDRequest struct {
	Audience []string `json:"audience"`
	TTL      string   `json:"ttl,omitempty"` // Go duration, e.g. "5m"
}

// JWTSVIDResponse carries a JWT-SVID.
type JWTSVIDResponse struct {
	SPIFFEID  string    `json:"spiffe_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// VerifyRequest asks the control plane to verify an SVID: a JWT-SVID with
// the audience it must carry, or an X.509-SVID chain.
type VerifyRequest struct {
	JWTSVID   string `json:"jwt_svid,omitempty"`
	Audience  string `json:"audience,omitempty"`
	X509Chain string `json:"x509_chain,omitempty"` // PEM, leaf first
}

// VerifyResponse describes a verified identity.
type VerifyResponse struct {
	SPIFFEID      string               `json:"spiffe_id"`
	Role          string               `json:"role"`
	Name          string               `json:"name"`
	Method        string               `json:"method"`
	KeyThumbprint string               `json:"key_thumbprint,omitempty"`
	ExpiresAt     time.Time            `json:"expires_at"`
	Attestation   identity.Attestation `json:"attestation"`
}
