/* SPDX-License-Identifier: MIT */
/*
 * kv.c - the shared key/value store.
 *
 * Reads (get, get_buf, list) never talk to the manager: they probe the
 * store's open-addressing table directly. A slot is read inside its
 * seqlock: state, hash and blob offset first, then the blob's key and value
 * straight out of the heap. Anything read there may be torn or stale while
 * the manager rewrites the slot (it frees the old blob in the same write
 * section), so every offset and length is bounds-checked before it is
 * followed, and a copy is kept only when the sequence number did not move.
 *
 * Writes (set, del, incr, cas) are requests to the manager, the only
 * writer; their key and value travel in the arena.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* A blob's key and value, checked to lie inside the store. */
struct kv_view {
	const uint8_t *key;
	const uint8_t *val;
	uint32_t klen;
	uint32_t vlen;
	uint32_t type;
};

/*
 * Reads the blob at @off into @v without following anything outside the
 * store. Returns false when the offset or lengths are out of range (only
 * possible for a torn read, which the caller's retry check catches).
 */
static inline bool blob_view(const jobq_t *q, uint64_t off, struct kv_view *v)
{
	const struct jobq_kv_blob *b;
	uint64_t size = q->store_size;

	if (off < sizeof(struct jobq_store_hdr) || off > size ||
	    size - off < sizeof(*b) || off % 4)
		return false;
	b = (const void *)(q->store + off);
	v->klen = b->klen;
	v->vlen = b->vlen;
	v->type = b->type;
	if ((uint64_t)v->klen + v->vlen > size - off - sizeof(*b))
		return false;
	v->key = (const uint8_t *)(b + 1);
	v->val = v->key + v->klen;
	return true;
}

static inline int check_key(const char *key, size_t *klen)
{
	size_t n;

	if (!key)
		return -EINVAL;
	n = strlen(key);
	if (n == 0 || n > JOBQ_KEY_MAX || jobq__check_text(key, n))
		return -EINVAL;
	*klen = n;
	return 0;
}

/*
 * Finds @key and copies up to @cap bytes of its value into @buf. Returns
 * the value's length and its type in *type, or -ENOENT. The copy is one
 * consistent version of the value.
 */
static ssize_t kv_probe(const jobq_t *q, const char *key, size_t klen,
			void *buf, size_t cap, uint32_t *type);

/*
 * kv_lookup - kv_probe() inside the table's kv_gen sequence count: jobqd
 * rehashes the table in place now and then (manager/kv.c), and a key that
 * moved behind a probe would be missed, so an answer given while the
 * count changed is looked up again.
 */
static ssize_t kv_lookup(const jobq_t *q, const char *key, size_t klen,
			 void *buf, size_t cap, uint32_t *type)
{
	for (;;) {
		uint32_t g;
		ssize_t r;
		int err = jobq__seq_begin(q, &q->sh->kv_gen, &g);

		if (err)
			return err;
		r = kv_probe(q, key, klen, buf, cap, type);
		if (!seq_read_retry(&q->sh->kv_gen, g))
			return r;
	}
}

static ssize_t kv_probe(const jobq_t *q, const char *key, size_t klen,
			void *buf, size_t cap, uint32_t *type)
{
	uint32_t h = jobq__hash(key, klen), mask = q->kv_mask;

	for (uint32_t i = h & mask, probes = 0; probes <= mask;
	     i = (i + 1) & mask, probes++) {
		const struct jobq_kv_slot *slot = &q->kv[i];
		struct kv_view v;
		uint32_t s, state;
		size_t n;
		int err;

	again:
		if ((err = jobq__seq_begin(q, &slot->seq, &s)))
			return err;
		state = slot->state;
		if (state == JOBQ_KV_EMPTY) {
			if (seq_read_retry(&slot->seq, s))
				goto again;
			return -ENOENT;
		}
		if (state != JOBQ_KV_USED || slot->hash != h) {
			if (seq_read_retry(&slot->seq, s))
				goto again;
			continue;
		}
		if (!blob_view(q, slot->blob, &v) || v.klen != klen ||
		    memcmp(v.key, key, klen)) {
			if (seq_read_retry(&slot->seq, s))
				goto again;
			continue;
		}
		n = v.vlen < cap ? v.vlen : cap;
		if (n)
			memcpy(buf, v.val, n);
		if (seq_read_retry(&slot->seq, s))
			goto again;
		if (type)
			*type = v.type;
		return (ssize_t)v.vlen;
	}
	return -ENOENT;
}

ssize_t jobq_kv_get_buf(jobq_t *q, const char *key, void *buf, size_t cap,
			uint32_t *type)
{
	size_t klen;
	int err = check_key(key, &klen);

	if (err)
		return err;
	if (!buf)
		cap = 0;
	return kv_lookup(q, key, klen, buf, cap, type);
}

int jobq_kv_get(jobq_t *q, const char *key, jobq_obj_t *out)
{
	char small[256];
	size_t klen, cap = sizeof(small);
	uint32_t type;
	ssize_t n;
	char *p;
	int err = check_key(key, &klen);

	if (err)
		return err;
	n = kv_lookup(q, key, klen, small, sizeof(small), &type);
	if (n < 0)
		return (int)n;
	p = NULL;
	/* A value too big for the stack buffer is read again into one of
	 * its size; it may change meanwhile, so loop until one fits. */
	while ((size_t)n > cap) {
		char *bigger;

		cap = (size_t)n;
		bigger = realloc(p, cap + 1);
		if (!bigger) {
			free(p);
			return -ENOMEM;
		}
		p = bigger;
		n = kv_lookup(q, key, klen, p, cap, &type);
		if (n < 0) {
			free(p);
			return (int)n;
		}
	}
	if (!p) {
		p = malloc((size_t)n + 1);
		if (!p)
			return -ENOMEM;
		memcpy(p, small, (size_t)n);
	}
	p[n] = '\0';
	out->type = type;
	out->flags = 0;
	out->len = (size_t)n;
	out->data = p;
	return 0;
}

int jobq_kv_list(jobq_t *q, const char *prefix, jobq_kv_cb cb, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	char key[JOBQ_KEY_MAX + 1];
	char *val = NULL;
	size_t vcap = 0;
	int ret = 0;

	if (!cb)
		return -EINVAL;
	for (uint64_t i = 0; i <= q->kv_mask; i++) {
		const struct jobq_kv_slot *slot = &q->kv[i];
		struct kv_view v;
		jobq_obj_t obj;
		uint32_t s;

	again:
		if ((ret = jobq__seq_begin(q, &slot->seq, &s)))
			break;
		if (slot->state != JOBQ_KV_USED ||
		    !blob_view(q, slot->blob, &v) || v.klen > JOBQ_KEY_MAX) {
			if (seq_read_retry(&slot->seq, s))
				goto again;
			continue;
		}
		if (v.vlen + (size_t)1 > vcap) {
			char *bigger = realloc(val, (size_t)v.vlen + 1);

			if (!bigger) {
				ret = -ENOMEM;
				break;
			}
			val = bigger;
			vcap = (size_t)v.vlen + 1;
			goto again; /* the slot may have moved meanwhile */
		}
		memcpy(key, v.key, v.klen);
		memcpy(val, v.val, v.vlen);
		if (seq_read_retry(&slot->seq, s))
			goto again;
		key[v.klen] = '\0';
		val[v.vlen] = '\0';
		/* Keys hold no NUL (they come from C strings); one that does
		 * would compare short, which is harmless here. */
		if (plen && (v.klen < plen || memcmp(key, prefix, plen)))
			continue;
		obj.type = v.type;
		obj.flags = 0;
		obj.len = v.vlen;
		obj.data = val;
		ret = cb(key, &obj, arg);
		if (ret)
			break;
	}
	free(val);
	return ret;
}

static int kv_request(jobq_t *q, struct jobq__op *op, uint64_t *val)
{
	struct jobq_req *r = op->req;
	int res = jobq__call(q, op);

	if (val)
		*val = r->val;
	return res < 0 ? res : 0;
}

/* A request of @opcode whose arena starts with @key (its length in arg0).
 * Returns 0, or what check_key() returns. */
static int key_op(struct jobq__op *op, struct jobq_req *r, uint8_t opcode,
		  const char *key)
{
	size_t klen;
	int err = check_key(key, &klen);

	if (err)
		return err;
	jobq__op_init(op, r, opcode, key, klen);
	op->sqe.arg0 = klen;
	return 0;
}

/* The KV_SET request for @key = @data; checks what the manager would. */
static int kv_set_op(jobq_t *q, struct jobq__op *op, struct jobq_req *r,
		     const char *key, uint32_t type, const void *data,
		     size_t len)
{
	int err = key_op(op, r, JOBQ_OP_KV_SET, key);

	if (err)
		return err;
	if (len && !data)
		return -EINVAL;
	if (len > q->max_object || len > UINT32_MAX)
		return -E2BIG;
	if (len) {
		op->iov[1].iov_base = (void *)data;
		op->iov[1].iov_len = len;
		op->niov = 2;
	}
	op->sqe.type = type;
	return 0;
}

int jobq_kv_set(jobq_t *q, const char *key, uint32_t type, const void *data,
		size_t len)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = kv_set_op(q, &op, &r, key, type, data, len);

	return err ? err : kv_request(q, &op, NULL);
}

int jobq_kv_set_async(jobq_t *q, const char *key, uint32_t type,
		      const void *data, size_t len, jobq_cb cb, void *arg)
{
	struct jobq_req *r = jobq__async_req(cb, arg);
	struct jobq__op op;
	int err;

	if (!r)
		return -ENOMEM;
	err = kv_set_op(q, &op, r, key, type, data, len);
	if (err) {
		free(r);
		return err;
	}
	return jobq__submit_async(q, &op);
}

int jobq_kv_del(jobq_t *q, const char *key)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = key_op(&op, &r, JOBQ_OP_KV_DEL, key);

	return err ? err : kv_request(q, &op, NULL);
}

int jobq_kv_incr(jobq_t *q, const char *key, int64_t by, int64_t *out)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	uint64_t val;
	int err = key_op(&op, &r, JOBQ_OP_KV_INCR, key);

	if (err)
		return err;
	op.sqe.arg0 = (uint64_t)by; /* the key's length is the arena's */
	err = kv_request(q, &op, &val);
	if (!err && out)
		*out = (int64_t)val;
	return err;
}

int jobq_kv_cas(jobq_t *q, const char *key, const void *expect, size_t elen,
		uint32_t type, const void *data, size_t len)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err = key_op(&op, &r, JOBQ_OP_KV_CAS, key);

	if (err)
		return err;
	if ((len && !data) || (elen && !expect))
		return -EINVAL;
	if (len > q->max_object || elen > q->max_object)
		return -E2BIG;
	if (expect) {
		op.iov[1].iov_base = (void *)expect;
		op.iov[1].iov_len = elen;
	} else {
		op.sqe.flags = JOBQ_SQE_ABSENT;
		elen = 0;
	}
	op.iov[2].iov_base = (void *)data;
	op.iov[2].iov_len = len;
	op.niov = 3;
	op.sqe.arg1 = elen;
	op.sqe.type = type;
	return kv_request(q, &op, NULL);
}
