/*
 * config.c - see config.h.
 */
#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/io/log.h"

enum kind {
	K_PATH,
	K_LISTEN,
	K_BOOL,
	K_UINT,
	K_DURATION,
	K_SIZE,
	K_RATE, /* bytes a second, with the K_SIZE suffixes */
	K_NAME,
	K_KEYTYPE,
	K_RULE,
	K_POLICY,
	K_DNSSD,
	K_IFACES
};

struct key {
	const char *name;
	enum kind kind;
	size_t off, size; /* the field in struct srv_config */
	uint64_t min, max;
	const char *def; /* the default, as shown by --help */
	const char *help;
};

#define FIELD(f) offsetof(struct srv_config, f), sizeof(((struct srv_config *)NULL)->f)

static const struct key keys[] = {
        {"state-dir", K_PATH, FIELD(state_dir), 0, 0, SRV_STATE_DEFAULT_DIR,
         "directory for the CA, keys, admin credential and database"},
        {"listen", K_LISTEN, FIELD(listen), 0, 0, "[::]:8443 (IPv6 and IPv4)",
         "ADDR:PORT to listen on; repeat for several"},
        {"foreground", K_BOOL, FIELD(foreground), 0, 0, "no",
         "stay in the foreground (for systemd)"},
        {"pid-file", K_PATH, FIELD(pid_file), 0, 0, "none",
         "file to write the server's PID to (removed at a clean stop)"},
        {"threads", K_UINT, FIELD(threads), 1, SRV_CONFIG_THREADS_MAX, "number of cores",
         "event loops, each with its own listener and store connection"},
        {"server-name", K_NAME, FIELD(server_names), 0, 0, "host name, localhost, 127.0.0.1, ::1",
         "extra DNS name or address for the server certificate; repeat for several"},
        {"rule", K_RULE, FIELD(rules), 0, 0, "none",
         "serial or ID rule for imports: product=P field=serial|id [pattern=ERE] "
         "[check=luhn|mod97-10|div:N] (formats/idrule.md); repeat for several"},
        {"token-key", K_KEYTYPE, FIELD(token_key), 0, 0, "p256",
         "type of a new token-signing key: p256 or ed25519"},
        {"station-ca", K_PATH, FIELD(station_ca), 0, 0, "none",
         "PEM file of the CA that issues station client certificates"},
        {"admin-ca", K_PATH, FIELD(admin_ca), 0, 0, "none",
         "PEM file of the CA that issues administrators' client certificates (CN = the name "
         "of a credential, whose role applies)"},
        {"server-url", K_PATH, FIELD(server_url), 0, 0, "https://HOSTNAME:PORT",
         "URL devices are given with their token; also the tokens' issuer"},
        {"token-audience", K_PATH, FIELD(token_audience), 0, 0, "idprov",
         "audience (aud) of every token"},
        {"token-lifetime", K_DURATION, FIELD(token_lifetime), 60, 366ull * 86400, "30d",
         "lifetime of a device token (s, m, h or d suffix)"},
        {"provisioning-token-lifetime", K_DURATION, FIELD(provisioning_token_lifetime), 10, 86400,
         "5m", "lifetime of the short-lived provisioning token"},
        {"pending-retry-after", K_DURATION, FIELD(pending_retry_after), 1, 86400, "30s",
         "Retry-After given to a device waiting for approval"},
        {"nonce-lifetime", K_DURATION, FIELD(nonce_lifetime), 5, 3600, "2m",
         "how long a server nonce may be used"},
        {"tls-session-lifetime", K_DURATION, FIELD(tls_session_lifetime), 0, 86400, "1h",
         "how long a client may resume its TLS session with a ticket (0: no tickets); "
         "ticket keys rotate at this period"},
        {"max-pending", K_UINT, FIELD(max_pending), 1, 10000000, "10000",
         "pending devices kept at once (unknown devices beyond are refused, 503)"},
        {"max-pending-per-address", K_UINT, FIELD(max_pending_per_address), 1, 10000000, "64",
         "pending devices created from one client address (beyond: 429)"},
        {"pending-lifetime", K_DURATION, FIELD(pending_lifetime), 60, 366ull * 86400, "7d",
         "a pending device not heard from for this long is deleted"},
        {"mac-mismatch", K_POLICY, FIELD(mac_mismatch), 0, SRV_POLICY_FLAG, "hold",
         "a device known with a key presents another MAC: hold (pending for an "
         "administrator), refuse (mac_mismatch) or flag (approve); always flagged"},
        {"identity-reuse", K_POLICY, FIELD(identity_reuse), 0, SRV_POLICY_REFUSE, "hold",
         "an unknown ID presents a key or MAC another device holds: hold (pending) or "
         "refuse (key_reused); always flagged"},
        {"max-body", K_SIZE, FIELD(max_body), 1024, 16u << 20, "16K",
         "largest API request body (K, M suffix)"},
        {"max-manifest", K_SIZE, FIELD(max_manifest), 1024, 1u << 30, "64M",
         "largest uploaded manifest"},
        {"max-headers", K_SIZE, FIELD(max_headers), 1024, 1u << 20, "8K",
         "largest request header block"},
        {"max-connections", K_UINT, FIELD(max_connections), 1, 1000000, "1024",
         "open connections over all threads"},
        {"header-timeout", K_DURATION, FIELD(header_timeout), 1, 3600, "10s",
         "time a client has to send the whole request head"},
        {"body-timeout", K_DURATION, FIELD(body_timeout), 1, 86400, "60s",
         "time a client has to send a request body after its head, extended by one second "
         "for every body-min-rate bytes received"},
        {"body-min-rate", K_RATE, FIELD(body_min_rate), 0, 1u << 30, "8K",
         "data rate a body must keep up after body-timeout, in bytes a second (K, M "
         "suffix); 0: body-timeout bounds the whole body"},
        {"request-timeout", K_DURATION, FIELD(request_timeout), 1, 3600, "30s",
         "silence after which a connection is closed"},
        {"dnssd", K_BOOL, FIELD(dnssd), 0, 0, "on",
         "publish _idprov._tcp by DNS-SD through avahi-daemon (formats/api.md section 11) "
         "and suspend provisioning when another server publishes it"},
        {"dnssd-backend", K_DNSSD, FIELD(dnssd_backend), 0, 0, "auto",
         "which Avahi publishes and watches: daemon (avahi-daemon over D-Bus), embedded "
         "(libavahi-core in idprovd, no daemon) or auto (daemon if it answers, else "
         "embedded)"},
        {"dnssd-interfaces", K_IFACES, FIELD(dnssd_ifaces), 0, 0, "listen",
         "where the embedded Avahi speaks mDNS: listen (the interfaces of the listen "
         "addresses; all for a wildcard one), all, or interface names (eth1,eth2); "
         "avahi-daemon has its own allow-interfaces"},
        {"audit-checkpoint-interval", K_DURATION, FIELD(audit_checkpoint_interval), 1, 86400,
         "10m", "time between signed checkpoints of the audit log (also one at every stop)"},
        {"log-burst", K_UINT, FIELD(log_burst), 0, 1000000, "50",
         "log lines of one event per second before the rest are counted, not written (0: all)"},
        {"throttle-per-minute", K_UINT, FIELD(throttle_per_minute), 0, 6000000, "600",
         "nonce and provision requests a minute from one client address, after "
         "throttle-burst (beyond: 429 with Retry-After; 0: no throttling)"},
        {"throttle-burst", K_UINT, FIELD(throttle_burst), 1, 1000000, "60",
         "nonce and provision requests one client address may make at once"},
        {"throttle-device-per-minute", K_UINT, FIELD(throttle_device_per_minute), 0, 6000000,
         "60",
         "provision, exchange and renew requests a minute for one device ID, after "
         "throttle-device-burst (beyond: 429 with Retry-After; 0: off)"},
        {"throttle-device-burst", K_UINT, FIELD(throttle_device_burst), 1, 1000000, "20",
         "requests for one device ID at once"},
        {"throttle-station-per-minute", K_UINT, FIELD(throttle_station_per_minute), 0, 6000000,
         "60",
         "manifest uploads (POST /v1/batches) a minute from one station, after "
         "throttle-station-burst (beyond: 429 with Retry-After; 0: off)"},
        {"throttle-station-burst", K_UINT, FIELD(throttle_station_burst), 1, 1000000, "20",
         "manifest uploads one station may make at once"},
        {"throttle-oob-per-minute", K_UINT, FIELD(throttle_oob_per_minute), 0, 6000000, "1",
         "wrong out-of-band proofs a minute for one device ID, after throttle-oob-burst; "
         "beyond, its proofs are not checked (429) (0: off)"},
        {"throttle-oob-burst", K_UINT, FIELD(throttle_oob_burst), 1, 1000000, "5",
         "wrong out-of-band proofs one device ID may make at once"},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

void srv_config_defaults(struct srv_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	(void)snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", SRV_STATE_DEFAULT_DIR);
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&cfg->listen[0].addr;
	a->sin6_family = AF_INET6;
	a->sin6_addr = in6addr_any;
	a->sin6_port = htons(SRV_CONFIG_DEFAULT_PORT);
	cfg->listen[0].addr_len = sizeof(*a);
	cfg->listen[0].dual_stack = true;
	(void)snprintf(cfg->listen[0].text, sizeof(cfg->listen[0].text), "[::]:%u",
	               SRV_CONFIG_DEFAULT_PORT);
	cfg->n_listen = 1;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->threads = n < 1                              ? 1
	               : n > (long)SRV_CONFIG_THREADS_MAX ? SRV_CONFIG_THREADS_MAX
	                                                  : (unsigned)n;
	cfg->token_key = FMT_KEY_P256;
	(void)snprintf(cfg->token_audience, sizeof(cfg->token_audience), "idprov");
	cfg->token_lifetime = 30LL * 86400;
	cfg->provisioning_token_lifetime = 300;
	cfg->pending_retry_after = 30;
	cfg->nonce_lifetime = 120;
	cfg->tls_session_lifetime = 3600;
	cfg->max_pending = 10000;
	cfg->max_pending_per_address = 64;
	cfg->pending_lifetime = 7LL * 86400;
	cfg->max_body = 16u << 10; /* formats/api.md: FMT_API_BODY_MAX */
	cfg->max_manifest = 64u << 20;
	cfg->max_headers = 8u << 10;
	cfg->max_connections = 1024;
	cfg->header_timeout = 10;
	cfg->body_timeout = 60;
	cfg->body_min_rate = 8u << 10;
	cfg->request_timeout = 30;
	cfg->log_burst = FIO_LOG_BURST;
	cfg->throttle_per_minute = 600;
	cfg->throttle_burst = 60;
	cfg->throttle_device_per_minute = 60;
	cfg->throttle_device_burst = 20;
	cfg->throttle_station_per_minute = 60;
	cfg->throttle_station_burst = 20;
	cfg->throttle_oob_per_minute = 1;
	cfg->throttle_oob_burst = 5;
	cfg->dnssd = true;
	cfg->audit_checkpoint_interval = 600;
}

/* Decimal digits of s with an optional one-letter suffix from units (its
 * multiplier in mult[]); IDP_OK with *v in [min, max]. */
static bool parse_scaled(const char *s, const char *units, const uint64_t *mult, uint64_t *v)
{
	uint64_t x = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return false;
	if (s[i] != '\0') {
		const char *u = units != NULL ? strchr(units, s[i]) : NULL;
		if (u == NULL || s[i + 1] != '\0')
			return false;
		uint64_t m = mult[u - units];
		if (x > UINT64_MAX / m)
			return false;
		x *= m;
	}
	*v = x;
	return true;
}

enum idp_err srv_config_parse_listen(const char *s, struct srv_listen *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t n = strnlen(s, SRV_CONFIG_ADDR_TEXT);
	if (n == 0 || n >= SRV_CONFIG_ADDR_TEXT)
		return idp_error_set(err, IDP_E_FORMAT, "listen: '%.64s' is not ADDR:PORT", s);
	char host[SRV_CONFIG_ADDR_TEXT];
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen = colon != NULL ? (size_t)(colon - s) : 0;
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		h = s + 1;
		hlen -= 2;
	} else if (memchr(s, ':', hlen) != NULL) {
		return idp_error_set(err, IDP_E_FORMAT,
		                     "listen: '%s': write IPv6 addresses as [ADDR]:PORT", s);
	}
	uint64_t port = 0;
	if (colon == NULL || hlen == 0 || !parse_scaled(colon + 1, NULL, NULL, &port) ||
	    port > 65535)
		return idp_error_set(err, IDP_E_FORMAT, "listen: '%s' is not ADDR:PORT", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
	if (h == s && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		out->addr_len = sizeof(*a4);
	} else if (h != s && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 &&
	           IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		/* [::ffff:A.B.C.D] is the IPv4 address A.B.C.D: an IPv6-only
		 * socket (the default) cannot bind it, and as IPv4 it is on the
		 * interface that owns A.B.C.D (its mDNS, server/publish.c). */
		struct in_addr v4;
		memcpy(&v4, &a6->sin6_addr.s6_addr[12], sizeof(v4));
		memset(&out->addr, 0, sizeof(out->addr));
		a4->sin_family = AF_INET;
		a4->sin_addr = v4;
		a4->sin_port = htons((uint16_t)port);
		out->addr_len = sizeof(*a4);
	} else if (h != s && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		out->addr_len = sizeof(*a6);
		out->dual_stack = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
	} else {
		return idp_error_set(err, IDP_E_FORMAT, "listen: '%s': '%s' is not an IP address",
		                     s, host);
	}
	memcpy(out->text, s, n + 1);
	return IDP_OK;
}

static const struct key *key_find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
			return &keys[i];
	return NULL;
}

/* The suffixes' multipliers (K_DURATION "smhd", K_SIZE and K_RATE "KMG")
 * and the K_POLICY values, read by key_set and written by srv_config_print. */
static const uint64_t dur_mult[] = {1, 60, 3600, 86400};
static const uint64_t size_mult[] = {1u << 10, 1u << 20, 1u << 30};
static const char *const policy_names[] = {[SRV_POLICY_HOLD] = "hold",
                                           [SRV_POLICY_REFUSE] = "refuse",
                                           [SRV_POLICY_FLAG] = "flag"};

/* Set k to value. A list key appends. */
static enum idp_err key_set(struct srv_config *cfg, const struct key *k, const char *value,
                            struct idp_error *err)
{
	uint8_t *field = (uint8_t *)cfg + k->off;
	uint64_t v = 0;
	switch (k->kind) {
	case K_PATH: {
		size_t n = strnlen(value, SRV_STATE_PATH_MAX);
		if (n == 0 || n >= SRV_STATE_PATH_MAX)
			return idp_error_set(err, IDP_E_FORMAT, "%s: path empty or too long",
			                     k->name);
		memcpy(field, value, n + 1);
		return IDP_OK;
	}
	case K_LISTEN: {
		if (cfg->n_listen >= SRV_CONFIG_LISTEN_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "%s: more than %u addresses",
			                     k->name, SRV_CONFIG_LISTEN_MAX);
		enum idp_err rc = srv_config_parse_listen(value, &cfg->listen[cfg->n_listen], err);
		if (rc == IDP_OK)
			cfg->n_listen++;
		return rc;
	}
	case K_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
		         strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
			*(bool *)field = false;
		else
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: '%.64s' is not yes/on or no/off", k->name, value);
		return IDP_OK;
	case K_NAME: {
		size_t n = strnlen(value, SRV_STATE_NAME_MAX + 1);
		if (cfg->n_server_names >= SRV_STATE_NAMES_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "%s: more than %u names", k->name,
			                     SRV_STATE_NAMES_MAX);
		if (n == 0 || n > SRV_STATE_NAME_MAX)
			return idp_error_set(err, IDP_E_FORMAT, "%s: name empty or too long",
			                     k->name);
		memcpy(cfg->server_names[cfg->n_server_names++], value, n + 1);
		return IDP_OK;
	}
	case K_RULE: {
		size_t n = strnlen(value, SRV_RULE_TEXT_MAX);
		if (cfg->n_rules >= SRV_RULES_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "%s: more than %u rules", k->name,
			                     SRV_RULES_MAX);
		if (n >= SRV_RULE_TEXT_MAX)
			return idp_error_set(err, IDP_E_FORMAT, "%s: longer than %u bytes", k->name,
			                     SRV_RULE_TEXT_MAX - 1);
		/* Checked now, so that a bad rule is an error naming its line. */
		struct srv_rules probe = {.n = 0};
		enum idp_err rc = srv_rules_add(&probe, value, err);
		srv_rules_free(&probe);
		if (rc != IDP_OK)
			return rc;
		memcpy(cfg->rules[cfg->n_rules++], value, n + 1);
		return IDP_OK;
	}
	case K_KEYTYPE: {
		enum fmt_key_type t = 0;
		if (fmt_key_type_parse(value, strlen(value), &t, NULL) != IDP_OK)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: '%.64s' is not p256 or ed25519", k->name, value);
		cfg->token_key = t;
		return IDP_OK;
	}
	case K_POLICY: {
		for (size_t i = 0; i <= k->max && i < sizeof(policy_names) / sizeof(policy_names[0]);
		     i++) {
			if (strcmp(value, policy_names[i]) == 0) {
				*(enum srv_policy *)field = (enum srv_policy)i;
				return IDP_OK;
			}
		}
		return idp_error_set(err, IDP_E_FORMAT, "%s: '%.64s' is not %s", k->name, value,
		                     k->max == SRV_POLICY_FLAG ? "hold, refuse or flag"
		                                               : "hold or refuse");
	}
	case K_DNSSD: {
		enum fio_dnssd_backend b = FIO_DNSSD_AUTO;
		if (fio_dnssd_backend_parse(value, &b, NULL) != IDP_OK)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: '%.64s' is not auto, daemon or embedded", k->name,
			                     value);
		*(enum fio_dnssd_backend *)field = b;
		return IDP_OK;
	}
	case K_IFACES: {
		/* "listen", "all" or NAME[,NAME...]; a later line replaces it. */
		cfg->dnssd_ifaces_all = strcmp(value, "all") == 0;
		cfg->n_dnssd_ifaces = 0;
		if (cfg->dnssd_ifaces_all || strcmp(value, "listen") == 0)
			return IDP_OK;
		for (const char *p = value;; p++) {
			const char *e = strchr(p, ',');
			size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
			char name[FIO_DNSSD_IFNAME_MAX + 2];
			(void)snprintf(name, sizeof(name), "%.*s",
			               (int)(n < sizeof(name) - 1 ? n : sizeof(name) - 1), p);
			struct idp_error e2 = {0};
			if (cfg->n_dnssd_ifaces >= FIO_DNSSD_IFACES_MAX) {
				cfg->n_dnssd_ifaces = 0;
				return idp_error_set(err, IDP_E_LIMIT, "%s: more than %u interfaces",
				                     k->name, FIO_DNSSD_IFACES_MAX);
			}
			if (n > FIO_DNSSD_IFNAME_MAX || fio_dnssd_ifname_check(name, &e2) != IDP_OK) {
				cfg->n_dnssd_ifaces = 0;
				return idp_error_set(err, IDP_E_FORMAT,
				                     "%s: '%.64s' is not listen, all or interface names "
				                     "of 1..%u bytes separated by commas",
				                     k->name, value, FIO_DNSSD_IFNAME_MAX);
			}
			memcpy(cfg->dnssd_ifaces[cfg->n_dnssd_ifaces++], name, n + 1);
			if (e == NULL)
				return IDP_OK;
			p = e;
		}
	}
	case K_UINT:
	case K_DURATION:
	case K_SIZE:
	case K_RATE:
		if (!parse_scaled(value,
		                  k->kind == K_DURATION                     ? "smhd"
		                  : k->kind == K_SIZE || k->kind == K_RATE ? "KMG"
		                                                             : NULL,
		                  k->kind == K_DURATION ? dur_mult : size_mult, &v) ||
		    v < k->min || v > k->max)
			return idp_error_set(
			        err, IDP_E_FORMAT, "%s: '%.64s' is not a %s from %llu to %llu",
			        k->name, value,
			        k->kind == K_DURATION ? "duration in seconds"
			        : k->kind == K_SIZE   ? "size in bytes"
			        : k->kind == K_RATE   ? "rate in bytes a second"
			                              : "number",
			        (unsigned long long)k->min, (unsigned long long)k->max);
		break;
	}
	/* v <= k->max, which fits every field's type. */
	if (k->kind == K_SIZE)
		*(size_t *)field = (size_t)v;
	else if (k->size == sizeof(unsigned))
		*(unsigned *)field = (unsigned)v;
	else
		*(int64_t *)field = (int64_t)v;
	return IDP_OK;
}

/* Set key from one source (a file or the command line): the first value of
 * a list key in a source replaces the list of the sources before it. */
static enum idp_err layer_set(struct srv_config *cfg, bool seen[static N_KEYS], const struct key *k,
                              const char *value, struct idp_error *err)
{
	size_t i = (size_t)(k - keys);
	if (!seen[i] && k->kind == K_LISTEN)
		cfg->n_listen = 0;
	if (!seen[i] && k->kind == K_NAME)
		cfg->n_server_names = 0;
	if (!seen[i] && k->kind == K_RULE)
		cfg->n_rules = 0;
	seen[i] = true;
	return key_set(cfg, k, value, err);
}

enum idp_err srv_config_set(struct srv_config *cfg, const char *key, const char *value,
                            struct idp_error *err)
{
	const struct key *k = key_find(key, strlen(key));
	if (k == NULL)
		return idp_error_set(err, IDP_E_FORMAT, "unknown key '%.64s'", key);
	return key_set(cfg, k, value, err);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

enum idp_err srv_config_apply_file(struct srv_config *cfg, const char *name, const uint8_t *buf,
                                   size_t len, struct idp_error *err)
{
	bool seen[N_KEYS] = {0};
	const char *p = (const char *)buf, *end = p + len;
	for (unsigned line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		if ((size_t)(le - p) >= SRV_CONFIG_LINE_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "%s:%u: line longer than %u bytes",
			                     name, line, SRV_CONFIG_LINE_MAX - 1);
		if (memchr(p, '\0', (size_t)(le - p)) != NULL)
			return idp_error_set(err, IDP_E_FORMAT, "%s:%u: NUL byte", name, line);
		char text[SRV_CONFIG_LINE_MAX];
		size_t n = (size_t)(le - p);
		memcpy(text, p, n);
		text[n] = '\0';
		p = nl != NULL ? nl + 1 : end;
		while (n > 0 && (is_space(text[n - 1]) || text[n - 1] == '\r'))
			text[--n] = '\0';
		char *s = text;
		while (is_space(*s))
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL)
			return idp_error_set(err, IDP_E_FORMAT, "%s:%u: expected 'key = value'",
			                     name, line);
		char *ke = eq;
		while (ke > s && is_space(ke[-1]))
			ke--;
		char *v = eq + 1;
		while (is_space(*v))
			v++;
		const struct key *k = key_find(s, (size_t)(ke - s));
		*ke = '\0';
		if (k == NULL)
			return idp_error_set(err, IDP_E_FORMAT, "%s:%u: unknown key '%.64s'", name,
			                     line, s);
		if (*v == '\0')
			return idp_error_set(err, IDP_E_FORMAT, "%s:%u: %s: empty value", name,
			                     line, k->name);
		if (seen[k - keys] && k->kind != K_LISTEN && k->kind != K_NAME && k->kind != K_RULE)
			return idp_error_set(err, IDP_E_FORMAT, "%s:%u: %s: set twice", name, line,
			                     k->name);
		enum idp_err rc = layer_set(cfg, seen, k, v, err);
		if (rc != IDP_OK) {
			idp_error_prefix(err, "%s:%u", name, line);
			return rc;
		}
	}
	return IDP_OK;
}

/* The value of flag argv[*i] ("--k=v" or "--k v"); NULL when missing. */
static const char *flag_value(int argc, char *const argv[], int *i, const char *eq)
{
	if (eq != NULL)
		return eq + 1;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

enum idp_err srv_config_from_args(int argc, char *const argv[], struct srv_config *cfg,
                                  enum srv_config_action *action, struct idp_error *err)
{
	*action = SRV_CONFIG_RUN;
	srv_config_defaults(cfg);
	/* First pass: --help, --version and --config, which come before the rest. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*action = SRV_CONFIG_HELP;
			return IDP_OK;
		}
		if (strcmp(a, "--version") == 0) {
			*action = SRV_CONFIG_VERSION;
			return IDP_OK;
		}
		if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
			const char *v = flag_value(argc, argv, &i, a[8] == '=' ? a + 8 : NULL);
			if (v == NULL || v[0] == '\0' ||
			    strnlen(v, sizeof(cfg->config_file)) >= sizeof(cfg->config_file))
				return idp_error_set(err, IDP_E_FORMAT,
				                     "--config: needs a file name");
			memcpy(cfg->config_file, v, strlen(v) + 1);
		}
	}
	if (cfg->config_file[0] != '\0') {
		uint8_t *buf = NULL;
		size_t len = 0;
		enum idp_err rc =
		        fmt_file_read(cfg->config_file, SRV_CONFIG_FILE_MAX, &buf, &len, err);
		if (rc == IDP_OK)
			rc = srv_config_apply_file(cfg, cfg->config_file, buf, len, err);
		free(buf);
		if (rc != IDP_OK)
			return rc;
	}
	bool seen[N_KEYS] = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0)
			return idp_error_set(err, IDP_E_FORMAT, "'%.64s': unexpected argument", a);
		const char *eq = strchr(a, '=');
		size_t klen = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (klen == 6 && strncmp(a + 2, "config", 6) == 0) {
			if (eq == NULL)
				i++;
			continue;
		}
		if (eq == NULL &&
		    (strcmp(a, "--reset-admin") == 0 || strcmp(a, "--check-config") == 0)) {
			enum srv_config_action want =
			        a[2] == 'r' ? SRV_CONFIG_RESET_ADMIN : SRV_CONFIG_CHECK;
			if (*action != SRV_CONFIG_RUN && *action != want)
				return idp_error_set(
				        err, IDP_E_FORMAT,
				        "--check-config and --reset-admin exclude each "
				        "other");
			*action = want;
			continue;
		}
		const struct key *k = key_find(a + 2, klen);
		if (k == NULL)
			return idp_error_set(err, IDP_E_FORMAT, "--%.*s: unknown option",
			                     (int)(klen > 64 ? 64 : klen), a + 2);
		const char *v =
		        k->kind == K_BOOL && eq == NULL ? "yes" : flag_value(argc, argv, &i, eq);
		if (v == NULL)
			return idp_error_set(err, IDP_E_FORMAT, "--%s: needs a value", k->name);
		enum idp_err rc = layer_set(cfg, seen, k, v, err);
		if (rc != IDP_OK) {
			idp_error_prefix(err, "command line");
			return rc;
		}
	}
	return IDP_OK;
}

/* v with the largest unit of units whose multiplier mult[] divides it
 * exactly ("30d", "16K"), else in plain digits: what parse_scaled reads. */
static void print_scaled(FILE *f, uint64_t v, const char *units, const uint64_t *mult, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		if (v != 0 && v % mult[i] == 0) {
			(void)fprintf(f, "%llu%c\n", (unsigned long long)(v / mult[i]), units[i]);
			return;
		}
	}
	(void)fprintf(f, "%llu\n", (unsigned long long)v);
}

/* A value the file parser reads back unchanged: one line, no NUL, not
 * empty, no spaces at either end nor a CR at the end (it trims them; a CR
 * inside stays, as in a file line), and "key=value" within
 * a line (as it was in a file; print_kv adds the spaces when they fit). */
static enum idp_err printable(const struct key *k, const char *v, struct idp_error *err)
{
	size_t n = strlen(v);
	if (n == 0 || strlen(k->name) + 1 + n >= SRV_CONFIG_LINE_MAX || strchr(v, '\n') != NULL ||
	    is_space(v[0]) || is_space(v[n - 1]) || v[n - 1] == '\r')
		return idp_error_set(err, IDP_E_FORMAT,
		                     "%s: a value that is empty, too long, has a line break or "
		                     "spaces at an end cannot be written as a config file line",
		                     k->name);
	return IDP_OK;
}

/* "key = value", or "key=value" when the spaces would pass the line limit. */
static void print_kv(FILE *f, const char *key, const char *v)
{
	bool fits = strlen(key) + 3 + strlen(v) < SRV_CONFIG_LINE_MAX;
	(void)fprintf(f, "%s%s%s\n", key, fits ? " = " : "=", v);
}

enum idp_err srv_config_print(FILE *f, const struct srv_config *cfg, struct idp_error *err)
{
	/* Check every value first, so that an error prints nothing. */
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)cfg + k->off;
		enum idp_err rc = IDP_OK;
		if (k->kind == K_PATH && field[0] != '\0')
			rc = printable(k, field, err);
		for (size_t j = 0; rc == IDP_OK && k->kind == K_NAME && j < cfg->n_server_names;
		     j++)
			rc = printable(k, cfg->server_names[j], err);
		for (size_t j = 0; rc == IDP_OK && k->kind == K_RULE && j < cfg->n_rules; j++)
			rc = printable(k, cfg->rules[j], err);
		if (rc != IDP_OK)
			return rc;
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		const uint8_t *field = (const uint8_t *)cfg + k->off;
		uint64_t v = 0;
		switch (k->kind) {
		case K_PATH:
			/* No key holds a secret: paths, URLs and names only. */
			if (field[0] == '\0')
				(void)fprintf(f, "# %s = (not set; default: %s)\n", k->name,
				              k->def);
			else
				print_kv(f, k->name, (const char *)field);
			continue;
		case K_LISTEN:
			for (size_t j = 0; j < cfg->n_listen; j++)
				(void)fprintf(f, "%s = %s\n", k->name, cfg->listen[j].text);
			continue;
		case K_NAME:
			if (cfg->n_server_names == 0)
				(void)fprintf(f, "# %s = (none beyond the default: %s)\n", k->name,
				              k->def);
			for (size_t j = 0; j < cfg->n_server_names; j++)
				print_kv(f, k->name, cfg->server_names[j]);
			continue;
		case K_RULE:
			if (cfg->n_rules == 0)
				(void)fprintf(f, "# %s = (none)\n", k->name);
			for (size_t j = 0; j < cfg->n_rules; j++)
				print_kv(f, k->name, cfg->rules[j]);
			continue;
		case K_BOOL:
			(void)fprintf(f, "%s = %s\n", k->name, *(const bool *)field ? "yes" : "no");
			continue;
		case K_KEYTYPE:
			(void)fprintf(f, "%s = %s\n", k->name, fmt_key_type_name(cfg->token_key));
			continue;
		case K_POLICY: {
			size_t p = (size_t) * (const enum srv_policy *)field;
			(void)fprintf(f, "%s = %s\n", k->name,
			              p < sizeof(policy_names) / sizeof(policy_names[0]) ? policy_names[p]
			                                                         : "?");
			continue;
		}
		case K_DNSSD:
			(void)fprintf(
			        f, "%s = %s\n", k->name,
			        fio_dnssd_backend_name(*(const enum fio_dnssd_backend *)field));
			continue;
		case K_IFACES:
			(void)fprintf(f, "%s = ", k->name);
			if (cfg->dnssd_ifaces_all)
				(void)fputs("all", f);
			else if (cfg->n_dnssd_ifaces == 0)
				(void)fputs("listen", f);
			for (size_t j = 0; !cfg->dnssd_ifaces_all && j < cfg->n_dnssd_ifaces; j++)
				(void)fprintf(f, "%s%s", j > 0 ? "," : "", cfg->dnssd_ifaces[j]);
			(void)fputc('\n', f);
			continue;
		case K_UINT:
		case K_DURATION:
		case K_SIZE:
		case K_RATE:
			break;
		}
		if (k->kind == K_SIZE)
			v = *(const size_t *)field;
		else if (k->size == sizeof(unsigned))
			v = *(const unsigned *)field;
		else
			v = (uint64_t) * (const int64_t *)field;
		(void)fprintf(f, "%s = ", k->name);
		if (k->kind == K_DURATION)
			print_scaled(f, v, "smhd", dur_mult, 4);
		else if (k->kind == K_SIZE || k->kind == K_RATE)
			print_scaled(f, v, "KMG", size_mult, 3);
		else
			(void)fprintf(f, "%llu\n", (unsigned long long)v);
	}
	return IDP_OK;
}

void srv_config_usage(FILE *f)
{
	(void)fprintf(
	        f, "usage: idprovd [--config FILE] [--state-dir DIR] [--listen ADDR:PORT]...\n"
	           "               [--foreground] [--threads N] [--KEY VALUE]...\n"
	           "       idprovd --reset-admin [--config FILE] [--state-dir DIR]\n"
	           "       idprovd --check-config [--config FILE] [--KEY VALUE]...\n"
	           "       idprovd --help | --version\n\n"
	           "Every option is also a config file key (\"key = value\").\n\n"
	           "  --config FILE\n      read keys from FILE first (the command line wins)\n"
	           "  --reset-admin\n      write a new admin credential to STATE-DIR/admin.token "
	           "and exit;\n      a running idprovd takes it on SIGHUP\n"
	           "  --check-config\n      check the configuration as a start would, print "
	           "every effective\n      setting as a config file (key = value) and exit: 0 if "
	           "valid, 2 if not;\n      opens no database, binds no socket, creates no "
	           "file\n");
	for (size_t i = 0; i < N_KEYS; i++)
		(void)fprintf(f, "  --%s%s\n      %s (default: %s)\n", keys[i].name,
		              keys[i].kind == K_BOOL ? "" : " VALUE", keys[i].help, keys[i].def);
}
