/* SPDX-License-Identifier: MIT */
/*
 * test_producer_consumer.c - 4 producer and 4 consumer processes move
 * 200,000 objects of random sizes (0 bytes to 64 KiB) through one bounded
 * queue. Every object must arrive exactly once, with its bytes intact, and
 * each consumer must see each producer's sequence numbers increasing (FIFO
 * per producer). Consumers stop on JOBQ_T_NONE markers put after the
 * producers finish.
 *
 * Object identity: the type tag carries the producer and the sequence
 * number (so even 0-byte objects are identified), and an object of 12 bytes
 * or more also starts with {producer, seq, checksum of the rest}. Every
 * payload byte and every length is a function of (producer, seq), so the
 * consumer can check all of it.
 *
 * Sizes: uniform sizes averaging 32 KiB would move ~6.5 GB, too slow on 2
 * cores under ASan. The distribution is skewed small instead (80% up to
 * 1 KiB, 18% up to 16 KiB, 2% up to 64 KiB; about 2.5 KiB on average,
 * ~0.5 GB in all), and each producer's first object is 0 bytes and its
 * second exactly 64 KiB, so both ends are always covered.
 *
 * JQT_PC_TOTAL in the environment changes the object count (for quick
 * runs while developing).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

enum { PRODUCERS = 4, CONSUMERS = 4, MAX_SIZE = 65536, BATCH = 16 };

struct pc_shared {
	uint32_t per_producer;
	_Atomic uint32_t produced[PRODUCERS];
	_Atomic uint64_t consumed;
	_Atomic uint64_t bytes;
	_Atomic uint32_t bad;	 /* corrupt, unknown or out-of-order */
	_Atomic uint32_t seen[]; /* [PRODUCERS * per_producer] */
};

static uint64_t obj_seed(uint32_t p, uint32_t seq)
{
	return ((uint64_t)p << 32 | seq) + 0x51ed27;
}

static size_t obj_size(uint32_t p, uint32_t seq)
{
	uint64_t s = obj_seed(p, seq) ^ 0xabcdef12345ULL;
	uint64_t a = jqt_rand(&s), b = jqt_rand(&s);
	uint64_t bucket = a % 100;

	if (seq == 0)
		return 0;
	if (seq == 1)
		return MAX_SIZE;
	if (bucket < 80)
		return b % 1025;
	if (bucket < 98)
		return b % 16385;
	return b % (MAX_SIZE + 1);
}

static uint32_t obj_type(uint32_t p, uint32_t seq)
{
	return JOBQ_T_USER + (p << 16 | seq);
}

static uint32_t checksum(const uint8_t *p, size_t n)
{
	return jobq__hash(p, n);
}

/* Build object (p, seq) in @buf (MAX_SIZE bytes); returns its length. */
static size_t make_obj(uint32_t p, uint32_t seq, uint8_t *buf)
{
	size_t len = obj_size(p, seq);

	if (len < 12) {
		jqt_fill(buf, len, obj_seed(p, seq));
	} else {
		uint32_t h[3] = {p, seq, 0};

		jqt_fill(buf + 12, len - 12, obj_seed(p, seq));
		h[2] = checksum(buf + 12, len - 12);
		memcpy(buf, h, sizeof(h));
	}
	return len;
}

static int producer(int idx, void *arg)
{
	struct pc_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	uint8_t *bufs = malloc((size_t)BATCH * MAX_SIZE);
	jobq_obj_t objs[BATCH];
	uint64_t rs = (uint64_t)idx + 99;
	uint32_t p = (uint32_t)idx, seq = 0;

	CK(bufs);
	while (seq < s->per_producer) {
		size_t n = 1 + jqt_rand(&rs) % BATCH, done = 0;

		if (n > s->per_producer - seq)
			n = s->per_producer - seq;
		for (size_t i = 0; i < n; i++) {
			uint8_t *b = bufs + i * MAX_SIZE;

			objs[i] = (jobq_obj_t){
			    .type = obj_type(p, seq + (uint32_t)i),
			    .len = make_obj(p, seq + (uint32_t)i, b),
			    .data = b,
			};
		}
		/* Single puts now and then, batches otherwise. */
		if (n == 1) {
			CK_RC(jobq_put(q, "pc", objs[0].type, objs[0].data,
				       objs[0].len, 60),
			      0);
			done = 1;
		}
		while (done < n) {
			int r =
			    jobq_put_many(q, "pc", objs + done, n - done, 60);

			CK(r > 0 ||
			   (fprintf(stderr, "put_many: %s\n", jobq_strerror(r)),
			    0));
			done += (size_t)r;
		}
		seq += (uint32_t)n;
		atomic_store(&s->produced[p], seq);
	}
	free(bufs);
	jobq_close(q);
	return 0;
}

/* Check one object; returns 0 or -1 (and says why). */
static int check_obj(struct pc_shared *s, const jobq_obj_t *o, uint32_t *last,
		     uint8_t *scratch)
{
	uint32_t t = o->type - JOBQ_T_USER, p = t >> 16, seq = t & 0xffff;
	size_t len;

	if (o->type < JOBQ_T_USER || p >= PRODUCERS || seq >= s->per_producer) {
		fprintf(stderr, "consumer: unknown object type %u\n", o->type);
		return -1;
	}
	len = obj_size(p, seq);
	if (o->len != len) {
		fprintf(stderr,
			"consumer: object %u/%u has %zu bytes, "
			"expected %zu\n",
			p, seq, o->len, len);
		return -1;
	}
	if (len >= 12) {
		uint32_t h[3];

		memcpy(h, o->data, sizeof(h));
		if (h[0] != p || h[1] != seq ||
		    h[2] != checksum((uint8_t *)o->data + 12, len - 12)) {
			fprintf(stderr, "consumer: object %u/%u corrupt\n", p,
				seq);
			return -1;
		}
	} else {
		make_obj(p, seq, scratch);
		if (memcmp(scratch, o->data, len)) {
			fprintf(stderr, "consumer: object %u/%u corrupt\n", p,
				seq);
			return -1;
		}
	}
	/* FIFO per producer, as this consumer sees it. */
	if (last[p] != UINT32_MAX && seq <= last[p]) {
		fprintf(stderr, "consumer: producer %u: seq %u after %u\n", p,
			seq, last[p]);
		return -1;
	}
	last[p] = seq;
	atomic_fetch_add(&s->seen[(size_t)p * s->per_producer + seq], 1);
	atomic_fetch_add(&s->bytes, len);
	return 0;
}

static int consumer(int idx, void *arg)
{
	struct pc_shared *s = arg;
	jobq_t *q = jqt_open_or_die(jqt_cur);
	jobq_obj_t out[32];
	uint32_t last[PRODUCERS];
	uint8_t *scratch = malloc(16);
	int stop = 0, extra_markers = 0;

	CK(scratch);
	for (int i = 0; i < PRODUCERS; i++)
		last[i] = UINT32_MAX;
	while (!stop) {
		int n = jobq_get_many(q, "pc", out, 32, 60);

		CK(n > 0 ||
		   (fprintf(stderr, "get_many: %s\n", jobq_strerror(n)), 0));
		for (int i = 0; i < n; i++) {
			if (out[i].type == JOBQ_T_NONE) {
				if (stop)
					extra_markers++;
				stop = 1;
			} else if (stop) {
				fprintf(stderr, "consumer: object after the "
						"stop marker\n");
				atomic_fetch_add(&s->bad, 1);
			} else if (check_obj(s, &out[i], last, scratch) < 0) {
				atomic_fetch_add(&s->bad, 1);
			} else {
				atomic_fetch_add(&s->consumed, 1);
			}
			jobq_obj_free(&out[i]);
		}
	}
	/* Markers meant for the other consumers go back. */
	for (int i = 0; i < extra_markers; i++)
		CK_RC(jobq_put(q, "pc", JOBQ_T_NONE, NULL, 0, 10), 0);
	free(scratch);
	jobq_close(q);
	return 0;
}

static uint64_t progress(struct pc_shared *s)
{
	uint64_t n = atomic_load(&s->consumed);

	for (int i = 0; i < PRODUCERS; i++)
		n += atomic_load(&s->produced[i]);
	return n;
}

/*
 * Wait for the producers for at most 100 s, telling a stall (no object
 * put or taken for 30 s) from slowness, and saying how far they got.
 */
static void wait_producers(struct pc_shared *s, pid_t *prod)
{
	double start = jqt_now(), last_move = start;
	uint64_t last = progress(s);
	int left = PRODUCERS, st;

	while (left) {
		uint64_t now_p = progress(s);

		if (now_p != last) {
			last = now_p;
			last_move = jqt_now();
		}
		for (int i = 0; i < PRODUCERS; i++) {
			if (prod[i] > 0 && jqt_wait_pid(prod[i], 0, &st) == 0) {
				if (!jqt_status_ok(st))
					print_error("producer %d failed (wait "
						    "status %#x)\n",
						    i, st);
				assert_true(jqt_status_ok(st));
				prod[i] = 0;
				left--;
			}
		}
		if (left &&
		    (jqt_now() - last_move > 30 || jqt_now() - start > 100)) {
			print_error(
			    "%s after %.0f s: produced %u %u %u %u of "
			    "%u each, consumed %llu\n",
			    jqt_now() - last_move > 30 ? "stalled" : "too slow",
			    jqt_now() - start, atomic_load(&s->produced[0]),
			    atomic_load(&s->produced[1]),
			    atomic_load(&s->produced[2]),
			    atomic_load(&s->produced[3]), s->per_producer,
			    (unsigned long long)atomic_load(&s->consumed));
			for (int i = 0; i < PRODUCERS; i++)
				if (prod[i] > 0)
					jqt_kill_child(prod[i]);
			fail();
		}
		jqt_sleep(0.05);
	}
}

static void test_producer_consumer(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_queue_opts opts = {.max_depth = 4096};
	struct jobq_queue_info info;
	const char *env = getenv("JQT_PC_TOTAL");
	uint32_t total = env ? (uint32_t)strtoul(env, NULL, 10) : 200000;
	uint32_t per = total / PRODUCERS;
	size_t sz;
	struct pc_shared *s;
	pid_t prod[PRODUCERS], cons[CONSUMERS];
	double t0 = jqt_now();
	jobq_t *q;
	int missing = 0, dup = 0;

	assert_true(per >= 2 && per <= 65536);
	sz = sizeof(*s) + (size_t)PRODUCERS * per * sizeof(s->seen[0]);
	s = jqt_shared(sz);
	s->per_producer = per;

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_queue_open(q, "pc", &opts), 0);
	assert_int_equal(jqt_fork_n(CONSUMERS, consumer, s, cons), 0);
	assert_int_equal(jqt_fork_n(PRODUCERS, producer, s, prod), 0);

	wait_producers(s, prod);
	for (int i = 0; i < CONSUMERS; i++)
		assert_rc(jobq_put(q, "pc", JOBQ_T_NONE, NULL, 0, 10), 0);
	/* 100 s for the producers and 15 s for the consumers to drain stay
	 * inside meson's 120 s, so a slow run fails here, with numbers. */
	assert_int_equal(jqt_wait_all(cons, CONSUMERS, 15, NULL), 0);
	print_message("moved %u objects, %.1f MB, in %.1f s\n", PRODUCERS * per,
		      (double)atomic_load(&s->bytes) / 1e6, jqt_now() - t0);

	assert_int_equal(atomic_load(&s->bad), 0);
	for (size_t i = 0; i < (size_t)PRODUCERS * per; i++) {
		uint32_t c = atomic_load(&s->seen[i]);

		if (c == 0 && missing++ < 5)
			print_error("object %zu/%zu never arrived\n", i / per,
				    i % per);
		if (c > 1 && dup++ < 5)
			print_error("object %zu/%zu arrived %u times\n",
				    i / per, i % per, c);
	}
	assert_int_equal(missing, 0);
	assert_int_equal(dup, 0);
	assert_int_equal(atomic_load(&s->consumed), (uint64_t)PRODUCERS * per);

	/* Everything was taken, the markers included (a consumer that took
	 * two markers put one back, hence at least). */
	assert_rc(jobq_queue_info(q, "pc", &info), 0);
	assert_int_equal(info.depth, 0);
	assert_true(info.total_put >= (uint64_t)PRODUCERS * per + CONSUMERS);
	assert_int_equal(info.total_put, info.total_get);
	jobq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_producer_consumer, jqt_setup,
					    jqt_teardown),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
