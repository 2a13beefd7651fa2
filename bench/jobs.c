/* SPDX-License-Identifier: MIT */
/*
 * jobq-bench-jobs - no-op jobs: client -> worker -> result back, and the
 * manager's memory per queued job.
 *
 *   -m apply   one job at a time with jobq_apply(): p50/p99 round trip in
 *              µs (submit until the result is in the client's hands) and
 *              seq_jobs_per_s (1 / mean).
 *   -m many    every job at once: one jobq_submit_many() of all -n jobs,
 *              one jobq_wait_all(), then every result read and checked;
 *              jobs_per_s = n / (first submit -> last result checked).
 *              The library cuts the batch into ring-sized pieces itself:
 *              the program does not chunk anything.
 *   -m map     jobq_map() of -n inputs with a window of -w jobs in flight;
 *              with -c CHUNK, jobq_map_chunked(): CHUNK inputs per job, as
 *              ProcessPoolExecutor.map(chunksize=CHUNK) sends them.
 *   -m fill    no worker: submit -n jobs of -s bytes with submit_many in
 *              batches of -b and leave them queued; rss_bytes_per_job is
 *              the growth of jobqd's VmRSS (its pid from jobq_stats())
 *              divided by n. Of it, file_bytes_per_job is the journal's
 *              pages mapped from a file system on disk (page cache the
 *              kernel may write back and drop), owned_bytes_per_job the
 *              rest: jobqd's own memory and the store (RssAnon +
 *              RssShmem; a journal on tmpfs counts here), and
 *              owned_beyond_args_per_job that minus -s.
 *
 * Workers (-k): "own" forks -W processes of this program that serve the
 * type "bench.noop" with a handler returning its args unchanged (each a
 * jobq_worker of concurrency -C, default 256: that many jobs per
 * reservation); "builtin" uses the built-in type "echo" of the workers
 * `jobqd --workers N` started (their --worker-concurrency, 16 by
 * default). Either way the
 * run starts once -W workers serving the type are registered, and after a
 * warm-up that is not counted. Every result is checked against its args
 * (each carries its job's sequence number).
 */
#include <getopt.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "bench.h"

enum mode { M_APPLY, M_MANY, M_MAP, M_FILL };
static const char *const mode_names[] = {"apply", "many", "map", "fill"};

struct cfg {
	const char *dir;
	enum mode mode;
	bool builtin;	  /* -k builtin: jobqd's own echo workers */
	const char *type; /* the job type served */
	long n;
	long warmup;
	long batch;  /* fill: jobs per submit_many */
	long window; /* map: jobs in flight */
	long chunk;  /* map: inputs per job (jobq_map_chunked()) */
	int workers;
	unsigned concurrency; /* own workers: jobs per reservation */
	size_t size;	      /* args bytes, >= 8 (the sequence number) */
	double max_secs;      /* apply: counted samples end after this */
};

/* ------------------------------------------------------------------------
 * The worker processes (-k own).
 */
static jobq_worker_t *the_worker;

static void on_term(int sig)
{
	(void)sig;
	if (the_worker)
		jobq_worker_stop(the_worker);
}

/* The no-op: the result is the args, unchanged. */
static int noop(jobq_job_t *job, void *arg)
{
	const jobq_obj_t *a = jobq_job_args(job);

	(void)arg;
	return jobq_job_succeed(job, a->type, a->data, a->len);
}

/* A forked worker: serve c->type until SIGTERM (a graceful stop) or the
 * manager goes. Never returns. */
static __attribute__((noreturn)) void worker_main(const struct cfg *c)
{
	struct jobq_worker_opts o = {.concurrency = c->concurrency};
	jobq_t *q = bench_open(c->dir);
	int r;

	signal(SIGTERM, on_term);
	alarm(0);
	if ((r = jobq_worker_new(&the_worker, q, &o)) < 0)
		bench_die(r, "jobq_worker_new");
	if ((r = jobq_worker_handle(the_worker, c->type, noop, NULL)) < 0)
		bench_die(r, "jobq_worker_handle");
	r = jobq_worker_run(the_worker);
	jobq_worker_free(the_worker);
	jobq_close(q);
	_exit(r < 0 && r != JOBQ_ECLOSED ? 2 : 0);
}

/* How many live workers serve @type. */
static int count_workers(jobq_t *q, const char *type)
{
	struct jobq_worker_info *w;
	size_t n, tl = strlen(type);
	int count = 0, r = jobq_workers(q, &w, &n);

	if (r < 0)
		bench_die(r, "jobq_workers");
	for (size_t i = 0; i < n; i++) {
		/* types is a comma-separated list of names. */
		for (const char *p = w[i].types; *p;) {
			size_t len = strcspn(p, ",");

			if (len == tl && !memcmp(p, type, tl)) {
				count++;
				break;
			}
			p += len + (p[len] == ',');
		}
	}
	free(w);
	return count;
}

/* Waits (at most 10 s) until @want workers serve c->type. */
static void wait_workers(jobq_t *q, const struct cfg *c, int want)
{
	uint64_t deadline = bench_now_ns() + 10000000000ull;

	while (count_workers(q, c->type) < want) {
		for (int i = 0; i < bench_nkids; i++) {
			int st;

			if (waitpid(bench_kids[i], &st, WNOHANG) ==
			    bench_kids[i])
				bench_die(0,
					  "worker %d ended before it served "
					  "(status %d)",
					  (int)bench_kids[i], st);
		}
		if (bench_now_ns() > deadline)
			bench_die(0,
				  "fewer than %d workers serve \"%s\" after "
				  "10 s%s",
				  want, c->type,
				  c->builtin
				      ? " (was jobqd started with --workers?)"
				      : "");
		usleep(2000);
	}
}

static void start_workers(const struct cfg *c)
{
	for (int i = 0; i < c->workers; i++) {
		pid_t pid = fork();

		if (pid < 0)
			bench_die(-errno, "fork");
		if (pid == 0)
			worker_main(c);
		bench_kids[bench_nkids++] = pid;
	}
}

/* Stops the forked workers gracefully and checks that they exited 0. */
static void stop_workers(void)
{
	for (int i = 0; i < bench_nkids; i++)
		kill(bench_kids[i], SIGTERM);
	for (int i = 0; i < bench_nkids; i++) {
		int st;

		if (waitpid(bench_kids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			bench_die(0,
				  "worker %d did not stop cleanly (status %d)",
				  (int)bench_kids[i], st);
		bench_kids[i] = 0;
	}
}

/* ------------------------------------------------------------------------
 * The client side.
 */

/* Args of job @seq: the sequence number, then filler. */
static void fill_args(char *buf, size_t size, long seq)
{
	memset(buf, 'j', size);
	memcpy(buf, &seq, sizeof(seq));
}

/* Dies unless @res is the args of job @seq. */
static void check_result(const struct cfg *c, const jobq_obj_t *res, long seq)
{
	long got;

	if (res->len != c->size)
		bench_die(0, "job %ld: result of %zu bytes, expected %zu", seq,
			  res->len, c->size);
	memcpy(&got, res->data, sizeof(got));
	if (got != seq)
		bench_die(0, "job %ld came back as %ld", seq, got);
}

static void run_apply(jobq_t *q, const struct cfg *c, char *extra)
{
	uint64_t *lat = calloc((size_t)c->n, sizeof(*lat));
	char *buf = malloc(c->size);
	uint64_t deadline = bench_now_ns() + 1000000000ull;
	bool counting = false;
	long got = 0;
	double sum = 0;

	if (!lat || !buf)
		bench_die(-ENOMEM, "allocating %ld samples", c->n);
	/* The warm-up ends after -w jobs or one second, whichever first. */
	for (long i = 0; got < c->n; i++) {
		uint64_t t0 = bench_now_ns(), t1;
		jobq_obj_t res;
		int r;

		if (!counting && (i >= c->warmup || t0 >= deadline)) {
			counting = true;
			deadline = t0 + (uint64_t)(c->max_secs * 1e9);
		} else if (counting && t0 > deadline) {
			break;
		}
		fill_args(buf, c->size, i);
		r = jobq_apply(q, c->type, JOBQ_T_BYTES, buf, c->size, NULL,
			       &res, 10);
		t1 = bench_now_ns();
		if (r < 0)
			bench_die(r, "jobq_apply of job %ld", i);
		check_result(c, &res, i);
		jobq_obj_free(&res);
		if (counting)
			lat[got++] = t1 - t0;
	}
	for (long i = 0; i < got; i++)
		sum += (double)lat[i];
	bench_report_latency(lat, (size_t)got, extra);
	printf("RESULT metric=seq_jobs_per_s value=%.1f n=%ld %s\n",
	       sum > 0 ? (double)got * 1e9 / sum : 0.0, got, extra);
	free(lat);
	free(buf);
}

/* @n objects of c->size bytes, numbered from @first, in one allocation
 * (freed with free(objs[0].data) and free(objs)). */
static jobq_obj_t *make_args(const struct cfg *c, long n, long first)
{
	jobq_obj_t *objs = calloc((size_t)n, sizeof(*objs));
	char *bytes = malloc((size_t)n * c->size);

	if (!objs || !bytes)
		bench_die(-ENOMEM, "allocating %ld args", n);
	for (long i = 0; i < n; i++) {
		objs[i].type = JOBQ_T_BYTES;
		objs[i].len = c->size;
		objs[i].data = bytes + (size_t)i * c->size;
		fill_args(objs[i].data, c->size, first + i);
	}
	return objs;
}

static void free_args(jobq_obj_t *objs)
{
	free(objs[0].data);
	free(objs);
}

/* Submits @n jobs numbered from @first at once, waits for all and checks
 * every result. @t, when not NULL, gets the times at which the submission,
 * the wait and the reading of the results ended. */
static void many_round(jobq_t *q, const struct cfg *c, long n, long first,
		       const jobq_obj_t *args, uint64_t *ids, uint64_t *t)
{
	int r = jobq_submit_many(q, c->type, args, (size_t)n, NULL, ids);

	if (t)
		t[0] = bench_now_ns();
	if (r < 0)
		bench_die(r, "jobq_submit_many of %ld jobs", n);
	if (r != n)
		bench_die(0, "jobq_submit_many took %d of %ld jobs", r, n);
	if ((r = jobq_wait_all(q, ids, (size_t)n, 15)) < 0)
		bench_die(r, "jobq_wait_all of %ld jobs", n);
	if (t)
		t[1] = bench_now_ns();
	for (long i = 0; i < n; i++) {
		jobq_obj_t res;

		if ((r = jobq_job_result(q, ids[i], &res)) < 0)
			bench_die(r, "jobq_job_result of job %ld", first + i);
		check_result(c, &res, first + i);
		jobq_obj_free(&res);
	}
	if (t)
		t[2] = bench_now_ns();
}

static void run_many(jobq_t *q, const struct cfg *c, char *extra)
{
	long w = c->warmup;
	jobq_obj_t *wargs = make_args(c, w, 0);
	jobq_obj_t *args = make_args(c, c->n, w);
	uint64_t *ids = calloc((size_t)(c->n > w ? c->n : w), sizeof(*ids));
	uint64_t t0, t[3];

	if (!ids)
		bench_die(-ENOMEM, "allocating %ld ids", c->n);
	many_round(q, c, w, 0, wargs, ids, NULL);
	t0 = bench_now_ns();
	many_round(q, c, c->n, w, args, ids, t);
	printf("RESULT metric=jobs_per_s value=%.1f n=%ld secs=%.3f %s\n",
	       (double)c->n * 1e9 / (double)(t[2] - t0), c->n,
	       (double)(t[2] - t0) / 1e9, extra);
	/* Where the time went: the submission returns once every job has
	 * an id, the workers meanwhile already run the first ones. */
	printf("RESULT metric=submit_secs value=%.3f n=%ld %s\n",
	       (double)(t[0] - t0) / 1e9, c->n, extra);
	printf("RESULT metric=wait_secs value=%.3f n=%ld %s\n",
	       (double)(t[1] - t[0]) / 1e9, c->n, extra);
	printf("RESULT metric=read_secs value=%.3f n=%ld %s\n",
	       (double)(t[2] - t[1]) / 1e9, c->n, extra);
	free(ids);
	free_args(args);
	free_args(wargs);
}

static void map_round(jobq_t *q, const struct cfg *c, long n, long first,
		      const jobq_obj_t *args, jobq_obj_t *res)
{
	int r = jobq_map_chunked(q, c->type, args, (size_t)n, (size_t)c->chunk,
				 (size_t)c->window, NULL, res, 15);

	if (r < 0)
		bench_die(r, "jobq_map of %ld jobs", n);
	for (long i = 0; i < n; i++) {
		check_result(c, &res[i], first + i);
		jobq_obj_free(&res[i]);
	}
}

static void run_map(jobq_t *q, const struct cfg *c, char *extra)
{
	long w = c->warmup;
	jobq_obj_t *wargs = make_args(c, w, 0);
	jobq_obj_t *args = make_args(c, c->n, w);
	jobq_obj_t *res = calloc((size_t)(c->n > w ? c->n : w), sizeof(*res));
	uint64_t t0, t1;

	if (!res)
		bench_die(-ENOMEM, "allocating %ld results", c->n);
	map_round(q, c, w, 0, wargs, res);
	t0 = bench_now_ns();
	map_round(q, c, c->n, w, args, res);
	t1 = bench_now_ns();
	printf("RESULT metric=jobs_per_s value=%.1f n=%ld secs=%.3f "
	       "window=%ld chunk=%ld %s\n",
	       (double)c->n * 1e9 / (double)(t1 - t0), c->n,
	       (double)(t1 - t0) / 1e9, c->window, c->chunk, extra);
	free(res);
	free_args(args);
	free_args(wargs);
}

/* Resident memory of a process, in bytes, from /proc/PID/status. */
struct rss {
	uint64_t all;	/* VmRSS */
	uint64_t file;	/* RssFile: mapped pages of files on disk */
	uint64_t owned; /* RssAnon + RssShmem: its own memory and the store */
};

static struct rss rss_of(pid_t pid)
{
	char path[64], line[256];
	unsigned long kib;
	struct rss r = {0};
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		bench_die(-errno, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
			r.all = (uint64_t)kib * 1024;
		else if (sscanf(line, "RssFile: %lu kB", &kib) == 1)
			r.file = (uint64_t)kib * 1024;
		else if (sscanf(line, "RssAnon: %lu kB", &kib) == 1 ||
			 sscanf(line, "RssShmem: %lu kB", &kib) == 1)
			r.owned += (uint64_t)kib * 1024;
	}
	fclose(f);
	if (!r.all)
		bench_die(0, "no VmRSS in %s", path);
	return r;
}

static double per_job(uint64_t before, uint64_t after, long n)
{
	return ((double)after - (double)before) / (double)n;
}

static void run_fill(jobq_t *q, const struct cfg *c, char *extra)
{
	jobq_obj_t *args = make_args(c, c->batch, 0);
	uint64_t *ids = calloc((size_t)c->batch, sizeof(*ids));
	struct jobq_stats st;
	struct rss r0, r1;
	uint64_t t0, t1;
	int r;

	if (!ids)
		bench_die(-ENOMEM, "allocating ids");
	if ((r = jobq_stats(q, &st)) < 0)
		bench_die(r, "jobq_stats");
	r0 = rss_of(st.manager_pid);
	t0 = bench_now_ns();
	for (long done = 0; done < c->n;) {
		long k = c->n - done < c->batch ? c->n - done : c->batch;

		r = jobq_submit_many(q, c->type, args, (size_t)k, NULL, ids);
		if (r < 0)
			bench_die(r, "jobq_submit_many after %ld jobs", done);
		done += r;
	}
	t1 = bench_now_ns();
	/* Let the manager finish what it does after answering. */
	usleep(200000);
	r1 = rss_of(st.manager_pid);
	snprintf(extra + strlen(extra), 128,
		 " rss_before_kib=%lu "
		 "rss_after_kib=%lu",
		 (unsigned long)(r0.all / 1024),
		 (unsigned long)(r1.all / 1024));
	printf("RESULT metric=fill_jobs_per_s value=%.1f n=%ld batch=%ld %s\n",
	       (double)c->n * 1e9 / (double)(t1 - t0), c->n, c->batch, extra);
	printf("RESULT metric=rss_bytes_per_job value=%.1f n=%ld %s\n",
	       per_job(r0.all, r1.all, c->n), c->n, extra);
	printf("RESULT metric=file_bytes_per_job value=%.1f n=%ld %s\n",
	       per_job(r0.file, r1.file, c->n), c->n, extra);
	printf("RESULT metric=owned_bytes_per_job value=%.1f n=%ld %s\n",
	       per_job(r0.owned, r1.owned, c->n), c->n, extra);
	printf("RESULT metric=owned_beyond_args_per_job value=%.1f n=%ld %s\n",
	       per_job(r0.owned, r1.owned, c->n) - (double)c->size, c->n,
	       extra);
	printf("RESULT metric=rss_after_MiB value=%.1f n=%ld %s\n",
	       (double)r1.all / 1048576.0, c->n, extra);
	free(ids);
	free_args(args);
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: jobq-bench-jobs [--dir DIR] [-m apply|many|map|fill] "
	    "[-k own|builtin]\n"
	    "       [-n JOBS] [-s ARGS_BYTES] [-W WORKERS] [-C CONCURRENCY]\n"
	    "       [-w WINDOW] [-c CHUNK] [-b BATCH] [-u WARMUP] [-D SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct cfg c = {.mode = M_APPLY,
			.type = "bench.noop",
			.n = 20000,
			.warmup = 200,
			.batch = 1000,
			.window = 0,
			.workers = 2,
			.concurrency = 256,
			.size = 16,
			.max_secs = 5};
	char extra[512];
	jobq_t *q;
	int opt;

	while ((opt = getopt_long(argc, argv, "d:m:k:n:s:W:C:w:c:b:u:D:h", lo,
				  NULL)) != -1) {
		switch (opt) {
		case 'd':
			c.dir = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "apply"))
				c.mode = M_APPLY;
			else if (!strcmp(optarg, "many"))
				c.mode = M_MANY;
			else if (!strcmp(optarg, "map"))
				c.mode = M_MAP;
			else if (!strcmp(optarg, "fill"))
				c.mode = M_FILL;
			else
				usage();
			break;
		case 'k':
			if (!strcmp(optarg, "builtin"))
				c.builtin = true;
			else if (strcmp(optarg, "own"))
				usage();
			break;
		case 'n':
			c.n = bench_arg_long(optarg, 'n');
			break;
		case 's':
			c.size = (size_t)bench_arg_long(optarg, 's');
			break;
		case 'W':
			c.workers = (int)bench_arg_long(optarg, 'W');
			break;
		case 'C':
			c.concurrency = (unsigned)bench_arg_long(optarg, 'C');
			break;
		case 'w':
			c.window = bench_arg_long(optarg, 'w');
			break;
		case 'c':
			c.chunk = bench_arg_long(optarg, 'c');
			break;
		case 'b':
			c.batch = bench_arg_long(optarg, 'b');
			break;
		case 'u':
			c.warmup = bench_arg_long(optarg, 'u');
			break;
		case 'D':
			c.max_secs = (double)bench_arg_long(optarg, 'D');
			break;
		default:
			usage();
		}
	}
	if (optind != argc || c.size < sizeof(long) ||
	    c.workers > BENCH_MAX_KIDS)
		usage();
	if (c.builtin)
		c.type = "echo";
	bench_time_limit(19);

	/* Workers first: a handle must not cross a fork. */
	if (c.mode != M_FILL && !c.builtin)
		start_workers(&c);
	q = bench_open(c.dir);
	if (c.mode != M_FILL)
		wait_workers(q, &c, c.workers);
	snprintf(extra, sizeof(extra), "mode=%s workers=%d kind=%s size=%zu",
		 mode_names[c.mode], c.mode == M_FILL ? 0 : c.workers,
		 c.builtin ? "builtin" : "own", c.size);
	if (!c.builtin && c.mode != M_FILL)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 " concurrency=%u", c.concurrency);
	switch (c.mode) {
	case M_APPLY:
		run_apply(q, &c, extra);
		break;
	case M_MANY:
		run_many(q, &c, extra);
		break;
	case M_MAP:
		run_map(q, &c, extra);
		break;
	case M_FILL:
		run_fill(q, &c, extra);
		break;
	}
	fflush(stdout);
	if (!c.builtin && c.mode != M_FILL)
		stop_workers();
	jobq_close(q);
	alarm(0);
	return 0;
}
