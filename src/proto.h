/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the layout that jobqd and libjobq share.
 *
 * Two kinds of shared memory exist:
 *
 *  - The store: one memfd created by jobqd. jobqd maps it read-write and is
 *    the only writer of every byte in it; clients receive a read-only file
 *    descriptor and map it PROT_READ. It holds the queue, lock and key/value
 *    tables and the heap that objects live in. Clients read it without a
 *    round trip, using the per-record sequence counters (seqlock) below.
 *
 *  - A client region: one memfd per connected client, mapped read-write by
 *    that client and by jobqd. It holds a submission ring (client -> manager),
 *    a completion ring (manager -> client) and a payload arena that only the
 *    client writes. Every word has exactly one writer, named next to it.
 *    jobqd treats everything in a region as untrusted: it copies an entry out
 *    once, validates it and bounds-checks every offset before use.
 *
 * All references inside shared memory are byte offsets from the start of the
 * mapping, never pointers. Offset 0 is never a valid object, so it means
 * "none".
 *
 * The control socket (SOCK_SEQPACKET, DIR/jobqd.sock) carries only the
 * handshake: struct jobq_hello from the client, struct jobq_welcome from the
 * manager with four descriptors attached (SCM_RIGHTS, in this order): the
 * store (read-only), the client region, the submission eventfd (client writes
 * to wake the manager) and the completion eventfd (manager writes to wake the
 * client). After that the socket stays open only so that each side notices
 * the other's death.
 */
#ifndef JOBQ_PROTO_H
#define JOBQ_PROTO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Atomics. Shared words are touched only through these helpers.
 */
#define load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define store_release(p, v)                                                    \
	atomic_store_explicit((p), (v), memory_order_release)
#define store_relaxed(p, v)                                                    \
	atomic_store_explicit((p), (v), memory_order_relaxed)
#define full_fence() atomic_thread_fence(memory_order_seq_cst)

#define JOBQ_CACHELINE 64

/* ------------------------------------------------------------------------
 * Versioning. A client refuses a store or region whose magic or layout
 * version differs from its own, and the manager refuses a hello whose
 * version differs, each with JOBQ_EVERSION.
 */
#define JOBQ_STORE_MAGIC  0x4d4f5453514a424aULL /* "JBQJSTOM" */
#define JOBQ_REGION_MAGIC 0x4e474552514a424aULL /* "JBQJREGN" */
#define JOBQ_HELLO_MAGIC  0x6f6c6568u
/* What jobq_close() sends on the control socket before it closes it, so
 * that the manager tells a client that left from one that died. */
#define JOBQ_BYE_MAGIC 0x21657962u /* "bye!" */
/* 5: ring pflags (WANT_HEAD); 6: kv_gen, the journal's fields; 7: sessions
 * in the hello, request ids in user_data; 8: queue and lock records are
 * reused (gen, queues_live), the client table; 9: a queue's shared_depth
 * and shared_bytes; 10: a lock's holder_host */
#define JOBQ_LAYOUT_VERSION 11u

#define JOBQ_NAME_MAX	 63  /* queue and lock names, bytes without the NUL */
#define JOBQ_HOST_MAX	 63  /* a lock holder's host, bytes without the NUL */
#define JOBQ_KEY_MAX	 255 /* key/value keys */
#define JOBQ_SOCKET_NAME "jobqd.sock"
#define JOBQ_PID_NAME	 "jobqd.pid"
#define JOBQ_LOCK_NAME	 "jobqd.lock"

/* ------------------------------------------------------------------------
 * Seqlock on a record. The manager (only writer) calls seq_write_begin(),
 * changes the record, then seq_write_end(). A reader takes seq_read_begin(),
 * copies what it needs, and accepts the copy only if seq_read_retry() says
 * no. Readers never write. Offsets read under the lock must still be
 * bounds-checked before they are followed: a torn read can yield any value.
 */
static inline void seq_write_begin(_Atomic uint32_t *seq)
{
	store_relaxed(seq, load_relaxed(seq) + 1);
	atomic_thread_fence(memory_order_release);
}

static inline void seq_write_end(_Atomic uint32_t *seq)
{
	store_release(seq, load_relaxed(seq) + 1);
}

/*
 * jobq__cpu_relax - the pause of a spin-wait: it tells the CPU (and a
 * sibling hyperthread) that this loop waits for another. Every spin in
 * jobq uses it, so that it builds and behaves on every architecture: x86
 * `pause`, aarch64 `yield`, elsewhere a compiler barrier (the loop still
 * re-reads memory each time).
 */
static inline void jobq__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * seq_read_begin - waits while a write is in progress, without bound: for
 * a reader that is the writer's own process. A client must not trust the
 * manager to finish a write (it may die inside one): libjobq reads through
 * jobq__seq_begin(), which gives up.
 */
static inline uint32_t seq_read_begin(const _Atomic uint32_t *seq)
{
	uint32_t s;

	while ((s = load_acquire(seq)) & 1)
		jobq__cpu_relax();
	return s;
}

static inline int seq_read_retry(const _Atomic uint32_t *seq, uint32_t s)
{
	atomic_thread_fence(memory_order_acquire);
	return load_relaxed(seq) != s;
}

/*
 * jobq__arena_ref_ok - whether the bytes [off, off + len) that a ring entry
 * names lie inside the arena at region offset @arena_off, @arena_size
 * bytes long. The client chose @off and @len: the test is written so that
 * no sum can wrap, whatever they are. The manager checks every arena
 * reference with it before an op reads a byte (tests/fuzz/fuzz_ring.c).
 */
static inline bool jobq__arena_ref_ok(uint64_t off, uint64_t len,
				      uint64_t arena_off, uint64_t arena_size)
{
	return off >= arena_off && off - arena_off <= arena_size &&
	       len <= arena_size - (off - arena_off);
}

/* ------------------------------------------------------------------------
 * The store. Every field is written by the manager only.
 */
struct jobq_counters {
	_Atomic uint64_t puts;
	_Atomic uint64_t gets;
	_Atomic uint64_t kv_sets;
	_Atomic uint64_t kv_dels;
	_Atomic uint64_t lock_acquires;
	_Atomic uint64_t lock_timeouts;
	_Atomic uint64_t deadlocks;
	_Atomic uint64_t clients_total;
	_Atomic uint64_t clients_died; /* went away without closing */
	_Atomic uint64_t requeued; /* objects put back after a client died */
	_Atomic uint64_t bad_requests; /* refused ring entries */
	_Atomic uint64_t submitted;    /* jobs */
	_Atomic uint64_t done;
	_Atomic uint64_t failed;
	_Atomic uint64_t retried;
	_Atomic uint64_t dead;
	_Atomic uint64_t reserved[16];
};

struct jobq_store_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;   /* sizeof(struct jobq_store_hdr) */
	uint64_t size;	     /* bytes in the whole mapping */
	uint64_t generation; /* changes every time a manager starts */
	uint64_t max_object; /* --max-object */
	int32_t manager_pid;
	uint32_t max_clients;
	uint64_t started_ns; /* CLOCK_REALTIME at start */

	uint32_t max_queues; /* records in the queue table */
	uint32_t max_locks;  /* records in the lock table */
	uint32_t kv_slots;   /* slots in the key/value table, a power of two */
	uint32_t pad0;
	uint64_t queues_off; /* struct jobq_queue_rec[max_queues] */
	uint64_t locks_off;  /* struct jobq_lock_rec[max_locks] */
	uint64_t kv_off;     /* struct jobq_kv_slot[kv_slots] */
	uint64_t heap_off;   /* the allocator's range */
	uint64_t heap_size;

	/* Live figures, updated with relaxed stores. */
	_Atomic uint64_t heap_used; /* bytes handed out, headers included */
	_Atomic uint32_t nclients;
	/* Queue records ever used: those past it are free and were never
	 * used; those below it may be free too (in_use 0: removed). */
	_Atomic uint32_t nqueues;
	/* Lock records ever used; as nqueues, those below may be free. */
	_Atomic uint32_t nlocks;
	_Atomic uint32_t nkeys;
	_Atomic uint32_t shutting_down;
	_Atomic uint32_t queues_live; /* queue records in use */
	struct jobq_counters counters;

	/* Jobs (layout version 2). */
	uint32_t max_jobs;     /* records in the job table */
	uint32_t jobidx_slots; /* slots in the job index, a power of two */
	uint64_t jobs_off;     /* struct jobq_job_rec[max_jobs] */
	uint64_t jobidx_off;   /* _Atomic uint64_t[jobidx_slots] */
	uint64_t types_off;    /* struct jobq_type_rec[max_types] */
	uint64_t workers_off;  /* struct jobq_worker_rec[max_clients] */
	uint32_t max_types;
	/* Type records ever used: those past it are free and were never
	 * used; those below it may be free too (in_use 0), and are reused. */
	_Atomic uint32_t ntypes;
	_Atomic uint64_t njobs; /* job records in use */
	_Atomic uint64_t
	    next_job_id;  /* the id the next job gets; ids start at 1 */
	uint64_t keep_ns; /* jobqd --keep: how long finished jobs stay */
	_Atomic uint32_t
	    jobs_by_state[16]; /* indexed by enum jobq_job_state_wire */

	/* The journal: jobqd writes these (relaxed stores) after every
	 * commit and snapshot; `jobq stats` reads them. */
	_Atomic uint32_t journal_mode;	    /* 0 none, 1 batch, 2 always */
	_Atomic int32_t journal_error;	    /* -errno while failed, else 0 */
	_Atomic int32_t journal_last_error; /* the latest error ever, 0: none */
	/* A sequence count over the whole key/value table, written by jobqd:
	 * odd while it rehashes the table in place (keys move then), so a
	 * lookup that saw it change looks again. */
	_Atomic uint32_t kv_gen;
	_Atomic uint64_t journal_size;	    /* bytes of the journal file */
	_Atomic uint64_t journal_snap_size; /* bytes of the latest snapshot */
	_Atomic uint64_t journal_last_sync_ns; /* CLOCK_REALTIME, 0: never */
	_Atomic uint64_t journal_errors;       /* failed writes and syncs */
	_Atomic uint64_t journal_snapshots;    /* written since start */

	/* Clients (layout version 7): what each connection uses of the
	 * manager, and how much one may (0: no quota). */
	uint64_t clients_off;	     /* struct jobq_client_rec[max_clients] */
	uint32_t quota_waits;	     /* requests parked at once */
	uint32_t quota_queues;	     /* queues made and not removed */
	uint32_t quota_locks;	     /* locks made */
	uint32_t quota_bad;	     /* refused entries before it is dropped */
	_Atomic uint32_t locks_live; /* lock records in use */
	uint32_t pad2;
	uint64_t quota_bytes; /* payload bytes of its puts still queued */
	uint32_t quota_jobs;  /* jobs it submitted that are not final */
	uint32_t quota_held;  /* locks it holds at once */
	_Atomic uint32_t types_live; /* type records in use */
	/* Written once by jobqd before the magic: 1 when the jobs live in
	 * PostgreSQL (jobqd --backend) and the job records are this host's
	 * copies of them. A copy's final state may be stale (another host
	 * may have retried the job since): clients ask jobqd, which confirms
	 * it, instead of answering a wait from the record. 0: the records
	 * are the jobs (a manager of an older build leaves it 0 too). */
	uint32_t jobs_shared;

	/* Polling (layout version 11, spin.h). What one wake-up costs on
	 * this machine, measured by jobqd at start and written before the
	 * magic; and jobqd's turn count, on a cache line of its own since it
	 * moves on every turn of jobqd's loop: a client that polls for an
	 * answer stops when it stands still while jobqd is awake. */
	uint64_t wake_ns;
	_Alignas(JOBQ_CACHELINE) _Atomic uint64_t beat;
};

/* The quotas, in struct jobq_client_rec.quota_hit. */
enum jobq_quota_wire {
	JOBQ_QUOTA_NONE = 0,
	JOBQ_QUOTA_WAITS = 1,
	JOBQ_QUOTA_QUEUES = 2,
	JOBQ_QUOTA_LOCKS = 3,
	JOBQ_QUOTA_BYTES = 4,
	JOBQ_QUOTA_JOBS = 5,
	JOBQ_QUOTA_HELD = 6,
};

/*
 * A connected client, indexed by its connection slot (a later client may
 * reuse the slot: client_id tells them apart). Every field is written by
 * the manager, inside the seqlock.
 */
struct jobq_client_rec {
	_Atomic uint32_t seq;
	uint32_t in_use;
	uint32_t client_id; /* as in its welcome and region */
	int32_t pid;
	uint32_t uid;
	uint32_t waits;	    /* requests parked now */
	uint32_t queues;    /* queues it made that still exist */
	uint32_t locks;	    /* locks it made */
	uint32_t quota_hit; /* enum jobq_quota_wire: the last one it met */
	uint32_t pad;
	uint64_t connected_ns; /* CLOCK_REALTIME */
	uint64_t requests;     /* ring entries it sent */
	uint64_t bad;	       /* of those, refused as malformed */
	uint64_t refused;      /* requests refused by a quota */
	char name[32];
	uint64_t bytes; /* payload bytes of its puts still queued */
	/* Jobs it submitted on this connection that are not final yet: a job
	 * outlives its submitter, the count goes with this record. */
	uint32_t jobs;
	uint32_t held; /* locks its owners hold now (one per lock and owner) */
};

/*
 * A queue. A removed queue's record is reused by a later one, so the id
 * a client is given names both the record and its generation:
 *
 *   id = gen << JOBQ_QID_BITS | index
 *
 * and a request with an id whose generation is not the record's fails
 * with -ESTALE: a client that cached the id of a removed queue can never
 * reach the queue that took its record. The generation has 15 bits (ids
 * are positive in a completion's res) and wraps; freed records are reused
 * oldest first, so an id aliases only after 32,768 reuses of every record.
 * Objects are items on a singly linked list in the heap, oldest at head.
 */
#define JOBQ_QID_BITS  16
#define JOBQ_QID_MASK  ((1u << JOBQ_QID_BITS) - 1)
#define JOBQ_QGEN_MASK 0x7fffu

struct jobq_queue_rec {
	_Atomic uint32_t seq; /* seqlock over everything below */
	uint32_t in_use;
	char name[JOBQ_NAME_MAX + 1];
	uint64_t depth;	    /* objects queued */
	uint64_t bytes;	    /* payload bytes queued */
	uint64_t max_depth; /* 0: unbounded */
	uint64_t max_bytes; /* 0: unbounded */
	uint32_t getters;   /* clients blocked in get */
	uint32_t putters;   /* clients blocked in put */
	uint64_t total_put;
	uint64_t total_get;
	uint64_t unfinished; /* put but not yet task_done (JoinableQueue) */
	uint64_t head;	   /* offset of the first struct jobq_item, 0: empty */
	uint64_t tail;	   /* offset of the last one */
	uint32_t paused;   /* jobs: not handed out while set */
	uint32_t parallel; /* jobs: most running at once, 0: no limit */
	uint32_t running;  /* jobs of this queue running now */
	uint32_t gen;	   /* bumped when the queue is removed */
	uint64_t ready;	   /* jobs of this queue ready to run */
	/* jobqd --backend: the queue's objects waiting in PostgreSQL at its
	 * last count (queues_pg.c, each second), which depth and bytes above
	 * (this host's objects fetched and not yet handed) do not include.
	 * Always 0 without a backend. */
	uint64_t shared_depth;
	uint64_t shared_bytes;
};

/* An object on a queue; its payload follows the header. */
struct jobq_item {
	uint64_t next; /* offset of the next item, 0: none */
	uint32_t len;  /* payload bytes */
	uint32_t type; /* enum jobq_type or a user type */
};

/*
 * The key/value table: open addressing with linear probing over kv_slots
 * slots. A slot points at a blob holding the key and the value together;
 * setting a key writes a new blob and frees the old one inside one write
 * section of the slot's seqlock, so a reader that raced the change retries.
 * A deleted slot becomes a tombstone (probing goes on past it; inserts reuse
 * it).
 */
enum jobq_kv_state {
	JOBQ_KV_EMPTY = 0,
	JOBQ_KV_USED = 1,
	JOBQ_KV_TOMB = 2,
};

struct jobq_kv_slot {
	_Atomic uint32_t seq; /* seqlock over state, hash and blob */
	uint32_t state;	      /* enum jobq_kv_state */
	uint32_t hash;	      /* jobq__hash() of the key */
	uint32_t pad;
	uint64_t blob; /* offset of struct jobq_kv_blob */
};

struct jobq_kv_blob {
	uint32_t klen;
	uint32_t vlen;
	uint32_t type;
	uint32_t pad;
	/* klen key bytes, then vlen value bytes */
};

/* Lock kinds, also the JOBQ_LOCK_* values of the public API. */
enum jobq_lock_kind_wire {
	JOBQ_WIRE_LOCK = 1,
	JOBQ_WIRE_RLOCK = 2,
	JOBQ_WIRE_SEMAPHORE = 3,
	JOBQ_WIRE_EVENT = 4,
};

/* A named lock: what `jobq locks` shows. The manager keeps the holder and
 * waiter lists in its own memory; this record is the public view. Its id
 * is built as a queue's (gen << JOBQ_QID_BITS | index): a lock that no
 * client holds, waits for or has used since it connected, and that is
 * not a set Event, is freed when the last client that used it goes, and
 * its record serves a later lock. */
struct jobq_lock_rec {
	_Atomic uint32_t seq; /* seqlock over everything below */
	uint32_t in_use;
	char name[JOBQ_NAME_MAX + 1];
	uint32_t kind;	/* enum jobq_lock_kind_wire */
	uint32_t limit; /* Semaphore: its initial value; else 1 */
	uint32_t held;	/* units held (RLock: recursion depth) */
	uint32_t waiters;
	int32_t holder_pid;	/* first holder, 0: free */
	uint32_t is_set;	/* Event */
	uint64_t held_since_ns; /* CLOCK_REALTIME when first taken */
	uint64_t acquires;
	uint32_t gen; /* bumped when the record is freed */
	uint32_t pad;
	/* With jobqd --backend, held, waiters, holder_pid and held_since_ns
	 * count every host on the database, and this names the host of
	 * holder_pid ("hostname:jobqd pid"); "" when free or without a
	 * backend. */
	char holder_host[JOBQ_HOST_MAX + 1];
};

/* ------------------------------------------------------------------------
 * Jobs. A job record lives in a fixed table; the index maps a job id to its
 * record so that clients find a job without a round trip:
 *
 *   index slot = (id << 24) | (record + 1), 0 = empty, UINT64_MAX = deleted
 *
 * probed linearly from jobq__job_hash(id) & (jobidx_slots - 1). A slot is
 * one 64-bit word written with a release store, so it needs no seqlock; a
 * reader then checks rec->id == id under the record's seqlock (the record
 * may have been freed and reused in between). Ids start at 1, grow by one
 * and are never reused while the store lives.
 */
enum jobq_job_state_wire {
	JOBQ_JS_FREE = 0,    /* record not in use */
	JOBQ_JS_WAITING = 1, /* on --after dependencies */
	/* until run_at_ns (a --delay, or a retry's backoff) */
	JOBQ_JS_DELAYED = 2,
	JOBQ_JS_READY = 3,
	JOBQ_JS_RUNNING = 4,
	JOBQ_JS_SUCCEEDED = 5,
	JOBQ_JS_FAILED = 6, /* failed, a retry is pending (goes DELAYED) */
	/* failed for good: attempts used up or a final error */
	JOBQ_JS_DEAD = 7,
	JOBQ_JS_CANCELLED = 8,
};

#define JOBQ_JF_CANCELLING (1u << 0) /* cancel asked while running */
#define JOBQ_JF_UNIQUE	   (1u << 1) /* holds a unique key */
/* RUNNING, and its worker, which may have outlived a manager that died,
 * has not come back since the restart: the job waits for it (no worker,
 * worker_pid 0) for the rejoin grace, then goes back to READY. */
#define JOBQ_JF_AWAY (1u << 2)

struct jobq_job_rec {
	_Atomic uint32_t seq; /* seqlock over everything below */
	uint8_t state;	      /* enum jobq_job_state_wire */
	uint8_t flags;	      /* JOBQ_JF_* */
	uint16_t type_id;     /* index into the type table */
	uint64_t id;	      /* 0: free */
	uint32_t queue_id;
	int32_t priority;  /* higher runs first */
	uint16_t attempts; /* handed out so far (counted when handed out) */
	uint16_t max_attempts;
	int32_t worker_pid;	/* who runs it (or ran it last) */
	uint32_t worker_client; /* that worker's index in the worker table
				 * (its connection slot, not the region's
				 * client_id), UINT32_MAX: never run */
	uint32_t progress;	/* 0..10000: percent * 100 */
	uint64_t created_ns;	/* CLOCK_REALTIME */
	uint64_t started_ns;	/* last handed out, 0: never */
	uint64_t finished_ns;	/* became final, 0: not yet */
	uint64_t run_at_ns; /* DELAYED: CLOCK_REALTIME when it becomes ready */
	uint64_t lease_ns;  /* the lease length (--timeout) */
	/* The args: args_len bytes at this offset, a heap block of their own
	 * without a struct jobq_item header (args are on no list, and every
	 * queued job pays for the header); 0 when args_len is 0. */
	uint64_t args;
	uint64_t result; /* struct jobq_item: the result, or the error text
			  * (JOBQ_T_TEXT) of a failed, dead or cancelled job */
	uint64_t note;	 /* struct jobq_item: progress message, 0: none */
	uint32_t args_len;
	uint32_t args_type; /* enum jobq_type or a user type */
};

_Static_assert(sizeof(struct jobq_job_rec) == 112, "a job record's size");

/* A job type that someone submitted or a worker serves. Never reused. */
#define JOBQ_TYPE_MAX 47
struct jobq_type_rec {
	_Atomic uint32_t seq;
	uint32_t in_use;
	char name[JOBQ_TYPE_MAX + 1];
	uint32_t workers; /* live workers serving it */
	uint32_t pad;
	uint64_t ready; /* jobs of this type ready to run */
	uint64_t running;
};

/* A worker: a client that registered job types. Indexed by the client's
 * connection slot (< max_clients), which a later client may reuse. */
struct jobq_worker_rec {
	_Atomic uint32_t seq;
	uint32_t in_use;
	int32_t pid;
	uint32_t capacity; /* jobs it runs at once */
	uint32_t running;
	uint32_t flags;	     /* JOBQ_WF_* */
	uint64_t started_ns; /* CLOCK_REALTIME */
	uint64_t done;
	uint64_t failed;
	char types[128]; /* comma-separated, cut at a whole name */
};

#define JOBQ_WF_SUPERVISED (1u << 0) /* started by jobqd */
#define JOBQ_WF_DAEMON	   (1u << 1) /* dies with the manager */
#define JOBQ_WF_BUILTIN	   (1u << 2) /* serves the built-in types */

/* The head of a JOB_SUBMIT arena, followed by the type name, the unique
 * key, nafter uint64_t job ids (8-byte aligned from the arena start of
 * this struct) and the args bytes, in that order. */
struct jobq_submit_wire {
	uint32_t type_len;   /* 1..JOBQ_TYPE_MAX */
	uint32_t unique_len; /* 0..JOBQ_KEY_MAX */
	uint32_t nafter;     /* 0..64 */
	uint32_t args_len;
	int32_t priority;
	uint32_t max_attempts; /* >= 1 (retries + 1) */
	uint32_t queue_id;     /* from Q_OPEN */
	uint32_t flags;	       /* JOBQ_SUBMIT_DURABLE, else 0 */
	int64_t delay_ns;      /* >= 0 */
	int64_t lease_ns;      /* > 0 */
};

/* Ids come in order, so eight consecutive ids share one 64-byte line of
 * the index (their block of eight slots, spread by the multiplier): a burst
 * of submissions, their hand-outs and waits touch one line per eight jobs
 * instead of one per job. */
static inline uint32_t jobq__job_hash(uint64_t id)
{
	uint32_t block = (uint32_t)(((id >> 3) * 0x9e3779b97f4a7c15ULL) >> 32);

	return (block & ~7u) | (uint32_t)(id & 7);
}

/* ------------------------------------------------------------------------
 * A client region.
 *
 *   [struct jobq_region_hdr][sq entries][cq entries][arena]
 *
 * Submission ring: the client fills sqes[tail & mask] and publishes with a
 * release store of tail; the manager reads entries up to tail and publishes
 * its progress in head. Completion ring: the reverse.
 *
 * Wake-ups: a sleeper sets NEED_WAKEUP in the flags word of the ring it
 * consumes, issues a full fence, and checks the ring again before it sleeps.
 * A producer publishes its tail, issues a full fence, and writes the eventfd
 * only if it then sees NEED_WAKEUP. Either the sleeper sees the new tail or
 * the producer sees the flag, so no wake-up is lost, and a busy consumer
 * costs its producer no system call.
 *
 * The same handshake runs the other way for a producer that waits for its
 * consumer's head (a full ring, or objects waiting to be acknowledged): it
 * sets WANT_HEAD in the pflags word of the ring it produces, fences, and
 * reads head again before it sleeps; the consumer publishes head, fences,
 * and wakes the producer only if it then sees WANT_HEAD. The manager sleeps
 * on the sq eventfd and the client on the cq eventfd, so a client that moves
 * cq head past a waiting manager writes the sq eventfd, and the manager,
 * having consumed sq entries a client waits to reuse, writes the cq eventfd.
 * Nobody has to poll for room.
 *
 * Delivery: a completion that hands over an object (a get) carries the
 * object's store offset. The client copies the bytes out and only then moves
 * cq head past the entry; the manager frees the object once it sees that.
 * If the client dies first, the object goes back to the head of its queue.
 */
#define JOBQ_RING_NEED_WAKEUP (1u << 0) /* in flags */
#define JOBQ_RING_WANT_HEAD   (1u << 0) /* in pflags */

struct jobq_ring_ctl {
	_Atomic uint32_t head; /* consumer writes */
	uint8_t pad0[JOBQ_CACHELINE - 4];
	_Atomic uint32_t tail;	 /* producer writes */
	_Atomic uint32_t pflags; /* producer writes: JOBQ_RING_WANT_HEAD */
	uint8_t pad1[JOBQ_CACHELINE - 8];
	_Atomic uint32_t flags; /* consumer writes: JOBQ_RING_NEED_WAKEUP */
	uint8_t pad2[JOBQ_CACHELINE - 4];
};

struct jobq_region_hdr {
	uint64_t magic; /* manager writes these at creation */
	uint32_t version;
	uint32_t client_id;
	uint64_t size;
	uint32_t sq_entries; /* power of two */
	uint32_t cq_entries; /* power of two, >= 2 * sq_entries */
	uint64_t sq_off;     /* struct jobq_sqe[sq_entries] */
	uint64_t cq_off;     /* struct jobq_cqe[cq_entries] */
	uint64_t arena_off;
	uint64_t arena_size;
	/* client produces, manager consumes */
	_Alignas(JOBQ_CACHELINE) struct jobq_ring_ctl sq;
	/* manager produces, client consumes */
	_Alignas(JOBQ_CACHELINE) struct jobq_ring_ctl cq;
};

/* Request opcodes. */
enum jobq_op {
	JOBQ_OP_NOP = 0,
	JOBQ_OP_Q_OPEN, /* arena: name; arg0 max_depth, arg1 max_bytes -> res =
			   queue id */
	JOBQ_OP_Q_PUT,	/* id, arena: payload, type, timeout */
	JOBQ_OP_Q_GET,	/* id, timeout, arg0: most objects to take (>= 1) */
	JOBQ_OP_Q_TASK_DONE, /* id, arg0: count */
	JOBQ_OP_Q_JOIN,	     /* id, timeout */
	JOBQ_OP_Q_SET, /* id, arg0 max_depth, arg1 max_bytes (UINT64_MAX: leave)
			*/
	JOBQ_OP_KV_SET,	 /* arena: key then value, arg0: key length, type */
	JOBQ_OP_KV_DEL,	 /* arena: key */
	JOBQ_OP_KV_INCR, /* arena: key, arg0: delta (int64) -> val: new value */
	JOBQ_OP_KV_CAS,	 /* arena: key, expected, new; arg0: key length,
			  * arg1: expected length, flags: JOBQ_SQE_ABSENT */
	JOBQ_OP_L_OPEN, /* arena: name; arg0: kind, arg1: semaphore value -> res
			   = lock id */
	JOBQ_OP_L_ACQUIRE, /* id, owner, timeout; arg1: lease ns (0: none) */
	JOBQ_OP_L_RELEASE, /* id, owner */
	JOBQ_OP_L_MANY, /* arena: uint32_t ids[], owner, timeout, arg1 lease */
	JOBQ_OP_EV_SET, /* id */
	JOBQ_OP_EV_CLEAR, /* id */
	JOBQ_OP_EV_WAIT,  /* id, timeout */
	JOBQ_OP_SHUTDOWN, /* arg0: 1 = now */
	/* Jobs (layout version 2). A "job ref" is arg0 = job id. */

	/* arena: struct jobq_submit_wire..., type = args type -> val = job id;
	 * res = 1 when --unique found a live one */
	JOBQ_OP_JOB_SUBMIT,
	/* arg0 id, timeout -> res = final state (JOBQ_JS_*) */
	JOBQ_OP_JOB_WAIT,
	/* arg0 id -> 0, -ENOENT, -EALREADY (final already) */
	JOBQ_OP_JOB_CANCEL,
	/* arg0 id: a failed, dead or cancelled job runs again */
	JOBQ_OP_JOB_RETRY,
	/* arg0 id, or 0: every dead job -> res = how many */
	JOBQ_OP_JOB_KICK,
	/* id: queue; arg0: 1 pause, 0 resume */
	JOBQ_OP_Q_PAUSE,
	/* id: queue; arg0: most running jobs, 0: no limit */
	JOBQ_OP_Q_PARALLEL,
	/* arena: type names, each NUL-terminated; arg0: capacity; arg1: the
	 * JOBQ_WF_* the worker claims (DAEMON, BUILTIN) */
	JOBQ_OP_W_REGISTER,
	/* timeout, arg0: most jobs -> one cqe per job, flags JOBQ_CQE_JOB
	 * (+ MORE): val = id, len = attempt, type = type id */
	JOBQ_OP_W_RESERVE,
	/* arg0 id, arg1 attempt; arena: result (type = its type); flags
	 * JOBQ_SQE_FAIL (arena: error text), JOBQ_SQE_FINAL (no retry) -> 0,
	 * or -ESTALE when the lease was lost */
	JOBQ_OP_W_DONE,
	/* arg0 id, arg1 attempt, id: percent*100; arena: message */
	JOBQ_OP_W_PROGRESS,
	/* arg0 id, arg1 attempt, timeout_ns: new lease from now */
	JOBQ_OP_W_EXTEND,
	/* the worker takes no more jobs (graceful stop) */
	JOBQ_OP_W_STOPPING,
	/* id, timeout, arg0: objects; arena: arg0 records of struct
	 * jobq_put_rec + payload -> res = how many were put (the first ones,
	 * at least one), or -errno when none was */
	JOBQ_OP_Q_PUT_MANY,
	/* A worker that reconnected takes back the jobs it still runs:
	 * arena: pairs of uint64_t (job id, attempt). A job is taken back
	 * while it is ready with that attempt, not yet handed to anyone
	 * else (a restarted manager puts running jobs back to ready) -> res
	 * = how many were taken back */
	JOBQ_OP_W_CLAIM,
	/* arena: name -> res = objects dropped with it; -ENOENT, -EBUSY
	 * while jobs name it */
	JOBQ_OP_Q_REMOVE,
	JOBQ_OP__COUNT,
};

/*
 * A Q_PUT_MANY arena: arg0 records back to back, each a struct jobq_put_rec
 * followed by its len payload bytes, the next record starting at the next
 * multiple of 8 from the arena start of the first. The request waits (per
 * its timeout, behind earlier putters) only until its first object fits;
 * then it puts, in order, as many as fit and answers with that count, so
 * that what was put is always a leading run. A record that does not fit in
 * the arena range or is over the object limit ends the run there.
 */
struct jobq_put_rec {
	uint32_t len;  /* payload bytes */
	uint32_t type; /* object type tag */
};

#define JOBQ_SQE_ABSENT (1u << 0) /* KV_CAS: expect the key to be absent */
#define JOBQ_SQE_CREATE (1u << 1) /* Q_OPEN / L_OPEN: create when missing */
#define JOBQ_SQE_FAIL	(1u << 2) /* W_DONE: the job failed */
#define JOBQ_SQE_FINAL	(1u << 3) /* W_DONE: and must not be retried */
/* Q_PUT: answer once the journal is synced, whatever --fsync says. */
#define JOBQ_SQE_DURABLE (1u << 4)
/*
 * Any op: the request was sent before, to a manager that went away before
 * the client saw its answer (the client reconnected). The manager answers
 * a resent request that it had applied with the result it gave then,
 * without applying it again (manager/session.c). It strips the flag before
 * the op sees the entry.
 */
#define JOBQ_SQE_RESENT (1u << 7)
/* jobq_submit_wire.flags: the same for a JOB_SUBMIT. */
#define JOBQ_SUBMIT_DURABLE (1u << 0)

/*
 * Request ids. user_data is (request id << JOBQ_UD_SLOT_BITS) | the
 * client's slot for the request: the request id rises by one with every
 * request of a handle, from 1, and is kept across reconnects, so that
 * (session, request id) names one request for the handle's life. The
 * manager reads the id from user_data (jobq_ud_rid()) and otherwise only
 * echoes user_data. A client has fewer than 1 << JOBQ_UD_SLOT_BITS
 * requests in flight (its completion ring is no larger).
 */
#define JOBQ_UD_SLOT_BITS 16
#define JOBQ_UD_SLOT_MASK ((1u << JOBQ_UD_SLOT_BITS) - 1)

static inline uint64_t jobq_ud_rid(uint64_t user_data)
{
	return user_data >> JOBQ_UD_SLOT_BITS;
}

/* A request. Written by the client; read once by the manager. */
struct jobq_sqe {
	uint8_t op;    /* enum jobq_op */
	uint8_t flags; /* JOBQ_SQE_* */
	uint16_t pad;
	uint32_t id;	    /* queue or lock id */
	uint64_t user_data; /* echoed in the completion */
	uint64_t arena_off; /* payload, relative to the region start */
	uint32_t arena_len;
	uint32_t type;	    /* object type tag */
	int64_t timeout_ns; /* < 0: forever, 0: try once, > 0: relative */
	uint64_t arg0;
	uint64_t arg1;
	uint64_t owner; /* lock owner within the client (thread id) */
};

#define JOBQ_CQE_MORE (1u << 0) /* more completions follow for this request */
/* val/len/type describe an object in the store */
#define JOBQ_CQE_OBJECT (1u << 1)
#define JOBQ_CQE_JOB	(1u << 2) /* W_RESERVE: a job handed to this worker */
#define JOBQ_CQE_NOTICE (1u << 3) /* unsolicited (user_data JOBQ_UD_NOTICE) */

/*
 * Notices: completions the manager sends without a request, user_data
 * JOBQ_UD_NOTICE, flags JOBQ_CQE_NOTICE, res = the notice:
 *  JOBQ_NOTICE_CANCEL  val = job id: stop running it (the manager kills
 *                      the worker when it has not answered within the
 *                      cancel grace period)
 *  JOBQ_NOTICE_STOP    the manager is shutting down: finish or hand back
 *                      running jobs (val = grace period in ns) and exit
 * A client must leave room in its completion ring for 16 notices.
 */
#define JOBQ_UD_NOTICE	   UINT64_MAX
#define JOBQ_NOTICE_CANCEL 1
#define JOBQ_NOTICE_STOP   2

/* A completion. Written by the manager. */
struct jobq_cqe {
	uint64_t user_data;
	int32_t res;	/* 0 or more on success, -errno or JOBQ_E* */
	uint32_t flags; /* JOBQ_CQE_* */
	uint64_t val;	/* store offset of the payload, or a value */
	uint32_t len;
	uint32_t type;
};

_Static_assert(sizeof(struct jobq_sqe) == 64, "sqe is one cache line");
_Static_assert(sizeof(struct jobq_cqe) == 32, "cqe is half a cache line");

/* ------------------------------------------------------------------------
 * Handshake over the control socket.
 */
/*
 * Sessions (layout version 7). A handle picks a random session id at
 * jobq_open() and keeps it across reconnects; the manager remembers, per
 * session, the results of the changing requests it answered and the
 * client has not yet seen, so that a resent request applies once
 * (manager/session.c). @floor is the lowest request id the client still
 * waits for: results below it are forgotten. @keep_ms is how long the
 * manager keeps a session whose connection went away (the client's
 * reconnect window). A session id of 0 asks for none.
 */
#define JOBQ_HELLO_RECONNECT (1u << 0) /* in flags: a reconnect */

struct jobq_hello {
	uint32_t magic;	  /* JOBQ_HELLO_MAGIC */
	uint32_t version; /* JOBQ_LAYOUT_VERSION */
	int32_t pid;	  /* informational; the manager trusts SO_PEERCRED */
	uint32_t flags;	  /* JOBQ_HELLO_* */
	char name[32];	  /* what `jobq workers` and logs call the client */
	uint64_t session;
	uint64_t floor;
	uint32_t keep_ms;
	uint32_t pad;
	uint64_t reserved[4]; /* 0 */
};

struct jobq_welcome {
	uint32_t magic;
	uint32_t version;
	int32_t status; /* 0, or -errno / JOBQ_E* with msg saying why */
	uint32_t client_id;
	uint64_t store_size;
	uint64_t region_size;
	char msg[160];
};

/* FNV-1a; the manager and clients must hash keys the same way. */
static inline uint32_t jobq__hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint32_t h = 2166136261u;

	while (n--) {
		h ^= *s++;
		h *= 16777619u;
	}
	return h;
}

#endif
