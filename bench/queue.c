/* SPDX-License-Identifier: MIT */
/*
 * jobq-bench-queue - put -> get throughput of one jobq queue, in messages
 * per second, measured the way the anchor harness measures every other
 * queue, so that the numbers stand side by side:
 *
 *  - The parent creates the queue, forks P producers and C consumers, waits
 *    until every one of them has connected, then releases them together.
 *  - N messages are split across the producers. Every message is -s bytes,
 *    starts with 'D' and carries its sequence number after that.
 *  - Stop rule (one shared queue, many consumers): the last producer to
 *    finish puts C * B quit messages (first byte 'Q'), B being the batch
 *    size. FIFO order puts them behind all data, and B of them per consumer
 *    guarantee that a consumer taking a whole batch of quits cannot leave
 *    another one without any.
 *  - Consumers check the size and first byte of every message and count
 *    them; the run fails unless exactly N well-formed messages arrived.
 *  - Rate = N / (release -> last consumer done).
 *
 * -b 1 uses jobq_put()/jobq_get(), one request per message; -b B > 1 uses
 * jobq_put_many()/jobq_get_many() with batches of B.
 *
 * -q D bounds the queue at D objects (jobq_queue_opts.max_depth), so that
 * it can stand beside a bounded anchor such as a POSIX message queue of
 * depth 10: a full queue makes the producer wait, as mq_send() does.
 * Without -q the queue is unbounded.
 */
#include <getopt.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "bench.h"

struct cfg {
	const char *dir;
	const char *queue;
	long n;
	size_t size;
	int producers;
	int consumers;
	int batch;
	long depth;  /* -q: the queue's max_depth; 0: unbounded */
	double wait; /* timeout of every put and get; < 0: none */
};

/* Written by the children, read by the parent once they have exited. */
struct shared {
	_Atomic int producers_left;
	uint64_t cons_end[BENCH_MAX_KIDS];
	long received[BENCH_MAX_KIDS];
	long bad[BENCH_MAX_KIDS];
};

static void fill(char *buf, size_t size, char tag, long seq)
{
	buf[0] = tag;
	if (size >= 1 + sizeof(seq))
		memcpy(buf + 1, &seq, sizeof(seq));
}

/* Puts @count objects of @objs[0..count) as batches, retrying the rest of a
 * batch that went in only partly. */
static void put_batch(jobq_t *q, const char *queue, jobq_obj_t *objs,
		      size_t count, double wait)
{
	size_t done = 0;

	while (done < count) {
		int r =
		    jobq_put_many(q, queue, objs + done, count - done, wait);

		if (r <= 0)
			bench_die(r, "jobq_put_many on \"%s\"", queue);
		done += (size_t)r;
	}
}

static void producer(const struct cfg *c, struct shared *sh,
		     struct bench_barrier *bar, int idx, long count)
{
	jobq_t *q = bench_open(c->dir);
	size_t nbuf = (size_t)c->batch;
	char *bufs = malloc(nbuf * c->size);
	jobq_obj_t *objs = calloc(nbuf, sizeof(*objs));
	long i = 0;
	int r;

	if (!bufs || !objs)
		bench_die(-ENOMEM, "producer");
	for (size_t k = 0; k < nbuf * c->size; k++)
		bufs[k] = (char)('a' + (k + (size_t)idx) % 26);
	for (size_t k = 0; k < nbuf; k++) {
		objs[k].type = JOBQ_T_BYTES;
		objs[k].len = c->size;
		objs[k].data = bufs + k * c->size;
	}
	bench_barrier_wait(bar);

	if (c->batch == 1) {
		for (i = 0; i < count; i++) {
			fill(bufs, c->size, 'D', i);
			r = jobq_put(q, c->queue, JOBQ_T_BYTES, bufs, c->size,
				     c->wait);
			if (r < 0)
				bench_die(r, "jobq_put on \"%s\"", c->queue);
		}
	} else {
		while (i < count) {
			size_t k, m = (size_t)(count - i) < nbuf
					  ? (size_t)(count - i)
					  : nbuf;

			for (k = 0; k < m; k++)
				fill(objs[k].data, c->size, 'D', i + (long)k);
			put_batch(q, c->queue, objs, m, c->wait);
			i += (long)m;
		}
	}

	/* Every put above has returned, so its object is on the queue: the
	 * quits of the last producer go behind all data of every producer. */
	if (atomic_fetch_sub(&sh->producers_left, 1) == 1) {
		long quits = (long)c->consumers * c->batch;

		for (size_t k = 0; k < nbuf; k++)
			fill(objs[k].data, c->size, 'Q', -1);
		while (quits > 0) {
			size_t m = quits < (long)nbuf ? (size_t)quits : nbuf;

			put_batch(q, c->queue, objs, m, c->wait);
			quits -= (long)m;
		}
	}
	jobq_close(q);
	_exit(0);
}

/* Counts one received object; returns 1 when it was a quit message. */
static int take(const struct cfg *c, jobq_obj_t *o, long *got, long *bad)
{
	const char *p = o->data;

	if (o->len >= 1 && p[0] == 'Q')
		return 1;
	if (o->len != c->size || p[0] != 'D')
		(*bad)++;
	(*got)++;
	return 0;
}

static void consumer(const struct cfg *c, struct shared *sh,
		     struct bench_barrier *bar, int idx)
{
	jobq_t *q = bench_open(c->dir);
	jobq_obj_t *objs = calloc((size_t)c->batch, sizeof(*objs));
	long got = 0, bad = 0;
	int quit = 0, r;

	if (!objs)
		bench_die(-ENOMEM, "consumer");
	bench_barrier_wait(bar);

	while (!quit) {
		if (c->batch == 1) {
			r = jobq_get(q, c->queue, &objs[0], c->wait);
			if (r < 0)
				bench_die(r, "jobq_get on \"%s\"", c->queue);
			r = 1;
		} else {
			r = jobq_get_many(q, c->queue, objs, (size_t)c->batch,
					  c->wait);
			if (r <= 0)
				bench_die(r, "jobq_get_many on \"%s\"",
					  c->queue);
		}
		/* Data behind a quit cannot exist (FIFO), but count it all the
		 * same, so that the total check would catch it. */
		for (int k = 0; k < r; k++) {
			quit |= take(c, &objs[k], &got, &bad);
			jobq_obj_free(&objs[k]);
		}
	}
	sh->cons_end[idx] = bench_now_ns();
	sh->received[idx] = got;
	sh->bad[idx] = bad;
	jobq_close(q);
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr, "usage: jobq-bench-queue [--dir DIR] [-n MSGS] [-s "
			"BYTES] [-p PRODUCERS]\n"
			"                        [-c CONSUMERS] [-b BATCH] [-k "
			"QUEUE] [-q DEPTH] [-W SECS]\n"
			"                        [-T SECS]\n"
			"Puts MSGS objects of BYTES through one queue of the "
			"jobqd in DIR and\n"
			"prints RESULT lines (msgs_per_s, MiB_per_s). -b 1: "
			"jobq_put/jobq_get;\n"
			"-b N: jobq_put_many/jobq_get_many with batches of N. "
			"-W: the timeout of\n"
			"every put and get (default: none). -q: bound the "
			"queue at DEPTH objects.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct cfg c = {.n = 200000,
			.size = 64,
			.producers = 1,
			.consumers = 1,
			.batch = 1,
			.wait = -1};
	struct bench_barrier bar;
	struct shared *sh;
	char qname[64];
	unsigned limit = 20;
	uint64_t t0, t_end = 0;
	long per, extra, total = 0, bad = 0;
	int opt, failed = 0, r;
	jobq_t *q;
	double secs;

	while ((opt = getopt_long(argc, argv, "d:n:s:p:c:b:k:q:W:T:h", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd':
			c.dir = optarg;
			break;
		case 'n':
			c.n = bench_arg_long(optarg, 'n');
			break;
		case 's':
			c.size = (size_t)bench_arg_long(optarg, 's');
			break;
		case 'p':
			c.producers = (int)bench_arg_long(optarg, 'p');
			break;
		case 'c':
			c.consumers = (int)bench_arg_long(optarg, 'c');
			break;
		case 'b':
			c.batch = (int)bench_arg_long(optarg, 'b');
			break;
		case 'k':
			c.queue = optarg;
			break;
		case 'q':
			c.depth = bench_arg_long(optarg, 'q');
			break;
		case 'W':
			c.wait = (double)bench_arg_long(optarg, 'W');
			break;
		case 'T':
			limit = (unsigned)bench_arg_long(optarg, 'T');
			break;
		default:
			usage();
		}
	}
	if (optind != argc || c.producers + c.consumers > BENCH_MAX_KIDS ||
	    c.batch > 4096)
		usage();
	if (!c.queue) {
		/* Unique per run: leftovers of an earlier run never count. */
		snprintf(qname, sizeof(qname), "bench-%d", (int)getpid());
		c.queue = qname;
	}
	bench_time_limit(limit);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		bench_die(-errno, "mmap");
	memset(sh, 0, sizeof(*sh));
	atomic_store(&sh->producers_left, c.producers);

	/* Create the queue before anyone forks; a handle must not cross a
	 * fork, so the parent closes its own first. */
	q = bench_open(c.dir);
	{
		struct jobq_queue_opts qo = {.max_depth = (uint64_t)c.depth};

		r = jobq_queue_open(q, c.queue, c.depth ? &qo : NULL);
	}
	if (r < 0)
		bench_die(r, "jobq_queue_open \"%s\"", c.queue);
	jobq_close(q);

	bench_barrier_init(&bar);
	per = c.n / c.producers;
	extra = c.n % c.producers;
	for (int i = 0; i < c.consumers + c.producers; i++) {
		pid_t pid = fork();

		if (pid < 0)
			bench_die(-errno, "fork");
		if (pid == 0) {
			bench_barrier_child(&bar);
			if (i < c.consumers)
				consumer(&c, sh, &bar, i);
			i -= c.consumers;
			producer(&c, sh, &bar, i, per + (i < extra ? 1 : 0));
		}
		bench_kids[bench_nkids++] = pid;
	}
	t0 = bench_barrier_release(&bar, bench_nkids);

	for (int i = 0; i < bench_nkids; i++) {
		int st;
		pid_t p;

		while ((p = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
			;
		if (p < 0)
			bench_die(-errno, "waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
		for (int k = 0; k < bench_nkids; k++)
			if (bench_kids[k] == p)
				bench_kids[k] = 0;
	}
	alarm(0);
	if (!t0 || failed)
		bench_die(0, "%d of %d processes failed", failed ? failed : 1,
			  bench_nkids);
	for (int i = 0; i < c.consumers; i++) {
		if (sh->cons_end[i] > t_end)
			t_end = sh->cons_end[i];
		total += sh->received[i];
		bad += sh->bad[i];
	}
	if (total != c.n || bad)
		bench_die(0,
			  "consumers received %ld messages (%ld malformed), "
			  "expected %ld",
			  total, bad, c.n);

	secs = (double)(t_end - t0) / 1e9;
	printf("RESULT metric=msgs_per_s value=%.1f n=%ld size=%zu p=%d c=%d "
	       "batch=%d depth=%ld secs=%.3f\n",
	       (double)c.n / secs, c.n, c.size, c.producers, c.consumers,
	       c.batch, c.depth, secs);
	printf("RESULT metric=MiB_per_s value=%.1f n=%ld size=%zu p=%d c=%d "
	       "batch=%d secs=%.3f\n",
	       (double)c.n * (double)c.size / secs / 1048576.0, c.n, c.size,
	       c.producers, c.consumers, c.batch, secs);
	return 0;
}
