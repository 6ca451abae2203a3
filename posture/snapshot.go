package posture

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/internal/keyfile"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/respond"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/supply"
	"github.com/warden-run/warden/tier"
)

// snapshot is the live state the checks read. Every field was read from the
// deployment (its database, its files, its audit log, this host), never
// taken from what an operator says.
type snapshot struct {
	now time.Time
	dir config.Dir
	cfg *config.Config

	agents    []identity.Record
	agentsErr error
	svids     map[string][]identity.SVIDRecord // by SPIFFE ID, newest first

	keys []keyInfo

	tasks    []grant.Task // open tasks
	tasksErr error

	tools []toolInfo // the gateway's live catalogue (nil: not running here)

	policy    *policy.Version
	policyErr error

	auditMode     tier.AuditMode
	auditModeFrom string
	audit         auditState

	threshold    float64 // the injection detector's threshold in force
	inspectorErr error

	mech     *sandbox.Mechanisms
	mechFrom string
	mechErr  error

	rules     *respond.RuleSet
	ruleFiles []string
	rulesErr  error

	mem memState

	lockPath string
	lock     *supply.Lock
	lockErr  error
}

type keyInfo struct {
	purpose     config.KeyPurpose
	fingerprint string
	err         error
}

type toolInfo struct {
	id     string
	labels []string
}

type auditState struct {
	err        error
	size       uint64
	checkpoint *audit.Checkpoint
	scanned    uint64
	launches   []launchRecord
	findings   int // detection findings (2004) in the scanned tail
	actions    int // remediation actions (7001) in the scanned tail
}

// launchRecord is one sandbox launch the audit log recorded.
type launchRecord struct {
	upstream string
	at       time.Time
	refused  bool
	mech     sandbox.Mechanisms
}

type memState struct {
	err        error
	namespaces int
	entries    int
	problems   []string
	snapshots  []memory.SnapshotInfo
}

// parts are what a snapshot is gathered from.
type parts struct {
	dir       config.Dir
	cfg       *config.Config
	identity  *identity.Service
	grants    *grant.Service
	policy    *policy.Store
	memory    *memory.Store
	verifier  note.Verifier
	auditMode func([]identity.Record) (tier.AuditMode, string)
	threshold func() (float64, error)
	gateway   *gateway.Gateway
}

// auditTail is how many of the newest audit records are read for sandbox
// launches and detection activity.
const defaultAuditTail = 20000

func gather(ctx context.Context, p parts, o Options) *snapshot {
	s := &snapshot{now: o.now(), dir: p.dir, cfg: p.cfg, svids: map[string][]identity.SVIDRecord{}}
	s.agents, s.agentsErr = p.identity.List(ctx, identity.RoleAgent)
	for _, a := range s.agents {
		if a.Status != identity.StatusActive {
			continue
		}
		recs, err := p.identity.Registry().SVIDs(ctx, a.ID, 20)
		if err != nil {
			s.agentsErr = errors.Join(s.agentsErr, err)
			continue
		}
		s.svids[a.ID.String()] = recs
	}
	s.keys = readKeys(p.dir)
	s.tasks, s.tasksErr = p.grants.List(ctx, "", true, 1000)
	if p.gateway != nil {
		for _, t := range p.gateway.Tools() {
			s.tools = append(s.tools, toolInfo{id: t.ID, labels: t.Labels})
		}
	}
	if v, err := p.policy.Active(ctx); err == nil {
		s.policy = &v
	} else {
		s.policyErr = err
	}
	s.auditMode, s.auditModeFrom = p.auditMode(s.agents)
	s.audit = readAudit(ctx, audit.Dir(p.dir), p.verifier, o.tail())
	s.threshold, s.inspectorErr = p.threshold()
	s.mech, s.mechFrom, s.mechErr = mechanisms(ctx, p, o, s.audit.launches)
	s.rules, s.ruleFiles, s.rulesErr = loadRules(string(p.dir))
	s.mem = readMemory(ctx, p.memory)
	s.lockPath = p.cfg.Supply.LockPath(p.dir)
	s.lock, s.lockErr = supply.ReadLockFile(s.lockPath)
	return s
}

// readKeys fingerprints the public half of every purpose's key (the root's
// from its certificate, since its key may be kept offline).
func readKeys(dir config.Dir) []keyInfo {
	var out []keyInfo
	for _, p := range config.KeyPurposes {
		ki := keyInfo{purpose: p}
		var pub crypto.PublicKey
		if k, err := keyfile.Load(dir.KeyFile(p)); err == nil {
			pub = k.Public()
		} else if p == config.KeyX509Root {
			certs, cerr := identity.LoadCerts(dir.CertFile(p))
			if cerr != nil {
				ki.err = fmt.Errorf("neither the root key nor its certificate can be read: %w", cerr)
			} else {
				pub = certs[0].PublicKey
			}
		} else {
			ki.err = err
		}
		if pub != nil {
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				ki.err = err
			} else {
				sum := sha256.Sum256(der)
				ki.fingerprint = hex.EncodeToString(sum[:8])
			}
		}
		out = append(out, ki)
	}
	return out
}

// readAudit opens the audit log read-only (a running server keeps writing
// it), checks the newest checkpoint's signature and reads the newest
// records for sandbox launches and detection activity.
func readAudit(ctx context.Context, dir string, v note.Verifier, tail uint64) auditState {
	var st auditState
	if v == nil {
		lv, err := audit.LocalVerifier(dir)
		if err != nil {
			st.err = fmt.Errorf("no verifier key beside the audit log: %w", err)
			return st
		}
		v = lv
	}
	r, err := audit.OpenReader(dir, v)
	if err != nil {
		st.err = err
		return st
	}
	defer r.Close()
	st.size, st.checkpoint = r.Size(), r.Checkpoint()
	from := uint64(0)
	if st.size > tail {
		from = st.size - tail
	}
	st.err = r.Scan(ctx, from, func(rec audit.Record) error {
		st.scanned++
		var e struct {
			Time       int64        `json:"time"`
			ClassUID   events.Class `json:"class_uid"`
			StatusCode string       `json:"status_code"`
			API        *struct {
				Operation string `json:"operation"`
			} `json:"api"`
			Warden *events.Warden `json:"unmapped"`
		}
		if err := json.Unmarshal(rec.Event, &e); err != nil {
			return nil // not ours to judge here: `warden audit verify` does
		}
		switch {
		case e.ClassUID == events.ClassDetectionFinding:
			st.findings++
		case e.ClassUID == events.ClassRemediationActivity:
			st.actions++
		case e.API != nil && e.API.Operation == "sandbox.launch" && e.Warden != nil:
			st.launches = append(st.launches, launchRecord{upstream: e.Warden.Tool, at: time.UnixMilli(e.Time),
				refused: e.StatusCode == "sandbox_refused", mech: mechFromAttrs(e.Warden.Attrs)})
		}
		return nil
	})
	return st
}

// mechFromAttrs reads a launch event's "mech.<name>" attributes.
func mechFromAttrs(a map[string]string) sandbox.Mechanisms {
	m := sandbox.Mechanisms{InForce: map[string]bool{}, Detail: map[string]string{}}
	for k, v := range a {
		name, ok := strings.CutPrefix(k, "mech.")
		if !ok {
			continue
		}
		state, detail, _ := strings.Cut(v, ":")
		m.InForce[name] = state == "on"
		if detail != "" {
			m.Detail[name] = detail
		}
	}
	return m
}

// mechanisms is what this host puts in force: a probe (an empty sandbox
// launched now), else the newest launch the audit log recorded.
func mechanisms(ctx context.Context, p parts, o Options, launches []launchRecord) (*sandbox.Mechanisms, string, error) {
	probe := o.Probe
	if probe == nil {
		probe = func(ctx context.Context) (sandbox.Mechanisms, error) { return HostProbe(ctx, string(p.dir)) }
	}
	m, err := probe(ctx)
	if err == nil {
		return &m, "probe: an empty sandbox launched on this host now", nil
	}
	for i := len(launches) - 1; i >= 0; i-- {
		if !launches[i].refused {
			l := launches[i]
			return &l.mech, fmt.Sprintf("the audit log's newest sandbox launch (%s at %s); the probe failed: %v", l.upstream, l.at.UTC().Format(time.RFC3339), err), nil
		}
	}
	return nil, "", fmt.Errorf("the sandbox probe failed (%w) and the audit log records no launch", err)
}

// HostProbe launches an empty sandbox of the default profile with every
// mechanism attempted, and reports what was in force. The running binary
// must call sandbox.MaybeInit first thing (warden's main does). It refuses
// nothing: a mechanism missing is reported, not an error.
func HostProbe(ctx context.Context, dataDir string) (sandbox.Mechanisms, error) {
	l, err := sandbox.New(sandbox.Options{Tier: tier.Foundation, Sink: events.Discard{}, DataDir: dataDir})
	if err != nil {
		return sandbox.Mechanisms{}, err
	}
	defer l.Close()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return l.Check(pctx)
}

// loadRules compiles the rule pack as `warden serve` does: the built-in
// pack, with the operator's rule files in <data dir>/rules layered over it
// (setup.DefaultResponseOptions).
func loadRules(dir string) (*respond.RuleSet, []string, error) {
	builtin, err := respond.Builtin()
	if err != nil {
		return nil, nil, err
	}
	layers := [][]respond.Document{builtin}
	files := setup.DefaultResponseOptions(dir).RuleFiles
	if len(files) > 0 {
		mine, err := respond.LoadFiles(files)
		if err != nil {
			return nil, files, err
		}
		layers = append(layers, mine)
	}
	rs, err := respond.Compile(layers...)
	return rs, files, err
}

// maxMemoryNamespaces bounds the namespaces verified in one assessment.
const maxMemoryNamespaces = 10000

// readMemory verifies every entry of Warden's memory now: its signature
// and its place in its namespace's chain.
func readMemory(ctx context.Context, m *memory.Store) memState {
	var st memState
	if m == nil {
		st.err = errors.New("Warden's memory store is not open")
		return st
	}
	nss, err := m.Namespaces(ctx)
	if err != nil {
		st.err = err
		return st
	}
	if len(nss) > maxMemoryNamespaces {
		st.problems = append(st.problems, fmt.Sprintf("%d namespaces: only the first %d verified", len(nss), maxMemoryNamespaces))
		nss = nss[:maxMemoryNamespaces]
	}
	st.namespaces = len(nss)
	for _, ns := range nss {
		entries, probs, err := m.Load(ctx, ns)
		if err != nil {
			st.err = errors.Join(st.err, err)
			continue
		}
		st.entries += len(entries)
		for _, p := range probs {
			st.problems = append(st.problems, p.String())
		}
	}
	st.snapshots, err = m.Snapshots(ctx)
	st.err = errors.Join(st.err, err)
	return st
}

// openDir opens what an assessment reads of a data directory without
// setup.Open: no audit log writer (a running server holds its lock), no
// gateway, nothing started. The database is opened for reading and its
// migrations, already applied by `warden init`, are no-ops.
func openDir(ctx context.Context, dir config.Dir, log *slog.Logger) (parts, func(), error) {
	none := func() {}
	if _, err := os.Stat(string(dir)); err != nil {
		return parts{}, none, fmt.Errorf("data directory %s does not exist: run `warden init` first", dir)
	}
	cfg, err := config.Load(dir.Config())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return parts{}, none, fmt.Errorf("%s is not a Warden data directory (no %s): run `warden init`", dir, config.FileName)
		}
		return parts{}, none, err
	}
	if _, err := os.Stat(dir.Database()); err != nil {
		return parts{}, none, fmt.Errorf("data directory is incomplete: %s is missing (run `warden init`)", dir.Database())
	}
	db, err := store.Open(ctx, dir.Database())
	if err != nil {
		return parts{}, none, err
	}
	closeDB := func() { db.Close() }
	fail := func(err error) (parts, func(), error) { closeDB(); return parts{}, none, err }

	td := cfg.TrustDomainID()
	certs := func(p config.KeyPurpose) (*x509.Certificate, error) {
		cs, err := identity.LoadCerts(dir.CertFile(p))
		if err != nil {
			return nil, fmt.Errorf("data directory is incomplete: %w", err)
		}
		return cs[0], nil
	}
	key := func(p config.KeyPurpose) (crypto.Signer, error) {
		k, err := keyfile.Load(dir.KeyFile(p))
		if err != nil {
			return nil, fmt.Errorf("data directory is incomplete: %w", err)
		}
		return k, nil
	}
	root, err := certs(config.KeyX509Root)
	if err != nil {
		return fail(err)
	}
	inter, err := certs(config.KeyX509Intermediate)
	if err != nil {
		return fail(err)
	}
	interKey, err := key(config.KeyX509Intermediate)
	if err != nil {
		return fail(err)
	}
	ca, err := identity.NewCA(td, root, inter, interKey)
	if err != nil {
		return fail(err)
	}
	jk, err := key(config.KeyJWTSVID)
	if err != nil {
		return fail(err)
	}
	jwtAuth, err := identity.NewJWTAuthority(td, jk)
	if err != nil {
		return fail(err)
	}
	reg, err := identity.OpenRegistry(ctx, db)
	if err != nil {
		return fail(err)
	}
	id := cfg.Identity
	ids := identity.NewService(identity.Settings{TrustDomain: td, Tier: cfg.Tier,
		X509TTL: id.X509SVIDTTL, X509MaxTTL: id.X509SVIDMaxTTL, JWTTTL: id.JWTSVIDTTL, JWTMaxTTL: id.JWTSVIDMaxTTL, JoinTokenTTL: id.JoinTokenTTL},
		db, reg, ca, jwtAuth, events.Discard{}, log, nil)
	gk, err := key(config.KeyGrant)
	if err != nil {
		return fail(err)
	}
	edKey, ok := gk.(ed25519.PrivateKey)
	if !ok {
		return fail(fmt.Errorf("%s: the grant key must be Ed25519", dir.KeyFile(config.KeyGrant)))
	}
	grants, err := grant.NewService(ctx, grant.Settings{TrustDomain: td, Tier: cfg.Tier}, db, edKey, nil, events.Discard{}, log, nil)
	if err != nil {
		return fail(err)
	}
	pol, err := policy.NewStore(ctx, db, log)
	if err != nil {
		return fail(err)
	}
	mk, err := key(config.KeyMemory)
	if err != nil {
		return fail(err)
	}
	mpub, ok := mk.Public().(ed25519.PublicKey)
	if !ok {
		return fail(fmt.Errorf("%s: the memory key must be Ed25519", dir.KeyFile(config.KeyMemory)))
	}
	mem, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Public: mpub})
	if err != nil {
		return fail(err)
	}
	p := parts{
		dir: dir, cfg: cfg, identity: ids, grants: grants, policy: pol, memory: mem,
		auditMode: func(agents []identity.Record) (tier.AuditMode, string) {
			// what setup.Open puts in force: the stricter of warden.yaml's
			// and the strictest tier of an active agent
			m := cfg.Audit.EffectiveMode(cfg.Tier)
			if m == tier.AuditSync {
				return m, "warden.yaml (tier " + cfg.Tier.String() + ", audit.mode " + orDefault(string(cfg.Audit.Mode), "unset") + ")"
			}
			for _, a := range agents {
				if a.Status == identity.StatusActive && tier.For(a.Tier).Audit == tier.AuditSync {
					return tier.AuditSync, "agent " + a.Name + " is registered at tier " + a.Tier.String()
				}
			}
			return m, "warden.yaml (tier " + cfg.Tier.String() + ", audit.mode " + orDefault(string(cfg.Audit.Mode), "unset") + ")"
		},
		threshold: func() (float64, error) {
			in, err := inspect.New(cfg.Preset(), cfg.Inspect)
			if err != nil {
				return 0, err
			}
			return in.Detector().Threshold(), nil
		},
	}
	return p, closeDB, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
