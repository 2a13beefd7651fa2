/* SPDX-License-Identifier: MIT */
/*
 * apply.c - Pool.apply and Pool.apply_async(callback=) in C.
 *
 * The idea: a job id is a future. jobq_apply() submits one job and waits
 * for its result, like Python's pool.apply(f, args). For many jobs at
 * once, submit them all and register a done callback per job
 * (jobq_job_on_done()); the callbacks run from the application's own event
 * loop: poll() on jobq_fd() and jobq_process() when it is readable, the
 * shape of apply_async(callback=) or future.add_done_callback().
 *
 * A forked child serves the built-in job types (echo, sleep) as the
 * worker, so the example needs nothing but a manager:
 *
 *   apply [--dir DIR] [--jobs N]
 *
 * Exits 0 when every result came back right, 1 otherwise, 2 on a bad
 * argument.
 */
#include <errno.h>
#include <poll.h>
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
	jobq_worker_stop(worker); /* safe in a signal handler */
}

/* The worker process: the built-in types until SIGTERM. */
static int run_worker(const char *dir)
{
	struct jobq_worker_opts o = {.concurrency = 4};
	jobq_t *q;
	int rc;

	if (jobq_open(&q, dir))
		return 1;
	if (jobq_worker_new(&worker, q, &o) || jobq_worker_builtin(worker))
		return 1;
	signal(SIGTERM, on_term);
	rc = jobq_worker_run(worker);
	jobq_worker_free(worker);
	jobq_close(q);
	return rc ? 1 : 0;
}

struct tally {
	int done;
	int ok;
};

/* The done callback: runs inside jobq_process(), in this thread. */
static void on_done(jobq_t *q, uint64_t id, int res, void *arg)
{
	struct tally *t = arg;
	jobq_obj_t out = {0};

	t->done++;
	if (res == 0 && jobq_job_result(q, id, &out) == 0) {
		printf("job %llu done: %.*s\n", (unsigned long long)id,
		       (int)out.len, (char *)out.data);
		t->ok++;
	} else {
		printf("job %llu failed: %s\n", (unsigned long long)id,
		       jobq_strerror(res));
	}
	jobq_obj_free(&out);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int jobs = 8, rc = 1, st;
	struct tally t = {0};
	jobq_obj_t out = {0};
	jobq_t *q;
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
			jobs = atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: apply [--dir DIR] [--jobs N]\n");
			return 2;
		}
	}
	if (jobs < 1 || jobs > 10000)
		return 2;

	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(run_worker(dir));

	if ((rc = jobq_open(&q, dir))) {
		fprintf(stderr, "apply: %s\n", jobq_strerror(rc));
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		return 1;
	}

	/* apply: submit and wait, like pool.apply(). */
	rc = jobq_apply(q, "echo", JOBQ_T_JSON, "{\"hello\":\"world\"}", 17,
			NULL, &out, 30);
	printf("apply: %s -> %.*s\n", jobq_strerror(rc), (int)out.len,
	       out.data ? (char *)out.data : "");
	rc = rc == 0 && out.len == 17 ? 0 : 1;
	jobq_obj_free(&out);

	/* apply_async: submit everything, then let the event loop run the
	 * callbacks as the jobs finish, in whatever order that is. */
	for (int i = 0; i < jobs && rc == 0; i++) {
		char args[32];
		uint64_t id;
		int n = snprintf(args, sizeof(args), "{\"ms\":%d}",
				 10 * (jobs - i));

		if (jobq_submit(q, "sleep", JOBQ_T_JSON, args, (size_t)n, NULL,
				&id) ||
		    jobq_job_on_done(q, id, on_done, &t))
			rc = 1;
	}
	while (rc == 0 && t.done < jobs) {
		struct pollfd p = {.fd = jobq_fd(q), .events = POLLIN};

		/* Anything else the application waits for would sit in the
		 * same poll() set. */
		if (poll(&p, 1, 30000) <= 0 || jobq_process(q) < 0)
			rc = 1;
	}
	printf("apply_async: %d of %d callbacks reported success\n", t.ok,
	       jobs);
	if (t.ok != jobs)
		rc = 1;

	jobq_close(q);
	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		rc = 1;
	return rc;
}
