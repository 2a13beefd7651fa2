/* SPDX-License-Identifier: MIT */
/*
 * test_pg_hosts.c - jobqd --backend as hosts use it: several managers,
 * each in an instance directory of its own (a "host"), on one database of
 * a PostgreSQL 15 of the test's own (pg_server.h), driven through the
 * jobq CLI and built-in workers as a user would: submitted on one host,
 * run on another, waited for on a third; --unique racing across hosts; a
 * worker's host killed mid-job; retries, dead and cancel across hosts.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"

static struct jqt_pg server;

/* A host: a manager on the case's database, with @workers built-in
 * workers (0: none). */
struct host {
	struct jqt_mgr m;
	char dir[PATH_MAX], cfg[PATH_MAX + 16], log[PATH_MAX + 16];
	int started;
};

static void host_start(struct host *h, const char *conninfo, int workers)
{
	char nw[16];
	const char *args[] = {"--config",  h->cfg, "--log", h->log,
			      "--workers", nw,	   NULL};
	FILE *f;

	/* The config and log live beside the instance directory. */
	assert_int_equal(jqt_tmpdir(h->dir, sizeof(h->dir)), 0);
	snprintf(h->cfg, sizeof(h->cfg), "%s/jobqd.json", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/log", h->dir);
	snprintf(nw, sizeof(nw), "%d", workers);
	f = fopen(h->cfg, "w");
	assert_non_null(f);
	fprintf(f, "{\"backend\": \"%s\"}\n", conninfo);
	fclose(f);
	if (!workers)
		args[4] = NULL;
	assert_int_equal(jqt_mgr_start(&h->m, args), 0);
	h->started = 1;
}

static void host_stop(struct host *h)
{
	if (h->started) {
		jqt_mgr_stop(&h->m);
		jqt_rmtree(h->dir);
	}
	h->started = 0;
}

/* `jobq --dir HOST ARGS...`, asserted to have run. */
#define HCLI(h, o, ...)                                                        \
	assert_int_equal(jqt_cli(&(h)->m, (o), NULL, 0, __VA_ARGS__, NULL), 0)

static uint64_t to_id(const struct jqt_out *o)
{
	if (o->code != 0)
		fprintf(stderr, "jobq: %s%s\n", o->out, o->err);
	assert_int_equal(o->code, 0);
	return strtoull(o->out, NULL, 10);
}

/* Waits (at most 10 s) until host @h sees job @id: the job's row reaches
 * other hosts with the notification of its commit. */
static void seen(struct host *h, uint64_t id)
{
	char ids[24];
	struct jqt_out o;
	double end = jqt_now() + 10;

	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	for (;;) {
		HCLI(h, &o, "show", ids);
		if (o.code == 0 || jqt_now() > end)
			break;
		jqt_out_free(&o);
		jqt_sleep(0.02);
	}
	if (o.code)
		fprintf(stderr, "show %s: %s%s\n", ids, o.out, o.err);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
}

static char conninfo[256];

static int setup(void **state)
{
	static int n;
	char name[32];

	snprintf(name, sizeof(name), "h%d", ++n);
	return jqt_pg_createdb(&server, name, conninfo, sizeof(conninfo));
}

/* Submitted on A, run by B's worker, waited for on C; show and ls on
 * every host see it. */
static void submit_run_wait(void **state)
{
	struct host a = {0}, b = {0}, c = {0};
	struct jqt_out o;
	char ids[24];
	uint64_t id;

	host_start(&a, conninfo, 0);
	host_start(&c, conninfo, 0);
	HCLI(&a, &o, "run", "--", "echo", "from-b");
	id = to_id(&o);
	jqt_out_free(&o);
	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	seen(&c, id);
	/* Nobody runs it yet: no host has a worker. */
	HCLI(&c, &o, "wait", ids, "--timeout", "0.3");
	assert_int_equal(o.code, 3);
	jqt_out_free(&o);
	host_start(&b, conninfo, 1);
	HCLI(&c, &o, "wait", ids, "--timeout", "20");
	if (o.code)
		fprintf(stderr, "wait: %s%s\n", o.out, o.err);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "from-b"));
	jqt_out_free(&o);
	HCLI(&a, &o, "wait", ids, "--timeout", "20");
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	HCLI(&b, &o, "show", ids);
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "succeeded"));
	jqt_out_free(&o);
	HCLI(&a, &o, "ls");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, ids));
	jqt_out_free(&o);
	host_stop(&a);
	host_stop(&b);
	host_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(submit_run_wait, setup),
	};
	int ret;

	jqt_init();
	jqt_init_cli();
	if (jqt_pg_start(&server)) {
		jqt_pg_stop(&server);
		return 1;
	}
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	jqt_pg_stop(&server);
	return ret;
}
