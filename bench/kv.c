/* SPDX-License-Identifier: MIT */
/*
 * jobq-bench-kv - key/value store operations per second, one process.
 *
 *   -m get     jobq_kv_get_buf() reads: the keys are set first, then read
 *              round-robin for -D seconds. A read goes straight to the
 *              read-only store mapping (seqlock), no round trip.
 *   -m local   no jobq: the same reads from a hash table in the process's
 *              own memory (open addressing, FNV-1a, the value copied out).
 *              The fair counterpart of -m get: a read of local memory
 *              beside a read of local memory.
 *   -m incr    jobq_kv_incr() by 0, one at a time: a keyed read that goes
 *              through the manager and back, the counterpart of a Redis
 *              GET over a connection (the values are decimal integers).
 *   -m set     jobq_kv_set(), one at a time: every set waits for its answer.
 *   -m set-mt  jobq_kv_set() from -t threads sharing one handle, so that
 *              up to -t sets are in flight at once and the manager can
 *              answer them in batches.
 *   -m set-async  jobq_kv_set_async() from one thread, pipelined like
 *              redis-benchmark -P: -w sets submitted, then
 *              jobq_wait_idle() until all of them are answered, and again.
 *
 * Keys are "bench:<i>" for i in 0..-r-1, values -s bytes. Every value read
 * is checked for its length and first byte.
 */
#include <getopt.h>
#include <pthread.h>

#include "bench.h"

enum mode { M_GET, M_SET, M_SET_MT, M_SET_ASYNC, M_LOCAL, M_INCR };

struct cfg {
	const char *dir;
	enum mode mode;
	long n;
	long keys;
	size_t size;
	int threads;
	long window; /* set-async: sets per pipelined round */
	double secs;
	char (*key)[32];
	char *value;
};

/*
 * The -m local table: 2 slots per key or more (a power of two), linear
 * probing, written once before the reads and never after.
 */
struct slot {
	const char *key;
	const char *value;
	size_t len;
};

struct table {
	struct slot *slot;
	size_t mask;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static void table_init(struct table *t, const struct cfg *c)
{
	size_t cap = 2;

	while (cap < 2 * (size_t)c->keys)
		cap <<= 1;
	t->slot = calloc(cap, sizeof(*t->slot));
	if (!t->slot)
		bench_die(-ENOMEM, "hash table");
	t->mask = cap - 1;
	for (long i = 0; i < c->keys; i++) {
		size_t k = fnv1a(c->key[i]) & t->mask;

		while (t->slot[k].key)
			k = (k + 1) & t->mask;
		t->slot[k].key = c->key[i];
		t->slot[k].value = c->value;
		t->slot[k].len = c->size;
	}
}

/* Like jobq_kv_get_buf(): the value's length, at most @cap bytes copied. */
static ssize_t table_get(const struct table *t, const char *key, void *buf,
			 size_t cap)
{
	for (size_t k = fnv1a(key) & t->mask; t->slot[k].key;
	     k = (k + 1) & t->mask) {
		if (!strcmp(t->slot[k].key, key)) {
			size_t len = t->slot[k].len;

			memcpy(buf, t->slot[k].value, len < cap ? len : cap);
			return (ssize_t)len;
		}
	}
	return -ENOENT;
}

struct worker {
	const struct cfg *c;
	jobq_t *q;
	long from, to;
	int err;
	pthread_t tid;
};

static int set_range(jobq_t *q, const struct cfg *c, long from, long to)
{
	for (long i = from; i < to; i++) {
		int r = jobq_kv_set(q, c->key[i % c->keys], JOBQ_T_BYTES,
				    c->value, c->size);

		if (r < 0)
			return r;
	}
	return 0;
}

/* set-async: the first error a callback saw, and how many answered. */
struct async_state {
	int err;
	long answered;
};

static void on_set(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	struct async_state *st = arg;

	(void)q;
	(void)obj;
	if (res < 0 && !st->err)
		st->err = res;
	st->answered++;
}

/* Sets keys @from..@to-1 in rounds of c->window asynchronous sets, each
 * round waited for as a whole (what redis-benchmark -P does). */
static int set_async_range(jobq_t *q, const struct cfg *c, long from, long to)
{
	struct async_state st = {0};

	for (long i = from; i < to;) {
		long end = to - i < c->window ? to : i + c->window;
		int r;

		for (; i < end; i++) {
			r = jobq_kv_set_async(q, c->key[i % c->keys],
					      JOBQ_T_BYTES, c->value, c->size,
					      on_set, &st);
			if (r < 0)
				return r;
		}
		if ((r = jobq_wait_idle(q, 10)) < 0)
			return r;
		if (st.err)
			return st.err;
	}
	return st.answered == to - from ? 0 : -EPROTO;
}

static void *set_thread(void *arg)
{
	struct worker *w = arg;

	w->err = set_range(w->q, w->c, w->from, w->to);
	return NULL;
}

/* One read of key @k as the mode says; dies unless the value is right. */
static inline void read_one(jobq_t *q, const struct table *t,
			    const struct cfg *c, long k, char *buf)
{
	uint32_t type = JOBQ_T_BYTES;
	int64_t v = -1;
	ssize_t r;
	int e;

	switch (c->mode) {
	case M_INCR:
		e = jobq_kv_incr(q, c->key[k], 0, &v);
		if (e < 0 || v != k)
			bench_die(e, "kv incr \"%s\" by 0 gave %lld", c->key[k],
				  (long long)v);
		return;
	case M_LOCAL:
		r = table_get(t, c->key[k], buf, c->size + 1);
		break;
	default:
		r = jobq_kv_get_buf(q, c->key[k], buf, c->size + 1, &type);
		break;
	}
	if (r != (ssize_t)c->size || buf[0] != 'v' || type != JOBQ_T_BYTES)
		bench_die(r < 0 ? (int)r : 0,
			  "kv get \"%s\" returned %zd bytes", c->key[k], r);
}

/* Reads for c->secs seconds; returns how many reads were done. The clock is
 * looked at once per 1024 reads so that it costs nothing measurable. */
static long read_loop(jobq_t *q, const struct table *t, const struct cfg *c,
		      double *secs)
{
	char *buf = malloc(c->size + 1);
	uint64_t t0 = bench_now_ns(), now = t0;
	uint64_t end = t0 + (uint64_t)(c->secs * 1e9);
	long done = 0, k = 0;

	if (!buf)
		bench_die(-ENOMEM, "read buffer");
	while (now < end) {
		for (int j = 0; j < 1024; j++) {
			read_one(q, t, c, k, buf);
			if (++k == c->keys)
				k = 0;
		}
		done += 1024;
		now = bench_now_ns();
	}
	*secs = (double)(now - t0) / 1e9;
	free(buf);
	return done;
}

/* -m incr: key i holds the decimal integer i, set through the manager. */
static int set_integers(jobq_t *q, const struct cfg *c)
{
	for (long i = 0; i < c->keys; i++) {
		char v[24];
		int n = snprintf(v, sizeof(v), "%ld", i);
		int r = jobq_kv_set(q, c->key[i], JOBQ_T_BYTES, v, (size_t)n);

		if (r < 0)
			return r;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: jobq-bench-kv [--dir DIR] "
		"[-m get|local|incr|set|set-mt|set-async]\n"
		"                     [-n OPS]"
		"                     [-r KEYS] [-s BYTES] [-t THREADS] [-w "
		"WINDOW]\n"
		"                     [-D SECS] [-T SECS]\n"
		"Prints RESULT lines get_ops_per_s or set_ops_per_s.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"get",	 "set",	  "set-mt",
					    "set-async", "local", "incr"};
	struct cfg c = {.mode = M_GET,
			.n = 200000,
			.keys = 1000,
			.size = 64,
			.threads = 16,
			.window = 16,
			.secs = 2};
	struct table t = {0};
	struct worker *w;
	unsigned limit = 20;
	uint64_t t0, t1;
	double secs = 0;
	long ops = 0;
	jobq_t *q = NULL;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:m:n:r:s:t:w:D:T:h", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd':
			c.dir = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "get"))
				c.mode = M_GET;
			else if (!strcmp(optarg, "set"))
				c.mode = M_SET;
			else if (!strcmp(optarg, "set-mt"))
				c.mode = M_SET_MT;
			else if (!strcmp(optarg, "set-async"))
				c.mode = M_SET_ASYNC;
			else if (!strcmp(optarg, "local"))
				c.mode = M_LOCAL;
			else if (!strcmp(optarg, "incr"))
				c.mode = M_INCR;
			else
				usage();
			break;
		case 'n':
			c.n = bench_arg_long(optarg, 'n');
			break;
		case 'r':
			c.keys = bench_arg_long(optarg, 'r');
			break;
		case 's':
			c.size = (size_t)bench_arg_long(optarg, 's');
			break;
		case 't':
			c.threads = (int)bench_arg_long(optarg, 't');
			break;
		case 'w':
			c.window = bench_arg_long(optarg, 'w');
			break;
		case 'D':
			c.secs = (double)bench_arg_long(optarg, 'D');
			break;
		case 'T':
			limit = (unsigned)bench_arg_long(optarg, 'T');
			break;
		default:
			usage();
		}
	}
	if (optind != argc || c.threads > 1024)
		usage();
	bench_time_limit(limit);

	c.key = calloc((size_t)c.keys, sizeof(*c.key));
	c.value = malloc(c.size);
	if (!c.key || !c.value)
		bench_die(-ENOMEM, "allocating %ld keys", c.keys);
	for (long i = 0; i < c.keys; i++)
		snprintf(c.key[i], sizeof(c.key[i]), "bench:%ld", i);
	memset(c.value, 'x', c.size);
	c.value[0] = 'v';

	if (c.mode != M_LOCAL)
		q = bench_open(c.dir);
	switch (c.mode) {
	case M_GET:
		if ((r = set_range(q, &c, 0, c.keys)) < 0)
			bench_die(r, "jobq_kv_set");
		ops = read_loop(q, NULL, &c, &secs);
		break;
	case M_LOCAL:
		table_init(&t, &c);
		ops = read_loop(NULL, &t, &c, &secs);
		free(t.slot);
		break;
	case M_INCR:
		if ((r = set_integers(q, &c)) < 0)
			bench_die(r, "jobq_kv_set");
		ops = read_loop(q, NULL, &c, &secs);
		break;
	case M_SET:
		t0 = bench_now_ns();
		if ((r = set_range(q, &c, 0, c.n)) < 0)
			bench_die(r, "jobq_kv_set");
		t1 = bench_now_ns();
		ops = c.n;
		secs = (double)(t1 - t0) / 1e9;
		break;
	case M_SET_ASYNC:
		t0 = bench_now_ns();
		if ((r = set_async_range(q, &c, 0, c.n)) < 0)
			bench_die(r, "jobq_kv_set_async");
		t1 = bench_now_ns();
		ops = c.n;
		secs = (double)(t1 - t0) / 1e9;
		break;
	case M_SET_MT:
		w = calloc((size_t)c.threads, sizeof(*w));
		if (!w)
			bench_die(-ENOMEM, "threads");
		t0 = bench_now_ns();
		for (int i = 0; i < c.threads; i++) {
			w[i].c = &c;
			w[i].q = q;
			w[i].from = c.n * i / c.threads;
			w[i].to = c.n * (i + 1) / c.threads;
			r = pthread_create(&w[i].tid, NULL, set_thread, &w[i]);
			if (r)
				bench_die(-r, "pthread_create");
		}
		for (int i = 0; i < c.threads; i++) {
			pthread_join(w[i].tid, NULL);
			if (w[i].err < 0)
				bench_die(w[i].err, "jobq_kv_set (thread %d)",
					  i);
		}
		t1 = bench_now_ns();
		ops = c.n;
		secs = (double)(t1 - t0) / 1e9;
		free(w);
		break;
	}
	if (q)
		jobq_close(q);
	alarm(0);

	printf("RESULT metric=%s_ops_per_s value=%.1f n=%ld keys=%ld size=%zu "
	       "threads=%d window=%ld mode=%s secs=%.3f\n",
	       c.mode == M_GET || c.mode == M_LOCAL || c.mode == M_INCR ? "get"
									: "set",
	       (double)ops / secs, ops, c.keys, c.size,
	       c.mode == M_SET_MT ? c.threads : 1,
	       c.mode == M_SET_ASYNC ? c.window : 1, names[c.mode], secs);
	free(c.key);
	free(c.value);
	return 0;
}
