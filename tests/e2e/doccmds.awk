# doccmds.awk - print "FILE:LINE<TAB>COMMAND" for each command of the ```sh
# blocks of the Markdown files given (continuation lines joined, comments
# dropped, runs of blanks squeezed), and for each "$ COMMAND" line of the
# other fenced blocks (a session shown with its output).
FNR == 1 { inb = 0; other = 0; cmd = ""; at = 0 }
/^```/ {
	if (inb || other) { inb = 0; other = 0; next }
	if ($0 == "```sh") inb = 1; else other = 1
	next
}
other && /^\$ / { line = substr($0, 3); gsub(/[ \t]+/, " ", line); print FILENAME ":" FNR "\t" line; next }
!inb { next }
{
	line = $0
	sub(/^[ \t]*#.*/, "", line)
	sub(/[ \t]+#.*/, "", line)
	if (cmd == "") at = FNR
	cont = sub(/[ \t]*\\$/, "", line)
	cmd = cmd " " line
	if (cont) next
	gsub(/[ \t]+/, " ", cmd); sub(/^ /, "", cmd); sub(/ $/, "", cmd)
	if (cmd != "") print FILENAME ":" at "\t" cmd
	cmd = ""
}
