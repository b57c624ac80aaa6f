/*
 * config.h - idprovd's configuration: built-in defaults, then the config
 * file, then the command line. Every key is both a file key ("key = value")
 * and a flag ("--key VALUE" or "--key=VALUE"). The keys, their defaults and
 * the file syntax are documented in docs/administrator.md and
 * samples/idprovd.conf. Errors name the file, the line and the key.
 *
 * Not thread-safe while parsing; the parsed struct is read-only afterwards.
 */
#ifndef IDP_SERVER_CONFIG_H
#define IDP_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "formats/error.h"
#include "formats/io/dnssd.h"
#include "formats/keys.h"
#include "server/provision.h"
#include "server/rules.h"
#include "server/state.h"

#define SRV_CONFIG_LISTEN_MAX   8u     /* listen addresses */
#define SRV_CONFIG_LINE_MAX     1024u  /* bytes per config file line */
#define SRV_CONFIG_FILE_MAX     65536u /* bytes of config file */
#define SRV_CONFIG_THREADS_MAX  64u
#define SRV_CONFIG_DEFAULT_PORT 8443u
#define SRV_CONFIG_ADDR_TEXT    64u /* "[1234:...:abcd]:65535" */

struct srv_listen {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char text[SRV_CONFIG_ADDR_TEXT]; /* as written, for logs and errors */
	bool dual_stack;                 /* an IPv6 wildcard that also takes IPv4 */
};

struct srv_config {
	char config_file[SRV_STATE_PATH_MAX]; /* "" when none */
	char state_dir[SRV_STATE_PATH_MAX];
	struct srv_listen listen[SRV_CONFIG_LISTEN_MAX];
	size_t n_listen;
	bool foreground;
	char pid_file[SRV_STATE_PATH_MAX]; /* "" when none */
	unsigned threads;
	char server_names[SRV_STATE_NAMES_MAX][SRV_STATE_NAME_MAX + 1];
	size_t n_server_names;
	char rules[SRV_RULES_MAX][SRV_RULE_TEXT_MAX]; /* "product=... field=... ..." */
	size_t n_rules;
	enum fmt_key_type token_key; /* type of a newly created token key */
	char station_ca[SRV_STATE_PATH_MAX]; /* PEM file of the station CA; "" = none */
	char admin_ca[SRV_STATE_PATH_MAX];   /* PEM file of the admin client CA; "" = none */
	char server_url[SRV_STATE_PATH_MAX]; /* told to devices; token issuer; "" = derived */
	char token_audience[SRV_STATE_PATH_MAX]; /* aud of every token */
	int64_t token_lifetime;              /* device token, seconds */
	int64_t provisioning_token_lifetime; /* provisioning token, seconds */
	int64_t pending_retry_after;         /* seconds a pending device waits */
	int64_t nonce_lifetime;              /* seconds a server nonce is valid */
	int64_t tls_session_lifetime;        /* seconds a ticket resumes; key rotation; 0 = off */
	unsigned max_pending;                /* pending devices kept at once */
	unsigned max_pending_per_address;    /* pending devices created per client address */
	int64_t pending_lifetime;            /* seconds a silent pending device is kept */
	enum srv_policy mac_mismatch;        /* a known key with another MAC */
	enum srv_policy identity_reuse;      /* an unknown ID with another's key or MAC */
	size_t max_body;                     /* bytes of a request body */
	size_t max_manifest;                 /* bytes of an uploaded manifest */
	size_t max_headers;                  /* bytes of all request headers */
	unsigned max_connections;            /* open connections, whole server */
	unsigned header_timeout;             /* seconds to receive the request headers */
	unsigned body_timeout;               /* seconds to receive a body after its head, */
	unsigned body_min_rate;              /* ... plus one per this many bytes (0: none) */
	unsigned request_timeout;            /* seconds of silence before closing */
	unsigned log_burst;                  /* log lines of one event per second (0: all) */
	unsigned throttle_per_minute;        /* nonce/provision requests a minute per address (0: off) */
	unsigned throttle_burst;             /* requests an address may make at once */
	unsigned throttle_device_per_minute; /* device requests a minute per device ID (0: off) */
	unsigned throttle_device_burst;
	unsigned throttle_station_per_minute; /* manifest uploads a minute per station (0: off) */
	unsigned throttle_station_burst;
	unsigned throttle_oob_per_minute;    /* wrong out-of-band proofs a minute per ID (0: off) */
	unsigned throttle_oob_burst;
	bool dnssd;                          /* publish _idprov._tcp (server/publish.h) and
	                                      * watch for other publishers (server/site.h) */
	enum fio_dnssd_backend dnssd_backend; /* which Avahi (formats/io/dnssd.h) */
	/* dnssd-interfaces: where the embedded Avahi speaks. Neither set
	 * ("listen", the default): the interfaces of the listen addresses. */
	bool dnssd_ifaces_all; /* "all" */
	char dnssd_ifaces[FIO_DNSSD_IFACES_MAX][FIO_DNSSD_IFNAME_MAX + 1];
	size_t n_dnssd_ifaces;
	int64_t audit_checkpoint_interval;   /* seconds between signed audit checkpoints */
};

enum srv_config_action {
	SRV_CONFIG_RUN = 0,
	SRV_CONFIG_HELP = 1,
	SRV_CONFIG_VERSION = 2,
	SRV_CONFIG_RESET_ADMIN = 3, /* --reset-admin: new admin credential, then exit */
	SRV_CONFIG_CHECK = 4,       /* --check-config: check, print the settings, exit */
};

/* Fill cfg with the built-in defaults (listen on [::]:8443 dual-stack,
 * threads = online cores, state dir SRV_STATE_DEFAULT_DIR, ...). */
void srv_config_defaults(struct srv_config *cfg);

/* Parse the command line (argv[0] is the program): defaults, then the file
 * of --config (if any), then the flags. --help and --version set *action and
 * stop; --reset-admin and --check-config set *action and the rest still
 * applies. Errors name the flag or the file, line and key. */
IDP_MUST_CHECK enum idp_err srv_config_from_args(int argc, char *const argv[],
                                                 struct srv_config *cfg,
                                                 enum srv_config_action *action,
                                                 struct idp_error *err);

/* Apply the config file text buf[0..len) (name is for errors) over cfg. */
IDP_MUST_CHECK enum idp_err srv_config_apply_file(struct srv_config *cfg, const char *name,
                                                  const uint8_t *buf, size_t len,
                                                  struct idp_error *err);

/* Set one key to value (as a file line or a flag would). A repeatable key
 * (listen, server-name) appends. */
IDP_MUST_CHECK enum idp_err srv_config_set(struct srv_config *cfg, const char *key,
                                           const char *value, struct idp_error *err);

/* Parse "ADDR:PORT" ("127.0.0.1:8443", "[::1]:8443", "[::]:8443"). */
IDP_MUST_CHECK enum idp_err srv_config_parse_listen(const char *s, struct srv_listen *out,
                                                    struct idp_error *err);

/* Print every setting of cfg to f as config file lines ("key = value"),
 * in the key table's order, one line per value of a list key (listen,
 * server-name, rule); a key without a value (pid-file, station-ca, ...) is
 * a comment line. The output parses back (srv_config_apply_file) to the
 * same settings. No key holds a secret. Fails, printing nothing, when a
 * value (from the command line) cannot be one line of a file. */
IDP_MUST_CHECK enum idp_err srv_config_print(FILE *f, const struct srv_config *cfg,
                                             struct idp_error *err);

/* Print the usage text (every flag with its default) to f. */
void srv_config_usage(FILE *f);

#endif /* IDP_SERVER_CONFIG_H */
