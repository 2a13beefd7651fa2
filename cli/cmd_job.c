/* SPDX-License-Identifier: MIT */
/*
 * cmd_job.c - the job commands: submit, wait, show, ls, cancel, retry,
 * kick, pause, resume, queue set --parallel, workers and worker.
 *
 * Everything that only reads (show, ls, workers, the progress of wait)
 * reads the store through the library without a round trip; what changes
 * a job goes to the manager, which alone moves jobs between states.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- helpers ------------------------------------------------------------ */

static bool state_final(int state)
{
	return state == JOBQ_JOB_SUCCEEDED || state == JOBQ_JOB_DEAD ||
	       state == JOBQ_JOB_CANCELLED;
}

/* A job id on the command line: a whole number >= 1. */
static int parse_id(const struct cli *c, const char *s, uint64_t *id)
{
	if (cli_parse_u64(s, id) || *id == 0)
		return cli_usage(c, "\"%s\" is not a job id (a number from 1)",
				 s);
	return 0;
}

/* Every argument as a job id into a malloc'd array; EXIT_USAGE or 0. */
static int parse_ids(const struct cli *c, uint64_t **out)
{
	uint64_t *ids = calloc((size_t)c->nargs + 1, sizeof(*ids));
	int rc;

	if (!ids)
		return cli_error("out of memory");
	for (int i = 0; i < c->nargs; i++) {
		if ((rc = parse_id(c, c->args[i], &ids[i]))) {
			free(ids);
			return rc;
		}
	}
	*out = ids;
	return 0;
}

static int no_job(uint64_t id)
{
	return cli_error("no job %" PRIu64, id);
}

static int parse_state(const char *s)
{
	for (int st = JOBQ_JOB_WAITING; st <= JOBQ_JOB_CANCELLED; st++)
		if (!strcmp(s, jobq_job_state_name(st)))
			return st;
	return 0;
}

/*
 * set_obj - set member @name of @into to object @o: a JSON payload as the
 * value it holds, text and bytes as a string (or, when not UTF-8, a base64
 * string under "<name>_base64", which cli_json_data() sets), none as null.
 * Returns 0 or -ENOMEM.
 */
static int set_obj(json_t *into, const char *name, const jobq_obj_t *o)
{
	if (o->type == JOBQ_T_NONE)
		return json_object_set_new(into, name, json_null()) ? -ENOMEM
								    : 0;
	if (o->type == JOBQ_T_JSON && o->len) {
		json_t *v = json_loadb(o->data, o->len, JSON_DECODE_ANY, NULL);

		if (v)
			return json_object_set_new(into, name, v) ? -ENOMEM : 0;
	}
	return cli_json_data(into, name, o->data, o->len);
}

/* Print an object's payload on stdout: JSON as one line, else the bytes. */
static int print_obj(const jobq_obj_t *o)
{
	if (o->type == JOBQ_T_JSON && o->len) {
		json_t *v = json_loadb(o->data, o->len, JSON_DECODE_ANY, NULL);

		if (v) {
			int rc = json_dumpf(v, stdout,
					    JSON_COMPACT | JSON_ENCODE_ANY |
						JSON_REAL_PRECISION(10));

			json_decref(v);
			if (rc || fputc('\n', stdout) == EOF)
				return -EIO;
			return 0;
		}
	}
	if (o->len && fwrite(o->data, 1, o->len, stdout) != o->len)
		return -EIO;
	return 0;
}

/*
 * job_json - the job object of CLI.md: id, type, queue, state, priority,
 * attempts, args, result or error, the times (RFC 3339, null when unset),
 * and the rest of what the store knows. NULL when out of memory.
 */
static json_t *job_json(struct cli *c, const struct jobq_job_info *ji)
{
	jobq_obj_t o = {0};
	json_t *j;
	int rc;

	j = json_pack("{s:o,s:o,s:o,s:s,s:i,s:i,s:i}", "id",
		      cli_json_u64(ji->id), "type", cli_json_str(ji->type),
		      "queue", cli_json_str(ji->queue), "state",
		      jobq_job_state_name(ji->state), "priority", ji->priority,
		      "attempts", (int)ji->attempts, "max_attempts",
		      (int)ji->max_attempts);
	if (!j)
		return NULL;
	if (json_object_update_new(
		j, json_pack("{s:o,s:o,s:o,s:o,s:f,s:f,s:b}", "created",
			     cli_json_time(ji->created_ns), "started",
			     cli_json_time(ji->started_ns), "finished",
			     cli_json_time(ji->finished_ns), "run_at",
			     cli_json_time(ji->run_at_ns), "lease", ji->lease,
			     "progress", ji->progress, "type_has_worker",
			     ji->type_has_worker))) {
		json_decref(j);
		return NULL;
	}
	if (json_object_set_new(j, "worker",
				ji->worker ? json_integer(ji->worker)
					   : json_null())) {
		json_decref(j);
		return NULL;
	}
	rc = jobq_job_args_of(c->q, ji->id, &o);
	if (rc == 0) {
		rc = set_obj(j, "args", &o);
		jobq_obj_free(&o);
	} else {
		rc = json_object_set_new(j, "args", json_null()) ? -ENOMEM : 0;
	}
	if (rc) {
		json_decref(j);
		return NULL;
	}
	rc = jobq_job_result(c->q, ji->id, &o);
	if (rc == 0) {
		if (ji->state == JOBQ_JOB_SUCCEEDED)
			rc = set_obj(j, "result", &o);
		else
			rc = cli_json_data(j, "error", o.data, o.len);
		jobq_obj_free(&o);
	} else if (jobq_job_last_error(c->q, ji->id, &o) == 0) {
		/* Not final yet: the error of the last failed attempt. */
		rc = cli_json_data(j, "last_error", o.data, o.len);
		jobq_obj_free(&o);
	} else {
		rc = 0;
	}
	if (!rc && ji->state == JOBQ_JOB_SUCCEEDED &&
	    !json_object_get(j, "result"))
		rc =
		    json_object_set_new(j, "result", json_null()) ? -ENOMEM : 0;
	if (!rc && ji->state != JOBQ_JOB_SUCCEEDED &&
	    !json_object_get(j, "error") && !json_object_get(j, "error_base64"))
		rc = json_object_set_new(j, "error", json_null()) ? -ENOMEM : 0;
	if (rc) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- submit ------------------------------------------------------------- */

/* "--after 3,4,5" into @ids (room for 64). Returns how many, or -EINVAL. */
static int parse_after(const char *s, uint64_t *ids)
{
	char *copy = strdup(s), *save = NULL, *tok;
	int n = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == 64 || cli_parse_u64(tok, &ids[n]) || ids[n] == 0) {
			free(copy);
			return -EINVAL;
		}
		n++;
	}
	free(copy);
	return n ? n : -EINVAL;
}

int cli_submit_opts(struct cli *c, struct jobq_submit_opts *opts,
		    uint64_t after[64])
{
	const char *v;
	int rc;

	memset(opts, 0, sizeof(*opts));
	opts->durable = c->optval[OPT_DURABLE] != NULL;
	if ((v = c->optval[OPT_PRIORITY])) {
		int64_t p;

		if (cli_parse_i64(v, &p) || p < INT32_MIN || p > INT32_MAX)
			return cli_usage(c,
					 "--priority \"%s\": not a whole "
					 "number",
					 v);
		opts->priority = (int)p;
	}
	if ((v = c->optval[OPT_DELAY]) && cli_parse_seconds(v, &opts->delay))
		return cli_usage(c, "--delay \"%s\": not a number of seconds",
				 v);
	if ((v = c->optval[OPT_TIMEOUT])) {
		if (cli_parse_seconds(v, &opts->timeout) || opts->timeout <= 0)
			return cli_usage(c,
					 "--timeout \"%s\": the lease must be "
					 "a number of seconds above 0",
					 v);
	}
	if ((v = c->optval[OPT_RETRIES])) {
		uint64_t r;

		if (cli_parse_u64(v, &r) || r > 65534)
			return cli_usage(c,
					 "--retries \"%s\": a whole number "
					 "from 0 to 65534",
					 v);
		if (r == 0)
			opts->no_retry = 1;
		else
			opts->retries = (int)r;
	}
	if ((v = c->optval[OPT_QUEUE])) {
		if ((rc = cli_check_name(c, "queue", v)))
			return rc;
		opts->queue = v;
	}
	if ((v = c->optval[OPT_AFTER])) {
		rc = parse_after(v, after);
		if (rc < 0)
			return cli_usage(c,
					 "--after \"%s\": job ids separated by "
					 "commas, at most 64",
					 v);
		opts->after = after;
		opts->nafter = (size_t)rc;
	}
	if ((v = c->optval[OPT_UNIQUE])) {
		if ((rc = cli_check_key(c, v)))
			return rc;
		opts->unique = v;
	}
	return 0;
}

int cmd_submit(struct cli *c)
{
	const char *type = c->args[0];
	const char *args = c->nargs > 1 ? c->args[1] : "{}";
	struct jobq_submit_opts opts;
	uint64_t after[64], id = 0;
	json_error_t jerr;
	json_t *parsed;
	char what[96];
	int rc;

	if (!*type || strlen(type) > JOBQ_TYPE_MAX ||
	    jobq__check_text(type, strlen(type)))
		return cli_usage(
		    c,
		    "job type \"%s\" is invalid: 1 to %d bytes of "
		    "UTF-8, no control characters",
		    cli_text(type, CLI_QUOTE_MAX, what, sizeof(what)),
		    JOBQ_TYPE_MAX);
	parsed = json_loads(args, JSON_DECODE_ANY, &jerr);
	if (!parsed)
		return cli_usage(c,
				 "ARGS_JSON is not JSON: %s (line %d, column "
				 "%d); quote it for the shell, like '{\"ms\": "
				 "100}'",
				 jerr.text, jerr.line, jerr.column);
	json_decref(parsed);
	if ((rc = cli_submit_opts(c, &opts, after)))
		return rc;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_submit(c->q, type, JOBQ_T_JSON, args, strlen(args), &opts,
			 &id);
	snprintf(what, sizeof(what), "submit %s", type);
	if (rc == -ENOENT)
		return cli_error("%s: a job named in --after does not exist "
				 "(or has expired)",
				 what);
	if (rc == -E2BIG)
		return cli_error("%s: args of %zu bytes exceed max-object "
				 "(jobqd --max-object)",
				 what, strlen(args));
	if (rc == JOBQ_EFULL)
		return cli_error("%s: the store is full (jobqd --memory SIZE "
				 "makes a larger store)",
				 what);
	if (rc == JOBQ_ELIMIT)
		return cli_jobs_full(c, what);
	if (rc == -EOPNOTSUPP && opts.durable)
		return cli_error(
		    "%s: --durable: the manager's journal is on "
		    "tmpfs, in memory, so there is no disk to sync "
		    "(start jobqd with --journal FILE on a disk)",
		    what);
	if (rc < 0)
		return cli_fail(c, what, rc);
	if (c->json)
		return cli_print_json(json_pack(
		    "{s:o,s:b}", "id", cli_json_u64(id), "existing", rc == 1));
	printf("%" PRIu64 "\n", id);
	return cli_flush();
}

/* ---- wait --------------------------------------------------------------- */

struct waiter {
	uint64_t *ids;
	int n;
	bool tty; /* a progress bar on stderr */
	bool bar_shown;
	int last_final;	  /* what the last progress line said */
	double last_line; /* when it said it (monotonic seconds) */
	double started;	  /* when the wait began, for the ETA */
	int first_final;  /* final already then: not part of the rate */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How many of the jobs are final, from the store; *ok of them succeeded
 * (a job that is gone counts as final, not as succeeded). */
static int count_final(struct cli *c, const struct waiter *w, int *ok)
{
	struct jobq_job_info ji;
	int n = 0;

	*ok = 0;
	for (int i = 0; i < w->n; i++) {
		if (jobq_job_info(c->q, w->ids[i], &ji)) {
			n++;
		} else if (state_final(ji.state)) {
			n++;
			*ok += ji.state == JOBQ_JOB_SUCCEEDED;
		}
	}
	return n;
}

/* "about 1m05s left" from the rate so far, or "" before there is one. */
static void eta(const struct waiter *w, int done, double now, char *buf,
		size_t len)
{
	int moved = done - w->first_final;
	char d[32];

	buf[0] = '\0';
	if (moved <= 0 || done >= w->n || now <= w->started)
		return;
	cli_format_duration((now - w->started) / moved * (w->n - done), d,
			    sizeof(d));
	snprintf(buf, len, ", about %s left", d);
}

/*
 * progress - on a terminal a bar redrawn in place, "[#####.....] 5/10
 * done: 4 succeeded, 1 failed, about 12s left"; elsewhere the same words
 * as a plain line now and then (at most once a second, and only when the
 * count moved), so that logs stay readable.
 */
static void progress(struct cli *c, struct waiter *w, bool force)
{
	int done, ok, width = 30, fill;
	double now = mono_now();
	char left[64];

	if (c->quiet || c->json || w->n < 2)
		return;
	if (!force && now - w->last_line < (w->tty ? 0.1 : 1.0))
		return;
	done = count_final(c, w, &ok);
	if (w->last_final < 0) {
		w->started = now;
		w->first_final = done;
	}
	eta(w, done, now, left, sizeof(left));
	if (!w->tty) {
		if (done != w->last_final && done < w->n)
			fprintf(stderr,
				"waiting: %d of %d jobs done (%d succeeded, "
				"%d not)%s\n",
				done, w->n, ok, done - ok, left);
		w->last_final = done;
		w->last_line = now;
		return;
	}
	fill = w->n ? (int)((long long)done * width / w->n) : width;
	fputc('\r', stderr);
	fputc('[', stderr);
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %d/%d done: %d succeeded, %d not%s\033[K", done,
		w->n, ok, done - ok, left);
	fflush(stderr);
	w->bar_shown = true;
	w->last_final = done;
	w->last_line = now;
}

/* Take the bar off the line (before a result or a message is printed);
 * the next progress() draws it again below. */
static void progress_end(struct waiter *w)
{
	if (w->bar_shown) {
		fputs("\r\033[K", stderr);
		w->bar_shown = false;
	}
}

int cmd_wait(struct cli *c)
{
	struct waiter w = {0};
	struct jobq_job_info ji;
	json_t *list = NULL;
	double timeout, deadline, step;
	int rc, worst = EXIT_OK;

	if ((rc = cli_timeout(c, -1, &timeout)))
		return rc;
	if ((rc = parse_ids(c, &w.ids)))
		return rc;
	w.n = c->nargs;
	w.tty = isatty(STDERR_FILENO);
	w.last_final = -1;
	if ((rc = cli_connect(c)))
		goto out;
	for (int i = 0; i < w.n; i++) {
		/* Not in the store yet may still be known to jobqd (with a
		 * backend, a job another host submitted): it has the last
		 * word. */
		if (jobq_job_info(c->q, w.ids[i], &ji) &&
		    jobq_job_wait(c->q, w.ids[i], 0) == -ENOENT) {
			rc = no_job(w.ids[i]);
			goto out;
		}
	}
	if (c->json && !(list = json_array())) {
		rc = cli_error("out of memory");
		goto out;
	}
	deadline = timeout < 0 ? INFINITY : mono_now() + timeout;

	/*
	 * The jobs are waited for in the order given, so that results print
	 * in that order. Only while progress is shown is each wait cut into
	 * slices (a quarter second on a terminal, a second elsewhere),
	 * between which it is redrawn from the store; otherwise a wait
	 * sleeps until the job is final or the deadline passes, and costs
	 * the manager nothing meanwhile.
	 */
	step = c->quiet || c->json || w.n < 2 ? INFINITY : w.tty ? 0.25 : 1.0;
	for (int i = 0; i < w.n; i++) {
		uint64_t id = w.ids[i];
		jobq_obj_t o = {0};
		int res;

		for (;;) {
			double left = deadline - mono_now();
			double slice = left < step ? left : step;

			/* Past the deadline one look is still taken (timeout
			 * 0), so --nowait reports a job that is final. */
			res = jobq_job_wait(c->q, id, slice > 0 ? slice : 0);
			if (res != -ETIMEDOUT && res != -EAGAIN)
				break;
			if (slice <= 0) {
				progress_end(&w);
				rc = cli_timeout_msg(
				    c, "job %" PRIu64 " not final after %gs",
				    id, timeout);
				goto out;
			}
			progress(c, &w, false);
		}
		progress(c, &w, false);
		if (res == -ENOENT) {
			progress_end(&w);
			rc = no_job(id);
			goto out;
		}
		if (res != 0 && res != JOBQ_EJOBFAILED && res != -ECANCELED) {
			progress_end(&w);
			rc = cli_fail(c, "wait", res);
			goto out;
		}
		if (res != 0)
			worst = EXIT_JOB;
		rc = jobq_job_result(c->q, id, &o);
		if (rc == -ENOENT && res == 0) {
			/* Expired between its end and this read: an empty
			 * result must not pass for its result. */
			progress_end(&w);
			rc = cli_error("job %" PRIu64 " succeeded, but its "
				       "result is gone (kept for jobqd "
				       "--keep)",
				       id);
			goto out;
		}
		if (rc && rc != -ENOENT) {
			progress_end(&w);
			rc = cli_fail(c, "wait", rc);
			goto out;
		}
		if (c->json) {
			json_t *e = json_pack("{s:o,s:s}", "id",
					      cli_json_u64(id), "state",
					      res == 0		  ? "succeeded"
					      : res == -ECANCELED ? "cancelled"
								  : "dead");

			if (!e || json_array_append_new(list, e) ||
			    set_obj(e, res == 0 ? "result" : "error", &o)) {
				jobq_obj_free(&o);
				rc = cli_error("out of memory");
				goto out;
			}
		} else if (res == 0) {
			progress_end(&w);
			if (print_obj(&o)) {
				jobq_obj_free(&o);
				rc = cli_error("writing to stdout: %s",
					       strerror(errno));
				goto out;
			}
			fflush(stdout);
		} else {
			/* A cancelled job's error text is often just
			 * "cancelled": not worth saying twice. */
			bool say = o.len && !(res == -ECANCELED && o.len == 9 &&
					      !memcmp(o.data, "cancelled", 9));

			progress_end(&w);
			cli_error("job %" PRIu64 " %s%s%.*s", id,
				  res == -ECANCELED ? "was cancelled"
						    : "is dead",
				  say ? ": " : "", say ? (int)o.len : 0,
				  say ? (const char *)o.data : "");
		}
		jobq_obj_free(&o);
	}
	if (w.bar_shown)
		fputc('\n', stderr); /* the last bar stays */
	rc = worst;
	if (c->json) {
		int prc = cli_print_json(json_pack("{s:o}", "jobs", list));

		list = NULL;
		if (prc)
			rc = prc;
	} else if (cli_flush()) {
		rc = EXIT_ERROR;
	}
out:
	json_decref(list);
	free(w.ids);
	return rc;
}

/* ---- show --------------------------------------------------------------- */

static void print_time(const char *label, uint64_t ns)
{
	char buf[40];

	if (!ns) {
		printf("%-10s -\n", label);
		return;
	}
	jobq__format_time(ns, buf, sizeof(buf));
	printf("%-10s %s\n", label, buf);
}

/* Print an object for people: JSON compact, text and bytes as they are
 * when printable UTF-8, else its size. */
static void print_field_obj(const char *label, const jobq_obj_t *o)
{
	json_t *tmp = json_object();

	printf("%-10s ", label);
	if (o->type == JOBQ_T_JSON && o->len) {
		json_t *v = json_loadb(o->data, o->len, JSON_DECODE_ANY, NULL);

		if (v) {
			json_dumpf(v, stdout,
				   JSON_COMPACT | JSON_ENCODE_ANY |
				       JSON_REAL_PRECISION(10));
			json_decref(v);
			putchar('\n');
			json_decref(tmp);
			return;
		}
	}
	if (tmp && !cli_json_data(tmp, "v", o->data, o->len) &&
	    json_object_get(tmp, "v"))
		printf("%.*s\n", (int)o->len, o->len ? (char *)o->data : "");
	else
		printf("(%zu bytes, not text)\n", o->len);
	json_decref(tmp);
}

int cmd_show(struct cli *c)
{
	struct jobq_job_info ji;
	jobq_obj_t o = {0};
	uint64_t id;
	int rc;

	if ((rc = parse_id(c, c->args[0], &id)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	/* One look first: it costs nothing for a job in the store that is
	 * not final, and with jobqd --backend it brings the job's row into
	 * the store when it is missing or final there, so that a job
	 * another host submitted, retried or kicked shows as it is now. */
	(void)jobq_job_wait(c->q, id, 0);
	rc = jobq_job_info(c->q, id, &ji);
	if (rc == -ENOENT)
		return no_job(id);
	if (rc)
		return cli_fail(c, "show", rc);
	if (c->json) {
		json_t *j = job_json(c, &ji);

		if (j && ji.state == JOBQ_JOB_RUNNING && !ji.worker)
			json_object_set_new(
			    j, "note",
			    json_string("awaiting its worker since jobqd "
					"restarted"));
		else if (j && !state_final(ji.state) && !ji.type_has_worker) {
			char note[128];

			snprintf(note, sizeof(note), "no worker serves type %s",
				 ji.type);
			json_object_set_new(j, "note", json_string(note));
		}
		return cli_print_json(j);
	}
	printf("%-10s %" PRIu64 "\n", "id", ji.id);
	printf("%-10s %s\n", "type", ji.type);
	printf("%-10s %s\n", "queue", ji.queue);
	printf("%-10s %s%s\n", "state", jobq_job_state_name(ji.state),
	       (ji.state == JOBQ_JOB_FAILED && ji.run_at_ns)
		   ? " (a retry is pending)"
		   : "");
	printf("%-10s %d\n", "priority", ji.priority);
	printf("%-10s %u of %u\n", "attempts", ji.attempts, ji.max_attempts);
	printf("%-10s %gs\n", "lease", ji.lease);
	if (ji.worker)
		printf("%-10s pid %d\n", "worker", (int)ji.worker);
	else if (ji.state == JOBQ_JOB_RUNNING)
		/* Running when jobqd died; its worker may take it back within
		 * jobqd --rejoin-grace, else it runs again. */
		printf("%-10s - (awaiting its worker since jobqd restarted)\n",
		       "worker");
	else
		printf("%-10s -\n", "worker");
	if (ji.state == JOBQ_JOB_RUNNING)
		printf("%-10s %.1f%%\n", "progress", ji.progress);
	print_time("created", ji.created_ns);
	print_time("run at", ji.run_at_ns);
	print_time("started", ji.started_ns);
	print_time("finished", ji.finished_ns);
	if (jobq_job_args_of(c->q, id, &o) == 0) {
		print_field_obj("args", &o);
		jobq_obj_free(&o);
	}
	if (jobq_job_result(c->q, id, &o) == 0) {
		print_field_obj(
		    ji.state == JOBQ_JOB_SUCCEEDED ? "result" : "error", &o);
		jobq_obj_free(&o);
	} else if (jobq_job_last_error(c->q, id, &o) == 0) {
		print_field_obj("last error", &o);
		jobq_obj_free(&o);
	}
	if (!state_final(ji.state) && !ji.type_has_worker)
		printf("note:      no worker serves type %s (start one: jobq "
		       "worker, jobqd --workers N or --worker CMD)\n",
		       ji.type);
	return cli_flush();
}

/* ---- ls ----------------------------------------------------------------- */

/*
 * parse_filter - the job filters on the command line into *f. Returns 0
 * or EXIT_USAGE after a message; *any says whether one was given.
 */
static int parse_filter(struct cli *c, struct jobq_job_filter *f, bool *any)
{
	const char *sv = c->optval[OPT_STATE];
	const char *older = c->optval[OPT_OLDER], *newer = c->optval[OPT_NEWER];

	memset(f, 0, sizeof(*f));
	if (sv && !(f->state = parse_state(sv)))
		return cli_usage(c,
				 "--state \"%s\": one of waiting, delayed, "
				 "ready, running, succeeded, failed, dead, "
				 "cancelled",
				 sv);
	if (older && cli_parse_seconds(older, &f->min_age))
		return cli_usage(c, "--older \"%s\": not a number of seconds",
				 older);
	if (newer && (cli_parse_seconds(newer, &f->max_age) || !f->max_age))
		return cli_usage(c,
				 "--newer \"%s\": not a number of seconds "
				 "above 0",
				 newer);
	f->type = c->optval[OPT_TYPE];
	f->queue = c->optval[OPT_QUEUE];
	if (any)
		*any = sv || older || newer || f->type || f->queue;
	return 0;
}

int cmd_ls(struct cli *c)
{
	const char *lv = c->optval[OPT_LIMIT], *ov = c->optval[OPT_OFFSET];
	struct jobq_job_info *jobs = NULL;
	struct jobq_job_filter f;
	uint64_t limit = 0, offset = 0;
	size_t n = 0, total = 0;
	int rc;

	if ((rc = parse_filter(c, &f, NULL)))
		return rc;
	if (lv && cli_parse_u64(lv, &limit))
		return cli_usage(c, "--limit \"%s\": not a whole number", lv);
	if (ov && cli_parse_u64(ov, &offset))
		return cli_usage(c, "--offset \"%s\": not a whole number", ov);
	f.limit = (size_t)limit;
	f.offset = (size_t)offset;
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_jobs_find(c->q, &f, &jobs, &n, &total);
	if (rc)
		return cli_fail(c, "ls", rc);
	if (c->json) {
		json_t *arr, *doc = cli_list_new("jobs", &arr);

		for (size_t i = 0; doc && i < n; i++)
			cli_list_push(&doc, arr, job_json(c, &jobs[i]));
		if (doc &&
		    json_object_set_new(doc, "total", cli_json_u64(total))) {
			json_decref(doc);
			doc = NULL;
		}
		free(jobs);
		return cli_print_json(doc);
	}
	if (!c->quiet)
		printf("%-8s %-10s %-16s %-12s %5s %8s %8s\n", "ID", "STATE",
		       "TYPE", "QUEUE", "PRI", "ATTEMPTS", "AGE");
	for (size_t i = 0; i < n; i++) {
		char age[32], att[24];

		cli_format_duration(cli_since(jobs[i].created_ns), age,
				    sizeof(age));
		snprintf(att, sizeof(att), "%u/%u", jobs[i].attempts,
			 jobs[i].max_attempts);
		printf("%-8" PRIu64 " %-10s %-16s %-12s %5d %8s %8s\n",
		       jobs[i].id, jobq_job_state_name(jobs[i].state),
		       jobs[i].type, jobs[i].queue, jobs[i].priority, att, age);
	}
	free(jobs);
	if (!c->quiet && f.offset + n < total)
		fprintf(stderr,
			"(%zu more match; --offset %zu shows the next ones)\n",
			total - f.offset - n, f.offset + n);
	return cli_flush();
}

/* ---- cancel, retry, kick ------------------------------------------------ */

/*
 * per_id - run @op on every id; the exit code is the worst one. A job that
 * is already final (or has nothing to retry) is an error with a message
 * that says which state it is in.
 */
static int per_ids(struct cli *c, uint64_t *ids, size_t n,
		   int (*op)(jobq_t *, uint64_t), const char *verb,
		   const char *already);

static int per_id(struct cli *c, int (*op)(jobq_t *, uint64_t),
		  const char *verb, const char *already)
{
	uint64_t *ids;
	int rc;

	if ((rc = parse_ids(c, &ids)))
		return rc;
	if ((rc = cli_connect(c))) {
		free(ids);
		return rc;
	}
	return per_ids(c, ids, (size_t)c->nargs, op, verb, already);
}

/* per_id() over @n ids (freed here). */
static int per_ids(struct cli *c, uint64_t *ids, size_t n,
		   int (*op)(jobq_t *, uint64_t), const char *verb,
		   const char *already)
{
	json_t *arr = NULL;
	int rc, worst = EXIT_OK;

	if (c->json)
		arr = json_array();
	for (size_t i = 0; i < n; i++) {
		struct jobq_job_info ji;
		const char *res = "ok";

		rc = op(c->q, ids[i]);
		if (rc == -ENOENT) {
			worst = no_job(ids[i]);
			res = "no such job";
		} else if (rc == -EALREADY) {
			const char *st = "final";

			if (!jobq_job_info(c->q, ids[i], &ji))
				st = jobq_job_state_name(ji.state);
			worst = cli_error("job %" PRIu64 " is %s: %s", ids[i],
					  st, already);
			res = st;
		} else if (rc < 0) {
			char what[64];

			snprintf(what, sizeof(what), "%s %" PRIu64, verb,
				 ids[i]);
			worst = cli_fail(c, what, rc);
			res = jobq_strerror(rc);
		}
		if (arr)
			json_array_append_new(
			    arr, json_pack("{s:o,s:b,s:s}", "id",
					   cli_json_u64(ids[i]), "ok", rc >= 0,
					   "result", res));
	}
	free(ids);
	if (c->json) {
		rc = cli_print_json(json_pack("{s:o}", "jobs", arr));
		return worst ? worst : rc;
	}
	return worst;
}

static bool cancellable(int state)
{
	return !state_final(state);
}

static bool retryable(int state)
{
	return state == JOBQ_JOB_FAILED || state == JOBQ_JOB_DEAD ||
	       state == JOBQ_JOB_CANCELLED;
}

/*
 * Bulk cancel and retry: without IDs, @op runs on every job the filters
 * match that @wanted accepts (a state filter that @wanted refuses is a
 * usage error, since it could match nothing). Prints how many.
 */
static int per_filter(struct cli *c, int (*op)(jobq_t *, uint64_t),
		      bool (*wanted)(int), const char *verb,
		      const char *already)
{
	struct jobq_job_info *jobs = NULL;
	struct jobq_job_filter f;
	size_t n = 0, k = 0;
	uint64_t *ids;
	bool any;
	int rc;

	if ((rc = parse_filter(c, &f, &any)))
		return rc;
	if (c->nargs) {
		if (any)
			return cli_usage(c, "either job IDs or filters, not "
					    "both");
		return per_id(c, op, verb, already);
	}
	if (!any)
		return cli_usage(c, "say which jobs: IDs, or filters such as "
				    "--state, --type, --queue, --older");
	if (f.state && !wanted(f.state))
		return cli_usage(c, "--state %s: %s",
				 jobq_job_state_name(f.state), already);
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_jobs_find(c->q, &f, &jobs, &n, NULL);
	if (rc)
		return cli_fail(c, verb, rc);
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids) {
		free(jobs);
		return cli_error("out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (wanted(jobs[i].state))
			ids[k++] = jobs[i].id;
	free(jobs);
	rc = per_ids(c, ids, k, op, verb, already);
	if (!c->json && !c->quiet)
		printf("%s: %zu job%s\n", verb, k, k == 1 ? "" : "s");
	return rc;
}

int cmd_cancel(struct cli *c)
{
	return per_filter(c, jobq_cancel, cancellable, "cancel",
			  "nothing to cancel");
}

int cmd_retry(struct cli *c)
{
	return per_filter(c, jobq_retry, retryable, "retry",
			  "only failed, dead or cancelled jobs can be retried");
}

int cmd_kick(struct cli *c)
{
	uint64_t id = 0;
	int rc;

	if (c->optval[OPT_ALL] && c->nargs)
		return cli_usage(c, "either a job id or --all, not both");
	if (!c->optval[OPT_ALL] && !c->nargs)
		return cli_usage(c, "say which: a job id, or --all for every "
				    "dead job");
	if (c->nargs)
		return per_id(c, jobq_kick, "kick",
			      "only dead jobs can be kicked (jobq retry runs "
			      "failed and cancelled ones again)");
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_kick(c->q, id);
	if (rc < 0)
		return cli_fail(c, "kick --all", rc);
	if (c->json)
		return cli_print_json(json_pack("{s:i}", "kicked", rc));
	if (!c->quiet)
		printf("%d dead job%s ready again\n", rc, rc == 1 ? "" : "s");
	return cli_flush();
}

/* ---- queues of jobs ----------------------------------------------------- */

static int pause_resume(struct cli *c, bool pause)
{
	const char *queue = c->args[0];
	char what[96];
	int rc;

	if ((rc = cli_check_name(c, "queue", queue)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	rc = pause ? jobq_pause(c->q, queue) : jobq_resume(c->q, queue);
	snprintf(what, sizeof(what), "queue \"%s\"", queue);
	if (rc == JOBQ_ELIMIT)
		return cli_error("%s: the queue table of the manager is full",
				 what);
	if (rc)
		return cli_fail(c, what, rc);
	return EXIT_OK;
}

int cmd_pause(struct cli *c)
{
	return pause_resume(c, true);
}

int cmd_resume(struct cli *c)
{
	return pause_resume(c, false);
}

/*
 * `queue set`: --parallel is a job setting and is done here; the object
 * limits (--max-depth, --max-bytes) go on to cmd_queue_set().
 */
int cmd_queue_set_all(struct cli *c)
{
	const char *pv = c->optval[OPT_PARALLEL];
	const char *queue = c->args[0];
	uint64_t parallel;
	char what[96];
	int rc;

	if (!pv)
		return cmd_queue_set(c);
	if ((rc = cli_check_name(c, "queue", queue)))
		return rc;
	if (cli_parse_u64(pv, &parallel) || parallel > UINT32_MAX)
		return cli_usage(c,
				 "--parallel \"%s\": a whole number (0: no "
				 "limit)",
				 pv);
	if ((rc = cli_connect(c)))
		return rc;
	if ((c->optval[OPT_MAX_DEPTH] || c->optval[OPT_MAX_BYTES]) &&
	    (rc = cmd_queue_set(c)))
		return rc;
	rc = jobq_queue_parallel(c->q, queue, (unsigned)parallel);
	snprintf(what, sizeof(what), "queue \"%s\"", queue);
	if (rc == JOBQ_ELIMIT)
		return cli_error("%s: the queue table of the manager is full",
				 what);
	if (rc)
		return cli_fail(c, what, rc);
	return EXIT_OK;
}

/* ---- workers ------------------------------------------------------------ */

int cmd_workers(struct cli *c)
{
	struct jobq_worker_info *ws = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_workers(c->q, &ws, &n);
	if (rc)
		return cli_fail(c, "workers", rc);
	if (c->json) {
		json_t *arr, *doc = cli_list_new("workers", &arr);

		for (size_t i = 0; doc && i < n; i++) {
			json_t *types = json_array();
			char buf[sizeof(ws[i].types)], *save = NULL, *t;
			json_t *w;

			snprintf(buf, sizeof(buf), "%s", ws[i].types);
			for (t = strtok_r(buf, ",", &save); types && t;
			     t = strtok_r(NULL, ",", &save))
				json_array_append_new(types, cli_json_str(t));
			w = json_pack(
			    "{s:i,s:o,s:i,s:i,s:o,s:o,s:o,s:f,s:b,s:b}", "pid",
			    (int)ws[i].pid, "types", types, "capacity",
			    (int)ws[i].capacity, "running", (int)ws[i].running,
			    "done", cli_json_u64(ws[i].done), "failed",
			    cli_json_u64(ws[i].failed), "started",
			    cli_json_time(ws[i].started_ns), "uptime",
			    cli_since(ws[i].started_ns), "supervised",
			    ws[i].supervised, "daemon", ws[i].daemon);
			cli_list_push(&doc, arr, w);
		}
		free(ws);
		return cli_print_json(doc);
	}
	if (!c->quiet)
		printf("%-8s %-24s %8s %8s %8s %8s  %s\n", "PID", "TYPES",
		       "RUNNING", "DONE", "FAILED", "UP", "KIND");
	for (size_t i = 0; i < n; i++) {
		char up[32], run[24];

		cli_format_duration(cli_since(ws[i].started_ns), up,
				    sizeof(up));
		snprintf(run, sizeof(run), "%u/%u", ws[i].running,
			 ws[i].capacity);
		printf("%-8d %-24s %8s %8" PRIu64 " %8" PRIu64 " %8s  %s%s\n",
		       (int)ws[i].pid, ws[i].types, run, ws[i].done,
		       ws[i].failed, up,
		       ws[i].supervised ? "supervised" : "own",
		       ws[i].daemon ? ",daemon" : "");
	}
	free(ws);
	return cli_flush();
}

/* ---- worker: a built-in worker run from a shell -------------------------- */

static jobq_worker_t *the_worker;

static void on_stop_signal(int sig)
{
	(void)sig;
	if (the_worker)
		jobq_worker_stop(the_worker);
}

int cmd_worker(struct cli *c)
{
	struct jobq_worker_opts wo = {0};
	const char *tv = c->optval[OPT_TYPES], *cv = c->optval[OPT_CONCURRENCY];
	struct sigaction sa = {0};
	jobq_worker_t *w = NULL;
	uint64_t conc = 1;
	int rc;

	if (cv && (cli_parse_u64(cv, &conc) || conc == 0 || conc > 1024))
		return cli_usage(c,
				 "--concurrency \"%s\": a whole number from "
				 "1 to 1024",
				 cv);
	wo.concurrency = (unsigned)conc;
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_worker_new(&w, c->q, &wo);
	if (rc)
		return cli_fail(c, "worker", rc);
	rc = jobq_worker_builtin_types(w, tv);
	if (rc) {
		jobq_worker_free(w);
		if (rc == -EINVAL)
			return cli_usage(c,
					 "--types \"%s\": built-in types, "
					 "comma-separated (echo, sleep, fail, "
					 "exec, file.copy, file.read, "
					 "file.write, file.checksum, "
					 "net.request, http.get)",
					 tv);
		return cli_fail(c, "worker", rc);
	}
	the_worker = w;
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!c->quiet && !c->json)
		fprintf(stderr, "jobq: worker %d serving %s, %u at once\n",
			(int)getpid(), tv ? tv : "every built-in type",
			wo.concurrency);
	rc = jobq_worker_run(w);
	the_worker = NULL;
	jobq_worker_free(w);
	if (rc == JOBQ_ECLOSED)
		return cli_error("worker: the manager in %s went away", c->dir);
	if (rc) {
		/* io_uring refused: say why and what to do about it. */
		const char *why = jobq_loop_why();

		if (*why)
			return cli_error("worker: %s", why);
		return cli_fail(c, "worker", rc);
	}
	return EXIT_OK;
}
