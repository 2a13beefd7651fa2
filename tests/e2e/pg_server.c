/* SPDX-License-Identifier: MIT */
/*
 * pg_server.c - the test's own PostgreSQL server (pg_server.h).
 *
 * The postmaster is started directly rather than through pg_ctl, so that
 * its pid is the child we forked: stopping it needs no pid file, and the
 * harness's clean-up kills its process group even when meson times the
 * test out. It is what pg_ctl start would run, with the same options.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"

static const char *bin_dir(void)
{
	const char *b = getenv("JOBQ_TEST_PG_BIN");

	return b && *b ? b : JQT_PG_BIN;
}

/* Fork a child that becomes the server's user, writes its output to
 * @log, and runs @argv; with @session it leads a group of its own. */
static pid_t spawn(struct jqt_pg *pg, const char *log, char *const *argv,
		   int session)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	{
		int fd =
		    open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (session)
			setsid();
		if (pg->as_user && (chown(log, pg->user.uid, pg->user.gid) ||
				    jqt_user_become(&pg->user)))
			_exit(126);
		if (chdir(pg->top))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
}

static void show_log(const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	fprintf(stderr, "--- %s\n", path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

static int start_postmaster(struct jqt_pg *pg)
{
	char postgres[PATH_MAX], data[PATH_MAX], log[PATH_MAX], sock[PATH_MAX];
	char *argv[] = {postgres, "-D", data, "-k", pg->top, "-c",
			"listen_addresses=",
			/* Tests need no durability across a power cut. */
			"-c", "fsync=off", "-c", "max_connections=60", NULL};
	double end;

	snprintf(postgres, sizeof(postgres), "%s/postgres", bin_dir());
	snprintf(data, sizeof(data), "%s/data", pg->top);
	snprintf(log, sizeof(log), "%s/postgres.log", pg->top);
	snprintf(sock, sizeof(sock), "%s/.s.PGSQL.5432", pg->top);
	pg->pid = spawn(pg, log, argv, 1);
	if (pg->pid < 0) {
		perror("fork");
		return -1;
	}
	jqt_track_pid(pg->pid);
	end = jqt_now() + 30;
	while (jqt_now() < end) {
		int st;

		if (waitpid(pg->pid, &st, WNOHANG) == pg->pid) {
			fprintf(stderr, "postgres exited during start-up\n");
			jqt_untrack_pid(pg->pid);
			pg->pid = 0;
			show_log(log);
			return -1;
		}
		if (PQping(pg->conninfo) == PQPING_OK)
			return 0;
		jqt_sleep(0.05);
	}
	fprintf(stderr, "postgres did not answer within 30 s\n");
	show_log(log);
	return -1;
}

int jqt_pg_start(struct jqt_pg *pg)
{
	char initdb[PATH_MAX], data[PATH_MAX], log[PATH_MAX], why[256];
	char *argv[] = {
	    initdb,  "-D", data,   "-U",	"postgres",	     "--auth",
	    "trust", "-E", "UTF8", "--no-sync", "--no-instructions", NULL};
	int st;
	pid_t pid;

	memset(pg, 0, sizeof(*pg));
	snprintf(initdb, sizeof(initdb), "%s/initdb", bin_dir());
	if (access(initdb, X_OK) < 0) {
		printf("SKIP: %s is missing: the PostgreSQL tests need a "
		       "server (apt-get install postgresql-15)\n",
		       initdb);
		exit(JQT_SKIP);
	}
	if (geteuid() == 0) {
		if (jqt_user_make(&pg->user, "jqtpg", why, sizeof(why))) {
			printf("SKIP: PostgreSQL refuses to run as root and "
			       "%s\n",
			       why);
			exit(JQT_SKIP);
		}
		pg->as_user = 1;
	}
	if (jqt_tmpdir(pg->top, sizeof(pg->top)))
		return -1;
	/* The directory is the server's: its data, its socket. Anyone may
	 * pass through to the socket. */
	if (chmod(pg->top, 0755) ||
	    (pg->as_user && chown(pg->top, pg->user.uid, pg->user.gid))) {
		perror(pg->top);
		return -1;
	}
	snprintf(data, sizeof(data), "%s/data", pg->top);
	snprintf(log, sizeof(log), "%s/initdb.log", pg->top);
	snprintf(pg->conninfo, sizeof(pg->conninfo),
		 "host=%s port=5432 user=postgres dbname=postgres", pg->top);
	pid = spawn(pg, log, argv, 0);
	if (pid < 0 || jqt_wait_pid(pid, 120, &st) || !WIFEXITED(st) ||
	    WEXITSTATUS(st)) {
		fprintf(stderr, "initdb failed\n");
		show_log(log);
		return -1;
	}
	return start_postmaster(pg);
}

void jqt_pg_stop_server(struct jqt_pg *pg)
{
	int st;

	if (pg->pid <= 0)
		return;
	/* SIGINT: fast shutdown, sessions are ended. */
	kill(pg->pid, SIGINT);
	if (jqt_wait_pid(pg->pid, 20, &st)) {
		kill(-pg->pid, SIGKILL);
		jqt_wait_pid(pg->pid, 10, &st);
	}
	jqt_untrack_pid(pg->pid);
	pg->pid = 0;
}

int jqt_pg_restart(struct jqt_pg *pg)
{
	jqt_pg_stop_server(pg);
	return start_postmaster(pg);
}

void jqt_pg_stop(struct jqt_pg *pg)
{
	jqt_pg_stop_server(pg);
	if (pg->top[0])
		jqt_rmtree(pg->top);
	pg->top[0] = '\0';
}

char *jqt_pg_exec(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r;
	char *v = NULL;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect %s: %s", conninfo, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK ||
	    PQresultStatus(r) == PGRES_COMMAND_OK)
		v = strdup(PQntuples(r) > 0 && PQnfields(r) > 0
			       ? PQgetvalue(r, 0, 0)
			       : "");
	else
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

char *jqt_pg_ask(const char *conninfo, const char *fmt, ...)
{
	static char buf[256];
	char sql[1024], *v;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	v = jqt_pg_exec(conninfo, sql);
	if (!v)
		fail_msg("query failed: %s", sql);
	snprintf(buf, sizeof(buf), "%s", v);
	free(v);
	return buf;
}

/* The first column of the first row of @sql on @c, as a number; -1 on an
 * error. */
static int count_on(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		v = atoi(PQgetvalue(r, 0, 0));
	else
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return v;
}

int jqt_pg_cut_sessions(const char *conninfo, int n, double timeout)
{
	static const char others[] =
	    "pg_stat_activity WHERE datname = current_database() AND "
	    "backend_type = 'client backend' AND pid <> pg_backend_pid()";
	char sql[256];
	PGconn *c = PQconnectdb(conninfo);
	double end = jqt_now() + timeout;
	int v;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect %s: %s", conninfo, PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", others);
	while ((v = count_on(c, sql)) != n && v >= 0 && jqt_now() < end)
		jqt_sleep(0.05);
	if (v == n) {
		snprintf(sql, sizeof(sql),
			 "SELECT count(pg_terminate_backend(pid)) FROM %s",
			 others);
		v = count_on(c, sql);
	} else {
		fprintf(stderr, "%d sessions listed, not %d\n", v, n);
		v = -1;
	}
	PQfinish(c);
	return v;
}

int jqt_pg_createdb(struct jqt_pg *pg, const char *name, char *out,
		    size_t outlen)
{
	char sql[256];
	char *v;

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\"", name);
	v = jqt_pg_exec(pg->conninfo, sql);
	if (!v)
		return -1;
	free(v);
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
	v = jqt_pg_exec(pg->conninfo, sql);
	if (!v)
		return -1;
	free(v);
	snprintf(out, outlen, "host=%s port=5432 user=postgres dbname=%s",
		 pg->top, name);
	return 0;
}

int jqt_pg_netns(void)
{
	static int ok = -1;
	pid_t pid;
	int st;

	if (ok >= 0)
		return ok;
	ok = 0;
	pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWNET) ? errno & 0x7f : 0);
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st)) {
		ok = WEXITSTATUS(st) == 0;
		if (!ok)
			fprintf(
			    stderr,
			    "note: hosts share the test's network namespace "
			    "(unshare(CLONE_NEWNET): %s)\n",
			    strerror(WEXITSTATUS(st)));
	}
	return ok;
}

int jqt_pg_host_start(struct jqt_pg_host *h, const char *conninfo,
		      const char *const *extra)
{
	size_t n = 0;
	FILE *f;

	memset(h, 0, sizeof(*h));
	if (jqt_tmpdir(h->dir, sizeof(h->dir)))
		return -1;
	snprintf(h->cfg, sizeof(h->cfg), "%s/jobqd.json", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/log", h->dir);
	f = fopen(h->cfg, "w");
	if (!f) {
		perror(h->cfg);
		return -1;
	}
	fprintf(f, "{\"backend\": \"%s\"}\n", conninfo);
	if (fclose(f)) {
		perror(h->cfg);
		return -1;
	}
	h->args[n++] = "--config";
	h->args[n++] = h->cfg;
	h->args[n++] = "--log";
	h->args[n++] = h->log;
	for (; extra && *extra; extra++) {
		if (n == sizeof(h->args) / sizeof(h->args[0]) - 1) {
			fprintf(stderr, "jqt_pg_host_start: too many args\n");
			return -1;
		}
		h->args[n++] = *extra;
	}
	h->args[n] = NULL;
	if (jqt_mgr_start_ex(&h->m, h->args,
			     jqt_pg_netns() ? JQT_MGR_NETNS : 0))
		return -1;
	h->started = 1;
	return 0;
}

void jqt_pg_host_stop(struct jqt_pg_host *h)
{
	if (h->started) {
		jqt_mgr_stop(&h->m);
		jqt_rmtree(h->dir);
	}
	h->started = 0;
}

int jqt_pg_run(struct jqt_pg *pg, const char *name,
	       const struct CMUnitTest *tests, size_t n)
{
	int ret;

	if (jqt_pg_start(pg)) {
		jqt_pg_stop(pg);
		return 1;
	}
	ret = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	jqt_pg_stop(pg);
	return ret;
}
