/* SPDX-License-Identifier: MIT */
/*
 * builtin_net.c - the socket job types: net.request (send some bytes to a
 * TCP or unix stream socket, read the answer until a close, a byte count
 * or a delimiter) and http.get (plain HTTP/1.1, the body written to a
 * file). Connect, send and receive go through the engine; a name that is
 * not an address literal is resolved with getaddrinfo, which blocks.
 *
 * The socket is closed on every path, and only after the IO call on it
 * has returned (the engine returns only once the kernel is done with the
 * request, a cancelled one included), so a cancelled or timed-out job
 * leaks no descriptor.
 *
 * http.get writes the body to "DST.part" and renames it to DST only when
 * the whole body arrived, so a body cut short never looks complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "builtin_impl.h"

/* Room for the answer grows by this much at a time. */
#define RECV_CHUNK (64 * 1024)

/* "timed out after 0.5 s" or the errno text, for a message. */
static const char *cause(const struct jobq__deadline *d, int err, char *buf,
			 size_t len)
{
	if (err == -ETIMEDOUT && d->timeout > 0) {
		snprintf(buf, len, "timed out after %g s", d->timeout);
		return buf;
	}
	return strerror(-err);
}

/*
 * Opens a stream socket to @a and connects it. Returns the fd, or fails
 * the job (naming @what) and returns -1 with *rc set.
 */
static int dial(jobq_job_t *job, const char *type, const char *what,
		struct jobq__addr *a, const struct jobq__deadline *d, int *rc)
{
	const char *why;
	char tb[48];
	int fd, err;

	err = jobq__addr_resolve(a, &why);
	if (err) {
		*rc = jobq_job_fail(job, 0, "%s: cannot resolve \"%s\": %s",
				    type, a->host, why);
		return -1;
	}
	fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*rc = jobq_job_fail(job, 0, "%s: socket for %s: %s", type, what,
				    strerror(errno));
		return -1;
	}
	err = jobq_io_connect(fd, (struct sockaddr *)&a->sa, a->salen,
			      jobq__deadline_left(d));
	if (err < 0) {
		close(fd);
		/* A unix socket path that is not there will not appear by
		 * retrying; a TCP listener may come back. */
		*rc = jobq_job_fail(
		    job,
		    err == -ECANCELED || (a->family == AF_UNIX &&
					  (err == -ENOENT || err == -EACCES)),
		    "%s: connect to %s: %s", type, what,
		    err == -ECANCELED ? "cancelled"
				      : cause(d, err, tb, sizeof(tb)));
		return -1;
	}
	return fd;
}

/* Sends all @len bytes. Returns 0 or -errno. */
static int send_all(int fd, const char *p, size_t len,
		    const struct jobq__deadline *d)
{
	while (len) {
		ssize_t n = jobq_io_send(fd, p, len, MSG_NOSIGNAL,
					 jobq__deadline_left(d));

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int jobq__net_request_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "net.request";
	jobq_t *q = arg;
	size_t max = jobq_max_object(q), len = 0, cap = 0, seen = 0, end = 0;
	json_t *args = jobq__bargs(job, T);
	const char *target, *data;
	struct jobq__until until;
	struct jobq__deadline d;
	struct jobq__addr a;
	size_t dlen;
	double timeout;
	char *buf = NULL, tb[48];
	bool complete = false;
	int fd = -1, rc, err;

	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "connect", true, &target, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "send", false, &data, &dlen)) ||
	    (rc = jobq__btimeout(job, args, T, &timeout)))
		goto out;
	if (jobq__until_parse(json_object_get(args, "until"), &until)) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"until\" must be \"close\", a byte "
				   "count or a delimiter string",
				   T);
		goto out;
	}
	err = jobq__addr_parse(target, &a);
	if (err) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"connect\" is \"%s\": %s; give "
				   "host:port, [v6]:port or unix:/path",
				   T, target,
				   err == -ENAMETOOLONG
				       ? "the socket path is too long"
				       : "not an address");
		goto out;
	}
	if (until.kind == JOBQ__UNTIL_BYTES && until.bytes > max) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"until\" %llu bytes is more than a "
				   "result may hold (%zu, jobqd --max-object)",
				   T, (unsigned long long)until.bytes, max);
		goto out;
	}
	jobq__deadline_init(&d, timeout);
	fd = dial(job, T, target, &a, &d, &rc);
	if (fd < 0)
		goto out;
	if (dlen && (err = send_all(fd, data, dlen, &d)) < 0) {
		rc = jobq_job_fail(
		    job, err == -ECANCELED, "%s: sending to %s: %s", T, target,
		    err == -ECANCELED ? "cancelled"
				      : cause(&d, err, tb, sizeof(tb)));
		goto out;
	}
	while (!complete) {
		size_t room;
		ssize_t n;

		if (jobq__until_end(&until, buf, len, seen, &end)) {
			complete = true;
			break;
		}
		seen = len;
		if (len == cap) {
			size_t ncap = cap + RECV_CHUNK;
			char *nb;

			if (cap >= max + 1) {
				rc = jobq_job_fail(
				    job, 1,
				    "%s: the answer from %s is longer than a "
				    "result may hold (%zu, jobqd --max-object)",
				    T, target, max);
				goto out;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		room = cap - len;
		/* A byte count is read exactly: nothing past it is taken
		 * off the socket. */
		if (until.kind == JOBQ__UNTIL_BYTES && until.bytes - len < room)
			room = (size_t)(until.bytes - len);
		n = jobq_io_recv(fd, buf + len, room, 0, jobq__slice(&d));
		if (n == -ETIMEDOUT && !(n = jobq__slice_over(job, &d)))
			continue;
		if (n < 0) {
			rc = jobq_job_fail(
			    job, n == -ECANCELED, "%s: receiving from %s: %s%s",
			    T, target,
			    n == -ECANCELED ? "cancelled"
					    : cause(&d, (int)n, tb, sizeof(tb)),
			    len ? " (after some bytes)" : "");
			goto out;
		}
		if (n == 0) {
			if (until.kind == JOBQ__UNTIL_CLOSE) {
				end = len;
				complete = true;
				break;
			}
			rc = jobq_job_fail(
			    job, 0,
			    "%s: %s closed the connection after %zu bytes, "
			    "before %s",
			    T, target, len,
			    until.kind == JOBQ__UNTIL_BYTES ? "the byte count"
							    : "the delimiter");
			goto out;
		}
		len += (size_t)n;
	}
	if (end > max) {
		rc = jobq_job_fail(job, 1,
				   "%s: the answer from %s is longer than a "
				   "result may hold (%zu, jobqd --max-object)",
				   T, target, max);
		goto out;
	}
	rc = jobq_job_succeed(job, JOBQ_T_BYTES, buf, end);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	json_decref(args);
	return rc;
}

/* ---- http.get ------------------------------------------------------------ */

int jobq__http_get_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "http.get";
	json_t *args = jobq__bargs(job, T);
	struct jobq__http *h = NULL;
	struct jobq__deadline d;
	struct jobq__url u;
	struct jobq__addr a;
	const char *url, *dst;
	char *buf = NULL, *req = NULL, *tmp = NULL, tb[48];
	double timeout;
	int fd = -1, out = -1, rc, err, reqlen;
	uint64_t written = 0;

	(void)arg;
	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "url", true, &url, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "dst", true, &dst, NULL)) ||
	    (rc = jobq__btimeout(job, args, T, &timeout)))
		goto out;
	err = jobq__url_parse(url, &u);
	if (err) {
		rc = jobq_job_fail(job, 1, "%s: \"%s\": %s", T, url,
				   err == -EPROTONOSUPPORT
				       ? "only http:// URLs are supported"
				       : "not a URL of the form "
					 "http://host[:port]/path");
		goto out;
	}
	memset(&a, 0, sizeof(a));
	memcpy(a.host, u.host, sizeof(a.host));
	memcpy(a.port, u.port, sizeof(a.port));
	a.family = AF_UNSPEC;
	if (asprintf(&tmp, "%s.part", dst) < 0) {
		tmp = NULL;
		rc = -ENOMEM;
		goto out;
	}
	out = jobq_io_openat(AT_FDCWD, tmp,
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (out < 0) {
		rc = jobq_job_fail(job, out != -ENOSPC && out != -EIO,
				   "%s: cannot create \"%s\": %s", T, tmp,
				   strerror(-out));
		goto out;
	}
	reqlen = asprintf(&req,
			  "GET %s%.*s HTTP/1.1\r\nHost: %s\r\n"
			  "User-Agent: jobq/" JOBQ_VERSION_STRING "\r\n"
			  "Accept: */*\r\nConnection: close\r\n\r\n",
			  u.path[0] == '?' ? "/" : "", (int)u.pathlen, u.path,
			  u.hostport);
	h = malloc(sizeof(*h));
	buf = malloc(RECV_CHUNK);
	if (reqlen < 0 || !h || !buf) {
		if (reqlen < 0)
			req = NULL;
		rc = -ENOMEM;
		goto out;
	}
	jobq__deadline_init(&d, timeout);
	fd = dial(job, T, url, &a, &d, &rc);
	if (fd < 0)
		goto out;
	if ((err = send_all(fd, req, (size_t)reqlen, &d)) < 0) {
		rc = jobq_job_fail(job, err == -ECANCELED,
				   "%s: sending the request to %s: %s", T, url,
				   err == -ECANCELED
				       ? "cancelled"
				       : cause(&d, err, tb, sizeof(tb)));
		goto out;
	}
	jobq__http_init(h, false);
	while (h->state != JOBQ__HTTP_DONE) {
		ssize_t n =
		    jobq_io_recv(fd, buf, RECV_CHUNK, 0, jobq__slice(&d));
		size_t at = 0;

		if (n == -ETIMEDOUT && !(n = jobq__slice_over(job, &d)))
			continue;
		if (n < 0) {
			rc = jobq_job_fail(
			    job, n == -ECANCELED, "%s: receiving from %s: %s",
			    T, url,
			    n == -ECANCELED
				? "cancelled"
				: cause(&d, (int)n, tb, sizeof(tb)));
			goto out;
		}
		if (n == 0) {
			if (jobq__http_eof(h) < 0) {
				rc = jobq_job_fail(job, 0,
						   "%s: %s: %s (%llu body "
						   "bytes arrived)",
						   T, url, h->error,
						   (unsigned long long)h->body);
				goto out;
			}
			break;
		}
		while (at < (size_t)n && h->state != JOBQ__HTTP_DONE) {
			const char *body = NULL;
			size_t blen;
			ssize_t used = jobq__http_feed(
			    h, buf + at, (size_t)n - at, &body, &blen);

			if (used < 0) {
				rc = jobq_job_fail(
				    job, 0, "%s: %s: malformed response: %s", T,
				    url, h->error);
				goto out;
			}
			at += (size_t)used;
			/* Only a 2xx body is the file asked for. */
			if (!blen || h->status < 200 || h->status > 299)
				continue;
			ssize_t w = jobq_io_write_all(out, body, blen,
						      (int64_t)written, -1);

			if (w < 0) {
				rc = jobq_job_fail(job, w == -ECANCELED,
						   "%s: writing \"%s\": %s", T,
						   tmp, strerror((int)-w));
				goto out;
			}
			written += blen;
		}
	}
	if (h->status < 200 || h->status > 299) {
		/* A client error will not mend by asking again; a server
		 * error or a redirect we do not follow may. */
		rc =
		    jobq_job_fail(job, h->status >= 400 && h->status < 500,
				  "%s: %s: HTTP status %d%s", T, url, h->status,
				  h->status >= 300 && h->status < 400
				      ? " (redirects are not followed)"
				      : "");
		goto out;
	}
	if (rename(tmp, dst)) {
		rc = jobq_job_fail(job, 0, "%s: renaming \"%s\" to \"%s\": %s",
				   T, tmp, dst, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL; /* renamed: nothing to remove */
	rc = jobq__succeed_json(job, json_pack("{s:i,s:I}", "status", h->status,
					       "bytes", (json_int_t)written));
out:
	if (fd >= 0)
		close(fd);
	if (out >= 0)
		close(out);
	if (tmp && out >= 0)
		unlink(tmp);
	free(tmp);
	free(req);
	free(buf);
	free(h);
	json_decref(args);
	return rc;
}
