/* SPDX-License-Identifier: MIT */
/*
 * test_top.c - jobq top in a real terminal: tmux runs it in a window of
 * a known size, the test reads the screen (capture-pane), checks that a
 * queue and a running job it made appear, presses q, and checks that top
 * exited 0 and gave the terminal back (the alternate screen is left).
 * Also: not on a terminal, top prints one snapshot and exits 0; when the
 * manager stops, top leaves and says so.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

struct tmux {
	char sock[PATH_MAX + 16];   /* a private server socket */
	char status[PATH_MAX + 16]; /* where the shell writes top's exit code */
};

static int tmux_run(const struct tmux *t, struct jqt_out *o, const char *a1,
		    const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = {"tmux", "-S", t->sock, a1, a2, a3, a4, NULL};

	return jqt_run("/usr/bin/tmux", argv, NULL, 0, 10, o);
}

/* Starts `jobq --dir DIR top` in a detached 100x30 tmux window. */
static void tmux_start(struct tmux *t, const struct jqt_mgr *m)
{
	char cmd[3 * PATH_MAX + 64];
	const char *argv[] = {"tmux", "-S", t->sock, "new-session", "-d", "-x",
			      "100",  "-y", "30",    cmd,	    NULL};
	struct jqt_out o;

	snprintf(t->sock, sizeof(t->sock), "%s/tmux.sock", m->top);
	snprintf(t->status, sizeof(t->status), "%s/top.status", m->top);
	snprintf(cmd, sizeof(cmd),
		 "'%s' --dir '%s' top; echo $? > '%s'; sleep 30",
		 jqt_jobq_path(), m->dir, t->status);
	assert_int_equal(jqt_run("/usr/bin/tmux", argv, NULL, 0, 10, &o), 0);
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
}

static void tmux_stop(struct tmux *t)
{
	struct jqt_out o;

	if (tmux_run(t, &o, "kill-server", NULL, NULL, NULL) == 0)
		jqt_out_free(&o);
}

/* The screen as text, once it shows @want (at most 10 s); NULL if never. */
static char *screen_with(const struct tmux *t, const char *want)
{
	for (double end = jqt_now() + 10; jqt_now() < end; jqt_sleep(0.1)) {
		struct jqt_out o;

		if (tmux_run(t, &o, "capture-pane", "-p", "-t", "0"))
			continue;
		if (o.code == 0 && strstr(o.out, want)) {
			free(o.err);
			return o.out; /* the caller frees it */
		}
		jqt_out_free(&o);
	}
	return NULL;
}

/* top's exit code from the status file, once written (10 s); -1 never. */
static int top_status(const struct tmux *t)
{
	for (double end = jqt_now() + 10; jqt_now() < end; jqt_sleep(0.05)) {
		FILE *f = fopen(t->status, "r");
		int code;

		if (f) {
			int n = fscanf(f, "%d", &code);

			fclose(f);
			if (n == 1)
				return code;
		}
	}
	return -1;
}

static bool have_tmux(void)
{
	if (access("/usr/bin/tmux", X_OK) == 0)
		return true;
	if (getenv("CI"))
		fail_msg("tmux is missing (scripts/test.sh installs it)");
	return false;
}

static void test_top_in_tmux(void **state)
{
	struct jqt_mgr *m = *state;
	struct tmux t;
	char *scr;
	jobq_t *q;
	uint64_t id;

	if (!have_tmux())
		skip();
	assert_int_equal(jobq_open(&q, m->dir), 0);
	assert_int_equal(jobq_put(q, "invoices", JOBQ_T_BYTES, "x", 1, -1), 0);
	assert_int_equal(jobq_submit(q, "sleep", JOBQ_T_JSON, "{\"ms\": 20000}",
				     13, NULL, &id),
			 0);
	tmux_start(&t, m);

	scr = screen_with(&t, "invoices");
	assert_non_null(scr);
	free(scr);
	/* The running job: its type on a line of the running list. */
	scr = screen_with(&t, "RUNNING JOB");
	assert_non_null(scr);
	free(scr);
	scr = screen_with(&t, " sleep ");
	assert_non_null(scr);
	free(scr);
	/* A queue made while top runs shows up at the next refresh. */
	assert_int_equal(jobq_put(q, "late.arrival", JOBQ_T_BYTES, "", 0, -1),
			 0);
	scr = screen_with(&t, "late.arrival");
	assert_non_null(scr);
	free(scr);

	{
		struct jqt_out o;

		assert_int_equal(tmux_run(&t, &o, "send-keys", "-t", "0", "q"),
				 0);
		jqt_out_free(&o);
	}
	assert_int_equal(top_status(&t), 0);
	/* Back on the normal screen: top's frame is gone. */
	scr = screen_with(&t, "");
	assert_non_null(scr);
	assert_null(strstr(scr, "RUNNING JOB"));
	free(scr);
	tmux_stop(&t);
	jobq_cancel(q, id);
	jobq_close(q);
}

static void test_top_snapshot(void **state)
{
	struct jqt_mgr *m = *state;
	struct jqt_out o;
	jobq_t *q;

	assert_int_equal(jobq_open(&q, m->dir), 0);
	assert_int_equal(jobq_put(q, "snap", JOBQ_T_BYTES, "x", 1, -1), 0);
	CLI(&o, "top");
	assert_int_equal(o.code, 0);
	assert_non_null(strstr(o.out, "snap"));
	assert_non_null(strstr(o.out, "QUEUE"));
	assert_null(strchr(o.out, '\033')); /* no terminal codes */
	jqt_out_free(&o);
	jobq_close(q);
}

/* The manager going away ends top with exit 1 and a message. */
static void test_top_manager_gone(void **state)
{
	struct jqt_mgr m;
	struct tmux t;

	if (!have_tmux())
		skip();
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	tmux_start(&t, &m);
	free(screen_with(&t, "QUEUE"));
	kill(m.pid, SIGKILL);
	assert_int_equal(top_status(&t), 1);
	tmux_stop(&t);
	jqt_mgr_stop(&m);
}

static int setup(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "1", NULL};

	*state = &mgr;
	return jqt_mgr_start(&mgr, args);
}

static int teardown(void **state)
{
	jqt_mgr_stop(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_top_in_tmux, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_top_snapshot, setup, teardown),
	    cmocka_unit_test(test_top_manager_gone),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
