/* SPDX-License-Identifier: MIT */
/*
 * fuzz_journal - the journal and snapshot reader (manager/journal.c) fed
 * files it did not write: jobq__journal_open() replays a snapshot and a
 * journal held in memory, through an IO seam of this file's own, and must
 * either start (cutting a bad tail) or refuse with -EBADMSG, never read
 * outside a record or crash.
 *
 * Input: byte 0 chooses the mode, bytes 1..4 where the snapshot ends and
 * the journal begins, the rest the two files. In the raw mode the files
 * are taken as they are, so most inputs fail their first CRC; in the
 * mended mode the headers' and every record's CRC are recomputed first,
 * so that inputs reach the reader's checks of generations, sequence
 * numbers, kinds and lengths.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATH	 "/fuzz/journal"
#define NFILES	 8
#define FILE_CAP (4u << 20) /* writes past it fail with ENOSPC */

struct mfile {
	char name[PATH_MAX + 16];
	uint8_t *data;
	size_t len;
	bool used;
};

static struct mfile files[NFILES];
static int fd_file[NFILES]; /* open fd (index) -> file index, -1 */

static int find(const char *path)
{
	for (int i = 0; i < NFILES; i++)
		if (files[i].used && !strcmp(files[i].name, path))
			return i;
	return -1;
}

static int add(const char *path, const uint8_t *p, size_t len)
{
	for (int i = 0; i < NFILES; i++) {
		if (files[i].used)
			continue;
		files[i].data = malloc(len ? len : 1);
		if (!files[i].data)
			return -ENOMEM;
		if (len)
			memcpy(files[i].data, p, len);
		files[i].len = len;
		files[i].used = true;
		strncpy(files[i].name, path, sizeof(files[i].name) - 1);
		return i;
	}
	return -EMFILE;
}

static void drop(int i)
{
	free(files[i].data);
	memset(&files[i], 0, sizeof(files[i]));
}

static struct mfile *of(int fd)
{
	if (fd < 0 || fd >= NFILES || fd_file[fd] < 0)
		return NULL;
	return &files[fd_file[fd]];
}

static int m_open(void *ctx, const char *path, int flags, mode_t mode)
{
	int f = find(path);

	(void)ctx;
	(void)mode;
	if (f < 0 && !(flags & O_CREAT))
		return -ENOENT;
	if (f >= 0 && (flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (f < 0)
		f = add(path, NULL, 0);
	if (f < 0)
		return f;
	if (flags & O_TRUNC)
		files[f].len = 0;
	for (int fd = 0; fd < NFILES; fd++) {
		if (fd_file[fd] < 0) {
			fd_file[fd] = f;
			return fd;
		}
	}
	return -EMFILE;
}

static int m_close(void *ctx, int fd)
{
	(void)ctx;
	if (!of(fd))
		return -EBADF;
	fd_file[fd] = -1;
	return 0;
}

static ssize_t m_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	struct mfile *f = of(fd);

	(void)ctx;
	if (!f)
		return -EBADF;
	if (off >= f->len)
		return 0;
	if (len > f->len - off)
		len = f->len - off;
	memcpy(buf, f->data + off, len);
	return (ssize_t)len;
}

static ssize_t m_pwritev(void *ctx, int fd, const struct iovec *iov, int n,
			 uint64_t off)
{
	struct mfile *f = of(fd);
	size_t total = 0;
	uint8_t *p;

	(void)ctx;
	if (!f)
		return -EBADF;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (off > FILE_CAP || total > FILE_CAP - off)
		return -ENOSPC;
	if (off + total > f->len) {
		p = realloc(f->data, off + total);
		if (!p)
			return -ENOMEM;
		if (off > f->len)
			memset(p + f->len, 0, off - f->len);
		f->data = p;
		f->len = off + total;
	}
	for (int i = 0; i < n; i++) {
		memcpy(f->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return (ssize_t)total;
}

static int m_sync(void *ctx, int fd)
{
	(void)ctx;
	return of(fd) ? 0 : -EBADF;
}

static int m_truncate(void *ctx, int fd, uint64_t len)
{
	struct mfile *f = of(fd);

	(void)ctx;
	if (!f)
		return -EBADF;
	if (len > f->len)
		return -EINVAL; /* the reader only ever cuts */
	f->len = len;
	return 0;
}

static int m_size(void *ctx, int fd, uint64_t *len)
{
	struct mfile *f = of(fd);

	(void)ctx;
	if (!f)
		return -EBADF;
	*len = f->len;
	return 0;
}

static int m_rename(void *ctx, const char *from, const char *to)
{
	int f = find(from), t = find(to);

	(void)ctx;
	if (f < 0)
		return -ENOENT;
	if (t >= 0 && t != f) {
		for (int fd = 0; fd < NFILES; fd++)
			if (fd_file[fd] == t)
				return -EBUSY; /* the journal never does */
		drop(t);
	}
	strncpy(files[f].name, to, sizeof(files[f].name) - 1);
	return 0;
}

static int m_unlink(void *ctx, const char *path)
{
	int f = find(path);

	(void)ctx;
	if (f < 0)
		return -ENOENT;
	for (int fd = 0; fd < NFILES; fd++)
		if (fd_file[fd] == f)
			fd_file[fd] = -1;
	drop(f);
	return 0;
}

static int m_sync_dir(void *ctx, const char *path)
{
	(void)ctx;
	(void)path;
	return 0;
}

static const struct jobq__jio mem_io = {
    .open = m_open,
    .close = m_close,
    .pread = m_pread,
    .pwritev = m_pwritev,
    .sync = m_sync,
    .truncate = m_truncate,
    .size = m_size,
    .rename = m_rename,
    .unlink = m_unlink,
    .sync_dir = m_sync_dir,
};

/* Every byte of a record is read, so that ASan sees a payload that
 * reaches past what the reader handed out. */
static int on_record(void *arg, uint16_t type, const uint8_t *p, uint32_t len)
{
	uint32_t *sum = arg;

	for (uint32_t i = 0; i < len; i++)
		*sum += p[i];
	*sum += type;
	return 0;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Recomputes the header's CRC and each record's, as far as the lengths
 * the records claim lead. */
static void mend(uint8_t *f, size_t len)
{
	size_t off = JOBQ__JHDR_SIZE;

	if (len < JOBQ__JHDR_SIZE)
		return;
	put32(f + 36, jobq__crc32c(0, f, 36));
	while (len - off >= JOBQ__JREC_OVERHEAD) {
		uint32_t rlen = get32(f + off);

		if (rlen > len - off - JOBQ__JREC_OVERHEAD)
			return;
		put32(f + off + 16 + rlen, jobq__crc32c(0, f + off, 16 + rlen));
		off += JOBQ__JREC_OVERHEAD + rlen;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobq__journal j;
	struct jobq__replay_info info;
	char err[256];
	uint32_t split, sum = 0;
	uint8_t *buf;
	size_t len;
	bool mended;

	if (size < 5)
		return 0;
	mended = data[0] & 1;
	split = get32(data + 1);
	data += 5;
	size -= 5;
	if (split > size)
		split = (uint32_t)size;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	len = size;
	if (mended) {
		mend(buf, split);
		mend(buf + split, len - split);
	}
	for (int i = 0; i < NFILES; i++)
		fd_file[i] = -1;
	if (split)
		add(PATH ".snap", buf, split);
	if (len - split)
		add(PATH, buf + split, len - split);
	free(buf);

	if (!jobq__journal_open(&j, &mem_io, PATH, JOBQ__FSYNC_NONE, on_record,
				&sum, &info, err, sizeof(err))) {
		/* Started: it must take a record and commit it. */
		struct iovec v = {.iov_base = "x", .iov_len = 1};

		if (jobq__journal_add(&j, 16, &v, 1) == 0)
			jobq__journal_commit(&j, false);
		jobq__journal_close(&j);
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	for (int i = 0; i < NFILES; i++)
		if (files[i].used)
			drop(i);
	return 0;
}
