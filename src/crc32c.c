/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c - CRC-32C, by the SSE4.2 instruction where the CPU has one and
 * by slicing-by-8 tables elsewhere. Both compute the same function; which
 * one runs is decided by a run-time probe, so one binary serves every
 * x86-64 CPU. The journal checks its records with it and the
 * file.checksum job type offers it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */

/*
 * table[k][b]: the CRC of byte b followed by k zero bytes, so eight bytes
 * are folded per step. Built once, on first use.
 */
static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void crc32c_tables(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int i = 0; i < 8; i++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		table[0][b] = c;
	}
	for (unsigned b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] >> 8) ^
				      table[0][table[k - 1][b] & 0xff];
}

uint32_t jobq__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&table_once, crc32c_tables);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo =
		    crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
			   (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
			      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
		      table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		      table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

bool jobq__crc32c_hw(void)
{
	return __builtin_cpu_supports("sse4.2");
}

uint32_t jobq__crc32c(uint32_t crc, const void *p, size_t len)
{
	/* __builtin_cpu_supports reads a table filled before main(). */
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_sse42(crc, p, len);
	return jobq__crc32c_sw(crc, p, len);
}
#else
bool jobq__crc32c_hw(void)
{
	return false;
}

uint32_t jobq__crc32c(uint32_t crc, const void *p, size_t len)
{
	return jobq__crc32c_sw(crc, p, len);
}
#endif
