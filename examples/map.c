/* SPDX-License-Identifier: MIT */
/*
 * map.c - Pool.map over a range, with a job type of our own.
 *
 * The idea: jobq_map() submits one job per input and returns the results
 * in input order, keeping a bounded window of jobs in flight, as
 * pool.map(square, range(n)) does. The job type "square" is not built in:
 * a forked worker process registers a handler for it with
 * jobq_worker_handle(), and the manager hands it the jobs. Two worker
 * processes share the work.
 *
 * Then the same inputs again with jobq_map_chunked(), 100 per job, as
 * pool.map(square, range(n), chunksize=100) sends them: one job, one
 * reservation and one result for 100 squares, which is what makes a map
 * of many tiny inputs fast. The handler is the same; the worker library
 * runs it on each input of a chunk in turn.
 *
 *   map [--dir DIR] [--count N]
 *
 * Exits 0 when every result is the square of its input, 1 otherwise, 2 on
 * a bad argument.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jobq.h>

static jobq_worker_t *worker;

static void on_term(int sig)
{
	(void)sig;
	jobq_worker_stop(worker);
}

/* The handler: args "N" (text), result "N*N" (text). */
static int square(jobq_job_t *job, void *arg)
{
	const jobq_obj_t *a = jobq_job_args(job);
	char buf[32];
	long long n;
	int len;

	(void)arg;
	n = strtoll(a->len ? (const char *)a->data : "0", NULL, 10);
	len = snprintf(buf, sizeof(buf), "%lld", n * n);
	return jobq_job_succeed(job, JOBQ_T_TEXT, buf, (size_t)len);
}

static int run_worker(const char *dir)
{
	jobq_t *q;
	int rc;

	if (jobq_open(&q, dir))
		return 1;
	if (jobq_worker_new(&worker, q, NULL) ||
	    jobq_worker_handle(worker, "square", square, NULL))
		return 1;
	signal(SIGTERM, on_term);
	rc = jobq_worker_run(worker);
	jobq_worker_free(worker);
	jobq_close(q);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long count = 1000;
	jobq_obj_t *in, *out;
	char(*text)[24];
	pid_t pids[2];
	int rc, bad = 0;
	jobq_t *q;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: map [--dir DIR] [--count N]\n");
			return 2;
		}
	}
	if (count < 1 || count > 1000000)
		return 2;

	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(run_worker(dir));
	}
	if ((rc = jobq_open(&q, dir))) {
		fprintf(stderr, "map: %s\n", jobq_strerror(rc));
		return 1;
	}
	in = calloc((size_t)count, sizeof(*in));
	out = calloc((size_t)count, sizeof(*out));
	text = calloc((size_t)count, sizeof(*text));
	if (!in || !out || !text)
		return 1;
	for (long i = 0; i < count; i++) {
		in[i].type = JOBQ_T_TEXT;
		in[i].len =
		    (size_t)snprintf(text[i], sizeof(text[i]), "%ld", i);
		in[i].data = text[i];
	}

	/* results[i] for inputs[i], at most 64 jobs in flight; then in
	 * chunks of 100 inputs, at most 8 chunks in flight. */
	for (int pass = 0; pass < 2; pass++) {
		size_t chunk = pass ? 100 : 1;
		int wrong = 0;

		rc = jobq_map_chunked(q, "square", in, (size_t)count, chunk,
				      pass ? 8 : 64, NULL, out, 60);
		for (long i = 0; i < count; i++) {
			long long want = (long long)i * i;

			if (!out[i].data ||
			    strtoll(out[i].data, NULL, 10) != want)
				wrong++;
			jobq_obj_free(&out[i]);
		}
		printf("map over range(%ld), %zu per job: %s, %d wrong\n",
		       count, chunk, jobq_strerror(rc), wrong);
		bad += wrong + (rc != 0);
	}

	jobq_close(q);
	for (int i = 0; i < 2; i++) {
		int st;

		kill(pids[i], SIGTERM);
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			bad++;
	}
	free(in);
	free(out);
	free(text);
	return bad == 0 ? 0 : 1;
}
