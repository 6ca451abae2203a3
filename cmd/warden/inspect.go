package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/inspect"
)

func inspectCmd(a *app) *cobra.Command {
	_ = a
	c := &cobra.Command{
		Use:   "inspect",
		Short: "Injection detector, DLP and exfiltration checks, offline",
		Long: `Run Warden's input and output controls locally: score text for prompt
injection, find secrets, personal data and exfiltration channels, evaluate the
detector on a labelled data set, or retrain its weights. Nothing leaves the machine.`,
	}
	c.AddCommand(inspectTextCmd(), inspectEvalCmd(), inspectTrainCmd())
	return c
}

func readInput(cmd *cobra.Command, file string, args []string) (string, error) {
	switch {
	case len(args) > 0:
		return strings.Join(args, " "), nil
	case file != "" && file != "-":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading input: %w", err)
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
	if err != nil {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	return string(b), nil
}

func inspectTextCmd() *cobra.Command {
	var file, format, direction string
	var allow []string
	c := &cobra.Command{
		Use:   "text [TEXT...]",
		Short: "Scan text (arguments, --file, or standard input) and print findings",
		Long: `Scan text as content flowing into an agent (--direction in: prompt injection)
or out of it (--direction out: secrets, PII, exfiltration), or both (the
default). Exits 0 when nothing is found, 3 when findings would block at the
Optimized tier.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readInput(cmd, file, args)
			if err != nil {
				return err
			}
			det, err := inspect.NewDetector(inspect.DetectorOptions{})
			if err != nil {
				return err
			}
			sc, err := inspect.NewScanner(inspect.ScannerOptions{})
			if err != nil {
				return err
			}
			type output struct {
				Injection *inspect.Verdict  `json:"injection,omitempty"`
				Findings  []inspect.Finding `json:"findings"`
			}
			var out output
			out.Findings = []inspect.Finding{}
			if direction == "in" || direction == "both" {
				v := det.Detect(text)
				out.Injection = &v
			}
			if direction == "out" || direction == "both" {
				out.Findings = append(out.Findings, sc.Scan(text, "")...)
				pol := inspect.EgressPolicy{Allow: allow, DenyUnlisted: len(allow) > 0}
				out.Findings = append(out.Findings, sc.ScanExfil(text, "", pol)...)
			}
			w := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				if v := out.Injection; v != nil {
					verdict := "no injection"
					if v.Injection {
						verdict = "INJECTION"
					}
					fmt.Fprintf(w, "prompt injection: %s (score %.3f, threshold %.3f)\n", verdict, v.Score, v.Threshold)
					for _, r := range v.Reasons {
						fmt.Fprintf(w, "  reason: %s\n", r)
					}
					for _, s := range v.Spans {
						fmt.Fprintf(w, "  span %d-%d [%s]: %q\n", s.Start, s.End, s.Rule, s.Text)
					}
					if len(v.Signals) > 0 {
						fmt.Fprintf(w, "  signals: %s\n", strings.Join(v.Signals, ", "))
					}
				}
				for _, f := range out.Findings {
					fmt.Fprintf(w, "%s %s (score %.2f) at %d-%d: %s", f.Kind, f.Rule, f.Score, f.Start, f.End, f.Reason)
					if f.Excerpt != "" {
						fmt.Fprintf(w, " [%s]", f.Excerpt)
					}
					fmt.Fprintln(w)
				}
			}
			if (out.Injection != nil && out.Injection.Injection) || len(out.Findings) > 0 {
				return exitError{code: 3, err: errors.New("findings")}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "read the text from this file ('-' for standard input)")
	c.Flags().StringVar(&format, "format", "text", "output format: text or json")
	c.Flags().StringVar(&direction, "direction", "both", "in (injection), out (DLP and exfiltration) or both")
	c.Flags().StringSliceVar(&allow, "allow-host", nil, "hosts URLs may point at (others are findings); repeatable")
	return c
}

func inspectEvalCmd() *cobra.Command {
	var data, format string
	var misses int
	var heldOut bool
	c := &cobra.Command{
		Use:   "eval --data FILE.jsonl",
		Short: "Evaluate the injection detector on a labelled JSONL data set",
		Long: `Score every row of a JSONL file (fields text, label 1/0, source, lang, and
optionally category) and print recall, false-positive rate, precision and F1
overall, per source, per language and per category group (the part of category
before its colon: CyberSecEval's direct and indirect attacks, BIPIA's email,
table and code), English recall on indirect attacks (instructions inside
content, as tool results carry them), recall at 1% and 0.1% false-positive
rate, and throughput on one core (the median of at least five timed passes over
the file, after the pass that scores it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rows []inspect.EvalRow
			var err error
			switch {
			case heldOut:
				rows, err = inspect.HeldOutBenign(cmd.Context())
			case data == "":
				return errors.New("--data (or --held-out-benign) is required")
			default:
				rows, err = inspect.ReadEvalRows(data)
			}
			if err != nil {
				return err
			}
			det, err := inspect.NewDetector(inspect.DetectorOptions{})
			if err != nil {
				return err
			}
			rep, err := inspect.Evaluate(cmd.Context(), det, rows)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == "markdown" {
				fmt.Fprint(w, rep.Markdown())
			} else {
				rep.Print(w)
			}
			for i, r := range rep.Misses {
				if i >= misses {
					break
				}
				fmt.Fprintf(w, "missed %s [%s/%s]: %q\n", r.ID, r.Source, r.Lang, cutForPrint(r.Text))
			}
			for i, r := range rep.FalsePositives {
				if i >= misses {
					break
				}
				fmt.Fprintf(w, "false positive %s [%s/%s]: %q\n", r.ID, r.Source, r.Lang, cutForPrint(r.Text))
			}
			return nil
		},
	}
	c.Flags().StringVar(&data, "data", "", "JSONL data set")
	c.Flags().StringVar(&format, "format", "text", "output format: text or markdown")
	c.Flags().IntVar(&misses, "show", 0, "also print up to N missed attacks and N false positives")
	c.Flags().BoolVar(&heldOut, "held-out-benign", false, "evaluate on ordinary text installed on this machine that training never saw (all benign)")
	return c
}

func cutForPrint(s string) string {
	if len(s) > 160 {
		s = s[:160]
		for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
			s = s[:len(s)-1]
		}
		if len(s) > 0 && s[len(s)-1] >= 0xC0 {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}

func inspectTrainCmd() *cobra.Command {
	var o inspect.TrainOptions
	c := &cobra.Command{
		Use:   "train",
		Short: "Retrain the injection detector's weights from the project's data sets",
		Long: `Reproduce inspect/model/injection.bin from ../shared/data/injection/train.jsonl
and dev_tune.jsonl plus the hard negatives named in the corpus package. Run it
from the repository root; it takes about half a minute on two cores.
The same as: go run ./inspect/internal/train`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return inspect.Train(cmd.Context(), log, o)
		},
	}
	c.Flags().StringVar(&o.Out, "out", "", "model file to write (default inspect/model/injection.bin)")
	c.Flags().StringVar(&o.Data, "data", "", "injection data directory (default ../shared/data/injection beside the module root)")
	c.Flags().IntVar(&o.Epochs, "epochs", 0, "passes over the training data (default 20)")
	c.Flags().StringVar(&o.DumpOOF, "dump-oof", "", "write out-of-fold dev_tune scores to this TSV file")
	return c
}
