package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// extensions are the file types a dataset may hold.
var extensions = map[string]bool{".jsonl": true, ".json": true, ".parquet": true, ".csv": true, ".tsv": true, ".txt": true}

// ListFiles expands paths, glob patterns (as filepath.Match reads them)
// and directories (searched recursively for files with a known extension:
// .jsonl, .json, .parquet, .csv, .tsv, .txt; hidden files and directories
// are skipped) into a list of files. The files of one entry are sorted by
// name; entries keep their order and a file named twice is listed once.
// An entry that matches nothing, or names a file of an unknown type, is an
// error.
func ListFiles(patterns []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, pat := range patterns {
		matches, err := expand(pat)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			add(m)
		}
	}
	return out, nil
}

// expand lists the files of one entry of ListFiles.
func expand(pat string) ([]string, error) {
	if pat == "" {
		return nil, errors.New("data: empty file name")
	}
	var paths []string
	if st, err := os.Stat(pat); err == nil {
		paths = []string{pat}
		if !st.IsDir() {
			if !extensions[strings.ToLower(filepath.Ext(pat))] {
				return nil, fmt.Errorf("data: %s: unknown file type %q; want .jsonl, .json, .parquet, .csv, .tsv or .txt", pat, filepath.Ext(pat))
			}
			return paths, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data: %w", err)
	} else {
		m, gerr := filepath.Glob(pat)
		if gerr != nil {
			return nil, fmt.Errorf("data: pattern %q: %w", pat, gerr)
		}
		if len(m) == 0 {
			if strings.ContainsAny(pat, "*?[") {
				return nil, fmt.Errorf("data: pattern %q matches no file", pat)
			}
			return nil, fmt.Errorf("data: %w", err)
		}
		sort.Strings(m)
		paths = m
	}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		if !st.IsDir() {
			if extensions[strings.ToLower(filepath.Ext(p))] {
				files = append(files, p)
			}
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && extensions[strings.ToLower(filepath.Ext(path))] {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("data: %s holds no .jsonl, .json, .parquet, .csv, .tsv or .txt file", pat)
	}
	return files, nil
}
