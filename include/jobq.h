/* SPDX-License-Identifier: MIT */
/*
 * jobq.h - the whole public API of libjobq.
 *
 * A handle (jobq_t) is one connection to a jobqd manager. Every function
 * returns 0 (or a count) on success and a negative errno, or one of the
 * JOBQ_E* values below, on failure; jobq_strerror() turns either into text.
 *
 * Timeouts are in seconds as a double: a negative value waits forever, 0
 * tries once and returns -EAGAIN instead of waiting, a positive value waits
 * at most that long and then returns -ETIMEDOUT. NaN is no timeout: -EINVAL.
 *
 * Threads: a handle may be shared by the threads of one process. Requests
 * are serialized by the library and every completion goes to the thread
 * that waits for it. A handle must not be used across fork(): the child
 * opens its own. A request made through a handle that another process
 * opened (its copy in a forked child) fails with JOBQ_EFORKED instead of
 * corrupting the parent's rings; the child may jobq_close() its copy,
 * which leaves the parent's connection alone.
 */
#ifndef JOBQ_H
#define JOBQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JOBQ_API __attribute__((visibility("default")))

#define JOBQ_VERSION_MAJOR  0
#define JOBQ_VERSION_MINOR  1
#define JOBQ_VERSION_PATCH  0
#define JOBQ_VERSION_STRING "0.1.0"

typedef struct jobq jobq_t;
struct json_t; /* jansson */

/* ------------------------------------------------------------------------
 * Errors: -errno, or one of these (a range no errno uses).
 */
enum {
	JOBQ_EBASE = -10000,
	JOBQ_ENOMANAGER =
	    -10001, /* no manager answers in the instance directory */
	JOBQ_EVERSION = -10002, /* client and manager speak different layouts */
	JOBQ_EMISMATCH =
	    -10003, /* compare-and-swap: the value was not the expected one */
	JOBQ_EKIND = -10004, /* a lock of that name exists with another kind */
	JOBQ_ENOTNUM =
	    -10005, /* increment of a value that is not a decimal integer */
	JOBQ_ECLOSED =
	    -10006,	     /* the manager went away or dropped this client */
	JOBQ_EFULL = -10007, /* the store has no room (jobqd --memory) */
	JOBQ_ELIMIT =
	    -10008, /* a table is full: queues, locks, keys or clients */
	JOBQ_EJOBFAILED = -10009, /* the job ended dead: its attempts failed */
	JOBQ_EFORKED =
	    -10010, /* the handle was opened by another process (fork) */
	JOBQ_ELOST = -10011,  /* the manager restarted, or with --backend lost
			       * PostgreSQL: a lock request or a lock held
			       * was lost with it */
	JOBQ_EQUOTA = -10012, /* this client is at one of its quotas (jobq stats
				 --clients) */
	JOBQ_ELAST = -10013,
};

/*
 * jobq_strerror - text for a return value of this library.
 * @err: a negative errno or JOBQ_E* value.
 * Returns a static string; never NULL.
 */
JOBQ_API const char *jobq_strerror(int err);

/* ------------------------------------------------------------------------
 * Objects: bytes with a type tag. The empty object (len 0) is valid.
 */
enum jobq_type {
	JOBQ_T_NONE = 0,  /* Python's None: no payload */
	JOBQ_T_BYTES = 1, /* opaque bytes */
	JOBQ_T_JSON = 2,  /* UTF-8 JSON text */
	JOBQ_T_TEXT = 3,  /* UTF-8 text */
	JOBQ_T_CHUNK = 4, /* many objects in one: jobq_map_chunked()'s jobs */
	JOBQ_T_USER = 256 /* the first type number free for applications */
};

/* In jobq_obj_t.flags: data points into a buffer the caller owns
 * (jobq_get_many_into()); jobq_obj_free() does not free it. */
#define JOBQ_OBJ_BORROWED (1u << 0)

typedef struct jobq_obj {
	uint32_t type;	/* enum jobq_type or a user type */
	uint32_t flags; /* JOBQ_OBJ_BORROWED, else 0 */
	size_t len;
	void *data; /* malloc'd by the library; NUL-terminated one byte past len
		     */
} jobq_obj_t;

/* jobq_obj_free - free obj->data and clear the object. NULL is fine. */
JOBQ_API void jobq_obj_free(jobq_obj_t *obj);

/*
 * jobq_obj_json - parse a JSON object's payload with jansson.
 * Returns 0 and a new reference in *out, -EINVAL when the payload is not
 * valid JSON (the object is left untouched).
 */
JOBQ_API int jobq_obj_json(const jobq_obj_t *obj, struct json_t **out);

/* ------------------------------------------------------------------------
 * Connecting.
 */

/*
 * jobq_default_dir - the instance directory used when none is named:
 * $JOBQ_DIR, else $XDG_RUNTIME_DIR/jobq, else /tmp/jobq-$UID.
 * Returns 0, or -ENAMETOOLONG when buf (of len bytes) is too small.
 */
JOBQ_API int jobq_default_dir(char *buf, size_t len);

/*
 * jobq_open - connect to the manager of instance directory @dir (NULL: the
 * default directory) and fill *qp with a new handle.
 * Before it sends anything it checks whom it talks to: the directory must
 * belong to this user (effective uid) or root and not be writable by
 * others, and the manager behind its socket (SO_PEERCRED) must run as this
 * user, root or the directory's owner. A directory of another user is
 * accepted only when $JOBQ_GROUP names a group (name or number) that the
 * caller is a member of, the directory has that group and no access for
 * others (what `jobqd --group` makes).
 * Returns 0; JOBQ_ENOMANAGER when nothing answers there; JOBQ_EVERSION when
 * the manager speaks another layout; -EACCES when the manager refuses this
 * user or this library refuses the directory or manager; JOBQ_ELIMIT when
 * it has no room for another client; other -errno.
 * On failure *qp is untouched.
 */
JOBQ_API int jobq_open(jobq_t **qp, const char *dir);

/*
 * Reconnecting. When the manager goes away (it died, or was stopped) a
 * handle does not fail at once: the library connects again, with a
 * backoff from 10 ms doubling to 1 s, to the manager that starts in the
 * same directory, runs every check of jobq_open() again (a manager of
 * another user is refused, and the calls waiting fail with -EACCES), and
 * resends every request that had no answer yet, in its original order.
 * Blocked calls (a get on an empty queue, jobq_wait(), a join) simply
 * keep waiting; their timeouts count from the first sending.
 *
 * What applies once: every request that changes something (put, kv
 * set/del/incr/cas, submit, a job's result, cancel, ...) carries an id,
 * and the manager answers a resent one it had applied with the answer it
 * gave then (the same job id, the value an incr returned the first time).
 * What may come twice: an object that a get received just before the
 * manager died, before the manager had journaled its taking, comes back
 * on the queue (gets are at least once, never lost). A job that was
 * running under a worker that is not a daemon (jobq_worker_opts.daemon 0)
 * stays running with no worker (jobq_job_info.worker 0) for the rejoin
 * grace, jobqd --rejoin-grace (default 5 s, never past the end of its
 * lease), handed to nobody: its worker reconnects and takes it back
 * (jobq_worker_run() does), and its result is accepted with the attempt it
 * had. When the grace ends first, the job goes back to ready, the attempt
 * counted, and runs again; a result of the old worker for it is then
 * refused as stale (-ESTALE) once another worker took it. A daemon
 * worker's job, whose worker died with the manager, goes back to ready at
 * once. Locks do not survive
 * a restart: a lock request in flight fails with JOBQ_ELOST (jobq_lock*()
 * acquire again by name by themselves) and a lock held is no longer held.
 *
 * The window: a manager that has not come back within it fails the calls
 * with JOBQ_ECLOSED (the message says the manager in DIR went away and did
 * not come back within N s), and so does every later call on the handle.
 * It is jobq_open_opts.reconnect, else $JOBQ_RECONNECT (seconds; 0:
 * never reconnect), else 30 s. A manager stopped on purpose (jobq
 * shutdown, SIGTERM) gets at most 5 s: enough for a restart (systemctl
 * restart is a stop and a start), short enough that a manager stopped
 * for good does not keep every program waiting for the whole window.
 */
struct jobq_open_opts {
	/* Seconds to keep reconnecting; 0: $JOBQ_RECONNECT, else 30;
	 * < 0: never (JOBQ_ECLOSED as soon as the manager goes). */
	double reconnect;
	/* 1: a call that waits for the manager polls for the answer and never
	 * sleeps, the lowest latency for a whole CPU per waiting thread (for
	 * the lowest latency end to end, run jobqd --busy-poll too); 0:
	 * $JOBQ_BUSY_POLL when it is 1, else poll about as long as a wake-up
	 * costs on this machine, then sleep. */
	uint32_t busy_poll;
	uint32_t reserved0;   /* leave 0 */
	uint64_t reserved[6]; /* room to grow: leave 0 */
};

/*
 * jobq_open_ex - jobq_open() with options (@opts may be NULL: the
 * defaults). Returns what jobq_open() returns; -EINVAL when a reserved
 * field is not 0.
 */
JOBQ_API int jobq_open_ex(jobq_t **qp, const char *dir,
			  const struct jobq_open_opts *opts);

/*
 * jobq_close - disconnect and free the handle. Requests still in flight are
 * abandoned: their callbacks never run. Locks the handle holds are released
 * by the manager; objects it was being handed go back to their queues.
 */
JOBQ_API void jobq_close(jobq_t *q);

/* jobq_dir - the instance directory this handle is connected to. */
JOBQ_API const char *jobq_dir(const jobq_t *q);

/* jobq_max_object - the largest object the manager accepts, in bytes. */
JOBQ_API size_t jobq_max_object(const jobq_t *q);

/* jobq_ping - one round trip through the manager. Returns 0 or -errno. */
JOBQ_API int jobq_ping(jobq_t *q);

/*
 * jobq_shutdown - ask the manager to stop: gracefully (@now = 0: running
 * work drains first) or at once. Returns 0 once the manager has accepted.
 */
JOBQ_API int jobq_shutdown(jobq_t *q, int now);

/* ------------------------------------------------------------------------
 * Event-loop integration and asynchronous calls.
 *
 * Every blocking call below is a thin wrapper over an asynchronous one. An
 * application with its own event loop polls jobq_fd() for POLLIN and calls
 * jobq_process() when it is readable; that runs the callbacks of every
 * finished request in the calling thread.
 */

/*
 * A completion callback. @res is what the blocking call would have returned.
 * @obj is set for gets that succeeded, else NULL; the library frees it after
 * the callback returns, unless the callback takes obj->data (and sets it to
 * NULL). A callback is never called after jobq_close(), and never for a
 * request whose submission itself returned an error.
 */
typedef void (*jobq_cb)(jobq_t *q, int res, jobq_obj_t *obj, void *arg);

/*
 * jobq_fd - a descriptor that becomes readable when completions are waiting.
 * Calling it switches the handle to always signal the descriptor.
 */
JOBQ_API int jobq_fd(jobq_t *q);

/*
 * jobq_process - run the callbacks of finished requests without blocking.
 * Returns how many ran, or -errno (JOBQ_ECLOSED when the manager is gone).
 * The one exception to "without blocking": when it finds the manager gone,
 * it reconnects (see "Reconnecting" above), which may take up to the
 * window; the descriptor of jobq_fd() stays the same across it.
 */
JOBQ_API int jobq_process(jobq_t *q);

/*
 * jobq_wait_idle - block until no asynchronous request of this handle is in
 * flight, running callbacks as they finish, or until @timeout passes.
 * Returns 0, -ETIMEDOUT or -errno.
 */
JOBQ_API int jobq_wait_idle(jobq_t *q, double timeout);

/* ------------------------------------------------------------------------
 * Queues. Naming a queue that does not exist creates it, unbounded.
 * Objects come out in the order they went in.
 *
 * With jobqd --backend the objects are kept in PostgreSQL and shared by
 * every host's manager on the database: a put is answered once committed,
 * and a get on any host takes the oldest object (each object goes to one
 * getter; a put on another host wakes a blocked get within a
 * notification). Delivery is at least once: a put sent again after its
 * manager's connection was cut may store its object twice, and an object
 * handed out on a host killed before its client read it comes back after
 * five minutes. The limits of jobq_queue_opts, task_done and join are
 * every host's: a put on any host waits for room that a get on any host
 * makes, and a join returns once task_done (on any host) finished every
 * object put on any. jobq_queue_remove() removes the queue on every host
 * (its waiters everywhere fail with -EIDRM). jobq_queues() shows the
 * objects waiting in PostgreSQL as counted within the last second, and
 * lists the queues of other hosts too.
 */
struct jobq_queue_opts {
	uint64_t max_depth;   /* most objects held; 0: unbounded */
	uint64_t max_bytes;   /* most payload bytes held; 0: unbounded */
	uint64_t reserved[6]; /* room to grow: leave 0 */
};

/*
 * jobq_queue_open - create a queue, or change the limits of an existing one.
 * @opts may be NULL (unbounded). Returns 0, -EINVAL for a bad name (empty or
 * longer than 63 bytes), JOBQ_ELIMIT when the queue table is full.
 */
JOBQ_API int jobq_queue_open(jobq_t *q, const char *name,
			     const struct jobq_queue_opts *opts);

/*
 * jobq_put - copy @len bytes at @data onto queue @queue as an object of
 * @type. Blocks while the queue is at its limits or the store is full.
 * Returns 0; -E2BIG when len exceeds jobq_max_object(); -EAGAIN (timeout 0)
 * when it would block on a queue limit, JOBQ_EFULL when it would block on
 * a full store; -ETIMEDOUT.
 */
JOBQ_API int jobq_put(jobq_t *q, const char *queue, uint32_t type,
		      const void *data, size_t len, double timeout);

/*
 * jobq_put_durable - jobq_put() acknowledged only once the manager's
 * journal is synced to disk (fdatasync), even when jobqd runs with the
 * default --fsync none: the object survives a crash of the machine, not
 * only of jobqd. Returns what jobq_put() returns, -EOPNOTSUPP when the
 * journal is on tmpfs (there is no disk to sync; give jobqd a --journal
 * on a disk), or the journal's write error (-ENOSPC, -EIO) while it has
 * one.
 */
JOBQ_API int jobq_put_durable(jobq_t *q, const char *queue, uint32_t type,
			      const void *data, size_t len, double timeout);

/* jobq_put_json - jobq_put() of a JSON value as JOBQ_T_JSON. */
JOBQ_API int jobq_put_json(jobq_t *q, const char *queue,
			   const struct json_t *value, double timeout);

/*
 * jobq_put_many - put @n objects in one batch (one wake-up of the manager).
 * Waits (per @timeout) only until the first object fits, then puts as many
 * as fit without waiting. Returns how many were put (always the first ones,
 * in order), or -errno as jobq_put() when none was. The objects are copied;
 * the caller keeps @objs.
 */
JOBQ_API int jobq_put_many(jobq_t *q, const char *queue, const jobq_obj_t *objs,
			   size_t n, double timeout);

/*
 * jobq_get - take the oldest object off @queue into *out (free it with
 * jobq_obj_free()). Returns 0, -EAGAIN (timeout 0, queue empty), -ETIMEDOUT.
 */
JOBQ_API int jobq_get(jobq_t *q, const char *queue, jobq_obj_t *out,
		      double timeout);

/* jobq_get_json - jobq_get() and parse; -EINVAL when it is not JSON (the
 * object is consumed all the same). */
JOBQ_API int jobq_get_json(jobq_t *q, const char *queue, struct json_t **out,
			   double timeout);

/*
 * jobq_get_many - take up to @max objects: waits (per @timeout) for the
 * first, then takes what else is there without waiting. Returns how many
 * were stored in out[0..], or -errno.
 */
JOBQ_API int jobq_get_many(jobq_t *q, const char *queue, jobq_obj_t *out,
			   size_t max, double timeout);

/*
 * jobq_get_many_into - jobq_get_many() that copies the payloads into the
 * caller's @buf of @buflen bytes instead of a malloc'd block each, so a
 * consumer that takes batches of large objects costs no malloc, free or
 * heap trim per object. Each out[i].data that fits points into @buf
 * (8-byte aligned, NUL-terminated one byte past len) and has
 * JOBQ_OBJ_BORROWED in out[i].flags: it is valid while @buf is, and
 * jobq_obj_free() only clears it. An object that does not fit in what is
 * left of @buf is malloc'd as in jobq_get_many() (flags 0). Every object
 * is taken either way; nothing is lost for want of room. Returns how many
 * were stored in out[0..], or -errno as jobq_get_many(); -EINVAL when @buf
 * is NULL and @buflen is not 0.
 */
JOBQ_API int jobq_get_many_into(jobq_t *q, const char *queue, jobq_obj_t *out,
				size_t max, void *buf, size_t buflen,
				double timeout);

/*
 * jobq_put_async / jobq_get_async - submit a put or get and return without
 * waiting. @cb runs from jobq_process(), jobq_wait_idle() or any blocking
 * call of this handle, with what jobq_put() / jobq_get() would have
 * returned; a get's object is passed to @cb (see jobq_cb for who frees
 * it). The put copies @data before it returns. Returns 0 once submitted,
 * or -errno, and then @cb is never called.
 */
JOBQ_API int jobq_put_async(jobq_t *q, const char *queue, uint32_t type,
			    const void *data, size_t len, double timeout,
			    jobq_cb cb, void *arg);
JOBQ_API int jobq_get_async(jobq_t *q, const char *queue, double timeout,
			    jobq_cb cb, void *arg);

/*
 * JoinableQueue: every put makes one unit of unfinished work on its queue.
 * jobq_task_done - finish one unit of @queue. Returns 0, or -EINVAL when
 * called more often than objects were put.
 * jobq_join - wait until @queue has no unfinished unit. Returns 0,
 * -EAGAIN (timeout 0), -ETIMEDOUT.
 * Both return -EINVAL for a bad queue name.
 */
JOBQ_API int jobq_task_done(jobq_t *q, const char *queue);
JOBQ_API int jobq_join(jobq_t *q, const char *queue, double timeout);

/*
 * jobq_queue_remove - remove queue @name and the objects it holds, so that
 * its record serves another queue. Getters, putters and joiners blocked on
 * it fail with -EIDRM; a request that names it by an id cached before the
 * removal fails with -ESTALE (naming it again makes a new, empty queue).
 * Objects handed to a getter and not yet received are dropped too.
 * Returns how many objects were dropped (>= 0), -ENOENT when no queue has
 * that name, -EBUSY while jobs (of any state, finished ones until jobqd
 * --keep lets them go) belong to it, -EINVAL for a bad name.
 */
JOBQ_API int jobq_queue_remove(jobq_t *q, const char *name);

/* What `jobq queues` shows; read from the store without a round trip. */
struct jobq_queue_info {
	char name[64];
	uint64_t depth;
	uint64_t bytes;
	uint64_t max_depth;
	uint64_t max_bytes;
	uint32_t getters; /* blocked in get */
	uint32_t putters; /* blocked in put */
	uint64_t total_put;
	uint64_t total_get;
	uint64_t unfinished;
	/* The queue's jobs (jobq_submit_opts.queue): */
	uint64_t jobs_ready;   /* ready to run */
	uint32_t jobs_running; /* handed to workers */
	uint32_t parallel;     /* most running at once, 0: no limit */
	int paused;	       /* jobq_pause(): none is handed out */
	uint32_t reserved0;
	uint64_t reserved[4];
};

/*
 * jobq_queues - fill *out with a malloc'd array of every queue (free() it,
 * even when *n is 0) and *n with its length. Reads the store: no round
 * trip. Returns 0 or -ENOMEM (then *out is untouched).
 */
JOBQ_API int jobq_queues(jobq_t *q, struct jobq_queue_info **out, size_t *n);

/* jobq_queue_info - one queue by name; -ENOENT when there is none. */
JOBQ_API int jobq_queue_info(jobq_t *q, const char *name,
			     struct jobq_queue_info *out);

/* ------------------------------------------------------------------------
 * Key/value store. Keys are 1 to 255 bytes; values are objects.
 *
 * With jobqd --backend (PostgreSQL) the store is shared by every host's
 * manager on the database. Each host keeps a copy that reads come from,
 * with no round trip as always. A write is one atomic statement in
 * PostgreSQL, answered once it committed and once this host's copy holds
 * it: a host reads its own writes at once, and incr and cas are atomic
 * across hosts (two hosts' incrs both count; of racing cas from one value
 * exactly one succeeds). Other hosts read a write once its notification
 * reached them (eventually consistent: a millisecond or so on a LAN), and
 * a host whose connection was down reads the whole table when it is back.
 * While PostgreSQL cannot be reached, writes wait for it. A value over
 * jobq_max_object() or a full local store is refused before anything is
 * sent, as without a backend.
 */

/*
 * jobq_kv_set - set @key to a copy of the @len bytes at @data, as an object
 * of @type (an empty value is fine), replacing any value it had. Returns 0
 * once the manager has stored it; -EINVAL for a bad key; -E2BIG when @len
 * exceeds jobq_max_object(); JOBQ_EFULL when the store has no room;
 * JOBQ_ELIMIT when the key table is full.
 */
JOBQ_API int jobq_kv_set(jobq_t *q, const char *key, uint32_t type,
			 const void *data, size_t len);

/*
 * jobq_kv_set_async - jobq_kv_set() without waiting: many sets can be in
 * flight, and they are applied in the order they were submitted. @cb (may
 * be NULL) gets the result. Returns 0 once submitted, or -errno.
 */
JOBQ_API int jobq_kv_set_async(jobq_t *q, const char *key, uint32_t type,
			       const void *data, size_t len, jobq_cb cb,
			       void *arg);

/*
 * jobq_kv_get - copy the value of @key into *out (jobq_obj_free() it).
 * Reads the store directly: no round trip to the manager (with jobqd
 * --backend, this host's copy: another host's write shows once its
 * notification arrived).
 * Returns 0 or -ENOENT.
 */
JOBQ_API int jobq_kv_get(jobq_t *q, const char *key, jobq_obj_t *out);

/*
 * jobq_kv_get_buf - like jobq_kv_get() into a caller's buffer of @cap bytes.
 * Returns the value's length (which may exceed cap: then only cap bytes
 * were copied), or -ENOENT. *type, when not NULL, gets the type.
 */
JOBQ_API ssize_t jobq_kv_get_buf(jobq_t *q, const char *key, void *buf,
				 size_t cap, uint32_t *type);

/* jobq_kv_del - remove @key and its value. Returns 0, -ENOENT when there
 * is no such key, -EINVAL for a bad key. */
JOBQ_API int jobq_kv_del(jobq_t *q, const char *key);

/*
 * jobq_kv_incr - atomically add @by to the decimal integer stored at @key
 * (a missing key counts as 0) and store the new value in *out if not NULL.
 * Returns 0, JOBQ_ENOTNUM when the value is not a decimal integer,
 * -ERANGE on overflow. With jobqd --backend, counted once even when the
 * manager's connection to PostgreSQL is cut with it sent (it is sent
 * again under its request id); -EIO after five such cuts in a row.
 */
JOBQ_API int jobq_kv_incr(jobq_t *q, const char *key, int64_t by, int64_t *out);

/*
 * jobq_kv_cas - set @key to the new value (@len bytes at @data, of @type)
 * only if its current value is exactly @expect (@elen bytes), or, when
 * @expect is NULL, only if the key does not exist; atomically, in the
 * manager. Returns 0 when it set the value, JOBQ_EMISMATCH when the value
 * (or the key's existence) was not as expected, -EINVAL, -E2BIG,
 * JOBQ_EFULL as jobq_kv_set(). With jobqd --backend, atomic in PostgreSQL
 * across hosts, and applied once as jobq_kv_incr() says.
 */
JOBQ_API int jobq_kv_cas(jobq_t *q, const char *key, const void *expect,
			 size_t elen, uint32_t type, const void *data,
			 size_t len);

/*
 * jobq_kv_list - call @cb for every key that starts with @prefix (NULL or
 * "": all keys), in no particular order, reading the store directly. The
 * key and value are valid during the call only. A non-zero return from
 * @cb stops the walk and is returned.
 */
typedef int (*jobq_kv_cb)(const char *key, const jobq_obj_t *value, void *arg);
JOBQ_API int jobq_kv_list(jobq_t *q, const char *prefix, jobq_kv_cb cb,
			  void *arg);

/* ------------------------------------------------------------------------
 * Named locks. A lock belongs to the thread that took it (through this
 * handle); when the handle's process dies or closes the handle, the manager
 * releases everything it held. The manager sees every holder and waiter:
 * a request that would close a cycle of processes waiting on each other
 * fails at once with -EDEADLK instead of hanging.
 *
 * With jobqd --backend, Locks, RLocks and Semaphores are shared by every
 * host on the database: each unit held here is also held by this host's
 * manager as a PostgreSQL session advisory lock, and is granted only once
 * PostgreSQL said so. A unit held on another host is waited for (with the
 * same timeouts) until that host releases it, which wakes the waiters of
 * every host through a notification, or until that host dies or loses its
 * connection, which the others notice within 300 ms. A host's own waiters
 * go before other hosts'. A release is answered before PostgreSQL has let
 * the advisory lock go: another host's waiter has the lock within a round
 * trip to PostgreSQL, and a try-once there just after the release may
 * still say -EAGAIN. When this host's manager loses its connection to
 * PostgreSQL, the locks held here are lost (PostgreSQL let the advisory
 * locks go): a holder's jobq_lock_release() returns JOBQ_ELOST, as after a
 * manager restart, and requests waiting go on once it reconnects. Deadlock
 * detection sees this host's holders and waiters only, and Events stay
 * with each host. A semaphore must be created with the same value on
 * every host (each host counts its own value; the units are shared).
 */
enum jobq_lock_kind {
	JOBQ_LOCK = 1,	    /* one holder */
	JOBQ_RLOCK = 2,	    /* one holder, who may take it again */
	JOBQ_SEMAPHORE = 3, /* up to `value` holders */
	JOBQ_EVENT = 4,	    /* a flag to wait for */
};

/*
 * jobq_lock_create - create lock @name of @kind (@value: a semaphore's
 * initial count, else ignored). Creating one that exists with the same kind
 * is fine; another kind gives JOBQ_EKIND. Acquiring a lock that does not
 * exist creates a plain JOBQ_LOCK.
 */
JOBQ_API int jobq_lock_create(jobq_t *q, const char *name, int kind,
			      unsigned value);

/*
 * jobq_lock_acquire - take lock @name (created as a plain lock when
 * missing) for the calling thread, waiting per @timeout; an RLock again
 * by its holder, a semaphore while units are left. Returns 0; -EAGAIN
 * (timeout 0), -ETIMEDOUT; -EDEADLK when waiting would close a cycle of
 * waiters, or when the calling thread already holds this plain lock;
 * JOBQ_EKIND for an event; -EINVAL for a bad name.
 */
JOBQ_API int jobq_lock_acquire(jobq_t *q, const char *name, double timeout);

/*
 * jobq_lock_acquire_lease - jobq_lock_acquire() with a lease: if the
 * calling thread has not released the unit @lease seconds after it got
 * it, the manager takes it back and gives it to the next waiter, so that
 * a holder that is stopped (SIGSTOP, a debugger) or stuck does not stop
 * everyone else for ever. A release after the lease ran out returns
 * -EPERM. Returns what jobq_lock_acquire() returns, or -EINVAL for a
 * lease that is not a positive number of seconds.
 */
JOBQ_API int jobq_lock_acquire_lease(jobq_t *q, const char *name,
				     double timeout, double lease);

/* jobq_lock_release - give back one unit of lock @name held by the calling
 * thread, waking the next waiter. Returns 0, -EPERM when the calling
 * thread does not hold it, or JOBQ_ELOST when it held it and lost it to a
 * manager restart or (--backend) a lost connection to PostgreSQL. */
JOBQ_API int jobq_lock_release(jobq_t *q, const char *name);

/*
 * jobq_lock_many - take @n plain locks (created when missing) as one
 * request, in one global order (sorted by the manager, whatever order
 * @names has), all or none. Returns 0 with all held; -EAGAIN (timeout 0),
 * -ETIMEDOUT, -EDEADLK (waiting would close a cycle), -EINVAL (a bad name,
 * or more than 64 locks), JOBQ_EKIND, and then none is held.
 */
JOBQ_API int jobq_lock_many(jobq_t *q, const char *const *names, size_t n,
			    double timeout);

/*
 * jobq_unlock_many - release @n locks in one batch. Every lock the caller
 * holds among them is released; returns 0, or the first error in @names
 * order (-EPERM for one the calling thread does not hold).
 */
JOBQ_API int jobq_unlock_many(jobq_t *q, const char *const *names, size_t n);

/*
 * Events (Python's Event), created on first use. jobq_event_set - set the
 * flag and wake every waiter; jobq_event_clear - clear it; jobq_event_wait
 * - return at once while set, else wait for a set. Return 0, -EAGAIN
 * (timeout 0), -ETIMEDOUT, -EINVAL for a bad name, JOBQ_EKIND when @name
 * is a lock of another kind.
 */
JOBQ_API int jobq_event_set(jobq_t *q, const char *name);
JOBQ_API int jobq_event_clear(jobq_t *q, const char *name);
JOBQ_API int jobq_event_wait(jobq_t *q, const char *name, double timeout);

/* What `jobq locks` shows; read from the store without a round trip. */
struct jobq_lock_info {
	char name[64];
	int kind;	/* enum jobq_lock_kind */
	unsigned limit; /* semaphore value, else 1 */
	unsigned held;	/* units held (RLock: depth) */
	unsigned waiters;
	pid_t holder;		/* a holder's pid, 0 when free */
	int is_set;		/* events */
	uint64_t held_since_ns; /* CLOCK_REALTIME */
	/* With jobqd --backend: the host of holder, "hostname:jobqd pid";
	 * "" when free or without a backend. */
	char host[64];
};

/*
 * jobq_locks - every lock, as jobq_queues() lists queues: a malloc'd array
 * in *out (free() it) of *n entries. Returns 0 or -ENOMEM. With jobqd
 * --backend, held, waiters and holder count every host on the database
 * (what other hosts hold reaches this host's manager asynchronously,
 * usually within milliseconds, within about a second of a host's death),
 * and a lock that only another host uses is listed too.
 */
JOBQ_API int jobq_locks(jobq_t *q, struct jobq_lock_info **out, size_t *n);

/* ------------------------------------------------------------------------
 * Statistics, read from the store without a round trip.
 */
struct jobq_stats {
	pid_t manager_pid;
	uint64_t started_ns; /* CLOCK_REALTIME */
	uint64_t generation;
	uint64_t memory_total; /* bytes of heap for objects */
	uint64_t memory_used;
	uint64_t max_object;
	uint32_t clients;
	uint32_t queues;
	uint32_t locks;
	uint32_t keys;
	uint64_t puts, gets;
	uint64_t kv_sets, kv_dels;
	uint64_t lock_acquires, lock_timeouts, deadlocks;
	uint64_t clients_total, clients_died, requeued, bad_requests;
	uint64_t submitted, done, failed, retried, dead;
	/* Jobs in each state now, indexed by enum jobq_job_state (0 unused). */
	uint64_t jobs_by_state[16];
	/* The journal (jobqd --fsync, --journal). */
	int journal_mode;	/* 0 none, 1 batch, 2 always */
	int journal_error;	/* -errno while changes fail, else 0 */
	int journal_last_error; /* the latest error ever, 0: none */
	uint64_t journal_size;	/* bytes of the journal file */
	uint64_t journal_snapshot_size;
	uint64_t journal_last_sync_ns; /* CLOCK_REALTIME, 0: never synced */
	uint64_t journal_errors;       /* failed writes and syncs */
	uint64_t journal_snapshots;    /* written since the manager started */
	/* The sizes of the tables (jobqd --max-queues, --max-locks). */
	uint32_t max_queues, max_locks;
	/* Job types named by a job or a worker now, and the size of their
	 * table (jobqd --max-types). */
	uint32_t types, max_types;
	uint64_t reserved[6];
};

/* One connected client, as `jobq stats --clients` shows it. */
struct jobq_client_info {
	pid_t pid;
	uint32_t uid;
	char name[32];
	uint64_t connected_ns; /* CLOCK_REALTIME */
	uint64_t requests;     /* requests it sent */
	uint64_t bad;	       /* of those, refused as malformed */
	uint64_t refused;      /* refused by one of its quotas */
	uint32_t waits;	       /* requests parked now (blocked gets, ...) */
	uint32_t queues;       /* queues it made and did not remove */
	uint32_t locks;	       /* locks it made */
	uint32_t quota_waits, quota_queues, quota_locks; /* 0: none */
	uint64_t bytes;	      /* payload bytes of its puts still queued */
	uint64_t quota_bytes; /* 0: none */
	uint32_t jobs;	      /* jobs it submitted that are not final yet */
	uint32_t held;	      /* locks it holds now */
	uint32_t quota_jobs, quota_held; /* 0: none */
	uint64_t reserved[2];
};

/*
 * jobq_clients - fill *out with a malloc'd array of every connected
 * client (free() it, even when *n is 0) and *n with its length. Reads the
 * store: no round trip. A client has quotas: requests parked at once,
 * queues made, locks made, bytes of its puts still queued (only with
 * jobqd --client-max-bytes; objects handed straight to a getter do not
 * count), jobs it submitted that are not final yet (counted on the
 * connection that submitted them: they stop counting when it closes, and
 * live on), locks it holds at once; a request past one
 * fails with JOBQ_EQUOTA
 * (the counts below show which), and a client that sends too many
 * malformed requests is dropped. Returns 0 or -ENOMEM.
 */
JOBQ_API int jobq_clients(jobq_t *q, struct jobq_client_info **out, size_t *n);

/*
 * jobq_stats - fill *out with the manager's counters and memory use, read
 * from the store without a round trip (each counter is exact; the set is
 * not one atomic snapshot). Returns 0.
 */
JOBQ_API int jobq_stats(jobq_t *q, struct jobq_stats *out);

/* ------------------------------------------------------------------------
 * Jobs: the Pool and Executor of jobq.
 *
 * A job is a typed request (type name + args object) that a worker serving
 * that type runs; its id is a future. States go
 *   waiting (on --after) -> delayed -> ready -> running ->
 *   succeeded | failed (a retry is pending) | dead | cancelled
 * and only the manager changes them. An attempt is counted when the job is
 * handed to a worker, so a job that kills its worker every time ends dead
 * after its attempts. Finished jobs stay readable for jobqd --keep.
 */
enum jobq_job_state {
	JOBQ_JOB_WAITING = 1,
	JOBQ_JOB_DELAYED = 2,
	JOBQ_JOB_READY = 3,
	JOBQ_JOB_RUNNING = 4,
	JOBQ_JOB_SUCCEEDED = 5,
	JOBQ_JOB_FAILED = 6,
	JOBQ_JOB_DEAD = 7,
	JOBQ_JOB_CANCELLED = 8,
};

/* jobq_job_state_name - "ready", "running", ...; "unknown" otherwise. */
JOBQ_API const char *jobq_job_state_name(int state);

/* Submit options; a zeroed struct (or NULL) means the defaults. */
struct jobq_submit_opts {
	const char *queue;  /* NULL: "default" */
	int priority;	    /* higher runs first; default 0 */
	double delay;	    /* seconds before it becomes ready */
	double timeout;	    /* the lease in seconds; 0: 300 */
	int retries;	    /* attempts after the first; < 0: none; 0: 3 */
	int no_retry;	    /* set: exactly one attempt */
	const char *unique; /* a live job with this key is returned instead */
	const uint64_t *after; /* run only after these succeeded */
	size_t nafter;	       /* at most 64 */
	/* Set: acknowledged only once the journal is synced to disk, as
	 * jobq_put_durable() (-EOPNOTSUPP when it is on tmpfs). */
	int durable;
	int reserved0;	      /* leave 0 */
	uint64_t reserved[5]; /* room to grow: leave 0 */
};

/*
 * jobq_submit - submit a job of @type with @args (@len bytes of @args_type)
 * and store its id in *id. Returns 0; 1 when @opts->unique named a live job
 * (its id is stored); -E2BIG for args over jobq_max_object(); -EINVAL for a
 * bad type name (1..47 bytes of UTF-8, no control characters or commas),
 * options, or args of type JOBQ_T_JSON that are not JSON; -ENOENT when an
 * @after id is unknown; JOBQ_EFULL / JOBQ_ELIMIT when the store or job table is
 * full (finished jobs inside jobqd --keep are never dropped to make room);
 * with @opts->durable, -EOPNOTSUPP when the journal is on tmpfs.
 */
JOBQ_API int jobq_submit(jobq_t *q, const char *type, uint32_t args_type,
			 const void *args, size_t len,
			 const struct jobq_submit_opts *opts, uint64_t *id);

/* jobq_submit_json - jobq_submit() with a JSON value as args. */
JOBQ_API int jobq_submit_json(jobq_t *q, const char *type,
			      const struct json_t *args,
			      const struct jobq_submit_opts *opts,
			      uint64_t *id);

/*
 * jobq_submit_many - submit @n jobs of one type in one batch (one wake-up),
 * ids[i] for args[i]. Returns how many were submitted (the first ones), or
 * -errno when none was. The batch stops before the first args that
 * jobq_submit() would refuse (too big, or JOBQ_T_JSON that is not JSON).
 */
JOBQ_API int jobq_submit_many(jobq_t *q, const char *type,
			      const jobq_obj_t *args, size_t n,
			      const struct jobq_submit_opts *opts,
			      uint64_t *ids);

/*
 * jobq_job_wait - wait until job @id is final. Returns 0 when it
 * succeeded, JOBQ_EJOBFAILED when it is dead, -ECANCELED when cancelled,
 * -ENOENT for an unknown (or expired) id, -ETIMEDOUT / -EAGAIN. Without
 * a backend a job already final is answered from the store, with no
 * round trip. With jobqd --backend the manager confirms a final state
 * against PostgreSQL first (one read), so a wait begun after a retry or
 * kick of the job answered, on any host, waits for the new run; the
 * store (jobq_job_result(), jobq_job_info()) then shows what it confirmed.
 */
JOBQ_API int jobq_job_wait(jobq_t *q, uint64_t id, double timeout);

/*
 * jobq_wait_any / jobq_wait_all - wait for one or all of @n jobs to be
 * final. wait_any stores the index of a final job in *which and returns
 * what jobq_job_wait() returns for it; wait_all returns 0 when all
 * succeeded, else the first failure's code in input order.
 */
JOBQ_API int jobq_wait_any(jobq_t *q, const uint64_t *ids, size_t n,
			   double timeout, size_t *which);
JOBQ_API int jobq_wait_all(jobq_t *q, const uint64_t *ids, size_t n,
			   double timeout);

/*
 * A done callback: run from jobq_process() or jobq_wait_idle() once job @id
 * is final; @res as jobq_job_wait() returns it.
 */
typedef void (*jobq_job_cb)(jobq_t *q, uint64_t id, int res, void *arg);

/*
 * jobq_job_on_done - call @cb once job @id is final (a done callback, as
 * Future.add_done_callback). It runs in the thread that calls
 * jobq_process(), jobq_wait_idle() or a blocking call of this handle, at
 * most once, with @res as jobq_job_wait() returns it (-ENOENT for an
 * unknown id). Returns 0 once registered, or -EINVAL (@cb NULL), -ENOMEM,
 * JOBQ_ECLOSED, and then the callback never runs.
 */
JOBQ_API int jobq_job_on_done(jobq_t *q, uint64_t id, jobq_job_cb cb,
			      void *arg);

/*
 * jobq_job_result - copy the job's result (succeeded) or its error text
 * (failed, dead, cancelled; JOBQ_T_TEXT) into *out. Reads the store: no
 * round trip. Returns 0, -ENOENT, -EAGAIN when the job is not final yet.
 */
JOBQ_API int jobq_job_result(jobq_t *q, uint64_t id, jobq_obj_t *out);

/*
 * jobq_apply - submit and wait; the result (or error text) goes to *out.
 * Returns what jobq_job_wait() returns, or -ENODATA when the job succeeded
 * but was gone before its result could be read (jobqd --keep ran out):
 * never 0 with an empty result.
 */
JOBQ_API int jobq_apply(jobq_t *q, const char *type, uint32_t args_type,
			const void *args, size_t len,
			const struct jobq_submit_opts *opts, jobq_obj_t *out,
			double timeout);

/*
 * jobq_map - one job of @type per input, at most @window in flight (0: 256),
 * results[i] for inputs[i]. Returns 0 when all succeeded, else the first
 * failure's code in input order (results of the others are still filled;
 * a failed one holds its error text).
 */
JOBQ_API int jobq_map(jobq_t *q, const char *type, const jobq_obj_t *inputs,
		      size_t n, size_t window,
		      const struct jobq_submit_opts *opts, jobq_obj_t *results,
		      double timeout);

/*
 * jobq_map_chunked - jobq_map() that sends its inputs @chunk at a time, as
 * ProcessPoolExecutor.map(chunksize=) does: one job of @type carries up to
 * @chunk inputs (fewer when more would pass jobq_max_object()) as one
 * object of type JOBQ_T_CHUNK; the worker runs its handler on each input
 * in turn, in the same job, and returns their results together; @window
 * counts such jobs. Small jobs then cost one submit, reservation and
 * result for @chunk inputs, not one each.
 *
 * What a chunk changes: the inputs of one chunk share its job (its id,
 * attempt, lease and --timeout, which must cover the whole chunk), and
 * each input is tried once inside it: a handler that fails one input
 * fails that input's result (JOBQ_EJOBFAILED, its error text), not the
 * chunk, and it is not retried. A chunk whose worker dies, or whose lease
 * runs out, runs again as a whole (every input again), as any job does.
 * Any worker of this library serves chunks of the types it handles.
 * A chunk takes 8 bytes more than its inputs, and 12 an input: an input
 * within 20 bytes of jobq_max_object() fails with -E2BIG here (jobq_map()
 * would take it), and the results of one chunk must fit in
 * jobq_max_object() as well, or the chunk fails for good, saying so.
 * Returns as jobq_map(); @chunk 0 or 1 is jobq_map().
 */
JOBQ_API int jobq_map_chunked(jobq_t *q, const char *type,
			      const jobq_obj_t *inputs, size_t n, size_t chunk,
			      size_t window,
			      const struct jobq_submit_opts *opts,
			      jobq_obj_t *results, double timeout);

/*
 * jobq_cancel - cancel job @id: a job not yet running becomes cancelled at
 * once; a running one's worker is told (jobq_job_cancelled() turns true and
 * its IO returns -ECANCELED) and it is stopped after a grace period.
 * jobq_retry - run a failed, dead or cancelled job again.
 * jobq_kick - retry dead job @id, or every dead job when @id is 0.
 * Return 0 (jobq_kick(q, 0): how many were kicked), -ENOENT for an unknown
 * id, -EALREADY when there is nothing to do (a final job cancelled, a job
 * that is not failed, dead or cancelled retried).
 */
JOBQ_API int jobq_cancel(jobq_t *q, uint64_t id);
JOBQ_API int jobq_retry(jobq_t *q, uint64_t id);
JOBQ_API int jobq_kick(jobq_t *q, uint64_t id);

/*
 * jobq_pause / jobq_resume - stop and restart handing out @queue's jobs to
 * workers (running ones go on). jobq_queue_parallel - at most @parallel of
 * @queue's jobs run at once, over all workers (0: no limit). A queue named
 * for the first time is created. Return 0 or -EINVAL (a bad name).
 */
JOBQ_API int jobq_pause(jobq_t *q, const char *queue);
JOBQ_API int jobq_resume(jobq_t *q, const char *queue);
JOBQ_API int jobq_queue_parallel(jobq_t *q, const char *queue,
				 unsigned parallel);

/* What `jobq show` prints; read from the store without a round trip. */
struct jobq_job_info {
	uint64_t id;
	char type[48];
	char queue[64];
	int state; /* enum jobq_job_state */
	int priority;
	unsigned attempts, max_attempts;
	/* who runs it or ran it last, 0: nobody (a RUNNING job with 0 waits
	 * for its worker after a manager restart: see "Reconnecting" above
	 * jobq_open_ex()) */
	pid_t worker;
	double progress; /* percent */
	uint64_t created_ns, started_ns, finished_ns,
	    run_at_ns;	     /* REALTIME, 0: not yet */
	double lease;	     /* seconds */
	int type_has_worker; /* a live worker serves this type */
};

/*
 * jobq_job_info - fill *out with what is known of job @id, read from the
 * store without a round trip. Returns 0, or -ENOENT for an unknown id or
 * one whose record expired (jobqd --keep).
 */
JOBQ_API int jobq_job_info(jobq_t *q, uint64_t id, struct jobq_job_info *out);

/*
 * jobq_job_args_of - copy job @id's args into *out (jobq_obj_free() it).
 * Reads the store. Returns 0 or -ENOENT.
 */
JOBQ_API int jobq_job_args_of(jobq_t *q, uint64_t id, jobq_obj_t *out);

/* Which jobs jobq_jobs_find() lists; a zeroed struct lists every job. */
struct jobq_job_filter {
	int state;	   /* enum jobq_job_state; 0: any */
	const char *type;  /* NULL: any */
	const char *queue; /* NULL: any */
	double min_age;	   /* created at least this many seconds ago */
	double max_age;	   /* created at most this many seconds ago; 0: any */
	size_t offset;	   /* skip this many matches (a later page) */
	size_t limit;	   /* at most this many; 0: all */
	uint64_t reserved[6]; /* room to grow: leave 0 */
};

/*
 * jobq_jobs_find - the jobs that match @flt (NULL: all), newest first,
 * from the @flt->offset-th match on, at most @flt->limit: a malloc'd array
 * in *out (free() it, even when *n is 0) of *n entries, and in *total
 * (when not NULL) how many matched before offset and limit applied, so a
 * caller can page. Reads the store. Returns 0, -EINVAL (a bad filter),
 * -ENOMEM.
 */
JOBQ_API int jobq_jobs_find(jobq_t *q, const struct jobq_job_filter *flt,
			    struct jobq_job_info **out, size_t *n,
			    size_t *total);

/*
 * jobq_job_last_error - the error text of job @id's last failed attempt
 * while it is not final (failed with a retry pending, or ready or running
 * again), into *out (jobq_obj_free() it). Returns 0; -ENOENT when no
 * attempt failed yet, the job succeeded, or the id is unknown. A final
 * job's error is jobq_job_result()'s.
 */
JOBQ_API int jobq_job_last_error(jobq_t *q, uint64_t id, jobq_obj_t *out);

/*
 * jobq_jobs - jobs newest first, filtered by @state (0: any) and @type
 * (NULL: any), at most @limit (0: all): a malloc'd array in *out (free()
 * it, even when *n is 0) of *n entries. Reads the store. Returns 0,
 * -EINVAL, -ENOMEM.
 */
JOBQ_API int jobq_jobs(jobq_t *q, int state, const char *type, size_t limit,
		       struct jobq_job_info **out, size_t *n);

/* What `jobq workers` shows. */
struct jobq_worker_info {
	pid_t pid;
	char types[128];
	unsigned capacity, running;
	uint64_t done, failed;
	uint64_t started_ns;
	int supervised, daemon;
};

/*
 * jobq_workers - every registered worker, as jobq_jobs() lists jobs: a
 * malloc'd array in *out (free() it) of *n entries. Returns 0, -EINVAL,
 * -ENOMEM.
 */
JOBQ_API int jobq_workers(jobq_t *q, struct jobq_worker_info **out, size_t *n);

/* ------------------------------------------------------------------------
 * Workers: register a handler per job type, then run.
 */
typedef struct jobq_worker jobq_worker_t;
typedef struct jobq_job jobq_job_t;

/*
 * A handler runs one job. It returns 0 for success (the result is what it
 * passed to jobq_job_succeed(), else none), or a negative errno for a
 * retryable failure (the error text is what it passed to jobq_job_fail(),
 * else jobq_strerror() of the return value).
 */
typedef int (*jobq_handler)(jobq_job_t *job, void *arg);

struct jobq_worker_opts {
	unsigned concurrency; /* jobs running at once, each a fiber; 0: 1 */
	/* dies with the manager: after a manager restart its running jobs go
	 * back to ready at once instead of waiting --rejoin-grace for it */
	int daemon;
	size_t stack_size;    /* of each job's fiber; 0: the loop's default */
	uint64_t reserved[6]; /* room to grow; 0 */
};

/*
 * jobq_worker_new - a worker over handle @q (which it does not own: close
 * @q after jobq_worker_free()). @opts may be NULL. Returns 0 and the
 * worker in *wp, -EINVAL or -ENOMEM.
 */
JOBQ_API int jobq_worker_new(jobq_worker_t **wp, jobq_t *q,
			     const struct jobq_worker_opts *opts);
/*
 * jobq_worker_handle - serve job type @type with @fn, passing it @arg; call
 * before jobq_worker_run(); a second call for the same type replaces the
 * handler. Returns 0, -EINVAL (a bad type name: 1..47 bytes, no comma),
 * -EBUSY (the worker has registered with the manager already), -ENOMEM.
 */
JOBQ_API int jobq_worker_handle(jobq_worker_t *w, const char *type,
				jobq_handler fn, void *arg);
/*
 * jobq_worker_builtin - serve the built-in types: echo, sleep, fail, exec,
 * file.copy, file.read, file.write, file.checksum, net.request and
 * http.get (their args and results: CLI.md). Makes the calling process a
 * child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that what an exec
 * job's command leaves behind is reaped by the worker when the job's
 * process group is killed, and sets SIGPIPE to be ignored unless the
 * program handles it (a command that does not read its stdin must not
 * kill the worker). Returns 0 or -errno.
 */
JOBQ_API int jobq_worker_builtin(jobq_worker_t *w);
/*
 * jobq_worker_builtin_types - jobq_worker_builtin() for the built-in types
 * that @types names, comma-separated ("echo,sleep"; NULL: all of them).
 * Returns 0, -EINVAL when a name is not a built-in type (nothing is then
 * served), or what jobq_worker_builtin() returns.
 */
JOBQ_API int jobq_worker_builtin_types(jobq_worker_t *w, const char *types);
/*
 * jobq_worker_run - take and run jobs until jobq_worker_stop() or the
 * manager asks it to stop. Returns 0 after a graceful stop, or -errno
 * (JOBQ_ECLOSED when the manager went away).
 */
JOBQ_API int jobq_worker_run(jobq_worker_t *w);
/*
 * jobq_worker_stop - ask jobq_worker_run() to take no more jobs and return
 * once the running ones finished. Async-signal-safe; callable from any
 * thread and from a handler.
 */
JOBQ_API void jobq_worker_stop(jobq_worker_t *w);
/* jobq_worker_free - free a worker that is not running; NULL is fine. */
JOBQ_API void jobq_worker_free(jobq_worker_t *w);

/*
 * Inside a handler, on its own job. jobq_job_id, _type, _args and _attempt
 * read the job (the args object and the type string belong to the library
 * and live until the handler returns; the attempt counts from 1).
 *
 * jobq_job_succeed - the job's result: @len bytes at @data of @type,
 * copied; a later call replaces an earlier one. Returns 0, -E2BIG over
 * jobq_max_object(), -EINVAL, -ENOMEM.
 */
JOBQ_API uint64_t jobq_job_id(const jobq_job_t *job);
JOBQ_API const char *jobq_job_type(const jobq_job_t *job);
JOBQ_API const jobq_obj_t *jobq_job_args(const jobq_job_t *job);
JOBQ_API unsigned jobq_job_attempt(const jobq_job_t *job);
JOBQ_API int jobq_job_succeed(jobq_job_t *job, uint32_t type, const void *data,
			      size_t len);
/*
 * jobq_job_fail - the job fails with the formatted error text, for good
 * when @final is set, else with a retry if it has attempts left; it fails
 * whatever the handler then returns. Returns -EIO, so that a handler can
 * end with `return jobq_job_fail(...)`.
 */
JOBQ_API int jobq_job_fail(jobq_job_t *job, int final, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * jobq_job_progress - report @percent done (clamped to 0..100) and an
 * optional message, shown by `jobq show`. jobq_job_extend - the lease now
 * ends @seconds from now. Each is one round trip; they return 0, -ESTALE
 * when the job is no longer this worker's (its lease ran out or it was
 * cancelled), -EINVAL, or -errno.
 */
JOBQ_API int jobq_job_progress(jobq_job_t *job, double percent,
			       const char *msg);
JOBQ_API int jobq_job_extend(jobq_job_t *job, double seconds);
/* jobq_job_cancelled - non-zero once a cancel of this job arrived: the
 * handler should stop and return soon. */
JOBQ_API int jobq_job_cancelled(const jobq_job_t *job);

/* ------------------------------------------------------------------------
 * The IO engine: one io_uring event loop per thread, fibers on top of it.
 *
 * A loop owns one io_uring. Code runs on it in two styles, which mix:
 *
 *  - fibers: jobq_spawn() starts a function on a stack of its own. Its IO
 *    calls (jobq_io_read() and the rest) submit one request and suspend
 *    the fiber; the loop resumes it when the completion arrives, so the
 *    code reads straight through while thousands of fibers wait at once
 *    (gevent's greenlets, without monkey-patching);
 *  - callbacks: the jobq_io_*_cb() calls submit a request and return; the
 *    loop calls the callback with the result.
 *
 * Fibers are cooperative: a fiber runs until it makes an IO call, joins,
 * sleeps or calls jobq_yield(). A fiber that computes for a long time
 * without any of these holds back every other fiber of its loop (and, in a
 * worker, every other job), but it still works.
 *
 * The fiber-form IO calls may also be called outside any fiber, from plain
 * code: then they block the calling thread until the request is done, on
 * a private ring of that thread, exactly like their blocking syscalls.
 *
 * Timeouts of the IO calls are in seconds: negative waits forever,
 * otherwise the request is cancelled when the time has passed and the call
 * returns -ETIMEDOUT (0 cancels whatever does not complete at once).
 *
 * Loops, fibers and requests belong to the thread that created the loop;
 * none of these functions may be called on a loop from another thread,
 * nor in a child after fork() (the child makes loops of its own; the
 * blocking form does that by itself).
 */
typedef struct jobq_loop jobq_loop_t;
typedef struct jobq_fiber jobq_fiber_t;

/* Loop options; a zeroed struct (or NULL) means the defaults. */
struct jobq_loop_opts {
	unsigned entries;     /* submission queue entries; 0: 256 */
	size_t stack_size;    /* of each fiber, a guard page below; 0: 64 KiB */
	unsigned flags;	      /* reserved, 0 */
	unsigned buffers;     /* buffers to register (jobq_buffer_get()); 0 */
	size_t buffer_size;   /* of each; 0: 64 KiB */
	uint64_t reserved[4]; /* room to grow; 0 */
};

/*
 * jobq_loop_new - set up an io_uring and an empty loop in *lp.
 * The ring gets the setup flags this kernel accepts (single issuer,
 * deferred task running, a completion queue four times the submission
 * queue) and the opcodes it lacks are done by plain syscalls instead.
 * Returns 0; -EINVAL for bad options; -ENOMEM; -ENOSYS, -EPERM or another
 * -errno when io_uring is unavailable, and then jobq_loop_why() says why
 * and how to allow it (kernel.io_uring_disabled, a seccomp profile, an old
 * kernel). On failure *lp is untouched.
 */
JOBQ_API int jobq_loop_new(jobq_loop_t **lp, const struct jobq_loop_opts *opts);

/*
 * Registered buffers. With opts->buffers set, the loop allocates that many
 * buffers and registers them with the kernel, which then maps them once
 * instead of on every request: jobq_io_read() and jobq_io_write() (and
 * their callback forms) into a buffer from jobq_buffer_get() use
 * IORING_OP_READ_FIXED / WRITE_FIXED by themselves. Registered memory
 * counts against RLIMIT_MEMLOCK for users without CAP_IPC_LOCK; when the
 * kernel refuses it, the buffers are plain memory and everything works
 * the same, a little slower (jobq_loop_buffers_registered() tells).
 *
 * jobq_buffer_get - take a free buffer of the loop: *buf and its size in
 * *size. Returns 0, -ENOBUFS when all are taken, -EINVAL when the loop
 * has none. jobq_buffer_put - give it back (once no request uses it).
 */
JOBQ_API int jobq_buffer_get(jobq_loop_t *l, void **buf, size_t *size);
JOBQ_API void jobq_buffer_put(jobq_loop_t *l, void *buf);

/* jobq_loop_buffers_registered - 1 when the loop's buffers are registered
 * with the kernel, 0 when they are plain memory (or there are none). */
JOBQ_API int jobq_loop_buffers_registered(const jobq_loop_t *l);

/*
 * jobq_loop_why - one line saying why the calling thread's last failed
 * jobq_loop_new() failed, naming the remedy, or "" after a success.
 * Thread-local; valid until that thread's next jobq_loop_new().
 */
JOBQ_API const char *jobq_loop_why(void);

/*
 * jobq_loop_free - cancel every fiber and request still on the loop, let
 * the fibers return (their IO calls return -ECANCELED) and the requests
 * complete (callbacks run with -ECANCELED), then free the loop. Must not be
 * called from inside the loop (a fiber or callback of it). NULL is fine.
 */
JOBQ_API void jobq_loop_free(jobq_loop_t *l);

/*
 * jobq_loop_run - run fibers and callbacks until no fiber is left and no
 * request is in flight (returns 0), or until jobq_loop_stop() (returns 1;
 * running it again carries on where it stopped). Must not be called from
 * inside the same loop. Returns -errno when the ring fails.
 */
JOBQ_API int jobq_loop_run(jobq_loop_t *l);

/*
 * jobq_loop_stop - make jobq_loop_run() return once the fibers that are
 * runnable now have had their turn. Fibers and requests stay where they
 * are. Call it from a fiber or callback of the loop, or between runs.
 */
JOBQ_API void jobq_loop_stop(jobq_loop_t *l);

/* jobq_loop_current - the loop running the calling code (a fiber or a
 * callback of it), or NULL outside any loop. */
JOBQ_API jobq_loop_t *jobq_loop_current(void);

/* jobq_fiber_current - the calling fiber, or NULL outside any fiber. */
JOBQ_API jobq_fiber_t *jobq_fiber_current(void);

/*
 * jobq_spawn - start fn(arg) as a new fiber of loop @l (NULL: the current
 * loop). The fiber first runs at the loop's next turn, not inside this
 * call. With @out NULL the fiber is detached and frees itself when fn
 * returns; otherwise *out is its handle, valid until jobq_fiber_join()
 * returns 0 for it (a joinable fiber's memory is kept until then).
 * Returns 0; -EINVAL (no loop); -ENOMEM (no memory for the stack).
 */
JOBQ_API int jobq_spawn(jobq_loop_t *l, void (*fn)(void *arg), void *arg,
			jobq_fiber_t **out);

/*
 * jobq_fiber_join - wait until fiber @f has returned, then free it
 * (gevent's join). From a fiber, the caller is suspended; from outside
 * the loop, the loop is run until then. Returns 0 (f is freed);
 * -ETIMEDOUT after @timeout seconds (f still runs and is still yours);
 * -ECANCELED when the calling fiber is cancelled while it waits (f is
 * still yours); -EDEADLK when f is the caller; -EINVAL for a detached
 * fiber or NULL.
 */
JOBQ_API int jobq_fiber_join(jobq_fiber_t *f, double timeout);

/*
 * jobq_fiber_join_all - join the @n fibers of @fs (gevent's joinall): each
 * one that returned is freed and its slot set to NULL (NULL slots are
 * skipped). Returns 0 when all returned, else what jobq_fiber_join()
 * returned for the first one still running.
 */
JOBQ_API int jobq_fiber_join_all(jobq_fiber_t **fs, size_t n, double timeout);

/*
 * jobq_fiber_cancel - cancel fiber @f: the request it waits on is
 * cancelled (IORING_OP_ASYNC_CANCEL) and its IO call returns -ECANCELED,
 * as does every IO call it makes afterwards. The fiber keeps running until
 * its function returns; it is never unwound under a request in flight, so
 * its buffers and fds stay valid until the kernel is done with them.
 * A fiber that already returned is left alone.
 */
JOBQ_API void jobq_fiber_cancel(jobq_fiber_t *f);

/* jobq_fiber_cancelled - whether @f (NULL: the calling fiber) was
 * cancelled. */
JOBQ_API int jobq_fiber_cancelled(const jobq_fiber_t *f);

/*
 * jobq_yield - let the other runnable fibers of the loop run, then carry
 * on. A long computation calls it now and then to keep its neighbours
 * going. Returns 0, -ECANCELED when the fiber is cancelled, -EINVAL
 * outside a fiber.
 */
JOBQ_API int jobq_yield(void);

/*
 * The fiber form. Each call returns what its syscall would return, as a
 * count or 0, or -errno; -ETIMEDOUT when @timeout passed; -ECANCELED when
 * the calling fiber is cancelled. @off -1 means the file's current
 * position (and advances it), as read(2)/write(2) do.
 */
JOBQ_API ssize_t jobq_io_read(int fd, void *buf, size_t len, int64_t off,
			      double timeout);
JOBQ_API ssize_t jobq_io_write(int fd, const void *buf, size_t len, int64_t off,
			       double timeout);

/*
 * jobq_io_read_full / jobq_io_write_all - go on over short reads and
 * writes until @len bytes are done (or, for a read, end of file), within
 * @timeout for the whole. Returns the bytes done (less than @len only at
 * end of file), or -errno; bytes moved before an error are not reported.
 */
JOBQ_API ssize_t jobq_io_read_full(int fd, void *buf, size_t len, int64_t off,
				   double timeout);
JOBQ_API ssize_t jobq_io_write_all(int fd, const void *buf, size_t len,
				   int64_t off, double timeout);

/* openat(2) (returns the fd, always close-on-exec: O_CLOEXEC is added),
 * close(2), fsync(2)/fdatasync(2) (@datasync). Close an fd only once no
 * request on it is in flight. In a cancelled fiber every call returns
 * -ECANCELED without acting, except jobq_io_close(), which still closes,
 * so that a cancelled job can let go of its descriptors. */
JOBQ_API int jobq_io_openat(int dirfd, const char *path, int flags,
			    mode_t mode);
JOBQ_API int jobq_io_close(int fd);
JOBQ_API int jobq_io_fsync(int fd, int datasync);

/* accept4(2) (returns the new fd; @addr, @len may be NULL), connect(2),
 * send(2) and recv(2) (0 at end of stream). */
JOBQ_API int jobq_io_accept(int fd, struct sockaddr *addr, socklen_t *len,
			    int flags, double timeout);
JOBQ_API int jobq_io_connect(int fd, const struct sockaddr *addr, socklen_t len,
			     double timeout);
JOBQ_API ssize_t jobq_io_send(int fd, const void *buf, size_t len, int flags,
			      double timeout);
JOBQ_API ssize_t jobq_io_recv(int fd, void *buf, size_t len, int flags,
			      double timeout);

/* jobq_io_sleep - sleep @seconds. Returns 0, or -ECANCELED when the fiber
 * is cancelled meanwhile. */
JOBQ_API int jobq_io_sleep(double seconds);

/* jobq_io_poll - wait until @fd has one of @events (POLLIN, ...). Returns
 * the revents mask (POLLERR, POLLHUP and POLLNVAL count always), or
 * -errno. */
JOBQ_API int jobq_io_poll(int fd, unsigned events, double timeout);

/*
 * jobq_io_waitpid - wait until child @pid exits and reap it, storing its
 * wait status (as waitpid(2) does) in *status when not NULL. Waits on a
 * pidfd through the ring. Returns 0, -ECHILD when @pid is not a child of
 * this process, -ETIMEDOUT (the child is not reaped), -ECANCELED.
 */
JOBQ_API int jobq_io_waitpid(pid_t pid, int *status, double timeout);

/*
 * The callback form: each call submits one request on loop @l and returns
 * 0; @cb(l, res, arg) then runs exactly once from jobq_loop_run(), never
 * inside the submitting call, with what the fiber form would have
 * returned. On an error return (-EINVAL, -ENOMEM) the callback never runs.
 * The buffers and addresses passed must stay valid until the callback.
 */
typedef void (*jobq_io_cb)(jobq_loop_t *l, ssize_t res, void *arg);

JOBQ_API int jobq_io_read_cb(jobq_loop_t *l, int fd, void *buf, size_t len,
			     int64_t off, double timeout, jobq_io_cb cb,
			     void *arg);
JOBQ_API int jobq_io_write_cb(jobq_loop_t *l, int fd, const void *buf,
			      size_t len, int64_t off, double timeout,
			      jobq_io_cb cb, void *arg);
JOBQ_API int jobq_io_accept_cb(jobq_loop_t *l, int fd, struct sockaddr *addr,
			       socklen_t *len, int flags, double timeout,
			       jobq_io_cb cb, void *arg);
JOBQ_API int jobq_io_connect_cb(jobq_loop_t *l, int fd,
				const struct sockaddr *addr, socklen_t len,
				double timeout, jobq_io_cb cb, void *arg);
JOBQ_API int jobq_io_send_cb(jobq_loop_t *l, int fd, const void *buf,
			     size_t len, int flags, double timeout,
			     jobq_io_cb cb, void *arg);
JOBQ_API int jobq_io_recv_cb(jobq_loop_t *l, int fd, void *buf, size_t len,
			     int flags, double timeout, jobq_io_cb cb,
			     void *arg);
JOBQ_API int jobq_io_sleep_cb(jobq_loop_t *l, double seconds, jobq_io_cb cb,
			      void *arg);
JOBQ_API int jobq_io_poll_cb(jobq_loop_t *l, int fd, unsigned events,
			     double timeout, jobq_io_cb cb, void *arg);
JOBQ_API int jobq_io_close_cb(jobq_loop_t *l, int fd, jobq_io_cb cb, void *arg);

/*
 * Stream receive. jobq_io_recv_stream_cb() keeps a multishot receive
 * (IORING_RECV_MULTISHOT, Linux 6.0) armed on socket @fd: each chunk that
 * arrives is handed to @cb(l, n, data, arg), n > 0, in one of the loop's
 * provided buffers (a buffer ring), valid during the call only. One last
 * call ends the stream, with @data NULL: n == 0 at the end of the stream,
 * n < 0 on an error, -ECANCELED after jobq_io_stream_stop(); the stream
 * is freed after it. When the kernel runs out of provided buffers it ends
 * the multishot receive with -ENOBUFS, and it may end it for its own
 * reasons (a CQE without IORING_CQE_F_MORE): the stream then submits a new
 * one, and the callback sees neither. Where the kernel lacks buffer rings
 * or multishot receive, each chunk comes from an ordinary receive that is
 * submitted again after the callback: the same calls, one request each.
 * Returns 0 and the stream in *out (may be NULL), or -EINVAL / -ENOMEM
 * (then the callback never runs).
 */
typedef struct jobq_stream jobq_stream_t;
typedef void (*jobq_io_data_cb)(jobq_loop_t *l, ssize_t n, const void *data,
				void *arg);
JOBQ_API int jobq_io_recv_stream_cb(jobq_loop_t *l, int fd, jobq_io_data_cb cb,
				    void *arg, jobq_stream_t **out);

/* jobq_io_stream_stop - end stream @s: chunks still queued are dropped
 * and the last call comes with -ECANCELED. Not after that last call. */
JOBQ_API void jobq_io_stream_stop(jobq_stream_t *s);

/*
 * Workers run on the engine. jobq_worker_run() makes a loop in the calling
 * thread and runs every job as a fiber of it, up to the worker's
 * concurrency at once; it reserves only as many jobs as it has free
 * fibers, so a job handed to it starts at once. Each result is sent the
 * moment its handler returns. While a job's fiber lives its lease is
 * renewed before it runs out; when the job's own --timeout has passed its
 * fiber is cancelled (its IO returns -ECANCELED) and the job fails as
 * timed out. A cancel of a running job cancels its fiber the same way.
 *
 * A handler that never yields (pure computation, or blocking syscalls of
 * its own) still works, but holds back the other jobs of its worker while
 * it runs, and neither its cancel nor its timeout can interrupt it. Calls
 * on the worker's handle other than jobq_job_*() block the whole worker
 * for their round trip.
 *
 * A daemon worker whose manager goes away while a handler blocks is
 * killed (the kernel's SIGIO on the control socket, which the worker
 * takes over while it runs): a daemon process does not outlive its
 * manager.
 *
 * jobq_job_loop - the loop that runs @job's fiber, for a handler that
 * wants to spawn fibers or submit callbacks of its own. Each job runs as a
 * fiber of its worker's loop, so the fiber-form IO calls need no loop
 * argument inside a handler.
 */
JOBQ_API jobq_loop_t *jobq_job_loop(jobq_job_t *job);

/* ------------------------------------------------------------------------
 * Helpers shared by the tools.
 */

/*
 * jobq_parse_size - "64K", "16M", "1G", "123" to bytes (powers of 1024).
 * Returns 0 or -EINVAL.
 */
JOBQ_API int jobq_parse_size(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif

#endif
