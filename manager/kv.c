/* SPDX-License-Identifier: MIT */
/*
 * kv.c - the key/value table: open addressing with linear probing over
 * kv_slots slots, each pointing at a heap blob holding key and value.
 *
 * Clients look keys up in their read-only mapping with the same probe:
 * start at hash & (kv_slots - 1), skip tombstones, stop at an empty slot.
 * So a slot goes back to EMPTY only when no probe can need to pass it
 * (a tombstone right before an empty slot), and every change to a slot
 * happens inside its seqlock write section: a reader that raced it
 * retries.
 *
 * The table never fills: a new key that would take an EMPTY slot is
 * refused with JOBQ_ELIMIT once used + tombstones reach 7/8 of the slots,
 * which keeps every probe ending at an empty slot. A tombstone becomes
 * empty again as soon as the slot after it is empty (see kv_del); the
 * others are swept by rehashing the table in place once they are more
 * than an eighth of it (compact()), so a table whose live keys stay far
 * below its size takes new keys for ever. Keys move then, which a reader
 * probing at that moment could miss: the rehash happens inside the
 * header's kv_gen sequence count, and a lookup that saw kv_gen change
 * (src/kv.c) looks again.
 *
 * Durability: every change is journaled as the value it leaves
 * (JOBQ__JR_KV_SET, for set, incr and cas alike) or as the key's removal
 * (JOBQ__JR_KV_DEL); replay applies them in order through the same code.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "jobqd.h"

static uint32_t ntombs; /* slots in JOBQ_KV_TOMB */

static struct jobq_kv_slot *slot_at(uint32_t i)
{
	return &jobq__m.st.kv[i];
}

static struct jobq_kv_blob *blob_at(uint64_t off)
{
	return jobq__ptr(off);
}

/*
 * lookup - find @key. Returns the slot index holding it, or -1 with *ins
 * set to where an insert should go (the first tombstone on the probe, else
 * the empty slot that ended it).
 */
static int64_t lookup(const uint8_t *key, uint32_t klen, uint32_t hash,
		      int64_t *ins)
{
	uint32_t n = jobq__hdr()->kv_slots, mask = n - 1;
	int64_t tomb = -1;

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (hash + k) & mask;
		struct jobq_kv_slot *sl = slot_at(i);

		if (sl->state == JOBQ_KV_EMPTY) {
			*ins = tomb >= 0 ? tomb : i;
			return -1;
		}
		if (sl->state == JOBQ_KV_TOMB) {
			if (tomb < 0)
				tomb = i;
			continue;
		}
		if (sl->hash == hash) {
			struct jobq_kv_blob *b = blob_at(sl->blob);

			if (b->klen == klen && !memcmp(b + 1, key, klen))
				return i;
		}
	}
	*ins = tomb;
	return -1;
}

/*
 * Copies the @klen key bytes at the start of request @s's arena into @key
 * (read once, so that hashing, comparing and storing agree whatever the
 * client writes meanwhile), hashes them into *hash and looks them up, as
 * lookup() does.
 */
static int64_t lookup_arena_key(struct jobq__client *c,
				const struct jobq_sqe *s, uint32_t klen,
				uint8_t *key, uint32_t *hash, int64_t *ins)
{
	memcpy(key, jobq__arena(c, s->arena_off), klen);
	*hash = jobq__hash(key, klen);
	return lookup(key, klen, *hash, ins);
}

/* A new blob with @key and @val, or 0 when the heap is full. */
static uint64_t blob_new(const uint8_t *key, uint32_t klen, const uint8_t *val,
			 uint32_t vlen, uint32_t type)
{
	uint64_t off =
	    jobq__alloc(sizeof(struct jobq_kv_blob) + (uint64_t)klen + vlen);
	struct jobq_kv_blob *b;

	if (!off)
		return 0;
	b = blob_at(off);
	b->klen = klen;
	b->vlen = vlen;
	b->type = type;
	b->pad = 0;
	memcpy((uint8_t *)(b + 1), key, klen);
	memcpy((uint8_t *)(b + 1) + klen, val, vlen);
	return off;
}

/* What a JOBQ__JR_KV_SET record holds before the key and the value. */
struct jset {
	uint32_t klen;
	uint32_t type;
};

/* Journals the value blob @b now holds; the request's answer waits.
 * Replay runs through here too, and jobq__jlog() writes nothing then. */
static void journal_set(const struct jobq_kv_blob *b)
{
	struct jset h = {.klen = b->klen, .type = b->type};
	struct iovec v[2] = {
	    {.iov_base = &h, .iov_len = sizeof(h)},
	    {.iov_base = (void *)(b + 1), .iov_len = (size_t)b->klen + b->vlen},
	};

	jobq__jlog(JOBQ__JR_KV_SET, v, 2, true);
}

/*
 * room - whether @key may be stored at insert position @ins when it is new
 * (@at < 0). Returns 0, -EINVAL or JOBQ_ELIMIT.
 */
static int room(int64_t at, int64_t ins, const uint8_t *key, uint32_t klen)
{
	struct jobq_store_hdr *h = jobq__hdr();

	if (at >= 0)
		return 0;
	if (jobq__check_text(key, klen))
		return jobq__bad(-EINVAL);
	if (ins < 0)
		return JOBQ_ELIMIT;
	/* A tombstone is reused for free; an empty slot counts. */
	if (slot_at((uint32_t)ins)->state == JOBQ_KV_EMPTY &&
	    (uint64_t)load_relaxed(&h->nkeys) + ntombs + 1 >
		(uint64_t)h->kv_slots / 8 * 7)
		return JOBQ_ELIMIT;
	return 0;
}

/* install - make @blob (key and value) the key's: into slot @at if it
 * holds the key (>= 0), else a new key at insert position @ins, which
 * room() allowed. */
static void install(int64_t at, int64_t ins, uint32_t hash, uint64_t blob)
{
	struct jobq_store_hdr *h = jobq__hdr();
	struct jobq_kv_slot *sl;
	uint64_t old = 0;

	sl = slot_at((uint32_t)(at >= 0 ? at : ins));
	seq_write_begin(&sl->seq);
	if (at >= 0) {
		old = sl->blob;
	} else {
		if (sl->state == JOBQ_KV_TOMB)
			ntombs--;
		sl->state = JOBQ_KV_USED;
		sl->hash = hash;
	}
	sl->blob = blob;
	/* Freed inside the write section: a reader copying the old blob
	 * sees the sequence change and retries. */
	jobq__free(old);
	seq_write_end(&sl->seq);
	if (at < 0)
		store_relaxed(&h->nkeys, load_relaxed(&h->nkeys) + 1);
	jobq__count(kv_sets);
	/* With --backend the table is a copy of PostgreSQL's, read afresh
	 * at every start (kv_pg.c): not this journal's to keep. */
	if (!jobq__m.o.backend)
		journal_set(blob_at(blob));
}

/*
 * store_value - set @key to @val: into slot @at if it holds the key (>= 0),
 * else a new key at insert position @ins. Returns 0, JOBQ_EFULL or
 * JOBQ_ELIMIT.
 */
static int store_value(int64_t at, int64_t ins, const uint8_t *key,
		       uint32_t klen, uint32_t hash, const uint8_t *val,
		       uint32_t vlen, uint32_t type)
{
	uint64_t blob;
	int ret = room(at, ins, key, klen);

	if (ret)
		return ret;
	blob = blob_new(key, klen, val, vlen, type);
	if (!blob)
		return JOBQ_EFULL;
	install(at, ins, hash, blob);
	return 0;
}

int jobq__op_kv_set(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *p = jobq__arena(c, s->arena_off);
	uint8_t key[JOBQ_KEY_MAX];
	uint32_t klen, vlen, hash;
	int64_t at, ins;

#ifdef JOBQ_HAVE_PG
	/* The shared table's change, copied here once committed. */
	if (jobq__m.o.backend)
		return jobq__kv_pg_set(c, s);
#endif
	if (s->arg0 < 1 || s->arg0 > JOBQ_KEY_MAX || s->arg0 > s->arena_len)
		return jobq__bad(-EINVAL);
	klen = (uint32_t)s->arg0;
	vlen = s->arena_len - klen;
	if (vlen > jobq__hdr()->max_object)
		return -E2BIG;
	at = lookup_arena_key(c, s, klen, key, &hash, &ins);
	return store_value(at, ins, key, klen, hash, p + klen, vlen, s->type);
}

/*
 * compact - rehash the table in place, dropping every tombstone: each
 * used slot's key goes back to the first free slot of its probe. Costs
 * one pass over the table per kv_slots / 8 deletes at least, so a delete
 * stays O(1) on average.
 */
static void compact(void)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t n = h->kv_slots, mask = n - 1, k = 0;
	struct moved {
		uint32_t hash;
		uint64_t blob;
	} *keys = malloc(((size_t)load_relaxed(&h->nkeys) + 1) * sizeof(*keys));

	if (!keys)
		return; /* tried again at the next delete */
	seq_write_begin(&h->kv_gen);
	for (uint32_t i = 0; i < n; i++) {
		struct jobq_kv_slot *sl = slot_at(i);

		if (sl->state == JOBQ_KV_EMPTY)
			continue;
		seq_write_begin(&sl->seq);
		if (sl->state == JOBQ_KV_USED)
			keys[k++] = (struct moved){sl->hash, sl->blob};
		sl->state = JOBQ_KV_EMPTY;
		sl->blob = 0;
		seq_write_end(&sl->seq);
	}
	for (uint32_t j = 0; j < k; j++) {
		uint32_t i = keys[j].hash & mask;

		while (slot_at(i)->state != JOBQ_KV_EMPTY)
			i = (i + 1) & mask;
		seq_write_begin(&slot_at(i)->seq);
		slot_at(i)->state = JOBQ_KV_USED;
		slot_at(i)->hash = keys[j].hash;
		slot_at(i)->blob = keys[j].blob;
		seq_write_end(&slot_at(i)->seq);
	}
	seq_write_end(&h->kv_gen);
	jobq__log(1, "kv: table rehashed: %u keys, %u tombstones dropped", k,
		  ntombs);
	ntombs = 0;
	free(keys);
}

/* Removes the key in slot @at (and journals that). */
static void delete_at(int64_t at)
{
	struct jobq_store_hdr *h = jobq__hdr();
	uint32_t mask = h->kv_slots - 1, i;
	struct jobq_kv_slot *sl;
	uint64_t old;

	sl = slot_at((uint32_t)at);
	if (!jobq__m.o.backend) {
		struct jobq_kv_blob *b = blob_at(sl->blob);
		struct iovec v = {.iov_base = b + 1, .iov_len = b->klen};

		jobq__jlog(JOBQ__JR_KV_DEL, &v, 1, true);
	}
	seq_write_begin(&sl->seq);
	old = sl->blob;
	sl->state = JOBQ_KV_TOMB;
	sl->blob = 0;
	jobq__free(old);
	seq_write_end(&sl->seq);
	ntombs++;
	/*
	 * Tombstones followed by an empty slot can become empty again: no
	 * probe that reaches them goes on past that empty slot, so no key
	 * lies behind them. This keeps deletes from filling the table.
	 */
	i = (uint32_t)at;
	while (slot_at((i + 1) & mask)->state == JOBQ_KV_EMPTY &&
	       slot_at(i)->state == JOBQ_KV_TOMB) {
		sl = slot_at(i);
		seq_write_begin(&sl->seq);
		sl->state = JOBQ_KV_EMPTY;
		seq_write_end(&sl->seq);
		ntombs--;
		i = (i - 1) & mask;
	}
	store_relaxed(&h->nkeys, load_relaxed(&h->nkeys) - 1);
	jobq__count(kv_dels);
	if (ntombs > 64 && ntombs > h->kv_slots / 8)
		compact();
}

int jobq__op_kv_del(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint8_t key[JOBQ_KEY_MAX];
	uint32_t hash;
	int64_t at, ins;

#ifdef JOBQ_HAVE_PG
	/* The shared table's change, copied here once committed. */
	if (jobq__m.o.backend)
		return jobq__kv_pg_del(c, s);
#endif
	if (s->arena_len < 1 || s->arena_len > JOBQ_KEY_MAX)
		return jobq__bad(-EINVAL);
	at = lookup_arena_key(c, s, s->arena_len, key, &hash, &ins);
	if (at < 0)
		return -ENOENT;
	delete_at(at);
	return 0;
}

/* Parses an optional '-' and 1..n decimal digits. Returns 0, JOBQ_ENOTNUM
 * or -ERANGE. */
static int parse_int(const uint8_t *p, uint32_t n, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, lim;
	uint32_t i = 0;

	if (n && p[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return JOBQ_ENOTNUM;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return JOBQ_ENOTNUM;
		if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int jobq__op_kv_incr(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint8_t key[JOBQ_KEY_MAX];
	uint32_t klen = s->arena_len, hash;
	int64_t at, ins, cur = 0, delta = (int64_t)s->arg0, nv;
	char text[24];
	int ret, n;

#ifdef JOBQ_HAVE_PG
	/* The shared table's change, copied here once committed. */
	if (jobq__m.o.backend)
		return jobq__kv_pg_incr(c, s);
#endif
	if (klen < 1 || klen > JOBQ_KEY_MAX)
		return jobq__bad(-EINVAL);
	at = lookup_arena_key(c, s, klen, key, &hash, &ins);
	if (at >= 0) {
		struct jobq_kv_blob *b = blob_at(slot_at((uint32_t)at)->blob);

		ret = parse_int((const uint8_t *)(b + 1) + b->klen, b->vlen,
				&cur);
		if (ret)
			return ret;
	}
	if (__builtin_add_overflow(cur, delta, &nv))
		return -ERANGE;
	n = snprintf(text, sizeof(text), "%lld", (long long)nv);
	ret = store_value(at, ins, key, klen, hash, (const uint8_t *)text,
			  (uint32_t)n, JOBQ_T_TEXT);
	if (ret)
		return ret;
	jobq__post(c, s->user_data, 0, 0, (uint64_t)nv, 0, 0);
	return JOBQ__NOREPLY;
}

int jobq__op_kv_cas(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *p = jobq__arena(c, s->arena_off);
	uint64_t klen = s->arg0, elen = s->arg1;
	uint8_t key[JOBQ_KEY_MAX];
	const uint8_t *exp, *nv;
	uint32_t hash, nlen;
	int64_t at, ins;

#ifdef JOBQ_HAVE_PG
	/* The shared table's change, copied here once committed. */
	if (jobq__m.o.backend)
		return jobq__kv_pg_cas(c, s);
#endif
	if (klen < 1 || klen > JOBQ_KEY_MAX || elen > s->arena_len ||
	    klen + elen > s->arena_len)
		return jobq__bad(-EINVAL);
	exp = p + klen;
	nv = exp + elen;
	nlen = (uint32_t)(s->arena_len - klen - elen);
	if (nlen > jobq__hdr()->max_object)
		return -E2BIG;
	at = lookup_arena_key(c, s, (uint32_t)klen, key, &hash, &ins);
	if (s->flags & JOBQ_SQE_ABSENT) {
		if (at >= 0)
			return JOBQ_EMISMATCH;
	} else {
		struct jobq_kv_blob *b;

		if (at < 0)
			return JOBQ_EMISMATCH;
		b = blob_at(slot_at((uint32_t)at)->blob);
		if (b->vlen != elen ||
		    memcmp((const uint8_t *)(b + 1) + b->klen, exp, elen))
			return JOBQ_EMISMATCH;
	}
	return store_value(at, ins, key, (uint32_t)klen, hash, nv, nlen,
			   s->type);
}

/* ------------------------------------------------------------------------
 * Replay and snapshot.
 */
int jobq__kv_replay(uint16_t type, const uint8_t *p, uint32_t len)
{
	int64_t at, ins;
	struct jset h;

	if (type == JOBQ__JR_KV_DEL) {
		if (len < 1 || len > JOBQ_KEY_MAX)
			return -EBADMSG;
		at = lookup(p, len, jobq__hash(p, len), &ins);
		if (at >= 0)
			delete_at(at);
		return 0;
	}
	if (type != JOBQ__JR_KV_SET || len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	p += sizeof(h);
	len -= (uint32_t)sizeof(h);
	if (h.klen < 1 || h.klen > JOBQ_KEY_MAX || h.klen > len)
		return -EBADMSG;
	{
		uint32_t hash = jobq__hash(p, h.klen);

		at = lookup(p, h.klen, hash, &ins);
		return store_value(at, ins, p, h.klen, hash, p + h.klen,
				   len - h.klen, h.type);
	}
}

/* jobq__kv_snapshot - one JOBQ__JR_KV_SET record per key. */
int jobq__kv_snapshot(struct jobq__journal *j)
{
	uint32_t n = jobq__hdr()->kv_slots;
	/* The scan ends with the last key: a snapshot comes every few MiB of
	 * journal, and a table of 512k slots (--memory 1G) without a key
	 * took a millisecond to scan each time. */
	uint32_t left = load_relaxed(&jobq__hdr()->nkeys);
	int ret = 0;

	if (jobq__m.o.backend)
		return 0; /* PostgreSQL's rows, not this journal's */

	for (uint32_t i = 0; i < n && left && !ret; i++) {
		const struct jobq_kv_slot *sl = slot_at(i);
		const struct jobq_kv_blob *b;

		if (sl->state != JOBQ_KV_USED)
			continue;
		left--;
		b = blob_at(sl->blob);
		{
			struct jset h = {.klen = b->klen, .type = b->type};
			struct iovec v[2] = {
			    {.iov_base = &h, .iov_len = sizeof(h)},
			    {.iov_base = (void *)(b + 1),
			     .iov_len = (size_t)b->klen + b->vlen},
			};

			ret = jobq__journal_add(j, JOBQ__JR_KV_SET, v, 2);
		}
	}
	return ret;
}

/* ------------------------------------------------------------------------
 * For kv_pg.c (--backend), which keeps this table as a copy of
 * PostgreSQL's and changes it from committed rows, not from requests.
 */
uint64_t jobq__kv_blob(const uint8_t *key, uint32_t klen, const uint8_t *val,
		       uint32_t vlen, uint32_t type)
{
	return blob_new(key, klen, val, vlen, type);
}

int jobq__kv_room(const uint8_t *key, uint32_t klen)
{
	int64_t at, ins;

	at = lookup(key, klen, jobq__hash(key, klen), &ins);
	return room(at, ins, key, klen);
}

int jobq__kv_install(uint64_t blob)
{
	const struct jobq_kv_blob *b = blob_at(blob);
	const uint8_t *key = (const uint8_t *)(b + 1);
	uint32_t hash = jobq__hash(key, b->klen);
	int64_t at, ins;
	int ret;

	at = lookup(key, b->klen, hash, &ins);
	ret = room(at, ins, key, b->klen);
	if (!ret)
		install(at, ins, hash, blob);
	return ret;
}

int jobq__kv_remove(const uint8_t *key, uint32_t klen)
{
	int64_t at, ins;

	at = lookup(key, klen, jobq__hash(key, klen), &ins);
	if (at < 0)
		return -ENOENT;
	delete_at(at);
	return 0;
}
