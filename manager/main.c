/* SPDX-License-Identifier: MIT */
/*
 * main.c - jobqd: the instance directory, the single-instance lock,
 * daemonizing, logging, the control socket; then the event loop (options
 * are options.c's).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jobqd.h"

static int log_fd = 2;
static int ready_fd = -1; /* --daemon: the pipe to the waiting parent */
static char sock_path[PATH_MAX + 16];
static char pid_path[PATH_MAX + 16];

/* --log-level; --verbose raises it to debug. */
static int log_level = JOBQ__LOG_INFO;
/* Lines go to syslog: --log syslog, or a --daemon without --log. */
static bool log_syslog;

static const char *level_name(int level)
{
	return level <= JOBQ__LOG_ERROR	 ? "error"
	       : level == JOBQ__LOG_WARN ? "warn"
	       : level == JOBQ__LOG_INFO ? "info"
					 : "debug";
}

void jobq__log(int level, const char *fmt, ...)
{
	char line[1024], ts[32];
	va_list ap;
	int n, start;

	if (level > log_level &&
	    !(level <= JOBQ__LOG_DEBUG && jobq__m.o.verbose))
		return;
	jobq__format_time(jobq__realtime_ns(), ts, sizeof(ts));
	n = snprintf(line, sizeof(line), "%s jobqd[%d] %s: ", ts, (int)getpid(),
		     level_name(level));
	start = n;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (log_syslog) {
		line[n] = '\0';
		syslog(level <= JOBQ__LOG_ERROR	 ? LOG_ERR
		       : level == JOBQ__LOG_WARN ? LOG_WARNING
		       : level == JOBQ__LOG_INFO ? LOG_INFO
						 : LOG_DEBUG,
		       "%s", line + start);
		return;
	}
	line[n++] = '\n';
	if (write(log_fd, line, (size_t)n) < 0) {
		/* Nowhere left to say it. */
	}
}

/*
 * fail - a startup error: one line naming the cause. In --daemon mode it
 * goes to the parent, which prints it and exits 1.
 */
static __attribute__((noreturn, format(printf, 1, 2))) void
fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	if (ready_fd >= 0) {
		if (write(ready_fd, msg, (size_t)n) < 0) {
			/* The parent is gone; nobody to tell. */
		}
	} else {
		fprintf(stderr, "%.*s", n, msg);
	}
	exit(1);
}

/*
 * prepare_dir - create or check the instance directory. An existing one
 * must be ours and closed to others, or someone else's directory could
 * capture our jobs (and ours could expose them).
 */
static void prepare_dir(const struct jobq__opts *o)
{
	mode_t want = o->group ? 0750 : 0700;
	struct stat st;

	if (mkdir(o->dir, want) == 0) {
		if (chmod(o->dir, want) < 0)
			fail("jobqd: %s: chmod: %s", o->dir, strerror(errno));
		if (o->group && chown(o->dir, (uid_t)-1, o->gid) < 0)
			fail("jobqd: %s: chgrp to %s: %s", o->dir, o->group,
			     strerror(errno));
	} else if (errno != EEXIST) {
		fail("jobqd: cannot create instance directory %s: %s", o->dir,
		     strerror(errno));
	}
	if (lstat(o->dir, &st) < 0)
		fail("jobqd: %s: %s", o->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		fail("jobqd: %s is not a directory", o->dir);
	if (st.st_uid != geteuid())
		fail("jobqd: refusing instance directory %s: it belongs to "
		     "uid %u, not to you (uid %u)",
		     o->dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 002)
		fail("jobqd: refusing instance directory %s: it is writable "
		     "by others (mode %04o); chmod 700 it",
		     o->dir, (unsigned)(st.st_mode & 07777));
	if (st.st_mode & 020) {
		mode_t m = st.st_mode & 0777;

		if (!o->group || st.st_gid != o->gid ||
		    (m != 0750 && m != 0770))
			fail("jobqd: refusing instance directory %s: it is "
			     "writable by its group (mode %04o); chmod 700 it "
			     "or run with --group",
			     o->dir, (unsigned)(st.st_mode & 07777));
	}
}

/* Opens a file in the instance directory with the right mode. */
static int open_file(const struct jobq__opts *o, const char *path, int flags)
{
	mode_t mode = o->group ? 0660 : 0600;
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, mode);

	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0 ||
	    (o->group && fchown(fd, (uid_t)-1, o->gid) < 0)) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Takes the instance lock, held for life (never closed). */
static void take_instance_lock(const struct jobq__opts *o)
{
	char path[PATH_MAX + 16], buf[32] = "";
	int fd, pfd;
	ssize_t n;

	if (snprintf(path, sizeof(path), "%s/%s", o->dir, JOBQ_LOCK_NAME) >=
	    (int)sizeof(path))
		fail("jobqd: instance directory name too long");
	fd = open_file(o, path, O_RDWR | O_CREAT);
	if (fd < 0)
		fail("jobqd: %s: %s", path, strerror(-fd));
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return;
	if (errno != EWOULDBLOCK)
		fail("jobqd: locking %s: %s", path, strerror(errno));
	pfd = -1;
	if (snprintf(path, sizeof(path), "%s/%s", o->dir, JOBQ_PID_NAME) <
	    (int)sizeof(path))
		pfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (pfd >= 0) {
		n = read(pfd, buf, sizeof(buf) - 1);
		close(pfd);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
	}
	fail("jobqd: another manager (pid %s) is running in %s",
	     buf[0] ? buf : "unknown", o->dir);
}

static void write_pid_file(const struct jobq__opts *o)
{
	char buf[32];
	int fd, n;

	fd = open_file(o, pid_path, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0)
		fail("jobqd: %s: %s", pid_path, strerror(-fd));
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n)
		fail("jobqd: writing %s: %s", pid_path, strerror(errno));
	close(fd);
}

static int open_socket(const struct jobq__opts *o)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		fail("jobqd: socket path %s is too long (at most %zu bytes); "
		     "use a shorter --dir",
		     sock_path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("jobqd: socket: %s", strerror(errno));
	/* We hold the instance lock: a socket there is a dead one's. */
	unlink(sock_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("jobqd: bind %s: %s", sock_path, strerror(errno));
	if (chmod(sock_path, o->group ? 0660 : 0600) < 0 ||
	    (o->group && chown(sock_path, (uid_t)-1, o->gid) < 0))
		fail("jobqd: %s: %s", sock_path, strerror(errno));
	if (listen(fd, 128) < 0)
		fail("jobqd: listen %s: %s", sock_path, strerror(errno));
	return fd;
}

/* Points the log at --log (or keeps stderr). Returns 0 or -errno. */
static int open_log(void)
{
	const struct jobq__opts *o = &jobq__m.o;
	int fd;

	if (!o->log || log_syslog)
		return 0;
	fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (o->daemon) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		log_fd = 2;
	} else {
		if (log_fd != 2)
			close(log_fd);
		log_fd = fd;
	}
	return 0;
}

static void reopen_log(void)
{
	int ret = open_log();

	if (ret)
		jobq__log(JOBQ__LOG_ERROR, "reopening %s: %s", jobq__m.o.log,
			  strerror(-ret));
	else
		jobq__log(0, "log reopened");
}

/*
 * daemonize - fork; the parent waits on a pipe until the child reports
 * "ready" (a single 'K') or an error line, which it prints, then exits.
 */
static void daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		fail("jobqd: pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fail("jobqd: fork: %s", strerror(errno));
	if (pid > 0) {
		char buf[1024];
		ssize_t n, got = 0;

		close(p[1]);
		while ((n = read(p[0], buf + got,
				 sizeof(buf) - 1 - (size_t)got)) > 0)
			got += n;
		if (got == 1 && buf[0] == 'K')
			exit(0);
		if (got > 0) {
			buf[got] = '\0';
			fputs(buf, stderr);
		} else {
			fprintf(stderr, "jobqd: the manager exited during "
					"start-up\n");
		}
		exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0)
		fail("jobqd: setsid: %s", strerror(errno));
}

static void report_ready(void)
{
	int fd;

	if (ready_fd < 0)
		return;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		if (!jobq__m.o.log) {
			dup2(fd, 1);
			dup2(fd, 2);
			/* A daemon without --log logs to syslog, not to
			 * nowhere. */
			log_syslog = true;
			openlog("jobqd", LOG_PID, LOG_DAEMON);
		}
		if (fd > 2)
			close(fd);
	}
	if (write(ready_fd, "K", 1) < 0) {
		/* The parent is gone: carry on. */
	}
	close(ready_fd);
	ready_fd = -1;
}

int main(int argc, char **argv)
{
	struct jobq__mgr *m = &jobq__m;
	char err[512];
	sigset_t ss;
	int lfd, sfd, ret;

	/* A built-in worker started by a manager: this executable again. */
	if (argc > 1 && !strcmp(argv[1], "--as-worker")) {
		return jobq__worker_main(argc, argv);
	}
	jobq__parse_opts(argc, argv, &m->o);
	log_level = m->o.log_level;
	log_syslog = m->o.log_syslog;
	if (log_syslog)
		openlog("jobqd", LOG_PID, LOG_DAEMON);
#ifdef JOBQ_HAVE_PG
	/* Needs no instance directory: it acts on the database only. */
	if (m->o.migrate)
		return jobq__backend_migrate(m->o.backend);
#endif
	umask(m->o.group ? 007 : 077);
	signal(SIGPIPE, SIG_IGN);
	if (m->o.daemon)
		daemonize();
	if (m->o.log && (ret = open_log()))
		fail("jobqd: log file %s: %s", m->o.log, strerror(-ret));

	prepare_dir(&m->o);
	take_instance_lock(&m->o);
	if (snprintf(sock_path, sizeof(sock_path), "%s/%s", m->o.dir,
		     JOBQ_SOCKET_NAME) >= (int)sizeof(sock_path) ||
	    snprintf(pid_path, sizeof(pid_path), "%s/%s", m->o.dir,
		     JOBQ_PID_NAME) >= (int)sizeof(pid_path))
		fail("jobqd: instance directory name too long");

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	/* Orphans of workers die as our children (supervise.c): SIGCHLD says
	 * when, so they are reaped without polling. */
	sigaddset(&ss, SIGCHLD);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	if (sfd < 0)
		fail("jobqd: signalfd: %s", strerror(errno));

	ret = jobq__store_create(&m->o, err, sizeof(err));
	if (ret)
		fail("jobqd: store: %s", err);
	jobq__queues_init(jobq__hdr()->max_queues);
	if (jobq__locks_init(jobq__hdr()->max_locks))
		fail("jobqd: out of memory for the lock table");
	if (jobq__jobs_init())
		fail("jobqd: out of memory for the job tables");
	/* The state comes back before any client can see it. */
	ret = jobq__durable_open(err, sizeof(err));
	if (ret)
		fail("jobqd: %s", err);
#ifdef JOBQ_HAVE_PG
	if (jobq__backend_open(err, sizeof(err)))
		fail("jobqd: %s", err);
#endif

	if (m->o.http &&
	    jobq__http_listen(m->o.http, m->o.dir, err, sizeof(err)))
		fail("jobqd: %s", err);
	lfd = open_socket(&m->o);
	ret = jobq__loop_init(lfd, sfd, reopen_log, err, sizeof(err));
	if (ret) {
		unlink(sock_path);
		fail("jobqd: %s", err);
	}
	/* The replayed jobs' deadlines go to the loop's timer. */
	jobq__jobs_start();
	write_pid_file(&m->o);
	/* After the parent is released: a daemon logs to --log or nowhere,
	 * never to the terminal it was started from. */
	report_ready();
	jobq__durable_log_start();
	{
		char state[64];

		/* MAINPID: with --daemon the pid systemd started has left. */
		snprintf(state, sizeof(state), "READY=1\nMAINPID=%d",
			 (int)getpid());
		jobq__notify(state);
	}
	jobq__log(0,
		  "ready in %s: pid %d, memory %llu, max-object %llu, "
		  "wake-up %.1f us",
		  m->o.dir, (int)getpid(), (unsigned long long)m->st.size,
		  (unsigned long long)m->o.max_object,
		  (double)jobq__hdr()->wake_ns / 1e3);
	/* Workers start once the parent of a --daemon manager is released:
	 * they must not hold its terminal or the pipe of whoever waits for
	 * its output. */
	if (jobq__supervise_start())
		jobq__log(JOBQ__LOG_ERROR,
			  "out of memory for the worker table: no worker "
			  "processes started");
	if ((ret = jobq__http_start()))
		jobq__log(JOBQ__LOG_ERROR, "http: cannot start its thread: %s",
			  strerror(-ret));

	ret = jobq__loop_run();
	jobq__http_stop();

	/* Remove the socket first: nobody can connect to a dying manager. */
	unlink(sock_path);
	unlink(pid_path);
	close(lfd);
	/* Before the loop's tables go: a last snapshot walks them. */
	jobq__durable_close();
#ifdef JOBQ_HAVE_PG
	/* Before the ring goes: its poll is cancelled through it. */
	jobq__backend_close();
#endif
	jobq__loop_fini();
	jobq__queues_fini();
	jobq__locks_fini();
	jobq__store_destroy();
	jobq__log(0, "stopped");
	return ret ? 1 : 0;
}
