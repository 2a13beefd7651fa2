/* SPDX-License-Identifier: MIT */
/*
 * fuzz_parse.c - the command line's parsers and printers of what a user
 * or the store gives them: sizes (jobq_parse_size: --memory, --max-object,
 * --max-bytes), seconds (--timeout, --delay), integers, and the escaping
 * of names for the terminal and for JSON. Each is checked against its
 * rule: a size is digits, a suffix and nothing else, and its value is
 * exact; seconds are finite and not negative; escaped text holds no
 * control character and is UTF-8; a JSON string is always made.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* cli/jobq.c's, which the parsers here never reach. */
int cli_usage(const struct cli *c, const char *fmt, ...)
{
	(void)c;
	(void)fmt;
	return EXIT_USAGE;
}

/* The size rule, computed independently: 0 and *v, or -1. */
static int size_rule(const char *s, unsigned __int128 *v)
{
	unsigned __int128 n = 0;
	unsigned shift = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (unsigned)(*p++ - '0');
		if (n > UINT64_MAX)
			return -1;
	}
	switch (*p) {
	case 'k':
	case 'K':
		shift = 10;
		p++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		p++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		p++;
		break;
	case 't':
	case 'T':
		shift = 40;
		p++;
		break;
	}
	if (shift && (*p == 'i' || *p == 'I'))
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return -1;
	n <<= shift;
	if (n > UINT64_MAX)
		return -1;
	*v = n;
	return 0;
}

static void check_size(const char *s)
{
	unsigned __int128 want = 0;
	uint64_t got = 0;
	int rc = jobq_parse_size(s, &got), rule = size_rule(s, &want);

	if ((rc == 0) != (rule == 0))
		abort();
	if (!rc && got != want)
		abort();
}

static void check_numbers(const char *s)
{
	double d;
	int64_t i;
	uint64_t u;

	if (!cli_parse_seconds(s, &d)) {
		if (!isfinite(d) || d < 0)
			abort();
		if (jobq__timeout_ns(d) < -1)
			abort();
	}
	if (!cli_parse_u64(s, &u) && (*s < '0' || *s > '9'))
		abort();
	(void)cli_parse_i64(s, &i);
}

static void check_text(const char *s, size_t max)
{
	char out[CLI_TEXT_LEN];
	json_t *j;

	cli_text(s, max, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	/* Escaped: UTF-8 without a control character, the check a name
	 * in the store passes. */
	if (jobq__check_text(out, strlen(out)))
		abort();
	/* Short names come back whole when they needed no escaping. */
	if (strlen(s) <= max && !jobq__check_text(s, strlen(s)) &&
	    !strchr(s, '\\') && strcmp(out, s))
		abort();
	j = cli_json_str(s);
	if (!j || !json_string_value(j))
		abort();
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1 || size > 4096)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	/* The first byte picks how much of a name a message shows. */
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	check_size(s);
	check_numbers(s);
	check_text(s, data[0] % 2 ? CLI_QUOTE_MAX : JOBQ_KEY_MAX);
	free(s);
	return 0;
}
