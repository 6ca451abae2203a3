// Package controlplane owns Warden's control-plane API: the HTTPS server
// under /v1 with its health, readiness and metrics endpoints, the
// authentication of every caller by X.509-SVID, and the Go client of the
// same API.
//
// The API is itself zero-trust: every /v1 request except the public trust
// bundle and first enrolment needs a verified SVID of a role the route
// accepts, checked on every request (not once per connection), from
// localhost too. An agent or gateway identity is refused on operator routes.
// The control plane delegates every decision to the part that owns it
// (identity, later grants and policy); it holds no rules of its own.
package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/policy"
)

// maxBody bounds a request body; every /v1 request is small.
const maxBody = 1 << 20

// Loader loads persisted state the server must have before it is ready.
type Loader struct {
	Name string
	Load func(context.Context) error
}

// Options configure a Server.
type Options struct {
	Identity *identity.Service
	// Grants, Policy and Authz serve tasks, policies and /v1/authorize;
	// all three or none.
	Grants *grant.Service
	Policy *policy.Store
	Authz  *authz.Point
	// Approvals serves /v1/approvals (calls held for a human; respond,
	// issue 10); without it those routes answer approvals_not_configured.
	Approvals Approvals

	// Memory serves the /v1/memory routes (snapshots, rollback, release);
	// without it they answer memory_not_configured.
	Memory *memory.Store
	Bundle *spiffebundle.Bundle
	Events events.Sink
	Log    *slog.Logger
	// ServerNames and ServerIPs go into the server certificate besides
	// localhost, 127.0.0.1 and ::1.
	ServerNames []string
	ServerIPs   []net.IP
	// Loaders run at Serve before /readyz passes, after the identity
	// registry, the tasks and the policy, which are always loaded.
	Loaders []Loader
}

// Server is the control-plane API server.
type Server struct {
	id      *identity.Service
	grants  *grant.Service
	policy  *policy.Store
	authz   *authz.Point
	memory  *memory.Store
	verify  *identity.Verifier
	bundle  *spiffebundle.Bundle
	sink    events.Sink
	log     *slog.Logger
	loaders []Loader
	certs   *identity.CertSource
	ready   atomic.Bool
	handler http.Handler
	routes  []route
	m       *metrics

	approvals Approvals // respond (issue 10)
}

// New builds a server. It does not listen until Serve.
func New(o Options) (*Server, error) {
	if o.Identity == nil || o.Bundle == nil || o.Events == nil {
		return nil, errors.New("control plane needs an identity service, a trust bundle and an event sink")
	}
	if (o.Grants == nil) != (o.Policy == nil) || (o.Grants == nil) != (o.Authz == nil) {
		return nil, errors.New("control plane needs grants, policy and the decision point together")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		id: o.Identity, verify: o.Identity.Verifier(), bundle: o.Bundle, sink: o.Events, log: o.Log,
		grants: o.Grants, policy: o.Policy, authz: o.Authz, memory: o.Memory,
		loaders: []Loader{{Name: "identity registry", Load: o.Identity.Registry().Load}},
		certs: identity.NewCertSource(o.Identity.CA(), ControlPlaneID(o.Identity.CA().TrustDomain()),
			o.ServerNames, o.ServerIPs, serverCertTTL),
	}
	s.approvals = o.Approvals // respond (issue 10)
	if o.Grants != nil {
		s.loaders = append(s.loaders, Loader{Name: "tasks and revocations", Load: o.Grants.Load}, Loader{Name: "policy", Load: o.Policy.Load})
	}
	s.loaders = append(s.loaders, o.Loaders...)
	reg := prometheus.NewRegistry()
	s.m = newMetrics(reg)
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	metricsH := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.Handle("GET /metrics", s.guard(route{pattern: "GET /metrics", roles: []identity.Role{identity.RoleAdmin, identity.RoleGateway}},
		func(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
			metricsH.ServeHTTP(w, r)
			return nil
		}))
	for _, rt := range s.routes {
		if rt.needsGrants && s.grants == nil {
			continue
		}
		mux.Handle(rt.pattern, s.guard(rt, rt.h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	s.handler = mux
	return s, nil
}

// Handler returns the server's HTTP handler (for tests that bring their own
// TLS server).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the server's TLS configuration: a server certificate from
// Warden's CA, TLS 1.3, and client certificates requested but verified by
// the handler, so that a refused certificate gets a precise reason and an
// event rather than a bare handshake failure. The handshake still proves the
// client holds the certificate's key.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: s.certs.GetCertificate,
		ClientAuth:     tls.RequestClientCert,
	}
}

// Ready reports whether persisted state has been loaded.
func (s *Server) Ready() bool { return s.ready.Load() }

// Serve loads persisted state, then serves HTTPS on ln until ctx is done,
// then shuts down gracefully, letting requests in flight finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	go s.load(ctx)
	select {
	case err := <-errc:
		return fmt.Errorf("control plane stopped: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	s.log.Info("control plane shutting down; letting requests in flight finish")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutting down the control plane: %w", err)
	}
	s.log.Info("control plane stopped")
	return nil
}

// load runs the loaders, retrying each with backoff until it succeeds or ctx
// ends; only then does /readyz pass.
func (s *Server) load(ctx context.Context) {
	for _, l := range s.loaders {
		backoff := 100 * time.Millisecond
		for {
			err := l.Load(ctx)
			if err == nil {
				break
			}
			s.log.Error("loading persisted state failed; not ready", "state", l.Name, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}
	s.ready.Store(true)
	s.log.Info("control plane ready")
}

// LoadNow runs the loaders once, synchronously (tests and in-process use).
func (s *Server) LoadNow(ctx context.Context) error {
	for _, l := range s.loaders {
		if err := l.Load(ctx); err != nil {
			return fmt.Errorf("loading %s: %w", l.Name, err)
		}
	}
	s.ready.Store(true)
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready: persisted state is still loading\n", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// handlerFunc is a route handler: it gets the verified caller (nil on public
// routes) and returns an error to be rendered as an API error.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *identity.Caller) error

type route struct {
	pattern string
	roles   []identity.Role // nil: public
	// optionalAuth routes accept a request without a client certificate
	// (first enrolment with a join token) as well as an authenticated one.
	optionalAuth bool
	needsGrants  bool // served only when grants, policy and authz are configured
	summary      string
	h            handlerFunc
}

// guard authenticates the caller for a route, checks its role, runs the
// handler, renders errors and records the request.
func (s *Server) guard(rt route, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		r.Body = http.MaxBytesReader(sw, r.Body, maxBody)
		var caller *identity.Caller
		var err error
		if rt.roles != nil {
			caller, err = s.authenticate(r, rt)
		}
		if err == nil {
			err = h(sw, r, caller)
		}
		if err != nil {
			s.renderError(sw, err)
		}
		s.m.requests.WithLabelValues(rt.pattern, fmt.Sprint(sw.code())).Inc()
		s.m.latency.WithLabelValues(rt.pattern).Observe(time.Since(start).Seconds())
		if rt.operator() {
			s.recordAdmin(r, rt, caller, sw.code(), err)
		}
	})
}

// operator reports whether only operators may call the route: every such
// request, allowed or refused, is recorded as an admin action.
func (rt route) operator() bool {
	return len(rt.roles) == 1 && rt.roles[0] == identity.RoleAdmin
}

// authenticate verifies the client certificate of the request on every
// request: the identity's status can change between two requests on one
// connection.
func (s *Server) authenticate(r *http.Request, rt route) (*identity.Caller, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		if rt.optionalAuth {
			return nil, nil
		}
		return nil, &APIError{Code: "authentication_required", Message: "this endpoint needs a client certificate (an X.509-SVID of role " + rolesText(rt.roles) + ")"}
	}
	c, err := s.verify.VerifyX509(r.TLS.PeerCertificates, rt.roles...)
	if err != nil {
		s.m.verifyFailed.WithLabelValues(string(identity.CodeOf(err))).Inc()
		s.recordVerifyFailure(r, err)
		return nil, err
	}
	return c, nil
}

func rolesText(rs []identity.Role) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, " or ")
}

// renderError writes err as an API error with the status its code implies.
func (s *Server) renderError(w http.ResponseWriter, err error) {
	var ae *APIError
	var ie *identity.Error
	var ge *grant.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(w, apiStatus(ae.Code), ae.Code, ae.Message)
	case errors.As(err, &ge):
		if ge.Code == grant.CodeInternal || ge.Code == grant.CodeStateUnavailable {
			s.log.Error("grant operation failed", "err", err)
		}
		writeError(w, grantStatus(ge.Code), string(ge.Code), ge.Error())
	case errors.As(err, &ie):
		msg := ie.Error()
		if ie.Code == identity.CodeInternal {
			s.log.Error("identity operation failed", "err", err)
		}
		writeError(w, identityStatus(ie.Code), string(ie.Code), msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
	}
}

func apiStatus(code string) int {
	if st, ok := approvalStatus(code); ok { // respond (issue 10)
		return st
	}
	switch code {
	case "authentication_required":
		return http.StatusUnauthorized
	case "bad_request", "invalid_input":
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "forbidden":
		return http.StatusForbidden
	case "invalid_policy":
		return http.StatusBadRequest
	case "conflict", "memory_tampered":
		return http.StatusConflict
	case "memory_not_configured":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func identityStatus(c identity.Code) int {
	switch c {
	case identity.CodeMalformed, identity.CodeUntrusted, identity.CodeExpired, identity.CodeNotYetValid,
		identity.CodeSuperseded, identity.CodeJWTType, identity.CodeJWTAlg, identity.CodeJWTSignature,
		identity.CodeJWTAudience, identity.CodeJoinTokenBad, identity.CodeJoinTokenUsed, identity.CodeJoinTokenExpiry:
		return http.StatusUnauthorized
	case identity.CodeWrongRole, identity.CodeDisabled, identity.CodeDeleted:
		return http.StatusForbidden
	case identity.CodeUnknown:
		return http.StatusNotFound
	case identity.CodeConflict:
		return http.StatusConflict
	case identity.CodeCSRInvalid, identity.CodeCSRWrongID, identity.CodeKeyChanged, identity.CodeInvalidInput:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: APIError{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields are an error, not ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &APIError{Code: "bad_request", Message: "request body is not valid JSON for this endpoint: " + err.Error()}
	}
	if dec.More() {
		return &APIError{Code: "bad_request", Message: "request body holds more than one JSON value"}
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// recordAdmin records an operator request (allowed or refused) as an API
// Activity event with the Security Control profile.
func (s *Server) recordAdmin(r *http.Request, rt route, c *identity.Caller, status int, err error) {
	activity := map[string]int{http.MethodGet: events.ActivityRead, http.MethodPost: events.ActivityCreate, http.MethodDelete: events.ActivityDelete}[r.Method]
	if activity == 0 {
		activity = events.ActivityUpdate
	}
	e := events.New(events.ClassAPIActivity, activity, "controlplane")
	e.API = &events.API{Operation: rt.pattern, Request: &events.Request{UID: events.NewID()}, Response: &events.Response{Code: status}}
	e.SrcEndpoint = endpoint(r.RemoteAddr)
	e.Metadata.Profiles = []string{"security_control"}
	e.Resources = []events.Resource{{UID: r.URL.Path, Type: "api_endpoint"}}
	if c != nil {
		e.Actor = &events.Actor{User: &events.User{UID: c.ID.String(), Name: c.Name, Type: string(c.Role)}}
	}
	if err == nil && status < 400 {
		e.StatusID, e.ActionID, e.DispositionID = events.StatusSuccess, events.ActionAllowed, events.DispositionAllowed
	} else {
		e.StatusID, e.ActionID, e.DispositionID = events.StatusFailure, events.ActionDenied, events.DispositionBlocked
		e.SeverityID = events.SeverityLow
		if err != nil {
			code, msg := errorCode(err)
			e.StatusCode, e.StatusDetail = code, msg
			e.Warden = &events.Warden{Reason: code}
		}
	}
	if err := s.sink.Emit(r.Context(), e); err != nil {
		s.log.Error("could not record operator request", "route", rt.pattern, "err", err)
	}
}

// recordVerifyFailure records a refused client certificate.
func (s *Server) recordVerifyFailure(r *http.Request, cause error) {
	e := events.New(events.ClassAuthentication, events.ActivityLogon, "controlplane")
	e.StatusID, e.SeverityID = events.StatusFailure, events.SeverityMedium
	code := string(identity.CodeOf(cause))
	e.StatusCode, e.StatusDetail, e.Message = code, cause.Error(), "client certificate refused"
	e.SrcEndpoint = endpoint(r.RemoteAddr)
	e.Warden = &events.Warden{Reason: code}
	if len(r.TLS.PeerCertificates[0].URIs) == 1 {
		e.Actor = &events.Actor{User: &events.User{UID: r.TLS.PeerCertificates[0].URIs[0].String()}}
	}
	if err := s.sink.Emit(r.Context(), e); err != nil {
		s.log.Error("could not record refused certificate", "err", err)
	}
}

// errorCode returns the stable code and the message of an error.
func errorCode(err error) (string, string) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	var ge *grant.Error
	if errors.As(err, &ge) {
		return string(ge.Code), ge.Error()
	}
	return string(identity.CodeOf(err)), err.Error()
}

func endpoint(addr string) *events.Endpoint {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var p int
	fmt.Sscan(port, &p)
	return &events.Endpoint{IP: host, Port: p}
}

type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	verifyFailed *prometheus.CounterVec
	issued       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_controlplane_requests_total", Help: "Control-plane API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warden_controlplane_request_seconds", Help: "Control-plane API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route"}),
		verifyFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_identity_verification_failures_total", Help: "Refused SVIDs by reason code.",
		}, []string{"reason"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_svids_issued_total", Help: "SVIDs issued by kind (x509, jwt) and how (enrol, renew).",
		}, []string{"kind", "how"}),
	}
	reg.MustRegister(m.requests, m.latency, m.verifyFailed, m.issued)
	return m
}
