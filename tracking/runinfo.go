package tracking

import (
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// MLflow's system tags (mlflow/utils/mlflow_tags.py).
const (
	TagRunName    = "mlflow.runName"
	TagUser       = "mlflow.user"
	TagSourceName = "mlflow.source.name"
	TagSourceType = "mlflow.source.type"
)

// User is the user a run is attributed to, found as Python's
// getpass.getuser finds it (MLflow's default): LOGNAME, USER, LNAME,
// USERNAME, then the account database. It is "unknown" when none says.
func User() string {
	for _, k := range []string{"LOGNAME", "USER", "LNAME", "USERNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// RunTags returns the system tags MLflow's own client sets on a run it
// starts (run name, user, source name and type LOCAL) with extra's tags
// added, extra winning.
func RunTags(runName string, extra map[string]string) map[string]string {
	tags := map[string]string{
		TagUser:       User(),
		TagSourceName: filepath.Base(os.Args[0]),
		TagSourceType: "LOCAL",
	}
	if runName != "" {
		tags[TagRunName] = runName
	}
	for k, v := range extra {
		tags[k] = v
	}
	return tags
}

// DefaultRunName names a run that was given no name: "whet-" and its
// start time, e.g. "whet-20250102-150405".
func DefaultRunName(start time.Time) string {
	return "whet-" + start.Format("20060102-150405")
}
