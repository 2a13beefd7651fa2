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
 *   -m pipe      no jobq: two processes bounce the same object through two
 *                pipes. The kernel's floor for a hand-off between two
 *                processes, sampled exactly as pingpong is.
 *   -m futex     no jobq: two processes bounce a sequence number through
 *                two words of shared memory; a side that finds nothing new
 *                checks again for up to -S ns, then sleeps in FUTEX_WAIT.
 *                -S 0 sleeps at once; -S 50000 spins about as long as the
 *                clients and jobqd do before they sleep, so that a spinning
 *                baseline stands beside jobq's spinning sides.
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
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "bench.h"

enum mode { M_LOCAL, M_PINGPONG, M_PING, M_BLOCK, M_PIPE, M_FUTEX };

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
	uint64_t spin_ns; /* futex: how long a waiter spins before it sleeps */
	char ping[64], pong[64];
};

/*
 * The futex floor's shared page. word[0] is written by the timing side
 * only (the sequence number it sends), word[1] by the echo side only (the
 * last one it echoed). sleeping[i] is set by the reader of word[i] before
 * it sleeps and cleared after, so that a writer makes the FUTEX_WAKE
 * system call only when someone may sleep; both are seq_cst so that the
 * flag store and the word load on one side cannot pass the word store and
 * the flag load on the other (no lost wake-up).
 */
struct ff {
	_Alignas(64) _Atomic uint32_t word[2];
	_Alignas(64) _Atomic uint32_t sleeping[2];
};

static void ff_wait(struct ff *f, int which, uint32_t until, uint64_t spin_ns)
{
	uint64_t t0 = spin_ns ? bench_now_ns() : 0;

	while (spin_ns) {
		for (int k = 0; k < 64; k++) {
			if (atomic_load_explicit(&f->word[which],
						 memory_order_acquire) == until)
				return;
			__builtin_ia32_pause();
		}
		if (bench_now_ns() - t0 >= spin_ns)
			break;
	}
	for (;;) {
		uint32_t v;

		atomic_store(&f->sleeping[which], 1);
		v = atomic_load(&f->word[which]);
		if (v == until)
			break;
		syscall(SYS_futex, (uint32_t *)&f->word[which], FUTEX_WAIT, v,
			NULL, NULL, 0);
	}
	atomic_store(&f->sleeping[which], 0);
}

static void ff_post(struct ff *f, int which, uint32_t v)
{
	atomic_store(&f->word[which], v);
	if (atomic_load(&f->sleeping[which]))
		syscall(SYS_futex, (uint32_t *)&f->word[which], FUTEX_WAKE, 1,
			NULL, NULL, 0);
}

/* The two floors share one channel: pipes or the futex page. */
struct floor {
	int to_echo[2], to_main[2];
	struct ff *ff;
};

static void read_full(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			bench_die(r < 0 ? -errno : 0, "pipe read");
		got += (size_t)r;
	}
}

static void write_full(int fd, const char *buf, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t r = write(fd, buf + done, size - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			bench_die(-errno, "pipe write");
		done += (size_t)r;
	}
}

/* The far side of a floor: echo until the quit value (sequence -1). */
static void floor_echo(const struct cfg *c, struct floor *fl)
{
	char *buf = calloc(1, c->size);
	long seq;

	if (!buf)
		bench_die(-ENOMEM, "echo");
	if (c->mode == M_FUTEX) {
		for (uint32_t i = 1;; i++) {
			ff_wait(fl->ff, 0, i, c->spin_ns);
			ff_post(fl->ff, 1, i);
		}
	}
	do {
		read_full(fl->to_echo[0], buf, c->size);
		write_full(fl->to_main[1], buf, c->size);
		memcpy(&seq, buf, sizeof(seq));
	} while (seq != -1);
	_exit(0);
}

/* One sample of a floor: send @seq and wait for it to come back. */
static long floor_round(const struct cfg *c, struct floor *fl, char *buf,
			long seq)
{
	if (c->mode == M_FUTEX) {
		/* Sequence numbers count from 1 on the futex page. */
		uint32_t v = (uint32_t)(seq + 1);

		ff_post(fl->ff, 0, v);
		ff_wait(fl->ff, 1, v, c->spin_ns);
		return seq;
	}
	memcpy(buf, &seq, sizeof(seq));
	write_full(fl->to_echo[1], buf, c->size);
	read_full(fl->to_main[0], buf, c->size);
	memcpy(&seq, buf, sizeof(seq));
	return seq;
}

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
		"local|pingpong|ping|block|pipe|futex]\n"
		"                      [-n SAMPLES] [-w WARMUP] [-s BYTES] "
		"[-D MAX_SECS]\n"
		"                      [-W SECS] [-T SECS] [-S SPIN_NS]\n"
		"-W: the timeout of every put and get (default: none).\n"
		"-S: -m futex only, how long a waiter spins before it sleeps "
		"(default 0).\n"
		"Prints RESULT lines p50_us, p99_us, p999_us, max_us, "
		"mean_us, rtt_per_s.\n");
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
					    "block", "pipe",	 "futex"};
	struct cfg c = {.mode = M_LOCAL,
			.n = 100000,
			.warmup = 2000,
			.size = 64,
			.max_secs = 5};
	struct bench_barrier bar;
	struct floor fl = {0};
	unsigned limit = 20;
	uint64_t *lat, deadline;
	char *buf, extra[128];
	long i, got = 0;
	bool counting = false;
	jobq_t *q = NULL;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:m:n:w:s:D:W:T:S:h", longopts,
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
			else if (!strcmp(optarg, "pipe"))
				c.mode = M_PIPE;
			else if (!strcmp(optarg, "futex"))
				c.mode = M_FUTEX;
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
		case 'S':
			/* 0 is meaningful here: sleep at once. */
			c.spin_ns = strcmp(optarg, "0")
					? (uint64_t)bench_arg_long(optarg, 'S')
					: 0;
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

	if (c.mode == M_PIPE || c.mode == M_FUTEX) {
		pid_t pid;

		if (c.mode == M_FUTEX) {
			fl.ff =
			    mmap(NULL, sizeof(*fl.ff), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (fl.ff == MAP_FAILED)
				bench_die(-errno, "mmap");
		} else if (pipe(fl.to_echo) || pipe(fl.to_main)) {
			bench_die(-errno, "pipe");
		}
		bench_barrier_init(&bar);
		pid = fork();
		if (pid < 0)
			bench_die(-errno, "fork");
		if (pid == 0) {
			bench_barrier_child(&bar);
			bench_barrier_wait(&bar);
			floor_echo(&c, &fl);
		}
		bench_kids[bench_nkids++] = pid;
		if (!bench_barrier_release(&bar, 1))
			bench_die(0,
				  "the echo process died before it was ready");
	} else if (c.mode == M_PINGPONG) {
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
		case M_PIPE:
		case M_FUTEX:
			seq = floor_round(&c, &fl, buf, i);
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
	} else if (c.mode == M_PIPE || c.mode == M_FUTEX) {
		int st;

		/* The futex echo never ends by itself: its CPU time is
		 * counted by the runner once it is reaped, so reap it. */
		if (c.mode == M_PIPE)
			floor_round(&c, &fl, buf, -1);
		else
			kill(bench_kids[0], SIGKILL);
		while (waitpid(bench_kids[0], &st, 0) < 0 && errno == EINTR)
			;
		bench_kids[0] = 0;
	}
	if (q)
		jobq_close(q);
	alarm(0);

	snprintf(extra, sizeof(extra), "mode=%s size=%zu spin_ns=%llu",
		 names[c.mode], c.size, (unsigned long long)c.spin_ns);
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
