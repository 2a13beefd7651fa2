/* SPDX-License-Identifier: MIT */
/*
 * test_chunk.c - chunks (many objects in one, jobq_map_chunked()): what is
 * written reads back the same, and every cut or damaged chunk is refused
 * without reading past its end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunk.h"

static const char *const payloads[] = {"", "a", "hello", "0123456789abcdef"};
#define NPAY (sizeof(payloads) / sizeof(payloads[0]))

static void build(struct jobq__chunk_buf *b)
{
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < NPAY; i++)
		assert_int_equal(jobq__chunk_add(b, -(int32_t)i,
						 300 + (uint32_t)i, payloads[i],
						 strlen(payloads[i])),
				 0);
	assert_int_equal(jobq__chunk_finish(b), 0);
}

static void test_round_trip(void **state)
{
	struct jobq__chunk_buf b;
	struct jobq__chunk_iter it;
	jobq_obj_t o;
	int32_t code;
	size_t want = JOBQ__CHUNK_HEAD;

	(void)state;
	build(&b);
	for (size_t i = 0; i < NPAY; i++)
		want += jobq__chunk_size(strlen(payloads[i]));
	assert_int_equal(b.len, want);
	assert_int_equal(jobq__chunk_open(&it, b.data, b.len), 0);
	assert_int_equal(it.count, NPAY);
	for (size_t i = 0; i < NPAY; i++) {
		assert_int_equal(jobq__chunk_next(&it, &code, &o), 1);
		assert_int_equal(code, -(int32_t)i);
		assert_int_equal(o.type, 300 + i);
		assert_int_equal(o.len, strlen(payloads[i]));
		assert_memory_equal(o.data, payloads[i], o.len);
		assert_true(o.flags & JOBQ_OBJ_BORROWED);
	}
	assert_int_equal(jobq__chunk_next(&it, &code, &o), 0);
	assert_int_equal(jobq__chunk_next(&it, &code, &o), 0);
	jobq__chunk_buf_free(&b);

	/* An empty chunk is a head alone. */
	memset(&b, 0, sizeof(b));
	assert_int_equal(jobq__chunk_finish(&b), 0);
	assert_int_equal(b.len, JOBQ__CHUNK_HEAD);
	assert_int_equal(jobq__chunk_open(&it, b.data, b.len), 0);
	assert_int_equal(jobq__chunk_next(&it, &code, &o), 0);
	jobq__chunk_buf_free(&b);
}

/* Reads a chunk to its end: 0 when every item was there, else the error. */
static int read_all(const void *p, size_t len)
{
	struct jobq__chunk_iter it;
	jobq_obj_t o;
	int32_t code;
	int r = jobq__chunk_open(&it, p, len);

	if (r)
		return r;
	while ((r = jobq__chunk_next(&it, &code, &o)) == 1)
		assert_true((const uint8_t *)o.data + o.len <=
			    (const uint8_t *)p + len);
	return r;
}

/* Each cut is refused; a copy of exactly that many bytes on the heap lets
 * ASan see any read past the end. */
static void test_every_cut(void **state)
{
	struct jobq__chunk_buf b;

	(void)state;
	build(&b);
	assert_int_equal(read_all(b.data, b.len), 0);
	for (size_t cut = 0; cut < b.len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);

		memcpy(p, b.data, cut);
		assert_int_equal(read_all(p, cut), -EBADMSG);
		free(p);
	}
	jobq__chunk_buf_free(&b);
}

static void test_damage(void **state)
{
	struct jobq__chunk_buf b;
	uint32_t v;
	uint8_t *p;

	(void)state;
	build(&b);
	p = malloc(b.len + 1);

	/* A wrong magic. */
	memcpy(p, b.data, b.len);
	p[0] ^= 1;
	assert_int_equal(read_all(p, b.len), -EBADMSG);
	/* A count one too high, one too low (bytes left over). */
	memcpy(p, b.data, b.len);
	v = NPAY + 1;
	memcpy(p + 4, &v, 4);
	assert_int_equal(read_all(p, b.len), -EBADMSG);
	v = NPAY - 1;
	memcpy(p + 4, &v, 4);
	assert_int_equal(read_all(p, b.len), -EBADMSG);
	/* An item's length past the end, and the largest length there is. */
	memcpy(p, b.data, b.len);
	v = (uint32_t)b.len;
	memcpy(p + JOBQ__CHUNK_HEAD + 8, &v, 4);
	assert_int_equal(read_all(p, b.len), -EBADMSG);
	v = UINT32_MAX;
	memcpy(p + JOBQ__CHUNK_HEAD + 8, &v, 4);
	assert_int_equal(read_all(p, b.len), -EBADMSG);
	/* A byte too many. */
	memcpy(p, b.data, b.len);
	p[b.len] = 0;
	assert_int_equal(read_all(p, b.len + 1), -EBADMSG);
	free(p);
	jobq__chunk_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_every_cut),
	    cmocka_unit_test(test_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
