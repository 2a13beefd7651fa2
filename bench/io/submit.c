/* SPDX-License-Identifier: MIT */
/*
 * jobq-io-submit - the jobq side of the file benchmarks: one job per line
 * of a file, all submitted in one batch, and the time until every one is
 * final.
 *
 *   jobq-io-submit --dir DIR -t TYPE [-W WORKERS] [-q QUEUE] LISTFILE
 *
 * Each line of LISTFILE is the JSON args of one job of TYPE (a built-in
 * type of `jobqd --workers N`, e.g. file.checksum or file.copy). Waits
 * (at most 10 s) until WORKERS workers are registered, then starts the
 * clock, submits every job with one jobq_submit_many() (the library cuts
 * it into ring-sized pieces), waits for all of them and stops the clock.
 *
 * Prints "RESULT metric=secs value=..." and jobs_per_s; exits 1 when a job
 * did not succeed (its error on stderr), 2 on a setup error.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static jobq_obj_t *read_lines(const char *file, size_t *n)
{
	FILE *f = fopen(file, "r");
	jobq_obj_t *v = NULL;
	char *line = NULL;
	size_t cap = 0, room = 0;
	ssize_t len;

	*n = 0;
	if (!f)
		return NULL;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (!len)
			continue;
		if (*n == room) {
			room = room ? 2 * room : 1024;
			v = realloc(v, room * sizeof(*v));
			if (!v)
				return NULL;
		}
		v[*n] = (jobq_obj_t){.type = JOBQ_T_JSON,
				     .len = (size_t)len,
				     .data = strdup(line)};
		if (!v[(*n)++].data)
			return NULL;
	}
	free(line);
	fclose(f);
	return v;
}

static int wait_workers(jobq_t *q, size_t want)
{
	double deadline = now_s() + 10;

	for (;;) {
		struct jobq_worker_info *w;
		size_t n;
		int r = jobq_workers(q, &w, &n);

		if (r < 0)
			return r;
		free(w);
		if (n >= want)
			return 0;
		if (now_s() > deadline)
			return -1;
		usleep(20000);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"dir", required_argument, 0, 'd'},
					   {0, 0, 0, 0}};
	struct jobq_submit_opts so = {.no_retry = 1, .timeout = 600};
	const char *dir = NULL, *type = NULL;
	size_t n, bad = 0, workers = 1;
	jobq_obj_t *args;
	uint64_t *ids;
	double t0, secs;
	jobq_t *q;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:t:W:q:", lo, NULL)) != -1) {
		if (opt == 'd')
			dir = optarg;
		else if (opt == 't')
			type = optarg;
		else if (opt == 'W')
			workers = (size_t)atol(optarg);
		else if (opt == 'q')
			so.queue = optarg;
		else
			goto usage;
	}
	if (!type || optind + 1 != argc)
		goto usage;
	args = read_lines(argv[optind], &n);
	if (!args || !n) {
		fprintf(stderr, "jobq-io-submit: %s: no jobs read\n",
			argv[optind]);
		return 2;
	}
	ids = calloc(n, sizeof(*ids));
	if (!ids)
		return 2;
	r = jobq_open(&q, dir);
	if (r < 0) {
		fprintf(stderr, "jobq-io-submit: jobq_open: %s\n",
			jobq_strerror(r));
		return 2;
	}
	if (wait_workers(q, workers)) {
		fprintf(stderr, "jobq-io-submit: fewer than %zu workers\n",
			workers);
		return 2;
	}
	t0 = now_s();
	for (size_t done = 0; done < n;) {
		r = jobq_submit_many(q, type, args + done, n - done, &so,
				     ids + done);
		if (r <= 0) {
			fprintf(stderr, "jobq-io-submit: submit_many: %s\n",
				jobq_strerror(r));
			return 2;
		}
		done += (size_t)r;
	}
	r = jobq_wait_all(q, ids, n, 600);
	secs = now_s() - t0;
	if (r) {
		for (size_t i = 0; i < n; i++) {
			jobq_obj_t res = {0};

			if (jobq_job_wait(q, ids[i], 0) == 0)
				continue;
			if (!bad++ && !jobq_job_result(q, ids[i], &res))
				fprintf(stderr,
					"jobq-io-submit: job %zu: %.*s\n", i,
					(int)res.len, (char *)res.data);
			jobq_obj_free(&res);
		}
		fprintf(stderr, "jobq-io-submit: %zu of %zu jobs failed\n", bad,
			n);
	}
	printf("RESULT metric=secs value=%.4f jobs=%zu type=%s\n", secs, n,
	       type);
	printf("RESULT metric=jobs_per_s value=%.1f\n", (double)n / secs);
	jobq_close(q);
	return bad || r ? 1 : 0;
usage:
	fprintf(stderr, "usage: jobq-io-submit --dir DIR -t TYPE [-W WORKERS] "
			"[-q QUEUE] LISTFILE\n");
	return 2;
}
