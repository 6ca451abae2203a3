package inspect

import (
	"fmt"

	"github.com/warden-run/warden/inspect/internal/acindex"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// EgressPolicy is a task's allow-list of places its arguments may point at.
// Host patterns are exact host names or "*.example.com" (any subdomain).
type EgressPolicy struct {
	Allow []string
	// DenyUnlisted makes every URL or domain outside Allow a finding (the
	// Optimized tier's deny-by-default egress, or any task with an allow-list).
	DenyUnlisted bool
}

// Allowed reports whether host matches the allow-list.
func (p EgressPolicy) Allowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, a := range p.Allow {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == "":
		case a == host:
			return true
		case strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:]) && len(host) > len(a)-1:
			return true
		}
	}
	return false
}

// exfilRules are the exfiltration patterns, compiled once per Scanner.
type exfilRules struct {
	mdImage, mdLink, htmlActive, template *regexp.Regexp
	fileExt                               map[string]bool
	active                                *acindex.Index // literal stems that gate htmlActive
}

func newExfilRules() (*exfilRules, error) {
	var c compiler
	r := &exfilRules{
		// ![alt](url "title") and reference-style ![alt][id] definitions.
		mdImage: c.compile(`!\[[^\]\n]{0,500}\]\(\s*<?([^)\s>]{1,1000})`),
		mdLink:  c.compile(`\[[^\]\n]{0,500}\]\(\s*<?([^)\s>]{1,1000})`),
		// HTML and script that executes or loads when rendered.
		htmlActive: c.compile(`(?i)<\s*(?:script|iframe|object|embed|svg|math|base|meta|link|form|frame|frameset)\b|<\s*img\b[^>]*\bsrc\s*=|\bon[a-z]{3,20}\s*=|\b(?:javascript|vbscript|livescript)\s*:|\bdata\s*:\s*(?:text/html|image/svg|application/(?:x-)?javascript)|\bexpression\s*\(|\b(?:alert|confirm|prompt|eval)\s*\(|\(\s*document\.cookie|document\.(?:cookie|domain|location)|\bfromcharcode\s*\(|\bsrcdoc\s*=|&lt;\s*(?:script|a|img|iframe)\b`),
		template:   c.compile(`(?i)[?&=/](?:[^\s)]*)(?:<[^>]{1,60}>|\{[^}]{1,60}\}|\[[A-Z_ ]{3,60}\]|\$[A-Z_]{3,40})`),
		fileExt:    map[string]bool{},
	}
	for _, e := range strings.Fields(`py sh md rs pl ps so txt json yaml yml go js ts c h cc cpp hpp java rb php html htm css xml csv log zip tar gz tgz bz2 xz exe dll bin png jpg jpeg gif svg pdf doc docx xls xlsx mov mp4 mp3 wav ini conf cfg toml lock sum mod tmp bak swp o a lib jar class pyc whl deb rpm img iso db sqlite sql proto lua kt swift scala tf hcl env pem crt key der p12 pub`) {
		r.fileExt[e] = true
	}
	r.active = acindex.New([][]string{{"<script", "<iframe", "<object", "<embed", "<svg", "<math", "<base", "<meta", "<link", "<form", "<frame",
		"<img", "javascript", "vbscript", "livescript", "data:", "data :", "expression(", "expression (", "alert(", "alert (", "confirm(", "prompt(", "eval(",
		"document.", "fromcharcode", "srcdoc", "&lt;", "onerror", "onload", "onclick", "onmouse", "onfocus", "onblur", "onchange", "onsubmit",
		"onkey", "oninput", "onanimation", "ontoggle", "onbegin", "onpageshow", "onresize", "onscroll", "onpointer", "onwheel", "ondrag", "ontouch", "onplay"}})
	return r, c.err
}

// ScanExfil finds exfiltration channels in an outbound value: markdown
// images and links whose URL carries data or points outside the allow-list,
// active HTML/script, and URLs or bare domains the policy does not allow.
func (s *Scanner) ScanExfil(text, path string, pol EgressPolicy) []Finding {
	r := s.exfil
	var out []Finding
	add := func(rule, reason string, score float64, s, e int) {
		out = append(out, Finding{Kind: KindExfil, Rule: rule, Reason: reason, Score: score, Path: path, Start: s, End: e, Excerpt: cutString(text[s:e], 120)})
	}
	if len(text) > 4<<20 {
		text = text[:4<<20]
	}
	claimed := map[[2]int]bool{}
	if strings.Contains(text, "](") {
		for _, m := range r.mdImage.FindAllStringSubmatchIndex(text, 64) {
			u := text[m[2]:m[3]]
			host := hostOf(u)
			switch {
			case host != "" && pol.Allowed(host):
			case host == "" && !strings.Contains(u, ":"):
				// relative image: rendered from the same origin
			default:
				add("markdown_image", "markdown image to "+orUnknown(host)+": rendering it sends a request (zero-click exfiltration)", 0.95, m[0], m[1])
				claimed[[2]int{m[2], m[3]}] = true
			}
		}
		for _, m := range r.mdLink.FindAllStringSubmatchIndex(text, 64) {
			if m[0] > 0 && text[m[0]-1] == '!' {
				continue
			}
			u := text[m[2]:m[3]]
			host := hostOf(u)
			if host != "" && pol.Allowed(host) {
				continue
			}
			if carriesData(u) || r.template.MatchString(u) {
				add("markdown_link_data", "markdown link to "+orUnknown(host)+" with data in its URL", 0.85, m[0], m[1])
				claimed[[2]int{m[2], m[3]}] = true
			}
		}
	}
	hits := 0
	lastEnd := -1
	r.active.Scan(text, func(_, pos int) bool {
		if pos < lastEnd {
			return true
		}
		hits++
		a, b := max(0, pos-16), min(len(text), pos+256)
		if m := r.htmlActive.FindStringIndex(text[a:b]); m != nil {
			add("active_content", "HTML or script that runs or loads when rendered", 0.9, a+m[0], a+m[1])
			lastEnd = a + m[1]
		}
		return hits < 32
	})
	var urls [][2]int
	forEachURL(text, func(a, b int) bool {
		urls = append(urls, [2]int{a, b})
		u := text[a:b]
		host := hostOf(u)
		if host == "" || pol.Allowed(host) || claimedWithin(claimed, a, b) {
			return len(urls) < 256
		}
		switch {
		case pol.DenyUnlisted:
			add("egress_not_allowed", "URL to "+host+", which the task's egress allow-list does not include", 0.95, a, b)
		case r.template.MatchString(u):
			add("url_template", "URL to "+host+" with a placeholder for data to be filled in", 0.8, a, b)
		case carriesData(u):
			add("url_carries_data", "URL to "+host+" whose query or path carries encoded data", 0.7, a, b)
		}
		return len(urls) < 256
	})
	if pol.DenyUnlisted {
		inURL := func(i int) bool {
			for _, u := range urls {
				if i >= u[0] && i < u[1] {
					return true
				}
			}
			return false
		}
		n := 0
		forEachDomain(text, func(a, b int) bool {
			n++
			// Inside a URL (checked as one), after @ or / (an address's or
			// a path's), or before @ (an address's local part, such as
			// lena.fischer@...): not a domain of its own.
			if inURL(a) || a > 0 && (text[a-1] == '@' || text[a-1] == '/') || b < len(text) && text[b] == '@' {
				return n < 256
			}
			d := strings.ToLower(text[a:b])
			tld := d[strings.LastIndexByte(d, '.')+1:]
			if r.fileExt[tld] || pol.Allowed(d) || net.ParseIP(d) != nil {
				return n < 256
			}
			add("domain_not_allowed", "domain "+d+", which the task's egress allow-list does not include", 0.85, a, b)
			return n < 256
		})
	}
	return out
}

func claimedWithin(c map[[2]int]bool, s, e int) bool {
	for k := range c {
		if s >= k[0] && s < k[1] || k[0] >= s && k[0] < e {
			return true
		}
	}
	return false
}

func orUnknown(h string) string {
	if h == "" {
		return "an unparsed address"
	}
	return h
}

// hostOf returns the host of an absolute or scheme-relative URL.
func hostOf(raw string) string {
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "//") {
		raw = "http:" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// Tolerate what url.Parse refuses (placeholders, spaces).
		i := strings.Index(raw, "://")
		if i < 0 {
			return ""
		}
		h := raw[i+3:]
		if j := strings.IndexAny(h, "/?#"); j >= 0 {
			h = h[:j]
		}
		if j := strings.LastIndexByte(h, '@'); j >= 0 {
			h = h[j+1:]
		}
		if j := strings.LastIndexByte(h, ':'); j >= 0 {
			h = h[:j]
		}
		return strings.ToLower(h)
	}
	return strings.ToLower(u.Hostname())
}

// carriesData says whether a URL's query, fragment or path carries a value
// that looks like data: long, encoded or high-entropy.
func carriesData(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return strings.ContainsAny(raw, "?=")
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 24 || (len(v) >= 12 && shannon(v) >= 3.5) {
				return true
			}
		}
	}
	if len(u.Fragment) >= 24 {
		return true
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 40 && shannon(seg) >= 4 {
			return true
		}
	}
	return false
}

// compiler compiles patterns, keeping the first error.
type compiler struct{ err error }

func (c *compiler) compile(p string) *regexp.Regexp {
	re, err := regexp.Compile(p)
	if err != nil {
		if c.err == nil {
			c.err = fmt.Errorf("compiling %q: %w", p, err)
		}
		return regexp.MustCompile(`$^`) // never matches; the constructor reports c.err
	}
	return re
}
