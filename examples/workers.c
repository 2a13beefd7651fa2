/* SPDX-License-Identifier: MIT */
/*
 * workers.c - daemon and non-daemon workers, as Process.daemon has them.
 *
 * The idea: when the manager shuts down gracefully, every worker takes no
 * more jobs and lets its running ones finish. A daemon worker gets the
 * grace period for that (jobqd --grace) and is then ended with the
 * manager, its job unfinished; a non-daemon worker is waited for however
 * long its job takes. Two worker processes serve the job type "slow"
 * (each job takes three seconds), one non-daemon and one daemon; the
 * manager runs with --grace 1 (examples/meson.build). Once both run a
 * job, the example asks the manager to shut down and reports how each
 * worker ended: its exit status is the number of jobs it finished.
 *
 *   workers [--dir DIR]
 *
 * The manager is gone afterwards. Exits 0 when the non-daemon worker
 * finished its job and the daemon worker did not, 1 otherwise.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

static int finished;

static int slow(jobq_job_t *job, void *arg)
{
	struct timespec three = {3, 0};

	(void)arg;
	nanosleep(&three, NULL);
	finished++;
	return jobq_job_succeed(job, JOBQ_T_TEXT, "done", 4);
}

/* A worker process; its exit status is how many jobs it finished. */
static int run_worker(const char *dir, int daemon)
{
	struct jobq_worker_opts o = {.concurrency = 1, .daemon = daemon};
	jobq_worker_t *w;
	jobq_t *q;

	if (jobq_open(&q, dir))
		return 100;
	if (jobq_worker_new(&w, q, &o) ||
	    jobq_worker_handle(w, "slow", slow, NULL))
		return 100;
	jobq_worker_run(w); /* until the manager says stop, or goes */
	jobq_worker_free(w);
	jobq_close(q);
	return finished;
}

static int running(jobq_t *q, const uint64_t *ids)
{
	int n = 0;

	for (int i = 0; i < 2; i++) {
		struct jobq_job_info ji;

		if (jobq_job_info(q, ids[i], &ji) == 0 &&
		    ji.state == JOBQ_JOB_RUNNING)
			n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	const char *kind[2] = {"non-daemon", "daemon"};
	struct timespec tick = {0, 10000000};
	uint64_t ids[2];
	int st[2], rc = 0, waited = 0;
	pid_t pids[2];
	jobq_t *q;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "usage: workers [--dir DIR]\n");
			return 2;
		}
	}
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(run_worker(dir, i == 1));
	}
	if (jobq_open(&q, dir))
		return 1;
	for (int i = 0; i < 2; i++)
		if (jobq_submit(q, "slow", JOBQ_T_TEXT, "x", 1, NULL, &ids[i]))
			rc = 1;
	/* One job each: a worker takes one at a time. */
	while (rc == 0 && running(q, ids) < 2 && waited++ < 1000)
		nanosleep(&tick, NULL);
	printf("both workers run a job; shutting the manager down\n");
	if (rc || jobq_shutdown(q, 0))
		rc = 1;
	jobq_close(q);

	for (int i = 0; i < 2; i++) {
		waitpid(pids[i], &st[i], 0);
		if (WIFEXITED(st[i]))
			printf("%s worker: exited, %d job(s) finished\n",
			       kind[i], WEXITSTATUS(st[i]));
		else
			printf("%s worker: killed by signal %d\n", kind[i],
			       WTERMSIG(st[i]));
	}
	if (!WIFEXITED(st[0]) || WEXITSTATUS(st[0]) != 1)
		rc = 1;
	if (WIFEXITED(st[1]) && WEXITSTATUS(st[1]) != 0)
		rc = 1;
	return rc;
}
