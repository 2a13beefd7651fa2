/* SPDX-License-Identifier: MIT */
/*
 * jobq-bench-fill - put N objects of S bytes on one queue and leave them
 * there, in batches of B (jobq_put_many()), so that bench/durable can time
 * how long a manager takes to come back with that much queued: it kills
 * jobqd, starts it again, and measures the replay.
 *
 * Prints RESULT metric=msgs_per_s (the fill rate) with n=, and the queue's
 * depth afterwards as RESULT metric=depth.
 */
#include <getopt.h>

#include "bench.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: jobq-bench-fill [--dir DIR] [-n MSGS] [-s BYTES] "
		"[-b BATCH] [-k QUEUE] [-T SECS]\n"
		"Puts MSGS objects of BYTES on QUEUE of the jobqd in DIR, "
		"BATCH per request,\nand leaves them there.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *dir = NULL, *queue = "fill";
	long n = 1000000, batch = 256;
	size_t size = 64;
	unsigned limit = 120;
	struct jobq_queue_info qi;
	jobq_obj_t *objs;
	char *data;
	uint64_t t0, t1;
	long done = 0;
	int opt, r;
	jobq_t *q;

	while ((opt = getopt_long(argc, argv, "d:n:s:b:k:T:h", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			n = bench_arg_long(optarg, 'n');
			break;
		case 's':
			size = (size_t)bench_arg_long(optarg, 's');
			break;
		case 'b':
			batch = bench_arg_long(optarg, 'b');
			break;
		case 'k':
			queue = optarg;
			break;
		case 'T':
			limit = (unsigned)bench_arg_long(optarg, 'T');
			break;
		default:
			usage();
		}
	}
	if (optind != argc || batch < 1 || batch > 4096 || size < 1)
		usage();
	bench_time_limit(limit);
	objs = calloc((size_t)batch, sizeof(*objs));
	data = malloc((size_t)batch * size);
	if (!objs || !data)
		bench_die(-ENOMEM, "buffers");
	/* Each object distinct (its number in front), as real data is. */
	for (long i = 0; i < batch; i++) {
		memset(data + (size_t)i * size, 'F', size);
		objs[i].type = JOBQ_T_BYTES;
		objs[i].data = data + (size_t)i * size;
		objs[i].len = size;
	}
	q = bench_open(dir);
	t0 = bench_now_ns();
	while (done < n) {
		long k = n - done < batch ? n - done : batch;

		for (long i = 0; i < k; i++) {
			long seq = done + i;

			if (size >= 1 + sizeof(seq))
				memcpy(data + (size_t)i * size + 1, &seq,
				       sizeof(seq));
		}
		r = jobq_put_many(q, queue, objs, (size_t)k, -1);
		if (r < 0)
			bench_die(r, "jobq_put_many after %ld objects", done);
		done += r;
	}
	t1 = bench_now_ns();
	r = jobq_queue_info(q, queue, &qi);
	if (r < 0)
		bench_die(r, "jobq_queue_info");
	printf("RESULT metric=msgs_per_s value=%.1f n=%ld size=%zu batch=%ld\n",
	       (double)n / ((double)(t1 - t0) / 1e9), n, size, batch);
	printf("RESULT metric=depth value=%llu\n",
	       (unsigned long long)qi.depth);
	jobq_close(q);
	free(objs);
	free(data);
	return 0;
}
