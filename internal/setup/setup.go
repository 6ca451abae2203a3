// Package setup creates and opens a Warden data directory: the
// configuration, one key per purpose, the CA certificates, the database and
// the first operator credential. It is the composition root the commands and
// the tests share; it holds no logic of its own beyond putting parts together.
package setup

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/internal/keyfile"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// DefaultTrustDomain is used when `warden init` is given none.
const DefaultTrustDomain = "warden.local"

// DefaultAdmin is the name of the operator credential `warden init` issues.
const DefaultAdmin = "admin"

// InitOptions configure a new data directory. Zero values take defaults.
type InitOptions struct {
	TrustDomain string
	Tier        tier.Tier
	AdminName   string
	Now         func() time.Time
}

// InitReport says what Init created and what it found in place.
type InitReport struct {
	Created []string // paths created
	Kept    []string // paths that existed and were left untouched
	Config  *config.Config
}

// Init creates whatever is missing in dir: configuration, keys, CA
// certificates, database and the operator credential. It never overwrites
// or regenerates anything that exists, so running it twice is harmless, and
// running it on a partial directory completes it where that is safe.
func Init(ctx context.Context, dir config.Dir, o InitOptions) (*InitReport, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AdminName == "" {
		o.AdminName = DefaultAdmin
	}
	rep := &InitReport{}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if err := os.MkdirAll(dir.Keys(), 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}

	cfg, err := config.Load(dir.Config())
	switch {
	case err == nil:
		if o.TrustDomain != "" && o.TrustDomain != cfg.TrustDomain {
			return nil, fmt.Errorf("%s already holds trust domain %q; refusing to change it to %q (every issued identity would be lost)", dir, cfg.TrustDomain, o.TrustDomain)
		}
		if o.Tier != 0 && o.Tier != cfg.Tier {
			return nil, fmt.Errorf("%s is configured for tier %s; edit tier: in %s to change it", dir, cfg.Tier, dir.Config())
		}
		rep.Kept = append(rep.Kept, dir.Config())
	case errors.Is(err, fs.ErrNotExist):
		td := o.TrustDomain
		if td == "" {
			td = DefaultTrustDomain
		}
		if _, err := spiffeid.TrustDomainFromString(td); err != nil {
			return nil, fmt.Errorf("trust domain %q: %w", td, err)
		}
		t := o.Tier
		if t == 0 {
			t = tier.Foundation
		}
		cfg = config.Default(td, t)
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := cfg.Save(dir.Config()); err != nil {
			return nil, err
		}
		rep.Created = append(rep.Created, dir.Config())
	default:
		return nil, err
	}
	rep.Config = cfg

	if err := initKeys(dir, cfg.TrustDomainID(), o.Now(), rep); err != nil {
		return nil, err
	}

	d, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if _, err := os.Stat(filepath.Join(dir.Admin(), credential.CertFile)); err == nil {
		rep.Kept = append(rep.Kept, dir.Admin())
		return rep, nil
	}
	if err := d.IssueAdminCredential(ctx, o.AdminName, dir.Admin()); err != nil {
		return nil, err
	}
	rep.Created = append(rep.Created, dir.Admin())
	return rep, nil
}

func initKeys(dir config.Dir, td spiffeid.TrustDomain, now time.Time, rep *InitReport) error {
	note := func(path string, created bool) {
		if created {
			rep.Created = append(rep.Created, path)
		} else {
			rep.Kept = append(rep.Kept, path)
		}
	}
	for _, p := range []config.KeyPurpose{config.KeyJWTSVID, config.KeyGrant, config.KeyCheckpoint, config.KeyMemory} {
		alg := keyfile.Ed25519
		if p == config.KeyJWTSVID {
			alg = keyfile.ECDSAP256
		}
		_, created, err := keyfile.LoadOrCreate(dir.KeyFile(p), alg)
		if err != nil {
			return err
		}
		note(dir.KeyFile(p), created)
	}

	// The root: its certificate must exist; its key may have been moved
	// offline, in which case it is needed only to sign a new intermediate.
	rootCertPath, rootKeyPath := dir.CertFile(config.KeyX509Root), dir.KeyFile(config.KeyX509Root)
	var root *x509.Certificate
	var rootKey crypto.Signer
	certs, err := identity.LoadCerts(rootCertPath)
	switch {
	case err == nil:
		root = certs[0]
		note(rootCertPath, false)
	case errors.Is(err, fs.ErrNotExist):
		k, created, err := keyfile.LoadOrCreate(rootKeyPath, keyfile.ECDSAP256)
		if err != nil {
			return err
		}
		note(rootKeyPath, created)
		if root, err = identity.NewRoot(td, k, now); err != nil {
			return err
		}
		if err := config.WriteFileAtomic(rootCertPath, identity.EncodeCerts([]*x509.Certificate{root}), 0o644); err != nil {
			return err
		}
		rootKey = k
		note(rootCertPath, true)
	default:
		return err
	}

	interCertPath, interKeyPath := dir.CertFile(config.KeyX509Intermediate), dir.KeyFile(config.KeyX509Intermediate)
	if certs, err := identity.LoadCerts(interCertPath); err == nil {
		if _, err := keyfile.Load(interKeyPath); err != nil {
			return fmt.Errorf("the intermediate CA certificate exists but its key cannot be used: %w", err)
		}
		if now.After(certs[0].NotAfter) {
			return fmt.Errorf("the intermediate CA certificate expired at %s; move it aside (%s) and run `warden init` again with the root key present", certs[0].NotAfter.Format(time.RFC3339), interCertPath)
		}
		note(interCertPath, false)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if rootKey == nil {
		k, err := keyfile.Load(rootKeyPath)
		if err != nil {
			return fmt.Errorf("a new intermediate CA certificate needs the root key, which is not available (%w); put the offline root key back at %s", err, rootKeyPath)
		}
		rootKey = k
	}
	interKey, created, err := keyfile.LoadOrCreate(interKeyPath, keyfile.ECDSAP256)
	if err != nil {
		return err
	}
	note(interKeyPath, created)
	inter, err := identity.NewIntermediate(td, root, rootKey, interKey, now)
	if err != nil {
		return err
	}
	if err := config.WriteFileAtomic(interCertPath, identity.EncodeCerts([]*x509.Certificate{inter}), 0o644); err != nil {
		return err
	}
	note(interCertPath, true)
	return nil
}

// Deployment is an opened data directory: configuration, database, CA,
// identity service and event sink.
type Deployment struct {
	Dir      config.Dir
	Gateway  *gateway.Gateway // set by NewGateway
	Config   *config.Config
	DB       *store.DB
	Identity *identity.Service
	Grants   *grant.Service
	Policy   *policy.Store
	Authz    *authz.Point
	Audit    *audit.Log // the record of every event; Events is it
	// MemoryStore and Memory are Warden's memory: its signed entries and
	// the MCP server the gateway serves as the builtin upstream "memory".
	MemoryStore *memory.Store
	Memory      *memory.Server
	// Inspector inspects what flows in and out at the gateway (and finds
	// instruction-like memory writes).
	Inspector   *inspect.Inspector
	memoryGuard *memory.Guard   // nil unless an upstream is guarded
	guarded     map[string]bool // upstreams with guard: memory
	Events      events.Sink
	Log         *slog.Logger

	detect  eventTap // detection beside the audit log in Events: it only queues, so it goes first (respond.go)
	closers []func() error
}

// Open loads an initialised data directory. It refuses one that is missing
// or incomplete with a message naming what is missing; it never creates
// keys (that is Init's job, and only Init's).
func Open(ctx context.Context, dir config.Dir, log *slog.Logger) (*Deployment, error) {
	if _, err := os.Stat(string(dir)); err != nil {
		return nil, fmt.Errorf("data directory %s does not exist: run `warden init` first", dir)
	}
	cfg, err := config.Load(dir.Config())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a Warden data directory (no %s): run `warden init`", dir, config.FileName)
		}
		return nil, err
	}
	td := cfg.TrustDomainID()
	d := &Deployment{Dir: dir, Config: cfg, Log: log}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()

	root, err := loadCert(dir.CertFile(config.KeyX509Root))
	if err != nil {
		return nil, err
	}
	inter, err := loadCert(dir.CertFile(config.KeyX509Intermediate))
	if err != nil {
		return nil, err
	}
	interKey, err := loadKey(dir, config.KeyX509Intermediate)
	if err != nil {
		return nil, err
	}
	ca, err := identity.NewCA(td, root, inter, interKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir.Keys(), err)
	}
	jwtKey, err := loadKey(dir, config.KeyJWTSVID)
	if err != nil {
		return nil, err
	}
	jwtAuth, err := identity.NewJWTAuthority(td, jwtKey)
	if err != nil {
		return nil, err
	}

	if d.DB, err = store.Open(ctx, dir.Database()); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, d.DB.Close)
	reg, err := identity.OpenRegistry(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	// Every event goes to the tamper-evident audit log: a change or a call
	// whose record cannot be written does not happen.
	ckey, err := audit.LoadKey(audit.KeyPath(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data directory is incomplete: %s is missing (run `warden init` to create what is missing)", audit.KeyPath(dir))
		}
		return nil, err
	}
	aopts, err := audit.OptionsFrom(cfg, ckey, log)
	if err != nil {
		return nil, err
	}
	if d.Audit, err = audit.Open(ctx, audit.Dir(dir), aopts); err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	d.closers = append(d.closers, func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.Audit.Close(cctx) // signs and publishes a final checkpoint
	})
	d.Events = events.Multi{&d.detect, d.Audit}

	id := cfg.Identity
	d.Identity = identity.NewService(identity.Settings{
		TrustDomain: td, Tier: cfg.Tier,
		X509TTL: id.X509SVIDTTL, X509MaxTTL: id.X509SVIDMaxTTL,
		JWTTTL: id.JWTSVIDTTL, JWTMaxTTL: id.JWTSVIDMaxTTL, JoinTokenTTL: id.JoinTokenTTL,
	}, d.DB, reg, ca, jwtAuth, d.Events, log, nil)

	if d.Policy, err = policy.NewStore(ctx, d.DB, log); err != nil {
		return nil, err
	}
	grantKey, err := loadKey(dir, config.KeyGrant)
	if err != nil {
		return nil, err
	}
	edKey, ok2 := grantKey.(ed25519.PrivateKey)
	if !ok2 {
		return nil, fmt.Errorf("%s: the grant key must be Ed25519", dir.KeyFile(config.KeyGrant))
	}
	d.Grants, err = grant.NewService(ctx, grant.Settings{TrustDomain: td, Tier: cfg.Tier}, d.DB, edKey,
		authz.MintPolicy{Policy: d.Policy, Labels: d.toolLabels}, d.Events, log, nil)
	if err != nil {
		return nil, err
	}
	d.Authz = authz.New(d.Grants, d.Policy, d.Events)
	// Audit durability follows the strictest tier in use: registering an
	// agent of a tier whose preset is sync makes the whole log sync.
	d.Identity.OnRegister(func(_ context.Context, r identity.Record) {
		if tier.For(r.Tier).Audit == tier.AuditSync {
			d.Audit.RequireSync()
		}
	})
	if err := d.openMemory(ctx); err != nil {
		return nil, err
	}
	agents, err := d.Identity.List(ctx, identity.RoleAgent)
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		if a.Status == identity.StatusActive && tier.For(a.Tier).Audit == tier.AuditSync {
			d.Audit.RequireSync()
		}
	}
	// A disabled or deleted agent keeps no access: its grants are revoked
	// the moment the change is committed, and the gateway drops its calls
	// in flight and its sessions.
	d.Identity.OnStatusChange(func(ctx context.Context, r identity.Record) {
		if r.Role != identity.RoleAgent || r.Status == identity.StatusActive {
			return
		}
		if _, err := d.Grants.RevokeAgent(ctx, "warden:identity", r.ID.String(), "agent "+string(r.Status)); err != nil {
			log.Error("revoking the grants of a disabled agent failed; its calls still fail identity verification", "agent", r.ID, "err", err)
		}
		if gw := d.Gateway; gw != nil {
			gw.DisconnectAgent(r.ID.String(), "agent "+string(r.Status))
		}
	})
	ok = true
	return d, nil
}

// toolLabels gives the grant service's mint-time policy check the risk
// labels of the tools the gateway serves.
func (d *Deployment) toolLabels(tool string) ([]string, bool) {
	if d.Gateway == nil {
		return nil, false
	}
	return d.Gateway.Labels(tool)
}

// GatewayCertTTL is the lifetime of the gateway's own certificate, re-issued
// in memory at half-life.
const GatewayCertTTL = 24 * time.Hour

// NewGateway builds the MCP gateway over this deployment (not yet
// connected: call Start). launch may be nil (plain processes).
func (d *Deployment) NewGateway(launch gateway.Launcher) (*gateway.Gateway, error) {
	return d.NewGatewayWith(launch, nil)
}

// NewGatewayWith is NewGateway with a last word on the gateway's options
// (the hooks other parts plug in: Vet, Stages).
func (d *Deployment) NewGatewayWith(launch gateway.Launcher, opt func(*gateway.Options)) (*gateway.Gateway, error) {
	host, _ := os.Hostname()
	id, err := identity.NewID(d.Config.TrustDomainID(), identity.RoleGateway, identity.ServiceName(host))
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	if h, _, err := net.SplitHostPort(d.Config.Gateway.Listen); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	o := gateway.Options{
		Config: d.Config.Gateway, Identity: d.Identity.Verifier(), Grants: d.Grants, Authz: d.Authz, Policy: d.Policy,
		Events: d.Events, Log: d.Log.With("component", "gateway"), Launch: launch, Builtin: d.builtin,
		Certs:  identity.NewCertSource(d.Identity.CA(), id, d.Config.ControlPlane.ServerNames, ips, GatewayCertTTL),
		Stages: d.stages(), Inspector: d.Inspector, Preset: d.Config.Preset(),
	}
	if opt != nil {
		opt(&o)
	}
	gw, err := gateway.New(o)
	if err != nil {
		return nil, err
	}
	d.Gateway = gw
	return gw, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	certs, err := identity.LoadCerts(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data directory is incomplete: %s is missing (run `warden init` to create what is missing)", path)
		}
		return nil, err
	}
	return certs[0], nil
}

func loadKey(dir config.Dir, p config.KeyPurpose) (crypto.Signer, error) {
	k, err := keyfile.Load(dir.KeyFile(p))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data directory is incomplete: %s is missing (run `warden init` to create what is missing; tokens signed by a lost key stop verifying)", dir.KeyFile(p))
		}
		return nil, err
	}
	return k, nil
}

// Close releases the database and the event sink.
func (d *Deployment) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}

// EnrolAgent registers an agent as by and enrols a fresh P-256 key for it
// in this process, as `warden agent register` and the agent's first start
// would over the control plane: the key is made here and only its CSR, with
// the one-time join token, reaches the identity service. It returns the
// agent's credential and its registry record.
func (d *Deployment) EnrolAgent(ctx context.Context, by string, spec identity.Spec) (*credential.Credential, *identity.Record, error) {
	spec.Role = identity.RoleAgent
	_, tok, err := d.Identity.Register(ctx, by, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("registering agent %s: %w", spec.Name, err)
	}
	key, err := keyfile.Generate(keyfile.ECDSAP256)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("making agent %s's CSR: %w", spec.Name, err)
	}
	chain, err := d.Identity.Enroll(ctx, tok.Token, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		return nil, nil, fmt.Errorf("enrolling agent %s: %w", spec.Name, err)
	}
	cred, err := credential.New(key, chain, []*x509.Certificate{d.Identity.CA().Root()}, credential.Meta{})
	if err != nil {
		return nil, nil, err
	}
	rec, err := d.Identity.Get(ctx, identity.RoleAgent, spec.Name)
	if err != nil {
		return nil, nil, err
	}
	return cred, rec, nil
}

// IssueAdminCredential creates a key for the operator identity
// /admin/<name>, issues its X.509-SVID from the local CA and writes both into
// out. It needs the data directory (the CA key), so it is a local act.
func (d *Deployment) IssueAdminCredential(ctx context.Context, name, out string) error {
	key, err := keyfile.Generate(keyfile.ECDSAP256)
	if err != nil {
		return err
	}
	chain, err := d.Identity.IssueLocal(ctx, identity.RoleAdmin, name, key.Public(), d.Config.Identity.AdminSVIDTTL)
	if err != nil {
		return fmt.Errorf("issuing operator credential: %w", err)
	}
	// The control plane's address is left out: on this host it comes from
	// warden.yaml, which may change; elsewhere, pass --control-plane.
	c, err := credential.New(key, chain, []*x509.Certificate{d.Identity.CA().Root()}, credential.Meta{})
	if err != nil {
		return err
	}
	// A new key replaces the old one: move the old credential aside first.
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("replacing %s: %w", out, err)
	}
	return c.Save(out)
}
