/* SPDX-License-Identifier: MIT */
/*
 * test_http.c - jobqd --http: /metrics answers on loopback in the
 * Prometheus text format, /api/state is JSON, other paths and methods are
 * refused; a bad --http is refused at start; and the dashboard, loaded in
 * headless Chromium, shows a queue and a running job the test made and
 * updates by itself when a queue is added (tests/service/
 * check_dashboard.py; a screenshot is left in the build directory).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

#define PYTHON "/usr/bin/python3"

static struct jqt_mgr mgr;
static char addr[128]; /* "127.0.0.1:PORT" from DIR/jobqd.http */

static int setup(void **state)
{
	static const char *const args[] = {"--workers", "1", "--http", "0",
					   NULL};
	char path[PATH_MAX + 32];
	FILE *f;

	*state = &mgr;
	if (jqt_mgr_start(&mgr, args))
		return -1;
	snprintf(path, sizeof(path), "%s/jobqd.http", mgr.dir);
	f = fopen(path, "r");
	if (!f || !fgets(addr, sizeof(addr), f))
		return -1;
	fclose(f);
	addr[strcspn(addr, "\n")] = '\0';
	return 0;
}

static int teardown(void **state)
{
	jqt_mgr_stop(&mgr);
	return 0;
}

/* One request to the server; the whole answer (head and body) in *out. */
static void http_get(const char *request, char **out)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char host[64];
	const char *colon = strrchr(addr, ':');
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap + 1);
	int fd;

	assert_non_null(buf);
	assert_non_null(colon);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	assert_int_equal(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, request, strlen(request), 0),
			 (ssize_t)strlen(request));
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	assert_non_null(b);
	return b + 4;
}

static void test_loopback_and_routes(void **state)
{
	char *r;
	json_t *j;
	jobq_t *q;

	/* A bare port listens on loopback only. */
	assert_true(!strncmp(addr, "127.0.0.1:", 10));
	assert_int_equal(jobq_open(&q, mgr.dir), 0);
	assert_int_equal(jobq_put(q, "orders", JOBQ_T_BYTES, "ab", 2, -1), 0);

	http_get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 200 ", 13));
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	assert_non_null(
	    strstr(body_of(r), "jobq_queue_depth{queue=\"orders\"} 1"));
	if (!access(PYTHON, X_OK) &&
	    !system(PYTHON " -c 'import prometheus_client' 2>/dev/null")) {
		char script[PATH_MAX];
		const char *argv[] = {PYTHON, script, NULL};
		struct jqt_out o;
		const char *body = body_of(r);

		snprintf(script, sizeof(script),
			 "%s/tests/service/check_prometheus.py",
			 getenv("JOBQ_TEST_SRCDIR"));
		assert_int_equal(
		    jqt_run(PYTHON, argv, body, strlen(body), 30, &o), 0);
		assert_int_equal(o.code, 0);
		jqt_out_free(&o);
	}
	free(r);

	http_get("GET /api/state HTTP/1.1\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 200 ", 13));
	j = json_loads(body_of(r), 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "queues")), 1);
	assert_true(json_is_object(json_object_get(j, "jobs")));
	assert_int_equal(json_integer_value(json_object_get(j, "pid")),
			 mgr.pid);
	json_decref(j);
	free(r);

	http_get("GET / HTTP/1.0\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 200 ", 13));
	assert_non_null(strstr(r, "<canvas id=\"chart\""));
	free(r);
	http_get("GET /etc/passwd HTTP/1.1\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 404 ", 13));
	free(r);
	http_get("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 405 ", 13));
	free(r);
	http_get("garbage\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 400 ", 13));
	free(r);
	/* The server still answers after all that. */
	http_get("GET /metrics HTTP/1.1\r\n\r\n", &r);
	assert_true(!strncmp(r, "HTTP/1.1 200 ", 13));
	free(r);
	jobq_close(q);
}

static void test_bad_http_option(void **state)
{
	static const char *const bad[] = {"nonsense", "1.2.3:80", "70000",
					  "[::1:80"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char dir[PATH_MAX];
		const char *argv[] = {"jobqd",	"--dir", dir,
				      "--http", bad[i],	 NULL};
		struct jqt_out o;

		assert_int_equal(jqt_tmpdir(dir, sizeof(dir)), 0);
		assert_int_equal(
		    jqt_run(jqt_jobqd_path(), argv, NULL, 0, 20, &o), 0);
		assert_int_not_equal(o.code, 0);
		assert_non_null(strstr(o.err, "--http"));
		jqt_out_free(&o);
		jqt_rmtree(dir);
	}
}

static void test_dashboard_in_chromium(void **state)
{
	char script[PATH_MAX], url[256], shot[2 * PATH_MAX], cwd[PATH_MAX];
	const char *argv[] = {PYTHON, script, jqt_jobq_path(), mgr.dir, url,
			      shot,   NULL};
	struct jqt_out o;
	uint64_t id;
	jobq_t *q;

	if (access(PYTHON, X_OK)) {
		if (getenv("CI"))
			fail_msg("%s is missing", PYTHON);
		skip();
	}
	assert_int_equal(jobq_open(&q, mgr.dir), 0);
	assert_int_equal(jobq_put(q, "invoices", JOBQ_T_BYTES, "x", 1, -1), 0);
	assert_int_equal(jobq_submit(q, "sleep", JOBQ_T_JSON, "{\"ms\": 30000}",
				     13, NULL, &id),
			 0);
	snprintf(script, sizeof(script), "%s/tests/service/check_dashboard.py",
		 getenv("JOBQ_TEST_SRCDIR"));
	snprintf(url, sizeof(url), "http://%s/", addr);
	/* Left where the test runs (the build directory), to look at. */
	if (!getcwd(cwd, sizeof(cwd)))
		strcpy(cwd, ".");
	snprintf(shot, sizeof(shot), "%s/dashboard.png", cwd);
	assert_int_equal(jqt_run(PYTHON, argv, NULL, 0, 90, &o), 0);
	printf("%s%s", o.out, o.err);
	if (o.code == 77 && !getenv("CI")) {
		jqt_out_free(&o);
		jobq_cancel(q, id);
		jobq_close(q);
		skip();
	}
	assert_int_equal(o.code, 0);
	jqt_out_free(&o);
	jobq_cancel(q, id);
	jobq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_loopback_and_routes, setup,
					    teardown),
	    cmocka_unit_test(test_bad_http_option),
	    cmocka_unit_test_setup_teardown(test_dashboard_in_chromium, setup,
					    teardown),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
