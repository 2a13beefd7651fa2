/* SPDX-License-Identifier: MIT */
/*
 * http_parse.c - an incremental HTTP/1.1 response parser for http.get.
 *
 * Bytes arrive split at arbitrary points, so the parser is a state machine
 * that never needs to look back: the status line, header lines, chunk-size
 * lines and trailers are gathered one line at a time into h->line (bounded:
 * a longer line is an error, not growth), and body bytes are handed back
 * as pointers into the caller's buffer without copying.
 *
 * The body is framed as RFC 9112 section 6.3 says: no body for HEAD, 1xx,
 * 204 and 304; chunked when Transfer-Encoding ends in "chunked" (which then
 * overrides any Content-Length); else Content-Length; else until the
 * connection closes. A Content-Length that is not a plain number, or two
 * that disagree, is malformed: guessing there is how request smuggling
 * starts. Interim 1xx responses are skipped.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "builtin.h"

void jobq__http_init(struct jobq__http *h, bool head)
{
	memset(h, 0, offsetof(struct jobq__http, line));
	h->state = JOBQ__HTTP_STATUS;
	h->head = head;
	h->content_len = -1;
}

static ssize_t fail(struct jobq__http *h, const char *why)
{
	h->state = JOBQ__HTTP_ERROR;
	h->error = why;
	return -EPROTO;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

static int parse_status(struct jobq__http *h, const char *l, size_t n)
{
	/* "HTTP/1.x SSS[ reason]" */
	if (n < 12 || memcmp(l, "HTTP/1.", 7) || l[7] < '0' || l[7] > '9' ||
	    l[8] != ' ')
		return (int)fail(h, "the status line is not HTTP/1.x");
	for (int i = 9; i < 12; i++)
		if (l[i] < '0' || l[i] > '9')
			return (int)fail(h, "the status code is not 3 digits");
	if (n > 12 && l[12] != ' ')
		return (int)fail(h, "the status code is not 3 digits");
	h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (h->status < 100)
		return (int)fail(h, "the status code is below 100");
	h->state = JOBQ__HTTP_HEADER;
	return 0;
}

/* A Content-Length value: digits only, no overflow. */
static int parse_length(const char *v, size_t n, int64_t *out)
{
	int64_t x = 0;

	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (INT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

/* Whether the last coding of a Transfer-Encoding list is "chunked". */
static bool last_is_chunked(const char *v, size_t n)
{
	size_t end = n, start;

	while (end && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	start = end;
	while (start && v[start - 1] != ',' && v[start - 1] != ' ' &&
	       v[start - 1] != '\t')
		start--;
	return end - start == 7 && !strncasecmp(v + start, "chunked", 7);
}

static int parse_header(struct jobq__http *h, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t nlen, vlen;

	if (!colon || colon == l)
		return (int)fail(h, "a header line has no name");
	nlen = (size_t)(colon - l);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar(l[i]))
			return (int)fail(h, "a header name has a character "
					    "that is not allowed");
	if (++h->headers > JOBQ__HTTP_HEADERS_MAX)
		return (int)fail(h, "more than 100 header lines");
	v = colon + 1;
	vlen = n - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (nlen == 14 && !strncasecmp(l, "content-length", 14)) {
		int64_t len;

		if (parse_length(v, vlen, &len))
			return (int)fail(h, "Content-Length is not a number");
		if (h->content_len >= 0 && h->content_len != len)
			return (int)fail(h, "two Content-Length headers "
					    "disagree");
		h->content_len = len;
	} else if (nlen == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
		if (!last_is_chunked(v, vlen))
			return (int)fail(h, "a Transfer-Encoding other than "
					    "chunked is not supported");
		h->chunked = true;
	}
	return 0;
}

/* The blank line after the headers: decides how the body is framed. */
static void end_headers(struct jobq__http *h)
{
	if (h->status < 200) {
		/* An interim answer (100 Continue): the real one follows. */
		bool head = h->head;

		jobq__http_init(h, head);
		return;
	}
	if (h->head || h->status == 204 || h->status == 304) {
		h->state = JOBQ__HTTP_DONE;
	} else if (h->chunked) {
		h->state = JOBQ__HTTP_CHUNK_SIZE;
	} else if (h->content_len >= 0) {
		h->left = (uint64_t)h->content_len;
		h->state = h->left ? JOBQ__HTTP_BODY_LENGTH : JOBQ__HTTP_DONE;
	} else {
		h->state = JOBQ__HTTP_BODY_CLOSE;
	}
}

static int parse_chunk_size(struct jobq__http *h, const char *l, size_t n)
{
	uint64_t x = 0;
	size_t i = 0;

	for (; i < n; i++) {
		char c = l[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (x >> 59)
			return (int)fail(h, "a chunk size is too large");
		x = x << 4 | d;
	}
	/* Digits, then nothing, blanks or a ";extension". */
	if (!i || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
		return (int)fail(h, "a chunk size is not a hex number");
	h->left = x;
	h->state = x ? JOBQ__HTTP_CHUNK_DATA : JOBQ__HTTP_TRAILER;
	return 0;
}

/* One complete line (CR LF stripped) in the state that gathers lines. */
static int take_line(struct jobq__http *h, const char *l, size_t n)
{
	switch (h->state) {
	case JOBQ__HTTP_STATUS:
		return parse_status(h, l, n);
	case JOBQ__HTTP_HEADER:
		if (!n) {
			end_headers(h);
			return 0;
		}
		if (l[0] == ' ' || l[0] == '\t')
			return (int)fail(h, "folded header lines are obsolete "
					    "and not accepted");
		return parse_header(h, l, n);
	case JOBQ__HTTP_CHUNK_SIZE:
		return parse_chunk_size(h, l, n);
	case JOBQ__HTTP_CHUNK_END:
		if (n)
			return (int)fail(h, "a chunk is longer than its size");
		h->state = JOBQ__HTTP_CHUNK_SIZE;
		return 0;
	case JOBQ__HTTP_TRAILER:
		if (!n)
			h->state = JOBQ__HTTP_DONE;
		return 0; /* trailer fields are read and ignored */
	default:
		return (int)fail(h, "internal: no line expected");
	}
}

ssize_t jobq__http_feed(struct jobq__http *h, const char *in, size_t len,
			const char **body, size_t *blen)
{
	*blen = 0;
	if (h->state == JOBQ__HTTP_ERROR)
		return -EPROTO;
	if (h->state == JOBQ__HTTP_DONE || !len)
		return 0;

	if (h->state == JOBQ__HTTP_BODY_CLOSE) {
		*body = in;
		*blen = len;
		h->body += len;
		return (ssize_t)len;
	}
	if (h->state == JOBQ__HTTP_BODY_LENGTH ||
	    h->state == JOBQ__HTTP_CHUNK_DATA) {
		size_t n = h->left < len ? (size_t)h->left : len;

		*body = in;
		*blen = n;
		h->body += n;
		h->left -= n;
		if (!h->left)
			h->state = h->state == JOBQ__HTTP_BODY_LENGTH
				       ? JOBQ__HTTP_DONE
				       : JOBQ__HTTP_CHUNK_END;
		return (ssize_t)n;
	}

	/* A line state: gather up to and including the next LF. */
	const char *nl = memchr(in, '\n', len);
	size_t take = nl ? (size_t)(nl - in) + 1 : len;
	size_t n;

	if (h->linelen + take > sizeof(h->line))
		return fail(h, h->state == JOBQ__HTTP_STATUS ||
				       h->state == JOBQ__HTTP_HEADER
				   ? "a status or header line is longer than "
				     "8 KiB"
				   : "a chunk-size or trailer line is longer "
				     "than 8 KiB");
	memcpy(h->line + h->linelen, in, take);
	h->linelen += take;
	if (!nl)
		return (ssize_t)take;
	n = h->linelen - 1; /* without the LF */
	if (n && h->line[n - 1] == '\r')
		n--;
	h->linelen = 0;
	if (memchr(h->line, '\r', n) || memchr(h->line, '\0', n))
		return fail(h, "a line has a stray CR or NUL byte");
	if (take_line(h, h->line, n) < 0)
		return -EPROTO;
	return (ssize_t)take;
}

int jobq__http_eof(struct jobq__http *h)
{
	switch (h->state) {
	case JOBQ__HTTP_DONE:
	case JOBQ__HTTP_BODY_CLOSE:
		h->state = JOBQ__HTTP_DONE;
		return 0;
	case JOBQ__HTTP_ERROR:
		return -EPROTO;
	case JOBQ__HTTP_STATUS:
		if (!h->linelen)
			return (int)fail(h, "the server closed the connection "
					    "without answering");
		__attribute__((fallthrough));
	case JOBQ__HTTP_HEADER:
		return (int)fail(h, "the server closed the connection in the "
				    "middle of the headers");
	case JOBQ__HTTP_BODY_LENGTH:
		return (int)fail(h, "the server closed the connection before "
				    "the end of the body (Content-Length)");
	default:
		return (int)fail(h, "the server closed the connection before "
				    "the last chunk of the body");
	}
}
