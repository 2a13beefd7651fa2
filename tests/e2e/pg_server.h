/* SPDX-License-Identifier: MIT */
/*
 * pg_server.h - a PostgreSQL 15 server of a test's own: initdb in a fresh
 * temporary directory, the postmaster on a unix socket in that directory
 * and no TCP (listen_addresses ''), stopped by its pid.
 *
 * initdb and the server refuse to run as root, and CI runs as root: then
 * they run as an unprivileged user made for the test (users.h), who owns
 * the directory. Where the server's programs are missing the test is
 * skipped with the reason (under CI=true scripts/summary.py counts that
 * skip as a failure: CI installs postgresql-15).
 */
#ifndef JOBQ_TEST_PG_SERVER_H
#define JOBQ_TEST_PG_SERVER_H

#include <limits.h>
#include <sys/types.h>

#include "harness.h"
#include "users.h"

/* Debian's postgresql-15. $JOBQ_TEST_PG_BIN names another directory. */
#define JQT_PG_BIN "/usr/lib/postgresql/15/bin"

struct jqt_pg {
	char top[108];	    /* the directory (short: the socket lives in it) */
	char conninfo[256]; /* for the database "postgres" */
	pid_t pid;	    /* the postmaster, leader of its group */
	struct jqt_user user; /* who runs it, when we are root */
	int as_user;
};

/*
 * jqt_pg_start - make the directory, initdb and start the server; wait
 * (at most 30 s) until it answers. Exits JQT_SKIP, with the reason,
 * when the programs are missing or no user can be made; returns 0, or -1
 * with the server's log on stderr.
 */
int jqt_pg_start(struct jqt_pg *pg);

/* jqt_pg_stop_server - stop the postmaster (fast shutdown, SIGKILL of
 * its group after 20 s) and keep the directory: jqt_pg_restart() starts
 * it again on the same data. */
void jqt_pg_stop_server(struct jqt_pg *pg);
int jqt_pg_restart(struct jqt_pg *pg);

/* jqt_pg_stop - stop the server and remove the directory. */
void jqt_pg_stop(struct jqt_pg *pg);

/*
 * jqt_pg_createdb - create database @name (dropped first if it exists)
 * and write its connection string to @out. 0 or -1 (message on stderr).
 */
int jqt_pg_createdb(struct jqt_pg *pg, const char *name, char *out,
		    size_t outlen);

/* jqt_pg_exec - run @sql on @conninfo in a connection of its own,
 * blocking; the first column of the first row (malloc'd, "" when none) or
 * NULL on an error (message on stderr). */
char *jqt_pg_exec(const char *conninfo, const char *sql);

/*
 * jqt_pg_ask - jqt_pg_exec() of the query @fmt formats, for checks: the
 * first column of the first row in a static buffer, valid until the next
 * call. A query that fails fails the test case.
 */
char *jqt_pg_ask(const char *conninfo, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * jqt_pg_cut_sessions - terminate the client sessions on the database of
 * @conninfo but the caller's, once exactly @n are listed: a session just
 * closed (each jqt_pg_exec()'s) stays in pg_stat_activity until its server
 * process has exited, so a count taken at once may hold it too. Watched
 * and cut from one connection, which opens no other meanwhile. Returns
 * how many were cut, or -1 when the count did not come to @n within
 * @timeout seconds (or on an error, printed).
 */
int jqt_pg_cut_sessions(const char *conninfo, int n, double timeout);

struct CMUnitTest;

/*
 * jqt_pg_run - start @pg (jqt_pg_start()), run the cmocka group @tests
 * of @n cases called @name, stop it; a test's main() returns this.
 * jqt_pg_run_tests() names the array and counts it.
 */
int jqt_pg_run(struct jqt_pg *pg, const char *name,
	       const struct CMUnitTest *tests, size_t n);
#define jqt_pg_run_tests(pg, tests)                                            \
	jqt_pg_run((pg), #tests, (tests), sizeof(tests) / sizeof((tests)[0]))

/*
 * A "host" of the tests of more than one machine: a jobqd in an instance
 * directory of its own whose config file names its --backend, with its
 * log in a file beside it. Hosts on one database stand for machines.
 */
struct jqt_pg_host {
	struct jqt_mgr m;
	char dir[PATH_MAX], cfg[PATH_MAX + 16], log[PATH_MAX + 16];
	const char *args[16]; /* jobqd's arguments, kept for a restart */
	int started;
};

/*
 * jqt_pg_host_start - make @h's directory and config (the backend
 * @conninfo) and start its manager with --config, --log and the
 * arguments @extra (NULL-terminated, at most 10; NULL: none), which must
 * outlive a jqt_mgr_restart() of h->args. Where jqt_pg_netns() says so,
 * the manager runs in a network namespace of its own, as on a machine of
 * its own: it reaches PostgreSQL by its unix socket (a path, which no
 * network namespace hides) and its clients reach it by theirs. 0 or -1
 * (message on stderr).
 */
int jqt_pg_host_start(struct jqt_pg_host *h, const char *conninfo,
		      const char *const *extra);

/* jqt_pg_netns - 1 when managers can get network namespaces of their
 * own (root, or a kernel that lets this user unshare one), else 0, with
 * a note why on stderr the first time. */
int jqt_pg_netns(void);

/* jqt_pg_host_stop - stop @h's manager, if started, and remove its
 * directory. */
void jqt_pg_host_stop(struct jqt_pg_host *h);

#endif
