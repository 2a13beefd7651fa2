/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring.c - the manager's validation of a ring entry: the input is one
 * struct jobq_sqe followed by the client's arena. The entry goes through
 * what jobqd does before an op reads a byte (the arena reference check,
 * jobq__arena_ref_ok) and then through the name checks of the ops that
 * create names (queues, locks, keys, job types: jobq__check_text). The
 * checks are compared with the same rules computed in 128-bit arithmetic,
 * and every byte they accept is read, so that AddressSanitizer sees any
 * reference that leaves the arena.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Where the arena sits in the region, as jobqd lays it out: after the
 * header and rings, page-aligned. */
#define ARENA_OFF 12288u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const uint8_t *p, size_t n, size_t max)
{
	int ok;

	if (n < 1 || n > max)
		return;
	ok = jobq__check_text(p, n) == 0;
	/* What is accepted is UTF-8 without a control character: never a
	 * byte below 0x20 or DEL, never a lone continuation byte first. */
	for (size_t i = 0; ok && i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			abort();
	if (ok && (p[0] & 0xc0) == 0x80)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobq_sqe s;
	const uint8_t *arena;
	uint64_t arena_size;
	unsigned __int128 end, lim;
	bool ok;

	if (size < sizeof(s))
		return 0;
	memcpy(&s, data, sizeof(s));
	arena = data + sizeof(s);
	arena_size = size - sizeof(s);
	/* As jobqd's process_sq: an empty payload names no bytes. */
	if (s.arena_len == 0)
		s.arena_off = ARENA_OFF;

	ok =
	    jobq__arena_ref_ok(s.arena_off, s.arena_len, ARENA_OFF, arena_size);
	end = (unsigned __int128)s.arena_off + s.arena_len;
	lim = (unsigned __int128)ARENA_OFF + arena_size;
	if (ok != (s.arena_off >= ARENA_OFF && end <= lim))
		abort();
	if (!ok)
		return 0;

	{
		const uint8_t *p = arena + (s.arena_off - ARENA_OFF);
		uint32_t len = s.arena_len;
		volatile uint8_t sink = 0;

		for (uint32_t i = 0; i < len; i++)
			sink ^= p[i];
		(void)sink;
		switch (s.op) {
		case JOBQ_OP_Q_OPEN:
		case JOBQ_OP_L_OPEN:
			check_name(p, len, JOBQ_NAME_MAX);
			break;
		case JOBQ_OP_KV_SET:
		case JOBQ_OP_KV_CAS:
			/* The key is the first arg0 bytes. */
			if (s.arg0 <= len)
				check_name(p, (size_t)s.arg0, JOBQ_KEY_MAX);
			break;
		case JOBQ_OP_KV_DEL:
		case JOBQ_OP_KV_INCR:
			check_name(p, len, JOBQ_KEY_MAX);
			break;
		default:
			check_name(p, len, JOBQ_TYPE_MAX);
			break;
		}
	}
	return 0;
}
