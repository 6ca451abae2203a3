// Package corpus loads the text the injection detector is trained, tuned and
// evaluated on: the project's data sets (../shared/data/injection relative to
// the module root) and hard negatives gathered from ordinary documentation,
// code and program messages installed on the machine, each with its license.
//
// Hard negatives come from fixed, named sources so that training is
// reproducible; a second, disjoint set of ordinary text is held out for
// measuring false positives on text the model never saw.
package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Row is one labelled text.
type Row struct {
	ID       string `json:"id"`
	Text     string `json:"text"`
	Label    int    `json:"label"`
	Source   string `json:"source"`
	Category string `json:"category"`
	Lang     string `json:"lang"`
	License  string `json:"license"`
}

// ReadJSONL reads rows, one JSON object a line.
func ReadJSONL(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening data: %w", err)
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var r Row
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Label != 0 && r.Label != 1 {
			return nil, fmt.Errorf("%s:%d: label %d, want 0 or 1", path, line, r.Label)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return rows, nil
}

// ModuleRoot walks up from dir to the directory holding go.mod.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("go.mod not found above " + dir)
		}
		d = p
	}
}

// ErrNoData says the shared data directory is absent.
var ErrNoData = errors.New("shared data not found: expected ../shared/data/injection beside the repository (or $WARDEN_DATA)")

// DataDir finds the injection data directory: $WARDEN_DATA/injection, or
// ../shared/data/injection relative to the module root above dir.
func DataDir(dir string) (string, error) {
	if env := os.Getenv("WARDEN_DATA"); env != "" {
		p := filepath.Join(env, "injection")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	root, err := ModuleRoot(dir)
	if err != nil {
		return "", ErrNoData
	}
	p := filepath.Join(root, "..", "shared", "data", "injection")
	if _, err := os.Stat(p); err != nil {
		return "", ErrNoData
	}
	return filepath.Clean(p), nil
}

// Module is a Go module whose documentation and code become hard negatives.
type Module struct {
	Path, Version, License string
}

// TrainModules are the modules read for hard negatives. Their versions are
// pinned so training is reproducible; `go mod download path@version` fetches
// one that is missing.
func TrainModules() []Module {
	return []Module{
		{"cel.dev/cel-go", "v0.33.2", "Apache-2.0"},
		{"github.com/cedar-policy/cedar-go", "v1.9.1", "Apache-2.0"},
		{"github.com/modelcontextprotocol/go-sdk", "v1.8.0", "MIT"},
		{"github.com/spf13/cobra", "v1.10.2", "Apache-2.0"},
		{"github.com/nats-io/nats.go", "v1.55.0", "Apache-2.0"},
		{"github.com/prometheus/client_golang", "v1.25.0", "Apache-2.0"},
		{"github.com/klauspost/compress", "v1.20.3", "BSD-3-Clause and Apache-2.0"},
		{"golang.org/x/text", "v0.44.0", "BSD-3-Clause"},
		{"golang.org/x/net", "v0.62.0", "BSD-3-Clause"},
		{"golang.org/x/crypto", "v0.58.0", "BSD-3-Clause"},
		{"github.com/landlock-lsm/go-landlock", "v0.11.2", "MIT"},
		{"github.com/transparency-dev/merkle", "v0.0.2", "Apache-2.0"},
	}
}

// HeldOutModules are read only for measuring false positives.
func HeldOutModules() []Module {
	return []Module{
		{"golang.org/x/sys", "v0.49.0", "BSD-3-Clause"},
		{"golang.org/x/mod", "v0.43.0", "BSD-3-Clause"},
		{"go.yaml.in/yaml/v3", "v3.0.6", "MIT and Apache-2.0"},
		{"github.com/google/go-tpm", "v0.9.8", "Apache-2.0"},
		{"github.com/spf13/pflag", "v1.0.9", "BSD-3-Clause"},
		{"github.com/go-json-experiment/json", "v1.27.2", "BSD-3-Clause"},
	}
}

// Locale domains (gettext catalogs of Debian packages, /usr/share/locale):
// program messages in many languages. Train and held-out sets are disjoint.
func TrainLocaleDomains() []string {
	return []string{"glib20", "gtk20", "gtk20-properties", "apt", "libapt-pkg6.0", "PackageKit", "appstream", "Linux-PAM", "shared-mime-info", "software-properties", "gstreamer-1.0"}
}

// HeldOutLocaleDomains are read only for measuring false positives.
func HeldOutLocaleDomains() []string {
	return []string{"coreutils", "grep", "python-apt", "at-spi2-core", "gdk-pixbuf", "xdg-user-dirs", "gsettings-desktop-schemas"}
}

// focusLangs are the languages of the development set; they get more pieces.
var focusLangs = map[string]bool{"ar": true, "bn": true, "zh_CN": true, "zh_TW": true, "fil": true, "tl": true, "fr": true, "de": true, "hi": true,
	"id": true, "it": true, "ja": true, "ko": true, "pt": true, "pt_BR": true, "ru": true, "es": true, "th": true, "tr": true, "vi": true}

// Options locate the sources of ordinary text.
type Options struct {
	ModCache  string // Go module cache (default: $GOMODCACHE, $GOPATH/pkg/mod, ~/go/pkg/mod)
	LocaleDir string // default /usr/share/locale
	ManDir    string // default /usr/share/man
	GoRoot    string // default $GOROOT or /usr/local/go
	DocDir    string // default /usr/share/doc
}

func (o Options) withDefaults() Options {
	if o.ModCache == "" {
		o.ModCache = os.Getenv("GOMODCACHE")
	}
	if o.ModCache == "" {
		if gp := os.Getenv("GOPATH"); gp != "" {
			o.ModCache = filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
		} else if h, err := os.UserHomeDir(); err == nil {
			o.ModCache = filepath.Join(h, "go", "pkg", "mod")
		}
	}
	if o.LocaleDir == "" {
		o.LocaleDir = "/usr/share/locale"
	}
	if o.ManDir == "" {
		o.ManDir = "/usr/share/man"
	}
	if o.GoRoot == "" {
		o.GoRoot = os.Getenv("GOROOT")
	}
	if o.GoRoot == "" {
		o.GoRoot = "/usr/local/go"
	}
	if o.DocDir == "" {
		o.DocDir = "/usr/share/doc"
	}
	return o
}

// HardNegatives returns benign pieces for training: documentation and code
// of TrainModules and program messages of TrainLocaleDomains.
func HardNegatives(ctx context.Context, o Options) ([]Row, error) {
	o = o.withDefaults()
	var rows []Row
	for _, m := range TrainModules() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := moduleRows(o.ModCache, m, "hn_module")
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	r, err := localeRows(o.LocaleDir, TrainLocaleDomains(), "hn_locale", 40, 4)
	if err != nil {
		return nil, err
	}
	rows = append(rows, r...)
	// Translated manual pages: half of the pages (by name) train, the other
	// half are held out.
	return dedupe(append(rows, manRows(o.ManDir, "hn_man", false)...)), nil
}

// HeldOutBenign returns ordinary text never used in training: documentation
// and code of HeldOutModules, the Go standard library's package docs, Debian
// READMEs, translated manual pages and HeldOutLocaleDomains.
func HeldOutBenign(ctx context.Context, o Options) ([]Row, error) {
	o = o.withDefaults()
	var rows []Row
	for _, m := range HeldOutModules() {
		r, err := moduleRows(o.ModCache, m, "ho_module")
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows = append(rows, goStdRows(o.GoRoot)...)
	rows = append(rows, docRows(o.DocDir)...)
	rows = append(rows, manRows(o.ManDir, "ho_man", true)...)
	r, err := localeRows(o.LocaleDir, HeldOutLocaleDomains(), "ho_locale", 12, 3)
	if err != nil {
		return nil, err
	}
	rows = dedupe(append(rows, r...))
	// Drop anything that also occurs among the training hard negatives (the
	// same message in two catalogs, the same paragraph in two manual pages).
	hard, err := HardNegatives(ctx, o)
	if err != nil {
		return nil, err
	}
	train := make(map[string]bool, len(hard))
	for _, h := range hard {
		train[h.Text] = true
	}
	out := rows[:0]
	for _, r := range rows {
		if !train[r.Text] {
			out = append(out, r)
		}
	}
	return out, nil
}

// dedupe drops rows whose text repeats an earlier row's (Debian ships the
// same README in many packages).
func dedupe(rows []Row) []Row {
	seen := map[string]bool{}
	out := rows[:0]
	for _, r := range rows {
		if !seen[r.Text] {
			seen[r.Text] = true
			out = append(out, r)
		}
	}
	return out
}

// pieces splits text into paragraph groups of roughly 200 to 900 bytes.
func pieces(text string, max int) []string {
	paras := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n")
	var out []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if len(s) >= 60 && utf8.ValidString(s) {
			out = append(out, s)
		}
	}
	for _, p := range paras {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if cur.Len()+len(p) > 900 && cur.Len() > 0 {
			flush()
		}
		if len(p) > 1500 {
			p = p[:1500]
			for len(p) > 0 && !utf8.ValidString(p) {
				p = p[:len(p)-1]
			}
		}
		cur.WriteString(p)
		cur.WriteString("\n\n")
		if cur.Len() >= 200 {
			flush()
		}
		if len(out) >= max {
			break
		}
	}
	if len(out) < max {
		flush()
	}
	if len(out) > max {
		out = out[:max]
	}
	return out
}

func moduleRows(modCache string, m Module, source string) ([]Row, error) {
	dir := filepath.Join(modCache, m.Path+"@"+m.Version)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("hard-negative module %s@%s not in the module cache (run: go mod download %s@%s): %w", m.Path, m.Version, m.Path, m.Version, err)
	}
	var files, jsons []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if n := d.Name(); n == "vendor" || strings.HasPrefix(n, ".") {
				return filepath.SkipDir
			}
			return nil
		}
		n := strings.ToLower(d.Name())
		if strings.HasSuffix(n, ".json") {
			jsons = append(jsons, p)
			return nil
		}
		if strings.Contains(p, "/testdata/") {
			return nil
		}
		if strings.HasSuffix(n, ".md") || strings.HasPrefix(n, "readme") || (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var rows []Row
	codeFiles := 0
	for _, p := range files {
		isCode := strings.HasSuffix(p, ".go")
		if isCode {
			codeFiles++
			if codeFiles%2 != 0 { // a sample of the code, not all of it
				continue
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(modCache, p)
		max, cat := 12, "docs"
		if isCode {
			max, cat = 4, "code"
		}
		for i, t := range pieces(string(b), max) {
			rows = append(rows, Row{ID: fmt.Sprintf("%s:%s#%d", source, rel, i), Text: t, Source: source, Category: cat, Lang: "en", License: m.License})
		}
	}
	// JSON documents, cut into short snippets: the shape of many tool results.
	sort.Strings(jsons)
	for k, p := range jsons {
		if k >= 80 {
			break
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 64<<10 || !utf8.Valid(b) {
			continue
		}
		rel, _ := filepath.Rel(modCache, p)
		for i, t := range snippets(string(b), 300, 2) {
			rows = append(rows, Row{ID: fmt.Sprintf("%s:%s#j%d", source, rel, i), Text: t, Source: source, Category: "json", Lang: "en", License: m.License})
		}
	}
	return rows, nil
}

// snippets cuts text at line boundaries into up to max pieces of at most n bytes.
func snippets(text string, n, max int) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if cur.Len()+len(line) > n && cur.Len() > 0 {
			if t := strings.TrimSpace(cur.String()); len(t) >= 8 {
				out = append(out, t)
			}
			cur.Reset()
			if len(out) >= max {
				return out
			}
		}
		if len(line) > n {
			line = line[:n]
			for len(line) > 0 && !utf8.ValidString(line) {
				line = line[:len(line)-1]
			}
		}
		cur.WriteString(line)
		cur.WriteString("\n")
	}
	if t := strings.TrimSpace(cur.String()); len(t) >= 8 && len(out) < max {
		out = append(out, t)
	}
	return out
}

// readMO reads the translated strings of a gettext .mo catalog.
func readMO(b []byte) ([]string, []string, error) {
	if len(b) < 28 {
		return nil, nil, errors.New("short catalog")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(b) {
	case 0x950412de:
	case 0xde120495:
		bo = binary.BigEndian
	default:
		return nil, nil, errors.New("not a .mo catalog")
	}
	n := int(bo.Uint32(b[8:]))
	origTab, transTab := int(bo.Uint32(b[12:])), int(bo.Uint32(b[16:]))
	str := func(tab, i int) (string, bool) {
		e := tab + 8*i
		if e < 0 || e+8 > len(b) {
			return "", false
		}
		l, o := int(bo.Uint32(b[e:])), int(bo.Uint32(b[e+4:]))
		if o < 0 || l < 0 || o+l > len(b) {
			return "", false
		}
		return string(b[o : o+l]), true
	}
	var orig, trans []string
	for i := 0; i < n && i < 1<<20; i++ {
		o, ok1 := str(origTab, i)
		t, ok2 := str(transTab, i)
		if !ok1 || !ok2 || o == "" {
			continue
		}
		if k := strings.IndexByte(o, 0); k >= 0 {
			o = o[:k]
		}
		if k := strings.IndexByte(t, 0); k >= 0 {
			t = t[:k]
		}
		orig = append(orig, o)
		trans = append(trans, t)
	}
	return orig, trans, nil
}

func localeRows(dir string, domains []string, source string, focusMax, otherMax int) ([]Row, error) {
	langs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var rows []Row
	englishDone := map[string]bool{}
	for _, l := range langs {
		lang := l.Name()
		for _, dom := range domains {
			b, err := os.ReadFile(filepath.Join(dir, lang, "LC_MESSAGES", dom+".mo"))
			if err != nil {
				continue
			}
			orig, trans, err := readMO(b)
			if err != nil {
				continue
			}
			max := otherMax
			if focusLangs[lang] {
				max = focusMax
			}
			add := func(msgs []string, lang string) {
				var sb strings.Builder
				k := 0
				for _, m := range msgs {
					m = strings.TrimSpace(m)
					if len(m) < 12 || !utf8.ValidString(m) || strings.Contains(m, "Project-Id-Version") {
						continue
					}
					sb.WriteString(m)
					sb.WriteString("\n")
					if sb.Len() >= 250 {
						rows = append(rows, Row{ID: fmt.Sprintf("%s:%s/%s#%d", source, lang, dom, k), Text: strings.TrimSpace(sb.String()),
							Source: source, Category: dom, Lang: lang, License: "per Debian package of " + dom + " (GPL/LGPL family)"})
						sb.Reset()
						k++
						if k >= max {
							return
						}
					}
				}
			}
			// Spread the pieces over the catalog rather than taking its start.
			add(stride(trans, max*6), lang)
			// Single short messages too: tool output is often one line.
			short := func(msgs []string, lang string) {
				k := 0
				for _, m := range stride(msgs, max*3) {
					m = strings.TrimSpace(m)
					if len(m) < 8 || len(m) > 200 || !utf8.ValidString(m) || strings.Contains(m, "Project-Id-Version") {
						continue
					}
					rows = append(rows, Row{ID: fmt.Sprintf("%s:%s/%s#s%d", source, lang, dom, k), Text: m,
						Source: source, Category: dom, Lang: lang, License: "per Debian package of " + dom + " (GPL/LGPL family)"})
					k++
					if k >= max {
						return
					}
				}
			}
			short(trans, lang)
			if !englishDone[dom] {
				englishDone[dom] = true
				add(stride(orig, max*6), "en")
				short(orig, "en")
			}
		}
	}
	return rows, nil
}

// stride picks about n items spread evenly over s.
func stride(s []string, n int) []string {
	if len(s) <= n || n <= 0 {
		return s
	}
	out := make([]string, 0, n)
	step := float64(len(s)) / float64(n)
	for i := range n {
		out = append(out, s[int(float64(i)*step)])
	}
	return out
}

func goStdRows(goroot string) []Row {
	var rows []Row
	src := filepath.Join(goroot, "src")
	_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "vendor" || n == "internal" || n == "cmd" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "doc.go" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(goroot, p)
		for i, t := range pieces(string(b), 4) {
			rows = append(rows, Row{ID: fmt.Sprintf("ho_gostd:%s#%d", rel, i), Text: t, Source: "ho_gostd", Category: "code_docs", Lang: "en", License: "BSD-3-Clause"})
		}
		return nil
	})
	return rows
}

func gunzipOrRead(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasSuffix(p, ".gz") {
		return b, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 4<<20))
}

func docRows(dir string) []Row {
	var rows []Row
	ents, _ := filepath.Glob(filepath.Join(dir, "*", "README*"))
	sort.Strings(ents)
	for _, p := range ents {
		b, err := gunzipOrRead(p)
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(dir, p)
		for i, t := range pieces(string(b), 6) {
			rows = append(rows, Row{ID: fmt.Sprintf("ho_debdoc:%s#%d", rel, i), Text: t, Source: "ho_debdoc", Category: "docs", Lang: "en", License: "per Debian package (see /usr/share/doc/" + filepath.Dir(rel) + "/copyright)"})
		}
	}
	return rows
}

// manRows reads translated manual pages, roff markup removed: the pages
// whose name hashes even (train) or odd (held out).
func manRows(dir, source string, heldOut bool) []Row {
	var rows []Row
	langs, _ := os.ReadDir(dir)
	for _, l := range langs {
		if strings.HasPrefix(l.Name(), "man") {
			continue
		}
		all, _ := filepath.Glob(filepath.Join(dir, l.Name(), "man1", "*.gz"))
		sort.Strings(all)
		var pages []string
		for _, p := range all {
			h := fnv.New32a()
			h.Write([]byte(filepath.Base(p)))
			if (h.Sum32()%2 == 1) == heldOut {
				pages = append(pages, p)
			}
		}
		if len(pages) > 16 {
			pages = pages[:16]
		}
		for _, p := range pages {
			b, err := gunzipOrRead(p)
			if err != nil {
				continue
			}
			var sb strings.Builder
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
					if strings.HasPrefix(line, ".PP") || strings.HasPrefix(line, ".SH") || strings.HasPrefix(line, ".TP") {
						sb.WriteString("\n")
					}
					continue
				}
				line = strings.NewReplacer(`\fB`, "", `\fI`, "", `\fR`, "", `\fP`, "", `\-`, "-", `\(aq`, "'", `\(em`, "—", `\&`, "").Replace(line)
				sb.WriteString(line)
				sb.WriteString("\n")
			}
			rel, _ := filepath.Rel(dir, p)
			for i, t := range pieces(sb.String(), 4) {
				rows = append(rows, Row{ID: fmt.Sprintf("%s:%s#%d", source, rel, i), Text: t, Source: source, Category: "docs", Lang: l.Name(), License: "per Debian package (manpages-l10n and others; GPL family)"})
			}
		}
	}
	return rows
}
