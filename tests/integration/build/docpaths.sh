#!/usr/bin/env bash
# docpaths.sh - no doc cites a file that is not in the repository: every
# repository path (formats/..., server/..., tests/..., samples/..., docs/...,
# enroll/..., device-agent/..., .ci/...; globs and {h,c} allowed; a program
# built from X.c may be named X) in README.md, docs/*.md, the specs
# formats/*.md, the man pages and samples/manifests, every relative Markdown
# link, and every test named (test_x.c, or a Check test case test_x_y) exists. A doc citing a missing file shows the check
# can fail.
. "$IDP_TOP/tests/lib.sh"
cd "$IDP_TOP" || exit 1

# paths FILE: the repository paths FILE cites, one a line
paths() {
	sed 's/\\-/-/g' "$1" |
		grep -oE '(^|[^A-Za-z0-9_/.-])(\.ci|formats|server|enroll|device-agent|tests|samples|docs)/([A-Za-z0-9_.@*-]|\[[a-z]+\]|\{[a-z,]+\}|/)*' |
		sed -E 's/^[^.a-z]//; s/[.]+$//' | sort -u
}
# missing FILE: what FILE cites that does not exist
missing() {
	local p q alt dir
	for p in $(paths "$1"); do
		if [[ $p =~ ^(.*)\{([a-z,]+)\}(.*)$ ]]; then
			for alt in ${BASH_REMATCH[2]//,/ }; do
				q=${BASH_REMATCH[1]}$alt${BASH_REMATCH[3]}
				compgen -G "$q" >/dev/null || echo "$1: $q"
			done
		else # a program may be named by its source (tests/tools/x for x.c)
			compgen -G "$p" >/dev/null || [ -f "$p.c" ] || echo "$1: $p"
		fi
	done
	dir=$(dirname "$1")
	for p in $(grep -oE '\]\([^)#]+' "$1" | sed 's/^](//' | grep -vE '^[a-z]+:'); do
		[ -e "$dir/$p" ] || echo "$1: link $p"
	done
	for p in $(grep -ohE '\btest_[a-z0-9_]+(\.c)?\b' "$1" | sort -u); do
		q=${p%.c}
		[ -n "$(find tests -name "$q.c" -print -quit)" ] ||
			grep -rqE "START_TEST\\($q\\)" tests || echo "$1: test $p"
	done
}
docs=$(ls README.md docs/*.md formats/*.md docs/man/* samples/manifests/README.md)
n=0
: >"$T_TMP/missing"
for f in $docs; do
	n=$((n + $(paths "$f" | wc -l)))
	missing "$f" >>"$T_TMP/missing"
done
t_run "the docs cite at least 100 paths ($n)" [ "$n" -ge 100 ]
if [ -s "$T_TMP/missing" ]; then t_fail "cited, not in the repository:"; sed 's/^/    # /' "$T_TMP/missing"
else t_ok "every path, link and test the docs cite exists"; fi

# The check can fail: a doc citing missing files of each kind.
printf 'See `formats/nothing.md`, server/gone.{h,c}, [x](nowhere.md) and `test_no_such_case`.\n' \
	>"$T_TMP/probe.md"
missing "$T_TMP/probe.md" >"$T_TMP/probe.out"
t_grep "a missing path is named" 'formats/nothing.md$' "$T_TMP/probe.out"
t_grep "a missing {h,c} file is named" 'server/gone.c$' "$T_TMP/probe.out"
t_grep "a broken link is named" 'link nowhere.md$' "$T_TMP/probe.out"
t_grep "a missing test is named" 'test test_no_such_case$' "$T_TMP/probe.out"
t_done
