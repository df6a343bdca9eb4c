/*
 * file.c - replace a file atomically and durably: the one implementation
 * behind snapshots, the journal index, the export position and the gateway
 * keys file.
 *
 * A replacement is written to PATH.tmp.XXXXXX in PATH's directory (a rename
 * is atomic only within one file system), fsynced, renamed over PATH, and
 * the directory fsynced. Readers see the old file or the new one, never a
 * part. After a crash, before the directory's fsync returned, either may be
 * there; after it, the new one. So every step's failure is the caller's
 * error, the directory's fsync included: a caller told "written" when the
 * rename itself may not survive a crash would publish what it cannot keep
 * (a snapshot ahead of its journal, an export position that goes back).
 *
 * Invariants: until the rename, a failure removes the temporary file; after
 * it, nothing is removed (PATH is the new file, only its durability is in
 * doubt). A crash may leave a PATH.tmp.XXXXXX behind: no reader opens one.
 *
 * Concurrency: a struct lim_file_tmp belongs to one thread. Two writers of
 * one PATH never share a temporary file (mkostemp); the last rename wins.
 * The test hook is a process-wide atomic.
 */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lim_pvt.h"

static int inject_dir_sync_errno; /* tests: fail the next directory fsync */

__attribute__((format(printf, 4, 5))) static int
file_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void
lim_file_inject_dir_sync_error(int errnum)
{
	__atomic_store_n(&inject_dir_sync_errno, errnum, __ATOMIC_RELAXED);
}

int
lim_fsync_dir(const char *dir, char *err, size_t errlen)
{
	int inj = __atomic_exchange_n(&inject_dir_sync_errno, 0,
				      __ATOMIC_RELAXED);
	int fd, rc = 0;

	if (inj)
		return file_fail(err, errlen, -inj,
				 "%s: fsync directory: %s (injected)", dir,
				 strerror(inj));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = file_fail(err, errlen, -errno, "%s: fsync directory: %s",
			       dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The directory of @p path into @p dir: "." for a bare name, "/" for /x. */
static void
dir_of(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, n, ".");
	else if (slash == path)
		snprintf(dir, n, "/");
	else
		snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

int
lim_file_rename(const char *from, const char *to, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	if (rename(from, to) != 0)
		return file_fail(err, errlen, -errno, "%s: rename to %s: %s",
				 from, to, strerror(errno));
	dir_of(to, dir, sizeof(dir));
	return lim_fsync_dir(dir, err, errlen);
}

int
lim_write_full(int fd, const void *buf, size_t len, off_t at, bool positioned)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t k = positioned ? pwrite(fd, p, len, at)
				       : write(fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		p += k;
		len -= (size_t)k;
		at += k;
	}
	return 0;
}

int
lim_file_tmp_open(struct lim_file_tmp *t, const char *path, mode_t mode,
		  char *err, size_t errlen)
{
	t->fd = -1;
	if (snprintf(t->path, sizeof(t->path), "%s", path) >=
		    (int)sizeof(t->path) ||
	    snprintf(t->tmp, sizeof(t->tmp), "%s.tmp.XXXXXX", path) >=
		    (int)sizeof(t->tmp))
		return file_fail(err, errlen, -ENAMETOOLONG,
				 "%s: path too long", path);
	t->fd = mkostemp(t->tmp, O_CLOEXEC); /* 0600 */
	if (t->fd < 0)
		return file_fail(err, errlen, -errno, "%s: create: %s", t->tmp,
				 strerror(errno));
	if (fchmod(t->fd, mode) != 0) {
		int rc = file_fail(err, errlen, -errno, "%s: chmod: %s",
				   t->tmp, strerror(errno));

		lim_file_tmp_abort(t);
		return rc;
	}
	return 0;
}

int
lim_file_tmp_commit(struct lim_file_tmp *t, char *err, size_t errlen)
{
	int rc = 0;

	if (fsync(t->fd) != 0)
		rc = file_fail(err, errlen, -errno, "%s: fsync: %s", t->tmp,
			       strerror(errno));
	if (close(t->fd) != 0 && !rc)
		rc = file_fail(err, errlen, -errno, "%s: close: %s", t->tmp,
			       strerror(errno));
	t->fd = -1;
	if (!rc && rename(t->tmp, t->path) != 0)
		rc = file_fail(err, errlen, -errno, "%s: rename to %s: %s",
			       t->tmp, t->path, strerror(errno));
	if (rc) {
		unlink(t->tmp);
		return rc;
	}
	dir_of(t->path, t->tmp, sizeof(t->tmp));
	return lim_fsync_dir(t->tmp, err, errlen);
}

void
lim_file_tmp_abort(struct lim_file_tmp *t)
{
	if (t->fd < 0)
		return;
	close(t->fd);
	t->fd = -1;
	unlink(t->tmp);
}

int
lim_file_replace(const char *path, const void *buf, size_t len, mode_t mode,
		 char *err, size_t errlen)
{
	struct lim_file_tmp t;
	int rc = lim_file_tmp_open(&t, path, mode, err, errlen);

	if (rc)
		return rc;
	rc = lim_write_full(t.fd, buf, len, 0, false);
	if (rc) {
		file_fail(err, errlen, rc, "%s: write: %s", t.tmp,
			  strerror(-rc));
		lim_file_tmp_abort(&t);
		return rc;
	}
	return lim_file_tmp_commit(&t, err, errlen);
}
