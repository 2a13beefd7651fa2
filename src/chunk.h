/* SPDX-License-Identifier: MIT */
/*
 * chunk.h - many objects in one: the args and the result of a chunk job
 * (jobq_map_chunked()), of type JOBQ_T_CHUNK.
 *
 * Layout, in the byte order of the host (a chunk never leaves it
 * unconverted: the store holds it as any other payload):
 *
 *   head  u32 magic "JQC1", u32 count
 *   count items, each
 *         i32 code (0 in args; in a result 0 or the item's failure,
 *                   whose payload is then its error text)
 *         u32 type, u32 len, len bytes of payload (no padding)
 *
 * The worker side parses chunks that any client may have submitted, so
 * jobq__chunk_next() checks every length against the bytes there are.
 */
#ifndef JOBQ_CHUNK_H
#define JOBQ_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include <jobq.h>

#define JOBQ__CHUNK_MAGIC 0x3143514au /* "JQC1" read as a little-endian u32 */
#define JOBQ__CHUNK_HEAD  8u
#define JOBQ__CHUNK_ITEM  12u /* an item's bytes before its payload */

/* A chunk being written: a malloc'd, growing buffer. */
struct jobq__chunk_buf {
	uint8_t *data;
	size_t len, cap;
	uint32_t count;
};

/* A chunk being read. */
struct jobq__chunk_iter {
	const uint8_t *p;
	size_t len, off;
	uint32_t count, seen;
};

/* jobq__chunk_add - append one item; 0 or -ENOMEM, -E2BIG (over 4 GiB). */
int jobq__chunk_add(struct jobq__chunk_buf *b, int32_t code, uint32_t type,
		    const void *data, size_t len);
/* jobq__chunk_finish - write the head; the chunk is b->data, b->len bytes
 * (never NULL after a successful add; -ENOMEM for an empty buffer that
 * cannot be made). */
int jobq__chunk_finish(struct jobq__chunk_buf *b);
void jobq__chunk_buf_free(struct jobq__chunk_buf *b);

/* jobq__chunk_size - the bytes an item of @len bytes of payload takes. */
static inline size_t jobq__chunk_size(size_t len)
{
	return JOBQ__CHUNK_ITEM + len;
}

/* jobq__chunk_open - start reading @len bytes at @p: 0, or -EBADMSG with
 * no head or a wrong magic. */
int jobq__chunk_open(struct jobq__chunk_iter *it, const void *p, size_t len);
/*
 * jobq__chunk_next - the next item: 1 with *code and *obj set (obj->data
 * points into the chunk: borrowed, and not NUL-terminated), 0 after the
 * last one, -EBADMSG when an item runs past the end or bytes are left
 * over after the count.
 */
int jobq__chunk_next(struct jobq__chunk_iter *it, int32_t *code,
		     jobq_obj_t *obj);

#endif
