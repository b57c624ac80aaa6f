/*
 * test_dnssd.c - formats/io/dnssd without a daemon: bad services and
 * browses are refused with IDP_E_ARG before Avahi is touched, a missing
 * avahi-daemon is IDP_E_IO naming it (never a crash or a hang), the
 * backend choice (auto without a daemon is embedded, unknown names
 * refused), the interface restriction (bad names refused; the one
 * embedded watch here runs on loopback only), and TXT lookup matches
 * whole keys only. The real mDNS exchange between two
 * network namespaces is tests/integration/agent/dnssd.sh (daemon) and
 * dnssd_embedded.sh (embedded).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/io/dnssd.h"
#include "tests/unit/check_main.h"

static void on_found(void *arg, const struct fio_dnssd_found *f)
{
	(void)f;
	(*(int *)arg)++;
}

static void on_change(void *arg, enum fio_dnssd_change ch, const struct fio_dnssd_found *f,
                      const char *detail)
{
	(void)ch;
	(void)f;
	(void)detail;
	(*(int *)arg)++;
}

START_TEST(test_fio_dnssd_publish_rejects_bad_services)
{
	char long_txt[FIO_DNSSD_STR_MAX + 2];
	memset(long_txt, 'a', sizeof(long_txt) - 1);
	long_txt[0] = 'k';
	long_txt[1] = '=';
	long_txt[sizeof(long_txt) - 1] = '\0';
	char long_name[FIO_DNSSD_NAME_MAX + 2];
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	const char *const no_eq[] = {"v=1", "novalue"};
	const char *const too_long[] = {long_txt};
	const char *const many[FIO_DNSSD_TXT_MAX + 1] = {"a=1", "b=1", "c=1", "d=1", "e=1",
	                                                 "f=1", "g=1", "h=1", "i=1"};
	const struct fio_dnssd_service bad[] = {
	        {.type = NULL, .name = "x", .port = 1},
	        {.type = "_idprov._tcp", .name = NULL, .port = 1},
	        {.type = "_idprov._tcp", .name = "x", .port = 0},
	        {.type = "_idprov._tcp", .name = "", .port = 1},
	        {.type = "_idprov._tcp", .name = long_name, .port = 1},
	        {.type = "_idprov._tcp", .name = "x", .port = 1, .txt = no_eq, .n_txt = 2},
	        {.type = "_idprov._tcp", .name = "x", .port = 1, .txt = too_long, .n_txt = 1},
	        {.type = "_idprov._tcp",
	         .name = "x",
	         .port = 1,
	         .txt = many,
	         .n_txt = FIO_DNSSD_TXT_MAX + 1},
	        {.type = "_idprov._tcp", .name = "x", .port = 1, .txt = NULL, .n_txt = 1},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		static int dummy;
		struct fio_dnssd_pub *p = (struct fio_dnssd_pub *)(void *)&dummy; /* NULLed */
		struct idp_error err = {0};
		ck_assert_int_eq(fio_dnssd_publish(&bad[i], NULL, NULL, &p, &err), IDP_E_ARG);
		ck_assert_ptr_null(p);
		ck_assert_msg(strncmp(err.msg, "dns-sd: ", 8) == 0, "case %zu: %s", i, err.msg);
	}
	fio_dnssd_unpublish(NULL);
}
END_TEST

START_TEST(test_fio_dnssd_no_daemon_is_io_error)
{
	ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/idprov-bus", 1),
	                 0);
	fio_dnssd_use(FIO_DNSSD_DAEMON);
	bool by_auto = true;
	ck_assert_int_eq(fio_dnssd_backend_current(&by_auto), FIO_DNSSD_DAEMON);
	ck_assert(!by_auto);
	const char *const txt[] = {"v=1", "path=/v1"};
	const struct fio_dnssd_service s = {.type = "_idprov._tcp",
	                                    .name = "idprov test",
	                                    .port = 8443,
	                                    .txt = txt,
	                                    .n_txt = 2};
	struct fio_dnssd_pub *p = NULL;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_dnssd_publish(&s, NULL, NULL, &p, &err), IDP_E_IO);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err.msg, "cannot reach avahi-daemon") != NULL, "%s", err.msg);
	int n = 0;
	bool complete = true;
	ck_assert_int_eq(fio_dnssd_browse("_idprov._tcp", 0, 1000, on_found, &n, &complete, &err),
	                 IDP_E_IO);
	ck_assert_msg(strstr(err.msg, "cannot reach avahi-daemon") != NULL, "%s", err.msg);
	ck_assert_int_eq(n, 0);
	ck_assert(!complete);
}
END_TEST

/* auto without a daemon on D-Bus is the embedded backend; asked again
 * after fio_dnssd_use, not remembered from an earlier choice. */
START_TEST(test_fio_dnssd_backend_auto_without_daemon_is_embedded)
{
	ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/idprov-bus", 1),
	                 0);
	fio_dnssd_use(FIO_DNSSD_EMBEDDED);
	ck_assert_int_eq(fio_dnssd_backend_current(NULL), FIO_DNSSD_EMBEDDED);
	fio_dnssd_use(FIO_DNSSD_DAEMON);
	ck_assert_int_eq(fio_dnssd_backend_current(NULL), FIO_DNSSD_DAEMON);
	fio_dnssd_use(FIO_DNSSD_AUTO);
	bool by_auto = false;
	ck_assert_int_eq(fio_dnssd_backend_current(&by_auto), FIO_DNSSD_EMBEDDED);
	ck_assert(by_auto);
}
END_TEST

START_TEST(test_fio_dnssd_backend_parse_refuses_unknown)
{
	enum fio_dnssd_backend b = FIO_DNSSD_DAEMON;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_dnssd_backend_parse("auto", &b, &err), IDP_OK);
	ck_assert_int_eq(b, FIO_DNSSD_AUTO);
	ck_assert_int_eq(fio_dnssd_backend_parse("embedded", &b, &err), IDP_OK);
	ck_assert_int_eq(b, FIO_DNSSD_EMBEDDED);
	ck_assert_int_eq(fio_dnssd_backend_parse("daemon", &b, &err), IDP_OK);
	ck_assert_int_eq(b, FIO_DNSSD_DAEMON);
	const char *const bad[] = {"", "Daemon", "embedded ", "core", "autox", NULL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(fio_dnssd_backend_parse(bad[i], &b, &err), IDP_E_ARG);
		ck_assert_int_eq(b, FIO_DNSSD_DAEMON); /* unchanged */
		ck_assert_msg(strstr(err.msg, "is not auto, daemon or embedded") != NULL, "%s",
		              err.msg);
	}
	ck_assert_str_eq(fio_dnssd_backend_name(FIO_DNSSD_EMBEDDED), "embedded");
	ck_assert_str_eq(fio_dnssd_backend_name((enum fio_dnssd_backend)7), "?");
}
END_TEST

/* A publication and a watch of one process share the embedded responder;
 * a watch started first runs it as a querier, and a publication then is
 * refused with a message saying to publish first (not a second responder
 * beside it, which would see the publication as another host's). */
START_TEST(test_fio_dnssd_embedded_publish_after_watch_refused)
{
	fio_dnssd_use(FIO_DNSSD_EMBEDDED);
	/* The watch sends its queries on the loopback interface only: a test
	 * speaks on no network but the host's. */
	static const char *const lo[] = {"lo"};
	struct idp_error err = {0};
	ck_assert_int_eq(fio_dnssd_use_interfaces(lo, 1, &err), IDP_OK);
	struct fio_dnssd_watch *w = NULL;
	int n = 0;
	ck_assert_int_eq(fio_dnssd_watch_start("_idprovunit._tcp", on_change, &n, &w, &err),
	                 IDP_OK);
	ck_assert_ptr_nonnull(w);
	const struct fio_dnssd_service s = {.type = "_idprovunit._tcp", .name = "unit", .port = 9};
	struct fio_dnssd_pub *p = NULL;
	ck_assert_int_eq(fio_dnssd_publish(&s, NULL, NULL, &p, &err), IDP_E_IO);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err.msg, "publish before watching") != NULL, "%s", err.msg);
	fio_dnssd_watch_stop(w);
	fio_dnssd_use(FIO_DNSSD_AUTO);
	ck_assert_int_eq(fio_dnssd_use_interfaces(NULL, 0, &err), IDP_OK);
}
END_TEST

/* Interface names that are not names are refused, naming them, and leave
 * the restriction as it was; NULL/0 lifts it. */
START_TEST(test_fio_dnssd_use_interfaces_refuses_bad_names)
{
	struct idp_error err = {0};
	const char *const bad[] = {"", "eth0/x", "a b", "sixteen-bytes-xx", NULL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const one[] = {bad[i]};
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(fio_dnssd_use_interfaces(one, 1, &err), IDP_E_ARG);
		ck_assert_msg(strstr(err.msg, "interface '") != NULL, "%s", err.msg);
	}
	const char *many[FIO_DNSSD_IFACES_MAX + 1];
	for (size_t i = 0; i < FIO_DNSSD_IFACES_MAX + 1; i++)
		many[i] = "lo";
	ck_assert_int_eq(fio_dnssd_use_interfaces(many, FIO_DNSSD_IFACES_MAX + 1, &err), IDP_E_ARG);
	ck_assert_msg(strstr(err.msg, "at most 16") != NULL, "%s", err.msg);
	const char *const ok[] = {"lo", "fifteen-bytes-x"};
	ck_assert_int_eq(fio_dnssd_use_interfaces(ok, 2, &err), IDP_OK);
	ck_assert_int_eq(fio_dnssd_use_interfaces(NULL, 0, &err), IDP_OK);
}
END_TEST

START_TEST(test_fio_dnssd_browse_rejects_bad_arguments)
{
	int n = 0;
	struct idp_error err = {0};
	ck_assert_int_eq(fio_dnssd_browse(NULL, 0, 1000, on_found, &n, NULL, &err), IDP_E_ARG);
	ck_assert_int_eq(fio_dnssd_browse("", 0, 1000, on_found, &n, NULL, &err), IDP_E_ARG);
	ck_assert_int_eq(fio_dnssd_browse("_idprov._tcp", 0, 0, on_found, &n, NULL, &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fio_dnssd_browse("_idprov._tcp", 0, 1000, NULL, &n, NULL, &err),
	                 IDP_E_ARG);
	ck_assert_int_eq(fio_dnssd_browse("_idprov._tcp", 2000, 1000, on_found, &n, NULL, &err),
	                 IDP_E_ARG);
}
END_TEST

START_TEST(test_fio_dnssd_txt_get_whole_keys)
{
	struct fio_dnssd_found f;
	memset(&f, 0, sizeof(f));
	(void)snprintf(f.txt[0], sizeof(f.txt[0]), "%s", "version=2");
	(void)snprintf(f.txt[1], sizeof(f.txt[1]), "%s", "v=1");
	(void)snprintf(f.txt[2], sizeof(f.txt[2]), "%s", "fp=");
	(void)snprintf(f.txt[3], sizeof(f.txt[3]), "%s", "path");
	f.n_txt = 4;
	ck_assert_str_eq(fio_dnssd_txt_get(&f, "v"), "1");
	ck_assert_str_eq(fio_dnssd_txt_get(&f, "version"), "2");
	ck_assert_str_eq(fio_dnssd_txt_get(&f, "fp"), "");
	ck_assert_ptr_null(fio_dnssd_txt_get(&f, "path"));
	ck_assert_ptr_null(fio_dnssd_txt_get(&f, "ver"));
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("dnssd");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_fio_dnssd_publish_rejects_bad_services);
	tcase_add_test(tc, test_fio_dnssd_no_daemon_is_io_error);
	tcase_add_test(tc, test_fio_dnssd_backend_auto_without_daemon_is_embedded);
	tcase_add_test(tc, test_fio_dnssd_backend_parse_refuses_unknown);
	tcase_add_test(tc, test_fio_dnssd_embedded_publish_after_watch_refused);
	tcase_add_test(tc, test_fio_dnssd_use_interfaces_refuses_bad_names);
	tcase_add_test(tc, test_fio_dnssd_browse_rejects_bad_arguments);
	tcase_add_test(tc, test_fio_dnssd_txt_get_whole_keys);
	suite_add_tcase(s, tc);
	return s;
}
