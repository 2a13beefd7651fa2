/* SPDX-License-Identifier: MIT */
/*
 * test_notify.c - jobqd as a Type=notify service: with $NOTIFY_SOCKET set
 * it sends READY=1 (with its pid) once clients can connect, and
 * STOPPING=1 when a shutdown begins, by SIGTERM or by `jobq shutdown`.
 * Without the variable it sends nothing and starts as usual.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

struct listener {
	char dir[256];
	char path[300];
	int fd;
};

/* A datagram socket in a fresh directory, named by $NOTIFY_SOCKET. */
static void listen_notify(struct listener *l, int abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;

	assert_int_equal(jqt_tmpdir(l->dir, sizeof(l->dir)), 0);
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	if (abstract) {
		snprintf(l->path, sizeof(l->path), "@jobq-notify-test-%d",
			 (int)getpid());
		memcpy(sa.sun_path, l->path, strlen(l->path));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				  strlen(l->path));
	} else {
		snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
		strcpy(sa.sun_path, l->path);
		len = sizeof(sa);
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
	setenv("NOTIFY_SOCKET", l->path, 1);
}

static void unlisten(struct listener *l)
{
	unsetenv("NOTIFY_SOCKET");
	close(l->fd);
	jqt_rmtree(l->dir);
}

/* The next datagram, NUL-terminated in @buf; fails the test after 10 s. */
static void recv_notice(struct listener *l, char *buf, size_t cap)
{
	struct pollfd p = {.fd = l->fd, .events = POLLIN};
	ssize_t n;

	assert_int_equal(poll(&p, 1, 10000), 1);
	n = recv(l->fd, buf, cap - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
}

static void check_ready_and_stopping(int abstract, int by_cli)
{
	struct jqt_mgr m;
	struct listener l;
	char buf[256], want[64];

	listen_notify(&l, abstract);
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	recv_notice(&l, buf, sizeof(buf));
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%d", (int)m.pid);
	assert_string_equal(buf, want);

	if (by_cli) {
		struct jqt_out o;

		assert_int_equal(jqt_cli(&m, &o, NULL, 0, "shutdown", NULL), 0);
		jqt_out_free(&o);
	} else {
		kill(m.pid, SIGTERM);
	}
	recv_notice(&l, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_true(jqt_status_ok(m.exit_status));
	jqt_mgr_stop(&m);
	unlisten(&l);
}

static void test_path_socket_sigterm(void **state)
{
	check_ready_and_stopping(0, 0);
}

static void test_abstract_socket_shutdown(void **state)
{
	check_ready_and_stopping(1, 1);
}

/* A variable that names no socket is logged and ignored. */
static void test_bad_socket_ignored(void **state)
{
	struct jqt_mgr m;

	setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(jqt_mgr_alive(&m), 1);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_socket_sigterm),
	    cmocka_unit_test(test_abstract_socket_shutdown),
	    cmocka_unit_test(test_bad_socket_ignored),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
