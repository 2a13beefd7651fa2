#!/bin/bash
# bench/pg/jobq.sh - jobq's side of bench/pg/run, given to it as
#
#   bench/pg/run --clients 2 --seconds 5 --jobq bench/pg/jobq.sh
#
# Two managers ("hosts" a and b, instance directories of their own) on
# the database bench/pg/run made (JOBQ_BENCH_PG_URL), each with 2 built-in
# workers of the type "echo"; jobq-bench-jobs submits on a and waits
# there, so every job crosses PostgreSQL and runs on either host:
#
#   many   N jobs at once (one submit_many, one wait_all): jobs/s
#   apply  one job at a time: the round trip, submit to result in hand
#
# Beside each: the CPU seconds per 1000 jobs of both managers with their
# workers (summed over their sessions) and of the benchmark client. The
# programs come from $JOBQ_BUILD (default build/release).
set -euo pipefail

build=${JOBQ_BUILD:-build/release}
jobqd=$build/manager/jobqd
jobq=$build/cli/jobq
bench=$build/bench/jobq-bench-jobs
url=${JOBQ_BENCH_PG_URL:?run me through bench/pg/run --jobq}
n=${JOBQ_BENCH_JOBS:-5000}
for p in "$jobqd" "$jobq" "$bench"; do
	[ -x "$p" ] || { echo "bench/pg/jobq.sh: $p is missing (JOBQ_BUILD)" >&2; exit 1; }
done

top=$(mktemp -d /tmp/jobq-pgjobq.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$p" 2>/dev/null || true
	done
	rm -rf "$top"
}
trap cleanup EXIT INT TERM

for h in a b; do
	mkdir -p "$top/$h"
	# A session each, so that its workers are counted and stopped with it.
	setsid "$jobqd" --dir "$top/$h/q" --backend "$url" --workers 2 \
		--worker-concurrency 64 --log "$top/$h.log" &
	pids+=($!)
	for _ in $(seq 100); do
		"$jobq" --dir "$top/$h/q" stats >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$jobq" --dir "$top/$h/q" stats >/dev/null || { cat "$top/$h.log"; exit 1; }
done

hz=$(getconf CLK_TCK)
# CPU ticks of every process of both managers' sessions.
mgr_ticks() {
	local t=0 p
	for p in $(ps -o pid= -s "$(IFS=,; echo "${pids[*]}")"); do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$t"
}

# run NAME COUNT ARGS...: jobq-bench-jobs ARGS on host a, its RESULT
# lines and the CPU per 1000 jobs.
run() {
	local name=$1 jobs=$2 m0 m1 c0 c1
	shift 2
	m0=$(mgr_ticks)
	read -r c0 < <(awk '{ print $16 + $17 }' /proc/$$/stat)
	"$bench" --dir "$top/a/q" -k builtin -W 2 "$@" >"$top/out" 2>&1 ||
		{ cat "$top/out" "$top/a.log" "$top/b.log"; exit 1; }
	m1=$(mgr_ticks)
	read -r c1 < <(awk '{ print $16 + $17 }' /proc/$$/stat)
	grep '^RESULT' "$top/out" | sed "s/^/$name: /"
	awk -v name="$name" -v n="$jobs" -v m="$((m1 - m0))" \
		-v c="$((c1 - c0))" -v hz="$hz" 'BEGIN {
		printf "%s: CPU s / 1000 jobs: managers and workers %.3f, client %.3f\n",
			name, m / hz * 1000 / n, c / hz * 1000 / n
	}'
}

run "jobq many (2 managers x 2 workers)" "$n" -m many -n "$n"
run "jobq apply (one job's round trip)" 500 -m apply -n 500
