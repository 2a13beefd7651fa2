/* SPDX-License-Identifier: MIT */
/*
 * test_identity.c - a client and a manager of different users refuse each
 * other, in both directions, with messages that say who and where.
 *
 * The test runs as root and creates a second, unprivileged user for the
 * other side (useradd; removed again at exit). Elsewhere it is skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "internal.h"
#include "users.h"

static struct jqt_user second;
static const char *const user = second.name;
static uid_t uid;
static gid_t gid;

/* Creates the second user (with a group of its own name; removed at
 * exit) or skips. */
static void make_user(void)
{
	char why[256];

	if (jqt_user_make(&second, "jqtid", why, sizeof(why))) {
		printf("SKIP: identity tests: %s\n", why);
		exit(JQT_SKIP);
	}
	uid = second.uid;
	gid = second.gid;
}

/* In a child: become the second user, with no supplementary groups. */
static int become_user(void)
{
	return jqt_user_become(&second);
}

/*
 * The jobqd the second user runs: a copy in a folder anyone may enter,
 * since the build's may lie under a folder only root can (a checkout in
 * a mktemp -d directory is mode 0700).
 */
static char user_jobqd[PATH_MAX];
static char user_bin[PATH_MAX];

static void remove_user_jobqd(void)
{
	if (user_bin[0])
		jqt_rmtree(user_bin);
}

static void copy_jobqd(void)
{
	const char *cp[] = {"cp", jqt_jobqd_path(), user_jobqd, NULL};
	struct jqt_out o;

	if (jqt_tmpdir(user_bin, sizeof(user_bin)) || chmod(user_bin, 0755))
		fail_msg("cannot make a folder for the second user's jobqd");
	atexit(remove_user_jobqd);
	snprintf(user_jobqd, sizeof(user_jobqd), "%.*s/jobqd",
		 (int)sizeof(user_jobqd) - 8, user_bin);
	if (jqt_run("/bin/cp", cp, NULL, 0, 30, &o) || o.code ||
	    chmod(user_jobqd, 0755))
		fail_msg("cannot copy jobqd for the second user");
	jqt_out_free(&o);
}

/* Starts `jobqd --dir DIR [--group USER]` as the second user. */
static pid_t start_user_jobqd(const char *dir, bool group)
{
	pid_t pid = fork();

	if (pid == 0) {
		const char *argv[] = {user_jobqd, "--dir",
				      dir,	  group ? "--group" : NULL,
				      user,	  NULL};

		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (become_user() == 0)
			execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0) {
		setpgid(pid, pid);
		jqt_track_pid(pid);
	}
	return pid;
}

static int open_as_user(int idx, void *arg)
{
	jobq_t *q;

	if (become_user())
		return 2;
	if (jobq_open(&q, arg))
		return 1;
	jobq_close(q);
	return 0;
}

/* Waits at most 10 s until the user's manager serves its own user. */
static void wait_serving(const char *dir)
{
	double end = jqt_now() + 10;
	int st = -1;

	for (;;) {
		pid_t p = jqt_fork(open_as_user, 0, (void *)dir);

		assert_true(p > 0);
		assert_int_equal(jqt_wait_pid(p, 10, &st), 0);
		if (jqt_status_ok(st))
			return;
		assert_true(jqt_now() < end);
		jqt_sleep(0.05);
	}
}

static void stop(pid_t pid)
{
	int st;

	kill(-pid, SIGTERM);
	if (jqt_wait_pid(pid, 10, &st) < 0)
		jqt_kill_child(pid);
	kill(-pid, SIGKILL);
	jqt_untrack_pid(pid);
}

/*
 * Finding 1: another user's manager in a directory of our name (anyone can
 * create /tmp/jobq-0 before root does) is refused before anything is sent.
 */
static void client_refuses_others_directory(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8], want[64];
	struct jqt_out o;
	jobq_t *q = NULL;
	pid_t pid;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	assert_int_equal(chown(top, uid, gid), 0);
	snprintf(dir, sizeof(dir), "%s/jobq", top);
	pid = start_user_jobqd(dir, false);
	assert_true(pid > 0);
	wait_serving(dir);

	assert_rc(jobq_open(&q, dir), -EACCES);
	snprintf(want, sizeof(want), "belongs to uid %u", (unsigned)uid);
	assert_non_null(strstr(jobq__last_error_msg(), want));
	assert_non_null(strstr(jobq__last_error_msg(), dir));

	/* A group the caller is not in changes nothing. */
	setenv("JOBQ_GROUP", user, 1);
	assert_rc(jobq_open(&q, dir), -EACCES);
	unsetenv("JOBQ_GROUP");

	assert_int_equal(jqt_cli(NULL, &o, NULL, 0, "--dir", dir, "ping", NULL),
			 0);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, want));
	jqt_out_free(&o);

	stop(pid);
	jqt_rmtree(top);
}

/* A child that listens on DIR's socket as the second user and reports, by
 * its exit status, whether the client sent it anything (1) or not (0). */
static int fake_manager(int idx, void *arg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int *ready = arg;
	struct pollfd p;
	char buf[256];
	int fd, c;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s",
		 (const char *)(ready + 1), JOBQ_SOCKET_NAME);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	/* Bound as root in root's directory; SO_PEERCRED records who
	 * called listen(). */
	CK(fd >= 0 && bind(fd, (void *)&sa, sizeof(sa)) == 0);
	CK(become_user() == 0);
	CK(listen(fd, 4) == 0);
	__atomic_store_n(ready, 1, __ATOMIC_RELEASE);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	CK(poll(&p, 1, 10000) == 1);
	c = accept(fd, NULL, NULL);
	CK(c >= 0);
	p = (struct pollfd){.fd = c, .events = POLLIN};
	CK(poll(&p, 1, 10000) == 1);
	CK(recv(c, buf, sizeof(buf), 0) == 0);
	return 0;
}

/* Finding 1: a manager of another user behind a socket in our own
 * directory is refused by SO_PEERCRED, and hears nothing from us. */
static void client_refuses_others_manager(void **state)
{
	char top[PATH_MAX];
	int *shared = jqt_shared(4096);
	char *dir = (char *)(shared + 1);
	char want[64];
	double end = jqt_now() + 10;
	jobq_t *q = NULL;
	pid_t pid;
	int st;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	snprintf(dir, 200, "%.180s/jobq", top);
	assert_int_equal(mkdir(dir, 0700), 0);
	pid = jqt_fork(fake_manager, 0, shared);
	assert_true(pid > 0);
	while (!__atomic_load_n(shared, __ATOMIC_ACQUIRE) && jqt_now() < end)
		jqt_sleep(0.01);

	assert_rc(jobq_open(&q, dir), -EACCES);
	snprintf(want, sizeof(want), "runs as uid %u", (unsigned)uid);
	assert_non_null(strstr(jobq__last_error_msg(), want));
	assert_int_equal(jqt_wait_pid(pid, 15, &st), 0);
	assert_true(jqt_status_ok(st));
	jqt_rmtree(top);
}

static int refused_user(int idx, void *arg)
{
	char want[64];
	jobq_t *q;

	CK(become_user() == 0);
	CK_RC(jobq_open(&q, arg), -EACCES);
	snprintf(want, sizeof(want), "refuses this user (uid %u)",
		 (unsigned)uid);
	CK(strstr(jobq__last_error_msg(), want));
	return 0;
}

/*
 * Finding 2, the other direction: root's manager refuses the second user
 * (its directory and socket opened up so that the connect gets through),
 * and the user is told so, not that no manager runs there.
 */
static void manager_refuses_other_user(void **state)
{
	struct jqt_mgr *m = *state;
	char sock[PATH_MAX + 16], uidarg[32], gidarg[32], want[64];
	const char *argv[] = {"setpriv",	uidarg,		 gidarg,
			      "--clear-groups", jqt_jobq_path(), "--dir",
			      m->dir,		"ping",		 NULL};
	struct jqt_out o;
	pid_t pid;
	int st;

	snprintf(sock, sizeof(sock), "%s/%s", m->dir, JOBQ_SOCKET_NAME);
	assert_int_equal(chmod(m->top, 0711), 0);
	assert_int_equal(chmod(m->dir, 0711), 0);
	assert_int_equal(chmod(sock, 0666), 0);

	pid = jqt_fork(refused_user, 0, m->dir);
	assert_true(pid > 0);
	assert_int_equal(jqt_wait_pid(pid, 15, &st), 0);
	assert_true(jqt_status_ok(st));

	if (access("/usr/bin/setpriv", X_OK) < 0)
		return;
	snprintf(uidarg, sizeof(uidarg), "--reuid=%u", (unsigned)uid);
	snprintf(gidarg, sizeof(gidarg), "--regid=%u", (unsigned)gid);
	assert_int_equal(jqt_run("/usr/bin/setpriv", argv, NULL, 0, 15, &o), 0);
	assert_int_equal(o.code, 1);
	snprintf(want, sizeof(want), "refuses this user (uid %u)",
		 (unsigned)uid);
	assert_non_null(strstr(o.err, want));
	assert_null(strstr(o.err, "no manager"));
	jqt_out_free(&o);
}

static int open_in_group(int idx, void *arg)
{
	jobq_t *q;

	/* Root, and a member of the user's group. */
	CK(setgroups(1, &gid) == 0);
	unsetenv("JOBQ_GROUP");
	CK_RC(jobq_open(&q, arg), -EACCES);
	setenv("JOBQ_GROUP", user, 1);
	CK_RC(jobq_open(&q, arg), 0);
	CK_RC(jobq_ping(q), 0);
	jobq_close(q);
	return 0;
}

/* A manager of another user is accepted when the caller chose its group
 * and the directory is that group's and closed to others. */
static void group_chosen_by_caller(void **state)
{
	char top[PATH_MAX], dir[PATH_MAX + 8];
	pid_t pid, c;
	int st;

	assert_int_equal(jqt_tmpdir(top, sizeof(top)), 0);
	assert_int_equal(chown(top, uid, gid), 0);
	snprintf(dir, sizeof(dir), "%s/jobq", top);
	pid = start_user_jobqd(dir, true);
	assert_true(pid > 0);
	wait_serving(dir);

	c = jqt_fork(open_in_group, 0, dir);
	assert_true(c > 0);
	assert_int_equal(jqt_wait_pid(c, 15, &st), 0);
	assert_true(jqt_status_ok(st));

	stop(pid);
	jqt_rmtree(top);
}

/* The descriptors of jobqd @pid that are its store memfd: up to @max
 * into @fds; returns how many. */
static int store_fds(pid_t pid, int *fds, int max)
{
	char path[64], link[256];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		char p[320];
		ssize_t k;

		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		k = readlink(p, link, sizeof(link) - 1);
		if (k <= 0)
			continue;
		link[k] = '\0';
		if (strstr(link, "memfd:jobq-store"))
			fds[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static int reopen_as_user(int idx, void *arg)
{
	const struct jqt_mgr *m = arg;
	int fds[4], n = store_fds(m->pid, fds, 4);

	CK(become_user() == 0);
	for (int i = 0; i < n; i++) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)m->pid, fds[i]);
		CK(open(p, O_RDWR) < 0);
		CK(open(p, O_WRONLY) < 0);
	}
	return 0;
}

/*
 * Finding 8: nobody but the manager gets a writable mapping of the store:
 * not a client through the read-only descriptor it received, not one that
 * reopens that descriptor read-write (root may: the seal still stops it),
 * and not another user through /proc/<jobqd>/fd.
 */
static void store_not_writable(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_raw r;
	struct stat st;
	char p[64];
	void *w;
	int fd, fds[4], st2;
	pid_t c;

	assert_int_equal(store_fds(m->pid, fds, 4), 2);
	assert_int_equal(jqt_raw_open(m->dir, &r), 0);
	assert_int_equal(fstat(r.store_fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.store_fd, 0);
	assert_true(w == MAP_FAILED);

	snprintf(p, sizeof(p), "/proc/self/fd/%d", r.store_fd);
	fd = open(p, O_RDWR);
	if (fd >= 0) {
		w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(w == MAP_FAILED);
		assert_int_equal(pwrite(fd, "x", 1, 0), -1);
		close(fd);
	}
	jqt_raw_close(&r);

	c = jqt_fork(reopen_as_user, 0, m);
	assert_true(c > 0);
	assert_int_equal(jqt_wait_pid(c, 15, &st2), 0);
	assert_true(jqt_status_ok(st2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(client_refuses_others_directory),
	    cmocka_unit_test(client_refuses_others_manager),
	    cmocka_unit_test_setup_teardown(manager_refuses_other_user,
					    jqt_setup, jqt_teardown),
	    cmocka_unit_test(group_chosen_by_caller),
	    cmocka_unit_test_setup_teardown(store_not_writable, jqt_setup,
					    jqt_teardown),
	};

	jqt_init_cli();
	make_user();
	copy_jobqd();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
