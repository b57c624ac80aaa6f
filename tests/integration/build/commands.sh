#!/usr/bin/env bash
# Every command the build, the tests and the demo call comes from a package in
# .ci/install-deps (or from an Essential/required package every Debian has), so
# a fresh Debian 12 has it after `make check` or `make demo` installed the list.
# The commands are read from the tracked scripts and Makefiles themselves: the
# word in command position of each line and of each part after | && || ; $( `.
. "$IDP_TOP/tests/lib.sh"
cd "$IDP_TOP" || exit 1

# Words in command position, one a line (comments, expansions and quotes dropped).
commands_of() {
	awk -f "$IDP_TOP/tests/integration/build/commands.awk" "$@" |
		grep -E '^[A-Za-z][A-Za-z0-9._+-]*$' | sort -u
}

files=$(git ls-files '*.sh' '*.inc' 'Makefile' '*/module.mk' 'tests/run-*' 'tests/summarize' \
	'.ci/*')
# Shell functions the scripts define are not commands.
funcs=$(grep -hoE '^[[:space:]]*[a-z_][a-z0-9_]*\(\)' $files | tr -d ' \t()' | sort -u)
listed=$(sed -n '/^PACKAGES="/,/^"/p' .ci/install-deps | grep -v '"' | tr ' ' '\n' | grep . |
	sort -u)

# Direct dependencies of listed packages (clang-tidy -> clang-tidy-14), read once.
deps=$(apt-cache depends --no-recommends --no-suggests $listed 2>/dev/null |
	sed -n 's/^ *Depends: //p' | sort -u)
checked=0
seen=""
bad=""
for c in $(commands_of $files); do
	grep -qx -- "$c" <<<"$funcs" && continue
	[ "$(type -t "$c")" = builtin ] || [ "$(type -t "$c")" = keyword ] && continue
	# Not a program here (a variable, a case label): nothing to map. A real
	# command missing here fails its own test anyway.
	path=$(type -P "$c") || continue
	real=$(readlink -f "$path")
	pkg=$( (dpkg -S "$path" || dpkg -S "$real" || dpkg -S "${path#/usr}") 2>/dev/null |
		head -1 | cut -d: -f1)
	[ -n "$pkg" ] || { bad="$bad $c(no-package)"; continue; }
	checked=$((checked + 1)); seen="$seen $c"
	grep -qx -- "$pkg" <<<"$listed" && continue
	prio=$(dpkg-query -W -f='${Essential} ${Priority}' "$pkg" 2>/dev/null)
	case "$prio" in yes*|*required) continue ;; esac
	# A versioned package (clang-tidy-14) pulled in by a listed one (clang-tidy).
	grep -qx -- "$pkg" <<<"$deps" && continue
	bad="$bad $c($pkg)"
done
if [ "$checked" -ge 10 ]; then t_ok "read $checked commands from the scripts:$seen"; else
	t_fail "read only $checked commands from the scripts: the reader is broken"; fi
if [ -z "$bad" ]; then t_ok "every command the scripts call comes from a listed package"; else
	t_fail "commands from unlisted packages:$bad"; fi

# The reader itself finds a command from an unlisted package (it can fail).
printf '#!/bin/sh\nx=$(shellcheck -V | head -1) && echo "$x"\n' >"$T_TMP/probe.sh"
if commands_of "$T_TMP/probe.sh" | grep -qx shellcheck; then t_ok "the reader sees a command inside \$( )"
else t_fail "the reader missed shellcheck in \$( )"; fi
t_done
