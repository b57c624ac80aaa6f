/*
 * manifest_main.c - idprov-manifest: make station keys, create and sign batch
 * manifests from a device list, verify and show them. Man page:
 * docs/man/idprov-manifest.1; format: formats/manifest.md.
 *
 * Exit codes: 0 success; 1 refused (bad signature, invalid manifest or device
 * list); 2 usage; 3 any other failure (I/O, out of memory, crypto).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "enroll/manifest_build.h"
#include "formats/devlist.h"
#include "formats/file.h"
#include "formats/keyfile.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/manifest_dedup.h"
#include "formats/manifest_sig.h"
#include "formats/version.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2
#define EXIT_ERROR   3

#define CHUNK        65536u
#define PATH_MAX_ARG 4000u
#define DEVICES_MAX  ((size_t)1 << 32) /* bytes of a device list */
#define SHOW_MAX     ((size_t)256 << 20) /* show reads the whole body into memory */

static const char *prog = "idprov-manifest";

static void usage(void)
{
	(void)fprintf(stderr,
	        "usage: %s keygen --type p256|ed25519 --out KEY [--pub PUB] [--force]\n"
	        "       %s create --key KEY [--cert CERT [--chain PEM]] --batch ID --station ID\n"
	        "              --seq N [--prev PREV.manifest | --prev-sha256 HEX] --product TEXT\n"
	        "              [--created YYYY-MM-DDTHH:MM:SSZ] --devices FILE [--format csv|jsonl]\n"
	        "              --out NAME.manifest\n"
	        "       %s verify NAME.manifest [--sig SIG] (--station-pub PUB | --ca CA.pem) [-q]\n"
	        "       %s show NAME.manifest [--sig SIG] (--station-pub PUB | --ca CA.pem)\n"
	        "       %s --version | --help\n",
	        prog, prog, prog, prog, prog);
}

/* Exit code for an error code. */
static int exit_for(enum idp_err rc)
{
	switch (rc) {
	case IDP_OK: return 0;
	case IDP_E_ARG: return EXIT_USAGE;
	case IDP_E_FORMAT:
	case IDP_E_LIMIT:
	case IDP_E_UNSUPPORTED:
	case IDP_E_VERIFY:
	case IDP_E_DUPLICATE: return EXIT_REFUSED;
	default: return EXIT_ERROR;
	}
}

static int report(enum idp_err rc, const struct idp_error *err)
{
	int code = exit_for(rc);
	(void)fprintf(stderr, "%s: %s%s\n", prog, code == EXIT_REFUSED ? "REFUSED: " : "", err->msg);
	return code;
}

/* ---------------------------------------------------------------- options */

struct opts {
	const char *type, *out, *pub, *key, *cert, *chain, *batch, *station, *seq, *prev,
		*prev_sha256, *product, *created, *devices, *format, *sig, *station_pub, *ca;
	const char *file; /* the one positional argument */
	bool force, quiet;
};

static const struct {
	const char *name;
	size_t off;
} value_opts[] = {
	{"--type", offsetof(struct opts, type)},
	{"--out", offsetof(struct opts, out)},
	{"--pub", offsetof(struct opts, pub)},
	{"--key", offsetof(struct opts, key)},
	{"--cert", offsetof(struct opts, cert)},
	{"--chain", offsetof(struct opts, chain)},
	{"--batch", offsetof(struct opts, batch)},
	{"--station", offsetof(struct opts, station)},
	{"--seq", offsetof(struct opts, seq)},
	{"--prev", offsetof(struct opts, prev)},
	{"--prev-sha256", offsetof(struct opts, prev_sha256)},
	{"--product", offsetof(struct opts, product)},
	{"--created", offsetof(struct opts, created)},
	{"--devices", offsetof(struct opts, devices)},
	{"--format", offsetof(struct opts, format)},
	{"--sig", offsetof(struct opts, sig)},
	{"--station-pub", offsetof(struct opts, station_pub)},
	{"--ca", offsetof(struct opts, ca)},
};

static bool parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--force") == 0) {
			o->force = true;
			continue;
		}
		if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			o->quiet = true;
			continue;
		}
		bool found = false;
		for (size_t k = 0; k < sizeof(value_opts) / sizeof(value_opts[0]) && !found; k++) {
			if (strcmp(a, value_opts[k].name) != 0)
				continue;
			found = true;
			if (i + 1 >= argc) {
				(void)fprintf(stderr, "%s: %s needs a value\n", prog, a);
				return false;
			}
			const char **slot = (const char **)(void *)((char *)o + value_opts[k].off);
			*slot = argv[++i];
		}
		if (found)
			continue;
		if (a[0] == '-' || o->file != NULL) {
			(void)fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, a);
			return false;
		}
		o->file = a;
	}
	return true;
}

static bool need(const char *v, const char *name)
{
	if (v == NULL)
		(void)fprintf(stderr, "%s: %s is required\n", prog, name);
	return v != NULL;
}

/* ---------------------------------------------------------------- keygen */

static int cmd_keygen(const struct opts *o)
{
	if (!need(o->type, "--type") || !need(o->out, "--out"))
		return EXIT_USAGE;
	struct idp_error err = {0};
	enum fmt_key_type t;
	enum idp_err rc = fmt_key_type_parse(o->type, strlen(o->type), &t, &err);
	if (rc != IDP_OK) {
		(void)fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_USAGE;
	}
	char pub[PATH_MAX_ARG + 8];
	size_t n = strnlen(o->out, PATH_MAX_ARG + 1);
	if (n > PATH_MAX_ARG) {
		(void)fprintf(stderr, "%s: --out: path too long\n", prog);
		return EXIT_USAGE;
	}
	int pn;
	if (o->pub != NULL)
		pn = snprintf(pub, sizeof(pub), "%s", o->pub);
	else if (n > 4 && strcmp(o->out + n - 4, ".key") == 0)
		pn = snprintf(pub, sizeof(pub), "%.*s.pub", (int)(n - 4), o->out);
	else
		pn = snprintf(pub, sizeof(pub), "%s.pub", o->out);
	if (pn < 0 || (size_t)pn >= sizeof(pub)) {
		(void)fprintf(stderr, "%s: --pub: path too long\n", prog);
		return EXIT_USAGE;
	}
	if (!o->force && (access(o->out, F_OK) == 0 || access(pub, F_OK) == 0)) {
		(void)fprintf(stderr, "%s: REFUSED: %s or %s exists; use --force to replace a key\n",
		        prog, o->out, pub);
		return EXIT_REFUSED;
	}
	struct fmt_key *k = NULL;
	rc = fmt_key_generate(t, &k, &err);
	if (rc == IDP_OK)
		rc = fmt_keyfile_save(k, o->out, pub, &err);
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	if (rc == IDP_OK)
		rc = fmt_key_fingerprint(k, fp, &err);
	fmt_key_free(k);
	if (rc != IDP_OK)
		return report(rc, &err);
	char hex[65];
	fmt_key_fingerprint_hex(fp, hex);
	(void)printf("%s: %s station key (mode 0600), public key %s\nfingerprint %s\n", o->out, o->type,
	       pub, hex);
	return 0;
}

/* ---------------------------------------------------------------- files */

/* SHA-256 of a whole file, streamed. */
static enum idp_err file_sha256(const char *path, uint8_t out[static FMT_MANIFEST_HASH_LEN],
                                struct idp_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return idp_error_set(err, errno == ENOENT ? IDP_E_NOTFOUND : IDP_E_IO, "%s: %s", path,
		                     strerror(errno));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	enum idp_err rc = IDP_OK;
	if (md == NULL || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "sha-256");
		goto out;
	}
	static uint8_t buf[CHUNK];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = idp_error_set(err, IDP_E_IO, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)r) != 1) {
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "sha-256");
			goto out;
		}
	}
	unsigned n = 0;
	if (EVP_DigestFinal_ex(md, out, &n) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "sha-256");
out:
	EVP_MD_CTX_free(md);
	(void)close(fd);
	return rc;
}

/* ---------------------------------------------------------------- create */

/* Load the key of a device-list line that names a PEM file. */
static enum idp_err load_pem_pub(const char *path, struct fmt_manifest_record *r,
                                 struct idp_error *err)
{
	struct fmt_key *k = NULL;
	enum idp_err rc = fmt_keyfile_load_public(path, &k, err);
	if (rc == IDP_OK)
		rc = fmt_key_spki_der(k, r->pub, &r->pub_len, err);
	fmt_key_free(k);
	if (rc != IDP_OK)
		idp_error_prefix(err, "pub");
	return rc;
}

struct create_ctx {
	struct fmt_buf records;
	uint64_t count;
	struct fmt_manifest_dedup *dedup;
};

/* Read the device list and encode every record line (checked, deduplicated). */
static enum idp_err read_devices(const char *path, bool jsonl, struct create_ctx *c,
                                 struct idp_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, DEVICES_MAX, &buf, &len, err);
	if (rc != IDP_OK)
		return rc;
	static struct fmt_manifest_record r;
	static char pem_path[FMT_DEVLIST_PATH_MAX + 1];
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	struct fmt_devlist d = {.format = jsonl ? FMT_DEVLIST_JSONL : FMT_DEVLIST_CSV};
	for (;;) {
		int got = 0;
		rc = fmt_devlist_next(&d, buf, len, &r, pem_path, &got, err);
		if (rc == IDP_OK && got == 0)
			break;
		if (rc == IDP_OK && pem_path[0] != '\0')
			rc = load_pem_pub(pem_path, &r, err);
		size_t ll = 0;
		if (rc == IDP_OK)
			rc = fmt_manifest_encode_record(&r, line, &ll, err);
		if (rc == IDP_OK)
			rc = fmt_manifest_dedup_add(c->dedup, &r, err);
		if (rc == IDP_OK) {
			fmt_buf_add(&c->records, line, ll);
			rc = fmt_buf_check(&c->records, "manifest", err);
		}
		if (rc != IDP_OK) {
			idp_error_prefix(err, "%s: line %" PRIu64, path, d.lineno);
			break;
		}
		c->count++;
	}
	free(buf);
	if (rc == IDP_OK && c->count == 0)
		rc = idp_error_set(err, IDP_E_FORMAT, "%s: no devices", path);
	return rc;
}

/* Copy a command-line value into a fixed field; too long is refused, never cut. */
static enum idp_err copy_arg(char *dst, size_t size, const char *src, const char *name,
                             struct idp_error *err)
{
	size_t n = strnlen(src, size);
	if (n >= size)
		return idp_error_set(err, IDP_E_LIMIT, "%s: longer than %zu bytes", name, size - 1);
	memcpy(dst, src, n + 1);
	return IDP_OK;
}

/* The header fields from the command line; enr_manifest_write does the rest. */
static enum idp_err fill_header(const struct opts *o, struct fmt_manifest_header *h,
                                struct idp_error *err)
{
	memset(h, 0, sizeof(*h));
	enum idp_err rc;
	if ((rc = copy_arg(h->batch, sizeof(h->batch), o->batch, "--batch", err)) ||
	    (rc = copy_arg(h->station, sizeof(h->station), o->station, "--station", err)) ||
	    (rc = copy_arg(h->product, sizeof(h->product), o->product, "--product", err)))
		return rc;
	char *end = NULL;
	errno = 0;
	unsigned long long seq = strtoull(o->seq, &end, 10);
	if (errno != 0 || end == o->seq || *end != '\0' || o->seq[0] == '-')
		return idp_error_set(err, IDP_E_ARG, "--seq: \"%s\" is not a number", o->seq);
	h->seq = seq;
	if (o->created != NULL) {
		if ((rc = copy_arg(h->created, sizeof(h->created), o->created, "--created", err)))
			return rc;
	} else if ((rc = fmt_manifest_time_format((int64_t)time(NULL), h->created, err))) {
		return rc;
	}
	if (o->prev != NULL && (rc = file_sha256(o->prev, h->prev, err)) != IDP_OK)
		return rc;
	if (o->prev_sha256 != NULL) {
		const char *s = o->prev_sha256;
		if (strlen(s) != (size_t)2 * FMT_MANIFEST_HASH_LEN)
			return idp_error_set(err, IDP_E_ARG, "--prev-sha256: expected 64 hex digits");
		for (size_t i = 0; i < FMT_MANIFEST_HASH_LEN; i++) {
			char two[3] = {s[2 * i], s[2 * i + 1], '\0'};
			char *e = NULL;
			unsigned long v = strtoul(two, &e, 16);
			if (*e != '\0')
				return idp_error_set(err, IDP_E_ARG,
				                     "--prev-sha256: expected 64 hex digits");
			h->prev[i] = (uint8_t)v;
		}
	}
	return IDP_OK;
}

static int cmd_create(const struct opts *o)
{
	if (!need(o->key, "--key") || !need(o->batch, "--batch") ||
	    !need(o->station, "--station") || !need(o->seq, "--seq") ||
	    !need(o->product, "--product") || !need(o->devices, "--devices") ||
	    !need(o->out, "--out"))
		return EXIT_USAGE;
	if (o->prev != NULL && o->prev_sha256 != NULL) {
		(void)fprintf(stderr, "%s: give --prev or --prev-sha256, not both\n", prog);
		return EXIT_USAGE;
	}
	bool jsonl;
	size_t dl = strlen(o->devices);
	if (o->format != NULL)
		jsonl = strcmp(o->format, "jsonl") == 0;
	else
		jsonl = (dl > 6 && strcmp(o->devices + dl - 6, ".jsonl") == 0) ||
		        (dl > 5 && strcmp(o->devices + dl - 5, ".json") == 0);
	if (o->format != NULL && !jsonl && strcmp(o->format, "csv") != 0) {
		(void)fprintf(stderr, "%s: --format: use csv or jsonl\n", prog);
		return EXIT_USAGE;
	}
	struct idp_error err = {0};
	struct create_ctx c = {.dedup = fmt_manifest_dedup_new()};
	fmt_buf_init(&c.records, SIZE_MAX, 0);
	struct enr_signing sg;
	memset(&sg, 0, sizeof(sg));
	enum idp_err rc = IDP_OK;
	if (c.dedup == NULL) {
		rc = idp_error_set(&err, IDP_E_NOMEM, "out of memory");
		goto out;
	}
	struct fmt_manifest_header h;
	uint8_t digest[FMT_MANIFEST_HASH_LEN];
	if ((rc = enr_signing_load(o->key, o->cert, o->chain, &sg, &err)) ||
	    (rc = read_devices(o->devices, jsonl, &c, &err)) || (rc = fill_header(o, &h, &err)) ||
	    (rc = enr_manifest_write(&sg, &h, &c.records, c.count, o->out, digest, &err)))
		goto out;
	char hex[65];
	fmt_key_fingerprint_hex(digest, hex);
	(void)printf("%s: %" PRIu64 " devices, batch %s, station %s, seq %" PRIu64 ", sig %s\n"
	       "%s.sig: signature\nsha256 %s (the next manifest's --prev-sha256)\n",
	       o->out, h.count, h.batch, h.station, h.seq, fmt_manifest_sig_name(h.sig), o->out,
	       hex);
out:
	fmt_buf_free(&c.records);
	fmt_manifest_dedup_free(c.dedup);
	enr_signing_free(&sg);
	return rc == IDP_OK ? 0 : report(rc, &err);
}

/* ---------------------------------------------------------------- verify, show */

/* Where body bytes come from: a file read twice (verify) or memory (show). */
struct source {
	int fd;
	const uint8_t *mem;
	size_t mem_len, mem_pos;
	const char *path;
};

static enum idp_err src_rewind(struct source *s, struct idp_error *err)
{
	s->mem_pos = 0;
	if (s->fd >= 0 && lseek(s->fd, 0, SEEK_SET) != 0)
		return idp_error_set(err, IDP_E_IO, "%s: seek: %s", s->path, strerror(errno));
	return IDP_OK;
}

static enum idp_err src_read(struct source *s, uint8_t *buf, size_t cap, size_t *n,
                             struct idp_error *err)
{
	if (s->fd < 0) {
		*n = s->mem_len - s->mem_pos < cap ? s->mem_len - s->mem_pos : cap;
		memcpy(buf, s->mem + s->mem_pos, *n);
		s->mem_pos += *n;
		return IDP_OK;
	}
	for (;;) {
		ssize_t r = read(s->fd, buf, cap);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return idp_error_set(err, IDP_E_IO, "%s: read: %s", s->path, strerror(errno));
		*n = (size_t)r;
		return IDP_OK;
	}
}

static void print_record(const struct fmt_manifest_record *r)
{
	char mac[18];
	fmt_mac_format(r->mac, mac);
	const char *kt = "-";
	enum fmt_key_type t;
	if (r->pub_len > 0 && fmt_key_spki_check(r->pub, r->pub_len, NULL, &t, NULL) == IDP_OK)
		kt = fmt_key_type_name(t);
	(void)printf("  %-24s %s  %-20s %-7s", r->id, mac, r->serial, kt);
	for (size_t i = 0; i < r->nattrs; i++)
		(void)printf(" %s=%s", r->attrs[i].key, r->attrs[i].value);
	(void)printf("\n");
}

/* Pass 1 verifies the signature over the raw bytes; pass 2 (only after it)
 * reads the records, refuses duplicates and checks that the bytes it read
 * hash to what was verified, so a file changed in between is refused. */
static enum idp_err check(struct source *src, const uint8_t *sig, size_t sig_len,
                          const struct fmt_manifest_trust *trust, bool print,
                          struct fmt_manifest_verified *ok, struct idp_error *err)
{
	static uint8_t buf[CHUNK];
	struct fmt_manifest_verifier *v = NULL;
	struct fmt_manifest_reader *r = fmt_manifest_reader_new();
	struct fmt_manifest_dedup *d = fmt_manifest_dedup_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	enum idp_err rc = IDP_OK;
	if (r == NULL || d == NULL || md == NULL || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1) {
		rc = idp_error_set(err, IDP_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = fmt_manifest_verifier_new(sig, sig_len, trust, &v, err)))
		goto out;
	size_t n = 0;
	do {
		if ((rc = src_read(src, buf, sizeof(buf), &n, err)) ||
		    (rc = fmt_manifest_verifier_update(v, buf, n, err)))
			goto out;
	} while (n > 0);
	if ((rc = fmt_manifest_verifier_final(v, ok, err)) || (rc = src_rewind(src, err)))
		goto out;
	if (print)
		(void)printf("batch %s  station %s  seq %" PRIu64 "  created %s\nproduct %s  devices %" PRIu64
		       "  sig %s\n",
		       ok->header.batch, ok->header.station, ok->header.seq, ok->header.created,
		       ok->header.product, ok->header.count, fmt_manifest_sig_name(ok->header.sig));
	do {
		if ((rc = src_read(src, buf, sizeof(buf), &n, err)))
			goto out;
		if (EVP_DigestUpdate(md, buf, n) != 1) {
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "sha-256");
			goto out;
		}
		size_t pos = 0;
		while (pos < n) {
			size_t used = 0;
			enum fmt_manifest_item item;
			if ((rc = fmt_manifest_reader_feed(r, buf + pos, n - pos, &used, &item, err)))
				goto out;
			pos += used;
			if (item != FMT_MANIFEST_RECORD)
				continue;
			const struct fmt_manifest_record *rec = fmt_manifest_reader_record(r);
			if ((rc = fmt_manifest_dedup_add(d, rec, err))) {
				idp_error_prefix(err, "line %" PRIu64, fmt_manifest_reader_line(r));
				goto out;
			}
			/* A version 2 record's capture proof, checked as idprovd does. */
			if (rec->has_capture && (rc = fmt_manifest_capture_verify(
			                                 fmt_manifest_reader_header(r), rec, err))) {
				idp_error_prefix(err, "line %" PRIu64 ": device %s",
				                 fmt_manifest_reader_line(r), rec->id);
				goto out;
			}
			if (print)
				print_record(rec);
		}
	} while (n > 0);
	if ((rc = fmt_manifest_reader_finish(r, err)))
		goto out;
	uint8_t again[FMT_MANIFEST_HASH_LEN];
	unsigned dl = 0;
	if (EVP_DigestFinal_ex(md, again, &dl) != 1 ||
	    memcmp(again, ok->body_sha256, sizeof(again)) != 0)
		rc = idp_error_set(err, IDP_E_VERIFY, "changed while it was being read");
out:
	EVP_MD_CTX_free(md);
	fmt_manifest_dedup_free(d);
	fmt_manifest_reader_free(r);
	fmt_manifest_verifier_free(v);
	return rc;
}

static int cmd_verify(const struct opts *o, bool show)
{
	if (!need(o->file, "NAME.manifest"))
		return EXIT_USAGE;
	if ((o->station_pub == NULL) == (o->ca == NULL)) {
		(void)fprintf(stderr, "%s: give --station-pub PUB or --ca CA.pem\n", prog);
		return EXIT_USAGE;
	}
	struct idp_error err = {0};
	char sigpath[PATH_MAX_ARG + 8];
	if (strlen(o->file) > PATH_MAX_ARG) {
		(void)fprintf(stderr, "%s: path too long\n", prog);
		return EXIT_USAGE;
	}
	int sn = o->sig != NULL ? snprintf(sigpath, sizeof(sigpath), "%s", o->sig)
	                        : snprintf(sigpath, sizeof(sigpath), "%s.sig", o->file);
	if (sn < 0 || (size_t)sn >= sizeof(sigpath)) {
		(void)fprintf(stderr, "%s: --sig: path too long\n", prog);
		return EXIT_USAGE;
	}
	struct fmt_manifest_trust trust = {NULL, NULL};
	struct fmt_key *key = NULL;
	uint8_t *sig = NULL, *body = NULL, *cabuf = NULL;
	size_t sig_len = 0, body_len = 0, ca_len = 0;
	struct source src = {-1, NULL, 0, 0, o->file};
	enum idp_err rc;
	if (o->station_pub != NULL) {
		rc = fmt_keyfile_load_public(o->station_pub, &key, &err);
		trust.station_key = key;
	} else {
		rc = fmt_file_read(o->ca, FMT_MANIFEST_SIG_MAX, &cabuf, &ca_len, &err);
		if (rc == IDP_OK && (rc = fmt_x509_store_parse(cabuf, ca_len, FMT_MANIFEST_CERTS_MAX,
		                                               &trust.store, &err)))
			idp_error_prefix(&err, "%s", o->ca);
	}
	if (rc != IDP_OK || (rc = fmt_file_read(sigpath, FMT_MANIFEST_SIG_MAX, &sig, &sig_len, &err)))
		goto out;
	if (show) {
		rc = fmt_file_read(o->file, SHOW_MAX, &body, &body_len, &err);
		src.mem = body;
		src.mem_len = body_len;
	} else {
		src.fd = open(o->file, O_RDONLY | O_CLOEXEC);
		if (src.fd < 0)
			rc = idp_error_set(&err, errno == ENOENT ? IDP_E_NOTFOUND : IDP_E_IO, "%s: %s",
			                   o->file, strerror(errno));
	}
	if (rc != IDP_OK)
		goto out;
	struct fmt_manifest_verified ok;
	memset(&ok, 0, sizeof(ok));
	rc = check(&src, sig, sig_len, &trust, show, &ok, &err);
	if (rc != IDP_OK) {
		idp_error_prefix(&err, "%s", o->file);
		goto out;
	}
	if (!o->quiet) {
		char fp[65], hex[65];
		fmt_key_fingerprint_hex(ok.header.key, fp);
		fmt_key_fingerprint_hex(ok.body_sha256, hex);
		(void)printf("%s: OK: batch %s, station %s, seq %" PRIu64 ", %" PRIu64
		       " devices, sig %s, station key %.16s...\nsha256 %s\n",
		       o->file, ok.header.batch, ok.header.station, ok.header.seq, ok.header.count,
		       fmt_manifest_sig_name(ok.header.sig), fp, hex);
	}
out:
	if (src.fd >= 0)
		(void)close(src.fd);
	free(body);
	free(sig);
	free(cabuf);
	fmt_key_free(key);
	X509_STORE_free(trust.store);
	return rc == IDP_OK ? 0 : report(rc, &err);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	struct opts o;
	if (!parse_opts(argc - 2, argv + 2, &o)) {
		usage();
		return EXIT_USAGE;
	}
	const char *verb = argv[1];
	int rc = -1;
	if (strcmp(verb, "keygen") == 0)
		rc = cmd_keygen(&o);
	else if (strcmp(verb, "create") == 0)
		rc = cmd_create(&o);
	else if (strcmp(verb, "verify") == 0)
		rc = cmd_verify(&o, false);
	else if (strcmp(verb, "show") == 0)
		rc = cmd_verify(&o, true);
	if (rc >= 0) {
		if (fflush(stdout) != 0 || ferror(stdout)) {
			(void)fprintf(stderr, "%s: writing the output failed\n", prog);
			return rc == 0 ? EXIT_ERROR : rc;
		}
		return rc;
	}
	if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
		(void)printf("%s %s\n", prog, IDP_VERSION);
		return 0;
	}
	if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
		usage();
		return 0;
	}
	(void)fprintf(stderr, "%s: unknown verb \"%s\"\n", prog, verb);
	usage();
	return EXIT_USAGE;
}
