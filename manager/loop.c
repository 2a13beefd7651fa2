/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the event loop of jobqd: one io_uring for the control socket,
 * signals and every client's eventfd, socket and pidfd; the client rings;
 * completions, waiters and their timers.
 *
 * The shape of one turn:
 *
 *   1. reap io_uring completions (new connections, hellos, signals, wake-ups,
 *      peers that went away);
 *   2. sweep every live client: free the objects it has acknowledged, move
 *      overflowed completions into its cq, consume its sq;
 *   3. expire timers; serve putters if heap space came back;
 *   4. drop broken clients; commit the journal (journal_mgr.c); only then
 *      publish the completions of the turn (move each cq tail) and write
 *      the cq eventfd of every client that got some and asked to be woken.
 *      Takes wait for a later commit (lazy records) and hold no answer.
 *
 * Completions are written into the cq as they are made but published only
 * at the end of the turn, after the journal commit: an answer is never
 * seen before what it acknowledges is as durable as --fsync promises.
 *
 * After a turn with work the loop keeps sweeping without sleeping for an
 * adaptive spin window, so a busy client pays no system call per request.
 * When the window passes idle it sets NEED_WAKEUP in every sq, fences,
 * checks every sq tail once more and only then sleeps in the kernel.
 *
 * The sleep has no bound but the earliest timer: everything that can give
 * the loop work announces itself through the ring. A client that publishes
 * requests writes its sq eventfd (NEED_WAKEUP). A client whose progress we
 * wait for without a request - completions that did not fit in its cq,
 * requests that need cq room, acknowledgements that free objects a putter
 * waits for - moves its cq head, and we ask for a wake-up on that with
 * WANT_HEAD in its cq before we sleep (proto.h). Deaths come as pidfd and
 * socket completions, signals through the signalfd. An idle manager makes
 * no system call at all.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "jobqd.h"
#include "pqueue.h"
#include "spin.h"

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

#define JOBQ__SQ_ENTRIES 256u
#define JOBQ__CQ_ENTRIES 1024u
#define JOBQ__OVF_MAX	 4096u /* overflowed completions before we give up */
/* How long a new connection may take to send its hello. */
#define HELLO_TIMEOUT_NS (5 * JOBQ__NSEC_PER_SEC)
/* How long a client whose socket ended may take to exit (sock_gone()). */
#define GONE_GRACE_NS (JOBQ__NSEC_PER_SEC / 2)

/* What an io_uring request was for: kind in the top byte, then the client
 * slot, then the slot's generation, so a completion that arrives after its
 * slot was reused is recognised and ignored. */
enum {
	UD_ACCEPT = 1,
	UD_SIGNAL,
	UD_HELLO, /* recv of struct jobq_hello */
	UD_SQ,	  /* poll on the client's sq eventfd */
	UD_SOCK,  /* recv on the client's socket: returns when it closes */
	UD_PID,	  /* poll on the client's pidfd */
	UD_CANCEL,
	UD_CHILD,   /* poll on a supervised child's pidfd (slot: its index) */
	UD_JOURNAL, /* a journal write or sync (slot: its tag) */
	UD_WATCH,   /* jobq__loop_watch_fd() (gen: its tag) */
};

static inline uint64_t ud_make(unsigned kind, uint32_t slot, uint32_t gen)
{
	return (uint64_t)kind << 56 | (uint64_t)(slot & 0xffffff) << 32 | gen;
}

struct jobq__mgr jobq__m;

static struct {
	struct io_uring ring;
	int lfd; /* the listening socket */
	int sfd; /* signalfd */
	struct signalfd_siginfo si;
	struct jobq__list live;	  /* clients in JOBQ__C_LIVE */
	struct jobq__list wakes;  /* clients that got completions this turn */
	struct jobq__waiter **th; /* timer heap, earliest deadline first */
	uint32_t tn, tcap;
	uint64_t next_id;
	void (*on_hup)(void);
	bool work; /* something happened this turn */
	/* Connections with a drop deadline (drop_by): in HELLO, or live
	 * with sock_gone. */
	uint32_t ndeadlines;
	/* Completions of this turn that acknowledge journaled records: they
	 * carry the commit's error when it fails. */
	struct jmark {
		uint32_t slot, gen, pos;
		uint64_t id; /* the commit that holds its records */
	} * marks;
	size_t nmarks, mcap;
	/* The request being answered (dispatch, a waiter's end): its final
	 * completion is what session.c keeps for a resend. */
	struct jobq__client *cur_c;
	uint64_t cur_ud;
	uint8_t cur_op;
	/*
	 * Test seam, not a feature: with $JOBQD_TEST_CRASH_AFTER=N the
	 * manager _exit()s right after the journal commit of the turn that
	 * answered the Nth changing request, before that answer is
	 * published: the moment between "applied" and "acknowledged" that a
	 * resent request must survive (tests/e2e/test_reconnect.c).
	 */
	uint64_t crash_after;
	bool crash_now;
} loop;

/* ------------------------------------------------------------------------
 * io_uring submission helpers.
 */
static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop.ring);

	if (!sqe) {
		io_uring_submit(&loop.ring);
		sqe = io_uring_get_sqe(&loop.ring);
	}
	if (!sqe) {
		/* The ring was sized for every client; not reachable. */
		jobq__log(JOBQ__LOG_ERROR, "io_uring submission queue full");
		abort();
	}
	return sqe;
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_accept(sqe, loop.lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, 0, 0));
}

static void arm_signal(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_read(sqe, loop.sfd, &loop.si, sizeof(loop.si), 0);
	io_uring_sqe_set_data64(sqe, ud_make(UD_SIGNAL, 0, 0));
}

static void arm_client(struct jobq__client *c, unsigned kind)
{
	struct io_uring_sqe *sqe = get_sqe();

	switch (kind) {
	case UD_HELLO:
		io_uring_prep_recv(sqe, c->sock, &c->hello, sizeof(c->hello),
				   0);
		break;
	case UD_SQ:
		io_uring_prep_poll_add(sqe, c->sq_efd, POLLIN);
		break;
	case UD_SOCK:
		io_uring_prep_recv(sqe, c->sock, c->recv_buf,
				   sizeof(c->recv_buf), 0);
		break;
	case UD_PID:
		io_uring_prep_poll_add(sqe, c->pidfd, POLLIN);
		break;
	}
	io_uring_sqe_set_data64(sqe, ud_make(kind, c->slot, c->gen));
	c->inflight++;
}

static void cancel_client(struct jobq__client *c, unsigned kind)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_cancel64(sqe, ud_make(kind, c->slot, c->gen), 0);
	io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, 0, 0));
}

/* ------------------------------------------------------------------------
 * Timers: a min-heap (pqueue.h) of waiters by deadline.
 */
static inline bool th_before(struct jobq__waiter *const *a,
			     struct jobq__waiter *const *b)
{
	return (*a)->deadline < (*b)->deadline;
}

static inline void th_moved(struct jobq__waiter **w, uint32_t i)
{
	(*w)->tidx = i;
}

JOBQ__PQUEUE_DEFINE(theap, struct jobq__waiter *, th_before, th_moved)

static int th_push(struct jobq__waiter *w)
{
	if (loop.tn == loop.tcap &&
	    theap_resize(&loop.th, &loop.tcap, loop.tcap ? 2 * loop.tcap : 64))
		return -ENOMEM;
	theap_push(loop.th, &loop.tn, w);
	return 0;
}

static void th_remove(struct jobq__waiter *w)
{
	if (w->tidx < 0)
		return;
	theap_remove(loop.th, &loop.tn, (uint32_t)w->tidx);
	w->tidx = -1;
}

/*
 * Module timers: jobs.c and supervise.c each keep their own deadlines and
 * put only their earliest one here, as a waiter of kind JOBQ__W_TIMER that no
 * client owns.
 */
static struct jobq__waiter mod_timers[JOBQ__TIMER__COUNT] = {
    [JOBQ__TIMER_JOBS] = {.tidx = -1, .kind = JOBQ__W_TIMER},
    [JOBQ__TIMER_SUPERVISE] = {.tidx = -1, .kind = JOBQ__W_TIMER},
    [JOBQ__TIMER_DEADLINES] = {.tidx = -1, .kind = JOBQ__W_TIMER},
    [JOBQ__TIMER_LOCKS] = {.tidx = -1, .kind = JOBQ__W_TIMER},
    [JOBQ__TIMER_JOURNAL] = {.tidx = -1, .kind = JOBQ__W_TIMER},
    [JOBQ__TIMER_BACKEND] = {.tidx = -1, .kind = JOBQ__W_TIMER},
};

void jobq__timer_arm(int which, uint64_t deadline)
{
	struct jobq__waiter *t = &mod_timers[which];

	if (t->tidx >= 0 && t->deadline == deadline)
		return;
	th_remove(t);
	t->deadline = deadline;
	if (deadline && th_push(t))
		jobq__log(JOBQ__LOG_ERROR, "out of memory for a timer");
}

/* ------------------------------------------------------------------------
 * Completions.
 */

/* Free cq slots as this client's published head says; 0 when the head is
 * not believable (a client can write anything there). */
static uint32_t cq_room(struct jobq__client *c)
{
	uint32_t head = load_acquire(&c->hdr->cq.head);
	uint32_t used = c->cq_tail - head;

	if (used > c->cq_entries)
		return 0;
	return c->cq_entries - used;
}

/* Puts @c on the list end_turn() looks at for wake-ups. */
static void wake_link(struct jobq__client *c)
{
	if (!c->wake) {
		c->wake = true;
		jobq__list_add_tail(&c->wnode, &loop.wakes);
	}
}

/* @c got completions: wake it at the end of the turn if it sleeps. */
static void mark_wake(struct jobq__client *c)
{
	c->posted = true;
	wake_link(c);
}

/* Grows a FIFO array kept as [head, head + n) of capacity *cap. */
static int fifo_grow(void **arr, uint32_t *head, uint32_t n, uint32_t *cap,
		     size_t elem, uint32_t max)
{
	uint32_t ncap;
	uint8_t *na;

	if (*head + n < *cap)
		return 0;
	if (*head > 0) {
		/* Slide the live part to the front first. */
		memmove(*arr, (uint8_t *)*arr + (size_t)*head * elem,
			(size_t)n * elem);
		*head = 0;
		if (n < *cap)
			return 0;
	}
	if (*cap >= max)
		return -ENOSPC;
	ncap = *cap ? 2 * *cap : 64;
	if (ncap > max)
		ncap = max;
	na = realloc(*arr, (size_t)ncap * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

static void flush_overflow(struct jobq__client *c)
{
	uint32_t room, mask = c->cq_entries - 1;
	bool moved = false;

	if (!c->novf)
		return;
	room = cq_room(c);
	while (c->novf && room) {
		c->cq[c->cq_tail & mask] = c->ovf[c->ohead];
		c->cq_tail++;
		c->ohead++;
		c->novf--;
		room--;
		moved = true;
	}
	if (!c->novf)
		c->ohead = 0;
	if (moved) {
		/* Published at the end of the turn. */
		mark_wake(c);
		loop.work = true;
	}
}

/* The completion @c gets next acknowledges journaled records. Without
 * memory for the mark, the commit this turn must not fail unnoticed: the
 * journal is failed, so the commit fails and the snapshot repairs it. */
static void add_mark(struct jobq__client *c)
{
	if (loop.nmarks == loop.mcap) {
		size_t ncap = loop.mcap ? 2 * loop.mcap : 256;
		struct jmark *n = realloc(loop.marks, ncap * sizeof(*n));

		if (!n) {
			jobq__log(JOBQ__LOG_ERROR,
				  "out of memory for an acknowledgement");
			return;
		}
		loop.marks = n;
		loop.mcap = ncap;
	}
	loop.marks[loop.nmarks++] =
	    (struct jmark){.slot = c->slot,
			   .gen = c->gen,
			   .pos = c->cq_gen,
			   .id = jobq__durable_next_id()};
}

/*
 * jobq__loop_committed - commit @id ended. Its marked completions answer
 * @err when it failed; they sit unpublished in the cq below cq_tail, or
 * in the overflow FIFO (cq_tail + novf == cq_gen). Marks are in commit
 * order, since commits begin in the order records are journaled. Then
 * every client that holds completions for it is woken: publish() moves
 * their tails at the end of this turn.
 */
void jobq__loop_committed(uint64_t id, int err)
{
	size_t i;

	for (i = 0; i < loop.nmarks && loop.marks[i].id <= id; i++) {
		struct jmark *mk = &loop.marks[i];
		struct jobq__client *c = &jobq__m.clients[mk->slot];
		struct jobq_cqe *e = NULL;
		uint32_t ahead;

		if (!err || c->gen != mk->gen || c->state != JOBQ__C_LIVE)
			continue;
		ahead = mk->pos - c->cq_tail;
		if ((int32_t)ahead < 0)
			e = &c->cq[mk->pos & (c->cq_entries - 1)];
		else if (ahead < c->novf)
			e = &c->ovf[c->ohead + ahead];
		if (e && e->res >= 0) {
			e->res = err;
			e->val = 0;
		}
	}
	if (i) {
		memmove(loop.marks, loop.marks + i,
			(loop.nmarks - i) * sizeof(*loop.marks));
		loop.nmarks -= i;
	}
	for (struct jobq__list *p = loop.live.next; p != &loop.live;
	     p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		if (c->nhold && c->hold[0].id <= id)
			mark_wake(c);
	}
	/* A failed journal is repaired by a snapshot next turn. */
	loop.work = true;
}

void jobq__post(struct jobq__client *c, uint64_t user_data, int32_t res,
		uint32_t flags, uint64_t val, uint32_t len, uint32_t type)
{
	struct jobq_cqe e = {
	    .user_data = user_data,
	    .res = res,
	    .flags = flags,
	    .val = val,
	    .len = len,
	    .type = type,
	};

	if (c->state != JOBQ__C_LIVE) {
		if (!(flags & JOBQ_CQE_OBJECT))
			jobq__m.jdep = false;
		return;
	}
	if (jobq__m.jdep && !(flags & JOBQ_CQE_OBJECT)) {
		jobq__m.jdep = false;
		add_mark(c);
	}
	if (c == loop.cur_c && user_data == loop.cur_ud &&
	    !(flags & JOBQ_CQE_MORE) && c->sess &&
	    jobq__session_op_changes(loop.cur_op)) {
		jobq__session_answered(c, jobq_ud_rid(user_data), res, val,
				       c->cq_gen);
		if (loop.crash_after && !--loop.crash_after)
			loop.crash_now = true;
	}
	c->cq_gen++;
	if (!c->novf && cq_room(c)) {
		/* Published by publish() at the end of the turn. */
		c->cq[c->cq_tail & (c->cq_entries - 1)] = e;
		c->cq_tail++;
		mark_wake(c);
		return;
	}
	/*
	 * No room: keep it until the client consumes. Order is kept (once
	 * anything overflowed, everything after goes behind it), so each
	 * completion lands at position cq_gen - 1 as counted above.
	 */
	if (c->novf >= JOBQ__OVF_MAX ||
	    fifo_grow((void **)&c->ovf, &c->ohead, c->novf, &c->ocap,
		      sizeof(*c->ovf), JOBQ__OVF_MAX + 1)) {
		if (!c->broken)
			jobq__log(JOBQ__LOG_WARN,
				  "client %u (pid %d): %u completions "
				  "not consumed; dropping it",
				  c->slot, (int)c->pid, c->novf);
		c->broken = true;
		return;
	}
	c->ovf[c->ohead + c->novf++] = e;
}

void jobq__hand(struct jobq__client *c, uint64_t user_data, uint32_t qid,
		uint64_t item, bool more)
{
	const struct jobq_item *it = jobq__ptr(item);
	struct jobq__handed *h;

	if (c->broken || c->state != JOBQ__C_LIVE ||
	    fifo_grow((void **)&c->handed, &c->hhead, c->nhanded, &c->hcap,
		      sizeof(*c->handed),
		      JOBQ__CQ_ENTRIES + 2 * JOBQ__OVF_MAX)) {
		/* Keep the object: back to its queue. */
		jobq__queue_requeue(qid, item);
		c->broken = true;
		return;
	}
	h = &c->handed[c->hhead + c->nhanded++];
	h->item = item;
	h->qid = qid;
	h->pos = c->cq_gen;
	jobq__post(c, user_data, 0,
		   JOBQ_CQE_OBJECT | (more ? JOBQ_CQE_MORE : 0),
		   item + sizeof(struct jobq_item), it->len, it->type);
}

/* Frees the objects whose completions the client has consumed. */
static void reap_handed(struct jobq__client *c)
{
	uint32_t head;

	if (!c->nhanded)
		return;
	head = load_acquire(&c->hdr->cq.head);
	if (c->cq_tail - head > c->cq_entries)
		return;
	while (c->nhanded) {
		struct jobq__handed *h = &c->handed[c->hhead];

		if ((int32_t)(head - h->pos) <= 0)
			break;
		jobq__queue_item_free(h->qid, h->item);
		c->hhead++;
		c->nhanded--;
	}
	jobq__queue_takes_flush();
	if (!c->nhanded)
		c->hhead = 0;
}

void jobq__handed_each(void (*fn)(void *arg, uint32_t qid, uint64_t item),
		       void *arg)
{
	for (struct jobq__list *p = loop.live.next; p != &loop.live;
	     p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		for (uint32_t i = 0; i < c->nhanded; i++)
			fn(arg, c->handed[c->hhead + i].qid,
			   c->handed[c->hhead + i].item);
	}
}

/* ------------------------------------------------------------------------
 * Waiters.
 */
struct jobq__waiter *jobq__wait_new(struct jobq__client *c,
				    const struct jobq_sqe *s, int kind,
				    int *err)
{
	struct jobq__waiter *w;

	/* While the manager drains, a wait for a job may still be answered
	 * (with the job's end); nothing else waits on a stopping manager. */
	if (jobq__m.stopping && kind != JOBQ__W_JOB) {
		*err = JOBQ_ECLOSED;
		return NULL;
	}
	*err = jobq__quota_take(c, JOBQ_QUOTA_WAITS);
	if (*err)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w) {
		jobq__quota_give(c, JOBQ_QUOTA_WAITS);
		*err = -ENOMEM;
		return NULL;
	}
	w->c = c;
	w->sqe = *s;
	w->kind = kind;
	w->tidx = -1;
	jobq__list_init(&w->onode);
	if (s->timeout_ns > 0) {
		uint64_t now = jobq__now_ns();

		w->deadline = now + (uint64_t)s->timeout_ns;
		if (w->deadline < now)
			w->deadline = UINT64_MAX;
		if (th_push(w)) {
			free(w);
			jobq__quota_give(c, JOBQ_QUOTA_WAITS);
			*err = -ENOMEM;
			return NULL;
		}
	}
	jobq__list_add_tail(&w->cnode, &c->waiters);
	return w;
}

static void wait_detach(struct jobq__waiter *w)
{
	switch (w->kind) {
	case JOBQ__W_GET:
	case JOBQ__W_PUT:
	case JOBQ__W_JOIN:
		jobq__queue_wait_detach(w);
		break;
	case JOBQ__W_JOB:
	case JOBQ__W_RESERVE:
		jobq__job_wait_detach(w);
		break;
	default:
		jobq__lock_wait_detach(w);
		break;
	}
	th_remove(w);
	jobq__list_del(&w->cnode);
	jobq__quota_give(w->c, JOBQ_QUOTA_WAITS);
}

void jobq__wait_free(struct jobq__waiter *w)
{
	wait_detach(w);
	free(w);
}

void jobq__wait_done(struct jobq__waiter *w, int32_t res, uint64_t val)
{
	struct jobq__client *c = w->c;
	uint64_t ud = w->sqe.user_data;
	uint8_t op = w->sqe.op;

	wait_detach(w);
	free(w);
	loop.cur_c = c;
	loop.cur_ud = ud;
	loop.cur_op = op;
	jobq__post(c, ud, res, 0, val, 0, 0);
	loop.cur_c = NULL;
}

static void client_drop(struct jobq__client *c, bool died);

/* @c's drop deadline is over: it left HELLO (welcomed or dropped), or
 * its wait after its socket ended did (dropped). The last one out disarms
 * the timer, so that an idle manager has none armed. */
static void deadline_left(struct jobq__client *c)
{
	if ((c->state == JOBQ__C_HELLO || c->sock_gone) && !--loop.ndeadlines)
		jobq__timer_arm(JOBQ__TIMER_DEADLINES, 0);
	c->sock_gone = false;
}

/*
 * A connection must say hello within HELLO_TIMEOUT_NS of its accept, or
 * it would hold a client slot for ever; and a client whose socket ended
 * is dropped when its pidfd says it exited, or GONE_GRACE_NS after the
 * socket ended (sock_gone()), whichever comes first. One timer serves
 * both, armed only while such a deadline exists, for the earliest; when
 * it fires, every connection past its deadline is dropped and it is
 * armed again for the next, if any.
 */
static void drop_deadlines(void)
{
	uint64_t now = jobq__now_ns(), next = 0;

	for (uint32_t i = 0; i < jobq__m.o.max_clients; i++) {
		struct jobq__client *c = &jobq__m.clients[i];
		bool gone = c->state == JOBQ__C_LIVE && c->sock_gone;

		if (!gone && c->state != JOBQ__C_HELLO)
			continue;
		if (c->drop_by > now) {
			if (!next || c->drop_by < next)
				next = c->drop_by;
			continue;
		}
		if (!gone)
			jobq__log(JOBQ__LOG_WARN,
				  "pid %d: connected but sent no hello "
				  "within %d s; closing",
				  (int)c->pid,
				  (int)(HELLO_TIMEOUT_NS / JOBQ__NSEC_PER_SEC));
		client_drop(c, gone);
	}
	jobq__timer_arm(JOBQ__TIMER_DEADLINES, next);
}

/*
 * A live client's socket ended without a goodbye: it died, or is dying.
 * Its exit is complete when its pidfd says so, and only then has the
 * kernel sent its children their parent-death signals (`jobq lock CMD`
 * gives its command SIGKILL so); the socket closes earlier in the exit.
 * So the drop, which gives its locks to the next waiter, waits for the
 * pidfd (UD_PID), or GONE_GRACE_NS for a process that closed its socket
 * and lives on.
 */
static void sock_gone(struct jobq__client *c)
{
	c->sock_gone = true;
	loop.ndeadlines++;
	c->drop_by = jobq__now_ns() + GONE_GRACE_NS;
	drop_deadlines(); /* arms the timer for the earliest deadline */
}

static void timers_run(void)
{
	uint64_t now;

	if (!loop.tn)
		return;
	now = jobq__now_ns();
	while (loop.tn && loop.th[0]->deadline <= now) {
		struct jobq__waiter *w = loop.th[0];

		if (w->kind == JOBQ__W_TIMER) {
			th_remove(w);
			if (w == &mod_timers[JOBQ__TIMER_JOBS])
				jobq__jobs_timer();
			else if (w == &mod_timers[JOBQ__TIMER_DEADLINES])
				drop_deadlines();
			else if (w == &mod_timers[JOBQ__TIMER_LOCKS])
				jobq__locks_timer();
			else if (w == &mod_timers[JOBQ__TIMER_JOURNAL])
				; /* the turn's end begins the commit */
			else if (w == &mod_timers[JOBQ__TIMER_BACKEND])
				jobq__backend_timer();
			else
				jobq__supervise_timer();
			loop.work = true;
			continue;
		}
		if (w->kind == JOBQ__W_LOCK)
			jobq__count(lock_timeouts);
		jobq__wait_done(w, -ETIMEDOUT, 0);
		loop.work = true;
	}
}

/* ------------------------------------------------------------------------
 * Request validation and dispatch.
 */
/*
 * jobq__arena - a pointer to region offset @off of @c, which dispatch()
 * bounds-checked with the request's arena_len. Not a copy: the bytes are
 * shared with the client, which may rewrite them at any time, so a handler
 * copies anything it checks before it relies on it.
 */
const uint8_t *jobq__arena(struct jobq__client *c, uint64_t off)
{
	return c->region + off;
}

/* jobq__client_alive - whether completions can still reach @c: it is live
 * and not marked broken (a broken one is dropped at the end of the turn). */
bool jobq__client_alive(const struct jobq__client *c)
{
	return c->state == JOBQ__C_LIVE && !c->broken;
}

int jobq__arena_name(struct jobq__client *c, const struct jobq_sqe *s,
		     char *buf)
{
	const uint8_t *p = jobq__arena(c, s->arena_off);

	/* Whole buffer cleared: it is copied into a record as it is, and
	 * nothing of our stack may show through the store. */
	memset(buf, 0, JOBQ_NAME_MAX + 1);
	if (s->arena_len < 1 || s->arena_len > JOBQ_NAME_MAX)
		return -EINVAL;
	memcpy(buf, p, s->arena_len);
	buf[s->arena_len] = '\0';
	return jobq__check_text(buf, s->arena_len);
}

static int op_nop(struct jobq__client *c, const struct jobq_sqe *s)
{
	return 0;
}

static int op_shutdown(struct jobq__client *c, const struct jobq_sqe *s)
{
	jobq__log(0, "shutdown requested by pid %d%s", (int)c->pid,
		  s->arg0 == 1 ? " (now)" : "");
	jobq__m.stopping = true;
	jobq__notify("STOPPING=1");
	if (s->arg0 == 1)
		jobq__m.stop_now = true;
	return 0;
}

typedef int (*jobq__op_fn)(struct jobq__client *c, const struct jobq_sqe *s);

/* The dispatch table: later ops (jobs, workers) add a row each. @arena
 * says the op reads the arena, so its reference is bounds-checked first. */
static const struct {
	jobq__op_fn fn;
	bool arena;
} ops[JOBQ_OP__COUNT] = {
    [JOBQ_OP_NOP] = {op_nop, false},
    [JOBQ_OP_Q_OPEN] = {jobq__op_q_open, true},
    [JOBQ_OP_Q_PUT] = {jobq__op_q_put, true},
    [JOBQ_OP_Q_GET] = {jobq__op_q_get, false},
    [JOBQ_OP_Q_TASK_DONE] = {jobq__op_q_task_done, false},
    [JOBQ_OP_Q_JOIN] = {jobq__op_q_join, false},
    [JOBQ_OP_Q_SET] = {jobq__op_q_set, false},
    [JOBQ_OP_KV_SET] = {jobq__op_kv_set, true},
    [JOBQ_OP_KV_DEL] = {jobq__op_kv_del, true},
    [JOBQ_OP_KV_INCR] = {jobq__op_kv_incr, true},
    [JOBQ_OP_KV_CAS] = {jobq__op_kv_cas, true},
    [JOBQ_OP_L_OPEN] = {jobq__op_l_open, true},
    [JOBQ_OP_L_ACQUIRE] = {jobq__op_l_acquire, false},
    [JOBQ_OP_L_RELEASE] = {jobq__op_l_release, false},
    [JOBQ_OP_L_MANY] = {jobq__op_l_many, true},
    [JOBQ_OP_EV_SET] = {jobq__op_ev_set, false},
    [JOBQ_OP_EV_CLEAR] = {jobq__op_ev_clear, false},
    [JOBQ_OP_EV_WAIT] = {jobq__op_ev_wait, false},
    [JOBQ_OP_SHUTDOWN] = {op_shutdown, false},
    [JOBQ_OP_JOB_SUBMIT] = {jobq__op_job_submit, true},
    [JOBQ_OP_JOB_WAIT] = {jobq__op_job_wait, false},
    [JOBQ_OP_JOB_CANCEL] = {jobq__op_job_cancel, false},
    [JOBQ_OP_JOB_RETRY] = {jobq__op_job_retry, false},
    [JOBQ_OP_JOB_KICK] = {jobq__op_job_kick, false},
    [JOBQ_OP_Q_PAUSE] = {jobq__op_q_pause, false},
    [JOBQ_OP_Q_PARALLEL] = {jobq__op_q_parallel, false},
    [JOBQ_OP_W_REGISTER] = {jobq__op_w_register, true},
    [JOBQ_OP_W_RESERVE] = {jobq__op_w_reserve, false},
    [JOBQ_OP_W_DONE] = {jobq__op_w_done, true},
    [JOBQ_OP_W_PROGRESS] = {jobq__op_w_progress, true},
    [JOBQ_OP_W_EXTEND] = {jobq__op_w_extend, false},
    [JOBQ_OP_W_STOPPING] = {jobq__op_w_stopping, false},
    [JOBQ_OP_Q_PUT_MANY] = {jobq__op_q_put_many, true},
    [JOBQ_OP_W_CLAIM] = {jobq__op_w_claim, true},
    [JOBQ_OP_Q_REMOVE] = {jobq__op_q_remove, true},
};

int jobq__bad(int err)
{
	jobq__count(bad_requests);
	return err;
}

static void dispatch(struct jobq__client *c, const struct jobq_sqe *sqe)
{
	struct jobq_sqe cp = *sqe;
	const struct jobq_sqe *s = &cp;
	int32_t res;
	uint64_t val = 0;
	uint64_t bad = load_relaxed(&jobq__hdr()->counters.bad_requests);

	/* Read here alone; no op sees it. */
	cp.flags &= (uint8_t)~JOBQ_SQE_RESENT;
	loop.cur_c = c;
	loop.cur_ud = s->user_data;
	loop.cur_op = s->op;
	if ((sqe->flags & JOBQ_SQE_RESENT) && jobq__session_op_changes(s->op) &&
	    jobq__session_lookup(c, jobq_ud_rid(s->user_data), &res, &val)) {
		/* Applied before the client lost its answer: the answer
		 * again, not the change. */
		jobq__post(c, s->user_data, res, 0, val, 0, 0);
		loop.cur_c = NULL;
		return;
	}
	if (s->op >= JOBQ_OP__COUNT || !ops[s->op].fn) {
		res = jobq__bad(-EOPNOTSUPP);
	} else if (ops[s->op].arena &&
		   !jobq__arena_ref_ok(s->arena_off, s->arena_len, c->arena_off,
				       c->arena_size)) {
		res = jobq__bad(-EFAULT);
	} else {
		jobq__m.jdep = false;
		res = ops[s->op].fn(c, s);
	}
	if (res != JOBQ__NOREPLY)
		jobq__post(c, s->user_data, res, 0, 0, 0, 0);
	loop.cur_c = NULL;
	jobq__m.jdep = false;
	jobq__durable_request_done();
	/* Every refusal goes through jobq__bad(): the counter says it. */
	if (jobq__clients_request(
		c, load_relaxed(&jobq__hdr()->counters.bad_requests) != bad))
		c->broken = true;
}

/* Completions a request can produce at once: it may be consumed only
 * when the cq has that much room. */
static uint32_t cq_need(const struct jobq__client *c, const struct jobq_sqe *s)
{
	if (s->op == JOBQ_OP_Q_GET || s->op == JOBQ_OP_W_RESERVE)
		return s->arg0 == 0		 ? 1
		       : s->arg0 > c->cq_entries ? c->cq_entries
						 : (uint32_t)s->arg0;
	return 1;
}

/* Consumes this client's sq. Returns how many entries it took. */
static unsigned process_sq(struct jobq__client *c)
{
	uint32_t tail, mask = c->sq_entries - 1;
	unsigned n = 0;

	c->sq_stuck = false;
	tail = load_acquire(&c->hdr->sq.tail);
	if (tail - c->sq_head > c->sq_entries) {
		jobq__log(JOBQ__LOG_WARN,
			  "client %u (pid %d): sq tail %u is %u ahead of "
			  "head; dropping it",
			  c->slot, (int)c->pid, tail, tail - c->sq_head);
		c->broken = true;
		return 0;
	}
	while (c->sq_head != tail && !c->broken) {
		struct jobq_sqe s;

		/*
		 * Copy the entry out once; everything below reads the copy.
		 * The compiler fence keeps the copy from being folded into
		 * later reads of shared memory.
		 */
		memcpy(&s, &c->sq[c->sq_head & mask], sizeof(s));
		atomic_signal_fence(memory_order_seq_cst);
		/* An empty payload names no bytes: any offset will do, so
		 * point it at the arena's start and skip the check. */
		if (s.arena_len == 0)
			s.arena_off = c->arena_off;
		if (c->novf || cq_room(c) < cq_need(c, &s)) {
			/* Until it consumes completions: see sleep_check(). */
			c->sq_stuck = true;
			break;
		}
		c->sq_head++;
		dispatch(c, &s);
		store_release(&c->hdr->sq.head, c->sq_head);
		n++;
	}
	/* A thread of the client may wait for room in its sq. */
	if (n) {
		c->sq_moved = true;
		wake_link(c);
	}
	return n;
}

void jobq__loop_watch_child(int fd, uint32_t idx)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UD_CHILD, idx, 0));
}

void jobq__loop_watch_fd(int fd, short events, uint32_t tag)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_poll_add(sqe, fd, (unsigned)events);
	io_uring_sqe_set_data64(sqe, ud_make(UD_WATCH, 0, tag));
}

void jobq__loop_unwatch_fd(uint32_t tag)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_poll_remove(sqe, ud_make(UD_WATCH, 0, tag));
	io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, 0, 0));
}

/* ------------------------------------------------------------------------
 * Clients: accept, handshake, death.
 */
static bool in_group(uid_t uid, gid_t pgid, gid_t want)
{
	struct passwd *pw;
	gid_t groups[256];
	int ng = 256;

	if (pgid == want)
		return true;
	pw = getpwuid(uid);
	if (!pw)
		return false;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
		return false;
	for (int i = 0; i < ng; i++)
		if (groups[i] == want)
			return true;
	return false;
}

static void send_welcome(int fd, int32_t status, uint32_t client_id,
			 uint64_t region_size, const char *msg, const int *fds,
			 unsigned nfds)
{
	struct jobq_welcome wl = {
	    .magic = JOBQ_HELLO_MAGIC,
	    .version = JOBQ_LAYOUT_VERSION,
	    .status = status,
	    .client_id = client_id,
	    .store_size = jobq__m.st.size,
	    .region_size = region_size,
	};
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &wl, .iov_len = sizeof(wl)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (msg)
		snprintf(wl.msg, sizeof(wl.msg), "%s", msg);
	if (nfds) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		jobq__log(1, "welcome not sent: %s", strerror(errno));
}

/*
 * The slot of a dropped client is freed once no io_uring request names it
 * any more. Its socket, sq eventfd and pidfd are closed only then, not
 * when it is dropped: a request armed on one of them may still sit in our
 * submission queue, and the kernel looks a descriptor up by its number
 * when the request is submitted. Closed earlier, the number can be handed
 * to a connection accepted meanwhile, and a recv armed for the dead
 * client would read the newcomer's hello, which then never reaches us.
 */
static void slot_release(struct jobq__client *c)
{
	if (c->state != JOBQ__C_DEAD || c->inflight)
		return;
	if (c->sock >= 0)
		close(c->sock);
	if (c->sq_efd >= 0)
		close(c->sq_efd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->sock = c->sq_efd = c->pidfd = -1;
	c->state = JOBQ__C_FREE;
	c->gen++;
}

/*
 * client_drop - the client is gone (or broken): drop its waiters, release
 * its locks, put the objects it had not acknowledged back at the head of
 * their queues in their original order, and free its region. The slot is
 * reused once every io_uring request naming it has completed.
 */
static void client_drop(struct jobq__client *c, bool died)
{
	struct jobq__mgr *m = &jobq__m;

	if (c->state == JOBQ__C_FREE || c->state == JOBQ__C_DEAD)
		return;
	if (c->state == JOBQ__C_LIVE) {
		uint32_t n;

		/* What it acknowledged before it went is delivered. */
		reap_handed(c);
		jobq__session_detach(c, c->said_bye);
		c->said_bye = false;
		n = c->nhanded;
		while (!jobq__list_empty(&c->waiters))
			jobq__wait_free(jobq__entry(
			    c->waiters.next, struct jobq__waiter, cnode));
		jobq__locks_drop_client(c);
		/* Its running jobs fail this attempt; its types lose it. */
		jobq__jobs_drop_client(c);
		/* Newest first, each to the head: the oldest ends up first. */
		for (uint32_t i = n; i-- > 0;) {
			struct jobq__handed *h = &c->handed[c->hhead + i];

			jobq__queue_requeue(h->qid, h->item);
		}
		for (uint32_t i = 0; i < n; i++)
			jobq__queue_serve(c->handed[c->hhead + i].qid);
		if (n)
			store_relaxed(
			    &jobq__hdr()->counters.requeued,
			    load_relaxed(&jobq__hdr()->counters.requeued) + n);
		c->nhanded = 0;
		free(c->handed);
		free(c->ovf);
		c->handed = NULL;
		c->ovf = NULL;
		c->hcap = c->ocap = c->novf = c->hhead = c->ohead = 0;
		munmap(c->region, c->region_size);
		c->region = NULL;
		/* No request names the cq eventfd; the sq eventfd waits for
		 * slot_release(). */
		close(c->cq_efd);
		c->cq_efd = -1;
		if (c->wake) {
			jobq__list_del(&c->wnode);
			c->wake = c->posted = c->sq_moved = false;
		}
		jobq__list_del(&c->lnode);
		jobq__clients_detach(c);
		m->nlive--;
		store_relaxed(&jobq__hdr()->nclients, m->nlive);
		if (died)
			jobq__count(clients_died);
		jobq__log(1, "client %u (pid %d, %s) %s", c->slot, (int)c->pid,
			  c->name, died ? "died" : "left");
		cancel_client(c, UD_SQ);
		cancel_client(c, UD_PID);
	}
	deadline_left(c);
	cancel_client(c, UD_HELLO);
	cancel_client(c, UD_SOCK);
	/* The peer hears of it now; the descriptors are closed by
	 * slot_release(), once no request names them. */
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	c->state = JOBQ__C_DEAD;
	c->broken = false;
	slot_release(c);
}

static void on_accept(int fd)
{
	struct jobq__mgr *m = &jobq__m;
	struct jobq__client *c = NULL;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	char msg[160];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
		close(fd);
		return;
	}
	if (cr.uid != geteuid() && cr.uid != 0 &&
	    !(m->o.group && in_group(cr.uid, cr.gid, m->o.gid))) {
		snprintf(msg, sizeof(msg),
			 "jobqd in %.80s serves uid %u%s%.32s, not uid %u",
			 m->o.dir, (unsigned)geteuid(),
			 m->o.group ? " and group " : "",
			 m->o.group ? m->o.group : "", (unsigned)cr.uid);
		send_welcome(fd, -EACCES, 0, 0, msg, NULL, 0);
		jobq__log(JOBQ__LOG_WARN, "refused pid %d: uid %u not allowed",
			  (int)cr.pid, (unsigned)cr.uid);
		close(fd);
		return;
	}
	if (m->stopping) {
		send_welcome(fd, JOBQ_ECLOSED, 0, 0, "jobqd is shutting down",
			     NULL, 0);
		close(fd);
		return;
	}
	for (uint32_t i = 0; i < m->o.max_clients; i++) {
		if (m->clients[i].state == JOBQ__C_FREE) {
			c = &m->clients[i];
			break;
		}
	}
	if (!c) {
		snprintf(msg, sizeof(msg),
			 "jobqd has %u clients, its limit (jobqd "
			 "--max-clients)",
			 m->o.max_clients);
		send_welcome(fd, JOBQ_ELIMIT, 0, 0, msg, NULL, 0);
		close(fd);
		return;
	}
	c->state = JOBQ__C_HELLO;
	c->sock_gone = false;
	c->drop_by = jobq__now_ns() + HELLO_TIMEOUT_NS;
	if (!loop.ndeadlines++)
		jobq__timer_arm(JOBQ__TIMER_DEADLINES, c->drop_by);
	c->sock = fd;
	c->pidfd = c->sq_efd = c->cq_efd = c->region_fd = -1;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	arm_client(c, UD_HELLO);
}

/* Creates the region memfd and eventfds of @c and maps the region. */
static int region_create(struct jobq__client *c, char *msg, size_t msglen)
{
	uint64_t hdr_sz = ALIGN_UP(sizeof(struct jobq_region_hdr), 64);
	uint64_t sq_off = hdr_sz;
	uint64_t cq_off = sq_off + JOBQ__SQ_ENTRIES * sizeof(struct jobq_sqe);
	uint64_t arena_off =
	    ALIGN_UP(cq_off + JOBQ__CQ_ENTRIES * sizeof(struct jobq_cqe), 4096);
	uint64_t arena = 2 * jobq__m.o.max_object + (1u << 20);
	struct jobq_region_hdr *h;
	int fd, err;

	if (arena < (8u << 20))
		arena = 8u << 20;
	arena = ALIGN_UP(arena, 4096);
	c->region_size = arena_off + arena;

	fd = memfd_create("jobq-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto fail;
	c->region_fd = fd;
	if (ftruncate(fd, (off_t)c->region_size) < 0)
		goto fail;
	/* The client maps it read-write but must not be able to resize it
	 * under us (a shrink would make our accesses fault). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
		goto fail;
	c->region = mmap(NULL, c->region_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED, fd, 0);
	if (c->region == MAP_FAILED) {
		c->region = NULL;
		goto fail;
	}
	c->sq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->cq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->sq_efd < 0 || c->cq_efd < 0)
		goto fail;

	h = c->hdr = (struct jobq_region_hdr *)c->region;
	h->version = JOBQ_LAYOUT_VERSION;
	h->client_id = (uint32_t)++loop.next_id;
	h->size = c->region_size;
	h->sq_entries = JOBQ__SQ_ENTRIES;
	h->cq_entries = JOBQ__CQ_ENTRIES;
	h->sq_off = sq_off;
	h->cq_off = cq_off;
	h->arena_off = arena_off;
	h->arena_size = arena;
	h->magic = JOBQ_REGION_MAGIC;
	c->sq = (struct jobq_sqe *)(c->region + sq_off);
	c->cq = (struct jobq_cqe *)(c->region + cq_off);
	c->arena_off = arena_off;
	c->arena_size = arena;
	c->sq_entries = JOBQ__SQ_ENTRIES;
	c->cq_entries = JOBQ__CQ_ENTRIES;
	c->sq_head = c->cq_tail = c->cq_gen = c->pub_tail = 0;
	c->nhold = 0;
	return 0;
fail:
	/* errno first: snprintf() may change it. */
	err = errno;
	snprintf(msg, msglen, "jobqd could not set up the client region: %s",
		 strerror(err));
	return -err;
}

static void region_undo(struct jobq__client *c)
{
	if (c->region)
		munmap(c->region, c->region_size);
	c->region = NULL;
	if (c->region_fd >= 0)
		close(c->region_fd);
	if (c->sq_efd >= 0)
		close(c->sq_efd);
	if (c->cq_efd >= 0)
		close(c->cq_efd);
	c->region_fd = c->sq_efd = c->cq_efd = -1;
}

static void on_hello(struct jobq__client *c, int res)
{
	struct jobq__mgr *m = &jobq__m;
	struct jobq_hello *hl = &c->hello;
	char msg[160];
	int fds[4], ret;

	/* An older library's hello is shorter: its version is still read,
	 * so that it hears why it is refused. */
	if (res < 8 ||
	    (res != (int)sizeof(*hl) && (hl->magic != JOBQ_HELLO_MAGIC ||
					 hl->version == JOBQ_LAYOUT_VERSION))) {
		jobq__log(1, "pid %d: no hello (%d); closing", (int)c->pid,
			  res);
		client_drop(c, false);
		return;
	}
	if (hl->magic != JOBQ_HELLO_MAGIC ||
	    hl->version != JOBQ_LAYOUT_VERSION) {
		snprintf(msg, sizeof(msg),
			 "client speaks layout version %u, jobqd %s speaks %u",
			 hl->magic == JOBQ_HELLO_MAGIC ? hl->version : 0,
			 JOBQ_VERSION_STRING, JOBQ_LAYOUT_VERSION);
		send_welcome(c->sock, JOBQ_EVERSION, 0, 0, msg, NULL, 0);
		client_drop(c, false);
		return;
	}
	memcpy(c->name, hl->name, sizeof(hl->name));
	c->name[sizeof(hl->name)] = '\0';
	for (char *p = c->name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	ret = region_create(c, msg, sizeof(msg));
	if (!ret)
		ret = jobq__session_attach(c, hl, msg, sizeof(msg));
	if (ret) {
		send_welcome(c->sock, ret, 0, 0, msg, NULL, 0);
		region_undo(c);
		client_drop(c, false);
		return;
	}
	jobq__clients_attach(c);
	fds[0] = m->st.ro_fd;
	fds[1] = c->region_fd;
	fds[2] = c->sq_efd;
	fds[3] = c->cq_efd;
	send_welcome(c->sock, 0, c->hdr->client_id, c->region_size, NULL, fds,
		     4);
	/* The mapping keeps the region alive; the client has its own fd. */
	close(c->region_fd);
	c->region_fd = -1;
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);

	jobq__list_init(&c->waiters);
	deadline_left(c);
	c->state = JOBQ__C_LIVE;
	c->broken = false;
	c->wake = c->posted = c->sq_moved = false;
	c->sq_stuck = c->want_head = false;
	c->head_seen = 0;
	jobq__list_add_tail(&c->lnode, &loop.live);
	m->nlive++;
	store_relaxed(&jobq__hdr()->nclients, m->nlive);
	jobq__count(clients_total);
	arm_client(c, UD_SQ);
	arm_client(c, UD_SOCK);
	if (c->pidfd >= 0)
		arm_client(c, UD_PID);
	jobq__log(1, "client %u connected: pid %d uid %u \"%s\"", c->slot,
		  (int)c->pid, (unsigned)c->uid, c->name);
}

static void on_signal(void)
{
	switch (loop.si.ssi_signo) {
	case SIGTERM:
	case SIGINT:
		if (jobq__m.stopping && !jobq__m.stop_now) {
			/* A second one: do not wait for the drain. */
			jobq__log(0, "signal %u again: stopping now",
				  loop.si.ssi_signo);
			jobq__m.stop_now = true;
			break;
		}
		jobq__log(0, "signal %u: shutting down", loop.si.ssi_signo);
		jobq__m.stopping = true;
		jobq__notify("STOPPING=1");
		break;
	case SIGHUP:
		if (loop.on_hup)
			loop.on_hup();
		break;
	case SIGCHLD:
		jobq__supervise_sigchld();
		break;
	}
}

static void handle_cqe(const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned kind = (unsigned)(ud >> 56);
	uint32_t slot = (uint32_t)(ud >> 32) & 0xffffff;
	uint32_t gen = (uint32_t)ud;
	struct jobq__client *c;

	switch (kind) {
	case UD_ACCEPT:
		if (!jobq__m.stopping)
			arm_accept();
		if (cqe->res >= 0)
			on_accept(cqe->res);
		else if (cqe->res != -ECANCELED)
			jobq__log(JOBQ__LOG_ERROR, "accept: %s",
				  strerror(-cqe->res));
		return;
	case UD_SIGNAL:
		if (cqe->res == (int)sizeof(loop.si))
			on_signal();
		arm_signal();
		return;
	case UD_CANCEL:
		return;
	case UD_CHILD:
		jobq__supervise_exited(slot);
		return;
	case UD_JOURNAL:
		loop.work = true;
		jobq__durable_io_done(slot, cqe->res);
		return;
	case UD_WATCH:
		loop.work = true;
		jobq__backend_event(gen, cqe->res);
		return;
	}
	if (slot >= jobq__m.o.max_clients)
		return;
	c = &jobq__m.clients[slot];
	c->inflight--;
	if (c->gen != gen || c->state == JOBQ__C_DEAD ||
	    c->state == JOBQ__C_FREE) {
		slot_release(c);
		return;
	}
	loop.work = true;
	switch (kind) {
	case UD_HELLO:
		if (c->state == JOBQ__C_HELLO)
			on_hello(c, cqe->res);
		break;
	case UD_SQ:
		if (c->state != JOBQ__C_LIVE)
			break;
		if (cqe->res < 0 && cqe->res != -EINTR) {
			client_drop(c, true);
			break;
		}
		/* Drain the counter; the sweep does the work. */
		{
			uint64_t v;

			if (read(c->sq_efd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				jobq__log(1, "sq eventfd: %s", strerror(errno));
		}
		arm_client(c, UD_SQ);
		break;
	case UD_SOCK:
		if (c->state != JOBQ__C_LIVE)
			break;
		if (cqe->res == (int)sizeof(uint32_t) &&
		    !memcmp(c->recv_buf, &(uint32_t){JOBQ_BYE_MAGIC},
			    sizeof(uint32_t))) {
			/* jobq_close(): it left, it did not die. */
			c->said_bye = true;
			client_drop(c, false);
			break;
		}
		if (cqe->res > 0) {
			/* Nothing else is expected after the hello. */
			arm_client(c, UD_SOCK);
			break;
		}
		/* Gone without jobq_close(): it died, or is dying. */
		if (c->pidfd >= 0)
			sock_gone(c);
		else
			client_drop(c, true);
		break;
	case UD_PID:
		if (c->state == JOBQ__C_LIVE && cqe->res >= 0)
			client_drop(c, true);
		break;
	}
}

/* Handles every io_uring completion there is, without waiting. */
static bool reap_cqes(void)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&loop.ring, head, cqe)
	{
		handle_cqe(cqe);
		n++;
	}
	if (n)
		io_uring_cq_advance(&loop.ring, n);
	return n > 0;
}

/* ------------------------------------------------------------------------
 * The loop.
 */
static bool sweep(void)
{
	struct jobq__list *p, *nx;
	bool work = false;

	for (p = loop.live.next; p != &loop.live; p = nx) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		nx = p->next;
		/* Read before anything below relies on head: a later change
		 * is then seen by sleep_check(). */
		c->head_seen = load_acquire(&c->hdr->cq.head);
		reap_handed(c);
		jobq__session_reap(c, c->head_seen);
		flush_overflow(c);
		if (process_sq(c))
			work = true;
	}
	return work;
}

/*
 * release - move @c's cq tail as far as the journal allows: past the
 * completions whose commits have ended, and past those made since the
 * last turn when nothing they could depend on is still to be written.
 * Otherwise they are held for commit @need (jobq__durable_need()).
 * Returns whether the tail moved.
 */
static bool release(struct jobq__client *c, uint64_t need, uint64_t done)
{
	uint32_t to = c->pub_tail;
	uint32_t held = c->nhold ? c->hold[c->nhold - 1].tail : c->pub_tail;

	while (c->nhold && c->hold[0].id <= done) {
		to = c->hold[0].tail;
		c->hold[0] = c->hold[1];
		c->nhold--;
	}
	if (c->cq_tail != held) {
		if (!c->nhold && need <= done) {
			to = c->cq_tail;
		} else if (c->nhold && c->hold[c->nhold - 1].id >= need) {
			/* Behind entries that wait anyway: wait with them. */
			c->hold[c->nhold - 1].tail = c->cq_tail;
		} else if (c->nhold < 2) {
			c->hold[c->nhold].tail = c->cq_tail;
			c->hold[c->nhold].id = need;
			c->nhold++;
		} else {
			/* Not reached (two commits at most are open); waiting
			 * for the later one is right anyway. */
			c->hold[1].tail = c->cq_tail;
			c->hold[1].id = need;
		}
	}
	if (to == c->pub_tail)
		return false;
	c->pub_tail = to;
	store_release(&c->hdr->cq.tail, to);
	return true;
}

/*
 * publish - begin the journal commit of this turn, then make visible what
 * can be: move each cq tail (release: the entries before the tail) as far
 * as the journal allows and wake the clients that asked for it.
 */
static void publish(void)
{
	uint64_t one = 1, need, done;

	jobq__durable_commit();
	if (loop.crash_now) {
		/* The test seam above: once the commit is on disk, before
		 * any answer it holds goes out. */
		while (jobq__durable_busy()) {
			io_uring_submit_and_wait(&loop.ring, 1);
			reap_cqes();
		}
		_exit(86);
	}
	/* A write to the page cache may have completed already: its answers
	 * then go this turn, not the next. */
	if (jobq__durable_busy() && io_uring_cq_ready(&loop.ring))
		reap_cqes();
	if (jobq__list_empty(&loop.wakes))
		return;
	need = jobq__durable_need();
	done = jobq__durable_done_id();
	for (struct jobq__list *p = loop.wakes.next; p != &loop.wakes;
	     p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, wnode);

		if (!release(c, need, done))
			c->posted = false;
	}
	/* Pairs with the client's fence between setting NEED_WAKEUP and
	 * re-checking the cq tail, or setting WANT_HEAD in its sq and
	 * re-checking the sq head. */
	full_fence();
	while (!jobq__list_empty(&loop.wakes)) {
		struct jobq__client *c =
		    jobq__entry(loop.wakes.next, struct jobq__client, wnode);
		bool wake = (c->posted && (load_relaxed(&c->hdr->cq.flags) &
					   JOBQ_RING_NEED_WAKEUP)) ||
			    (c->sq_moved && (load_relaxed(&c->hdr->sq.pflags) &
					     JOBQ_RING_WANT_HEAD));

		jobq__list_del(&c->wnode);
		c->wake = c->posted = c->sq_moved = false;
		if (wake && write(c->cq_efd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			jobq__log(1, "cq eventfd: %s", strerror(errno));
	}
}

/* Waits for the journal commit in flight, and the one after it, to end,
 * and publishes what they held. */
static void journal_drain(void)
{
	for (int i = 0; i < 2; i++) {
		while (jobq__durable_busy()) {
			io_uring_submit_and_wait(&loop.ring, 1);
			reap_cqes();
		}
		publish();
	}
}

void jobq__loop_journal_io(const struct jobq__jop *op, int n)
{
	/* A link chain must go in one submission. */
	if (io_uring_sq_space_left(&loop.ring) < (unsigned)n)
		io_uring_submit(&loop.ring);
	for (int i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = get_sqe();

		if (op[i].kind == JOBQ__JOP_WRITE)
			io_uring_prep_write(sqe, op[i].fd, op[i].buf,
					    (unsigned)op[i].len, op[i].off);
		else
			io_uring_prep_fsync(sqe, op[i].fd,
					    IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ud_make(UD_JOURNAL, op[i].tag, 0));
		if (i + 1 < n)
			sqe->flags |= IOSQE_IO_LINK;
	}
	io_uring_submit(&loop.ring);
}

static void end_turn(void)
{
	struct jobq__list *p, *nx;

	if (jobq__m.st.freed) {
		jobq__m.st.freed = false;
		jobq__queues_kick();
	}
	for (p = loop.live.next; p != &loop.live; p = nx) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		nx = p->next;
		if (c->broken) {
			/* A dropped client can unlink the next one too when
			 * requeued objects go to its waiters: restart. */
			client_drop(c, true);
			nx = loop.live.next;
		}
	}
	publish();
}

/*
 * Whether we wait for @c to move its cq head: completions wait in the
 * overflow list, sq entries wait for cq room, or objects it has not yet
 * acknowledged would, once freed, make room for a putter that waits. No
 * request of its announces that progress, so we ask for it (WANT_HEAD).
 */
static bool waits_for_head(const struct jobq__client *c)
{
	return c->novf || c->sq_stuck || (c->nhanded && jobq__queues_blocked());
}

/*
 * Going to sleep (@on) or awake again: NEED_WAKEUP in every sq, so that
 * new requests wake us, and WANT_HEAD in the cq of every client we wait
 * for (see waits_for_head()). Awake, both are cleared, so that a busy
 * client pays no system call. The caller fences after setting them.
 */
static void set_need_wakeup(bool on)
{
	for (struct jobq__list *p = loop.live.next; p != &loop.live;
	     p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);
		uint32_t f = load_relaxed(&c->hdr->sq.flags);
		bool want = on && waits_for_head(c);

		store_relaxed(&c->hdr->sq.flags,
			      on ? f | JOBQ_RING_NEED_WAKEUP
				 : f & ~JOBQ_RING_NEED_WAKEUP);
		if (want || c->want_head)
			store_relaxed(&c->hdr->cq.pflags,
				      want ? JOBQ_RING_WANT_HEAD : 0);
		c->want_head = want;
	}
}

/*
 * sleep_check - after set_need_wakeup(true) and a full fence: whether
 * sleeping now could miss something. That is an sq with entries we can
 * take (not stuck on cq room), a cq head that moved since the sweep read
 * it for a client we wait for, or an io_uring completion. Otherwise every
 * later change is announced: the client publishes, fences and sees
 * NEED_WAKEUP, or moves head, fences and sees WANT_HEAD, and writes the sq
 * eventfd that the ring polls.
 */
static bool sleep_check(void)
{
	for (struct jobq__list *p = loop.live.next; p != &loop.live;
	     p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		if (c->want_head &&
		    load_acquire(&c->hdr->cq.head) != c->head_seen)
			return true;
		if (!c->sq_stuck &&
		    load_acquire(&c->hdr->sq.tail) != c->sq_head)
			return true;
	}
	return io_uring_cq_ready(&loop.ring) > 0;
}

/* Graceful stop: answer what is in flight, fail every waiter, wake all. */
static void shutdown_clients(void)
{
	struct jobq__list *p;
	uint64_t one = 1;

	store_relaxed(&jobq__hdr()->shutting_down, 1);
	for (p = loop.live.next; p != &loop.live; p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		while (!jobq__list_empty(&c->waiters))
			jobq__wait_done(jobq__entry(c->waiters.next,
						    struct jobq__waiter, cnode),
					JOBQ_ECLOSED, 0);
	}
	if (!jobq__m.stop_now)
		sweep();
	for (p = loop.live.next; p != &loop.live; p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		flush_overflow(c);
	}
	publish();
	/* Every answer out, the ones the journal held included. */
	journal_drain();
	full_fence();
	for (p = loop.live.next; p != &loop.live; p = p->next) {
		struct jobq__client *c =
		    jobq__entry(p, struct jobq__client, lnode);

		if (write(c->cq_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			jobq__log(1, "cq eventfd: %s", strerror(errno));
	}
	while (!jobq__list_empty(&loop.live)) {
		struct jobq__client *c =
		    jobq__entry(loop.live.next, struct jobq__client, lnode);

		client_drop(c, false);
	}
}

int jobq__loop_init(int lfd, int sfd, void (*on_hup)(void), char *err,
		    size_t errlen)
{
	struct jobq__mgr *m = &jobq__m;
	unsigned entries = 4 * m->o.max_clients + 64;
	int ret;

	if (entries > 32768)
		entries = 32768;
	memset(&loop, 0, sizeof(loop));
	if (getenv("JOBQD_TEST_CRASH_AFTER"))
		loop.crash_after =
		    strtoull(getenv("JOBQD_TEST_CRASH_AFTER"), NULL, 10);
	loop.lfd = lfd;
	loop.sfd = sfd;
	loop.on_hup = on_hup;
	jobq__list_init(&loop.live);
	jobq__list_init(&loop.wakes);
	ret = io_uring_queue_init(entries, &loop.ring, 0);
	if (ret < 0) {
		if (ret == -ENOSYS || ret == -EPERM)
			snprintf(err, errlen,
				 "io_uring is not available (%s): it is "
				 "disabled by the kernel.io_uring_disabled "
				 "sysctl or by a container's seccomp profile; "
				 "set kernel.io_uring_disabled=0 or allow "
				 "io_uring_setup/io_uring_enter",
				 strerror(-ret));
		else
			snprintf(err, errlen, "io_uring_queue_init: %s",
				 strerror(-ret));
		return ret;
	}
	{
		/* Journal commits go through this ring when it can write and
		 * sync files (Linux 5.6); journal_mgr.c says so otherwise. */
		struct io_uring_probe *pr = io_uring_get_probe_ring(&loop.ring);

		jobq__durable_use_ring(
		    pr && io_uring_opcode_supported(pr, IORING_OP_WRITE) &&
		    io_uring_opcode_supported(pr, IORING_OP_FSYNC));
		if (pr)
			io_uring_free_probe(pr);
	}
	m->clients = calloc(m->o.max_clients, sizeof(*m->clients));
	if (!m->clients) {
		io_uring_queue_exit(&loop.ring);
		snprintf(err, errlen, "out of memory for %u clients",
			 m->o.max_clients);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->o.max_clients; i++) {
		m->clients[i].slot = i;
		m->clients[i].sock = m->clients[i].pidfd = -1;
		m->clients[i].sq_efd = m->clients[i].cq_efd = -1;
		m->clients[i].region_fd = -1;
	}
	arm_accept();
	arm_signal();
	io_uring_submit(&loop.ring);
	return 0;
}

int jobq__loop_run(void)
{
	struct jobq__spin spin;
	uint64_t last_work = jobq__now_ns(), last_turn = last_work;
	bool spinning = false, busy = jobq__m.o.busy_poll, flushed = false;

	/* Polls for new requests for half to four times what a wake-up
	 * costs (spin.h), starting at twice. */
	jobq__spin_init(&spin, jobq__hdr()->wake_ns, 2, 8, 16);
	for (;;) {
		uint64_t now;
		bool preempted;

		loop.work = false;
		jobq__m.turn++;
		/* Clients that poll for an answer watch it move. */
		store_relaxed(&jobq__hdr()->beat, jobq__m.turn);
		if (io_uring_sq_ready(&loop.ring))
			io_uring_submit(&loop.ring);
		if (reap_cqes())
			loop.work = true;
		if (sweep())
			loop.work = true;
		timers_run();
		end_turn();
		/* After the turn's requests: its queries leave together. */
		jobq__backend_turn();
		/* Answers read on the way complete requests: publish them. */
		if (!jobq__list_empty(&loop.wakes))
			end_turn();
		if (jobq__m.stopping) {
			/* Workers drain first, served by this loop. */
			if (jobq__supervise_drained()) {
				shutdown_clients();
				return 0;
			}
			end_turn();
		}
		now = jobq__now_ns();
		/* An idle turn takes well under a microsecond: a gap this long
		 * since the last one means another process had our CPU. */
		preempted = spinning && now - last_turn > JOBQ__SPIN_GAP_NS;
		last_turn = now;
		if (loop.work) {
			/* Work found while polling: the window paid off. */
			if (spinning)
				jobq__spin_paid(&spin);
			spinning = false;
			flushed = false;
			last_work = now;
			continue;
		}
		if (busy) {
			/* --busy-poll: never sleep. What would be written
			 * before a sleep is written once the work stops. */
			if (!flushed) {
				flushed = true;
				if (jobq__durable_flush())
					continue;
			}
			jobq__cpu_relax();
			continue;
		}
		if (!preempted && now - last_work < spin.ns) {
			/*
			 * Poll without giving the CPU away: a sched_yield()
			 * here costs a system call per turn when the CPU is
			 * ours, and hands it round in a circle when it is
			 * not. Being kept off it ends the polling instead.
			 */
			spinning = true;
			for (int i = 0; i < 16; i++)
				jobq__cpu_relax();
			continue;
		}
		if (spinning)
			jobq__spin_missed(&spin, preempted);
		spinning = false;

		/*
		 * The takes journaled lazily go to the file before we sleep,
		 * so that an idle manager has nothing unwritten. The turn
		 * after it publishes what the commit released (nothing waits
		 * for lazy records alone) and finds us here again.
		 */
		if (jobq__durable_flush())
			continue;

		/* Going to sleep: ask for wake-ups, then look once more. */
		set_need_wakeup(true);
		full_fence();
		if (sleep_check()) {
			set_need_wakeup(false);
			last_work = jobq__now_ns();
			continue;
		}
		{
			struct __kernel_timespec ts, *tsp = NULL;
			struct io_uring_cqe *cqe;
			uint64_t wait = UINT64_MAX;

			if (loop.tn)
				wait = loop.th[0]->deadline > now
					   ? loop.th[0]->deadline - now
					   : 0;
			/* A failed journal retries its snapshot by itself. */
			if (jobq__durable_failed() &&
			    wait > JOBQ__NSEC_PER_SEC / 2)
				wait = JOBQ__NSEC_PER_SEC / 2;
			if (wait != UINT64_MAX) {
				ts.tv_sec =
				    (long long)(wait / JOBQ__NSEC_PER_SEC);
				ts.tv_nsec =
				    (long long)(wait % JOBQ__NSEC_PER_SEC);
				tsp = &ts;
			}
			io_uring_submit(&loop.ring);
			if (tsp)
				io_uring_wait_cqe_timeout(&loop.ring, &cqe,
							  tsp);
			else
				io_uring_wait_cqe(&loop.ring, &cqe);
			set_need_wakeup(false);
			last_work = jobq__now_ns();
		}
	}
}

void jobq__loop_fini(void)
{
	struct jobq__mgr *m = &jobq__m;

	io_uring_queue_exit(&loop.ring);
	for (uint32_t i = 0; m->clients && i < m->o.max_clients; i++) {
		struct jobq__client *c = &m->clients[i];

		if (c->sock >= 0)
			close(c->sock);
		if (c->sq_efd >= 0)
			close(c->sq_efd);
		if (c->pidfd >= 0)
			close(c->pidfd);
	}
	while (loop.tn)
		th_remove(loop.th[0]);
	jobq__sessions_fini();
	free(loop.th);
	free(loop.marks);
	free(m->clients);
	m->clients = NULL;
}
