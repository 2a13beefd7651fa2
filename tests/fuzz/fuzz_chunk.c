/* SPDX-License-Identifier: MIT */
/*
 * fuzz_chunk.c - the chunk reader (src/chunk.h), which a worker runs on
 * the args of any job marked JOBQ_T_CHUNK, whoever submitted it. Whatever
 * the bytes: every item it hands out lies inside them, it stops, and a
 * chunk it reads to the end without error is written back byte for byte
 * the same by the writer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobq__chunk_buf b = {0};
	struct jobq__chunk_iter it;
	jobq_obj_t o;
	int32_t code;
	int r;

	if (jobq__chunk_open(&it, data, size))
		return 0;
	while ((r = jobq__chunk_next(&it, &code, &o)) == 1) {
		const uint8_t *p = o.data;

		if (p < data || o.len > size || p + o.len > data + size)
			abort();
		if (jobq__chunk_add(&b, code, o.type, o.data, o.len))
			abort();
	}
	if (r == 0) {
		if (jobq__chunk_finish(&b) || b.len != size ||
		    memcmp(b.data, data, size))
			abort();
	}
	jobq__chunk_buf_free(&b);
	return 0;
}
