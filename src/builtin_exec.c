/* SPDX-License-Identifier: MIT */
/*
 * builtin_exec.c - the exec job type: run a command in a process group of
 * its own, capture its output through the engine, report how it ended.
 *
 *   args   {"argv": [...], "cwd": "...", "env": {...}, "stdin": "...",
 *           "capture": N, "timeout": S}
 *   result {"exit": N, "signal": N, "stdout": "...", "stderr": "...",
 *           "truncated": bool}
 *
 * The pieces, all on the worker's loop:
 *
 *   - the job's fiber starts the child (posix_spawn: its own process group,
 *     default signal dispositions, the job's cwd and environment), then
 *     waits for it to exit by polling a pidfd, in slices between which it
 *     looks for a cancel;
 *   - one reader fiber per output pipe reads through the engine, keeps the
 *     first "capture" bytes (64 KiB by default) for the result and appends
 *     everything to the job's log file, which `jobq logs` follows;
 *   - a writer fiber feeds "stdin" through a pipe, when given.
 *
 * The readers and the writer are detached and share a reference-counted
 * struct exec_run with the job's fiber: the fiber waits for the readers
 * through an eventfd (each adds one when it is done) on the normal path,
 * but a cancelled fiber can wait for nothing, so then it just drops its
 * reference and the last fiber out frees the run.
 *
 * The process group is killed (SIGKILL) whenever the job ends: on cancel,
 * on its own timeout, and also after a normal exit, so that a background
 * process the command left behind neither outlives the job nor holds its
 * pipes open. The group is killed while the leader is still a zombie (the
 * pidfd says it exited, it is not reaped yet), so the group id cannot
 * have been reused by then. What the group leaves behind is reaped by the
 * worker, which is a child subreaper for that reason: else the orphans
 * would go to jobqd (a subreaper for its workers' groups, not for these)
 * or to an init that may not reap them.
 *
 * A non-zero exit or a death by signal is a failed job (the retry policy
 * of the job decides about another attempt; `jobq run` asks for none);
 * a command that cannot be started (not found, not executable, a bad
 * working directory) fails for good.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builtin_impl.h"

extern char **environ;

#define CAPTURE_DEFAULT (64 * 1024)
#define READ_CHUNK	(64 * 1024)
/* After the command ended, how long its output may take to drain. */
#define DRAIN_SECONDS 5.0
/* Sweep the logs of expired jobs at most this often (seconds): a sweep
 * reads the whole logs directory, which a busy worker must not do per
 * job. */
#define SWEEP_SECONDS 30

struct capture {
	char *buf;
	size_t len;
	bool truncated;
};

struct exec_run {
	int refs;     /* the job's fiber, the readers, the writer */
	int done_efd; /* each reader adds 1 when it is done */
	int log_fd;   /* -1: no log */
	size_t cap;   /* bytes kept per stream */
	struct capture out, err;
	char *stdin_data;
	size_t stdin_len;
};

struct pipe_fiber {
	struct exec_run *run;
	int fd;
	struct capture *c; /* NULL: the stdin writer */
};

static void run_put(struct exec_run *r)
{
	if (--r->refs)
		return;
	if (r->log_fd >= 0)
		close(r->log_fd);
	if (r->done_efd >= 0)
		close(r->done_efd);
	free(r->out.buf);
	free(r->err.buf);
	free(r->stdin_data);
	free(r);
}

/* A reader: the pipe to its end, into the capture and the log. */
static void reader(void *arg)
{
	struct pipe_fiber *pf = arg;
	struct exec_run *r = pf->run;
	struct capture *c = pf->c;
	char *buf = malloc(READ_CHUNK);
	uint64_t one = 1;

	while (buf) {
		ssize_t n = jobq_io_read(pf->fd, buf, READ_CHUNK, -1, -1);

		if (n <= 0)
			break; /* the end, an error, or cancelled */
		if (c->len < r->cap) {
			size_t take = r->cap - c->len < (size_t)n
					  ? r->cap - c->len
					  : (size_t)n;

			memcpy(c->buf + c->len, buf, take);
			c->len += take;
			if (take < (size_t)n)
				c->truncated = true;
		} else {
			c->truncated = true;
		}
		/* The log is opened O_APPEND: both readers append whole
		 * chunks, interleaved as they arrived. A log that cannot
		 * be written is dropped, not the job. */
		if (r->log_fd >= 0 &&
		    jobq_io_write_all(r->log_fd, buf, (size_t)n, -1, -1) < 0) {
			close(r->log_fd);
			r->log_fd = -1;
		}
	}
	free(buf);
	close(pf->fd);
	if (write(r->done_efd, &one, sizeof(one)) < 0) {
		/* An eventfd counter cannot overflow with two adds. */
	}
	run_put(r);
	free(pf);
}

/* The stdin writer: the data, then the end of the input. */
static void writer(void *arg)
{
	struct pipe_fiber *pf = arg;
	struct exec_run *r = pf->run;

	/* A command that does not read its input closes the pipe: EPIPE,
	 * which is no failure of the job (jobq__builtins_register() made sure
	 * SIGPIPE does not kill the worker). */
	jobq_io_write_all(pf->fd, r->stdin_data, r->stdin_len, -1, -1);
	close(pf->fd);
	run_put(r);
	free(pf);
}

static int spawn_pipe_fiber(struct exec_run *r, int fd, struct capture *c)
{
	struct pipe_fiber *pf = malloc(sizeof(*pf));
	int err;

	if (!pf)
		return -ENOMEM;
	*pf = (struct pipe_fiber){.run = r, .fd = fd, .c = c};
	r->refs++;
	err = jobq_spawn(NULL, c ? reader : writer, pf, NULL);
	if (err) {
		r->refs--;
		free(pf);
	}
	return err;
}

/* "argv[0] argv[1] ..." for messages, at most about 100 bytes; for
 * "sh -c LINE" just the line, which is what the user wrote. */
static void describe(json_t *argv, char *out, size_t len)
{
	size_t at = 0, n = json_array_size(argv), from = 0;

	out[0] = '\0';
	if (n == 3 &&
	    !strcmp(json_string_value(json_array_get(argv, 0)), "sh") &&
	    !strcmp(json_string_value(json_array_get(argv, 1)), "-c"))
		from = 2;
	for (size_t i = from; i < n && at + 4 < len; i++) {
		int w =
		    snprintf(out + at, len - at, "%s%s", i > from ? " " : "",
			     json_string_value(json_array_get(argv, i)));

		if (w < 0)
			break;
		at += (size_t)w;
	}
	if (at >= len - 1 && len > 4)
		memcpy(out + len - 4, "...", 4);
}

/* The last line of @c (at most about 200 bytes), for an error message. */
static void last_line(const struct capture *c, char *out, size_t len)
{
	size_t end = c->len, start;

	while (end && (c->buf[end - 1] == '\n' || c->buf[end - 1] == '\r'))
		end--;
	start = end;
	while (start && c->buf[start - 1] != '\n' && end - start < len - 1)
		start--;
	memcpy(out, c->buf + start, end - start);
	out[end - start] = '\0';
	for (size_t i = 0; i < end - start; i++)
		if ((unsigned char)out[i] < ' ' && out[i] != '\t')
			out[i] = ' ';
}

/*
 * The program to run: @name itself when it has a slash, else the first
 * executable regular file named @name in the PATH of the job's
 * environment. Returns a malloc'd path, or NULL (errno ENOENT or ENOMEM).
 */
static char *find_program(const char *name, const char *path)
{
	const char *p = path;

	if (strchr(name, '/'))
		return strdup(name);
	while (p && *p) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		struct stat st;
		char *full;

		if (asprintf(&full, "%.*s%s%s", (int)dl, p, dl ? "/" : "",
			     name) < 0)
			return NULL;
		if (!stat(full, &st) && S_ISREG(st.st_mode) &&
		    !access(full, X_OK))
			return full;
		free(full);
		p = colon ? colon + 1 : NULL;
	}
	errno = ENOENT;
	return NULL;
}

/* The job's environment as "NAME=VALUE" strings; *path gets its PATH. */
static char **make_env(json_t *env, const char **path)
{
	const char *k;
	json_t *v;
	size_t n = 0;
	char **e = calloc(json_object_size(env) + 1, sizeof(*e));

	if (!e)
		return NULL;
	json_object_foreach(env, k, v)
	{
		if (!json_is_string(v) || !*k || strchr(k, '='))
			continue;
		if (asprintf(&e[n], "%s=%s", k, json_string_value(v)) < 0) {
			e[n] = NULL;
			break;
		}
		if (!strcmp(k, "PATH"))
			*path = json_string_value(v);
		n++;
	}
	return e;
}

static void free_env(char **e)
{
	for (char **p = e; p && *p; p++)
		free(*p);
	free(e);
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/*
 * Waits until @pid exits, leaving it unreaped (a zombie keeps its process
 * group id reserved). Returns 0, -ETIMEDOUT, -ECANCELED or -errno; on a
 * kernel without pidfds it reaps it already (*reaped set, status stored).
 */
static int wait_exit(jobq_job_t *job, pid_t pid, const struct jobq__deadline *d,
		     bool *reaped, int *status)
{
	int pfd = pidfd_open_(pid), r;

	*reaped = false;
	do {
		if (pfd < 0) {
			r = jobq_io_waitpid(pid, status, jobq__slice(d));
			*reaped = r == 0;
		} else {
			r = jobq_io_poll(pfd, POLLIN, jobq__slice(d));
		}
	} while (r == -ETIMEDOUT && !(r = jobq__slice_over(job, d)));
	if (pfd >= 0)
		close(pfd);
	return r < 0 ? r : 0;
}

/*
 * Kills the group of @pid and reaps it: the leader (a zombie already, or
 * dead a moment after the SIGKILL), then the rest of the group. The worker
 * is a child subreaper (jobq__builtins_register()), so the members whose
 * parents died were handed to it, and were handed over before their parent
 * could be reaped: once the leader is reaped, waiting for the group finds
 * every one of them that is ours.
 */
static void kill_and_reap(pid_t pid, bool reaped, int *status)
{
	kill(-pid, SIGKILL);
	if (!reaped)
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PGID, (id_t)pid, &si, WEXITED) < 0 &&
		    errno != EINTR)
			break; /* ECHILD: none left */
	}
}

void jobq__exec_sweep_logs(jobq_t *q)
{
	char dir[4200];
	struct dirent *de;
	DIR *d;

	if (snprintf(dir, sizeof(dir), "%s/logs", jobq_dir(q)) >=
	    (int)sizeof(dir))
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct jobq_job_info ji;
		char *end;
		unsigned long long id = strtoull(de->d_name, &end, 10);

		if (!id || strcmp(end, ".log"))
			continue;
		if (jobq_job_info(q, id, &ji) == -ENOENT)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* Opens the job's log, started again for this attempt; -1 when it cannot
 * be (the job runs without one). */
static int open_log(jobq_t *q, uint64_t id)
{
	char path[4200];
	int fd;

	if (snprintf(path, sizeof(path), "%s/logs", jobq_dir(q)) >=
	    (int)sizeof(path))
		return -1;
	if (mkdir(path, 0700) && errno != EEXIST)
		return -1;
	if (jobq__exec_log_path(jobq_dir(q), id, path, sizeof(path)))
		return -1;
	fd = jobq_io_openat(AT_FDCWD, path,
			    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			    0600);
	return fd < 0 ? -1 : fd;
}

static json_t *exec_result(const struct exec_run *r, int status)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (json_object_set_new(o, "exit",
				WIFEXITED(status)
				    ? json_integer(WEXITSTATUS(status))
				    : json_null()) ||
	    json_object_set_new(o, "signal",
				WIFSIGNALED(status)
				    ? json_integer(WTERMSIG(status))
				    : json_null()) ||
	    jobq__json_set_bytes(o, "stdout", r->out.buf, r->out.len) ||
	    jobq__json_set_bytes(o, "stderr", r->err.buf, r->err.len) ||
	    json_object_set_new(
		o, "truncated",
		json_boolean(r->out.truncated || r->err.truncated))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int jobq__exec_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "exec";
	jobq_t *q = arg;
	/* Shared by the workers of a process, which may run in threads. */
	static _Atomic long last_sweep;
	struct timespec now;
	long last;
	json_t *args = jobq__bargs(job, T), *argv, *env;
	const char *cwd, *in, *path = getenv("PATH");
	char **cargv = NULL, **cenv = NULL, *prog = NULL, what[128];
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	bool fa_init = false, sa_init = false, reaped = false;
	struct exec_run *r = NULL;
	struct jobq__deadline d;
	uint64_t cap, readers_done = 0;
	double timeout;
	size_t inlen = 0, n;
	sigset_t none, dfl;
	int status = 0, rc, err, nreaders = 0;
	pid_t pid = -1;

	if (!args)
		return -EINVAL;
	argv = json_object_get(args, "argv");
	n = json_array_size(argv);
	if (!json_is_array(argv) || !n) {
		rc = jobq_job_fail(job, 1,
				   "%s: args need \"argv\", a non-empty array "
				   "of strings, as in {\"argv\": [\"ls\", "
				   "\"-l\"]}",
				   T);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(argv, i);

		if (!json_is_string(s) ||
		    strlen(json_string_value(s)) != json_string_length(s)) {
			rc = jobq_job_fail(job, 1,
					   "%s: \"argv\" item %zu is not a "
					   "string without NUL bytes",
					   T, i);
			goto out;
		}
	}
	env = json_object_get(args, "env");
	if (env && !json_is_null(env) && !json_is_object(env)) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"env\" must be an object of "
				   "strings: the whole environment",
				   T);
		goto out;
	}
	if ((rc = jobq__bstr(job, args, T, "cwd", false, &cwd, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "stdin", false, &in, &inlen)) ||
	    (rc = jobq__bu64(job, args, T, "capture", CAPTURE_DEFAULT, &cap)) ||
	    (rc = jobq__btimeout(job, args, T, &timeout)))
		goto out;
	/* Both streams must fit one result, with room for the rest. */
	if (cap > (jobq_max_object(q) - 1024) / 2)
		cap = (jobq_max_object(q) - 1024) / 2;
	describe(argv, what, sizeof(what));

	cargv = calloc(n + 1, sizeof(*cargv));
	if (!cargv) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		cargv[i] = (char *)json_string_value(json_array_get(argv, i));
	if (json_is_object(env)) {
		path = NULL;
		cenv = make_env(env, &path);
		if (!cenv) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (cwd) {
		struct stat st;

		const char *why = NULL;

		if (stat(cwd, &st))
			why = strerror(errno);
		else if (!S_ISDIR(st.st_mode))
			why = "not a directory";
		if (why) {
			rc = jobq_job_fail(job, 1,
					   "%s: \"%s\": working directory "
					   "\"%s\": %s",
					   T, what, cwd, why);
			goto out;
		}
	}
	/* A relative PATH entry or program is relative to the job's cwd, as
	 * it would be for a shell started there; looked up from here, it is
	 * only found when the cwds agree. */
	prog = find_program(cargv[0],
			    path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (!prog) {
		rc = errno == ENOENT
			 ? jobq_job_fail(job, 1,
					 "%s: \"%s\": command not "
					 "found (PATH=%s)",
					 T, cargv[0], path ? path : "")
			 : -ENOMEM;
		goto out;
	}

	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	r->refs = 1;
	r->log_fd = -1;
	r->cap = (size_t)cap;
	r->done_efd = eventfd(0, EFD_CLOEXEC);
	r->out.buf = malloc(r->cap + 1);
	r->err.buf = malloc(r->cap + 1);
	if (r->done_efd < 0 || !r->out.buf || !r->err.buf) {
		rc = r->done_efd < 0 ? jobq_job_fail(job, 0, "%s: eventfd: %s",
						     T, strerror(errno))
				     : -ENOMEM;
		goto out;
	}
	if (in) {
		r->stdin_data = malloc(inlen + 1);
		if (!r->stdin_data) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(r->stdin_data, in, inlen);
		r->stdin_len = inlen;
	}
	if (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC) ||
	    (in && pipe2(pin, O_CLOEXEC))) {
		rc = jobq_job_fail(job, 0, "%s: \"%s\": pipe: %s", T, what,
				   strerror(errno));
		goto out;
	}
	if (!in) {
		pin[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (pin[0] < 0) {
			rc = jobq_job_fail(job, 0, "%s: /dev/null: %s", T,
					   strerror(errno));
			goto out;
		}
	}
	r->log_fd = open_log(q, jobq_job_id(job));
	clock_gettime(CLOCK_MONOTONIC, &now);
	last = atomic_load(&last_sweep);
	if (!last) /* the worker swept when it started */
		atomic_compare_exchange_strong(&last_sweep, &last, now.tv_sec);
	else if (now.tv_sec - last >= SWEEP_SECONDS &&
		 atomic_compare_exchange_strong(&last_sweep, &last, now.tv_sec))
		jobq__exec_sweep_logs(q);

	/* The child: stdin, stdout, stderr from the pipes (dup2 clears
	 * close-on-exec on the copies); its own process group, so that one
	 * kill reaches everything it starts; the signal mask empty and the
	 * signals a worker ignores or catches back to their defaults. */
	posix_spawn_file_actions_init(&fa);
	fa_init = true;
	posix_spawnattr_init(&sa);
	sa_init = true;
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	if (cwd)
		posix_spawn_file_actions_addchdir_np(&fa, cwd);
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaddset(&dfl, s);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &dfl);
	posix_spawnattr_setpgroup(&sa, 0);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP |
					  POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	err = posix_spawn(&pid, prog, &fa, &sa, cargv, cenv ? cenv : environ);
	if (err) {
		pid = -1;
		rc = jobq_job_fail(job, 1, "%s: cannot run \"%s\" (%s): %s", T,
				   what, prog, strerror(err));
		goto out;
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;

	/* The readers own their pipe ends from here on. */
	err = spawn_pipe_fiber(r, pout[0], &r->out);
	if (!err) {
		pout[0] = -1;
		nreaders++;
		err = spawn_pipe_fiber(r, perr[0], &r->err);
	}
	if (!err) {
		perr[0] = -1;
		nreaders++;
		if (in)
			err = spawn_pipe_fiber(r, pin[1], NULL);
	}
	if (err) {
		kill_and_reap(pid, false, &status);
		rc = jobq_job_fail(job, 0,
				   "%s: \"%s\": cannot start its "
				   "output readers: %s",
				   T, what, strerror(-err));
		goto out;
	}
	pin[1] = -1;

	jobq__deadline_init(&d, timeout);
	err = wait_exit(job, pid, &d, &reaped, &status);
	kill_and_reap(pid, reaped, &status);
	if (err == -ECANCELED) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"%s\": cancelled; its process group "
				   "%d was killed",
				   T, what, (int)pid);
		goto out;
	}
	if (err == -ETIMEDOUT) {
		rc = jobq_job_fail(job, 0,
				   "%s: \"%s\": timed out after %g s; its "
				   "process group %d was killed",
				   T, what, timeout, (int)pid);
		goto out;
	}
	if (err) {
		rc = jobq_job_fail(job, 0, "%s: \"%s\": waiting for pid %d: %s",
				   T, what, (int)pid, strerror(-err));
		goto out;
	}

	/* The group is dead: the pipes end once they are drained. */
	while (readers_done < (uint64_t)nreaders) {
		uint64_t v;
		ssize_t got =
		    jobq_io_read(r->done_efd, &v, sizeof(v), -1, DRAIN_SECONDS);

		if (got != sizeof(v))
			break;
		readers_done += v;
	}
	if (readers_done < (uint64_t)nreaders) {
		rc = jobq_job_fail(job, 0,
				   "%s: \"%s\": its output did not end within "
				   "%g s of its exit",
				   T, what, DRAIN_SECONDS);
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = jobq__succeed_json(job, exec_result(r, status));
	} else {
		char tail[200];

		last_line(&r->err, tail, sizeof(tail));
		if (WIFEXITED(status))
			rc = jobq_job_fail(job, 0,
					   "%s: \"%s\" exited with "
					   "status %d%s%s",
					   T, what, WEXITSTATUS(status),
					   *tail ? ": " : "", tail);
		else
			rc = jobq_job_fail(job, 0,
					   "%s: \"%s\" was killed by "
					   "signal %d (%s)%s%s",
					   T, what, WTERMSIG(status),
					   strsignal(WTERMSIG(status)),
					   *tail ? ": " : "", tail);
	}
out:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (sa_init)
		posix_spawnattr_destroy(&sa);
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	if (r)
		run_put(r);
	free(prog);
	free(cargv);
	free_env(cenv);
	json_decref(args);
	return rc;
}
