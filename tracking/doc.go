// Package tracking is where a training run reports to experiment
// trackers: its parameters, a metric map per step, tags, artifacts and how
// it ended.
//
// A Tracker is one sink; Multi fans every call out to several, and one
// sink's error (or panic) never keeps a call from the others: errors are
// collected, each named after its sink. Summarize says what each sink
// delivered, what waits to be delivered and where. A trainer treats a
// tracker's errors as warnings: it prints them and trains on.
//
// Sinks:
//
//   - tracking/mlflowfile writes MLflow's local file store (./mlruns) as
//     MLflow's FileStore does, so `mlflow ui` shows the run. It is the
//     default when no tracking URI is set.
//   - tracking/mlflow sends the run to an MLflow tracking server over its
//     REST API. Calls never wait for the network: they are queued, written
//     to an on-disk spool, and delivered in the background exactly once,
//     with retries; what Finish could not deliver stays in the spool for
//     `whet mlflow-sync --spool DIR`. mlflow.Open picks between the two
//     from the tracking URI (or MLFLOW_TRACKING_URI).
//
// Recipes and configs become parameters through FlattenParams (nested
// maps and structs to dotted keys: lora.r, datasets.0.path), and a line of
// the trainer's metrics.jsonl becomes a step and metric values through
// SplitRecord. Keys are made valid for MLflow with SanitizeKey (letters,
// digits, _ - . space /; at most 250 characters), param values are cut to
// 6000 characters and tag values to 5000, MLflow's limits.
//
// Commands: `whet mlflow-sync --run DIR/mlruns/<exp>/<run>` copies a local
// run to a server; `whet mlflow-sync --spool DIR` finishes a delivery.
package tracking
