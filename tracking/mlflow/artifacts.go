package mlflow

import (
	"context"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/whet-ai/whet/tracking/mlflowfile"
)

// proxyBase is the route of the tracking server's artifact proxy
// (mlflow server --serve-artifacts, the default since MLflow 2.0).
const proxyBase = "/api/2.0/mlflow-artifacts/artifacts"

func checkArtifactPath(p string) error {
	if err := mlflowfile.CheckArtifactPath(strings.Trim(p, "/")); err != nil {
		return fmt.Errorf("mlflow: %w", err)
	}
	return nil
}

var slashes = regexp.MustCompile(`//+`)

// proxyURL resolves an mlflow-artifacts: URI against the tracking URI as
// MLflow's MlflowArtifactsRepository.resolve_uri does:
// mlflow-artifacts:/0/abc/artifacts with http://host:5000 gives
// http://host:5000/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts.
func proxyURL(tracking, artifact *url.URL) string {
	var p string
	switch artifact.Path {
	case "/":
		p = proxyBase + "/"
	case proxyBase:
		p = proxyBase
	default:
		p = tracking.Path + "/" + proxyBase + "/" + artifact.Path
	}
	p = slashes.ReplaceAllString(p, "/")
	host := artifact.Host
	if host == "" {
		host = tracking.Host
	}
	u := url.URL{Scheme: tracking.Scheme, Host: host, Path: strings.TrimRight(p, "/")}
	return u.String()
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// deliverArtifact uploads an artifact record: through the server's proxy
// for an mlflow-artifacts: (or http) artifact URI, by copying for a file:
// one.
func (t *Tracker) deliverArtifact(r *record) error {
	t.mu.Lock()
	uri := t.st.ArtifactURI
	t.mu.Unlock()
	st, err := os.Stat(r.Local)
	if err != nil {
		return &localError{fmt.Errorf("mlflow: artifact: %w", err)}
	}
	u, err := url.Parse(uri)
	if err != nil || uri == "" {
		return &localError{fmt.Errorf("mlflow: the run's artifact URI %q cannot be used", uri)}
	}
	switch u.Scheme {
	case "file":
		if _, err := mlflowfile.CopyArtifact(r.Local, filepath.FromSlash(u.Path), r.Path); err != nil {
			return &localError{fmt.Errorf("mlflow: artifact into %s: %w", uri, err)}
		}
		return nil
	case "mlflow-artifacts":
		return t.uploadTree(proxyURL(t.cl.base, u), r, st)
	case "http", "https":
		return t.uploadTree(strings.TrimRight(uri, "/"), r, st)
	default:
		return &localError{fmt.Errorf("mlflow: the run's artifact store %s is not supported: start the server with --serve-artifacts (mlflow-artifacts:) or give it a file: artifact root", uri)}
	}
}

// uploadTree PUTs a file, or every file of a directory, under base.
func (t *Tracker) uploadTree(base string, r *record, st fs.FileInfo) error {
	if !st.IsDir() {
		return t.upload(base, path.Join(r.Path, filepath.Base(r.Local)), r.Local)
	}
	return filepath.WalkDir(r.Local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return &localError{fmt.Errorf("mlflow: artifact: %w", err)}
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(r.Local, p)
		if err != nil {
			return &localError{fmt.Errorf("mlflow: artifact: %w", err)}
		}
		return t.upload(base, path.Join(r.Path, filepath.ToSlash(rel)), p)
	})
}

// upload PUTs one file, as MLflow's HttpArtifactRepository.log_artifact
// does.
func (t *Tracker) upload(base, artifactPath, local string) error {
	f, err := os.Open(local)
	if err != nil {
		return &localError{fmt.Errorf("mlflow: artifact: %w", err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return &localError{fmt.Errorf("mlflow: artifact: %w", err)}
	}
	ctype := mime.TypeByExtension(path.Ext(local))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	ctx := t.ctx
	if t.cl.timeout > 0 {
		// A large file gets a minute per 100 MB on top of the timeout.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cl.timeout+timePer100MB(st.Size()))
		defer cancel()
	}
	u := base + "/" + escapePath(artifactPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, f)
	if err != nil {
		return &localError{fmt.Errorf("mlflow: artifact %s: %w", artifactPath, err)}
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "whet-mlflow")
	if t.cl.auth != nil {
		t.cl.auth(req)
	}
	resp, err := t.cl.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mlflow PUT artifact %s: %w", artifactPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &APIError{Method: "PUT", Endpoint: "mlflow-artifacts/artifacts/" + artifactPath, Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	}
	return nil
}

func timePer100MB(size int64) time.Duration {
	return time.Duration(size/100_000_000+1) * time.Minute
}
