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
	email, phone, card, iban, ssn, nino *regexp.Regexp
	ibanLen                             map[string]int
}

func newPIIScanner() (*piiScanner, error) {
	var c compiler
	p := &piiScanner{
		email: c.compile(`[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b`),
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
	if strings.IndexByte(text, '@') >= 0 {
		for _, m := range p.email.FindAllStringIndex(text, 64) {
			add("email", "e-mail address", 0.9, m[0], m[1])
		}
	}
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
	if upper {
		for _, m := range p.nino.FindAllStringIndex(text, 64) {
			add("uk_nino", "UK National Insurance number", 0.7, m[0], m[1])
		}
	}
	if digits < 9 {
		return out
	}
	for _, m := range p.card.FindAllStringIndex(text, 64) {
		if d := onlyDigits(text[m[0]:m[1]]); len(d) >= 13 && len(d) <= 19 && luhn(d) && cardPrefix(d) {
			add("payment_card", "payment card number (Luhn-valid)", 0.95, m[0], m[1])
		}
	}
	if upper {
		for _, m := range p.iban.FindAllStringIndex(text, 64) {
			if p.validIBAN(text[m[0]:m[1]]) {
				add("iban", "IBAN (mod-97-valid)", 0.95, m[0], m[1])
			}
		}
	}
	for _, m := range p.ssn.FindAllStringIndex(text, 64) {
		if validSSN(text[m[0]:m[1]]) {
			add("us_ssn", "US Social Security number", 0.8, m[0], m[1])
		}
	}
	for _, m := range p.phone.FindAllStringIndex(text, 64) {
		d := onlyDigits(text[m[0]:m[1]])
		if len(d) < 9 || len(d) > 15 {
			continue
		}
		// A card or IBAN already claims these digits; dates and versions are not phones.
		s := text[m[0]:m[1]]
		if strings.Count(s, ".") >= 2 && !strings.HasPrefix(s, "+") && !strings.Contains(s, " ") {
			if strings.Count(s, ".") != 2 {
				continue
			}
		}
		add("phone", "phone number", 0.6, m[0], m[1])
	}
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
