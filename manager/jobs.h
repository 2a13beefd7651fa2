/* SPDX-License-Identifier: MIT */
/*
 * jobs.h - what the files of the job machinery share. jobs.c is the job
 * state machine and the request handlers; the structures it keeps jobs in
 * have a file each, with its contract at its top:
 *
 *   jobidx.c  the job index in the store: a job's record by its id;
 *   chash.c   unique keys and dependencies, in chained hash tables;
 *   timerq.c  one deadline per record: delays, backoff, leases, cancels;
 *   lanes.c   the READY jobs, and which one a worker gets next.
 *
 * This header is private to those files (and to the unit test that
 * includes them). NONE, struct jpriv, job_rec() and the record lists keep
 * the short names they had when all of it was one file, since nothing
 * else includes this header; what a file exports to the others is
 * jobq__-prefixed, as everywhere in the manager.
 */
#ifndef JOBQD_JOBS_H
#define JOBQD_JOBS_H

#include "jobqd.h"

/* No record: the end of a list, an empty slot, a failed lookup. */
#define NONE UINT32_MAX

/*
 * Manager-private data of one job record: 16 bytes, paid by every record
 * in use, so fields share a word where their ranges allow. jobs.c
 * allocates the array beside the store's job table.
 */
struct jpriv {
	uint32_t pos;	     /* index in its lane or in the timer queue */
	uint32_t prev, next; /* free, running or finished list, or the
			      * run of its lane while READY */
	uint32_t aux;	     /* jobs.c's AUX_* bits */
};

extern struct jpriv *jobq__job_priv; /* [max_jobs], by record number */

/* The public record of job record @r (written by the manager only,
 * inside its seqlock). */
static inline struct jobq_job_rec *job_rec(uint32_t r)
{
	return &jobq__m.st.jobs[r];
}

/*
 * Lists of records through priv[].prev/next: @head and @tail are record
 * numbers, NONE when empty. A record is on one such list at most (the free
 * list, a worker's running list, the finished list or its lane's run).
 */
static inline void list_add_tail(uint32_t *head, uint32_t *tail, uint32_t r)
{
	jobq__job_priv[r].next = NONE;
	jobq__job_priv[r].prev = *tail;
	if (*tail != NONE)
		jobq__job_priv[*tail].next = r;
	else
		*head = r;
	*tail = r;
}

/* Unlinks @r; a list without a tail passes NULL. */
static inline void list_del(uint32_t *head, uint32_t *tail, uint32_t r)
{
	struct jpriv *p = &jobq__job_priv[r];

	if (p->prev != NONE)
		jobq__job_priv[p->prev].next = p->next;
	else
		*head = p->next;
	if (p->next != NONE)
		jobq__job_priv[p->next].prev = p->prev;
	else if (tail)
		*tail = p->prev;
	p->prev = p->next = NONE;
}

/* ------------------------------------------------------------------------
 * jobidx.c: the job index.
 */
/* Empties the tombstone counts; the store's index starts empty. */
void jobq__jobidx_init(void);
/* Adds live job @id at record @r (not in the index yet). */
void jobq__jobidx_insert(uint64_t id, uint32_t r);
/* Removes @id, if present. */
void jobq__jobidx_delete(uint64_t id);
/* The record of live job @id, or NONE. */
uint32_t jobq__jobidx_lookup(uint64_t id);

/* ------------------------------------------------------------------------
 * chash.c: unique keys and dependencies.
 */
/* Both tables, empty. 0 or -ENOMEM. */
int jobq__chash_init(void);
/* Frees both tables and every entry left in them. */
void jobq__chash_fini(void);
/* The record that holds unique key @key (@len bytes, jobq__hash() @hash),
 * or NONE. */
uint32_t jobq__uq_find(const char *key, uint32_t len, uint32_t hash);
/* Record @r holds @key from now on (no other record does). 0 or -ENOMEM. */
int jobq__uq_add(uint32_t r, const char *key, uint32_t len, uint32_t hash);
/* Record @r gives up its key, whose hash has @hash24 in its low 24 bits. */
void jobq__uq_drop(uint32_t r, uint32_t hash24);
/* Job @waiter (record @wrec) waits for job @dep. 0 or -ENOMEM. */
int jobq__dep_add(uint64_t dep, uint64_t waiter, uint32_t wrec);
/* Whether any dependency entry exists. */
bool jobq__deps_any(void);
/* Takes out one of the entries that wait for @dep: true with its waiter's
 * id and record, false when none is left. */
bool jobq__dep_take(uint64_t dep, uint64_t *waiter, uint32_t *wrec);
/* Calls @fn for every unique key (its record) and for every dependency
 * entry; @fn must not change the table it walks (snapshots). */
void jobq__uq_each(void (*fn)(void *arg, uint32_t rec, const char *key,
			      uint32_t len),
		   void *arg);
void jobq__dep_each(void (*fn)(void *arg, uint64_t dep, uint64_t waiter),
		    void *arg);

/* ------------------------------------------------------------------------
 * timerq.c: the jobs' timer queue.
 */
/* Sets (or moves) the deadline of record @r to @at (CLOCK_MONOTONIC ns).
 * Returns 0, or -ENOMEM when @r had none (it still has none). */
int jobq__timerq_set(uint32_t r, uint64_t at);
/* Removes the deadline of record @r, if it has one. */
void jobq__timerq_del(uint32_t r);
/* The earliest deadline and its record (either pointer may be NULL).
 * Returns false when the queue is empty. */
bool jobq__timerq_first(uint64_t *at, uint32_t *r);
/* Frees the queue's memory; it is empty afterwards. */
void jobq__timerq_fini(void);

/* ------------------------------------------------------------------------
 * lanes.c: the READY jobs of each (type, queue) pair.
 */
struct lane;

/* Room for the lanes of @max_types types. 0 or -ENOMEM. */
int jobq__lanes_init(uint32_t max_types);
/* Frees every lane. */
void jobq__lanes_fini(uint32_t max_types);
/* Frees the lanes of type @type, which holds no READY job. */
void jobq__lanes_type_free(uint32_t type);
/* READY job @r joins the lane of its type and queue (made when missing).
 * 0 or -ENOMEM (then it is in no lane). */
int jobq__lane_push(uint32_t r);
/* Takes READY job @r out of its lane, if it is there. */
void jobq__lane_remove(uint32_t r);
/* The open lane (queue not paused, below its parallel limit) with the
 * best head among the lanes of the @ntypes types @types, and that head in
 * *@r; NULL (and NONE) when no lane is open. */
struct lane *jobq__lane_best(const uint16_t *types, uint32_t ntypes,
			     uint32_t *r);
/* Takes job @r out of lane @l, which holds it (as jobq__lane_best() said
 * of its head). */
void jobq__lane_take(struct lane *l, uint32_t r);

/* ------------------------------------------------------------------------
 * jobs.c: mirrors. With --backend the jobs live in PostgreSQL and a record
 * of the store is a copy of a row (jobs_pg.c writes them through these),
 * so that clients read jobs as they always do. A mirror is in no lane,
 * timer or dependency table: the backend decides what runs when.
 */
struct jobq__mirror {
	uint64_t id;
	const char *type, *queue; /* names; a queue this host has not opened
				   * is numbered UINT32_MAX (no name) */
	unsigned state;		  /* JOBQ_JS_* */
	int32_t priority;
	uint32_t attempts, max_attempts;
	const void *args; /* NULL: keep the record's (a new one: none) */
	uint32_t args_len, args_type;
	/* The result of a job that succeeded, or the error text. NULL: keep
	 * the record's. */
	const void *result;
	uint32_t result_len, result_type;
	int32_t progress; /* 0..10000, -1: keep */
	uint64_t created_ns, started_ns, finished_ns, run_at_ns, lease_ns;
};

/* Makes or updates the record of row @m and returns it (NONE when the
 * table is full of live jobs). A record that becomes final joins the
 * finished list and wakes its JOB_WAIT waiters; a record held by a local
 * worker keeps its worker. */
uint32_t jobq__jobs_mirror(const struct jobq__mirror *m);
/* Record @r (RUNNING) is run by worker @c from now on / no longer. */
void jobq__jobs_mirror_hold(uint32_t r, struct jobq__client *c);
void jobq__jobs_mirror_unhold(uint32_t r);
/* What jobs_pg.c needs of worker @slot: false when it is not registered.
 * @names receives its type names (at most 64). */
bool jobq__jobs_worker(uint32_t slot, uint32_t *free_slots, bool *stopping,
		       const char **names, uint32_t *ntypes);
/* Parks W_RESERVE @s of @c (no job now); JOBQ__NOREPLY or -errno. */
int jobq__jobs_park_reserve(struct jobq__client *c, const struct jobq_sqe *s);
/* The parked W_RESERVE of worker @slot, or NULL. */
struct jobq__waiter *jobq__jobs_parked(uint32_t slot);
/* JOB_WAIT @s of @c answered from this host's record of the job as it is
 * now: its final state, -ENOENT, -EAGAIN (a timeout of 0), or parked
 * until the record is final (JOBQ__NOREPLY). jobs_pg.c calls it once the
 * record holds the row it read for the wait. */
int jobq__job_wait_here(struct jobq__client *c, const struct jobq_sqe *s);
/* The largest record number in use plus one. */
uint32_t jobq__jobs_hwm(void);
/* The submit request @s (arena bytes @a) read once into @wv and checked;
 * *@aoff is where the ids of --after begin (jobs.c). */
int jobq__submit_read(const struct jobq_sqe *s, const uint8_t *a,
		      struct jobq_submit_wire *wv, uint64_t *aoff);

/* ------------------------------------------------------------------------
 * jobs_pg.c: the job handlers of jobqd --backend (see pg.h, "Wiring the
 * job handlers"). Each handler of jobs.c calls its own here first when
 * jobq__m.o.backend is set.
 */
#ifdef JOBQ_HAVE_PG
int jobq__jobs_pg_submit(struct jobq__client *c, const struct jobq_sqe *s);
/* JOB_WAIT (every one, with a backend): answered or parked at once when
 * that is safe, else once the job's row was read (jobs_pg.c says when). */
int jobq__jobs_pg_wait(struct jobq__client *c, const struct jobq_sqe *s);
int jobq__jobs_pg_cancel(struct jobq__client *c, const struct jobq_sqe *s);
/* JOB_RETRY, or JOB_KICK with @kick (arg0 0: every dead job). */
int jobq__jobs_pg_retry(struct jobq__client *c, const struct jobq_sqe *s,
			bool kick);
int jobq__jobs_pg_queue(struct jobq__client *c, const struct jobq_sqe *s,
			uint32_t qid, int paused, int64_t parallel);
int jobq__jobs_pg_reserve(struct jobq__client *c, const struct jobq_sqe *s);
/* DONE, PROGRESS, EXTEND of held job record @r. */
int jobq__jobs_pg_done(struct jobq__client *c, const struct jobq_sqe *s,
		       uint32_t r);
/* Progress is sent and not waited for: the handler goes on as locally. */
void jobq__jobs_pg_progress(struct jobq__client *c, const struct jobq_sqe *s,
			    uint32_t r);
int jobq__jobs_pg_extend(struct jobq__client *c, const struct jobq_sqe *s,
			 uint32_t r);
/* Held job record @r lost its worker (the client went). */
void jobq__jobs_pg_lost(uint32_t r);
#endif

#endif
