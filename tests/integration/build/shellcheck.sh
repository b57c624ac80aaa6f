#!/usr/bin/env bash
# Every tracked shell script (tests, their helpers, the demo, CI) passes
# ShellCheck at warning level, so quoting mistakes (a checkout path with a
# space) and unchecked cd calls do not creep back.
. "$IDP_TOP/tests/lib.sh"
cd "$IDP_TOP" || exit 1
mapfile -t files < <(git ls-files '*.sh' '*.inc' 'tests/run-*' 'tests/summarize' '.ci/*')
if [ "${#files[@]}" -ge 10 ]; then t_ok "${#files[@]} scripts to check"; else
	t_fail "only ${#files[@]} scripts found"; fi
if shellcheck -S warning "${files[@]}" >"$T_TMP/sc.out" 2>&1; then
	t_ok "shellcheck -S warning finds nothing"
else
	t_fail "shellcheck -S warning: $(grep -c '^In ' "$T_TMP/sc.out") findings"
	head -40 "$T_TMP/sc.out"
fi
t_done
