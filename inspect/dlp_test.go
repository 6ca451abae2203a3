package inspect

import (
	"strings"
	"testing"
)

func newScanner(t testing.TB) *Scanner {
	t.Helper()
	s, err := NewScanner(ScannerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScanFindsSecrets(t *testing.T) {
	s := newScanner(t)
	if s.RuleCount() < 200 {
		t.Fatalf("only %d secret rules loaded", s.RuleCount())
	}
	cases := []struct {
		name, text, rule string
	}{
		{"github pat", "token: ghp_Zk3v9QmT2xW8pLr5Nc7Yb1Hd4Fj6Ka0Sx2Vq", "github-pat"},
		{"aws access key", "aws_access_key_id = AKIAZ7QK3LX2R5T6W4NM", "aws-access-token"},
		{"slack bot token", "SLACK=xoxb-2048394857-1029384756102-Zk3v9QmT2xW8pLr5Nc7Yb1Hd", "slack-bot-token"},
		{"private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7Zk3v9QmT2xW8pLr5Nc7Yb1Hd4Fj6Ka0Sx2VqMIIEowIBAAKCAQEA7Zk3v9QmT2xW8pLr5Nc7Yb1Hd4Fj6Ka0Sx2Vq\n-----END RSA PRIVATE KEY-----", "private-key"},
		{"stripe", "sk_live_51Hq8ZkL3v9QmT2xW8pLr5Nc7Yb1Hd4Fj", "stripe-access-token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := s.Scan(c.text, "$.body")
			for _, f := range fs {
				if f.Kind == KindSecret && f.Rule == c.rule {
					if f.Path != "$.body" || strings.Contains(f.Excerpt, c.text[f.Start:f.End]) {
						t.Errorf("finding %+v: wrong path or unmasked excerpt", f)
					}
					return
				}
			}
			t.Errorf("no %s finding in %+v", c.rule, fs)
		})
	}
}

func TestScanIgnoresNonSecrets(t *testing.T) {
	s := newScanner(t)
	for _, text := range []string{
		"The quick brown fox jumps over the lazy dog.",
		"aws_access_key_id = AKIAIOSFODNN7EXAMPLE", // AWS's documented example key
		"commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b fixed the build",
		"password: ${DB_PASSWORD}",
		"version 1.2.3 released on 2024-05-01",
	} {
		for _, f := range s.Scan(text, "") {
			if f.Kind == KindSecret {
				t.Errorf("%q: unexpected secret finding %+v", text, f)
			}
		}
	}
}

func TestScanFindsPII(t *testing.T) {
	s := newScanner(t)
	cases := []struct {
		name, text, rule string
		want             bool
	}{
		{"email", "write to jane.doe@example.org today", "email", true},
		{"visa luhn ok", "card 4111 1111 1111 1111 exp 12/29", "payment_card", true},
		{"visa luhn bad", "card 4111 1111 1111 1112 exp 12/29", "payment_card", false},
		{"iban ok", "pay to DE89 3704 0044 0532 0130 00 please", "iban", true},
		{"iban bad checksum", "pay to DE89 3704 0044 0532 0130 01 please", "iban", false},
		{"gb iban", "GB82WEST12345698765432", "iban", true},
		{"ssn ok", "SSN 536-22-1234", "us_ssn", true},
		{"ssn invalid area", "SSN 666-22-1234", "us_ssn", false},
		{"uk nino", "NI number AB 12 34 56 C", "uk_nino", true},
		{"phone intl", "call +44 20 7946 0958 now", "phone", true},
		{"phone us", "call (415) 555-2671", "phone", true},
		{"not a phone", "release 2024.05.01 is out", "phone", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			found := false
			for _, f := range s.Scan(c.text, "") {
				if f.Kind == KindPII && f.Rule == c.rule {
					found = true
				}
			}
			if found != c.want {
				t.Errorf("%q: %s found = %v, want %v", c.text, c.rule, found, c.want)
			}
		})
	}
}

func TestScanBounded(t *testing.T) {
	s := newScanner(t)
	big := strings.Repeat("ghp_ token aws akia password secret key 4111 1111 1111 1111 a@b.co ", 20000)
	fs := s.Scan(big, "")
	if len(fs) == 0 {
		t.Fatal("no findings in a large input full of them")
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"", "ghp_x", "4111111111111111", "DE89370400440532013000", "a@b.c", "\xff"} {
		f.Add(s)
	}
	s := newScanner(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, fd := range s.Scan(text, "") {
			if fd.Start < 0 || fd.End > len(text) || fd.Start > fd.End {
				t.Fatalf("span %d..%d outside %d bytes", fd.Start, fd.End, len(text))
			}
		}
		for _, fd := range s.ScanExfil(text, "", EgressPolicy{Allow: []string{"ok.example"}, DenyUnlisted: true}) {
			if fd.Start < 0 || fd.End > len(text) || fd.Start > fd.End {
				t.Fatalf("exfil span %d..%d outside %d bytes", fd.Start, fd.End, len(text))
			}
		}
	})
}
