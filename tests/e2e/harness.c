/* SPDX-License-Identifier: MIT */
/*
 * harness.c - start and stop real managers, fork children, run the CLI and
 * speak the raw ring protocol, for the end-to-end tests.
 *
 * Invariant kept by the cleanup code: every process a test starts (a
 * manager's process group, a forked child, a CLI run, a daemonized manager)
 * is recorded in the tables below before the test can be interrupted, and
 * whatever way the test program ends (return from main, exit(), a signal
 * from meson's timeout), the process that called jqt_init() kills them all
 * and removes their directories. Forked children never run that cleanup:
 * it checks the pid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/io_uring.h>

#include "harness.h"

#define JQT_MAX_TRACKED 512

static pid_t jqt_owner;
static struct jqt_mgr *jqt_mgrs[16];
static _Atomic pid_t jqt_children[JQT_MAX_TRACKED];
static char jqt_dirs[16][PATH_MAX]; /* tops to remove, "" when free */

struct jqt_mgr *jqt_cur;

double jqt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void jqt_sleep(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *jqt_jobqd_path(void)
{
	return getenv("JOBQ_TEST_JOBQD");
}

const char *jqt_jobq_path(void)
{
	return getenv("JOBQ_TEST_JOBQ");
}

/* ------------------------------------------------------------------------
 * Tracking and cleanup.
 */
static void track_child(pid_t pid)
{
	for (int i = 0; i < JQT_MAX_TRACKED; i++) {
		pid_t z = 0;

		if (atomic_compare_exchange_strong(&jqt_children[i], &z, pid))
			return;
	}
}

static void untrack_child(pid_t pid)
{
	for (int i = 0; i < JQT_MAX_TRACKED; i++) {
		pid_t p = pid;

		if (atomic_compare_exchange_strong(&jqt_children[i], &p, 0))
			return;
	}
}

static void track_dir(const char *top)
{
	for (int i = 0; i < 16; i++) {
		if (!jqt_dirs[i][0]) {
			snprintf(jqt_dirs[i], sizeof(jqt_dirs[i]), "%s", top);
			return;
		}
	}
}

static void untrack_dir(const char *top)
{
	for (int i = 0; i < 16; i++)
		if (!strcmp(jqt_dirs[i], top))
			jqt_dirs[i][0] = 0;
}

/*
 * Remove a directory tree with system calls only (getdents64, unlinkat), so
 * that a signal handler may call it. Depth is bounded: instance directories
 * hold files and at most a level or two of subdirectories.
 */
static void raw_rmtree(int parent, const char *name, int depth)
{
	char buf[4096];
	int fd;
	long n;

	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd < 0) {
		unlinkat(parent, name, 0);
		return;
	}
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);

			off += d->reclen;
			if (!strcmp(d->name, ".") || !strcmp(d->name, ".."))
				continue;
			if (d->type == DT_DIR && depth < 4)
				raw_rmtree(fd, d->name, depth + 1);
			else
				unlinkat(fd, d->name, 0);
		}
	}
	close(fd);
	unlinkat(parent, name, AT_REMOVEDIR);
}

void jqt_rmtree(const char *path)
{
	if (path && *path) {
		raw_rmtree(AT_FDCWD, path, 0);
		untrack_dir(path);
	}
}

/* Kill everything and remove every directory; async-signal-safe. */
static void cleanup_all(void)
{
	if (getpid() != jqt_owner)
		return;
	for (int i = 0; i < 16; i++) {
		struct jqt_mgr *m = jqt_mgrs[i];

		if (m && m->pid > 0) {
			kill(-m->pid, SIGKILL);
			kill(m->pid, SIGKILL);
		}
	}
	for (int i = 0; i < JQT_MAX_TRACKED; i++) {
		pid_t p = atomic_load(&jqt_children[i]);

		if (p > 0) {
			kill(-p, SIGKILL);
			kill(p, SIGKILL);
		}
	}
	for (int i = 0; i < 16; i++)
		if (jqt_dirs[i][0])
			raw_rmtree(AT_FDCWD, jqt_dirs[i], 0);
}

static void on_fatal_signal(int sig)
{
	static const char msg[] = "jqt: interrupted by a signal; cleaning up\n";

	if (getpid() == jqt_owner) {
		(void)!write(2, msg, sizeof(msg) - 1);
		cleanup_all();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void reset_signals_in_child(void)
{
	sigset_t none;

	/* Die with the test: even a test that crashes in a way no handler
	 * sees leaves nothing behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGABRT, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void skip(const char *why)
{
	printf("SKIP: %s\n", why);
	fflush(stdout);
	exit(JQT_SKIP);
}

void jqt_init(void)
{
	struct io_uring_params p;
	const char *d = jqt_jobqd_path();
	long fd;

	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
	if (!d || !*d || access(d, X_OK) < 0)
		skip("JOBQ_TEST_JOBQD does not name an executable jobqd");

	/* The manager needs io_uring; a kernel or a seccomp profile that
	 * forbids it is a reason to skip, not a failure of jobq. */
	memset(&p, 0, sizeof(p));
	fd = syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0) {
		char why[128];

		snprintf(why, sizeof(why),
			 "io_uring is not available here (%s); see "
			 "/proc/sys/kernel/io_uring_disabled",
			 strerror(errno));
		skip(why);
	}
	close((int)fd);

	jqt_owner = getpid();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGALRM, on_fatal_signal);
	/* A sanitizer's report ends in abort() (ASAN_OPTIONS in meson's
	 * environment); SIGSEGV and friends stay with the sanitizer, which
	 * reports and aborts. Children also get PR_SET_PDEATHSIG. */
	signal(SIGABRT, on_fatal_signal);
	atexit(cleanup_all);
}

void jqt_init_cli(void)
{
	const char *c = jqt_jobq_path();

	if (!c || !*c || access(c, X_OK) < 0)
		skip("JOBQ_TEST_JOBQ does not name an executable jobq");
	jqt_init();
}

/* ------------------------------------------------------------------------
 * Managers.
 */
int jqt_tmpdir(char *buf, size_t len)
{
	const char *t = getenv("TMPDIR");

	/* The control socket's path must fit in sun_path (108 bytes). */
	if (!t || !*t || strlen(t) > 40)
		t = "/tmp";
	if ((size_t)snprintf(buf, len, "%s/jqt-XXXXXX", t) >= len)
		return -1;
	if (!mkdtemp(buf))
		return -1;
	track_dir(buf);
	return 0;
}

int jqt_status_ok(int status)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int jqt_mgr_alive(struct jqt_mgr *m)
{
	int st;
	pid_t r;

	if (m->pid <= 0 || m->exit_status != -1)
		return 0;
	r = waitpid(m->pid, &st, WNOHANG);
	if (r == m->pid) {
		m->exit_status = st;
		return 0;
	}
	return 1;
}

int jqt_mgr_wait_exit(struct jqt_mgr *m, double timeout)
{
	double end = jqt_now() + timeout;

	while (jqt_mgr_alive(m)) {
		if (jqt_now() > end)
			return -ETIMEDOUT;
		jqt_sleep(0.01);
	}
	return 0;
}

static void forget_mgr(struct jqt_mgr *m)
{
	for (int i = 0; i < 16; i++)
		if (jqt_mgrs[i] == m)
			jqt_mgrs[i] = NULL;
}

/* Fork and exec jobqd on m->dir and wait until it serves (see .h). */
static int spawn(struct jqt_mgr *m, const char *const *args)
{
	const char *argv[64];
	int n = 0;
	double end;
	pid_t pid;

	m->exit_status = -1;
	argv[n++] = jqt_jobqd_path();
	argv[n++] = "--dir";
	argv[n++] = m->dir;
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	pid = fork();
	if (pid < 0) {
		perror("jqt: fork");
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		reset_signals_in_child();
		if ((m->flags & JQT_MGR_NETNS) && unshare(CLONE_NEWNET)) {
			perror("jqt: unshare(CLONE_NEWNET)");
			_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		perror("jqt: exec jobqd");
		_exit(127);
	}
	/* Both sides set the group, so it exists before either goes on. */
	setpgid(pid, pid);
	m->pid = pid;
	for (int i = 0; i < 16; i++) {
		if (!jqt_mgrs[i]) {
			jqt_mgrs[i] = m;
			break;
		}
	}

	/* Ready means: a client can connect. Sanitizers make the start slow,
	 * hence the generous bound. */
	end = jqt_now() + 10;
	for (;;) {
		jobq_t *q;
		int rc;

		if (!jqt_mgr_alive(m)) {
			fprintf(stderr,
				"jqt: jobqd exited during start-up "
				"(wait status 0x%x)\n",
				m->exit_status);
			jqt_mgr_stop(m);
			return -1;
		}
		rc = jobq_open(&q, m->dir);
		if (rc == 0) {
			jobq_close(q);
			return 0;
		}
		if (jqt_now() > end) {
			fprintf(stderr,
				"jqt: jobqd in %s did not accept a client "
				"within 10 s (last: %s)\n",
				m->dir, jobq_strerror(rc));
			jqt_mgr_stop(m);
			return -1;
		}
		jqt_sleep(0.02);
	}
}

int jqt_mgr_start(struct jqt_mgr *m, const char *const *args)
{
	return jqt_mgr_start_ex(m, args, 0);
}

int jqt_mgr_start_ex(struct jqt_mgr *m, const char *const *args, int flags)
{
	memset(m, 0, sizeof(*m));
	m->flags = flags;
	if (jqt_tmpdir(m->top, sizeof(m->top)) < 0) {
		perror("jqt: mkdtemp");
		return -1;
	}
	if ((size_t)snprintf(m->dir, sizeof(m->dir), "%.*s/jobq",
			     (int)(sizeof(m->dir) - 8),
			     m->top) >= sizeof(m->dir))
		return -1;
	return spawn(m, args);
}

int jqt_mgr_restart(struct jqt_mgr *m, const char *const *args)
{
	if (m->pid > 0 && jqt_mgr_alive(m))
		return -1;
	if (m->pid > 0) {
		kill(-m->pid, SIGKILL);
		forget_mgr(m);
		m->pid = 0;
	}
	return spawn(m, args);
}

int jqt_mgr_stop(struct jqt_mgr *m)
{
	int status = -1;

	if (m->pid > 0) {
		if (jqt_mgr_alive(m)) {
			kill(-m->pid, SIGTERM);
			if (jqt_mgr_wait_exit(m, 10) < 0) {
				fprintf(stderr,
					"jqt: jobqd %d ignored SIGTERM "
					"for 10 s; killing it\n",
					(int)m->pid);
				kill(-m->pid, SIGKILL);
				waitpid(m->pid, NULL, 0);
				m->exit_status = -1;
			}
		}
		status = m->exit_status;
		/* Anything left in its group (workers) goes too. */
		kill(-m->pid, SIGKILL);
		forget_mgr(m);
		m->pid = 0;
	}
	if (m->top[0]) {
		jqt_rmtree(m->top);
		m->top[0] = 0;
	}
	return status;
}

static struct jqt_mgr jqt_default_mgr;

int jqt_setup(void **state)
{
	if (jqt_mgr_start(&jqt_default_mgr, NULL) < 0)
		return -1;
	jqt_cur = &jqt_default_mgr;
	*state = jqt_cur;
	return 0;
}

int jqt_teardown(void **state)
{
	struct jqt_mgr *m = *state;
	int st;

	if (!m)
		return 0;
	if (!jqt_mgr_alive(m) && m->exit_status != -1) {
		fprintf(stderr,
			"jqt: the manager died during the test "
			"(wait status 0x%x)\n",
			m->exit_status);
		jqt_mgr_stop(m);
		return -1;
	}
	st = jqt_mgr_stop(m);
	jqt_cur = NULL;
	if (!jqt_status_ok(st)) {
		if (st != -1 && WIFSIGNALED(st))
			fprintf(stderr,
				"jqt: jobqd died of signal %d on "
				"SIGTERM\n",
				WTERMSIG(st));
		else
			fprintf(stderr,
				"jqt: jobqd did not exit 0 on SIGTERM "
				"(wait status 0x%x)\n",
				st);
		return -1;
	}
	return 0;
}

jobq_t *jqt_open_or_die(const struct jqt_mgr *m)
{
	jobq_t *q;
	int rc = jobq_open(&q, m->dir);

	if (rc < 0) {
		fprintf(stderr, "jqt[%d]: jobq_open: %s\n", (int)getpid(),
			jobq_strerror(rc));
		_exit(99);
	}
	return q;
}

/* ------------------------------------------------------------------------
 * Children.
 */
pid_t jqt_fork(int (*fn)(int idx, void *arg), int idx, void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int rc;

		reset_signals_in_child();
		rc = fn(idx, arg);
		_exit(rc & 0xff);
	}
	track_child(pid);
	return pid;
}

int jqt_fork_n(int n, int (*fn)(int idx, void *arg), void *arg, pid_t *pids)
{
	for (int i = 0; i < n; i++) {
		pids[i] = jqt_fork(fn, i, arg);
		if (pids[i] < 0) {
			for (int j = 0; j < i; j++)
				jqt_kill_child(pids[j]);
			return -1;
		}
	}
	return 0;
}

int jqt_wait_pid(pid_t pid, double timeout, int *status)
{
	double end = jqt_now() + timeout;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			untrack_child(pid);
			if (status)
				*status = st;
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			untrack_child(pid);
			if (status)
				*status = -1;
			return -errno;
		}
		if (jqt_now() > end)
			return -ETIMEDOUT;
		jqt_sleep(0.005);
	}
}

void jqt_track_pid(pid_t pid)
{
	if (pid > 0)
		track_child(pid);
}

void jqt_untrack_pid(pid_t pid)
{
	untrack_child(pid);
}

void jqt_kill_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	untrack_child(pid);
}

int jqt_wait_all(pid_t *pids, int n, double timeout, int *status)
{
	double end = jqt_now() + timeout;
	int bad = 0;

	for (int i = 0; i < n; i++) {
		int st = -1;
		double left = end - jqt_now();

		if (jqt_wait_pid(pids[i], left > 0 ? left : 0, &st) < 0) {
			fprintf(stderr,
				"jqt: child %d (pid %d) still running "
				"at the deadline; killing it\n",
				i, (int)pids[i]);
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &st, 0);
			untrack_child(pids[i]);
		}
		if (!jqt_status_ok(st)) {
			bad++;
			if (WIFSIGNALED(st))
				fprintf(stderr,
					"jqt: child %d died of signal "
					"%d\n",
					i, WTERMSIG(st));
			else
				fprintf(stderr, "jqt: child %d exited %d\n", i,
					WEXITSTATUS(st));
		}
		if (status)
			status[i] = st;
	}
	return bad;
}

void *jqt_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("jqt: mmap");
		abort();
	}
	return p;
}

void jqt_barrier_init(struct jqt_barrier *b, uint32_t n)
{
	atomic_store(&b->count, 0);
	atomic_store(&b->gen, 0);
	b->n = n;
}

int jqt_barrier_wait(struct jqt_barrier *b, double timeout)
{
	uint32_t gen = atomic_load(&b->gen);
	double end = jqt_now() + timeout;

	if (atomic_fetch_add(&b->count, 1) + 1 == b->n) {
		atomic_store(&b->count, 0);
		atomic_fetch_add(&b->gen, 1);
		return 0;
	}
	while (atomic_load(&b->gen) == gen) {
		if (jqt_now() > end)
			return -ETIMEDOUT;
		jqt_sleep(0.0005);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Running programs.
 */
static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap * 2 : 4096;
		char *nb;

		while (c < *len + n + 1)
			c *= 2;
		nb = realloc(*buf, c);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
	return 0;
}

int jqt_run(const char *prog, const char *const *argv, const void *in,
	    size_t in_len, double timeout, struct jqt_out *o)
{
	int pin[2], pout[2], perr[2];
	size_t ocap = 0, ecap = 0, sent = 0;
	double end = jqt_now() + timeout;
	int open_out = 1, open_err = 1, st;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	if (pipe2(pin, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Its own group, so a timeout also takes what it started. */
		setpgid(0, 0);
		reset_signals_in_child();
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		execv(prog, (char *const *)argv);
		fprintf(stderr, "jqt: exec %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	track_child(pid);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	if (!in || in_len == 0) {
		close(pin[1]);
		pin[1] = -1;
	}
	append(&o->out, &o->out_len, &ocap, "", 0);
	append(&o->err, &o->err_len, &ecap, "", 0);

	while (open_out || open_err) {
		struct pollfd pf[3] = {
		    {.fd = open_out ? pout[0] : -1, .events = POLLIN},
		    {.fd = open_err ? perr[0] : -1, .events = POLLIN},
		    {.fd = pin[1], .events = POLLOUT},
		};
		double left = end - jqt_now();
		char buf[65536];
		ssize_t r;

		if (left <= 0)
			break;
		if (poll(pf, 3, (int)(left * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents) {
			r = read(pout[0], buf, sizeof(buf));
			if (r > 0)
				append(&o->out, &o->out_len, &ocap, buf,
				       (size_t)r);
			else if (r == 0 || errno != EINTR)
				open_out = 0;
		}
		if (pf[1].revents) {
			r = read(perr[0], buf, sizeof(buf));
			if (r > 0)
				append(&o->err, &o->err_len, &ecap, buf,
				       (size_t)r);
			else if (r == 0 || errno != EINTR)
				open_err = 0;
		}
		if (pin[1] >= 0 && pf[2].revents) {
			r = write(pin[1], (const char *)in + sent,
				  in_len - sent);
			if (r > 0)
				sent += (size_t)r;
			if ((r < 0 && errno != EAGAIN && errno != EINTR) ||
			    sent == in_len) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
	}
	if (pin[1] >= 0)
		close(pin[1]);
	close(pout[0]);
	close(perr[0]);

	{
		double left = end - jqt_now();

		if (jqt_wait_pid(pid, left > 0 ? left : 0, &st) < 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			untrack_child(pid);
			o->code = -1;
			return 0;
		}
	}
	/* The group is not killed after a normal exit: a daemonizing
	 * program (jobqd --daemon) may leave its daemon in it. */
	if (WIFEXITED(st))
		o->code = WEXITSTATUS(st);
	else
		o->code = 128 + WTERMSIG(st);
	return 0;
}

int jqt_cli(const struct jqt_mgr *m, struct jqt_out *o, const void *in,
	    size_t in_len, ...)
{
	const char *argv[64];
	int n = 0, rc;
	va_list ap;
	const char *a;

	argv[n++] = jqt_jobq_path();
	if (m) {
		argv[n++] = "--dir";
		argv[n++] = m->dir;
	}
	va_start(ap, in_len);
	while ((a = va_arg(ap, const char *)) && n < 63)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	rc = jqt_run(argv[0], argv, in, in_len, 15, o);
	if (o->code != 0 && o->err_len)
		fprintf(stderr, "jqt: jobq %s -> %d: %s", argv[m ? 3 : 1],
			o->code, o->err);
	return rc;
}

void jqt_out_free(struct jqt_out *o)
{
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

int jqt_count_lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++) {
		if (*s == '\n')
			n++;
		else if (!s[1])
			n++;
	}
	return n;
}

int jqt_file_count(const char *path, const char *what)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

void jqt_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = jqt_rand(&s);

		memcpy(p + i, &v, 8);
	}
	if (i < len) {
		uint64_t v = jqt_rand(&s);

		memcpy(p + i, &v, len - i);
	}
}

/* ------------------------------------------------------------------------
 * The raw connection: the handshake of proto.h, done by hand.
 */
int jqt_raw_open(const char *dir, struct jqt_raw *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct jobq_hello hello;
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {&r->welcome, sizeof(r->welcome)};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = cm.buf,
	    .msg_controllen = sizeof(cm.buf),
	};
	struct cmsghdr *c;
	int fds[4] = {-1, -1, -1, -1};
	ssize_t n;
	void *p;
	const struct jobq_region_hdr *h;

	memset(r, 0, sizeof(*r));
	r->sock = r->store_fd = r->region_fd = r->sq_efd = r->cq_efd = -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir,
		 JOBQ_SOCKET_NAME);
	r->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->sock < 0)
		return -errno;
	if (connect(r->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(r->sock);
		r->sock = -1;
		return e;
	}
	memset(&hello, 0, sizeof(hello));
	hello.magic = JOBQ_HELLO_MAGIC;
	hello.version = JOBQ_LAYOUT_VERSION;
	hello.pid = getpid();
	snprintf(hello.name, sizeof(hello.name), "jqt-raw");
	if (send(r->sock, &hello, sizeof(hello), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(hello))
		goto fail_errno;

	{
		struct pollfd pf = {.fd = r->sock, .events = POLLIN};

		if (poll(&pf, 1, 10000) != 1) {
			fprintf(stderr, "jqt: no welcome within 10 s\n");
			jqt_raw_close(r);
			return -ETIMEDOUT;
		}
	}
	n = recvmsg(r->sock, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		goto fail_errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			memcpy(fds, CMSG_DATA(c),
			       (k > 4 ? 4 : k) * sizeof(int));
		}
	}
	r->store_fd = fds[0];
	r->region_fd = fds[1];
	r->sq_efd = fds[2];
	r->cq_efd = fds[3];
	if (n != (ssize_t)sizeof(r->welcome) ||
	    r->welcome.magic != JOBQ_HELLO_MAGIC) {
		fprintf(stderr, "jqt: malformed welcome (%zd bytes)\n", n);
		jqt_raw_close(r);
		return -EPROTO;
	}
	if (r->welcome.status < 0) {
		fprintf(stderr, "jqt: manager refused: %.*s\n",
			(int)sizeof(r->welcome.msg), r->welcome.msg);
		int st = r->welcome.status;

		jqt_raw_close(r);
		return st;
	}
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0) {
		fprintf(stderr, "jqt: welcome without four descriptors\n");
		jqt_raw_close(r);
		return -EPROTO;
	}
	r->store_size = r->welcome.store_size;
	r->region_size = r->welcome.region_size;
	p = mmap(NULL, r->store_size, PROT_READ, MAP_SHARED, r->store_fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	r->store = p;
	p = mmap(NULL, r->region_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 r->region_fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	r->region = p;
	h = r->hdr = p;
	if (r->region_size < sizeof(*h) || h->magic != JOBQ_REGION_MAGIC ||
	    h->version != JOBQ_LAYOUT_VERSION || !h->sq_entries ||
	    !h->cq_entries || (h->sq_entries & (h->sq_entries - 1)) ||
	    (h->cq_entries & (h->cq_entries - 1)) ||
	    h->sq_off + (uint64_t)h->sq_entries * sizeof(struct jobq_sqe) >
		r->region_size ||
	    h->cq_off + (uint64_t)h->cq_entries * sizeof(struct jobq_cqe) >
		r->region_size ||
	    h->arena_off + h->arena_size > r->region_size) {
		fprintf(stderr, "jqt: the region header does not follow "
				"proto.h\n");
		jqt_raw_close(r);
		return -EPROTO;
	}
	r->sq_entries = h->sq_entries;
	r->cq_entries = h->cq_entries;
	r->sqes = (struct jobq_sqe *)(r->region + h->sq_off);
	r->cqes = (struct jobq_cqe *)(r->region + h->cq_off);
	r->arena_off = h->arena_off;
	r->arena_size = h->arena_size;
	return 0;

fail_errno : {
	int e = -errno;

	jqt_raw_close(r);
	return e;
}
}

void jqt_raw_close(struct jqt_raw *r)
{
	if (r->region)
		munmap(r->region, r->region_size);
	if (r->store)
		munmap((void *)r->store, r->store_size);
	r->region = NULL;
	r->store = NULL;
	if (r->sock >= 0)
		close(r->sock);
	if (r->store_fd >= 0)
		close(r->store_fd);
	if (r->region_fd >= 0)
		close(r->region_fd);
	if (r->sq_efd >= 0)
		close(r->sq_efd);
	if (r->cq_efd >= 0)
		close(r->cq_efd);
	r->sock = r->store_fd = r->region_fd = r->sq_efd = r->cq_efd = -1;
}

int jqt_raw_submit(struct jqt_raw *r, const struct jobq_sqe *sqe)
{
	uint32_t tail = load_relaxed(&r->hdr->sq.tail);
	uint32_t head = load_acquire(&r->hdr->sq.head);
	uint64_t one = 1;

	if (tail - head >= r->sq_entries)
		return -EBUSY;
	r->sqes[tail & (r->sq_entries - 1)] = *sqe;
	store_release(&r->hdr->sq.tail, tail + 1);
	full_fence();
	/* Always wake: a raw client has no reason to save the syscall. */
	(void)!write(r->sq_efd, &one, sizeof(one));
	return 0;
}

int jqt_raw_peek(struct jqt_raw *r, uint32_t nth, struct jobq_cqe *cqe,
		 double timeout)
{
	double end = jqt_now() + timeout;

	for (;;) {
		uint32_t head = load_relaxed(&r->hdr->cq.head);
		uint32_t tail = load_acquire(&r->hdr->cq.tail);
		struct pollfd pf = {.fd = r->cq_efd, .events = POLLIN};
		double left;

		if (tail - head > nth) {
			*cqe = r->cqes[(head + nth) & (r->cq_entries - 1)];
			return 0;
		}
		store_release(&r->hdr->cq.flags, JOBQ_RING_NEED_WAKEUP);
		full_fence();
		tail = load_acquire(&r->hdr->cq.tail);
		if (tail - head > nth)
			continue;
		left = end - jqt_now();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, left > 0.05 ? 50 : (int)(left * 1000) + 1) ==
		    1) {
			uint64_t v;

			(void)!read(r->cq_efd, &v, sizeof(v));
		}
	}
}

int jqt_raw_wait(struct jqt_raw *r, struct jobq_cqe *cqe, double timeout)
{
	int rc = jqt_raw_peek(r, 0, cqe, timeout);

	if (rc == 0) {
		uint64_t one = 1;

		store_release(&r->hdr->cq.head,
			      load_relaxed(&r->hdr->cq.head) + 1);
		/* The manager may wait for this head: the WANT_HEAD
		 * handshake of proto.h, followed to the letter so that
		 * tests see the manager ask for it. */
		full_fence();
		if (load_relaxed(&r->hdr->cq.pflags) & JOBQ_RING_WANT_HEAD)
			(void)!write(r->sq_efd, &one, sizeof(one));
	}
	return rc;
}

uint64_t jqt_raw_arena_put(struct jqt_raw *r, uint64_t at, const void *p,
			   size_t len)
{
	if (at + len <= r->arena_size && len)
		memcpy(r->region + r->arena_off + at, p, len);
	return r->arena_off + at;
}

int64_t jqt_raw_q_open(struct jqt_raw *r, const char *name)
{
	struct jobq_sqe sqe;
	struct jobq_cqe cqe;
	size_t n = strlen(name);

	memset(&sqe, 0, sizeof(sqe));
	sqe.op = JOBQ_OP_Q_OPEN;
	sqe.flags = JOBQ_SQE_CREATE;
	sqe.user_data = 0x0fe4;
	sqe.arena_off = jqt_raw_arena_put(r, 0, name, n);
	sqe.arena_len = (uint32_t)n;
	if (jqt_raw_submit(r, &sqe) < 0)
		return -EBUSY;
	if (jqt_raw_wait(r, &cqe, 10) < 0)
		return -ETIMEDOUT;
	if (cqe.user_data != sqe.user_data)
		return -EPROTO;
	return cqe.res;
}

/* ------------------------------------------------------------------------
 * Jobs.
 */

int jqt_setup_workers(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "2", NULL};

	if (jqt_mgr_start(&mgr, args) < 0)
		return -1;
	jqt_cur = &mgr;
	*state = jqt_cur;
	return 0;
}

int jqt_job_state(jobq_t *q, uint64_t id)
{
	struct jobq_job_info ji;
	int rc = jobq_job_info(q, id, &ji);

	return rc < 0 ? rc : ji.state;
}

int jqt_job_wait_state(jobq_t *q, uint64_t id, int state, double timeout)
{
	double end = jqt_now() + timeout;
	int st;

	for (;;) {
		st = jqt_job_state(q, id);
		if (st == state)
			return 0;
		if (jqt_now() >= end)
			return -ETIMEDOUT;
		jqt_sleep(0.005);
	}
}

int jqt_proc_children(pid_t ppid, pid_t *pids, char *states, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[300], buf[512], *p;
		int fd, ppid_of;
		ssize_t len;
		char st;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* "pid (comm) S ppid ...": comm may hold spaces and ')'. */
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %c %d", &st, &ppid_of) != 2)
			continue;
		if (ppid_of != ppid)
			continue;
		if (n < max) {
			if (pids)
				pids[n] = (pid_t)atoi(e->d_name);
			if (states)
				states[n] = st;
		}
		n++;
	}
	closedir(d);
	return n;
}

json_t *jqt_json_object(const struct jqt_out *o)
{
	json_error_t err;
	json_t *j = json_loadb(o->out, o->out_len, 0, &err);

	if (!j) {
		fprintf(stderr, "not JSON (%s at %d): %s\n", err.text,
			err.position, o->out);
		return NULL;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "JSON, but not an object: %s\n", o->out);
		json_decref(j);
		return NULL;
	}
	return j;
}
