/* SPDX-License-Identifier: MIT */
/*
 * jobqd.h - the manager's own state, shared by its source files.
 *
 * jobqd is single-threaded: one io_uring event loop (loop.c) owns every
 * client, and the op handlers (queues.c, kv.c, locks.c) run inside it. No
 * structure here needs a lock. The store (store.c) is written by this
 * process only; clients map it read-only.
 */
#ifndef JOBQD_H
#define JOBQD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heap.h"
#include "internal.h"
#include "journal.h"

/* ------------------------------------------------------------------------
 * A small intrusive doubly linked list (circular, with a head node).
 */
struct jobq__list {
	struct jobq__list *next, *prev;
};

static inline void jobq__list_init(struct jobq__list *l)
{
	l->next = l->prev = l;
}

static inline bool jobq__list_empty(const struct jobq__list *l)
{
	return l->next == l;
}

static inline void jobq__list_add_tail(struct jobq__list *n,
				       struct jobq__list *head)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

/* Unlinks @n and leaves it as an empty list, so a second del is harmless. */
static inline void jobq__list_del(struct jobq__list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

#define jobq__entry(p, type, member)                                           \
	((type *)((char *)(p)-offsetof(type, member)))

/* ------------------------------------------------------------------------
 * Options (options.c fills them, everyone reads them).
 */
struct jobq__opts {
	char dir[PATH_MAX];
	uint64_t memory;
	uint64_t max_object;
	uint32_t max_clients;
	const char *group; /* NULL: no --group */
	gid_t gid;
	bool daemon;
	const char *log;
	bool log_syslog; /* --log syslog */
	int log_level;	 /* --log-level: JOBQ__LOG_* */
	bool verbose;
	/* Jobs and supervision. */
	uint32_t max_jobs;	   /* 0: memory / 1024 */
	uint32_t max_queues;	   /* --max-queues; 0: the default */
	uint32_t max_locks;	   /* --max-locks; 0: the default */
	uint32_t max_types;	   /* --max-types; 0: the default */
	uint64_t client_max_bytes; /* --client-max-bytes; 0: no quota */
	uint32_t client_max_jobs;  /* --client-max-jobs; 0: the default */
	uint32_t client_max_held;  /* --client-max-locks-held; 0: default */
	uint64_t keep_ns;	   /* --keep: how long finished jobs stay */
	uint32_t workers;	   /* --workers N: built-in worker processes */
	bool workers_nondaemon;	   /* --workers-nondaemon */
	bool busy_poll;		   /* --busy-poll */
	uint64_t compact_min;	   /* --compact-min: bytes of journal before
				    * a snapshot compacts it */
	uint32_t worker_concurrency; /* --worker-concurrency: 0 = 1 */
	const char **worker_cmds;    /* --worker CMD, each run by sh -c */
	uint32_t nworker_cmds;
	uint64_t grace_ns; /* --grace: shutdown drain period */
	/* --rejoin-grace: how long a job running when the manager died
	 * waits for its worker to come back (see jobs.c's place()) */
	uint64_t rejoin_grace_ns;
	const char *http; /* --http [ADDR:]PORT, NULL: none */
	/* Durability. */
	const char *journal; /* --journal FILE; NULL: DIR/journal */
	int fsync_mode;	     /* --fsync: enum jobq__fsync_mode */
	/* More than one machine. */
	const char *backend; /* --backend URL (libpq); NULL: none */
	bool migrate;	     /* --migrate: migrate the backend and exit */
};

/* jobq__parse_opts - @o from the configuration file and the command line
 * (options.c says how); a bad one ends the program through
 * jobq__opts_exit(2), --help and --version through jobq__opts_exit(0). */
void jobq__parse_opts(int argc, char **argv, struct jobq__opts *o);
/* exit(@status), unless a test links its own. */
__attribute__((noreturn)) void jobq__opts_exit(int status);

/* ------------------------------------------------------------------------
 * The store (store.c).
 */
struct jobq__store {
	int fd;	   /* the memfd, read-write */
	int ro_fd; /* a read-only reopening, sent to clients */
	uint8_t *base;
	uint64_t size;
	struct jobq_store_hdr *hdr;
	struct jobq_queue_rec *queues;
	struct jobq_lock_rec *locks;
	struct jobq_kv_slot *kv;
	struct jobq__heap *heap;
	struct jobq_job_rec *jobs;	 /* [hdr->max_jobs] */
	_Atomic uint64_t *jobidx;	 /* [hdr->jobidx_slots] */
	struct jobq_type_rec *types;	 /* [hdr->max_types] */
	struct jobq_worker_rec *workers; /* [max_clients], by client slot */
	struct jobq_client_rec *clients; /* [max_clients], by client slot */
	bool freed; /* heap space was given back since last look */
};

/* ------------------------------------------------------------------------
 * Waiters: requests that could not finish at once. Each is on its client's
 * list (so a dying client drops them), on the list of the object it waits
 * for (FIFO order), and in the timer heap when it has a deadline.
 */
enum jobq__wait_kind {
	JOBQ__W_GET,
	JOBQ__W_PUT,
	JOBQ__W_JOIN,
	JOBQ__W_LOCK, /* L_ACQUIRE and L_MANY */
	JOBQ__W_EVENT,
	JOBQ__W_JOB,	 /* JOB_WAIT (jobs.c) */
	JOBQ__W_RESERVE, /* W_RESERVE (jobs.c) */
	JOBQ__W_TIMER,	 /* a module's own timer, never a client's request */
};

#define JOBQ__MANY_MAX 64

struct jobq__client;

struct jobq__waiter {
	struct jobq__list cnode; /* on the client's waiters */
	struct jobq__list
	    onode; /* on the queue's, lock table's or event's list */
	struct jobq__client *c;
	struct jobq_sqe sqe; /* the request, copied once and validated */
	uint64_t deadline;   /* CLOCK_MONOTONIC ns; 0: none */
	int64_t tidx;	     /* index in the timer heap, -1: none */
	int kind;	     /* enum jobq__wait_kind */
	uint32_t nids;	     /* locks waited for (sorted, no duplicates) */
	uint32_t ids[JOBQ__MANY_MAX];
};

/* ------------------------------------------------------------------------
 * Clients (loop.c).
 */
enum jobq__client_state {
	JOBQ__C_FREE = 0,
	JOBQ__C_HELLO, /* accepted, waiting for struct jobq_hello */
	JOBQ__C_LIVE,
	JOBQ__C_DEAD, /* gone; the slot waits for its io_uring requests */
};

/* An object handed out by a get and not yet acknowledged (cq head past). */
struct jobq__handed {
	uint64_t item; /* store offset of struct jobq_item */
	uint32_t qid;
	uint32_t pos; /* cq position of its completion */
};

struct jobq__client {
	uint32_t slot;
	uint32_t gen;	   /* bumped when the slot is freed */
	int state;	   /* enum jobq__client_state */
	uint32_t inflight; /* io_uring requests that name this slot */
	int sock, pidfd, sq_efd, cq_efd, region_fd;
	uint64_t drop_by; /* HELLO, or LIVE with sock_gone: dropped at this
			   * CLOCK_MONOTONIC ns */
	bool sock_gone;	  /* LIVE: its socket ended, its pidfd not yet */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char name[33];

	uint8_t *region;
	uint64_t region_size;
	struct jobq_region_hdr *hdr;
	struct jobq_sqe *sq;
	struct jobq_cqe *cq;
	uint64_t arena_off, arena_size;
	uint32_t sq_entries, cq_entries;

	uint32_t sq_head; /* ours: what we have consumed */
	uint32_t cq_tail; /* ours: what we have made (pub_tail: published) */
	uint32_t cq_gen;  /* completions made: cq_tail + overflow */
	/* What its cq tail says: entries below cq_tail wait for the journal
	 * commits in hold (at most two: the one in flight, the next). */
	uint32_t pub_tail;
	uint32_t nhold;
	struct {
		uint32_t tail; /* entries below it wait for commit id */
		uint64_t id;
	} hold[2];

	struct jobq__list waiters;
	struct jobq__handed *handed; /* FIFO in [hhead, hhead + nhanded) */
	uint32_t hhead, nhanded, hcap;
	struct jobq_cqe *ovf; /* completions waiting for cq room, FIFO */
	uint32_t ohead, novf, ocap;

	bool wake;		 /* on the wake list this turn */
	bool posted;		 /* got completions this turn */
	bool sq_moved;		 /* we took sq entries this turn */
	bool sq_stuck;		 /* sq entries wait for cq room */
	bool want_head;		 /* we sleep with WANT_HEAD set in its cq */
	uint32_t head_seen;	 /* its cq head as the last sweep read it */
	bool broken;		 /* to be dropped at the end of the turn */
	bool live_link;		 /* on the live list */
	struct jobq__list lnode; /* on the live list */
	struct jobq__list wnode; /* on the wake list */

	struct jobq__session *sess; /* session.c: its requests' answers */
	bool said_bye;		    /* it closed its handle: no reconnect */

	/* Buffers io_uring writes into. */
	uint64_t efd_buf;
	uint8_t recv_buf[16];
	struct jobq_hello hello;
};

/* ------------------------------------------------------------------------
 * The manager.
 */
/* Jobs a built-in worker runs at once without --worker-concurrency. */
#define JOBQ__BUILTIN_CONCURRENCY 16

struct jobq__mgr {
	struct jobq__opts o;
	struct jobq__store st;
	struct jobq__client *clients; /* [o.max_clients] */
	uint32_t nlive;
	bool stopping;
	bool stop_now;
	/* Turns of the loop so far (0: no loop runs): what a module reads of
	 * the clocks may be kept for the rest of the turn. */
	uint64_t turn;
	/* Set by jobq__jlog(.., true): the next answer that is not an object
	 * acknowledges what was just journaled, so it waits for the commit
	 * and fails with it (loop.c reads and clears it). */
	bool jdep;
};

extern struct jobq__mgr jobq__m;

/* Marks what an op handler returns when it has posted its own completion
 * or parked the request as a waiter. */
#define JOBQ__NOREPLY INT32_MIN

static inline void *jobq__ptr(uint64_t off)
{
	return jobq__m.st.base + off;
}

static inline struct jobq_store_hdr *jobq__hdr(void)
{
	return jobq__m.st.hdr;
}

#define jobq__count(field)                                                     \
	store_relaxed(&jobq__hdr()->counters.field,                            \
		      load_relaxed(&jobq__hdr()->counters.field) + 1)

/* loop.c: the event loop. @lfd listens, @sfd is a signalfd for SIGTERM,
 * SIGINT and SIGHUP; @on_hup runs on SIGHUP. init returns 0 or -errno with
 * a message in @err; run returns 0 after a graceful stop. */
int jobq__loop_init(int lfd, int sfd, void (*on_hup)(void), char *err,
		    size_t errlen);
int jobq__loop_run(void);
void jobq__loop_fini(void);
/* Counts a refused ring entry and returns @err. */
int jobq__bad(int err);

/*
 * main.c: log a line at @level, shown when --log-level (default info;
 * --verbose is debug) admits it. Levels are ordered so that the calls
 * written as 0 (info) and 1 (debug) keep their meaning.
 */
enum {
	JOBQ__LOG_ERROR = -2, /* the manager cannot do what it promised */
	JOBQ__LOG_WARN = -1,  /* something was refused, dropped or retried */
	JOBQ__LOG_INFO = 0,   /* start, stop, clients that died, workers */
	JOBQ__LOG_DEBUG = 1,  /* every client and object */
};
void jobq__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * http.c: --http. jobq__http_listen binds @spec ("PORT", "ADDR:PORT" or
 * "[ADDR6]:PORT"; a bare port is loopback) and writes the address to
 * DIR/jobqd.http; 0, or -errno with a message in @err. jobq__http_start
 * starts the serving thread (a client of this manager) once the loop can
 * answer it; jobq__http_stop stops and joins it. Both are no-ops without
 * --http.
 */
int jobq__http_listen(const char *spec, const char *dir, char *err,
		      size_t errlen);
int jobq__http_start(void);
void jobq__http_stop(void);

/* notify.c: send @state ("READY=1", "STOPPING=1") to $NOTIFY_SOCKET, the
 * service manager's, when there is one. */
void jobq__notify(const char *state);

/* store.c */
int jobq__store_create(const struct jobq__opts *o, char *err, size_t errlen);
void jobq__store_destroy(void);
/* Heap through the store: keeps hdr->heap_used current; 0 when full. */
uint64_t jobq__alloc(uint64_t size);
void jobq__free(uint64_t off);

/* loop.c: completions and waiters, for the op handlers. */
void jobq__post(struct jobq__client *c, uint64_t user_data, int32_t res,
		uint32_t flags, uint64_t val, uint32_t len, uint32_t type);
/* Hands the object at @item (of queue @qid) to @c in a completion. */
void jobq__hand(struct jobq__client *c, uint64_t user_data, uint32_t qid,
		uint64_t item, bool more);
/*
 * jobq__wait_new - park request @s of @c. Returns the waiter (linked on
 * the client and the timer heap; the caller links onode) or NULL, with
 * *err set: JOBQ_ECLOSED while shutting down, -ENOMEM.
 */
struct jobq__waiter *jobq__wait_new(struct jobq__client *c,
				    const struct jobq_sqe *s, int kind,
				    int *err);
/* Completes @w with a result, unlinks it everywhere and frees it. */
void jobq__wait_done(struct jobq__waiter *w, int32_t res, uint64_t val);
/* Unlinks and frees @w without a completion (its client is gone). */
void jobq__wait_free(struct jobq__waiter *w);
/* A pointer into @c's arena at offset @off (validated earlier). The client
 * can change those bytes at any time: copy what you use once, then check
 * the copy. */
const uint8_t *jobq__arena(struct jobq__client *c, uint64_t off);
bool jobq__client_alive(const struct jobq__client *c);

/* queues.c */
int jobq__op_q_open(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_put(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_put_many(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_get(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_task_done(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_join(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_set(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_remove(struct jobq__client *c, const struct jobq_sqe *s);
void jobq__queues_init(uint32_t max_queues);
void jobq__queues_fini(void);
/* The record of the queue clients call @id: 0, -EINVAL (no such record) or
 * -ESTALE (the queue was removed). */
int jobq__queue_index(uint32_t id, uint32_t *qid);
/* Detach a queue waiter from its queue (before it is completed/freed). */
void jobq__queue_wait_detach(struct jobq__waiter *w);
/* Puts an unacknowledged object back at the head of its queue. */
void jobq__queue_requeue(uint32_t qid, uint64_t item);
/* Gives back the memory of an object of queue @qid that was consumed;
 * its take is journaled by the next jobq__queue_takes_flush(), which the
 * caller makes before its turn ends. */
void jobq__queue_item_free(uint32_t qid, uint64_t item);
void jobq__queue_takes_flush(void);
/* Serve waiting putters of every queue after heap space came back. */
void jobq__queues_kick(void);
/* Serve queue @qid's waiters: objects to its getters and room to its
 * putters, oldest first. */
void jobq__queue_serve(uint32_t qid);
/* Whether some putter waits (so freed heap space matters at once). */
bool jobq__queues_blocked(void);

/* kv.c */
int jobq__op_kv_set(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_kv_del(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_kv_incr(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_kv_cas(struct jobq__client *c, const struct jobq_sqe *s);

/* queues.c: replay and snapshot (journal_mgr.c calls these). */
int jobq__queues_replay(uint16_t type, const uint8_t *p, uint32_t len);
/* After the last record: link the objects that were not taken into their
 * queues, oldest first. Returns 0 or -ENOMEM. */
int jobq__queues_replay_done(void);
int jobq__queues_snapshot(struct jobq__journal *j);

/* jobs.c: replay and snapshot. After the last record, replay_done
 * places every job as its state says (running ones go back to ready);
 * jobs_start, once the loop runs, arms the jobs' timer. */
int jobq__jobs_replay(uint16_t type, const uint8_t *p, uint32_t len);
int jobq__jobs_replay_done(void);
void jobq__jobs_start(void);
int jobq__jobs_snapshot(struct jobq__journal *j);

/* kv.c: replay and snapshot. */
int jobq__kv_replay(uint16_t type, const uint8_t *p, uint32_t len);
int jobq__kv_snapshot(struct jobq__journal *j);
/*
 * kv.c for kv_pg.c (--backend): a blob with @key and @val (0 when the
 * heap is full; jobq__free() it unless installed); whether @key may be
 * stored (0, -EINVAL, JOBQ_ELIMIT); install @blob as its key's value (0,
 * or -EINVAL or JOBQ_ELIMIT and the blob is still the caller's); remove
 * @key (0, -ENOENT).
 */
uint64_t jobq__kv_blob(const uint8_t *key, uint32_t klen, const uint8_t *val,
		       uint32_t vlen, uint32_t type);
int jobq__kv_room(const uint8_t *key, uint32_t klen);
int jobq__kv_install(uint64_t blob);
int jobq__kv_remove(const uint8_t *key, uint32_t klen);
#ifdef JOBQ_HAVE_PG
/* kv_pg.c: the kv requests with --backend (kv.c's handlers hand them
 * over), and what pg_mgr.c tells it. */
int jobq__kv_pg_set(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__kv_pg_del(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__kv_pg_incr(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__kv_pg_cas(struct jobq__client *c, const struct jobq_sqe *s);

/*
 * queues_pg.c: queues of objects with --backend (queues.c's put, put_many
 * and get hand them over, with the record @qid of the request's queue).
 * put answers from the statement's callback; fetch asks PostgreSQL for
 * objects for queue @qid's getters (parked already); acked: the object
 * of row @id was consumed here; settle: queue @qid's objects that no
 * getter here took go back.
 */
int jobq__queues_pg_put(struct jobq__client *c, const struct jobq_sqe *s,
			uint32_t qid);
void jobq__queues_pg_fetch(uint32_t qid);
void jobq__queues_pg_acked(uint64_t id);
void jobq__queues_pg_settle(uint32_t qid);
/* Room may have come in queue @qid: its oldest putter here is sent again.
 * The rest hand over requests as put does (with the record @qid of the
 * request's queue, and what queues.c did already): task_done and join
 * count in PostgreSQL; limits answers @res once PostgreSQL holds the
 * record's new limits; remove deletes the rows of queue @name, whose
 * record here is gone with @dropped objects, and answers how many in
 * all. */
void jobq__queues_pg_room(uint32_t qid);
int jobq__queues_pg_task_done(struct jobq__client *c, const struct jobq_sqe *s,
			      uint32_t qid);
int jobq__queues_pg_join(struct jobq__client *c, const struct jobq_sqe *s,
			 uint32_t qid);
int jobq__queues_pg_limits(struct jobq__client *c, const struct jobq_sqe *s,
			   uint32_t qid, int32_t res);
int jobq__queues_pg_remove(struct jobq__client *c, const struct jobq_sqe *s,
			   const char *name, uint64_t dropped);
/* pg_mgr.c tells it: a notification on JOBQ__PG_QUEUE_CHANNEL (the
 * queue's name), the connection came up, a turn ends, a second passed. */
#define JOBQ__PG_QUEUE_CHANNEL "jobq_queue"
void jobq__queues_pg_notify(const char *name);
/* A notification on JOBQ__PG_QEVENT_CHANNEL: a letter, then the queue's
 * name (queues_pg.c says which letters). */
#define JOBQ__PG_QEVENT_CHANNEL "jobq_queue_event"
void jobq__queues_pg_event(const char *payload);
void jobq__queues_pg_up(void);
void jobq__queues_pg_turn(void);
void jobq__queues_pg_tick(void);
/* queues.c for queues_pg.c: the record of queue @name (UINT32_MAX: none);
 * what queue @qid's live getters ask for in all; answer its getters that
 * asked with timeout 0 (-EAGAIN); link @k objects (row ids @ids) at its
 * tail, returning how many the heap took; unlink up to @max objects from
 * its head (their ids into @ids, their memory freed). */
uint32_t jobq__queue_by_name(const char *name);
uint64_t jobq__queue_getters_want(uint32_t qid);
void jobq__queue_getters_once(uint32_t qid);
uint32_t jobq__queue_inject(uint32_t qid, uint32_t k, const uint32_t *lens,
			    const uint32_t *types, const uint8_t *const *datas,
			    const int64_t *ids);
uint32_t jobq__queue_take_back(uint32_t qid, int64_t *ids, uint32_t max);
/*
 * And for its putters and joiners: park request @s of @c as a putter
 * (@kind JOBQ__W_PUT; first in line with @front) or a joiner
 * (JOBQ__W_JOIN) of queue @qid, with @timeout_ns instead of its own (0 or
 * -errno); the oldest putter whose client lives, or NULL; whether joiners
 * wait; answer every joiner @res; remove queue @name as a removal on
 * another host asks (0, -ENOENT, or -EBUSY while jobs name it); the
 * record of queue @name, made for it (owned by no client) when there is
 * none and at least half the table is free, else UINT32_MAX.
 */
int jobq__queue_park(struct jobq__client *c, const struct jobq_sqe *s,
		     uint32_t qid, int kind, int64_t timeout_ns, bool front);
struct jobq__waiter *jobq__queue_first_putter(uint32_t qid);
bool jobq__queue_has_joiners(uint32_t qid);
void jobq__queue_joined(uint32_t qid, int32_t res);
int jobq__queue_drop(const char *name);
uint32_t jobq__queue_adopt(const char *name);
#endif

/* journal_mgr.c: the journal of this manager. */
/* Opens and replays it (before the loop runs). 0, or -errno with a
 * message in @err. */
int jobq__durable_open(char *err, size_t errlen);
void jobq__durable_close(void);
/* Logs what the replay found (called once the manager is ready). */
void jobq__durable_log_start(void);
/*
 * jobq__jlog - journal a record of @type with the @n pieces of @iov. With
 * @ack the answer posted next for this request (not an object) waits for
 * the commit and fails with its error. Never fails by itself: an error
 * (no memory) fails the journal, and the commit reports it.
 */
void jobq__jlog(uint16_t type, const struct iovec *iov, int n, bool ack);
/*
 * jobq__jlog_reserve - the same, built in place: a record of @type with
 * @plen bytes of payload for the caller to write at the pointer returned,
 * then jobq__jlog_seal() (@ack as for jobq__jlog()) before anything else
 * is journaled. NULL when there is no journal, or the record could not be
 * made (the journal is then failed, as by jobq__jlog()).
 */
uint8_t *jobq__jlog_reserve(uint16_t type, uint64_t plen);
void jobq__jlog_seal(bool ack);
/*
 * jobq__jlog_lazy - journal a record that no answer waits for (a take the
 * getter acknowledged): it goes to the file with the next commit that
 * something else asks for, before the loop sleeps, or once enough such
 * records wait; meanwhile answers are not held for it.
 */
void jobq__jlog_lazy(uint16_t type, const struct iovec *iov, int n);
/* A request was handled (--fsync always cuts a unit of its records). */
void jobq__durable_request_done(void);
/*
 * jobq__durable_commit - end of a turn: begin a commit of what was
 * journaled (or the snapshot that repairs or compacts the journal) unless
 * one is in flight. jobq__loop_committed() says when it ended.
 */
void jobq__durable_commit(void);
/* The loop goes to sleep: begin a commit of the lazy records that wait.
 * Returns whether one began (a turn then publishes what it released). */
bool jobq__durable_flush(void);
/* Whether a commit is in flight. */
bool jobq__durable_busy(void);
/* The commit that will hold the records journaled now. */
uint64_t jobq__durable_next_id(void);
/* The commit that must end before a completion made now is published;
 * at most jobq__durable_done_id() when none must. */
uint64_t jobq__durable_need(void);
/* The last commit that ended (they end in order). */
uint64_t jobq__durable_done_id(void);
/* Whether commits go through the loop's io_uring (else pwritev(), now). */
void jobq__durable_use_ring(bool on);
/* The IO tagged @tag of the commit in flight completed with @res. */
void jobq__durable_io_done(uint32_t tag, int res);
/* loop.c: submit @n linked journal IOs; their results go to
 * jobq__durable_io_done(). */
void jobq__loop_journal_io(const struct jobq__jop *op, int n);
/* loop.c: commit @id ended with @err (0 or -errno): the completions that
 * waited for it are published, those that acknowledge its records failed
 * with @err. */
void jobq__loop_committed(uint64_t id, int err);
/*
 * jobq__durable_want_sync - the request being handled is --durable: its
 * answer waits for a sync of the journal, whatever --fsync says. Call it
 * before the request changes anything. Returns 0, -EOPNOTSUPP when the
 * journal is on tmpfs (a sync reaches no disk), or the journal's error
 * while it is failed.
 */
int jobq__durable_want_sync(void);
/* Whether the journal is failed (the loop then wakes to retry). */
bool jobq__durable_failed(void);
/* loop.c: calls @fn for every object handed out and not acknowledged. */
void jobq__handed_each(void (*fn)(void *arg, uint32_t qid, uint64_t item),
		       void *arg);

/*
 * session.c: answers of changing requests, so that a resent request
 * (JOBQ_SQE_RESENT) applies once.
 *
 * jobq__session_attach - the hello of @c names session h->session (0:
 * none): find or create it, drop the answers below h->floor. Returns 0,
 * or -errno with a message (another user's session, no memory).
 * jobq__session_detach - @c went away: with @left (it said bye) the
 * session ends, else it waits for a reconnect for its window.
 * jobq__session_lookup - the answer to request @rid of @c's session, if
 * one is kept: true with *res and *val.
 * jobq__session_answered - @c is being answered @res/@val for request
 * @rid, an op of jobq__session_op_changes(), in completion @pos: keep and
 * journal it (successes only).
 * jobq__session_reap - @c consumed completions up to @head: forget their
 * answers.
 */
int jobq__session_attach(struct jobq__client *c, const struct jobq_hello *h,
			 char *msg, size_t msglen);
void jobq__session_detach(struct jobq__client *c, bool left);
bool jobq__session_op_changes(uint8_t op);
bool jobq__session_lookup(struct jobq__client *c, uint64_t rid, int32_t *res,
			  uint64_t *val);
void jobq__session_answered(struct jobq__client *c, uint64_t rid, int32_t res,
			    uint64_t val, uint64_t pos);
void jobq__session_reap(struct jobq__client *c, uint32_t head);
int jobq__sessions_replay(uint16_t type, const uint8_t *p, uint32_t len);
void jobq__sessions_replay_done(void);
int jobq__sessions_snapshot(struct jobq__journal *j);
void jobq__sessions_fini(void);

/* locks.c */
int jobq__op_l_open(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_l_acquire(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_l_release(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_l_many(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_ev_set(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_ev_clear(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_ev_wait(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__locks_init(uint32_t max_locks);
void jobq__locks_fini(void);
void jobq__lock_wait_detach(struct jobq__waiter *w);
/* Releases everything @c holds and grants the freed locks to waiters. */
void jobq__locks_drop_client(struct jobq__client *c);
/* The lock timer fired: holders whose lease ran out lose their units. */
void jobq__locks_timer(void);
bool jobq__locks_held_by(const struct jobq__client *c);
#ifdef JOBQ_HAVE_PG
/* --backend (pg_mgr.c calls these): the connection came up or went down
 * (every lock held here is lost with it), a NOTIFY on
 * JOBQ__PG_LOCK_CHANNEL named lock @name, the end of a loop turn (the
 * advisory locks follow the table: locks.c). */
void jobq__locks_pg_state(bool up);
void jobq__locks_pg_notify(const char *name);
/* A host published its holders and waiters (JOBQ__PG_LOCK_LIST_CHANNEL;
 * @host its id): this host reads them again. */
void jobq__locks_pg_listed(const char *host);
/* Every second while connected: other hosts' holders are read again while
 * any is mirrored here (a host that dies sends no notification). */
void jobq__locks_pg_tick(void);
void jobq__locks_pg_turn(void);
#endif

/*
 * clients.c: each connection's record in the store, its counts against
 * the quotas (struct jobq_store_hdr), and its refused entries.
 * attach: @c is accepted (before its welcome); detach: it is gone.
 * request: @c sent an entry, @bad when it was refused as malformed;
 * returns true when @c has now sent too many bad ones and must be
 * dropped (logged here). quota_take: @c makes one more of @which
 * (enum jobq_quota_wire): 0, or JOBQ_EQUOTA when it is at its quota;
 * quota_give: one of them went. owner/owns name a connection beyond the
 * life of its slot.
 */
void jobq__clients_attach(struct jobq__client *c);
void jobq__clients_detach(struct jobq__client *c);
bool jobq__clients_request(struct jobq__client *c, bool bad);
int jobq__quota_take(struct jobq__client *c, int which);
void jobq__quota_give(struct jobq__client *c, int which);
/* Whether @c may have @len more bytes queued: 0 or JOBQ_EQUOTA (counted).
 * bytes_add: what connection @ref has queued changed by @delta (nothing
 * once it is gone). */
int jobq__quota_bytes_room(struct jobq__client *c, uint64_t len);
void jobq__quota_bytes_add(uint64_t ref, int64_t delta);
/* Whether @c may have @more of @which (enum jobq_quota_wire) on top of
 * what it has: 0 or JOBQ_EQUOTA (counted as refused). ref_add: connection
 * @ref has @delta more of @which (nothing once it is gone). */
int jobq__quota_room(struct jobq__client *c, int which, uint32_t more);
void jobq__quota_ref_add(uint64_t ref, int which, int delta);
/* A handle on connection @c that outlives it: slot and client id. */
uint64_t jobq__client_ref(const struct jobq__client *c);
/* queues.c, locks.c: what process @pid made of each, still there. */
uint32_t jobq__queues_made_by(pid_t pid);
uint32_t jobq__locks_made_by(pid_t pid);
/* The live connection @ref names, or NULL once it is gone. */
struct jobq__client *jobq__client_of(uint64_t ref);

/* loop.c: one timer per module in the loop's timer heap. @deadline is
 * CLOCK_MONOTONIC ns; 0 disarms. When it passes, the module's fire
 * function runs once (jobq__jobs_timer(), jobq__supervise_timer()). */
enum jobq__timer_id {
	JOBQ__TIMER_JOBS = 0,
	JOBQ__TIMER_SUPERVISE,
	JOBQ__TIMER_DEADLINES, /* connections with a drop_by */
	JOBQ__TIMER_LOCKS,     /* lock leases */
	JOBQ__TIMER_JOURNAL,   /* a batch commit waits for its group */
	JOBQ__TIMER_BACKEND,   /* --backend: reconnects, maintenance */
	JOBQ__TIMER__COUNT,
};
void jobq__timer_arm(int which, uint64_t deadline);
/* loop.c: polls pidfd @fd; jobq__supervise_exited(@idx) runs when it
 * becomes readable (the child exited). */
void jobq__loop_watch_child(int fd, uint32_t idx);
/* loop.c: a one-shot poll of @fd for @events; jobq__backend_event(@tag,
 * revents or -errno) runs when it completes. unwatch cancels the poll of
 * @tag (its event then says -ECANCELED, or never comes). */
void jobq__loop_watch_fd(int fd, short events, uint32_t tag);
void jobq__loop_unwatch_fd(uint32_t tag);

/*
 * pg_mgr.c: --backend (built with libpq; without it these do nothing and
 * main.c refuses the option). migrate runs --migrate and returns the
 * exit status; open connects and checks the schema before the loop runs
 * (0, or -errno with a message in @err); turn runs at the end of every
 * loop turn, timer at JOBQ__TIMER_BACKEND, event on a poll of
 * jobq__loop_watch_fd().
 */
#ifdef JOBQ_HAVE_PG
int jobq__backend_migrate(const char *url);
int jobq__backend_open(char *err, size_t errlen);
void jobq__backend_close(void);
void jobq__backend_turn(void);
void jobq__backend_timer(void);
void jobq__backend_event(uint32_t tag, int res);
#else
static inline void jobq__backend_turn(void)
{
}
static inline void jobq__backend_timer(void)
{
}
static inline void jobq__backend_event(uint32_t tag, int res)
{
}
#endif

/* jobs.c: jobs, types and workers. */
int jobq__jobs_init(void);
int jobq__op_job_submit(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_job_wait(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_job_cancel(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_job_retry(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_job_kick(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_pause(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_q_parallel(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_register(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_reserve(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_done(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_progress(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_extend(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_stopping(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__op_w_claim(struct jobq__client *c, const struct jobq_sqe *s);
/* Whether a job (of any state) names queue record @qid. */
bool jobq__jobs_use_queue(uint32_t qid);
/* Unlinks a JOBQ__W_JOB or JOBQ__W_RESERVE waiter from the jobs' lists. */
void jobq__job_wait_detach(struct jobq__waiter *w);
/* Client @c is gone: its running jobs fail that attempt (or end
 * cancelled), its types lose a worker, its worker record clears. */
void jobq__jobs_drop_client(struct jobq__client *c);
void jobq__jobs_timer(void);
/* Shutdown: tells every registered worker to take no more jobs and end
 * once its running ones are done (JOBQ_NOTICE_STOP). */
void jobq__jobs_notify_stop(uint64_t grace_ns);
/* The grace period is over: daemon workers still running jobs are told
 * the manager is going (their end of the socket closes). */
void jobq__jobs_end_daemons(void);
/* Jobs running on workers, daemon workers' included or not. */
uint32_t jobq__jobs_running(bool daemon_too);

/* supervise.c: built-in and --worker processes. */
int jobq__supervise_start(void);
void jobq__supervise_exited(uint32_t idx);
void jobq__supervise_timer(void);
/* jobq__supervise_sigchld - a SIGCHLD came (from the signalfd): reap what
 * is left of ended workers' process groups. */
void jobq__supervise_sigchld(void);
/* A worker @pid registered. If it is one of ours, *flags gets
 * JOBQ_WF_SUPERVISED and JOBQ_WF_DAEMON as we started it, and the child
 * counts as started well (its deaths no longer count as crashing at
 * start). */
void jobq__supervise_registered(pid_t pid, uint32_t *flags);
/*
 * jobq__supervise_kill_worker - SIGKILL the worker process that registered
 * as @pid if this manager started it (through its pidfd, with its process
 * group). Returns false, touching nothing, for any other pid: a worker
 * embedded in someone's application is never signalled.
 */
bool jobq__supervise_kill_worker(pid_t pid);
/*
 * jobq__supervise_drained - called every turn once jobqd is stopping.
 * The first call starts the stop (notices, signals, the grace timer).
 * Returns true when the loop may close every client and exit: every child
 * is gone and reaped.
 */
bool jobq__supervise_drained(void);

/*
 * Names in the arena (queues, locks): 1..JOBQ_NAME_MAX bytes, no NUL or
 * control characters. Copies into @buf (JOBQ_NAME_MAX + 1 bytes).
 * Returns 0 or -EINVAL.
 */
int jobq__arena_name(struct jobq__client *c, const struct jobq_sqe *s,
		     char *buf);

#endif
