/* SPDX-License-Identifier: MIT */
/*
 * kv_pg.c - the key/value store of jobqd --backend: one table in
 * PostgreSQL (jobq_kv, pg_jobs.c has its statements) shared by every
 * host's manager, and this host's store as a copy of it, so that clients
 * go on reading keys from their mapping without asking anyone.
 *
 * Writes. Each request (set, del, incr, cas) is one statement, atomic in
 * PostgreSQL: set and incr an INSERT ... ON CONFLICT DO UPDATE, cas a
 * conditional UPDATE (or an INSERT ... ON CONFLICT DO NOTHING for "only if
 * absent"), del a DELETE, each RETURNING the row's new version. So incr
 * and cas are atomic across hosts: two hosts' incrs both count, and of
 * racing cas from one value exactly one wins; incr's answer is
 * PostgreSQL's sum. The answer goes to the client from the statement's
 * callback, which runs once PostgreSQL committed (pg.h), and only after
 * the committed value was put into this host's store: a host reads its
 * own writes. What a write needs of the local store is taken before the
 * statement is sent (the value's blob, the room for a new key), so that a
 * full store answers JOBQ_EFULL or JOBQ_ELIMIT before anything changed,
 * as without a backend; a value over --max-object is refused the same.
 *
 * Other hosts' writes. The statement that changes a row also sends
 * "VERSION KEY" on the jobq_kv channel when it commits ("0 KEY" for a
 * delete). Every manager LISTENs to it; a key whose notified version is
 * newer than the one this host holds is fetched, the keys notified in one
 * turn together (WHERE key = ANY), one fetch in flight, and the row is
 * written into the store, or the key removed when it has no row. Reads
 * on other hosts are therefore eventually consistent: a write shows there
 * a notification and a fetch after it committed (a millisecond or so on
 * a LAN), while the writer's host has it before its answer.
 *
 * Versions. Every change draws its version from one sequence, after the
 * row's lock (pg_jobs.c), so a larger version is a later value of a key.
 * This host keeps the version of each key it copied (struct ver, its own
 * memory) and never lets a row replace one of a larger version. Answers
 * on the one connection come back in the order the statements ran, each
 * of which saw every commit before it, so an older row arriving after a
 * newer one is not expected; the check makes it impossible.
 *
 * Start and reconnect. At start (before any client connects) and every
 * time the connection comes back, the whole table is read and the store
 * made equal to it: rows copied, and keys that have no row (deleted while
 * this host was down or cut off, or left by a journal) removed; a
 * notification sent while the connection was down is lost, the load is
 * what makes up for it. The journal keeps no key/value records with a
 * backend (kv.c): the table is PostgreSQL's.
 *
 * Faults. A write waits in pg.c's queue while the connection is down and
 * is sent when it is back (the client's own timeout bounds the wait).
 * Cut with its statement sent, its outcome is unknown, and it is sent
 * again: exact, since every change carries a request id, the client's
 * session and request id (which a client also sends again to a manager
 * restarted under it), or this manager's own for a client without a
 * session; the statement records its answer under that id in the same
 * transaction and a copy that finds one returns it instead of changing
 * anything (pg_jobs.c). Answers are kept KEEP_ANSWERS_MS. After five cuts
 * in a row the client gets -EIO.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "jobqd.h"
#include "pg.h"

/* Keys one fetch names at most; the rest go in the next. */
#define FETCH_KEYS 1000
/* Keys wanted that a notification's key is compared with. */
#define WANT_SCAN 64
/* Room kept in an incr's blob for the value: "-9223372036854775808" and
 * the NUL that snprintf writes after it. */
#define INCR_ROOM 21

/* How long answers to changes are kept for a request sent again, and how
 * often older ones are deleted. */
#define KEEP_ANSWERS_MS (10 * 60 * 1000)
#define FORGET_EVERY_NS (60 * JOBQ__NSEC_PER_SEC)

enum { K_SET, K_DEL, K_INCR, K_CAS };

/* A write waiting for its statement's answer. */
struct kreq {
	struct jobq__client *c;
	uint32_t gen; /* c->gen when it asked */
	uint64_t user_data;
	int op;
	int tries;
	/* The value as it will be stored (set, cas, incr: its room), taken
	 * from the heap before the statement was sent; 0 once installed. */
	uint64_t blob;
	uint32_t type;
	uint64_t session, rid; /* the client's (0: none), proto.h */
	int64_t by;	       /* incr */
	int64_t n;	       /* incr: its answer, when sent again */
	uint8_t *expect;       /* cas: NULL means "absent" */
	uint32_t elen;	       /* cas */
	char key[JOBQ_KEY_MAX + 1];
	uint32_t klen;
};

/* The version of a key copied into the store (by its bytes). */
struct ver {
	struct ver *next;
	int64_t version;
	uint64_t load; /* the load that last saw its row */
	uint32_t hash, klen;
	char key[];
};

static struct {
	struct ver **tab; /* buckets, a power of two */
	uint32_t nb, n;
	char **want; /* keys notified, to be fetched */
	uint32_t nwant, capwant;
	char **inflight; /* the keys of the fetch in flight */
	uint32_t ninflight;
	bool fetching;
	bool loading, load_again;
	bool forgetting;
	uint64_t forget_at;
	/* Request ids of this manager for clients without a session. */
	uint64_t nonce, nreq;
	uint64_t load; /* loads answered so far */
} k;

/* ------------------------------------------------------------------------
 * Versions.
 */
static struct ver **ver_slot(const char *key, uint32_t klen, uint32_t hash)
{
	struct ver **pp;

	if (!k.nb)
		return NULL;
	for (pp = &k.tab[hash & (k.nb - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == hash && (*pp)->klen == klen &&
		    !memcmp((*pp)->key, key, klen))
			return pp;
	return pp;
}

static struct ver *ver_find(const char *key, uint32_t klen)
{
	struct ver **pp = ver_slot(key, klen, jobq__hash(key, klen));

	return pp ? *pp : NULL;
}

static void ver_grow(void)
{
	uint32_t nb = k.nb ? 2 * k.nb : 256;
	struct ver **t = calloc(nb, sizeof(*t));

	if (!t)
		return; /* stays as it is, only slower */
	for (uint32_t i = 0; i < k.nb; i++)
		while (k.tab[i]) {
			struct ver *v = k.tab[i];

			k.tab[i] = v->next;
			v->next = t[v->hash & (nb - 1)];
			t[v->hash & (nb - 1)] = v;
		}
	free(k.tab);
	k.tab = t;
	k.nb = nb;
}

/* Notes @key's @version; false when out of memory. */
static bool ver_set(const char *key, uint32_t klen, int64_t version)
{
	uint32_t hash = jobq__hash(key, klen);
	struct ver **pp, *v;

	if (k.n >= k.nb)
		ver_grow();
	pp = ver_slot(key, klen, hash);
	if (!pp)
		return false;
	v = *pp;
	if (!v) {
		v = malloc(sizeof(*v) + klen);
		if (!v)
			return false;
		v->next = NULL;
		v->hash = hash;
		v->klen = klen;
		memcpy(v->key, key, klen);
		*pp = v;
		k.n++;
	}
	v->version = version;
	v->load = k.load;
	return true;
}

static void ver_del(const char *key, uint32_t klen)
{
	struct ver **pp = ver_slot(key, klen, jobq__hash(key, klen)), *v;

	if (!pp || !*pp)
		return;
	v = *pp;
	*pp = v->next;
	free(v);
	k.n--;
}

/* ------------------------------------------------------------------------
 * Rows into the store.
 */
/*
 * Makes the store hold @blob (a key and its value) of @version unless it
 * holds a newer one already. Returns true when @blob was installed (it is
 * the store's then); false leaves it the caller's.
 */
static bool put(uint64_t blob, int64_t version)
{
	const struct jobq_kv_blob *b = jobq__ptr(blob);
	const char *key = (const char *)(b + 1);
	struct ver *v = ver_find(key, b->klen);
	int ret;

	if (v && v->version >= version) {
		v->load = k.load;
		return false;
	}
	ret = jobq__kv_install(blob);
	if (ret) {
		jobq__log(JOBQ__LOG_WARN,
			  "backend: key \"%.*s\" not copied into this host's "
			  "store: %s (jobqd --memory)",
			  (int)b->klen, key, jobq_strerror(ret));
		return false;
	}
	if (!ver_set(key, b->klen, version))
		jobq__log(JOBQ__LOG_WARN, "backend: out of memory for key "
					  "versions");
	return true;
}

/* Removes @key from the store (it has no row). */
static void drop(const char *key, uint32_t klen)
{
	jobq__kv_remove((const uint8_t *)key, klen);
	ver_del(key, klen);
}

/* Copies row @i (key, type, value, version) of a fetch or a load. */
static void put_row(const PGresult *res, int i)
{
	const char *key = PQgetvalue(res, i, 0);
	uint32_t klen = (uint32_t)PQgetlength(res, i, 0);
	int64_t version = jobq__pg_int(res, i, 3);
	struct ver *v = ver_find(key, klen);
	unsigned char *val;
	size_t vlen = 0;
	uint64_t blob;

	if (v && v->version >= version) {
		v->load = k.load;
		return;
	}
	val = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2),
			      &vlen);
	if (!val || klen < 1 || klen > JOBQ_KEY_MAX) {
		PQfreemem(val);
		return;
	}
	blob = jobq__kv_blob((const uint8_t *)key, klen, val, (uint32_t)vlen,
			     (uint32_t)jobq__pg_int(res, i, 1));
	PQfreemem(val);
	if (!blob) {
		jobq__log(JOBQ__LOG_WARN,
			  "backend: key \"%.*s\" not copied into this host's "
			  "store: %s (jobqd --memory)",
			  (int)klen, key, jobq_strerror(JOBQ_EFULL));
		return;
	}
	if (!put(blob, version))
		jobq__free(blob);
}

/* ------------------------------------------------------------------------
 * Notifications and fetches.
 */
static void fetch_send(void);

static void fetch_cb(void *arg, int err, const PGresult *res)
{
	int n;

	k.fetching = false;
	if (err) {
		/* Cut: the load that follows the reconnect reads them. */
		if (err == -EPROTO)
			jobq__log(JOBQ__LOG_WARN, "backend: kv fetch: %s",
				  PQresultErrorMessage(res));
	} else {
		n = PQntuples(res);
		for (int i = 0; i < n; i++)
			put_row(res, i);
		/* A key named without a row was deleted. */
		for (uint32_t j = 0; j < k.ninflight; j++) {
			const char *key = k.inflight[j];
			uint32_t klen = (uint32_t)strlen(key);
			bool found = false;

			for (int i = 0; i < n && !found; i++)
				found = !strcmp(PQgetvalue(res, i, 0), key);
			if (!found)
				drop(key, klen);
		}
	}
	for (uint32_t j = 0; j < k.ninflight; j++)
		free(k.inflight[j]);
	free(k.inflight);
	k.inflight = NULL;
	k.ninflight = 0;
	if (k.nwant)
		fetch_send();
}

/* Sends one fetch for the keys notified so far, if none is in flight. */
static void fetch_send(void)
{
	struct jobq__pg *pg = jobq__backend_pg();
	uint32_t n = k.nwant < FETCH_KEYS ? k.nwant : FETCH_KEYS;

	if (!pg || k.fetching || !n || !jobq__pg_up(pg))
		return;
	if (jobq__pg_kv_fetch(pg, (const char *const *)k.want, n, fetch_cb,
			      NULL))
		return; /* tried again at the next turn */
	k.fetching = true;
	k.inflight = k.want;
	k.ninflight = n;
	/* The keys not sent stay wanted. */
	k.want = NULL;
	k.capwant = 0;
	if (k.nwant > n) {
		uint32_t rest = k.nwant - n;

		k.want = malloc(rest * sizeof(*k.want));
		if (k.want) {
			memcpy(k.want, k.inflight + n, rest * sizeof(*k.want));
			k.capwant = rest;
		} else {
			for (uint32_t j = n; j < k.nwant; j++)
				free(k.inflight[j]);
			rest = 0;
		}
		k.nwant = rest;
	} else {
		k.nwant = 0;
	}
}

void jobq__kv_pg_notify(const char *payload)
{
	char *end, *key, **w;
	int64_t version = strtoll(payload, &end, 10);
	struct ver *v;
	size_t klen;

	if (*end != ' ')
		return;
	key = end + 1;
	klen = strlen(key);
	if (klen < 1 || klen > JOBQ_KEY_MAX)
		return;
	v = ver_find(key, (uint32_t)klen);
	/* This host's own change, or one it fetched already. */
	if (version > 0 && v && v->version >= version)
		return;
	/* Deleted, and not here (every key here has its version). */
	if (version <= 0 && !v)
		return;
	/* A key changed again and again is named once: the newest keys
	 * wanted are compared (all of them would cost a burst of distinct
	 * keys a quadratic time; a key fetched twice costs a row). */
	for (uint32_t j = k.nwant > WANT_SCAN ? k.nwant - WANT_SCAN : 0;
	     j < k.nwant; j++)
		if (!strcmp(k.want[j], key))
			return;
	if (k.nwant == k.capwant) {
		uint32_t nc = k.capwant ? 2 * k.capwant : 64;

		w = realloc(k.want, nc * sizeof(*w));
		if (!w)
			return; /* the next load reads it */
		k.want = w;
		k.capwant = nc;
	}
	key = strdup(key);
	if (key)
		k.want[k.nwant++] = key;
}

static void forget_cb(void *arg, int err, const PGresult *res)
{
	k.forgetting = false;
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: kv requests: %s",
			  PQresultErrorMessage(res));
}

bool jobq__kv_pg_turn(void)
{
	struct jobq__pg *pg = jobq__backend_pg();
	bool was = k.fetching;
	uint64_t now = jobq__now_ns();

	fetch_send();
	/* The answers kept for requests sent again: a client sends again
	 * within its reconnect window (30 s by default), far less. */
	if (now >= k.forget_at && pg && jobq__pg_up(pg)) {
		k.forget_at = now + FORGET_EVERY_NS;
		if (!k.forgetting &&
		    !jobq__pg_kv_forget(pg, KEEP_ANSWERS_MS, forget_cb, NULL))
			k.forgetting = true;
	}
	return k.fetching && !was;
}

/* ------------------------------------------------------------------------
 * The whole table, at start and after every reconnect.
 */
static void load_cb(void *arg, int err, const PGresult *res)
{
	bool *done = arg;
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n, cap = 0, nold = 0;
	char **old = NULL;

	k.loading = false;
	if (done)
		*done = true;
	if (err) {
		if (err == -EPROTO)
			jobq__log(JOBQ__LOG_WARN, "backend: kv load: %s",
				  PQresultErrorMessage(res));
		/* Cut again: the next reconnect loads. */
		return;
	}
	k.load++;
	n = (uint32_t)PQntuples(res);
	for (uint32_t i = 0; i < n; i++)
		put_row(res, (int)i);
	/* Keys of the store that no row of this load named have none:
	 * listed first, since a removal may rehash the table. */
	for (uint32_t i = 0; i < h->kv_slots; i++) {
		const struct jobq_kv_slot *sl = &jobq__m.st.kv[i];
		const struct jobq_kv_blob *b;
		struct ver *v;

		if (sl->state != JOBQ_KV_USED)
			continue;
		b = jobq__ptr(sl->blob);
		v = ver_find((const char *)(b + 1), b->klen);
		if (v && v->load == k.load)
			continue;
		if (nold == cap) {
			char **o =
			    realloc(old, (cap ? 2 * cap : 64) * sizeof(*old));

			if (!o)
				break;
			old = o;
			cap = cap ? 2 * cap : 64;
		}
		old[nold] = strndup((const char *)(b + 1), b->klen);
		if (old[nold])
			nold++;
	}
	for (uint32_t i = 0; i < nold; i++) {
		drop(old[i], (uint32_t)strlen(old[i]));
		free(old[i]);
	}
	free(old);
	/* Versions of keys gone meanwhile. */
	for (uint32_t i = 0; i < k.nb; i++) {
		struct ver **pp = &k.tab[i];

		while (*pp) {
			struct ver *v = *pp;

			if (v->load == k.load) {
				pp = &v->next;
				continue;
			}
			*pp = v->next;
			free(v);
			k.n--;
		}
	}
	jobq__log(JOBQ__LOG_DEBUG,
		  "backend: %u keys read from PostgreSQL, %u removed", n, nold);
	if (k.load_again) {
		k.load_again = false;
		jobq__kv_pg_load();
	}
}

void jobq__kv_pg_load(void)
{
	struct jobq__pg *pg = jobq__backend_pg();

	if (!pg)
		return;
	if (k.loading) {
		k.load_again = true;
		return;
	}
	if (!jobq__pg_kv_load(pg, load_cb, NULL))
		k.loading = true;
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

int jobq__kv_pg_start(struct jobq__pg *pg, int timeout_ms, char *err,
		      size_t errlen)
{
	bool done = false;
	int ret;

	ret = jobq__pg_kv_load(pg, load_cb, &done);
	if (!ret) {
		k.loading = true;
		ret = jobq__pg_run(pg, flag_set, &done, timeout_ms);
	}
	if (!ret && k.load)
		return 0;
	snprintf(err, errlen,
		 "--backend: cannot read the key/value table within %d s",
		 timeout_ms / 1000);
	return ret ? ret : -EIO;
}

/* ------------------------------------------------------------------------
 * Writes.
 */
static struct kreq *kreq_new(struct jobq__client *c, const struct jobq_sqe *s,
			     int op, const uint8_t *key, uint32_t klen)
{
	struct kreq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = c;
	r->gen = c->gen;
	r->user_data = s->user_data;
	r->op = op;
	r->type = s->type;
	/* What makes it exact when sent again (pg.h): the client's
	 * session and request id, which it sends again after a manager
	 * restart too; else ours, for our own sending again after a cut. */
	if (c->sess) {
		r->session = c->hello.session;
		r->rid = jobq_ud_rid(s->user_data);
	} else {
		while (!k.nonce)
			if (getrandom(&k.nonce, sizeof(k.nonce), 0) < 0)
				k.nonce = jobq__now_ns() ^ (uint64_t)getpid();
		r->session = k.nonce;
		r->rid = ++k.nreq;
	}
	memcpy(r->key, key, klen);
	r->key[klen] = '\0';
	r->klen = klen;
	return r;
}

static void kreq_free(struct kreq *r)
{
	jobq__free(r->blob);
	free(r->expect);
	free(r);
}

static void answer(struct kreq *r, int32_t res, uint64_t val)
{
	if (r->c->gen == r->gen && jobq__client_alive(r->c))
		jobq__post(r->c, r->user_data, res, 0, val, 0, 0);
}

static void write_cb(void *arg, int err, const PGresult *res);

static int write_send(struct kreq *r)
{
	struct jobq__pg *pg = jobq__backend_pg();
	const struct jobq_kv_blob *b = r->blob ? jobq__ptr(r->blob) : NULL;
	const uint8_t *val = b ? (const uint8_t *)(b + 1) + b->klen : NULL;

	if (!pg)
		return JOBQ_ECLOSED;
	switch (r->op) {
	case K_SET:
		return jobq__pg_kv_set(pg, r->session, r->rid, r->key, r->type,
				       val, b->vlen, write_cb, r);
	case K_DEL:
		return jobq__pg_kv_del(pg, r->session, r->rid, r->key, write_cb,
				       r);
	case K_INCR:
		return jobq__pg_kv_incr(pg, r->session, r->rid, r->key, r->by,
					JOBQ_T_TEXT, write_cb, r);
	default:
		return jobq__pg_kv_cas(pg, r->session, r->rid, r->key,
				       r->expect, r->elen, r->type, val,
				       b->vlen, write_cb, r);
	}
}

/* The error a client gets for a statement that did not commit. */
static int write_error(const struct kreq *r, int err, const PGresult *res)
{
	if (err == -EPROTO) {
		if (jobq__pg_sqlstate(res, "22P02"))
			return JOBQ_ENOTNUM;
		if (jobq__pg_sqlstate(res, "22003"))
			return -ERANGE;
		jobq__log(JOBQ__LOG_WARN, "backend: key \"%s\": %s", r->key,
			  PQresultErrorMessage(res));
		return -EIO;
	}
	if (err == -ECONNRESET) {
		jobq__log(JOBQ__LOG_WARN,
			  "backend: key \"%s\": the connection to PostgreSQL "
			  "was cut with the change sent, five times in a row; "
			  "whether it applied is unknown",
			  r->key);
		return -EIO;
	}
	return err == -ECANCELED ? JOBQ_ECLOSED : err;
}

/*
 * A change sent again whose first copy had committed: the answer is the
 * first's. This host's copy of the key is read again before it is given,
 * since the first copy's answer and notification may have been lost with
 * its connection, so that the client still reads its own write.
 */
static void again_cb(void *arg, int err, const PGresult *res)
{
	struct kreq *r = arg;

	if (!err) {
		if (PQntuples(res))
			put_row(res, 0);
		else
			drop(r->key, r->klen);
	}
	answer(r, 0, r->op == K_INCR ? (uint64_t)r->n : 0);
	kreq_free(r);
}

static void write_cb(void *arg, int err, const PGresult *res)
{
	struct kreq *r = arg;
	int64_t version, nv = 0;
	struct jobq_kv_blob *b;
	int n;

	/* Sent again after a cut, or after the copy that raced it committed
	 * first (23505): exact through its request id (pg.h). */
	if ((err == -ECONNRESET ||
	     (err == -EPROTO && jobq__pg_sqlstate(res, "23505"))) &&
	    r->tries++ < 5 && !write_send(r))
		return;
	if (err) {
		answer(r, write_error(r, err, res), 0);
		kreq_free(r);
		return;
	}
	n = PQntuples(res);
	if (n && !strcmp(PQgetvalue(res, 0, r->op == K_INCR ? 2 : 1), "t")) {
		const char *keys[1] = {r->key};

		r->n = jobq__pg_int(res, 0, 0);
		if (!jobq__pg_kv_fetch(jobq__backend_pg(), keys, 1, again_cb,
				       r))
			return;
		again_cb(r, -ENOMEM, NULL);
		return;
	}
	switch (r->op) {
	case K_DEL:
		drop(r->key, r->klen);
		answer(r, n ? 0 : -ENOENT, 0);
		break;
	case K_CAS:
		if (!n) {
			answer(r, JOBQ_EMISMATCH, 0);
			break;
		}
		/* fall through */
	case K_SET:
		if (put(r->blob, jobq__pg_int(res, 0, 0)))
			r->blob = 0;
		answer(r, 0, 0);
		break;
	case K_INCR:
		nv = jobq__pg_int(res, 0, 0);
		version = jobq__pg_int(res, 0, 1);
		b = jobq__ptr(r->blob);
		/* Not visible to readers before it is installed. */
		b->vlen = (uint32_t)snprintf((char *)(b + 1) + b->klen,
					     INCR_ROOM, "%" PRId64, nv);
		if (put(r->blob, version))
			r->blob = 0;
		answer(r, 0, (uint64_t)nv);
		break;
	}
	kreq_free(r);
}

/* Sends @r, or frees it and says why not. */
static int start(struct kreq *r)
{
	int ret = write_send(r);

	if (ret) {
		kreq_free(r);
		return ret == -E2BIG ? -EAGAIN : ret;
	}
	return JOBQ__NOREPLY;
}

/* The key at the start of @s's arena, copied (read once) and checked as
 * PostgreSQL will store it: text. */
static int take_key(struct jobq__client *c, const struct jobq_sqe *s,
		    uint64_t klen, uint8_t *key)
{
	if (klen < 1 || klen > JOBQ_KEY_MAX || klen > s->arena_len)
		return jobq__bad(-EINVAL);
	memcpy(key, jobq__arena(c, s->arena_off), klen);
	if (jobq__check_text(key, klen))
		return jobq__bad(-EINVAL);
	return jobq__kv_room(key, (uint32_t)klen);
}

/* A request for @key whose stored value will be the @vlen bytes at @val,
 * with that value's blob taken now. */
static int with_blob(struct jobq__client *c, const struct jobq_sqe *s, int op,
		     const uint8_t *key, uint32_t klen, const uint8_t *val,
		     uint32_t vlen, uint32_t type, struct kreq **out)
{
	struct kreq *r = kreq_new(c, s, op, key, klen);

	if (!r)
		return -ENOMEM;
	r->blob = jobq__kv_blob(key, klen, val, vlen, type);
	if (!r->blob) {
		kreq_free(r);
		return JOBQ_EFULL;
	}
	*out = r;
	return 0;
}

int jobq__kv_pg_set(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *p = jobq__arena(c, s->arena_off);
	uint8_t key[JOBQ_KEY_MAX];
	struct kreq *r;
	uint32_t vlen;
	int ret;

	ret = take_key(c, s, s->arg0, key);
	if (ret)
		return ret;
	vlen = s->arena_len - (uint32_t)s->arg0;
	if (vlen > jobq__hdr()->max_object)
		return -E2BIG;
	ret = with_blob(c, s, K_SET, key, (uint32_t)s->arg0, p + s->arg0, vlen,
			s->type, &r);
	return ret ? ret : start(r);
}

int jobq__kv_pg_del(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint8_t key[JOBQ_KEY_MAX];
	struct kreq *r;

	if (s->arena_len < 1 || s->arena_len > JOBQ_KEY_MAX)
		return jobq__bad(-EINVAL);
	memcpy(key, jobq__arena(c, s->arena_off), s->arena_len);
	if (jobq__check_text(key, s->arena_len))
		return -ENOENT; /* no such key can exist */
	r = kreq_new(c, s, K_DEL, key, s->arena_len);
	if (!r)
		return -ENOMEM;
	return start(r);
}

int jobq__kv_pg_incr(struct jobq__client *c, const struct jobq_sqe *s)
{
	static const uint8_t room[INCR_ROOM] = {0};
	uint8_t key[JOBQ_KEY_MAX];
	struct kreq *r;
	int ret;

	ret = take_key(c, s, s->arena_len, key);
	if (ret)
		return ret;
	ret = with_blob(c, s, K_INCR, key, s->arena_len, room, INCR_ROOM,
			JOBQ_T_TEXT, &r);
	if (ret)
		return ret;
	r->by = (int64_t)s->arg0;
	return start(r);
}

int jobq__kv_pg_cas(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *p = jobq__arena(c, s->arena_off);
	uint64_t klen = s->arg0, elen = s->arg1;
	uint8_t key[JOBQ_KEY_MAX];
	struct kreq *r;
	uint32_t nlen;
	int ret;

	if (klen < 1 || klen > JOBQ_KEY_MAX || elen > s->arena_len ||
	    klen + elen > s->arena_len)
		return jobq__bad(-EINVAL);
	nlen = (uint32_t)(s->arena_len - klen - elen);
	if (nlen > jobq__hdr()->max_object)
		return -E2BIG;
	ret = take_key(c, s, klen, key);
	if (ret)
		return ret;
	ret = with_blob(c, s, K_CAS, key, (uint32_t)klen, p + klen + elen, nlen,
			s->type, &r);
	if (ret)
		return ret;
	if (!(s->flags & JOBQ_SQE_ABSENT)) {
		/* +1: an empty expected value is still not "absent". */
		r->expect = malloc(elen + 1);
		if (!r->expect) {
			kreq_free(r);
			return -ENOMEM;
		}
		memcpy(r->expect, p + klen, elen);
		r->elen = (uint32_t)elen;
	}
	return start(r);
}
