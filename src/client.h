/* SPDX-License-Identifier: MIT */
/*
 * client.h - the client handle of libjobq, private to src/.
 *
 * A handle owns one connection: the control socket (kept open only so that
 * each side notices the other's death), the read-only store mapping, the
 * client region (submission ring, completion ring, payload arena) and the
 * two eventfds.
 *
 * Locking: q->mu serializes the submission ring, the arena allocator, the
 * request table, the completion ring head and the name caches. The store
 * is read without it (seqlocks). At most one thread at a time sleeps on the
 * completion eventfd (the leader); the others wait on q->cv and are woken
 * whenever a completion is reaped or the leader steps down.
 */
#ifndef JOBQ_CLIENT_H
#define JOBQ_CLIENT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "spin.h"

/*
 * One request in flight. For a blocking call it lives on the caller's
 * stack; for an asynchronous one it is malloc'd and freed after its
 * callback ran. All fields are guarded by q->mu.
 */
struct jobq_req {
	uint64_t user_data; /* request id << JOBQ_UD_SLOT_BITS | slot index */
	/* The entry as sent (arena_off as it was), so that it can be sent
	 * again after a reconnect, and when its timeout ends (monotonic ns,
	 * 0: none), so that a resend waits only for what is left. */
	struct jobq_sqe sqe;
	uint64_t deadline;
	uint32_t reserve; /* completion entries reserved for it */
	int32_t chunk;	  /* arena chunk index, -1: none */
	bool done;
	bool async;
	int res;	  /* res of the final completion */
	uint64_t val;	  /* val of the final completion */
	jobq_obj_t *objs; /* where delivered objects go */
	uint32_t nobj;
	uint32_t maxobj;
	/* jobq_get_many_into(): the caller's buffer that objects are copied
	 * into while they fit (NULL: each is malloc'd). */
	uint8_t *buf;
	size_t buflen;
	size_t bufused;
	int copy_err;	 /* an object could not be copied out */
	jobq_obj_t obj1; /* storage for an asynchronous get */
	jobq_cb cb;
	void *arg;
	struct jobq_req *next_done; /* finished asynchronous requests */
	/* W_RESERVE: the JOBQ_CQE_JOB completions are copied here, at most
	 * maxjobs of them (the request reserves that many entries). */
	struct jobq_cqe *jobs;
	uint32_t njobs;
	uint32_t maxjobs;
	bool keep_res; /* the callback gets res > 0 as it came (JOB_WAIT) */
	bool detached; /* nobody waits: freed when its completion comes */
};

/*
 * Completion entries kept free for notices (user_data JOBQ_UD_NOTICE),
 * which the manager posts without a request: requests in flight never
 * reserve these.
 */
#define JOBQ__NOTICE_ROOM 16u

/* Called with q->mu held for every notice reaped; must be short and must
 * not call back into the handle. */
typedef void (*jobq__notice_fn)(jobq_t *q, const struct jobq_cqe *c, void *arg);

/*
 * A request to submit: the sqe (user_data, arena_off and arena_len are
 * filled in by the submitter), up to three payload pieces that are copied
 * contiguously into the arena, and the record that receives the answer.
 * A longer list of pieces (a packed batch) goes in iovv[0..iovc) instead:
 * when iovv is set, iov and niov are not looked at.
 */
struct jobq__op {
	struct jobq_sqe sqe;
	struct iovec iov[3];
	int niov;
	const struct iovec *iovv;
	int iovc;
	struct jobq_req *req;
};

/* A name -> id cache (queues, locks). An id goes stale when its queue is
 * removed or its lock freed (proto.h): the resolvers check a cached id in
 * the store before they use it. */
struct jobq__name_ent {
	char *name;
	uint32_t hash;
	uint32_t id;
};

struct jobq__namemap {
	struct jobq__name_ent *ents;
	uint32_t cap; /* power of two, or 0 */
	uint32_t n;
};

/* An arena chunk: [start, end) in monotonically growing byte positions. */
struct jobq__chunk {
	uint64_t end;
	bool live;
};

struct jobq {
	char dir[PATH_MAX];
	pid_t pid; /* the process that opened it: only it may submit */
	int sock;
	int sq_efd;
	int cq_efd;
	/* The leader's own doorbell (an eventfd of this process): cq_efd is
	 * shared with whoever polls jobq_fd() and drains it in
	 * jobq_process(), so a reap by another thread wakes the leader
	 * here, where nobody else reads. */
	int lead_efd;

	/* The store, read-only. Everything but the live figures and the
	 * records' contents is constant, so it is copied here at open. */
	const uint8_t *store;
	uint64_t store_size; /* what the header promises, <= mapped */
	uint64_t store_mapped;
	const struct jobq_store_hdr *sh;
	const struct jobq_kv_slot *kv;
	uint32_t kv_mask;
	uint32_t max_queues;
	uint32_t max_locks;
	uint64_t max_object;
	const struct jobq_queue_rec *queues;
	const struct jobq_lock_rec *locks;
	bool jobs_ok; /* the job tables lie inside the store (checked once) */

	/* The region, read-write. */
	uint8_t *region;
	uint64_t region_size;
	struct jobq_region_hdr *rh;
	bool clients_ok; /* the store has a client table (layout 7) */
	struct jobq_sqe *sqes;
	struct jobq_cqe *cqes;
	uint32_t sq_entries;
	uint32_t cq_entries;
	uint32_t sq_tail; /* private copy of sq.tail: we are its writer */
	uint32_t cq_head; /* private copy of cq.head: we are its writer */
	uint8_t *arena;
	uint64_t arena_off; /* relative to the region start */
	uint64_t arena_size;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool leader;	     /* a thread sleeps on the eventfd */
	_Atomic bool closed; /* the manager went away: nothing more comes */
	_Atomic bool always_wake; /* jobq_fd() was called */
	/* Sleepers that need cq NEED_WAKEUP set: see jobq__wake_hold(). */
	_Atomic unsigned wake_holds;
	struct jobq__spin spin; /* polling before sleeping (spin.h) */
	bool busy_poll;		/* jobq_open_opts.busy_poll */

	/* Request table: at most cq_entries requests are in flight, since
	 * each reserves at least one completion entry. */
	struct jobq_req **slots;
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t reserved; /* completion entries reserved in flight */
	/* Threads waiting for room to submit: while there are any, sq
	 * pflags has JOBQ_RING_WANT_HEAD (see submit_one_locked()). */
	uint32_t sq_waiters;

	/* Arena ring allocator: chunks are handed out at alloc_pos and given
	 * back in any order; free_pos advances over the oldest freed ones. */
	struct jobq__chunk *chunks; /* ring of nchunks records */
	uint32_t nchunks;
	uint32_t chunk_head; /* oldest chunk (index count, not wrapped) */
	uint32_t chunk_tail;
	uint64_t alloc_pos;
	uint64_t free_pos;

	/* Finished asynchronous requests whose callbacks have not run. */
	struct jobq_req *done_head;
	struct jobq_req *done_tail;
	uint32_t async_pending; /* submitted, callback not yet run */

	struct jobq__namemap qnames;
	struct jobq__namemap lnames;

	jobq__notice_fn notice_fn; /* guarded by q->mu */
	void *notice_arg;

	/* Reconnecting (client.c). All guarded by q->mu. */
	uint64_t session;      /* random, for the handle's life */
	uint64_t next_rid;     /* the next request's id, from 1 */
	uint64_t reconnect_ns; /* the window; 0: never reconnect */
	uint32_t reconnects;   /* how many times it connected again */
	/* The manager did not come back, or refused us: every call fails
	 * with gone_err from now on. */
	bool gone;
	int gone_err;
	/* Store mappings replaced by a larger store: other threads may still
	 * read them, so they are unmapped with the handle. */
	struct jobq__retired {
		void *p;
		size_t len;
	} * retired;
	uint32_t nretired;
	/* Called under q->mu after a reconnect, before the requests in
	 * flight are sent again: a worker registers again there
	 * (jobq__submit_locked()). */
	void (*reconnect_fn)(jobq_t *q, void *arg);
	void *reconnect_arg;
};

/*
 * jobq__submit - put @n requests on the submission ring, in order, and
 * wake the manager once. Waits (without a bound) while the ring, the arena
 * or the completion budget is full. Each op's req must be zeroed except
 * objs/maxobj/jobs/maxjobs/keep_res/cb/arg/async. Returns how many were
 * submitted (all of them, unless an error stopped it), or a negative error
 * when none was: JOBQ_ECLOSED, -E2BIG (payload larger than the arena),
 * -EINVAL (it would reserve more completions than a client may).
 * Called without q->mu.
 */
int jobq__submit(jobq_t *q, struct jobq__op *ops, size_t n);

/*
 * jobq__socket_dead - has the manager's end of the control socket gone
 * away? After the handshake nothing is expected on it; anything that comes
 * is read and dropped, so that a readable socket cannot keep a poller
 * spinning.
 */
bool jobq__socket_dead(jobq_t *q);

/*
 * jobq__async_req - a new zeroed request, async, whose callback is
 * @cb(@arg) (@cb may be NULL); NULL when out of memory. Hand it to
 * jobq__submit_async(), or free() it.
 */
struct jobq_req *jobq__async_req(jobq_cb cb, void *arg);

/*
 * jobq__submit_async - submit one asynchronous op whose req came from
 * jobq__async_req(); on failure the req is freed (its callback never runs).
 * Returns 0 or what jobq__submit() returns.
 */
int jobq__submit_async(jobq_t *q, struct jobq__op *op);

/*
 * jobq__wait - wait until each of @n requests finished. Returns 0, or
 * JOBQ_ECLOSED when the manager went away (those that did not finish have
 * res JOBQ_ECLOSED). Called without q->mu.
 */
int jobq__wait(jobq_t *q, struct jobq_req **reqs, size_t n);

/* jobq__call - submit one request and wait for it; returns its res. */
int jobq__call(jobq_t *q, struct jobq__op *op);

/*
 * jobq__wait_until - wait with q->mu taken inside until @pred (called with
 * q->mu held) is true, the manager is gone (JOBQ_ECLOSED) or @deadline
 * (monotonic ns, 0: none) passes (-ETIMEDOUT). Called without q->mu.
 */
int jobq__wait_until(jobq_t *q, bool (*pred)(jobq_t *, void *), void *arg,
		     uint64_t deadline);

/* jobq__poll - consume what the manager posted, without waiting (notices
 * reach their hook). Called without q->mu. */
void jobq__poll(jobq_t *q);

/*
 * jobq__detach - give up waiting for request @r, which must be malloc'd
 * and not async. Returns true when it is still in flight: it is then
 * freed when its completion comes (or with the handle). Returns false
 * when it already finished: the caller frees it.
 */
bool jobq__detach(jobq_t *q, struct jobq_req *r);

/*
 * jobq__wake_hold - ask the manager to write the completion eventfd when
 * it posts (cq NEED_WAKEUP), until the matching jobq__wake_release(). For
 * whoever is about to sleep on that eventfd: a thread in a blocking call, a
 * worker's loop, or for good after jobq_fd(). Holds are counted, so one
 * sleeper waking does not take the flag from another still asleep, and
 * with none held the manager writes nothing for a client that is awake
 * anyway. The hold ends with a full fence: a ring check after it either
 * sees the manager's completions or the manager sees the flag.
 */
void jobq__wake_hold(jobq_t *q);
void jobq__wake_release(jobq_t *q);

/* jobq__cq_ready - whether the manager posted completions not yet reaped. */
bool jobq__cq_ready(jobq_t *q);

/*
 * jobq__process_ready - what jobq_process() does with completions (reap
 * them, run the callbacks due), without reading the eventfd or looking at
 * the socket: for an event loop that looks at the ring on every turn.
 * Returns how many callbacks ran.
 */
int jobq__process_ready(jobq_t *q);

/*
 * jobq__submit_locked - jobq__submit() for one op with q->mu held, for a
 * reconnect hook: fails with -EAGAIN instead of waiting for room. The
 * request's completion comes as any other's.
 */
int jobq__submit_locked(jobq_t *q, struct jobq__op *op);

/* jobq__set_reconnect_hook - run @fn (under q->mu) after every reconnect,
 * before the requests in flight are sent again. */
void jobq__set_reconnect_hook(jobq_t *q, void (*fn)(jobq_t *, void *),
			      void *arg);

/* jobq__reconnects - how many times @q connected again (0: never). */
uint32_t jobq__reconnects(jobq_t *q);

/* jobq__set_notice_hook - route notices to @fn (NULL: drop them). */
void jobq__set_notice_hook(jobq_t *q, jobq__notice_fn fn, void *arg);

/* jobq__op_init - a zeroed op of @opcode with one payload piece. */
void jobq__op_init(struct jobq__op *op, struct jobq_req *req, uint8_t opcode,
		   const void *data, size_t len);

/*
 * jobq__name_find - the id of @name in cache @m, else from the store through
 * @find (jobq__store_find_queue or _lock), then cached. Returns 0 or what
 * @find returns. Called without q->mu.
 */
int jobq__name_find(jobq_t *q, struct jobq__namemap *m,
		    int (*find)(jobq_t *, const char *, uint32_t *),
		    const char *name, uint32_t *id);

/* jobq__name_cache - caches @name -> @id in @m, replacing a stale id.
 * Called without q->mu. */
void jobq__name_cache(jobq_t *q, struct jobq__namemap *m, const char *name,
		      uint32_t id);

/*
 * jobq__name_open - send Q_OPEN or L_OPEN (@opcode, with JOBQ_SQE_CREATE)
 * for @name with @arg0/@arg1, check the id against @max (the table's size)
 * and cache it in @m. *id gets it when @id is not NULL. Returns 0, the
 * manager's error, or -EPROTO for an id out of range. Called without q->mu.
 */
int jobq__name_open(jobq_t *q, struct jobq__namemap *m, uint32_t max,
		    uint8_t opcode, const char *name, uint64_t arg0,
		    uint64_t arg1, uint32_t *id);

/* Copies @len bytes at store offset @off into a new object; -EIO when the
 * range is outside the store. Used for completions that carry objects. */
int jobq__copy_object(jobq_t *q, uint64_t off, uint32_t len, uint32_t type,
		      jobq_obj_t *out);

/*
 * Store lookups without a round trip (store_read.c): the id of the queue or
 * lock called @name, read under each record's seqlock. Return 0 or -ENOENT.
 */
int jobq__store_find_queue(jobq_t *q, const char *name, uint32_t *id);
/* A request was refused with JOBQ_EQUOTA: say which quota in the
 * last-error text, from this client's record in the store. */
void jobq__quota_msg(jobq_t *q);
/* Whether lock id @id (generation and record) still names a lock. */
bool jobq__store_lock_live(jobq_t *q, uint32_t id);
/* Whether queue id @id (generation and record) still names a queue. */
bool jobq__store_queue_live(jobq_t *q, uint32_t id);

/*
 * jobq__store_adopt - take the @size bytes at @p (the store, mapped) as
 * q's store: check its header as untrusted input (magic, layout version,
 * every table inside the size it claims, which is at most @size) and set
 * the table pointers and limits of @q from it. Returns 0, -EPROTO or
 * JOBQ_EVERSION with a message (jobq__last_error_msg()). The job tables
 * are usable only when q->jobs_ok.
 */
int jobq__store_adopt(jobq_t *q, const void *p, uint64_t size);

/*
 * jobq__seq_begin - seq_read_begin() for a client, which must not wait
 * forever on a manager that died inside a write: spins briefly, then
 * sleeps between looks. Returns 0 with the (even) sequence in *s;
 * JOBQ_ECLOSED once the manager is gone; -EAGAIN when the record stayed
 * under write for 5 s (a stopped manager).
 */
int jobq__seq_begin(const jobq_t *q, const _Atomic uint32_t *seq, uint32_t *s);
int jobq__store_find_lock(jobq_t *q, const char *name, uint32_t *id);

/*
 * Jobs in the store (store_read.c), read under each record's seqlock.
 *
 * jobq__job_lookup - find job @id through the job index and copy its record
 * into *copy; with @which JOBQ__ITEM_ARGS or JOBQ__ITEM_RESULT also copy
 * that item into *item (a new object; type JOBQ_T_NONE and len 0 when the
 * record has none), consistent with the record. Returns 0, -ENOENT (unknown,
 * expired, or the job tables are absent), -ENOMEM, -EIO.
 */
#define JOBQ__ITEM_ARGS	  1
#define JOBQ__ITEM_RESULT 2
int jobq__job_lookup(jobq_t *q, uint64_t id, struct jobq_job_rec *copy,
		     int which, jobq_obj_t *item);
/* Records in the job table (0: none), and record @rec: 0 or -ENOENT (free). */
uint32_t jobq__job_records(jobq_t *q);
int jobq__job_scan(jobq_t *q, uint32_t rec, struct jobq_job_rec *copy);
/* The name of type @type_id and how many live workers serve it. */
int jobq__type_read(jobq_t *q, uint32_t type_id, char name[JOBQ_TYPE_MAX + 1],
		    uint32_t *workers);
/* The name of queue @queue_id. Returns 0 or -ENOENT. */
int jobq__queue_name(jobq_t *q, uint32_t queue_id,
		     char name[JOBQ_NAME_MAX + 1]);
/* Worker records, indexed by client id: 0 or -ENOENT (not a worker). */
uint32_t jobq__worker_records(jobq_t *q);
int jobq__worker_read(jobq_t *q, uint32_t client, struct jobq_worker_rec *copy);

/*
 * jobq__queue_resolve - the id of queue @name: from the cache, else the
 * store, else created with Q_OPEN (unbounded). Returns 0 or -errno.
 */
int jobq__queue_resolve(jobq_t *q, const char *name, uint32_t *id);

/* Sets the thread's last error message (what jobq__last_error_msg gives). */
void jobq__set_error_msg(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
