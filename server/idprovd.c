/*
 * idprovd.c - the provisioning server program: configuration, state
 * directory, HTTPS loops, signals. Manual: docs/man/idprovd.8.
 *
 * Exit status: 0 after a clean stop (SIGTERM, SIGINT), 1 when the server
 * cannot start, 2 for a bad command line or config file.
 *
 * Secrets: the process is made non-dumpable at once (no core file, no
 * ptrace by other processes of the same user), and the admin credential is
 * never printed: it goes to STATE/admin.token (0600).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "server/checkpoint.h"
#include "server/config.h"
#include "server/handlers.h"
#include "server/routes.h"
#include "server/httpd.h"
#include "server/lock.h"
#include "formats/io/log.h"
#include "server/publish.h"
#include "server/site.h"
#include "server/state.h"

/* Detach from the terminal: the parent exits once the child reports (over
 * a pipe) that it listens, with its status, so that start-up errors still
 * reach the caller. Returns the write end in the child. */
static int daemonize(void)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		(void)close(p[1]);
		char c = 1;
		ssize_t r;
		do
			r = read(p[0], &c, 1);
		while (r < 0 && errno == EINTR);
		_exit(r == 1 ? c : 1);
	}
	(void)close(p[0]);
	if (setsid() < 0)
		return -1;
	if (chdir("/") != 0)
		return -1;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)close(fd);
	}
	return p[1];
}

static void report(int fd, char status)
{
	if (fd >= 0) {
		ssize_t w = write(fd, &status, 1);
		(void)w;
		(void)close(fd);
	}
}

#define CKPT_RETRY_MAX_S 30 /* longest wait between two tries of a checkpoint */

/* Sign a checkpoint of the audit log's head (server/checkpoint.h). tries:
 * the tries that met another process's write lock so far. Returns the
 * seconds until the next try when the lock was held (nothing written: the
 * thread goes back to its signals, and tries again after a backoff from
 * 1 s to CKPT_RETRY_MAX_S), else 0 (written, or failed for another cause,
 * logged). */
static int64_t checkpoint(struct srv_ckpt *ck, unsigned *tries)
{
	struct srv_checkpoint c;
	struct idp_error err = {0};
	char ebuf[FIO_LOG_ESC_MAX];
	if (ck == NULL)
		return 0;
	enum idp_err rc = srv_ckpt_write(ck, (int64_t)time(NULL), &c, &err);
	if (rc == IDP_E_AGAIN) {
		++*tries;
		int64_t wait = *tries > 5 ? CKPT_RETRY_MAX_S : INT64_C(1) << (*tries - 1);
		if (wait > CKPT_RETRY_MAX_S)
			wait = CKPT_RETRY_MAX_S;
		fio_log(FIO_LOG_WARN, "audit.checkpoint_waiting",
		        "tries=%u retry_in_s=%lld error=%s", *tries, (long long)wait,
		        fio_log_err(&err, ebuf));
		return wait;
	}
	unsigned waited = *tries;
	*tries = 0;
	if (rc != IDP_OK) {
		fio_log(FIO_LOG_ERROR, "audit.checkpoint_failed", "error=%s", fio_log_err(&err, ebuf));
		return 0;
	}
	char hex[65];
	fmt_key_fingerprint_hex(c.hash, hex);
	fio_log(FIO_LOG_INFO, "audit.checkpoint", "n=%lld seq=%lld hash=%s tries=%u", (long long)c.n,
	        (long long)c.seq, hex, waited + 1);
	return 0;
}

static int run(const struct srv_config *cfg)
{
	struct idp_error err = {0};
	char ebuf[FIO_LOG_ESC_MAX]; /* err.msg escaped for the log */
	fio_log_set_burst(cfg->log_burst);
	const char *names[SRV_STATE_NAMES_MAX];
	for (size_t i = 0; i < cfg->n_server_names; i++)
		names[i] = cfg->server_names[i];
	/* A retired token key stays verified as long as any token it signed
	 * can live. */
	int64_t keep = cfg->token_lifetime > cfg->provisioning_token_lifetime
	                       ? (int64_t)cfg->token_lifetime
	                       : (int64_t)cfg->provisioning_token_lifetime;
	struct srv_state_opts so = {.dir = cfg->state_dir,
	                            .names = names,
	                            .n_names = cfg->n_server_names,
	                            .token_key = cfg->token_key,
	                            .lock = true,
	                            .token_keep = keep + FMT_TOKEN_SKEW};
	struct srv_state *state = NULL;
	char secret[SRV_STATE_ADMIN_SECRET_LEN + 1];
	if (srv_state_open(&so, &state, secret, &err) != IDP_OK) {
		fio_log(FIO_LOG_ERROR, "state.error", "dir=%s error=%s", cfg->state_dir,
		        fio_log_err(&err, ebuf));
		return 1;
	}
	/* The credential is in admin.token: never on stdout, never logged. */
	OPENSSL_cleanse(secret, sizeof(secret));
	if (state->admin_created)
		fio_log(FIO_LOG_INFO, "admin.created", "path=%s/admin.token mode=0600", state->dir);
	if (state->token_key_created)
		fio_log(FIO_LOG_WARN, "token.key_created",
		        "kid=%s type=%s retired=%s note=\"tokens signed by a key that is no longer "
		        "in token.key or token.retired do not verify\"",
		        state->token_kid, fmt_key_type_name(fmt_key_type(state->token_key)),
		        state->token_replaced[0] != '\0' ? state->token_replaced : "none");
	{
		struct fmt_token_key keys[SRV_STATE_TOKEN_KEYS_MAX];
		size_t n = srv_state_token_keys(state, (int64_t)time(NULL), keys);
		fio_log(FIO_LOG_INFO, "token.keys", "signing=%s verified=%zu", state->token_kid, n);
	}
	/* Say what the process is, as the kernel sees it (0: no core file). */
	fio_log(FIO_LOG_INFO, "process.secured", "dumpable=%d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	fio_log(FIO_LOG_INFO, "state.ready", "dir=%s created=%s ca_fingerprint=%s cert_issued=%s",
	        state->dir, state->created ? "yes" : "no", state->ca_fingerprint,
	        state->server_cert_issued ? "yes" : "no");

	int ready_fd = -1;
	if (!cfg->foreground && (ready_fd = daemonize()) < 0) {
		fio_log(FIO_LOG_ERROR, "daemon.error", "error=\"%s\"", strerror(errno));
		srv_state_free(state);
		return 1;
	}
	/* The lock (inherited over fork) and the pid file name this process. */
	if (srv_lock_set_pid(state->lock_fd, getpid(), &err) != IDP_OK ||
	    (cfg->pid_file[0] != '\0' && srv_pidfile_write(cfg->pid_file, getpid(), &err) != IDP_OK)) {
		fio_log(FIO_LOG_ERROR, "daemon.error", "error=%s", fio_log_err(&err, ebuf));
		srv_state_free(state);
		report(ready_fd, 1);
		return 1;
	}

	/* Signals go to this thread only: block them before the loops start. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SRV_SITE_WAKE_SIGNAL); /* server/site.h: a rogue sighting waits */
	(void)pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	size_t n_routes = 0;
	const struct srv_route *routes = srv_routes(&n_routes);
	struct srv_httpd *h = NULL;
	static struct srv_app app;
	if (srv_httpd_new(cfg, state, routes, n_routes, &app, &h, &err) != IDP_OK ||
	    srv_app_init(&app, cfg, srv_httpd_bound(h, 0), &err) != IDP_OK ||
	    srv_httpd_start(h, &err) != IDP_OK) {
		fio_log(FIO_LOG_ERROR, "http.error", "error=%s", fio_log_err(&err, ebuf));
		srv_httpd_free(h);
		srv_app_free(&app);
		if (cfg->pid_file[0] != '\0')
			(void)unlink(cfg->pid_file);
		srv_state_free(state);
		report(ready_fd, 1);
		return 1;
	}
	for (size_t i = 0; srv_httpd_bound(h, i) != NULL; i++)
		fio_log(FIO_LOG_INFO, "http.listening", "addr=%s threads=%u", srv_httpd_bound(h, i),
		        cfg->threads);
	report(ready_fd, 0);
	struct srv_publish *pub = srv_publish_start(cfg, state, h);
	struct srv_site *site = srv_site_start(cfg, state, h);
	struct srv_ckpt *ck = NULL;
	if (srv_ckpt_open(state, &ck, &err) != IDP_OK)
		fio_log(FIO_LOG_ERROR, "audit.checkpoint_failed",
		        "error=\"%s\" note=\"no signed audit checkpoints this run\"", err.msg);

	int sig = 0;
	struct timespec next;
	(void)clock_gettime(CLOCK_MONOTONIC, &next);
	next.tv_sec += cfg->audit_checkpoint_interval;
	/* Store writes that met another process's write lock, tried again
	 * here (monotonic seconds of the next try; 0: none): a checkpoint, and
	 * rogue sightings the site watch queued. */
	int64_t retry_at = 0, site_at = 0;
	unsigned tries = 0;
	for (;;) {
		/* Signals, a signed audit checkpoint every interval, and the
		 * retries above. */
		struct timespec now, wait = {0, 0};
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t wake = next.tv_sec;
		if (retry_at != 0 && retry_at < wake)
			wake = retry_at;
		if (site_at != 0 && site_at < wake)
			wake = site_at;
		if (now.tv_sec < wake)
			wait.tv_sec = wake - now.tv_sec;
		sig = sigtimedwait(&sigs, NULL, &wait);
		int e = errno;
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		if (sig == SRV_SITE_WAKE_SIGNAL) {
			if (site_at == 0)
				site_at = now.tv_sec + 1;
			continue;
		}
		if (sig < 0) {
			if (e != EAGAIN)
				continue;
			if (site_at != 0 && now.tv_sec >= site_at)
				site_at = srv_site_retry(site) ? now.tv_sec + 1 : 0;
			bool due = now.tv_sec >= next.tv_sec;
			if (due) {
				next.tv_sec += cfg->audit_checkpoint_interval;
				if (next.tv_sec <= now.tv_sec)
					next.tv_sec = now.tv_sec + cfg->audit_checkpoint_interval;
			}
			if (due || (retry_at != 0 && now.tv_sec >= retry_at)) {
				int64_t again = checkpoint(ck, &tries);
				retry_at = again > 0 ? now.tv_sec + again : 0;
			}
			continue;
		}
		if (sig == SIGHUP) {
			/* After idprovd --reset-admin: the new credential replaces the old. */
			if (srv_state_admin_reload(state, &err) == IDP_OK)
				fio_log(FIO_LOG_INFO, "admin.reloaded", "signal=HUP");
			else
				fio_log(FIO_LOG_ERROR, "admin.reload_failed",
				        "signal=HUP error=%s note=\"the old credential stays\"",
				        fio_log_err(&err, ebuf));
			continue;
		}
		break;
	}
	fio_log(FIO_LOG_INFO, "http.stopping", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
	srv_site_stop(site);
	srv_publish_stop(pub); /* goodbye packets first: agents stop finding a closing server */
	srv_httpd_shutdown(h);
	/* The last one covers every entry of this run: nothing else is
	 * served now, so it may wait for the lock up to the usual bound. */
	if (ck != NULL)
		srv_ckpt_set_busy_ms(ck, SRV_STORE_BUSY_MS);
	tries = 0;
	(void)checkpoint(ck, &tries);
	srv_ckpt_close(ck);
	srv_httpd_free(h);
	srv_app_free(&app);
	if (cfg->pid_file[0] != '\0')
		(void)unlink(cfg->pid_file);
	srv_state_free(state);
	fio_log_flush();
	fio_log(FIO_LOG_INFO, "http.stopped", "status=0 log_suppressed=%llu",
	        (unsigned long long)fio_log_suppressed_total());
	return 0;
}

/* idprovd --check-config: the checks a start makes that have no side
 * effect (no state directory, database, socket or file is touched), then
 * the effective settings on stdout. Exit 0, or 2 with the start's message. */
static int check_config(const struct srv_config *cfg)
{
	struct idp_error err = {0};
	static struct srv_app app;
	enum idp_err rc = IDP_OK;
	if (cfg->station_ca[0] != '\0')
		rc = srv_httpd_ca_check("station-ca", cfg->station_ca, &err);
	if (rc == IDP_OK && cfg->admin_ca[0] != '\0')
		rc = srv_httpd_ca_check("admin-ca", cfg->admin_ca, &err);
	/* server-url, token-audience and the rules, as the handlers take them. */
	if (rc == IDP_OK && (rc = srv_app_init(&app, cfg, NULL, &err)) == IDP_OK)
		srv_app_free(&app);
	if (rc == IDP_OK)
		rc = srv_config_print(stdout, cfg, &err);
	if (rc != IDP_OK) {
		(void)fprintf(stderr, "idprovd: %s\n", err.msg);
		return 2;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		(void)fprintf(stderr, "idprovd: stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct srv_config *cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		(void)fprintf(stderr, "idprovd: out of memory\n");
		return 1;
	}
	enum srv_config_action action = SRV_CONFIG_RUN;
	struct idp_error err = {0};
	if (srv_config_from_args(argc, argv, cfg, &action, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprovd: %s\n", err.msg);
		(void)fprintf(stderr, "idprovd: try 'idprovd --help'\n");
		free(cfg);
		return 2;
	}
	if (action == SRV_CONFIG_HELP) {
		srv_config_usage(stdout);
		free(cfg);
		return 0;
	}
	if (action == SRV_CONFIG_VERSION) {
		(void)printf("idprovd %s\n", SRV_VERSION);
		free(cfg);
		return 0;
	}
	if (action == SRV_CONFIG_CHECK) {
		int rc = check_config(cfg);
		free(cfg);
		return rc;
	}
	/* Before any key is loaded: a core dump would hold ca.key and token.key. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		(void)fprintf(stderr, "idprovd: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
	umask(077);
	if (action == SRV_CONFIG_RESET_ADMIN) {
		char path[SRV_STATE_PATH_MAX + 32];
		int rc = 0;
		if (srv_state_admin_reset(cfg->state_dir, path, &err) != IDP_OK) {
			(void)fprintf(stderr, "idprovd: %s\n", err.msg);
			rc = 1;
		} else {
			(void)fprintf(stderr,
			              "idprovd: new admin credential in %s (mode 0600); the old one "
			              "stops working when idprovd reloads (systemctl reload idprovd, "
			              "or SIGHUP) or restarts\n",
			              path);
		}
		free(cfg);
		return rc;
	}
	(void)signal(SIGPIPE, SIG_IGN);
	/* Past RLIMIT_FSIZE a write fails with EFBIG (answered 503 storage_full,
	 * server/fault.h) instead of killing the server. */
	(void)signal(SIGXFSZ, SIG_IGN);
	int rc = run(cfg);
	free(cfg);
	return rc;
}
