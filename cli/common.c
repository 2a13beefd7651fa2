/* SPDX-License-Identifier: MIT */
/*
 * common.c - what every jobq command uses: messages, connecting, argument
 * parsing and JSON output.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* "jobq: " and the message on stderr, after what stdout holds. */
static void say(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("jobq: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_ERROR;
}

int cli_timeout_msg(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c->quiet)
		return EXIT_TIMEOUT;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_TIMEOUT;
}

int cli_fail(const struct cli *c, const char *what, int err)
{
	switch (err) {
	case JOBQ_ECLOSED:
		return cli_error("%s: the manager in %s went away", what,
				 c->dir);
	case JOBQ_ENOMANAGER:
		return cli_error("%s: no manager running in %s (start one: "
				 "jobqd --dir %s --daemon)",
				 what, c->dir, c->dir);
	case -ENOMEM:
		return cli_error("%s: out of memory", what);
	default:
		return cli_error("%s: %s", what, jobq_strerror(err));
	}
}

int cli_queue_fail(const struct cli *c, const char *what, int err)
{
	struct jobq_stats st = {0};

	if (err != JOBQ_ELIMIT)
		return cli_fail(c, what, err);
	jobq_stats(c->q, &st);
	return cli_error("%s: the queue table of the manager is full (%u "
			 "queues; jobq queue rm frees one, jobqd --max-queues "
			 "N raises it)",
			 what, st.max_queues);
}

int cli_jobs_full(const struct cli *c, const char *what)
{
	struct jobq_stats st = {0};

	jobq_stats(c->q, &st);
	if (st.max_types && st.types >= st.max_types)
		return cli_error("%s: the job type table of the manager is "
				 "full (%u types; a type no job or worker "
				 "names is freed, jobqd --max-types N raises "
				 "it)",
				 what, st.max_types);
	return cli_error("%s: the job table of the manager is full", what);
}

/* ---- connection -------------------------------------------------------- */

struct fdset {
	int *fds;
	size_t n;
};

/* The descriptors open now, from /proc/self/fd. Empty when unreadable. */
static void fdset_read(struct fdset *s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t cap = 0;

	s->fds = NULL;
	s->n = 0;
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(d))
			continue;
		if (s->n == cap) {
			int *p =
			    realloc(s->fds, (cap ? cap * 2 : 16) * sizeof(*p));

			if (!p)
				break;
			s->fds = p;
			cap = cap ? cap * 2 : 16;
		}
		s->fds[s->n++] = fd;
	}
	closedir(d);
}

static bool fdset_has(const struct fdset *s, int fd)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->fds[i] == fd)
			return true;
	return false;
}

int cli_connect(struct cli *c)
{
	struct fdset before, after;
	bool argv_cmd = c->cmd->flags & CMD_ARGV;
	int rc;

	if (c->q)
		return 0;
	/*
	 * A command run under `jobq lock` must not inherit the connection:
	 * the manager notices a holder's death by its connection closing,
	 * and a child keeping a copy open would keep the lock alive after
	 * this process died. Whatever the library opened is marked
	 * close-on-exec, found as the descriptors that are new after open.
	 */
	if (argv_cmd)
		fdset_read(&before);
	rc = jobq_open(&c->q, c->dir);
	if (argv_cmd) {
		if (rc == 0) {
			fdset_read(&after);
			for (size_t i = 0; i < after.n; i++)
				if (!fdset_has(&before, after.fds[i]))
					fcntl(after.fds[i], F_SETFD,
					      FD_CLOEXEC);
			free(after.fds);
		}
		free(before.fds);
	}
	switch (rc) {
	case 0:
		return 0;
	case JOBQ_ENOMANAGER:
		return cli_error("no manager running in %s (start one: jobqd "
				 "--dir %s --daemon)",
				 c->dir, c->dir);
	case JOBQ_EVERSION:
		return cli_error("the manager in %s speaks another layout "
				 "version than this jobq %s: use a jobq and "
				 "jobqd of the same release",
				 c->dir, JOBQ_VERSION_STRING);
	case -EACCES:
	case -EPERM:
		/* The library says who refused whom: the manager, or we. */
		if (*jobq__last_error_msg())
			return cli_error("%s", jobq__last_error_msg());
		return cli_error("the manager in %s refuses this user (uid %u)",
				 c->dir, (unsigned)geteuid());
	case JOBQ_ELIMIT:
		return cli_error("the manager in %s has no room for another "
				 "client; try again later",
				 c->dir);
	default:
		return cli_error("cannot connect to the manager in %s: %s",
				 c->dir, jobq_strerror(rc));
	}
}

/* ---- arguments --------------------------------------------------------- */

int cli_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_timeout(const struct cli *c, double dflt, double *out)
{
	const char *s = c->optval[OPT_TIMEOUT];

	if (c->optval[OPT_NOWAIT] && s)
		return cli_usage(c,
				 "--nowait and --timeout exclude each other");
	if (c->optval[OPT_NOWAIT]) {
		*out = 0;
		return 0;
	}
	if (!s) {
		*out = dflt;
		return 0;
	}
	if (cli_parse_seconds(s, out))
		return cli_usage(c, "--timeout \"%s\": not a number of seconds",
				 s);
	return 0;
}

int cli_check_name(const struct cli *c, const char *what, const char *name)
{
	char q[CLI_TEXT_LEN];

	if (jobq__check_name(name))
		return cli_usage(c,
				 "%s name \"%s\" is invalid: 1 to %d bytes of "
				 "UTF-8, no control characters",
				 what,
				 cli_text(name, CLI_QUOTE_MAX, q, sizeof(q)),
				 JOBQ_NAME_MAX);
	return 0;
}

int cli_check_key(const struct cli *c, const char *key)
{
	size_t n = strlen(key);
	char q[CLI_TEXT_LEN];

	if (n == 0 || n > JOBQ_KEY_MAX || jobq__check_text(key, n))
		return cli_usage(c,
				 "key \"%s\" is invalid: 1 to %d bytes of "
				 "UTF-8, no control characters",
				 cli_text(key, CLI_QUOTE_MAX, q, sizeof(q)),
				 JOBQ_KEY_MAX);
	return 0;
}

const char *cli_text(const char *s, size_t max, char *buf, size_t len)
{
	size_t n = strlen(s), o = 0, i = 0;

	if (max > n)
		max = n;
	while (i < max) {
		uint32_t cp = 0;
		size_t k = jobq__utf8_char(s + i, n - i, &cp), el = 0;
		char esc[16];

		if (i + (k ? k : 1) > max)
			break; /* no half character before the "..." */
		if (!k) {
			/* A byte that is not UTF-8. */
			k = 1;
			el = (size_t)snprintf(esc, sizeof(esc), "\\x%02x",
					      (unsigned char)s[i]);
		} else if (cp == '\\' || cp == '\n' || cp == '\t') {
			el = (size_t)snprintf(esc, sizeof(esc), "\\%c",
					      cp == '\n'   ? 'n'
					      : cp == '\t' ? 't'
							   : '\\');
		} else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			/* C0, DEL (one byte) and C1 (two) controls. */
			for (size_t j = 0; j < k; j++)
				el += (size_t)snprintf(
				    esc + el, sizeof(esc) - el, "\\x%02x",
				    (unsigned char)s[i + j]);
		} else {
			memcpy(esc, s + i, k);
			el = k;
		}
		if (o + el + 4 > len)
			break;
		memcpy(buf + o, esc, el);
		o += el;
		i += k;
	}
	if (i < n && o + 4 <= len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	if (len)
		buf[o < len ? o : len - 1] = '\0';
	return buf;
}

json_t *cli_json_str(const char *s)
{
	json_t *j = json_string(s);
	size_t n, o = 0;
	char *fixed;

	if (j)
		return j;
	/* Not UTF-8 (a name from an older store, or bytes): each byte that
	 * does not start a character becomes U+FFFD, so that the document
	 * stays valid and still shows the rest of the name. */
	n = strlen(s);
	fixed = malloc(n * 3 + 1);
	if (!fixed)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = jobq__utf8_char(s + i, n - i, NULL);

		if (k) {
			memcpy(fixed + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	fixed[o] = '\0';
	j = json_string(fixed);
	free(fixed);
	return j;
}

/* ---- output ------------------------------------------------------------ */

int cli_read_all(int fd, char **bufp, size_t *lenp)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *p = realloc(buf, cap * 2);

			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_flush(void)
{
	if (fflush(stdout))
		return cli_error("writing to stdout: %s", strerror(errno));
	return EXIT_OK;
}

int cli_print_json(json_t *doc)
{
	int rc;

	if (!doc)
		return cli_error("out of memory building the JSON output");
	rc = json_dumpf(doc, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(doc);
	if (rc || fputc('\n', stdout) == EOF)
		return cli_error("writing to stdout: %s", strerror(errno));
	return cli_flush();
}

json_t *cli_list_new(const char *key, json_t **arr)
{
	*arr = json_array();
	return json_pack("{s:o}", key, *arr);
}

void cli_list_push(json_t **doc, json_t *arr, json_t *item)
{
	if (*doc && item && !json_array_append_new(arr, item))
		return;
	json_decref(*doc);
	*doc = NULL;
}

json_t *cli_json_time(uint64_t realtime_ns)
{
	char buf[40];

	if (realtime_ns == 0)
		return json_null();
	jobq__format_time(realtime_ns, buf, sizeof(buf));
	return json_string(buf);
}

json_t *cli_json_u64(uint64_t v)
{
	/* jansson integers are signed 64-bit; no counter gets near that. */
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static char *base64(const unsigned char *p, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

int cli_json_data(json_t *obj, const char *name, const void *p, size_t len)
{
	/* json_stringn() refuses bytes that are not valid UTF-8. */
	json_t *s = json_stringn(len ? p : "", len);
	char key[64];
	char *b;

	if (s)
		return json_object_set_new(obj, name, s) ? -ENOMEM : 0;
	b = base64(p, len);
	if (!b)
		return -ENOMEM;
	snprintf(key, sizeof(key), "%s_base64", name);
	s = json_string(b);
	free(b);
	if (!s || json_object_set_new(obj, key, s))
		return -ENOMEM;
	return 0;
}

const char *cli_type_name(uint32_t type, char *buf, size_t len)
{
	switch (type) {
	case JOBQ_T_NONE:
		return "none";
	case JOBQ_T_BYTES:
		return "bytes";
	case JOBQ_T_JSON:
		return "json";
	case JOBQ_T_TEXT:
		return "text";
	case JOBQ_T_CHUNK:
		return "chunk";
	default:
		snprintf(buf, len, "%" PRIu32, type);
		return buf;
	}
}

void cli_format_duration(double s, char *buf, size_t len)
{
	uint64_t t = (uint64_t)s;

	if (s < 60)
		snprintf(buf, len, "%.1fs", s);
	else if (t < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", t / 60,
			 t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", t / 3600,
			 t % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", t / 86400,
			 t % 86400 / 3600);
}

double cli_since(uint64_t realtime_ns)
{
	uint64_t now = jobq__realtime_ns();

	if (realtime_ns == 0 || realtime_ns >= now)
		return 0;
	return (double)(now - realtime_ns) / 1e9;
}

bool cli_pid_gone(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool zombie = false;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	fclose(f);
	return zombie;
}
