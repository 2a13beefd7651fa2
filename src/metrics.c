/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - a manager's counters, queues and workers in the Prometheus
 * text exposition format (version 0.0.4), for `jobq stats --prometheus`.
 *
 * It reads what it formats from the store (jobq_stats(), jobq_queues(),
 * jobq_workers()), so `jobq stats --prometheus` and jobqd --http's
 * /metrics, both clients of the manager, serve the same text from one
 * place. Every family gets one HELP and one TYPE
 * line before its samples, as the format asks. Label values are escaped
 * (backslash, double quote, newline), and bytes that are not UTF-8 are
 * replaced by U+FFFD, since the format is UTF-8 and a queue name in the
 * store is whatever its creator sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The length of the valid UTF-8 sequence at @s (of @n bytes), else 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static void put_label_value(FILE *f, const char *v)
{
	const unsigned char *s = (const unsigned char *)v;
	size_t n = strlen(v);

	while (n) {
		size_t k = utf8_len(s, n);

		if (!k) {
			fputs("\xef\xbf\xbd", f); /* U+FFFD */
			k = 1;
		} else if (*s == '\\') {
			fputs("\\\\", f);
		} else if (*s == '"') {
			fputs("\\\"", f);
		} else if (*s == '\n') {
			fputs("\\n", f);
		} else {
			fwrite(s, 1, k, f);
		}
		s += k;
		n -= k;
	}
}

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample, with one label or none (@label NULL). */
static void sample(FILE *f, const char *name, const char *label,
		   const char *value, uint64_t v)
{
	fputs(name, f);
	if (label) {
		fprintf(f, "{%s=\"", label);
		put_label_value(f, value);
		fputs("\"}", f);
	}
	fprintf(f, " %" PRIu64 "\n", v);
}

static void single(FILE *f, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	family(f, name, type, help);
	sample(f, name, NULL, NULL, v);
}

static const char *const state_names[] = {
    NULL,	 "waiting", "delayed", "ready",	    "running",
    "succeeded", "failed",  "dead",    "cancelled",
};

/* A family with one sample per queue, @field of each. */
#define QUEUE_FAMILY(f, qs, nq, metric, type, help, field)                     \
	do {                                                                   \
		family(f, metric, type, help);                                 \
		for (size_t i_ = 0; i_ < (nq); i_++)                           \
			sample(f, metric, "queue", (qs)[i_].name,              \
			       (uint64_t)(qs)[i_].field);                      \
	} while (0)

/* A family with one sample per worker, labelled by its pid. */
#define WORKER_FAMILY(f, ws, nw, metric, type, help, field)                    \
	do {                                                                   \
		family(f, metric, type, help);                                 \
		for (size_t i_ = 0; i_ < (nw); i_++) {                         \
			char pid_[16];                                         \
			snprintf(pid_, sizeof(pid_), "%d", (int)(ws)[i_].pid); \
			sample(f, metric, "pid", pid_,                         \
			       (uint64_t)(ws)[i_].field);                      \
		}                                                              \
	} while (0)

static char *format(const struct jobq_stats *st,
		    const struct jobq_queue_info *qs, size_t nq,
		    const struct jobq_worker_info *ws, size_t nw, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	family(f, "jobq_info", "gauge", "Version of the manager.");
	fprintf(f, "jobq_info{version=\"%s\"} 1\n", JOBQ_VERSION_STRING);
	single(f, "jobq_manager_pid", "gauge", "Process id of jobqd.",
	       (uint64_t)st->manager_pid);
	single(f, "jobq_start_time_seconds", "gauge",
	       "When jobqd started, in seconds since the epoch.",
	       st->started_ns / 1000000000u);
	single(f, "jobq_memory_bytes", "gauge",
	       "Bytes of the store's heap for objects.", st->memory_total);
	single(f, "jobq_memory_used_bytes", "gauge",
	       "Bytes of the heap in use, block overhead included.",
	       st->memory_used);
	single(f, "jobq_max_object_bytes", "gauge",
	       "The largest object the manager accepts.", st->max_object);
	single(f, "jobq_clients", "gauge", "Clients connected now.",
	       st->clients);
	single(f, "jobq_clients_total", "counter",
	       "Clients that ever connected.", st->clients_total);
	single(f, "jobq_clients_died_total", "counter",
	       "Clients that went away without closing.", st->clients_died);
	single(f, "jobq_queues", "gauge", "Queues that exist.", st->queues);
	single(f, "jobq_locks", "gauge", "Locks that exist.", st->locks);
	single(f, "jobq_keys", "gauge", "Keys in the key/value store.",
	       st->keys);
	single(f, "jobq_puts_total", "counter", "Objects put on queues.",
	       st->puts);
	single(f, "jobq_gets_total", "counter", "Objects taken off queues.",
	       st->gets);
	single(f, "jobq_requeued_total", "counter",
	       "Objects put back after the client taking them died.",
	       st->requeued);
	single(f, "jobq_kv_sets_total", "counter", "Key/value sets.",
	       st->kv_sets);
	single(f, "jobq_kv_dels_total", "counter", "Key/value deletes.",
	       st->kv_dels);
	single(f, "jobq_lock_acquires_total", "counter", "Locks taken.",
	       st->lock_acquires);
	single(f, "jobq_lock_timeouts_total", "counter",
	       "Lock waits that timed out.", st->lock_timeouts);
	single(f, "jobq_deadlocks_refused_total", "counter",
	       "Lock requests refused because they would deadlock.",
	       st->deadlocks);
	single(f, "jobq_bad_requests_total", "counter",
	       "Ring entries refused as malformed.", st->bad_requests);
	single(f, "jobq_jobs_submitted_total", "counter", "Jobs submitted.",
	       st->submitted);
	single(f, "jobq_jobs_succeeded_total", "counter",
	       "Jobs that succeeded.", st->done);
	single(f, "jobq_jobs_failed_total", "counter",
	       "Job attempts that failed.", st->failed);
	single(f, "jobq_jobs_retried_total", "counter",
	       "Job attempts scheduled again after a failure.", st->retried);
	single(f, "jobq_jobs_dead_total", "counter",
	       "Jobs that failed for good.", st->dead);
	single(f, "jobq_journal_bytes", "gauge",
	       "Bytes of the journal file past its snapshot.",
	       st->journal_size);
	single(f, "jobq_journal_snapshot_bytes", "gauge",
	       "Bytes of the journal's latest snapshot.",
	       st->journal_snapshot_size);
	single(f, "jobq_journal_failing", "gauge",
	       "1 while journal writes fail and changes are refused.",
	       st->journal_error != 0);
	single(f, "jobq_journal_errors_total", "counter",
	       "Failed journal writes, syncs and snapshots.",
	       st->journal_errors);
	single(f, "jobq_journal_snapshots_total", "counter",
	       "Snapshots written since the manager started.",
	       st->journal_snapshots);
	single(f, "jobq_journal_last_fsync_seconds", "gauge",
	       "When the journal was last synced (0: never), Unix time.",
	       st->journal_last_sync_ns / 1000000000u);

	family(f, "jobq_jobs", "gauge", "Jobs in each state now.");
	for (size_t s = 1; s < sizeof(state_names) / sizeof(*state_names); s++)
		sample(f, "jobq_jobs", "state", state_names[s],
		       st->jobs_by_state[s]);

	QUEUE_FAMILY(f, qs, nq, "jobq_queue_depth", "gauge",
		     "Objects on the queue.", depth);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_bytes", "gauge",
		     "Payload bytes on the queue.", bytes);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_getters", "gauge",
		     "Clients blocked in a get.", getters);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_putters", "gauge",
		     "Clients blocked in a put.", putters);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_puts_total", "counter",
		     "Objects put on the queue.", total_put);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_gets_total", "counter",
		     "Objects taken off the queue.", total_get);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_jobs_ready", "gauge",
		     "The queue's jobs ready to run.", jobs_ready);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_jobs_running", "gauge",
		     "The queue's jobs running now.", jobs_running);
	QUEUE_FAMILY(f, qs, nq, "jobq_queue_paused", "gauge",
		     "1 while the queue's jobs are not handed out.", paused);

	WORKER_FAMILY(f, ws, nw, "jobq_worker_running", "gauge",
		      "Jobs the worker runs now.", running);
	WORKER_FAMILY(f, ws, nw, "jobq_worker_capacity", "gauge",
		      "Jobs the worker runs at once at most.", capacity);
	WORKER_FAMILY(f, ws, nw, "jobq_worker_done_total", "counter",
		      "Jobs the worker finished.", done);
	WORKER_FAMILY(f, ws, nw, "jobq_worker_failed_total", "counter",
		      "Jobs that failed in the worker.", failed);

	if (fclose(f) || !buf) {
		free(buf);
		return NULL;
	}
	if (len)
		*len = size;
	return buf;
}

int jobq__prometheus(jobq_t *q, char **out, size_t *len)
{
	struct jobq_queue_info *qs = NULL;
	struct jobq_worker_info *ws = NULL;
	struct jobq_stats st;
	size_t nq = 0, nw = 0;
	int err;

	*out = NULL;
	if (!(err = jobq_stats(q, &st)) && !(err = jobq_queues(q, &qs, &nq)) &&
	    !(err = jobq_workers(q, &ws, &nw)) &&
	    !(*out = format(&st, qs, nq, ws, nw, len)))
		err = -ENOMEM;
	free(qs);
	free(ws);
	return err;
}
