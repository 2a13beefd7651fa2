#!/usr/bin/env bash
# The bash completion of jobq against a real manager: commands, a group's
# subcommands, a command's options, queue names, keys and job ids from the
# instance named by --dir. Starts its own jobqd --daemon in a fresh
# directory and stops it by its pid.
set -u
src=${JOBQ_TEST_SRCDIR:?}
jobq=${JOBQ_TEST_JOBQ:?}
jobqd=${JOBQ_TEST_JOBQD:?}
top=$(mktemp -d) || exit 1
dir=$top/jobq
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$top"
}
trap cleanup EXIT
"$jobqd" --dir "$dir" --daemon || { echo "jobqd did not start"; exit 1; }
pid=$(cat "$dir/jobqd.pid")
"$jobq" --dir "$dir" put invoices x >/dev/null &&
	"$jobq" --dir "$dir" put inbox y >/dev/null &&
	"$jobq" --dir "$dir" kv set color blue >/dev/null &&
	id=$("$jobq" --dir "$dir" submit echo '{}') || { echo "setup failed"; exit 1; }

. "$src/dist/bash-completion/jobq"

failed=0
# expect "WORDS..." "EXPECTED WORD" [absent]: complete the last word.
expect() {
	local line=$1 want=$2 absent=${3:-}
	read -ra COMP_WORDS <<<"$line"
	[[ $line == *" " ]] && COMP_WORDS+=("")
	COMP_WORDS[0]=$jobq
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_jobq
	local got=" ${COMPREPLY[*]} "
	if [[ -z $absent && $got != *" $want "* ]] || [[ -n $absent && $got == *" $want "* ]]; then
		echo "FAIL: '$line' -> [${COMPREPLY[*]}], ${absent:+not }expected '$want'"
		failed=1
	else
		echo "ok: '$line' -> [${COMPREPLY[*]}]"
	fi
}
expect "jobq pi" ping
expect "jobq s" submit
expect "jobq s" stats
expect "jobq kv " incr
expect "jobq queue " set
expect "jobq submit --pri" --priority
expect "jobq get --" --nowait
expect "jobq --dir $dir get in" invoices
expect "jobq --dir $dir get in" inbox
expect "jobq get --dir $dir inv" invoices
expect "jobq --dir $dir kv get c" color
expect "jobq --dir $dir show " "$id"
expect "jobq --dir $dir ls --state r" ready
expect "jobq submit ec" echo
expect "jobq --dir $dir lock x -- inv" invoices absent
exit $failed
