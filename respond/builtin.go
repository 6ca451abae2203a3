package respond

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed rules/*.yaml
var builtinFS embed.FS

// Builtin parses the built-in rule pack: the playbooks and the rules for
// the threats Warden is built against (docs/respond.md lists them).
func Builtin() ([]Document, error) {
	names, err := fs.Glob(builtinFS, "rules/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Document
	for _, n := range names {
		b, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		docs, err := ParseFile("builtin:"+filepath.Base(n), b)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
	}
	return out, nil
}

// BuiltinSource returns the YAML of the built-in pack, for operators to
// read or copy.
func BuiltinSource() (map[string][]byte, error) {
	names, err := fs.Glob(builtinFS, "rules/*.yaml")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(n)] = b
	}
	return out, nil
}

// LoadFiles parses rule files; a directory contributes its *.yaml and
// *.yml files, in name order. Every file's errors are reported.
func LoadFiles(paths []string) ([]Document, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("rule file: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("rule directory: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
	}
	var out []Document
	var errs []string
	for _, f := range files {
		b, err := readLimited(f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		docs, err := ParseFile(f, b)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, docs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("rule file %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("rule file %s: larger than %d bytes", path, maxFileBytes)
	}
	return b, nil
}
