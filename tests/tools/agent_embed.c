/*
 * agent_embed.c - a tiny program that embeds the agent library (device-agent/
 * agent.h), not the CLI, the way an application or a driver package would
 * register itself at install time: open, provision, print the status.
 * usage: agent_embed STATE_DIR DEVICE_ID MAC SERVER_URL [CA_FILE]
 * Exit 0 with "provisioned <id> <expires>" on stdout, else 1.
 */
#include <stdio.h>

#include <curl/curl.h>

#include "device-agent/agent.h"

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 6) {
		(void)fprintf(stderr, "usage: agent_embed STATE_DIR ID MAC URL [CA]\n");
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	const struct agt_config cfg = {.state_dir = argv[1],
	                               .device_id = argv[2],
	                               .mac = argv[3],
	                               .server_url = argv[4],
	                               .ca_file = argc == 6 ? argv[5] : NULL,
	                               .pending_wait_s = 30};
	struct agt_ctx *ctx = NULL;
	struct idp_error err = {0};
	int code = 1;
	if (agt_open(&cfg, &ctx, &err) == IDP_OK && agt_run_once(ctx, &err) == IDP_OK) {
		struct agt_status st;
		agt_status(ctx, &st);
		(void)printf("provisioned %s %lld\n", st.device_id, (long long)st.token_expires);
		code = st.device_token ? 0 : 1;
	} else {
		(void)fprintf(stderr, "agent_embed: %s\n", err.msg);
	}
	agt_close(ctx);
	curl_global_cleanup();
	return code;
}
