/* SPDX-License-Identifier: MIT */
/*
 * echo_server.c - Python's selectors echo server, on io_uring callbacks.
 *
 * The idea: the selectors example registers a callback per socket
 * (accept() for the listening one, read() for each connection) and an
 * event loop calls them when the socket is ready. Here the callbacks are
 * given the finished operation instead of readiness: the accept callback
 * gets the new connection, the receive callback gets the bytes. Every
 * message comes back upper-cased, every connection is served at once by
 * one thread, and nothing blocks.
 *
 *   echo_server [--port N] [--unix PATH]
 *                     serve on 127.0.0.1:N (default 0: any free port,
 *                     printed) and/or a unix socket, until killed
 *   echo_server --test
 *                     serve on a free loopback port and a unix socket,
 *                     and run a client process against both: 8
 *                     connections each, 50 messages per connection
 *
 * With --test, exits 0 when every answer came back right, 1 otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jobq.h>

struct conn {
	int fd;
	char buf[4096];
	size_t len, sent;
};

static void on_recv(jobq_loop_t *l, ssize_t res, void *arg);

static void conn_close(jobq_loop_t *l, struct conn *c)
{
	(void)l;
	close(c->fd);
	free(c);
}

static void read_more(jobq_loop_t *l, struct conn *c)
{
	if (jobq_io_recv_cb(l, c->fd, c->buf, sizeof(c->buf), 0, -1, on_recv,
			    c))
		conn_close(l, c);
}

static void on_sent(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct conn *c = arg;

	if (res <= 0) {
		conn_close(l, c);
		return;
	}
	c->sent += (size_t)res;
	if (c->sent < c->len) {
		/* A short send: the rest goes next. */
		if (jobq_io_send_cb(l, c->fd, c->buf + c->sent,
				    c->len - c->sent, 0, -1, on_sent, c))
			conn_close(l, c);
		return;
	}
	read_more(l, c);
}

/*
 * Upper-cases ASCII letters in place, eight bytes at a time: for each byte
 * b below 0x80, (b + 0x1f) has its top bit set when b >= 'a', and
 * (b + 0x05) when b > 'z'; the bytes where the first is set and the second
 * not get 0x20 taken away. toupper() per byte costs more than the rest of
 * a 4 KiB round trip together, and (in the C locale it implements) does
 * the same.
 */
static void upcase(char *p, size_t len)
{
	const uint64_t ones = 0x0101010101010101ull, high = ones * 0x80;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w, ascii, ge_a, gt_z;

		memcpy(&w, p + i, 8);
		ascii = ~w & high;
		/* Adding to the low 7 bits alone cannot carry across bytes. */
		ge_a = ((w & ~high) + ones * (0x80 - 'a')) & ascii;
		gt_z = ((w & ~high) + ones * (0x7f - 'z')) & ascii;
		w -= (ge_a & ~gt_z) >> 2;
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		if (p[i] >= 'a' && p[i] <= 'z')
			p[i] = (char)(p[i] - 0x20);
}

/* selectors' read(conn, mask): data, or the peer closed. */
static void on_recv(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct conn *c = arg;

	if (res <= 0) {
		conn_close(l, c);
		return;
	}
	upcase(c->buf, (size_t)res);
	c->len = (size_t)res;
	c->sent = 0;
	if (jobq_io_send_cb(l, c->fd, c->buf, c->len, 0, -1, on_sent, c))
		conn_close(l, c);
}

/*
 * An echo answers each piece as it arrives, and a message that came in two
 * pieces goes back in two sends: with Nagle's algorithm the second waits
 * for the peer's ACK of the first, which the peer delays, and a round trip
 * takes a delayed-ACK tick instead of microseconds. Unix sockets have no
 * such option; the call then fails harmlessly.
 */
static void set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* selectors' accept(sock, mask): a connection, and wait for the next. */
static void on_accept(jobq_loop_t *l, ssize_t res, void *arg)
{
	int lfd = (int)(intptr_t)arg;
	struct conn *c;

	if (res == -ECANCELED)
		return; /* the loop is being freed */
	if (res >= 0) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			close((int)res);
		} else {
			c->fd = (int)res;
			set_nodelay(c->fd);
			read_more(l, c);
		}
	}
	if (jobq_io_accept_cb(l, lfd, NULL, NULL, SOCK_CLOEXEC, -1, on_accept,
			      arg))
		fprintf(stderr, "echo_server: cannot accept any more\n");
}

static int listen_tcp(int port, int *bound)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		close(fd);
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(a.sun_path))
		return -1;
	strcpy(a.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 128)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------------
 * The test client: a separate process with plain blocking sockets.
 */
static int client_session(int fd, unsigned seed)
{
	char msg[1024], want[1024], got[1024];

	for (int m = 0; m < 50; m++) {
		size_t len = 1 + (seed = seed * 1103515245 + 12345) % 1000;
		size_t have = 0;

		for (size_t i = 0; i < len; i++) {
			msg[i] = (char)('a' + (seed >> 16) % 26);
			seed = seed * 1103515245 + 12345;
			want[i] = (char)toupper((unsigned char)msg[i]);
		}
		if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
			return 1;
		while (have < len) {
			ssize_t n = recv(fd, got + have, len - have, 0);

			if (n <= 0)
				return 1;
			have += (size_t)n;
		}
		if (memcmp(got, want, len))
			return 1;
	}
	return 0;
}

static int client(const struct sockaddr *addr, socklen_t alen, int family)
{
	int fds[8];

	/* All eight connected first, so that the server has them at once. */
	for (int i = 0; i < 8; i++) {
		fds[i] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || connect(fds[i], addr, alen))
			return 1;
	}
	for (int i = 0; i < 8; i++)
		if (client_session(fds[i], (unsigned)i + 1))
			return 1;
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	return 0;
}

static int run_clients(int port, const char *path)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	strcpy(un.sun_path, path);
	if (client((struct sockaddr *)&in, sizeof(in), AF_INET))
		return 1;
	return client((struct sockaddr *)&un, sizeof(un), AF_UNIX);
}

/* A fiber beside the callbacks: waits for the client to finish, then
 * stops the loop. */
struct watch {
	pid_t pid;
	int status;
	int res;
};

static void watch_client(void *arg)
{
	struct watch *w = arg;

	w->res = jobq_io_waitpid(w->pid, &w->status, 60);
	jobq_loop_stop(jobq_loop_current());
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/jobq-echo-XXXXXX", path[108] = "";
	int port = 0, bound = 0, test = 0, tfd = -1, ufd = -1, rc = 0;
	struct watch w = {0};
	jobq_loop_t *l;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--test")) {
			test = 1;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--unix") && i + 1 < argc) {
			snprintf(path, sizeof(path), "%s", argv[++i]);
		} else {
			fprintf(stderr, "usage: echo_server [--port N] "
					"[--unix PATH] | --test\n");
			return 2;
		}
	}
	if (test) {
		if (!mkdtemp(dir))
			return 1;
		snprintf(path, sizeof(path), "%s/echo.sock", dir);
	}
	tfd = listen_tcp(port, &bound);
	if (tfd < 0 || (path[0] && (ufd = listen_unix(path)) < 0)) {
		perror("echo_server: listen");
		return 1;
	}
	printf("echo_server: 127.0.0.1:%d%s%s\n", bound, path[0] ? " and " : "",
	       path);
	fflush(stdout);
	if (test) {
		w.pid = fork();
		if (w.pid < 0)
			return 1;
		if (w.pid == 0)
			_exit(run_clients(bound, path));
	}

	if (jobq_loop_new(&l, NULL)) {
		fprintf(stderr, "echo_server: %s\n", jobq_loop_why());
		if (test)
			kill(w.pid, SIGKILL);
		return 1;
	}
	on_accept(l, -EAGAIN, (void *)(intptr_t)tfd);
	if (ufd >= 0)
		on_accept(l, -EAGAIN, (void *)(intptr_t)ufd);
	if (test && jobq_spawn(l, watch_client, &w, NULL))
		return 1;
	rc = jobq_loop_run(l);
	/* Cancels the accepts still waiting (their callbacks see
	 * -ECANCELED). */
	jobq_loop_free(l);
	close(tfd);
	if (ufd >= 0)
		close(ufd);
	if (test) {
		unlink(path);
		rmdir(dir);
		if (rc < 0 || w.res || !WIFEXITED(w.status) ||
		    WEXITSTATUS(w.status)) {
			printf("FAILED: the client saw a wrong answer or "
			       "none\n");
			return 1;
		}
		printf("ok: 2 x 8 connections, 50 messages each, all "
		       "upper-cased\n");
	}
	return 0;
}
