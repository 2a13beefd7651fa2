#!/usr/bin/env bash
# Build jobq and show it working: start a manager in a fresh directory, push
# real work through its queues, key/value store and locks from many
# processes, print what happened, and stop the manager.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh

need_packages
dir=build/release
configure "$dir" --buildtype=release -Dtests=false
build "$dir"

jobqd=$dir/manager/jobqd
jobq=$dir/cli/jobq
ex=$dir/examples
inst=$(mktemp -d /tmp/jobq-demo.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$inst"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
show() {
	local shown=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
			shown+=("$a")
		else
			shown+=("'${a//\'/\'\\\'\'}'")
		fi
	done
	printf '$ %s\n' "${shown[*]}"
	"$@"
}

step "start a manager (128 MiB store, 2 built-in workers) in $inst"
"$jobqd" --dir "$inst/jobq" --memory 128M --workers 2 --daemon
pid=$(cat "$inst/jobq/jobqd.pid")
export JOBQ_DIR=$inst/jobq
show "$jobq" ping

step "queues from the shell: put three objects, take them back in order"
show "$jobq" put greetings "hello"
printf 'from stdin' | show "$jobq" put greetings
show "$jobq" put greetings ''
show "$jobq" queues
for _ in 1 2 3; do show "$jobq" get greetings; echo; done
show "$jobq" get greetings --nowait || echo "(exit $?: the queue is empty)"

step "the key/value store: counters shared by every process"
show "$jobq" kv set motd "jobq demo"
show "$jobq" kv incr visits
show "$jobq" kv incr visits 41
show "$jobq" kv get motd; echo
show "$jobq" kv ls

step "a lock around a shell command"
show "$jobq" lock build -- sh -c 'echo "holding the build lock"; sleep 0.2'

step "the ticket seller: 100 processes, 50 tickets, one lock"
show "$ex/ticket_seller" --dir "$JOBQ_DIR"

step "producer/consumer: 4 producers, 4 consumers, objects of 0..64 KiB through a bounded queue"
show "$ex/producer_consumer" --dir "$JOBQ_DIR"

step "ordered locks: opposite lock orders end in -EDEADLK, not a hang"
show "$ex/ordered_locks" --dir "$JOBQ_DIR"

step "jobs from the shell: submit, wait for the results, look at them"
# submit ARGS...: show the command and the id it prints; keep the id in $id.
submit() {
	local out
	out=$(show "$jobq" submit "$@")
	echo "$out"
	id=${out##*$'\n'}
}
submit echo '{"hello": "world"}'; a=$id
submit sleep '{"ms": 200}' --priority 5; b=$id
submit fail '{"error": "disk on fire"}' --retries 0; c=$id
show "$jobq" wait "$a" "$b" "$c" || echo "(exit $?: one job failed, as asked)"
show "$jobq" show "$c"
show "$jobq" workers
show "$jobq" ls

step "shell commands as jobs: a spooler running 6 commands, 2 at a time"
show "$jobq" queue set builds --parallel 2
printf '%s\n' 'echo one' 'sleep 0.3' 'false' 'echo four' 'sleep 0.2' 'true' >"$inst/cmds.txt"
echo "\$ $jobq run --queue builds --from $inst/cmds.txt"
ids=$("$jobq" run --queue builds --from "$inst/cmds.txt")
echo "$ids"
show "$jobq" wait $ids >/dev/null || echo "(exit $?: the one that ran false failed, as asked)"
show "$jobq" logs "$(echo "$ids" | head -n 1)"

step "file jobs through the workers' io_uring: write a file, checksum it"
show "$jobq" wait "$("$jobq" submit file.write "{\"path\": \"$inst/note.txt\", \"data\": \"hello\"}")"
show "$jobq" wait "$("$jobq" submit file.checksum "{\"path\": \"$inst/note.txt\", \"algo\": \"sha256\"}")"

step "the manager crashes: kill -9, start again, the queue and the store are still there"
show "$jobq" put orders "order 1"
show "$jobq" kv set stock 12
kill -9 "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
show "$jobqd" --dir "$inst/jobq" --memory 128M --workers 2 --daemon
pid=$(cat "$inst/jobq/jobqd.pid")
show "$jobq" get orders; echo
show "$jobq" kv get stock; echo

step "jobs from C: apply and apply_async with callbacks, then map over a range"
show "$ex/apply" --dir "$JOBQ_DIR"
show "$ex/map" --dir "$JOBQ_DIR"

step "what the manager counted, and a snapshot of jobq top"
show "$jobq" stats
show "$jobq" top

step "stop the manager"
show "$jobq" shutdown
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
	echo "manager $pid did not stop" >&2
	exit 1
fi
echo "manager $pid stopped; demo done"
echo
echo "The programs are in $dir: put them on PATH with"
echo "  export PATH=\"$top/$dir/manager:$top/$dir/cli:\$PATH\""
echo "or install them (and jobq.h, libjobq, the man pages): meson install -C $dir"
