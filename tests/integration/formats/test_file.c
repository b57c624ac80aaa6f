/*
 * test_file.c - file.h: atomic replacement leaves old-or-new content and no
 * temporary files, modes are as asked, bounded reads refuse large files.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/file.h"
#include "tests/unit/check_main.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/idp-file-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static size_t count_entries(void)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

START_TEST(test_file_write_read_round_trip)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/a.txt", dir);
	umask(077);
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"first", 5, 0644, NULL), IDP_OK);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"second!", 7, 0600, NULL),
	                 IDP_OK);
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 100, &buf, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, 7);
	ck_assert_str_eq((char *)buf, "second!");
	free(buf);
	ck_assert_uint_eq(count_entries(), 1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_file_read_limits_and_errors)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/big", dir);
	uint8_t data[1000];
	memset(data, 'x', sizeof(data));
	ck_assert_int_eq(fmt_file_write_atomic(path, data, sizeof(data), 0644, NULL), IDP_OK);
	uint8_t *buf = (uint8_t *)1;
	size_t len = 5;
	struct idp_error err;
	ck_assert_int_eq(fmt_file_read(path, 999, &buf, &len, &err), IDP_E_LIMIT);
	ck_assert_ptr_null(buf);
	ck_assert_ptr_nonnull(strstr(err.msg, path));
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, NULL), IDP_OK);
	ck_assert_uint_eq(len, 1000);
	free(buf);
	ck_assert_int_eq(fmt_file_read(dir, 1000, &buf, &len, &err), IDP_E_IO);
	snprintf(path, sizeof(path), "%s/none", dir);
	ck_assert_int_eq(fmt_file_read(path, 1000, &buf, &len, &err), IDP_E_NOTFOUND);
	/* Writing into a missing directory fails cleanly and names it. */
	snprintf(path, sizeof(path), "%s/no/such", dir);
	ck_assert_int_eq(fmt_file_write_atomic(path, data, 1, 0644, &err), IDP_E_IO);
	ck_assert_ptr_nonnull(strstr(err.msg, "/no/such"));
}
END_TEST

/* A pipe has no size to check first: the cap is met while reading, across
 * several read() calls and buffer growths; exactly max bytes are accepted. */
static enum idp_err read_pipe(size_t n, size_t max, uint8_t **buf, size_t *len,
                              struct idp_error *err)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		(void)close(fds[0]);
		uint8_t chunk[1000];
		for (size_t i = 0; i < n; i += sizeof(chunk)) {
			size_t k = n - i < sizeof(chunk) ? n - i : sizeof(chunk);
			for (size_t j = 0; j < k; j++)
				chunk[j] = (uint8_t)((i + j) % 251);
			if (write(fds[1], chunk, k) != (ssize_t)k)
				_exit(1);
		}
		_exit(0);
	}
	(void)close(fds[1]);
	enum idp_err rc = fmt_file_read_fd(fds[0], "pipe", max, buf, len, err);
	(void)close(fds[0]); /* the writer may be blocked on a full pipe: let it go */
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return rc;
}

START_TEST(test_file_read_fd_pipe_cap)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	ck_assert_int_eq(read_pipe(200000, 200000, &buf, &len, &err), IDP_OK);
	ck_assert_uint_eq(len, 200000);
	ck_assert_uint_eq(buf[len], '\0');
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(buf[i], i % 251);
	free(buf);
	ck_assert_int_eq(read_pipe(200001, 200000, &buf, &len, &err), IDP_E_LIMIT);
	ck_assert_ptr_null(buf);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(err.msg, "pipe: more than 200000 bytes");
	ck_assert_int_eq(read_pipe(0, 10, &buf, &len, &err), IDP_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(buf[0], '\0');
	free(buf);
}
END_TEST

/* A write into a missing directory names the file asked for and the
 * problem, not the temporary file the writer would have used. */
START_TEST(test_file_write_missing_dir_names_the_path)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/no-such-dir/station.key", dir);
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"k", 1, 0600, &err), IDP_E_IO);
	char want[192];
	snprintf(want, sizeof(want), "%s: its directory does not exist", path);
	ck_assert_str_eq(err.msg, want);
	ck_assert_ptr_null(strstr(err.msg, ".tmp-"));
}
END_TEST

/* The streamed writer: pieces make the file; until the commit the old
 * content stays and a temp file is all that is added; an abort removes it;
 * a temp name that exists already is not removed by the abort. */
START_TEST(test_file_atomic_pieces_commit_abort)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/m", dir);
	struct idp_error err = {0};
	ck_assert_int_eq(fmt_file_write_atomic(path, (const uint8_t *)"old", 3, 0644, &err), IDP_OK);
	struct fmt_file_atomic a;
	ck_assert_int_eq(fmt_file_atomic_open(&a, path, 0600, &err), IDP_OK);
	ck_assert_int_eq(fmt_file_atomic_write(&a, (const uint8_t *)"ne", 2, &err), IDP_OK);
	ck_assert_int_eq(fmt_file_atomic_write(&a, (const uint8_t *)"w!", 2, &err), IDP_OK);
	ck_assert_uint_eq(count_entries(), 2); /* m and the temp file */
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 16, &buf, &len, &err), IDP_OK);
	ck_assert_mem_eq(buf, "old", 3);
	free(buf);
	ck_assert_int_eq(fmt_file_atomic_commit(&a, 0, &err), IDP_OK);
	fmt_file_atomic_abort(&a); /* after the commit: a no-op */
	ck_assert_uint_eq(count_entries(), 1);
	ck_assert_int_eq(fmt_file_read(path, 16, &buf, &len, &err), IDP_OK);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(buf, "new!", 4);
	free(buf);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);

	ck_assert_int_eq(fmt_file_atomic_open(&a, path, 0644, &err), IDP_OK);
	ck_assert_int_eq(fmt_file_atomic_write(&a, (const uint8_t *)"xx", 2, &err), IDP_OK);
	fmt_file_atomic_abort(&a);
	ck_assert_uint_eq(count_entries(), 1);
	ck_assert_int_eq(fmt_file_read(path, 16, &buf, &len, &err), IDP_OK);
	ck_assert_mem_eq(buf, "new!", 4);
	free(buf);
	ck_assert_int_ne(fmt_file_atomic_write(&a, (const uint8_t *)"x", 1, &err), IDP_OK);
	ck_assert_int_ne(fmt_file_atomic_commit(&a, 0, &err), IDP_OK);

	char missing[160];
	snprintf(missing, sizeof(missing), "%s/no/such/m", dir);
	ck_assert_int_eq(fmt_file_atomic_open(&a, missing, 0644, &err), IDP_E_IO);
	ck_assert_ptr_nonnull(strstr(err.msg, missing));
	fmt_file_atomic_abort(&a);
	ck_assert_uint_eq(count_entries(), 1);
}
END_TEST

START_TEST(test_file_atomic_under_kill)
{
	/* A child rewrites the file in a loop with one of two contents and is
	 * killed at a random moment; the file must hold one of them whole. */
	char path[128];
	snprintf(path, sizeof(path), "%s/state", dir);
	static uint8_t a[65536], b[65536];
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	ck_assert_int_eq(fmt_file_write_atomic(path, a, sizeof(a), 0644, NULL), IDP_OK);
	for (int round = 0; round < 5; round++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			for (int i = 0; i < 100000; i++)
				if (fmt_file_write_atomic(path, i % 2 ? a : b, sizeof(a), 0644, NULL) !=
				    IDP_OK)
					_exit(1);
			_exit(0);
		}
		usleep((useconds_t)(2000 + round * 3000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		uint8_t *buf = NULL;
		size_t len = 0;
		ck_assert_int_eq(fmt_file_read(path, sizeof(a), &buf, &len, NULL), IDP_OK);
		ck_assert_uint_eq(len, sizeof(a));
		ck_assert(memcmp(buf, a, len) == 0 || memcmp(buf, b, len) == 0);
		free(buf);
	}
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("file");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_file_write_read_round_trip);
	tcase_add_test(tc, test_file_read_limits_and_errors);
	tcase_add_test(tc, test_file_read_fd_pipe_cap);
	tcase_add_test(tc, test_file_write_missing_dir_names_the_path);
	tcase_add_test(tc, test_file_atomic_under_kill);
	tcase_add_test(tc, test_file_atomic_pieces_commit_abort);
	suite_add_tcase(s, tc);
	return s;
}
