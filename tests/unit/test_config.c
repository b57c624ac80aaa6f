/*
 * test_config.c - config.h: defaults, the file format (comments, spaces,
 * units, lists), the command line over the file, and errors that name the
 * file, line and key for unknown keys, bad values, duplicates and junk.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"
#include "tests/unit/check_main.h"

/* srv_config_from_args on a copy of args (argv strings must be writable). */
static enum idp_err from_args(const char *const *args, struct srv_config *cfg,
                              enum srv_config_action *act, struct idp_error *err)
{
	char *argv[16] = {0};
	int argc = 0;
	for (; args[argc] != NULL; argc++) {
		ck_assert_int_lt(argc, 15);
		argv[argc] = strdup(args[argc]);
		ck_assert_ptr_nonnull(argv[argc]);
	}
	enum idp_err rc = srv_config_from_args(argc, argv, cfg, act, err);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return rc;
}

static enum idp_err apply(struct srv_config *cfg, const char *text, struct idp_error *err)
{
	return srv_config_apply_file(cfg, "test.conf", (const uint8_t *)text, strlen(text), err);
}

START_TEST(test_config_defaults)
{
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.n_listen, 1);
	ck_assert_str_eq(cfg.listen[0].text, "[::]:8443");
	ck_assert(cfg.listen[0].dual_stack);
	ck_assert_int_eq(cfg.listen[0].addr.ss_family, AF_INET6);
	ck_assert_str_eq(cfg.state_dir, "/var/lib/idprov");
	ck_assert_uint_ge(cfg.threads, 1);
	ck_assert_uint_eq(cfg.threads, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	ck_assert_int_eq(cfg.token_lifetime, 30 * 86400);
	ck_assert(!cfg.foreground);
	ck_assert(cfg.dnssd);
	ck_assert_int_eq(cfg.dnssd_backend, FIO_DNSSD_AUTO);
	ck_assert(!cfg.dnssd_ifaces_all); /* dnssd-interfaces = listen */
	ck_assert_uint_eq(cfg.n_dnssd_ifaces, 0);
	ck_assert_int_eq(cfg.mac_mismatch, SRV_POLICY_HOLD);
	ck_assert_int_eq(cfg.identity_reuse, SRV_POLICY_HOLD);
	struct idp_error err = {0};
	ck_assert_int_eq(apply(&cfg, "mac-mismatch = flag\nidentity-reuse = refuse\n", &err),
	                 IDP_OK);
	ck_assert_int_eq(cfg.mac_mismatch, SRV_POLICY_FLAG);
	ck_assert_int_eq(cfg.identity_reuse, SRV_POLICY_REFUSE);
	ck_assert_int_eq(apply(&cfg, "dnssd-interfaces = all\n", &err), IDP_OK);
	ck_assert(cfg.dnssd_ifaces_all);
	ck_assert_uint_eq(cfg.n_dnssd_ifaces, 0);
}
END_TEST

START_TEST(test_config_file_keys_units_and_lists)
{
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	struct idp_error err = {0};
	enum idp_err rc = apply(&cfg,
	                        "# idprovd test\n"
	                        "\n"
	                        "  state-dir = /tmp/x y  \r\n"
	                        "listen=127.0.0.1:9000\n"
	                        "listen = [::1]:9001\n"
	                        "\tthreads\t=\t3\n"
	                        "token-lifetime = 2d\n"
	                        "provisioning-token-lifetime = 90\n"
	                        "max-body = 128K\n"
	                        "max-manifest = 2M\n"
	                        "foreground = yes\n"
	                        "dnssd = off\n"
	                        "dnssd-backend = embedded\n"
	                        "dnssd-interfaces = eth1,lo\n"
	                        "token-key = ed25519\n"
	                        "server-name = idprov.example\n"
	                        "server-name = 10.0.0.1\n"
	                        "header-timeout = 1m",
	                        &err);
	ck_assert_msg(rc == IDP_OK, "%s", err.msg);
	ck_assert_str_eq(cfg.state_dir, "/tmp/x y");
	ck_assert_uint_eq(cfg.n_listen, 2);
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:9000");
	ck_assert_int_eq(cfg.listen[0].addr.ss_family, AF_INET);
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&cfg.listen[0].addr)->sin_port), 9000);
	ck_assert_int_eq(cfg.listen[1].addr.ss_family, AF_INET6);
	ck_assert(!cfg.listen[1].dual_stack);
	ck_assert_uint_eq(cfg.threads, 3);
	ck_assert_int_eq(cfg.token_lifetime, 2 * 86400);
	ck_assert_int_eq(cfg.provisioning_token_lifetime, 90);
	ck_assert_uint_eq(cfg.max_body, 128u << 10);
	ck_assert_uint_eq(cfg.max_manifest, 2u << 20);
	ck_assert(cfg.foreground);
	ck_assert(!cfg.dnssd);
	ck_assert_int_eq(cfg.dnssd_backend, FIO_DNSSD_EMBEDDED);
	ck_assert_uint_eq(cfg.n_dnssd_ifaces, 2);
	ck_assert_str_eq(cfg.dnssd_ifaces[0], "eth1");
	ck_assert_str_eq(cfg.dnssd_ifaces[1], "lo");
	ck_assert(!cfg.dnssd_ifaces_all);
	ck_assert_int_eq(cfg.token_key, FMT_KEY_ED25519);
	ck_assert_uint_eq(cfg.n_server_names, 2);
	ck_assert_str_eq(cfg.server_names[1], "10.0.0.1");
	ck_assert_uint_eq(cfg.header_timeout, 60);
}
END_TEST

/* Each bad file gives an error naming the file, the line and the key. */
START_TEST(test_config_file_errors_name_file_line_and_key)
{
	static const struct {
		const char *text;
		const char *want[3];
	} cases[] = {
	        {"threads = 2\nlisten = 127.0.0.1:1\nbogus-key = 1\n",
	         {"test.conf:3", "unknown key", "bogus-key"}},
	        {"threads = many\n", {"test.conf:1", "threads", "many"}},
	        {"threads = 0\n", {"test.conf:1", "threads", "from 1"}},
	        {"threads = 99999999999999999999999\n", {"test.conf:1", "threads", "number"}},
	        {"\n\ntoken-lifetime = 3w\n", {"test.conf:3", "token-lifetime", "3w"}},
	        {"foreground = maybe\n", {"test.conf:1", "foreground", "maybe"}},
	        {"dnssd = disabled\n", {"test.conf:1", "dnssd", "yes/on or no/off"}},
	        {"dnssd-backend = core\n",
	         {"test.conf:1", "dnssd-backend", "'core' is not auto, daemon or embedded"}},
	        {"dnssd-interfaces = eth0,\n",
	         {"test.conf:1", "dnssd-interfaces", "'eth0,' is not listen, all or interface"}},
	        {"dnssd-interfaces = eth0/1\n", {"test.conf:1", "dnssd-interfaces", "eth0/1"}},
	        {"dnssd-interfaces = sixteen-bytes-xx\n",
	         {"test.conf:1", "dnssd-interfaces", "1..15 bytes"}},
	        {"dnssd-interfaces = a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n",
	         {"test.conf:1", "dnssd-interfaces", "more than 16 interfaces"}},
	        {"threads = 1\nthreads = 2\n", {"test.conf:2", "threads", "twice"}},
	        {"listen = ::1:80\n", {"test.conf:1", "listen", "[ADDR]:PORT"}},
	        {"listen = localhost:80\n", {"test.conf:1", "listen", "not an IP address"}},
	        {"listen = 127.0.0.1:65536\n", {"test.conf:1", "listen", "65536"}},
	        {"token-key = rsa\n", {"test.conf:1", "token-key", "rsa"}},
	        {"just words\n", {"test.conf:1", "key = value", "test.conf"}},
	        {"state-dir =\n", {"test.conf:1", "state-dir", "empty"}},
	        {"max-body = 1T\n", {"test.conf:1", "max-body", "1T"}},
	        {"mac-mismatch = ignore\n", {"test.conf:1", "mac-mismatch", "hold, refuse or flag"}},
	        {"identity-reuse = flag\n", {"test.conf:1", "identity-reuse", "hold or refuse"}},
	        {"nonce-lifetime = 4s\n", {"test.conf:1", "nonce-lifetime", "from 5"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct srv_config cfg;
		srv_config_defaults(&cfg);
		struct idp_error err = {0};
		ck_assert_msg(apply(&cfg, cases[i].text, &err) != IDP_OK, "case %zu accepted", i);
		for (size_t j = 0; j < 3; j++)
			ck_assert_msg(strstr(err.msg, cases[i].want[j]) != NULL,
			              "case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want[j]);
	}
	/* A NUL byte and an overlong line. */
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	struct idp_error err = {0};
	static const uint8_t nul[] = "threads = 1\nthreads\0 = 2\n";
	ck_assert_int_eq(srv_config_apply_file(&cfg, "n.conf", nul, sizeof(nul) - 1, &err),
	                 IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "n.conf:2"));
	char *longline = malloc(SRV_CONFIG_LINE_MAX + 20);
	ck_assert_ptr_nonnull(longline);
	memset(longline, 'a', SRV_CONFIG_LINE_MAX + 19);
	memcpy(longline, "state-dir = /", 13);
	longline[SRV_CONFIG_LINE_MAX + 19] = '\0';
	ck_assert_int_eq(apply(&cfg, longline, &err), IDP_E_LIMIT);
	free(longline);
}
END_TEST

START_TEST(test_config_command_line_over_file)
{
	char path[] = "/tmp/idp-conf-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	static const char text[] = "listen = 127.0.0.1:9000\nlisten = 127.0.0.1:9001\n"
	                           "threads = 3\nstate-dir = /from/file\n";
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);

	struct srv_config cfg;
	enum srv_config_action act;
	struct idp_error err = {0};
	const char *const argv1[] = {"idprovd",      "--threads=2", "--config",   path,
	                             "--foreground", "--listen",    "[::1]:7000", NULL};
	ck_assert_int_eq(from_args(argv1, &cfg, &act, &err), IDP_OK);
	ck_assert_int_eq(act, SRV_CONFIG_RUN);
	ck_assert_str_eq(cfg.config_file, path);
	ck_assert_str_eq(cfg.state_dir, "/from/file");
	ck_assert_uint_eq(cfg.threads, 2);
	ck_assert(cfg.foreground);
	ck_assert_uint_eq(cfg.n_listen, 1); /* the command line's list replaces the file's */
	ck_assert_str_eq(cfg.listen[0].text, "[::1]:7000");

	const char *const argv2[] = {"idprovd", "--config=/nonexistent/idprovd.conf", NULL};
	ck_assert_int_eq(from_args(argv2, &cfg, &act, &err), IDP_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/idprovd.conf"));
	const char *const argv3[] = {"idprovd", "--threads", NULL};
	ck_assert_int_eq(from_args(argv3, &cfg, &act, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "--threads"));
	const char *const argv4[] = {"idprovd", "--bogus=1", NULL};
	ck_assert_int_eq(from_args(argv4, &cfg, &act, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "--bogus"));
	const char *const argv5[] = {"idprovd", "--threads", "65", NULL};
	ck_assert_int_eq(from_args(argv5, &cfg, &act, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "threads"));
	const char *const argv6[] = {"idprovd", "stray", NULL};
	ck_assert_int_eq(from_args(argv6, &cfg, &act, &err), IDP_E_FORMAT);
	const char *const argv7[] = {"idprovd", "--bogus", "--help", NULL};
	ck_assert_int_eq(from_args(argv7, &cfg, &act, &err), IDP_OK);
	ck_assert_int_eq(act, SRV_CONFIG_HELP);
	const char *const argv8[] = {"idprovd", "--version", NULL};
	ck_assert_int_eq(from_args(argv8, &cfg, &act, &err), IDP_OK);
	ck_assert_int_eq(act, SRV_CONFIG_VERSION);
	unlink(path);
}
END_TEST

/* samples/idprovd.conf parses as it is, and with every key uncommented. */
START_TEST(test_config_sample_file_parses)
{
	const char *top = getenv("IDP_TOP");
	char path[512];
	snprintf(path, sizeof(path), "%s/samples/idprovd.conf", top != NULL ? top : ".");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	static char orig[16384], keys_on[16384];
	size_t n = fread(orig, 1, sizeof(orig) - 1, f);
	fclose(f);
	orig[n] = '\0';
	size_t m = 0;
	int uncommented = 0;
	for (size_t i = 0; i < n; i++) {
		bool line_start = i == 0 || orig[i - 1] == '\n';
		if (line_start && orig[i] == '#' && orig[i + 1] >= 'a' && orig[i + 1] <= 'z') {
			uncommented++;
			continue;
		}
		keys_on[m++] = orig[i];
	}
	keys_on[m] = '\0';
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	struct idp_error err = {0};
	ck_assert_msg(apply(&cfg, orig, &err) == IDP_OK, "%s", err.msg);
	ck_assert_msg(apply(&cfg, keys_on, &err) == IDP_OK, "%s", err.msg);
	ck_assert_int_ge(uncommented, 17);
	ck_assert_uint_eq(cfg.n_listen, 2);
}
END_TEST

/* body-min-rate: bytes a second with the size suffixes, 0 (body-timeout
 * bounds the whole body) to 1G; a bad value names the key and the range,
 * and leaves the value before it. It is also a flag and in --help. */
START_TEST(test_config_body_min_rate)
{
	struct srv_config cfg;
	srv_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.body_min_rate, 8192);
	ck_assert_uint_eq(cfg.body_timeout, 60);
	struct idp_error err = {0};
	ck_assert_msg(apply(&cfg, "body-min-rate = 16K\nbody-timeout = 2m\n", &err) == IDP_OK, "%s",
	              err.msg);
	ck_assert_uint_eq(cfg.body_min_rate, 16384);
	ck_assert_uint_eq(cfg.body_timeout, 120);
	ck_assert_msg(apply(&cfg, "body-min-rate = 0\n", &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(cfg.body_min_rate, 0);
	ck_assert_msg(apply(&cfg, "body-min-rate = 1G\n", &err) == IDP_OK, "%s", err.msg);
	ck_assert_uint_eq(cfg.body_min_rate, 1u << 30);
	static const char *const bad[] = {"body-min-rate = 2G\n", "body-min-rate = fast\n",
	                                  "body-min-rate = -1\n", "body-min-rate = 8k\n",
	                                  "body-min-rate = 8K/s\n", "body-min-rate = 1073741825\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv_config_defaults(&cfg);
		ck_assert_msg(apply(&cfg, bad[i], &err) == IDP_E_FORMAT, "'%s' accepted", bad[i]);
		ck_assert_msg(strstr(err.msg, "test.conf:1: body-min-rate: '") != NULL &&
		                      strstr(err.msg, "rate in bytes a second from 0 to 1073741824") !=
		                              NULL,
		              "'%s': %s", bad[i], err.msg);
		ck_assert_uint_eq(cfg.body_min_rate, 8192);
	}
	enum srv_config_action act;
	const char *const argv[] = {"idprovd", "--body-min-rate", "512", NULL};
	ck_assert_int_eq(from_args(argv, &cfg, &act, &err), IDP_OK);
	ck_assert_uint_eq(cfg.body_min_rate, 512);
	const char *const argv2[] = {"idprovd", "--body-min-rate=x", NULL};
	ck_assert_int_eq(from_args(argv2, &cfg, &act, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "command line: body-min-rate: 'x'"));
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	srv_config_usage(f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(strstr(text, "--body-min-rate VALUE\n"));
	ck_assert_ptr_nonnull(strstr(text, "(default: 8K)"));
	free(text);
}
END_TEST

/* [::ffff:A.B.C.D]:PORT is IPv4 A.B.C.D (an IPv6-only socket cannot bind
 * it); its text stays as written. Other IPv6 addresses stay IPv6. */
START_TEST(test_config_parse_listen_v4_mapped)
{
	struct srv_listen l;
	struct idp_error err = {0};
	ck_assert_msg(srv_config_parse_listen("[::ffff:10.82.1.1]:8443", &l, &err) == IDP_OK, "%s",
	              err.msg);
	ck_assert_int_eq(l.addr.ss_family, AF_INET);
	ck_assert_uint_eq(l.addr_len, sizeof(struct sockaddr_in));
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&l.addr;
	ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), 0x0a520101u);
	ck_assert_uint_eq(ntohs(a4->sin_port), 8443);
	ck_assert(!l.dual_stack);
	ck_assert_str_eq(l.text, "[::ffff:10.82.1.1]:8443");
	ck_assert_msg(srv_config_parse_listen("[::ffff:0.0.0.0]:0", &l, &err) == IDP_OK, "%s",
	              err.msg);
	ck_assert_int_eq(l.addr.ss_family, AF_INET);
	ck_assert_uint_eq(((const struct sockaddr_in *)&l.addr)->sin_addr.s_addr, INADDR_ANY);
	ck_assert_msg(srv_config_parse_listen("[::10.82.1.1]:1", &l, &err) == IDP_OK, "%s",
	              err.msg); /* IPv4-compatible, not mapped */
	ck_assert_int_eq(l.addr.ss_family, AF_INET6);
	ck_assert_int_eq(srv_config_parse_listen("::ffff:10.82.1.1:1", &l, &err), IDP_E_FORMAT);
}
END_TEST

/* srv_config_print of cfg, as a malloc'd string (caller frees). */
static char *print_text(const struct srv_config *cfg, enum idp_err *rc, struct idp_error *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	*rc = srv_config_print(f, cfg, err);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

/* Every kind of value, zeros and odd sizes included, prints as lines the
 * file parser reads back to the very same settings and the same text. */
START_TEST(test_config_print_round_trip)
{
	static const char conf[] =
	        "state-dir = /srv/idprov state\n"
	        "listen = 127.0.0.1:1\nlisten = [::ffff:10.0.0.1]:2\nlisten = [::]:3\n"
	        "foreground = yes\npid-file = /run/idprovd.pid\nthreads = 7\n"
	        "server-name = a.example\nserver-name = 10.1.2.3\n"
	        "rule = product=P1 field=serial pattern=^[0-9]{8}$ check=luhn\n"
	        "rule = product=P2 field=id check=div:7\n"
	        "token-key = ed25519\nstation-ca = /etc/idprov/station ca.pem\n"
	        "admin-ca = /etc/idprov/admin-ca.pem\nserver-url = https://idprov.example:8443\n"
	        "token-audience = site-1\ntoken-lifetime = 90061\n"
	        "tls-session-lifetime = 0\nmac-mismatch = flag\nidentity-reuse = refuse\n"
	        "max-body = 1025\nmax-manifest = 1G\nbody-min-rate = 0\nlog-burst = 0\n"
	        "throttle-per-minute = 0\ndnssd = off\ndnssd-backend = embedded\n"
	        "dnssd-interfaces = all\n";
	struct srv_config a, b;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	srv_config_defaults(&a);
	ck_assert_msg(srv_config_apply_file(&a, "t.conf", (const uint8_t *)conf, sizeof(conf) - 1,
	                                    &err) == IDP_OK,
	              "%s", err.msg);
	char *t1 = print_text(&a, &rc, &err);
	ck_assert_msg(rc == IDP_OK, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(t1, "\nlisten = 127.0.0.1:1\nlisten = [::ffff:10.0.0.1]:2\n"
	                                 "listen = [::]:3\nforeground = yes\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\ntoken-lifetime = 90061s\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\ntls-session-lifetime = 0\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\nmax-body = 1025\nmax-manifest = 1G\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\nmac-mismatch = flag\nidentity-reuse = refuse\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\ndnssd = no\ndnssd-backend = embedded\n"
	                                 "dnssd-interfaces = all\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\ntoken-key = ed25519\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\nstation-ca = /etc/idprov/station ca.pem\n"));
	srv_config_defaults(&b);
	b.threads = 1; /* the output sets it: defaults that differ must not survive */
	ck_assert_msg(srv_config_apply_file(&b, "out", (const uint8_t *)t1, strlen(t1), &err) ==
	                      IDP_OK,
	              "%s", err.msg);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	char *t2 = print_text(&b, &rc, &err);
	ck_assert_int_eq(rc, IDP_OK);
	ck_assert_str_eq(t1, t2);
	free(t1);
	free(t2);

	/* Defaults: an unset path or list is a comment, which reads back as unset. */
	srv_config_defaults(&a);
	t1 = print_text(&a, &rc, &err);
	ck_assert_int_eq(rc, IDP_OK);
	ck_assert_ptr_nonnull(strstr(t1, "\n# pid-file = (not set; default: none)\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\n# rule = (none)\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\nlisten = [::]:8443\n"));
	ck_assert_ptr_nonnull(strstr(t1, "\ndnssd-interfaces = listen\n"));
	srv_config_defaults(&b);
	ck_assert(srv_config_apply_file(&b, "out", (const uint8_t *)t1, strlen(t1), &err) ==
	          IDP_OK);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	free(t1);
}
END_TEST

/* What a file line may hold prints as a line that reads back: a CR inside
 * a value, and a value so long that "key = value" would pass the line
 * limit ("key=value" then, as the file had it). */
START_TEST(test_config_print_file_edge_values)
{
	char conf[SRV_CONFIG_LINE_MAX + 64];
	char path[SRV_CONFIG_LINE_MAX];
	size_t n = SRV_CONFIG_LINE_MAX - 1 - strlen("pid-file=");
	memset(path, 'p', n);
	path[0] = '/';
	path[n] = '\0';
	int len = snprintf(conf, sizeof(conf), "pid-file=%s\nstate-dir = /a\rb\n", path);
	ck_assert(len > 0 && (size_t)len < sizeof(conf));
	struct srv_config a, b;
	struct idp_error err = {0};
	enum idp_err rc = IDP_OK;
	srv_config_defaults(&a);
	ck_assert_msg(srv_config_apply_file(&a, "t.conf", (const uint8_t *)conf, (size_t)len,
	                                    &err) == IDP_OK,
	              "%s", err.msg);
	char *t1 = print_text(&a, &rc, &err);
	ck_assert_msg(rc == IDP_OK, "%s", err.msg);
	char want[SRV_CONFIG_LINE_MAX + 16];
	(void)snprintf(want, sizeof(want), "\npid-file=%s\n", path);
	ck_assert_ptr_nonnull(strstr(t1, want));
	ck_assert_ptr_nonnull(strstr(t1, "state-dir = /a\rb\n"));
	srv_config_defaults(&b);
	ck_assert_msg(srv_config_apply_file(&b, "out", (const uint8_t *)t1, strlen(t1), &err) ==
	                      IDP_OK,
	              "%s", err.msg);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	free(t1);
}
END_TEST

/* A command-line value no file line can hold is an error naming the key,
 * with nothing printed. */
START_TEST(test_config_print_refuses_unwritable_value)
{
	static const char *const bad[] = {"/a\nb", "/trail\r", " /lead", "/trail\t"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct srv_config cfg;
		struct idp_error err = {0};
		enum idp_err rc = IDP_OK;
		srv_config_defaults(&cfg);
		ck_assert_int_eq(srv_config_set(&cfg, "pid-file", bad[i], &err), IDP_OK);
		char *t = print_text(&cfg, &rc, &err);
		ck_assert_int_eq(rc, IDP_E_FORMAT);
		ck_assert_ptr_nonnull(strstr(err.msg, "pid-file: "));
		ck_assert_str_eq(t, "");
		free(t);
	}
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_file_keys_units_and_lists);
	tcase_add_test(tc, test_config_file_errors_name_file_line_and_key);
	tcase_add_test(tc, test_config_command_line_over_file);
	tcase_add_test(tc, test_config_sample_file_parses);
	tcase_add_test(tc, test_config_parse_listen_v4_mapped);
	tcase_add_test(tc, test_config_body_min_rate);
	tcase_add_test(tc, test_config_print_round_trip);
	tcase_add_test(tc, test_config_print_refuses_unwritable_value);
	tcase_add_test(tc, test_config_print_file_edge_values);
	suite_add_tcase(s, tc);
	return s;
}
