/* SPDX-License-Identifier: MIT */
/*
 * session.c - request ids: a request that a client resends after a
 * reconnect applies once.
 *
 * A client handle names itself with a random session id in every hello and
 * numbers its requests (the id in user_data, proto.h). When the manager
 * answers a request that changed durable state (a put, a key change, a
 * submit, a job's result, ...) with success, it remembers the answer under
 * (session, request id) and journals it in the same batch as the change
 * itself, right after the change's own records. When the client did not
 * see the answer (the manager died before publishing it, or the connection
 * broke), it reconnects and resends the request with JOBQ_SQE_RESENT; the
 * manager finds the answer and posts it again instead of applying the
 * request a second time.
 *
 * Only successful answers are remembered: a request that failed changed
 * nothing, so running it again is the same as running it once. A request
 * whose change and answer record were torn apart by a crash in the middle
 * of one journal write (the change in the file, its answer record cut)
 * would apply twice: the answer record follows the change, so the worst
 * case is a duplicate, never a lost change.
 *
 * Memory. A client consumes its completions in order, so the answers it
 * has not seen are always the most recent ones: an answer is forgotten as
 * soon as the client's cq head passes its completion (reap, each sweep),
 * and at most KEEP_MAX (more than a cq and its overflow hold) are kept per
 * session. After a restart the replayed answers carry no position; they
 * are kept until the client's hello says it no longer waits for them
 * (its floor), a resend hits them, or the session ends. A session ends
 * when its client closes (jobq_close() says bye) or stays away longer
 * than the reconnect window it announced. A snapshot writes only the live
 * sessions and the answers they keep.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobqd.h"

/* Answers kept per session: above a cq (1024) plus its overflow (4096). */
#define KEEP_MAX 8192u
/* An answer replayed or kept across a reconnect: no cq position. */
#define POS_PINNED UINT64_MAX

struct sres {
	uint64_t rid;
	uint64_t val;
	uint64_t pos; /* cq position of the completion, or POS_PINNED */
	int32_t res;
	uint32_t pad;
};

struct jobq__session {
	uint64_t sid;
	uint32_t uid;
	uint32_t keep_ms;
	struct jobq__client *c; /* attached client, NULL: away */
	/* Its SESS_OPEN is in the files: a session is journaled only once it
	 * has an answer to keep, so that clients that change nothing (jobq
	 * stats, a reader) cost the journal nothing. */
	bool journaled;
	uint64_t away_until; /* CLOCK_MONOTONIC, while away */
	struct sres *r;	     /* FIFO [head, head + n) of cap */
	uint32_t head, n, cap;
};

/* Journal payloads. */
struct jsess_open {
	uint64_t sid;
	uint32_t uid;
	uint32_t keep_ms;
};

struct jsess_res {
	uint64_t sid;
	uint64_t rid;
	uint64_t val;
	int32_t res;
	uint32_t pad;
};

static struct {
	struct jobq__session **s;
	uint32_t n, cap;
} sess;

static struct jobq__session *find(uint64_t sid)
{
	for (uint32_t i = 0; i < sess.n; i++)
		if (sess.s[i]->sid == sid)
			return sess.s[i];
	return NULL;
}

static struct jobq__session *create(uint64_t sid, uint32_t uid,
				    uint32_t keep_ms)
{
	struct jobq__session *s;

	if (sess.n == sess.cap) {
		uint32_t ncap = sess.cap ? 2 * sess.cap : 16;
		struct jobq__session **na = realloc(sess.s, ncap * sizeof(*na));

		if (!na)
			return NULL;
		sess.s = na;
		sess.cap = ncap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->sid = sid;
	s->uid = uid;
	s->keep_ms = keep_ms;
	sess.s[sess.n++] = s;
	return s;
}

static void destroy(struct jobq__session *s)
{
	for (uint32_t i = 0; i < sess.n; i++) {
		if (sess.s[i] == s) {
			sess.s[i] = sess.s[--sess.n];
			break;
		}
	}
	if (s->c)
		s->c->sess = NULL;
	free(s->r);
	free(s);
}

static void journal_open(struct jobq__session *s)
{
	struct jsess_open o = {
	    .sid = s->sid, .uid = s->uid, .keep_ms = s->keep_ms};
	struct iovec v = {.iov_base = &o, .iov_len = sizeof(o)};

	jobq__jlog(JOBQ__JR_SESS_OPEN, &v, 1, false);
	s->journaled = true;
}

static void journal_end(const struct jobq__session *s)
{
	struct iovec v = {.iov_base = (void *)&s->sid,
			  .iov_len = sizeof(s->sid)};

	if (s->journaled)
		jobq__jlog(JOBQ__JR_SESS_END, &v, 1, false);
}

/* Appends an answer; the oldest goes when KEEP_MAX are kept. */
static int push(struct jobq__session *s, uint64_t rid, int32_t res,
		uint64_t val, uint64_t pos)
{
	if (s->n == KEEP_MAX) {
		s->head++;
		s->n--;
	}
	if (s->head + s->n == s->cap) {
		/*
		 * Slide down only when at least half the array is free, else
		 * grow it (to 2 * KEEP_MAX at most): a full session takes one
		 * answer in and one out per push, and a slide on every push
		 * moved KEEP_MAX entries each time, seconds of replay for a
		 * journal of 100k answers.
		 */
		if (s->head && s->head >= s->n) {
			memmove(s->r, s->r + s->head, s->n * sizeof(*s->r));
			s->head = 0;
		}
		if (s->head + s->n == s->cap) {
			uint32_t ncap = s->cap ? 2 * s->cap : 64;
			struct sres *nr = realloc(s->r, ncap * sizeof(*nr));

			if (!nr)
				return -ENOMEM;
			s->r = nr;
			s->cap = ncap;
		}
	}
	s->r[s->head + s->n++] =
	    (struct sres){.rid = rid, .val = val, .pos = pos, .res = res};
	return 0;
}

/* Drops the answers below @floor (the client waits for none of them). */
static void drop_below(struct jobq__session *s, uint64_t floor)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < s->n; i++) {
		struct sres *e = &s->r[s->head + i];

		if (e->rid >= floor)
			s->r[s->head + k++] = *e;
	}
	s->n = k;
	if (!k)
		s->head = 0;
}

/* Sessions whose client stayed away past their window. */
static void expire(uint64_t now)
{
	for (uint32_t i = 0; i < sess.n;) {
		struct jobq__session *s = sess.s[i];

		if (!s->c && now >= s->away_until) {
			journal_end(s);
			destroy(s);
			continue;
		}
		i++;
	}
}

int jobq__session_attach(struct jobq__client *c, const struct jobq_hello *h,
			 char *msg, size_t msglen)
{
	uint64_t now = jobq__now_ns();
	struct jobq__session *s;

	expire(now);
	c->sess = NULL;
	if (!h->session)
		return 0;
	s = find(h->session);
	if (s && s->uid != (uint32_t)c->uid) {
		snprintf(msg, msglen, "session belongs to another user");
		return -EACCES;
	}
	if (!s) {
		s = create(h->session, (uint32_t)c->uid, h->keep_ms);
		if (!s) {
			snprintf(msg, msglen, "jobqd: out of memory");
			return -ENOMEM;
		}
	} else {
		if (s->c)
			s->c->sess = NULL; /* a stale connection of it */
		s->keep_ms = h->keep_ms;
		if (h->floor)
			drop_below(s, h->floor);
		/* Whatever the old connection had not consumed stays until a
		 * resend finds it: it has no position in the new cq. */
		for (uint32_t i = 0; i < s->n; i++)
			s->r[s->head + i].pos = POS_PINNED;
	}
	s->c = c;
	c->sess = s;
	return 0;
}

void jobq__session_detach(struct jobq__client *c, bool left)
{
	struct jobq__session *s = c->sess;

	if (!s)
		return;
	c->sess = NULL;
	s->c = NULL;
	if (left) {
		/* jobq_close(): nothing of it will be resent. */
		journal_end(s);
		destroy(s);
		return;
	}
	for (uint32_t i = 0; i < s->n; i++)
		s->r[s->head + i].pos = POS_PINNED;
	s->away_until = jobq__now_ns() + (uint64_t)s->keep_ms * 1000000ull +
			JOBQ__NSEC_PER_SEC;
}

/* Ops whose success changes durable state: their answers are kept. */
bool jobq__session_op_changes(uint8_t op)
{
	switch (op) {
	case JOBQ_OP_Q_OPEN:
	case JOBQ_OP_Q_PUT:
	case JOBQ_OP_Q_PUT_MANY:
	case JOBQ_OP_Q_TASK_DONE:
	case JOBQ_OP_Q_SET:
	case JOBQ_OP_Q_REMOVE:
	case JOBQ_OP_KV_SET:
	case JOBQ_OP_KV_DEL:
	case JOBQ_OP_KV_INCR:
	case JOBQ_OP_KV_CAS:
	case JOBQ_OP_JOB_SUBMIT:
	case JOBQ_OP_JOB_CANCEL:
	case JOBQ_OP_JOB_RETRY:
	case JOBQ_OP_JOB_KICK:
	case JOBQ_OP_Q_PAUSE:
	case JOBQ_OP_Q_PARALLEL:
	case JOBQ_OP_W_DONE:
	case JOBQ_OP_W_EXTEND:
		return true;
	default:
		return false;
	}
}

bool jobq__session_lookup(struct jobq__client *c, uint64_t rid, int32_t *res,
			  uint64_t *val)
{
	struct jobq__session *s = c->sess;

	if (!s)
		return false;
	for (uint32_t i = s->n; i-- > 0;) {
		struct sres *e = &s->r[s->head + i];

		if (e->rid == rid) {
			*res = e->res;
			*val = e->val;
			/* Posted again now: forgotten once it is consumed,
			 * like any answer (jobq__session_answered() sees
			 * the repost and keeps it anew). */
			memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
			s->n--;
			return true;
		}
	}
	return false;
}

void jobq__session_answered(struct jobq__client *c, uint64_t rid, int32_t res,
			    uint64_t val, uint64_t pos)
{
	struct jobq__session *s = c->sess;
	struct jsess_res jr = {.sid = 0};
	struct iovec v = {.iov_base = &jr, .iov_len = sizeof(jr)};

	if (!s || res < 0)
		return;
	if (push(s, rid, res, val, pos)) {
		/* Without the answer a resend would apply twice; nothing
		 * better to do than say so. */
		jobq__log(JOBQ__LOG_WARN,
			  "client %u: out of memory for a request's answer",
			  c->slot);
		return;
	}
	if (!s->journaled)
		journal_open(s);
	jr.sid = s->sid;
	jr.rid = rid;
	jr.res = res;
	jr.val = val;
	jobq__jlog(JOBQ__JR_SESS_RES, &v, 1, false);
}

void jobq__session_reap(struct jobq__client *c, uint32_t head)
{
	struct jobq__session *s = c->sess;

	if (!s || !s->n)
		return;
	/* Answers are kept in the order they were posted; the pinned ones
	 * (from before a reconnect) stay where they are. */
	while (s->n) {
		struct sres *e = &s->r[s->head];

		if (e->pos == POS_PINNED ||
		    (int32_t)(head - (uint32_t)e->pos) <= 0)
			break;
		s->head++;
		s->n--;
	}
	if (!s->n)
		s->head = 0;
}

/* ------------------------------------------------------------------------
 * Replay and snapshot.
 */
int jobq__sessions_replay(uint16_t type, const uint8_t *p, uint32_t len)
{
	struct jobq__session *s;

	switch (type) {
	case JOBQ__JR_SESS_OPEN: {
		struct jsess_open o;

		if (len != sizeof(o))
			return -EBADMSG;
		memcpy(&o, p, sizeof(o));
		s = find(o.sid);
		if (!s && !(s = create(o.sid, o.uid, o.keep_ms)))
			return -ENOMEM;
		s->journaled = true;
		return 0;
	}
	case JOBQ__JR_SESS_RES: {
		struct jsess_res r;

		if (len != sizeof(r))
			return -EBADMSG;
		memcpy(&r, p, sizeof(r));
		s = find(r.sid);
		if (!s)
			return 0; /* ended since */
		return push(s, r.rid, r.res, r.val, POS_PINNED);
	}
	case JOBQ__JR_SESS_END: {
		uint64_t sid;

		if (len != sizeof(sid))
			return -EBADMSG;
		memcpy(&sid, p, sizeof(sid));
		s = find(sid);
		if (s)
			destroy(s);
		return 0;
	}
	}
	return -EPROTO;
}

void jobq__sessions_replay_done(void)
{
	uint64_t now = jobq__now_ns();

	/* Every session is away until its client says hello again: it has
	 * its window from now, as if it had just lost the connection. */
	for (uint32_t i = 0; i < sess.n; i++)
		sess.s[i]->away_until =
		    now + (uint64_t)sess.s[i]->keep_ms * 1000000ull +
		    JOBQ__NSEC_PER_SEC;
}

int jobq__sessions_snapshot(struct jobq__journal *j)
{
	for (uint32_t i = 0; i < sess.n; i++) {
		struct jobq__session *s = sess.s[i];
		struct jsess_open o = {
		    .sid = s->sid, .uid = s->uid, .keep_ms = s->keep_ms};
		struct iovec v = {.iov_base = &o, .iov_len = sizeof(o)};
		int ret;

		/* Nothing to keep: the next answer journals it again. */
		s->journaled = s->n > 0;
		if (!s->n)
			continue;
		ret = jobq__journal_add(j, JOBQ__JR_SESS_OPEN, &v, 1);

		for (uint32_t k = 0; !ret && k < s->n; k++) {
			const struct sres *e = &s->r[s->head + k];
			struct jsess_res r = {.sid = s->sid,
					      .rid = e->rid,
					      .val = e->val,
					      .res = e->res};

			v = (struct iovec){.iov_base = &r,
					   .iov_len = sizeof(r)};
			ret = jobq__journal_add(j, JOBQ__JR_SESS_RES, &v, 1);
		}
		if (ret)
			return ret;
	}
	return 0;
}

void jobq__sessions_fini(void)
{
	while (sess.n)
		destroy(sess.s[sess.n - 1]);
	free(sess.s);
	sess.s = NULL;
	sess.cap = 0;
}
