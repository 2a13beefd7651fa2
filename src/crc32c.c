/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c - CRC-32C, by the SSE4.2 instruction where the CPU has one and
 * by a byte table elsewhere. Both compute the same function; which one
 * runs is decided once, by a run-time probe, so one binary serves every
 * x86-64 CPU.
 */
#include <stdatomic.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82f63b78u /* 0x1EDC6F41 bit-reversed */

static uint32_t table[256];
static atomic_int table_ready;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
	/* Filling twice from two threads writes the same values. */
	atomic_store_explicit(&table_ready, 1, memory_order_release);
}

uint32_t jobq__crc32c_sw(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;

	if (!atomic_load_explicit(&table_ready, memory_order_acquire))
		table_init();
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)b & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *b++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, b, 8);
		c = _mm_crc32_u64(c, w);
		b += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *b++);
	return ~(uint32_t)c;
}

/* 0: not probed, 1: table, 2: instruction. */
static atomic_int impl;

uint32_t jobq__crc32c(uint32_t crc, const void *p, size_t len)
{
	int i = atomic_load_explicit(&impl, memory_order_relaxed);

	if (!i) {
		__builtin_cpu_init();
		i = __builtin_cpu_supports("sse4.2") ? 2 : 1;
		atomic_store_explicit(&impl, i, memory_order_relaxed);
	}
	return i == 2 ? crc_hw(crc, p, len) : jobq__crc32c_sw(crc, p, len);
}
#else
uint32_t jobq__crc32c(uint32_t crc, const void *p, size_t len)
{
	return jobq__crc32c_sw(crc, p, len);
}
#endif
