/* SPDX-License-Identifier: MIT */
/*
 * jobq-bench-rtt - round-trip latency through the manager, p50/p99 in µs.
 *
 *   -m local     one process puts an object on a queue and gets it back:
 *                two requests, each a round trip to jobqd.
 *   -m pingpong  two processes, two queues: A puts on "ping", B gets it and
 *                puts it on "pong", A gets it. Four requests and two
 *                process hand-offs per sample; what a job round trip with a
 *                worker in between costs at least.
 *   -m ping      jobq_ping(): one empty request, the floor of the above.
 *   -m block     no measurement: block in jobq_get() with no timeout on an
 *                empty queue until an object comes or the process is
 *                killed, so that bench/run can see what a waiting client
 *                and its manager cost while nothing happens.
 *
 * Samples are taken one at a time (nothing else outstanding) after a
 * warm-up that is not counted; the run ends after -n samples or -D seconds,
 * whichever comes first. Every object that comes back is checked (size and
 * the sequence number it carries).
 */
#include <getopt.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "bench.h"

enum mode { M_LOCAL, M_PINGPONG, M_PING, M_BLOCK };

/* The timeout of every put and get (-W); negative: wait without a bound,
 * as a worker waits for work. */
static double wait_secs = -1;

struct cfg {
	const char *dir;
	enum mode mode;
	long n;
	long warmup;
	size_t size;
	double max_secs;
	char ping[64], pong[64];
};

/* Gets one object from @queue and checks that it is @seq of @size bytes.
 * Returns its sequence number (-1 for the quit object of pingpong). */
static long get_checked(jobq_t *q, const char *queue, size_t size)
{
	jobq_obj_t o;
	long seq = 0;
	int r = jobq_get(q, queue, &o, wait_secs);

	if (r < 0)
		bench_die(r, "jobq_get on \"%s\"", queue);
	if (o.len != size)
		bench_die(0, "got %zu bytes from \"%s\", expected %zu", o.len,
			  queue, size);
	if (size >= sizeof(seq))
		memcpy(&seq, o.data, sizeof(seq));
	jobq_obj_free(&o);
	return seq;
}

static void put_seq(jobq_t *q, const char *queue, char *buf, size_t size,
		    long seq)
{
	int r;

	if (size >= sizeof(seq))
		memcpy(buf, &seq, sizeof(seq));
	r = jobq_put(q, queue, JOBQ_T_BYTES, buf, size, wait_secs);
	if (r < 0)
		bench_die(r, "jobq_put on \"%s\"", queue);
}

/* The far side of pingpong: bounce every object from ping to pong until
 * the quit object (sequence -1) arrives. */
static void echo(const struct cfg *c, struct bench_barrier *bar)
{
	jobq_t *q = bench_open(c->dir);
	char *buf = calloc(1, c->size + 1);
	long seq;

	if (!buf)
		bench_die(-ENOMEM, "echo");
	bench_barrier_wait(bar);
	while ((seq = get_checked(q, c->ping, c->size)) != -1)
		put_seq(q, c->pong, buf, c->size, seq);
	jobq_close(q);
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: jobq-bench-rtt [--dir DIR] [-m "
		"local|pingpong|ping|block] [-n SAMPLES]\n"
		"                      [-w WARMUP] [-s BYTES] [-D MAX_SECS] "
		"[-W SECS] [-T SECS]\n"
		"-W: the timeout of every put and get (default: none).\n"
		"Prints RESULT lines p50_us, p99_us, max_us, mean_us, "
		"rtt_per_s.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"local", "pingpong", "ping",
					    "block"};
	struct cfg c = {.mode = M_LOCAL,
			.n = 100000,
			.warmup = 2000,
			.size = 64,
			.max_secs = 5};
	struct bench_barrier bar;
	unsigned limit = 20;
	uint64_t *lat, deadline;
	char *buf, extra[128];
	long i, got = 0;
	bool counting = false;
	jobq_t *q;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:m:n:w:s:D:W:T:h", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd':
			c.dir = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "local"))
				c.mode = M_LOCAL;
			else if (!strcmp(optarg, "pingpong"))
				c.mode = M_PINGPONG;
			else if (!strcmp(optarg, "ping"))
				c.mode = M_PING;
			else if (!strcmp(optarg, "block"))
				c.mode = M_BLOCK;
			else
				usage();
			break;
		case 'n':
			c.n = bench_arg_long(optarg, 'n');
			break;
		case 'w':
			c.warmup = bench_arg_long(optarg, 'w');
			break;
		case 's':
			c.size = (size_t)bench_arg_long(optarg, 's');
			break;
		case 'D':
			c.max_secs = (double)bench_arg_long(optarg, 'D');
			break;
		case 'W':
			wait_secs = (double)bench_arg_long(optarg, 'W');
			break;
		case 'T':
			limit = (unsigned)bench_arg_long(optarg, 'T');
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (c.size < sizeof(long))
		c.size = sizeof(long); /* room for the sequence number */
	snprintf(c.ping, sizeof(c.ping), "rtt-ping-%d", (int)getpid());
	snprintf(c.pong, sizeof(c.pong), "rtt-pong-%d", (int)getpid());
	bench_time_limit(limit);

	if (c.mode == M_BLOCK) {
		jobq_obj_t o;

		alarm(0);
		q = bench_open(c.dir);
		r = jobq_get(q, "idle", &o, wait_secs);
		if (r < 0)
			bench_die(r, "jobq_get on \"idle\"");
		jobq_obj_free(&o);
		jobq_close(q);
		return 0;
	}

	lat = calloc((size_t)c.n, sizeof(*lat));
	buf = calloc(1, c.size + 1);
	if (!lat || !buf)
		bench_die(-ENOMEM, "allocating %ld samples", c.n);

	if (c.mode == M_PINGPONG) {
		pid_t pid;

		/* Queues exist before the echo side starts waiting on one. */
		q = bench_open(c.dir);
		if ((r = jobq_queue_open(q, c.ping, NULL)) < 0 ||
		    (r = jobq_queue_open(q, c.pong, NULL)) < 0)
			bench_die(r, "jobq_queue_open");
		jobq_close(q);
		bench_barrier_init(&bar);
		pid = fork();
		if (pid < 0)
			bench_die(-errno, "fork");
		if (pid == 0) {
			bench_barrier_child(&bar);
			echo(&c, &bar);
		}
		bench_kids[bench_nkids++] = pid;
		q = bench_open(c.dir);
		if (!bench_barrier_release(&bar, 1))
			bench_die(0,
				  "the echo process died before it was ready");
	} else {
		q = bench_open(c.dir);
		if ((r = jobq_queue_open(q, c.ping, NULL)) < 0)
			bench_die(r, "jobq_queue_open");
	}

	/* Sequence numbers count from 0 through the warm-up, so that -1
	 * stays free for the quit object. The warm-up ends after -w samples
	 * or one second, whichever comes first: on a loaded machine a sample
	 * can take milliseconds. */
	deadline = bench_now_ns() + 1000000000ull;
	for (i = 0; got < c.n; i++) {
		uint64_t t0 = bench_now_ns(), t1;
		long seq = -1;

		if (!counting && (i >= c.warmup || t0 >= deadline)) {
			counting = true;
			deadline = t0 + (uint64_t)(c.max_secs * 1e9);
		} else if (counting && t0 > deadline) {
			break;
		}
		switch (c.mode) {
		case M_PING:
			if ((r = jobq_ping(q)) < 0)
				bench_die(r, "jobq_ping");
			seq = i;
			break;
		case M_LOCAL:
			put_seq(q, c.ping, buf, c.size, i);
			seq = get_checked(q, c.ping, c.size);
			break;
		case M_PINGPONG:
		default:
			put_seq(q, c.ping, buf, c.size, i);
			seq = get_checked(q, c.pong, c.size);
			break;
		}
		t1 = bench_now_ns();
		if (seq != i)
			bench_die(0, "sample %ld came back as %ld", i, seq);
		if (counting)
			lat[got++] = t1 - t0;
	}

	if (c.mode == M_PINGPONG) {
		int st;

		put_seq(q, c.ping, buf, c.size, -1);
		if (waitpid(bench_kids[0], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			bench_die(0, "the echo process failed");
		bench_kids[0] = 0;
	}
	jobq_close(q);
	alarm(0);

	snprintf(extra, sizeof(extra), "mode=%s size=%zu", names[c.mode],
		 c.size);
	bench_report_latency(lat, (size_t)got, extra);
	{
		double sum = 0;

		for (long k = 0; k < got; k++)
			sum += (double)lat[k];
		printf("RESULT metric=rtt_per_s value=%.1f n=%ld %s\n",
		       sum > 0 ? (double)got * 1e9 / sum : 0.0, got, extra);
	}
	free(lat);
	free(buf);
	return 0;
}
