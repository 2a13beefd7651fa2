/* SPDX-License-Identifier: MIT */
/*
 * util.c - error text, clocks, sizes and the instance directory rule.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const char *const jobq_errors[] = {
    [-(JOBQ_ENOMANAGER - JOBQ_EBASE)] = "no manager is running there",
    [-(JOBQ_EVERSION - JOBQ_EBASE)] =
	"client and manager speak different layout versions",
    [-(JOBQ_EMISMATCH - JOBQ_EBASE)] = "value is not the expected one",
    [-(JOBQ_EKIND - JOBQ_EBASE)] = "a lock of that name has another kind",
    [-(JOBQ_ENOTNUM - JOBQ_EBASE)] = "value is not a decimal integer",
    [-(JOBQ_ECLOSED - JOBQ_EBASE)] = "the manager closed the connection",
    [-(JOBQ_EFULL - JOBQ_EBASE)] = "the store is full",
    [-(JOBQ_ELIMIT - JOBQ_EBASE)] = "a table of the manager is full",
    [-(JOBQ_EQUOTA - JOBQ_EBASE)] = "client quota exceeded",
    [-(JOBQ_EJOBFAILED - JOBQ_EBASE)] = "the job failed",
    [-(JOBQ_EFORKED - JOBQ_EBASE)] =
	"the handle belongs to another process (use one opened after fork)",
    [-(JOBQ_ELOST - JOBQ_EBASE)] =
	"the manager restarted, or lost its database, and the lock was "
	"lost with it",
};

const char *jobq_strerror(int err)
{
	if (err <= JOBQ_EBASE && err > JOBQ_ELAST) {
		const char *s = jobq_errors[-(err - JOBQ_EBASE)];

		return s ? s : "unknown jobq error";
	}
	if (err < 0 && err > JOBQ_EBASE)
		return strerror(-err);
	return err == 0 ? "success" : "unknown error";
}

uint64_t jobq__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * JOBQ__NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static pid_t self_pid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_pid_read(void)
{
	self_pid = getpid();
}

static void self_pid_init(void)
{
	self_pid_read();
	pthread_atfork(NULL, NULL, self_pid_read);
}

pid_t jobq__pid(void)
{
	pthread_once(&self_once, self_pid_init);
	return self_pid;
}

uint64_t jobq__realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * JOBQ__NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

int64_t jobq__timeout_ns(double seconds)
{
	double ns;

	if (isnan(seconds))
		return JOBQ__TIMEOUT_BAD;
	if (seconds < 0)
		return -1;
	if (seconds == 0)
		return 0;
	ns = seconds * 1e9;
	if (ns >= 9.2e18)
		return -1;
	return ns < 1 ? 1 : (int64_t)ns;
}

int jobq_default_dir(char *buf, size_t len)
{
	const char *env = getenv("JOBQ_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s/jobq", env);
	else
		n = snprintf(buf, len, "/tmp/jobq-%u", (unsigned)getuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int jobq__resolve_dir(const char *dir, char *buf, size_t len)
{
	if (!dir || !*dir)
		return jobq_default_dir(buf, len);
	if (strlen(dir) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, dir);
	return 0;
}

int jobq_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	/* Accept "64K", "64KB", "64KiB" and a bare "B" suffix. */
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

void jobq__format_time(uint64_t realtime_ns, char *buf, size_t len)
{
	time_t secs = (time_t)(realtime_ns / JOBQ__NSEC_PER_SEC);
	unsigned usec = (unsigned)(realtime_ns % JOBQ__NSEC_PER_SEC / 1000);
	struct tm tm;
	char date[24];

	gmtime_r(&secs, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06uZ", date, usec);
}

void jobq__format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)bytes;

	/* Move up a unit when "%.1f" would round to 1024.0 in this one. */
	while (v >= 1023.95 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f %s", v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

size_t jobq__utf8_char(const void *s, size_t n, uint32_t *cp)
{
	const unsigned char *p = s;
	uint32_t c, min;
	size_t len;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80) {
		len = 1;
		min = 0;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0; /* a continuation byte, or 0xf8..0xff */
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past Unicode are
	 * not UTF-8 (RFC 3629). */
	if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	if (cp)
		*cp = c;
	return len;
}

int jobq__check_text(const void *s, size_t n)
{
	const unsigned char *p = s;

	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t k = jobq__utf8_char(p + i, n - i, &c);

		/* C0 (NUL included), DEL and C1 controls. */
		if (!k || c < 0x20 || (c >= 0x7f && c < 0xa0))
			return -EINVAL;
		i += k;
	}
	return 0;
}

int jobq__check_name(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > JOBQ_NAME_MAX)
		return -EINVAL;
	return jobq__check_text(name, n);
}

int jobq__grow(void **p, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap : first;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / size)
		return -ENOMEM;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}
