/*
 * agent_embed.c - a tiny program that embeds the agent library (device-agent/
 * agent.h), not the CLI, the way an application or a driver package would
 * register itself at install time: open, provision, print the status; then,
 * when asked, renew RENEWALS times in the same process (as a long-running
 * agent does), each renewal on a new connection (agt_run_once drops its
 * connection at the end and keeps the TLS session).
 * usage: agent_embed STATE_DIR DEVICE_ID MAC SERVER_URL [CA_FILE [RENEWALS]]
 * Exit 0 with "provisioned <id> <expires>" on stdout, then one line
 * "renewed N us=MICROSECONDS cpu_us=MICROSECONDS <the token.renewed event's
 * fields>" per renewal (wall clock; this process's CPU time, user + system) (tls=resumed or tls=full among them), else 1. The library's
 * events go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#include "device-agent/agent.h"

static char renewed[512]; /* the last token.renewed event's text */

static void on_log(void *arg, enum agt_log_level level, const char *event, const char *msg)
{
	(void)arg;
	(void)fprintf(stderr, "level=%d event=%s %s\n", (int)level, event, msg);
	if (strcmp(event, "token.renewed") == 0)
		(void)snprintf(renewed, sizeof(renewed), "%s", msg);
}

static long long now_us(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* Renew n times; false at the first failure. */
static bool renew(struct agt_ctx *ctx, long n)
{
	for (long i = 1; i <= n; i++) {
		struct idp_error err = {0};
		renewed[0] = '\0';
		agt_renew_now(ctx);
		long long t0 = now_us(), c0 = cpu_us();
		if (agt_run_once(ctx, &err) != IDP_OK || renewed[0] == '\0') {
			(void)fprintf(stderr, "agent_embed: renewal %ld: %s\n", i, err.msg);
			return false;
		}
		(void)printf("renewed %ld us=%lld cpu_us=%lld %s\n", i, now_us() - t0, cpu_us() - c0,
		             renewed);
	}
	return true;
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 7) {
		(void)fprintf(stderr, "usage: agent_embed STATE_DIR ID MAC URL [CA [RENEWALS]]\n");
		return 2;
	}
	long renewals = argc == 7 ? strtol(argv[6], NULL, 10) : 0;
	if (renewals < 0 || renewals > 10000) {
		(void)fprintf(stderr, "agent_embed: RENEWALS: 0..10000\n");
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	const struct agt_config cfg = {.state_dir = argv[1],
	                               .device_id = argv[2],
	                               .mac = argv[3],
	                               .server_url = argv[4],
	                               .ca_file = argc >= 6 && argv[5][0] != '\0' ? argv[5] : NULL,
	                               .pending_wait_s = 30,
	                               .log = renewals > 0 ? on_log : NULL};
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	int code = 1;
	if (agt_open(&cfg, &ctx, &err) == IDP_OK && agt_run_once(ctx, &err) == IDP_OK) {
		struct agt_status st;
		agt_status(ctx, &st);
		(void)printf("provisioned %s %lld\n", st.device_id, (long long)st.token_expires);
		(void)fflush(stdout);
		code = st.device_token && renew(ctx, renewals) ? 0 : 1;
	} else {
		(void)fprintf(stderr, "agent_embed: %s\n", err.msg);
	}
	agt_close(ctx);
	curl_global_cleanup();
	return code;
}
