package injection

import (
	"fmt"
	"regexp"
	"strings"
)

// Rule is a known attack shape, matched on normalised (lower-case) text.
type Rule struct {
	ID     string // stable id, used in reasons, facts and model features
	Reason string // what it means, for people
	// Triggers are words at least one of which must occur in the text for the
	// regular expression to run (empty: run only on text with non-ASCII
	// characters, for rules written in other scripts).
	Triggers []string
	// NonASCII also runs the rule on any text with non-ASCII characters.
	NonASCII bool
	// MinCount is how many matches the rule needs before it counts (default 1).
	MinCount int
	Pattern  string
	// Func, when set, replaces Pattern: it returns the matched spans.
	Func func(s string) [][2]int
	re   *regexp.Regexp
}

// Hit is one rule match.
type Hit struct {
	Rule       int // index in the rule set
	Start, End int // byte offsets in the normalised text
}

// RuleSet is a compiled set of rules.
type RuleSet struct {
	rules []Rule
	// trig maps a trigger word's hash to a bit mask of rules (up to 64).
	trig     map[uint64]uint64
	nonASCII uint64
	always   uint64
}

func wordHash(w string) uint64 {
	var h uint64 = fnvOffset ^ seedWord
	for _, r := range w {
		h = (h ^ uint64(r)) * fnvPrime
	}
	return h
}

// DefaultRules returns the built-in attack shapes. The patterns are written
// for this project from the published descriptions of attack families
// (instruction override, role hijack, prompt extraction, chat-template
// smuggling, exfiltration markup).
func DefaultRules() []Rule {
	ignoreVerb := `(?:ignore|ignoring|disregard|forget|overlook|skip|bypass|override|neglect|abandon|discard|set aside|pay no attention to|do not follow|don't follow|stop following)`
	prior := `(?:previous|prior|above|earlier|preceding|initial|original|former|old|all|any|every|your|the|those|these|my|system|developer)`
	instr := `(?:instruction|directive|rule|guideline|prompt|command|order|context|constraint|restriction|programming|polic|guidance|message|task|safeguard|filter|told|said|taught)`
	return []Rule{
		{ID: "override_instructions", Reason: "asks to ignore earlier instructions",
			Triggers: strings.Fields("ignore ignoring disregard forget overlook skip bypass override neglect abandon discard aside attention follow following"),
			Pattern:  ignoreVerb + `\b[^.\n]{0,48}?\b` + prior + `\b[^.\n]{0,48}?\b` + instr},
		{ID: "new_instructions", Reason: "announces replacement instructions",
			Triggers: strings.Fields("new updated real actual true revised instructions instruction directive task"),
			Pattern:  `\b(?:new|updated|real|actual|true|revised|additional|secret|hidden)\s+(?:instructions?|directives?|tasks?|objectives?|orders?|rules?)\b\s*(?:[:\-!]|are|is|follow)`},
		{ID: "role_hijack", Reason: "tries to give the model a new identity or mode",
			Triggers: strings.Fields("now longer pretend roleplay act dan developer jailbreak jailbroken unrestricted unfiltered uncensored mode"),
			Pattern:  `\byou\s+are\s+(?:now|no\s+longer)\b|\bfrom\s+now\s+on\b[^.\n]{0,40}\byou\b|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b|\b(?:act|respond|behave)\s+as\s+(?:if\s+you\s+(?:were|are)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|evil|jailbroken|dan)\b|\bdo\s+anything\s+now\b|\b(?:developer|god|debug|admin|sudo|maintenance|unrestricted)\s+mode\b|\bjailbr(?:eak|oken)\b|\bdan\b`},
		{ID: "no_restrictions", Reason: "asks the model to drop its safety rules",
			Triggers: strings.Fields("restrictions restriction limitations filters censorship guidelines rules policies ethics morals"),
			Pattern:  `\b(?:without|no|free\s+(?:of|from)|ignore|bypass|remove|disable)\s+(?:any\s+|all\s+|your\s+|the\s+|its\s+)*(?:restrictions?|limitations?|filters?|censorship|guidelines|content\s+polic(?:y|ies)|ethical\s+(?:guidelines|constraints)|morals?|ethics)\b`},
		{ID: "prompt_extraction", Reason: "asks for the system prompt or secrets",
			Triggers: strings.Fields("prompt prompts instructions password passwords secret secrets key keys credentials confidential"),
			Pattern:  `\b(?:reveal|print|show|tell|repeat|output|display|share|leak|give|disclose|write|spell|recite|what\s+(?:is|are|was|were))\b[^.\n]{0,40}\b(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|original\s+prompt|your\s+(?:prompt|instructions|rules)|(?:secret|api|private)\s+key|password|credentials|confidential)`},
		{ID: "chat_template", Reason: "contains chat-template control tokens",
			Triggers: strings.Fields("im_start im_end inst sys system endoftext assistant user start_header_id"),
			Pattern:  `<\|?(?:im_start|im_end|endoftext|system|user|assistant|start_header_id|end_header_id|eot_id)\|?>|\[/?inst\]|<<\s*/?sys\s*>>|(?:^|\n)\s*#{2,}\s*(?:system|instruction|new instruction)s?\b|(?:^|\n)\s*(?:system|assistant)\s*:\s`},
		{ID: "urgent_directive", Reason: "marks an embedded instruction as urgent or authoritative",
			Triggers: strings.Fields("important attention urgent notice warning admin administrator override priority"),
			Pattern:  `\b(?:important|attention|urgent|notice|warning|admin(?:istrator)?\s+(?:message|note)|priority\s+override|system\s+(?:message|note|override|notice))\b\s*[!:]+[^\n]{0,120}\b(?:instruction|must|immediately|ignore|instead|assistant|ai|model|you)\b`},
		{ID: "hide_from_user", Reason: "asks to hide actions from the user",
			Triggers: strings.Fields("tell inform mention notify alert reveal user users"),
			Pattern:  `\b(?:do\s+not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|notify(?:ing)?|alert(?:ing)?|reveal(?:ing)?\s+(?:this\s+)?to)\s+(?:the\s+)?users?\b`},
		{ID: "exfil_markup", Reason: "renders a link or image whose URL carries data",
			Triggers: strings.Fields("http https img src"),
			Pattern:  `!\[[^\]\n]{0,200}\]\(\s*https?://[^)\s]{1,300}[?&#=][^)\s]{0,300}\)|<img\b[^>]{0,200}\bsrc\s*=\s*["']?https?://[^"'\s>]{1,300}[?&=]`},
		{ID: "encoded_instruction", Reason: "asks to decode and follow an encoded message",
			Triggers: strings.Fields("base64 rot13 hex decode decoded encoded cipher"),
			Pattern:  `\b(?:decode|decipher|base64|rot13|rot-13|encoded)\b[^.\n]{0,60}\b(?:follow|execute|do|obey|instructions?|respond|answer)\b`},
		{ID: "fake_dialogue", Reason: "embeds a scripted question-and-answer dialogue (many-shot steering)",
			Triggers: strings.Fields("q a question answer user assistant human ai"), NonASCII: true, MinCount: 3,
			Pattern: `(?:^|[\s.?!。？"'])(?:q|a|question|answer|user|assistant|human|ai|в|о|вопрос|ответ|ถาม|ตอบ|问|答|問|질문|답변|답|प्रश्न|उत्तर|প্রশ্ন|উত্তর|س|ج|soru|cevap|frage|antwort|domanda|risposta|pregunta|respuesta|pergunta|resposta|câu\s+hỏi|trả\s+lời|tanong|sagot|p|r|f|t|s|h|d)\s*[:：]\s`},
		{ID: "repeated_token", Reason: "repeats a token many times (repeated-token attack)", NonASCII: true,
			Triggers: nil, Func: repeatedToken},
		{ID: "pig_latin", Reason: "text written in pig latin (token smuggling)",
			Triggers: nil, Func: pigLatin},
		{ID: "authority_claim", Reason: "claims authority or a special mode to get compliance",
			Triggers: strings.Fields("am i'm as developer developed creator administrator admin president ceo owner enforcement police security mode entering activate enable"),
			Pattern:  `\b(?:i\s+am|i'm|as)\s+(?:an?\s+|the\s+|your\s+)?(?:ai\s+developed\s+by|developer|creator|administrator|admin|system\s+administrator|president|ceo|owner|law\s+enforcement|police|fbi|security\s+(?:team|auditor|officer|researcher)|renowned|expert|certified)\b|\b(?:entering|enter|activate|activating|enable|enabling|switch(?:ing)?\s+to|now\s+in)\b[^.\n]{0,40}\bmode\b`},
		{ID: "user_data_request", Reason: "asks for the user's private data",
			Triggers: strings.Fields("user user's users social security credit birth passphrase"),
			Pattern:  `\bwhere\s+(?:does|is|do)\s+(?:the\s+)?users?\s+(?:live|living|located|currently|reside)|\bthe\s+user's\s+(?:email|address|location|password|phone|birth|ssn|social|credit|account|full\s+name|data|personal|home)|\b(?:social\s+security|credit\s+card)\s+number|\bpassphrase\b|\b(?:users?|customers?)\s+(?:and\s+their|personal|private)\s+\w+`},
		{ID: "hypothetical_framing", Reason: "wraps a sensitive request in a hypothetical world",
			Triggers: strings.Fields("imagine pretend suppose hypothetically let's world universe scenario roleplay role"),
			Pattern:  `\b(?:imagine|pretend|suppose|hypothetically|let's\s+say|in\s+a\s+(?:world|universe|scenario|parallel)|role-?play)\b[^\n]{0,240}\b(?:passwords?|passphrase|secret|personal\s+(?:data|information)|private\s+(?:data|information)|user's|birth\s*date|social\s+security|credentials|no\s+rules|rules\s+(?:don't|do\s+not)\s+apply|public\s+knowledge)`},
		{ID: "topic_switch", Reason: "abruptly drops the current task for another",
			Triggers: strings.Fields("forget actually nevermind never instead"),
			Pattern:  `\bforget\s+(?:about\s+)?(?:that|this|it|everything)\b|\bactually,?\s+(?:can|could|please|instead|i\s+want)\b|\bnever\s*mind\b|\binstead\s*\?`},
		{ID: "override_multilingual", Reason: "asks to ignore earlier instructions (non-English)",
			Pattern: strings.Join([]string{
				`ignor(?:e[zr]?|ez)\s+(?:toutes\s+)?(?:les\s+|vos\s+)?(?:instructions|consignes|directives)`, `oubli(?:e[zr]?)\s+(?:toutes\s+)?(?:les\s+|vos\s+)?(?:instructions|consignes|règles)`,
				`(?:ignora|olvida|olvide|ignore)\s+(?:todas\s+)?(?:las\s+|tus\s+|sus\s+)?(?:instrucciones|indicaciones|reglas)`,
				`(?:ignore|ignora|esqueça|esqueca|desconsidere)\s+(?:todas\s+)?(?:as\s+)?(?:instruções|instrucoes|regras)`,
				`(?:ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte)\s+(?:alle\s+)?(?:vorherigen|bisherigen|vorigen|obigen|deine|ihre)?\s*(?:anweisungen|instruktionen|regeln|befehle)`,
				`(?:ignora|dimentica|ignorate|dimenticate)\s+(?:tutte\s+)?(?:le\s+)?(?:istruzioni|indicazioni|regole)`,
				`(?:игнорир\pL*|забуд\pL*|не\s+обраща\pL*\s+внимани\pL*\s+на)\s+(?:все\s+)?(?:предыдущ\pL+|прежн\pL+|ранее\s+\pL+|свои|ваши)?\s*(?:инструкци\pL*|указани\pL*|правил\pL*)`,
				`(?:忽略|无视|忘记|忘掉|不要理会|忽视)[^。\n]{0,12}(?:指令|指示|说明|规则|提示)`,
				`(?:指示|命令|ルール|指令)[^。\n]{0,8}(?:無視|忘れ)`,
				`(?:지시|명령|지침|규칙)[^.\n]{0,10}(?:무시|잊어)`,
				`(?:निर्देश|निर्देशों|आदेश|नियम)[^।\n]{0,20}(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)`,
				`(?:تجاهل|انس|اتجاهل)[^.\n]{0,20}(?:التعليمات|الإرشادات|الأوامر|القواعد)`,
				`(?:talimat\pL*|kural\pL*|komut\pL*)[^.\n]{0,20}(?:yok\s+say|görmezden\s+gel|unut|dikkate\s+alma)`,
				`(?:bỏ\s+qua|phớt\s+lờ|quên)[^.\n]{0,20}(?:hướng\s+dẫn|chỉ\s+dẫn|lệnh|quy\s+tắc)`,
				`(?:abaikan|lupakan)[^.\n]{0,20}(?:instruksi|petunjuk|perintah|aturan|(?:yg|yang)\s+(?:di\s*atas|sebelumnya))`,
				`(?:huwag\s+pansinin|kalimutan)[^.\n]{0,30}(?:tagubilin|utos|panuto|instruksyon)`,
				`(?:নির্দেশ|নির্দেশনা|নির্দেশাবলী)[^।\n]{0,20}(?:উপেক্ষা|ভুলে)`,
				`(?:ละเว้น|เพิกเฉย|ไม่สนใจ|ลืม)[^\n]{0,20}(?:คำสั่ง|คำแนะนำ)`,
			}, "|")},
	}
}

// CompileRules compiles rules once; the result is read-only.
func CompileRules(rules []Rule) (*RuleSet, error) {
	if len(rules) > 64 {
		return nil, fmt.Errorf("at most 64 rules, got %d", len(rules))
	}
	rs := &RuleSet{trig: map[uint64]uint64{}}
	for i, r := range rules {
		if r.Func == nil {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.ID, err)
			}
			r.re = re
		}
		if r.MinCount <= 0 {
			r.MinCount = 1
		}
		rs.rules = append(rs.rules, r)
		if len(r.Triggers) == 0 || r.NonASCII {
			rs.nonASCII |= 1 << i
		}
		if len(r.Triggers) == 0 && r.Func != nil {
			rs.always |= 1 << i
		}
		for _, w := range r.Triggers {
			rs.trig[wordHash(w)] |= 1 << i
		}
	}
	return rs, nil
}

// Rules returns the rule definitions.
func (rs *RuleSet) Rules() []Rule { return rs.rules }

// Len is the number of rules.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// candidates returns the mask of rules whose trigger words occur in s.
func (rs *RuleSet) candidates(s string) uint64 {
	var mask uint64
	var h uint64 = fnvOffset ^ seedWord
	in := false
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			ascii = false
		}
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			if c == '-' || c == '_' { // im_start, rot-13: keep inside a word
				if !in {
					continue
				}
			}
			h = (h ^ uint64(c)) * fnvPrime
			in = true
			continue
		}
		if in {
			mask |= rs.trig[h]
			h = fnvOffset ^ seedWord
			in = false
		}
	}
	if in {
		mask |= rs.trig[h]
	}
	if !ascii {
		mask |= rs.nonASCII
	}
	return mask | rs.always
}

// Match returns the rule hits in s (normalised text), at most max.
func (rs *RuleSet) Match(s string, dst []Hit, max int) []Hit {
	mask := rs.candidates(s)
	for i := range rs.rules {
		if mask&(1<<i) == 0 {
			continue
		}
		r := &rs.rules[i]
		var locs [][2]int
		if r.Func != nil {
			locs = r.Func(s)
		} else {
			for _, l := range r.re.FindAllStringIndex(s, 8) {
				locs = append(locs, [2]int{l[0], l[1]})
			}
		}
		if len(locs) < r.MinCount {
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

// words calls fn for each maximal run of letters and digits in s.
func words(s string, fn func(start, end int) bool) {
	in, st := false, 0
	for i, r := range s {
		if isWordRune(r) {
			if !in {
				in, st = true, i
			}
			continue
		}
		if in {
			in = false
			if !fn(st, i) {
				return
			}
		}
	}
	if in {
		fn(st, len(s))
	}
}

// repeatedToken finds a word repeated at least 8 times in a row.
func repeatedToken(s string) [][2]int {
	var out [][2]int
	prev := ""
	run, runStart, lastEnd := 0, 0, 0
	words(s, func(a, b int) bool {
		w := s[a:b]
		if w == prev {
			run++
		} else {
			if run >= 8 {
				out = append(out, [2]int{runStart, lastEnd})
			}
			prev, run, runStart = w, 1, a
		}
		lastEnd = b
		return len(out) < 4
	})
	if run >= 8 {
		out = append(out, [2]int{runStart, lastEnd})
	}
	return out
}

// pigLatin flags text most of whose words end in "ay" (at least 4 words).
func pigLatin(s string) [][2]int {
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
