/*
 * state.h - idprovd's state directory: created on first start, reused after.
 * Layout and modes: docs/administrator.md ("State directory").
 *
 *   DIR/            0700
 *     ca.pem        0644  private CA certificate (P-256, CA:TRUE, pathlen 0, 10 years)
 *     ca.key        0600
 *     server.pem    0644  server certificate (serverAuth, 2 years) for the host's names
 *     server.key    0600
 *     token.key     0600  token-signing key (P-256 or Ed25519)
 *     token.pub     0644
 *     admin.hash    0600  scrypt hash of the admin credential (never the credential)
 *     idprov.db     0600  the SQLite store (plus -wal and -shm)
 *     idprovd.lock  0600  held by the running server, holds its PID (server/lock.h)
 *
 * Every file is written atomically (formats/file.h). A missing file is made
 * again from what exists (a missing server certificate is issued again by the
 * CA; a CA is never replaced while its key exists). The server certificate is
 * re-issued when it lacks a configured name, does not chain to the CA, or
 * expires within SRV_STATE_RENEW_DAYS.
 *
 * Not thread-safe while opening; afterwards the struct is read-only and may be
 * shared by every thread.
 */
#ifndef IDP_SERVER_STATE_H
#define IDP_SERVER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "formats/error.h"
#include "formats/keys.h"

#define SRV_STATE_DEFAULT_DIR      "/var/lib/idprov"
#define SRV_STATE_NAMES_MAX        16u  /* extra server names and addresses */
#define SRV_STATE_NAME_MAX         253u /* a DNS name or an address literal */
#define SRV_STATE_PATH_MAX         4000u
#define SRV_STATE_CA_DAYS          3650
#define SRV_STATE_SERVER_DAYS      730
#define SRV_STATE_RENEW_DAYS       30
#define SRV_STATE_ADMIN_SECRET_LEN 43u /* base64url of 32 random bytes */
#define SRV_STATE_CERT_PEM_MAX     16384u

struct srv_state_opts {
	const char *dir;             /* NULL: SRV_STATE_DEFAULT_DIR */
	const char *const *names;    /* extra DNS names / IP addresses for the certificate */
	size_t n_names;              /* <= SRV_STATE_NAMES_MAX */
	enum fmt_key_type token_key; /* type of a new token key (0: P-256) */
	bool lock;                   /* take DIR/idprovd.lock (server/lock.h) before any file */
};

struct srv_state {
	char dir[SRV_STATE_PATH_MAX];
	char db_path[SRV_STATE_PATH_MAX + 16];
	X509 *ca_cert;
	struct fmt_key *ca_key;
	X509 *server_cert;
	struct fmt_key *server_key;
	struct fmt_key *token_key;
	char *ca_pem; /* NUL-terminated PEM of ca_cert, served at GET /v1/ca */
	size_t ca_pem_len;
	char ca_fingerprint[65]; /* SHA-256 of the CA certificate DER, lower-case hex */
	bool created;            /* this open created the directory (first start) */
	bool admin_created;      /* this open created the admin credential */
	bool server_cert_issued; /* this open issued a new server certificate */
	int lock_fd;             /* DIR/idprovd.lock held (opts.lock), else -1 */
};

/* Open the state directory, creating what is missing. When the admin
 * credential is created, admin_secret (SRV_STATE_ADMIN_SECRET_LEN + 1 bytes)
 * gets it NUL-terminated, for the caller to print once and then cleanse;
 * otherwise admin_secret[0] is '\0'. With opts->lock, another process
 * holding the directory's lock gives IDP_E_CONFLICT naming its PID, before
 * any file is read or written. Errors name the file. Caller frees *out
 * with srv_state_free(); NULL on failure. */
IDP_MUST_CHECK enum idp_err srv_state_open(const struct srv_state_opts *opts,
                                           struct srv_state **out,
                                           char admin_secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                                           struct idp_error *err);

/* True when secret[0..len) is the admin credential (constant-time compare of
 * its scrypt hash). Reads DIR/admin.hash on each call. */
IDP_MUST_CHECK enum idp_err srv_state_admin_check(const struct srv_state *state, const char *secret,
                                                  size_t len, bool *ok, struct idp_error *err);

/* Release everything (keys are cleansed by OpenSSL). NULL is a no-op. */
void srv_state_free(struct srv_state *state);

#endif /* IDP_SERVER_STATE_H */
