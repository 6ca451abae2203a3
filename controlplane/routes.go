package controlplane

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/tier"
)

var (
	operators   = []identity.Role{identity.RoleAdmin}
	agents      = []identity.Role{identity.RoleAgent}
	enforcers   = []identity.Role{identity.RoleGateway, identity.RoleAdmin}
	selfRenewal = []identity.Role{identity.RoleAgent, identity.RoleGateway, identity.RoleAdmin}
)

// routeTable lists every /v1 endpoint with the roles it accepts. A route with
// no roles is public; docs/openapi.yaml documents each (a test checks).
func (s *Server) routeTable() []route {
	return append([]route{
		{pattern: "GET /v1/bundle", summary: "SPIFFE trust bundle (JWKS)", h: s.getBundle},
		{pattern: "POST /v1/agents", roles: operators, summary: "register an agent", h: s.registerAgent},
		{pattern: "GET /v1/agents", roles: operators, summary: "list agents", h: s.listAgents},
		{pattern: "GET /v1/agents/{name}", roles: operators, summary: "show an agent", h: s.getAgent},
		{pattern: "POST /v1/agents/{name}/disable", roles: operators, summary: "disable an agent", h: s.setStatus(identity.StatusDisabled)},
		{pattern: "POST /v1/agents/{name}/enable", roles: operators, summary: "enable an agent", h: s.setStatus(identity.StatusActive)},
		{pattern: "DELETE /v1/agents/{name}", roles: operators, summary: "delete an agent", h: s.setStatus(identity.StatusDeleted)},
		{pattern: "POST /v1/agents/{name}/join-token", roles: operators, summary: "issue a new join token", h: s.newJoinToken},
		{pattern: "POST /v1/svid/x509", roles: selfRenewal, optionalAuth: true, summary: "enrol (join token) or renew an X.509-SVID", h: s.x509SVID},
		{pattern: "POST /v1/svid/jwt", roles: agents, summary: "mint a JWT-SVID", h: s.jwtSVID},
		{pattern: "POST /v1/svid/verify", roles: enforcers, summary: "verify an SVID", h: s.verifySVID},
	}, append(append(s.taskRoutes(), s.memoryRoutes()...), s.approvalRoutes()...)...) // approvalRoutes: respond (issue 10)
}

func (s *Server) getBundle(w http.ResponseWriter, _ *http.Request, _ *identity.Caller) error {
	b, err := s.bundle.Marshal()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req AgentRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	sp := identity.Spec{Role: identity.RoleAgent, Name: req.Name, Owner: req.Owner, Model: req.Model,
		CodeDigest: req.CodeDigest, Labels: req.Labels}
	if req.Tier != "" {
		t, err := tier.Parse(req.Tier)
		if err != nil {
			return &APIError{Code: "invalid_input", Message: "tier: " + err.Error()}
		}
		sp.Tier = t
	}
	rec, tok, err := s.id.Register(r.Context(), c.ID.String(), sp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, RegisterResponse{Agent: agentView(rec), JoinToken: tok.Token, JoinTokenExpiresAt: tok.ExpiresAt.UTC()})
	return nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	recs, err := s.id.List(r.Context(), identity.RoleAgent)
	if err != nil {
		return err
	}
	out := AgentList{Agents: make([]Agent, 0, len(recs))}
	for i := range recs {
		out.Agents = append(out.Agents, agentView(&recs[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	rec, err := s.id.Get(r.Context(), identity.RoleAgent, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, agentView(rec))
	return nil
}

func (s *Server) setStatus(to identity.Status) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
		rec, err := s.id.SetStatus(r.Context(), c.ID.String(), identity.RoleAgent, r.PathValue("name"), to)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, agentView(rec))
		return nil
	}
}

func (s *Server) newJoinToken(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	tok, err := s.id.NewJoinToken(r.Context(), c.ID.String(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, JoinTokenResponse{SPIFFEID: tok.ID.String(), JoinToken: tok.Token, ExpiresAt: tok.ExpiresAt.UTC()})
	return nil
}

// x509SVID enrols (join token, no client certificate) or renews (client
// certificate, same key). A request carrying both is refused: which
// identity it speaks for would be ambiguous.
func (s *Server) x509SVID(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req X509SVIDRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var chain []*x509.Certificate
	var err error
	how := "renew"
	switch {
	case c != nil && req.JoinToken != "":
		return &APIError{Code: "bad_request", Message: "send either a join token (first enrolment) or a client certificate (renewal), not both"}
	case c != nil:
		chain, err = s.id.Renew(r.Context(), c, []byte(req.CSR))
	case req.JoinToken != "":
		how = "enrol"
		chain, err = s.id.Enroll(r.Context(), req.JoinToken, []byte(req.CSR))
	default:
		return &APIError{Code: "authentication_required", Message: "enrolment needs a join token; renewal needs the current X.509-SVID as client certificate"}
	}
	if err != nil {
		return err
	}
	s.m.issued.WithLabelValues("x509", how).Inc()
	writeJSON(w, http.StatusOK, X509SVIDResponse{
		SPIFFEID:  chain[0].URIs[0].String(),
		CertChain: string(identity.EncodeCerts(chain)),
		Bundle:    string(identity.EncodeCerts([]*x509.Certificate{s.id.CA().Root()})),
		ExpiresAt: chain[0].NotAfter.UTC(),
	})
	return nil
}

func (s *Server) jwtSVID(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req JWTSVIDRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return &APIError{Code: "invalid_input", Message: fmt.Sprintf("ttl %q: %v", req.TTL, err)}
		}
	}
	tok, exp, err := s.id.MintJWTSVID(r.Context(), c, req.Audience, ttl)
	if err != nil {
		return err
	}
	s.m.issued.WithLabelValues("jwt", "mint").Inc()
	writeJSON(w, http.StatusOK, JWTSVIDResponse{SPIFFEID: c.ID.String(), Token: tok, ExpiresAt: exp.UTC()})
	return nil
}

func (s *Server) verifySVID(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	var req VerifyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var c *identity.Caller
	var err error
	switch {
	case req.JWTSVID != "" && req.X509Chain != "":
		return &APIError{Code: "bad_request", Message: "give a JWT-SVID or an X.509 chain, not both"}
	case req.JWTSVID != "":
		if req.Audience == "" {
			return &APIError{Code: "invalid_input", Message: "audience: required to verify a JWT-SVID"}
		}
		c, err = s.verify.VerifyJWT(req.JWTSVID, req.Audience)
	case req.X509Chain != "":
		chain, perr := identity.ParseCerts([]byte(req.X509Chain))
		if perr != nil {
			return &APIError{Code: "invalid_input", Message: "x509_chain: " + perr.Error()}
		}
		c, err = s.verify.VerifyX509(chain)
	default:
		return &APIError{Code: "invalid_input", Message: "give jwt_svid (with audience) or x509_chain"}
	}
	if err != nil {
		s.m.verifyFailed.WithLabelValues(string(identity.CodeOf(err))).Inc()
		return err
	}
	writeJSON(w, http.StatusOK, VerifyResponse{SPIFFEID: c.ID.String(), Role: string(c.Role), Name: c.Name, Method: c.Method,
		KeyThumbprint: c.KeyThumbprint, ExpiresAt: c.ExpiresAt.UTC(), Attestation: c.Attestation()})
	return nil
}
