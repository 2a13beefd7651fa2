/* SPDX-License-Identifier: MIT */
/*
 * worker_main.c - the built-in worker process. jobqd starts it as
 *
 *   jobqd --as-worker --dir DIR [--concurrency N] [--daemon]
 *
 * It connects to the manager of DIR, serves the built-in job types (echo,
 * sleep, fail and those registered by jobq_worker_builtin()), N of them
 * running at once as fibers on one io_uring, and stops gracefully on SIGTERM or
 * SIGINT, or when the manager tells it to: it takes no more jobs, finishes the
 * running ones and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The signal handler's only way to the worker; set before the handlers
 * are installed, cleared after they are restored. */
static jobq_worker_t *volatile signal_worker;

static void on_signal(int sig)
{
	jobq_worker_t *w = signal_worker;

	(void)sig;
	if (w)
		jobq_worker_stop(w);
}

static int usage(void)
{
	fprintf(stderr, "usage: jobqd --as-worker --dir DIR "
			"[--concurrency N] [--daemon]\n");
	return 2;
}

int jobq__worker_main(int argc, char **argv)
{
	struct jobq_worker_opts o = {.concurrency = 1};
	struct sigaction sa = {0}, old_term, old_int;
	const char *dir = NULL;
	jobq_worker_t *w;
	jobq_t *q;
	int err;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--as-worker")) {
			continue;
		} else if (!strcmp(a, "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(a, "--concurrency") && i + 1 < argc) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(argv[++i], &end, 10);
			if (errno || *end || n < 1 || n > 1024) {
				fprintf(stderr,
					"jobqd worker: --concurrency "
					"must be 1..1024, not '%s'\n",
					argv[i]);
				return 2;
			}
			o.concurrency = (unsigned)n;
		} else if (!strcmp(a, "--daemon")) {
			o.daemon = 1;
		} else {
			return usage();
		}
	}

	/* Without io_uring there is no worker: say why, before anything
	 * else, and how to allow it. */
	{
		jobq_loop_t *probe;

		err = jobq_loop_new(&probe, NULL);
		if (err) {
			fprintf(stderr, "jobqd worker: cannot run jobs: %s\n",
				jobq_loop_why());
			return 1;
		}
		jobq_loop_free(probe);
	}

	err = jobq_open(&q, dir);
	if (err) {
		const char *m = jobq__last_error_msg();

		fprintf(stderr, "jobqd worker: %s\n",
			*m ? m : jobq_strerror(err));
		return 1;
	}
	err = jobq_worker_new(&w, q, &o);
	if (!err)
		err = jobq_worker_builtin(w);
	if (err) {
		fprintf(stderr, "jobqd worker: %s\n", jobq_strerror(err));
		jobq_close(q);
		return 1;
	}

	signal_worker = w;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	signal(SIGPIPE, SIG_IGN);

	err = jobq_worker_run(w);

	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	signal_worker = NULL;
	jobq_worker_free(w);
	jobq_close(q);
	/* The manager going away ends a worker too; that is no failure of
	 * the worker's own. */
	if (err && err != JOBQ_ECLOSED) {
		const char *why = jobq_loop_why();

		fprintf(stderr, "jobqd worker: %s\n",
			*why ? why : jobq_strerror(err));
		return 1;
	}
	return 0;
}
