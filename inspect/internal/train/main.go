// Command train reproduces the injection detector's weights
// (inspect/model/injection.bin); see package trainer for what it reads.
//
//	go run ./inspect/internal/train   # from the repository root
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/warden-run/warden/inspect/internal/trainer"
)

func main() {
	var o trainer.Options
	flag.StringVar(&o.Out, "out", "", "model file to write (default inspect/model/injection.bin)")
	flag.StringVar(&o.Data, "data", "", "injection data directory (default ../shared/data/injection beside the module root)")
	flag.IntVar(&o.Folds, "folds", 0, "cross-validation folds over dev_tune (default 5)")
	flag.IntVar(&o.Epochs, "epochs", 0, "passes over the training data (default 20)")
	flag.Float64Var(&o.MaxFPR, "max-fpr", 0, "out-of-fold FPR limit on benign dev_tune rows other than NotInject (default 0.009)")
	flag.Float64Var(&o.MaxNotInject, "max-notinject-fpr", 0, "out-of-fold FPR limit on NotInject (default 0.08)")
	flag.Float64Var(&o.DevTuneWeight, "dev-tune-weight", 0, "sample weight of dev_tune rows (default 50)")
	flag.StringVar(&o.DumpOOF, "dump-oof", "", "write out-of-fold dev_tune scores to this TSV file")
	flag.IntVar(&o.Bits, "bits", 0, "log2 of the hashed feature space (default 20)")
	flag.IntVar(&o.CharMax, "char-max", 0, "longest character n-gram (default 4)")
	flag.IntVar(&o.CharMin, "char-min", 0, "shortest character n-gram (default 4)")
	flag.Float64Var(&o.MultiWeight, "multi-weight", 0, "sample weight of hard negatives not in English (default 4)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := trainer.Run(context.Background(), log, o); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}
