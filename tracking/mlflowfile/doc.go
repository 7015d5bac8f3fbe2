// Package mlflowfile writes and reads MLflow's local file store, the
// ./mlruns directory MLflow's client writes when no tracking URI is set,
// laid out as mlflow/store/tracking/file_store.py lays it out:
//
//	mlruns/
//	  .trash/
//	  0/meta.yaml                       the Default experiment
//	  <experiment id>/meta.yaml         artifact_location, creation_time, experiment_id,
//	                                    last_update_time, lifecycle_stage, name
//	  <experiment id>/<run id>/
//	    meta.yaml                       artifact_uri, end_time, entry_point_name, experiment_id,
//	                                    lifecycle_stage, run_id, run_name, run_uuid, source_name,
//	                                    source_type, source_version, start_time, status, tags,
//	                                    user_id (and deleted_time: null until the first rewrite)
//	    metrics/<key>                   one line a value: "<timestamp ms> <value> <step>"
//	    params/<key>                    the value, no newline
//	    tags/<key>                      the value, no newline (mlflow.runName, mlflow.user, ...)
//	    artifacts/                      the run's files
//
// meta.yaml is written as PyYAML's safe_dump writes it (sorted keys, block
// style, single quotes where a plain scalar would read as another type);
// a run's status is MLflow's RunStatus number (1 RUNNING, 3 FINISHED,
// 4 FAILED, 5 KILLED), set at Finish with end_time. A metric value is
// written as Python's repr(float) writes it ("1.0", "1e-05", "nan"). Keys
// holding '/' become subdirectories, as in MLflow. A new experiment gets
// a random 63-bit id and a new run a uuid4 hex id, as MLflow gives them.
//
// Viewing the runs. Point MLflow at the directory:
//
//	mlflow ui --backend-store-uri ./mlruns
//
// MLflow 3.13 and later refuse a file store unless
// MLFLOW_ALLOW_FILE_STORE=true is set (the file store is in maintenance
// mode there; since 3.7 a new server defaults to SQLite):
//
//	MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns
//
// Alternatively `mlflow migrate-filestore` moves the directory into a
// database, or `whet mlflow-sync --run mlruns/<exp>/<run>` copies a run to
// a tracking server.
package mlflowfile
