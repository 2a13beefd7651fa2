/* SPDX-License-Identifier: MIT */
/*
 * http.c - jobqd --http: Prometheus metrics at /metrics and a read-only
 * dashboard at / (its data at /api/state), on loopback unless another
 * address is named.
 *
 * The server is a thread of its own that is a client of this manager,
 * exactly as `jobq top` is: it opens a handle to the instance and reads
 * the store mapping (jobq_stats, jobq_queues, jobq_jobs, jobq_workers).
 * So the event loop never parses HTTP, a slow or hostile browser can
 * delay only this thread, and what the page shows is what every client
 * sees. The thread samples the counters once a second into a ring of ten
 * minutes for the throughput chart; that sampling is why an instance
 * started with --http wakes once a second, and one without it does not.
 *
 * Connections are served one at a time, each with a short deadline for
 * the request and the answer, and closed after the answer (no
 * keep-alive): a dashboard polling once a second needs no more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jobqd.h"

#define HISTORY	     600  /* seconds of throughput kept for the chart */
#define REQUEST_MAX  8192 /* bytes of request head read */
#define IO_DEADLINE  2	  /* seconds a client gets to send or take */
#define RUNNING_SHOW 100  /* running jobs listed at most */

/* The page, from dist/dashboard/index.html (dashboard_html.c, generated). */
extern const char jobq__dashboard_html[];
extern const size_t jobq__dashboard_html_len;

struct tick {
	uint64_t at_ns; /* CLOCK_REALTIME */
	uint64_t puts, gets, submitted, done, failed;
};

static struct {
	pthread_t thread;
	bool started;
	int lfd;
	int stop_pipe[2];
	char dir[PATH_MAX];
	char addr[96]; /* what it listens on, for messages */
	jobq_t *q;
	struct tick ring[HISTORY];
	uint32_t head, n; /* oldest at head, n filled */
} http = {.lfd = -1, .stop_pipe = {-1, -1}};

/*
 * Parses "PORT", "ADDR:PORT" or "[ADDR6]:PORT" into @ss. A bare port is
 * loopback: another address must be named to be used. Returns 0 or
 * -EINVAL.
 */
static int parse_listen(const char *s, struct sockaddr_storage *ss,
			socklen_t *len)
{
	char host[64] = "127.0.0.1";
	const char *port = s, *colon;
	char *end;
	unsigned long p;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':' ||
		    (size_t)(close - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		port = close + 2;
	} else if ((colon = strrchr(s, ':'))) {
		if ((size_t)(colon - s) >= sizeof(host) || colon == s)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || *end || end == port || p > 65535)
		return -EINVAL;
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	}
	return 0;
}

/* The bound address as text, "127.0.0.1:8080" or "[::1]:8080". */
static void format_addr(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	}
}

int jobq__http_listen(const char *spec, const char *dir, char *err,
		      size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	char path[PATH_MAX + 32];
	int one = 1, fd, afd;

	if (parse_listen(spec, &ss, &sl)) {
		snprintf(err, errlen,
			 "--http %s: not PORT, ADDR:PORT or [ADDR6]:PORT",
			 spec);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0)
		goto fail;
	http.lfd = fd;
	snprintf(http.dir, sizeof(http.dir), "%s", dir);
	format_addr(fd, http.addr, sizeof(http.addr));
	/* Where it listens, for whoever asked for port 0: DIR/jobqd.http. */
	snprintf(path, sizeof(path), "%s/jobqd.http", dir);
	afd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (afd >= 0) {
		dprintf(afd, "%s\n", http.addr);
		close(afd);
	}
	return 0;
fail:
	snprintf(err, errlen, "--http %s: %s", spec, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -errno;
}

static void sample(void)
{
	struct jobq_stats st;
	struct tick *t;

	if (jobq_stats(http.q, &st))
		return;
	if (http.n < HISTORY) {
		t = &http.ring[(http.head + http.n++) % HISTORY];
	} else {
		t = &http.ring[http.head];
		http.head = (http.head + 1) % HISTORY;
	}
	*t = (struct tick){.at_ns = jobq__realtime_ns(),
			   .puts = st.puts,
			   .gets = st.gets,
			   .submitted = st.submitted,
			   .done = st.done,
			   .failed = st.failed};
}

static json_t *u64(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Adds @v under @k; a failed step leaves the object as it was. */
static void set(json_t *o, const char *k, json_t *v)
{
	json_object_set_new(o, k, v);
}

/* What the dashboard draws, as one JSON object (NULL when out of memory
 * or when the store could not be read). */
static char *state_json(void)
{
	struct jobq_stats st;
	struct jobq_queue_info *qs = NULL;
	struct jobq_worker_info *ws = NULL;
	struct jobq_job_info *run = NULL;
	size_t nq = 0, nw = 0, nrun = 0;
	json_t *doc = NULL, *a;
	char *text = NULL;

	if (jobq_stats(http.q, &st) || jobq_queues(http.q, &qs, &nq) ||
	    jobq_workers(http.q, &ws, &nw))
		goto out;
	if (st.jobs_by_state[JOBQ_JOB_RUNNING] &&
	    jobq_jobs(http.q, JOBQ_JOB_RUNNING, NULL, RUNNING_SHOW, &run,
		      &nrun))
		goto out;
	doc = json_object();
	if (!doc)
		goto out;
	set(doc, "dir", json_string(http.dir));
	set(doc, "version", json_string(JOBQ_VERSION_STRING));
	set(doc, "pid", json_integer(st.manager_pid));
	set(doc, "now_ms", u64(jobq__realtime_ns() / 1000000));
	set(doc, "started_ms", u64(st.started_ns / 1000000));
	set(doc, "memory_total", u64(st.memory_total));
	set(doc, "memory_used", u64(st.memory_used));
	set(doc, "clients", json_integer(st.clients));
	set(doc, "keys", json_integer(st.keys));
	set(doc, "locks", json_integer(st.locks));
	a = json_object();
	for (int s = JOBQ_JOB_WAITING; a && s <= JOBQ_JOB_CANCELLED; s++)
		set(a, jobq_job_state_name(s), u64(st.jobs_by_state[s]));
	set(doc, "jobs", a);

	a = json_array();
	for (size_t i = 0; a && i < nq; i++)
		json_array_append_new(
		    a, json_pack("{s:s%,s:o,s:o,s:o,s:o,s:o,s:i,s:i,s:b}",
				 "name", qs[i].name, strlen(qs[i].name),
				 "depth", u64(qs[i].depth), "bytes",
				 u64(qs[i].bytes), "puts", u64(qs[i].total_put),
				 "gets", u64(qs[i].total_get), "ready",
				 u64(qs[i].jobs_ready), "running",
				 (int)qs[i].jobs_running, "parallel",
				 (int)qs[i].parallel, "paused", qs[i].paused));
	set(doc, "queues", a);

	a = json_array();
	for (size_t i = 0; a && i < nrun; i++)
		json_array_append_new(
		    a, json_pack("{s:o,s:s%,s:s%,s:i,s:o,s:f}", "id",
				 u64(run[i].id), "type", run[i].type,
				 strlen(run[i].type), "queue", run[i].queue,
				 strlen(run[i].queue), "worker",
				 (int)run[i].worker, "started_ms",
				 u64(run[i].started_ns / 1000000), "progress",
				 run[i].progress));
	set(doc, "running", a);

	a = json_array();
	for (size_t i = 0; a && i < nw; i++)
		json_array_append_new(
		    a, json_pack("{s:i,s:s%,s:i,s:i,s:o,s:o,s:o}", "pid",
				 (int)ws[i].pid, "types", ws[i].types,
				 strnlen(ws[i].types, sizeof(ws[i].types)),
				 "running", (int)ws[i].running, "capacity",
				 (int)ws[i].capacity, "done", u64(ws[i].done),
				 "failed", u64(ws[i].failed), "started_ms",
				 u64(ws[i].started_ns / 1000000)));
	set(doc, "workers", a);

	/* [ms, puts, gets, submitted, done, failed] per second, oldest
	 * first: the page turns differences into rates. */
	a = json_array();
	for (uint32_t i = 0; a && i < http.n; i++) {
		const struct tick *t = &http.ring[(http.head + i) % HISTORY];

		json_array_append_new(
		    a, json_pack("[o,o,o,o,o,o]", u64(t->at_ns / 1000000),
				 u64(t->puts), u64(t->gets), u64(t->submitted),
				 u64(t->done), u64(t->failed)));
	}
	set(doc, "history", a);
	/* Names that are not UTF-8 are refused by jansson (s%); with
	 * JSON_ENSURE_ASCII the output is plain ASCII either way. */
	text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
out:
	json_decref(doc);
	free(qs);
	free(ws);
	free(run);
	return text;
}

static int send_all(int fd, const void *p, size_t len)
{
	const char *s = p;

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

static void respond(int fd, int code, const char *reason, const char *type,
		    const void *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 "X-Content-Type-Options: nosniff\r\n"
			 "Connection: close\r\n\r\n",
			 code, reason, type, len);

	if (send_all(fd, head, (size_t)n) == 0 && len)
		send_all(fd, body, len);
}

static void serve(int fd)
{
	struct timeval tv = {.tv_sec = IO_DEADLINE};
	char req[REQUEST_MAX + 1], method[8], target[256];
	size_t got = 0;
	char *text;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Only the request line matters; read until the head ends. */
	while (got < REQUEST_MAX) {
		ssize_t n = recv(fd, req + got, REQUEST_MAX - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[got] = '\0';
	if (sscanf(req, "%7s %255s HTTP/1.%*c", method, target) != 2) {
		respond(fd, 400, "Bad Request", "text/plain", "bad request\n",
			12);
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		respond(fd, 405, "Method Not Allowed", "text/plain",
			"GET only\n", 9);
		return;
	}
	if (!strcmp(target, "/metrics")) {
		size_t len = 0;

		if (!jobq__prometheus(http.q, &text, &len))
			respond(fd, 200, "OK", "text/plain; version=0.0.4",
				text, len);
		else
			respond(fd, 503, "Service Unavailable", "text/plain",
				"store unreadable\n", 17);
		free(text);
	} else if (!strcmp(target, "/api/state")) {
		text = state_json();
		if (text)
			respond(fd, 200, "OK", "application/json", text,
				strlen(text));
		else
			respond(fd, 503, "Service Unavailable", "text/plain",
				"store unreadable\n", 17);
		free(text);
	} else if (!strcmp(target, "/") || !strcmp(target, "/index.html")) {
		respond(fd, 200, "OK", "text/html; charset=utf-8",
			jobq__dashboard_html, jobq__dashboard_html_len);
	} else {
		respond(fd, 404, "Not Found", "text/plain", "not found\n", 10);
	}
}

static void *run(void *arg)
{
	uint64_t next = 0;
	int err;

	(void)arg;
	/* The manager's loop answers our hello once it runs. */
	err = jobq_open(&http.q, http.dir);
	if (err) {
		jobq__log(JOBQ__LOG_ERROR,
			  "http %s: cannot open the instance: %s", http.addr,
			  jobq_strerror(err));
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = {
		    {.fd = http.lfd, .events = POLLIN},
		    {.fd = http.stop_pipe[0], .events = POLLIN}};
		uint64_t now = jobq__now_ns();
		int wait_ms;

		if (now >= next) {
			sample();
			next = now + 1000000000ull;
		}
		wait_ms = (int)((next - now) / 1000000) + 1;
		if (poll(p, 2, wait_ms) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN) {
			int fd = accept4(http.lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				serve(fd);
				close(fd);
			}
		}
	}
	jobq_close(http.q);
	http.q = NULL;
	return NULL;
}

int jobq__http_start(void)
{
	int err;

	if (http.lfd < 0)
		return 0;
	if (pipe2(http.stop_pipe, O_CLOEXEC) < 0)
		return -errno;
	err = pthread_create(&http.thread, NULL, run, NULL);
	if (err)
		return -err;
	http.started = true;
	jobq__log(0, "http: metrics and dashboard on http://%s/", http.addr);
	return 0;
}

void jobq__http_stop(void)
{
	char path[PATH_MAX + 32];

	if (http.started) {
		if (write(http.stop_pipe[1], "x", 1) < 0) {
			/* The pipe is ours and empty: cannot fail. */
		}
		pthread_join(http.thread, NULL);
		http.started = false;
	}
	if (http.lfd >= 0) {
		close(http.lfd);
		http.lfd = -1;
		snprintf(path, sizeof(path), "%s/jobqd.http", http.dir);
		unlink(path);
	}
	for (int i = 0; i < 2; i++)
		if (http.stop_pipe[i] >= 0) {
			close(http.stop_pipe[i]);
			http.stop_pipe[i] = -1;
		}
}
