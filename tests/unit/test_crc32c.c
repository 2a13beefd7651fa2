/* SPDX-License-Identifier: MIT */
/*
 * test_crc32c.c - CRC-32C: the published check value, and the instruction
 * and the table agreeing at every length and alignment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

static void test_check_value(void **state)
{
	assert_int_equal(jobq__crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(jobq__crc32c_sw(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(jobq__crc32c(0, "", 0), 0);
	/* 32 zero bytes, from RFC 3720's examples. */
	{
		uint8_t z[32] = {0};

		assert_int_equal(jobq__crc32c(0, z, sizeof(z)), 0x8a9136aau);
	}
}

static void test_incremental_and_aligned(void **state)
{
	/* Past 3 * 1024 + 3 * 128 bytes: the three-stream paths, long
	 * and short, and what is left after them. */
	static uint8_t buf[8200];
	uint64_t x = 88172645463325252ull;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(buf);
		     len += len < 400 ? 7 : 61) {
			uint32_t a = jobq__crc32c(0, buf + off, len);
			uint32_t b = jobq__crc32c_sw(0, buf + off, len);
			size_t h = len / 3;

			assert_int_equal(a, b);
			assert_int_equal(
			    jobq__crc32c(jobq__crc32c(0, buf + off, h),
					 buf + off + h, len - h),
			    a);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_value),
	    cmocka_unit_test(test_incremental_and_aligned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
