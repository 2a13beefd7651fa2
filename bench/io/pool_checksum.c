/* SPDX-License-Identifier: MIT */
/*
 * jobq-io-pool - the thread-pool anchor of the file.checksum benchmark:
 * -t threads (default 2) take the next path of a list, open it, read it
 * with blocking pread() calls and hash it, until the list is done.
 *
 *   jobq-io-pool [-t THREADS] [-b BUFSIZE] [-a sha256|crc32c] LISTFILE
 *
 * LISTFILE holds one path per line. The hash is the SHA-256 (or, with -a
 * crc32c, the CRC32C) of src/checksum.c and src/crc32c.c, compiled in, so
 * that the anchor and file.checksum differ only in how they wait for the
 * disk: each thread here blocks in read(), one request at a time, while
 * jobq's worker keeps many reads in flight on one io_uring. crc32c costs
 * little CPU: with it, the comparison is one of IO alone.
 *
 * Prints "RESULT metric=files_per_s value=..." and secs, MiB_per_s and
 * cpu_s (user + system time of the process) lines on stdout; exits 1 when
 * a file could not be read.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"

static char **paths;
static size_t npaths;
static size_t bufsize = 256 * 1024; /* what file.checksum reads at once */
static bool use_crc;
static atomic_size_t next_path;
static atomic_ullong total_bytes;
static atomic_int failures;
static atomic_uint digest_xor; /* keeps the hash from being optimised out */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hash_file(const char *path, char *buf, uint64_t *bytes)
{
	struct jobq__sha256 sha;
	uint8_t d[32];
	uint32_t x, crc = 0;
	off_t at = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	jobq__sha256_init(&sha);
	for (;;) {
		ssize_t n = pread(fd, buf, bufsize, at);

		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (use_crc)
			crc = jobq__crc32c(crc, buf, (size_t)n);
		else
			jobq__sha256_update(&sha, buf, (size_t)n);
		at += n;
	}
	close(fd);
	jobq__sha256_final(&sha, d);
	memcpy(&x, d, sizeof(x));
	if (use_crc)
		x = crc;
	atomic_fetch_xor(&digest_xor, x);
	*bytes = (uint64_t)at;
	return 0;
}

static void *thread_main(void *arg)
{
	char *buf = malloc(bufsize);

	(void)arg;
	if (!buf) {
		atomic_fetch_add(&failures, 1);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&next_path, 1);
		uint64_t bytes = 0;

		if (i >= npaths)
			break;
		if (hash_file(paths[i], buf, &bytes)) {
			fprintf(stderr, "jobq-io-pool: %s: %m\n", paths[i]);
			atomic_fetch_add(&failures, 1);
			continue;
		}
		atomic_fetch_add(&total_bytes, bytes);
	}
	free(buf);
	return NULL;
}

static int read_list(const char *file)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0, room = 0;
	ssize_t n;

	if (!f)
		return -1;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (!n)
			continue;
		if (npaths == room) {
			room = room ? 2 * room : 1024;
			paths = realloc(paths, room * sizeof(*paths));
			if (!paths)
				return -1;
		}
		paths[npaths] = strdup(line);
		if (!paths[npaths++])
			return -1;
	}
	free(line);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	struct rusage ru;
	double t0, secs, cpu;
	int threads = 2, opt, i;

	while ((opt = getopt(argc, argv, "t:b:a:")) != -1) {
		if (opt == 'a' && !strcmp(optarg, "crc32c"))
			use_crc = true;
		else if (opt == 'a' && strcmp(optarg, "sha256"))
			goto usage;
		else if (opt == 'a')
			;
		else if (opt == 't')
			threads = atoi(optarg);
		else if (opt == 'b')
			bufsize = (size_t)atol(optarg);
		else
			goto usage;
	}
	if (optind + 1 != argc || threads < 1 || threads > 64 || !bufsize)
		goto usage;
	if (read_list(argv[optind])) {
		fprintf(stderr, "jobq-io-pool: %s: %m\n", argv[optind]);
		return 2;
	}
	t0 = now_s();
	for (i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, thread_main, NULL)) {
			fprintf(stderr,
				"jobq-io-pool: pthread_create failed\n");
			return 2;
		}
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	secs = now_s() - t0;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("RESULT metric=files_per_s value=%.1f threads=%d files=%zu "
	       "xor=%08x\n",
	       (double)npaths / secs, threads, npaths,
	       (unsigned)atomic_load(&digest_xor));
	printf("RESULT metric=secs value=%.4f\n", secs);
	printf("RESULT metric=MiB_per_s value=%.1f\n",
	       (double)atomic_load(&total_bytes) / 1048576.0 / secs);
	printf("RESULT metric=cpu_s value=%.3f\n", cpu);
	return atomic_load(&failures) ? 1 : 0;
usage:
	fprintf(stderr, "usage: jobq-io-pool [-t THREADS] [-b BUFSIZE] "
			"[-a sha256|crc32c] LISTFILE\n");
	return 2;
}
