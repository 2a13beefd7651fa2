/* SPDX-License-Identifier: MIT */
/*
 * chunk.c - writing and reading chunks (chunk.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "internal.h"

static int reserve(struct jobq__chunk_buf *b, size_t more)
{
	if (!b->len)
		more += JOBQ__CHUNK_HEAD;
	if (more > UINT32_MAX || b->len > UINT32_MAX - more)
		return -E2BIG;
	return jobq__grow((void **)&b->data, &b->cap, b->len + more, 1, 256);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int jobq__chunk_add(struct jobq__chunk_buf *b, int32_t code, uint32_t type,
		    const void *data, size_t len)
{
	int err = reserve(b, jobq__chunk_size(len));
	uint8_t *p;

	if (err)
		return err;
	if (!b->len)
		b->len = JOBQ__CHUNK_HEAD;
	p = b->data + b->len;
	put32(p, (uint32_t)code);
	put32(p + 4, type);
	put32(p + 8, (uint32_t)len);
	if (len)
		memcpy(p + JOBQ__CHUNK_ITEM, data, len);
	b->len += jobq__chunk_size(len);
	b->count++;
	return 0;
}

int jobq__chunk_finish(struct jobq__chunk_buf *b)
{
	int err = reserve(b, 0);

	if (err)
		return err;
	if (!b->len)
		b->len = JOBQ__CHUNK_HEAD;
	put32(b->data, JOBQ__CHUNK_MAGIC);
	put32(b->data + 4, b->count);
	return 0;
}

void jobq__chunk_buf_free(struct jobq__chunk_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int jobq__chunk_open(struct jobq__chunk_iter *it, const void *p, size_t len)
{
	memset(it, 0, sizeof(*it));
	if (len < JOBQ__CHUNK_HEAD || get32(p) != JOBQ__CHUNK_MAGIC)
		return -EBADMSG;
	it->p = p;
	it->len = len;
	it->off = JOBQ__CHUNK_HEAD;
	it->count = get32(it->p + 4);
	return 0;
}

int jobq__chunk_next(struct jobq__chunk_iter *it, int32_t *code,
		     jobq_obj_t *obj)
{
	const uint8_t *p = it->p + it->off;
	size_t left = it->len - it->off;
	uint32_t n;

	if (it->seen == it->count)
		return left ? -EBADMSG : 0;
	if (left < JOBQ__CHUNK_ITEM)
		return -EBADMSG;
	n = get32(p + 8);
	if (n > left - JOBQ__CHUNK_ITEM)
		return -EBADMSG;
	*code = (int32_t)get32(p);
	memset(obj, 0, sizeof(*obj));
	obj->type = get32(p + 4);
	obj->len = n;
	obj->data = (void *)(p + JOBQ__CHUNK_ITEM);
	obj->flags = JOBQ_OBJ_BORROWED;
	it->off += jobq__chunk_size(n);
	it->seen++;
	return 1;
}
