package inspect

import (
	"fmt"
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
	mdImage, mdLink, htmlActive, url, domain, template *regexp.Regexp
	fileExt                                            map[string]bool
}

func newExfilRules() (*exfilRules, error) {
	var c compiler
	r := &exfilRules{
		// ![alt](url "title") and reference-style ![alt][id] definitions.
		mdImage: c.compile(`!\[[^\]\n]{0,500}\]\(\s*<?([^)\s>]{1,1000})`),
		mdLink:  c.compile(`\[[^\]\n]{0,500}\]\(\s*<?([^)\s>]{1,1000})`),
		// HTML and script that executes or loads when rendered.
		htmlActive: c.compile(`(?i)<\s*(?:script|iframe|object|embed|svg|math|base|meta|link|form|frame|frameset)\b|<\s*img\b[^>]*\bsrc\s*=|\bon[a-z]{3,20}\s*=|\b(?:javascript|vbscript|livescript)\s*:|\bdata\s*:\s*(?:text/html|image/svg|application/(?:x-)?javascript)|\bexpression\s*\(|\b(?:alert|confirm|prompt|eval)\s*\(|\(\s*document\.cookie|document\.(?:cookie|domain|location)|\bfromcharcode\s*\(|\bsrcdoc\s*=|&lt;\s*(?:script|a|img|iframe)\b`),
		url:        c.compile(`(?i)\b(?:https?|ftp|wss?)://[^\s"'<>()]{1,1000}|(?:^|[\s"'(=])//[a-z0-9.\-]{3,253}\.[a-z]{2,24}(?:/[^\s"'<>]*)?`),
		domain:     c.compile(`(?i)\b(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b`),
		template:   c.compile(`(?i)[?&=/](?:[^\s)]*)(?:<[^>]{1,60}>|\{[^}]{1,60}\}|\[[A-Z_ ]{3,60}\]|\$[A-Z_]{3,40})`),
		fileExt:    map[string]bool{},
	}
	for _, e := range strings.Fields(`py sh md rs pl ps so txt json yaml yml go js ts c h cc cpp hpp java rb php html htm css xml csv log zip tar gz tgz bz2 xz exe dll bin png jpg jpeg gif svg pdf doc docx xls xlsx mov mp4 mp3 wav ini conf cfg toml lock sum mod tmp bak swp o a lib jar class pyc whl deb rpm img iso db sqlite sql proto lua kt swift scala tf hcl env pem crt key der p12 pub`) {
		r.fileExt[e] = true
	}
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
	if strings.ContainsAny(text, "<:(&") {
		for _, m := range r.htmlActive.FindAllStringIndex(text, 16) {
			add("active_content", "HTML or script that runs or loads when rendered", 0.9, m[0], m[1])
		}
	}
	if strings.Contains(text, ".") {
		urls := r.url.FindAllStringIndex(text, 256)
		inURL := func(i int) bool {
			for _, u := range urls {
				if i >= u[0] && i < u[1] {
					return true
				}
			}
			return false
		}
		for _, m := range urls {
			s := m[0]
			for s < m[1] && (text[s] == ' ' || text[s] == '"' || text[s] == '\'' || text[s] == '(' || text[s] == '=' || text[s] == '\t' || text[s] == '\n') {
				s++
			}
			u := strings.TrimRight(text[s:m[1]], ".,;:!?")
			host := hostOf(u)
			if host == "" || pol.Allowed(host) || claimedWithin(claimed, s, m[1]) {
				continue
			}
			switch {
			case pol.DenyUnlisted:
				add("egress_not_allowed", "URL to "+host+", which the task's egress allow-list does not include", 0.95, s, s+len(u))
			case r.template.MatchString(u):
				add("url_template", "URL to "+host+" with a placeholder for data to be filled in", 0.8, s, s+len(u))
			case carriesData(u):
				add("url_carries_data", "URL to "+host+" whose query or path carries encoded data", 0.7, s, s+len(u))
			}
		}
		if pol.DenyUnlisted {
			for _, m := range r.domain.FindAllStringIndex(text, 256) {
				if inURL(m[0]) {
					continue
				}
				d := strings.ToLower(text[m[0]:m[1]])
				if m[0] > 0 && (text[m[0]-1] == '@' || text[m[0]-1] == '/') {
					continue // e-mail domain (DLP's business) or a path
				}
				tld := d[strings.LastIndexByte(d, '.')+1:]
				if r.fileExt[tld] || pol.Allowed(d) || net.ParseIP(d) != nil {
					continue
				}
				add("domain_not_allowed", "domain "+d+", which the task's egress allow-list does not include", 0.85, m[0], m[1])
			}
		}
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
