/*
 * fuzz_config.c - libFuzzer target for idprovd's config file parser
 * (server/config.c, syntax in docs/man/idprovd.8 and samples/idprovd.conf):
 * arbitrary file text over the defaults. Whatever it accepts must leave the
 * configuration within its documented bounds and print (idprovd
 * --check-config) as text that reads back to the same text; whatever it
 * refuses must say why in a terminated message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct srv_config cfg;
	srv_config_defaults(&cfg);
	struct idp_error err;
	memset(&err, 0, sizeof(err));
	enum idp_err rc = srv_config_apply_file(&cfg, "fuzz.conf", data, size, &err);
	if (rc != IDP_OK) {
		if (err.msg[0] == '\0' || strnlen(err.msg, sizeof(err.msg)) == sizeof(err.msg))
			abort(); /* a refusal that names nothing, or an unterminated one */
		return 0;
	}
	if (size > SRV_CONFIG_FILE_MAX)
		abort(); /* an oversized file was accepted */
	if (cfg.n_listen > SRV_CONFIG_LISTEN_MAX || cfg.n_rules > SRV_RULES_MAX ||
	    cfg.n_server_names > SRV_STATE_NAMES_MAX || cfg.threads > SRV_CONFIG_THREADS_MAX)
		abort(); /* a count past its array */
	if (strnlen(cfg.state_dir, sizeof(cfg.state_dir)) == sizeof(cfg.state_dir) ||
	    strnlen(cfg.server_url, sizeof(cfg.server_url)) == sizeof(cfg.server_url))
		abort(); /* an unterminated string */
	/* --check-config: the settings print, and the print reads back as the
	 * same settings (compared as text: arrays keep stale entries past
	 * their counts). */
	char *t1 = NULL, *t2 = NULL;
	size_t n1 = 0, n2 = 0;
	FILE *f = open_memstream(&t1, &n1);
	if (f == NULL)
		return 0;
	rc = srv_config_print(f, &cfg, &err);
	if (fclose(f) != 0 || rc != IDP_OK)
		abort(); /* a file the parser took does not print */
	static struct srv_config back;
	srv_config_defaults(&back);
	back.threads = cfg.threads == 1 ? 2 : 1; /* printed, so this must not survive */
	if (srv_config_apply_file(&back, "printed", (const uint8_t *)t1, n1, &err) != IDP_OK)
		abort(); /* the print does not parse */
	f = open_memstream(&t2, &n2);
	if (f == NULL || srv_config_print(f, &back, &err) != IDP_OK || fclose(f) != 0 || n1 != n2 ||
	    memcmp(t1, t2, n1) != 0)
		abort(); /* it parses to other settings */
	free(t1);
	free(t2);
	return 0;
}
