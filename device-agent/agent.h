/*
 * agent.h - the device agent as a library (libidprov-agent.a): the device's
 * identity (key, ID, MAC, serial), site provisioning against idprovd
 * (formats/api.md) with the proof of possession bound to the agent's own TLS
 * connection, the token's exchange and renewal (formats/token.md), the trust
 * pin of the server's CA, and factory mode (formats/wire.md) until sealed.
 * idprov-agent (agent_main.c) is a thin CLI over it; an application or a
 * driver package can embed it to register itself at install time.
 *
 * Everything a device keeps is in its state directory (mode 0700), each file
 * written atomically (temp + rename: whole after a power cut, old or new), the
 * fsyncs batched where one directory fsync covers several files (see
 * docs/firmware-integrator.md, "State directory"):
 *   key.pem     private key, 0600, created once and never replaced; absent
 *               when the key stays in hardware (key_uri)
 *   key.pub     its public half (SPKI PEM), 0644: the device's one identity;
 *               a different key is refused from then on
 *   ca.pem      the pinned server CA (pre-loaded or trusted on first use)
 *   state.json  0600: provisioning URL, hub URL, the current token and kind
 *   sealed      present once factory mode is closed for good
 *   lock        held (flock) while a context is open: one agent per directory
 *
 * Threads: a context belongs to one thread at a time (it holds one HTTPS
 * client, which is not to be shared); agt_stop() alone may be called from
 * any thread or a signal handler. Distinct contexts on distinct state
 * directories are independent. curl_global_init() is the program's job.
 *
 * Errors follow formats/error.h. Secrets (the out-of-band secret, tokens,
 * the private key) are never logged and are cleansed when freed.
 */
#ifndef IDP_DEVICE_AGENT_AGENT_H
#define IDP_DEVICE_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/api.h"
#include "formats/error.h"
#include "formats/io/dnssd.h"
#include "formats/keys.h"
#include "formats/mac.h"

#define AGT_VERSION       "0.1.0"
#define AGT_PATH_MAX      1024u /* bytes of the state directory path */
#define AGT_WAIT_CAP_S    300   /* longest single wait between two pending polls */
#define AGT_REPROVISION_MAX 3u  /* provisionings in one agt_run_once before giving up */
#define AGT_ATTEMPTS_DEFAULT 3u /* tries of one request (agt_config.attempts) */
#define AGT_ATTEMPTS_MAX    10u
#define AGT_RETRY_TIME_S    60  /* no retry of one request starts later than this after its first try */

enum agt_log_level {
	AGT_LOG_ERROR = 0,
	AGT_LOG_WARN = 1,
	AGT_LOG_INFO = 2,
	AGT_LOG_DEBUG = 3,
};

/* Called for each event: event is a short dotted name ("provision.pending"),
 * msg a one-line text of "key=value" pairs that never holds a secret. */
typedef void (*agt_log_fn)(void *arg, enum agt_log_level level, const char *event,
                           const char *msg);

/* Configuration; copied by agt_open (strings too), so it may be freed after. */
struct agt_config {
	const char *state_dir;      /* required */
	const char *device_id;      /* required: formats/id.h */
	const char *mac;            /* "aa:bb:cc:dd:ee:ff", or NULL: read from mac_iface */
	const char *mac_iface;      /* NULL: "eth0"; read from /sys/class/net/IFACE/address.
	                             * Set: an embedded DNS-SD browse runs on it only */
	const char *serial;         /* optional (factory INFO): formats/id.h, or NULL */
	const char *fw_version;     /* optional (factory INFO), or NULL */
	enum fmt_key_type key_type; /* for a key created now; 0 = P-256 */
	/* Hardware-held key: an OSSL_STORE URI ("handle:0x81000001" through the
	 * tpm2 provider, "pkcs11:..." through a PKCS#11 provider) loaded with
	 * formats/io/keystore.h; the key signs there and no key.pem is ever
	 * written. NULL: the key file key.pem. key_providers: the providers to
	 * load for it, comma-separated ("tpm2"); NULL = "default". */
	const char *key_uri;
	const char *key_providers;
	/* Server: the configured URL ("https://host:port"). NULL: the URL
	 * stored by an earlier provisioning, else discovery by DNS-SD
	 * (formats/api.md §11, through Avahi: dnssd_backend): see agt_run_once. */
	const char *server_url;
	const char *ca_file;        /* pre-loaded CA (PEM): pinned, nothing else accepted */
	/* Without ca_file and without a pin: trust on first use of the CA that
	 * GET /v1/ca serves. When set (64 hex, SHA-256 of the CA certificate's
	 * DER, what DNS-SD carries), that CA must have this fingerprint; else
	 * the fingerprint a DNS-SD discovery found is required the same way. */
	const char *ca_fingerprint;
	int64_t discover_wait_ms;   /* bound of one DNS-SD browse; 0 = 5000 */
	/* Which Avahi discovers (formats/io/dnssd.h): FIO_DNSSD_AUTO (0, the
	 * daemon if it answers on D-Bus, else libavahi-core in the process),
	 * FIO_DNSSD_DAEMON or FIO_DNSSD_EMBEDDED. Process-wide: fio_dnssd_use
	 * is called with it before each discovery. */
	enum fio_dnssd_backend dnssd_backend;
	const char *oob_secret;     /* the label's secret, or NULL: proven with an HMAC bound to
	                               the connection, never sent (formats/oob.h). WARNING: a secret */
	bool use_nonce;             /* always sign with a server nonce (else only when asked) */
	/* Longest total wait while pending, seconds; 0 = no bound. */
	int64_t pending_wait_s;
	int64_t proof_interval_ms;  /* factory: least time between two proofs; 0 = 1000 */
	/* Tries of one request (provision, exchange, renew, with its nonce)
	 * when no decision came back: a transport failure after the request
	 * may have been sent (no answer, a connection reset, half an answer)
	 * or before, and 429 / 503 with a Retry-After of at most 30 s
	 * (throttled, storage_full, unavailable). Each try is a new connection
	 * with a new proof (and a new nonce when one is used), after a backoff
	 * doubled from 1 s with jitter, at least the Retry-After; none starts
	 * more than AGT_RETRY_TIME_S after the first. An answer that is a
	 * decision or a refusal (4xx) is never tried again. 0 =
	 * AGT_ATTEMPTS_DEFAULT, 1 = no retry, at most AGT_ATTEMPTS_MAX. */
	unsigned attempts;
	agt_log_fn log;             /* NULL: silent */
	void *log_arg;
	enum agt_log_level log_level; /* events above it are not reported; 0 = AGT_LOG_INFO */
	/* Read the state only (agt_status beside a running agent): no lock, no
	 * directory or key is created; a missing key is IDP_E_NOTFOUND. */
	bool read_only;
};

/* What agt_status reports. */
struct agt_status {
	char device_id[FMT_API_ID_MAX + 1];
	char mac[FMT_MAC_TEXT_LEN + 1];
	enum fmt_key_type key_type;
	char key_fingerprint[65];  /* SHA-256 of the SPKI DER, hex */
	bool key_in_store;         /* the key is behind key_uri (else key.pem) */
	char provision_url[FMT_API_URL_MAX + 1]; /* "" when never provisioned */
	char server_url[FMT_API_URL_MAX + 1];    /* the hub named by the approval */
	char ca_fingerprint[65];   /* pinned CA, SHA-256 of its DER; "" when none */
	bool has_token;
	bool device_token;         /* the token held is a device token (else provisioning) */
	int64_t token_expires;     /* Unix seconds; 0 without a token */
	int64_t next_renewal;      /* Unix seconds; 0 without a token */
	bool sealed;
};

struct agt_ctx; /* opaque */

/* Open the state directory (created 0700 if missing) and lock it; load the
 * device key or create it (waiting for the kernel's entropy pool) when there
 * is none: a key once written is never replaced, and an unreadable key file
 * is an error, never a reason to make another. With key_uri the key is
 * loaded from its store instead (never created, never written). Reads the
 * MAC. *out gets a context to release with agt_close(); NULL on failure.
 * IDP_E_CONFLICT when another agent holds the directory, or when the key
 * is not the device's identity: key.pub names another key, key.pem exists
 * beside a key_uri, or key.pub exists without key.pem or key_uri (the key
 * lived elsewhere). In read_only mode with key_uri, the key is key.pub (the
 * hardware is not touched). */
IDP_MUST_CHECK enum idp_err agt_open(const struct agt_config *cfg, struct agt_ctx **out,
                                     struct idp_error *err);

/* One step of site mode, blocking: provision when there is no usable token
 * (waiting while pending, within pending_wait_s), exchange a provisioning
 * token at once, renew a device token that is at or past half its lifetime,
 * and provision again when the server refuses the token as expired or
 * revoked. IDP_OK: a valid device token is stored (agt_status says until
 * when). Failures: IDP_E_DENIED rejected or revoked (agt_last_reason says
 * which), IDP_E_VERIFY the server is not the pinned CA's (or the CA
 * fingerprint does not match), IDP_E_AGAIN still pending when the wait ran
 * out or agt_stop was called, IDP_E_IO / IDP_E_TIMEOUT the server could not
 * be reached or DNS-SD found none (retry later). It returns with its
 * connection closed and the TLS session kept in ctx, so the next call (a
 * renewal, a retry) resumes it on a new connection.
 *
 * Discovery (no URL configured or stored): browse _idprov._tcp once (at
 * least 2 s, at most discover_wait_ms), keep the instances with v=1,
 * path=/v1 and a fingerprint, whatever their address. When a CA is trusted already (the
 * pinned ca.pem, ca_file or ca_fingerprint) only the instances naming its
 * fingerprint count, and none is IDP_E_VERIFY; otherwise instances naming
 * different fingerprints are IDP_E_VERIFY (the agent does not choose
 * between CAs); instances that DNS-SD saw but could not resolve are
 * IDP_E_IO then (retry). Among the instances left with an address that is
 * not link-local (none: IDP_E_IO): IPv4 before IPv6, then the lowest
 * instance name, then the lowest address text. The URL is
 * https://ADDRESS:PORT and the TXT fingerprint is required of the CA
 * trusted on first use; the server's certificate must name that address
 * (idprovd's server-name). */
IDP_MUST_CHECK enum idp_err agt_run_once(struct agt_ctx *ctx, struct idp_error *err);

/* Make the next agt_run_once renew the device token even if it is not due
 * (an operator's "renew now"; a revoked device then learns it at once). */
void agt_renew_now(struct agt_ctx *ctx);

/* The device's public key as SPKI PEM in a new NUL-terminated buffer; the
 * caller free()s it. */
IDP_MUST_CHECK enum idp_err agt_public_pem(const struct agt_ctx *ctx, char **pem, size_t *len,
                                           struct idp_error *err);

/* The reason of the last rejection (FMT_API_REASON_*), with its code text in
 * code (FMT_API_CODE_MAX + 1 bytes) when code is not NULL. */
enum fmt_api_reason agt_last_reason(const struct agt_ctx *ctx, char *code);

/* Fill *st from the context and its state directory. */
void agt_status(const struct agt_ctx *ctx, struct agt_status *st);

/* Seal factory mode for good (one-way): from now on the device refuses to
 * sign station challenges. agt_run_once seals after the first device token. */
IDP_MUST_CHECK enum idp_err agt_seal(struct agt_ctx *ctx, struct idp_error *err);

/* Answer a factory station over formats/wire.md on in_fd (read) / out_fd
 * (write), which may be one console: HELLO, INFO, CHALLENGE -> PROOF, with
 * any other text on the line skipped. At most one proof per HELLO session
 * and one per proof_interval_ms; a sealed device answers CHALLENGE with
 * ERROR and signs nothing. Returns IDP_OK at end of input or after
 * agt_stop(); IDP_E_IO when a read or write fails. */
IDP_MUST_CHECK enum idp_err agt_factory_serve(struct agt_ctx *ctx, int in_fd, int out_fd,
                                              struct idp_error *err);

/* Open a console for factory mode: path (a tty: raw 8N1 at baud, no echo,
 * no modem control, flushed as agt_console_raw says; anything else as it
 * is), read-write. *fd gets it. */
IDP_MUST_CHECK enum idp_err agt_console_open(const char *path, unsigned baud, int *fd,
                                             struct idp_error *err);

/* Put the tty fd in raw 8N1 mode at baud (0: keep the speed), then flush
 * it both ways (tcflush TCIOFLUSH): requests queued before the agent
 * listened are never answered late, half a frame left unsent is never sent.
 * IDP_OK and nothing done when fd is not a tty (a pipe, a socket). */
IDP_MUST_CHECK enum idp_err agt_console_raw(int fd, unsigned baud, struct idp_error *err);

/* Ask a running agt_run_once / agt_factory_serve to return soon. Safe from
 * another thread or a signal handler. */
void agt_stop(struct agt_ctx *ctx);

/* Unlock and release ctx (secrets cleansed). NULL is a no-op. */
void agt_close(struct agt_ctx *ctx);

#endif /* IDP_DEVICE_AGENT_AGENT_H */
