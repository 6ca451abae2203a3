package inspect

import (
	"context"
	"log/slog"

	"github.com/warden-run/warden/inspect/internal/trainer"
)

// TrainOptions are the injection model's training settings; zero values
// take the defaults that produced the embedded model.
type TrainOptions = trainer.Options

// Train reproduces the injection model file from the project's data sets
// and hard negatives (see docs/inspect.md). It reads local files only.
func Train(ctx context.Context, log *slog.Logger, o TrainOptions) error {
	return trainer.Run(ctx, log, o)
}
