/*
 * state.h - idprovd's state directory: created on first start, reused after.
 * Layout and modes: docs/administrator.md ("State directory").
 *
 *   DIR/            0700  (may be a symlink to such a directory, as systemd's
 *                          DynamicUser= makes /var/lib/idprov)
 *     ca.pem        0644  private CA certificate (P-256, CA:TRUE, pathlen 0, 10 years)
 *     ca.key        0600
 *     server.pem    0644  server certificate (serverAuth, 2 years) for the host's names
 *     server.key    0600
 *     token.key     0600  the current token-signing key (P-256 or Ed25519)
 *     token.pub     0644
 *     token.retired 0644  retired token keys still verified: "KID NOT_AFTER SPKI-B64"
 *     admin.hash    0600  "sha256 HASH": SHA-256 of the admin credential
 *     admin.token   0600  the admin credential itself, written once for the admin
 *     idprov.db     0600  the SQLite store (plus -wal and -shm)
 *     idprovd.lock  0600  held by the running server, holds its PID (server/lock.h)
 *
 * Every file is written atomically (formats/file.h). Files are opened without
 * following symlinks and checked with fstat: owned by this user, private files
 * (keys, admin files) with no group or other bits, the others not writable by
 * group or other; anything looser is refused with a message naming the file,
 * its mode and the chmod that fixes it. A missing file is made again from what
 * exists (a missing server certificate is issued again by the CA; a CA is never
 * replaced while its key exists; a missing token.key is made anew and the key
 * of a leftover token.pub is retired, not forgotten). The server certificate
 * is re-issued when it lacks a configured name, does not chain to the CA, or
 * expires within SRV_STATE_RENEW_DAYS.
 *
 * Not thread-safe while opening; afterwards the struct is shared by every
 * thread: its fields are read-only, and the admin credential and the token
 * key ring (the only parts that change while running) have their own locks.
 */
#ifndef IDP_SERVER_STATE_H
#define IDP_SERVER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "formats/error.h"
#include "formats/keys.h"
#include "formats/token.h"
#include "formats/version.h"

#define SRV_STATE_DEFAULT_DIR      IDP_SERVER_STATE_DIR
#define SRV_STATE_NAMES_MAX        16u  /* extra server names and addresses */
#define SRV_STATE_NAME_MAX         253u /* a DNS name or an address literal */
#define SRV_STATE_PATH_MAX         4000u
#define SRV_STATE_CA_DAYS          3650
#define SRV_STATE_SERVER_DAYS      730
#define SRV_STATE_RENEW_DAYS       30
#define SRV_STATE_ADMIN_SECRET_LEN 43u /* base64url of 32 random bytes */
#define SRV_STATE_CERT_PEM_MAX     16384u
#define SRV_STATE_KID_MAX          (FMT_TOKEN_KID_MAX + 1u) /* a kid with its NUL ("t-" + 16 hex) */
#define SRV_STATE_TOKEN_KEYS_MAX   FMT_TOKEN_KEYS_MAX /* token keys held in one run */

struct srv_state_opts {
	const char *dir;             /* NULL: SRV_STATE_DEFAULT_DIR */
	const char *const *names;    /* extra DNS names / IP addresses for the certificate */
	size_t n_names;              /* <= SRV_STATE_NAMES_MAX */
	enum fmt_key_type token_key; /* type of a new token key (0: P-256) */
	bool lock;                   /* take DIR/idprovd.lock (server/lock.h) before any file */
	int64_t token_keep; /* seconds a retired token key stays verified (0: the
	                       longest device token lifetime plus FMT_TOKEN_SKEW) */
};

struct srv_admin_cred;  /* opaque: the admin credential's hash and its lock */
struct srv_token_ring;  /* opaque: token keys, current and retired, and a lock */

struct srv_state {
	char dir[SRV_STATE_PATH_MAX];
	char db_path[SRV_STATE_PATH_MAX + 16];
	X509 *ca_cert;
	struct fmt_key *ca_key;
	X509 *server_cert;
	struct fmt_key *server_key;
	/* The token-signing key when the state was opened (valid until
	 * srv_state_free). After a rotation it is no longer the one that signs:
	 * use srv_state_token_signer() and srv_state_token_keys(). */
	struct fmt_key *token_key;
	struct srv_admin_cred *admin;
	struct srv_token_ring *tokens;
	char *ca_pem; /* NUL-terminated PEM of ca_cert, served at GET /v1/ca;
	               * passed fmt_api_ca_pem_check at open */
	size_t ca_pem_len;
	char ca_fingerprint[2 * FMT_KEY_FINGERPRINT_LEN + 1]; /* SHA-256 of the CA certificate DER, lower-case hex */
	bool created;            /* this open created the directory (first start) */
	bool admin_created;      /* this open created the admin credential (admin.token) */
	bool token_key_created;  /* this open made a new token key */
	char token_kid[SRV_STATE_KID_MAX];   /* kid of the token key at open */
	char token_replaced[SRV_STATE_KID_MAX]; /* kid of a leftover token.pub retired
	                                           when token.key was made anew, or "" */
	bool server_cert_issued; /* this open issued a new server certificate */
	int lock_fd;             /* DIR/idprovd.lock held (opts.lock), else -1 */
};

/* Open the state directory, creating what is missing. When the admin
 * credential is created it is written to DIR/admin.token (0600) and also put
 * in admin_secret (SRV_STATE_ADMIN_SECRET_LEN + 1 bytes) NUL-terminated, for
 * tests: idprovd cleanses it unused and never prints it. Otherwise
 * admin_secret[0] is '\0'. An admin.hash from an older idprovd (scrypt) is
 * refused, naming `idprovd --reset-admin`. With opts->lock, another process
 * holding the directory's lock gives IDP_E_CONFLICT naming its PID, before
 * any file is read or written. Errors name the file. Caller frees *out with
 * srv_state_free(); NULL on failure. */
IDP_MUST_CHECK enum idp_err srv_state_open(const struct srv_state_opts *opts,
                                           struct srv_state **out,
                                           char admin_secret[static SRV_STATE_ADMIN_SECRET_LEN + 1],
                                           struct idp_error *err);

/* *ok = true when secret[0..len) is the admin credential: a SHA-256 of it
 * compared with CRYPTO_memcmp against the hash loaded at open (or at the last
 * srv_state_admin_reload); no file is read and no KDF runs, so it is cheap
 * enough for the event loop and for a request-head filter. Empty or longer
 * than 256 bytes is *ok = false. Always IDP_OK today (the signature leaves
 * room for a failing check). Thread-safe. */
IDP_MUST_CHECK enum idp_err srv_state_admin_check(const struct srv_state *state, const char *secret,
                                                  size_t len, bool *ok, struct idp_error *err);

/* Read DIR/admin.hash again (idprovd does on SIGHUP, after --reset-admin).
 * On failure the credential in use stays. Thread-safe. */
IDP_MUST_CHECK enum idp_err srv_state_admin_reload(const struct srv_state *state,
                                                   struct idp_error *err);

/* idprovd --reset-admin: check dir as srv_state_open does, then write a new
 * random credential to DIR/admin.token (0600) and its hash to DIR/admin.hash.
 * The old credential stops working when the server reloads (SIGHUP) or
 * restarts. path gets DIR/admin.token. The secret is never returned. Run
 * by root on a directory owned by another user (the server's, e.g. under
 * systemd's DynamicUser=), the two files are given to that user. */
IDP_MUST_CHECK enum idp_err srv_state_admin_reset(const char *dir,
                                                  char path[static SRV_STATE_PATH_MAX + 32],
                                                  struct idp_error *err);

/* The current token-signing key (borrowed, valid until srv_state_free) and
 * its kid. Thread-safe. */
void srv_state_token_signer(const struct srv_state *state, const struct fmt_key **key,
                            char kid[static SRV_STATE_KID_MAX]);

/* The verification key set at time now: the current key first, then every
 * retired key whose not-after time has not passed. Kids and keys are
 * borrowed, valid until srv_state_free. Returns the count (at least 1).
 * Thread-safe. */
size_t srv_state_token_keys(const struct srv_state *state, int64_t now,
                            struct fmt_token_key keys[static SRV_STATE_TOKEN_KEYS_MAX]);

/* Rotate the token key: a new key of the current one's type signs from now
 * on; the old one is retired (kept for verification) until now plus the
 * keep time, in DIR/token.retired. Files are written before the switch, so a
 * crash leaves either the old or the new key current, and the old one
 * verified. kid gets the new kid. IDP_E_LIMIT when this run already holds
 * SRV_STATE_TOKEN_KEYS_MAX keys (restart to drop expired ones). Thread-safe
 * (rotations are serialised). */
IDP_MUST_CHECK enum idp_err srv_state_token_rotate(const struct srv_state *state, int64_t now,
                                                   char kid[static SRV_STATE_KID_MAX],
                                                   struct idp_error *err);

/* The audit key (server/checkpoint.h): DIR/audit.key, loaded and checked
 * as token.key is; made on first call as Ed25519, with DIR/audit.pub
 * (0644), and then *created is true. Caller frees *out. */
IDP_MUST_CHECK enum idp_err srv_state_audit_key(const struct srv_state *state,
                                                struct fmt_key **out, bool *created,
                                                struct idp_error *err);

/* Read DIR/name whole (at most max bytes; a regular file of ours, not a
 * symlink, not writable by group or others): IDP_E_NOTFOUND when absent.
 * Free *out with fmt_file_free_secret(*out, *len). */
IDP_MUST_CHECK enum idp_err srv_state_read_public(const char *dir, const char *name, size_t max,
                                                  uint8_t **out, size_t *len,
                                                  struct idp_error *err);

/* Release everything (keys are cleansed by OpenSSL). NULL is a no-op. */
void srv_state_free(struct srv_state *state);

#endif /* IDP_SERVER_STATE_H */
