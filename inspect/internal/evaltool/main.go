// Command evaltool is `warden inspect eval` without the rest of the CLI, for
// working on the detector while other parts of the binary are in flux:
//
//	go run ./inspect/internal/evaltool -data ../shared/data/injection/dev_test.jsonl
//	go run ./inspect/internal/evaltool -held-out-benign
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/warden-run/warden/inspect"
)

func main() {
	data := flag.String("data", "", "JSONL data set")
	held := flag.Bool("held-out-benign", false, "evaluate on ordinary text training never saw")
	md := flag.Bool("markdown", false, "print Markdown tables")
	show := flag.Int("show", 0, "print up to N misses and N false positives")
	thr := flag.Float64("threshold", 0, "score threshold (default: the model's)")
	flag.Parse()
	if err := run(*data, *held, *md, *show, *thr); err != nil {
		fmt.Fprintln(os.Stderr, "evaltool:", err)
		os.Exit(1)
	}
}

func run(data string, held, md bool, show int, thr float64) error {
	ctx := context.Background()
	var rows []inspect.EvalRow
	var err error
	if held {
		rows, err = inspect.HeldOutBenign(ctx)
	} else {
		rows, err = inspect.ReadEvalRows(data)
	}
	if err != nil {
		return err
	}
	d, err := inspect.NewDetector(inspect.DetectorOptions{Threshold: thr})
	if err != nil {
		return err
	}
	rep, err := inspect.Evaluate(ctx, d, rows)
	if err != nil {
		return err
	}
	if md {
		fmt.Print(rep.Markdown())
	} else {
		rep.Print(os.Stdout)
	}
	for i, r := range rep.Misses {
		if i >= show {
			break
		}
		fmt.Printf("missed %s [%s/%s]: %.160q\n", r.ID, r.Source, r.Lang, r.Text)
	}
	for i, r := range rep.FalsePositives {
		if i >= show {
			break
		}
		fmt.Printf("false positive %s [%s/%s]: %.160q\n", r.ID, r.Source, r.Lang, r.Text)
	}
	return nil
}
