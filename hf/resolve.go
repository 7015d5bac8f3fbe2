package hf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// AdapterConfigFile is the name of a PEFT adapter's configuration file.
const AdapterConfigFile = "adapter_config.json"

// DefaultRevision is the revision Resolve looks up when none is given.
const DefaultRevision = "main"

// ModelDir is a model directory on disk: a local directory, or a snapshot
// in the Hugging Face cache. It holds config.json (or, for a PEFT adapter,
// adapter_config.json); its methods locate and read the other files.
type ModelDir struct {
	path     string
	repoID   string
	revision string
	commit   string
}

// Path returns the directory's absolute path. For a cached repo it is the
// snapshot directory, models--ORG--NAME/snapshots/COMMIT.
func (m *ModelDir) Path() string { return m.path }

// RepoID returns the Hugging Face repo id the directory was found under, or
// "" for a local directory.
func (m *ModelDir) RepoID() string { return m.repoID }

// Revision returns the revision that was resolved (a branch, a tag or a
// commit; "main" when none was given), or "" for a local directory.
func (m *ModelDir) Revision() string { return m.revision }

// Commit returns the commit hash of a cached snapshot, or "" for a local
// directory.
func (m *ModelDir) Commit() string { return m.commit }

// IsAdapter reports whether the directory holds a PEFT adapter, that is an
// adapter_config.json.
func (m *ModelDir) IsAdapter() bool {
	return checkRegular(filepath.Join(m.path, AdapterConfigFile)) == nil
}

// Open returns the model directory at dir, which must exist and hold
// config.json or adapter_config.json. It never consults the cache.
func Open(dir string) (*ModelDir, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, errors.New("no model directory given")
	}
	p, err := expandUser(dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", abs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("model %s is a file; want a model directory (one holding config.json)", abs)
	}
	return openDir(abs, "", "", "")
}

// openDir checks that dir holds a config and returns it as a ModelDir.
func openDir(dir, repoID, revision, commit string) (*ModelDir, error) {
	cfg := filepath.Join(dir, ConfigFile)
	err := checkRegular(cfg)
	if err == nil {
		return &ModelDir{path: dir, repoID: repoID, revision: revision, commit: commit}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if checkRegular(filepath.Join(dir, AdapterConfigFile)) == nil {
		return &ModelDir{path: dir, repoID: repoID, revision: revision, commit: commit}, nil
	}
	hint := ""
	if commit != "" {
		hint = fmt.Sprintf("; the snapshot may be a partial download: fetch the whole repo with `huggingface-cli download %s%s`",
			repoID, revisionFlag(revision))
	}
	return nil, fmt.Errorf("model directory %s has no %s (nor the %s of a PEFT adapter), so it is not a Hugging Face model directory%s",
		dir, ConfigFile, AdapterConfigFile, hint)
}

// checkRegular returns nil if path is a regular file (following links), an
// error wrapping fs.ErrNotExist if there is nothing there, and a clear
// error for a dangling link or a directory.
func checkRegular(path string) error {
	st, err := os.Stat(path)
	if err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); lerr == nil {
			// Deliberately not wrapping fs.ErrNotExist: a dangling link is
			// an error to report, not a file that is simply absent.
			return fmt.Errorf("%s is a link to a missing file (an interrupted download?): %v", path, err)
		}
		return err
	}
	return fmt.Errorf("stat %s: %w", path, err)
}

// commitRE is a full commit hash as huggingface_hub recognises one
// (REGEX_COMMIT_HASH in file_download.py): lowercase only.
var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// commitPrefixRE is what might be an abbreviated commit hash.
var commitPrefixRE = regexp.MustCompile(`^[0-9a-fA-F]{5,39}$`)

// Resolve finds a model by name without downloading anything.
//
// model is a local directory (absolute, relative, or starting with ~) or a
// Hugging Face repo id, "org/name" or "name". A directory that exists wins
// over a repo id of the same spelling. A repo id is looked up in the local
// Hugging Face cache (see HubCacheDir) at revision: a branch or tag, read
// from models--ORG--NAME/refs/REVISION, or a full 40-hex commit, used as
// snapshots/COMMIT directly; "" means "main". Like huggingface_hub offline,
// Resolve does not accept an abbreviated commit.
//
// A model found nowhere is a *NotFoundError, which lists every path tried
// and the command that would fetch the model. A directory without
// config.json (or a PEFT adapter's adapter_config.json) is an error.
func Resolve(model, revision string) (*ModelDir, error) {
	if strings.TrimSpace(model) == "" {
		return nil, errors.New("no model given; want a model directory or a Hugging Face repo id such as meta-llama/Llama-3.2-1B")
	}
	if strings.ContainsRune(model, 0) || strings.ContainsRune(revision, 0) {
		return nil, fmt.Errorf("model %q or revision %q contains a NUL byte", model, revision)
	}
	local, err := expandUser(model)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", model, err)
	}
	st, statErr := os.Stat(abs)
	switch {
	case statErr == nil && !st.IsDir():
		return nil, fmt.Errorf("model %s is a file; want a model directory (one holding config.json)", abs)
	case statErr == nil:
		if revision != "" {
			return nil, fmt.Errorf("model %s is a local directory, so revision %q cannot apply; revisions select a snapshot of a repo in the Hugging Face cache", abs, revision)
		}
		return openDir(abs, "", "", "")
	case !errors.Is(statErr, fs.ErrNotExist) && !errors.Is(statErr, syscall.ENOTDIR):
		return nil, fmt.Errorf("model %s: %w", abs, statErr)
	}

	if why := repoIDProblem(model); why != "" {
		return nil, fmt.Errorf("model directory %s does not exist (and %q is not a Hugging Face repo id: %s)", abs, model, why)
	}
	cache, err := HubCacheDir()
	if err != nil {
		return nil, err
	}
	return resolveCached(cache, model, revision, []Tried{{abs, "no such directory"}})
}

// Tried is one place Resolve looked for a model, and what it found there.
type Tried struct {
	// Path is the path looked at.
	Path string
	// Result says what was there: "no such directory", "no such branch or
	// tag", "points to commit ...", ...
	Result string
}

// NotFoundError is Resolve's error for a model that is neither a local
// directory nor in the Hugging Face cache.
type NotFoundError struct {
	// Model and Revision are Resolve's arguments.
	Model, Revision string
	// Tried lists every path looked at, in order.
	Tried []Tried
	// Hint is an extra sentence (e.g. about an abbreviated commit), or "".
	Hint string
}

// Error lists the paths tried and the command that would fetch the model.
func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "model %q", e.Model)
	if e.Revision != "" {
		fmt.Fprintf(&b, " at revision %q", e.Revision)
	}
	b.WriteString(" is not a local directory and is not in the Hugging Face cache (whet never downloads). Looked for:")
	for _, t := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %s", t.Path, t.Result)
	}
	if e.Hint != "" {
		b.WriteString("\n")
		b.WriteString(e.Hint)
	}
	fmt.Fprintf(&b, "\nFetch it with:\n  %s\n(with huggingface_hub 1.x the command is `hf download %s%s`; set HF_HUB_CACHE or HF_HOME if your cache is elsewhere)",
		e.Command(), e.Model, revisionFlag(e.Revision))
	return b.String()
}

// Command returns the shell command that downloads the model into the
// Hugging Face cache: huggingface-cli download ORG/NAME [--revision REV].
func (e *NotFoundError) Command() string {
	return "huggingface-cli download " + e.Model + revisionFlag(e.Revision)
}

func revisionFlag(rev string) string {
	if rev == "" {
		return ""
	}
	return " --revision " + shellQuote(rev)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@+", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// resolveCached looks repo up in the hub cache at cache.
func resolveCached(cache, repo, revision string, tried []Tried) (*ModelDir, error) {
	notFound := func(hint string) error {
		return &NotFoundError{Model: repo, Revision: revision, Tried: tried, Hint: hint}
	}
	rev := revision
	if rev == "" {
		rev = DefaultRevision
	}
	if why := revisionProblem(rev); why != "" {
		return nil, fmt.Errorf("revision %q: %s", rev, why)
	}
	repoDir := filepath.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"))
	if st, err := os.Stat(repoDir); err != nil || !st.IsDir() {
		tried = append(tried, Tried{repoDir, "not in the cache"})
		return nil, notFound("")
	}

	commit := ""
	if commitRE.MatchString(rev) {
		commit = rev
	} else {
		ref := filepath.Join(repoDir, "refs", filepath.FromSlash(rev))
		data, err := os.ReadFile(ref)
		switch {
		case err == nil:
			commit = strings.TrimSpace(string(data))
			if !commitRE.MatchString(commit) {
				return nil, fmt.Errorf("ref file %s holds %q; want a 40-hex commit hash", ref, shorten(commit, 60))
			}
			tried = append(tried, Tried{ref, "points to commit " + commit})
		case errors.Is(err, fs.ErrNotExist) || isDirErr(ref):
			tried = append(tried, Tried{ref, "no such branch or tag"})
		default:
			return nil, fmt.Errorf("read %s: %w", ref, err)
		}
	}
	if commit != "" {
		snap := filepath.Join(repoDir, "snapshots", commit)
		if st, err := os.Stat(snap); err == nil && st.IsDir() {
			return openDir(snap, repo, rev, commit)
		}
		tried = append(tried, Tried{snap, "no such snapshot"})
		return nil, notFound(cachedRevisions(repoDir))
	}
	hint := revisionHint(repoDir, rev)
	if hint == "" {
		hint = cachedRevisions(repoDir)
	}
	return nil, notFound(hint)
}

// cachedRevisions describes what the cache holds of a repo: its refs and
// its snapshots, at most ten of each, or "" if it holds neither.
func cachedRevisions(repoDir string) string {
	const most = 10
	list := func(names []string) string {
		sort.Strings(names)
		if len(names) > most {
			return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
		}
		return strings.Join(names, ", ")
	}
	var refs []string
	refsDir := filepath.Join(repoDir, "refs")
	_ = filepath.WalkDir(refsDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if rel, err := filepath.Rel(refsDir, path); err == nil {
				refs = append(refs, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	var snaps []string
	if entries, err := os.ReadDir(filepath.Join(repoDir, "snapshots")); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				snaps = append(snaps, e.Name())
			}
		}
	}
	var parts []string
	if len(refs) > 0 {
		parts = append(parts, "branches and tags: "+list(refs))
	}
	if len(snaps) > 0 {
		parts = append(parts, "snapshots: "+list(snaps))
	}
	if len(parts) == 0 {
		return ""
	}
	return "The cache holds this repo at " + strings.Join(parts, "; ") + "."
}

// revisionHint explains a revision that looks like an abbreviated or
// upper-case commit hash, naming the snapshots it could mean.
func revisionHint(repoDir, rev string) string {
	if !commitPrefixRE.MatchString(rev) && !(len(rev) == 40 && commitPrefixRE.MatchString(rev[:39])) {
		return ""
	}
	entries, err := os.ReadDir(filepath.Join(repoDir, "snapshots"))
	if err != nil {
		return ""
	}
	var match []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), strings.ToLower(rev)) {
			match = append(match, e.Name())
		}
	}
	if len(match) == 0 {
		return ""
	}
	sort.Strings(match)
	return fmt.Sprintf("%q looks like an abbreviated or upper-case commit; like huggingface_hub offline, whet needs the full lowercase 40-hex hash. Cached snapshots that match: %s",
		rev, strings.Join(match, ", "))
}

// repoIDProblem says why s is not a valid Hugging Face repo id, or "" if
// it is one. It follows huggingface_hub's validate_repo_id: at most one
// "/", each part made of letters, digits, "_", "-" and ".", starting and
// ending with a letter, digit or "_", no "--" or "..", no ".git" suffix,
// the name at most 96 characters.
func repoIDProblem(s string) string {
	parts := strings.Split(s, "/")
	if len(parts) > 2 {
		return "a repo id has at most one \"/\""
	}
	for _, p := range parts {
		if p == "" {
			return "empty organisation or name"
		}
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				return fmt.Sprintf("character %q is not allowed", r)
			}
		}
		if strings.ContainsAny(p[:1], "-.") || strings.ContainsAny(p[len(p)-1:], "-.") {
			return fmt.Sprintf("%q starts or ends with \"-\" or \".\"", p)
		}
	}
	if len(parts[len(parts)-1]) > 96 {
		return "the name is longer than 96 characters"
	}
	if strings.Contains(s, "--") || strings.Contains(s, "..") {
		return "\"--\" and \"..\" are not allowed"
	}
	if strings.HasSuffix(s, ".git") {
		return "a repo id does not end in .git"
	}
	return ""
}

// revisionProblem says why rev cannot name a ref file inside refs/, or "".
func revisionProblem(rev string) string {
	if strings.HasPrefix(rev, "/") || strings.Contains(rev, `\`) {
		return "not a branch, tag or commit name"
	}
	for _, seg := range strings.Split(rev, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "not a branch, tag or commit name"
		}
	}
	return ""
}

// isDirErr reports whether path exists and is a directory (a ref name
// that is a prefix of other refs, such as "refs/pr").
func isDirErr(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// HubCacheDir returns the Hugging Face hub cache directory, as
// huggingface_hub's constants.py computes it: $HF_HUB_CACHE, else the
// legacy $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. As there,
// a leading ~ and $VAR references in the variables are expanded. Unlike
// huggingface_hub, a variable set to the empty string counts as unset.
func HubCacheDir() (string, error) {
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if s := os.Getenv(v); s != "" {
			return expandPath(v, s)
		}
	}
	if s := os.Getenv("HF_HOME"); s != "" {
		home, err := expandPath("HF_HOME", s)
		if err != nil {
			return "", err
		}
		return filepath.Join(home, "hub"), nil
	}
	if s := os.Getenv("XDG_CACHE_HOME"); s != "" {
		xdg, err := expandPath("XDG_CACHE_HOME", s)
		if err != nil {
			return "", err
		}
		return filepath.Join(xdg, "huggingface", "hub"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the Hugging Face cache: %w (set HF_HUB_CACHE or HF_HOME)", err)
	}
	return filepath.Join(home, ".cache", "huggingface", "hub"), nil
}

// expandPath expands ~ and then $VAR in the value of environment variable
// name, as os.path.expandvars(os.path.expanduser(v)) does.
func expandPath(name, v string) (string, error) {
	p, err := expandUser(v)
	if err != nil {
		return "", fmt.Errorf("%s=%s: %w", name, v, err)
	}
	return expandVars(p), nil
}

// expandUser replaces a leading "~" or "~user" with that home directory,
// as Python's os.path.expanduser does; other paths are returned unchanged,
// as is "~user" for an unknown user.
func expandUser(p string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	name, rest, _ := strings.Cut(p[1:], "/")
	var home string
	if name == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		home = h
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return p, nil
		}
		home = u.HomeDir
	}
	if rest == "" {
		return home, nil
	}
	return filepath.Join(home, rest), nil
}

// expandVars replaces $NAME and ${NAME} with the variable's value when it
// is set and leaves the text alone when it is not, as Python's
// os.path.expandvars does.
func expandVars(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		name, end := "", i+1
		if end < len(s) && s[end] == '{' {
			if j := strings.IndexByte(s[end:], '}'); j > 0 {
				name, end = s[end+1:end+j], end+j+1
			}
		} else {
			for end < len(s) && (s[end] == '_' || s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] >= '0' && s[end] <= '9') {
				end++
			}
			name = s[i+1 : end]
		}
		if v, ok := os.LookupEnv(name); ok && name != "" {
			b.WriteString(v)
		} else {
			b.WriteString(s[i:end])
		}
		i = end
	}
	return b.String()
}
