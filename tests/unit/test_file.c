/*
 * test_file.c - limits/file.c, the one atomic file replacement: content and
 * mode of the new file, no temporary file left behind on success or on a
 * failure before the rename, streamed writes (positioned ones too), abort,
 * and a failed fsync of the directory reported as an error (by replace,
 * commit and rename alike) with the new file in place.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lim_pvt.h"

#define ERR_LEN 512

static char dir[256]; /* short: every path below fits PATH_MAX */

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/test_file.XXXXXX", t && *t ? t : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* The whole content of @p path (NUL-terminated) and its mode bits. */
static char *
slurp(const char *path, mode_t *mode)
{
	struct stat st;
	char *b;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	if (mode)
		*mode = st.st_mode & 07777;
	return b;
}

/* Files in the test directory whose name contains ".tmp." */
static unsigned
tmp_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

static void
test_replace(void **state)
{
	char path[PATH_MAX], err[ERR_LEN] = "";
	mode_t mode;
	char *b;

	(void)state;
	path_of(path, sizeof(path), "a.txt");
	assert_int_equal(lim_file_replace(path, "one\n", 4, 0644, err,
					  sizeof(err)), 0);
	b = slurp(path, &mode);
	assert_string_equal(b, "one\n");
	assert_int_equal(mode, 0644);
	free(b);
	/* replaced whole, mode as asked (the keys file is 0600) */
	assert_int_equal(lim_file_replace(path, "2", 1, 0600, err, sizeof(err)),
			 0);
	b = slurp(path, &mode);
	assert_string_equal(b, "2");
	assert_int_equal(mode, 0600);
	free(b);
	/* empty content is a file too */
	assert_int_equal(lim_file_replace(path, "", 0, 0600, err, sizeof(err)),
			 0);
	b = slurp(path, NULL);
	assert_string_equal(b, "");
	free(b);
	assert_int_equal(tmp_files(), 0);
}

static void
test_replace_errors(void **state)
{
	char path[PATH_MAX], err[ERR_LEN] = "", *b;
	struct rlimit old, small = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
	static char big[4096];

	(void)state;
	/* no directory: nothing created, the temporary name in the message */
	path_of(path, sizeof(path), "no-such-dir/a.txt");
	assert_int_equal(lim_file_replace(path, "x", 1, 0644, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/no-such-dir/a.txt.tmp."));
	assert_non_null(strstr(err, ": create: No such file or directory"));
	/* a write that fails half-way: the old file stays, the temporary goes */
	path_of(path, sizeof(path), "b.txt");
	assert_int_equal(lim_file_replace(path, "old", 3, 0644, err,
					  sizeof(err)), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	small.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(lim_file_replace(path, big, sizeof(big), 0644, err,
					  sizeof(err)), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_non_null(strstr(err, ": write: File too large"));
	b = slurp(path, NULL);
	assert_string_equal(b, "old");
	free(b);
	/* a directory in the way of the rename */
	path_of(path, sizeof(path), "d");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(lim_file_replace(path, "x", 1, 0644, err, sizeof(err)),
			 -EISDIR);
	assert_non_null(strstr(err, "rename to"));
	assert_int_equal(tmp_files(), 0);
	/* a path too long for a temporary name */
	memset(big, 'a', sizeof(big) - 1);
	assert_int_equal(lim_file_replace(big, "x", 1, 0644, err, sizeof(err)),
			 -ENAMETOOLONG);
	memset(big, 0, sizeof(big));
}

static void
test_dir_sync_failure(void **state)
{
	char path[PATH_MAX], from[PATH_MAX], err[ERR_LEN] = "", *b;
	struct lim_file_tmp t;

	(void)state;
	path_of(path, sizeof(path), "c.txt");
	/* replace: the error is reported; the rename had happened */
	lim_file_inject_dir_sync_error(EIO);
	assert_int_equal(lim_file_replace(path, "new", 3, 0644, err,
					  sizeof(err)), -EIO);
	assert_non_null(strstr(err, ": fsync directory: "));
	assert_non_null(strstr(err, dir));
	b = slurp(path, NULL);
	assert_string_equal(b, "new");
	free(b);
	/* one failure only: the next replace succeeds */
	assert_int_equal(lim_file_replace(path, "newer", 5, 0644, err,
					  sizeof(err)), 0);
	/* commit of a streamed file */
	assert_int_equal(lim_file_tmp_open(&t, path, 0644, err, sizeof(err)), 0);
	assert_int_equal(lim_write_full(t.fd, "abc", 3, 0, false), 0);
	lim_file_inject_dir_sync_error(ENOSPC);
	assert_int_equal(lim_file_tmp_commit(&t, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "fsync directory"));
	/* publishing rename */
	path_of(from, sizeof(from), "c.pending");
	assert_int_equal(lim_file_replace(from, "p", 1, 0644, err, sizeof(err)),
			 0);
	lim_file_inject_dir_sync_error(EIO);
	assert_int_equal(lim_file_rename(from, path, err, sizeof(err)), -EIO);
	assert_int_equal(access(from, F_OK), -1);
	b = slurp(path, NULL);
	assert_string_equal(b, "p");
	free(b);
	lim_file_inject_dir_sync_error(EIO);
	assert_int_equal(lim_fsync_dir(dir, err, sizeof(err)), -EIO);
	assert_int_equal(lim_fsync_dir(dir, err, sizeof(err)), 0);
	assert_int_equal(lim_fsync_dir("/no/such/dir", err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(tmp_files(), 0);
}

static void
test_stream(void **state)
{
	char path[PATH_MAX], err[ERR_LEN] = "", *b;
	struct lim_file_tmp t;
	mode_t mode;

	(void)state;
	path_of(path, sizeof(path), "s.bin");
	/* a header written last at offset 0, as the snapshot writer does */
	assert_int_equal(lim_file_tmp_open(&t, path, 0600, err, sizeof(err)), 0);
	assert_non_null(strstr(t.tmp, "s.bin.tmp."));
	assert_int_equal(lim_write_full(t.fd, "....body", 8, 0, false), 0);
	assert_int_equal(lim_write_full(t.fd, "HEAD", 4, 0, true), 0);
	assert_int_equal(access(path, F_OK), -1); /* not there before commit */
	assert_int_equal(lim_file_tmp_commit(&t, err, sizeof(err)), 0);
	b = slurp(path, &mode);
	assert_string_equal(b, "HEADbody");
	assert_int_equal(mode, 0600);
	free(b);
	/* abort: the old file stays, no temporary left */
	assert_int_equal(lim_file_tmp_open(&t, path, 0600, err, sizeof(err)), 0);
	assert_int_equal(lim_write_full(t.fd, "junk", 4, 0, false), 0);
	lim_file_tmp_abort(&t);
	lim_file_tmp_abort(&t); /* twice is harmless */
	b = slurp(path, NULL);
	assert_string_equal(b, "HEADbody");
	free(b);
	assert_int_equal(tmp_files(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_replace_errors),
		cmocka_unit_test(test_dir_sync_failure),
		cmocka_unit_test(test_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
