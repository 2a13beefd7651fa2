/* SPDX-License-Identifier: MIT */
/*
 * test_bad_input.c - limits and hostile input: objects over --max-object,
 * a full store, no manager at all, malformed command lines, and a client
 * that writes garbage into its own ring or garbles and truncates its own
 * region. Every bad request gets an error; the manager keeps serving
 * everyone else and never crashes.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* Each test starts the manager it needs; this one is stopped after. */
static struct jqt_mgr mgr;

static int start(const char *const *args)
{
	if (jqt_mgr_start(&mgr, args) < 0)
		return -1;
	jqt_cur = &mgr;
	return 0;
}

static int setup_default(void **state)
{
	*state = &mgr;
	return start(NULL);
}

static int setup_small_objects(void **state)
{
	static const char *const args[] = {"--max-object", "64K", NULL};

	*state = &mgr;
	return start(args);
}

static int setup_small_store(void **state)
{
	static const char *const args[] = {"--memory", "8M", "--max-object",
					   "64K", NULL};

	*state = &mgr;
	return start(args);
}

/* A normal client still gets served. */
static void assert_serving(const struct jqt_mgr *m)
{
	jobq_t *q;
	jobq_obj_t o = {0};

	assert_rc(jobq_open(&q, m->dir), 0);
	assert_rc(jobq_ping(q), 0);
	assert_rc(jobq_put(q, "still-alive", JOBQ_T_BYTES, "yes", 3, 5), 0);
	assert_rc(jobq_get(q, "still-alive", &o, 5), 0);
	assert_int_equal(o.len, 3);
	assert_memory_equal(o.data, "yes", 3);
	jobq_obj_free(&o);
	jobq_close(q);
}

static void test_object_too_big(void **state)
{
	struct jqt_mgr *m = *state;
	size_t max = 64 * 1024;
	char *big = malloc(max + 1);
	struct jobq_queue_info info;
	struct jqt_out out;
	jobq_obj_t o = {0};
	jobq_t *q;

	assert_non_null(big);
	jqt_fill(big, max + 1, 7);
	assert_rc(jobq_open(&q, m->dir), 0);
	assert_int_equal(jobq_max_object(q), max);
	assert_rc(jobq_put(q, "big", JOBQ_T_BYTES, big, max + 1, 0), -E2BIG);
	assert_rc(jobq_put(q, "big", JOBQ_T_BYTES, big, max + 1, 1), -E2BIG);
	{
		jobq_obj_t objs[2] = {
		    {.type = JOBQ_T_BYTES, .len = max + 1, .data = big},
		    {.type = JOBQ_T_BYTES, .len = 1, .data = big},
		};

		assert_rc(jobq_put_many(q, "big", objs, 2, 0), -E2BIG);
	}
	assert_rc(jobq_put(q, "big", JOBQ_T_BYTES, big, max, 0), 0);
	assert_rc(jobq_get(q, "big", &o, 0), 0);
	assert_int_equal(o.len, max);
	assert_memory_equal(o.data, big, max);
	jobq_obj_free(&o);

	/* The CLI names the queue and the limit, and exits 1. */
	assert_int_equal(jqt_cli(m, &out, big, max + 1, "put", "big", NULL), 0);
	assert_int_equal(out.code, 1);
	assert_int_equal(jqt_count_lines(out.err), 1);
	assert_non_null(strstr(out.err, "big"));
	assert_non_null(strstr(out.err, "max-object"));
	jqt_out_free(&out);

	assert_rc(jobq_queue_info(q, "big", &info), 0);
	assert_int_equal(info.depth, 0);
	jobq_close(q);
	free(big);
}

static int put_when_room(int idx, void *arg)
{
	jobq_t *q = jqt_open_or_die(jqt_cur);
	uint8_t *buf = malloc(60000);

	CK(buf);
	memset(buf, 0xee, 60000);
	memcpy(buf, &(uint32_t){0xffffffffu}, 4);
	CK_RC(jobq_put(q, "full", JOBQ_T_BYTES, buf, 60000, 20), 0);
	free(buf);
	jobq_close(q);
	return 0;
}

static void test_full_store(void **state)
{
	struct jqt_mgr *m = *state;
	enum { SZ = 60000 };
	uint8_t *buf = malloc(SZ);
	struct jobq_stats st;
	jobq_obj_t o = {0};
	uint32_t n = 0;
	double t0;
	jobq_t *q;
	pid_t pid;
	int rc;

	assert_non_null(buf);
	assert_rc(jobq_open(&q, m->dir), 0);
	for (;;) {
		jqt_fill(buf, SZ, n);
		memcpy(buf, &n, 4);
		rc = jobq_put(q, "full", JOBQ_T_BYTES, buf, SZ, 0);
		if (rc)
			break;
		n++;
		assert_true(n < 10000);
	}
	assert_rc(rc, JOBQ_EFULL);
	print_message("store full after %u objects of %d bytes\n", n, SZ);
	assert_true(n > 10);
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.memory_used >= (uint64_t)n * SZ);
	assert_true(st.memory_used <= st.memory_total);

	/* Small values may still fit; an object of this size does not. */
	t0 = jqt_now();
	assert_rc(jobq_put(q, "full", JOBQ_T_BYTES, buf, SZ, 0.3), -ETIMEDOUT);
	assert_true(jqt_now() - t0 >= 0.25);

	/* A blocked put goes through once a get makes room. */
	pid = jqt_fork(put_when_room, 0, NULL);
	assert_true(pid > 0);
	jqt_sleep(0.3);
	assert_rc(jobq_get(q, "full", &o, 0), 0);
	assert_int_equal(o.len, SZ);
	assert_memory_equal(o.data, &(uint32_t){0}, 4);
	jobq_obj_free(&o);
	assert_int_equal(jqt_wait_all(&pid, 1, 20, NULL), 0);

	/* Nothing lost: 1..n-1 in order, then the late one. */
	for (uint32_t i = 1; i < n; i++) {
		uint32_t id;

		assert_rc(jobq_get(q, "full", &o, 0), 0);
		assert_int_equal(o.len, SZ);
		memcpy(&id, o.data, 4);
		assert_int_equal(id, i);
		jqt_fill(buf, SZ, i);
		assert_memory_equal((uint8_t *)o.data + 4, buf + 4, SZ - 4);
		jobq_obj_free(&o);
	}
	assert_rc(jobq_get(q, "full", &o, 0), 0);
	assert_memory_equal(o.data, &(uint32_t){0xffffffffu}, 4);
	jobq_obj_free(&o);
	assert_rc(jobq_get(q, "full", &o, 0), -EAGAIN);

	/* Room again for as many as before. */
	for (uint32_t i = 0; i < n; i++)
		assert_rc(jobq_put(q, "full", JOBQ_T_BYTES, buf, SZ, 0), 0);
	jobq_close(q);
	free(buf);
}

static void test_no_manager(void **state)
{
	char dir[PATH_MAX], sub[PATH_MAX + 16];
	struct jqt_out out;
	struct jqt_mgr m;
	jobq_t *q = NULL;

	assert_int_equal(jqt_tmpdir(dir, sizeof(dir)), 0);
	assert_rc(jobq_open(&q, dir), JOBQ_ENOMANAGER);
	assert_null(q);
	snprintf(sub, sizeof(sub), "%s/missing", dir);
	assert_rc(jobq_open(&q, sub), JOBQ_ENOMANAGER);

	/* The CLI says so in one line naming the directory, exit 1. */
	assert_int_equal(
	    jqt_cli(NULL, &out, NULL, 0, "--dir", dir, "ping", NULL), 0);
	assert_int_equal(out.code, 1);
	assert_int_equal(jqt_count_lines(out.err), 1);
	assert_non_null(strstr(out.err, dir));
	jqt_out_free(&out);
	assert_int_equal(jqt_cli(NULL, &out, NULL, 0, "--dir", dir, "get", "q",
				 "--nowait", NULL),
			 0);
	assert_int_equal(out.code, 1);
	assert_non_null(strstr(out.err, dir));
	jqt_out_free(&out);
	jqt_rmtree(dir);

	/* A manager killed with SIGKILL leaves its socket behind: still no
	 * manager, not a hang. */
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	kill(-m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_rc(jobq_open(&q, m.dir), JOBQ_ENOMANAGER);
	jqt_mgr_stop(&m);
}

static void expect_usage(const struct jqt_mgr *m, const char *what, ...)
{
	const char *argv[16];
	struct jqt_out out;
	va_list ap;
	int n = 0;

	argv[n++] = jqt_jobq_path();
	argv[n++] = "--dir";
	argv[n++] = m->dir;
	va_start(ap, what);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 15, &out), 0);
	if (out.code != 2)
		print_error("%s: exit %d, expected 2 (stderr: %s)\n", what,
			    out.code, out.err);
	assert_int_equal(out.code, 2);
	assert_true(out.err_len > 0);
	jqt_out_free(&out);
}

static void test_bad_command_line(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out out;

	expect_usage(m, "no command", NULL);
	expect_usage(m, "unknown command", "frobnicate", NULL);
	expect_usage(m, "unknown option", "ping", "--bogus", NULL);
	expect_usage(m, "unknown option first", "--bogus", "ping", NULL);
	expect_usage(m, "put without queue", "put", NULL);
	expect_usage(m, "get without queue", "get", NULL);
	expect_usage(m, "kv without subcommand", "kv", NULL);
	expect_usage(m, "unknown kv subcommand", "kv", "frob", "k", NULL);
	/* (kv set KEY without VALUE reads the value from stdin, like put.) */
	expect_usage(m, "kv set without key", "kv", "set", NULL);
	expect_usage(m, "kv get without key", "kv", "get", NULL);
	expect_usage(m, "kv incr with a non-number", "kv", "incr", "k", "abc",
		     NULL);
	expect_usage(m, "lock without name", "lock", NULL);
	expect_usage(m, "lock without command", "lock", "L", "--", NULL);
	expect_usage(m, "timeout not a number", "get", "q", "--timeout", "abc",
		     NULL);
	expect_usage(m, "timeout without value", "get", "q", "--timeout", NULL);
	expect_usage(m, "too many arguments", "get", "q", "extra", NULL);

	/* None of that touched the manager's state. */
	assert_int_equal(jqt_cli(m, &out, NULL, 0, "queues", "--json", NULL),
			 0);
	assert_int_equal(out.code, 0);
	assert_null(strstr(out.out, "\"q\""));
	jqt_out_free(&out);
}

/* ------------------------------------------------------------------------
 * Garbage in the ring.
 */
static void submit_expect_error(struct jqt_raw *r, struct jobq_sqe *sqe,
				const char *what)
{
	static uint64_t ud = 0x5000;
	struct jobq_cqe cqe;

	sqe->user_data = ++ud;
	assert_rc(jqt_raw_submit(r, sqe), 0);
	if (jqt_raw_wait(r, &cqe, 10) < 0) {
		print_error("%s: no completion within 10 s\n", what);
		fail();
	}
	if (cqe.user_data != ud || cqe.res >= 0) {
		print_error("%s: completion user_data %#llx res %d (%s), "
			    "expected user_data %#llx and an error\n",
			    what, (unsigned long long)cqe.user_data, cqe.res,
			    jobq_strerror(cqe.res), (unsigned long long)ud);
		fail();
	}
	assert_false(cqe.flags & JOBQ_CQE_OBJECT);
}

static void test_garbage_sqes(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_raw r;
	struct jobq_sqe s;
	struct jobq_cqe cqe;
	struct jobq_stats st;
	int64_t qid;
	uint64_t a;
	jobq_t *q;
	char name[300];

	assert_rc(jqt_raw_open(m->dir, &r), 0);
	qid = jqt_raw_q_open(&r, "garbage-q");
	assert_true(qid >= 0);
	a = jqt_raw_arena_put(&r, 0, "payload", 7);

#define BAD(what, ...)                                                         \
	do {                                                                   \
		s = (struct jobq_sqe){__VA_ARGS__};                            \
		submit_expect_error(&r, &s, what);                             \
	} while (0)

	BAD("unknown op", .op = 200);
	BAD("op just past the last", .op = JOBQ_OP__COUNT);
	BAD("put to a queue id never handed out", .op = JOBQ_OP_Q_PUT,
	    .id = 0xffffffffu, .arena_off = a, .arena_len = 7);
	BAD("put to the next queue id", .op = JOBQ_OP_Q_PUT,
	    .id = (uint32_t)qid + 1000, .arena_off = a, .arena_len = 7);
	BAD("payload past the region", .op = JOBQ_OP_Q_PUT, .id = (uint32_t)qid,
	    .arena_off = r.region_size, .arena_len = 7);
	BAD("payload crossing the arena's end", .op = JOBQ_OP_Q_PUT,
	    .id = (uint32_t)qid, .arena_off = r.arena_off + r.arena_size - 4,
	    .arena_len = 64);
	BAD("payload offset that wraps", .op = JOBQ_OP_Q_PUT,
	    .id = (uint32_t)qid, .arena_off = UINT64_MAX - 3, .arena_len = 16);
	BAD("payload length 4 GiB", .op = JOBQ_OP_Q_PUT, .id = (uint32_t)qid,
	    .arena_off = a, .arena_len = 0xffffffffu);
	BAD("get from a queue id never handed out", .op = JOBQ_OP_Q_GET,
	    .id = 0x7fffffffu, .arg0 = 1);
	BAD("get of zero objects", .op = JOBQ_OP_Q_GET, .id = (uint32_t)qid,
	    .arg0 = 0);
	BAD("task_done on a bad id", .op = JOBQ_OP_Q_TASK_DONE,
	    .id = 0xfffffff0u, .arg0 = 1);
	BAD("join on a bad id", .op = JOBQ_OP_Q_JOIN, .id = 0xfffffff0u);
	BAD("set on a bad id", .op = JOBQ_OP_Q_SET, .id = 0xfffffff0u);

	BAD("queue name empty", .op = JOBQ_OP_Q_OPEN, .flags = JOBQ_SQE_CREATE,
	    .arena_off = a, .arena_len = 0);
	memset(name, 'n', sizeof(name));
	BAD("queue name of 200 bytes", .op = JOBQ_OP_Q_OPEN,
	    .flags = JOBQ_SQE_CREATE,
	    .arena_off = jqt_raw_arena_put(&r, 64, name, 200),
	    .arena_len = 200);
	BAD("queue name with a control character", .op = JOBQ_OP_Q_OPEN,
	    .flags = JOBQ_SQE_CREATE,
	    .arena_off = jqt_raw_arena_put(&r, 64, "bad\001name", 8),
	    .arena_len = 8);
	BAD("queue name with a NUL inside", .op = JOBQ_OP_Q_OPEN,
	    .flags = JOBQ_SQE_CREATE,
	    .arena_off = jqt_raw_arena_put(&r, 64, "bad\0name", 8),
	    .arena_len = 8);
	BAD("queue name out of the arena", .op = JOBQ_OP_Q_OPEN,
	    .flags = JOBQ_SQE_CREATE, .arena_off = UINT64_MAX / 2,
	    .arena_len = 5);

	BAD("kv key longer than the payload", .op = JOBQ_OP_KV_SET,
	    .arena_off = a, .arena_len = 7, .arg0 = 100);
	BAD("kv key of 0 bytes", .op = JOBQ_OP_KV_SET, .arena_off = a,
	    .arena_len = 7, .arg0 = 0);
	BAD("kv key of 300 bytes", .op = JOBQ_OP_KV_SET,
	    .arena_off = jqt_raw_arena_put(&r, 64, name, 300), .arena_len = 300,
	    .arg0 = 300);
	BAD("kv key length 2^63", .op = JOBQ_OP_KV_SET, .arena_off = a,
	    .arena_len = 7, .arg0 = 1ULL << 63);
	BAD("kv del of an empty key", .op = JOBQ_OP_KV_DEL, .arena_off = a,
	    .arena_len = 0);
	BAD("kv del out of the arena", .op = JOBQ_OP_KV_DEL,
	    .arena_off = r.region_size + 4096, .arena_len = 3);
	BAD("kv incr out of the arena", .op = JOBQ_OP_KV_INCR,
	    .arena_off = UINT64_MAX, .arena_len = 1, .arg0 = 1);
	BAD("kv cas lengths beyond the payload", .op = JOBQ_OP_KV_CAS,
	    .arena_off = a, .arena_len = 7, .arg0 = 4, .arg1 = 1000);
	BAD("kv cas lengths that wrap", .op = JOBQ_OP_KV_CAS, .arena_off = a,
	    .arena_len = 7, .arg0 = 4, .arg1 = UINT64_MAX - 2);

	BAD("lock of kind 99", .op = JOBQ_OP_L_OPEN, .flags = JOBQ_SQE_CREATE,
	    .arena_off = jqt_raw_arena_put(&r, 64, "lk", 2), .arena_len = 2,
	    .arg0 = 99);
	BAD("lock name empty", .op = JOBQ_OP_L_OPEN, .flags = JOBQ_SQE_CREATE,
	    .arena_off = a, .arena_len = 0, .arg0 = JOBQ_WIRE_LOCK);
	BAD("acquire a lock id never handed out", .op = JOBQ_OP_L_ACQUIRE,
	    .id = 0xffffffffu);
	BAD("release a lock id never handed out", .op = JOBQ_OP_L_RELEASE,
	    .id = 0xffffffffu);
	BAD("lock_many with a ragged id list", .op = JOBQ_OP_L_MANY,
	    .arena_off = a, .arena_len = 3);
	{
		uint32_t ids[3] = {0xffffffffu, 0x12345678u, 7};

		BAD("lock_many with ids never handed out", .op = JOBQ_OP_L_MANY,
		    .arena_off = jqt_raw_arena_put(&r, 512, ids, sizeof(ids)),
		    .arena_len = sizeof(ids));
	}
	BAD("lock_many with 2^30 ids", .op = JOBQ_OP_L_MANY, .arena_off = a,
	    .arena_len = 0xfffffffcu);
	BAD("event set on a bad id", .op = JOBQ_OP_EV_SET, .id = 0xfffffff1u);
	BAD("event wait on a bad id", .op = JOBQ_OP_EV_WAIT, .id = 0xfffffff1u);
	BAD("event clear on a bad id", .op = JOBQ_OP_EV_CLEAR,
	    .id = 0xfffffff1u);
#undef BAD

	/* This client is still served normally... */
	s = (struct jobq_sqe){.op = JOBQ_OP_Q_PUT,
			      .id = (uint32_t)qid,
			      .user_data = 77,
			      .arena_off = a,
			      .arena_len = 7,
			      .type = JOBQ_T_BYTES};
	assert_rc(jqt_raw_submit(&r, &s), 0);
	assert_rc(jqt_raw_wait(&r, &cqe, 10), 0);
	assert_int_equal(cqe.user_data, 77);
	assert_rc(cqe.res, 0);
	s = (struct jobq_sqe){.op = JOBQ_OP_NOP, .user_data = 78};
	assert_rc(jqt_raw_submit(&r, &s), 0);
	assert_rc(jqt_raw_wait(&r, &cqe, 10), 0);
	assert_int_equal(cqe.user_data, 78);
	assert_rc(cqe.res, 0);

	/* ...and so is everybody else; the good put arrived intact. */
	assert_serving(m);
	assert_rc(jobq_open(&q, m->dir), 0);
	{
		jobq_obj_t o = {0};

		assert_rc(jobq_get(q, "garbage-q", &o, 5), 0);
		assert_int_equal(o.len, 7);
		assert_memory_equal(o.data, "payload", 7);
		jobq_obj_free(&o);
	}
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.bad_requests >= 30);
	jobq_close(q);
	jqt_raw_close(&r);
}

/* Random entries: whatever they are, the manager survives them. */
static void test_random_sqes(void **state)
{
	struct jqt_mgr *m = *state;
	uint64_t seed = 0xfeedface;
	struct jqt_raw r;
	int answered = 0, dropped = 0;

	assert_rc(jqt_raw_open(m->dir, &r), 0);
	for (int i = 0; i < 3000 && !dropped; i++) {
		struct jobq_sqe s;
		struct jobq_cqe cqe;
		uint64_t *w = (uint64_t *)&s;
		uint64_t pick = jqt_rand(&seed);

		for (size_t k = 0; k < sizeof(s) / 8; k++)
			w[k] = jqt_rand(&seed);
		/* Mostly valid opcodes, so the checks behind the opcode
		 * switch get exercised, never a shutdown. */
		if (pick % 4)
			s.op = (uint8_t)(pick % JOBQ_OP__COUNT);
		if (s.op == JOBQ_OP_SHUTDOWN)
			s.op = JOBQ_OP_NOP;
		/* Half the payloads lie in the arena, with random content. */
		if ((pick >> 8) % 2) {
			uint64_t off = (pick >> 16) % r.arena_size;
			uint8_t junk[64];

			jqt_fill(junk, sizeof(junk), pick);
			s.arena_off = jqt_raw_arena_put(
			    &r, off, junk,
			    off + sizeof(junk) <= r.arena_size ? sizeof(junk)
							       : 0);
			s.arena_len = (uint32_t)((pick >> 32) % 512);
		}
		/* Never wait: the ring must not fill with parked requests. */
		s.timeout_ns = 0;
		while (jqt_raw_submit(&r, &s) == -EBUSY) {
			if (jqt_raw_wait(&r, &cqe, 2) < 0) {
				dropped = 1; /* the manager may drop us */
				break;
			}
			answered++;
		}
		while (jqt_raw_peek(&r, 0, &cqe, 0) == 0) {
			jqt_raw_wait(&r, &cqe, 0);
			answered++;
		}
		if (i % 256 == 0)
			assert_true(jqt_mgr_alive(m));
	}
	{
		struct jobq_cqe cqe;

		while (jqt_raw_wait(&r, &cqe, 0.5) == 0)
			answered++;
	}
	print_message("%d random requests answered%s\n", answered,
		      dropped ? "; then the client was dropped" : "");
	assert_true(jqt_mgr_alive(m));
	assert_serving(m);
	jqt_raw_close(&r);
	assert_serving(m);
}

/* A client that scribbles over its region's header, including the words
 * only the manager writes, and then truncates the region's file. */
static void test_garbled_region(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_raw r;
	struct jobq_sqe s = {.op = JOBQ_OP_NOP, .user_data = 1};
	uint64_t one = 1;

	assert_rc(jqt_raw_open(m->dir, &r), 0);
	r.hdr->magic = 0;
	r.hdr->version = 0xdead;
	r.hdr->sq_entries = 0x7fffffff;
	r.hdr->cq_entries = 3;
	r.hdr->sq_off = UINT64_MAX - 8;
	r.hdr->cq_off = r.region_size * 4;
	r.hdr->arena_off = UINT64_MAX / 3;
	r.hdr->arena_size = UINT64_MAX;
	store_release(&r.hdr->sq.head, 0x12345678u);
	store_release(&r.hdr->cq.tail, 0x9abcdef0u);
	store_release(&r.hdr->cq.head, 0x55555555u);
	/* A tail far ahead of head: a million "entries". */
	store_release(&r.hdr->sq.tail,
		      load_relaxed(&r.hdr->sq.tail) + 1000000u);
	(void)!write(r.sq_efd, &one, sizeof(one));
	jqt_sleep(0.5);
	assert_true(jqt_mgr_alive(m));
	assert_serving(m);
	jqt_raw_close(&r);
	jqt_sleep(0.2);
	assert_serving(m);

	/* Truncate the region under the manager, then ask it to read it. */
	assert_rc(jqt_raw_open(m->dir, &r), 0);
	if (ftruncate(r.region_fd, 0) == 0) {
		print_message("the region could be truncated (not sealed)\n");
		/* Our own mapping is gone past EOF: publish through a fresh
		 * write to the eventfd only; the manager must cope with a
		 * region it can no longer read. */
		(void)!write(r.sq_efd, &one, sizeof(one));
	} else {
		print_message("truncating the region was refused: %s\n",
			      strerror(errno));
		assert_rc(jqt_raw_submit(&r, &s), 0);
	}
	jqt_sleep(0.5);
	assert_true(jqt_mgr_alive(m));
	assert_serving(m);
	/* Do not touch r.region any more: it may be past the file's end. */
	r.region = NULL;
	jqt_raw_close(&r);
	jqt_sleep(0.2);
	assert_serving(m);
}

/* A bad handshake is refused without harm. */
static void test_bad_hello(void **state)
{
	struct jqt_mgr *m = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	assert_true(strlen(m->dir) + sizeof(JOBQ_SOCKET_NAME) + 1 <=
		    sizeof(sa.sun_path));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/%s", 80, m->dir,
		 JOBQ_SOCKET_NAME);
	for (int kind = 0; kind < 4; kind++) {
		struct jobq_hello h = {.magic = JOBQ_HELLO_MAGIC,
				       .version = JOBQ_LAYOUT_VERSION,
				       .pid = getpid()};
		struct jobq_welcome w;
		struct pollfd pf;
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		ssize_t n;

		assert_true(fd >= 0);
		assert_int_equal(
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		if (kind == 0)
			h.version = 999;
		else if (kind == 1)
			h.magic = 0x41414141;
		if (kind == 2)
			n = send(fd, "abc", 3, MSG_NOSIGNAL);
		else if (kind == 3)
			n = 0; /* say nothing, just go away */
		else
			n = send(fd, &h, sizeof(h), MSG_NOSIGNAL);
		assert_true(n >= 0);
		if (kind < 3) {
			pf = (struct pollfd){.fd = fd, .events = POLLIN};
			assert_int_equal(poll(&pf, 1, 10000), 1);
			n = recv(fd, &w, sizeof(w), 0);
			/* Refused: a welcome with an error, or closed. */
			if (n == (ssize_t)sizeof(w)) {
				assert_true(w.status < 0);
				if (kind == 0)
					assert_rc(w.status, JOBQ_EVERSION);
			} else {
				assert_true(n <= 0);
			}
		}
		close(fd);
	}
	assert_serving(m);
}

/*
 * The reserved words of public options structs are room to grow: a caller
 * that sets one gets -EINVAL, and nothing is created or submitted.
 */
static void test_reserved_options(void **state)
{
	struct jqt_mgr *m = *state;
	struct jobq_queue_opts qo = {.max_depth = 4};
	struct jobq_submit_opts so = {0};
	struct jobq_queue_info info;
	uint64_t id = 0;
	jobq_t *q;

	assert_rc(jobq_open(&q, m->dir), 0);
	qo.reserved[5] = 1;
	assert_rc(jobq_queue_open(q, "resv", &qo), -EINVAL);
	assert_rc(jobq_queue_info(q, "resv", &info), -ENOENT);
	qo.reserved[5] = 0;
	assert_rc(jobq_queue_open(q, "resv", &qo), 0);

	so.reserved[0] = 1;
	assert_rc(jobq_submit(q, "echo", JOBQ_T_BYTES, "x", 1, &so, &id),
		  -EINVAL);
	assert_int_equal(id, 0);
	so.reserved[0] = 0;
	assert_rc(jobq_submit(q, "echo", JOBQ_T_BYTES, "x", 1, &so, &id), 0);
	assert_true(id > 0);
	jobq_close(q);
}

static int teardown(void **state)
{
	return jqt_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_object_too_big,
					    setup_small_objects, teardown),
	    cmocka_unit_test_setup_teardown(test_full_store, setup_small_store,
					    teardown),
	    cmocka_unit_test(test_no_manager),
	    cmocka_unit_test_setup_teardown(test_bad_command_line,
					    setup_default, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_sqes, setup_default,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_random_sqes, setup_default,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_garbled_region, setup_default,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_hello, setup_default,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reserved_options,
					    setup_default, teardown),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
