/* SPDX-License-Identifier: MIT */
/*
 * builtin_file.c - the file job types: file.copy, file.read, file.write
 * and file.checksum, every read and write through the engine.
 *
 * Reads and writes name their offsets (never the file position), so a
 * short read or write simply carries on from where it stopped. A failed
 * open names the path and the errno text; a missing source or a bad
 * directory is final (a retry would find the same), an IO error is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin_impl.h"

/* Whether an open's failure would fail again on a retry. */
static int final_errno(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -EACCES ||
	       err == -EISDIR || err == -EPERM || err == -ELOOP ||
	       err == -ENAMETOOLONG || err == -EROFS || err == -EINVAL;
}

static int open_fail(jobq_job_t *job, const char *type, const char *what,
		     const char *path, int err)
{
	return jobq_job_fail(job, final_errno(err),
			     "%s: cannot open %s \"%s\": %s", type, what, path,
			     strerror(-err));
}

static int io_fail(jobq_job_t *job, const char *type, const char *verb,
		   const char *path, int err)
{
	if (err == -ECANCELED)
		return jobq_job_fail(job, 1, "%s: cancelled while %s \"%s\"",
				     type, verb, path);
	return jobq_job_fail(job, 0, "%s: %s \"%s\": %s", type, verb, path,
			     strerror(-err));
}

int jobq__file_copy_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "file.copy";
	const char *src, *dst;
	json_t *args = jobq__bargs(job, T);
	int in = -1, out = -1, rc;
	uint64_t at = 0;
	char *buf = NULL;
	struct stat st;

	(void)arg;
	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "src", true, &src, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "dst", true, &dst, NULL)))
		goto out;
	in = jobq_io_openat(AT_FDCWD, src, O_RDONLY | O_CLOEXEC, 0);
	if (in < 0) {
		rc = open_fail(job, T, "source", src, in);
		goto out;
	}
	if (fstat(in, &st)) {
		rc = io_fail(job, T, "reading", src, -errno);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = jobq_job_fail(job, 1, "%s: source \"%s\" is a directory",
				   T, src);
		goto out;
	}
	/* Truncated only once it is known not to be the source itself:
	 * copying a file onto itself must not empty it. */
	out =
	    jobq_io_openat(AT_FDCWD, dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (out < 0) {
		rc = open_fail(job, T, "destination", dst, out);
		goto out;
	}
	{
		struct stat ost;

		if (fstat(out, &ost) == 0 && ost.st_dev == st.st_dev &&
		    ost.st_ino == st.st_ino) {
			rc = jobq_job_fail(job, 1,
					   "%s: \"%s\" and \"%s\" are the same "
					   "file",
					   T, src, dst);
			goto out;
		}
		if (ftruncate(out, 0)) {
			rc = jobq_job_fail(job, 0, "%s: truncating \"%s\": %s",
					   T, dst, strerror(errno));
			goto out;
		}
	}
	buf = malloc(JOBQ__BUF_SIZE);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n =
		    jobq_io_read(in, buf, JOBQ__BUF_SIZE, (int64_t)at, -1);
		ssize_t w;

		if (n < 0) {
			rc = io_fail(job, T, "reading", src, (int)n);
			goto out;
		}
		if (n == 0)
			break;
		w = jobq_io_write_all(out, buf, (size_t)n, (int64_t)at, -1);
		if (w < 0) {
			rc = io_fail(job, T, "writing", dst, (int)w);
			goto out;
		}
		at += (uint64_t)n;
	}
	rc = jobq__succeed_json(job,
				json_pack("{s:I}", "bytes", (json_int_t)at));
out:
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	json_decref(args);
	return rc;
}

int jobq__file_read_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "file.read";
	jobq_t *q = arg;
	size_t max = jobq_max_object(q);
	const char *path;
	json_t *args = jobq__bargs(job, T), *lv;
	uint64_t off, want;
	char *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd = -1, rc;

	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "path", true, &path, NULL)) ||
	    (rc = jobq__bu64(job, args, T, "offset", 0, &off)) ||
	    (rc = jobq__bu64(job, args, T, "length", 0, &want)))
		goto out;
	lv = json_object_get(args, "length");
	fd = jobq_io_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		rc = open_fail(job, T, "file", path, fd);
		goto out;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc =
		    jobq_job_fail(job, 1, "%s: \"%s\" is a directory", T, path);
		goto out;
	}
	if (!lv || json_is_null(lv)) {
		/* To the end: what is there now, which must fit a result. */
		want = S_ISREG(st.st_mode) && (uint64_t)st.st_size > off
			   ? (uint64_t)st.st_size - off
			   : 0;
		if (want > max) {
			rc =
			    jobq_job_fail(job, 1,
					  "%s: \"%s\" has %llu bytes from "
					  "offset %llu, more than a result "
					  "may hold (%zu, jobqd --max-object): "
					  "give \"length\"",
					  T, path, (unsigned long long)want,
					  (unsigned long long)off, max);
			goto out;
		}
	} else if (want > max) {
		rc = jobq_job_fail(job, 1,
				   "%s: length %llu is more than a result may "
				   "hold (%zu, jobqd --max-object)",
				   T, (unsigned long long)want, max);
		goto out;
	}
	buf = malloc(want ? want : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	n = want ? jobq_io_read_full(fd, buf, want, (int64_t)off, -1) : 0;
	if (n < 0) {
		rc = io_fail(job, T, "reading", path, (int)n);
		goto out;
	}
	rc = jobq_job_succeed(job, JOBQ_T_BYTES, buf, (size_t)n);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	json_decref(args);
	return rc;
}

int jobq__file_write_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "file.write";
	json_t *args = jobq__bargs(job, T), *ap;
	const char *path, *data;
	size_t len;
	bool append;
	ssize_t w;
	int fd = -1, rc;

	(void)arg;
	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "path", true, &path, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "data", true, &data, &len)))
		goto out;
	ap = json_object_get(args, "append");
	if (ap && !json_is_boolean(ap) && !json_is_null(ap)) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"append\" must be true or false", T);
		goto out;
	}
	append = json_is_true(ap);
	fd = jobq_io_openat(AT_FDCWD, path,
			    O_WRONLY | O_CREAT | O_CLOEXEC |
				(append ? O_APPEND : O_TRUNC),
			    0666);
	if (fd < 0) {
		rc = open_fail(job, T, "file", path, fd);
		goto out;
	}
	/* Appending writes at the end whatever the offset (O_APPEND); -1
	 * says so to the engine too. */
	w = len ? jobq_io_write_all(fd, data, len, append ? -1 : 0, -1) : 0;
	if (w < 0) {
		rc = io_fail(job, T, "writing", path, (int)w);
		goto out;
	}
	rc =
	    jobq__succeed_json(job, json_pack("{s:I}", "bytes", (json_int_t)w));
out:
	if (fd >= 0)
		close(fd);
	json_decref(args);
	return rc;
}

int jobq__file_checksum_handler(jobq_job_t *job, void *arg)
{
	static const char T[] = "file.checksum";
	json_t *args = jobq__bargs(job, T);
	const char *path, *algo;
	struct jobq__sha256 sha;
	uint32_t crc = 0;
	uint64_t at = 0;
	char hex[65], *buf = NULL;
	bool is_sha;
	int fd = -1, rc;

	(void)arg;
	if (!args)
		return -EINVAL;
	if ((rc = jobq__bstr(job, args, T, "path", true, &path, NULL)) ||
	    (rc = jobq__bstr(job, args, T, "algo", false, &algo, NULL)))
		goto out;
	if (!algo)
		algo = "sha256";
	is_sha = !strcmp(algo, "sha256");
	if (!is_sha && strcmp(algo, "crc32c")) {
		rc = jobq_job_fail(job, 1,
				   "%s: \"algo\" is \"%s\": it must be "
				   "\"sha256\" or \"crc32c\"",
				   T, algo);
		goto out;
	}
	fd = jobq_io_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		rc = open_fail(job, T, "file", path, fd);
		goto out;
	}
	buf = malloc(JOBQ__BUF_SIZE);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	jobq__sha256_init(&sha);
	for (;;) {
		ssize_t n =
		    jobq_io_read(fd, buf, JOBQ__BUF_SIZE, (int64_t)at, -1);

		if (n < 0) {
			rc = n == -EISDIR
				 ? jobq_job_fail(job, 1,
						 "%s: \"%s\" is a "
						 "directory",
						 T, path)
				 : io_fail(job, T, "reading", path, (int)n);
			goto out;
		}
		if (n == 0)
			break;
		if (is_sha)
			jobq__sha256_update(&sha, buf, (size_t)n);
		else
			crc = jobq__crc32c(crc, buf, (size_t)n);
		at += (uint64_t)n;
		/* A large file hashed from the page cache never waits: let
		 * the other jobs of this worker run now and then. */
		if (jobq_yield() == -ECANCELED) {
			rc = io_fail(job, T, "reading", path, -ECANCELED);
			goto out;
		}
	}
	if (is_sha) {
		uint8_t d[32];

		jobq__sha256_final(&sha, d);
		jobq__hex(d, 32, hex);
	} else {
		snprintf(hex, sizeof(hex), "%08x", crc);
	}
	rc = jobq__succeed_json(job, json_pack("{s:s,s:s,s:I}", "digest", hex,
					       "algo", algo, "bytes",
					       (json_int_t)at));
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	json_decref(args);
	return rc;
}
