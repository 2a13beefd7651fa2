/* SPDX-License-Identifier: MIT */
/*
 * builtin_impl.h - shared by the handlers of the built-in job types
 * (builtin_*.c). Each handler's arg is the worker's handle (jobq_t *): it
 * gives the instance directory and the largest result allowed.
 */
#ifndef JOBQ_BUILTIN_IMPL_H
#define JOBQ_BUILTIN_IMPL_H

#include "builtin.h"

/* IO buffers of the handlers: on the heap, never on a fiber's stack. */
#define JOBQ__BUF_SIZE (256 * 1024)

/*
 * jobq__bargs - the job's args as a JSON object (a new reference), or
 * NULL after failing the job for good with a message naming @type.
 */
json_t *jobq__bargs(jobq_job_t *job, const char *type);

/*
 * jobq__bstr - the string member @key of @args into *out (and its length
 * into *len when not NULL; when NULL, a NUL byte inside is refused).
 * A missing member gives NULL, or fails the job when @required. Returns 0,
 * or what jobq_job_fail() returns after failing the job for good.
 */
int jobq__bstr(jobq_job_t *job, json_t *args, const char *type, const char *key,
	       bool required, const char **out, size_t *len);

/* jobq__bu64 - the whole number >= 0 at @key, @dflt when absent. 0, or
 * the job failed for good. */
int jobq__bu64(jobq_job_t *job, json_t *args, const char *type, const char *key,
	       uint64_t dflt, uint64_t *out);

/* jobq__btimeout - "timeout" in seconds (> 0), -1 when absent. */
int jobq__btimeout(jobq_job_t *job, json_t *args, const char *type,
		   double *out);

/* A deadline for a whole exchange, as timeouts for each IO call. */
struct jobq__deadline {
	double timeout; /* as given; < 0: none */
	double at;	/* CLOCK_MONOTONIC seconds; < 0: none */
};

void jobq__deadline_init(struct jobq__deadline *d, double timeout);
/* The timeout for the next IO call: -1 (none), or what is left (> 0). */
double jobq__deadline_left(const struct jobq__deadline *d);

/*
 * A wait cut into slices, for the waits that may be long (a receive, a
 * command's exit): between slices the job looks whether a cancel came
 * through jobq_job_cancelled(), which works whether or not the worker
 * also cancels the job's fiber. jobq__slice() is the timeout for the next
 * try; after a try returned -ETIMEDOUT, jobq__slice_over() says whether
 * the wait is over: -ETIMEDOUT (the deadline passed), -ECANCELED, or 0
 * (try again).
 */
#define JOBQ__SLICE 0.25
double jobq__slice(const struct jobq__deadline *d);
int jobq__slice_over(jobq_job_t *job, const struct jobq__deadline *d);

/*
 * jobq__json_set_bytes - set @name on @obj to the bytes as a string when
 * they are UTF-8 without NUL, else "<name>_base64" to their base64.
 * Returns 0 or -ENOMEM.
 */
int jobq__json_set_bytes(json_t *obj, const char *name, const void *p,
			 size_t len);

/* jobq__succeed_json - the job succeeds with @result (reference taken).
 * Returns what jobq_job_succeed() returns, -ENOMEM for a NULL result. */
int jobq__succeed_json(jobq_job_t *job, json_t *result);

/* The handlers. */
int jobq__exec_handler(jobq_job_t *job, void *arg);
int jobq__file_copy_handler(jobq_job_t *job, void *arg);
int jobq__file_read_handler(jobq_job_t *job, void *arg);
int jobq__file_write_handler(jobq_job_t *job, void *arg);
int jobq__file_checksum_handler(jobq_job_t *job, void *arg);
int jobq__net_request_handler(jobq_job_t *job, void *arg);
int jobq__http_get_handler(jobq_job_t *job, void *arg);

/*
 * jobq__exec_sweep_logs - remove the exec logs of jobs the manager no
 * longer has (expired records). Cheap enough to run at a worker's start
 * and now and then; never fails (a log it cannot remove stays).
 */
void jobq__exec_sweep_logs(jobq_t *q);

#endif
