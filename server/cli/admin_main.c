/*
 * admin_main.c - idprov-admin: the administrator's client of idprovd's admin
 * API (server/admin.h) over HTTPS with libcurl. Usage and exit codes:
 * docs/man/idprov-admin.8.
 *
 * Answers are read with formats/admin_api (the server's own encoder's
 * parser) and printed as tables (server/cli/table.h), or with --json as the
 * API's JSON document, unchanged.
 *
 * Exit codes: 0 done; 1 refused: by the server (its JSON error code and
 * message are printed) or, before sending, a value the API would refuse;
 * 2 usage; 3 a local problem (file, credential, connection, TLS, an answer
 * that is not the API's).
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "formats/admin_api.h"
#include "formats/api.h"
#include "formats/audit_export.h"
#include "formats/b64.h"
#include "formats/buf.h"
#include "formats/error.h"
#include "formats/file.h"
#include "formats/io/httpc.h"
#include "formats/keys.h"
#include "formats/label.h"
#include "formats/manifest.h"
#include "formats/oob.h"
#include "formats/version.h"
#include "server/cli/table.h"

#define ADM_DEFAULT_URL   "https://localhost:8443"
#define ADM_DEFAULT_CA    IDP_SERVER_STATE_DIR "/ca.pem"
#define ADM_TOKEN_MAX     256u         /* bytes of the credential file */
#define ADM_PEM_MAX       16384u       /* a key or CA PEM */
#define ADM_SIG_MAX       8192u        /* a detached signature */
#define ADM_ANSWER_MAX    FMT_ADMIN_ANSWER_MAX /* bytes of an answer kept */
#define ADM_SQLITE_MAGIC  "SQLite format 3" /* + NUL: the first 16 bytes of a database */
#define ADM_SQLITE_HEAD   100u /* bytes of an SQLite database header */
#define ADM_URL_MAX       2048u
#define ADM_EXPORT_MAX    ((size_t)1 << 32) /* bytes of an audit export verified offline */
#define ADM_TIMEOUT_S     300L
#define ADM_OOB_CSV_MAX   (16u << 20) /* bytes of an oob import file */

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_LOCAL = 3 };

struct opts {
	const char *server;
	const char *ca;
	const char *token_file;
	const char *cert, *key; /* a client certificate from the server's admin-ca */
	bool expect_intact; /* the answer is an audit check: exit 1 unless "intact" */
	const char *secret_out; /* credential add --out: the answer's secret goes there */
	bool json; /* print the API's JSON as it came, not a table */
	bool raw;           /* print the answer's bytes as they are (audit export) */
};

/* How an answer is read and shown. */
enum shape {
	SHAPE_OBJECT, /* one object of kind: name/value lines */
	SHAPE_LIST,   /* a list of rows of kind: a table */
	SHAPE_BATCH,  /* an import's answer (formats/api.h fmt_api_batch) */
	SHAPE_BACKUP, /* a database snapshot, saved to a file */
	SHAPE_RAW,    /* printed as it came (an audit export) */
};

struct answer {
	enum shape shape;
	enum fmt_admin_kind kind;
	const char *save; /* SHAPE_BACKUP: the file */
};

static const struct answer done = {SHAPE_OBJECT, FMT_ADMIN_DONE, NULL};

static void usage(FILE *f)
{
	(void)fprintf(
	        f,
	        "usage: idprov-admin [--server URL] [--ca CA.pem] [--token-file FILE]\n"
	        "                    [--cert CERT.pem --key KEY.pem] [--json] COMMAND\n"
	        "       idprov-admin --help | --version\n"
	        "commands:\n"
	        "  station add ID PUBKEY.pem          trust a station's signing key\n"
	        "  station disable ID                 stop trusting a station\n"
	        "  station list [--after ID]          the stations and their keys (1000 a page)\n"
	        "  ca add CA.pem [--name NAME]        trust a factory CA\n"
	        "  ca list [--after NAME]             the factory CAs (1000 a page)\n"
	        "  import NAME.manifest [--sig FILE]  import a signed manifest\n"
	        "  devices [--state S] [--after ID]   list devices (1000 a page)\n"
	        "  approve ID [--key SHA256]          approve a pending device (with that key)\n"
	        "  approve --label PAYLOAD            approve the device a label names, with the\n"
	        "                                     key it names (formats/label.md)\n"
	        "  reject ID                          reject a device\n"
	        "  revoke ID                          revoke a device and its tokens\n"
	        "  release id|serial|mac|key VALUE    let a later batch reuse a value (key: PEM file)\n"
	        "  flags [--open] [--state open|resolved] [--kind K] [--device ID] [--after SEQ]\n"
	        "                                     the open (or resolved) flags for review\n"
	        "  flag resolve SEQ                   mark flag SEQ reviewed (it leaves the list)\n"
	        "  audit [--subject ID] [--after SEQ] audit entries with their chain hash (of one\n"
	        "                                     device, batch or station: its history)\n"
	        "  audit verify                       recompute the chain; exit 1 naming the first\n"
	        "                                     broken entry\n"
	        "  report unprovisioned [--older-than DURATION] [--batch B] [--after ID]\n"
	        "                                     manifest devices never provisioned\n"
	        "  token-key rotate                   a new token-signing key (the old one still\n"
	        "                                     verifies until its tokens expire)\n"
	        "  backup FILE                        write a consistent copy of the database\n"
	        "  credential add NAME --role admin|viewer [--out FILE]\n"
	        "                                     a named credential; its secret is shown once\n"
	        "                                     (or written to FILE, mode 0600)\n"
	        "  credential list [--after NAME]     the credentials and their roles (1000 a page)\n"
	        "  credential revoke NAME             the credential stops working\n"
	        "  whoami                             the caller's credential and role\n"
	        "  oob add ID [--expires DURATION]    the label secret from stdin (asked for\n"
	        "                                     without echo on a terminal)\n"
	        "  oob import FILE.csv [--expires DURATION]\n"
	        "                                     lines ID,SECRET\n"
	        "  oob list [--after ID]              the out-of-band entries\n"
	        "  audit export [--since SEQ|YYYY-MM-DDTHH:MM:SSZ]\n"
	        "                                     entries and signed checkpoints, JSON Lines\n"
	        "  audit verify --file EXPORT [--key audit.pub]\n"
	        "                                     check an export offline (no server)\n"
	        "  suspend [--reason R]               hold provisioning\n"
	        "  resume                             lift the hold\n"
	        "  suspension                         show the hold and its reason\n"
	        "  allow add|remove HOST:PORT|FINGERPRINT\n"
	        "                                     another DNS-SD publisher that is not a rogue\n"
	        "  allow list [--after ENTRY]         the allow-list (1000 a page)\n"
	        "output: tables (times in local ISO 8601); --json: the API's JSON answer\n"
	        "defaults: --server " ADM_DEFAULT_URL " --ca " ADM_DEFAULT_CA "\n"
	        "credential: --token-file FILE, else $IDPROV_ADMIN_TOKEN, else a client\n"
	        "certificate from the server's admin-ca (--cert/--key)\n");
}

/* The admin credential: the token file's first line, or $IDPROV_ADMIN_TOKEN. */
static int load_token(const struct opts *o, char tok[static ADM_TOKEN_MAX + 1])
{
	if (o->token_file != NULL) {
		uint8_t *buf = NULL;
		size_t len = 0;
		struct idp_error err = {0};
		if (fmt_file_read(o->token_file, ADM_TOKEN_MAX, &buf, &len, &err) != IDP_OK) {
			(void)fprintf(stderr, "idprov-admin: %s: %s\n", o->token_file, err.msg);
			return EXIT_LOCAL;
		}
		size_t n = strcspn((const char *)buf, "\r\n");
		memcpy(tok, buf, n);
		tok[n] = '\0';
		fmt_file_free_secret(buf, len);
	} else {
		const char *e = getenv("IDPROV_ADMIN_TOKEN");
		if (e == NULL || strlen(e) > ADM_TOKEN_MAX) {
			(void)fprintf(stderr, "idprov-admin: no admin credential: give --token-file "
			                      "or set IDPROV_ADMIN_TOKEN\n");
			return EXIT_USAGE;
		}
		(void)snprintf(tok, ADM_TOKEN_MAX + 1, "%s", e);
	}
	if (tok[0] == '\0') {
		(void)fprintf(stderr, "idprov-admin: the admin credential is empty\n");
		return EXIT_LOCAL;
	}
	return 0;
}

/* A database snapshot written to its file as it arrives (the sink of the
 * backup request, fio_httpc_req.sink): constant memory whatever its size.
 * The temp file beside path is made when an answer begins (offset 0, so a
 * new attempt starts it over) and renamed over path by backup_finish only
 * when whole; on any failure the caller drops it and path is untouched. */
struct backup {
	const char *path;
	struct fmt_file_atomic f; /* .fd -1: none open */
	uint8_t head[ADM_SQLITE_HEAD];
	uint64_t got;  /* bytes of this answer written */
	uint64_t size; /* the database's bytes by its header; 0 until known */
};

/* The temp file of the backup in progress, for on_signal: a copy of its
 * name, flagged only while whole (not while fmt_file_atomic writes it). */
static char backup_tmp[sizeof(((struct fmt_file_atomic *)NULL)->tmp)];
static volatile sig_atomic_t backup_tmp_set;

/* SIGINT, SIGTERM, SIGHUP during a backup: remove its temp file (FILE stays
 * as it was), then die of the signal. Async-signal-safe calls only. */
static void on_signal(int sig)
{
	if (backup_tmp_set)
		(void)unlink(backup_tmp);
	(void)signal(sig, SIG_DFL);
	(void)raise(sig);
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The bytes of the database whose header is head (SQLite file format,
 * section 1.3): page size at offset 16 (big-endian, 1 meaning 65536) times
 * the page count at offset 28, which counts only when the change counter at
 * 24 equals the version-valid-for number at 92 (always so in a database
 * that VACUUM INTO wrote). 0 when the header gives no size. */
static uint64_t sqlite_size(const uint8_t head[static ADM_SQLITE_HEAD])
{
	uint32_t page = (uint32_t)head[16] << 8 | head[17];
	if (page == 1)
		page = 65536;
	if (page < 512 || (page & (page - 1)) != 0 || memcmp(head + 24, head + 92, 4) != 0)
		return 0;
	return (uint64_t)page * load_be32(head + 28);
}

/* The next piece of the answer: checked (the SQLite magic, the size its
 * header gives) and appended to the temp file. */
static enum idp_err backup_piece(void *arg, uint64_t offset, const uint8_t *buf, size_t len,
                                 struct idp_error *err)
{
	struct backup *b = arg;
	enum idp_err rc;
	if (offset == 0) { /* an answer begins: the file starts over */
		backup_tmp_set = 0;
		fmt_file_atomic_abort(&b->f);
		b->got = b->size = 0;
		if ((rc = fmt_file_atomic_open(&b->f, b->path, 0600, err)) != IDP_OK)
			return rc;
		memcpy(backup_tmp, b->f.tmp, sizeof(backup_tmp));
		backup_tmp_set = 1;
	}
	if (b->got < ADM_SQLITE_HEAD) {
		size_t k = len < ADM_SQLITE_HEAD - b->got ? len : ADM_SQLITE_HEAD - (size_t)b->got;
		memcpy(b->head + b->got, buf, k);
		if (b->got + k >= sizeof(ADM_SQLITE_MAGIC) &&
		    memcmp(b->head, ADM_SQLITE_MAGIC, sizeof(ADM_SQLITE_MAGIC)) != 0)
			return idp_error_set(err, IDP_E_FORMAT, "the answer is not an SQLite database");
		if (b->got + k == ADM_SQLITE_HEAD && (b->size = sqlite_size(b->head)) == 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "the answer's SQLite header gives no database size");
	}
	if (b->size > 0 && len > b->size - b->got)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "the answer is longer than the %llu bytes its SQLite header gives",
		                     (unsigned long long)b->size);
	rc = fmt_file_atomic_write(&b->f, buf, len, err);
	b->got += len;
	return rc;
}

/* The whole answer is in b's temp file: unless it is shorter than its
 * header says, make it b->path (fsync'ed, renamed, directory fsync'ed) and
 * print {"ok":true,"file","bytes"}. */
static int backup_finish(const struct opts *o, struct backup *b)
{
	struct idp_error err = {0};
	enum idp_err rc;
	if (b->got < sizeof(ADM_SQLITE_MAGIC))
		rc = idp_error_set(&err, IDP_E_FORMAT, "the answer is not an SQLite database");
	else if (b->size == 0)
		rc = idp_error_set(&err, IDP_E_FORMAT,
		                   "the answer is cut: %llu bytes, less than an SQLite header",
		                   (unsigned long long)b->got);
	else if (b->got != b->size)
		rc = idp_error_set(&err, IDP_E_FORMAT,
		                   "the answer is cut: %llu bytes, its SQLite header gives %llu",
		                   (unsigned long long)b->got, (unsigned long long)b->size);
	else
		rc = fmt_file_atomic_commit(&b->f, 0, &err);
	if (rc != IDP_OK) {
		fmt_file_atomic_abort(&b->f);
		(void)fprintf(stderr, "idprov-admin: %s\n", err.msg);
		return EXIT_LOCAL;
	}
	if (!o->json) {
		char bytes[32];
		(void)snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)b->got);
		const char *names[] = {"file", "bytes"}, *values[] = {b->path, bytes};
		adm_table_pairs(stdout, names, values, 2);
		return 0;
	}
	cJSON *j = cJSON_CreateObject();
	char *s = NULL;
	if (j != NULL && cJSON_AddBoolToObject(j, "ok", 1) != NULL &&
	    cJSON_AddStringToObject(j, "file", b->path) != NULL &&
	    cJSON_AddNumberToObject(j, "bytes", (double)b->got) != NULL)
		s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	(void)printf("%s\n", s != NULL ? s : "{\"ok\":true}");
	cJSON_free(s);
	return 0;
}

/* An answer that does not parse as the API's: EXIT_LOCAL, saying why. */
static int not_api(const struct idp_error *err)
{
	(void)fprintf(stderr, "idprov-admin: the answer is not the admin API's: %s\n", err->msg);
	return EXIT_LOCAL;
}

/* Parse the answer buf[0..len) as a says (formats/admin_api.h) and print it:
 * as it came with --json, else as a table. An audit check that is not
 * intact is EXIT_REFUSED, naming the broken entry on stderr. */
static int show(const struct opts *o, const struct answer *a, const uint8_t *buf, size_t len)
{
	struct idp_error err = {0};
	int rc = 0;
	if (a->shape == SHAPE_RAW) {
		(void)printf("%s\n", buf != NULL ? (const char *)buf : "");
		return 0;
	}
	if (a->shape == SHAPE_BATCH) {
		struct fmt_api_batch b;
		if (fmt_api_batch_parse(buf, len, &b, &err) != IDP_OK)
			return not_api(&err);
		char seq[24], n[24];
		(void)snprintf(seq, sizeof(seq), "%lld", (long long)b.sequence);
		(void)snprintf(n, sizeof(n), "%lld", (long long)b.devices);
		const char *names[] = {"batch_id", "sequence", "devices", "created", "gap"};
		const char *values[] = {b.batch_id, seq, n, b.created ? "yes" : "no",
		                        b.gap ? "yes" : "no"};
		if (o->json)
			(void)printf("%s\n", (const char *)buf);
		else
			adm_table_pairs(stdout, names, values, 5);
		return 0;
	}
	if (a->shape == SHAPE_LIST) {
		struct fmt_admin_list l;
		if (fmt_admin_list_parse(a->kind, buf, len, &l, &err) != IDP_OK)
			return not_api(&err);
		if (o->json)
			(void)printf("%s\n", (const char *)buf);
		else if (adm_table_list(stdout, &l) != 0)
			rc = EXIT_LOCAL;
		fmt_admin_list_free(&l);
		return rc;
	}
	union {
		struct fmt_admin_done done;
		struct fmt_admin_audit_check check;
		struct fmt_admin_whoami who;
		struct fmt_admin_secret secret;
		struct fmt_admin_suspended suspended;
		struct fmt_admin_suspension suspension;
	} row;
	struct fmt_admin_doc doc;
	if (fmt_admin_parse(a->kind, buf, len, &row, &doc, &err) != IDP_OK)
		return not_api(&err);
	if (o->json)
		(void)printf("%s\n", (const char *)buf);
	else
		adm_table_object(stdout, a->kind, &row);
	if (a->kind == FMT_ADMIN_AUDIT_CHECK && !row.check.intact) {
		(void)fprintf(stderr, "idprov-admin: audit chain broken: %s\n",
		              row.check.reason != NULL ? row.check.reason : "(no reason given)");
		rc = EXIT_REFUSED;
	}
	fmt_admin_doc_free(&doc);
	return rc;
}

/* The answer buf[0..len) of credential add (formats/admin_api.h
 * FMT_ADMIN_SECRET): write its secret to path (0600, atomically, one line)
 * and print the rest, with the file instead of the secret. */
static int save_secret(const struct opts *o, const uint8_t *buf, size_t len, const char *path)
{
	struct fmt_admin_secret a;
	struct fmt_admin_doc doc;
	struct idp_error err = {0};
	if (fmt_admin_parse(FMT_ADMIN_SECRET, buf, len, &a, &doc, &err) != IDP_OK)
		return not_api(&err);
	size_t n = strlen(a.secret);
	char *line = malloc(n + 2);
	int rc = 0;
	if (line == NULL) {
		rc = EXIT_LOCAL;
	} else {
		memcpy(line, a.secret, n);
		line[n] = '\n';
		if (fmt_file_write_atomic(path, (const uint8_t *)line, n + 1, 0600, &err) != IDP_OK) {
			(void)fprintf(stderr, "idprov-admin: %s\n", err.msg);
			rc = EXIT_LOCAL;
		}
		OPENSSL_cleanse(line, n + 1);
		free(line);
	}
	/* The secret's text lives in doc's JSON: wipe it there. */
	OPENSSL_cleanse((char *)(uintptr_t)a.secret, n);
	if (rc == 0 && o->json) {
		cJSON *j = cJSON_CreateObject();
		char *t = NULL;
		if (j != NULL && cJSON_AddBoolToObject(j, "ok", 1) != NULL &&
		    cJSON_AddStringToObject(j, "name", a.name) != NULL &&
		    cJSON_AddStringToObject(j, "role", a.role) != NULL &&
		    cJSON_AddStringToObject(j, "file", path) != NULL)
			t = cJSON_PrintUnformatted(j);
		(void)printf("%s\n", t != NULL ? t : "{\"ok\":true}");
		cJSON_free(t);
		cJSON_Delete(j);
	} else if (rc == 0) {
		const char *names[] = {"name", "role", "file"}, *values[] = {a.name, a.role, path};
		adm_table_pairs(stdout, names, values, 3);
	}
	fmt_admin_doc_free(&doc);
	return rc;
}

/* POST body[0..len) to /v1/admin/PATH (GET when body is NULL) through the
 * shared HTTPS client; show the answer as a says (a backup: written to its
 * file as it arrives). Only 429/503 and failures before anything was sent
 * are tried again (fio_httpc), so no admin action is ever applied twice;
 * a manifest import and a backup (a read) also after a broken connection. */
static int send_req(const struct opts *o, const char *path, const char *type, const void *body,
                    size_t len, const struct fio_httpc_file *file, const char *sig64,
                    const struct answer *a)
{
	static const struct answer raw = {SHAPE_RAW, FMT_ADMIN_DONE, NULL};
	if (a == NULL)
		a = &raw;
	char tok[ADM_TOKEN_MAX + 1] = "";
	/* With --cert and no bearer given, the certificate alone authenticates. */
	bool cert_only = o->cert != NULL && o->token_file == NULL &&
	                 getenv("IDPROV_ADMIN_TOKEN") == NULL;
	int rc = cert_only ? 0 : load_token(o, tok);
	if (rc != 0)
		return rc;
	char apath[ADM_URL_MAX], sigh[ADM_SIG_MAX * 2];
	(void)snprintf(apath, sizeof(apath), "/v1/admin/%s", path);
	const char *hdrs[2] = {NULL, NULL};
	if (sig64 != NULL) {
		(void)snprintf(sigh, sizeof(sigh), "Idprov-Signature: %s", sig64);
		hdrs[0] = sigh;
	}
	struct fio_httpc_opts ho = {.base_url = o->server,
	                            .ca_file = o->ca,
	                            .timeout_s = ADM_TIMEOUT_S,
	                            .attempts = 3,
	                            .client_cert = o->cert,
	                            .client_key = o->key,
	                            .answer_max = ADM_ANSWER_MAX};
	bool has_body = body != NULL || file != NULL;
	/* A file is a manifest: importing it again answers "already imported"
	 * (created false), so it may be sent again after a broken connection;
	 * a backup is a read, its file started over by a new answer. */
	struct backup bk = {.path = a->save, .f = {.fd = -1}};
	if (a->shape == SHAPE_BACKUP) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		(void)sigaction(SIGINT, &sa, NULL);
		(void)sigaction(SIGTERM, &sa, NULL);
		(void)sigaction(SIGHUP, &sa, NULL);
	}
	struct fio_httpc_req r = {.method = has_body ? "POST" : "GET",
	                          .path = apath,
	                          .content_type = has_body ? type : NULL,
	                          .body = body,
	                          .body_len = len,
	                          .bearer = tok[0] != '\0' ? tok : NULL,
	                          .headers = hdrs,
	                          .idempotent = file != NULL || a->shape == SHAPE_BACKUP,
	                          .sink = a->shape == SHAPE_BACKUP ? backup_piece : NULL,
	                          .sink_arg = &bk};
	struct fio_httpc *c = NULL;
	struct fio_httpc_resp resp;
	memset(&resp, 0, sizeof(resp));
	struct idp_error err = {0};
	enum idp_err hrc = fio_httpc_new(&ho, &c, &err);
	if (hrc == IDP_OK)
		hrc = file != NULL ? fio_httpc_do_file(c, &r, file, &resp, &err)
		                   : fio_httpc_do(c, &r, &resp, &err);
	OPENSSL_cleanse(tok, sizeof(tok));
	fio_httpc_free(c);
	if (hrc == IDP_OK) {
		if (a->shape == SHAPE_BACKUP)
			rc = backup_finish(o, &bk);
		else if (o->secret_out != NULL)
			rc = save_secret(o, resp.body, resp.len, o->secret_out);
		else if (o->raw) {
			if (resp.len > 0 && fwrite(resp.body, 1, resp.len, stdout) != resp.len)
				rc = EXIT_LOCAL;
		} else
			rc = show(o, a, resp.body, resp.len);
	} else if (resp.has_api_error) {
		(void)fprintf(stderr, "idprov-admin: refused (%ld %s): %s\n", resp.status,
		              resp.api.code_text, resp.api.message);
		rc = EXIT_REFUSED;
	} else {
		/* Not trusted, unreachable, too large, or no API error body: the
		 * client's message names the server and the problem. */
		(void)fprintf(stderr, "idprov-admin: %s\n", err.msg);
		rc = EXIT_LOCAL;
	}
	backup_tmp_set = 0;
	fmt_file_atomic_abort(&bk.f); /* a failed backup leaves no file */
	fio_httpc_resp_free(&resp);
	return rc;
}

static int post(const struct opts *o, const char *path, const char *type, const void *body,
                size_t len, const char *sig64, const struct answer *a)
{
	return send_req(o, path, type, body, len, NULL, sig64, a);
}

/* POST the request v (a struct of kind) as JSON; a value the API would
 * refuse is refused here, before anything is sent (EXIT_REFUSED). */
static int post_as(const struct opts *o, const char *path, enum fmt_admin_kind kind,
                   const void *v, const struct answer *a)
{
	char *s = NULL;
	size_t len = 0;
	struct idp_error err = {0};
	enum idp_err erc = fmt_admin_encode_text(kind, v, &s, &len, &err);
	if (erc == IDP_E_NOMEM) {
		(void)fprintf(stderr, "idprov-admin: out of memory\n");
		return EXIT_LOCAL;
	}
	if (erc != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: refused before sending: %s\n", err.msg);
		return EXIT_REFUSED;
	}
	int rc = post(o, path, "application/json", s, len, NULL, a);
	OPENSSL_cleanse(s, len); /* an OOB verifier: no secret, but a KDF of one */
	cJSON_free(s);
	return rc;
}

/* post_as() answered by a change's {"ok":true, ...} (FMT_ADMIN_DONE). */
static int post_body(const struct opts *o, const char *path, enum fmt_admin_kind kind,
                     const void *v)
{
	return post_as(o, path, kind, v, &done);
}

static int read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct idp_error err = {0};
	if (fmt_file_read(path, max, buf, len, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: %s\n", err.msg); /* names path */
		return EXIT_LOCAL;
	}
	return 0;
}

/* The text of file path (a PEM) into *text; free it with free(). */
static int read_text(const char *path, char **text)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_file(path, ADM_PEM_MAX, &buf, &len);
	*text = (char *)buf;
	if (rc == 0 && strlen(*text) != len) {
		(void)fprintf(stderr, "idprov-admin: %s: a NUL byte in a text file\n", path);
		free(buf);
		*text = NULL;
		rc = EXIT_LOCAL;
	}
	return rc;
}

static int import(const struct opts *o, const char *manifest, const char *sig_path)
{
	char def[4096];
	if (sig_path == NULL) {
		(void)snprintf(def, sizeof(def), "%s.sig", manifest);
		sig_path = def;
	}
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	int rc = 0;
	/* The manifest first: a mistyped manifest path is named as such, not as
	 * the missing .sig beside it. */
	if (access(manifest, R_OK) != 0) {
		(void)fprintf(stderr, "idprov-admin: %s: %s\n", manifest, strerror(errno));
		rc = EXIT_LOCAL;
	}
	if (rc == 0)
		rc = read_file(sig_path, ADM_SIG_MAX, &sig, &sig_len);
	char sig64[ADM_SIG_MAX * 2];
	if (rc == 0) {
		(void)fmt_b64_encode(FMT_B64_STD, sig, sig_len, sig64);
		static const struct answer batch = {SHAPE_BATCH, FMT_ADMIN_DONE, NULL};
		/* Sent from the file as it is read, and checked as it goes: a
		 * damaged file is stopped before its end leaves. */
		struct fmt_manifest_check chk = {0};
		const struct fio_httpc_file file = {manifest, fmt_manifest_check_piece, &chk};
		rc = send_req(o, "import", "application/vnd.idprov.manifest", NULL, 0, &file, sig64,
		              &batch);
		fmt_manifest_check_free(&chk);
	}
	free(sig);
	return rc;
}

/* DURATION as seconds: a positive integer with an optional unit s, m, h,
 * d or w ("90" and "90s" are the same); 0 when it is not one. */
static long long parse_duration(const char *v)
{
	static const struct {
		char unit;
		long long secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
	size_t n = strspn(v, "0123456789");
	if (n == 0 || n > 12)
		return 0;
	long long x = strtoll(v, NULL, 10), mul = 0;
	if (v[n] == '\0')
		mul = 1;
	for (size_t i = 0; v[n] != '\0' && v[n + 1] == '\0' && i < sizeof(units) / sizeof(units[0]);
	     i++)
		if (v[n] == units[i].unit)
			mul = units[i].secs;
	return x * mul;
}

/* GET a listing: path with the options of argv[1..argc) as query
 * parameters: "--name VALUE" for each of names[0..n) (dashes in a name
 * become "_" in the query); "--open" is skipped when skip_open (flags list
 * only open ones anyway); "--older-than" takes a DURATION. */
static int list(const struct opts *o, const char *base, enum fmt_admin_kind kind, int argc,
                char **argv, const char *const *names, size_t n_names, bool skip_open)
{
	char path[1024];
	struct fmt_buf b;
	fmt_buf_init_fixed(&b, path, sizeof(path), sizeof(path) - 1, 0);
	fmt_buf_add_str(&b, base);
	for (int i = 1; i < argc; i++) {
		if (skip_open && strcmp(argv[i], "--open") == 0)
			continue;
		size_t k = 0;
		while (k < n_names &&
		       (strncmp(argv[i], "--", 2) != 0 || strcmp(argv[i] + 2, names[k]) != 0))
			k++;
		if (k == n_names || i + 1 >= argc)
			return EXIT_USAGE;
		const char *v = argv[++i];
		char secs[32];
		if (strcmp(names[k], "older-than") == 0) {
			long long d = parse_duration(v);
			if (d <= 0) {
				(void)fprintf(stderr,
				              "idprov-admin: --older-than: not a duration (e.g. 90s, "
				              "30m, 12h, 7d, 2w): %s\n",
				              v);
				return EXIT_USAGE;
			}
			(void)snprintf(secs, sizeof(secs), "%lld", d);
			v = secs;
		}
		char *e = curl_easy_escape(NULL, v, 0);
		if (e == NULL) {
			(void)fprintf(stderr, "idprov-admin: out of memory\n");
			return EXIT_LOCAL;
		}
		char qname[32];
		(void)snprintf(qname, sizeof(qname), "%s", names[k]);
		for (char *p = qname; *p != '\0'; p++)
			if (*p == '-')
				*p = '_';
		fmt_buf_addf(&b, "%c%s=%s", memchr(path, '?', b.len) != NULL ? '&' : '?', qname, e);
		curl_free(e);
	}
	if (fmt_buf_status(&b) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: %s: options too long\n", argv[0]);
		return EXIT_USAGE;
	}
	const struct answer a = {SHAPE_LIST, kind, NULL};
	return post(o, path, "application/json", NULL, 0, NULL, &a);
}

/* credential add NAME --role R [--out FILE] | list | revoke NAME */
static int credential(const struct opts *o, int argc, char **argv)
{
	static const char *const after[] = {"after"};
	if (strcmp(argv[0], "list") == 0)
		return list(o, "credentials", FMT_ADMIN_CREDENTIAL, argc, argv, after, 1, false);
	if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
		const struct fmt_admin_name n = {.name = argv[1]};
		return post_body(o, "credentials/revoke", FMT_ADMIN_NAME, &n);
	}
	if ((argc != 4 && argc != 6) || strcmp(argv[0], "add") != 0)
		return EXIT_USAGE;
	struct opts c = *o;
	const char *role = NULL;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--role") == 0)
			role = argv[i + 1];
		else if (strcmp(argv[i], "--out") == 0)
			c.secret_out = argv[i + 1];
		else
			return EXIT_USAGE;
	}
	if (role == NULL)
		return EXIT_USAGE;
	static const struct answer secret = {SHAPE_OBJECT, FMT_ADMIN_SECRET, NULL};
	const struct fmt_admin_credential_add a = {.name = argv[1], .role = role};
	return post_as(&c, "credentials", FMT_ADMIN_CREDENTIAL_ADD, &a, &secret);
}

/* POST the verifier of secret[0..len) for id (the KDF runs here: the
 * secret never leaves this process), valid expires seconds (0: the
 * server's default). */
static int oob_post(const struct opts *o, const char *id, const char *secret, size_t len,
                    long long expires)
{
	uint8_t v[FMT_OOB_LEN];
	char v64[64];
	struct idp_error err = {0};
	if (fmt_oob_verifier(id, secret, len, v, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: %s: %s\n", id, err.msg);
		return EXIT_LOCAL;
	}
	(void)fmt_b64_encode(FMT_B64_STD, v, sizeof(v), v64);
	OPENSSL_cleanse(v, sizeof(v));
	const struct fmt_admin_oob_add a = {.device_id = id, .verifier = v64, .expires_in = expires};
	int rc = post_body(o, "oob", FMT_ADMIN_OOB_ADD, &a);
	OPENSSL_cleanse(v64, sizeof(v64));
	return rc;
}

/* The label secret for id: one line of stdin, asked for without echo when
 * stdin is a terminal. Never from argv (it would show in ps). */
static int read_secret(const char *id, char buf[static FMT_OOB_SECRET_MAX + 3], size_t *len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		(void)fprintf(stderr, "label secret for %s: ", id);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool got = fgets(buf, FMT_OOB_SECRET_MAX + 3, stdin) != NULL;
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		(void)fputc('\n', stderr);
	}
	*len = got ? strcspn(buf, "\r\n") : 0;
	if (got && buf[*len] == '\0' && *len > FMT_OOB_SECRET_MAX) {
		(void)fprintf(stderr, "idprov-admin: the secret is longer than %u bytes\n",
		              FMT_OOB_SECRET_MAX);
		return EXIT_LOCAL;
	}
	buf[*len] = '\0';
	if (*len == 0) {
		(void)fprintf(stderr, "idprov-admin: no secret read from stdin\n");
		return EXIT_LOCAL;
	}
	return 0;
}

#define ADM_OOB_LINE_KEEP 256u /* bytes of a line kept: more than ID + "," + SECRET + CR */

/* The next line of f (LF removed): its first keep bytes in buf, its whole
 * length in *n, its last byte in *last (-1: empty). False at the end of the
 * file. */
static bool next_line(FILE *f, char *buf, size_t keep, size_t *n, int *last)
{
	int c;
	bool any = false;
	*n = 0;
	*last = -1;
	while ((c = getc(f)) != EOF) {
		any = true;
		if (c == '\n')
			return true;
		if (*n < keep)
			buf[*n] = (char)c;
		(*n)++;
		*last = c;
	}
	return any;
}

/* path opened for reading a line at a time (at most max bytes), with iobuf
 * as stdio's buffer; NULL after saying why on stderr. */
static FILE *open_lines(const char *path, size_t max, char *iobuf, size_t iolen)
{
	struct idp_error err = {0};
	int fd = -1;
	if (fmt_file_open_read(path, max, &fd, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: %s\n", err.msg); /* names path */
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (f == NULL || setvbuf(f, iobuf, _IOFBF, iolen) != 0) {
		(void)fprintf(stderr, "idprov-admin: %s: %s\n", path, strerror(errno));
		if (f != NULL)
			(void)fclose(f);
		else
			(void)close(fd);
		return NULL;
	}
	return f;
}

/* oob import: each "ID,SECRET" line of path (blank lines, "#" comments and
 * a "device_id,secret" header skipped), all checked before any is sent: the
 * file is read twice, a line at a time (memory does not grow with it). */
static int oob_import(const struct opts *o, const char *path, long long expires)
{
	/* WARNING: the file holds secrets: stdio's buffer and the line are
	 * ours, wiped at the end. */
	static char iobuf[65536];
	char p[ADM_OOB_LINE_KEEP];
	struct idp_error err = {0};
	int rc = 0;
	FILE *f = open_lines(path, ADM_OOB_CSV_MAX, iobuf, sizeof(iobuf));
	if (f == NULL)
		return EXIT_LOCAL;
	size_t sent = 0;
	for (int pass = 0; rc == 0 && pass < 2; pass++) {
		size_t line = 0, n = 0;
		int last = -1;
		if (pass == 1 && fseek(f, 0, SEEK_SET) != 0) {
			(void)fprintf(stderr, "idprov-admin: %s: %s\n", path, strerror(errno));
			rc = EXIT_LOCAL;
		}
		while (rc == 0 && next_line(f, p, sizeof(p), &n, &last)) {
			line++;
			if (n > 0 && last == '\r')
				n--;
			/* A comma past what was kept: an ID too long either way. */
			char *comma = memchr(p, ',', n < ADM_OOB_LINE_KEEP ? n : ADM_OOB_LINE_KEEP);
			bool skip = n == 0 || p[0] == '#' ||
			            (line == 1 && n >= 10 && memcmp(p, "device_id,", 10) == 0);
			if (skip)
				continue;
			size_t il = comma != NULL ? (size_t)(comma - p) : 0;
			size_t sl = comma != NULL ? n - il - 1 : 0;
			char id[FMT_OOB_ID_MAX + 1];
			if (il == 0 || il > FMT_OOB_ID_MAX) {
				(void)fprintf(stderr,
				              "idprov-admin: %s:%zu: not ID,SECRET (an ID of 1 to "
				              "%u bytes)\n",
				              path, line, FMT_OOB_ID_MAX);
				rc = EXIT_LOCAL;
			} else if (fmt_oob_secret_check(comma + 1,
			                                 /* longer: refused by length, and
			                                  * MAX + 1 bytes of it were kept */
			                                 sl > FMT_OOB_SECRET_MAX ? FMT_OOB_SECRET_MAX + 1
			                                                         : sl,
			                                 &err) != IDP_OK) {
				(void)fprintf(stderr, "idprov-admin: %s:%zu: %s\n", path, line,
				              err.msg);
				rc = EXIT_LOCAL;
			} else if (pass == 1) {
				memcpy(id, p, il);
				id[il] = '\0';
				rc = oob_post(o, id, comma + 1, sl, expires);
				sent += rc == 0;
			}
		}
		if (rc == 0 && ferror(f)) {
			(void)fprintf(stderr, "idprov-admin: %s: read: %s\n", path, strerror(errno));
			rc = EXIT_LOCAL;
		}
	}
	(void)fclose(f);
	OPENSSL_cleanse(iobuf, sizeof(iobuf));
	OPENSSL_cleanse(p, sizeof(p));
	(void)fprintf(stderr, "idprov-admin: %s: %zu secrets entered\n", path, sent);
	return rc;
}

/* oob add ID [--expires D] | import FILE [--expires D] | list [--after ID] */
static int oob(const struct opts *o, int argc, char **argv)
{
	if (strcmp(argv[0], "list") == 0) {
		static const char *const names[] = {"after"};
		return list(o, "oob", FMT_ADMIN_OOB, argc, argv, names, 1, false);
	}
	long long expires = 0;
	if (argc == 4 && strcmp(argv[2], "--expires") == 0) {
		expires = parse_duration(argv[3]);
		if (expires <= 0) {
			(void)fprintf(stderr, "idprov-admin: --expires: not a duration (e.g. 12h, 7d)\n");
			return EXIT_USAGE;
		}
	} else if (argc != 2) {
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "import") == 0)
		return oob_import(o, argv[1], expires);
	if (strcmp(argv[0], "add") != 0)
		return EXIT_USAGE;
	char secret[FMT_OOB_SECRET_MAX + 3];
	size_t len = 0;
	int rc = read_secret(argv[1], secret, &len);
	if (rc == 0)
		rc = oob_post(o, argv[1], secret, len, expires);
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

/* ---------------------------------------------------------------- site */

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) as Unix seconds; -1 when it is not one. */
static long long parse_utc(const char *v)
{
	int f[6] = {0};
	static const char seps[] = "--T::Z";
	const char *p = v;
	for (size_t i = 0; i < 6; i++) {
		size_t n = strspn(p, "0123456789");
		if (n == 0 || n > 4 || p[n] != seps[i])
			return -1;
		f[i] = (int)strtol(p, NULL, 10);
		p += n + 1;
	}
	if (*p != '\0' || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 ||
	    f[4] > 59 || f[5] > 60 || f[0] < 1970)
		return -1;
	/* Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
	long long y = f[0] - (f[1] <= 2), m = f[1];
	long long era = y / 400, yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + f[2] - 1;
	long long days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	return days * 86400 + f[3] * 3600LL + f[4] * 60LL + f[5];
}

/* audit verify --file EXPORT [--key audit.pub]: check an export offline
 * (formats/audit_export.h); prints the verdict as JSON, exit 1 unless intact. */
static int verify_export(const char *path, const char *key_path)
{
	static char iobuf[65536], line[FMT_AUDIT_EXPORT_LINE_MAX + 1];
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	struct fmt_key *key = NULL;
	struct idp_error err = {0};
	struct fmt_audit_export_check *c = NULL;
	FILE *f = open_lines(path, ADM_EXPORT_MAX, iobuf, sizeof(iobuf));
	int rc = f != NULL ? 0 : EXIT_LOCAL;
	if (rc == 0 && key_path != NULL) {
		rc = read_file(key_path, ADM_PEM_MAX, &pem, &pem_len);
		if (rc == 0 && fmt_key_parse_public_pem(pem, pem_len, &key, &err) != IDP_OK) {
			(void)fprintf(stderr, "idprov-admin: %s: %s\n", key_path, err.msg);
			rc = EXIT_LOCAL;
		}
	}
	if (rc == 0 && (c = fmt_audit_export_check_new(key)) == NULL) {
		(void)fprintf(stderr, "idprov-admin: out of memory\n");
		rc = EXIT_LOCAL;
	}
	/* Read twice, a line at a time: the entries the checkpoints name,
	 * then the check (formats/audit_export.h). */
	enum idp_err e = IDP_OK;
	for (int pass = 0; rc == 0 && e == IDP_OK && pass < 2; pass++) {
		size_t n = 0;
		int last = -1;
		if (fseek(f, 0, SEEK_SET) != 0)
			break;
		while (e == IDP_OK && next_line(f, line, sizeof(line), &n, &last)) {
			size_t kept = n < sizeof(line) ? n : sizeof(line);
			if (pass == 0)
				fmt_audit_export_check_want(c, (const uint8_t *)line, kept);
			else
				e = fmt_audit_export_check_line(c, (const uint8_t *)line, kept, n, &err);
		}
	}
	if (rc == 0 && ferror(f)) {
		(void)fprintf(stderr, "idprov-admin: %s: read: %s\n", path, strerror(errno));
		rc = EXIT_LOCAL;
	}
	struct fmt_audit_verdict v;
	if (rc == 0 && fmt_audit_export_check_finish(c, &v, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: %s: %s\n", path, err.msg);
		rc = EXIT_REFUSED;
	} else if (rc == 0) {
		(void)printf("{\"intact\":%s,\"first_seq\":%lld,\"last_seq\":%lld,\"entries\":%lld,"
		             "\"checkpoints\":%lld,\"truncated\":%s,\"key_id\":\"%s\"}\n",
		             v.intact ? "true" : "false", (long long)v.first_seq,
		             (long long)v.last_seq, (long long)v.entries, (long long)v.checkpoints,
		             v.truncated ? "true" : "false", v.key_id);
		if (!v.intact) {
			(void)fprintf(stderr, "idprov-admin: audit export broken: %s\n", v.reason);
			rc = EXIT_REFUSED;
		} else if (key == NULL) {
			(void)fprintf(stderr, "idprov-admin: note: checked with the export's own key "
			                      "(give --key audit.pub to check who signed it)\n");
		}
	}
	if (f != NULL)
		(void)fclose(f);
	fmt_audit_export_check_free(c);
	fmt_key_free(key);
	free(pem);
	return rc;
}

/* suspend, resume, suspension, allow, audit export, audit verify --file;
 * -1 when argv is none of them. */
static int site_cmd(const struct opts *o, int argc, char **argv)
{
	const char *cmd = argv[0];
	static const struct answer state = {SHAPE_OBJECT, FMT_ADMIN_SUSPENDED, NULL};
	if (strcmp(cmd, "suspend") == 0 && (argc == 1 || (argc == 3 && strcmp(argv[1], "--reason") == 0))) {
		const struct fmt_admin_suspend sp = {.reason = argc == 3 ? argv[2] : NULL};
		return post_as(o, "suspend", FMT_ADMIN_SUSPEND, &sp, &state);
	}
	if ((argc == 4 || argc == 6) && strcmp(cmd, "audit") == 0 &&
	    strcmp(argv[1], "verify") == 0 && strcmp(argv[2], "--file") == 0) {
		if (argc == 6 && strcmp(argv[4], "--key") != 0)
			return EXIT_USAGE;
		return verify_export(argv[3], argc == 6 ? argv[5] : NULL);
	}
	if (argc == 1 && strcmp(cmd, "resume") == 0) {
		const struct fmt_admin_rotate none = {0};
		return post_as(o, "resume", FMT_ADMIN_ROTATE, &none, &state);
	}
	if (argc == 1 && strcmp(cmd, "suspension") == 0) {
		static const struct answer status = {SHAPE_OBJECT, FMT_ADMIN_SUSPENSION, NULL};
		return post(o, "suspension", "application/json", NULL, 0, NULL, &status);
	}
	static const char *const after[] = {"after"};
	if (argc >= 2 && strcmp(cmd, "allow") == 0 && strcmp(argv[1], "list") == 0)
		return list(o, "allow", FMT_ADMIN_ALLOW, argc - 1, argv + 1, after, 1, false);
	if (argc == 3 && strcmp(cmd, "allow") == 0 &&
	    (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "remove") == 0)) {
		const struct fmt_admin_allow_entry e = {.entry = argv[2]};
		return post_body(o, strcmp(argv[1], "add") == 0 ? "allow" : "allow/remove",
		                 FMT_ADMIN_ALLOW_ENTRY, &e);
	}
	if (argc >= 2 && strcmp(cmd, "audit") == 0 && strcmp(argv[1], "export") == 0 &&
	    (argc == 2 || (argc == 4 && strcmp(argv[2], "--since") == 0))) {
		char path[64] = "audit/export";
		if (argc == 4) {
			const char *v = argv[3];
			size_t n = strspn(v, "0123456789");
			long long t = parse_utc(v);
			if (n > 0 && n <= 18 && v[n] == '\0' && strtoll(v, NULL, 10) > 0)
				(void)snprintf(path, sizeof(path), "audit/export?since_seq=%s", v);
			else if (t >= 0)
				(void)snprintf(path, sizeof(path), "audit/export?since=%lld", t);
			else {
				(void)fprintf(stderr,
				              "idprov-admin: --since: not an entry number or a UTC time "
				              "(2026-11-30T18:00:00Z): %s\n",
				              v);
				return EXIT_USAGE;
			}
		}
		struct opts r = *o;
		r.raw = true;
		return post(&r, path, "application/json", NULL, 0, NULL, NULL);
	}
	return -1;
}

/* approve --label PAYLOAD: the device ID and key fingerprint a label's QR
 * code carries (formats/label.md), approved as approve ID --key SHA256 is:
 * the server answers 409 unless that device presented that key. */
static int approve_label(const struct opts *o, const char *payload)
{
	char id[FMT_ID_MAX + 1];
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	char hex[65];
	struct idp_error err = {0};
	if (fmt_label_parse(payload, strnlen(payload, FMT_LABEL_MAX + 2), id, fp, &err) != IDP_OK) {
		(void)fprintf(stderr, "idprov-admin: --label: %s\n", err.msg);
		return EXIT_LOCAL;
	}
	fmt_key_fingerprint_hex(fp, hex);
	const struct fmt_admin_approve a = {.id = id, .key_sha256 = hex};
	return post_body(o, "devices/approve", FMT_ADMIN_APPROVE, &a);
}

static int run(const struct opts *o, int argc, char **argv)
{
	int site = site_cmd(o, argc, argv);
	if (site >= 0)
		return site;

	const char *cmd = argv[0];
	static const char *const station_opts[] = {"after"};
	if (argc >= 2 && strcmp(cmd, "station") == 0 && strcmp(argv[1], "list") == 0)
		return list(o, "stations", FMT_ADMIN_STATION, argc - 1, argv + 1, station_opts, 1,
		            false);
	if (argc >= 2 && strcmp(cmd, "ca") == 0 && strcmp(argv[1], "list") == 0)
		return list(o, "cas", FMT_ADMIN_CA, argc - 1, argv + 1, station_opts, 1, false);
	if (argc == 2 && strcmp(cmd, "backup") == 0) {
		const struct answer backup = {SHAPE_BACKUP, FMT_ADMIN_DONE, argv[1]};
		return post(o, "backup", "application/json", "", 0, NULL, &backup);
	}
	static const char *const flag_opts[] = {"kind", "device", "after", "state"};
	static const char *const device_opts[] = {"state", "after"};
	static const char *const audit_opts[] = {"after", "subject"};
	static const char *const report_opts[] = {"older-than", "batch", "after"};
	if (strcmp(cmd, "flags") == 0)
		return list(o, "flags", FMT_ADMIN_FLAG, argc, argv, flag_opts, 4, true);
	if (argc == 3 && strcmp(cmd, "flag") == 0 && strcmp(argv[1], "resolve") == 0) {
		const char *v = argv[2];
		size_t n = strspn(v, "0123456789");
		if (n == 0 || n > 18 || v[n] != '\0') {
			(void)fprintf(stderr, "idprov-admin: flag resolve: not a flag number: %s\n", v);
			return EXIT_USAGE;
		}
		const struct fmt_admin_flag_resolve r = {.seq = strtoll(v, NULL, 10)};
		return post_body(o, "flags/resolve", FMT_ADMIN_FLAG_RESOLVE, &r);
	}
	if (strcmp(cmd, "devices") == 0)
		return list(o, "devices", FMT_ADMIN_DEVICE, argc, argv, device_opts, 2, false);
	if (argc == 2 && strcmp(cmd, "audit") == 0 && strcmp(argv[1], "verify") == 0) {
		static const struct answer check = {SHAPE_OBJECT, FMT_ADMIN_AUDIT_CHECK, NULL};
		return post(o, "audit/verify", "application/json", NULL, 0, NULL, &check);
	}
	if (strcmp(cmd, "audit") == 0)
		return list(o, "audit", FMT_ADMIN_AUDIT_ENTRY, argc, argv, audit_opts, 2, false);
	if (argc >= 2 && strcmp(cmd, "report") == 0 && strcmp(argv[1], "unprovisioned") == 0)
		return list(o, "report/unprovisioned", FMT_ADMIN_UNPROVISIONED, argc - 1, argv + 1,
		            report_opts, 3, false);
	if (argc == 1 && strcmp(cmd, "whoami") == 0) {
		static const struct answer who = {SHAPE_OBJECT, FMT_ADMIN_WHOAMI, NULL};
		return post(o, "whoami", "application/json", NULL, 0, NULL, &who);
	}
	if (argc >= 2 && strcmp(cmd, "credential") == 0)
		return credential(o, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(cmd, "oob") == 0)
		return oob(o, argc - 1, argv + 1);
	if (argc == 2 && strcmp(cmd, "token-key") == 0 && strcmp(argv[1], "rotate") == 0) {
		const struct fmt_admin_rotate r = {0};
		return post_body(o, "token-keys/rotate", FMT_ADMIN_ROTATE, &r);
	}
	if (argc == 3 && strcmp(cmd, "station") == 0 && strcmp(argv[1], "disable") == 0) {
		const struct fmt_admin_target t = {.id = argv[2]};
		return post_body(o, "stations/disable", FMT_ADMIN_TARGET, &t);
	}
	if (argc == 4 && strcmp(cmd, "station") == 0 && strcmp(argv[1], "add") == 0) {
		char *pem = NULL;
		int rc = read_text(argv[3], &pem);
		/* A private key never leaves this machine, not even to be refused. */
		if (rc == 0 && strstr(pem, "PRIVATE KEY-----") != NULL) {
			(void)fprintf(stderr,
			              "idprov-admin: %s: this is a private key; give the station's "
			              ".pub file (nothing was sent)\n",
			              argv[3]);
			rc = EXIT_USAGE;
		}
		const struct fmt_admin_station_add a = {.id = argv[2], .public_key = pem};
		if (rc == 0)
			rc = post_body(o, "stations", FMT_ADMIN_STATION_ADD, &a);
		free(pem);
		return rc;
	}
	if ((argc == 3 || argc == 5) && strcmp(cmd, "ca") == 0 && strcmp(argv[1], "add") == 0) {
		if (argc == 5 && strcmp(argv[3], "--name") != 0)
			return EXIT_USAGE;
		char *pem = NULL;
		int rc = read_text(argv[2], &pem);
		const struct fmt_admin_ca_add a = {.pem = pem, .name = argc == 5 ? argv[4] : NULL};
		if (rc == 0)
			rc = post_body(o, "cas", FMT_ADMIN_CA_ADD, &a);
		free(pem);
		return rc;
	}
	if ((argc == 2 || argc == 4) && strcmp(cmd, "import") == 0) {
		if (argc == 4 && strcmp(argv[2], "--sig") != 0)
			return EXIT_USAGE;
		return import(o, argv[1], argc == 4 ? argv[3] : NULL);
	}
	if (argc == 3 && strcmp(cmd, "approve") == 0 && strcmp(argv[1], "--label") == 0)
		return approve_label(o, argv[2]);
	if (argc == 4 && strcmp(cmd, "approve") == 0 && strcmp(argv[2], "--key") == 0) {
		const char *key = argv[3];
		if (strncasecmp(key, "sha256:", 7) == 0)
			key += 7;
		char lower[FMT_ADMIN_SHA256_HEX + 2];
		size_t n = strnlen(key, sizeof(lower) - 1); /* one more: the encoder names it */
		for (size_t i = 0; i < n; i++)
			lower[i] = (char)tolower((unsigned char)key[i]);
		lower[n] = '\0';
		const struct fmt_admin_approve a = {.id = argv[1], .key_sha256 = lower};
		return post_body(o, "devices/approve", FMT_ADMIN_APPROVE, &a);
	}
	if (argc == 2 && (strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0 ||
	                  strcmp(cmd, "revoke") == 0)) {
		char path[32];
		(void)snprintf(path, sizeof(path), "devices/%s", cmd);
		if (strcmp(cmd, "approve") == 0) {
			const struct fmt_admin_approve a = {.id = argv[1]};
			return post_body(o, path, FMT_ADMIN_APPROVE, &a);
		}
		const struct fmt_admin_target t = {.id = argv[1]};
		return post_body(o, path, FMT_ADMIN_TARGET, &t);
	}
	if (argc == 3 && strcmp(cmd, "release") == 0) {
		char *pem = NULL;
		int rc = strcmp(argv[1], "key") == 0 ? read_text(argv[2], &pem) : 0;
		const struct fmt_admin_release r = {.kind = argv[1],
		                                    .value = pem != NULL ? pem : argv[2]};
		if (rc == 0)
			rc = post_body(o, "release", FMT_ADMIN_RELEASE, &r);
		free(pem);
		return rc;
	}
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct opts o = {.server = ADM_DEFAULT_URL, .ca = ADM_DEFAULT_CA};
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o.json = true;
			continue;
		}
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			(void)printf("idprov-admin %s\n", IDP_VERSION);
			return 0;
		}
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--server") == 0)
			o.server = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0)
			o.ca = argv[++i];
		else if (strcmp(argv[i], "--token-file") == 0)
			o.token_file = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0)
			o.cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0)
			o.key = argv[++i];
		else
			break;
	}
	/* --json may also follow the command: take it out of the command's words. */
	int n = i;
	for (int k = i; k < argc; k++) {
		if (strcmp(argv[k], "--json") == 0)
			o.json = true;
		else
			argv[n++] = argv[k];
	}
	argc = n;
	if (i >= argc || strncmp(argv[i], "--", 2) == 0 || strlen(o.server) > ADM_URL_MAX - 64 ||
	    (o.cert == NULL) != (o.key == NULL)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "idprov-admin: cannot start libcurl\n");
		return EXIT_LOCAL;
	}
	int rc = run(&o, argc - i, argv + i);
	curl_global_cleanup();
	if (rc == EXIT_USAGE)
		usage(stderr);
	return rc;
}
