/* SPDX-License-Identifier: MIT */
/*
 * internal.h - helpers shared by libjobq, jobqd and the jobq CLI.
 * Nothing here is exported from the shared library (jobq__ prefix).
 */
#ifndef JOBQ_INTERNAL_H
#define JOBQ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobq.h"
#include "proto.h"

#define JOBQ__NSEC_PER_SEC 1000000000ULL

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t jobq__now_ns(void);
uint64_t jobq__realtime_ns(void);
/* getpid() without a system call: the value is kept, and a fork() child
 * (pthread_atfork) takes its own. The request path checks it on every
 * submission, to refuse a handle inherited across fork(). */
pid_t jobq__pid(void);

/*
 * jobq__timeout_ns - a public timeout in seconds (double) to the wire form:
 * < 0 forever (-1), 0 try once, else nanoseconds (at least 1); NaN, which
 * is no timeout at all, JOBQ__TIMEOUT_BAD, which jobq__submit() refuses
 * with -EINVAL (a caller that uses the value itself checks for it).
 */
#define JOBQ__TIMEOUT_BAD INT64_MIN
int64_t jobq__timeout_ns(double seconds);

/*
 * jobq__resolve_dir - the instance directory: @dir when not NULL, else
 * jobq_default_dir(). Returns 0 or -ENAMETOOLONG.
 */
int jobq__resolve_dir(const char *dir, char *buf, size_t len);

/*
 * jobq__format_time - RFC 3339 UTC with microseconds,
 * "2026-11-25T13:54:05.123456Z", from CLOCK_REALTIME nanoseconds.
 * @buf must hold 32 bytes.
 */
void jobq__format_time(uint64_t realtime_ns, char *buf, size_t len);

/*
 * jobq__format_size - "16 MiB", "512 KiB", "100 B": a byte count for
 * messages. @buf must hold 32 bytes.
 */
void jobq__format_size(uint64_t bytes, char *buf, size_t len);

/*
 * jobq__reserved_zero - whether the @n reserved words of a public options
 * struct are all 0. They are room to grow: a caller that sets one asks for
 * something this version does not know, and gets -EINVAL rather than a
 * silent default.
 */
static inline bool jobq__reserved_zero(const uint64_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (w[i])
			return false;
	return true;
}

/*
 * jobq__utf8_char - the length (1..4) of the UTF-8 character that @s (@n
 * bytes) starts with, its code point in *cp (may be NULL); 0 when @s does
 * not start with a well-formed one (truncated, overlong, a surrogate,
 * beyond U+10FFFF) or @n is 0.
 */
size_t jobq__utf8_char(const void *s, size_t n, uint32_t *cp);

/*
 * jobq__check_text - whether @n bytes at @s are a name the store accepts:
 * valid UTF-8 without control characters (C0 and NUL, DEL, C1). Names of
 * queues, locks, keys and job types must be, so that every listing and
 * every JSON output can show them. Used by the library and by jobqd,
 * which checks again what a raw client sends. Returns 0 or -EINVAL.
 */
int jobq__check_text(const void *s, size_t n);

/*
 * jobq__obj_set - make *o a copy of @len bytes at @data, of @type, as every
 * object the library hands out: malloc'd, NUL-terminated one byte past
 * @len, freed with jobq_obj_free(). Returns 0, or -ENOMEM with *o as it
 * was.
 */
int jobq__obj_set(jobq_obj_t *o, uint32_t type, const void *data, size_t len);

/*
 * jobq__grow - make the array at *p, of *cap elements of @size bytes, hold
 * at least @need: its capacity doubles, from *cap or from @first when it
 * is 0, until it does. Returns 0, or -ENOMEM (no memory, or a size past
 * SIZE_MAX) with *p and *cap as they were.
 */
int jobq__grow(void **p, size_t *cap, size_t need, size_t size, size_t first);

/* Validates a queue or lock name: 1..JOBQ_NAME_MAX bytes of
 * jobq__check_text(). Returns 0 or -EINVAL. */
int jobq__check_name(const char *name);

/*
 * jobq__prometheus - the counters, queues and workers of @q's manager,
 * read from the store, in the Prometheus text format: a malloc'd
 * NUL-terminated string in *out (its length in *len when not NULL).
 * Returns 0 or -errno (-ENOMEM, or what the store reads returned).
 */
int jobq__prometheus(jobq_t *q, char **out, size_t *len);

/*
 * jobq__last_error_msg - why the calling thread's last jobq_open() failed,
 * in one line (the manager's message when it refused the client), or ""
 * when there is nothing to add to jobq_strerror(); after a request that
 * failed with JOBQ_EQUOTA, which quota it met. Thread-local; valid until
 * the thread's next jobq_open() or quota refusal.
 */
const char *jobq__last_error_msg(void);

/*
 * jobq__worker_main - the built-in worker process, which jobqd runs as
 * "jobqd --as-worker --dir DIR [--concurrency N] [--daemon]": serves echo,
 * sleep and fail until SIGTERM/SIGINT or the manager's stop notice.
 * Returns the process exit status: 0, 1 (error, said on stderr), 2 (usage).
 */
int jobq__worker_main(int argc, char **argv);

#endif
