/* SPDX-License-Identifier: MIT */
/*
 * journal.c - the journal's file format, append path, replay and
 * snapshots. The contract is in journal.h.
 *
 * Crash safety rests on three orders:
 *
 *   1. a record is written (and, by the mode, synced) before the request
 *      that made it is acknowledged: the caller commits, then publishes;
 *   2. a snapshot is complete and synced before it is renamed into place,
 *      and in place (directory synced) before the new journal replaces the
 *      old one; a crash in between leaves a snapshot of generation N+1 and
 *      a journal of N, which replay recognises as stale;
 *   3. a new journal is a whole file (header synced) renamed over the old,
 *      never the old one truncated in place, so that no crash can leave a
 *      snapshot beside a journal that has lost its header.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "internal.h"
#include "journal.h"

static const char magic_journal[8] = "JOBQJNL\n";
static const char magic_snap[8] = "JOBQSNP\n";

enum { KIND_JOURNAL = 1, KIND_SNAP = 2 };

#define SNAP_CHUNK (1u << 20) /* snapshot bytes buffered per write */
/* A mapped journal grows by this much at a time: one fallocate() per
 * megabyte of records, none per commit. The mapping reserves address
 * space for MAP_RESERVE bytes of file at once (past the file's end it is
 * never touched), so growing does not map again: mapping again costs a
 * fault per page already written, and more than the pwritev() it saves. */
#define MAP_CHUNK   (1u << 20)
#define MAP_RESERVE (1ull << 30)
/* At most this much per write: an io_uring write takes a 32-bit length;
 * the rest of a unit goes in the next write. */
#define JOBQ__JOP_MAX (1u << 30)

/* ------------------------------------------------------------------------
 * The default seam: system calls.
 */
static int px_open(void *ctx, const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_CLOEXEC, mode);

	return fd < 0 ? -errno : fd;
}

static int px_close(void *ctx, int fd)
{
	return close(fd) < 0 ? -errno : 0;
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, (off_t)off);

	return n < 0 ? -errno : n;
}

static ssize_t px_pwritev(void *ctx, int fd, const struct iovec *iov, int n,
			  uint64_t off)
{
	ssize_t r = pwritev(fd, iov, n, (off_t)off);

	return r < 0 ? -errno : r;
}

static int px_sync(void *ctx, int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_truncate(void *ctx, int fd, uint64_t len)
{
	return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

static int px_size(void *ctx, int fd, uint64_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0)
		return -errno;
	*len = (uint64_t)end;
	return 0;
}

/*
 * Writes zeros. fallocate(2) would reserve the blocks without writing, but
 * its unwritten extents cost more when the mapping faults them in (ext4:
 * a read of each page through readahead, then a conversion; 4.8 us a 4 KiB
 * page here, against 1.3 for pages written with zeros first), and the
 * journal writes each page at once anyway. A written page holds its space
 * (allocated, or reserved by delayed allocation), so a full disk is an
 * error here, never a SIGBUS in the middle of a copy.
 */
static int px_allocate(void *ctx, int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 << 10];
	struct iovec v[16];
	ssize_t n;

	for (int i = 0; i < 16; i++)
		v[i] = (struct iovec){.iov_base = (void *)zeros,
				      .iov_len = sizeof(zeros)};
	while (len) {
		uint64_t want =
		    len < 16 * sizeof(zeros) ? len : 16 * sizeof(zeros);
		int nv = (int)((want + sizeof(zeros) - 1) / sizeof(zeros));

		v[nv - 1].iov_len = want - (uint64_t)(nv - 1) * sizeof(zeros);
		n = pwritev(fd, v, nv, (off_t)off);
		v[nv - 1].iov_len = sizeof(zeros);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int px_map(void *ctx, int fd, uint64_t len, void **p)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	*p = m;
	return 0;
}

static void px_unmap(void *ctx, void *p, uint64_t len)
{
	munmap(p, len);
}

static int px_rename(void *ctx, const char *from, const char *to)
{
	return rename(from, to) < 0 ? -errno : 0;
}

static int px_exchange(void *ctx, const char *a, const char *b)
{
	return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) < 0 ? -errno
									: 0;
}

static int px_unlink(void *ctx, const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

static int px_sync_dir(void *ctx, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, ret = 0;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

const struct jobq__jio jobq__jio_posix = {
    .open = px_open,
    .close = px_close,
    .pread = px_pread,
    .pwritev = px_pwritev,
    .sync = px_sync,
    .truncate = px_truncate,
    .size = px_size,
    .rename = px_rename,
    .unlink = px_unlink,
    .sync_dir = px_sync_dir,
    .allocate = px_allocate,
    .map = px_map,
    .unmap = px_unmap,
    .exchange = px_exchange,
};

const char *jobq__fsync_name(int mode)
{
	switch (mode) {
	case JOBQ__FSYNC_BATCH:
		return "batch";
	case JOBQ__FSYNC_ALWAYS:
		return "always";
	default:
		return "none";
	}
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Little-endian stores and loads (the files are the same on any host). */
static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void hdr_make(uint8_t *h, int kind, uint64_t gen, uint64_t seq0)
{
	memset(h, 0, JOBQ__JHDR_SIZE);
	memcpy(h, kind == KIND_SNAP ? magic_snap : magic_journal, 8);
	put32(h + 8, JOBQ__JOURNAL_VERSION);
	put32(h + 12, (uint32_t)kind);
	put64(h + 16, gen);
	put64(h + 24, seq0);
	put32(h + 36, jobq__crc32c(0, h, 36));
}

/* Checks a header; 0, or -EBADMSG with the reason in @why. */
static int hdr_check(const uint8_t *h, uint64_t len, int kind, uint64_t *gen,
		     uint64_t *seq0, const char **why)
{
	if (len < JOBQ__JHDR_SIZE) {
		*why = "shorter than its header";
		return -EBADMSG;
	}
	if (memcmp(h, kind == KIND_SNAP ? magic_snap : magic_journal, 8)) {
		*why = "not a jobq file (bad magic)";
		return -EBADMSG;
	}
	if (get32(h + 36) != jobq__crc32c(0, h, 36)) {
		*why = "header checksum mismatch";
		return -EBADMSG;
	}
	if (get32(h + 8) != JOBQ__JOURNAL_VERSION) {
		*why = "written by another format version";
		return -EBADMSG;
	}
	if (get32(h + 12) != (uint32_t)kind) {
		*why = "wrong kind of file";
		return -EBADMSG;
	}
	*gen = get64(h + 16);
	*seq0 = get64(h + 24);
	return 0;
}

/* Writes all of @iov at @off through the seam, retrying short writes. */
static int write_all(const struct jobq__jio *io, int fd, struct iovec *iov,
		     int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = io->pwritev(io->ctx, fd, iov, n, off);

		if (w < 0) {
			if (w == -EINTR)
				continue;
			return (int)w;
		}
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int write_buf(const struct jobq__jio *io, int fd, const void *p,
		     size_t len, uint64_t off)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = len};

	return write_all(io, fd, &v, 1, off);
}

/* Reads a whole file into a malloc'd buffer. */
static int read_file(const struct jobq__jio *io, int fd, uint8_t **out,
		     uint64_t *len)
{
	uint64_t size, got = 0;
	uint8_t *b;
	int ret = io->size(io->ctx, fd, &size);

	if (ret)
		return ret;
	if (size > SIZE_MAX - 1)
		return -EFBIG;
	b = malloc(size ? size : 1);
	if (!b)
		return -ENOMEM;
	while (got < size) {
		ssize_t r = io->pread(io->ctx, fd, b + got, size - got, got);

		if (r == -EINTR)
			continue;
		if (r < 0) {
			free(b);
			return (int)r;
		}
		if (r == 0)
			break;
		got += (uint64_t)r;
	}
	*out = b;
	*len = got;
	return 0;
}

/*
 * scan - walk the records of @b (@len bytes, after the header) from
 * sequence @seq. Each good record goes to @fn. Stops at the end, at the
 * first record that does not verify (*bad gets its offset and *why the
 * reason), or when @fn refuses one (returned as its error, *bad its
 * offset). *next gets the sequence number after the last good record,
 * *nrec how many there were, *last_type the type of the last one.
 * With @zero_end, a record header of zeros (or zeros to the end of the
 * file, when fewer bytes are left) is the end (*why stays NULL): the
 * unwritten rest of a mapped journal's last chunk, or the end mark before
 * a recycled file's older records. A torn copy is not taken for it unless
 * it left its header unwritten: every record's header holds a nonzero
 * sequence number.
 */
#define JEND 16u /* an end mark: a record header of zeros */

static bool all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static int scan(const uint8_t *b, uint64_t len, uint64_t seq, bool zero_end,
		jobq__replay_fn fn, void *arg, uint64_t *next, uint64_t *nrec,
		uint64_t *good_end, const char **why, uint16_t *last_type,
		const uint8_t **last_payload, uint32_t *last_len)
{
	uint64_t off = JOBQ__JHDR_SIZE;

	*why = NULL;
	*nrec = 0;
	*last_type = 0;
	while (off < len) {
		uint64_t left = len - off;
		uint32_t rlen;
		uint16_t type;
		int ret;

		if (zero_end && !b[off] &&
		    all_zero(b + off, left < JEND ? left : JEND))
			break;
		if (left < JOBQ__JREC_OVERHEAD) {
			*why = "a record cut short";
			break;
		}
		rlen = get32(b + off);
		type = get16(b + off + 4);
		if (rlen > JOBQ__JREC_MAX ||
		    rlen > left - JOBQ__JREC_OVERHEAD) {
			*why = rlen > JOBQ__JREC_MAX
				   ? "a record length out of range"
				   : "a record cut short";
			break;
		}
		if (get32(b + off + 16 + rlen) !=
		    jobq__crc32c(0, b + off, 16 + (size_t)rlen)) {
			*why = "a record checksum mismatch";
			break;
		}
		if (get64(b + off + 8) != seq) {
			*why = "a record out of sequence";
			break;
		}
		if (type != JOBQ__JR_SNAP_END && type != JOBQ__JR_TURN && fn) {
			ret = fn(arg, type, b + off + 16, rlen);
			if (ret) {
				*good_end = off;
				*next = seq;
				*why = "a record that does not apply";
				return ret;
			}
		}
		/* A JR_TURN frames records; it is not one of them. */
		if (type != JOBQ__JR_TURN) {
			*last_type = type;
			*last_payload = b + off + 16;
			*last_len = rlen;
			(*nrec)++;
		}
		seq++;
		off += JOBQ__JREC_OVERHEAD + rlen;
	}
	*good_end = off;
	*next = seq;
	/* The caller frees @b next: pointers into it die here. */
	return fn ? fn(arg, JOBQ__JR_EOF, NULL, 0) : 0;
}

static void set_paths(struct jobq__journal *j, const char *path)
{
	snprintf(j->path, sizeof(j->path), "%s", path);
	snprintf(j->snap_path, sizeof(j->snap_path), "%s.snap", path);
	snprintf(j->tmp_path, sizeof(j->tmp_path), "%s.tmp", path);
	snprintf(j->snap_tmp_path, sizeof(j->snap_tmp_path), "%s.snap.tmp",
		 path);
	snprintf(j->spare_path, sizeof(j->spare_path), "%s.spare", path);
}

/* Syncs @fd when the mode asks for it. */
static int maybe_sync(struct jobq__journal *j, int fd)
{
	int ret;

	if (j->mode == JOBQ__FSYNC_NONE && !j->force)
		return 0;
	ret = j->io->sync(j->io->ctx, fd);
	if (!ret)
		j->last_sync_ns = realtime_ns();
	return ret;
}

static int maybe_sync_dir(struct jobq__journal *j)
{
	if (j->mode == JOBQ__FSYNC_NONE && !j->force)
		return 0;
	return j->io->sync_dir(j->io->ctx, j->path);
}

/* Drops the mapping of the journal, if any. */
static void unmap(struct jobq__journal *j)
{
	if (j->map)
		j->io->unmap(j->io->ctx, j->map, j->map_cap);
	j->map = NULL;
	j->map_len = j->map_cap = 0;
}

/*
 * Zeroes the record header's worth of bytes at @off of a mapped journal,
 * before records are written up to it: a recycled file holds an older
 * journal's bytes there, which replay must not read on from. Past the
 * bytes allocated the file ends, or a write extends it.
 */
static void mark_end(struct jobq__journal *j, uint64_t off)
{
	if (j->map && off + JEND <= j->map_len)
		memset(j->map + off, 0, JEND);
}

/* Whether new journals recycle the file of the one before the last. */
static bool recycles(const struct jobq__journal *j)
{
	return jobq__journal_maps(j) && j->io->exchange && !j->no_exchange;
}

/* Drops the spare journal file, if any, and its name. */
static void drop_spare(struct jobq__journal *j)
{
	const struct jobq__jio *io = j->io;

	if (j->spare_map)
		io->unmap(io->ctx, j->spare_map, j->spare_cap);
	if (j->spare_fd >= 0) {
		io->close(io->ctx, j->spare_fd);
		io->unlink(io->ctx, j->spare_path);
	}
	j->spare_fd = -1;
	j->spare_map = NULL;
	j->spare_len = j->spare_cap = 0;
}

/*
 * new_journal - make an empty journal of generation @gen starting at
 * sequence @seq0 the one appended to: its header written (and synced, by
 * the mode) in another file, then that file given the name FILE in one
 * step. Usually the file is new (FILE.tmp, renamed over FILE). When
 * journals are recycled and there is a journal now, the file is FILE.spare
 * (the spare, or a new one the first time) and it swaps names with FILE:
 * the old journal becomes the spare, its pages kept for the next time. A
 * spare's older records stay after the new header, behind an end mark.
 * Returns 0 or -errno (the old journal stays, unless only the directory's
 * sync failed).
 */
static int new_journal(struct jobq__journal *j, uint64_t gen, uint64_t seq0)
{
	const struct jobq__jio *io = j->io;
	bool swap = recycles(j) && j->fd >= 0;
	const char *at = swap ? j->spare_path : j->tmp_path;
	bool reuse = swap && j->spare_fd >= 0;
	uint8_t h[JOBQ__JHDR_SIZE + JEND] = {0};
	int fd, ret;

	fd = reuse ? j->spare_fd
		   : io->open(io->ctx, at, O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (fd < 0)
		return fd;
	hdr_make(h, KIND_JOURNAL, gen, seq0);
	ret = write_buf(io, fd, h, reuse ? sizeof(h) : JOBQ__JHDR_SIZE, 0);
	if (!ret)
		ret = maybe_sync(j, fd);
	if (!ret && swap) {
		ret = io->exchange(io->ctx, at, j->path);
		if (ret == -EINVAL || ret == -ENOSYS || ret == -EOPNOTSUPP) {
			/* The file system cannot swap: new files from now. */
			j->no_exchange = true;
			swap = false;
			ret = 0;
		}
	}
	if (!ret && !swap)
		ret = io->rename(io->ctx, at, j->path);
	if (ret) {
		if (!reuse) {
			io->close(io->ctx, fd);
			io->unlink(io->ctx, at);
		}
		return ret;
	}
	/* FILE is the new journal from here: its state becomes the
	 * journal's, the old one's the spare's, or goes. */
	if (swap) {
		int ofd = j->fd;
		uint8_t *omap = j->map;
		uint64_t olen = j->map_len, ocap = j->map_cap;

		j->map = reuse ? j->spare_map : NULL;
		j->map_len = reuse ? j->spare_len : 0;
		j->map_cap = reuse ? j->spare_cap : 0;
		j->spare_fd = ofd;
		j->spare_map = omap;
		j->spare_len = olen;
		j->spare_cap = ocap;
	} else {
		unmap(j);
		if (j->fd >= 0)
			io->close(io->ctx, j->fd);
		if (reuse) {
			/* Renamed over FILE: the spare is the journal. */
			j->map = j->spare_map;
			j->map_len = j->spare_len;
			j->map_cap = j->spare_cap;
			j->spare_fd = -1;
			j->spare_map = NULL;
			j->spare_len = j->spare_cap = 0;
		}
	}
	j->fd = fd;
	j->gen = gen;
	j->seq = seq0;
	j->size = JOBQ__JHDR_SIZE;
	return maybe_sync_dir(j);
}

/*
 * load_snapshot - replay FILE.snap when there is one. *gen and *seq get
 * its generation and the sequence after it (0 and 1 without a snapshot).
 */
static int load_snapshot(struct jobq__journal *j, jobq__replay_fn fn, void *arg,
			 struct jobq__replay_info *info, uint64_t *gen,
			 uint64_t *seq, char *err, size_t errlen)
{
	const struct jobq__jio *io = j->io;
	const uint8_t *lp = NULL;
	uint64_t len, seq0, nrec = 0, end = 0;
	const char *why = NULL;
	uint32_t llen = 0;
	uint16_t ltype;
	uint8_t *b;
	int fd, ret;

	*gen = 0;
	*seq = 1;
	fd = io->open(io->ctx, j->snap_path, O_RDONLY, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "snapshot %s: %s", j->snap_path,
			 strerror(-fd));
		return fd;
	}
	ret = read_file(io, fd, &b, &len);
	io->close(io->ctx, fd);
	if (ret) {
		snprintf(err, errlen, "snapshot %s: %s", j->snap_path,
			 strerror(-ret));
		return ret;
	}
	ret = hdr_check(b, len, KIND_SNAP, gen, &seq0, &why);
	if (!ret)
		ret = scan(b, len, seq0, false, fn, arg, seq, &nrec, &end, &why,
			   &ltype, &lp, &llen);
	if (!ret && (why || ltype != JOBQ__JR_SNAP_END || llen != 8 ||
		     get64(lp) != nrec - 1)) {
		if (!why)
			why = "no end record (the snapshot is incomplete)";
		ret = -EBADMSG;
	}
	free(b);
	if (ret) {
		snprintf(err, errlen,
			 "snapshot %s is corrupt: %s at byte %llu; refusing to "
			 "start from a damaged state (restore the file, or "
			 "move it away to start empty)",
			 j->snap_path, why ? why : strerror(-ret),
			 (unsigned long long)end);
		return ret == -EBADMSG || why ? -EBADMSG : ret;
	}
	info->snap_records = nrec - 1;
	info->snap_bytes = len;
	j->snap_size = len;
	return 0;
}

int jobq__journal_open(struct jobq__journal *j, const struct jobq__jio *io,
		       const char *path, int mode, jobq__replay_fn fn,
		       void *arg, struct jobq__replay_info *info, char *err,
		       size_t errlen)
{
	struct jobq__replay_info dummy;
	uint64_t sgen, sseq, len = 0, jgen = 0, seq0 = 0, next, nrec, end;
	const uint8_t *lp;
	const char *why = NULL;
	uint32_t llen;
	uint16_t ltype;
	uint8_t *b = NULL;
	int fd, ret;

	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	memset(j, 0, sizeof(*j));
	j->io = io;
	j->mode = mode;
	j->fd = j->sfd = j->spare_fd = -1;
	if (strlen(path) + 16 > sizeof(j->path)) {
		snprintf(err, errlen, "journal path too long");
		return -ENAMETOOLONG;
	}
	set_paths(j, path);
	/* An older journal kept for recycling: nothing to replay. */
	io->unlink(io->ctx, j->spare_path);
	ret = load_snapshot(j, fn, arg, info, &sgen, &sseq, err, errlen);
	if (ret)
		return ret;

	fd = io->open(io->ctx, j->path, O_RDWR, 0);
	if (fd == -ENOENT) {
		/* First start, or a crash before the first journal was in
		 * place: begin one after the snapshot. */
		ret = new_journal(j, sgen ? sgen : 1, sseq);
		if (ret)
			snprintf(err, errlen, "journal %s: %s", j->path,
				 strerror(-ret));
		return ret;
	}
	if (fd < 0) {
		snprintf(err, errlen, "journal %s: %s", j->path, strerror(-fd));
		return fd;
	}
	ret = read_file(io, fd, &b, &len);
	if (ret) {
		io->close(io->ctx, fd);
		snprintf(err, errlen, "journal %s: %s", j->path,
			 strerror(-ret));
		return ret;
	}
	if (hdr_check(b, len, KIND_JOURNAL, &jgen, &seq0, &why)) {
		/*
		 * New journals are renamed into place with their header
		 * written (and synced, by the mode), so no crash leaves one
		 * without it: this one is damaged, and which generation its
		 * records continue is unknown. Starting without them would
		 * lose every change since the snapshot without a word.
		 */
		free(b);
		io->close(io->ctx, fd);
		snprintf(err, errlen,
			 "journal %s is corrupt: %s; refusing to start from "
			 "part of the state (restore the file, or move it away "
			 "to start from the snapshot alone)",
			 j->path, why);
		return -EBADMSG;
	}
	if (jgen < sgen || (sgen && jgen == sgen && seq0 != sseq)) {
		/* Written before the snapshot, which holds its records. */
		info->stale_journal = true;
		free(b);
		io->close(io->ctx, fd);
		ret = new_journal(j, sgen, sseq);
		if (ret)
			snprintf(err, errlen, "journal %s: %s", j->path,
				 strerror(-ret));
		return ret;
	}
	if (jgen > sgen && (sgen || jgen != 1)) {
		free(b);
		io->close(io->ctx, fd);
		snprintf(err, errlen,
			 "journal %s (generation %llu) continues a snapshot "
			 "%s of generation %llu that is %s; refusing to start "
			 "from part of the state",
			 j->path, (unsigned long long)jgen, j->snap_path,
			 (unsigned long long)sgen, sgen ? "older" : "missing");
		return -EBADMSG;
	}
	ret = scan(b, len, seq0, true, fn, arg, &next, &nrec, &end, &why,
		   &ltype, &lp, &llen);
	free(b);
	if (ret) {
		io->close(io->ctx, fd);
		snprintf(err, errlen,
			 "journal %s: the record at byte %llu cannot be "
			 "applied: %s",
			 j->path, (unsigned long long)end, strerror(-ret));
		return ret;
	}
	info->journal_records = nrec;
	if (end < len && !why) {
		/* A mapped journal's unwritten zeros, not a cut: the file is
		 * trimmed to its records, and a mapping allocates again as it
		 * needs. */
		ret = io->truncate(io->ctx, fd, end);
		if (ret) {
			io->close(io->ctx, fd);
			snprintf(err, errlen,
				 "journal %s: trimming at %llu: %s", j->path,
				 (unsigned long long)end, strerror(-ret));
			return ret;
		}
	} else if (end < len) {
		info->cut = true;
		info->cut_offset = end;
		info->cut_bytes = len - end;
		snprintf(info->cut_why, sizeof(info->cut_why), "%s",
			 why ? why : "garbage");
		/* Appends go right after the last good record. */
		ret = io->truncate(io->ctx, fd, end);
		if (!ret)
			ret = maybe_sync(j, fd);
		if (ret) {
			io->close(io->ctx, fd);
			snprintf(err, errlen, "journal %s: cutting at %llu: %s",
				 j->path, (unsigned long long)end,
				 strerror(-ret));
			return ret;
		}
	}
	j->fd = fd;
	j->gen = jgen;
	j->seq = next;
	j->size = end;
	return 0;
}

static int map_grow(struct jobq__journal *j, uint64_t need);
static int fail(struct jobq__journal *j, int err);
static int reserve(struct jobq__journal *j, size_t more);
static int leave_inplace(struct jobq__journal *j);

void jobq__journal_close(struct jobq__journal *j)
{
	/* Records built in the mapping and not committed leave it first:
	 * they are not the file's (the truncation below drops them). */
	leave_inplace(j);
	if (j->map) {
		/* A stopped instance leaves no zero tail: the file ends
		 * with its last record, as a written one does. */
		unmap(j);
		j->io->truncate(j->io->ctx, j->fd, j->size);
	}
	drop_spare(j);
	if (j->fd >= 0)
		j->io->close(j->io->ctx, j->fd);
	if (j->sfd >= 0)
		j->io->close(j->io->ctx, j->sfd);
	j->fd = j->sfd = -1;
	free(j->buf);
	free(j->ibuf);
	free(j->units);
	free(j->iunits);
	j->buf = j->ibuf = NULL;
	j->units = j->iunits = NULL;
	j->len = j->cap = j->ilen = j->icap = 0;
	j->nunits = j->ucap = j->niunits = j->iucap = 0;
	j->busy = false;
}

/*
 * Writes the JR_TURN record at the start of the records built in the
 * mapping, which makes them part of the file for a replay. Last, after
 * every record of the turn is sealed (journal.h).
 */
static void seal_turn(struct jobq__journal *j)
{
	uint8_t h[JOBQ__JREC_OVERHEAD];

	if (!j->turn_open)
		return;
	j->turn_open = false;
	put32(h, 0);
	put16(h + 4, JOBQ__JR_TURN);
	put16(h + 6, 0);
	put64(h + 8, j->turn_seq);
	put32(h + 16, jobq__crc32c(0, h, 16));
	/* The checksum first, outside the header that replay reads as an
	 * end mark while it is zeros; the header last, after every byte of
	 * the records it shows. */
	memcpy(j->buf + 16, h + 16, 4);
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(j->buf, h, 16);
}

/* Records are built in the mapping from here (see journal.h); the
 * caller has none pending. */
static void enter_inplace(struct jobq__journal *j)
{
	if (j->inplace || j->len || j->nunits || j->busy || j->sfd >= 0 ||
	    j->err || !j->map || !jobq__journal_maps(j))
		return;
	j->hbuf = j->buf;
	j->hcap = j->cap;
	j->buf = j->map + j->size;
	j->cap = j->map_len - j->size;
	j->inplace = true;
}

/*
 * Back to the heap buffer, with the records pending copied into it; the
 * file ends at size again (they are still to be written, or dropped).
 * Returns 0 or -ENOMEM (the journal is then failed and they are lost, as
 * a record that could not be added is).
 */
static int leave_inplace(struct jobq__journal *j)
{
	uint8_t *p = j->buf;
	size_t len = j->len;

	if (!j->inplace)
		return 0;
	/* Copied, they are written as one piece: the JR_TURN with them. */
	seal_turn(j);
	j->inplace = false;
	j->buf = j->hbuf;
	j->cap = j->hcap;
	j->hbuf = NULL;
	j->hcap = 0;
	j->len = 0;
	if (len && reserve(j, len)) {
		j->nbuf = 0;
		mark_end(j, j->size);
		return fail(j, -ENOMEM);
	}
	memcpy(j->buf, p, len);
	j->len = len;
	mark_end(j, j->size);
	return 0;
}

/* Room for @more bytes of records and an end mark in the mapping. */
static int reserve_inplace(struct jobq__journal *j, size_t more)
{
	uint64_t need = j->size + j->len + more + JEND;
	int ret;

	if (need > j->map_len) {
		ret = map_grow(j, need);
		if (ret) {
			leave_inplace(j);
			return fail(j, ret);
		}
		j->buf = j->map + j->size;
		j->cap = j->map_len - j->size;
	}
	mark_end(j, j->size + j->len + more);
	return 0;
}

static int reserve(struct jobq__journal *j, size_t more)
{
	if (j->inplace)
		return reserve_inplace(j, more);
	if (j->cap - j->len >= more)
		return 0;
	if (more > SIZE_MAX - j->len)
		return -ENOMEM;
	return jobq__grow((void **)&j->buf, &j->cap, j->len + more, 1,
			  64 << 10);
}

/* Writes the buffered snapshot records to the snapshot file. */
static void snap_flush(struct jobq__journal *j)
{
	int ret;

	if (!j->len || j->serr)
		goto out;
	ret = write_buf(j->io, j->sfd, j->buf, j->len, j->soff);
	if (ret)
		j->serr = ret;
	else
		j->soff += j->len;
out:
	j->len = 0;
	j->nbuf = 0;
}

uint8_t *jobq__journal_reserve(struct jobq__journal *j, uint16_t type,
			       uint64_t plen, int *err)
{
	bool open;
	uint8_t *r;

	if (plen > JOBQ__JREC_MAX) {
		*err = -E2BIG;
		return NULL;
	}
	/* The first record built in the mapping since the last commit comes
	 * after a JR_TURN left zero until the commit (seal_turn()). */
	open = j->inplace && !j->len;
	*err = reserve(j, JOBQ__JREC_OVERHEAD * (open ? 2 : 1) + (size_t)plen);
	if (*err)
		return NULL;
	if (open && j->inplace) {
		memset(j->buf, 0, JOBQ__JREC_OVERHEAD);
		j->turn_seq = j->seq++;
		j->turn_open = true;
		j->len = JOBQ__JREC_OVERHEAD;
	}
	r = j->buf + j->len;
	put32(r, (uint32_t)plen);
	put16(r + 4, type);
	put16(r + 6, 0);
	put64(r + 8, j->seq++);
	return r + 16;
}

void jobq__journal_seal(struct jobq__journal *j)
{
	uint8_t *r = j->buf + j->len;
	size_t at = 16 + (size_t)get32(r);

	put32(r + at, jobq__crc32c(0, r, at));
	j->len += at + 4;
	j->nbuf++;
	if (j->sfd >= 0) {
		j->srecs++;
		if (j->len >= SNAP_CHUNK)
			snap_flush(j);
	}
}

int jobq__journal_add(struct jobq__journal *j, uint16_t type,
		      const struct iovec *iov, int n)
{
	uint64_t plen = 0;
	uint8_t *p;
	int err;

	for (int i = 0; i < n; i++)
		plen += iov[i].iov_len;
	p = jobq__journal_reserve(j, type, plen, &err);
	if (!p)
		return err;
	for (int i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	jobq__journal_seal(j);
	return 0;
}

/* Marks the journal failed with @err; returns @err. */
static int fail(struct jobq__journal *j, int err)
{
	leave_inplace(j);
	j->err = err;
	j->last_err = err;
	j->errors++;
	return err;
}

/* Drops every record added and not committed. */
static void drop_added(struct jobq__journal *j)
{
	j->turn_open = false;
	j->len = 0;
	j->nbuf = 0;
	j->nunits = 0;
	if (j->inplace)
		mark_end(j, j->size);
}

/* Whether a unit asking for @sync syncs in this mode. */
static bool unit_syncs(const struct jobq__journal *j, bool sync)
{
	return sync && (j->mode != JOBQ__FSYNC_NONE || j->force);
}

int jobq__journal_cut(struct jobq__journal *j, bool sync)
{
	size_t from = j->nunits ? j->units[j->nunits - 1].off +
				      j->units[j->nunits - 1].len
				: 0;
	struct jobq__junit *u;

	if (leave_inplace(j))
		return j->err;
	/* An empty unit is only worth a forced sync: it makes durable what
	 * earlier commits only wrote. */
	if (j->len == from && !(sync && j->force))
		return 0;
	if (j->nunits == j->ucap) {
		uint32_t ncap = j->ucap ? 2 * j->ucap : 16;

		u = realloc(j->units, ncap * sizeof(*u));
		if (!u) {
			if (!j->err)
				fail(j, -ENOMEM);
			return -ENOMEM;
		}
		j->units = u;
		j->ucap = ncap;
	}
	j->units[j->nunits++] = (struct jobq__junit){
	    .off = from,
	    .len = j->len - from,
	    .sync = unit_syncs(j, sync),
	};
	return 0;
}

int jobq__journal_begin(struct jobq__journal *j, bool sync)
{
	struct jobq__junit *tu;
	uint8_t *tb;
	size_t tc;
	uint32_t tn;

	if (j->busy)
		return -EBUSY;
	if (j->err) {
		/*
		 * The file lost records: appending after the gap would make
		 * replay skip it silently. These go too; the caller's
		 * snapshot will hold their effect.
		 */
		drop_added(j);
		return j->err;
	}
	if (jobq__journal_cut(j, sync))
		return j->err;
	if (!j->nunits)
		return 1;
	/* Swap the buffers: records added from here on go to the other. */
	tb = j->ibuf;
	tc = j->icap;
	j->ibuf = j->buf;
	j->icap = j->cap;
	j->ilen = j->len;
	j->buf = tb;
	j->cap = tc;
	tu = j->iunits;
	tn = j->iucap;
	j->iunits = j->units;
	j->iucap = j->ucap;
	j->niunits = j->nunits;
	j->units = tu;
	j->ucap = tn;
	j->len = 0;
	j->nbuf = 0;
	j->nunits = 0;
	j->ibase = j->size;
	mark_end(j, j->ibase + j->ilen);
	j->icur = 0;
	j->iops = 0;
	j->ierr = 0;
	j->busy = true;
	return 0;
}

/* Tags: the unit's index, then the kind in the low bit. */
static uint32_t op_tag(uint32_t unit, int kind)
{
	return unit << 1 | (kind == JOBQ__JOP_SYNC);
}

int jobq__journal_ops(struct jobq__journal *j, struct jobq__jop *op, int max)
{
	int n = 0;

	if (!j->busy || j->iops || j->ierr)
		return 0;
	for (uint32_t i = j->icur; i < j->niunits && n < max; i++) {
		struct jobq__junit *u = &j->iunits[i];

		if (u->done < u->len)
			op[n++] = (struct jobq__jop){
			    .kind = JOBQ__JOP_WRITE,
			    .fd = j->fd,
			    .buf = j->ibuf + u->off + u->done,
			    .len = u->len - u->done < JOBQ__JOP_MAX
				       ? u->len - u->done
				       : JOBQ__JOP_MAX,
			    .off = j->ibase + u->off + u->done,
			    .tag = op_tag(i, JOBQ__JOP_WRITE),
			};
		if (u->sync && !u->synced && n < max)
			op[n++] = (struct jobq__jop){
			    .kind = JOBQ__JOP_SYNC,
			    .fd = j->fd,
			    .tag = op_tag(i, JOBQ__JOP_SYNC),
			};
	}
	j->iops = (uint32_t)n;
	return n;
}

int jobq__journal_done(struct jobq__journal *j, uint32_t tag, ssize_t res)
{
	uint32_t i = tag >> 1;
	struct jobq__junit *u;

	if (!j->busy || i >= j->niunits || !j->iops)
		return -EINVAL; /* not ours: a bug of the caller */
	u = &j->iunits[i];
	if (j->io->complete) {
		struct jobq__jop op = {
		    .kind = tag & 1 ? JOBQ__JOP_SYNC : JOBQ__JOP_WRITE,
		    .fd = j->fd,
		    .buf = j->ibuf + u->off + u->done,
		    .len = u->len - u->done,
		    .off = j->ibase + u->off + u->done,
		    .tag = tag,
		};

		res = j->io->complete(j->io->ctx, &op, res);
	}
	j->iops--;
	if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
		/* A link broken before it, or a retry: submitted again. */
	} else if (res < 0) {
		if (!j->ierr)
			j->ierr = (int)res;
	} else if (!(tag & 1)) {
		/* A write that makes no progress would loop for ever. */
		if (res == 0 || (size_t)res > u->len - u->done) {
			if (!j->ierr)
				j->ierr = -EIO;
		} else {
			u->done += (size_t)res;
		}
	} else if (u->done == u->len) {
		u->synced = true;
		j->last_sync_ns = realtime_ns();
	}
	if (j->iops)
		return -EINPROGRESS;
	while (j->icur < j->niunits && !j->ierr) {
		u = &j->iunits[j->icur];
		if (u->done < u->len || (u->sync && !u->synced))
			return -EINPROGRESS;
		j->icur++;
	}
	j->busy = false;
	if (j->ierr)
		return fail(j, j->ierr);
	j->size = j->ibase + j->ilen;
	return 0;
}

/* Runs the commit in flight to its end through the seam, now. */
static int run_now(struct jobq__journal *j)
{
	const struct jobq__jio *io = j->io;
	struct jobq__jop op[16];
	int ret;

	do {
		int n = jobq__journal_ops(j, op, 16);
		bool broken = false;

		if (!n) /* not reachable: a commit in flight has IO left */
			return -EIO;

		ret = -EINPROGRESS;
		for (int k = 0; k < n; k++) {
			ssize_t r;

			if (broken) {
				r = -ECANCELED;
			} else if (op[k].kind == JOBQ__JOP_WRITE) {
				struct iovec v = {.iov_base = (void *)op[k].buf,
						  .iov_len = op[k].len};

				r = io->pwritev(io->ctx, op[k].fd, &v, 1,
						op[k].off);
			} else {
				r = io->sync(io->ctx, op[k].fd);
			}
			/* As a link chain does: a failure or a short write
			 * cancels the rest. */
			if (r < 0 || (op[k].kind == JOBQ__JOP_WRITE &&
				      (size_t)r != op[k].len))
				broken = true;
			ret = jobq__journal_done(j, op[k].tag, r);
		}
	} while (ret == -EINPROGRESS);
	return ret;
}

/*
 * Makes room for @need bytes of records in the mapping: allocates the
 * file up to the next MAP_CHUNK past them (through the seam, so a full
 * disk is an error here, never a fault in the copy), maps it when the
 * reserved address space is too small, and faults the new chunk in at
 * once where the kernel can (MADV_POPULATE_WRITE, 5.14; elsewhere the
 * copies fault page by page).
 */
static int map_grow(struct jobq__journal *j, uint64_t need)
{
	const struct jobq__jio *io = j->io;
	uint64_t len = (need + MAP_CHUNK) / MAP_CHUNK * MAP_CHUNK, cap, from;
	void *p;
	int ret;

	if (len > SIZE_MAX / 2)
		return -EFBIG;
	/* Past the bytes allocated, and past any a write put there. */
	ret = io->size(io->ctx, j->fd, &from);
	if (ret)
		return ret;
	if (from < j->map_len)
		from = j->map_len;
	if (from < len)
		ret = io->allocate(io->ctx, j->fd, from, len - from);
	if (ret)
		return ret;
	if (len > j->map_cap) {
		cap = len > MAP_RESERVE / 2 ? 2 * len : MAP_RESERVE;
		ret = io->map(io->ctx, j->fd, cap, &p);
		if (ret)
			return ret;
		unmap(j);
		j->map = p;
		j->map_cap = cap;
	}
#ifdef MADV_POPULATE_WRITE
	madvise(j->map + j->map_len, len - j->map_len, MADV_POPULATE_WRITE);
#endif
	j->map_len = len;
	return 0;
}

/*
 * A commit that syncs nothing, in NONE mode: the records are copied into
 * the mapping, and the page cache holds them from there. Appends go in
 * order after j->size, as a write's would.
 */
static int map_commit(struct jobq__journal *j)
{
	int ret;

	if (j->err) {
		drop_added(j);
		return j->err;
	}
	if (j->inplace) {
		/* Written where they stay, the end mark after them; the
		 * JR_TURN before them makes them the file's. */
		seal_turn(j);
		j->size += j->len;
		j->len = 0;
		j->nbuf = 0;
		j->buf = j->map + j->size;
		j->cap = j->map_len - j->size;
		return 0;
	}
	if (!j->len) {
		drop_added(j);
		enter_inplace(j);
		return 0;
	}
	if (j->size + j->len > j->map_len) {
		ret = map_grow(j, j->size + j->len);
		if (ret) {
			drop_added(j);
			return fail(j, ret);
		}
	}
	mark_end(j, j->size + j->len);
	memcpy(j->map + j->size, j->buf, j->len);
	j->size += j->len;
	drop_added(j);
	enter_inplace(j);
	return 0;
}

int jobq__journal_commit(struct jobq__journal *j, bool sync)
{
	int ret;

	if (j->busy)
		return -EBUSY;
	if (jobq__journal_maps(j) && !jobq__journal_will_sync(j, sync))
		return map_commit(j);
	ret = jobq__journal_begin(j, sync);

	if (ret == 1)
		return 0;
	if (ret)
		return ret;
	return run_now(j);
}

bool jobq__journal_want_snapshot(const struct jobq__journal *j)
{
	uint64_t floor = j->compact_min ? j->compact_min : JOBQ__COMPACT_MIN;
	double live = (double)j->snap_size;

	if (j->err)
		return true;
	/*
	 * A journal that holds mostly the growth of the state since the
	 * latest snapshot (a backlog building up) has little to compact: a
	 * snapshot now would be about as big, and a synchronous write of the
	 * whole state on every doubling stalls the loop for nothing. A state
	 * that shrank compacts sooner instead.
	 */
	if (j->live_at_snap && j->live_now)
		live = live * (double)j->live_now / (double)j->live_at_snap;
	return j->size > floor && (double)j->size > 2 * live;
}

int jobq__journal_snapshot(struct jobq__journal *j,
			   int (*produce)(void *arg, struct jobq__journal *j),
			   void *arg)
{
	const struct jobq__jio *io = j->io;
	uint64_t gen = j->gen + 1, seq_before = j->seq, seq0, nrec;
	uint8_t h[JOBQ__JHDR_SIZE], cnt[8];
	struct iovec v = {.iov_base = cnt, .iov_len = sizeof(cnt)};
	int ret;

	if (j->busy)
		return -EBUSY;
	/* The live state already holds what these records say. */
	j->seq -= j->nbuf;
	drop_added(j);
	leave_inplace(j);
	seq0 = j->seq;
	ret = io->open(io->ctx, j->snap_tmp_path, O_RDWR | O_CREAT | O_TRUNC,
		       0666);
	if (ret < 0)
		return fail(j, ret);
	j->sfd = ret;
	j->soff = JOBQ__JHDR_SIZE;
	j->srecs = 0;
	j->serr = 0;
	hdr_make(h, KIND_SNAP, gen, seq0);
	ret = write_buf(io, j->sfd, h, sizeof(h), 0);
	if (ret)
		j->serr = ret;
	ret = produce(arg, j);
	if (!ret && !j->serr) {
		nrec = j->srecs;
		put64(cnt, nrec);
		ret = jobq__journal_add(j, JOBQ__JR_SNAP_END, &v, 1);
	}
	if (!ret)
		snap_flush(j);
	if (!ret)
		ret = j->serr;
	if (!ret)
		ret = maybe_sync(j, j->sfd);
	io->close(io->ctx, j->sfd);
	j->sfd = -1;
	j->len = 0;
	j->nbuf = 0;
	if (!ret)
		ret = io->rename(io->ctx, j->snap_tmp_path, j->snap_path);
	if (!ret)
		ret = maybe_sync_dir(j);
	if (ret) {
		io->unlink(io->ctx, j->snap_tmp_path);
		/*
		 * The numbers the snapshot used are spent on nothing; keep
		 * sequence numbers rising past them anyway, so a retried
		 * snapshot never reuses one with other contents.
		 */
		if (j->seq < seq_before)
			j->seq = seq_before;
		return fail(j, ret);
	}
	j->snap_size = j->soff;
	j->live_at_snap = j->live_now;
	j->snapshots++;
	/*
	 * The snapshot of gen is in place: the old journal (gen - 1) is
	 * stale from here on, whether or not the new one follows.
	 */
	ret = new_journal(j, gen, j->seq);
	if (ret) {
		j->gen = gen;
		return fail(j, ret);
	}
	j->err = 0;
	return 0;
}
