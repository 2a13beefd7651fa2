/* SPDX-License-Identifier: MIT */
/*
 * cmd_admin.c - jobq ping, stats and shutdown: the manager itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cmd_ping(struct cli *c)
{
	struct jobq_stats st;
	char up[32];
	double uptime;
	int rc;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_ping(c->q);
	if (rc)
		return cli_fail(c, "ping", rc);
	rc = jobq_stats(c->q, &st);
	if (rc)
		return cli_fail(c, "ping", rc);
	uptime = cli_since(st.started_ns);
	if (c->json)
		return cli_print_json(json_pack(
		    "{s:o,s:s,s:i,s:o,s:f}", "dir", cli_json_str(c->dir),
		    "version", JOBQ_VERSION_STRING, "pid", (int)st.manager_pid,
		    "started", cli_json_time(st.started_ns), "uptime", uptime));
	if (c->quiet)
		return EXIT_OK;
	cli_format_duration(uptime, up, sizeof(up));
	printf("jobqd %s in %s: pid %d, up %s\n", JOBQ_VERSION_STRING, c->dir,
	       (int)st.manager_pid, up);
	return cli_flush();
}

static const char *const fsync_names[] = {"none", "batch", "always"};

static const char *fsync_name(int mode)
{
	return mode >= 0 && mode <= 2 ? fsync_names[mode] : "?";
}

/* The journal's part of `jobq stats --json`. */
static json_t *journal_json(const struct jobq_stats *st)
{
	json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "fsync",
			      fsync_name(st->journal_mode), "state",
			      st->journal_error ? "failing" : "ok", "size",
			      cli_json_u64(st->journal_size), "snapshot_size",
			      cli_json_u64(st->journal_snapshot_size), "errors",
			      cli_json_u64(st->journal_errors), "snapshots",
			      cli_json_u64(st->journal_snapshots));

	if (!j)
		return NULL;
	json_object_set_new(j, "last_fsync",
			    cli_json_time(st->journal_last_sync_ns));
	json_object_set_new(j, "error",
			    st->journal_error
				? json_string(strerror(-st->journal_error))
				: json_null());
	json_object_set_new(j, "last_error",
			    st->journal_last_error
				? json_string(strerror(-st->journal_last_error))
				: json_null());
	return j;
}

/* The journal's line of `jobq stats`. */
static void print_journal(const struct jobq_stats *st)
{
	char size[32], snap[32], when[40] = "never";

	jobq__format_size(st->journal_size, size, sizeof(size));
	jobq__format_size(st->journal_snapshot_size, snap, sizeof(snap));
	if (st->journal_last_sync_ns)
		jobq__format_time(st->journal_last_sync_ns, when, sizeof(when));
	printf("journal     fsync %s, %s, %s (snapshot %s, %" PRIu64
	       " written), last fsync %s, %" PRIu64 " errors%s%s\n",
	       fsync_name(st->journal_mode),
	       st->journal_error ? "FAILING" : "ok", size, snap,
	       st->journal_snapshots, when, st->journal_errors,
	       st->journal_last_error ? ", last: " : "",
	       st->journal_last_error ? strerror(-st->journal_last_error) : "");
}

/* jobq stats --prometheus: the counters, queues and workers as text. */
static int print_prometheus(struct cli *c)
{
	size_t len = 0;
	char *text;
	int rc = jobq__prometheus(c->q, &text, &len);

	if (rc)
		return cli_fail(c, "stats", rc);
	rc = cli_write_all(1, text, len);
	free(text);
	if (rc)
		return cli_error("writing the metrics: %s", strerror(-rc));
	return EXIT_OK;
}

/* jobq stats --clients: each connected client, its requests, refused
 * entries and what it holds against its quotas. */
static int print_clients(struct cli *c)
{
	struct jobq_client_info *v = NULL;
	json_t *doc, *arr;
	size_t n;
	int rc = jobq_clients(c->q, &v, &n);

	if (rc)
		return cli_fail(c, "clients", rc);
	if (c->json) {
		arr = json_array();
		for (size_t i = 0; arr && i < n; i++)
			json_array_append_new(
			    arr,
			    json_pack(
				"{s:i,s:i,s:o,s:o,s:I,s:I,s:I,s:i,s:i,s:i,s:I,"
				"s:I,s:I,s:{"
				"s:i,s:i,s:i,s:I,s:I,s:I}}",
				"pid", (int)v[i].pid, "uid", (int)v[i].uid,
				"name", cli_json_str(v[i].name), "connected",
				cli_json_time(v[i].connected_ns), "requests",
				(json_int_t)v[i].requests, "bad",
				(json_int_t)v[i].bad, "refused",
				(json_int_t)v[i].refused, "waits",
				(int)v[i].waits, "queues", (int)v[i].queues,
				"locks", (int)v[i].locks, "bytes",
				(json_int_t)v[i].bytes, "jobs",
				(json_int_t)v[i].jobs, "held",
				(json_int_t)v[i].held, "quotas", "waits",
				(int)v[i].quota_waits, "queues",
				(int)v[i].quota_queues, "locks",
				(int)v[i].quota_locks, "bytes",
				(json_int_t)v[i].quota_bytes, "jobs",
				(json_int_t)v[i].quota_jobs, "held",
				(json_int_t)v[i].quota_held));
		doc = arr ? json_pack("{s:o}", "clients", arr) : NULL;
		free(v);
		return cli_print_json(doc);
	}
	printf("%-8s %-6s %-16s %10s %6s %7s %6s %6s %6s %10s %7s %6s\n", "PID",
	       "UID", "NAME", "REQUESTS", "BAD", "REFUSED", "WAITS", "QUEUES",
	       "LOCKS", "BYTES", "JOBS", "HELD");
	for (size_t i = 0; i < n; i++) {
		char name[CLI_TEXT_LEN];

		cli_text(v[i].name, 16, name, sizeof(name));
		printf("%-8d %-6u %-16s %10" PRIu64 " %6" PRIu64 " %7" PRIu64
		       " %6u %6u %6u %10" PRIu64 " %7u %6u\n",
		       (int)v[i].pid, v[i].uid, name, v[i].requests, v[i].bad,
		       v[i].refused, v[i].waits, v[i].queues, v[i].locks,
		       v[i].bytes, v[i].jobs, v[i].held);
	}
	if (n)
		printf("quotas per client: %u waiting requests, %u queues, %u "
		       "locks, %" PRIu64 " bytes queued, %u jobs unfinished, "
		       "%u locks held\n",
		       v[0].quota_waits, v[0].quota_queues, v[0].quota_locks,
		       v[0].quota_bytes, v[0].quota_jobs, v[0].quota_held);
	free(v);
	return cli_flush();
}

int cmd_stats(struct cli *c)
{
	struct jobq_stats st;
	char gen[24];
	uint64_t free_bytes;
	double uptime;
	json_t *doc;
	int rc;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_stats(c->q, &st);
	if (rc)
		return cli_fail(c, "stats", rc);
	if (c->optval[OPT_PROMETHEUS])
		return print_prometheus(c);
	if (c->optval[OPT_CLIENTS])
		return print_clients(c);
	uptime = cli_since(st.started_ns);
	/* A random 64-bit number: hex, as JSON integers are signed. */
	snprintf(gen, sizeof(gen), "%016" PRIx64, st.generation);
	free_bytes = st.memory_total > st.memory_used
			 ? st.memory_total - st.memory_used
			 : 0;
	if (c->json) {
		doc = json_pack("{s:o,s:s,s:i,s:o,s:f,s:o}", "dir",
				cli_json_str(c->dir), "version",
				JOBQ_VERSION_STRING, "manager_pid",
				(int)st.manager_pid, "started",
				cli_json_time(st.started_ns), "uptime", uptime,
				"generation", json_string(gen));
		if (doc &&
		    json_object_update_new(
			doc,
			json_pack("{s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:I}",
				  "memory_total", cli_json_u64(st.memory_total),
				  "memory_used", cli_json_u64(st.memory_used),
				  "memory_free", cli_json_u64(free_bytes),
				  "max_object", cli_json_u64(st.max_object),
				  "clients", (json_int_t)st.clients, "queues",
				  (json_int_t)st.queues, "locks",
				  (json_int_t)st.locks, "keys",
				  (json_int_t)st.keys))) {
			json_decref(doc);
			doc = NULL;
		}
		if (doc &&
		    json_object_update_new(
			doc,
			json_pack(
			    "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
			    "s:o,s:o}",
			    "puts", cli_json_u64(st.puts), "gets",
			    cli_json_u64(st.gets), "kv_sets",
			    cli_json_u64(st.kv_sets), "kv_dels",
			    cli_json_u64(st.kv_dels), "lock_acquires",
			    cli_json_u64(st.lock_acquires), "lock_timeouts",
			    cli_json_u64(st.lock_timeouts), "deadlocks",
			    cli_json_u64(st.deadlocks), "clients_total",
			    cli_json_u64(st.clients_total), "clients_died",
			    cli_json_u64(st.clients_died), "requeued",
			    cli_json_u64(st.requeued), "bad_requests",
			    cli_json_u64(st.bad_requests)))) {
			json_decref(doc);
			doc = NULL;
		}
		if (doc &&
		    json_object_update_new(
			doc, json_pack("{s:o,s:o,s:o,s:o,s:o}", "submitted",
				       cli_json_u64(st.submitted), "done",
				       cli_json_u64(st.done), "failed",
				       cli_json_u64(st.failed), "retried",
				       cli_json_u64(st.retried), "dead",
				       cli_json_u64(st.dead)))) {
			json_decref(doc);
			doc = NULL;
		}
		if (doc) {
			json_t *by = json_object();

			for (int s = JOBQ_JOB_WAITING;
			     by && s <= JOBQ_JOB_CANCELLED; s++)
				if (json_object_set_new(
					by, jobq_job_state_name(s),
					cli_json_u64(st.jobs_by_state[s]))) {
					json_decref(by);
					by = NULL;
				}
			if (!by ||
			    json_object_set_new(doc, "jobs_by_state", by)) {
				json_decref(doc);
				doc = NULL;
			}
		}
		if (doc &&
		    json_object_set_new(doc, "journal", journal_json(&st))) {
			json_decref(doc);
			doc = NULL;
		}
		return cli_print_json(doc);
	}

	char up[32], used[32], total[32], freeb[32], maxo[32];

	cli_format_duration(uptime, up, sizeof(up));
	jobq__format_size(st.memory_used, used, sizeof(used));
	jobq__format_size(st.memory_total, total, sizeof(total));
	jobq__format_size(free_bytes, freeb, sizeof(freeb));
	jobq__format_size(st.max_object, maxo, sizeof(maxo));
	printf("manager     pid %d in %s, up %s, version %s\n",
	       (int)st.manager_pid, c->dir, up, JOBQ_VERSION_STRING);
	printf("memory      %s used, %s free, %s total (%" PRIu64 " / %" PRIu64
	       " / %" PRIu64 " bytes); max object %s\n",
	       used, freeb, total, st.memory_used, free_bytes, st.memory_total,
	       maxo);
	printf("clients     %u connected, %" PRIu64 " in total, %" PRIu64
	       " died\n",
	       st.clients, st.clients_total, st.clients_died);
	printf("tables      %u queues, %u locks, %u keys\n", st.queues,
	       st.locks, st.keys);
	printf("queues      %" PRIu64 " puts, %" PRIu64 " gets, %" PRIu64
	       " requeued\n",
	       st.puts, st.gets, st.requeued);
	printf("kv          %" PRIu64 " sets, %" PRIu64 " dels\n", st.kv_sets,
	       st.kv_dels);
	printf("locks       %" PRIu64 " acquires, %" PRIu64
	       " timeouts, %" PRIu64 " deadlocks refused\n",
	       st.lock_acquires, st.lock_timeouts, st.deadlocks);
	printf("jobs        %" PRIu64 " submitted, %" PRIu64 " done, %" PRIu64
	       " failed, %" PRIu64 " retried, %" PRIu64 " dead\n",
	       st.submitted, st.done, st.failed, st.retried, st.dead);
	printf("jobs now   ");
	for (int s = JOBQ_JOB_WAITING; s <= JOBQ_JOB_CANCELLED; s++)
		printf(" %" PRIu64 " %s%s", st.jobs_by_state[s],
		       jobq_job_state_name(s),
		       s < JOBQ_JOB_CANCELLED ? "," : "\n");
	printf("requests    %" PRIu64 " refused as malformed\n",
	       st.bad_requests);
	print_journal(&st);
	return cli_flush();
}

int cmd_shutdown(struct cli *c)
{
	struct jobq_stats st;
	bool now = c->optval[OPT_NOW] != NULL;
	double timeout, waited = 0;
	pid_t pid = 0;
	int rc;

	if ((rc = cli_timeout(c, 30, &timeout)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	if (!jobq_stats(c->q, &st))
		pid = st.manager_pid;
	rc = jobq_shutdown(c->q, now);
	if (rc)
		return cli_fail(c, "shutdown", rc);
	/* Let go of the store so that nothing of ours keeps it mapped. */
	jobq_close(c->q);
	c->q = NULL;
	if (timeout == 0 || pid <= 0)
		return EXIT_OK;
	/*
	 * Wait for the process to go, so that `jobq shutdown && jobqd ...`
	 * does not race the old manager for the directory.
	 */
	while (!cli_pid_gone(pid)) {
		struct timespec ts = {0, 20 * 1000 * 1000};

		if (waited >= timeout)
			return cli_timeout_msg(c,
					       "manager pid %d in %s accepted "
					       "the shutdown but still runs "
					       "after %gs",
					       (int)pid, c->dir, timeout);
		nanosleep(&ts, NULL);
		waited += 0.02;
	}
	return EXIT_OK;
}
