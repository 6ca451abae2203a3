package inspect

import (
	"regexp"
	"strings"
)

// piiScanner finds personal data: e-mail addresses, phone numbers, payment
// card numbers (Luhn-checked), IBANs (mod-97-checked) and national
// identifiers (US SSN, UK National Insurance number), each validated beyond
// its shape where a checksum or a numbering rule exists.
type piiScanner struct {
	phone, card, iban, ssn, nino *regexp.Regexp
	ibanLen                      map[string]int
}

func newPIIScanner() (*piiScanner, error) {
	var c compiler
	p := &piiScanner{
		// International (+CC ...) or North American formats with separators.
		phone: c.compile(`(?:\+[1-9]\d{0,2}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){2,4}|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}|\b\d{3}[.\-]\d{3}[.\-]\d{4})\b`),
		card:  c.compile(`\b(?:\d[ \-]?){12,18}\d\b`),
		iban:  c.compile(`\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b`),
		ssn:   c.compile(`\b\d{3}-\d{2}-\d{4}\b`),
		nino:  c.compile(`\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b`),
		ibanLen: map[string]int{
			"AD": 24, "AE": 23, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
			"DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
			"GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
			"LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
			"PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
			"UA": 29, "VG": 24, "XK": 20,
		},
	}
	return p, c.err
}

func (p *piiScanner) scan(text, path string, out []Finding) []Finding {
	add := func(rule, reason string, score float64, s, e int) {
		out = append(out, Finding{Kind: KindPII, Rule: rule, Reason: reason, Score: score, Path: path, Start: s, End: e, Excerpt: mask(text[s:e])})
	}
	emails := 0
	forEachEmail(text, func(a, b int) bool {
		add("email", "e-mail address", 0.9, a, b)
		emails++
		return emails < 64
	})
	digits := 0
	upper := false
	for i := 0; i < len(text) && (digits < 9 || !upper); i++ {
		c := text[i]
		if c >= '0' && c <= '9' {
			digits++
		} else if c >= 'A' && c <= 'Z' {
			upper = true
		}
	}
	if digits < 6 {
		return out
	}
	// Patterns run only on small windows around candidates (letter-digit
	// codes for IBAN and NINO, number runs for the rest).
	win := func(a, b int) (int, int) { return max(0, a-3), min(len(text), b+3) }
	if upper {
		forEachCode(text, func(a, b int) bool {
			wa, wb := win(a, b)
			w := text[wa:wb]
			for _, m := range p.iban.FindAllStringIndex(w, 4) {
				if p.validIBAN(w[m[0]:m[1]]) {
					add("iban", "IBAN (mod-97-valid)", 0.95, wa+m[0], wa+m[1])
				}
			}
			for _, m := range p.nino.FindAllStringIndex(w, 4) {
				add("uk_nino", "UK National Insurance number", 0.7, wa+m[0], wa+m[1])
			}
			return len(out) < 256
		})
	}
	forEachNumberRun(text, 9, func(a, b int) bool {
		wa, wb := win(a, b)
		w := text[wa:wb]
		for _, m := range p.card.FindAllStringIndex(w, 8) {
			if d := onlyDigits(w[m[0]:m[1]]); len(d) >= 13 && len(d) <= 19 && luhn(d) && cardPrefix(d) {
				add("payment_card", "payment card number (Luhn-valid)", 0.95, wa+m[0], wa+m[1])
			}
		}
		for _, m := range p.ssn.FindAllStringIndex(w, 8) {
			if validSSN(w[m[0]:m[1]]) {
				add("us_ssn", "US Social Security number", 0.8, wa+m[0], wa+m[1])
			}
		}
		for _, m := range p.phone.FindAllStringIndex(w, 8) {
			s := w[m[0]:m[1]]
			d := onlyDigits(s)
			if len(d) < 9 || len(d) > 15 {
				continue
			}
			// Dotted numbers are versions and dates more often than phones.
			if strings.Count(s, ".") >= 2 && !strings.HasPrefix(s, "+") && !strings.Contains(s, " ") && strings.Count(s, ".") != 2 {
				continue
			}
			add("phone", "phone number", 0.6, wa+m[0], wa+m[1])
		}
		return len(out) < 256
	})
	return out
}

func onlyDigits(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	return string(b)
}

// luhn checks the Luhn (mod 10) check digit.
func luhn(d string) bool {
	sum, dbl := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// cardPrefix accepts the issuer prefixes of the major card networks.
func cardPrefix(d string) bool {
	switch {
	case d[0] == '4': // Visa
		return true
	case d[0] == '5' && d[1] >= '1' && d[1] <= '5', // Mastercard
		d[0] == '2' && d[1] >= '2' && d[1] <= '7',                                                // Mastercard 2-series
		d[0] == '3' && (d[1] == '4' || d[1] == '7'),                                              // Amex
		d[0] == '3' && (d[1] == '0' || d[1] == '6' || d[1] == '8'),                               // Diners
		strings.HasPrefix(d, "6011") || strings.HasPrefix(d, "65") || strings.HasPrefix(d, "64"), // Discover
		strings.HasPrefix(d, "35"),                                                               // JCB
		strings.HasPrefix(d, "62"):                                                               // UnionPay
		return true
	}
	return false
}

// validIBAN checks country length and the ISO 13616 mod-97 check.
func (p *piiScanner) validIBAN(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if n, ok := p.ibanLen[s[:2]]; !ok || n != len(s) {
		return false
	}
	r := s[4:] + s[:4]
	mod := 0
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c >= '0' && c <= '9':
			mod = (mod*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			v := int(c-'A') + 10
			mod = (mod*100 + v) % 97
		default:
			return false
		}
	}
	return mod == 1
}

// validSSN applies the SSA's numbering rules (no 000, 666 or 9xx area, no
// 00 group, no 0000 serial).
func validSSN(s string) bool {
	area, group, serial := s[0:3], s[4:6], s[7:11]
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// forEachCode calls fn with runs of upper-case letters, digits and single
// spaces that start with two letters and two digits (IBAN, NINO shapes).
func forEachCode(s string, fn func(start, end int) bool) {
	for i := 0; i+4 <= len(s); i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' && s[i+1] >= 'A' && s[i+1] <= 'Z') || i > 0 && isAlnum(s[i-1]) {
			continue
		}
		j := i + 2
		for j < len(s) && j-i < 48 && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == ' ' && j+1 < len(s) && isAlnum(s[j+1])) {
			j++
		}
		if j-i >= 9 && s[i+2] >= '0' && s[i+2] <= '9' || j-i >= 9 && s[i+2] == ' ' {
			if !fn(i, j) {
				return
			}
			i = j
		}
	}
}
