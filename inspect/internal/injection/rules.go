package injection

import (
	"fmt"
	"math/bits"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/warden-run/warden/inspect/internal/acindex"
	"github.com/warden-run/warden/inspect/internal/textnorm"
)

// Rule is a known attack shape, matched on normalised (lower-case) text.
type Rule struct {
	ID     string // stable id, used in reasons, facts and model features
	Reason string // what it means, for people
	// Triggers are words at least one of which must occur in the text for the
	// regular expression to run (empty: run only on text with non-ASCII
	// characters, for rules written in other scripts).
	Triggers []string
	// Stems are substrings (any script) that also trigger the rule. Like
	// trigger words they mark where a match starts, unless StemsInside.
	Stems []string
	// StemsInside says a stem may occur inside a match: the pattern then runs
	// unanchored from a little before the stem.
	StemsInside bool
	// NonASCII runs a Func rule on any text with non-ASCII characters.
	NonASCII bool
	// MinCount is how many matches the rule needs before it counts (default 1).
	MinCount int
	// Window is how far around a trigger the pattern can reach (default 240 bytes).
	// Strong marks a rule precise enough to flag text on its own: the
	// detector's score is at least StrongScore when it matches. A rule is
	// strong when it fires on no benign row of train.jsonl, dev_tune.jsonl or
	// the hard negatives (inspect/internal/injection: TestRuleBenignHits).
	Strong bool
	// Near, when set, are words one of which must follow a trigger within
	// Window bytes for the pattern to be tried there (a cheap second gate for
	// rules whose first words are common).
	Near    []string
	Window  int
	Pattern string
	// seq, when set, is Pattern's first alternative, which Match then
	// finds by code at trigger words (wordSeq) before running the rest.
	seq *wordSeq
	// Func, when set, replaces Pattern: it returns the matched spans.
	Func func(s string) [][2]int
	// Builtin names a check computed while finding triggers.
	Builtin int
	// Variants, when set, replace Pattern: each has its own stems and a
	// small pattern run only around them (one rule for many languages).
	Variants []Variant
	re       *regexp.Regexp // for windows around stems
	reA      *regexp.Regexp // anchored at a trigger word (Pattern's alternatives after seq, if seq is set; nil if none)
	need     cond           // what every match contains (mustCond)
	needA    cond           // what every match of reA contains (anchoredCond)
}

// Builtin checks.
const (
	builtinNone   = iota
	builtinRepeat // a word repeated at least 8 times in a row
	// builtinRepeatWord is builtinRepeat when the word is a word of prose
	// (letters only, not a literal like true or null): code and escape
	// tables repeat tokens, text does not repeat words eight times.
	builtinRepeatWord
)

// StrongScore is the least score text gets when a Strong rule matches it.
const StrongScore = 0.9

// Variant is one form of a rule (a language, say): stems that trigger it and
// the pattern to try around them.
type Variant struct {
	Stems   []string
	Pattern string
	re      *regexp.Regexp
	need    cond // what every match contains (mustCond)
	// starts are literals one of which every match starts with, and reA
	// the pattern anchored, when the pattern allows it (startLiterals):
	// find then runs reA where they occur instead of re at every byte.
	starts []string
	reA    *regexp.Regexp
}

// find returns the leftmost match of the variant's pattern in w, as
// re.FindStringIndex does. Go's regexp tries a pattern without a literal
// prefix at every byte of the window; a match can only start where one of
// starts occurs, so find tries the anchored pattern there, leftmost first,
// which gives the same match (the leftmost start, and at it the match the
// pattern prefers).
func (v *Variant) find(w string) []int {
	if v.starts == nil {
		return v.re.FindStringIndex(w)
	}
	for k := 0; k < len(w); {
		q := -1
		for _, p := range v.starts {
			if j := strings.Index(w[k:], p); j >= 0 && (q < 0 || j < q) {
				q = j
			}
		}
		if q < 0 {
			return nil
		}
		k += q
		if l := v.reA.FindStringIndex(w[k:]); l != nil {
			return []int{k + l[0], k + l[1]}
		}
		k++
	}
	return nil
}

// Hit is one rule match.
type Hit struct {
	Rule       int // index in the rule set
	Start, End int // byte offsets in the normalised text
}

// RuleSet is a compiled set of rules.
type RuleSet struct {
	rules []Rule
	// words maps a word's hash to the rules it triggers and the rules it
	// is a Near word of (bit masks, up to 64 rules).
	words    trigTable
	stems    *acindex.Index
	nonASCII uint64   // Func rules run on non-ASCII text
	always   uint64   // Func rules run on all text
	variant  [][2]int // stem tag - len(rules) -> (rule, variant)
	// class sorts bytes for the trigger-word scan: word bytes (a-z, 0-9
	// and every byte of a non-ASCII character), joiners that belong to a
	// word but cannot start one (- _ '), and separators.
	class [256]uint8
}

// Byte classes of the trigger-word scan.
const (
	classSep = iota
	classWord
	classJoin
)

// wordHash is the trigger-word hash: a rotate-xor over the word's bytes
// (no multiplication in the per-byte chain), finished with one multiply.
// candidates computes the same value inline.
func wordHash(w string) uint64 {
	var h uint64 = seedWord
	for i := 0; i < len(w); i++ {
		h = bits.RotateLeft64(h, 7) ^ uint64(w[i])
	}
	return finishWord(h)
}

func finishWord(h uint64) uint64 { return (h ^ h>>29) * golden }

// DefaultRules returns the built-in attack shapes. The patterns are written
// for this project from the published descriptions of attack families
// (instruction override, role hijack, prompt extraction, chat-template
// smuggling, exfiltration markup).
func DefaultRules() []Rule {
	ignoreVerbs := []string{"ignore", "ignoring", "disregard", "forget", "overlook", "skip", "bypass", "override", "neglect", "abandon", "discard", "set aside", "pay no attention to", "do not follow", "don't follow", "stop following"}
	prior := strings.Fields("previous prior above earlier preceding initial original former old all any every your the those these my system developer")
	instr := strings.Fields("instruction directive rule guideline prompt command order context constraint restriction programming polic guidance message task safeguard filter told said taught")
	// The strong form names the model's own earlier instructions; the broad
	// form ("ignore the error message", "bypass any filter") is only a
	// feature: ordinary requests say that too.
	priorStrong := strings.Fields("previous prior above earlier preceding initial original former all your system developer those these my")
	instrStrong := strings.Fields("instruction directive rule guideline prompt command programming polic guidance told said taught")
	overrideStrong := &wordSeq{words: [3][]string{ignoreVerbs, priorStrong, instrStrong}, gap: 48}
	overrideBroad := &wordSeq{words: [3][]string{ignoreVerbs, prior, instr}, gap: 48}
	overrideTriggers := strings.Fields("ignore ignoring disregard forget overlook skip bypass override neglect abandon discard")
	overrideStems := []string{"set aside", "pay no attention", "don't follow", "do not follow", "stop following"}
	return []Rule{
		{ID: "override_instructions", Reason: "asks to ignore earlier instructions", Strong: true,
			Triggers: overrideTriggers, Stems: overrideStems, seq: overrideStrong,
			Pattern: overrideStrong.pattern() +
				`|(?:ignore|disregard|forget)\s+(?:all\s+)?(?:of\s+)?(?:the\s+)?(?:above|foregoing)\s*(?:and\b|,)`},
		{ID: "override_broad", Reason: "asks to ignore a rule, filter or message",
			Triggers: overrideTriggers, Stems: overrideStems, seq: overrideBroad, Pattern: overrideBroad.pattern()},
		{ID: "new_instructions", Reason: "announces replacement instructions", Strong: true,
			Triggers: strings.Fields("new updated real actual true revised additional secret hidden"), Window: 48,
			Near:    strings.Fields("instructions instruction directives directive tasks task objectives objective orders order rules rule"),
			Pattern: `\b(?:new|updated|real|actual|true|revised|additional|secret|hidden)\s+(?:instructions?|directives?|tasks?|objectives?|orders?|rules?)\b\s*(?:[:\-!]|are|is|follow)`},
		{ID: "role_hijack", Reason: "tries to give the model a new identity or mode",
			Triggers: strings.Fields("pretend developer god debug admin sudo maintenance unrestricted jailbreak jailbroken dan"),
			Stems:    []string{"you are now", "you are no longer", "from now on", "do anything now", "act as", "respond as", "behave as"},
			Pattern:  `\byou\s+are\s+(?:now|no\s+longer)\b|\bfrom\s+now\s+on\b[^.\n]{0,40}\byou\b|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b|\b(?:act|respond|behave)\s+as\s+(?:if\s+you\s+(?:were|are)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|evil|jailbroken|dan)\b|\bdo\s+anything\s+now\b|\b(?:developer|god|debug|admin|sudo|maintenance|unrestricted)\s+mode\b|\bjailbr(?:eak|oken)\b|\bdan\b`},
		{ID: "no_restrictions", Reason: "asks the model to drop its safety rules",
			Triggers: strings.Fields("without no free ignore bypass remove disable"), Window: 80,
			Near:    strings.Fields("restrictions restriction limitations limitation filters filter censorship guidelines policy policies content ethical morals moral ethics"),
			Pattern: `\b(?:without|no|free\s+(?:of|from)|ignore|bypass|remove|disable)\s+(?:any\s+|all\s+|your\s+|the\s+|its\s+)*(?:restrictions?|limitations?|filters?|censorship|guidelines|content\s+polic(?:y|ies)|ethical\s+(?:guidelines|constraints)|morals?|ethics)\b`},
		{ID: "prompt_extraction", Reason: "asks for the system prompt or secrets",
			Triggers: strings.Fields("reveal print show tell repeat output display share leak give disclose write spell recite what"), Window: 96,
			Near:    strings.Fields("prompt instructions rules password passwords passphrase key credentials confidential"),
			Pattern: `\b(?:reveal|print|show|tell|repeat|output|display|share|leak|give|disclose|write|spell|recite|what\s+(?:is|are|was|were))\b[^.\n]{0,40}\b(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|original\s+prompt|your\s+(?:prompt|instructions|rules)|(?:secret|api|private)\s+key|password|passphrase|secret\s+(?:code|word|phrase|string)|credentials|confidential)`},
		{ID: "chat_template", Reason: "contains chat-template control tokens", Strong: true,
			Stems:       []string{"<|", "<im_", "<system", "<user", "<assistant", "<endoftext", "<start_header", "<eot", "[inst]", "[/inst]", "<<", "##", "system:", "assistant:", "system :", "assistant :"},
			StemsInside: true, Window: 64,
			Pattern: `<\|?(?:im_start|im_end|endoftext|system|user|assistant|start_header_id|end_header_id|eot_id)\|?>|\[/?inst\]|<<\s*/?sys\s*>>|(?:^|\n)\s*#{2,}\s*(?:system|instruction|new instruction)s?\b|(?:^|\n)\s*(?:system|assistant)\s*:\s`},
		{ID: "urgent_directive", Reason: "marks an embedded instruction as urgent or authoritative",
			Triggers: strings.Fields("important attention urgent notice warning administrator priority"),
			Stems:    []string{"admin message", "admin note", "system message", "system note", "system override", "system notice"},
			Pattern:  `\b(?:important|attention|urgent|notice|warning|admin(?:istrator)?\s+(?:message|note)|priority\s+override|system\s+(?:message|note|override|notice))\b\s*[!:]+[^\n]{0,120}\b(?:instruction|must|immediately|ignore|instead|assistant|ai|model|you)\b`},
		{ID: "hide_from_user", Reason: "asks to hide actions from the user", Strong: true,
			Triggers: strings.Fields("do don't never without"), Window: 48,
			Near:    strings.Fields("user users"),
			Pattern: `\b(?:do\s+not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|notify(?:ing)?|alert(?:ing)?|reveal(?:ing)?\s+(?:this\s+)?to)\s+(?:the\s+)?users?\b`},
		{ID: "exfil_markup", Reason: "renders a link or image whose URL carries data",
			Stems:   []string{"![", "<img"},
			Pattern: `!\[[^\]\n]{0,200}\]\(\s*https?://[^)\s]{1,300}[?&#=][^)\s]{0,300}\)|<img\b[^>]{0,200}\bsrc\s*=\s*["']?https?://[^"'\s>]{1,300}[?&=]`},
		{ID: "encoded_instruction", Reason: "asks to decode and follow an encoded message", Strong: true,
			Triggers: strings.Fields("decode decipher base64 rot13 rot-13 encoded"),
			Pattern:  `\b(?:decode|decipher|base64|rot13|rot-13|encoded)\b[^.\n]{0,60}\b(?:follow|execute|do|obey|instructions?|respond|answer)\b`},
		{ID: "fake_dialogue", Reason: "embeds a scripted question-and-answer dialogue (many-shot steering)", Strong: true,
			Func: fakeDialogue()},
		{ID: "payload_splitting", Reason: "splits a request into quoted pieces to be joined (payload splitting)", Strong: true,
			Func: payloadSplitting},
		{ID: "repeated_token", Reason: "repeats a token many times (repeated-token attack)", Builtin: builtinRepeat},
		{ID: "repeated_word", Reason: "repeats a word many times (repeated-token attack)", Strong: true, Builtin: builtinRepeatWord},
		{ID: "dismiss_then_ask", Reason: "opens by dismissing what came before, then asks for something else", Strong: true,
			Func: dismissThenAsk},
		{ID: "despite_instructions", Reason: "acknowledges an instruction, then asks to break it",
			Triggers: []string{"know"}, Window: 160,
			Pattern: `\bknow\s+(?:that\s+)?you(?:'ve|\s+have)?\s+(?:said|told\s+me|were\s+told|been\s+told|are\s+not\s+supposed|aren't\s+supposed|can't|cannot|shouldn't|should\s+not)\b[^.\n]{0,100}\bbut\b`},
		{ID: "pig_latin", Reason: "text written in pig latin (token smuggling)", Strong: true, Func: pigLatin, NonASCII: false},
		{ID: "authority_claim", Reason: "claims authority or a special mode to get compliance",
			Triggers: strings.Fields("i i'm as entering enter activate activating enable enabling switch switching now"), Window: 64,
			Near:    strings.Fields("developed developer creator administrator admin president ceo owner enforcement police fbi auditor officer researcher renowned expert certified mode"),
			Pattern: `\b(?:i\s+am|i'm|as)\s+(?:an?\s+|the\s+|your\s+)?(?:ai\s+developed\s+by|developer|creator|administrator|admin|system\s+administrator|president|ceo|owner|law\s+enforcement|police|fbi|security\s+(?:team|auditor|officer|researcher)|renowned|expert|certified)\b|\b(?:entering|enter|activate|activating|enable|enabling|switch(?:ing)?\s+to|now\s+in)\b[^.\n]{0,40}\bmode\b`},
		{ID: "user_data_request", Reason: "asks for the user's private data",
			Triggers: strings.Fields("where the social credit passphrase users user customers customer"), Window: 64,
			Near:    strings.Fields("live living located reside currently current city residence user's email address location password phone birth ssn social credit account name data personal home security card number their passphrase"),
			Pattern: `\bwhere\s+(?:does|is|do)\s+(?:the\s+)?users?\s+(?:live|living|located|currently|reside)|\bthe\s+user's\s+(?:current\s+)?(?:email|address|location|city|residence|password|phone|birth|ssn|social|credit|account|full\s+name|data|personal|home)|\b(?:social\s+security|credit\s+card)\s+number|\bpassphrase\b|\b(?:users?|customers?)\s+(?:and\s+their|personal|private)\s+\w+`},
		{ID: "hypothetical_framing", Reason: "wraps a sensitive request in a hypothetical world",
			Triggers: strings.Fields("imagine pretend suppose hypothetically roleplay role-play"),
			Stems:    []string{"let's say", "in a world", "in a universe", "in a scenario", "in a parallel"},
			// [^\n]* reaches at most the 240-byte window (a bound written
			// as {0,240} made a program 240 times larger and slower).
			Pattern: `\b(?:imagine|pretend|suppose|hypothetically|let's\s+say|in\s+a\s+(?:world|universe|scenario|parallel)|role-?play)\b[^\n]*\b(?:passwords?|passphrase|secret|personal\s+(?:data|information)|private\s+(?:data|information)|user's|birth\s*date|social\s+security|credentials|no\s+rules|rules\s+(?:don't|do\s+not)\s+apply|public\s+knowledge)`},
		{ID: "topic_switch", Reason: "abruptly drops the current task for another",
			Triggers: strings.Fields("forget actually nevermind never instead"),
			Pattern:  `\bforget\s+(?:about\s+)?(?:that|this|it|everything)\b|\bactually,?\s+(?:can|could|please|instead|i\s+want)\b|\bnever\s*mind\b|\binstead\s*\?`},
		{ID: "response_steering", Reason: "tells the model what to put in its answer (indirect injection)",
			Triggers: strings.Fields("your modify change alter update end begin start conclude include append prepend add integrate incorporate mention when while"), Window: 112,
			Near:    strings.Fields("answer answers reply replies response responses output summary answering responding replying"),
			Pattern: `\b(?:your\s+(?:answer|reply|response|output|summary)|(?:modify|change|alter|update|end|begin|start|conclude)\s+(?:your|the)\s+(?:answer|reply|response|output|summary)|(?:include|append|prepend|add|integrate|incorporate|mention)\b[^.\n]{0,80}\b(?:in|to|into|within|at\s+the\s+end\s+of)\s+your\s+(?:answer|reply|response|output|summary)|(?:when|while)\s+(?:answering|responding|replying))\b`},
		{ID: "override_multilingual", Reason: "asks to ignore earlier instructions (non-English)", Strong: true,
			Variants: multilingualVariants(), Window: 160},
	}
}

// multilingualVariants are "ignore the previous instructions" in the
// languages of the development set: each language has its own stems and a
// small pattern, so that no large alternation runs over the text.
func multilingualVariants() []Variant {
	langs := []struct {
		stems   []string
		pattern string
	}{
		{[]string{"ignor", "oubli"}, `(?:ignor(?:e[zr]?|ez)|oubli(?:e[zr]?))\s+(?:(?:toutes?|tous|les|vos|tes|ces|précédentes|antérieures)\s+){0,3}(?:instructions|consignes|directives|règles)|ignor(?:e[zr]?|ez)\s+(?:tout\s+)?ce\s+qui\s+précède`},
		{[]string{"ignor", "olvid"}, `(?:ignora|olvida|olvide|ignore)\s+(?:(?:todas|las|tus|sus|anteriores|previas)\s+){0,3}(?:instrucciones|indicaciones|reglas)|(?:ignora|olvida)\s+(?:todo\s+)?lo\s+anterior`},
		{[]string{"ignor", "esqueç", "esquec", "desconsider"}, `(?:ignore|ignora|esqueça|esqueca|desconsidere)\s+(?:(?:todas|as|suas|tuas|anteriores|prévias)\s+){0,3}(?:instruções|instrucoes|regras)|(?:ignore|ignora|esqueça|desconsidere)\s+(?:tudo\s+)?o\s+(?:acima|anterior)`},
		{[]string{"ignorier", "vergiss", "vergessen", "missacht"}, `(?:ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte)\s+(?:(?:alle|die|deine|ihre|vorherigen|bisherigen|vorigen|obigen|früheren|vorangegangenen|sämtliche)\s+){0,3}(?:anweisungen|instruktionen|regeln|befehle)|(?:ignoriere|ignorieren\s+sie|vergiss)\s+(?:alles\s+)?(?:das\s+obige|oben\s+gesagte|alles\s+oben)`},
		{[]string{"ignora", "dimentic"}, `(?:ignora|dimentica|ignorate|dimenticate)\s+(?:(?:tutte|le|tue|sue|precedenti)\s+){0,3}(?:istruzioni|indicazioni|regole)|(?:ignora|dimentica)\s+(?:tutto\s+)?(?:quanto|ciò\s+che\s+è)\s+(?:sopra|scritto\s+sopra)`},
		{[]string{"игнор", "забуд", "не обраща"}, `(?:игнорир\pL*|забуд\pL*|не\s+обраща\pL*\s+внимани\pL*\s+на)\s+(?:все\s+)?(?:предыдущ\pL+|прежн\pL+|ранее\s+\pL+|свои|ваши)?\s*(?:инструкци\pL*|указани\pL*|правил\pL*)`},
		{[]string{"忽略", "无视", "忘记", "忘掉", "不要理会", "忽视"}, `(?:忽略|无视|忘记|忘掉|不要理会|忽视)[^。\n]{0,12}(?:指令|指示|说明|规则|提示)`},
		{[]string{"無視", "忘れ"}, `(?:指示|命令|ルール|指令)[^。\n]{0,8}(?:無視|忘れ)`},
		{[]string{"무시", "잊어"}, `(?:지시|명령|지침|규칙|위의\s*내용)[^.\n]{0,10}(?:무시|잊어)`},
		{[]string{"अनदेखा", "नज़रअंदाज़", "नजरअंदाज", "भूल"}, `(?:निर्देश|निर्देशों|आदेश|नियम)[^।\n]{0,20}(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)`},
		{[]string{"تجاهل", "انس"}, `(?:تجاهل|انس|اتجاهل)[^.\n]{0,20}(?:التعليمات|الإرشادات|الأوامر|القواعد)`},
		{[]string{"yok say", "görmezden", "unut", "dikkate alma"}, `(?:talimat\pL*|kural\pL*|komut\pL*)[^.\n]{0,20}(?:yok\s+say|görmezden\s+gel|unut|dikkate\s+alma)`},
		{[]string{"bỏ qua", "phớt lờ", "quên"}, `(?:bỏ\s+qua|phớt\s+lờ|quên)[^.\n]{0,20}(?:hướng\s+dẫn|chỉ\s+dẫn|lệnh|quy\s+tắc)`},
		{[]string{"abaikan", "lupakan"}, `(?:abaikan|lupakan)[^.\n]{0,20}(?:instruksi|petunjuk|perintah|aturan|(?:yg|yang)\s+(?:di\s*atas|sebelumnya))`},
		{[]string{"pansinin", "kalimutan"}, `(?:huwag\s+pansinin|kalimutan)[^.\n]{0,30}(?:tagubilin|utos|panuto|instruksyon)`},
		{[]string{"উপেক্ষা", "ভুলে"}, `(?:নির্দেশ|নির্দেশনা|নির্দেশাবলী)[^।\n]{0,20}(?:উপেক্ষা|ভুলে)`},
		{[]string{"ละเว้น", "เพิกเฉย", "ไม่สนใจ", "ลืม"}, `(?:ละเว้น|เพิกเฉย|ไม่สนใจ|ลืม)[^\n]{0,20}(?:คำสั่ง|คำแนะนำ)`},
	}
	out := make([]Variant, len(langs))
	for i, l := range langs {
		out[i] = Variant{Stems: l.stems, Pattern: l.pattern}
	}
	return out
}

// CompileRules compiles rules once; the result is read-only.
func CompileRules(rules []Rule) (*RuleSet, error) {
	if len(rules) > maxRules {
		return nil, fmt.Errorf("at most %d rules, got %d", maxRules, len(rules))
	}
	rs := &RuleSet{}
	var stems [][]string
	for i, r := range rules {
		for vi := range r.Variants {
			re, err := regexp.Compile(r.Variants[vi].Pattern)
			if err != nil {
				return nil, fmt.Errorf("rule %s variant %d: %w", r.ID, vi, err)
			}
			r.Variants = append([]Variant(nil), r.Variants...)
			r.Variants[vi].re = re
			r.Variants[vi].need = mustCond(r.Variants[vi].Pattern)
			if starts := startLiterals(r.Variants[vi].Pattern); starts != nil {
				if r.Variants[vi].reA, err = regexp.Compile(`^(?:` + r.Variants[vi].Pattern + `)`); err != nil {
					return nil, fmt.Errorf("rule %s variant %d: %w", r.ID, vi, err)
				}
				r.Variants[vi].starts = starts
			}
		}
		if r.Func == nil && r.Builtin == builtinNone && r.Variants == nil {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.ID, err)
			}
			r.re = re
			rest := r.Pattern
			if r.seq != nil {
				// seq stands for the first alternative; reA runs the others.
				head := r.seq.pattern()
				if rest = strings.TrimPrefix(r.Pattern, head); rest == r.Pattern || rest != "" && rest[0] != '|' {
					return nil, fmt.Errorf("rule %s: its word sequence %s is not the pattern's first alternative", r.ID, head)
				}
				rest = strings.TrimPrefix(rest, "|")
			}
			if rest != "" {
				if r.reA, err = regexp.Compile(`^(?:` + rest + `)`); err != nil {
					return nil, fmt.Errorf("rule %s: %w", r.ID, err)
				}
			}
			r.need = mustCond(r.Pattern)
			r.needA = anchoredCond(r.Pattern)
		}
		if r.MinCount <= 0 {
			r.MinCount = 1
		}
		rs.rules = append(rs.rules, r)
		if r.Func != nil {
			if r.NonASCII {
				rs.nonASCII |= 1 << i
			} else {
				rs.always |= 1 << i
			}
		}
		if r.Window <= 0 {
			r.Window = 240
		}
		rs.rules[i] = r
		// Stem tags: rule index for the rule's own stems, then one tag per
		// variant (tag >= len(rules) maps through rs.variant).
		stems = append(stems, r.Stems)
		for _, w := range r.Triggers {
			rs.words.add(wordHash(w), 1<<i, 0)
		}
		for _, w := range r.Near {
			rs.words.add(wordHash(w), 0, 1<<i)
		}
	}
	for i, r := range rs.rules {
		for vi, v := range r.Variants {
			stems = append(stems, v.Stems)
			rs.variant = append(rs.variant, [2]int{i, vi})
		}
	}
	rs.stems = acindex.New(stems)
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c >= 0x80:
			rs.class[c] = classWord
		case c == '_' || c == '-' || c == '\'':
			rs.class[c] = classJoin
		}
	}
	return rs, nil
}

// Rules returns the rule definitions.
func (rs *RuleSet) Rules() []Rule { return rs.rules }

// Len is the number of rules.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// trigTable maps word hashes to rule masks with open addressing (faster
// than a map on the hot path: one probe for most words). A word's trigger
// and Near masks sit in one slot, so each word of the text costs one probe.
type trigTable struct {
	// filter has a bit set for every word in the table (a one-hash Bloom
	// filter of 512 bytes, in L1): most words of a text are in no rule, and
	// one bit answers for them without a probe of the 24 KiB slots.
	filter [64]uint64
	slots  [1024]trigSlot
}

// filterBit is the bit of filter for the word hash h (bits of h other than
// the slot index's).
func filterBit(h uint64) (word int, bit uint64) {
	i := (h >> 20) & 4095
	return int(i >> 6), 1 << (i & 63)
}

type trigSlot struct {
	key        uint64
	trig, near uint64
}

func (t *trigTable) add(h, trig, near uint64) {
	if h == 0 {
		h = 1
	}
	fw, fb := filterBit(h)
	t.filter[fw] |= fb
	for i := (h * golden) >> 54; ; i = (i + 1) & 1023 {
		if sl := &t.slots[i]; sl.key == h || sl.key == 0 {
			sl.key = h
			sl.trig |= trig
			sl.near |= near
			return
		}
	}
}

// get returns the masks of the rules the word with hash h triggers and is
// a Near word of.
func (t *trigTable) get(h uint64) (trig, near uint64) {
	if h == 0 {
		h = 1
	}
	if fw, fb := filterBit(h); t.filter[fw]&fb == 0 {
		return 0, 0
	}
	for i := (h * golden) >> 54; ; i = (i + 1) & 1023 {
		switch sl := &t.slots[i]; sl.key {
		case h:
			return sl.trig, sl.near
		case 0:
			return 0, 0
		}
	}
}

// maxTriggers is how many trigger positions per rule are examined.
const maxTriggers = 16

// maxRules bounds a rule set.
const maxRules = 32

// triggers records, per rule, where its trigger words occur. Only the
// counts and flags need clearing between texts (reset): the positions are
// read below the counts only, so a triggers kept for reuse (Analysis)
// saves clearing its 5 KB for every text.
type triggers struct {
	n     [maxRules]uint8
	stem  [maxRules]bool // rule triggered by a stem (pattern may start before it)
	nn    [maxRules]uint8
	nfull [maxRules]bool // more Near words than recorded
	rep   [2]int         // span of a repeated-token run (end 0: none)
	pos   [maxRules][maxTriggers]int32
	vari  [maxRules][maxTriggers]int16 // variant of a Variants rule's trigger
	near  [maxRules][maxTriggers]int32 // positions of the rule's Near words
}

func (t *triggers) reset() {
	t.n, t.stem, t.nn, t.nfull, t.rep = [maxRules]uint8{}, [maxRules]bool{}, [maxRules]uint8{}, [maxRules]bool{}, [2]int{}
}

func (t *triggers) addNear(rule, pos int) {
	if n := t.nn[rule]; n < maxTriggers {
		t.near[rule][n] = int32(pos)
		t.nn[rule] = n + 1
	} else {
		t.nfull[rule] = true
	}
}

// nearWithin reports whether a Near word of rule starts in (a, b].
func (t *triggers) nearWithin(rule, a, b int) bool {
	if t.nfull[rule] {
		return true
	}
	for k := 0; k < int(t.nn[rule]); k++ {
		if p := int(t.near[rule][k]); p > a && p <= b {
			return true
		}
	}
	return false
}

// add records a trigger of rule at pos, a stem's or a word's, and for a
// Variants rule the variant whose stem it is.
func (t *triggers) add(rule, pos int, stem bool, variant int) {
	if n := t.n[rule]; n < maxTriggers {
		t.pos[rule][n] = int32(pos)
		t.vari[rule][n] = int16(variant)
		t.n[rule] = n + 1
		if stem {
			t.stem[rule] = true
		}
	}
}

// repeatRun follows the run of one word repeated (builtinRepeat) while
// candidates reads the words of a text.
type repeatRun struct {
	prevH      uint64 // hash of the last word, 0 after one that cannot repeat
	run, start int    // length of the run and where it starts
}

// word records the word s[start:end], whose hash before finishWord is h:
// the rules it triggers or is a Near word of, and the run of repeats it
// extends.
func (rs *RuleSet) word(t *triggers, rep *repeatRun, s string, start, end int, h uint64) {
	h = finishWord(h)
	if end-start < 2 || s[start] >= '0' && s[start] <= '9' {
		// One-letter words (%s, a) and numbers (tables of zeros) repeat
		// in ordinary text.
		rep.prevH, rep.run = 0, 0
	} else if h == rep.prevH {
		rep.run++
		if rep.run >= 8 && t.rep[1] == 0 || rep.run >= 8 && t.rep[0] == rep.start {
			t.rep = [2]int{rep.start, end}
		}
	} else {
		rep.prevH, rep.run, rep.start = h, 1, start
	}
	m, near := rs.words.get(h)
	for m != 0 {
		i := bits.TrailingZeros64(m)
		m &^= 1 << i
		t.add(i, start, false, 0)
	}
	for near != 0 {
		i := bits.TrailingZeros64(near)
		near &^= 1 << i
		t.addNear(i, start)
	}
}

// stemEnds appends to dst the stems that end at text byte i, where the
// automaton reached state st: AppendEnds kept out of candidates' loop,
// where its inlined body made Go keep the loop's variables in memory.
//
//go:noinline
func (rs *RuleSet) stemEnds(dst []acindex.Hit, st int32, i int) []acindex.Hit {
	return rs.stems.AppendEnds(dst, st, i)
}

// candidates finds the trigger words of every rule in s.
func (rs *RuleSet) candidates(s string, t *triggers) {
	var rep repeatRun
	var h uint64 = seedWord
	start := -1 // of the word being read; -1 between words
	// The stem automaton runs in the same loop (its chain of dependent
	// loads overlaps the word hashing); its hits are recorded after the
	// trigger words, as if it had read the text second.
	var stemBuf [16]acindex.Hit
	stems := stemBuf[:0]
	var st int32
	// The tables in locals: read through rs, Go reloaded rs, the
	// automaton and its table's address from memory for every byte.
	step, class := rs.stems.Stepper(), &rs.class
	for i := 0; i < len(s); i++ {
		c := s[i]
		var ends bool
		if st, ends = step.Next(st, c); ends {
			stems = rs.stemEnds(stems, st, i)
		}
		switch class[c] {
		case classWord:
			if start < 0 {
				start = i
			}
			h = bits.RotateLeft64(h, 7) ^ uint64(c)
			continue
		case classJoin: // belongs to a word, cannot start one
			if start >= 0 {
				h = bits.RotateLeft64(h, 7) ^ uint64(c)
			}
			continue
		}
		if start >= 0 {
			rs.word(t, &rep, s, start, i, h)
			h = seedWord
			start = -1
		}
	}
	if start >= 0 {
		rs.word(t, &rep, s, start, len(s), h)
	}
	nr := len(rs.rules)
	for _, hit := range stems {
		tag, pos := hit.Tag, hit.Start
		if tag < nr {
			t.add(tag, pos, true, 0)
			continue
		}
		rv := rs.variant[tag-nr]
		t.add(rv[0], pos, true, rv[1])
	}
}

// Match returns the rule hits in s (normalised text), at most max. A
// pattern runs only on windows around its rule's trigger words, so the cost
// on long text is bounded by the number of triggers, not the text's length.
func (rs *RuleSet) Match(s string, dst []Hit, max int) []Hit {
	return rs.match(s, textnorm.IsASCII(s), new(triggers), dst, max)
}

// match is Match for s of which the caller knows whether it is ASCII, with
// storage for the triggers, which it resets.
func (rs *RuleSet) match(s string, ascii bool, t *triggers, dst []Hit, max int) []Hit {
	t.reset()
	rs.candidates(s, t)
	funcs := rs.always
	if !ascii {
		funcs |= rs.nonASCII
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		var locs [][2]int
		switch {
		case r.Builtin == builtinRepeat:
			if t.rep[1] > 0 {
				locs = [][2]int{t.rep}
			}
		case r.Builtin == builtinRepeatWord:
			if t.rep[1] > 0 && proseWord(s[t.rep[0]:t.rep[1]]) {
				locs = [][2]int{t.rep}
			}
		case r.Variants != nil:
			lastEnd := -1
			for k := 0; k < int(t.n[i]); k++ {
				p := int(t.pos[i][k])
				a, b := runeStart(s, max0(p-72)), runeStart(s, min(len(s), p+r.Window))
				if a < lastEnd {
					a = lastEnd
				}
				if a >= b {
					continue
				}
				v := &r.Variants[t.vari[i][k]]
				if !v.need.holds(s[a:b]) {
					continue
				}
				if l := v.find(s[a:b]); l != nil {
					locs = append(locs, [2]int{a + l[0], a + l[1]})
					lastEnd = a + l[1]
				}
			}
		case r.Func != nil:
			if funcs&(1<<i) == 0 {
				continue
			}
			locs = r.Func(s)
		case t.n[i] > 0:
			lastEnd := -1
			for k := 0; k < int(t.n[i]); k++ {
				p := int(t.pos[i][k])
				if p < lastEnd {
					continue
				}
				if !t.stem[i] || !r.StemsInside {
					if r.Near != nil && !t.nearWithin(i, p, p+r.Window) {
						continue
					}
					end := runeStart(s, min(len(s), p+r.Window))
					if !r.needA.holds(s[p:end]) {
						continue
					}
					if e := r.matchAt(s[p:end]); e >= 0 {
						locs = append(locs, [2]int{p, p + e})
						lastEnd = p + e
					}
					continue
				}
				a, b := runeStart(s, max0(p-32)), runeStart(s, min(len(s), p+r.Window))
				if a < lastEnd {
					a = lastEnd
				}
				if a >= b {
					continue
				}
				if !r.need.holds(s[a:b]) {
					continue
				}
				if l := r.re.FindStringIndex(s[a:b]); l != nil {
					locs = append(locs, [2]int{a + l[0], a + l[1]})
					lastEnd = a + l[1]
				}
			}
		}
		if len(locs) < r.MinCount || len(locs) == 0 {
			continue
		}
		if r.MinCount > 1 { // one span from the first to the last match
			locs = [][2]int{{locs[0][0], locs[len(locs)-1][1]}}
		}
		for _, loc := range locs {
			if len(dst) >= max {
				return dst
			}
			dst = append(dst, Hit{Rule: i, Start: loc[0], End: loc[1]})
		}
	}
	return dst
}

// matchAt returns the end of the rule's match anchored at the start of s,
// or -1: its word sequence first, as the pattern's first alternative, then
// the rest of the pattern.
func (r *Rule) matchAt(s string) int {
	if r.seq != nil {
		if e := r.seq.matchAt(s); e >= 0 {
			return e
		}
	}
	if r.reA != nil {
		if l := r.reA.FindStringIndex(s); l != nil {
			return l[1]
		}
	}
	return -1
}

func max0(x int) int {
	if x < 0 {
		return 0
	}
	return x
}

// runeStart moves i back to the start of a UTF-8 sequence.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && s[i]&0xC0 == 0x80 {
		i--
	}
	return i
}

// fakeDialogue finds scripted dialogue turns ("Q: ... A: ...", "User: ...
// Assistant: ...") in any of the languages of the development set: at least
// three turns that alternate between speakers.
func fakeDialogue() func(s string) [][2]int {
	labels := map[string]bool{}
	for _, w := range strings.Fields(`q a question answer user assistant human ai bot
		в о вопрос ответ ถาม ตอบ 问 答 問 질문 답변 답 प्रश्न उत्तर প্রশ্ন উত্তর س ج soru cevap frage antwort
		domanda risposta pregunta respuesta pergunta resposta hỏi lời tanong sagot p r f`) {
		labels[w] = true
	}
	return func(s string) [][2]int {
		n, first, last, switches := 0, -1, 0, 0
		prev := ""
		// nextEF is the position of the next fullwidth-form lead byte at or
		// after i (-1: none left); it is searched for again only once passed,
		// so that text with many colons and no such byte is read once.
		nextEF := -2
		for i := 0; i < len(s); i++ {
			if s[i] != ':' && s[i] != 0xEF { // jump to the next ':' or fullwidth-form lead byte
				k := strings.IndexByte(s[i:], ':')
				if nextEF != -1 && nextEF < i {
					nextEF = strings.IndexByte(s[i:], 0xEF)
					if nextEF >= 0 {
						nextEF += i
					}
				}
				if nextEF >= 0 && (k < 0 || nextEF-i < k) {
					k = nextEF - i
				}
				if k < 0 {
					break
				}
				i += k
			}
			var colonLen int
			switch {
			case s[i] == ':':
				colonLen = 1
			case s[i] == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] == 0x9A: // fullwidth colon
				colonLen = 3
			default:
				continue
			}
			j := i
			for j > 0 && s[j-1] == ' ' {
				j--
			}
			k := j
			for k > 0 && j-k < 24 {
				r, size := utf8.DecodeLastRuneInString(s[:k])
				if !isWordRune(r) {
					break
				}
				k -= size
			}
			// A turn label starts a line or follows sentence punctuation.
			boundary := k == 0 || strings.IndexByte(" \n\t.?!\"'", s[k-1]) >= 0
			if k < j && boundary && labels[s[k:j]] {
				if first < 0 {
					first = k
				}
				if prev != "" && prev != s[k:j] {
					switches++
				}
				prev = s[k:j]
				last = i + colonLen
				n++
				if n >= 32 {
					break
				}
			}
			i += colonLen - 1
		}
		if n >= 3 && switches >= 2 {
			return [][2]int{{first, last}}
		}
		return nil
	}
}

// words calls fn for each maximal run of letters and digits in s.
func words(s string, fn func(start, end int) bool) {
	in, st := false, 0
	for i := 0; i < len(s); {
		var isw bool
		size := 1
		if c := s[i]; c < utf8.RuneSelf {
			isw = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z'
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			isw = isWordRune(r)
		}
		if isw {
			if !in {
				in, st = true, i
			}
		} else if in {
			in = false
			if !fn(st, i) {
				return
			}
		}
		i += size
	}
	if in {
		fn(st, len(s))
	}
}

// countAY is strings.Count(s, "ay "), found by their 'y': Count looks at
// every 'a', several times as many in English text.
func countAY(s string) int {
	n := 0
	for i := 1; i+1 < len(s); i++ {
		j := strings.IndexByte(s[i:len(s)-1], 'y')
		if j < 0 {
			break
		}
		i += j
		if s[i-1] == 'a' && s[i+1] == ' ' {
			n++
		}
	}
	return n
}

// pigLatin flags text most of whose words end in "ay" (at least 4 words).
// Only the first 400 words are looked at.
func pigLatin(s string) [][2]int {
	// Most words must end in "ay": count before walking the words.
	if ay := countAY(s); ay < 4 || ay*3 < strings.Count(s, " ") {
		return nil
	}
	n, ay, first, last := 0, 0, -1, 0
	words(s, func(a, b int) bool {
		n++
		if b-a >= 3 && s[b-2:b] == "ay" {
			ay++
			if first < 0 {
				first = a
			}
			last = b
		}
		return n < 400
	})
	if ay >= 4 && ay*10 >= n*6 {
		return [][2]int{{first, last}}
	}
	return nil
}

// payloadSplitting finds a request cut into quoted pieces assigned to short
// names and then joined (c = "…" a = "…" b = "…" … z = a + b + c), the
// payload-splitting attack, in any language: three such assignments, or two
// and a sum of names, within a few hundred bytes. Code assigns strings
// too, but rarely to three one-letter names in a row with spaces around the
// equals sign.
func payloadSplitting(s string) [][2]int {
	const splitSpan = 600 // bytes from the first assignment to the last
	assigned, sum, first, last := 0, false, -1, 0
	for i := 0; assigned < 8; i++ {
		k := strings.IndexByte(s[i:], '=')
		if k < 0 {
			break
		}
		i += k
		if i+1 < len(s) && s[i+1] == '=' || i > 0 && strings.IndexByte("=!<>:+-*/", s[i-1]) >= 0 {
			continue // ==, !=, <=, :=, +=, ...
		}
		if (i == 0 || s[i-1] != ' ') && (i+1 == len(s) || s[i+1] != ' ') {
			continue // attributes (<key id="…">) and query strings, not prose
		}
		st, ok := shortName(s, i)
		if !ok {
			continue
		}
		if first >= 0 && st-first > splitSpan {
			assigned, sum, first = 0, false, -1 // too far apart: start again
		}
		j := i + 1
		for j < len(s) && s[j] == ' ' {
			j++
		}
		switch {
		case quoteAt(s, j):
			assigned++
			if first < 0 {
				first = st
			}
			last = j + 1
		default:
			// z = a + b: a short name, then a plus sign.
			e, ok := nameAfter(s, j)
			for e < len(s) && s[e] == ' ' {
				e++
			}
			if ok && e < len(s) && s[e] == '+' {
				sum = true
				last = max(last, e+1)
			}
		}
	}
	if assigned >= 3 || assigned >= 2 && sum {
		return [][2]int{{first, last}}
	}
	return nil
}

// shortName reports whether the '=' at i follows a name of one to three
// letters standing on its own (spaces between allowed), and where it starts.
func shortName(s string, i int) (int, bool) {
	j := i
	for j > 0 && s[j-1] == ' ' {
		j--
	}
	st, n := j, 0
	for st > 0 && n < 4 {
		r, size := utf8.DecodeLastRuneInString(s[:st])
		if !isWordRune(r) || '0' <= r && r <= '9' {
			break
		}
		st -= size
		n++
	}
	if n == 0 || n > 3 {
		return 0, false
	}
	return st, st == 0 || strings.IndexByte(" \n\t:,;(", s[st-1]) >= 0
}

// nameAfter is shortName forwards: a name of one to three letters at j.
func nameAfter(s string, j int) (int, bool) {
	e, n := j, 0
	for e < len(s) && n < 4 {
		r, size := utf8.DecodeRuneInString(s[e:])
		if !isWordRune(r) || '0' <= r && r <= '9' {
			break
		}
		e += size
		n++
	}
	return e, n > 0 && n <= 3
}

// quoteAt reports an opening quotation mark at j: straight, curly or
// guillemet.
func quoteAt(s string, j int) bool {
	if j >= len(s) {
		return false
	}
	if s[j] == '"' || s[j] == '\'' {
		return true
	}
	for _, q := range []string{"“", "„", "«", "「"} {
		if strings.HasPrefix(s[j:], q) {
			return true
		}
	}
	return false
}

// proseWord reports whether the first token of a repeated run is a word of
// prose: two or more letters and nothing else (the trigger scan's words may
// carry punctuation of other scripts, as in "%s、"), and not a literal of
// code.
func proseWord(run string) bool {
	end, n := 0, 0
	for end < len(run) && run[end] != ' ' && run[end] != '\n' && run[end] != '\t' {
		r, size := utf8.DecodeRuneInString(run[end:])
		if !isWordRune(r) || '0' <= r && r <= '9' {
			return false
		}
		end += size
		n++
	}
	switch run[:end] {
	case "true", "false", "null", "nil", "none", "undefined", "nan":
		return false
	}
	return n >= 2
}

// dismissals open a message that drops what came before ("Forget about
// that, can you …"), in the development set's languages.
var dismissals = []string{
	"forget about that", "forget about it", "forget that", "forget it", "forget all that", "forget everything",
	"forget this", "oublie ça", "oubliez ça", "oublie cela", "oubliez cela", "olvida eso", "olvídalo", "olvide eso",
	"vergiss das", "vergessen sie das", "esqueça isso", "esquece isso", "esqueça isto", "lascia perdere",
	"dimentica tutto", "dimenticalo", "забудь об этом", "забудьте об этом", "забудь это", "забудьте это",
}

// dismissalStarts holds the first byte of every dismissal (a test keeps it
// complete).
const dismissalStarts = "fovedl\xd0"

// dismissThenAsk matches a text that opens with a dismissal followed by
// punctuation and a further request. Only the start of the text counts: in
// the middle of a message the same words are ordinary.
func dismissThenAsk(s string) [][2]int {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '"' || s[i] == '\'') {
		i++
	}
	if i == len(s) || strings.IndexByte(dismissalStarts, s[i]) < 0 {
		return nil // most text: no dismissal starts with its first byte
	}
	for _, d := range dismissals {
		if !strings.HasPrefix(s[i:], d) {
			continue
		}
		e := i + len(d)
		if e < len(s) && strings.IndexByte(",.!;:", s[e]) >= 0 && len(strings.TrimSpace(s[e+1:])) >= 10 {
			return [][2]int{{i, e}}
		}
	}
	return nil
}
