package trainer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/whet-ai/whet/tracking"
	"github.com/whet-ai/whet/tracking/mlflow"
	"github.com/whet-ai/whet/tracking/plot"
	"github.com/whet-ai/whet/tracking/tensorboard"
)

// openTrackers starts the recipe's sinks (MLflow, TensorBoard) and logs the
// recipe as parameters. metrics.jsonl is written by the run itself.
func (r *Run) openTrackers() error {
	tc := r.Recipe.Tracking
	var sinks []tracking.Tracker
	if tc.MLflow || os.Getenv("MLFLOW_TRACKING_URI") != "" {
		t, err := mlflow.Open(context.Background(), mlflow.Config{
			TrackingURI: tc.TrackingURI, Experiment: tc.Experiment, RunName: tc.RunName,
			SpoolDir: r.outputPath("mlflow-spool"),
		})
		if err != nil {
			return fmt.Errorf("mlflow: %w", err)
		}
		sinks = append(sinks, t)
	}
	if tc.TensorBoard {
		w, err := tensorboard.New(r.outputPath("runs"))
		if err != nil {
			return fmt.Errorf("tensorboard: %w", err)
		}
		sinks = append(sinks, &tensorboardSink{w: w})
	}
	if len(sinks) == 0 {
		return nil
	}
	r.tracker = tracking.Multi(sinks...)
	if err := r.tracker.LogParams(tracking.FlattenParams(r.Recipe)); err != nil {
		fmt.Fprintf(r.Out, "tracking: %v\n", err)
	}
	return nil
}

// track sends one metrics record to the sinks; their errors are reported,
// never fatal.
func (r *Run) track(rec map[string]any) {
	if step, ms, ok := tracking.SplitRecord(rec); ok {
		switch v := rec["loss"].(type) {
		case float64:
			r.trainPts = append(r.trainPts, plot.Point{Step: step, Value: v})
		}
		if v, ok := rec["lr"].(float64); ok {
			r.lrPts = append(r.lrPts, plot.Point{Step: step, Value: v})
		}
		if v, ok := rec["eval_loss"].(float64); ok {
			r.evalPts = append(r.evalPts, plot.Point{Step: step, Value: v})
		}
		if r.tracker != nil {
			if err := r.tracker.LogMetrics(step, ms, time.Now()); err != nil {
				fmt.Fprintf(r.Out, "tracking: %v\n", err)
			}
		}
	}
}

// plotLoss draws loss.png and logs it as an artifact.
func (r *Run) plotLoss() {
	if !r.Recipe.Tracking.Plots || len(r.trainPts) == 0 {
		return
	}
	path := r.outputPath(plot.DefaultFileName)
	if err := plot.LossPlot(path, r.trainPts, r.evalPts, r.lrPts); err != nil {
		fmt.Fprintf(r.Out, "plot: %v\n", err)
		return
	}
	if r.tracker != nil {
		r.tracker.LogArtifact(path, "")
	}
}

// finishTracking logs the final artifacts and the run's status, and reports
// what the sinks delivered.
func (r *Run) finishTracking(status tracking.Status) {
	r.plotLoss()
	if r.tracker == nil {
		return
	}
	if status == tracking.StatusFinished {
		for _, name := range []string{"adapter_config.json", "adapter_model.safetensors", "model.safetensors", "recipe.yaml", "metrics.jsonl"} {
			if p := r.outputPath(name); fileExists(p) {
				r.tracker.LogArtifact(p, "")
			}
		}
	}
	if err := r.tracker.Finish(status); err != nil {
		fmt.Fprintf(r.Out, "tracking: %v\n", err)
	}
	if s := tracking.Summarize(r.tracker); len(s.Sinks) > 0 {
		fmt.Fprintf(r.Out, "tracking: %s\n", s)
	}
	r.tracker = nil
}

func fileExists(p string) bool {
	_, err := os.Stat(filepath.Clean(p))
	return err == nil
}

// tensorboardSink writes the metrics as TensorBoard scalars.
type tensorboardSink struct{ w *tensorboard.Writer }

func (s *tensorboardSink) Name() string                      { return "tensorboard" }
func (s *tensorboardSink) LogParams(map[string]string) error { return nil }
func (s *tensorboardSink) SetTags(map[string]string) error   { return nil }
func (s *tensorboardSink) LogArtifact(string, string) error  { return nil }
func (s *tensorboardSink) LogMetrics(step int64, m map[string]float64, t time.Time) error {
	return s.w.Scalars(step, t, m)
}
func (s *tensorboardSink) Finish(tracking.Status) error { return s.w.Close() }
