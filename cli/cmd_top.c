/* SPDX-License-Identifier: MIT */
/*
 * cmd_top.c - jobq top: a live view of one manager, redrawn every second.
 *
 * Everything on screen is read from the store mapping (jobq_stats,
 * jobq_queues, jobq_jobs, jobq_workers): no request goes to the manager,
 * so watching a busy instance does not slow it. Rates are the difference
 * of two readings of the counters divided by the time between them.
 *
 * On a terminal it takes the alternate screen, hides the cursor and reads
 * keys without echo; every way out (q, Ctrl-C, SIGTERM, the manager
 * stopping) puts the terminal back as it was. Not on a terminal (a pipe,
 * a file), it prints one frame and exits, so `jobq top | cat` is a
 * snapshot. Frames fit the window: lines are cut at its width and the
 * lists shortened to its height (SIGWINCH redraws at the new size).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define REFRESH_MS 1000

static volatile sig_atomic_t got_signal, got_winch;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else
		got_signal = sig;
}

/* A frame: lines of at most @cols visible bytes, at most @rows of them. */
struct frame {
	char *buf;
	size_t len, cap;
	int rows, cols;
	int used;    /* lines written */
	bool screen; /* a terminal: fill the height, show the keys */
};

/* Appends one line, cut at the width; nothing once the screen is full. */
static void line(struct frame *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void line(struct frame *f, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	if (f->used >= f->rows)
		return;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > f->cols)
		n = f->cols;
	if ((size_t)n > sizeof(tmp) - 1)
		n = sizeof(tmp) - 1;
	if (f->len + (size_t)n + 8 > f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 8192;
		char *nb;

		while (nc < f->len + (size_t)n + 8)
			nc *= 2;
		nb = realloc(f->buf, nc);
		if (!nb)
			return;
		f->buf = nb;
		f->cap = nc;
	}
	memcpy(f->buf + f->len, tmp, (size_t)n);
	f->len += (size_t)n;
	/* Clear what an earlier, longer line left on the row. */
	memcpy(f->buf + f->len, "\033[K\n", 4);
	f->len += 4;
	f->used++;
}

/* Names may hold any byte but control characters stay off the screen. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	for (; *s && i + 1 < len; s++)
		buf[i++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[i] = '\0';
	return buf;
}

/* What the previous frame saw, for rates. */
struct sample {
	double at; /* CLOCK_MONOTONIC seconds */
	struct jobq_stats st;
	struct jobq_queue_info *qs;
	size_t nq;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rate(uint64_t now, uint64_t before, double dt)
{
	return dt > 0 && now >= before ? (double)(now - before) / dt : 0;
}

static const struct jobq_queue_info *find_queue(const struct sample *s,
						const char *name)
{
	for (size_t i = 0; i < s->nq; i++)
		if (!strcmp(s->qs[i].name, name))
			return &s->qs[i];
	return NULL;
}

static int cmp_depth(const void *a, const void *b)
{
	const struct jobq_queue_info *x = a, *y = b;
	uint64_t wx = x->depth + x->jobs_ready + x->jobs_running;
	uint64_t wy = y->depth + y->jobs_ready + y->jobs_running;

	if (wx != wy)
		return wx < wy ? 1 : -1;
	return strcmp(x->name, y->name);
}

/*
 * Draws one frame into @f from a fresh reading; @prev is the reading
 * before (at = 0: none yet) and becomes this one. Returns 0 or -errno.
 */
static int draw(struct cli *c, struct frame *f, struct sample *prev)
{
	struct sample cur = {.at = mono()};
	struct jobq_job_info *run = NULL;
	struct jobq_worker_info *ws = NULL;
	size_t nrun = 0, nw = 0;
	double dt = prev->at ? cur.at - prev->at : 0;
	const struct jobq_stats *st = &cur.st;
	char up[32], used[32], total[32], name[80], when[16];
	int rc, room;
	size_t shown;
	time_t now = time(NULL);
	struct tm tm;

	if ((rc = jobq_stats(c->q, &cur.st)) ||
	    (rc = jobq_queues(c->q, &cur.qs, &cur.nq)) ||
	    (rc = jobq_workers(c->q, &ws, &nw)))
		goto out;
	/* The running list needs a scan of the job table: skip it when the
	 * counts say nothing runs. */
	if (st->jobs_by_state[JOBQ_JOB_RUNNING] &&
	    (rc = jobq_jobs(c->q, JOBQ_JOB_RUNNING, NULL, (size_t)f->rows, &run,
			    &nrun)))
		goto out;
	if (cur.nq > 1)
		qsort(cur.qs, cur.nq, sizeof(*cur.qs), cmp_depth);

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	cli_format_duration(cli_since(st->started_ns), up, sizeof(up));
	jobq__format_size(st->memory_used, used, sizeof(used));
	jobq__format_size(st->memory_total, total, sizeof(total));
	f->used = 0;
	line(f, "jobq top - %s - jobqd %s pid %d, up %s - %s", c->dir,
	     JOBQ_VERSION_STRING, (int)st->manager_pid, up, when);
	line(f,
	     "memory %s of %s (%.0f%%)   clients %u   queues %u   locks %u   "
	     "keys %u",
	     used, total,
	     st->memory_total
		 ? 100.0 * (double)st->memory_used / (double)st->memory_total
		 : 0.0,
	     st->clients, st->queues, st->locks, st->keys);
	line(f,
	     "per second: put %.0f  get %.0f  submitted %.0f  done %.0f  "
	     "failed %.0f",
	     rate(st->puts, prev->st.puts, dt),
	     rate(st->gets, prev->st.gets, dt),
	     rate(st->submitted, prev->st.submitted, dt),
	     rate(st->done, prev->st.done, dt),
	     rate(st->failed, prev->st.failed, dt));
	line(f,
	     "jobs: %" PRIu64 " waiting  %" PRIu64 " delayed  %" PRIu64
	     " ready  %" PRIu64 " running  %" PRIu64 " succeeded  %" PRIu64
	     " failed  %" PRIu64 " dead  %" PRIu64 " cancelled",
	     st->jobs_by_state[JOBQ_JOB_WAITING],
	     st->jobs_by_state[JOBQ_JOB_DELAYED],
	     st->jobs_by_state[JOBQ_JOB_READY],
	     st->jobs_by_state[JOBQ_JOB_RUNNING],
	     st->jobs_by_state[JOBQ_JOB_SUCCEEDED],
	     st->jobs_by_state[JOBQ_JOB_FAILED],
	     st->jobs_by_state[JOBQ_JOB_DEAD],
	     st->jobs_by_state[JOBQ_JOB_CANCELLED]);

	/* The lists share the rest of the height: queues stop 8 rows
	 * before the bottom, running jobs 5, so every heading shows. */
	line(f, "%s", "");
	line(f, "%-24s %10s %10s %9s %9s %8s %7s %8s", "QUEUE", "DEPTH",
	     "BYTES", "PUT/s", "GET/s", "READY", "RUNNING", "LIMIT");
	room = f->rows - 8 - f->used;
	shown = cur.nq <= (size_t)(room > 0 ? room : 0) ? cur.nq
		: room > 1				? (size_t)room - 1
							: 0;
	for (size_t i = 0; i < shown; i++) {
		const struct jobq_queue_info *qi = &cur.qs[i];
		const struct jobq_queue_info *pq = find_queue(prev, qi->name);
		char limit[16];

		if (qi->paused)
			snprintf(limit, sizeof(limit), "paused");
		else if (qi->parallel)
			snprintf(limit, sizeof(limit), "%u", qi->parallel);
		else
			snprintf(limit, sizeof(limit), "-");
		line(f,
		     "%-24s %10" PRIu64 " %10" PRIu64 " %9.0f %9.0f %8" PRIu64
		     " %7u %8s",
		     printable(qi->name, name, 25), qi->depth, qi->bytes,
		     pq ? rate(qi->total_put, pq->total_put, dt) : 0,
		     pq ? rate(qi->total_get, pq->total_get, dt) : 0,
		     qi->jobs_ready, qi->jobs_running, limit);
	}
	if (shown < cur.nq)
		line(f, "... %zu more queues (a taller window shows them)",
		     cur.nq - shown);
	line(f, "%s", "");
	line(f, "%-12s %-20s %-16s %8s %9s %8s", "RUNNING JOB", "TYPE", "QUEUE",
	     "WORKER", "AGE", "PROGRESS");
	for (size_t i = 0; i < nrun && f->used < f->rows - 5; i++) {
		char age[32], qn[20];

		cli_format_duration(cli_since(run[i].started_ns), age,
				    sizeof(age));
		line(f, "%-12" PRIu64 " %-20s %-16s %8d %9s %7.1f%%", run[i].id,
		     printable(run[i].type, name, 21),
		     printable(run[i].queue, qn, 17), (int)run[i].worker, age,
		     run[i].progress);
	}
	line(f, "%s", "");
	line(f, "%-8s %-28s %9s %10s %8s %9s", "WORKER", "TYPES", "RUNNING",
	     "DONE", "FAILED", "UP");
	for (size_t i = 0; i < nw && f->used < f->rows - 1; i++) {
		char load[24];

		snprintf(load, sizeof(load), "%u/%u", ws[i].running,
			 ws[i].capacity);
		cli_format_duration(cli_since(ws[i].started_ns), up,
				    sizeof(up));
		line(f, "%-8d %-28s %9s %10" PRIu64 " %8" PRIu64 " %9s",
		     (int)ws[i].pid, printable(ws[i].types, name, 29), load,
		     ws[i].done, ws[i].failed, up);
	}
	if (f->screen) {
		while (f->used < f->rows - 1)
			line(f, "%s", "");
		line(f, "q: quit");
	}

	free(prev->qs);
	*prev = cur;
	cur.qs = NULL;
out:
	free(cur.qs);
	free(run);
	free(ws);
	return rc;
}

static void window_size(struct frame *f, bool tty)
{
	struct winsize ws;

	f->rows = 40;
	f->cols = 120;
	if (tty && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		f->rows = ws.ws_row;
		f->cols = ws.ws_col;
	}
	if (!tty)
		f->cols = 1000; /* a snapshot is not cut */
}

int cmd_top(struct cli *c)
{
	struct sample prev = {0};
	struct frame f = {0};
	struct termios saved, raw;
	struct sigaction sa = {0}, old_int, old_term, old_winch;
	bool tty = isatty(1), keys = tty && isatty(0);
	int rc, status = EXIT_OK;

	if ((rc = cli_connect(c)))
		return rc;
	window_size(&f, tty);
	if (!tty) {
		/* A snapshot: two readings a moment apart, for rates. */
		f.rows = 1000;
		if (!(rc = draw(c, &f, &prev))) {
			struct timespec ts = {0, 250 * 1000 * 1000};

			nanosleep(&ts, NULL);
			f.len = 0;
			rc = draw(c, &f, &prev);
		}
		free(prev.qs);
		if (rc) {
			free(f.buf);
			return cli_fail(c, "top", rc);
		}
		/* Without the terminal's clear-to-end-of-line. */
		for (char *p = f.buf; p < f.buf + f.len;) {
			char *e =
			    memchr(p, '\033', (size_t)(f.buf + f.len - p));

			if (!e) {
				fwrite(p, 1, (size_t)(f.buf + f.len - p),
				       stdout);
				break;
			}
			fwrite(p, 1, (size_t)(e - p), stdout);
			p = e + 3;
		}
		free(f.buf);
		return cli_flush();
	}

	f.screen = true;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGWINCH, &sa, &old_winch);
	if (keys && tcgetattr(0, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(0, TCSANOW, &raw);
	} else {
		keys = false;
	}
	/* The alternate screen, cursor hidden. */
	fputs("\033[?1049h\033[?25l", stdout);

	for (;;) {
		struct pollfd p = {.fd = 0, .events = POLLIN};
		struct jobq_stats st;
		char ch;

		if (got_winch) {
			got_winch = 0;
			window_size(&f, tty);
			fputs("\033[2J", stdout);
		}
		f.len = 0;
		rc = draw(c, &f, &prev);
		if (rc) {
			status = cli_fail(c, "top", rc);
			break;
		}
		fputs("\033[H", stdout);
		fwrite(f.buf, 1, f.len ? f.len - 1 : 0,
		       stdout); /* no last \n */
		fflush(stdout);

		if (poll(&p, keys ? 1 : 0, REFRESH_MS) > 0 &&
		    read(0, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
			break;
		if (got_signal)
			break;
		/* A manager that stopped leaves its mapping behind, frozen:
		 * say so rather than show it as if alive. */
		if (!jobq_stats(c->q, &st) && st.manager_pid > 0 &&
		    cli_pid_gone(st.manager_pid)) {
			status = EXIT_ERROR;
			break;
		}
	}

	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (keys)
		tcsetattr(0, TCSANOW, &saved);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGWINCH, &old_winch, NULL);
	free(prev.qs);
	free(f.buf);
	if (status == EXIT_ERROR && !rc)
		return cli_error("the manager in %s stopped", c->dir);
	return status;
}
