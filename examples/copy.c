/* SPDX-License-Identifier: MIT */
/*
 * copy.c - a file copied by a pipeline of reads and writes on io_uring.
 *
 * The idea: the copy is cut into blocks, and a few fibers each take the
 * next block, read it at its offset and write it at the same offset in
 * the copy. While one fiber waits for its read, another's write is in
 * flight: the reads and writes of several blocks overlap, and the code of
 * each fiber is a plain loop. Short reads and writes are taken care of by
 * jobq_io_read_full() and jobq_io_write_all(). Each fiber's block buffer
 * is one of the loop's registered buffers (IORING_OP_READ_FIXED and
 * WRITE_FIXED), or plain memory where the kernel refuses to register
 * them (RLIMIT_MEMLOCK).
 *
 *   copy SRC DST      copy SRC to DST, then compare them
 *   copy              make an 8 MiB file of known bytes in a temporary
 *                     directory, copy it and compare
 *
 * The comparison reads both files with the same calls from plain code,
 * outside any fiber, where they block like read(2). Exits 0 when the copy
 * is identical, 1 otherwise.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

#define BLOCK  (256 * 1024)
#define FIBERS 4

struct copy {
	int in, out;
	uint64_t size;
	uint64_t next; /* the next block's offset; fibers take turns */
	int err;
};

static void copier(void *arg)
{
	struct copy *c = arg;
	jobq_loop_t *l = jobq_loop_current();
	size_t size;
	void *p;
	char *buf;

	/* One of the loop's registered buffers: the kernel has it mapped
	 * already, and the reads and writes into it are the _FIXED ones. */
	if (jobq_buffer_get(l, &p, &size) || size < BLOCK) {
		c->err = -1;
		return;
	}
	buf = p;
	/* Only one fiber runs at a time, so taking a block needs no lock. */
	while (!c->err && c->next < c->size) {
		uint64_t off = c->next;
		size_t len = c->size - off < BLOCK ? c->size - off : BLOCK;
		ssize_t n;

		c->next += len;
		n = jobq_io_read_full(c->in, buf, len, (int64_t)off, -1);
		if (n != (ssize_t)len) {
			c->err = n < 0 ? (int)n : -1;
			break;
		}
		n = jobq_io_write_all(c->out, buf, len, (int64_t)off, -1);
		if (n != (ssize_t)len)
			c->err = n < 0 ? (int)n : -1;
	}
	jobq_buffer_put(l, buf);
}

static int copy_file(const char *src, const char *dst)
{
	struct jobq_loop_opts o = {.buffers = FIBERS, .buffer_size = BLOCK};
	struct copy c = {0};
	int registered;
	struct stat st;
	jobq_loop_t *l;
	int err;

	err = jobq_loop_new(&l, &o);
	if (err) {
		fprintf(stderr, "copy: %s\n", jobq_loop_why());
		return 1;
	}
	c.in = open(src, O_RDONLY | O_CLOEXEC);
	c.out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c.in < 0 || c.out < 0 || fstat(c.in, &st)) {
		perror("copy: open");
		return 1;
	}
	c.size = (uint64_t)st.st_size;
	for (int i = 0; i < FIBERS; i++)
		if (jobq_spawn(l, copier, &c, NULL))
			return 1;
	err = jobq_loop_run(l);
	registered = jobq_loop_buffers_registered(l);
	if (!err && !c.err)
		err = jobq_io_fsync(c.out, 0);
	jobq_loop_free(l);
	close(c.in);
	close(c.out);
	if (err || c.err) {
		fprintf(stderr, "copy: %s\n",
			strerror(-(err	       ? err
				   : c.err < 0 ? c.err
					       : 5)));
		return 1;
	}
	printf("copied %llu bytes in %llu blocks, %d in flight, through %s "
	       "buffers\n",
	       (unsigned long long)c.size,
	       (unsigned long long)((c.size + BLOCK - 1) / BLOCK), FIBERS,
	       registered ? "registered" : "plain (registration refused)");
	return 0;
}

/* Compares two files by reading both through the blocking form. */
static int same(const char *a, const char *b)
{
	static char x[BLOCK], y[BLOCK];
	int fa = jobq_io_openat(AT_FDCWD, a, O_RDONLY, 0);
	int fb = jobq_io_openat(AT_FDCWD, b, O_RDONLY, 0);
	int rc = 1;

	if (fa < 0 || fb < 0)
		return 0;
	for (;;) {
		ssize_t n = jobq_io_read_full(fa, x, sizeof(x), -1, -1);
		ssize_t m = jobq_io_read_full(fb, y, sizeof(y), -1, -1);

		if (n < 0 || n != m || memcmp(x, y, (size_t)n)) {
			rc = 0;
			break;
		}
		if (n == 0)
			break;
	}
	jobq_io_close(fa);
	jobq_io_close(fb);
	return rc;
}

/* 8 MiB and a few bytes (not a whole number of blocks) of known bytes. */
static int make_source(const char *path)
{
	size_t size = 8 * 1024 * 1024 + 4097;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	char *buf = malloc(size);
	int fd, rc = 0;

	if (!buf)
		return 1;
	for (size_t i = 0; i < size; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (char)(x * 0x2545f4914f6cdd1dULL >> 56);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || jobq_io_write_all(fd, buf, size, 0, -1) != (ssize_t)size)
		rc = 1;
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/jobq-copy-XXXXXX", src[64], dst[64];
	int rc;

	if (argc == 3) {
		rc = copy_file(argv[1], argv[2]);
		if (!rc && !same(argv[1], argv[2]))
			rc = 1;
		printf(rc ? "FAILED\n" : "identical\n");
		return rc;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: copy [SRC DST]\n");
		return 2;
	}
	if (!mkdtemp(dir))
		return 1;
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	rc = make_source(src) || copy_file(src, dst);
	if (!rc && !same(src, dst))
		rc = 1;
	unlink(src);
	unlink(dst);
	rmdir(dir);
	printf(rc ? "FAILED\n" : "identical\n");
	return rc;
}
