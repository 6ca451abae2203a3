package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/warden-run/warden/controlplane"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/internal/keyfile"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/store"
)

func memoryCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "memory",
		Short: "Verify, inspect, snapshot, roll back and release Warden's agent memory",
		Long: `Warden's memory server (the builtin upstream "memory") keeps each agent's
knowledge graph as entries signed with the memory key and hash-chained per
namespace; the hash of every write is recorded in the audit log.

verify and log read the data directory directly (offline: no server needed,
and only the public half of the memory key is used). snapshot, snapshots,
rollback and release go through the control plane with the operator
credential (--creds, default <data dir>/admin).

Exit status: 0 success, 1 error, 2 a problem was found (an entry or the
audit log is damaged or was tampered with), as for 'warden audit'.

See docs/memory.md.`,
	}
	c.AddCommand(memoryVerifyCmd(a), memoryLogCmd(a), memorySnapshotCmd(a), memorySnapshotsCmd(a),
		memoryRollbackCmd(a), memoryReleaseCmd(a))
	return c
}

// openMemoryStore opens the data directory's memory store to verify only:
// the database as it is on disk, and the public half of the memory key.
func (a *app) openMemoryStore(ctx context.Context) (*memory.Store, func(), error) {
	dir := a.dataDir()
	if _, err := os.Stat(dir.Database()); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no database at %s: is %s a Warden data directory? (pass --dir)", dir.Database(), dir)
		}
		return nil, nil, err
	}
	k, err := keyfile.Load(dir.KeyFile(config.KeyMemory))
	if err != nil {
		return nil, nil, fmt.Errorf("loading the memory key to verify with: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: the memory key must be Ed25519", dir.KeyFile(config.KeyMemory))
	}
	db, err := store.Open(ctx, dir.Database())
	if err != nil {
		return nil, nil, err
	}
	st, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Public: priv.Public().(ed25519.PublicKey)})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("opening the memory store: %w", err)
	}
	return st, func() { db.Close() }, nil
}

// recordedWrites reads the memory_write records of the audit log from
// index from on into rec (entry id -> hash), and returns the log's size.
func (a *app) recordedWrites(ctx context.Context, v note.Verifier, from uint64, rec map[string]string) (uint64, error) {
	r, err := audit.OpenReader(a.auditDir(), v)
	if err != nil {
		return 0, auditFailure("opening the audit log", err)
	}
	defer r.Close()
	err = r.Scan(ctx, from, func(x audit.Record) error {
		if id, h, ok := memory.RecordedWrite(x.Event); ok {
			rec[id] = h
		}
		return nil
	})
	if err != nil {
		return 0, auditFailure("reading the audit log", err)
	}
	return r.Size(), nil
}

// memoryVerifyResult is verify's report (-o json).
type memoryVerifyResult struct {
	Memory *memory.Report `json:"memory"`
	// Audit is the audit log's own verification; nil with --no-log.
	Audit *memoryAuditCheck `json:"audit,omitempty"`
}

type memoryAuditCheck struct {
	Records   uint64 `json:"records"`
	Writes    int    `json:"memory_writes"`
	Uncovered uint64 `json:"not_yet_signed"`
}

const noLogNote = `note: --no-log: the audit log was not consulted. Each entry's hash, signature
and link to the entry before it were checked; NOT proven: that no entries were
deleted from the end of a namespace or a whole namespace deleted (truncation),
nor that an entry was inserted or rewritten outside Warden by someone holding
the memory key.`

func memoryVerifyCmd(a *app) *cobra.Command {
	var key, format string
	var noLog bool
	c := &cobra.Command{
		Use:   "verify [--key KEY] [--no-log]",
		Short: "Prove every memory entry authentic and the store complete against the audit log",
		Long: `verify reads the memory store in the data directory (offline) and checks every
namespace: each entry's hash and Ed25519 signature (the public half of
keys/memory.key), its link to the entry before it, and that none is missing
from the sequence. It then checks the audit log itself (as 'warden audit
verify' does) and proves the store against the log's record of every write:
an entry the log recorded but the store lacks, or holds with another hash, was
deleted, truncated or rewritten outside Warden; an entry the log never
recorded was inserted outside Warden (by someone holding the memory key).

What it proves rests on the audit log: check it with --key (the verifier key
kept off this host) and against external checkpoints with 'warden audit
verify --from-checkpoint'. Records after the newest checkpoint are not yet
signed. --no-log skips the audit log and says what is then not proven.

Works while 'warden serve' runs. Exit status 2 on any problem.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			st, closeStore, err := a.openMemoryStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			res := memoryVerifyResult{}
			var rec map[string]string
			var v note.Verifier
			var size uint64
			if !noLog {
				if v, err = a.auditVerifier(cmd, key); err != nil {
					return err
				}
				arep, err := audit.Verify(ctx, a.auditDir(), audit.VerifyOptions{Verifier: v})
				if err != nil {
					return auditFailure("the audit log does not verify, so the memory store cannot be proven against it", err)
				}
				rec = map[string]string{}
				if size, err = a.recordedWrites(ctx, v, 0, rec); err != nil {
					return err
				}
				res.Audit = &memoryAuditCheck{Records: size, Uncovered: arep.Uncovered}
			}
			start := time.Now()
			if res.Memory, err = st.Verify(ctx, rec); err != nil {
				return fmt.Errorf("verifying memory: %w", err)
			}
			// A write is recorded before it commits, but a running server
			// with an asynchronous audit log may not have written the record
			// out yet: read what the log gained since, once, before calling
			// an entry unrecorded.
			if rec != nil && unrecorded(res.Memory.Problems) {
				time.Sleep(500 * time.Millisecond)
				if size, err = a.recordedWrites(ctx, v, size, rec); err != nil {
					return err
				}
				res.Audit.Records = size
				if res.Memory, err = st.Verify(ctx, rec); err != nil {
					return fmt.Errorf("verifying memory: %w", err)
				}
			}
			took := time.Since(start)
			if res.Audit != nil {
				res.Audit.Writes = len(rec)
			}
			if format == "json" {
				if err := printJSON(out, res); err != nil {
					return err
				}
			} else {
				printMemoryVerify(out, &res, took)
				if noLog {
					fmt.Fprintln(out, noLogNote)
				}
			}
			if n := len(res.Memory.Problems); n > 0 {
				return exitError{code: auditExitTampered, err: fmt.Errorf("memory verification FAILED: %s", plural(n, "problem"))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "audit log verifier key, or a file holding it (default: the copy beside the log)")
	c.Flags().BoolVar(&noLog, "no-log", false, "check the entries and chains only, not against the audit log")
	outputFlag(c, &format)
	return c
}

func unrecorded(probs []memory.Problem) bool {
	for _, p := range probs {
		if strings.Contains(p.Reason, "never recorded") {
			return true
		}
	}
	return false
}

func printMemoryVerify(w io.Writer, res *memoryVerifyResult, took time.Duration) {
	m := res.Memory
	if a := res.Audit; a != nil {
		fmt.Fprintf(w, "audit log verified: %s, %s recorded", plural(int(a.Records), "record"), plural(a.Writes, "memory write"))
		if a.Uncovered > 0 {
			fmt.Fprintf(w, " (%d records after the newest checkpoint are not yet signed)", a.Uncovered)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "memory: %s, %s; %d verified (hash, signature, chain)", plural(m.Namespaces, "namespace"), plural(m.Entries, "entry"), m.Verified)
	if res.Audit != nil {
		fmt.Fprintf(w, "; %d checked against the audit log", m.Checked)
	}
	fmt.Fprintf(w, " (%.2fs)\n", took.Seconds())
	for _, p := range m.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	switch {
	case len(m.Problems) > 0:
		fmt.Fprintf(w, "memory verification FAILED: %s; entries that do not verify are withheld from reads\n", plural(len(m.Problems), "problem"))
	case res.Audit != nil:
		fmt.Fprintln(w, "memory verified: every entry is authentic and the store holds exactly the writes the audit log recorded")
	default:
		fmt.Fprintln(w, "memory entries verified: every stored entry is authentic and every chain unbroken")
	}
}

// memoryRow is one entry of a namespace as `memory log` shows it.
type memoryRow struct {
	*memory.Entry
	Fate     memory.Fate `json:"fate"`
	Verified bool        `json:"verified"`
	Problem  string      `json:"problem,omitempty"`
}

func memoryLogCmd(a *app) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "log NAMESPACE",
		Aliases: []string{"show"},
		Short:   "List a namespace's entries with their provenance and verification status",
		Long: `log reads one namespace of the memory store in the data directory (offline)
and lists its entries in order: sequence number, operation, writing agent,
task, trust (untrusted: the writing session had read untrusted content, named
in SOURCES), status (quarantined entries are never served unless released;
entries undone by a rollback are not served), when it was written, and
whether it verifies: its hash, its signature and its link to the entry before
it. A row that does not verify is shown by its problem only: its content
cannot be trusted. -o json includes every entry's payload.

log checks the chain only; 'warden memory verify' also proves the store
against the audit log (catching a truncated namespace). Exit status 2 when a
problem is found.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, closeStore, err := a.openMemoryStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			ns := args[0]
			good, probs, err := st.Load(ctx, ns)
			if err != nil {
				return err
			}
			if len(good) == 0 && len(probs) == 0 {
				nss, err := st.Namespaces(ctx)
				if err != nil {
					return err
				}
				return fmt.Errorf("no memory namespace %q (namespaces: %s)", ns, strings.Join(nss, ", "))
			}
			rows := memoryRows(good, probs)
			out := cmd.OutOrStdout()
			if format == "json" {
				if err := printJSON(out, rows); err != nil {
					return err
				}
			} else {
				printMemoryRows(out, rows)
				fmt.Fprintf(out, "%s: %s verify, %s (chain only: 'warden memory verify' also proves the store against the audit log)\n",
					ns, plural(len(good), "entry"), plural(len(probs), "problem"))
			}
			if len(probs) > 0 {
				return exitError{code: auditExitTampered, err: fmt.Errorf("namespace %s: %s", ns, plural(len(probs), "problem"))}
			}
			return nil
		},
	}
	outputFlag(c, &format)
	return c
}

// memoryRows merges the entries that verify with the problems found, in
// sequence order.
func memoryRows(good []memory.Entry, probs []memory.Problem) []memoryRow {
	fates := memory.Fates(good)
	bySeq := map[int64]*memoryRow{}
	var rows []*memoryRow
	for i := range good {
		e := &good[i]
		r := &memoryRow{Entry: e, Fate: fates[e.Seq], Verified: true}
		bySeq[e.Seq] = r
		rows = append(rows, r)
	}
	for _, p := range probs {
		if r := bySeq[p.Seq]; r != nil {
			r.Problem = joinProblem(r.Problem, p.Reason)
			continue
		}
		r := &memoryRow{Entry: &memory.Entry{NS: p.NS, Seq: p.Seq}, Problem: p.Reason}
		bySeq[p.Seq] = r
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	out := make([]memoryRow, len(rows))
	for i, r := range rows {
		out[i] = *r
	}
	return out
}

func joinProblem(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func printMemoryRows(w io.Writer, rows []memoryRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOP\tAGENT\tTASK\tTRUST\tSTATUS\tSOURCES\tWRITTEN\tVERIFIED")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		if !r.Verified {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t-\t-\t-\tPROBLEM: %s\n", r.Seq, r.Problem)
			continue
		}
		status := r.Status
		if r.Fate.ReleasedBy != 0 {
			status += fmt.Sprintf(", released by #%d", r.Fate.ReleasedBy)
		}
		if r.Fate.UndoneBy != 0 {
			status += fmt.Sprintf(", undone by #%d", r.Fate.UndoneBy)
		}
		ok := "ok"
		if r.Problem != "" {
			ok = "authentic; PROBLEM: " + r.Problem
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Op, agentName(r.Agent), dash(r.Task), r.Trust, status,
			dash(strings.Join(r.Sources, ",")), time.Unix(0, r.WrittenAt).UTC().Format(time.RFC3339), ok)
	}
	tw.Flush()
}

// credsFlag adds --creds to an operator command.
func credsFlag(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "creds", "", "operator credential directory (default <data dir>/admin)")
}

func memorySnapshotCmd(a *app) *cobra.Command {
	var creds, format string
	c := &cobra.Command{
		Use:   "snapshot NAME",
		Short: "Record every namespace's head under NAME, signed, to roll back to later",
		Long: `snapshot records, through the control plane, the head (highest entry) of every
memory namespace under NAME, signed with the memory key and recorded in the
audit log. 'warden memory rollback --to NAME' later undoes everything written
after it. Names are never reused. A snapshot copies nothing: the entries it
refers to stay in the chain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, cl *controlplane.Client) error {
				s, err := cl.MemorySnapshot(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if format == "json" {
					return printJSON(out, s)
				}
				fmt.Fprintf(out, "snapshot %q of %s taken by %s\n", s.Name, plural(len(s.Heads), "namespace"), s.CreatedBy)
				printHeads(out, s.Heads)
				return nil
			})
		},
	}
	credsFlag(c, &creds)
	outputFlag(c, &format)
	return c
}

func printHeads(w io.Writer, heads map[string]int64) {
	nss := make([]string, 0, len(heads))
	for ns := range heads {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		fmt.Fprintf(w, "  %s at #%d\n", ns, heads[ns])
	}
}

func memorySnapshotsCmd(a *app) *cobra.Command {
	var creds, format string
	c := &cobra.Command{
		Use:   "snapshots",
		Short: "List memory snapshots, oldest first",
		Long: `snapshots lists the memory snapshots through the control plane, oldest first,
with who took them and how many namespaces and entries they cover. Every
snapshot's signature is checked: one changed outside Warden fails the list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, cl *controlplane.Client) error {
				list, err := cl.MemorySnapshots(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if format == "json" {
					return printJSON(out, list)
				}
				if len(list) == 0 {
					fmt.Fprintln(out, "no memory snapshots yet: take one with 'warden memory snapshot NAME'")
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tBY\tNAMESPACES\tENTRIES")
				for _, s := range list {
					var n int64
					for _, h := range s.Heads {
						n += h
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", s.Name, s.CreatedAt.Local().Format(time.DateTime), agentName(s.CreatedBy), len(s.Heads), n)
				}
				return tw.Flush()
			})
		},
	}
	credsFlag(c, &creds)
	outputFlag(c, &format)
	return c
}

func memoryRollbackCmd(a *app) *cobra.Command {
	var creds, to, format string
	c := &cobra.Command{
		Use:   "rollback --to NAME",
		Short: "Undo every memory write made after a snapshot",
		Long: `rollback undoes, through the control plane, every memory write made after the
snapshot NAME, in every namespace, by appending a signed rollback entry to
each namespace that changed: the chain is never rewritten, so what was undone
stays on record ('warden memory log NS' shows it as undone) and in the audit
log. Reads serve the graph as it was at the snapshot from the next call on.
A snapshot whose signature does not verify is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if to == "" {
				return errors.New("--to is required: the snapshot to roll back to (list them with 'warden memory snapshots')")
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, cl *controlplane.Client) error {
				r, err := cl.MemoryRollback(ctx, to)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if format == "json" {
					return printJSON(out, r)
				}
				if len(r.Undone) == 0 {
					fmt.Fprintf(out, "nothing to undo: no namespace changed since snapshot %q\n", r.To)
					return nil
				}
				fmt.Fprintf(out, "rolled back to snapshot %q:\n", r.To)
				nss := make([]string, 0, len(r.Undone))
				for ns := range r.Undone {
					nss = append(nss, ns)
				}
				sort.Strings(nss)
				for _, ns := range nss {
					fmt.Fprintf(out, "  %s: %s undone\n", ns, plural(int(r.Undone[ns]), "entry"))
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&to, "to", "", "the snapshot to roll back to")
	credsFlag(c, &creds)
	outputFlag(c, &format)
	return c
}

func memoryReleaseCmd(a *app) *cobra.Command {
	var creds, format string
	c := &cobra.Command{
		Use:   "release NAMESPACE#SEQ",
		Short: "Serve a quarantined memory entry after all",
		Long: `release serves, through the control plane, an entry Warden quarantined (an
instruction-like write from a session that had read untrusted content) after
an operator judged it harmless. The store appends a release entry signed with
the memory key and naming the operator; the quarantined entry itself is not
changed. It stays untrusted: reads serve it marked with its provenance, or
withhold it, as the tier says. Refused when the entry is not quarantined, was
already released or undone by a rollback, or does not verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if _, _, err := memory.ParseID(args[0]); err != nil {
				return err
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, cl *controlplane.Client) error {
				r, err := cl.MemoryRelease(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if format == "json" {
					return printJSON(out, r)
				}
				fmt.Fprintf(out, "released %s (release entry %s, by %s): served from the next read on, still as untrusted\n", r.Released, r.By, r.Agent)
				return nil
			})
		},
	}
	credsFlag(c, &creds)
	outputFlag(c, &format)
	return c
}

// plural renders n things: "1 entry", "2 entries".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if strings.HasSuffix(thing, "y") {
		return fmt.Sprintf("%d %sies", n, thing[:len(thing)-1])
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
