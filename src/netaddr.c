/* SPDX-License-Identifier: MIT */
/*
 * netaddr.c - the addresses the network job types take: http.get's
 * "http://host[:port]/path", net.request's "host:port", "[v6]:port" and
 * "unix:/path", and net.request's "until" rule.
 *
 * Parsing is kept apart from resolving: parsing is pure and tested on its
 * own; resolving a name may block in getaddrinfo (io_uring has no DNS),
 * which is why a literal address never goes through it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "builtin.h"

/* A decimal port 1..65535 of @n bytes at @s into @out (6 bytes). */
static int parse_port(const char *s, size_t n, char *out)
{
	unsigned v = 0;

	if (!n || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	snprintf(out, 6, "%u", v);
	return 0;
}

/*
 * "host", "host:port", "[v6]" or "[v6]:port" (@n bytes at @s) into @host
 * and @port; @port keeps its value when none is given and @need_port is
 * false.
 */
static int split_hostport(const char *s, size_t n, char host[256], char port[6],
			  bool need_port)
{
	const char *h, *rest;
	size_t hlen, rlen;

	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		rest = close + 1;
		rlen = n - (size_t)(rest - s);
		if (!hlen || memchr(h, '[', hlen))
			return -EINVAL;
		if (rlen && rest[0] != ':')
			return -EINVAL;
	} else {
		/* The last colon: a bare IPv6 literal must be bracketed. */
		const char *colon = NULL;

		for (size_t i = 0; i < n; i++)
			if (s[i] == ':') {
				if (colon)
					return -EINVAL;
				colon = s + i;
			}
		h = s;
		hlen = colon ? (size_t)(colon - s) : n;
		rest = colon ? colon : s + n;
		rlen = n - hlen;
	}
	if (!hlen || hlen > 255)
		return -EINVAL;
	for (size_t i = 0; i < hlen; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '@' ||
		    h[i] == '?' || h[i] == '#')
			return -EINVAL;
	if (rlen) {
		if (parse_port(rest + 1, rlen - 1, port))
			return -EINVAL;
	} else if (need_port) {
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

int jobq__url_parse(const char *url, struct jobq__url *u)
{
	const char *auth, *end, *colon = strstr(url, "://");
	size_t alen;

	memset(u, 0, sizeof(*u));
	if (!colon)
		return -EINVAL;
	if ((size_t)(colon - url) != 4 || strncasecmp(url, "http", 4))
		return -EPROTONOSUPPORT;
	auth = colon + 3;
	end = auth + strcspn(auth, "/?#");
	alen = (size_t)(end - auth);
	if (alen >= sizeof(u->hostport))
		return -EINVAL;
	memcpy(u->port, "80", 3);
	if (split_hostport(auth, alen, u->host, u->port, false))
		return -EINVAL;
	memcpy(u->hostport, auth, alen);
	u->hostport[alen] = '\0';
	if (*end == '/' || *end == '?') {
		u->path = end;
		u->pathlen = strcspn(end, "#");
	} else {
		u->path = "/";
		u->pathlen = 1;
	}
	for (size_t i = 0; i < u->pathlen; i++)
		if ((unsigned char)u->path[i] <= ' ' || u->path[i] == 0x7f)
			return -EINVAL;
	return 0;
}

int jobq__addr_parse(const char *s, struct jobq__addr *a)
{
	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
		size_t n = strlen(s + 5);

		if (!n)
			return -EINVAL;
		if (n >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s + 5, n + 1);
		a->family = AF_UNIX;
		a->salen =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	a->family = AF_UNSPEC;
	return split_hostport(s, strlen(s), a->host, a->port, true);
}

int jobq__addr_resolve(struct jobq__addr *a, const char **why)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&a->sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
	struct addrinfo hints = {0}, *res = NULL;
	unsigned port = (unsigned)atoi(a->port);
	int rc;

	*why = NULL;
	if (a->family == AF_UNIX)
		return 0;
	memset(&a->sa, 0, sizeof(a->sa));
	if (inet_pton(AF_INET, a->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		a->family = AF_INET;
		a->salen = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		a->family = AF_INET6;
		a->salen = sizeof(*in6);
		return 0;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	rc = getaddrinfo(a->host, a->port, &hints, &res);
	if (rc || !res) {
		*why = rc ? gai_strerror(rc) : "no address";
		return -EADDRNOTAVAIL;
	}
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->salen = res->ai_addrlen;
	a->family = res->ai_family;
	freeaddrinfo(res);
	return 0;
}

int jobq__until_parse(const json_t *v, struct jobq__until *u)
{
	memset(u, 0, sizeof(*u));
	if (!v || json_is_null(v)) {
		u->kind = JOBQ__UNTIL_CLOSE;
		return 0;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		u->kind = JOBQ__UNTIL_BYTES;
		u->bytes = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v) || !json_string_length(v))
		return -EINVAL;
	if (!strcmp(json_string_value(v), "close") &&
	    json_string_length(v) == 5) {
		u->kind = JOBQ__UNTIL_CLOSE;
		return 0;
	}
	u->kind = JOBQ__UNTIL_DELIM;
	u->delim = json_string_value(v);
	u->dlen = json_string_length(v);
	return 0;
}

bool jobq__until_end(const struct jobq__until *u, const char *buf, size_t len,
		     size_t seen, size_t *end)
{
	size_t from;
	const char *hit;

	switch (u->kind) {
	case JOBQ__UNTIL_BYTES:
		if (len < u->bytes)
			return false;
		*end = (size_t)u->bytes;
		return true;
	case JOBQ__UNTIL_DELIM:
		/* A delimiter may straddle what was seen and what is new. */
		from = seen >= u->dlen - 1 ? seen - (u->dlen - 1) : 0;
		if (len - from < u->dlen)
			return false;
		hit = memmem(buf + from, len - from, u->delim, u->dlen);
		if (!hit)
			return false;
		*end = (size_t)(hit - buf) + u->dlen;
		return true;
	default:
		return false;
	}
}
