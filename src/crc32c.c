/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c - CRC-32C, by the SSE4.2 instruction where the CPU has one (three
 * streams at once over long buffers) and by slicing-by-8 tables elsewhere. Both
 * compute the same function; which one runs is decided by a run-time probe, so
 * one binary serves every x86-64 CPU. The journal checks its records with it
 * and the file.checksum job type offers it.
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

/*
 * Three streams at once. The crc32 instruction takes three cycles and
 * can start one a cycle, so one stream waits on itself two cycles in
 * three: long buffers are cut into three blocks of LONG (or SHORT)
 * bytes, each block's CRC computed beside the others from register 0,
 * and the three joined. The register is linear over GF(2): feeding data
 * D from register x gives zeros(x, |D|) ^ feed(0, D), where zeros(x, n)
 * is x fed n zero bytes. So the whole is zeros(zeros(a, n) ^ b, n) ^ c
 * for the blocks' registers a, b, c; zeros by a fixed n is a linear map
 * of 32 bits, kept as four tables of the map of each byte.
 */
#define LONG  1024u
#define SHORT 128u

static uint32_t zlong[4][256], zshort[4][256];
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static uint32_t zeros_hw(uint32_t x, size_t n)
{
	uint64_t c = x;

	for (; n >= 8; n -= 8)
		c = _mm_crc32_u64(c, 0);
	return (uint32_t)c;
}

/* t[k][b]: b << 8k fed @n zero bytes; from the single bits, by
 * linearity. */
static void zeros_table(uint32_t t[4][256], size_t n)
{
	for (int k = 0; k < 4; k++) {
		t[k][0] = 0;
		for (int bit = 0; bit < 8; bit++)
			t[k][1u << bit] = zeros_hw(1u << (8 * k + bit), n);
		for (unsigned b = 1; b < 256; b++) {
			unsigned low = b & -b;

			t[k][b] = t[k][low] ^ t[k][b ^ low];
		}
	}
}

static void zeros_tables(void)
{
	zeros_table(zlong, LONG);
	zeros_table(zshort, SHORT);
}

static uint32_t zeros(const uint32_t t[4][256], uint32_t x)
{
	return t[0][x & 0xff] ^ t[1][(x >> 8) & 0xff] ^ t[2][(x >> 16) & 0xff] ^
	       t[3][x >> 24];
}

/* Feeds the 3 * @n bytes at @p (8-byte aligned) into register @c, three
 * blocks of @n at once. */
__attribute__((target("sse4.2"))) static uint64_t
crc3(uint64_t c, const uint8_t *p, size_t n, const uint32_t t[4][256])
{
	uint64_t c1 = 0, c2 = 0;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t a, b, d;

		memcpy(&a, p + i, 8);
		memcpy(&b, p + n + i, 8);
		memcpy(&d, p + 2 * n + i, 8);
		c = _mm_crc32_u64(c, a);
		c1 = _mm_crc32_u64(c1, b);
		c2 = _mm_crc32_u64(c2, d);
	}
	c = zeros(t, (uint32_t)c) ^ (uint32_t)c1;
	return zeros(t, (uint32_t)c) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	if (len >= 3 * SHORT) {
		pthread_once(&zeros_once, zeros_tables);
		for (; len >= 3 * LONG; p += 3 * LONG, len -= 3 * LONG)
			c = crc3(c, p, LONG, zlong);
		for (; len >= 3 * SHORT; p += 3 * SHORT, len -= 3 * SHORT)
			c = crc3(c, p, SHORT, zshort);
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
