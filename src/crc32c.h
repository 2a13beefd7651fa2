/* SPDX-License-Identifier: MIT */
/*
 * crc32c.h - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the
 * checksum of the journal's records and of the crc32c built-in job type.
 */
#ifndef JOBQ_CRC32C_H
#define JOBQ_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * jobq__crc32c - extend @crc (0 to start) over @len bytes at @p and return
 * the new value; jobq__crc32c(jobq__crc32c(0, a, n), b, m) equals the CRC
 * of a and b together. Uses the SSE4.2 crc32 instruction when the CPU has
 * it, else slicing-by-8 tables.
 * "123456789" gives 0xe3069283.
 */
uint32_t jobq__crc32c(uint32_t crc, const void *p, size_t len);

/* The table version alone, for tests that compare the two. */
uint32_t jobq__crc32c_sw(uint32_t crc, const void *p, size_t len);

/* Whether jobq__crc32c() uses the CPU instruction. */
bool jobq__crc32c_hw(void);

#endif
