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

/*
 * jobq__timeout_ns - a public timeout in seconds (double) to the wire form:
 * < 0 forever (-1), 0 try once, else nanoseconds (at least 1).
 */
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

/* Validates a queue or lock name: 1..JOBQ_NAME_MAX bytes, no
 * control characters. Returns 0 or -EINVAL. */
int jobq__check_name(const char *name);

/*
 * jobq__prometheus - @st, the @nq queues and the @nw workers in the
 * Prometheus text format: a malloc'd NUL-terminated string (its length in
 * *len when not NULL), or NULL when out of memory.
 */
char *jobq__prometheus(const struct jobq_stats *st,
		       const struct jobq_queue_info *qs, size_t nq,
		       const struct jobq_worker_info *ws, size_t nw,
		       size_t *len);

/*
 * jobq__last_error_msg - why the calling thread's last jobq_open() failed,
 * in one line (the manager's message when it refused the client), or ""
 * when there is nothing to add to jobq_strerror(). Thread-local; valid
 * until the thread's next jobq_open().
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
