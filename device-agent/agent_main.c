/*
 * agent_main.c - idprov-agent, the device agent's CLI: a thin layer over
 * device-agent/agent.h (options, logs, exit codes, the daemon's schedule).
 * Manual: docs/man/idprov-agent.8. Single-threaded.
 *
 * Exit codes (also in the man page and docs/firmware-integrator.md):
 *   0 done: provisioned with a valid device token (run), or the command worked
 *   1 internal error          2 usage or configuration
 *   3 local problem (state dir, key, lock held by another agent, console)
 *   4 server unreachable or failing (temporary: try again later)
 *   5 still pending when --wait ran out, or stopped by a signal
 *   6 rejected by the server  7 revoked
 *   8 trust refused: the server is not the pinned CA's, or the CA changed
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "device-agent/agent.h"
#include "formats/file.h"
#include "formats/io/log.h"

enum {
	EX_DONE = 0,
	EX_INTERNAL = 1,
	EX_USAGE = 2,
	EX_LOCAL = 3,
	EX_SERVER = 4,
	EX_PENDING = 5,
	EX_REJECTED = 6,
	EX_REVOKED = 7,
	EX_TRUST = 8,
};

#define DEFAULT_STATE_DIR "/var/lib/idprov-agent"
#define CONFIG_FILE_MAX   65536u
#define RETRY_MIN_S       5
#define RETRY_MAX_S       300

struct opts {
	struct agt_config cfg;
	const char *config;
	char *oob; /* read from --oob-file; secret */
	unsigned baud;
	const char *console;
	bool once, json, verbose, renew;
	char *conf; /* the config file's text; settings point into it */
};

static volatile sig_atomic_t g_stop;
static struct agt_ctx *volatile g_ctx;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
	if (g_ctx != NULL)
		agt_stop(g_ctx);
}

/* One line per event: the shared log (formats/io/log.h; under systemd with
 * the priority prefix). msg is the agent's "key=value" text, its outside
 * values already escaped (agent.h). */
_Static_assert((int)AGT_LOG_ERROR == (int)FIO_LOG_ERROR && (int)AGT_LOG_WARN == (int)FIO_LOG_WARN &&
                       (int)AGT_LOG_INFO == (int)FIO_LOG_INFO &&
                       (int)AGT_LOG_DEBUG == (int)FIO_LOG_DEBUG,
               "agent log levels are the shared log's");
static void log_line(void *arg, enum agt_log_level level, const char *event, const char *msg)
{
	(void)arg;
	fio_log((enum fio_log_level)level, event, "%s", msg);
}

/* A failure: err's message may quote a server's answer, so it is escaped. */
static void fail_line(const char *event, const struct idp_error *err)
{
	char ebuf[FIO_LOG_ESC_MAX];
	fio_log(FIO_LOG_ERROR, event, "error=%s", fio_log_err(err, ebuf));
}

static void usage(FILE *f)
{
	(void)fprintf(
	        f,
	        "usage: idprov-agent [OPTIONS] COMMAND\n"
	        "  run [--once] [--renew] [--wait SECONDS]  provision, then keep the token renewed\n"
	        "  key                             create the key if needed, print its public half\n"
	        "  status [--json]                 identity, server, pin, token, next renewal\n"
	        "  seal                            close factory mode for good\n"
	        "  factory [--console PATH] [--baud N]  answer the station (default stdin/stdout)\n"
	        "options: --config FILE --state-dir DIR (" DEFAULT_STATE_DIR ") --id ID\n"
	        "  --mac MAC | --iface IFACE --serial S --fw-version V --key-type p256|ed25519\n"
	        "  --server URL (none: DNS-SD) --discover-wait SECONDS --ca FILE\n"
	        "  --dnssd-backend auto|daemon|embedded (Avahi for DNS-SD; default auto)\n"
	        "  --ca-fingerprint HEX --oob-secret-file FILE (or --oob-file) --nonce -v\n"
	        "  --attempts N (tries of a request that got no decision, 1..10; default 3)\n"
	        "  --key-uri URI (a key kept in hardware, e.g. handle:0x81000001)\n"
	        "  --key-providers NAME[,NAME] (OpenSSL providers for it, e.g. tpm2)\n"
	        "exit: 0 done, 2 usage, 3 local, 4 server, 5 pending, 6 rejected, 7 revoked,\n"
	        "      8 trust refused\n");
}

/* Apply one option (from argv or the config file). value is kept, not
 * copied. Returns false on an unknown name or a bad value. */
static bool set_opt(struct opts *o, const char *name, const char *value)
{
	struct agt_config *c = &o->cfg;
	if (strcmp(name, "state-dir") == 0)
		c->state_dir = value;
	else if (strcmp(name, "id") == 0)
		c->device_id = value;
	else if (strcmp(name, "mac") == 0)
		c->mac = value;
	else if (strcmp(name, "iface") == 0)
		c->mac_iface = value;
	else if (strcmp(name, "serial") == 0)
		c->serial = value;
	else if (strcmp(name, "fw-version") == 0)
		c->fw_version = value;
	else if (strcmp(name, "server") == 0)
		c->server_url = value;
	else if (strcmp(name, "ca") == 0)
		c->ca_file = value;
	else if (strcmp(name, "ca-fingerprint") == 0)
		c->ca_fingerprint = value;
	else if (strcmp(name, "key-uri") == 0)
		c->key_uri = value;
	else if (strcmp(name, "key-providers") == 0)
		c->key_providers = value;
	else if (strcmp(name, "console") == 0)
		o->console = value;
	else if (strcmp(name, "dnssd-backend") == 0) {
		struct idp_error err = {0};
		if (fio_dnssd_backend_parse(value, &c->dnssd_backend, &err) != IDP_OK) {
			fail_line("config.dnssd_backend", &err);
			return false;
		}
	}
	else if (strcmp(name, "key-type") == 0) {
		if (strcmp(value, "p256") == 0)
			c->key_type = FMT_KEY_P256;
		else if (strcmp(value, "ed25519") == 0)
			c->key_type = FMT_KEY_ED25519;
		else
			return false;
	} else if (strcmp(name, "oob-file") == 0 || strcmp(name, "oob-secret-file") == 0) {
		uint8_t *buf = NULL;
		size_t len = 0;
		struct idp_error err = {0};
		if (fmt_file_read(value, FMT_API_OOB_MAX + 2, &buf, &len, &err) != IDP_OK) {
			fail_line("config.oob", &err);
			return false;
		}
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		if (o->oob != NULL) {
			OPENSSL_cleanse(o->oob, strlen(o->oob));
			free(o->oob);
		}
		o->oob = (char *)buf;
		c->oob_secret = o->oob;
	} else if (strcmp(name, "wait") == 0 || strcmp(name, "baud") == 0 ||
	           strcmp(name, "discover-wait") == 0 || strcmp(name, "attempts") == 0) {
		char *end = NULL;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || v > 366ull * 86400)
			return false;
		if (name[0] == 'a') {
			if (v < 1 || v > AGT_ATTEMPTS_MAX)
				return false;
			c->attempts = (unsigned)v;
		} else if (name[0] == 'w')
			c->pending_wait_s = (int64_t)v;
		else if (name[0] == 'd')
			c->discover_wait_ms = (int64_t)v * 1000;
		else
			o->baud = (unsigned)v;
	} else if (strcmp(name, "nonce") == 0) {
		c->use_nonce = strcmp(value, "yes") == 0 || strcmp(value, "true") == 0;
	} else
		return false;
	return true;
}

/* The config file: "name value" or "name = value" per line, names as the
 * long options; '#' starts a comment. Options on the command line win
 * because they are applied after it. */
static int read_config(struct opts *o, const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	if (o->conf != NULL || fmt_file_read(path, CONFIG_FILE_MAX, &buf, &len, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-agent: %s\n",
		              o->conf != NULL ? "--config given twice" : err.msg);
		return EX_USAGE;
	}
	o->conf = (char *)buf; /* set_opt keeps pointers into it; main frees it */
	unsigned no = 0;
	int rc = EX_DONE;
	for (char *line = o->conf, *next; rc == EX_DONE && line != NULL; line = next) {
		no++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *p = line, *e = line + strcspn(line, "#\r");
		*e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			continue;
		char *name = p;
		p += strcspn(p, " \t=");
		if (*p != '\0')
			*p++ = '\0';
		while (*p == ' ' || *p == '\t' || *p == '=')
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (!set_opt(o, name, *p != '\0' ? p : "yes")) {
			(void)fprintf(stderr, "idprov-agent: %s:%u: bad setting '%.40s'\n", path, no,
			              name);
			rc = EX_USAGE;
		}
	}
	return rc;
}

static int exit_of(enum idp_err rc, const struct agt_ctx *ctx)
{
	switch (rc) {
	case IDP_OK: return EX_DONE;
	case IDP_E_DENIED:
		return agt_last_reason(ctx, NULL) == FMT_API_REASON_REVOKED ? EX_REVOKED : EX_REJECTED;
	case IDP_E_VERIFY: return EX_TRUST;
	case IDP_E_AGAIN: return EX_PENDING;
	case IDP_E_IO:
	case IDP_E_TIMEOUT:
	case IDP_E_FORMAT:
	case IDP_E_LIMIT: return EX_SERVER;
	case IDP_E_UNSUPPORTED:
	case IDP_E_ARG: return EX_USAGE;
	case IDP_E_NOMEM:
	case IDP_E_CRYPTO: return EX_INTERNAL;
	default: return EX_LOCAL;
	}
}

/* Sleep s seconds unless a signal stops the agent; false when stopped. */
static bool rest(int64_t s)
{
	for (int64_t i = 0; i < s * 10 && !g_stop; i++) {
		struct timespec ts = {0, 100000000L};
		(void)nanosleep(&ts, NULL);
	}
	return !g_stop;
}

static int cmd_run(struct agt_ctx *ctx, bool once)
{
	int64_t retry = RETRY_MIN_S;
	for (;;) {
		struct idp_error err = {0};
		enum idp_err rc = agt_run_once(ctx, &err);
		if (g_stop)
			return EX_PENDING;
		if (rc == IDP_OK) {
			struct agt_status st;
			agt_status(ctx, &st);
			retry = RETRY_MIN_S;
			if (once)
				return EX_DONE;
			int64_t wait = st.next_renewal - (int64_t)time(NULL);
			char msg[64];
			(void)snprintf(msg, sizeof(msg), "next_renewal=%lld in_s=%lld",
			               (long long)st.next_renewal, (long long)wait);
			log_line(NULL, AGT_LOG_INFO, "agent.sleep", msg);
			if (!rest(wait > 1 ? wait : 1))
				return EX_DONE;
			continue;
		}
		int code = exit_of(rc, ctx);
		fail_line("agent.failed", &err);
		if (once || code == EX_REJECTED || code == EX_REVOKED || code == EX_TRUST ||
		    code == EX_USAGE || code == EX_LOCAL || code == EX_INTERNAL)
			return code;
		/* Temporary (server down, still pending): retry with backoff and
		 * jitter, bounded. */
		uint32_t rnd = 0;
		if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
			rnd = 0;
		if (!rest(retry + (int64_t)(rnd % (uint32_t)(retry / 2 + 1))))
			return EX_PENDING;
		retry = retry * 2 > RETRY_MAX_S ? RETRY_MAX_S : retry * 2;
	}
}

static void fmt_time(int64_t t, char out[static 32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(out, 32, "-");
}

static int cmd_status(const struct agt_ctx *ctx, bool json)
{
	struct agt_status st;
	agt_status(ctx, &st);
	char exp[32], next[32];
	fmt_time(st.token_expires, exp);
	fmt_time(st.next_renewal, next);
	const char *tok = !st.has_token ? "none" : st.device_token ? "device" : "provisioning";
	if (!json) {
		(void)printf("device_id: %s\nkey: %s %s\nkey_source: %s\nserver: %s\nhub: %s\n"
		             "pinned_ca: %s\ntoken: %s\ntoken_expires: %s\nnext_renewal: %s\n"
		             "sealed: %s\n",
		             st.device_id, fmt_key_type_name(st.key_type), st.key_fingerprint,
		             st.key_in_store ? "store" : "file",
		             st.provision_url[0] != '\0' ? st.provision_url : "-",
		             st.server_url[0] != '\0' ? st.server_url : "-",
		             st.ca_fingerprint[0] != '\0' ? st.ca_fingerprint : "-", tok, exp, next,
		             st.sealed ? "yes" : "no");
		return EX_DONE;
	}
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL && cJSON_AddStringToObject(o, "device_id", st.device_id) != NULL &&
	          cJSON_AddStringToObject(o, "key_type", fmt_key_type_name(st.key_type)) != NULL &&
	          cJSON_AddStringToObject(o, "key_fingerprint", st.key_fingerprint) != NULL &&
	          cJSON_AddStringToObject(o, "key_source", st.key_in_store ? "store" : "file") !=
	                  NULL &&
	          cJSON_AddStringToObject(o, "server", st.provision_url) != NULL &&
	          cJSON_AddStringToObject(o, "hub", st.server_url) != NULL &&
	          cJSON_AddStringToObject(o, "pinned_ca", st.ca_fingerprint) != NULL &&
	          cJSON_AddStringToObject(o, "token", tok) != NULL &&
	          cJSON_AddNumberToObject(o, "token_expires", (double)st.token_expires) != NULL &&
	          cJSON_AddNumberToObject(o, "next_renewal", (double)st.next_renewal) != NULL &&
	          cJSON_AddBoolToObject(o, "sealed", st.sealed) != NULL;
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (s == NULL)
		return EX_INTERNAL;
	(void)printf("%s\n", s);
	cJSON_free(s);
	return EX_DONE;
}

/* Print the public key (created on first use by agt_open). */
static int cmd_key(const struct agt_ctx *ctx)
{
	char *pem = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	if (agt_public_pem(ctx, &pem, &len, &err) != IDP_OK) {
		fail_line("agent.key", &err);
		return EX_INTERNAL;
	}
	(void)fwrite(pem, 1, len, stdout);
	free(pem);
	return EX_DONE;
}

static int cmd_factory(struct agt_ctx *ctx, const struct opts *o)
{
	struct idp_error err = {0};
	int in = STDIN_FILENO, out = STDOUT_FILENO;
	enum idp_err rc;
	if (o->console != NULL) {
		rc = agt_console_open(o->console, o->baud != 0 ? o->baud : 115200, &in, &err);
		out = in;
	} else {
		rc = agt_console_raw(in, o->baud, &err);
	}
	if (rc != IDP_OK) {
		fail_line("factory.console", &err);
		return EX_LOCAL;
	}
	rc = agt_factory_serve(ctx, in, out, &err);
	if (o->console != NULL)
		(void)close(in);
	if (rc != IDP_OK) {
		fail_line("factory.failed", &err);
		return EX_LOCAL;
	}
	return EX_DONE;
}

static int run(struct opts *o, int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return EX_DONE;
		}
		if (strcmp(a, "--version") == 0) {
			(void)printf("idprov-agent %s\n", AGT_VERSION);
			return EX_DONE;
		}
		if (strcmp(a, "-v") == 0) {
			o->verbose = true;
			continue;
		}
		if (strcmp(a, "--nonce") == 0) {
			o->cfg.use_nonce = true;
			continue;
		}
		if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			int rc = read_config(o, argv[++i]);
			if (rc != EX_DONE)
				return rc;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || i + 1 >= argc || !set_opt(o, a + 2, argv[i + 1])) {
			(void)fprintf(stderr, "idprov-agent: bad option '%.40s'\n", a);
			usage(stderr);
			return EX_USAGE;
		}
		i++;
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[i++];
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			o->once = true;
		else if (strcmp(argv[i], "--renew") == 0)
			o->renew = true;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc &&
		         set_opt(o, argv[i] + 2, argv[i + 1]))
			i++;
		else {
			(void)fprintf(stderr, "idprov-agent: bad argument '%.40s'\n", argv[i]);
			return EX_USAGE;
		}
	}
	bool is_run = strcmp(cmd, "run") == 0, is_status = strcmp(cmd, "status") == 0;
	if (!is_run && !is_status && strcmp(cmd, "seal") != 0 && strcmp(cmd, "factory") != 0 &&
	    strcmp(cmd, "key") != 0) {
		(void)fprintf(stderr, "idprov-agent: unknown command '%.40s'\n", cmd);
		usage(stderr);
		return EX_USAGE;
	}
	if (o->cfg.state_dir == NULL)
		o->cfg.state_dir = DEFAULT_STATE_DIR;
	o->cfg.log = log_line;
	o->cfg.log_level = o->verbose ? AGT_LOG_DEBUG : AGT_LOG_INFO;
	fio_log_set_level(o->verbose ? FIO_LOG_DEBUG : FIO_LOG_INFO);
	o->cfg.read_only = is_status;
	if (o->cfg.device_id == NULL) {
		(void)fprintf(stderr, "idprov-agent: no device ID: give --id\n");
		return EX_USAGE;
	}
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	enum idp_err rc = agt_open(&o->cfg, &ctx, &err);
	if (rc != IDP_OK) {
		fail_line("agent.open", &err);
		return rc == IDP_E_ARG ? EX_USAGE : rc == IDP_E_NOMEM ? EX_INTERNAL : EX_LOCAL;
	}
	g_ctx = ctx;
	int code;
	if (is_run && o->renew)
		agt_renew_now(ctx);
	if (is_run)
		code = cmd_run(ctx, o->once);
	else if (strcmp(cmd, "key") == 0)
		code = cmd_key(ctx);
	else if (is_status)
		code = cmd_status(ctx, o->json);
	else if (strcmp(cmd, "seal") == 0) {
		code = agt_seal(ctx, &err) == IDP_OK ? EX_DONE : EX_LOCAL;
		if (code != EX_DONE)
			fail_line("agent.seal", &err);
	} else
		code = cmd_factory(ctx, o);
	g_ctx = NULL;
	agt_close(ctx);
	return code;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "idprov-agent: cannot initialise libcurl\n");
		return EX_INTERNAL;
	}
	struct opts o;
	memset(&o, 0, sizeof(o));
	int code = run(&o, argc, argv);
	if (o.oob != NULL) {
		OPENSSL_cleanse(o.oob, strlen(o.oob));
		free(o.oob);
	}
	free(o.conf);
	curl_global_cleanup();
	return code;
}
