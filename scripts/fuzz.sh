#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s), one
# after another (go test -fuzz takes one target at a time). A crash stops the
# run; its input is left under the package's testdata/fuzz for `go test` to
# replay. Usage: scripts/fuzz.sh [FuzzName-regexp]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
filter=${1:-.}
go_bin=${GO:-go}
n=0
while IFS=: read -r file _ decl; do
	name=${decl#func }
	name=${name%%(*}
	[[ $name =~ $filter ]] || continue
	pkg=./$(dirname "$file")
	echo "== $pkg $name ($fuzztime)"
	"$go_bin" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
	n=$((n + 1))
done < <(git grep -n '^func Fuzz' -- '*_test.go')
echo "fuzzed $n targets for $fuzztime each"
