/*
 * test_log.c - log.h: lines are escaped; a flood of one event is cut to the
 * burst per second, every dropped line is counted, and a "log.suppressed"
 * line reports the count (at the next second or at flush), while another
 * event keeps its own budget; an error message holding newlines and control
 * bytes stays on its line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/io/log.h"
#include "tests/unit/check_main.h"

static char path[64];
static int saved = -1;

/* Send stderr to a temporary file (Check runs each test in its own fork). */
static void setup(void)
{
	snprintf(path, sizeof(path), "/tmp/idp-log-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

static void teardown(void)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	unlink(path);
}

/* Count lines of the log holding needle; sum the count= of log.suppressed
 * lines for event of into *sum. */
static unsigned count_lines(const char *needle, const char *of, unsigned long long *sum)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(fmt_file_read(path, 64u << 20, &buf, &len, NULL), IDP_OK);
	unsigned n = 0;
	*sum = 0;
	char want[96];
	snprintf(want, sizeof(want), "event=log.suppressed of=%s count=", of);
	for (char *line = (char *)buf, *nl; line < (char *)buf + len; line = nl + 1) {
		nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		if (strstr(line, needle) != NULL)
			n++;
		const char *p = strstr(line, want);
		if (p != NULL)
			*sum += strtoull(p + strlen(want), NULL, 10);
	}
	free(buf);
	return n;
}

START_TEST(test_log_flood_is_cut_and_counted)
{
	fio_log_set_burst(20);
	uint64_t before = fio_log_suppressed_total();
	time_t t0 = time(NULL);
	for (int i = 0; i < 5000; i++) {
		fio_log(FIO_LOG_WARN, "admin.unauthorized", "loop=0 peer=192.0.2.1:%d", i);
		if (i % 1000 == 0)
			fio_log(FIO_LOG_INFO, "other.event", "i=%d", i);
	}
	time_t t1 = time(NULL);
	fio_log_flush();
	unsigned long long sum = 0;
	unsigned written = count_lines("event=admin.unauthorized ", "admin.unauthorized", &sum);
	uint64_t dropped = fio_log_suppressed_total() - before;
	/* Every line is either written or counted, and reported as suppressed. */
	ck_assert_uint_eq(written + dropped, 5000);
	ck_assert_uint_eq(sum, dropped);
	/* At most the burst in each second the loop touched. */
	ck_assert_uint_le(written, 20u * (unsigned)(t1 - t0 + 1));
	ck_assert_uint_ge(written, 20u);
	/* The other event kept its own budget: all 5 lines written. */
	unsigned long long other_sum = 0;
	ck_assert_uint_eq(count_lines("event=other.event ", "other.event", &other_sum), 5);
	ck_assert_uint_eq(other_sum, 0);
	/* A flush with nothing pending writes nothing more. */
	unsigned long long again = 0;
	fio_log_flush();
	count_lines("event=admin.unauthorized ", "admin.unauthorized", &again);
	ck_assert_uint_eq(again, sum);
}
END_TEST

START_TEST(test_log_no_limit_and_escaping)
{
	fio_log_set_burst(0);
	uint64_t before = fio_log_suppressed_total();
	for (int i = 0; i < 300; i++)
		fio_log(FIO_LOG_INFO, "many.lines", "i=%d", i);
	char esc[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_INFO, "escaped", "id=%s", fio_log_esc("a\nb \"c\"", 7, esc, sizeof(esc)));
	unsigned long long sum = 0;
	ck_assert_uint_eq(count_lines("event=many.lines ", "many.lines", &sum), 300);
	ck_assert_uint_eq(fio_log_suppressed_total(), before);
	ck_assert_uint_eq(count_lines("id=\"a\\x0ab \\\"c\\\"\"", "escaped", &sum), 1);
}
END_TEST

/* An error message quoting client input (idp_error's msg, up to its full
 * size) cannot split or forge a line: fio_log_err escapes newlines, CRs,
 * other control bytes, quotes and backslashes, and cuts what is too long. */
START_TEST(test_log_err_msg_escaped)
{
	fio_log_set_burst(0);
	struct idp_error err = {0};
	(void)idp_error_set(&err, IDP_E_FORMAT,
	                    "device \"x\": bad id \"a\nts=0 level=error event=admin.forged\r\x1b[2J\\\"");
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_ERROR, "request.error", "loop=0 error=%s", fio_log_err(&err, ebuf));
	unsigned long long sum = 0;
	/* One line, which holds the whole message escaped; nothing forged. */
	ck_assert_uint_eq(count_lines("event=", "request.error", &sum), 1);
	ck_assert_uint_eq(count_lines("event=admin.forged", "request.error", &sum), 1);
	ck_assert_uint_eq(count_lines("level=error event=request.error loop=0 error=\"device "
	                              "\\\"x\\\": bad id \\\"a\\x0ats=0 level=error "
	                              "event=admin.forged\\x0d\\x1b[2J\\\\\\\"\"",
	                              "request.error", &sum),
	                  1);
	/* A message of the full size is cut with "...", still one line. */
	char big[IDP_ERROR_MSG_MAX];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	(void)idp_error_set(&err, IDP_E_FORMAT, "%s", big);
	const char *e = fio_log_err(&err, ebuf);
	ck_assert_uint_lt(strlen(e), FIO_LOG_ESC_MAX);
	ck_assert_ptr_null(strchr(e, '\n'));
	ck_assert_ptr_nonnull(strstr(e, "\\x0a..."));
	fio_log(FIO_LOG_ERROR, "big.error", "error=%s", e);
	ck_assert_uint_eq(count_lines("event=", "big.error", &sum), 2);
	/* Under systemd the line carries journald's priority prefix. */
	ck_assert_int_eq(setenv("JOURNAL_STREAM", "8:12345", 1), 0);
	fio_log(FIO_LOG_WARN, "journal.line", "k=v");
	ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	ck_assert_uint_eq(count_lines("<4>ts=", "journal.line", &sum), 1);
	ck_assert_uint_eq(count_lines("level=warn event=journal.line k=v", "journal.line", &sum), 1);
	/* No error, or no message: "-". */
	ck_assert_str_eq(fio_log_err(NULL, ebuf), "-");
	idp_error_clear(&err);
	ck_assert_str_eq(fio_log_err(&err, ebuf), "-");
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log_flood_is_cut_and_counted);
	tcase_add_test(tc, test_log_no_limit_and_escaping);
	tcase_add_test(tc, test_log_err_msg_escaped);
	suite_add_tcase(s, tc);
	return s;
}
