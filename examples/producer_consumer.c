/* SPDX-License-Identifier: MIT */
/*
 * producer_consumer.c - a Queue between processes, bounded, with None as
 * the end marker.
 *
 * The idea: multiprocessing.Queue with P producer and C consumer processes.
 * Producers put N objects of random sizes (the empty object included) on a
 * queue with a depth limit, so a fast producer waits for the consumers
 * (back-pressure) instead of filling memory. When every producer is done,
 * the parent puts one None object (JOBQ_T_NONE) per consumer, and each
 * consumer stops at the first None it takes: the usual sentinel pattern.
 *
 * Every object carries its producer, its sequence number and its length,
 * and its payload is a pseudo-random stream derived from its number, so a
 * consumer checks every byte it receives. The queue is FIFO, so each
 * consumer must see any one producer's objects in increasing sequence; and
 * across all consumers every object must arrive exactly once.
 *
 *   producer_consumer [--dir DIR] [--producers P] [--consumers C]
 *                     [--count N] [--max-size BYTES] [--depth D]
 *
 * Defaults: 4 producers, 4 consumers, 10000 objects of 0 to 64 KiB, at
 * most 1000 on the queue at once (about 32 MiB: it fits the default store).
 *
 * Prints a summary and the rate; exits 0 when every check passed, 1 when
 * one failed, 2 on a bad argument.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

#define MAGIC 0x6a6f6271u /* "jobq" */

/* What leads every object; the payload follows. */
struct header {
	uint32_t magic;
	uint32_t producer;
	uint64_t seq;	/* this producer's n-th object */
	uint64_t index; /* the object's number among all N */
	uint32_t len;	/* payload bytes after the header */
	uint32_t pad;
};

/* Counts the consumers write into memory shared with the parent. */
struct tally {
	uint64_t objects;
	uint64_t bytes;
	uint64_t bad; /* objects that failed a check */
	int error;    /* a library error, 0 when none */
};

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64*: cheap and good enough to fill and check payloads. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t seed_of(uint64_t index)
{
	return (index + 1) * 0x9e3779b97f4a7c15ULL;
}

/* The payload length of object @index: 0 to @max_size bytes. */
static uint32_t len_of(uint64_t index, uint32_t max_size)
{
	uint64_t s = seed_of(index) ^ 0x5bd1e995u;

	return (uint32_t)(next_rand(&s) % ((uint64_t)max_size + 1));
}

static void fill(unsigned char *p, uint32_t len, uint64_t index)
{
	uint64_t s = seed_of(index);

	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t r = next_rand(&s);

		memcpy(p + i, &r, len - i < 8 ? len - i : 8);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_retry(jobq_t **q, const char *dir)
{
	int rc = 0;

	for (int i = 0; i < 200; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		rc = jobq_open(q, dir);
		if (rc != JOBQ_ELIMIT)
			return rc;
		nanosleep(&ts, NULL);
	}
	return rc;
}

/* Producer @p puts objects p, p + P, p + 2P, ... below @count. */
static int producer(const char *dir, const char *queue, uint32_t p,
		    uint32_t nprod, uint64_t count, uint32_t max_size)
{
	unsigned char *buf = malloc(sizeof(struct header) + max_size);
	jobq_t *q;
	uint64_t seq = 0;
	int rc;

	if (!buf)
		return 1;
	rc = open_retry(&q, dir);
	if (rc) {
		fprintf(stderr, "producer %u: cannot connect: %s\n", p,
			jobq_strerror(rc));
		return 1;
	}
	for (uint64_t i = p; i < count; i += nprod) {
		struct header h = {MAGIC, p, seq++, i, len_of(i, max_size), 0};

		memcpy(buf, &h, sizeof(h));
		fill(buf + sizeof(h), h.len, i);
		/* Waits while the queue is at its depth limit. */
		rc = jobq_put(q, queue, JOBQ_T_BYTES, buf, sizeof(h) + h.len,
			      60);
		if (rc) {
			fprintf(stderr, "producer %u: put: %s\n", p,
				jobq_strerror(rc));
			break;
		}
	}
	jobq_close(q);
	free(buf);
	return rc ? 1 : 0;
}

/* Is @obj what its header says, byte for byte, and in order? */
static int check(const jobq_obj_t *obj, uint32_t nprod, uint64_t count,
		 uint32_t max_size, uint64_t *last_seq, unsigned char *scratch)
{
	struct header h;

	if (obj->type != JOBQ_T_BYTES || obj->len < sizeof(h))
		return -1;
	memcpy(&h, obj->data, sizeof(h));
	if (h.magic != MAGIC || h.producer >= nprod || h.index >= count ||
	    h.index % nprod != h.producer ||
	    h.len != len_of(h.index, max_size) || obj->len != sizeof(h) + h.len)
		return -1;
	fill(scratch, h.len, h.index);
	if (memcmp(scratch, (char *)obj->data + sizeof(h), h.len))
		return -1;
	/* FIFO: this producer's objects reach this consumer in order. */
	if (last_seq[h.producer] != UINT64_MAX && h.seq <= last_seq[h.producer])
		return -2;
	last_seq[h.producer] = h.seq;
	return 0;
}

static int consumer(const char *dir, const char *queue, uint32_t nprod,
		    uint64_t count, uint32_t max_size, struct tally *t,
		    unsigned char *seen)
{
	uint64_t *last_seq = malloc(nprod * sizeof(*last_seq));
	unsigned char *scratch = malloc(max_size + 1);
	jobq_t *q;
	int rc;

	if (!last_seq || !scratch)
		return 1;
	for (uint32_t i = 0; i < nprod; i++)
		last_seq[i] = UINT64_MAX;
	rc = open_retry(&q, dir);
	if (rc) {
		t->error = rc;
		return 1;
	}
	for (;;) {
		jobq_obj_t obj = {0};
		struct header h;

		rc = jobq_get(q, queue, &obj, 60);
		if (rc) {
			t->error = rc;
			break;
		}
		if (obj.type == JOBQ_T_NONE) {
			jobq_obj_free(&obj);
			break;
		}
		if (check(&obj, nprod, count, max_size, last_seq, scratch)) {
			t->bad++;
		} else {
			memcpy(&h, obj.data, sizeof(h));
			__atomic_fetch_add(&seen[h.index], 1, __ATOMIC_RELAXED);
		}
		t->objects++;
		t->bytes += obj.len;
		jobq_obj_free(&obj);
	}
	jobq_close(q);
	free(last_seq);
	free(scratch);
	return t->error ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: producer_consumer [--dir DIR] [--producers P] "
			"[--consumers C] [--count N] [--max-size BYTES] "
			"[--depth D]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long nprod = 4, ncons = 4, count = 10000, max_size = 65536,
	     depth = 1000;
	struct jobq_queue_opts opts = {0};
	struct tally *tallies;
	pid_t *pids;
	unsigned char *seen;
	uint64_t got = 0, bytes = 0, bad = 0, missing = 0, twice = 0;
	int failed = 0, rc;
	char queue[64];
	double t0, secs;
	jobq_t *q;

	for (int i = 1; i < argc; i++) {
		long *v = NULL;

		if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
			continue;
		}
		if (!strcmp(argv[i], "--producers"))
			v = &nprod;
		else if (!strcmp(argv[i], "--consumers"))
			v = &ncons;
		else if (!strcmp(argv[i], "--count"))
			v = &count;
		else if (!strcmp(argv[i], "--max-size"))
			v = &max_size;
		else if (!strcmp(argv[i], "--depth"))
			v = &depth;
		if (!v || i + 1 >= argc)
			usage();
		*v = atol(argv[++i]);
	}
	if (nprod < 1 || ncons < 1 || count < 0 || max_size < 0 ||
	    max_size > (1 << 24) || depth < 0)
		usage();

	/* Shared with the children: what they saw, object by object. */
	tallies =
	    mmap(NULL, (size_t)ncons * sizeof(*tallies), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	seen = mmap(NULL, (size_t)count + 1, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tallies == MAP_FAILED || seen == MAP_FAILED) {
		perror("producer_consumer: mmap");
		return 1;
	}

	snprintf(queue, sizeof(queue), "producer_consumer.%d", (int)getpid());
	rc = jobq_open(&q, dir);
	if (rc) {
		fprintf(stderr, "producer_consumer: cannot connect: %s\n",
			jobq_strerror(rc));
		return 1;
	}
	opts.max_depth = (uint64_t)depth;
	rc = jobq_queue_open(q, queue, &opts);
	if (rc) {
		fprintf(stderr, "producer_consumer: queue %s: %s\n", queue,
			jobq_strerror(rc));
		return 1;
	}

	pids = calloc((size_t)(nprod + ncons), sizeof(*pids));
	if (!pids)
		return 1;
	t0 = now_s();
	/* The parent's handle stays open but no child touches it. */
	for (long i = 0; i < nprod + ncons; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("producer_consumer: fork");
			return 1;
		}
		if (pid > 0) {
			pids[i] = pid;
			continue;
		}
		if (i < nprod)
			_exit(producer(dir, queue, (uint32_t)i, (uint32_t)nprod,
				       (uint64_t)count, (uint32_t)max_size));
		_exit(consumer(dir, queue, (uint32_t)nprod, (uint64_t)count,
			       (uint32_t)max_size, &tallies[i - nprod], seen));
	}

	/*
	 * Wait for the producers, then end the consumers with one None each:
	 * a None goes in behind every object, so no consumer stops early.
	 */
	for (long i = 0; i < nprod + ncons; i++) {
		int status;

		if (i == nprod) {
			for (long k = 0; k < ncons; k++) {
				rc = jobq_put(q, queue, JOBQ_T_NONE, NULL, 0,
					      60);
				if (rc) {
					fprintf(stderr,
						"producer_consumer: put None: "
						"%s\n",
						jobq_strerror(rc));
					failed++;
					break;
				}
			}
		}
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed++;
	}
	secs = now_s() - t0;
	jobq_close(q);
	free(pids);

	for (long i = 0; i < ncons; i++) {
		got += tallies[i].objects;
		bytes += tallies[i].bytes;
		bad += tallies[i].bad;
		if (tallies[i].error) {
			fprintf(stderr, "producer_consumer: consumer %ld: %s\n",
				i, jobq_strerror(tallies[i].error));
			failed++;
		}
		printf("consumer %ld: %" PRIu64 " objects, %" PRIu64 " bytes\n",
		       i, tallies[i].objects, tallies[i].bytes);
	}
	for (long i = 0; i < count; i++) {
		missing += seen[i] == 0;
		twice += seen[i] > 1;
	}
	printf("%ld producers, %ld consumers, queue depth limit %ld: %" PRIu64
	       " objects (%" PRIu64 " bytes) in %.3f s = %.0f objects/s, "
	       "%.1f MiB/s\n",
	       nprod, ncons, depth, got, bytes, secs,
	       secs > 0 ? (double)got / secs : 0,
	       secs > 0 ? (double)bytes / secs / 1048576 : 0);
	munmap(tallies, (size_t)ncons * sizeof(*tallies));
	munmap(seen, (size_t)count + 1);
	if (failed || bad || missing || twice || got != (uint64_t)count) {
		printf("FAILED: %" PRIu64 " corrupt or out of order, %" PRIu64
		       " missing, %" PRIu64 " delivered twice, %d processes "
		       "failed\n",
		       bad, missing, twice, failed);
		return 1;
	}
	printf("ok: every object arrived once, intact, in order per "
	       "producer\n");
	return 0;
}
