/* SPDX-License-Identifier: MIT */
/*
 * builtin.h - the pure pieces under the built-in job types: checksums, an
 * incremental HTTP/1.1 response parser, URL and address parsing and the
 * "until" rule of net.request. None of them does IO, so each is tested on
 * its own (tests/unit/test_builtin_pure.c); the handlers in builtin_*.c
 * feed them what the engine reads.
 */
#ifndef JOBQ_BUILTIN_H
#define JOBQ_BUILTIN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#include "crc32c.h"
#include "jobq.h"

/* ---- SHA-256 (FIPS 180-4), streaming ---------------------------------- */

struct jobq__sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes fed so far */
	uint8_t buf[64];
	size_t nbuf; /* bytes of buf in use, < 64 between calls */
	/* Compresses @n 64-byte blocks: the SHA-NI or the portable code. */
	void (*blocks)(uint32_t h[8], const uint8_t *p, size_t n);
};

/* Starts a digest with the fastest code this CPU runs. */
void jobq__sha256_init(struct jobq__sha256 *s);
/* Starts a digest that uses the portable code whatever the CPU (tests,
 * and to measure the difference). */
void jobq__sha256_init_sw(struct jobq__sha256 *s);
/* Whether jobq__sha256_init() picks the SHA extensions on this CPU. */
bool jobq__sha256_hw(void);
void jobq__sha256_update(struct jobq__sha256 *s, const void *p, size_t len);
/* Writes the 32-byte digest; @s must be initialised again before reuse. */
void jobq__sha256_final(struct jobq__sha256 *s, uint8_t out[32]);

/* CRC32C: src/crc32c.h, shared with the journal. */

/* Lower-case hex of @len bytes into @out (2 * len + 1 bytes). */
void jobq__hex(const uint8_t *p, size_t len, char *out);

/* ---- HTTP/1.1 responses ----------------------------------------------- */

#define JOBQ__HTTP_LINE_MAX    8192 /* a status, header or chunk-size line */
#define JOBQ__HTTP_HEADERS_MAX 100

enum jobq__http_state {
	JOBQ__HTTP_STATUS,
	JOBQ__HTTP_HEADER,
	JOBQ__HTTP_BODY_LENGTH, /* Content-Length bytes */
	JOBQ__HTTP_BODY_CLOSE,	/* neither length nor chunked: until EOF */
	JOBQ__HTTP_CHUNK_SIZE,
	JOBQ__HTTP_CHUNK_DATA,
	JOBQ__HTTP_CHUNK_END, /* the CRLF after a chunk's data */
	JOBQ__HTTP_TRAILER,
	JOBQ__HTTP_DONE,
	JOBQ__HTTP_ERROR,
};

/*
 * One response being parsed. Zero it with jobq__http_init(); feed it
 * bytes as they arrive, split anywhere, with jobq__http_feed(); tell it
 * about the end of the connection with jobq__http_eof(). Everything it
 * needs is inside: no allocation.
 */
struct jobq__http {
	enum jobq__http_state state;
	int status;	     /* from the status line */
	bool head;	     /* the request was HEAD: no body */
	bool chunked;	     /* Transfer-Encoding: chunked */
	int64_t content_len; /* -1: no Content-Length */
	uint64_t left;	     /* body or chunk bytes still to come */
	uint64_t body;	     /* body bytes handed out so far */
	unsigned headers;
	const char *error; /* why, once state is JOBQ__HTTP_ERROR */
	size_t linelen;
	char line[JOBQ__HTTP_LINE_MAX];
};

void jobq__http_init(struct jobq__http *h, bool head);

/*
 * jobq__http_feed - parse from @in (@len bytes, > 0). Consumes some prefix
 * and returns its length (>= 1); when that prefix is body bytes, *body and
 * *blen point at them (inside @in), else *blen is 0. Call again with the
 * rest until it is used up or h->state is JOBQ__HTTP_DONE (bytes after the
 * message are not consumed). Returns -EPROTO for malformed input, with
 * h->error saying what was wrong.
 */
ssize_t jobq__http_feed(struct jobq__http *h, const char *in, size_t len,
			const char **body, size_t *blen);

/*
 * jobq__http_eof - the connection ended. Returns 0 when that completes the
 * response (it was complete, or its body runs until close), -EPROTO when
 * the response was cut short (h->error says where).
 */
int jobq__http_eof(struct jobq__http *h);

/* ---- URLs and addresses ----------------------------------------------- */

struct jobq__url {
	char host[256];	    /* without the brackets of an IPv6 literal */
	char port[6];	    /* decimal, "80" when the URL names none */
	char hostport[264]; /* the Host header: as written in the URL */
	const char *path;   /* into the URL: from its "/" or "?" up to any */
	size_t pathlen;	    /* "#"; "/" when it has neither. "?q" is asked */
			    /* for as "/?q": the caller adds the "/". */
};

/*
 * jobq__url_parse - "http://host[:port][/path]" into *u. Returns 0,
 * -EPROTONOSUPPORT for another scheme (https included), -EINVAL for a
 * malformed URL. u->path points into @url.
 */
int jobq__url_parse(const char *url, struct jobq__url *u);

struct jobq__addr {
	int family; /* AF_UNIX, or AF_UNSPEC before resolving a host */
	char host[256];
	char port[6];
	struct sockaddr_storage sa; /* set for AF_UNIX, and once resolved */
	socklen_t salen;
};

/*
 * jobq__addr_parse - "host:port", "[v6]:port" or "unix:/path" into *a.
 * A unix address is complete; a host needs jobq__addr_resolve(). Returns 0
 * or -EINVAL (malformed, or a port outside 1..65535), -ENAMETOOLONG for a
 * socket path too long for sockaddr_un.
 */
int jobq__addr_parse(const char *s, struct jobq__addr *a);

/*
 * jobq__addr_resolve - fill a->sa from a->host (an IPv4 or IPv6 literal,
 * else a name looked up with getaddrinfo, which may block). Returns 0, or
 * -EADDRNOTAVAIL with *why set to the resolver's text.
 */
int jobq__addr_resolve(struct jobq__addr *a, const char **why);

/* ---- net.request's "until" -------------------------------------------- */

enum jobq__until_kind {
	JOBQ__UNTIL_CLOSE, /* read until the peer closes */
	JOBQ__UNTIL_BYTES, /* read exactly this many bytes */
	JOBQ__UNTIL_DELIM, /* read up to and including a delimiter */
};

struct jobq__until {
	enum jobq__until_kind kind;
	uint64_t bytes;
	const char *delim; /* into the JSON value it was parsed from */
	size_t dlen;
};

/*
 * jobq__until_parse - @v is the "until" member of the args (NULL: absent,
 * which means "close"): the string "close", a whole number >= 0, or any
 * other non-empty string, which is the delimiter. Returns 0 or -EINVAL.
 */
int jobq__until_parse(const json_t *v, struct jobq__until *u);

/*
 * jobq__until_end - whether the @len bytes received so far (of which the
 * first @seen were looked at before) complete the answer: returns true and
 * its length in *end (the delimiter included), or false when more is
 * needed. A close ends every kind of answer; that is the caller's to see.
 */
bool jobq__until_end(const struct jobq__until *u, const char *buf, size_t len,
		     size_t seen, size_t *end);

/* ---- the table ------------------------------------------------------- */

/*
 * jobq__builtins_register - serve those of exec, file.copy, file.read,
 * file.write, file.checksum, net.request and http.get that @only names
 * (a comma-separated list; NULL: all) on worker @w, whose handle is @q.
 * Called by jobq_worker_builtin_types(). When it serves any, it makes the
 * process a child subreaper, so that it can reap what exec jobs leave
 * behind, and ignores SIGPIPE unless the program has a handler. Returns
 * 0, what jobq_worker_handle() returned, or -errno from prctl().
 */
int jobq__builtins_register(jobq_worker_t *w, jobq_t *q, const char *only);

/* jobq__builtin_io_type - whether @type is one of the IO types above. */
bool jobq__builtin_io_type(const char *type);

/* jobq__type_listed - whether comma-separated @list names @type (a NULL
 * list names every type). */
bool jobq__type_listed(const char *list, const char *type);

/* ---- exec ---------------------------------------------------------------- */

/*
 * jobq__exec_log_path - where the whole output of exec job @id is kept:
 * "DIR/logs/ID.log" under instance directory @dir. The worker writes it
 * (mode 0600, started again at each attempt); `jobq logs` reads it.
 * Returns 0 or -ENAMETOOLONG.
 */
static inline int jobq__exec_log_path(const char *dir, uint64_t id, char *buf,
				      size_t len)
{
	int n =
	    snprintf(buf, len, "%s/logs/%llu.log", dir, (unsigned long long)id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#endif
