/*
 * test_manifest.c - batch manifest v1 (manifest.h, manifest_sig.h,
 * manifest_dedup.h): round trips for cms, es256 and ed25519; every single-byte
 * change and every truncation of a small signed manifest is refused; inserted
 * and removed lines, oversized lines, huge counts, invalid UTF-8, duplicate
 * JSON keys, wrong types, duplicates, unknown versions and wrong key types are
 * refused with named errors (asserted on the message text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "formats/b64.h"
#include "formats/manifest.h"
#include "formats/manifest_dedup.h"
#include "formats/manifest_sig.h"
#include "formats/wire.h"
#include "tests/unit/check_main.h"
#include "tests/unit/helpers.h"

static const enum fmt_manifest_sig kinds[] = {FMT_MANIFEST_SIG_CMS, FMT_MANIFEST_SIG_ES256,
                                              FMT_MANIFEST_SIG_ED25519};

/* ---------------------------------------------------------------- fixtures */

struct station {
	enum fmt_manifest_sig kind;
	struct fmt_key *key;
	X509 *cert;        /* cms */
	X509_STORE *store; /* cms: trusts ca */
	struct fmt_key *ca_key;
	X509 *ca;
	struct fmt_manifest_trust trust;
};

/* A certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *make_cert(const struct fmt_key *key, const char *cn, X509 *issuer,
                       const struct fmt_key *issuer_key, bool ca)
{
	const struct idp_test_cert_spec spec = {
	        .cns = &cn,
	        .ncn = 1,
	        .issuer = issuer,
	        .issuer_key = fmt_key_evp(issuer_key),
	        .ca = ca,
	        .key_usage = ca ? "critical,keyCertSign" : "critical,digitalSignature",
	        .valid_for = 86400L * 365,
	};
	return idp_test_cert(fmt_key_evp(key), &spec);
}

static void station_new(struct station *s, enum fmt_manifest_sig kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	enum fmt_key_type t = kind == FMT_MANIFEST_SIG_ED25519 ? FMT_KEY_ED25519 : FMT_KEY_P256;
	ck_assert_int_eq(fmt_key_generate(t, &s->key, NULL), IDP_OK);
	if (kind == FMT_MANIFEST_SIG_CMS) {
		ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &s->ca_key, NULL), IDP_OK);
		s->ca = make_cert(s->ca_key, "test factory CA", NULL, s->ca_key, true);
		s->cert = make_cert(s->key, "station-01", s->ca, s->ca_key, false);
		s->store = X509_STORE_new();
		ck_assert_int_eq(X509_STORE_add_cert(s->store, s->ca), 1);
		s->trust.store = s->store;
	} else {
		s->trust.station_key = s->key;
	}
}

static void station_free(struct station *s)
{
	fmt_key_free(s->key);
	fmt_key_free(s->ca_key);
	X509_free(s->cert);
	X509_free(s->ca);
	X509_STORE_free(s->store);
}

static void header_for(const struct station *s, uint64_t count, struct fmt_manifest_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = FMT_MANIFEST_VERSION;
	strcpy(h->batch, "batch-2026-0001");
	strcpy(h->station, "station-01");
	h->seq = 1;
	strcpy(h->created, "2026-11-23T10:00:00Z");
	strcpy(h->product, "Sensor X1 rev B");
	h->count = count;
	h->sig = s->kind;
	ck_assert_int_eq(fmt_key_fingerprint(s->key, h->key, NULL), IDP_OK);
}

static void record_n(size_t i, bool with_key, struct fmt_manifest_record *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "dev-%06zu", i);
	snprintf(r->serial, sizeof(r->serial), "SN%08zu", i);
	r->mac[0] = 0x02;
	r->mac[3] = (uint8_t)(i >> 16);
	r->mac[4] = (uint8_t)(i >> 8);
	r->mac[5] = (uint8_t)i;
	if (with_key) {
		struct fmt_key *k = NULL;
		ck_assert_int_eq(fmt_key_generate(i % 2 ? FMT_KEY_ED25519 : FMT_KEY_P256, &k, NULL),
		                 IDP_OK);
		ck_assert_int_eq(fmt_key_spki_der(k, r->pub, &r->pub_len, NULL), IDP_OK);
		fmt_key_free(k);
	}
	if (i % 3 == 0) {
		r->nattrs = 2;
		strcpy(r->attrs[0].key, "hw");  /* written after "fw": sorted on output */
		strcpy(r->attrs[0].value, "rev B");
		strcpy(r->attrs[1].key, "fw");
		strcpy(r->attrs[1].value, "1.2.3 caf\xc3\xa9");
	}
}

struct buf {
	uint8_t *p;
	size_t len;
};

static void buf_add(struct buf *b, const void *s, size_t n)
{
	b->p = realloc(b->p, b->len + n + 1);
	ck_assert_ptr_nonnull(b->p);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

/* A body of n records (keys on every other record) via the writer. */
static struct buf make_body(const struct station *s, size_t n, struct fmt_manifest_record *recs)
{
	struct buf b = {NULL, 0};
	struct fmt_manifest_header h;
	header_for(s, n, &h);
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	buf_add(&b, line, len);
	for (size_t i = 0; i < n; i++) {
		struct fmt_manifest_record r;
		record_n(i + 1, i % 2 == 0, &r);
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, NULL), IDP_OK);
		buf_add(&b, line, len);
		if (recs != NULL)
			recs[i] = r;
	}
	ck_assert_int_eq(fmt_manifest_writer_finish(&w, NULL), IDP_OK);
	return b;
}

static void sign(const struct station *s, const struct buf *body, uint8_t **sig, size_t *len)
{
	struct idp_error err;
	enum idp_err rc = fmt_manifest_sign(s->kind, s->key, s->cert, NULL, body->p, body->len, sig,
	                                    len, &err);
	ck_assert_msg(rc == IDP_OK, "sign: %s", err.msg);
}

static enum idp_err verify(const struct station *s, const uint8_t *sig, size_t sig_len,
                           const uint8_t *body, size_t len, struct idp_error *err)
{
	struct fmt_manifest_verified v;
	return fmt_manifest_verify(sig, sig_len, &s->trust, body, len, &v, err);
}

/* A station and a small body it signed. */
struct signed_manifest {
	struct station s;
	struct buf body;
	uint8_t *sig;
	size_t sig_len;
};

static void signed_new(struct signed_manifest *m, enum fmt_manifest_sig kind, size_t n)
{
	station_new(&m->s, kind);
	m->body = make_body(&m->s, n, NULL);
	sign(&m->s, &m->body, &m->sig, &m->sig_len);
	ck_assert_int_eq(verify(&m->s, m->sig, m->sig_len, m->body.p, m->body.len, NULL), IDP_OK);
}

static void signed_free(struct signed_manifest *m)
{
	free(m->sig);
	free(m->body.p);
	station_free(&m->s);
}

/* Read a whole body in chunks of `chunk` bytes; count records; dedup. */
static enum idp_err read_all(const uint8_t *body, size_t len, size_t chunk, size_t *nrec,
                             struct fmt_manifest_record *recs, struct idp_error *err)
{
	struct fmt_manifest_reader *r = fmt_manifest_reader_new();
	struct fmt_manifest_dedup *d = fmt_manifest_dedup_new();
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_nonnull(d);
	enum idp_err rc = IDP_OK;
	size_t pos = 0, n = 0;
	bool header = false;
	while (rc == IDP_OK && pos < len) {
		size_t end = len - pos < chunk ? len : pos + chunk;
		while (rc == IDP_OK && pos < end) {
			size_t used = 0;
			enum fmt_manifest_item item;
			rc = fmt_manifest_reader_feed(r, body + pos, end - pos, &used, &item, err);
			pos += used;
			if (rc == IDP_OK && item == FMT_MANIFEST_HEADER) {
				ck_assert(!header);
				header = true;
			}
			if (rc == IDP_OK && item == FMT_MANIFEST_RECORD) {
				ck_assert(header);
				const struct fmt_manifest_record *rec = fmt_manifest_reader_record(r);
				if (recs != NULL)
					recs[n] = *rec;
				n++;
				rc = fmt_manifest_dedup_add(d, rec, err);
				if (rc != IDP_OK)
					idp_error_prefix(err, "line %llu",
					                 (unsigned long long)fmt_manifest_reader_line(r));
			}
		}
	}
	if (rc == IDP_OK)
		rc = fmt_manifest_reader_finish(r, err);
	if (nrec != NULL)
		*nrec = n;
	fmt_manifest_dedup_free(d);
	fmt_manifest_reader_free(r);
	return rc;
}

/* Read a body given as text; assert a refusal whose message holds want. */
static void refused(const char *body, enum idp_err code, const char *want)
{
	struct idp_error err = {IDP_OK, ""};
	enum idp_err rc = read_all((const uint8_t *)body, strlen(body), 7, NULL, NULL, &err);
	ck_assert_msg(rc != IDP_OK, "accepted: %s", body);
	ck_assert_msg(strstr(err.msg, want) != NULL, "want \"%s\", got \"%s\"", want, err.msg);
	if (code != 0)
		ck_assert_msg(rc == code, "code %d, want %d (%s)", rc, code, err.msg);
}

/* A valid header line for count records (es256, zero prev) as text. */
static const char *hdr(unsigned count)
{
	static char line[1024];
	snprintf(line, sizeof(line),
	         "{\"v\":1,\"batch\":\"b1\",\"station\":\"s1\",\"seq\":1,\"prev\":\"%064d\","
	         "\"created\":\"2026-11-23T10:00:00Z\",\"product\":\"P1\",\"count\":%u,"
	         "\"sig\":\"es256\",\"key\":\"%064d\"}\n",
	         0, count, 0);
	return line;
}

static char *cat(const char *a, const char *b)
{
	static char out[16384];
	snprintf(out, sizeof(out), "%s%s", a, b);
	return out;
}

#define REC1 "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n"
#define REC2 "{\"id\":\"d2\",\"mac\":\"02:00:00:00:00:02\",\"serial\":\"S2\"}\n"

/* ---------------------------------------------------------------- tests */

START_TEST(test_manifest_round_trip)
{
	struct station s;
	station_new(&s, kinds[_i]);
	enum { N = 7 };
	struct fmt_manifest_record want[N], got[N];
	struct buf body = make_body(&s, N, want);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	sign(&s, &body, &sig, &sig_len);

	/* One call, and streamed in small uneven chunks. */
	struct idp_error err;
	struct fmt_manifest_verified v;
	ck_assert_msg(fmt_manifest_verify(sig, sig_len, &s.trust, body.p, body.len, &v, &err) ==
	                      IDP_OK,
	              "%s", err.msg);
	uint8_t sha[32];
	SHA256(body.p, body.len, sha);
	ck_assert_mem_eq(v.body_sha256, sha, 32);
	ck_assert_uint_eq(v.body_len, body.len);
	ck_assert_uint_eq(v.header.count, N);
	ck_assert_int_eq(v.header.sig, kinds[_i]);
	ck_assert_str_eq(v.header.batch, "batch-2026-0001");
	struct fmt_manifest_verifier *ver = NULL;
	ck_assert_int_eq(fmt_manifest_verifier_new(sig, sig_len, &s.trust, &ver, NULL), IDP_OK);
	for (size_t pos = 0, step = 1; pos < body.len; pos += step, step = step % 13 + 1) {
		size_t n = body.len - pos < step ? body.len - pos : step;
		ck_assert_int_eq(fmt_manifest_verifier_update(ver, body.p + pos, n, NULL), IDP_OK);
	}
	ck_assert_int_eq(fmt_manifest_verifier_final(ver, &v, &err), IDP_OK);
	fmt_manifest_verifier_free(ver);

	/* The streaming signer gives a signature that verifies too. */
	struct fmt_manifest_signer *sg = NULL;
	ck_assert_int_eq(fmt_manifest_signer_new(s.kind, s.key, s.cert, NULL, &sg, NULL), IDP_OK);
	for (size_t pos = 0; pos < body.len; pos += 5)
		ck_assert_int_eq(fmt_manifest_signer_update(sg, body.p + pos,
		                                            body.len - pos < 5 ? body.len - pos : 5,
		                                            NULL),
		                 IDP_OK);
	uint8_t *sig2 = NULL, sha2[32];
	size_t sig2_len = 0;
	ck_assert_int_eq(fmt_manifest_signer_final(sg, &sig2, &sig2_len, sha2, NULL), IDP_OK);
	fmt_manifest_signer_free(sg);
	ck_assert_mem_eq(sha2, sha, 32);
	ck_assert_int_eq(verify(&s, sig2, sig2_len, body.p, body.len, NULL), IDP_OK);
	free(sig2);

	/* Records come back as written, at every chunking. */
	for (size_t chunk = 1; chunk < 40; chunk += 6) {
		size_t n = 0;
		ck_assert_int_eq(read_all(body.p, body.len, chunk, &n, got, &err), IDP_OK);
		ck_assert_uint_eq(n, N);
		for (size_t i = 0; i < N; i++) {
			ck_assert_str_eq(got[i].id, want[i].id);
			ck_assert_str_eq(got[i].serial, want[i].serial);
			ck_assert_mem_eq(got[i].mac, want[i].mac, 6);
			ck_assert_uint_eq(got[i].pub_len, want[i].pub_len);
			ck_assert_mem_eq(got[i].pub, want[i].pub, want[i].pub_len);
			ck_assert_uint_eq(got[i].nattrs, want[i].nattrs);
			if (want[i].nattrs == 2) { /* sorted by name on the way out */
				ck_assert_str_eq(got[i].attrs[0].key, "fw");
				ck_assert_str_eq(got[i].attrs[1].value, "rev B");
			}
		}
	}
	free(sig);
	free(body.p);
	station_free(&s);
}
END_TEST

/* fmt_manifest_verifier_final_digest: a body hashed elsewhere verifies as
 * the streamed one does; a digest one bit off, a length or a header line
 * without its LF, and a verifier already fed are refused. */
static enum idp_err over_digest(const struct signed_manifest *m, size_t header_len,
                                const uint8_t *sha, uint64_t len, struct fmt_manifest_verified *v,
                                struct idp_error *err)
{
	struct fmt_manifest_verifier *ver = NULL;
	ck_assert_int_eq(fmt_manifest_verifier_new(m->sig, m->sig_len, &m->s.trust, &ver, NULL),
	                 IDP_OK);
	enum idp_err rc =
	        fmt_manifest_verifier_final_digest(ver, m->body.p, header_len, sha, len, v, err);
	fmt_manifest_verifier_free(ver);
	return rc;
}

START_TEST(test_manifest_verify_over_digest)
{
	struct signed_manifest m;
	signed_new(&m, kinds[_i], 4);
	uint8_t sha[32];
	SHA256(m.body.p, m.body.len, sha);
	const uint8_t *lf = memchr(m.body.p, '\n', m.body.len);
	ck_assert_ptr_nonnull(lf);
	size_t hlen = (size_t)(lf - m.body.p) + 1;
	struct fmt_manifest_verified v;
	struct idp_error err;
	ck_assert_msg(over_digest(&m, hlen, sha, m.body.len, &v, &err) == IDP_OK, "%s", err.msg);
	ck_assert_mem_eq(v.body_sha256, sha, 32);
	ck_assert_uint_eq(v.body_len, m.body.len);
	ck_assert_uint_eq(v.header.count, 4);
	sha[31] ^= 1;
	ck_assert_int_eq(over_digest(&m, hlen, sha, m.body.len, &v, &err), IDP_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "does not match the body") != NULL, "%s", err.msg);
	sha[31] ^= 1;
	ck_assert_int_eq(over_digest(&m, hlen - 1, sha, m.body.len, &v, &err), IDP_E_FORMAT);
	ck_assert_int_eq(over_digest(&m, hlen + 1, sha, m.body.len, &v, &err), IDP_E_FORMAT);
	ck_assert_int_eq(over_digest(&m, 0, sha, m.body.len, &v, &err), IDP_E_FORMAT);
	struct fmt_manifest_verifier *ver = NULL;
	ck_assert_int_eq(fmt_manifest_verifier_new(m.sig, m.sig_len, &m.s.trust, &ver, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_verifier_update(ver, m.body.p, 1, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_verifier_final_digest(ver, m.body.p, hlen, sha, m.body.len,
	                                                    &v, NULL),
	                 IDP_E_ARG);
	fmt_manifest_verifier_free(ver);
	signed_free(&m);
}
END_TEST

START_TEST(test_manifest_every_byte_change_fails)
{
	struct signed_manifest m;
	signed_new(&m, kinds[_i], 3);
	struct idp_error err;
	for (size_t i = 0; i < m.body.len; i++) {
		uint8_t keep = m.body.p[i];
		const uint8_t with[2] = {(uint8_t)(keep ^ 0x01), keep == 'A' ? 'B' : 'A'};
		for (int k = 0; k < 2; k++) {
			m.body.p[i] = with[k];
			ck_assert_msg(verify(&m.s, m.sig, m.sig_len, m.body.p, m.body.len, &err) ==
			                      IDP_E_VERIFY,
			              "body byte %zu changed to 0x%02x was accepted", i, with[k]);
		}
		m.body.p[i] = keep;
	}
	/* And every byte of the signature file (cms: the unsigned fields too). */
	for (size_t i = 0; i < m.sig_len; i++) {
		uint8_t keep = m.sig[i];
		const uint8_t with[2] = {(uint8_t)(keep ^ 0x01), keep == 'A' ? 'B' : 'A'};
		for (int k = 0; k < 2; k++) {
			m.sig[i] = with[k];
			ck_assert_msg(verify(&m.s, m.sig, m.sig_len, m.body.p, m.body.len, &err) !=
			                      IDP_OK,
			              "sig byte %zu changed to 0x%02x was accepted", i, with[k]);
		}
		m.sig[i] = keep;
	}
	ck_assert_int_eq(verify(&m.s, m.sig, m.sig_len, m.body.p, m.body.len, NULL), IDP_OK);
	signed_free(&m);
}
END_TEST

START_TEST(test_manifest_truncation_fails_cleanly)
{
	struct signed_manifest m;
	signed_new(&m, kinds[_i], 3);
	const struct buf *b = &m.body;
	struct idp_error err;
	for (size_t n = 0; n < b->len; n++) {
		ck_assert_msg(verify(&m.s, m.sig, m.sig_len, b->p, n, &err) != IDP_OK,
		              "body cut at %zu verified", n);
		ck_assert_msg(read_all(b->p, n, 64, NULL, NULL, &err) != IDP_OK,
		              "body cut at %zu read", n);
		ck_assert(err.msg[0] != '\0');
	}
	for (size_t n = 0; n < m.sig_len; n++)
		ck_assert_msg(verify(&m.s, m.sig, n, b->p, b->len, &err) != IDP_OK,
		              "sig cut at %zu verified", n);
	/* The two shapes of a cut body the reader names. */
	ck_assert_int_ne(read_all(b->p, b->len - 1, 64, NULL, NULL, &err), IDP_OK);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 4: no LF at the end"));
	const uint8_t *last = b->p + b->len - 1;
	while (last[-1] != '\n')
		last--;
	ck_assert_int_ne(read_all(b->p, (size_t)(last - b->p), 64, NULL, NULL, &err), IDP_OK);
	ck_assert_str_eq(err.msg, "manifest: header count is 3 but 2 records follow");
	signed_free(&m);
}
END_TEST

/* Feed body[0..len) to c in pieces of `piece` bytes, the last one marked. */
static enum idp_err check_pieces(struct fmt_manifest_check *c, const uint8_t *body, size_t len,
                                 size_t piece, struct idp_error *err)
{
	enum idp_err rc = IDP_OK;
	size_t off = 0;
	do {
		size_t k = len - off < piece ? len - off : piece;
		rc = fmt_manifest_check_piece(c, off, body + off, k, off + k == len, err);
		off += k;
	} while (rc == IDP_OK && off < len);
	return rc;
}

/* The piecewise check a client runs on what it sends: a whole body passes
 * in any piece size and gives its header; a cut one fails at its last
 * piece with the reader's message; offset 0 starts over (a retry); a piece
 * out of order is refused. */
START_TEST(test_manifest_check_pieces)
{
	struct signed_manifest m;
	signed_new(&m, FMT_MANIFEST_SIG_ES256, 5);
	const struct buf *b = &m.body;
	struct idp_error err;
	struct fmt_manifest_check c = {0};
	static const size_t pieces[] = {1, 7, 64, 100000};
	for (size_t i = 0; i < 4; i++) {
		ck_assert_msg(check_pieces(&c, b->p, b->len, pieces[i], &err) == IDP_OK, "%s",
		              err.msg);
		ck_assert(c.done);
		ck_assert_uint_eq(c.header.count, 5);
	}
	ck_assert_int_eq(check_pieces(&c, b->p, b->len - 1, 64, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 6: no LF at the end"));
	ck_assert(!c.done);
	const uint8_t *last = b->p + b->len - 1;
	while (last[-1] != '\n')
		last--;
	ck_assert_int_eq(check_pieces(&c, b->p, (size_t)(last - b->p), 64, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "manifest: header count is 5 but 4 records follow");
	/* Started over after the failure: passes again. */
	ck_assert_int_eq(check_pieces(&c, b->p, b->len, 64, &err), IDP_OK);
	ck_assert_int_eq(fmt_manifest_check_piece(&c, 0, b->p, 10, false, &err), IDP_OK);
	ck_assert_int_eq(fmt_manifest_check_piece(&c, 11, b->p + 11, 10, false, &err), IDP_E_ARG);
	fmt_manifest_check_free(&c);
	fmt_manifest_check_free(&c);
	fmt_manifest_check_free(NULL);
	signed_free(&m);
}
END_TEST

START_TEST(test_manifest_inserted_and_removed_lines)
{
	struct signed_manifest m;
	signed_new(&m, FMT_MANIFEST_SIG_ES256, 3);
	struct station s = m.s;
	struct buf body = m.body;
	uint8_t *sig = m.sig;
	size_t sig_len = m.sig_len;
	const uint8_t *l2 = (const uint8_t *)memchr(body.p, '\n', body.len) + 1;
	const uint8_t *l3 = (const uint8_t *)memchr(l2, '\n', body.len - (size_t)(l2 - body.p)) + 1;
	struct idp_error err;

	/* Line 2 repeated: the signature fails; the reader counts one too many. */
	struct buf ins = {NULL, 0};
	buf_add(&ins, body.p, (size_t)(l3 - body.p));
	buf_add(&ins, l2, (size_t)(l3 - l2));
	buf_add(&ins, l3, body.len - (size_t)(l3 - body.p));
	ck_assert_int_eq(verify(&s, sig, sig_len, ins.p, ins.len, &err), IDP_E_VERIFY);
	ck_assert_int_ne(read_all(ins.p, ins.len, 4096, NULL, NULL, &err), IDP_OK);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 3: id: \"dev-000001\" appears twice"));

	/* Line 2 removed. */
	struct buf rem = {NULL, 0};
	buf_add(&rem, body.p, (size_t)(l2 - body.p));
	buf_add(&rem, l3, body.len - (size_t)(l3 - body.p));
	ck_assert_int_eq(verify(&s, sig, sig_len, rem.p, rem.len, &err), IDP_E_VERIFY);
	ck_assert_int_ne(read_all(rem.p, rem.len, 4096, NULL, NULL, &err), IDP_OK);
	ck_assert_str_eq(err.msg, "manifest: header count is 3 but 2 records follow");

	/* An extra record beyond count. */
	refused(cat(hdr(1), REC1 REC2), IDP_E_FORMAT, "line 3: more records than the header count 1");
	free(ins.p);
	free(rem.p);
	signed_free(&m);
}
END_TEST

START_TEST(test_manifest_named_refusals)
{
	static char big[FMT_MANIFEST_LINE_MAX + 64];
	memset(big, 'a', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	refused(cat(hdr(1), big), IDP_E_LIMIT, "line 2: longer than 4096 bytes");
	refused("", IDP_E_FORMAT, "manifest: empty, no header line");
	refused(cat(hdr(1), "\n"), IDP_E_FORMAT, "line 2: empty line");
	refused(cat(hdr(1), "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\r\n"),
	        IDP_E_FORMAT, "line 2: CR before LF");
	/* Huge and wrong counts. */
	char h[1024];
	snprintf(h, sizeof(h), "%s", hdr(1));
	char *c = strstr(h, "\"count\":1");
	static const struct {
		const char *count, *msg;
	} counts[] = {
		{"99999999999", "line 1: count: 99999999999 is outside 1..10000000"},
		{"0", "line 1: count: 0 is outside 1..10000000"},
		{"1e999", "line 1: json: number at offset"},
		{"1e1", "not a plain integer"},
		{"-1", "line 1: count: -1 is outside"},
		{"\"1\"", "line 1: count: expected a number"},
		{"1.5", "not a plain integer"},
	};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		char line[1200];
		snprintf(line, sizeof(line), "%.*s\"count\":%s%s", (int)(c - h), h, counts[i].count,
		         c + strlen("\"count\":1"));
		refused(cat(line, REC1), 0, counts[i].msg);
	}
	/* A valid count with a different spelling is refused by the JSON layer
	 * (and would be by the canonical-form check after it). */
	char line[1200];
	snprintf(line, sizeof(line), "%.*s\"count\":1.0%s", (int)(c - h), h, c + 9);
	refused(cat(line, REC1), IDP_E_FORMAT, "line 1: json: number at offset");

	static const struct {
		const char *rec, *msg;
		enum idp_err code;
	} recs[] = {
		{"{\"id\":\"d1\",\"mac\":\"00:11:22:33:44\",\"serial\":\"S1\"}\n",
		 "line 2: mac: \"00:11:22:33:44\" is not an EUI-48 address", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"AA:BB:CC:DD:EE:FF\",\"serial\":\"S1\"}\n",
		 "line 2: mac: \"AA:BB:CC:DD:EE:FF\" is not in canonical form", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"aa-bb-cc-dd-ee-ff\",\"serial\":\"S1\"}\n",
		 "line 2: mac: \"aa-bb-cc-dd-ee-ff\" is not in canonical form", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"attrs\":{\"a\":\"\xc3\x28\"}}\n",
		 "line 2: json: input is not valid UTF-8", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"attrs\":{\"a\":\"\xed\xa0\x80\"}}\n",
		 "line 2: json: input is not valid UTF-8", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"id\":\"d2\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: json: duplicate key \"id\"", IDP_E_FORMAT},
		{"{\"id\":7,\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: id: expected a string", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":null}\n",
		 "line 2: serial: expected a string", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"attrs\":[]}\n",
		 "line 2: attrs: expected an object", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"attrs\":{\"a\":1}}\n",
		 "line 2: attrs: a: expected a string", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\"}\n", "line 2: serial: missing",
		 IDP_E_FORMAT},
		{"{\"id\":\"d 1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: id: \"d 1\" is not an ID (A-Z a-z 0-9 first", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"x\":\"y\"}\n",
		 "line 2: record: unknown field \"x\"", IDP_E_FORMAT},
		{"{\"mac\":\"02:00:00:00:00:01\",\"id\":\"d1\",\"serial\":\"S1\"}\n",
		 "line 2: line: not in canonical form from byte 3", IDP_E_FORMAT},
		{"{\"id\": \"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: line: not in canonical form from byte 7", IDP_E_FORMAT},
		{"{\"id\":\"\\u0064\\u0031\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: line: not in canonical form", IDP_E_FORMAT},
		{"[1]\n", "line 2: line: not a JSON object", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"pub\":\"AAAA\"}\n",
		 "line 2: pub: public key: not an SPKI DER key", IDP_E_FORMAT},
		{"{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"pub\":\"A A=\"}\n",
		 "line 2: pub:", IDP_E_FORMAT},
		{"{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123456789\","
		 "\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n",
		 "line 2: id: longer than 64 bytes", IDP_E_LIMIT},
	};
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
		refused(cat(hdr(1), recs[i].rec), recs[i].code, recs[i].msg);

	/* Attributes: too many, too long, bad names, controls. */
	char rec[2048];
	int n = snprintf(rec, sizeof(rec),
	                 "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"attrs\":{");
	for (int i = 0; i < 17; i++)
		n += snprintf(rec + n, sizeof(rec) - (size_t)n, "%s\"a%02d\":\"v\"", i ? "," : "", i);
	snprintf(rec + n, sizeof(rec) - (size_t)n, "}}\n");
	refused(cat(hdr(1), rec), IDP_E_LIMIT, "line 2: attrs: more than 16 attributes");
	refused(cat(hdr(1), "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\","
	                    "\"attrs\":{\"Fw\":\"1\"}}\n"),
	        IDP_E_FORMAT, "line 2: attrs: name \"Fw\" must be a-z");
	refused(cat(hdr(1), "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\","
	                    "\"attrs\":{\"fw\":\"a\\nb\"}}\n"),
	        IDP_E_FORMAT, "line 2: attrs: fw: value \"a\\x0ab\" has a control character");
	refused(cat(hdr(1), "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\","
	                    "\"attrs\":{\"b\":\"1\",\"a\":\"2\"}}\n"),
	        IDP_E_FORMAT, "line 2: line: not in canonical form");
}
END_TEST

START_TEST(test_manifest_header_refusals)
{
	static const struct {
		const char *from, *to, *msg;
		enum idp_err code;
	} edits[] = {
		{"\"v\":1", "\"v\":3",
		 "line 1: v: version 3 is not supported (this reader knows 1 and 2)",
		 IDP_E_UNSUPPORTED},
		{"\"v\":1", "\"v\":\"1\"", "line 1: v: expected a number", IDP_E_FORMAT},
		{"\"seq\":1", "\"seq\":2", "line 1: prev: all zero but seq is 2", IDP_E_FORMAT},
		{"\"seq\":1", "\"seq\":0", "line 1: seq: 0 is outside", IDP_E_LIMIT},
		{"\"sig\":\"es256\"", "\"sig\":\"rsa\"", "line 1: sig: \"rsa\" is not a signature kind",
		 IDP_E_UNSUPPORTED},
		{"2026-11-23T10:00:00Z", "2026-02-29T10:00:00Z",
		 "line 1: created: \"2026-02-29T10:00:00Z\" is not a UTC time", IDP_E_FORMAT},
		{"2026-11-23T10:00:00Z", "2026-11-23T10:00:00+01:00", "line 1: created:", 0},
		{"\"product\":\"P1\"", "\"product\":\" P1\"", "line 1: product: \" P1\" starts or ends",
		 IDP_E_FORMAT},
		{"\"batch\":\"b1\"", "\"batch\":\"b1\",\"extra\":1", "line 1: header: unknown field",
		 IDP_E_FORMAT},
		{"\"station\":\"s1\",", "", "line 1: station: missing", IDP_E_FORMAT},
		{"\"key\":\"0", "\"key\":\"G", "line 1: key: \"G000", IDP_E_FORMAT},
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char h[1200];
		const char *base = hdr(1);
		const char *at = strstr(base, edits[i].from);
		ck_assert_ptr_nonnull(at);
		snprintf(h, sizeof(h), "%.*s%s%s", (int)(at - base), base, edits[i].to,
		         at + strlen(edits[i].from));
		refused(cat(h, REC1), edits[i].code, edits[i].msg);
	}
	/* Leap day in a leap year is fine (the record then fails to show the
	 * header was accepted). */
	char h[1200];
	const char *base = hdr(1);
	const char *at = strstr(base, "2026-11-23");
	snprintf(h, sizeof(h), "%.*s2028-02-29%s", (int)(at - base), base, at + 10);
	refused(cat(h, "x\n"), IDP_E_FORMAT, "line 2: json: syntax error");
}
END_TEST

START_TEST(test_manifest_duplicates_refused)
{
	struct fmt_manifest_record a, b;
	record_n(1, true, &a);
	static const char *const want[] = {
		"id: \"dev-000001\" appears twice in the batch",
		"mac: \"02:00:00:00:00:01\" appears twice in the batch",
		"serial: \"SN00000001\" appears twice in the batch",
		"pub: the same public key appears twice in the batch",
	};
	for (size_t f = 0; f < 4; f++) {
		struct fmt_manifest_dedup *d = fmt_manifest_dedup_new();
		ck_assert_ptr_nonnull(d);
		ck_assert_int_eq(fmt_manifest_dedup_add(d, &a, NULL), IDP_OK);
		record_n(2, true, &b);
		if (f == 0)
			memcpy(b.id, a.id, sizeof(a.id));
		else if (f == 1)
			memcpy(b.mac, a.mac, sizeof(a.mac));
		else if (f == 2)
			memcpy(b.serial, a.serial, sizeof(a.serial));
		else
			memcpy(b.pub, a.pub, sizeof(a.pub)), b.pub_len = a.pub_len;
		struct idp_error err;
		ck_assert_int_eq(fmt_manifest_dedup_add(d, &b, &err), IDP_E_DUPLICATE);
		ck_assert_str_eq(err.msg, want[f]);
		/* Refused records leave nothing behind: a fresh record still fits. */
		record_n(3, false, &b);
		ck_assert_int_eq(fmt_manifest_dedup_add(d, &b, NULL), IDP_OK);
		fmt_manifest_dedup_free(d);
	}
	/* An ID equal to another record's serial is no duplicate (fields are separate). */
	struct fmt_manifest_dedup *d = fmt_manifest_dedup_new();
	record_n(4, false, &a);
	record_n(5, false, &b);
	strcpy(b.id, a.serial);
	ck_assert_int_eq(fmt_manifest_dedup_add(d, &a, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_dedup_add(d, &b, NULL), IDP_OK);
	/* Many distinct records: no false duplicates, the table grows. */
	size_t before = fmt_manifest_dedup_bytes(d);
	for (size_t i = 10; i < 20000; i++) {
		record_n(i, false, &a);
		ck_assert_int_eq(fmt_manifest_dedup_add(d, &a, NULL), IDP_OK);
	}
	ck_assert_uint_gt(fmt_manifest_dedup_bytes(d), before);
	ck_assert_uint_le(fmt_manifest_dedup_bytes(d), 20000u * 3 * 8 * 3);
	fmt_manifest_dedup_free(d);
	/* In a body: duplicate MAC on line 3. */
	refused(cat(hdr(2), "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\"}\n"
	                    "{\"id\":\"d2\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S2\"}\n"),
	        IDP_E_DUPLICATE, "line 3: mac: \"02:00:00:00:00:01\" appears twice");
}
END_TEST

/* A record whose pub is an Ed25519 key anyone can sign for: the reader
 * (the fast key check) and the encoder refuse it, naming the problem. */
START_TEST(test_manifest_refuses_weak_ed25519_keys)
{
	bool small = _i < (int)IDP_TEST_SMALL_ORDER_N;
	const uint8_t *pub = small ? idp_test_small_order[_i]
	                           : idp_test_noncanonical[_i - (int)IDP_TEST_SMALL_ORDER_N];
	const char *want = small ? "line 2: pub: key: ed25519 public key is of small order"
	                         : "line 2: pub: key: ed25519 public key is not canonical";
	uint8_t spki[IDP_TEST_ED25519_SPKI_LEN];
	idp_test_ed25519_spki(pub, spki);
	char b64[64], rec[256];
	b64[fmt_b64_encode(FMT_B64_STD, spki, sizeof(spki), b64)] = '\0';
	snprintf(rec, sizeof(rec),
	         "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"pub\":\"%s\"}\n",
	         b64);
	static char body[16384];
	ck_assert_int_lt(snprintf(body, sizeof(body), "%s", cat(hdr(1), rec)), (int)sizeof(body));
	refused(body, IDP_E_FORMAT, want);
	/* The same line with a real key reads: the refusal is the key's. */
	uint8_t good[FMT_KEY_SPKI_MAX];
	size_t glen = idp_test_fresh_spki(FMT_KEY_ED25519, good);
	b64[fmt_b64_encode(FMT_B64_STD, good, glen, b64)] = '\0';
	snprintf(rec, sizeof(rec),
	         "{\"id\":\"d1\",\"mac\":\"02:00:00:00:00:01\",\"serial\":\"S1\",\"pub\":\"%s\"}\n",
	         b64);
	ck_assert_int_lt(snprintf(body, sizeof(body), "%s", cat(hdr(1), rec)), (int)sizeof(body));
	struct idp_error err = {0};
	enum idp_err rc = read_all((const uint8_t *)body, strlen(body), 7, NULL, NULL, &err);
	ck_assert_msg(rc == IDP_OK, "%s", err.msg);
	/* The writer refuses to put the weak key in a manifest. */
	struct fmt_manifest_record r;
	record_n(1, false, &r);
	memcpy(r.pub, spki, sizeof(spki));
	r.pub_len = sizeof(spki);
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, &err), IDP_E_FORMAT);
	ck_assert_msg(strstr(err.msg, small ? "small order" : "not canonical") != NULL, "%s",
	              err.msg);
}
END_TEST

START_TEST(test_manifest_wrong_key_types)
{
	/* Device keys other than P-256 and Ed25519 are refused by name. */
	static const char *const algs[] = {"X25519", "EC"};
	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *pk = i == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "X25519")
		                      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		ck_assert_ptr_nonnull(pk);
		struct fmt_manifest_record r;
		record_n(1, false, &r);
		unsigned char *p = r.pub;
		int n = i2d_PUBKEY(pk, &p);
		ck_assert_int_gt(n, 0);
		r.pub_len = (size_t)n;
		uint8_t line[FMT_MANIFEST_LINE_MAX];
		size_t len;
		struct idp_error err;
		ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, &err), IDP_E_UNSUPPORTED);
		char want[64];
		snprintf(want, sizeof(want), "pub: key: type %s is not supported", algs[i]);
		ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
		EVP_PKEY_free(pk);
	}
	/* A station key of the wrong type for the kind. */
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_ED25519);
	struct fmt_manifest_signer *sg = NULL;
	struct idp_error err;
	ck_assert_int_eq(fmt_manifest_signer_new(FMT_MANIFEST_SIG_ES256, s.key, NULL, NULL, &sg,
	                                         &err),
	                 IDP_E_UNSUPPORTED);
	ck_assert_str_eq(err.msg, "sign: es256 needs a p256 key, not ed25519");
	ck_assert_int_eq(fmt_manifest_signer_new(FMT_MANIFEST_SIG_CMS, s.key, NULL, NULL, &sg, &err),
	                 IDP_E_UNSUPPORTED);
	/* Verifying with a key of the other type names the mismatch. */
	struct buf body = make_body(&s, 2, NULL);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	sign(&s, &body, &sig, &sig_len);
	struct station other;
	station_new(&other, FMT_MANIFEST_SIG_ES256);
	ck_assert_int_eq(verify(&other, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
	ck_assert_str_eq(err.msg,
	                 "line 1: sig: header says ed25519 but the trust given verifies es256");
	free(sig);
	free(body.p);
	station_free(&other);
	station_free(&s);
}
END_TEST

/* A one-record body whose header names station and key fingerprint fp_key. */
static struct buf body_as(const struct station *s, const char *station,
                          const struct fmt_key *fp_key)
{
	struct fmt_manifest_header h;
	header_for(s, 1, &h);
	snprintf(h.station, sizeof(h.station), "%s", station);
	ck_assert_int_eq(fmt_key_fingerprint(fp_key, h.key, NULL), IDP_OK);
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len;
	struct buf body = {NULL, 0};
	ck_assert_int_eq(fmt_manifest_encode_header(&h, line, &len, NULL), IDP_OK);
	buf_add(&body, line, len);
	struct fmt_manifest_record r;
	record_n(1, false, &r);
	ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, NULL), IDP_OK);
	buf_add(&body, line, len);
	return body;
}

START_TEST(test_manifest_header_binds_key_and_kind)
{
	/* Signed by the right key, but the header names another station key. */
	struct station s, other;
	station_new(&s, kinds[_i]);
	station_new(&other, kinds[_i]);
	struct buf body = body_as(&s, "station-01", other.key);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	sign(&s, &body, &sig, &sig_len);
	struct idp_error err;
	ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "line 1: key: header names station key"));
	/* And a valid signature by another station fails against this trust. */
	free(sig);
	sign(&other, &body, &sig, &sig_len);
	ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
	if (kinds[_i] == FMT_MANIFEST_SIG_CMS)
		/* Both CAs share a name: the chain fails on the CA's signature. */
		ck_assert_msg(strstr(err.msg, "signature: station certificate: certificate "
		                              "signature failure") != NULL,
		              "%s", err.msg);
	/* A body without a complete header line. */
	free(sig);
	struct buf nohdr = {NULL, 0};
	buf_add(&nohdr, "{\"v\":1", 6);
	sign(&s, &nohdr, &sig, &sig_len);
	ck_assert_int_eq(verify(&s, sig, sig_len, nohdr.p, nohdr.len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "line 1: header: no complete header line");
	free(nohdr.p);
	free(sig);
	free(body.p);
	station_free(&s);
	station_free(&other);
}
END_TEST

/* The factory CA certifies a station's name, not only its key: a certified
 * station-02 signing a batch that says station-01 (to take over or fork
 * station-01's seq/prev chain) verifies with `openssl cms -verify` but must
 * not here. */
START_TEST(test_manifest_cms_station_named_by_certificate)
{
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_CMS);
	struct fmt_key *k2 = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k2, NULL), IDP_OK);
	X509 *c2 = make_cert(k2, "station-02", s.ca, s.ca_key, false);
	struct idp_error err;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	struct buf body = body_as(&s, "station-01", k2);
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_CMS, k2, c2, NULL, body.p, body.len,
	                                   &sig, &sig_len, NULL),
	                 IDP_OK);
	ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
	ck_assert_str_eq(err.msg, "line 1: station: header says \"station-01\" but the station "
	                          "certificate is for \"station-02\"");
	free(sig);
	free(body.p);
	/* Its own name verifies; so does the usual station-01 manifest. */
	body = body_as(&s, "station-02", k2);
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_CMS, k2, c2, NULL, body.p, body.len,
	                                   &sig, &sig_len, NULL),
	                 IDP_OK);
	ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_OK);
	free(sig);
	free(body.p);
	/* Case matters, as for every ID; and a name that is only a prefix fails. */
	static const char *const near[] = {"Station-02", "station-0", "station-02x"};
	for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
		body = body_as(&s, near[i], k2);
		ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_CMS, k2, c2, NULL, body.p,
		                                   body.len, &sig, &sig_len, NULL),
		                 IDP_OK);
		ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
		ck_assert_msg(strstr(err.msg, "line 1: station: header says") != NULL, "%s",
		              err.msg);
		free(sig);
		free(body.p);
	}
	/* A certificate with two commonNames names no one station. */
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c2), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"station-01", -1, -1, 0);
	ck_assert_int_gt(X509_sign(c2, fmt_key_evp(s.ca_key), EVP_sha256()), 0);
	body = body_as(&s, "station-02", k2);
	ck_assert_int_eq(fmt_manifest_sign(FMT_MANIFEST_SIG_CMS, k2, c2, NULL, body.p, body.len,
	                                   &sig, &sig_len, NULL),
	                 IDP_OK);
	ck_assert_int_eq(verify(&s, sig, sig_len, body.p, body.len, &err), IDP_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "no single commonName") != NULL, "%s", err.msg);
	free(sig);
	free(body.p);
	X509_free(c2);
	fmt_key_free(k2);
	station_free(&s);
}
END_TEST

START_TEST(test_manifest_cms_details)
{
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_CMS);
	struct buf body = make_body(&s, 2, NULL);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	sign(&s, &body, &sig, &sig_len);
	struct idp_error err;
	/* Not a CMS at all; trailing garbage; both trusts at once; none. */
	ck_assert_int_eq(verify(&s, (const uint8_t *)"junk", 4, body.p, body.len, &err),
	                 IDP_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "signature: not a DER CMS structure"));
	uint8_t *longer = malloc(sig_len + 1);
	memcpy(longer, sig, sig_len);
	longer[sig_len] = 0;
	ck_assert_int_eq(verify(&s, longer, sig_len + 1, body.p, body.len, &err), IDP_E_VERIFY);
	ck_assert_str_eq(err.msg, "signature: 1 bytes after the CMS structure");
	free(longer);
	struct fmt_manifest_trust both = {s.key, s.store}, none = {NULL, NULL};
	struct fmt_manifest_verifier *v = NULL;
	ck_assert_int_eq(fmt_manifest_verifier_new(sig, sig_len, &both, &v, NULL), IDP_E_ARG);
	ck_assert_int_eq(fmt_manifest_verifier_new(sig, sig_len, &none, &v, NULL), IDP_E_ARG);
	/* A certificate for another key cannot sign for this key. */
	struct fmt_key *k2 = NULL;
	ck_assert_int_eq(fmt_key_generate(FMT_KEY_P256, &k2, NULL), IDP_OK);
	struct fmt_manifest_signer *sg = NULL;
	ck_assert_int_eq(fmt_manifest_signer_new(FMT_MANIFEST_SIG_CMS, k2, s.cert, NULL, &sg, &err),
	                 IDP_E_ARG);
	ck_assert_ptr_nonnull(strstr(err.msg, "station certificate is not for the station key"));
	fmt_key_free(k2);
	/* The PEM helpers moved to formats/x509: tests/unit/test_x509.c. */
	free(sig);
	free(body.p);
	station_free(&s);
}
END_TEST

START_TEST(test_manifest_writer_checks)
{
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_ES256);
	struct fmt_manifest_header h;
	header_for(&s, 2, &h);
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len;
	struct idp_error err;
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	struct fmt_manifest_record r;
	record_n(1, false, &r);
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_writer_finish(&w, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "manifest: header count is 2 but 1 records were written");
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, &err), IDP_E_LIMIT);
	ck_assert_str_eq(err.msg, "manifest: record 3 is more than the header count 2");
	ck_assert_int_eq(fmt_manifest_writer_finish(&w, NULL), IDP_OK);
	/* Header field checks match the reader's. */
	h.seq = 2;
	ck_assert_int_eq(fmt_manifest_encode_header(&h, line, &len, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "prev: all zero but seq is 2"));
	h.prev[31] = 1;
	ck_assert_int_eq(fmt_manifest_encode_header(&h, line, &len, NULL), IDP_OK);
	h.version = 3;
	ck_assert_int_eq(fmt_manifest_encode_header(&h, line, &len, &err), IDP_E_UNSUPPORTED);
	/* Attribute names repeated in the struct. */
	record_n(3, false, &r);
	strcpy(r.attrs[1].key, "hw");
	ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, &err), IDP_E_DUPLICATE);
	ck_assert_str_eq(err.msg, "attrs: name \"hw\" appears twice");
	/* A MAC the reader refuses is never written: an unprogrammed (all-zero)
	 * or group MAC read from one device would otherwise be signed into the
	 * batch and make the whole signed manifest unimportable on site. */
	static const uint8_t bad_macs[][6] = {
	        {0, 0, 0, 0, 0, 0},          {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
	        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x03, 0x1a, 0x2c, 0x00, 0x00, 0x01},
	};
	for (size_t i = 0; i < sizeof(bad_macs) / sizeof(bad_macs[0]); i++) {
		record_n(2, false, &r);
		memcpy(r.mac, bad_macs[i], 6);
		ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, &err), IDP_E_FORMAT);
		ck_assert_msg(strstr(err.msg, "mac: ") != NULL, "%s", err.msg);
		ck_assert_uint_eq(len, 0);
		header_for(&s, 2, &h);
		ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &r, line, &len, &err), IDP_E_FORMAT);
	}
	record_n(2, false, &r);
	ck_assert_int_eq(fmt_manifest_encode_record(&r, line, &len, NULL), IDP_OK);
	/* MAC parsing and time formatting. */
	uint8_t mac[6];
	ck_assert_int_eq(fmt_mac_parse("0a:1b:2c:3d:4e:5f", 17, mac, NULL), IDP_OK);
	char text[18];
	fmt_mac_format(mac, text);
	ck_assert_str_eq(text, "0a:1b:2c:3d:4e:5f");
	ck_assert_int_eq(fmt_mac_parse("0a:1b:2c:3d:4e:5F", 17, mac, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "canonical"));
	ck_assert_int_eq(fmt_mac_parse("0a1b2c3d4e5f", 12, mac, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "canonical"));
	ck_assert_int_eq(fmt_mac_parse("0a:1b:2c:3d:4e:5g", 17, mac, &err), IDP_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(err.msg, "is not an EUI-48 address"));
	char t[FMT_MANIFEST_TIME_LEN + 1];
	ck_assert_int_eq(fmt_manifest_time_format(1795000000, t, NULL), IDP_OK);
	ck_assert_str_eq(t, "2026-11-18T11:06:40Z");
	station_free(&s);
}
END_TEST

/* Record i of a version 2 body: its key really signed a wire PROOF for
 * station "station-01" over a fresh nonce, as a station records it. */
static void captured_n(size_t i, struct fmt_manifest_record *r)
{
	record_n(i, false, r);
	struct fmt_key *k = NULL;
	ck_assert_int_eq(fmt_key_generate(i % 2 ? FMT_KEY_ED25519 : FMT_KEY_P256, &k, NULL),
	                 IDP_OK);
	ck_assert_int_eq(fmt_key_spki_der(k, r->pub, &r->pub_len, NULL), IDP_OK);
	struct fmt_wire_challenge ch;
	struct fmt_wire_info in;
	struct fmt_wire_proof pr;
	memset(&ch, 0, sizeof(ch));
	memset(&in, 0, sizeof(in));
	for (size_t j = 0; j < sizeof(ch.nonce); j++)
		ch.nonce[j] = (uint8_t)(i * 7 + j);
	ch.station_id_len = (size_t)snprintf(ch.station_id, sizeof(ch.station_id), "station-01");
	in.device_id_len = (size_t)snprintf(in.device_id, sizeof(in.device_id), "%s", r->id);
	memcpy(in.mac, r->mac, 6);
	in.serial_len = (size_t)snprintf(in.serial, sizeof(in.serial), "%s", r->serial);
	in.key_type = fmt_key_type(k);
	memcpy(in.spki, r->pub, r->pub_len);
	in.spki_len = r->pub_len;
	ck_assert_int_eq(fmt_wire_proof_sign(k, &ch, &in, &pr, NULL), IDP_OK);
	fmt_key_free(k);
	r->has_capture = true;
	memcpy(r->capture_nonce, ch.nonce, sizeof(ch.nonce));
	memcpy(r->capture_sig, pr.sig, sizeof(pr.sig));
}

/* A version 2 body of n captured records, through the writer. */
static struct buf captured_body(const struct station *s, size_t n, unsigned version,
                                struct fmt_manifest_record *recs)
{
	struct fmt_manifest_header h;
	header_for(s, n, &h);
	h.version = version;
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	struct buf b = {NULL, 0};
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	buf_add(&b, line, len);
	for (size_t i = 0; i < n; i++) {
		captured_n(i + 1, &recs[i]);
		ck_assert_int_eq(fmt_manifest_writer_record(&w, &recs[i], line, &len, NULL),
		                 IDP_OK);
		buf_add(&b, line, len);
	}
	ck_assert_int_eq(fmt_manifest_writer_finish(&w, NULL), IDP_OK);
	return b;
}

START_TEST(test_manifest_capture_round_trip_and_forgeries)
{
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_ES256);
	struct fmt_manifest_record recs[4], back[4];
	struct buf b = captured_body(&s, 4, FMT_MANIFEST_VERSION_CAPTURE, recs);
	ck_assert_ptr_nonnull(strstr((const char *)b.p, "{\"v\":2,"));
	ck_assert_ptr_nonnull(strstr((const char *)b.p, ",\"capture\":{\"nonce\":\""));
	size_t n = 0;
	struct idp_error err = {IDP_OK, ""};
	ck_assert_int_eq(read_all(b.p, b.len, 5, &n, back, &err), IDP_OK);
	ck_assert_uint_eq(n, 4);
	struct fmt_manifest_header h;
	size_t hl = (size_t)((uint8_t *)memchr(b.p, '\n', b.len) - b.p);
	ck_assert_int_eq(fmt_manifest_parse_header(b.p, hl, true, &h, NULL), IDP_OK);
	ck_assert_uint_eq(h.version, FMT_MANIFEST_VERSION_CAPTURE);
	for (size_t i = 0; i < n; i++) {
		ck_assert(back[i].has_capture);
		ck_assert_mem_eq(back[i].capture_nonce, recs[i].capture_nonce, 32);
		ck_assert_mem_eq(back[i].capture_sig, recs[i].capture_sig, 64);
		ck_assert_int_eq(fmt_manifest_capture_verify(&h, &back[i], &err), IDP_OK);
	}
	/* Forged: each byte of the signature, of the nonce; another station; the
	 * proof of another device (swapped); an altered identity. */
	struct fmt_manifest_record f = back[0];
	for (size_t j = 0; j < 64; j++) {
		f.capture_sig[j] ^= 0x01;
		ck_assert_int_ne(fmt_manifest_capture_verify(&h, &f, &err), IDP_OK);
		f.capture_sig[j] ^= 0x01;
	}
	ck_assert_int_eq(fmt_manifest_capture_verify(&h, &f, &err), IDP_OK);
	f.capture_nonce[31] ^= 0x80;
	ck_assert_int_eq(fmt_manifest_capture_verify(&h, &f, &err), IDP_E_VERIFY);
	ck_assert_str_eq(err.msg, "capture: proof: signature does not match the challenge, "
	                          "identity and key");
	f = back[0];
	memcpy(f.capture_sig, back[2].capture_sig, 64); /* same key type, another device */
	memcpy(f.capture_nonce, back[2].capture_nonce, 32);
	ck_assert_int_eq(fmt_manifest_capture_verify(&h, &f, &err), IDP_E_VERIFY);
	f = back[1];
	f.serial[2] = 'X';
	ck_assert_int_eq(fmt_manifest_capture_verify(&h, &f, &err), IDP_E_VERIFY);
	struct fmt_manifest_header other = h;
	strcpy(other.station, "station-02");
	ck_assert_int_eq(fmt_manifest_capture_verify(&other, &back[1], &err), IDP_E_VERIFY);
	f = back[1];
	f.has_capture = false;
	ck_assert_int_eq(fmt_manifest_capture_verify(&h, &f, &err), IDP_E_FORMAT);
	free(b.p);
	station_free(&s);
}
END_TEST

START_TEST(test_manifest_capture_version_rules)
{
	struct station s;
	station_new(&s, FMT_MANIFEST_SIG_ES256);
	struct fmt_manifest_record recs[2];
	struct buf b = captured_body(&s, 2, FMT_MANIFEST_VERSION_CAPTURE, recs);
	char *text = calloc(1, b.len + 1);
	ck_assert_ptr_nonnull(text);
	memcpy(text, b.p, b.len);
	/* A v1 header over captured records: refused naming the capture. */
	char *v1 = strdup(text);
	ck_assert_ptr_nonnull(v1);
	v1[5] = '1';
	refused(v1, IDP_E_FORMAT, "line 2: capture: not allowed in a version 1 manifest");
	/* A v2 record without its capture. */
	char *cut = strdup(text);
	ck_assert_ptr_nonnull(cut);
	char *c2 = strstr(strchr(cut, '\n') + 1, "\n") + 1; /* record 2 */
	char *cap = strstr(c2, ",\"capture\"");
	ck_assert_ptr_nonnull(cap);
	memmove(cap, "}\n", 3);
	refused(cut, IDP_E_FORMAT, "line 3: capture: missing (every record of a version 2");
	/* Malformed captures: unknown member, a 65-digit nonce, a cut signature,
	 * a signature of 65 bytes. */
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
	        {"{\"nonce\":", "{\"x\":1,\"nonce\":", "line 2: capture: unknown field \"x\""},
	        {"\"nonce\":\"", "\"nonce\":\"0", "line 2: capture: nonce: longer than 64 bytes"},
	        {"==\"}}", "\"}}", "line 2: capture: base64: length 86 is not a multiple of 4"},
	        {"==\"}}", "A=\"}}", "line 2: capture: sig: 65 bytes, must be 64"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = calloc(1, b.len + 64);
		ck_assert_ptr_nonnull(t);
		char *at = strstr(text, cases[i].from);
		ck_assert_ptr_nonnull(at);
		size_t pre = (size_t)(at - text);
		memcpy(t, text, pre);
		strcat(t, cases[i].to);
		strcat(t, at + strlen(cases[i].from));
		refused(t, 0, cases[i].want);
		free(t);
	}
	/* The writer keeps the rule too, and a capture needs a key. */
	struct fmt_manifest_header h;
	header_for(&s, 1, &h);
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0;
	struct idp_error err = {IDP_OK, ""};
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &recs[0], line, &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "capture: not allowed in a version 1 manifest");
	h.version = FMT_MANIFEST_VERSION_CAPTURE;
	struct fmt_manifest_record plain;
	record_n(1, true, &plain);
	ck_assert_int_eq(fmt_manifest_writer_begin(&w, &h, line, &len, NULL), IDP_OK);
	ck_assert_int_eq(fmt_manifest_writer_record(&w, &plain, line, &len, &err), IDP_E_FORMAT);
	recs[0].pub_len = 0;
	ck_assert_int_eq(fmt_manifest_encode_record(&recs[0], line, &len, &err), IDP_E_FORMAT);
	ck_assert_str_eq(err.msg, "capture: a capture proof needs pub");
	free(cut);
	free(v1);
	free(text);
	free(b.p);
	station_free(&s);
}
END_TEST

START_TEST(test_manifest_fast_key_check_agrees)
{
	/* fmt_key_spki_check (used per record) accepts exactly what the full
	 * OpenSSL parse accepts: every single-byte change of each key type. */
	EC_GROUP *g = fmt_key_p256_group();
	ck_assert_ptr_nonnull(g);
	for (int t = 0; t < 2; t++) {
		struct fmt_key *k = NULL;
		ck_assert_int_eq(fmt_key_generate(t ? FMT_KEY_ED25519 : FMT_KEY_P256, &k, NULL),
		                 IDP_OK);
		uint8_t spki[FMT_KEY_SPKI_MAX];
		size_t n = 0;
		ck_assert_int_eq(fmt_key_spki_der(k, spki, &n, NULL), IDP_OK);
		enum fmt_key_type type;
		ck_assert_int_eq(fmt_key_spki_check(spki, n, g, &type, NULL), IDP_OK);
		ck_assert_int_eq(type, fmt_key_type(k));
		for (size_t i = 0; i < n; i++) {
			spki[i] ^= 0x40;
			struct fmt_key *slow = NULL;
			bool want = fmt_key_parse_spki_der(spki, n, &slow, NULL) == IDP_OK;
			fmt_key_free(slow);
			bool got = fmt_key_spki_check(spki, n, i % 2 ? g : NULL, &type, NULL) == IDP_OK;
			ck_assert_msg(want == got, "type %d byte %zu: full parse %d, fast check %d", t,
			              i, want, got);
			spki[i] ^= 0x40;
		}
		/* Cut short, and one byte too many. */
		struct idp_error err;
		ck_assert_int_ne(fmt_key_spki_check(spki, n - 1, g, &type, &err), IDP_OK);
		spki[n] = 0;
		ck_assert_int_ne(fmt_key_spki_check(spki, n + 1, g, &type, &err), IDP_OK);
		fmt_key_free(k);
	}
	EC_GROUP_free(g);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("manifest");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_manifest_round_trip, 0, 3);
	tcase_add_loop_test(tc, test_manifest_verify_over_digest, 0, 3);
	tcase_add_loop_test(tc, test_manifest_every_byte_change_fails, 0, 3);
	tcase_add_loop_test(tc, test_manifest_truncation_fails_cleanly, 0, 3);
	tcase_add_test(tc, test_manifest_inserted_and_removed_lines);
	tcase_add_test(tc, test_manifest_check_pieces);
	tcase_add_test(tc, test_manifest_named_refusals);
	tcase_add_test(tc, test_manifest_header_refusals);
	tcase_add_test(tc, test_manifest_duplicates_refused);
	tcase_add_test(tc, test_manifest_wrong_key_types);
	tcase_add_loop_test(tc, test_manifest_refuses_weak_ed25519_keys, 0,
	                    IDP_TEST_SMALL_ORDER_N + IDP_TEST_NONCANONICAL_N);
	tcase_add_loop_test(tc, test_manifest_header_binds_key_and_kind, 0, 3);
	tcase_add_test(tc, test_manifest_cms_details);
	tcase_add_test(tc, test_manifest_cms_station_named_by_certificate);
	tcase_add_test(tc, test_manifest_writer_checks);
	tcase_add_test(tc, test_manifest_fast_key_check_agrees);
	tcase_add_test(tc, test_manifest_capture_round_trip_and_forgeries);
	tcase_add_test(tc, test_manifest_capture_version_rules);
	suite_add_tcase(s, tc);
	return s;
}
