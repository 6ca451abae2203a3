#!/usr/bin/env python3
"""Convert gitleaks' default rule set (config/gitleaks.toml, MIT license,
Copyright (c) 2019 Zachary Rice) into inspect/rules/secrets.json.

Reproduce:
    go mod download -json github.com/zricethezav/gitleaks/v8@v8.30.1
    python3 inspect/rules/convert_gitleaks.py \
        "$(go env GOMODCACHE)/github.com/zricethezav/gitleaks/v8@v8.30.1/config/gitleaks.toml" \
        > inspect/rules/secrets.json

Only the rule data is taken (ids, descriptions, regexes, keywords, entropy
thresholds, secret groups, allow-list regexes and stopwords); path-only rules
are dropped because Warden scans text, not files.
"""
import json, sys, tomllib

src = sys.argv[1]
with open(src, "rb") as f:
    c = tomllib.load(f)
out = {
    "source": "gitleaks v8.30.1 config/gitleaks.toml",
    "license": "MIT (Copyright (c) 2019 Zachary Rice); see inspect/rules/GITLEAKS-LICENSE",
    "global_allow_regexes": c.get("allowlist", {}).get("regexes", []),
    "global_stopwords": c.get("allowlist", {}).get("stopwords", []),
    "rules": [],
}
for r in c["rules"]:
    if "regex" not in r:
        continue
    rule = {
        "id": r["id"],
        "description": r.get("description", ""),
        "regex": r["regex"],
        "keywords": [k.lower() for k in r.get("keywords", [])],
    }
    if "entropy" in r:
        rule["entropy"] = r["entropy"]
    if "secretGroup" in r:
        rule["secret_group"] = r["secretGroup"]
    allow, stop = [], []
    for a in r.get("allowlists", []):
        if a.get("paths") and not a.get("regexes") and not a.get("stopwords"):
            continue
        target = a.get("regexTarget", "secret")
        for x in a.get("regexes", []):
            allow.append({"regex": x, "target": target})
        stop += a.get("stopwords", [])
    if allow:
        rule["allow"] = allow
    if stop:
        rule["stopwords"] = stop
    out["rules"].append(rule)
json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
sys.stdout.write("\n")
