/* SPDX-License-Identifier: MIT */
/*
 * builtin_common.c - what the built-in job types share: reading their
 * args, putting bytes into a JSON result, deadlines, and the table that
 * registers them on a worker.
 *
 * Every handler runs as a fiber of its worker's loop, so its IO goes
 * through the jobq_io_*() calls and suspends only that job. A handler
 * keeps big buffers on the heap, not on its (small) fiber stack, and
 * closes its descriptors with close(2), not jobq_io_close(): once the
 * job's fiber is cancelled every IO call of it returns -ECANCELED without
 * doing anything, and a close that did not happen is a leaked descriptor.
 *
 * The failure rule of every built-in type: a failure is a failed job
 * whose error names the type, the object (path, address, URL, command)
 * and the cause (the errno text, the HTTP status, what was malformed).
 * Bad args and causes a retry cannot cure (a missing file, a refused
 * connection to a unix socket path that does not exist) are final; causes
 * that may pass (a refused TCP connection, a timeout, a server error)
 * leave the retry policy of the job to decide. Nothing a job does takes
 * its worker down.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "builtin_impl.h"

json_t *jobq__bargs(jobq_job_t *job, const char *type)
{
	const jobq_obj_t *a = jobq_job_args(job);
	json_error_t e;
	json_t *v;

	v = json_loadb(a->data ? a->data : "", a->len, 0, &e);
	if (!v) {
		jobq_job_fail(job, 1, "%s: args are not JSON (%s at %d:%d)",
			      type, e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(v)) {
		jobq_job_fail(job, 1, "%s: args must be a JSON object", type);
		json_decref(v);
		return NULL;
	}
	return v;
}

int jobq__bstr(jobq_job_t *job, json_t *args, const char *type, const char *key,
	       bool required, const char **out, size_t *len)
{
	json_t *v = json_object_get(args, key);

	*out = NULL;
	if (len)
		*len = 0;
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		return jobq_job_fail(job, 1, "%s: args need \"%s\", a string",
				     type, key);
	}
	if (!json_is_string(v))
		return jobq_job_fail(job, 1, "%s: \"%s\" must be a string",
				     type, key);
	*out = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	else if (strlen(*out) != json_string_length(v))
		return jobq_job_fail(job, 1, "%s: \"%s\" has a NUL byte", type,
				     key);
	return 0;
}

int jobq__bu64(jobq_job_t *job, json_t *args, const char *type, const char *key,
	       uint64_t dflt, uint64_t *out)
{
	json_t *v = json_object_get(args, key);

	*out = dflt;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return jobq_job_fail(job, 1,
				     "%s: \"%s\" must be a whole number >= 0",
				     type, key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int jobq__btimeout(jobq_job_t *job, json_t *args, const char *type, double *out)
{
	json_t *v = json_object_get(args, "timeout");

	*out = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || !(json_number_value(v) > 0) ||
	    !isfinite(json_number_value(v)))
		return jobq_job_fail(job, 1,
				     "%s: \"timeout\" must be a number of "
				     "seconds above 0",
				     type);
	*out = json_number_value(v);
	return 0;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void jobq__deadline_init(struct jobq__deadline *d, double timeout)
{
	d->timeout = timeout;
	d->at = timeout < 0 ? -1 : mono() + timeout;
}

double jobq__deadline_left(const struct jobq__deadline *d)
{
	double left;

	if (d->at < 0)
		return -1;
	left = d->at - mono();
	/* 0 would mean "try once": a deadline that passed is a timeout,
	 * which the smallest positive wait gives. */
	return left > 1e-6 ? left : 1e-6;
}

double jobq__slice(const struct jobq__deadline *d)
{
	double left = jobq__deadline_left(d);

	return left < 0 || left > JOBQ__SLICE ? JOBQ__SLICE : left;
}

int jobq__slice_over(jobq_job_t *job, const struct jobq__deadline *d)
{
	if (jobq_job_cancelled(job))
		return -ECANCELED;
	if (d->at >= 0 && mono() >= d->at)
		return -ETIMEDOUT;
	return 0;
}

/* Whether @p holds valid UTF-8 with no NUL byte (jansson refuses both in
 * a string made from bytes). */
static bool utf8_ok(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false; /* cut short */
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static char *base64(const unsigned char *p, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

int jobq__json_set_bytes(json_t *obj, const char *name, const void *p,
			 size_t len)
{
	char key[64];
	char *b;
	int rc;

	if (utf8_ok(p, len))
		return json_object_set_new(obj, name, json_stringn(p, len))
			   ? -ENOMEM
			   : 0;
	b = base64(p, len);
	if (!b)
		return -ENOMEM;
	snprintf(key, sizeof(key), "%s_base64", name);
	rc = json_object_set_new(obj, key, json_string(b)) ? -ENOMEM : 0;
	free(b);
	return rc;
}

int jobq__succeed_json(jobq_job_t *job, json_t *result)
{
	char *s;
	int rc;

	if (!result)
		return -ENOMEM;
	s = json_dumps(result, JSON_COMPACT);
	json_decref(result);
	if (!s)
		return -ENOMEM;
	rc = jobq_job_succeed(job, JOBQ_T_JSON, s, strlen(s));
	free(s);
	return rc;
}

bool jobq__type_listed(const char *list, const char *type)
{
	size_t n = strlen(type);

	if (!list)
		return true;
	for (const char *p = list; p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && !memcmp(p, type, n))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

static const struct {
	const char *type;
	jobq_handler fn;
} io_types[] = {
    {"exec", jobq__exec_handler},
    {"file.copy", jobq__file_copy_handler},
    {"file.read", jobq__file_read_handler},
    {"file.write", jobq__file_write_handler},
    {"file.checksum", jobq__file_checksum_handler},
    {"net.request", jobq__net_request_handler},
    {"http.get", jobq__http_get_handler},
};

bool jobq__builtin_io_type(const char *type)
{
	for (size_t i = 0; i < sizeof(io_types) / sizeof(io_types[0]); i++)
		if (!strcmp(io_types[i].type, type))
			return true;
	return false;
}

int jobq__builtins_register(jobq_worker_t *w, jobq_t *q, const char *only)
{
	struct sigaction old;
	int err, n = 0;

	for (size_t i = 0; i < sizeof(io_types) / sizeof(io_types[0]); i++) {
		if (!jobq__type_listed(only, io_types[i].type))
			continue;
		err =
		    jobq_worker_handle(w, io_types[i].type, io_types[i].fn, q);
		if (err)
			return err;
		n++;
	}
	if (!n)
		return 0;
	/* Orphans of exec jobs' process groups come to this process, which
	 * reaps them (builtin_exec.c). */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return -errno;
	/* A command that does not read its stdin closes the pipe, and a
	 * write to it raises SIGPIPE in whichever thread issued it: by
	 * default that kills the worker. A handler the program set stays. */
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	jobq__exec_sweep_logs(q);
	return 0;
}
