/* SPDX-License-Identifier: MIT */
/*
 * test_builtins.c - the built-in IO job types, run by a real jobqd's
 * built-in worker (jobqd --workers 1) against real files in a temporary
 * directory and against servers this test runs itself on 127.0.0.1 and
 * on a unix socket: a line server (echo, hold, partial answers) and an
 * HTTP/1.1 server (Content-Length, chunked, until close, cut short
 * mid-body, 404, slow).
 *
 * Every failure must be a failed job whose error names the cause, and the
 * same worker process must go on serving afterwards. A cancelled exec
 * must leave no process of its group behind, a cancelled net.request no
 * descriptor in the worker. 1,000 net.request jobs run at once in one
 * worker: the server holds every answer until it has seen them all
 * connected.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "builtin.h"
#include "harness.h"

#define MANY 1000

static char tmp[PATH_MAX]; /* the files of the tests */

/* ---- the servers ----------------------------------------------------------
 *
 * One thread, one epoll over a TCP listener on 127.0.0.1, a unix listener
 * and every connection. A connection's first line picks what happens:
 *
 *   ECHO text      answer "TEXT\n" upper-cased, then close
 *   HOLD           never answer (until the client goes)
 *   PART text      answer "text|" and keep the connection open
 *   WAIT           answer "ok\n" and close, but only once MANY WAITs are
 *                  connected at once (or 20 s after the first, once)
 *   GET /path ...  HTTP, see http_answer()
 */

struct conn {
	int fd;
	char in[4096];
	size_t inlen;
	char *out; /* what is left to send */
	size_t outlen, outoff;
	size_t drip;	  /* send this many bytes per tick (0: all) */
	double next_send; /* for dripping */
	bool close_after; /* close once out is sent */
	bool cut;	  /* close once out is sent, a body cut short */
	bool waiting;	  /* a WAIT not answered yet */
	bool held;
};

static struct {
	int ep, tcp, unx, stop_efd;
	unsigned short port;
	char unix_path[PATH_MAX];
	pthread_t thread;
	struct conn *conns[65536];
	int nwait;
	_Atomic int peak_wait; /* read by the tests */
	double first_wait;
	bool wait_released;
	_Atomic int open_conns; /* read by the tests */
} srv;

static char body_byte(size_t i)
{
	return (char)('a' + (i * 7) % 26);
}

static char *body_make(size_t n)
{
	char *b = malloc(n + 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = body_byte(i);
	b[n] = '\0';
	return b;
}

static void conn_close(struct conn *c)
{
	epoll_ctl(srv.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	srv.conns[c->fd] = NULL;
	if (c->waiting)
		srv.nwait--;
	srv.open_conns--;
	free(c->out);
	free(c);
}

static void conn_send(struct conn *c, const char *p, size_t len,
		      bool close_after)
{
	c->out = realloc(c->out, c->outlen + len);
	assert_non_null(c->out);
	memcpy(c->out + c->outlen, p, len);
	c->outlen += len;
	c->close_after = close_after;
}

static void http_answer(struct conn *c, const char *path)
{
	char head[256];
	char *b;
	int n;

	if (!strcmp(path, "/cl")) {
		b = body_make(100000);
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
			     "Content-Type: text/plain\r\n\r\n");
		conn_send(c, head, (size_t)n, false);
		conn_send(c, b, 100000, true);
		free(b);
	} else if (!strcmp(path, "/chunked")) {
		/* 70,000 bytes in chunks of growing sizes. */
		size_t at = 0, sz = 1;

		b = body_make(70000);
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
			     "chunked\r\n\r\n");
		conn_send(c, head, (size_t)n, false);
		while (at < 70000) {
			size_t k = 70000 - at < sz ? 70000 - at : sz;

			n = snprintf(head, sizeof(head), "%zx;x=y\r\n", k);
			conn_send(c, head, (size_t)n, false);
			conn_send(c, b + at, k, false);
			conn_send(c, "\r\n", 2, false);
			at += k;
			sz = sz * 3 + 1;
		}
		conn_send(c, "0\r\nTrailer: 1\r\n\r\n", 18, true);
		free(b);
	} else if (!strcmp(path, "/close")) {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.0 200 OK\r\nServer: t\r\n\r\n");
		conn_send(c, head, (size_t)n, false);
		b = body_make(5000);
		conn_send(c, b, 5000, true);
		free(b);
	} else if (!strcmp(path, "/cut")) {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
		conn_send(c, head, (size_t)n, false);
		b = body_make(300);
		conn_send(c, b, 300, true);
		free(b);
		c->cut = true;
	} else if (!strcmp(path, "/slow")) {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
		conn_send(c, head, (size_t)n, false);
		b = body_make(10);
		conn_send(c, b, 10, true);
		free(b);
		c->drip = 4;
	} else {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
			     "\r\nnot found");
		conn_send(c, head, (size_t)n, true);
	}
}

/* A request is complete in c->in: decide the answer. */
static void conn_request(struct conn *c)
{
	char *nl = memchr(c->in, '\n', c->inlen);

	if (!strncmp(c->in, "GET ", 4)) {
		char path[256] = "";

		if (!memmem(c->in, c->inlen, "\r\n\r\n", 4))
			return;
		sscanf(c->in + 4, "%255s", path);
		http_answer(c, path);
		return;
	}
	if (!nl)
		return;
	*nl = '\0';
	if (!strncmp(c->in, "ECHO ", 5)) {
		for (char *p = c->in + 5; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		conn_send(c, c->in + 5, strlen(c->in + 5), false);
		conn_send(c, "\n", 1, true);
	} else if (!strncmp(c->in, "PART ", 5)) {
		conn_send(c, c->in + 5, strlen(c->in + 5), false);
		conn_send(c, "|", 1, false);
	} else if (!strcmp(c->in, "WAIT")) {
		c->waiting = true;
		if (!srv.nwait++ && !srv.first_wait)
			srv.first_wait = jqt_now();
		if (srv.nwait > srv.peak_wait)
			srv.peak_wait = srv.nwait;
	} else {
		c->held = true; /* HOLD, or anything else */
	}
	c->inlen = 0;
}

static void release_waits(void)
{
	for (int fd = 0; fd < 65536; fd++) {
		struct conn *c = srv.conns[fd];

		if (c && c->waiting) {
			c->waiting = false;
			srv.nwait--;
			conn_send(c, "ok\n", 3, true);
		}
	}
}

/* Sends what it may; returns false when the connection is gone. */
static bool conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		size_t want = c->outlen - c->outoff;
		ssize_t n;

		if (c->drip) {
			if (jqt_now() < c->next_send)
				return true;
			want = want < c->drip ? want : c->drip;
			c->next_send = jqt_now() + 0.05;
		}
		n = send(c->fd, c->out + c->outoff, want, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0) {
			conn_close(c);
			return false;
		}
		c->outoff += (size_t)n;
		if (c->drip)
			return true;
	}
	if (c->outlen && c->close_after) {
		conn_close(c);
		return false;
	}
	return true;
}

static void srv_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN};
		struct conn *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		assert_non_null(c);
		c->fd = fd;
		srv.conns[fd] = c;
		srv.open_conns++;
		ev.data.fd = fd;
		epoll_ctl(srv.ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(srv.ep, evs, 64, 10);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			struct conn *c;
			ssize_t r;

			if (fd == srv.stop_efd)
				return NULL;
			if (fd == srv.tcp || fd == srv.unx) {
				srv_accept(fd);
				continue;
			}
			c = srv.conns[fd];
			if (!c)
				continue;
			r = recv(fd, c->in + c->inlen,
				 sizeof(c->in) - 1 - c->inlen, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				conn_close(c);
				continue;
			}
			if (r > 0 && !c->held && !c->waiting && !c->outlen) {
				c->inlen += (size_t)r;
				c->in[c->inlen] = '\0';
				conn_request(c);
			}
		}
		if (srv.nwait && !srv.wait_released &&
		    (srv.nwait >= MANY || jqt_now() - srv.first_wait > 20)) {
			srv.wait_released = true;
			release_waits();
		}
		if (srv.wait_released && srv.nwait)
			release_waits();
		for (int fd = 0; fd < 65536; fd++)
			if (srv.conns[fd] && srv.conns[fd]->outlen)
				conn_flush(srv.conns[fd]);
	}
}

/* srv_start runs before cmocka's tests: no assertions there. */
#define SRV_CK(cond)                                                           \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "server setup: %s: %s\n", #cond,       \
				strerror(errno));                              \
			exit(1);                                               \
		}                                                              \
	} while (0)

static void srv_start(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};
	socklen_t len = sizeof(sin);
	int one = 1;

	srv.ep = epoll_create1(EPOLL_CLOEXEC);
	srv.tcp =
	    socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	srv.unx =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	srv.stop_efd = eventfd(0, EFD_CLOEXEC);
	SRV_CK(srv.ep >= 0 && srv.tcp >= 0 && srv.unx >= 0 &&
	       srv.stop_efd >= 0);
	setsockopt(srv.tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	SRV_CK(bind(srv.tcp, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	SRV_CK(listen(srv.tcp, 4096) == 0);
	SRV_CK(getsockname(srv.tcp, (struct sockaddr *)&sin, &len) == 0);
	srv.port = ntohs(sin.sin_port);
	SRV_CK(strlen(tmp) + 10 < sizeof(sun.sun_path));
	strcpy(srv.unix_path, tmp);
	strcat(srv.unix_path, "/srv.sock");
	memcpy(sun.sun_path, srv.unix_path, strlen(srv.unix_path) + 1);
	SRV_CK(bind(srv.unx, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	SRV_CK(listen(srv.unx, 4096) == 0);
	ev.data.fd = srv.tcp;
	epoll_ctl(srv.ep, EPOLL_CTL_ADD, srv.tcp, &ev);
	ev.data.fd = srv.unx;
	epoll_ctl(srv.ep, EPOLL_CTL_ADD, srv.unx, &ev);
	ev.data.fd = srv.stop_efd;
	epoll_ctl(srv.ep, EPOLL_CTL_ADD, srv.stop_efd, &ev);
	SRV_CK(pthread_create(&srv.thread, NULL, srv_main, NULL) == 0);
}

static void srv_stop(void)
{
	uint64_t one = 1;

	if (write(srv.stop_efd, &one, sizeof(one)) < 0)
		return; /* cannot happen: a fresh eventfd */
	pthread_join(srv.thread, NULL);
	for (int fd = 0; fd < 65536; fd++)
		if (srv.conns[fd])
			conn_close(srv.conns[fd]);
	close(srv.tcp);
	close(srv.unx);
	close(srv.ep);
	close(srv.stop_efd);
}

/* ---- helpers ---------------------------------------------------------------
 */

static char *path_of(const char *name)
{
	static char buf[8][PATH_MAX];
	static int k;
	char *p = buf[k++ % 8];

	/* tmp is a short mkdtemp name: no truncation. */
	if (strlen(tmp) + strlen(name) + 2 > PATH_MAX)
		fail();
	strcpy(p, tmp);
	strcat(p, "/");
	strcat(p, name);
	return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	b[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	close(fd);
	return b;
}

/*
 * Runs one job of @type with args made from @fmt (JSON), one attempt,
 * and waits for it. Returns what jobq_apply() returns; *out gets the
 * result or the error text (the caller frees it).
 */
static int job(jobq_t *q, jobq_obj_t *out, const char *type, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));
static int job(jobq_t *q, jobq_obj_t *out, const char *type, const char *fmt,
	       ...)
{
	struct jobq_submit_opts o = {.no_retry = 1, .timeout = 60};
	char *args;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	assert_true(vasprintf(&args, fmt, ap) >= 0);
	va_end(ap);
	memset(out, 0, sizeof(*out));
	rc = jobq_apply(q, type, JOBQ_T_JSON, args, strlen(args), &o, out, 60);
	free(args);
	return rc;
}

/* The job succeeded with a JSON object: returns it (json_decref()). */
static json_t *ok_json(jobq_t *q, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *ok_json(jobq_t *q, const char *type, const char *fmt, ...)
{
	struct jobq_submit_opts o = {.no_retry = 1, .timeout = 60};
	jobq_obj_t out = {0};
	json_t *v = NULL;
	char *args;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	assert_true(vasprintf(&args, fmt, ap) >= 0);
	va_end(ap);
	rc = jobq_apply(q, type, JOBQ_T_JSON, args, strlen(args), &o, &out, 60);
	if (rc)
		print_error("%s %s: %s: %.*s\n", type, args, jobq_strerror(rc),
			    (int)out.len, (char *)out.data);
	assert_int_equal(rc, 0);
	assert_int_equal(jobq_obj_json(&out, &v), 0);
	assert_true(json_is_object(v));
	free(args);
	jobq_obj_free(&out);
	return v;
}

/* The job failed (dead) and its error has every one of the strings
 * (NULL-terminated). */
#define FAILS(q, type, ...) fails_(q, type, __VA_ARGS__)
static void fails_(jobq_t *q, const char *type, const char *args, ...)
{
	struct jobq_submit_opts o = {.no_retry = 1, .timeout = 60};
	jobq_obj_t out = {0};
	const char *want;
	va_list ap;
	int rc;

	rc = jobq_apply(q, type, JOBQ_T_JSON, args, strlen(args), &o, &out, 60);
	if (rc != JOBQ_EJOBFAILED)
		print_error("%s %s: %s: %.*s\n", type, args, jobq_strerror(rc),
			    (int)out.len, (char *)out.data);
	assert_int_equal(rc, JOBQ_EJOBFAILED);
	va_start(ap, args);
	while ((want = va_arg(ap, const char *)))
		if (!out.data || !strstr(out.data, want)) {
			print_error("%s %s: error \"%s\" does not say \"%s\"\n",
				    type, args, (char *)out.data, want);
			fail();
		}
	va_end(ap);
	jobq_obj_free(&out);
}

static pid_t the_worker(jobq_t *q)
{
	struct jobq_worker_info *wi;
	size_t n;
	pid_t pid;

	/* The built-in worker registers a moment after the manager is up. */
	for (double end = jqt_now() + 10;; jqt_sleep(0.02)) {
		assert_int_equal(jobq_workers(q, &wi, &n), 0);
		if (n || jqt_now() > end)
			break;
		free(wi);
	}
	assert_int_equal(n, 1);
	pid = wi[0].pid;
	free(wi);
	return pid;
}

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The worker still serves, and is still the same process. */
static void still_serving(jobq_t *q, pid_t worker)
{
	json_t *v = ok_json(q, "echo", "{\"still\": true}");

	assert_true(json_is_true(json_object_get(v, "still")));
	json_decref(v);
	assert_int_equal(the_worker(q), worker);
}

/* ---- setup -----------------------------------------------------------------
 */

static int setup(void **state)
{
	static struct jqt_mgr mgr;
	static const char *const args[] = {"--workers", "1",
					   "--worker-concurrency", "64", NULL};

	if (jqt_mgr_start(&mgr, args) < 0)
		return -1;
	jqt_cur = &mgr;
	*state = jqt_cur;
	return 0;
}

/* ---- files -----------------------------------------------------------------
 */

static void test_files(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q);
	size_t len;
	char *big = body_make(1000000), *got, args[3 * PATH_MAX];
	jobq_obj_t out;
	json_t *v;

	write_file(path_of("src"), big, 1000000);

	/* file.copy: a 1 MB file, byte for byte. */
	v = ok_json(q, "file.copy", "{\"src\": \"%s\", \"dst\": \"%s\"}",
		    path_of("src"), path_of("dst"));
	assert_int_equal(json_integer_value(json_object_get(v, "bytes")),
			 1000000);
	json_decref(v);
	got = read_file(path_of("dst"), &len);
	assert_int_equal(len, 1000000);
	assert_memory_equal(got, big, len);
	free(got);

	/* file.read: a range, and to the end. */
	assert_int_equal(job(q, &out, "file.read",
			     "{\"path\": \"%s\", \"offset\": 999990, "
			     "\"length\": 5}",
			     path_of("src")),
			 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, big + 999990, 5);
	jobq_obj_free(&out);
	assert_int_equal(job(q, &out, "file.read",
			     "{\"path\": \"%s\", \"offset\": 999000}",
			     path_of("src")),
			 0);
	assert_int_equal(out.len, 1000);
	assert_memory_equal(out.data, big + 999000, 1000);
	jobq_obj_free(&out);

	/* file.write, then append. */
	v = ok_json(q, "file.write", "{\"path\": \"%s\", \"data\": \"one\\n\"}",
		    path_of("w"));
	assert_int_equal(json_integer_value(json_object_get(v, "bytes")), 4);
	json_decref(v);
	v = ok_json(
	    q, "file.write",
	    "{\"path\": \"%s\", \"data\": \"two\\n\", \"append\": true}",
	    path_of("w"));
	json_decref(v);
	got = read_file(path_of("w"), &len);
	assert_string_equal(got, "one\ntwo\n");
	free(got);
	v = ok_json(q, "file.write", "{\"path\": \"%s\", \"data\": \"x\"}",
		    path_of("w"));
	json_decref(v);
	got = read_file(path_of("w"), &len);
	assert_string_equal(got, "x");
	free(got);

	/* file.checksum: the published vectors, and a big file against
	 * the unit-tested functions. */
	write_file(path_of("abc"), "abc", 3);
	v = ok_json(q, "file.checksum", "{\"path\": \"%s\"}", path_of("abc"));
	assert_string_equal(json_string_value(json_object_get(v, "digest")),
			    "ba7816bf8f01cfea414140de5dae2223"
			    "b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(json_integer_value(json_object_get(v, "bytes")), 3);
	json_decref(v);
	write_file(path_of("nine"), "123456789", 9);
	v = ok_json(q, "file.checksum",
		    "{\"path\": \"%s\", \"algo\": \"crc32c\"}",
		    path_of("nine"));
	assert_string_equal(json_string_value(json_object_get(v, "digest")),
			    "e3069283");
	json_decref(v);
	{
		struct jobq__sha256 s;
		uint8_t d[32];
		char hex[65];

		jobq__sha256_init(&s);
		jobq__sha256_update(&s, big, 1000000);
		jobq__sha256_final(&s, d);
		jobq__hex(d, 32, hex);
		v = ok_json(q, "file.checksum",
			    "{\"path\": \"%s\", \"algo\": \"sha256\"}",
			    path_of("src"));
		assert_string_equal(
		    json_string_value(json_object_get(v, "digest")), hex);
		json_decref(v);
	}

	/* Bad paths and bad args: failed jobs that say what and why. */
	snprintf(args, sizeof(args), "{\"src\": \"%s\", \"dst\": \"%s\"}",
		 path_of("missing"), path_of("dst2"));
	FAILS(q, "file.copy", args, path_of("missing"),
	      "No such file or directory", NULL);
	snprintf(args, sizeof(args), "{\"src\": \"%s\", \"dst\": \"%s\"}",
		 path_of("src"), path_of("no/such/dir"));
	FAILS(q, "file.copy", args, "no/such/dir", "No such file", NULL);
	snprintf(args, sizeof(args), "{\"path\": \"%s\"}", tmp);
	FAILS(q, "file.read", args, "is a directory", NULL);
	snprintf(args, sizeof(args), "{\"src\": \"%s\", \"dst\": \"%s\"}",
		 path_of("src"), path_of("src"));
	FAILS(q, "file.copy", args, "are the same file", NULL);
	got = read_file(path_of("src"), &len);
	assert_int_equal(len, 1000000);
	free(got);
	snprintf(args, sizeof(args), "{\"path\": \"%s\", \"algo\": \"md5\"}",
		 path_of("abc"));
	FAILS(q, "file.checksum", args, "md5", "sha256", NULL);
	FAILS(q, "file.write", "{\"data\": \"x\"}", "\"path\"", NULL);
	FAILS(q, "file.write", "[1, 2]", "JSON object", NULL);
	still_serving(q, worker);
	free(big);
	jobq_close(q);
}

/* ---- net.request ------------------------------------------------------------
 */

static void test_net_request(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q);
	jobq_obj_t out;
	char args[PATH_MAX + 256];
	int lfd, closed_port;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	/* TCP, until close. */
	assert_int_equal(job(q, &out, "net.request",
			     "{\"connect\": \"127.0.0.1:%u\", \"send\": "
			     "\"ECHO hello\\n\"}",
			     srv.port),
			 0);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "HELLO\n", 6);
	jobq_obj_free(&out);

	/* unix, until a delimiter and until a byte count, on a server that
	 * keeps the connection open. */
	assert_int_equal(job(q, &out, "net.request",
			     "{\"connect\": \"unix:%s\", \"send\": \"PART "
			     "abc\\n\", \"until\": \"|\"}",
			     srv.unix_path),
			 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "abc|", 4);
	jobq_obj_free(&out);
	assert_int_equal(job(q, &out, "net.request",
			     "{\"connect\": \"unix:%s\", \"send\": \"PART "
			     "abcdef\\n\", \"until\": 3}",
			     srv.unix_path),
			 0);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.data, "abc", 3);
	jobq_obj_free(&out);

	/* Refused: a port that was just bound and closed. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	closed_port = ntohs(sin.sin_port);
	close(lfd);
	snprintf(args, sizeof(args),
		 "{\"connect\": \"127.0.0.1:%d\", \"send\": \"x\"}",
		 closed_port);
	FAILS(q, "net.request", args, "127.0.0.1", "Connection refused", NULL);
	snprintf(args, sizeof(args), "{\"connect\": \"unix:%s\"}",
		 path_of("nobody.sock"));
	FAILS(q, "net.request", args, "nobody.sock", "No such file", NULL);

	/* A server that never answers, and a timeout. */
	snprintf(args, sizeof(args),
		 "{\"connect\": \"127.0.0.1:%u\", \"send\": \"HOLD\\n\", "
		 "\"timeout\": 0.3}",
		 srv.port);
	FAILS(q, "net.request", args, "timed out after 0.3 s", NULL);

	/* The peer closes before the delimiter. */
	snprintf(args, sizeof(args),
		 "{\"connect\": \"127.0.0.1:%u\", \"send\": \"ECHO x\\n\", "
		 "\"until\": \"never\"}",
		 srv.port);
	FAILS(q, "net.request", args, "closed the connection after 2 bytes",
	      "delimiter", NULL);
	FAILS(q, "net.request", "{\"connect\": \"nohost\"}", "nohost",
	      "host:port", NULL);
	still_serving(q, worker);
	jobq_close(q);
}

/* ---- http.get
 * ---------------------------------------------------------------- */

static void test_http_get(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q);
	char args[2 * PATH_MAX], *got, *want;
	size_t len;
	json_t *v;
	struct {
		const char *path;
		size_t bytes;
	} ok[] = {{"/cl", 100000},
		  {"/chunked", 70000},
		  {"/close", 5000},
		  {"/slow", 10}};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = ok_json(q, "http.get",
			    "{\"url\": \"http://127.0.0.1:%u%s\", \"dst\": "
			    "\"%s\"}",
			    srv.port, ok[i].path, path_of("page"));
		assert_int_equal(
		    json_integer_value(json_object_get(v, "status")), 200);
		assert_int_equal(
		    json_integer_value(json_object_get(v, "bytes")),
		    ok[i].bytes);
		json_decref(v);
		got = read_file(path_of("page"), &len);
		want = body_make(ok[i].bytes);
		assert_int_equal(len, ok[i].bytes);
		assert_memory_equal(got, want, len);
		free(got);
		free(want);
	}

	/* Cut short mid-body: failed, and nothing left at dst or dst.part. */
	snprintf(args, sizeof(args),
		 "{\"url\": \"http://127.0.0.1:%u/cut\", \"dst\": \"%s\"}",
		 srv.port, path_of("cut"));
	FAILS(q, "http.get", args, "/cut", "before the end of the body",
	      "300 body bytes", NULL);
	assert_int_equal(access(path_of("cut"), F_OK), -1);
	assert_int_equal(access(path_of("cut.part"), F_OK), -1);

	snprintf(args, sizeof(args),
		 "{\"url\": \"http://127.0.0.1:%u/nothing\", \"dst\": \"%s\"}",
		 srv.port, path_of("nf"));
	FAILS(q, "http.get", args, "HTTP status 404", NULL);
	snprintf(args, sizeof(args),
		 "{\"url\": \"http://127.0.0.1:%u/slow\", \"dst\": \"%s\", "
		 "\"timeout\": 0.1}",
		 srv.port, path_of("slow"));
	FAILS(q, "http.get", args, "timed out after 0.1 s", NULL);
	snprintf(args, sizeof(args),
		 "{\"url\": \"https://127.0.0.1:%u/\", \"dst\": \"%s\"}",
		 srv.port, path_of("s"));
	FAILS(q, "http.get", args, "only http://", NULL);
	snprintf(args, sizeof(args),
		 "{\"url\": \"http://127.0.0.1:%u/cl\", \"dst\": \"%s\"}",
		 srv.port, path_of("no/dir/x"));
	FAILS(q, "http.get", args, "no/dir/x", "No such file", NULL);
	still_serving(q, worker);
	jobq_close(q);
}

/* ---- exec
 * -------------------------------------------------------------------- */

static void test_exec(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q);
	json_t *v;

	v = ok_json(q, "exec",
		    "{\"argv\": [\"sh\", \"-c\", \"echo out; echo err >&2; "
		    "pwd; echo $JQT_X; cat\"], \"cwd\": \"%s\", \"env\": "
		    "{\"JQT_X\": \"from-env\", \"PATH\": \"/usr/bin:/bin\"}, "
		    "\"stdin\": \"fed\"}",
		    tmp);
	assert_int_equal(json_integer_value(json_object_get(v, "exit")), 0);
	assert_true(json_is_null(json_object_get(v, "signal")));
	{
		char want[PATH_MAX + 64];

		snprintf(want, sizeof(want), "out\n%s\nfrom-env\nfed", tmp);
		assert_string_equal(
		    json_string_value(json_object_get(v, "stdout")), want);
	}
	assert_string_equal(json_string_value(json_object_get(v, "stderr")),
			    "err\n");
	assert_true(json_is_false(json_object_get(v, "truncated")));
	json_decref(v);

	/* The capture is capped, with the flag; bytes that are not UTF-8
	 * come back as base64. */
	v = ok_json(q, "exec",
		    "{\"argv\": [\"sh\", \"-c\", \"seq 1 10000\"], "
		    "\"capture\": 10}");
	assert_string_equal(json_string_value(json_object_get(v, "stdout")),
			    "1\n2\n3\n4\n5\n");
	assert_true(json_is_true(json_object_get(v, "truncated")));
	json_decref(v);
	v = ok_json(q, "exec", "{\"argv\": [\"printf\", \"\\\\377\\\\000\"]}");
	assert_string_equal(
	    json_string_value(json_object_get(v, "stdout_base64")), "/wA=");
	json_decref(v);

	/* A command that does not read its input: the worker lives on. */
	{
		char *in = body_make(300000);

		v = ok_json(q, "exec",
			    "{\"argv\": [\"true\"], \"stdin\": \"%s\"}", in);
		assert_int_equal(json_integer_value(json_object_get(v, "exit")),
				 0);
		json_decref(v);
		free(in);
	}

	FAILS(q, "exec",
	      "{\"argv\": [\"sh\", \"-c\", \"echo bad >&2; exit 3\"]}",
	      "exited with status 3", "bad", NULL);
	FAILS(q, "exec", "{\"argv\": [\"sh\", \"-c\", \"kill -9 $$\"]}",
	      "killed by signal 9", NULL);
	FAILS(q, "exec", "{\"argv\": [\"jqt-no-such-command\"]}",
	      "jqt-no-such-command", "command not found", NULL);
	FAILS(q, "exec", "{\"argv\": [\"/etc/passwd\"]}", "cannot run",
	      "Permission denied", NULL);
	FAILS(q, "exec", "{\"argv\": [\"true\"], \"cwd\": \"/no/such/dir\"}",
	      "/no/such/dir", "No such file", NULL);
	FAILS(q, "exec", "{\"argv\": []}", "\"argv\"", NULL);
	FAILS(q, "exec", "{\"argv\": [\"sleep\", \"5\"], \"timeout\": 0.2}",
	      "timed out after 0.2 s", "killed", NULL);
	still_serving(q, worker);
	jobq_close(q);
}

/* ---- cancel
 * ------------------------------------------------------------------- */

static void test_cancel_exec(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q), pgid = 0;
	char args[PATH_MAX + 256], *got;
	int fds = count_fds(worker);
	uint64_t id;
	size_t len;
	double end;

	/* A shell that leaves a background child behind in its group, and
	 * says its pid (its group's id) in a file. */
	snprintf(args, sizeof(args),
		 "{\"argv\": [\"sh\", \"-c\", \"sleep 60 & echo $$ > %s.tmp; "
		 "mv %s.tmp %s; wait\"]}",
		 path_of("pg"), path_of("pg"), path_of("pg"));
	assert_rc(
	    jobq_submit(q, "exec", JOBQ_T_JSON, args, strlen(args), NULL, &id),
	    0);
	end = jqt_now() + 20;
	while (!(got = read_file(path_of("pg"), &len)) && jqt_now() < end)
		jqt_sleep(0.02);
	assert_non_null(got);
	pgid = (pid_t)atoi(got);
	free(got);
	assert_true(pgid > 1);
	assert_int_equal(kill(-pgid, 0), 0);
	assert_int_equal(jqt_job_state(q, id), JOBQ_JOB_RUNNING);
	assert_rc(jobq_cancel(q, id), 0);
	assert_rc(jobq_job_wait(q, id, 20), -ECANCELED);
	/* The whole group is gone, not just the shell. */
	end = jqt_now() + 5;
	while (kill(-pgid, 0) == 0 && jqt_now() < end)
		jqt_sleep(0.02);
	assert_int_equal(kill(-pgid, 0), -1);
	assert_int_equal(errno, ESRCH);
	/* Its pipes, pidfd, eventfd and log are closed again. */
	end = jqt_now() + 5;
	while (count_fds(worker) != fds && jqt_now() < end)
		jqt_sleep(0.02);
	assert_int_equal(count_fds(worker), fds);
	still_serving(q, worker);
	jobq_close(q);
}

/* The job's own --timeout (its lease) ends an exec like a cancel does. */
static void test_exec_lease_timeout(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	struct jobq_submit_opts o = {.no_retry = 1, .timeout = 0.5};
	pid_t worker = the_worker(q), pgid;
	char args[PATH_MAX + 256], *got;
	jobq_obj_t out = {0};
	size_t len;
	double end;

	snprintf(args, sizeof(args),
		 "{\"argv\": [\"sh\", \"-c\", \"sleep 60 & echo $$ > %s; "
		 "wait\"]}",
		 path_of("lease"));
	assert_rc(jobq_apply(q, "exec", JOBQ_T_JSON, args, strlen(args), &o,
			     &out, 30),
		  JOBQ_EJOBFAILED);
	assert_non_null(strstr(out.data, "timed out"));
	jobq_obj_free(&out);
	got = read_file(path_of("lease"), &len);
	assert_non_null(got);
	pgid = (pid_t)atoi(got);
	free(got);
	assert_true(pgid > 1);
	end = jqt_now() + 5;
	while (kill(-pgid, 0) == 0 && jqt_now() < end)
		jqt_sleep(0.02);
	assert_int_equal(kill(-pgid, 0), -1);
	assert_int_equal(errno, ESRCH);
	still_serving(q, worker);
	jobq_close(q);
}

static void test_cancel_net_request(void **state)
{
	struct jqt_mgr *m = *state;
	jobq_t *q = jqt_open_or_die(m);
	pid_t worker = the_worker(q);
	char args[256];
	jobq_obj_t out;
	uint64_t id;
	int before, after, conns;
	double end;

	/* One request first, so that whatever the worker sets up once is
	 * there before counting. */
	assert_int_equal(job(q, &out, "net.request",
			     "{\"connect\": \"127.0.0.1:%u\", \"send\": "
			     "\"ECHO warm\\n\"}",
			     srv.port),
			 0);
	jobq_obj_free(&out);
	before = count_fds(worker);
	conns = srv.open_conns;
	snprintf(args, sizeof(args),
		 "{\"connect\": \"127.0.0.1:%u\", \"send\": \"HOLD\\n\"}",
		 srv.port);
	assert_rc(jobq_submit(q, "net.request", JOBQ_T_JSON, args, strlen(args),
			      NULL, &id),
		  0);
	end = jqt_now() + 20;
	while (srv.open_conns <= conns && jqt_now() < end)
		jqt_sleep(0.01);
	assert_true(count_fds(worker) > before);
	assert_rc(jobq_cancel(q, id), 0);
	assert_rc(jobq_job_wait(q, id, 20), -ECANCELED);
	/* The server sees the connection close; the worker has not one
	 * descriptor more than before. */
	end = jqt_now() + 5;
	while (srv.open_conns > conns && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(srv.open_conns, conns);
	after = count_fds(worker);
	assert_int_equal(after, before);
	still_serving(q, worker);
	jobq_close(q);
}

/* ---- many at once
 * --------------------------------------------------------------- */

static int many_worker(int idx, void *arg)
{
	struct jobq_worker_opts o = {.concurrency = MANY};
	jobq_worker_t *w;
	jobq_t *q = jqt_open_or_die(arg);
	int rc;

	(void)idx;
	rc = jobq_worker_new(&w, q, &o);
	if (rc) {
		fprintf(stderr, "jobq_worker_new(concurrency %d): %s\n", MANY,
			jobq_strerror(rc));
		return 1;
	}
	CK_RC(jobq_worker_builtin(w), 0);
	rc = jobq_worker_run(w);
	jobq_worker_free(w);
	jobq_close(q);
	return rc && rc != JOBQ_ECLOSED;
}

static void test_many_at_once(void **state)
{
	static const char *const args[] = {"--workers", "0", NULL};
	struct jqt_mgr m2;
	jobq_obj_t *in = calloc(MANY, sizeof(*in));
	uint64_t *ids = calloc(MANY, sizeof(*ids));
	char a[128];
	jobq_t *q;
	pid_t wpid;
	double t0;
	int n, status;

	(void)state;
	assert_non_null(in);
	assert_non_null(ids);
	assert_int_equal(jqt_mgr_start(&m2, args), 0);
	q = jqt_open_or_die(&m2);
	wpid = jqt_fork(many_worker, 0, &m2);
	assert_true(wpid > 0);
	/* A worker that cannot run MANY jobs at once says so and exits. */
	for (double end = jqt_now() + 10;; jqt_sleep(0.02)) {
		struct jobq_worker_info *wi;
		size_t nw = 0;

		assert_int_equal(jobq_workers(q, &wi, &nw), 0);
		free(wi);
		if (nw)
			break;
		if (jqt_wait_pid(wpid, 0, &status) == 0 || jqt_now() > end) {
			jobq_close(q);
			jqt_mgr_stop(&m2);
			free(in);
			free(ids);
			print_message("no worker runs %d jobs at once here\n",
				      MANY);
			skip();
		}
	}
	snprintf(a, sizeof(a),
		 "{\"connect\": \"127.0.0.1:%u\", \"send\": \"WAIT\\n\", "
		 "\"until\": \"\\n\"}",
		 srv.port);
	for (int i = 0; i < MANY; i++)
		in[i] = (jobq_obj_t){
		    .type = JOBQ_T_JSON, .len = strlen(a), .data = a};
	t0 = jqt_now();
	for (int done = 0; done < MANY; done += n) {
		n = jobq_submit_many(q, "net.request", in + done,
				     (size_t)(MANY - done), NULL, ids + done);
		assert_true(n > 0);
	}
	assert_rc(jobq_wait_all(q, ids, MANY, 60), 0);
	print_message("%d net.request jobs in %.2f s; the server saw %d "
		      "connected at once\n",
		      MANY, jqt_now() - t0, srv.peak_wait);
	/* The server answers only once it holds all of them (else after a
	 * 20 s fallback): every job was running at the same time. */
	assert_int_equal(srv.peak_wait, MANY);
	jobq_close(q);
	jqt_mgr_stop(&m2);
	assert_int_equal(jqt_wait_all(&wpid, 1, 20, &status), 0);
	free(in);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_net_request),
	    cmocka_unit_test(test_http_get),
	    cmocka_unit_test(test_exec),
	    cmocka_unit_test(test_cancel_exec),
	    cmocka_unit_test(test_exec_lease_timeout),
	    cmocka_unit_test(test_cancel_net_request),
	    cmocka_unit_test(test_many_at_once),
	};
	int rc;

	jqt_init();
	signal(SIGPIPE, SIG_IGN);
	if (jqt_tmpdir(tmp, sizeof(tmp)))
		return 1;
	srv_start();
	rc = cmocka_run_group_tests(tests, setup, jqt_teardown);
	srv_stop();
	jqt_rmtree(tmp);
	return rc;
}
