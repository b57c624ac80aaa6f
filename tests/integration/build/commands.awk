# commands.awk - print the word in command position of each line of shell
# scripts and Makefile recipes, and of each part after | && || ; $( `.
# Comments, quoted strings (also those spanning lines), here-documents and
# make/shell expansions are dropped. Used by commands.sh.
function emit(seg,   n, w, i) {
	n = split(seg, w, /[ \t]+/)
	for (i = 1; i <= n; i++) {
		if (w[i] == "" || w[i] ~ /^[A-Za-z_][A-Za-z0-9_]*=/) continue
		if (w[i] ~ /^(for|case|select|function)$/) return
		if (w[i] ~ /^(!|\{|\}|if|then|else|elif|fi|do|done|while|until|in|esac|time|exec|command|env|nohup|setsid|sudo|xargs|\[|\[\[|-)$/) continue
		if (w[i] ~ /^(timeout|nice)$/) { i++; while (i < n && w[i+1] ~ /^(-|[0-9])/) i++; continue }
		print w[i]; return
	}
}
FNR == 1 { hd = ""; inq = "" }
{
	line = $0
	if (hd != "") { if (line ~ "^[ \t]*" hd "$") hd = ""; next }
	# A quoted string that spans lines (a package list, an awk program) is data.
	if (inq != "") { if (index(line, inq)) inq = ""; next }
	if (FILENAME ~ /(Makefile|\.mk)$/) {
		if (line !~ /^\t/) next
		sub(/^\t[@+-]*/, "", line)
		gsub(/\$\([^()]*\)|\$\{[^{}]*\}|\$\$?[A-Za-z_@<^*]/, "X", line)
	}
	gsub(/\$\(\([^)]*\)\)|\$\{[^}]*\}/, " ", line)
	gsub(/"[^"]*"|'[^']*'/, " ", line)
	sub(/(^|[ \t])#.*/, "", line)
	if (match(line, /["']/)) { inq = substr(line, RSTART, 1); line = substr(line, 1, RSTART - 1) }
	if (match(line, /<<-?[ ]*[A-Za-z_]+/)) {
		hd = substr(line, RSTART, RLENGTH); gsub(/[<\- ]/, "", hd)
	}
	gsub(/\$\(|`|\|\||&&|[|;()]/, "\n", line)
	n = split(line, seg, "\n")
	for (j = 1; j <= n; j++) emit(seg[j])
}
