package mlflow

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables, as MLflow's own client reads them.
const (
	EnvTrackingURI    = "MLFLOW_TRACKING_URI"
	EnvExperimentName = "MLFLOW_EXPERIMENT_NAME"
	EnvExperimentID   = "MLFLOW_EXPERIMENT_ID"
	EnvRunID          = "MLFLOW_RUN_ID"
	EnvToken          = "MLFLOW_TRACKING_TOKEN"
	EnvUsername       = "MLFLOW_TRACKING_USERNAME"
	EnvPassword       = "MLFLOW_TRACKING_PASSWORD"
)

// Config configures a run on an MLflow tracking server. Empty fields are
// taken from the environment where MLflow's client reads them, then from
// the defaults below.
type Config struct {
	// TrackingURI is the server, http:// or https:// (MLFLOW_TRACKING_URI).
	TrackingURI string
	// Experiment is the experiment's name, created when missing
	// (MLFLOW_EXPERIMENT_NAME; default "Default").
	Experiment string
	// ExperimentID names the experiment by id instead (MLFLOW_EXPERIMENT_ID).
	ExperimentID string
	// RunID resumes that run instead of creating one (MLFLOW_RUN_ID).
	RunID string
	// RunName names a new run (default tracking.DefaultRunName).
	RunName string
	// Tags are set on a new run, over the system tags (tracking.RunTags).
	Tags map[string]string
	// StartTime is a new run's start (default: now).
	StartTime time.Time

	// Token is sent as "Authorization: Bearer" (MLFLOW_TRACKING_TOKEN);
	// else Username and Password as basic auth
	// (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD). They are
	// never written to the spool.
	Token, Username, Password string

	// SpoolDir is the directory under which the run's spool (its journal
	// of what is not delivered yet) is kept, in a subdirectory of its own
	// (default: the user cache directory's whet/mlflow-spool).
	SpoolDir string
	// KeepSpool keeps the spool directory after everything is delivered.
	KeepSpool bool

	// HTTPClient sends the requests (default: a client with TLS
	// verification, as http.DefaultTransport does it).
	HTTPClient *http.Client
	// RequestTimeout bounds one request (default 30s).
	RequestTimeout time.Duration
	// StartTimeout bounds how long New waits for the server to create or
	// find the run; past it, the run is created in the background
	// (default 10s).
	StartTimeout time.Duration
	// FlushTimeout bounds how long Finish waits for delivery (default 30s).
	FlushTimeout time.Duration
	// RetryMin and RetryMax bound the delay between delivery attempts,
	// which doubles after each failure (defaults 250ms and 30s).
	RetryMin, RetryMax time.Duration

	// Logf receives warnings (a server that cannot be reached, a batch it
	// refused); nil discards them.
	Logf func(format string, args ...any)
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// fromEnv fills c's empty fields that MLflow's client reads from the
// environment.
func (c Config) fromEnv() Config {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	c.Getenv = getenv
	fill := func(p *string, env string) {
		if *p == "" {
			*p = strings.TrimSpace(getenv(env))
		}
	}
	fill(&c.TrackingURI, EnvTrackingURI)
	if c.Experiment == "" && c.ExperimentID == "" {
		fill(&c.Experiment, EnvExperimentName)
		fill(&c.ExperimentID, EnvExperimentID)
	}
	fill(&c.RunID, EnvRunID)
	if c.Token == "" && c.Username == "" && c.Password == "" {
		fill(&c.Token, EnvToken)
		fill(&c.Username, EnvUsername)
		fill(&c.Password, EnvPassword)
	}
	return c
}

// resolve fills c's empty fields from the environment and the defaults.
func (c Config) resolve() (Config, error) {
	c = c.fromEnv()
	if c.Experiment == "" && c.ExperimentID == "" {
		c.Experiment = "Default"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&c.RequestTimeout, 30*time.Second)
	def(&c.StartTimeout, 10*time.Second)
	def(&c.FlushTimeout, 30*time.Second)
	def(&c.RetryMin, 250*time.Millisecond)
	def(&c.RetryMax, 30*time.Second)
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.SpoolDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return c, fmt.Errorf("mlflow: no spool directory given and no user cache directory: %w", err)
		}
		c.SpoolDir = filepath.Join(cache, "whet", "mlflow-spool")
	}
	return c, nil
}

// parseServerURI checks that uri is an http(s) MLflow server.
func parseServerURI(uri string) (*url.URL, error) {
	if uri == "" {
		return nil, fmt.Errorf("mlflow: no tracking URI: set tracking_uri or %s", EnvTrackingURI)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("mlflow: tracking URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("mlflow: tracking URI %q: want an http:// or https:// server", uri)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q has no host", uri)
	}
	if u.User != nil {
		return nil, fmt.Errorf("mlflow: tracking URI %q: put credentials in %s/%s or %s, not in the URI", redact(u), EnvUsername, EnvPassword, EnvToken)
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// authFunc sets the Authorization header from a token or a user name and
// password.
func authFunc(token, user, password string) func(*http.Request) {
	switch {
	case token != "":
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	case user != "" || password != "":
		enc := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		return func(r *http.Request) { r.Header.Set("Authorization", "Basic "+enc) }
	}
	return nil
}

func newClient(c Config, base *url.URL) *client {
	return &client{base: base, hc: c.HTTPClient, auth: authFunc(c.Token, c.Username, c.Password), timeout: c.RequestTimeout}
}
