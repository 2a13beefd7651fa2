/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the io_uring event loop, fibers on it, and the IO calls.
 *
 * Requests. Every IO call fills a struct req and submits one SQE whose
 * user_data is the req's address with a tag in the low bits (a req is
 * 8-byte aligned): TAG_MAIN for the operation itself, TAG_TIMEOUT for the
 * IORING_OP_LINK_TIMEOUT linked behind it when the call has a timeout.
 * req->pending counts the CQEs still to come (one or two); the req is
 * finished only when it reaches 0, so a link timeout's CQE can never
 * arrive for a req that is gone. Requests of the ring that are no req
 * (IORING_OP_ASYNC_CANCEL) carry user_data 0 and are only counted.
 *
 * Ownership. A fiber-form req lives on the calling fiber's stack, and the
 * fiber does not return from the call before req->pending is 0: even a
 * cancelled fiber waits for the kernel to finish with its request, so no
 * buffer or stack is ever freed under a request in flight. A callback-form
 * req is malloc'd and freed after its callback ran.
 *
 * Completions never run user code where they are reaped: reaping only
 * marks waiting fibers runnable and queues finished callback requests.
 * So reaping is safe anywhere, including inside a fiber that needs SQ
 * room, and user code runs only from the scheduler.
 *
 * Counting. l->inflight is the number of CQEs the loop still expects
 * (prepared SQEs included); with l->nfibers (fibers that have not
 * returned) it decides when jobq_loop_run() has nothing left to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define JOBQ__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JOBQ__ASAN 1
#endif
#endif
#ifdef JOBQ__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define DEFAULT_ENTRIES 256
#define MAX_ENTRIES	32768
/* AddressSanitizer's redzones make frames several times larger. */
#ifdef JOBQ__ASAN
#define DEFAULT_STACK (256 * 1024)
#else
#define DEFAULT_STACK (64 * 1024)
#endif
#define MIN_STACK      (16 * 1024)
#define MAX_IO	       (1U << 30) /* one request moves at most this */
#define DEFAULT_BUFFER (64 * 1024)
#define MAX_BUFFERS    16384 /* the kernel's limit (IORING_MAX_REG_BUFFERS) */

/* Stacks of returned fibers kept for the next ones: as many as a worker
 * runs jobs at once (jobqd's --worker-concurrency goes up to 1024). With
 * fewer, a worker whose jobs end and start in waves maps, guards and unmaps
 * a stack per job, which cost more than the no-op jobs themselves. Only
 * stacks that were in use at the same time are kept, so the cache never
 * holds more than the loop's peak. */
#define STACK_CACHE 1024

enum { TAG_MAIN = 1, TAG_TIMEOUT = 2, TAG_MASK = 7 };

enum op_kind {
	OP_READ,
	OP_WRITE,
	OP_ACCEPT,
	OP_CONNECT,
	OP_SEND,
	OP_RECV,
	OP_SLEEP,
	OP_POLL,
	OP_OPENAT,
	OP_CLOSE,
	OP_FSYNC,
};

/* What one IO call asks for. */
struct op {
	enum op_kind kind;
	int fd;
	int flags;
	void *buf;
	size_t len;
	int64_t off;
	unsigned events;
	mode_t mode;
	const char *path;
	const struct sockaddr *addr;
	socklen_t alen;
	socklen_t *alenp;
	double timeout; /* < 0: none; OP_SLEEP: the sleep itself */
};

struct req {
	jobq_loop_t *loop;
	jobq_fiber_t *fiber; /* waits for it (fiber form) */
	jobq_io_cb cb;	     /* or this runs (callback form) */
	void *arg;
	struct req *prev, *next; /* callback form: in flight, then done */
	int64_t res;
	uint8_t pending; /* CQEs still to come */
	uint8_t kind;	 /* enum op_kind */
	bool timed_out;	 /* the link timeout fired */
	bool cancel_sent;
	struct __kernel_timespec ts; /* read by the kernel at submission */
	struct jobq_stream *stream;  /* a stream's receive: many CQEs */
} __attribute__((aligned(8)));

/*
 * A stream receive. Its req stays in flight across many CQEs while the
 * kernel sets IORING_CQE_F_MORE; each CQE becomes a stream_ev, handled by
 * the scheduler (never where it is reaped, like every completion).
 */
struct stream_ev {
	struct stream_ev *next;
	struct jobq_stream *s;
	int res;
	unsigned flags;
};

struct jobq_stream {
	jobq_loop_t *loop;
	int fd;
	jobq_io_data_cb cb;
	void *arg;
	struct req r;
	bool armed;		    /* a receive is in flight */
	bool multishot;		    /* ... and it is a multishot one */
	bool stopping;		    /* jobq_io_stream_stop() */
	int err;		    /* ends the stream when the receive ends */
	char *buf;		    /* single-shot receives: their buffer */
	jobq_stream_t *prev, *next; /* the loop's streams */
	struct stream_ev last_ev;   /* for the last CQE of a receive */
};

enum fiber_state { F_RUNNABLE, F_RUNNING, F_WAITING, F_DONE };

struct jobq_fiber {
	jobq_loop_t *loop;
	void (*fn)(void *arg);
	void *arg;
	struct jobq__ctx ctx;
	void *stack; /* the mapping, guard page first */
	size_t stack_len;
	enum fiber_state state;
	bool queued;		   /* on the run queue */
	bool detached;		   /* frees itself when it returns */
	bool cancelled;		   /* its IO returns -ECANCELED */
	bool parked_hard;	   /* parked, and a cancel must not wake it */
	bool napping;		   /* in jobq__fiber_nap(): an unpark ends it */
	struct req *wait;	   /* the request it waits on, or NULL */
	jobq_fiber_t *joiner;	   /* the fiber waiting in jobq_fiber_join() */
	jobq_fiber_t *run_next;	   /* run queue */
	jobq_fiber_t *prev, *next; /* every fiber of the loop */
};

struct cached_stack {
	void *base;
	size_t len;
};

struct jobq_loop {
	struct io_uring ring;
	struct jobq__uring_caps caps;
	size_t stack_size;

	struct jobq__ctx sched; /* jobq_loop_run()'s context while it runs */
	jobq_fiber_t *current;	/* the fiber running now, or NULL */
	jobq_fiber_t *run_head, *run_tail;
	jobq_fiber_t *fibers;	 /* all, returned-but-unjoined ones included */
	unsigned nfibers;	 /* not returned yet */
	unsigned inflight;	 /* CQEs expected */
	struct req *cb_inflight; /* callback requests in flight */
	struct req *done_head, *done_tail; /* ... whose callback is due */
	bool running;
	bool stop;

	/* Registered buffers: nbufs of buf_size bytes from bufs, taken and
	 * given back through the stack buf_free[0..nfree). */
	char *bufs;
	size_t buf_size;
	unsigned nbufs;
	unsigned *buf_free;
	unsigned nfree;
	bool bufs_registered; /* else plain memory: the kernel refused */

	/* Provided buffers for the streams' multishot receives: a buffer
	 * ring of pbuf_count buffers of pbuf_size bytes (group PBUF_GROUP),
	 * set up with the first stream; pbuf_state 0 not yet, 1 ready, -1
	 * unavailable (then streams use single-shot receives). */
	struct io_uring_buf_ring *pbr;
	char *pbufs;
	unsigned pbuf_count;
	size_t pbuf_size;
	int pbuf_state;
	bool no_multishot; /* the kernel refused IORING_RECV_MULTISHOT */
	unsigned enobufs;  /* multishot receives ended for want of buffers */
	jobq_stream_t *streams;
	struct stream_ev *ev_head, *ev_tail;

	struct cached_stack stacks[STACK_CACHE];
	unsigned nstacks;

	/* jobq__loop_set_turn_hook() */
	bool (*turn_hook)(jobq_loop_t *l, void *arg, bool idle);
	void *turn_arg;
#ifdef JOBQ__ASAN
	const void *sched_bottom; /* the scheduler's stack, for ASan */
	size_t sched_size;
#endif
};

/* The loop whose scheduler runs in this thread now (the innermost). */
static __thread jobq_loop_t *tl_loop;
/* Where the IO calls of plain code (outside fibers) run. */
static __thread jobq_loop_t *tl_private;
static __thread pid_t tl_private_pid; /* the process that made it */
static __thread char tl_why[512];

static pthread_once_t private_once = PTHREAD_ONCE_INIT;
static pthread_key_t private_key;

static int run(jobq_loop_t *l, jobq_fiber_t *until);

/* ------------------------------------------------------------------------
 * Loops.
 */

/*
 * Allocates @n buffers of @size bytes (0: DEFAULT_BUFFER) and registers
 * them. Registration is an optimization: when the kernel refuses it
 * (RLIMIT_MEMLOCK for a user without CAP_IPC_LOCK, or a kernel without
 * it), the buffers stay plain memory. Returns 0 or -ENOMEM / -EINVAL.
 */
static int buffers_init(jobq_loop_t *l, unsigned n, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct iovec *iov;

	if (!size)
		size = DEFAULT_BUFFER;
	if (n > MAX_BUFFERS || size > MAX_IO)
		return -EINVAL;
	size = (size + page - 1) / page * page;
	l->bufs = mmap(NULL, size * n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->bufs == MAP_FAILED) {
		l->bufs = NULL;
		return -ENOMEM;
	}
	l->buf_free = malloc(n * sizeof(*l->buf_free));
	iov = malloc(n * sizeof(*iov));
	if (!l->buf_free || !iov) {
		free(iov);
		free(l->buf_free);
		munmap(l->bufs, size * n);
		l->bufs = NULL;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = l->bufs + (size_t)i * size;
		iov[i].iov_len = size;
		l->buf_free[i] = n - 1 - i; /* buffer 0 comes out first */
	}
	l->buf_size = size;
	l->nbufs = l->nfree = n;
	l->bufs_registered =
	    jobq__uring_register_buffers(&l->ring, iov, n) == 0;
	free(iov);
	return 0;
}

int jobq_buffer_get(jobq_loop_t *l, void **buf, size_t *size)
{
	if (!l || !buf || !l->nbufs)
		return -EINVAL;
	if (!l->nfree)
		return -ENOBUFS;
	*buf = l->bufs + (size_t)l->buf_free[--l->nfree] * l->buf_size;
	if (size)
		*size = l->buf_size;
	return 0;
}

void jobq_buffer_put(jobq_loop_t *l, void *buf)
{
	size_t at;

	if (!l || !buf || (char *)buf < l->bufs)
		return;
	at = (size_t)((char *)buf - l->bufs) / l->buf_size;
	if (at < l->nbufs && l->nfree < l->nbufs)
		l->buf_free[l->nfree++] = (unsigned)at;
}

int jobq_loop_buffers_registered(const jobq_loop_t *l)
{
	return l && l->bufs_registered;
}

/* The registered buffer that holds all of [p, p + len), or -1. */
static int fixed_index(const jobq_loop_t *l, const void *p, size_t len)
{
	size_t at, i;

	if (!l->bufs_registered || (const char *)p < l->bufs)
		return -1;
	at = (size_t)((const char *)p - l->bufs);
	i = at / l->buf_size;
	if (i >= l->nbufs || at + len > (i + 1) * l->buf_size)
		return -1;
	return (int)i;
}

int jobq_loop_new(jobq_loop_t **lp, const struct jobq_loop_opts *opts)
{
	unsigned entries =
	    opts && opts->entries ? opts->entries : DEFAULT_ENTRIES;
	size_t stack =
	    opts && opts->stack_size ? opts->stack_size : DEFAULT_STACK;
	jobq_loop_t *l;
	int err;

	tl_why[0] = '\0';
	if (!lp || entries > MAX_ENTRIES || stack < MIN_STACK ||
	    (opts && opts->flags)) {
		snprintf(tl_why, sizeof(tl_why),
			 "bad loop options: entries at most %u, stack_size at "
			 "least %u, flags 0",
			 MAX_ENTRIES, MIN_STACK);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	err = jobq__uring_init(&l->ring, entries, &l->caps, tl_why,
			       sizeof(tl_why));
	if (err) {
		free(l);
		return err;
	}
	l->stack_size = stack;
	if (opts && opts->buffers) {
		err = buffers_init(l, opts->buffers, opts->buffer_size);
		if (err) {
			io_uring_queue_exit(&l->ring);
			free(l);
			snprintf(tl_why, sizeof(tl_why),
				 "no memory for %u buffers", opts->buffers);
			return err;
		}
	}
	*lp = l;
	return 0;
}

const char *jobq_loop_why(void)
{
	return tl_why;
}

jobq_loop_t *jobq_loop_current(void)
{
	return tl_loop;
}

jobq_fiber_t *jobq_fiber_current(void)
{
	return tl_loop ? tl_loop->current : NULL;
}

void jobq_loop_stop(jobq_loop_t *l)
{
	if (l)
		l->stop = true;
}

/* ------------------------------------------------------------------------
 * Completions.
 */
static void wake(jobq_fiber_t *f)
{
	jobq_loop_t *l = f->loop;

	if (f->state != F_WAITING || f->queued)
		return;
	f->state = F_RUNNABLE;
	f->queued = true;
	f->run_next = NULL;
	if (l->run_tail)
		l->run_tail->run_next = f;
	else
		l->run_head = f;
	l->run_tail = f;
}

static void cb_unlink(jobq_loop_t *l, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->cb_inflight = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void done_push(jobq_loop_t *l, struct req *r)
{
	r->next = NULL;
	if (l->done_tail)
		l->done_tail->next = r;
	else
		l->done_head = r;
	l->done_tail = r;
}

/* Both CQEs of @r are in: settle its result and hand it on. */
static void finish(jobq_loop_t *l, struct req *r)
{
	int64_t res = r->res;

	if (r->kind == OP_SLEEP) {
		if (res == -ETIME)
			res = 0; /* the timer ran its course */
	} else if (r->timed_out && (res == -ECANCELED || res == -EINTR)) {
		res = -ETIMEDOUT;
	}
	r->res = res;
	if (r->fiber) {
		wake(r->fiber);
	} else if (r->cb) {
		cb_unlink(l, r);
		done_push(l, r);
	}
}

static void stream_cqe(jobq_loop_t *l, jobq_stream_t *s, int res,
		       unsigned flags);

static void complete(jobq_loop_t *l, uint64_t ud, int res, unsigned flags)
{
	struct req *r = (struct req *)(uintptr_t)(ud & ~(uint64_t)TAG_MASK);

	if (!r)
		return; /* an ASYNC_CANCEL: its result does not matter */
	if (r->stream) {
		stream_cqe(l, r->stream, res, flags);
		return;
	}
	if ((ud & TAG_MASK) == TAG_TIMEOUT) {
		if (res == -ETIME)
			r->timed_out = true;
	} else {
		r->res = res;
	}
	if (--r->pending == 0)
		finish(l, r);
}

/* Moves every CQE there is out of the ring. Returns how many. */
static unsigned reap(jobq_loop_t *l)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	/* peek also flushes CQEs the kernel kept on its overflow list
	 * (IORING_FEAT_NODROP) once there is room again. */
	while (io_uring_peek_cqe(&l->ring, &cqe) == 0) {
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		unsigned flags = cqe->flags;

		io_uring_cqe_seen(&l->ring, cqe);
		/* A multishot request is in flight until its last CQE. */
		if (!(flags & IORING_CQE_F_MORE))
			l->inflight--;
		complete(l, ud, res, flags);
		n++;
	}
	return n;
}

/* -EBUSY (the CQ overflowed and the kernel holds completions back) and
 * -EAGAIN (no memory for requests right now): make room by reaping, and
 * failing that, wait a moment. */
static void backoff(jobq_loop_t *l)
{
	struct timespec ts = {0, 1000000};

	if (!reap(l))
		nanosleep(&ts, NULL);
}

/* Submits every prepared SQE. Returns 0 or -errno. */
static int flush(jobq_loop_t *l)
{
	for (;;) {
		int ret = io_uring_submit(&l->ring);

		if (ret >= 0 || ret == -EINTR) {
			if (ret < 0 || !io_uring_sq_ready(&l->ring))
				return 0;
			/* Stopped early (at a bad SQE, without SUBMIT_ALL):
			 * go on, and if nothing at all went in, make room
			 * first rather than spin. */
			if (ret == 0)
				backoff(l);
			continue;
		}
		if (ret != -EBUSY && ret != -EAGAIN)
			return ret;
		backoff(l);
	}
}

/* An SQE, with @n - 1 more free right behind it for a linked request. */
static struct io_uring_sqe *get_sqe(jobq_loop_t *l, unsigned n)
{
	while (io_uring_sq_space_left(&l->ring) < n)
		if (flush(l))
			return NULL;
	return io_uring_get_sqe(&l->ring);
}

/* Submits, and sleeps in the kernel until at least one CQE is there. */
static int wait_cqe(jobq_loop_t *l)
{
	int ret = io_uring_submit_and_wait(&l->ring, 1);

	if (ret == -EBUSY || ret == -EAGAIN)
		backoff(l);
	else if (ret < 0 && ret != -EINTR && ret != -ETIME)
		return ret;
	reap(l);
	return 0;
}

/* Submits and takes what completed, without sleeping. */
static int poll_cqe(jobq_loop_t *l)
{
	int ret = io_uring_submit_and_get_events(&l->ring);

	if (ret == -EBUSY || ret == -EAGAIN)
		backoff(l);
	else if (ret < 0 && ret != -EINTR)
		return ret;
	reap(l);
	return 0;
}

/* ------------------------------------------------------------------------
 * Requests.
 */
static void set_ts(struct __kernel_timespec *ts, double s)
{
	if (!(s > 0))
		s = 0;
	if (s > 1e9)
		s = 1e9; /* some thirty years: forever enough */
	ts->tv_sec = (long long)s;
	ts->tv_nsec = (long long)((s - (double)ts->tv_sec) * 1e9);
}

static unsigned io_len(size_t len)
{
	return len > MAX_IO ? MAX_IO : (unsigned)len;
}

/* Whether @o goes through the ring (else a plain syscall does it). */
static bool on_ring(const jobq_loop_t *l, const struct op *o)
{
	switch (o->kind) {
	case OP_OPENAT:
		return jobq__uring_has(&l->caps, IORING_OP_OPENAT);
	case OP_CLOSE:
		return jobq__uring_has(&l->caps, IORING_OP_CLOSE);
	case OP_FSYNC:
		return jobq__uring_has(&l->caps, IORING_OP_FSYNC);
	default:
		return true;
	}
}

/* The syscalls behind the ops that this kernel's io_uring lacks. */
static ssize_t sync_op(const struct op *o)
{
	int r;

	switch (o->kind) {
	case OP_OPENAT:
		r = openat(o->fd, o->path, o->flags, o->mode);
		break;
	case OP_CLOSE:
		r = close(o->fd);
		break;
	case OP_FSYNC:
		r = o->flags ? fdatasync(o->fd) : fsync(o->fd);
		break;
	default:
		return -ENOSYS;
	}
	return r < 0 ? -errno : r;
}

/* Prepares @o as @r's SQE(s). Returns 0 or -errno (nothing prepared). */
static int submit_op(jobq_loop_t *l, struct req *r, const struct op *o)
{
	bool linked = o->kind != OP_SLEEP && o->timeout >= 0;
	struct io_uring_sqe *sqe = get_sqe(l, linked ? 2 : 1);
	uint64_t off = o->off < 0 ? (uint64_t)-1 : (uint64_t)o->off;
	int fixed;

	if (!sqe)
		return -EBUSY;
	r->loop = l;
	r->kind = (uint8_t)o->kind;
	r->res = 0;
	r->timed_out = r->cancel_sent = false;
	switch (o->kind) {
	case OP_READ:
		if ((fixed = fixed_index(l, o->buf, o->len)) >= 0)
			io_uring_prep_read_fixed(sqe, o->fd, o->buf,
						 io_len(o->len), off, fixed);
		else
			io_uring_prep_read(sqe, o->fd, o->buf, io_len(o->len),
					   off);
		break;
	case OP_WRITE:
		if ((fixed = fixed_index(l, o->buf, o->len)) >= 0)
			io_uring_prep_write_fixed(sqe, o->fd, o->buf,
						  io_len(o->len), off, fixed);
		else
			io_uring_prep_write(sqe, o->fd, o->buf, io_len(o->len),
					    off);
		break;
	case OP_ACCEPT:
		io_uring_prep_accept(sqe, o->fd, (struct sockaddr *)o->addr,
				     o->alenp, o->flags);
		break;
	case OP_CONNECT:
		io_uring_prep_connect(sqe, o->fd, o->addr, o->alen);
		break;
	case OP_SEND:
		io_uring_prep_send(sqe, o->fd, o->buf, io_len(o->len),
				   o->flags);
		break;
	case OP_RECV:
		io_uring_prep_recv(sqe, o->fd, o->buf, io_len(o->len),
				   o->flags);
		break;
	case OP_SLEEP:
		set_ts(&r->ts, o->timeout);
		io_uring_prep_timeout(sqe, &r->ts, 0, 0);
		break;
	case OP_POLL:
		io_uring_prep_poll_add(sqe, o->fd, o->events);
		break;
	case OP_OPENAT:
		io_uring_prep_openat(sqe, o->fd, o->path, o->flags, o->mode);
		break;
	case OP_CLOSE:
		io_uring_prep_close(sqe, o->fd);
		break;
	case OP_FSYNC:
		io_uring_prep_fsync(sqe, o->fd,
				    o->flags ? IORING_FSYNC_DATASYNC : 0);
		break;
	}
	sqe->user_data = (uint64_t)(uintptr_t)r | TAG_MAIN;
	r->pending = 1;
	l->inflight++;
	if (linked) {
		struct io_uring_sqe *t = io_uring_get_sqe(&l->ring);

		/* get_sqe() made room for both. */
		sqe->flags |= IOSQE_IO_LINK;
		set_ts(&r->ts, o->timeout);
		io_uring_prep_link_timeout(t, &r->ts, 0);
		t->user_data = (uint64_t)(uintptr_t)r | TAG_TIMEOUT;
		r->pending++;
		l->inflight++;
	}
	return 0;
}

/* Asks the kernel to cancel @r; its CQE(s) still come, with -ECANCELED
 * unless it finished first. */
static void cancel_req(jobq_loop_t *l, struct req *r)
{
	struct io_uring_sqe *sqe;

	if (!r->pending || r->cancel_sent)
		return;
	sqe = get_sqe(l, 1);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)r | TAG_MAIN, 0);
	sqe->user_data = 0;
	l->inflight++;
	r->cancel_sent = true;
}

/* ------------------------------------------------------------------------
 * Switching. Every switch is between the scheduler and one fiber.
 */
static void switch_to_fiber(jobq_loop_t *l, jobq_fiber_t *f)
{
#ifdef JOBQ__ASAN
	void *fake = NULL;

	__sanitizer_start_switch_fiber(&fake, f->stack, f->stack_len);
#endif
	jobq__ctx_switch(&l->sched, &f->ctx);
#ifdef JOBQ__ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* @last: the fiber has returned and will never run again. */
static void switch_to_sched(jobq_loop_t *l, jobq_fiber_t *f, bool last)
{
#ifdef JOBQ__ASAN
	void *fake = NULL;

	__sanitizer_start_switch_fiber(last ? NULL : &fake, l->sched_bottom,
				       l->sched_size);
#else
	(void)last;
#endif
	jobq__ctx_switch(&f->ctx, &l->sched);
#ifdef JOBQ__ASAN
	__sanitizer_finish_switch_fiber(fake, &l->sched_bottom, &l->sched_size);
#endif
}

/* Suspends the running fiber @f until someone wakes it. */
static void suspend(jobq_loop_t *l, jobq_fiber_t *f)
{
	f->state = F_WAITING;
	switch_to_sched(l, f, false);
}

void jobq__fiber_main(jobq_fiber_t *f)
{
	jobq_loop_t *l = f->loop;

#ifdef JOBQ__ASAN
	__sanitizer_finish_switch_fiber(NULL, &l->sched_bottom, &l->sched_size);
#endif
	f->fn(f->arg);
	f->state = F_DONE;
	l->nfibers--;
	if (f->joiner)
		wake(f->joiner);
	switch_to_sched(l, f, true);
	abort(); /* a returned fiber is never switched to */
}

/* Frees fiber @f, which has returned; its stack goes to the cache. */
static void release(jobq_fiber_t *f)
{
	jobq_loop_t *l = f->loop;

	if (f->prev)
		f->prev->next = f->next;
	else
		l->fibers = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (l->nstacks < STACK_CACHE && f->stack_len) {
		l->stacks[l->nstacks].base = f->stack;
		l->stacks[l->nstacks++].len = f->stack_len;
	} else {
		jobq__stack_free(f->stack, f->stack_len);
	}
	free(f);
}

/* Runs fiber @f until it suspends or returns. */
static void resume(jobq_loop_t *l, jobq_fiber_t *f)
{
	f->queued = false;
	f->state = F_RUNNING;
	l->current = f;
	switch_to_fiber(l, f);
	l->current = NULL;
	if (f->state == F_DONE && f->detached)
		release(f);
}

/*
 * One turn: the fibers that are runnable now (not those they make
 * runnable: a fiber that yields in a loop must not starve the ring),
 * then the callbacks that are due.
 */
static void stream_event(jobq_loop_t *l, struct stream_ev *ev);

static void run_turn(jobq_loop_t *l)
{
	jobq_fiber_t *f, *last = l->run_tail;
	struct req *r, *rlast = l->done_tail;
	struct stream_ev *e, *elast = l->ev_tail;

	while (last && (f = l->run_head)) {
		l->run_head = f->run_next;
		if (!l->run_head)
			l->run_tail = NULL;
		resume(l, f);
		if (f == last)
			break;
	}
	while (rlast && (r = l->done_head)) {
		l->done_head = r->next;
		if (!l->done_head)
			l->done_tail = NULL;
		bool was_last = r == rlast;

		r->cb(l, (ssize_t)r->res, r->arg);
		free(r);
		if (was_last)
			break;
	}
	while (elast && (e = l->ev_head)) {
		bool was_last = e == elast, owned = e != &e->s->last_ev;

		l->ev_head = e->next;
		if (!l->ev_head)
			l->ev_tail = NULL;
		stream_event(l, e); /* may free the stream */
		if (owned)
			free(e);
		if (was_last)
			break;
	}
}

/*
 * The scheduler: runs until nothing is left, until jobq_loop_stop() (when
 * @until is NULL), or until fiber @until has returned.
 */
static int run(jobq_loop_t *l, jobq_fiber_t *until)
{
	jobq_loop_t *outer = tl_loop;
	int ret = 0;

	if (l->running)
		return -EBUSY;
	l->running = true;
	tl_loop = l;
	for (;;) {
		run_turn(l);
		if (l->turn_hook)
			l->turn_hook(l, l->turn_arg, false);
		if (until && until->state == F_DONE)
			break;
		if (!until && l->stop) {
			l->stop = false;
			ret = 1;
			break;
		}
		if (l->run_head || l->done_head || l->ev_head) {
			ret = poll_cqe(l);
		} else if (l->turn_hook && l->turn_hook(l, l->turn_arg, true)) {
			/* The hook found work at the last moment: no sleep. */
			ret = poll_cqe(l);
		} else if (l->inflight) {
			ret = wait_cqe(l);
		} else if (l->nfibers) {
			/* Fibers wait, but not on the ring: nothing can
			 * ever wake them. */
			ret = -EDEADLK;
		} else {
			break;
		}
		if (ret)
			break;
	}
	tl_loop = outer;
	l->running = false;
	return ret;
}

void jobq__loop_set_turn_hook(jobq_loop_t *l,
			      bool (*fn)(jobq_loop_t *l, void *arg, bool idle),
			      void *arg)
{
	l->turn_hook = fn;
	l->turn_arg = arg;
}

int jobq_loop_run(jobq_loop_t *l)
{
	if (!l)
		return -EINVAL;
	return run(l, NULL);
}

void jobq_loop_free(jobq_loop_t *l)
{
	if (!l || l->running)
		return;
	for (jobq_fiber_t *f = l->fibers; f; f = f->next)
		jobq_fiber_cancel(f);
	for (struct req *r = l->cb_inflight; r; r = r->next)
		cancel_req(l, r);
	for (jobq_stream_t *s = l->streams; s; s = s->next)
		jobq_io_stream_stop(s);
	l->stop = false;
	while (run(l, NULL) == 1)
		;
	while (l->fibers)
		release(l->fibers); /* returned, never joined */
	for (unsigned i = 0; i < l->nstacks; i++)
		jobq__stack_free(l->stacks[i].base, l->stacks[i].len);
	io_uring_queue_exit(&l->ring); /* unregisters the buffers too */
	if (l->pbr) {
		munmap(l->pbr, l->pbuf_count * sizeof(struct io_uring_buf));
		munmap(l->pbufs, l->pbuf_count * l->pbuf_size);
	}
	if (l->bufs)
		munmap(l->bufs, l->buf_size * l->nbufs);
	free(l->buf_free);
	if (tl_private == l)
		tl_private = NULL;
	free(l);
}

/* ------------------------------------------------------------------------
 * Fibers.
 */
int jobq_spawn(jobq_loop_t *l, void (*fn)(void *arg), void *arg,
	       jobq_fiber_t **out)
{
	jobq_fiber_t *f;

	if (!l)
		l = tl_loop;
	if (!l || !fn)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (l->nstacks) {
		l->nstacks--;
		f->stack = l->stacks[l->nstacks].base;
		f->stack_len = l->stacks[l->nstacks].len;
#ifdef JOBQ__ASAN
		/* Frames of the fiber that used it last left their
		 * redzones poisoned. */
		__asan_unpoison_memory_region(f->stack, f->stack_len);
#endif
	} else {
		f->stack = jobq__stack_alloc(l->stack_size, &f->stack_len);
		if (!f->stack) {
			free(f);
			return -ENOMEM;
		}
	}
	f->loop = l;
	f->fn = fn;
	f->arg = arg;
	f->detached = out == NULL;
	jobq__ctx_make(&f->ctx, f->stack, f->stack_len, f);
	f->next = l->fibers;
	if (l->fibers)
		l->fibers->prev = f;
	l->fibers = f;
	l->nfibers++;
	f->state = F_WAITING;
	wake(f);
	if (out)
		*out = f;
	return 0;
}

void jobq_fiber_cancel(jobq_fiber_t *f)
{
	if (!f || f->state == F_DONE || f->cancelled)
		return;
	f->cancelled = true;
	if (f->wait && f->wait->pending)
		cancel_req(f->loop, f->wait);
	else if (!f->parked_hard)
		wake(f); /* joining or parked: it looks at the flag */
}

int jobq_fiber_cancelled(const jobq_fiber_t *f)
{
	if (!f)
		f = jobq_fiber_current();
	return f && f->cancelled;
}

int jobq_yield(void)
{
	jobq_fiber_t *f = jobq_fiber_current();

	if (!f)
		return -EINVAL;
	f->state = F_WAITING;
	wake(f);
	switch_to_sched(f->loop, f, false);
	return f->cancelled ? -ECANCELED : 0;
}

/* Waits for @r, submitted by the running fiber @f. */
static ssize_t wait_req(jobq_loop_t *l, jobq_fiber_t *f, struct req *r)
{
	f->wait = r;
	while (r->pending)
		suspend(l, f);
	f->wait = NULL;
	if (f->cancelled &&
	    (r->res == -ECANCELED || r->res == -EINTR || r->res == -ETIMEDOUT))
		return -ECANCELED;
	return (ssize_t)r->res;
}

int jobq__fiber_park(bool cancellable)
{
	jobq_fiber_t *f = jobq_fiber_current();

	if (!f)
		return -EINVAL;
	if (cancellable && f->cancelled)
		return -ECANCELED;
	f->parked_hard = !cancellable;
	suspend(f->loop, f);
	f->parked_hard = false;
	return cancellable && f->cancelled ? -ECANCELED : 0;
}

void jobq__fiber_unpark(jobq_fiber_t *f)
{
	if (!f || f->state != F_WAITING)
		return;
	if (!f->wait)
		wake(f);
	else if (f->napping)
		cancel_req(f->loop, f->wait); /* ends the nap: -EINTR */
}

int jobq__fiber_nap(double seconds)
{
	jobq_fiber_t *f = jobq_fiber_current();
	struct op o = {.kind = OP_SLEEP, .timeout = seconds};
	struct req r = {0};
	ssize_t res;

	if (!f)
		return -EINVAL;
	if (f->cancelled)
		return -ECANCELED;
	r.fiber = f;
	if (submit_op(f->loop, &r, &o))
		return -EBUSY;
	f->napping = true;
	res = wait_req(f->loop, f, &r);
	f->napping = false;
	if (res == -ECANCELED && !f->cancelled)
		return -EINTR;
	return (int)res;
}

bool jobq__loop_in_fiber(const jobq_loop_t *l)
{
	return *(const volatile jobq_fiber_t *const *)&l->current != NULL;
}

/* Waits in fiber @cur until @f returns, @timeout passes or @cur is
 * cancelled. */
static int join_wait(jobq_fiber_t *cur, jobq_fiber_t *f, double timeout)
{
	jobq_loop_t *l = cur->loop;
	struct req t = {0};
	struct op o = {.kind = OP_SLEEP, .timeout = timeout};
	bool timer = timeout >= 0;

	if (cur->cancelled)
		return -ECANCELED;
	if (f->joiner && f->joiner != cur)
		return -EBUSY;
	t.fiber = cur;
	if (timer) {
		if (submit_op(l, &t, &o))
			return -EBUSY;
		cur->wait = &t;
	}
	f->joiner = cur;
	while (f->state != F_DONE && !cur->cancelled && !(timer && !t.pending))
		suspend(l, cur);
	f->joiner = NULL;
	if (timer) {
		cancel_req(l, &t);
		while (t.pending)
			suspend(l, cur);
	}
	cur->wait = NULL;
	if (f->state == F_DONE)
		return 0;
	return cur->cancelled ? -ECANCELED : -ETIMEDOUT;
}

struct join_job {
	jobq_fiber_t *f;
	double timeout;
	int res;
};

static void join_fn(void *arg)
{
	struct join_job *j = arg;

	j->res = jobq_fiber_join(j->f, j->timeout);
}

/* Joins from plain code: a helper fiber joins while the loop runs. */
static int join_outside(jobq_fiber_t *f, double timeout)
{
	jobq_loop_t *l = f->loop;
	struct join_job j = {.f = f, .timeout = timeout, .res = -EINVAL};
	jobq_fiber_t *h;
	int err;

	if (l->running)
		return -EDEADLK; /* a callback of the loop cannot wait */
	err = jobq_spawn(l, join_fn, &j, &h);
	if (err)
		return err;
	err = run(l, h);
	if (h->state != F_DONE) {
		/* The ring failed: leave the helper to jobq_loop_free(). */
		h->detached = true;
		return err ? err : -EIO;
	}
	release(h);
	return j.res;
}

int jobq_fiber_join(jobq_fiber_t *f, double timeout)
{
	jobq_fiber_t *cur = jobq_fiber_current();
	int err;

	if (f && cur == f)
		return -EDEADLK;
	if (!f || f->detached)
		return -EINVAL;
	if (f->state != F_DONE) {
		if (!cur)
			return join_outside(f, timeout);
		if (cur->loop != f->loop)
			return -EINVAL;
		err = join_wait(cur, f, timeout);
		if (err)
			return err;
	}
	release(f);
	return 0;
}

int jobq_fiber_join_all(jobq_fiber_t **fs, size_t n, double timeout)
{
	uint64_t end =
	    timeout >= 0 ? jobq__now_ns() + (uint64_t)(timeout * 1e9) : 0;
	int first = 0;

	if (!fs && n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		double left = -1;
		int err;

		if (!fs[i])
			continue;
		if (first) {
			/* Past the first failure: free what has returned. */
			if (fs[i]->state == F_DONE && !fs[i]->detached) {
				release(fs[i]);
				fs[i] = NULL;
			}
			continue;
		}
		if (timeout >= 0) {
			uint64_t now = jobq__now_ns();

			left = now < end ? (double)(end - now) / 1e9 : 0;
		}
		err = jobq_fiber_join(fs[i], left);
		if (err)
			first = err;
		else
			fs[i] = NULL;
	}
	return first;
}

/* ------------------------------------------------------------------------
 * The fiber form, and plain code through a private loop.
 */
static void private_free(void *p)
{
	jobq_loop_free(p);
}

static void private_key_init(void)
{
	if (pthread_key_create(&private_key, private_free))
		abort();
}

/* The calling thread's private loop, made on first use (a small ring),
 * freed when the thread exits. */
static jobq_loop_t *private_loop(int *err)
{
	struct jobq_loop_opts o = {.entries = 8};

	/* A child of fork() shares its parent's rings: it must not touch
	 * them (and with a single issuer it could not). It makes its own,
	 * leaving the parent's alone. */
	if (tl_private && tl_private_pid != getpid())
		tl_private = NULL;
	if (tl_private)
		return tl_private;
	pthread_once(&private_once, private_key_init);
	*err = jobq_loop_new(&tl_private, &o);
	if (*err)
		return NULL;
	tl_private_pid = getpid();
	pthread_setspecific(private_key, tl_private);
	return tl_private;
}

static ssize_t do_op(struct op *o);

struct blocking {
	struct op *o;
	ssize_t res;
};

static void blocking_fn(void *arg)
{
	struct blocking *b = arg;

	b->res = do_op(b->o);
}

/* Plain code: @o runs in a fiber of the thread's private loop, which the
 * calling thread runs until it is done. */
static ssize_t blocking_op(struct op *o)
{
	struct blocking b = {.o = o, .res = -EIO};
	jobq_loop_t *p;
	jobq_fiber_t *f;
	int err = 0;

	p = private_loop(&err);
	if (!p)
		return err;
	if (p->running)
		return -EDEADLK;
	err = jobq_spawn(p, blocking_fn, &b, &f);
	if (err)
		return err;
	err = run(p, f);
	if (f->state != F_DONE) {
		f->detached = true;
		return err ? err : -EIO;
	}
	release(f);
	return b.res;
}

static ssize_t do_op(struct op *o)
{
	jobq_fiber_t *f = jobq_fiber_current();
	struct req r = {0};
	int err;

	if (!f)
		return blocking_op(o);
	/* A cancelled fiber starts nothing new, but it must still be able
	 * to let go of what it holds: its close is done at once. */
	if (f->cancelled)
		return o->kind == OP_CLOSE ? sync_op(o) : -ECANCELED;
	if (!on_ring(f->loop, o))
		return sync_op(o);
	r.fiber = f;
	err = submit_op(f->loop, &r, o);
	if (err)
		return err;
	return wait_req(f->loop, f, &r);
}

ssize_t jobq_io_read(int fd, void *buf, size_t len, int64_t off, double timeout)
{
	struct op o = {.kind = OP_READ,
		       .fd = fd,
		       .buf = buf,
		       .len = len,
		       .off = off,
		       .timeout = timeout};

	return do_op(&o);
}

ssize_t jobq_io_write(int fd, const void *buf, size_t len, int64_t off,
		      double timeout)
{
	struct op o = {.kind = OP_WRITE,
		       .fd = fd,
		       .buf = (void *)buf,
		       .len = len,
		       .off = off,
		       .timeout = timeout};

	return do_op(&o);
}

/* What is left of a whole-call timeout that ends at @end (0: none). */
static double left_of(uint64_t end)
{
	uint64_t now;

	if (!end)
		return -1;
	now = jobq__now_ns();
	return now < end ? (double)(end - now) / 1e9 : 0;
}

static uint64_t deadline(double timeout)
{
	if (timeout < 0)
		return 0;
	return jobq__now_ns() + (uint64_t)(timeout * 1e9) + 1;
}

ssize_t jobq_io_read_full(int fd, void *buf, size_t len, int64_t off,
			  double timeout)
{
	uint64_t end = deadline(timeout);
	size_t done = 0;

	while (done < len) {
		ssize_t n = jobq_io_read(fd, (char *)buf + done, len - done,
					 off < 0 ? -1 : off + (int64_t)done,
					 left_of(end));

		if (n < 0)
			return n;
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t jobq_io_write_all(int fd, const void *buf, size_t len, int64_t off,
			  double timeout)
{
	uint64_t end = deadline(timeout);
	size_t done = 0;

	while (done < len) {
		ssize_t n = jobq_io_write(
		    fd, (const char *)buf + done, len - done,
		    off < 0 ? -1 : off + (int64_t)done, left_of(end));

		if (n < 0)
			return n;
		if (n == 0)
			return -EIO; /* no progress: would spin forever */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int jobq_io_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct op o = {.kind = OP_OPENAT,
		       .fd = dirfd,
		       .path = path,
		       .flags = flags | O_CLOEXEC,
		       .mode = mode,
		       .timeout = -1};

	return (int)do_op(&o);
}

int jobq_io_close(int fd)
{
	struct op o = {.kind = OP_CLOSE, .fd = fd, .timeout = -1};

	return (int)do_op(&o);
}

int jobq_io_fsync(int fd, int datasync)
{
	struct op o = {
	    .kind = OP_FSYNC, .fd = fd, .flags = datasync != 0, .timeout = -1};

	return (int)do_op(&o);
}

int jobq_io_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags,
		   double timeout)
{
	struct op o = {.kind = OP_ACCEPT,
		       .fd = fd,
		       .addr = addr,
		       .alenp = len,
		       .flags = flags,
		       .timeout = timeout};

	return (int)do_op(&o);
}

int jobq_io_connect(int fd, const struct sockaddr *addr, socklen_t len,
		    double timeout)
{
	struct op o = {.kind = OP_CONNECT,
		       .fd = fd,
		       .addr = addr,
		       .alen = len,
		       .timeout = timeout};

	return (int)do_op(&o);
}

ssize_t jobq_io_send(int fd, const void *buf, size_t len, int flags,
		     double timeout)
{
	struct op o = {.kind = OP_SEND,
		       .fd = fd,
		       .buf = (void *)buf,
		       .len = len,
		       .flags = flags | MSG_NOSIGNAL,
		       .timeout = timeout};

	return do_op(&o);
}

ssize_t jobq_io_recv(int fd, void *buf, size_t len, int flags, double timeout)
{
	struct op o = {.kind = OP_RECV,
		       .fd = fd,
		       .buf = buf,
		       .len = len,
		       .flags = flags,
		       .timeout = timeout};

	return do_op(&o);
}

int jobq_io_sleep(double seconds)
{
	struct op o = {.kind = OP_SLEEP, .timeout = seconds};

	return (int)do_op(&o);
}

int jobq_io_poll(int fd, unsigned events, double timeout)
{
	struct op o = {
	    .kind = OP_POLL, .fd = fd, .events = events, .timeout = timeout};

	return (int)do_op(&o);
}

/*
 * A child's exit is a pidfd becoming readable (Linux 5.3), which the ring
 * polls like any fd; waitpid(WNOHANG) then reaps it with its status.
 */
int jobq_io_waitpid(pid_t pid, int *status, double timeout)
{
	int st = 0, pfd, r;
	pid_t w;

	if (pid <= 0)
		return -EINVAL;
	w = waitpid(pid, &st, WNOHANG);
	if (w < 0)
		return -errno;
	if (w == 0) {
		pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd < 0)
			return -errno;
		r = jobq_io_poll(pfd, POLLIN, timeout);
		close(pfd);
		if (r < 0)
			return r;
		w = waitpid(pid, &st, WNOHANG);
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EAGAIN; /* cannot be: the pidfd said it ended */
	}
	if (status)
		*status = st;
	return 0;
}

/* ------------------------------------------------------------------------
 * The callback form.
 */
static int cb_submit(jobq_loop_t *l, const struct op *o, jobq_io_cb cb,
		     void *arg)
{
	struct req *r;
	int err;

	if (!l || !cb)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = l;
	r->cb = cb;
	r->arg = arg;
	if (!on_ring(l, o)) {
		r->res = sync_op(o);
		done_push(l, r);
		return 0;
	}
	err = submit_op(l, r, o);
	if (err) {
		free(r);
		return err;
	}
	r->prev = NULL;
	r->next = l->cb_inflight;
	if (l->cb_inflight)
		l->cb_inflight->prev = r;
	l->cb_inflight = r;
	return 0;
}

int jobq_io_read_cb(jobq_loop_t *l, int fd, void *buf, size_t len, int64_t off,
		    double timeout, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_READ,
		       .fd = fd,
		       .buf = buf,
		       .len = len,
		       .off = off,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_write_cb(jobq_loop_t *l, int fd, const void *buf, size_t len,
		     int64_t off, double timeout, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_WRITE,
		       .fd = fd,
		       .buf = (void *)buf,
		       .len = len,
		       .off = off,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_accept_cb(jobq_loop_t *l, int fd, struct sockaddr *addr,
		      socklen_t *len, int flags, double timeout, jobq_io_cb cb,
		      void *arg)
{
	struct op o = {.kind = OP_ACCEPT,
		       .fd = fd,
		       .addr = addr,
		       .alenp = len,
		       .flags = flags,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_connect_cb(jobq_loop_t *l, int fd, const struct sockaddr *addr,
		       socklen_t len, double timeout, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_CONNECT,
		       .fd = fd,
		       .addr = addr,
		       .alen = len,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_send_cb(jobq_loop_t *l, int fd, const void *buf, size_t len,
		    int flags, double timeout, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_SEND,
		       .fd = fd,
		       .buf = (void *)buf,
		       .len = len,
		       .flags = flags | MSG_NOSIGNAL,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_recv_cb(jobq_loop_t *l, int fd, void *buf, size_t len, int flags,
		    double timeout, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_RECV,
		       .fd = fd,
		       .buf = buf,
		       .len = len,
		       .flags = flags,
		       .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_sleep_cb(jobq_loop_t *l, double seconds, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_SLEEP, .timeout = seconds};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_poll_cb(jobq_loop_t *l, int fd, unsigned events, double timeout,
		    jobq_io_cb cb, void *arg)
{
	struct op o = {
	    .kind = OP_POLL, .fd = fd, .events = events, .timeout = timeout};

	return cb_submit(l, &o, cb, arg);
}

int jobq_io_close_cb(jobq_loop_t *l, int fd, jobq_io_cb cb, void *arg)
{
	struct op o = {.kind = OP_CLOSE, .fd = fd, .timeout = -1};

	return cb_submit(l, &o, cb, arg);
}

/* ------------------------------------------------------------------------
 * Streams: one multishot receive delivering chunk after chunk.
 */
unsigned jobq__pbuf_count = 256;
size_t jobq__pbuf_size = 16 * 1024;

#define PBUF_GROUP 0

/* Sets up the provided-buffer ring (Linux 5.19). Returns whether there
 * is one. */
static bool pbufs_ready(jobq_loop_t *l)
{
	struct io_uring_buf_reg reg = {0};
	size_t rlen;

	if (l->pbuf_state)
		return l->pbuf_state > 0;
	l->pbuf_state = -1;
	l->pbuf_count = jobq__pbuf_count;
	l->pbuf_size = jobq__pbuf_size;
	if (!l->pbuf_count)
		return false; /* (tests: as on a kernel without buffer rings) */
	rlen = l->pbuf_count * sizeof(struct io_uring_buf);
	l->pbr = mmap(NULL, rlen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l->pbufs =
	    mmap(NULL, l->pbuf_count * l->pbuf_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->pbr == MAP_FAILED || l->pbufs == MAP_FAILED)
		goto fail;
	io_uring_buf_ring_init(l->pbr);
	reg.ring_addr = (uint64_t)(uintptr_t)l->pbr;
	reg.ring_entries = l->pbuf_count;
	reg.bgid = PBUF_GROUP;
	if (io_uring_register_buf_ring(&l->ring, &reg, 0))
		goto fail;
	for (unsigned i = 0; i < l->pbuf_count; i++)
		io_uring_buf_ring_add(l->pbr, l->pbufs + i * l->pbuf_size,
				      (unsigned)l->pbuf_size, (unsigned short)i,
				      io_uring_buf_ring_mask(l->pbuf_count),
				      (int)i);
	io_uring_buf_ring_advance(l->pbr, (int)l->pbuf_count);
	l->pbuf_state = 1;
	return true;
fail:
	if (l->pbr != MAP_FAILED)
		munmap(l->pbr, rlen);
	if (l->pbufs != MAP_FAILED)
		munmap(l->pbufs, l->pbuf_count * l->pbuf_size);
	l->pbr = NULL;
	l->pbufs = NULL;
	return false;
}

/* Gives buffer @bid back to the kernel. */
static void pbuf_return(jobq_loop_t *l, unsigned bid)
{
	io_uring_buf_ring_add(l->pbr, l->pbufs + bid * l->pbuf_size,
			      (unsigned)l->pbuf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(l->pbuf_count), 0);
	io_uring_buf_ring_advance(l->pbr, 1);
}

/* Submits the stream's next receive: multishot where the kernel has it,
 * else one receive into the stream's own buffer. */
static int stream_arm(jobq_stream_t *s)
{
	jobq_loop_t *l = s->loop;
	struct io_uring_sqe *sqe;

	if (!l->no_multishot && pbufs_ready(l)) {
		sqe = get_sqe(l, 1);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = PBUF_GROUP;
		s->multishot = true;
	} else {
		if (!s->buf) {
			s->buf = malloc(jobq__pbuf_size);
			if (!s->buf)
				return -ENOMEM;
		}
		sqe = get_sqe(l, 1);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_recv(sqe, s->fd, s->buf,
				   (unsigned)jobq__pbuf_size, 0);
		s->multishot = false;
	}
	sqe->user_data = (uint64_t)(uintptr_t)&s->r | TAG_MAIN;
	s->r.pending = 1;
	s->r.cancel_sent = false;
	s->armed = true;
	l->inflight++;
	return 0;
}

/*
 * Reaping: queue the CQE for the scheduler. The last CQE of a receive
 * (no IORING_CQE_F_MORE) uses the event kept in the stream, so that the
 * end of a stream never depends on an allocation; a chunk that finds no
 * memory is dropped and ends the stream with -ENOMEM.
 */
static void stream_cqe(jobq_loop_t *l, jobq_stream_t *s, int res,
		       unsigned flags)
{
	struct stream_ev *e;

	if (flags & IORING_CQE_F_MORE) {
		e = malloc(sizeof(*e));
		if (!e) {
			if (flags & IORING_CQE_F_BUFFER)
				pbuf_return(l,
					    flags >> IORING_CQE_BUFFER_SHIFT);
			s->err = -ENOMEM;
			cancel_req(l, &s->r);
			return;
		}
	} else {
		s->r.pending = 0; /* that receive is over */
		e = &s->last_ev;
	}
	e->next = NULL;
	e->s = s;
	e->res = res;
	e->flags = flags;
	if (l->ev_tail)
		l->ev_tail->next = e;
	else
		l->ev_head = e;
	l->ev_tail = e;
}

static void stream_end(jobq_loop_t *l, jobq_stream_t *s, int res)
{
	s->cb(l, res, NULL, s->arg);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->buf);
	free(s);
}

/* The scheduler: one CQE of a stream. */
static void stream_event(jobq_loop_t *l, struct stream_ev *e)
{
	jobq_stream_t *s = e->s;
	bool more = e->flags & IORING_CQE_F_MORE;
	int res = e->res, err;

	if (!more)
		s->armed = false;
	if (res > 0) {
		if (e->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = e->flags >> IORING_CQE_BUFFER_SHIFT;

			if (!s->stopping && !s->err)
				s->cb(l, res, l->pbufs + bid * l->pbuf_size,
				      s->arg);
			pbuf_return(l, bid);
		} else if (!s->stopping && !s->err) {
			s->cb(l, res, s->buf, s->arg);
		}
	}
	if (more)
		return;
	/* That receive is over: the stream ends, or another goes out. */
	if (s->stopping) {
		stream_end(l, s, -ECANCELED);
		return;
	}
	if (s->err) {
		stream_end(l, s, s->err);
		return;
	}
	if (res == -ENOBUFS) {
		/* Every provided buffer was in use: they are back now. */
		l->enobufs++;
	} else if (res == -EINVAL && s->multishot) {
		/* A kernel with buffer rings but without multishot
		 * receive (5.19): single-shot receives from now on. */
		l->no_multishot = true;
	} else if (res <= 0) {
		stream_end(l, s, res);
		return;
	}
	/* res > 0 without F_MORE: the kernel ended the multishot receive
	 * (or it was a single-shot one): re-arm. */
	err = stream_arm(s);
	if (err)
		stream_end(l, s, err);
}

int jobq_io_recv_stream_cb(jobq_loop_t *l, int fd, jobq_io_data_cb cb,
			   void *arg, jobq_stream_t **out)
{
	jobq_stream_t *s;
	int err;

	if (!l || !cb || fd < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->fd = fd;
	s->cb = cb;
	s->arg = arg;
	s->r.loop = l;
	s->r.stream = s;
	err = stream_arm(s);
	if (err) {
		free(s->buf);
		free(s);
		return err;
	}
	s->next = l->streams;
	if (l->streams)
		l->streams->prev = s;
	l->streams = s;
	if (out)
		*out = s;
	return 0;
}

void jobq_io_stream_stop(jobq_stream_t *s)
{
	if (!s || s->stopping)
		return;
	s->stopping = true;
	if (s->armed)
		cancel_req(s->loop, &s->r);
}

unsigned jobq__loop_enobufs(const jobq_loop_t *l)
{
	return l->enobufs;
}

int jobq__loop_multishot(const jobq_loop_t *l)
{
	return l->pbuf_state > 0 && !l->no_multishot;
}
