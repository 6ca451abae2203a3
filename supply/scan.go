package supply

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/inspect"
)

// Severity ranks a finding.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota + 1
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < SeverityInfo || s > SeverityCritical {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity reads info, low, medium, high or critical.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("severity %q: want info, low, medium, high or critical", s)
}

// MarshalJSON writes the severity's name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity's name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var n string
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	v, err := ParseSeverity(n)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one poisoning signal in a tool's surface.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Server   string   `json:"server,omitempty"`
	Tool     string   `json:"tool,omitempty"`
	// Field is where: "name", "title", "description", or a JSON path into
	// the schemas ("$.inputSchema.properties.path.description").
	Field string `json:"field"`
	// Start and End are byte offsets of the match in the field's text.
	Start int `json:"start"`
	End   int `json:"end"`
	// Excerpt is the matched text with some context, invisible characters
	// shown as \u escapes, at most 160 bytes.
	Excerpt string `json:"excerpt,omitempty"`
	Reason  string `json:"reason"`
}

// ID is the finding's tool id (server.tool), or the server alone.
func (f Finding) ID() string {
	if f.Tool == "" {
		return f.Server
	}
	return f.Server + "." + f.Tool
}

// Detector is the prompt-injection detector the scanner may consult
// (inspect.Detector).
type Detector interface {
	Detect(text string) inspect.Verdict
}

// ScannerOptions configure a Scanner. Zero values take defaults.
type ScannerOptions struct {
	// Detector, when set, scores descriptions for injected instructions in
	// addition to the scanner's own rules.
	Detector Detector
	// MaxFieldBytes bounds how much of one text is read (default 64 KiB);
	// a longer text is a finding of its own.
	MaxFieldBytes int
}

// Scanner finds poisoning signals in tool names, descriptions and
// schemas, offline. Build it once; it is safe for concurrent use.
type Scanner struct {
	det      Detector
	maxBytes int
	text     []textRule
	url      *regexp.Regexp
	email    *regexp.Regexp
	sendNear *regexp.Regexp
	mdImage  *regexp.Regexp
	ident    *regexp.Regexp
}

type textRule struct {
	id       string
	sev      Severity
	re       *regexp.Regexp
	reason   string
	category string
	// params: applies only to parameter descriptions.
	params bool
	// kw: the regular expression runs only on text (lower-cased) holding
	// one of these (a cheap prefilter).
	kw []string
}

// Rule ids.
const (
	RuleHiddenTag         = "hidden-instruction-tag"
	RuleHTMLComment       = "hidden-html-comment"
	RuleOverride          = "instruction-override"
	RuleConcealment       = "conceal-from-user"
	RuleCoercion          = "coercive-instruction"
	RuleSensitivePath     = "sensitive-path"
	RuleSecretRequest     = "secret-request"
	RuleSecretValue       = "embedded-secret"
	RuleExfilURL          = "exfiltration-url"
	RuleURL               = "url"
	RuleMarkdownImage     = "markdown-image-url"
	RuleEmailRedirect     = "email-redirect"
	RuleShadowing         = "tool-shadowing"
	RuleCrossReference    = "cross-server-reference"
	RuleParamInstruction  = "parameter-instruction"
	RuleTagChars          = "unicode-tag-characters"
	RuleBidi              = "unicode-bidi-control"
	RuleInvisible         = "invisible-unicode"
	RuleLongText          = "oversized-text"
	RuleInjection         = "injection-detector"
	RuleNameNonASCII      = "name-non-ascii"
	RuleNameCollision     = "name-collision"
	RuleNameConfusable    = "name-confusable"
	RuleCombination       = "poisoning-combination"
	RuleUnpinnedLaunch    = "unpinned-package-launch"
	RuleCodeEnv           = "code-loading-env"
	defaultMaxFieldBytes  = 64 << 10
	longDescriptionBytes  = 8 << 10
	maxSchemaStrings      = 4096
	maxSchemaDepth        = 32
	maxFindingsPerTool    = 64
	excerptContext        = 40
	excerptMax            = 160
	combinationCategories = 2
)

// ruleKeywords prefilter the rules: a rule's expression can only match
// text holding one of its keywords.
var ruleKeywords = map[string][]string{
	RuleHiddenTag:     {"<", "[inst", "[/inst", "[system", "[/system", "{{"},
	RuleOverride:      {"ignore", "disregard", "forget", "override"},
	RuleConcealment:   {"user", "secret", "hidden", "confidential"},
	RuleCoercion:      {"before", "prior", "otherwise", "important", "critical", "you"},
	RuleSensitivePath: {"ssh", "id_", ".aws", "gcloud", "kube", ".docker", "npmrc", "pypirc", "netrc", "git-credentials", "gnupg", "/etc/", "_history", ".env", "claude_desktop", "mcp.json", ".cursor", "wallet", "password-store", "login data", "cookies", "keychain"},
	RuleSecretRequest: {"key", "secret", "password", "passphrase", "token", "credential", "seed", "mnemonic", "cookie"},
	RuleSecretValue:   {"akia", "gh", "sk-", "xox", "private key"},
	RuleShadowing:     {"when", "every", "each", "if", "instead", "this", "these", "all", "any", "other", "change", "modif", "alter"},
	RuleParamInstruction: {"content", "read", "include", "pass", "paste", "insert", "put", "provide", "send", "you", "assistant",
		"model", "ai", "agent", "always", "first"},
}

// NewScanner compiles the rules.
func NewScanner(o ScannerOptions) (*Scanner, error) {
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = defaultMaxFieldBytes
	}
	s := &Scanner{det: o.Detector, maxBytes: o.MaxFieldBytes}
	rules := []struct {
		id, re   string
		sev      Severity
		reason   string
		category string
		params   bool
	}{
		{RuleHiddenTag, `(?i)<\s*/?\s*(important|system|instructions?|secret|hidden|admin|sudo|assistant|context|note|ai|llm|model|claude|gpt|prompt|override)\b[^<>]{0,40}>|\[/?(INST|SYSTEM)\]|<\|im_(start|end)\|>|\{\{\s*(system|instructions?)\s*\}\}`,
			SeverityHigh, "hidden instruction block addressed to the model", "hidden", false},
		{RuleOverride, `(?i)\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|other|system|original)\s+(instructions?|rules|prompts?|guidelines|directions)`,
			SeverityHigh, "tells the model to override its instructions", "instruction", false},
		{RuleConcealment, `(?i)\b(do\s+not|don'?t|never|without)\s+(tell(ing)?|inform(ing)?|mention(ing)?|reveal(ing)?|show(ing)?|notify(ing)?|alert(ing)?|let(ting)?)\s+(this\s+|it\s+|anything\s+)?(to\s+)?(the\s+)?user\b|\bthe\s+user\s+(must|should|will)\s+not\s+(know|see|notice|be\s+told)|\b(keep|remain)\s+(this|it|these\s+instructions)\s+(secret|hidden|confidential)\b`,
			SeverityHigh, "tells the model to hide what it does from the user", "instruction", false},
		{RuleCoercion, `(?i)\b(before|prior\s+to)\s+(using|calling|invoking|running)\s+(this|any|the)\s+(tool|function)\b[^.]{0,60}\b(must|should|always|first|read|call)\b|\botherwise\s+(the\s+)?(tool|it|this)\s+(will\s+not|won'?t|cannot)\s+work|\b(very|extremely)\s+(important|critical)\b[^.]{0,40}\byou\b|\byou\s+(must|have\s+to|need\s+to)\s+(always|first|never|also)\b`,
			SeverityMedium, "instruction-like text aimed at the model", "instruction", false},
		{RuleSensitivePath, `(?i)(~|\$HOME|%USERPROFILE%|/home/[^/\s]+|/root)?/?\.ssh\b|\bid_(rsa|ed25519|ecdsa|dsa)\b|\.aws/(credentials|config)\b|\.config/gcloud\b|\.kube/config\b|\.docker/config\.json\b|\.npmrc\b|\.pypirc\b|\.netrc\b|\.git-credentials\b|\.gnupg\b|/etc/(passwd|shadow|sudoers|master\.passwd)\b|\.(bash|zsh)_history\b|(^|[\s'"/(])\.env\b|claude_desktop_config\.json|\bmcp\.json\b|\.cursor/|wallet\.dat|\.password-store|\bLogin Data\b|cookies\.sqlite|\bkeychain\b`,
			SeverityHigh, "names a file holding credentials or private data", "sensitive", false},
		{RuleSecretRequest, `(?i)\b(read|send|include|pass|provide|attach|share|append|add|copy|paste|put|forward|upload|extract|collect)\b[^.]{0,60}\b(api[_ -]?keys?|secrets?|passwords?|passphrases?|private\s+keys?|access\s+tokens?|bearer\s+tokens?|credentials|seed\s+phrases?|mnemonics?|session\s+cookies?|ssh\s+keys?)\b`,
			SeverityMedium, "asks for secrets or credentials", "sensitive", false},
		{RuleSecretValue, `\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bsk-[A-Za-z0-9_-]{20,}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----`,
			SeverityMedium, "holds what looks like a credential", "sensitive", false},
		{RuleShadowing, `(?i)\b(when|whenever|every\s+time|each\s+time|if)\b[^.]{0,60}\b(tool|function|server)s?\b[^.]{0,40}\b(is|are|gets?)\s+(called|used|invoked|run)\b|\binstead\s+of\s+(using\s+|calling\s+)?(the\s+)?[\w.-]+\s+(tool|function)\b|\b(this|these)\s+(tool|instructions?|rules?)\s+(overrides?|replaces?|takes?\s+precedence|supersedes?)\b|\b(all|any|other)\s+(other\s+)?(tools?|servers?)\s+(must|should|shall)\b|\b(change|modify|alter)s?\s+(the\s+)?(behaviou?r|recipient|destination|arguments?)\s+of\s+(the\s+|all\s+|any\s+|other\s+)?[\w.-]*\s*(tools?|functions?)\b`,
			SeverityHigh, "instructions about how other tools behave (shadowing)", "shadowing", false},
		{RuleParamInstruction, `(?i)\b(contents?\s+of|read|include|pass|paste|insert|put|provide|send)\b[^.]{0,50}\b(file|files|conversation|chat\s+history|previous\s+messages|system\s+prompt|environment\s+variables|the\s+whole\s+context)\b|\b(you|the\s+(assistant|model|ai|agent))\s+(must|should|shall|have\s+to|need\s+to)\b|\b(always|first)\s+(read|call|send|include)\b`,
			SeverityHigh, "a parameter's description gives the model instructions", "instruction", true},
	}
	for _, r := range rules {
		re, err := regexp.Compile(r.re)
		if err != nil {
			return nil, fmt.Errorf("compiling scanner rule %s: %w", r.id, err)
		}
		s.text = append(s.text, textRule{id: r.id, sev: r.sev, re: re, reason: r.reason, category: r.category, params: r.params, kw: ruleKeywords[r.id]})
	}
	var err error
	if s.url, err = regexp.Compile(`(?i)\b(https?|wss?|ftp)://[^\s"'<>)\]}]+`); err != nil {
		return nil, err
	}
	if s.email, err = regexp.Compile(`(?i)\b(send|sent|sends|forward|forwarded|bcc|cc|copy|copied|mail|email|redirect)\b[^.]{0,60}\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b`); err != nil {
		return nil, err
	}
	if s.sendNear, err = regexp.Compile(`(?i)\b(send|post|upload|forward|exfiltrate|transmit|report|submit|log|sync|beacon|leak|fetch|call|visit|include)\b`); err != nil {
		return nil, err
	}
	if s.mdImage, err = regexp.Compile(`!\[[^\]]{0,200}\]\(\s*(https?:)?//`); err != nil {
		return nil, err
	}
	if s.ident, err = regexp.Compile(`[A-Za-z0-9_][A-Za-z0-9_.-]*`); err != nil {
		return nil, err
	}
	return s, nil
}

// Listed is one server's tools, as the scanner sees a whole deployment.
type Listed struct {
	Server string
	Tools  []*mcp.Tool
}

// Scan scans every tool of every server, with cross-server checks (name
// collisions, confusable names, references to other servers' tools).
// Findings are sorted by server, tool, then offset.
func (s *Scanner) Scan(all []Listed) []Finding {
	idx := newNameIndex(all)
	var out []Finding
	for _, l := range all {
		for _, t := range l.Tools {
			out = append(out, s.ScanTool(l.Server, t, idx)...)
		}
	}
	sortFindings(out)
	return out
}

// nameIndex is every tool and server name of a deployment, for
// cross-server checks.
type nameIndex struct {
	servers  map[string]bool
	byName   map[string][]string // tool name -> servers listing it
	bySkel   map[string][]string // skeleton -> "server.tool" ids
	distinct map[string]string   // distinctive tool name -> server
}

func newNameIndex(all []Listed) *nameIndex {
	idx := &nameIndex{servers: map[string]bool{}, byName: map[string][]string{}, bySkel: map[string][]string{}, distinct: map[string]string{}}
	for _, l := range all {
		idx.servers[l.Server] = true
		for _, t := range l.Tools {
			if t == nil {
				continue
			}
			idx.byName[t.Name] = append(idx.byName[t.Name], l.Server)
			k := skeleton(t.Name)
			idx.bySkel[k] = append(idx.bySkel[k], l.Server+"."+t.Name)
			if distinctive(t.Name) {
				idx.distinct[t.Name] = l.Server
			}
		}
	}
	return idx
}

// distinctive reports whether a tool name is unlikely to occur in prose by
// chance: it joins words with '_', '-' or camel case.
func distinctive(n string) bool {
	if len(n) < 5 {
		return false
	}
	if strings.ContainsAny(n, "_-") {
		return true
	}
	for i, r := range n {
		if i > 0 && unicode.IsUpper(r) {
			return true
		}
	}
	return false
}

// ScanTool scans one tool. idx may be nil (no cross-server checks).
func (s *Scanner) ScanTool(server string, t *mcp.Tool, idx *nameIndex) []Finding {
	if t == nil {
		return nil
	}
	sc := &toolScan{s: s, server: server, tool: t.Name, idx: idx}
	sc.name(t.Name)
	sc.field("title", t.Title, false)
	sc.field("description", t.Description, false)
	if t.Annotations != nil {
		sc.field("annotations.title", t.Annotations.Title, false)
	}
	sc.schema("$.inputSchema", t.InputSchema)
	sc.schema("$.outputSchema", t.OutputSchema)
	if s.det != nil && t.Description != "" {
		text := t.Description
		if len(text) > s.maxBytes {
			text = cutUTF8(text, s.maxBytes)
		}
		if v := s.det.Detect(text); v.Injection {
			f := Finding{Rule: RuleInjection, Severity: SeverityMedium, Field: "description", Reason: fmt.Sprintf("the injection detector scores the description %.2f", v.Score)}
			if v.Score >= 0.95 {
				f.Severity = SeverityHigh
			}
			if len(v.Spans) > 0 {
				f.Start, f.End = v.Spans[0].Start, v.Spans[0].End
				f.Excerpt = excerpt(text, f.Start, f.End)
			}
			sc.add(f, "injection")
		}
	}
	if len(sc.cats) >= combinationCategories {
		cats := make([]string, 0, len(sc.cats))
		for c := range sc.cats {
			cats = append(cats, c)
		}
		sort.Strings(cats)
		sc.out = append(sc.out, Finding{Rule: RuleCombination, Severity: SeverityCritical, Server: server, Tool: t.Name, Field: "*",
			Reason: "several poisoning signals together: " + strings.Join(cats, ", ")})
	}
	sortFindings(sc.out)
	return sc.out
}

type toolScan struct {
	s            *Scanner
	server, tool string
	idx          *nameIndex
	out          []Finding
	cats         map[string]bool
	strings      int
}

// add records a finding; categories of high findings count toward the
// combination rule.
func (sc *toolScan) add(f Finding, category string) {
	if len(sc.out) >= maxFindingsPerTool {
		return
	}
	f.Server, f.Tool = sc.server, sc.tool
	sc.out = append(sc.out, f)
	if f.Severity >= SeverityHigh && category != "" {
		if sc.cats == nil {
			sc.cats = map[string]bool{}
		}
		sc.cats[category] = true
	}
}

func (sc *toolScan) name(n string) {
	sc.unicode("name", n)
	for _, r := range n {
		if r >= 0x80 {
			reason := fmt.Sprintf("the tool name holds the non-ASCII character %U", r)
			if a, ok := confusableASCII(r); ok {
				reason += fmt.Sprintf(", which looks like %q", a)
			}
			sc.add(Finding{Rule: RuleNameNonASCII, Severity: SeverityHigh, Field: "name", Start: 0, End: len(n), Excerpt: visible(n), Reason: reason}, "confusable")
			break
		}
	}
	if sc.idx == nil {
		return
	}
	if servers := sc.idx.byName[n]; len(servers) > 1 {
		var others []string
		for _, o := range servers {
			if o != sc.server {
				others = append(others, o)
			}
		}
		if len(others) > 0 {
			sort.Strings(others)
			sc.add(Finding{Rule: RuleNameCollision, Severity: SeverityMedium, Field: "name", End: len(n), Excerpt: n,
				Reason: "another server lists a tool of the same name: " + strings.Join(others, ", ")}, "")
		}
	}
	var look []string
	for _, id := range sc.idx.bySkel[skeleton(n)] {
		if _, name, _ := strings.Cut(id, "."); name != n {
			look = append(look, id)
		}
	}
	if len(look) > 0 {
		sort.Strings(look)
		sc.add(Finding{Rule: RuleNameConfusable, Severity: SeverityHigh, Field: "name", End: len(n), Excerpt: visible(n),
			Reason: "the name is easily mistaken for " + strings.Join(look, ", ")}, "confusable")
	}
}

// field scans one text. param says it is a parameter's description (or
// another schema string).
func (sc *toolScan) field(where, text string, param bool) {
	if text == "" {
		return
	}
	if len(text) > longDescriptionBytes {
		f := Finding{Rule: RuleLongText, Severity: SeverityLow, Field: where, Start: 0, End: len(text),
			Reason: fmt.Sprintf("unusually long text (%d bytes): room to hide instructions", len(text))}
		if len(text) > sc.s.maxBytes {
			f.Severity = SeverityMedium
			f.Reason = fmt.Sprintf("text of %d bytes, beyond the %d the scanner reads: the rest is unscanned", len(text), sc.s.maxBytes)
		}
		sc.add(f, "")
		text = cutUTF8(text, sc.s.maxBytes)
	}
	sc.unicode(where, text)
	lower := strings.ToLower(text)
	for _, r := range sc.s.text {
		if r.params && !param {
			continue
		}
		if len(r.kw) > 0 && !containsAny(lower, r.kw) {
			continue
		}
		for _, m := range r.re.FindAllStringIndex(text, 4) {
			sev := r.sev
			if param && r.category == "instruction" && sev < SeverityHigh && !r.params {
				sev = SeverityHigh // instructions have no business in a parameter's description
			}
			rule := r.id
			sc.add(Finding{Rule: rule, Severity: sev, Field: where, Start: m[0], End: m[1], Excerpt: excerpt(text, m[0], m[1]), Reason: r.reason}, r.category)
		}
	}
	if strings.Contains(text, "<!--") {
		if i := strings.Index(text, "<!--"); i >= 0 {
			end := strings.Index(text[i:], "-->")
			if end < 0 {
				end = len(text)
			} else {
				end += i + 3
			}
			sc.add(Finding{Rule: RuleHTMLComment, Severity: SeverityHigh, Field: where, Start: i, End: end, Excerpt: excerpt(text, i, end),
				Reason: "an HTML comment, invisible when rendered, visible to the model"}, "hidden")
		}
	}
	sc.urls(where, text)
	if m := sc.s.email.FindStringIndex(text); m != nil {
		sc.add(Finding{Rule: RuleEmailRedirect, Severity: SeverityHigh, Field: where, Start: m[0], End: m[1], Excerpt: excerpt(text, m[0], m[1]),
			Reason: "tells the model to send or copy messages to an address"}, "exfiltration")
	}
	sc.references(where, text)
}

// urls flags URLs: any URL is noted; one the text tells the model to send
// data to, one with a placeholder for data, an IP literal, a known
// collection service, or a markdown image (fetched on rendering) is an
// exfiltration channel.
func (sc *toolScan) urls(where, text string) {
	for _, m := range sc.s.mdImage.FindAllStringIndex(text, 4) {
		sc.add(Finding{Rule: RuleMarkdownImage, Severity: SeverityHigh, Field: where, Start: m[0], End: m[1], Excerpt: excerpt(text, m[0], m[1]),
			Reason: "a markdown image URL: rendering it sends a request, with whatever the model put in it"}, "exfiltration")
	}
	for _, m := range sc.s.url.FindAllStringIndex(text, 16) {
		u := text[m[0]:m[1]]
		sev, reason := SeverityInfo, "names a URL"
		host := urlHost(u)
		switch {
		case collectionHost(host):
			sev, reason = SeverityHigh, "a URL at a request-collection service ("+host+")"
		case isIPHost(host):
			sev, reason = SeverityHigh, "a URL to an IP address"
		case strings.ContainsAny(u, "{}$<>") || strings.Contains(u, "=["):
			sev, reason = SeverityHigh, "a URL with a placeholder for data"
		default:
			lo := max(0, m[0]-80)
			if sc.s.sendNear.MatchString(text[lo:m[0]]) {
				sev, reason = SeverityHigh, "tells the model to send data to a URL"
			}
		}
		rule := RuleURL
		if sev >= SeverityHigh {
			rule = RuleExfilURL
		}
		sc.add(Finding{Rule: rule, Severity: sev, Field: where, Start: m[0], End: m[1], Excerpt: excerpt(text, m[0], m[1]), Reason: reason}, "exfiltration")
	}
}

// references flags mentions of other servers' tools (by distinctive name or
// server.tool id) and of other servers by name.
func (sc *toolScan) references(where, text string) {
	if sc.idx == nil {
		return
	}
	n := 0
	for _, m := range sc.s.ident.FindAllStringIndex(text, 2000) {
		w := strings.TrimRight(text[m[0]:m[1]], ".-")
		end := m[0] + len(w)
		other := ""
		if srv, ok := sc.idx.distinct[w]; ok && srv != sc.server {
			other = srv + "." + w
		} else if s, t, ok := strings.Cut(w, "."); ok && s != sc.server && sc.idx.servers[s] && t != "" {
			other = w
		}
		if other == "" {
			continue
		}
		sev := SeverityMedium
		if sc.near(text, m[0], `shadowing`) {
			sev = SeverityHigh
		}
		sc.add(Finding{Rule: RuleCrossReference, Severity: sev, Field: where, Start: m[0], End: end, Excerpt: excerpt(text, m[0], end),
			Reason: "refers to " + other + ", a tool of another server"}, "shadowing")
		if n++; n >= 4 {
			return
		}
	}
}

// near reports whether a finding of the category was already made within
// the same sentence as offset.
func (sc *toolScan) near(text string, off int, category string) bool {
	lo := strings.LastIndexAny(text[:off], ".!?\n") + 1
	hi := strings.IndexAny(text[off:], ".!?\n")
	if hi < 0 {
		hi = len(text)
	} else {
		hi += off
	}
	for _, f := range sc.out {
		for _, r := range sc.s.text {
			if r.id == f.Rule && r.category == category && f.Start < hi && f.End > lo {
				return true
			}
		}
	}
	return false
}

// unicode flags characters a reader does not see: tag characters (which
// can spell a whole hidden message), bidirectional controls and zero-width
// characters.
func (sc *toolScan) unicode(where, text string) {
	type run struct {
		rule       string
		sev        Severity
		start, end int
		hidden     strings.Builder
	}
	var cur *run
	flush := func() {
		if cur == nil {
			return
		}
		f := Finding{Rule: cur.rule, Severity: cur.sev, Field: where, Start: cur.start, End: cur.end, Excerpt: excerpt(text, cur.start, cur.end)}
		switch cur.rule {
		case RuleTagChars:
			f.Reason = "Unicode tag characters (invisible) spelling: " + strconv.Quote(clip(cur.hidden.String(), 120))
		case RuleBidi:
			f.Reason = "bidirectional control characters: the text reads differently from how it displays"
		default:
			f.Reason = "invisible characters (zero-width, variation selectors or private use)"
		}
		sc.add(f, "hidden")
		cur = nil
	}
	for i, r := range text {
		rule, sev := "", Severity(0)
		switch {
		case r >= 0xE0000 && r <= 0xE007F:
			rule, sev = RuleTagChars, SeverityCritical
		case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x061C:
			rule, sev = RuleBidi, SeverityHigh
		case r >= 0xE0100 && r <= 0xE01EF:
			rule, sev = RuleInvisible, SeverityHigh
		case r >= 0x200B && r <= 0x200F, r >= 0x2060 && r <= 0x2064, r == 0xFEFF, r == 0x180E, r == 0x00AD, r == 0x034F,
			r >= 0xFE00 && r <= 0xFE0F, r >= 0xE000 && r <= 0xF8FF, r >= 0xF0000:
			rule, sev = RuleInvisible, SeverityMedium
		}
		if rule == "" {
			flush()
			continue
		}
		if cur != nil && cur.rule != rule {
			flush()
		}
		if cur == nil {
			if len(sc.out) >= maxFindingsPerTool {
				return
			}
			cur = &run{rule: rule, sev: sev, start: i}
		}
		cur.end = i + utf8.RuneLen(r)
		if rule == RuleTagChars && r >= 0xE0020 && r <= 0xE007E {
			cur.hidden.WriteRune(r - 0xE0000)
		}
	}
	flush()
}

// schema scans the strings of a JSON schema: descriptions, titles,
// defaults, examples and enum values, and property names.
func (sc *toolScan) schema(path string, v any) {
	if v == nil {
		return
	}
	var m any
	switch x := v.(type) {
	case map[string]any:
		m = x
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		if json.Unmarshal(b, &m) != nil {
			return
		}
	}
	sc.walk(path, m, 0, "")
}

func (sc *toolScan) walk(path string, v any, depth int, key string) {
	if depth > maxSchemaDepth || sc.strings > maxSchemaStrings || len(sc.out) >= maxFindingsPerTool {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "." + jsonPathKey(k)
			if key == "properties" {
				sc.unicode(p+"(name)", k)
			}
			sc.walk(p, x[k], depth+1, k)
		}
	case []any:
		for i, e := range x {
			sc.walk(fmt.Sprintf("%s[%d]", path, i), e, depth+1, key)
		}
	case string:
		sc.strings++
		switch key {
		case "description", "title", "default", "examples", "enum", "const", "pattern", "$comment":
			sc.field(path, x, true)
		default:
			sc.unicode(path, x)
		}
	}
}

func jsonPathKey(k string) string {
	for _, r := range k {
		if !(r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return strconv.Quote(k)
		}
	}
	return k
}

func urlHost(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i > 0 {
			return rest[1:i]
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return strings.ToLower(rest)
}

func isIPHost(h string) bool {
	if strings.Contains(h, ":") {
		return true
	}
	dots := 0
	for _, c := range h {
		switch {
		case c == '.':
			dots++
		case c < '0' || c > '9':
			return false
		}
	}
	return h != ""
}

// collectionHost reports whether host belongs to a service whose purpose
// is to collect requests (webhook inspectors, tunnels, out-of-band
// testing).
func collectionHost(h string) bool {
	for _, d := range []string{"webhook.site", "requestbin.com", "requestbin.net", "pipedream.net", "ngrok.io", "ngrok-free.app", "ngrok.app",
		"burpcollaborator.net", "oastify.com", "interact.sh", "oast.fun", "oast.pro", "oast.live", "oast.site", "oast.online", "oast.me",
		"beeceptor.com", "hookbin.com", "requestcatcher.com", "postb.in", "canarytokens.com", "trycloudflare.com", "serveo.net",
		"localtunnel.me", "loca.lt", "pastebin.com", "transfer.sh", "discord.com/api/webhooks", "hooks.slack.com"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// excerpt returns text[start:end] with context, invisible characters made
// visible, cut to excerptMax bytes.
func excerpt(text string, start, end int) string {
	lo, hi := max(0, start-excerptContext), min(len(text), end+excerptContext)
	for lo > 0 && !utf8.RuneStart(text[lo]) {
		lo--
	}
	for hi < len(text) && !utf8.RuneStart(text[hi]) {
		hi++
	}
	s := visible(text[lo:hi])
	return clip(s, excerptMax)
}

// visible replaces characters that do not display with \u escapes.
func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == utf8.RuneError, unicode.Is(unicode.Cf, r), unicode.Is(unicode.Co, r), unicode.IsControl(r),
			r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF, r == 0x180E, r == 0x034F:
			fmt.Fprintf(&b, `\u{%X}`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n) + "…"
}

func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Server != b.Server {
			return a.Server < b.Server
		}
		if a.Tool != b.Tool {
			return a.Tool < b.Tool
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.Rule < b.Rule
	})
}

// Max returns the highest severity among findings (0 when none), ignoring
// the rules in accept.
func Max(fs []Finding, accept []string) Severity {
	var m Severity
	for _, f := range fs {
		if slicesContains(accept, f.Rule) {
			continue
		}
		m = max(m, f.Severity)
	}
	return m
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
