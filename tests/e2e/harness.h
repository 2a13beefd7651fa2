/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what every end-to-end test program shares.
 *
 * Each test program is its own process under a meson timeout. It starts a
 * real jobqd (the path comes from $JOBQ_TEST_JOBQD) in a fresh temporary
 * directory, in its own process group, and stops it again. An atexit hook
 * and handlers for SIGTERM/SIGINT/SIGALRM/SIGHUP kill every manager and
 * child process the test started and remove their directories, so that
 * nothing outlives a test, not even one that meson times out.
 *
 * Child processes forked by a test must leave with _exit() (jqt_fork()
 * does that for them): they must not run cmocka's assertions, which would
 * unwind into the parent's copy of the test runner, nor the parent's atexit
 * cleanup.
 */
#ifndef JOBQ_TEST_HARNESS_H
#define JOBQ_TEST_HARNESS_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobq.h"
#include "proto.h"

/* Exit status that meson counts as "skipped". */
#define JQT_SKIP 77

/* A running manager. */
struct jqt_mgr {
	char dir[PATH_MAX]; /* its instance directory */
	char top[PATH_MAX]; /* the mkdtemp directory holding dir */
	pid_t pid;	    /* jobqd, leader of its own process group */
	int exit_status;    /* wait status once it is gone, else -1 */
	int flags;	    /* JQT_MGR_*, kept for a restart */
};

/* jobqd runs in a network namespace of its own (unshare(CLONE_NEWNET)
 * in the child before exec; the caller checked that it may). */
#define JQT_MGR_NETNS 1

/* Seconds on CLOCK_MONOTONIC, for deadlines and elapsed times. */
double jqt_now(void);

/* Sleep @s seconds (restarted after signals). */
void jqt_sleep(double s);

/*
 * jqt_init - call first in main(): checks that jobqd exists and that
 * io_uring works (else prints why and exits JQT_SKIP), installs the cleanup
 * handlers, and makes output unbuffered.
 */
void jqt_init(void);

/* jqt_init() for programs that also run the jobq command line: skips
 * when $JOBQ_TEST_JOBQ is not an executable. */
void jqt_init_cli(void);

/* Paths of jobqd and jobq from the environment. */
const char *jqt_jobqd_path(void);
const char *jqt_jobq_path(void);

/*
 * jqt_mgr_start - start `jobqd --dir DIR [args...]` in the foreground as a
 * child in its own process group, DIR being a fresh directory, and wait (at
 * most 10 s) until jobq_open() succeeds there. @args is NULL-terminated and
 * may be NULL. Returns 0, or -1 with a message on stderr (the manager is
 * then stopped and its directory removed).
 */
int jqt_mgr_start(struct jqt_mgr *m, const char *const *args);
/* The same with @flags (JQT_MGR_*). */
int jqt_mgr_start_ex(struct jqt_mgr *m, const char *const *args, int flags);

/*
 * jqt_mgr_restart - start a manager again in the same directory, once the
 * previous one has exited (it may have been killed: what it left behind
 * is the new one's to clean up). Returns as jqt_mgr_start().
 */
int jqt_mgr_restart(struct jqt_mgr *m, const char *const *args);

/*
 * jqt_mgr_stop - SIGTERM the manager's group, wait at most 10 s, then
 * SIGKILL it, and remove the directory. Returns the manager's wait status
 * (or the one recorded earlier by jqt_mgr_wait_exit()), -1 when it had to
 * be killed.
 */
int jqt_mgr_stop(struct jqt_mgr *m);

/*
 * jqt_mgr_wait_exit - wait at most @timeout seconds for the manager to exit
 * by itself. Returns 0 once it has (m->exit_status holds its status), or
 * -ETIMEDOUT.
 */
int jqt_mgr_wait_exit(struct jqt_mgr *m, double timeout);

/* jqt_mgr_alive - 1 while the manager process has not exited. */
int jqt_mgr_alive(struct jqt_mgr *m);

/* Exit status 0 and not killed by a signal: what a clean stop returns. */
int jqt_status_ok(int status);

/* Make a fresh empty directory (for tests that need one); NUL on failure. */
int jqt_tmpdir(char *buf, size_t len);

/* Remove a directory tree; missing is fine. */
void jqt_rmtree(const char *path);

/*
 * cmocka setup/teardown that start and stop a default manager; *state is
 * the struct jqt_mgr. Teardown fails the test when the manager did not
 * stop cleanly (crashed, or a sanitizer report made it exit non-zero).
 */
int jqt_setup(void **state);
int jqt_teardown(void **state);

/* The manager started by jqt_setup() (for use in forked children). */
extern struct jqt_mgr *jqt_cur;

/* jobq_open() on @m, failing the process (exit 99) when it does not work:
 * for use in children, where a cmocka assertion cannot be used. */
jobq_t *jqt_open_or_die(const struct jqt_mgr *m);

/* ------------------------------------------------------------------------
 * Child processes.
 */

/*
 * jqt_fork - fork a child that runs fn(idx, arg) and _exit()s with its
 * return value. The pid is remembered so cleanup can kill it. Returns the
 * pid, or -1.
 */
pid_t jqt_fork(int (*fn)(int idx, void *arg), int idx, void *arg);

/* jqt_fork_n - @n children, idx 0..n-1, pids in @pids. Returns 0 or -1. */
int jqt_fork_n(int n, int (*fn)(int idx, void *arg), void *arg, pid_t *pids);

/*
 * jqt_wait_all - reap @n children within @timeout seconds. Wait statuses go
 * to @status (may be NULL). Children still running at the deadline are
 * SIGKILLed and reaped; their status shows the kill. Returns the number of
 * children that did not exit with status 0 (timed-out ones included).
 */
int jqt_wait_all(pid_t *pids, int n, double timeout, int *status);

/* Reap one child within @timeout s; -ETIMEDOUT leaves it running. */
int jqt_wait_pid(pid_t pid, double timeout, int *status);

/*
 * Have cleanup SIGKILL @pid (and its group) too: for processes that are not
 * our children, like a daemonized jobqd. Untrack once it is gone.
 */
void jqt_track_pid(pid_t pid);
void jqt_untrack_pid(pid_t pid);

/* SIGKILL one child and reap it. */
void jqt_kill_child(pid_t pid);

/*
 * A barrier and counters shared by forked children: memory mapped
 * MAP_SHARED before the fork. jqt_shared() returns zeroed memory of @size
 * bytes (never freed: it goes with the process).
 */
void *jqt_shared(size_t size);

struct jqt_barrier {
	_Atomic uint32_t count;
	_Atomic uint32_t gen;
	uint32_t n;
};

void jqt_barrier_init(struct jqt_barrier *b, uint32_t n);

/* Wait until n parties arrived; 0, or -ETIMEDOUT after @timeout s. */
int jqt_barrier_wait(struct jqt_barrier *b, double timeout);

/* ------------------------------------------------------------------------
 * Running the jobq command line.
 */
struct jqt_out {
	int code;  /* exit code; 128 + signal when killed; -1 on timeout */
	char *out; /* stdout, NUL-terminated (malloc'd) */
	size_t out_len;
	char *err; /* stderr, NUL-terminated */
	size_t err_len;
};

/*
 * jqt_run - run @prog with @argv (argv[0] included, NULL-terminated), feed
 * it @in (@in_len bytes, may be NULL: stdin then reads as empty), capture
 * its output, and wait at most @timeout seconds (then SIGKILL: code -1).
 * Returns 0 or -1 when it could not be started. Free with jqt_out_free().
 */
int jqt_run(const char *prog, const char *const *argv, const void *in,
	    size_t in_len, double timeout, struct jqt_out *o);

/*
 * jqt_cli - run `jobq --dir m->dir ARGS...` (a NULL-terminated list of
 * strings) with 15 s to finish. @m may be NULL: no --dir is added.
 */
int jqt_cli(const struct jqt_mgr *m, struct jqt_out *o, const void *in,
	    size_t in_len, ...) __attribute__((sentinel));

/* In a test with `m` in scope: run `jobq ARGS...` and assert it ran. */
#define CLI(o, ...)                                                            \
	assert_int_equal(jqt_cli(m, (o), NULL, 0, __VA_ARGS__, NULL), 0)
#define CLI_IN(o, in, len, ...)                                                \
	assert_int_equal(jqt_cli(m, (o), (in), (len), __VA_ARGS__, NULL), 0)

/*
 * jqt_json_object - parse stdout of a run as one JSON object (json_decref()
 * it). Returns NULL, with what was wrong on stderr, when it is not JSON or
 * not an object.
 */
struct json_t *jqt_json_object(const struct jqt_out *o);

void jqt_out_free(struct jqt_out *o);

/* Number of lines in a NUL-terminated text (a final line without \n
 * counts). */
int jqt_count_lines(const char *s);

/* Number of lines of file @path (lines up to 1 KiB) that contain @what;
 * 0 when it cannot be read. */
int jqt_file_count(const char *path, const char *what);

/* ------------------------------------------------------------------------
 * A raw connection, made the way the library makes one: the handshake of
 * proto.h over the control socket, the store mapped read-only and the
 * client region read-write. For tests that speak the ring protocol
 * directly (garbage entries, dying with undelivered objects).
 */
struct jqt_raw {
	int sock;
	int store_fd, region_fd, sq_efd, cq_efd;
	const uint8_t *store;
	size_t store_size;
	uint8_t *region;
	size_t region_size;
	struct jobq_region_hdr *hdr;
	struct jobq_sqe *sqes;
	struct jobq_cqe *cqes;
	uint32_t sq_entries, cq_entries;
	uint64_t arena_off, arena_size;
	struct jobq_welcome welcome;
};

/* Returns 0, or -errno / the welcome's status with a message on stderr. */
int jqt_raw_open(const char *dir, struct jqt_raw *r);
void jqt_raw_close(struct jqt_raw *r);

/*
 * jqt_raw_submit - copy @sqe into the next submission slot, publish it and
 * wake the manager. Returns 0, or -EBUSY when the ring is full.
 */
int jqt_raw_submit(struct jqt_raw *r, const struct jobq_sqe *sqe);

/*
 * jqt_raw_peek - wait at most @timeout s until the completion ring holds
 * more than @nth unread entries, and copy entry @nth (0: the oldest unread)
 * without consuming it. Returns 0 or -ETIMEDOUT.
 */
int jqt_raw_peek(struct jqt_raw *r, uint32_t nth, struct jobq_cqe *cqe,
		 double timeout);

/* jqt_raw_wait - jqt_raw_peek(0) and consume the entry (waking the
 * manager when it asked for that with WANT_HEAD). */
int jqt_raw_wait(struct jqt_raw *r, struct jobq_cqe *cqe, double timeout);

/*
 * jqt_raw_arena_put - copy @len bytes into the arena at @at (relative to
 * the arena) and return the region offset to put in an sqe.
 */
uint64_t jqt_raw_arena_put(struct jqt_raw *r, uint64_t at, const void *p,
			   size_t len);

/*
 * jqt_raw_q_open - open (create) queue @name through the ring. Returns the
 * queue id, or a negative result.
 */
int64_t jqt_raw_q_open(struct jqt_raw *r, const char *name);

/* ------------------------------------------------------------------------
 * Small deterministic generator for payloads (xorshift64*).
 */
static inline uint64_t jqt_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

void jqt_fill(void *buf, size_t len, uint64_t seed);

/* ------------------------------------------------------------------------
 * Jobs.
 */

/* cmocka setup like jqt_setup(), with `jobqd --workers 2`. */
int jqt_setup_workers(void **state);

/* The job's state (enum jobq_job_state) from the store, or -errno. */
int jqt_job_state(jobq_t *q, uint64_t id);

/* Poll the store until job @id is in @state: 0, or -ETIMEDOUT. */
int jqt_job_wait_state(jobq_t *q, uint64_t id, int state, double timeout);

/*
 * jqt_proc_children - the processes whose parent is @ppid, from /proc:
 * up to @max pids and their state letters ('Z': zombie) into @pids and
 * @states (either may be NULL). Returns how many there are (may exceed
 * @max), or -errno.
 */
int jqt_proc_children(pid_t ppid, pid_t *pids, char *states, int max);

/* ------------------------------------------------------------------------
 * Checks.
 *
 * assert_rc: for the test process (needs cmocka.h): the value of @expr
 * must be @want; on failure both are printed with their jobq_strerror()
 * text.
 *
 * CK: for forked children, which must not use cmocka: print the failed
 * condition and return 1 from the child's function.
 */
#define assert_rc(expr, want)                                                  \
	do {                                                                   \
		long long rc_ = (long long)(expr), want_ = (long long)(want);  \
		if (rc_ != want_) {                                            \
			print_error("%s:%d: %s returned %lld (%s), expected "  \
				    "%lld (%s)\n",                             \
				    __FILE__, __LINE__, #expr, rc_,            \
				    jobq_strerror((int)rc_), want_,            \
				    jobq_strerror((int)want_));                \
			fail();                                                \
		}                                                              \
	} while (0)

#define CK(cond)                                                               \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "child %d: %s:%d: check failed: %s\n", \
				(int)getpid(), __FILE__, __LINE__, #cond);     \
			return 1;                                              \
		}                                                              \
	} while (0)

/* CK_RC: like CK for a call that must return @want; prints what it got. */
#define CK_RC(expr, want)                                                      \
	do {                                                                   \
		long long rc_ = (long long)(expr), want_ = (long long)(want);  \
		if (rc_ != want_) {                                            \
			fprintf(stderr,                                        \
				"child %d: %s:%d: %s returned %lld "           \
				"(%s), expected %lld\n",                       \
				(int)getpid(), __FILE__, __LINE__, #expr, rc_, \
				jobq_strerror((int)rc_), want_);               \
			return 1;                                              \
		}                                                              \
	} while (0)

#endif
