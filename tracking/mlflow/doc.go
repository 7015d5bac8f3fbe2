// Package mlflow sends a training run to an MLflow tracking server over
// its REST API (/api/2.0/mlflow/...), without ever making the trainer
// wait for the server or fail because of it.
//
// # Configuration
//
// Config fields win over the environment variables MLflow's own client
// reads: MLFLOW_TRACKING_URI (the server, http:// or https://),
// MLFLOW_EXPERIMENT_NAME (got or created; default "Default"),
// MLFLOW_EXPERIMENT_ID, MLFLOW_RUN_ID (resume that run instead of creating
// one), MLFLOW_TRACKING_TOKEN (sent as a bearer token), else
// MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth). TLS
// certificates are verified. A new run is created with its name and
// MLflow's system tags (mlflow.runName, mlflow.user, mlflow.source.name,
// mlflow.source.type) plus Config.Tags. Open chooses this package's
// Tracker for an http(s) URI and a local file store (tracking/mlflowfile)
// for a path, a file: URI or no URI at all (./mlruns).
//
// # Requests
//
// Params, metrics and tags go through runs/log-batch, within MLflow's
// limits: at most 1000 metrics (999 here, leaving room for the delivery
// marker below), 100 params, 100 tags and 1000 entities a request, and
// 1,000,000 bytes a body; a larger call is split. Keys are made valid
// (tracking.SanitizeKey), param values cut to 6000 characters and tag
// values to 5000. Metric values NaN and ±Inf are sent as protobuf's JSON
// writes them ("NaN", "Infinity"). int64 fields of responses (timestamps,
// steps) are read whether the server writes them as numbers or strings,
// and ids whether strings or numbers. Finish sends runs/update with the
// status and end time. Artifacts are PUT to the server's artifact proxy
// (/api/2.0/mlflow-artifacts/artifacts/...) when the run's artifact URI is
// mlflow-artifacts:/..., resolved as MLflow resolves it, or copied into
// the directory of a file: artifact URI.
//
// # Delivery
//
// A logging call appends to an in-memory queue and returns (in
// microseconds). A writer goroutine appends the queue to the spool's
// journal (SpoolDir/<spool id>/journal.jsonl), one write and one fsync per
// batch of calls. A sender goroutine reads the journal, packs consecutive
// records into requests, and sends them in order, retrying failures with
// exponential backoff (RetryMin doubling to RetryMax). When the server
// answers 2xx, the records are acknowledged in acked.jsonl (fsync'd); an
// acknowledged record is never sent again. When the server cannot be
// reached at start, New still returns and the run is created when it
// answers (a runs/create without an answer is followed by a search for
// the run by its whet.spool tag, so no second run is made).
//
// Exactly once. MLflow de-duplicates nothing: a metric sent twice is
// stored twice. So each metrics request also sets the run tag
// whet.spool.<spool id>.seq to the number of its last journal record;
// MLflow stores a batch's params, then metrics, then tags, so the tag
// shows that the metrics before it landed. After a request that ended
// without an answer (connection broken after sending, timeout, 5xx), and
// when a spool is delivered again after the process stopped, the sender
// reads the run's tag first and acknowledges what it covers instead of
// sending it again. Params (same value), tags, artifacts (PUT) and the
// final status are idempotent and are simply sent again. The window that
// remains: a server that stores a batch's metrics and then fails before
// storing its tags (a crash or error inside that one request) gets the
// metrics again on retry; and calls made in the last moments before the
// process is killed (before the journal's fsync, normally milliseconds)
// are lost.
//
// A 400 (or another 4xx but 401, 403, 404, 408, 429) refuses a request for
// good: its records are retried one by one, and the refused ones are
// counted as rejected. 401, 403 and 404 are retried like outages, so that
// fixing a token or a server does not lose data.
//
// Finish waits up to FlushTimeout. Everything delivered: the spool is
// removed. Otherwise it is kept (SpoolDir/<spool id>, locked while a
// process delivers it) and Finish's error names it:
//
//	whet mlflow-sync --spool DIR
//
// delivers the rest (DeliverSpool), and `whet mlflow-sync --run
// mlruns/<exp>/<run>` copies a local file-store run to a server (Replay).
// The spool holds no credentials; they come from the environment again.
package mlflow
