package hf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	commitMain = "1111111111111111111111111111111111111111"
	commitTag  = "2222222222222222222222222222222222222222"
	commitPR   = "3a5c0ffee3a5c0ffee3a5c0ffee3a5c0ffee3a5c"
	commitOnly = "abcdef0123456789abcdef0123456789abcdef01"
	commitGone = "4444444444444444444444444444444444444444"
	commitBare = "5555555555555555555555555555555555555555"
)

// write creates path (and its parents) holding data.
func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot adds snapshots/COMMIT/config.json to a cached repo, laid out as
// huggingface_hub does it: the file a relative link to a blob.
func snapshot(t testing.TB, repoDir, commit string) string {
	t.Helper()
	blob := filepath.Join(repoDir, "blobs", "etag-"+commit)
	write(t, blob, `{"model_type": "llama"}`)
	snap := filepath.Join(repoDir, "snapshots", commit)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "..", "blobs", "etag-"+commit), filepath.Join(snap, "config.json")); err != nil {
		t.Fatal(err)
	}
	return snap
}

// fakeCache builds a hub cache holding models--org--name (branch main, tag
// v1.0, PR ref refs/pr/1, a commit with no ref, a ref to a missing
// snapshot, a snapshot without config.json) and models--gpt2.
func fakeCache(t testing.TB) string {
	t.Helper()
	cache := t.TempDir()
	repo := filepath.Join(cache, "models--org--name")
	snapshot(t, repo, commitMain)
	snapshot(t, repo, commitTag)
	snapshot(t, repo, commitPR)
	snapshot(t, repo, commitOnly)
	write(t, filepath.Join(repo, "snapshots", commitBare, "tokenizer.json"), "{}")
	write(t, filepath.Join(repo, "refs", "main"), commitMain) // no newline, as huggingface_hub writes it
	write(t, filepath.Join(repo, "refs", "v1.0"), commitTag+"\n")
	write(t, filepath.Join(repo, "refs", "refs", "pr", "1"), commitPR)
	write(t, filepath.Join(repo, "refs", "gone"), commitGone)
	write(t, filepath.Join(repo, "refs", "partial"), commitBare)
	write(t, filepath.Join(repo, "refs", "garbage"), "not a hash")
	gpt2 := filepath.Join(cache, "models--gpt2")
	snapshot(t, gpt2, commitMain)
	write(t, filepath.Join(gpt2, "refs", "main"), commitMain)
	return cache
}

// isolate points every cache variable at nothing and HOME at a fresh
// directory, so that no test reads the real cache.
func isolate(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(v, "")
	}
	t.Chdir(t.TempDir())
	return home
}

func TestResolveCache(t *testing.T) {
	isolate(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "models--org--name")
	for _, tc := range []struct {
		model, revision  string
		commit, resolved string
	}{
		{"org/name", "", commitMain, "main"},
		{"org/name", "main", commitMain, "main"},
		{"org/name", "v1.0", commitTag, "v1.0"},
		{"org/name", "refs/pr/1", commitPR, "refs/pr/1"},
		{"org/name", commitOnly, commitOnly, commitOnly},
		{"org/name", commitTag, commitTag, commitTag},
		{"gpt2", "", commitMain, "main"},
	} {
		m, err := Resolve(tc.model, tc.revision)
		if err != nil {
			t.Errorf("Resolve(%q, %q): %v", tc.model, tc.revision, err)
			continue
		}
		base := repo
		if tc.model == "gpt2" {
			base = filepath.Join(cache, "models--gpt2")
		}
		if want := filepath.Join(base, "snapshots", tc.commit); m.Path() != want {
			t.Errorf("Resolve(%q, %q).Path() = %s, want %s", tc.model, tc.revision, m.Path(), want)
		}
		if m.Commit() != tc.commit || m.Revision() != tc.resolved || m.RepoID() != tc.model {
			t.Errorf("Resolve(%q, %q) = commit %q revision %q repo %q", tc.model, tc.revision, m.Commit(), m.Revision(), m.RepoID())
		}
	}
}

func TestResolveNotFound(t *testing.T) {
	isolate(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	cwd, _ := os.Getwd()
	repo := filepath.Join(cache, "models--org--name")
	for _, tc := range []struct {
		model, revision string
		tried           []string // in order
		command         string
		hint            string
	}{
		{"org/missing", "", []string{filepath.Join(cwd, "org", "missing"), filepath.Join(cache, "models--org--missing")},
			"huggingface-cli download org/missing", ""},
		{"org/missing", "v2", []string{filepath.Join(cwd, "org", "missing"), filepath.Join(cache, "models--org--missing")},
			"huggingface-cli download org/missing --revision v2", ""},
		{"org/name", "nope", []string{filepath.Join(cwd, "org", "name"), filepath.Join(repo, "refs", "nope")},
			"huggingface-cli download org/name --revision nope",
			"The cache holds this repo at branches and tags: garbage, gone, main, partial, refs/pr/1, v1.0; snapshots: " +
				strings.Join([]string{commitMain, commitTag, commitPR, commitBare, commitOnly}, ", ") + "."},
		{"org/name", "gone", []string{filepath.Join(repo, "refs", "gone"), filepath.Join(repo, "snapshots", commitGone)},
			"huggingface-cli download org/name --revision gone", ""},
		{"org/name", commitGone, []string{filepath.Join(repo, "snapshots", commitGone)},
			"huggingface-cli download org/name --revision " + commitGone, ""},
		{"org/name", "abcdef0", []string{filepath.Join(repo, "refs", "abcdef0")},
			"huggingface-cli download org/name --revision abcdef0", "Cached snapshots that match: " + commitOnly},
		{"org/name", strings.ToUpper(commitOnly), []string{filepath.Join(repo, "refs", strings.ToUpper(commitOnly))},
			"", "full lowercase 40-hex hash. Cached snapshots that match: " + commitOnly},
		{"org/name", "refs/pr", []string{filepath.Join(repo, "refs", "refs", "pr")}, "", ""},
		{"org/name", "it's", nil, `huggingface-cli download org/name --revision 'it'\''s'`, ""},
	} {
		_, err := Resolve(tc.model, tc.revision)
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Errorf("Resolve(%q, %q): error %v, want a *NotFoundError", tc.model, tc.revision, err)
			continue
		}
		msg := err.Error()
		last := -1
		for _, p := range tc.tried {
			i := strings.Index(msg, "\n  "+p+": ")
			if i < 0 || i < last {
				t.Errorf("Resolve(%q, %q): error does not list %s (in order):\n%s", tc.model, tc.revision, p, msg)
			}
			last = i
		}
		if tc.command != "" && (!strings.Contains(msg, "\n  "+tc.command+"\n") || nf.Command() != tc.command) {
			t.Errorf("Resolve(%q, %q): error lacks command %q:\n%s", tc.model, tc.revision, tc.command, msg)
		}
		if !strings.Contains(msg, "hf download "+tc.model) || !strings.Contains(msg, "never downloads") {
			t.Errorf("Resolve(%q, %q): error lacks the hf download variant:\n%s", tc.model, tc.revision, msg)
		}
		if tc.hint != "" && !strings.Contains(msg, tc.hint) {
			t.Errorf("Resolve(%q, %q): error lacks hint %q:\n%s", tc.model, tc.revision, tc.hint, msg)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	home := isolate(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "models--org--name")
	write(t, filepath.Join(home, "file.txt"), "x")
	dangling := filepath.Join(home, "dangling")
	if err := os.MkdirAll(dangling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing-blob", filepath.Join(dangling, "config.json")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(home, "withcfg", "config.json"), "{}")
	for _, tc := range []struct {
		model, revision string
		want            []string
		notWant         string
	}{
		{"", "", []string{"no model given"}, ""},
		{"org/name", "partial", []string{filepath.Join(repo, "snapshots", commitBare), "has no config.json", "partial download", "huggingface-cli download org/name --revision partial"}, ""},
		{"org/name", "garbage", []string{"ref file " + filepath.Join(repo, "refs", "garbage"), `holds "not a hash"`, "40-hex"}, ""},
		{"org/name", "../../etc", []string{`revision "../../etc": not a branch, tag or commit name`}, ""},
		{"org/name", "/abs", []string{`not a branch, tag or commit name`}, ""},
		{"./nope", "", []string{"does not exist", `"./nope" is not a Hugging Face repo id`}, "huggingface-cli"},
		{"/no/such/dir", "", []string{"model directory /no/such/dir does not exist"}, "huggingface-cli"},
		{"org--x/name", "", []string{`not allowed`}, "huggingface-cli"},
		{"a/b/c", "", []string{"at most one"}, ""},
		{"-org/name", "", []string{`starts or ends with`}, ""},
		{"org/name.git", "", []string{`.git`}, ""},
		{"~/file.txt", "", []string{filepath.Join(home, "file.txt") + " is a file; want a model directory"}, ""},
		{"~", "", []string{"model directory " + home + " has no config.json (nor the adapter_config.json"}, "partial download"},
		{"~/dangling", "", []string{filepath.Join(dangling, "config.json") + " is a link to a missing file"}, ""},
		{"~/withcfg", "v1", []string{"is a local directory, so revision \"v1\" cannot apply"}, ""},
		{"org/name\x00", "", []string{"NUL"}, ""},
	} {
		m, err := Resolve(tc.model, tc.revision)
		if err == nil {
			t.Errorf("Resolve(%q, %q) = %s; want an error", tc.model, tc.revision, m.Path())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q, %q): error %q lacks %q", tc.model, tc.revision, err, w)
			}
		}
		if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
			t.Errorf("Resolve(%q, %q): error %q should not mention %q", tc.model, tc.revision, err, tc.notWant)
		}
	}
}

func TestResolveLocal(t *testing.T) {
	home := isolate(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	cwd, _ := os.Getwd()
	// A local org/name shadows the cached repo of the same name.
	write(t, filepath.Join(cwd, "org", "name", "config.json"), "{}")
	write(t, filepath.Join(home, "models", "m", "config.json"), "{}")
	write(t, filepath.Join(home, "adapter", "adapter_config.json"), "{}")
	for _, tc := range []struct{ model, want string }{
		{"org/name", filepath.Join(cwd, "org", "name")},
		{"./org/name", filepath.Join(cwd, "org", "name")},
		{"org/name/", filepath.Join(cwd, "org", "name")},
		{filepath.Join(cwd, "org", "name"), filepath.Join(cwd, "org", "name")},
		{"~/models/m", filepath.Join(home, "models", "m")},
		{"~/adapter", filepath.Join(home, "adapter")},
	} {
		m, err := Resolve(tc.model, "")
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.model, err)
			continue
		}
		if m.Path() != tc.want || m.RepoID() != "" || m.Commit() != "" || m.Revision() != "" {
			t.Errorf("Resolve(%q) = %s (repo %q commit %q), want local %s", tc.model, m.Path(), m.RepoID(), m.Commit(), tc.want)
		}
		if got, want := m.IsAdapter(), strings.HasSuffix(tc.want, "adapter"); got != want {
			t.Errorf("Resolve(%q).IsAdapter() = %v", tc.model, got)
		}
		o, err := Open(tc.model)
		if err != nil || o.Path() != tc.want {
			t.Errorf("Open(%q) = %v, %v", tc.model, o, err)
		}
	}
	if _, err := Open(""); err == nil || !strings.Contains(err.Error(), "no model directory given") {
		t.Errorf("Open(\"\"): error %v", err)
	}
	if _, err := Open("org/missing"); err == nil || !strings.Contains(err.Error(), filepath.Join(cwd, "org", "missing")) {
		t.Errorf("Open(org/missing): error %v, want one naming the path", err)
	}
}

func TestHubCacheDir(t *testing.T) {
	home := isolate(t)
	t.Setenv("WHET_TEST_ROOT", "/srv")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, filepath.Join(home, ".cache", "huggingface", "hub")},
		{map[string]string{"XDG_CACHE_HOME": "/xdg"}, "/xdg/huggingface/hub"},
		{map[string]string{"XDG_CACHE_HOME": "/xdg", "HF_HOME": "/hfhome"}, "/hfhome/hub"},
		{map[string]string{"HF_HOME": "~/hf"}, filepath.Join(home, "hf", "hub")},
		{map[string]string{"HF_HOME": "$WHET_TEST_ROOT/hf"}, "/srv/hf/hub"},
		{map[string]string{"HF_HOME": "${WHET_TEST_ROOT}/hf/$UNSET_WHET_VAR"}, "/srv/hf/$UNSET_WHET_VAR/hub"},
		{map[string]string{"HF_HOME": "/hfhome", "HUGGINGFACE_HUB_CACHE": "/legacy"}, "/legacy"},
		{map[string]string{"HF_HOME": "/hfhome", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_CACHE": "/hub"}, "/hub"},
		{map[string]string{"HF_HUB_CACHE": "~/hub", "XDG_CACHE_HOME": "/xdg"}, filepath.Join(home, "hub")},
	} {
		for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
			t.Setenv(v, tc.env[v])
		}
		got, err := HubCacheDir()
		if err != nil || got != tc.want {
			t.Errorf("HubCacheDir with %v = %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
}

// TestResolvePrecedence resolves the same repo id from caches that
// HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME point at, each holding a
// different commit, and checks that the right one wins.
func TestResolvePrecedence(t *testing.T) {
	home := isolate(t)
	hub, hfHome, xdg := t.TempDir(), t.TempDir(), t.TempDir()
	put := func(cache, commit string) {
		repo := filepath.Join(cache, "models--org--name")
		snapshot(t, repo, commit)
		write(t, filepath.Join(repo, "refs", "main"), commit)
	}
	put(hub, commitMain)
	put(filepath.Join(hfHome, "hub"), commitTag)
	put(filepath.Join(xdg, "huggingface", "hub"), commitPR)
	put(filepath.Join(home, ".cache", "huggingface", "hub"), commitOnly)
	for _, tc := range []struct {
		hub, hfHome, xdg string
		want             string
	}{
		{hub, hfHome, xdg, commitMain},
		{"", hfHome, xdg, commitTag},
		{"", "", xdg, commitPR},
		{"", "", "", commitOnly},
	} {
		t.Setenv("HF_HUB_CACHE", tc.hub)
		t.Setenv("HF_HOME", tc.hfHome)
		t.Setenv("XDG_CACHE_HOME", tc.xdg)
		m, err := Resolve("org/name", "")
		if err != nil {
			t.Errorf("HF_HUB_CACHE=%q HF_HOME=%q XDG_CACHE_HOME=%q: %v", tc.hub, tc.hfHome, tc.xdg, err)
			continue
		}
		if m.Commit() != tc.want {
			t.Errorf("HF_HUB_CACHE=%q HF_HOME=%q XDG_CACHE_HOME=%q: commit %s, want %s", tc.hub, tc.hfHome, tc.xdg, m.Commit(), tc.want)
		}
	}
	// The error for a missing model names the cache that was searched.
	t.Setenv("HF_HUB_CACHE", hub)
	_, err := Resolve("org/other", "")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(hub, "models--org--other")) {
		t.Errorf("missing model: error %v, want it to name %s", err, hub)
	}
}

func TestRepoIDProblem(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"meta-llama/Llama-3.2-1B", true},
		{"Qwen/Qwen2.5-0.5B", true},
		{"gpt2", true},
		{"org_1/my.model_v2", true},
		{"", false},
		{"/abs", false},
		{"a/b/c", false},
		{"org/", false},
		{"org/-x", false},
		{"org/x.", false},
		{"org/a--b", false},
		{"org/a..b", false},
		{"org/x.git", false},
		{"org/x y", false},
		{"~/x", false},
		{"./x", false},
		{"org/" + strings.Repeat("x", 97), false},
	} {
		if got := repoIDProblem(tc.id) == ""; got != tc.ok {
			t.Errorf("repoIDProblem(%q) = %q; want ok=%v", tc.id, repoIDProblem(tc.id), tc.ok)
		}
	}
}
