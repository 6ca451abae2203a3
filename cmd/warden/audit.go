package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/events"
)

// Exit statuses of `warden audit` beyond 1 (any other failure).
const (
	auditExitTampered = 2 // the log is not what was signed: damaged or tampered
	auditExitBadProof = 3 // a proof or checkpoint does not verify
)

func auditCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Verify, prove, read and export the tamper-evident audit log",
		Long: `The audit log records every decision, call, finding and response as a leaf
of a Merkle tree, with signed checkpoints published off the host.

Exit status: 0 success, 1 error, 2 the log is damaged or tampered with,
3 a proof or checkpoint does not verify.

Commands that check signatures take --key: the verifier key (as printed by
'warden audit key') or a file holding it. Without it they use the copy stored
beside the log, which root on this host could have replaced along with the log:
for an independent check, use a copy kept elsewhere.`,
	}
	c.AddCommand(auditVerifyCmd(a), auditProofCmd(a), auditConsistencyCmd(a), auditCheckProofCmd(a),
		auditTailCmd(a), auditExportCmd(a), auditKeyCmd(a), auditCheckpointCmd(a))
	return c
}

func (a *app) auditDir() string { return audit.Dir(a.dataDir()) }

// auditVerifier loads --key, or the key stored beside the log.
func (a *app) auditVerifier(cmd *cobra.Command, key string) (note.Verifier, error) {
	if key != "" {
		return audit.LoadVerifier(key)
	}
	v, err := audit.LocalVerifier(a.auditDir())
	if err != nil {
		return nil, fmt.Errorf("no verifier key: pass --key (%w)", err)
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "note: using the verifier key stored beside the log; pass --key with a copy held elsewhere for an independent check")
	return v, nil
}

func (a *app) auditReader(cmd *cobra.Command, key string) (*audit.Reader, error) {
	v, err := a.auditVerifier(cmd, key)
	if err != nil {
		return nil, err
	}
	r, err := audit.OpenReader(a.auditDir(), v)
	if err != nil {
		return nil, auditFailure("opening the audit log", err)
	}
	return r, nil
}

// auditFailure maps tampering to its exit status.
func auditFailure(doing string, err error) error {
	var ce *audit.CorruptError
	if errors.As(err, &ce) {
		return exitError{code: auditExitTampered, err: fmt.Errorf("%s: %w", doing, err)}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func auditVerifyCmd(a *app) *cobra.Command {
	var key string
	var from []string
	c := &cobra.Command{
		Use:   "verify [--from-checkpoint FILE]...",
		Short: "Check every record, the tree and every checkpoint signature; report the first bad index",
		Long: `verify rebuilds the Merkle tree from the stored records alone and checks it
against the newest checkpoint, every checkpoint in the local history, and every
checkpoint in the --from-checkpoint files (kept off this host: the file a
'file' publisher writes, or notes saved from a witness or SIEM). A log rewritten
and re-signed by someone holding the key passes the local checks but not the
external ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.auditVerifier(cmd, key)
			if err != nil {
				return err
			}
			var ext [][]byte
			for _, f := range from {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("reading external checkpoints: %w", err)
				}
				notes := audit.SplitNotes(b)
				if len(notes) == 0 {
					return fmt.Errorf("%s holds no checkpoint", f)
				}
				ext = append(ext, notes...)
			}
			start := time.Now()
			rep, err := audit.Verify(cmd.Context(), a.auditDir(), audit.VerifyOptions{Verifier: v, External: ext})
			if err != nil {
				return auditFailure("audit log verification FAILED", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "audit log verified: %d records, root %s (%.2fs)\n", rep.Size, base64.StdEncoding.EncodeToString(rep.Root), time.Since(start).Seconds())
			if rep.Newest != nil {
				fmt.Fprintf(out, "newest checkpoint: size %d; %d records after it are not yet signed\n", rep.Newest.Size, rep.Uncovered)
			} else {
				fmt.Fprintf(out, "no checkpoint yet: %d records are not yet signed\n", rep.Uncovered)
			}
			fmt.Fprintf(out, "checkpoints matched: %d local, %d external\n", rep.Local, rep.External)
			if rep.TornBytes > 0 {
				fmt.Fprintf(out, "incomplete last write (in progress, or torn by a crash): %d bytes not counted; a torn one is truncated when the log is next opened\n", rep.TornBytes)
			}
			for _, w := range rep.Warnings {
				fmt.Fprintln(out, "warning:", w)
			}
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().StringArrayVar(&from, "from-checkpoint", nil, "file of checkpoint notes kept off this host (repeatable)")
	return c
}

func auditProofCmd(a *app) *cobra.Command {
	var key string
	var index int64
	c := &cobra.Command{
		Use:   "proof --index N",
		Short: "Print the inclusion proof of record N against the newest checkpoint (JSON)",
		Long: `proof prints a JSON bundle: the record (its leaf bytes), its audit path and the
signed checkpoint. 'warden audit check-proof --key KEY FILE' checks it anywhere,
with only the public key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if index < 0 {
				return errors.New("--index is required (0 or more)")
			}
			r, err := a.auditReader(cmd, key)
			if err != nil {
				return err
			}
			defer r.Close()
			b, err := r.InclusionProof(uint64(index))
			if err != nil {
				return auditFailure("building inclusion proof", err)
			}
			return auditWriteJSON(cmd.OutOrStdout(), b)
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().Int64Var(&index, "index", -1, "log index of the record")
	return c
}

func auditConsistencyCmd(a *app) *cobra.Command {
	var key string
	var old int64
	c := &cobra.Command{
		Use:   "consistency --old SIZE",
		Short: "Print the proof that the log of SIZE records is a prefix of the newest checkpoint (JSON)",
		Long: `consistency prints a JSON bundle proving that the tree of --old records is a
prefix of the newest checkpoint's tree: nothing recorded then has changed
since. Check it with 'warden audit check-proof --old-checkpoint FILE' against a
checkpoint of that size you hold yourself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if old <= 0 {
				return errors.New("--old is required (1 or more)")
			}
			r, err := a.auditReader(cmd, key)
			if err != nil {
				return err
			}
			defer r.Close()
			b, err := r.ConsistencyProof(uint64(old))
			if err != nil {
				return auditFailure("building consistency proof", err)
			}
			return auditWriteJSON(cmd.OutOrStdout(), b)
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().Int64Var(&old, "old", 0, "size of the older tree")
	return c
}

func auditCheckProofCmd(a *app) *cobra.Command {
	var key, oldCP string
	c := &cobra.Command{
		Use:   "check-proof --key KEY [--old-checkpoint FILE] PROOF_FILE|-",
		Short: "Check a proof from 'audit proof' or 'audit consistency' with only the public key",
		Long: `check-proof needs no data directory: give it the verifier key and a proof
bundle. An inclusion proof prints the event it proves; a consistency proof is
checked against --old-checkpoint (a checkpoint note you hold) or, without it,
the old checkpoint the bundle carries.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.auditVerifier(cmd, key)
			if err != nil {
				return err
			}
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("reading proof: %w", err)
				}
				defer f.Close()
				in = f
			}
			b, err := io.ReadAll(io.LimitReader(in, 64<<20))
			if err != nil {
				return fmt.Errorf("reading proof: %w", err)
			}
			ib, cb, err := audit.ParseBundle(b)
			if err != nil {
				return exitError{code: auditExitBadProof, err: err}
			}
			out := cmd.OutOrStdout()
			if ib != nil {
				cp, ev, err := audit.CheckInclusion(ib, v)
				if err != nil {
					return exitError{code: auditExitBadProof, err: fmt.Errorf("proof does NOT verify: %w", err)}
				}
				fmt.Fprintf(out, "inclusion proof verified: record %d is in the log %s of size %d signed by %s\n", ib.Index, cp.Origin, cp.Size, v.Name())
				fmt.Fprintf(out, "event: %s\n", ev)
				return nil
			}
			var old []byte
			if oldCP != "" {
				if old, err = os.ReadFile(oldCP); err != nil {
					return fmt.Errorf("reading old checkpoint: %w", err)
				}
				notes := audit.SplitNotes(old)
				if len(notes) != 1 {
					return fmt.Errorf("%s: want exactly one checkpoint note, found %d", oldCP, len(notes))
				}
				old = notes[0]
			}
			o, n, err := audit.CheckConsistency(cb, v, old)
			if err != nil {
				return exitError{code: auditExitBadProof, err: fmt.Errorf("proof does NOT verify: %w", err)}
			}
			fmt.Fprintf(out, "consistency proof verified: the log %s of size %d extends its state at size %d; nothing recorded before was changed\n", n.Origin, n.Size, o.Size)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().StringVar(&oldCP, "old-checkpoint", "", "a checkpoint note of the old size that you hold (consistency proofs)")
	return c
}

func auditTailCmd(a *app) *cobra.Command {
	var key, agent, task, id string
	var n int
	var follow, asJSON bool
	var since time.Duration
	c := &cobra.Command{
		Use:   "tail [--agent A] [--task T] [--id EVENT] [-n N] [--follow]",
		Short: "Print the newest events, optionally for one agent, task or event id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := audit.Query{Agent: agent, Task: task, EventID: id}
			if since > 0 {
				q.Since = time.Now().Add(-since)
			}
			out := cmd.OutOrStdout()
			show := func(rec audit.Record) error {
				if asJSON {
					return audit.ExportJSONL(out, rec)
				}
				fmt.Fprintln(out, auditSummary(rec))
				return nil
			}
			r, err := a.auditReader(cmd, key)
			if err != nil {
				return err
			}
			ring := make([]audit.Record, 0, max(n, 1))
			err = r.Query(cmd.Context(), q, func(rec audit.Record) error {
				rec.Event = append([]byte(nil), rec.Event...)
				if len(ring) == n {
					ring = append(ring[:0], ring[1:]...)
				}
				if n > 0 {
					ring = append(ring, rec)
				}
				return nil
			})
			q.From = r.Size()
			r.Close()
			if err != nil {
				return auditFailure("reading the audit log", err)
			}
			for _, rec := range ring {
				if err := show(rec); err != nil {
					return err
				}
			}
			for follow {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				v, err := a.auditVerifier(cmd, key)
				if err != nil {
					return err
				}
				r, err := audit.OpenReader(a.auditDir(), v)
				if err != nil {
					return auditFailure("reading the audit log", err)
				}
				err = r.Query(cmd.Context(), q, show)
				q.From = r.Size()
				r.Close()
				if err != nil {
					return auditFailure("reading the audit log", err)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().StringVar(&agent, "agent", "", "only events of this agent (SPIFFE ID)")
	c.Flags().StringVar(&task, "task", "", "only events of this task")
	c.Flags().StringVar(&id, "id", "", "only the event with this id")
	c.Flags().DurationVar(&since, "since", 0, "only events from this long ago")
	c.Flags().IntVarP(&n, "lines", "n", 20, "how many of the newest events to print")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return c
}

// auditSummary renders one record as a line for a terminal.
func auditSummary(rec audit.Record) string {
	var e events.Event
	if err := json.Unmarshal(rec.Event, &e); err != nil {
		return fmt.Sprintf("%d  (undecodable event: %v)", rec.Index, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d  %s  %s", rec.Index, time.UnixMilli(e.Time).UTC().Format(time.RFC3339Nano), e.ClassName)
	if e.API != nil && e.API.Operation != "" {
		fmt.Fprintf(&b, " %s", e.API.Operation)
	}
	switch e.ActionID {
	case events.ActionAllowed:
		b.WriteString(" allowed")
	case events.ActionDenied:
		b.WriteString(" DENIED")
	}
	if w := e.Warden; w != nil {
		for _, kv := range [][2]string{{"agent", w.Agent}, {"task", w.Task}, {"tool", w.Tool}, {"reason", w.Reason}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
	}
	if e.Message != "" {
		msg := e.Message
		if len(msg) > 80 {
			msg = msg[:80] + "..."
		}
		fmt.Fprintf(&b, " %q", msg)
	}
	return b.String()
}

func auditExportCmd(a *app) *cobra.Command {
	var key, format, outPath, agent, task string
	var from int64
	c := &cobra.Command{
		Use:   "export --format ocsf|jsonl",
		Short: "Write the log as OCSF 1.8 events or JSON lines, for a SIEM",
		Long: `export writes one JSON object per line. --format ocsf writes OCSF 1.8 events
(API Activity 6003 with the Security Control profile, Detection Finding 2004,
Remediation Activity 7001, ...), each with metadata.sequence set to its log index
and its leaf hash under unmapped.audit. --format jsonl writes each record with
its index, logging time, leaf hash and the event as stored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var write func(io.Writer, audit.Record) error
			switch format {
			case "ocsf":
				write = audit.ExportOCSF
			case "jsonl":
				write = audit.ExportJSONL
			default:
				return fmt.Errorf("--format %q: want ocsf or jsonl", format)
			}
			r, err := a.auditReader(cmd, key)
			if err != nil {
				return err
			}
			defer r.Close()
			var out io.Writer = cmd.OutOrStdout()
			var f *os.File
			if outPath != "" && outPath != "-" {
				if f, err = os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				out = f
			}
			w := bufio.NewWriterSize(out, 1<<20)
			n := 0
			err = r.Query(cmd.Context(), audit.Query{Agent: agent, Task: task, From: uint64(max(from, 0))}, func(rec audit.Record) error {
				n++
				return write(w, rec)
			})
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return auditFailure("export", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d events\n", n)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	c.Flags().StringVar(&format, "format", "ocsf", "ocsf or jsonl")
	c.Flags().StringVarP(&outPath, "out", "o", "", "write to this file (default standard output)")
	c.Flags().StringVar(&agent, "agent", "", "only events of this agent")
	c.Flags().StringVar(&task, "task", "", "only events of this task")
	c.Flags().Int64Var(&from, "from", 0, "start at this log index")
	return c
}

func auditKeyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the checkpoint verifier key (public): give it to whoever checks proofs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(audit.PublicKeyPath(a.auditDir()))
			if err != nil {
				return fmt.Errorf("reading the verifier key (has the log been opened yet?): %w", err)
			}
			if _, err := audit.NewVerifier(string(b)); err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
}

func auditCheckpointCmd(a *app) *cobra.Command {
	var key string
	c := &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the newest signed checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.auditReader(cmd, key)
			if err != nil {
				return err
			}
			defer r.Close()
			cp := r.Checkpoint()
			if cp == nil {
				return errors.New("the log has no checkpoint yet")
			}
			fmt.Fprint(cmd.OutOrStdout(), string(cp.Note))
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it")
	return c
}

func auditWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
