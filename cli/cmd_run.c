/* SPDX-License-Identifier: MIT */
/*
 * cmd_run.c - `jobq run` (submit exec jobs: one command, or one per line
 * of a file) and `jobq logs` (the output of an exec job, followed while
 * it runs).
 *
 * An exec job's args carry what the command needs to run as if typed
 * here: argv, the working directory and the whole environment (so PATH,
 * HOME and the rest are this shell's, not the worker's).
 *
 * Its whole output is in a log file the worker writes in the instance
 * directory (jobq__exec_log_path()); the result keeps only the first
 * 64 KiB of each stream. `logs` reads the file from the side: it is only
 * ever appended to, except that a new attempt starts it again, which
 * shows as the file getting shorter than what was read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "cli.h"

extern char **environ;

/* Jobs per jobq_submit_many() call: one wake-up of the manager each. */
#define RUN_BATCH 256
/* How often `logs --follow` looks for more output. */
#define FOLLOW_POLL_MS 50

/* ---- run ---------------------------------------------------------------- */

/* {"argv": [...], "cwd": "...", "env": {...}} with @argv, or with
 * ["sh", "-c", @line] when @argv is NULL. */
static json_t *exec_args(char **argv, int argc, const char *line, size_t llen,
			 const char *cwd, json_t *env)
{
	json_t *a = json_array(), *o;

	if (!a)
		return NULL;
	if (argv) {
		for (int i = 0; i < argc; i++)
			if (json_array_append_new(a, json_string(argv[i]))) {
				json_decref(a);
				return NULL;
			}
	} else if (json_array_append_new(a, json_string("sh")) ||
		   json_array_append_new(a, json_string("-c")) ||
		   json_array_append_new(a, json_stringn(line, llen))) {
		json_decref(a);
		return NULL;
	}
	o = json_pack("{s:o,s:s,s:O}", "argv", a, "cwd", cwd, "env", env);
	return o;
}

/* This process's environment as a JSON object (entries that are not
 * NAME=VALUE or not UTF-8 are left out: the job could not be given them
 * either). */
static json_t *env_object(void)
{
	json_t *env = json_object();

	if (!env)
		return NULL;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		json_t *v;

		if (!eq || eq == *e)
			continue;
		v = json_string(eq + 1);
		if (!v)
			continue;
		char *name = strndup(*e, (size_t)(eq - *e));

		if (!name || json_object_set_new(env, name, v)) {
			free(name);
			json_decref(env);
			return NULL;
		}
		free(name);
	}
	return env;
}

static int run_fail(struct cli *c, int rc, size_t args_len)
{
	if (rc == -E2BIG)
		return cli_error("run: the job's args (command, working "
				 "directory and environment) take %zu bytes, "
				 "over max-object (jobqd --max-object)",
				 args_len);
	if (rc == JOBQ_EFULL)
		return cli_error("run: the store is full (jobqd --memory SIZE "
				 "makes a larger store)");
	if (rc == JOBQ_ELIMIT)
		return cli_jobs_full(c, "run");
	if (rc == -ENOENT)
		return cli_error("run: a job named in --after does not exist "
				 "(or has expired)");
	return cli_fail(c, "run", rc);
}

/* The lines of @buf that are not blank, each submitted as a job. */
static int run_lines(struct cli *c, char *buf, size_t len,
		     const struct jobq_submit_opts *opts, const char *cwd,
		     json_t *env)
{
	jobq_obj_t objs[RUN_BATCH];
	const char *lines[RUN_BATCH];
	size_t llens[RUN_BATCH];
	uint64_t ids[RUN_BATCH];
	json_t *list = NULL, *doc = NULL;
	size_t at = 0, n = 0, total = 0;
	int rc = EXIT_OK;

	if (c->json && !(doc = cli_list_new("jobs", &list)))
		return cli_error("out of memory");
	while (at < len || n) {
		char *nl, *line;
		size_t llen, blank;

		if (at < len) {
			line = buf + at;
			nl = memchr(line, '\n', len - at);
			llen = nl ? (size_t)(nl - line) : len - at;
			at += llen + (nl ? 1 : 0);
			if (llen && line[llen - 1] == '\r')
				llen--;
			blank = strspn(line, " \t");
			if (blank >= llen)
				continue;
			json_t *a = exec_args(NULL, 0, line, llen, cwd, env);
			char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;

			json_decref(a);
			if (!s) {
				rc = cli_error("out of memory");
				break;
			}
			lines[n] = line;
			llens[n] = llen;
			objs[n] = (jobq_obj_t){
			    .type = JOBQ_T_JSON, .len = strlen(s), .data = s};
			if (++n < RUN_BATCH && at < len)
				continue;
		}
		/* A full batch, or the last one. */
		for (size_t done = 0; done < n;) {
			int r = jobq_submit_many(c->q, "exec", objs + done,
						 n - done, opts, ids + done);

			if (r <= 0) {
				rc = run_fail(c, r ? r : -EIO, objs[done].len);
				break;
			}
			for (size_t i = done; i < done + (size_t)r; i++) {
				if (doc)
					cli_list_push(
					    &doc, list,
					    json_pack("{s:o,s:s%}", "id",
						      cli_json_u64(ids[i]),
						      "command", lines[i],
						      llens[i]));
				else
					printf("%" PRIu64 "\n", ids[i]);
			}
			done += (size_t)r;
			total += (size_t)r;
		}
		for (size_t i = 0; i < n; i++)
			free(objs[i].data);
		n = 0;
		if (rc)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(objs[i].data);
	if (doc)
		return rc ? (json_decref(doc), rc) : cli_print_json(doc);
	if (!rc && !total && !c->quiet)
		fprintf(stderr, "jobq: run --from: no commands (every line "
				"is blank)\n");
	return rc ? rc : cli_flush();
}

int cmd_run(struct cli *c)
{
	const char *from = c->optval[OPT_FROM];
	struct jobq_submit_opts opts;
	uint64_t after[64], id = 0;
	char cwd[PATH_MAX];
	json_t *env = NULL, *a;
	char *s = NULL, *buf = NULL;
	size_t len = 0;
	int rc;

	if (from && c->nargv)
		return cli_usage(c, "give either -- CMD [ARG...] or --from "
				    "FILE, not both");
	if (!from && !c->nargv)
		return cli_usage(c, "missing the command: -- CMD [ARG...] or "
				    "--from FILE");
	if ((rc = cli_submit_opts(c, &opts, after)))
		return rc;
	if (from && opts.unique)
		return cli_usage(c, "--unique names one job; with --from "
				    "every line is a job");
	/* A command runs once unless asked: a task spooler that quietly ran
	 * a failed build three more times would surprise. */
	if (!c->optval[OPT_RETRIES])
		opts.no_retry = 1;
	if (!getcwd(cwd, sizeof(cwd)))
		return cli_error("run: the working directory: %s",
				 strerror(errno));
	if (from) {
		int fd = strcmp(from, "-") ? open(from, O_RDONLY | O_CLOEXEC)
					   : STDIN_FILENO;

		if (fd < 0)
			return cli_error("run --from \"%s\": %s", from,
					 strerror(errno));
		rc = cli_read_all(fd, &buf, &len);
		if (fd != STDIN_FILENO)
			close(fd);
		if (rc)
			return cli_error("run --from \"%s\": %s", from,
					 strerror(-rc));
	}
	env = env_object();
	if (!env) {
		free(buf);
		return cli_error("out of memory");
	}
	if ((rc = cli_connect(c)))
		goto out;
	if (from) {
		rc = run_lines(c, buf, len, &opts, cwd, env);
		goto out;
	}
	a = exec_args(c->argv, c->nargv, NULL, 0, cwd, env);
	s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!s) {
		rc = cli_error("out of memory");
		goto out;
	}
	rc = jobq_submit(c->q, "exec", JOBQ_T_JSON, s, strlen(s), &opts, &id);
	if (rc < 0) {
		rc = run_fail(c, rc, strlen(s));
		goto out;
	}
	if (c->json) {
		rc = cli_print_json(json_pack("{s:o}", "id", cli_json_u64(id)));
		goto out;
	}
	printf("%" PRIu64 "\n", id);
	rc = cli_flush();
out:
	free(s);
	free(buf);
	json_decref(env);
	return rc;
}

/* ---- logs --------------------------------------------------------------- */

/*
 * Where logs writes: stdout, or with --json a buffer printed at the end as
 * {"id", "state", "output"} ("output_base64" when it is not UTF-8).
 */
static struct {
	bool on;
	char *buf;
	size_t len, cap;
} collect;

static int out_write(const void *p, size_t n)
{
	if (!collect.on)
		return cli_write_all(STDOUT_FILENO, p, n);
	if (collect.len + n > collect.cap) {
		size_t cap = (collect.len + n) * 2;
		char *b = realloc(collect.buf, cap);

		if (!b)
			return -ENOMEM;
		collect.buf = b;
		collect.cap = cap;
	}
	memcpy(collect.buf + collect.len, p, n);
	collect.len += n;
	return 0;
}

static bool is_final(int state)
{
	return state == JOBQ_JOB_SUCCEEDED || state == JOBQ_JOB_DEAD ||
	       state == JOBQ_JOB_CANCELLED;
}

/* What is in @fd from *@off to its end, to stdout. A file shorter than
 * *@off was started again by a new attempt: read from its beginning.
 * Returns 0 or -errno. */
static int copy_new(int fd, off_t *off)
{
	char buf[65536];
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (st.st_size < *off)
		*off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), *off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (out_write(buf, (size_t)n))
			return -EPIPE;
		*off += n;
	}
}

/* The output kept in an exec job's result: stdout, then stderr. */
static int print_result_output(struct cli *c, uint64_t id, int state)
{
	jobq_obj_t o = {0};
	json_t *r = NULL;
	int rc = jobq_job_result(c->q, id, &o);

	if (rc == -EAGAIN)
		return cli_error("job %" PRIu64 " has no output yet (it is "
				 "%s); jobq logs %" PRIu64
				 " --follow waits for it",
				 id, jobq_job_state_name(state), id);
	if (rc)
		return cli_fail(c, "logs", rc);
	if (state != JOBQ_JOB_SUCCEEDED || jobq_obj_json(&o, &r) ||
	    !json_is_object(r)) {
		/* A failed job keeps its error, not its output. */
		json_decref(r);
		jobq_obj_free(&o);
		return cli_error("job %" PRIu64 ": its log is gone and its "
				 "result holds no output",
				 id);
	}
	for (int i = 0; i < 2; i++) {
		json_t *v = json_object_get(r, i ? "stderr" : "stdout");

		if (json_is_string(v) &&
		    out_write(json_string_value(v), json_string_length(v))) {
			rc =
			    cli_error("writing to stdout: %s", strerror(errno));
			break;
		}
	}
	json_decref(r);
	jobq_obj_free(&o);
	return rc;
}

static int logs(struct cli *c, uint64_t id, bool follow);

/* The state of the job when logs last looked. */
static int last_state;

int cmd_logs(struct cli *c)
{
	bool follow = c->optval[OPT_FOLLOW] != NULL;
	uint64_t id;
	int rc;

	if (cli_parse_u64(c->args[0], &id) || !id)
		return cli_usage(c, "\"%s\" is not a job id", c->args[0]);
	if ((rc = cli_connect(c)))
		return rc;
	collect.on = c->json;
	rc = logs(c, id, follow);
	if (collect.on && (rc == EXIT_OK || rc == EXIT_JOB)) {
		json_t *doc =
		    json_pack("{s:o,s:s}", "id", cli_json_u64(id), "state",
			      jobq_job_state_name(last_state));
		int prc;

		if (doc &&
		    cli_json_data(doc, "output", collect.buf, collect.len)) {
			json_decref(doc);
			doc = NULL;
		}
		prc = cli_print_json(doc);
		if (prc)
			rc = prc;
	}
	free(collect.buf);
	collect.buf = NULL;
	return rc;
}

static int logs(struct cli *c, uint64_t id, bool follow)
{
	struct jobq_job_info ji;
	char path[PATH_MAX];
	off_t off = 0;
	int fd = -1, rc;

	if (jobq__exec_log_path(c->dir, id, path, sizeof(path)))
		return cli_error("logs: instance directory name too long");
	for (;;) {
		bool final;

		if ((rc = jobq_job_info(c->q, id, &ji))) {
			if (rc == -ENOENT)
				return cli_error("no job %" PRIu64
						 " (it may have expired)",
						 id);
			return cli_fail(c, "logs", rc);
		}
		if (strcmp(ji.type, "exec"))
			return cli_error("job %" PRIu64 " is of type %s: only "
					 "exec jobs have logs",
					 id, ji.type);
		final = is_final(ji.state);
		last_state = ji.state;
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT) {
			return cli_error("logs: \"%s\": %s", path,
					 strerror(errno));
		}
		if (fd >= 0 && (rc = copy_new(fd, &off))) {
			close(fd);
			if (rc == -EPIPE)
				return EXIT_ERROR;
			return cli_error("logs: \"%s\": %s", path,
					 strerror(-rc));
		}
		if (fd < 0 && (final || !follow))
			return print_result_output(c, id, ji.state);
		if (!follow || final)
			break;
		nanosleep(&(struct timespec){0, FOLLOW_POLL_MS * 1000000L},
			  NULL);
	}
	close(fd);
	if (follow && ji.state != JOBQ_JOB_SUCCEEDED)
		return EXIT_JOB;
	return EXIT_OK;
}
