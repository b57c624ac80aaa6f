/*
 * bench_manifest.c - batch manifest v1 benchmark (make bench).
 *
 * For a 100,000-device body: our sign and verify of each kind against
 * OpenSSL's own one-shot sign/verify of the same bytes (EVP_DigestSign /
 * EVP_DigestVerify, CMS_sign / CMS_verify), printed as rate ratios measured
 * in this run (OpenSSL's time over ours: 1.00 is OpenSSL's own speed, higher
 * is faster); the reader's rate in records/s; then the peak RSS of a fresh
 * process that streams a manifest file through the reader, and through
 * verify + reader + duplicate set, for 100,000 and 1,000,000 devices (the
 * reader should be flat; the duplicate set grows by design).
 *
 * Records carry Ed25519 keys made from a counter (any 32 bytes encode an
 * Ed25519 public key), so that a million unique keys cost no key generation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "formats/manifest.h"
#include "formats/manifest_dedup.h"
#include "formats/manifest_sig.h"

#define CHUNK 65536

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct idp_error *err)
{
	fprintf(stderr, "bench_manifest: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

/* ---------------------------------------------------------------- fixtures */

struct station {
	struct fmt_key *p256, *ed25519, *ca_key;
	X509 *ca, *cert;
	X509_STORE *store;
};

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *c = X509_new();
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), issuer == NULL ? 1 : 2);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400);
	X509_NAME *name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(c, key);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : c, c, NULL, NULL, 0);
	const char *bc = issuer == NULL ? "critical,CA:TRUE" : "CA:FALSE";
	const char *ku = issuer == NULL ? "critical,keyCertSign" : "critical,digitalSignature";
	X509_EXTENSION *e1 = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, bc);
	X509_EXTENSION *e2 = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, ku);
	if (e1 == NULL || e2 == NULL || X509_add_ext(c, e1, -1) != 1 || X509_add_ext(c, e2, -1) != 1 ||
	    X509_sign(c, issuer_key, EVP_sha256()) <= 0)
		die("certificate", NULL);
	X509_EXTENSION_free(e1);
	X509_EXTENSION_free(e2);
	return c;
}

static void station_new(struct station *s)
{
	if (fmt_key_generate(FMT_KEY_P256, &s->p256, NULL) != IDP_OK ||
	    fmt_key_generate(FMT_KEY_ED25519, &s->ed25519, NULL) != IDP_OK ||
	    fmt_key_generate(FMT_KEY_P256, &s->ca_key, NULL) != IDP_OK)
		die("keys", NULL);
	s->ca = make_cert(fmt_key_evp(s->ca_key), "bench CA", NULL, fmt_key_evp(s->ca_key));
	s->cert = make_cert(fmt_key_evp(s->p256), "station-01", s->ca, fmt_key_evp(s->ca_key));
	s->store = X509_STORE_new();
	X509_STORE_add_cert(s->store, s->ca);
}

static const struct fmt_key *key_for(const struct station *s, enum fmt_manifest_sig kind)
{
	return kind == FMT_MANIFEST_SIG_ED25519 ? s->ed25519 : s->p256;
}

/* Write the body of n records for kind to f (and/or to a growing buffer). */
static void write_body(const struct station *s, enum fmt_manifest_sig kind, size_t n, FILE *f,
                       uint8_t **mem, size_t *mem_len)
{
	struct fmt_manifest_header h;
	memset(&h, 0, sizeof(h));
	h.version = FMT_MANIFEST_VERSION;
	strcpy(h.batch, "bench");
	strcpy(h.station, "station-01");
	h.seq = 1;
	strcpy(h.created, "2026-11-23T12:00:00Z");
	strcpy(h.product, "Bench P1");
	h.count = n;
	h.sig = kind;
	struct idp_error err;
	if (fmt_key_fingerprint(key_for(s, kind), h.key, &err) != IDP_OK)
		die("fingerprint", &err);
	/* An Ed25519 SPKI whose 32 key bytes are filled from the record number. */
	static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
	                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	static struct fmt_manifest_record r;
	memset(&r, 0, sizeof(r));
	memcpy(r.pub, spki_prefix, sizeof(spki_prefix));
	r.pub_len = 44;
	r.nattrs = 1;
	strcpy(r.attrs[0].key, "line");
	strcpy(r.attrs[0].value, "L2");
	struct fmt_manifest_writer w;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t len = 0, cap = 0;
	if (mem != NULL) {
		cap = n * 200 + 4096;
		*mem = malloc(cap);
		*mem_len = 0;
		if (*mem == NULL)
			die("out of memory", NULL);
	}
	for (size_t i = 0; i <= n; i++) {
		enum idp_err rc;
		if (i == 0) {
			rc = fmt_manifest_writer_begin(&w, &h, line, &len, &err);
		} else {
			snprintf(r.id, sizeof(r.id), "dev-%08zu", i);
			snprintf(r.serial, sizeof(r.serial), "SN%010zu", i);
			for (int b = 0; b < 6; b++)
				r.mac[b] = (uint8_t)((uint64_t)i >> (8 * (5 - b)));
			r.mac[0] = 0x02;
			uint64_t x = i * 0x9e3779b97f4a7c15ULL;
			for (int b = 0; b < 32; b++) {
				x ^= x >> 29;
				x *= 0xbf58476d1ce4e5b9ULL;
				r.pub[12 + b] = (uint8_t)(x >> 56);
			}
			rc = fmt_manifest_writer_record(&w, &r, line, &len, &err);
		}
		if (rc != IDP_OK)
			die("write", &err);
		if (f != NULL && fwrite(line, 1, len, f) != len)
			die("fwrite", NULL);
		if (mem != NULL) {
			if (len > cap - *mem_len)
				die("body estimate too small", NULL);
			memcpy(*mem + *mem_len, line, len);
			*mem_len += len;
		}
	}
	if (fmt_manifest_writer_finish(&w, &err) != IDP_OK)
		die("finish", &err);
}

/* ---------------------------------------------------------------- OpenSSL's own */

static void openssl_sign_verify(const struct station *s, enum fmt_manifest_sig kind,
                                const uint8_t *body, size_t len, double *t_sign,
                                double *t_verify)
{
	double t0 = now();
	if (kind == FMT_MANIFEST_SIG_CMS) {
		BIO *in = BIO_new_mem_buf(body, (int)len);
		CMS_ContentInfo *cms =
			CMS_sign(s->cert, fmt_key_evp(s->p256), NULL, in,
			         CMS_BINARY | CMS_DETACHED | CMS_NOSMIMECAP);
		BIO_free(in);
		*t_sign = now() - t0;
		if (cms == NULL)
			die("CMS_sign", NULL);
		t0 = now();
		in = BIO_new_mem_buf(body, (int)len);
		int ok = CMS_verify(cms, NULL, s->store, in, NULL, CMS_BINARY);
		*t_verify = now() - t0;
		BIO_free(in);
		CMS_ContentInfo_free(cms);
		if (ok != 1)
			die("CMS_verify", NULL);
		return;
	}
	EVP_PKEY *pk = fmt_key_evp(key_for(s, kind));
	const char *md = kind == FMT_MANIFEST_SIG_ES256 ? "SHA256" : NULL;
	uint8_t sig[128];
	size_t n = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, pk, NULL) != 1 ||
	    EVP_DigestSign(ctx, sig, &n, body, len) != 1)
		die("EVP_DigestSign", NULL);
	*t_sign = now() - t0;
	EVP_MD_CTX_free(ctx);
	ctx = EVP_MD_CTX_new();
	t0 = now();
	if (EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, pk, NULL) != 1 ||
	    EVP_DigestVerify(ctx, sig, n, body, len) != 1)
		die("EVP_DigestVerify", NULL);
	*t_verify = now() - t0;
	EVP_MD_CTX_free(ctx);
}

/* Best of `rounds` runs of ours and OpenSSL's, for one kind. */
static void compare(const struct station *s, enum fmt_manifest_sig kind, const uint8_t *body,
                    size_t len)
{
	double ours_s = 1e9, ours_v = 1e9, ossl_s = 1e9, ossl_v = 1e9;
	for (int round = 0; round < 3; round++) {
		struct idp_error err;
		uint8_t *sig = NULL;
		size_t sig_len = 0;
		double t0 = now();
		if (fmt_manifest_sign(kind, key_for(s, kind), s->cert, NULL, body, len, &sig, &sig_len,
		                      &err) != IDP_OK)
			die("sign", &err);
		double t1 = now();
		struct fmt_manifest_trust trust = {kind == FMT_MANIFEST_SIG_CMS ? NULL : key_for(s, kind),
		                                   kind == FMT_MANIFEST_SIG_CMS ? s->store : NULL};
		struct fmt_manifest_verified v;
		if (fmt_manifest_verify(sig, sig_len, &trust, body, len, &v, &err) != IDP_OK)
			die("verify", &err);
		double t2 = now();
		free(sig);
		ours_s = t1 - t0 < ours_s ? t1 - t0 : ours_s;
		ours_v = t2 - t1 < ours_v ? t2 - t1 : ours_v;
		double a, b;
		openssl_sign_verify(s, kind, body, len, &a, &b);
		ossl_s = a < ossl_s ? a : ossl_s;
		ossl_v = b < ossl_v ? b : ossl_v;
	}
	/* Printed as a rate ratio (openssl time / our time), like every other
	 * bench: 1.00 is OpenSSL's own speed, higher is faster. */
	printf("  %-8s sign   %7.2f ms  openssl %7.2f ms  rate ratio %.2f\n",
	       fmt_manifest_sig_name(kind), ours_s * 1e3, ossl_s * 1e3, ossl_s / ours_s);
	printf("  %-8s verify %7.2f ms  openssl %7.2f ms  rate ratio %.2f\n", "", ours_v * 1e3,
	       ossl_v * 1e3, ossl_v / ours_v);
}

/* ---------------------------------------------------------------- reading */

/* Stream body through the reader (and the duplicate set when dedup). */
static uint64_t read_stream(FILE *f, const uint8_t *mem, size_t mem_len, bool dedup)
{
	static uint8_t buf[CHUNK];
	struct fmt_manifest_reader *r = fmt_manifest_reader_new();
	struct fmt_manifest_dedup *d = dedup ? fmt_manifest_dedup_new() : NULL;
	struct idp_error err;
	uint64_t records = 0;
	size_t off = 0;
	for (;;) {
		size_t n;
		const uint8_t *p;
		if (f != NULL) {
			n = fread(buf, 1, sizeof(buf), f);
			p = buf;
		} else {
			n = mem_len - off < CHUNK ? mem_len - off : CHUNK;
			p = mem + off;
			off += n;
		}
		if (n == 0)
			break;
		for (size_t pos = 0; pos < n;) {
			size_t used;
			enum fmt_manifest_item item;
			if (fmt_manifest_reader_feed(r, p + pos, n - pos, &used, &item, &err) != IDP_OK)
				die("read", &err);
			pos += used;
			if (item != FMT_MANIFEST_RECORD)
				continue;
			records++;
			if (d != NULL &&
			    fmt_manifest_dedup_add(d, fmt_manifest_reader_record(r), &err) != IDP_OK)
				die("dedup", &err);
		}
	}
	if (fmt_manifest_reader_finish(r, &err) != IDP_OK)
		die("finish", &err);
	fmt_manifest_dedup_free(d);
	fmt_manifest_reader_free(r);
	return records;
}

/* Child mode: "--rss read|verify BODY SIG PUB": stream, print nothing. */
static int child(const char *mode, const char *body, const char *sigpath)
{
	FILE *f = fopen(body, "rb");
	if (f == NULL)
		die(body, NULL);
	if (strcmp(mode, "verify") == 0) {
		/* Fresh P-256 trust from the signature file's sibling .pub (SPKI DER). */
		char pub[4096];
		snprintf(pub, sizeof(pub), "%s.spki", sigpath);
		static uint8_t sig[FMT_MANIFEST_SIG_MAX], spki[FMT_KEY_SPKI_MAX];
		FILE *sf = fopen(sigpath, "rb"), *kf = fopen(pub, "rb");
		if (sf == NULL || kf == NULL)
			die("sig files", NULL);
		size_t sl = fread(sig, 1, sizeof(sig), sf), kl = fread(spki, 1, sizeof(spki), kf);
		fclose(sf);
		fclose(kf);
		struct fmt_key *k = NULL;
		struct idp_error err;
		if (fmt_key_parse_spki_der(spki, kl, &k, &err) != IDP_OK)
			die("key", &err);
		struct fmt_manifest_trust trust = {k, NULL};
		struct fmt_manifest_verifier *v = NULL;
		if (fmt_manifest_verifier_new(sig, sl, &trust, &v, &err) != IDP_OK)
			die("verifier", &err);
		static uint8_t buf[CHUNK];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			if (fmt_manifest_verifier_update(v, buf, n, &err) != IDP_OK)
				die("update", &err);
		struct fmt_manifest_verified ok;
		if (fmt_manifest_verifier_final(v, &ok, &err) != IDP_OK)
			die("final", &err);
		fmt_manifest_verifier_free(v);
		fmt_key_free(k);
		rewind(f);
	}
	if (strcmp(mode, "start") != 0)
		read_stream(f, NULL, 0, strcmp(mode, "verify") == 0);
	fclose(f);
	/* Report this process's peak resident set. */
	FILE *st = fopen("/proc/self/status", "r");
	char line[256];
	while (st != NULL && fgets(line, sizeof(line), st) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			fputs(line, stdout);
	if (st != NULL)
		fclose(st);
	return 0;
}

/* Peak RSS (KiB, the child's own VmHWM: ru_maxrss would include the
 * parent's pages at fork) and wall time of a fresh process running child(). */
static long measure(const char *self, const char *mode, const char *body, const char *sig,
                    double *secs)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' --rss %s '%s' '%s'", self, mode, body, sig);
	double t0 = now();
	FILE *p = popen(cmd, "r");
	long kib = -1;
	if (p == NULL || fscanf(p, "VmHWM: %ld", &kib) != 1 || pclose(p) != 0 || kib <= 0)
		die("child", NULL);
	*secs = now() - t0;
	return kib;
}

/* A signed (es256) manifest of n devices in dir; returns write seconds. */
static double make_file(const struct station *s, size_t n, const char *body, const char *sig)
{
	double t0 = now();
	FILE *f = fopen(body, "wb");
	if (f == NULL)
		die(body, NULL);
	write_body(s, FMT_MANIFEST_SIG_ES256, n, f, NULL, NULL);
	if (fclose(f) != 0)
		die("fclose", NULL);
	double t = now() - t0;
	/* Sign by streaming the file back. */
	struct fmt_manifest_signer *sg = NULL;
	struct idp_error err;
	if (fmt_manifest_signer_new(FMT_MANIFEST_SIG_ES256, s->p256, NULL, NULL, &sg, &err) != IDP_OK)
		die("signer", &err);
	f = fopen(body, "rb");
	static uint8_t buf[CHUNK];
	size_t k;
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		if (fmt_manifest_signer_update(sg, buf, k, &err) != IDP_OK)
			die("sign", &err);
	fclose(f);
	uint8_t *sb = NULL;
	size_t sl = 0;
	if (fmt_manifest_signer_final(sg, &sb, &sl, NULL, &err) != IDP_OK)
		die("sign", &err);
	fmt_manifest_signer_free(sg);
	f = fopen(sig, "wb");
	fwrite(sb, 1, sl, f);
	fclose(f);
	free(sb);
	char pub[4096];
	snprintf(pub, sizeof(pub), "%s.spki", sig);
	uint8_t spki[FMT_KEY_SPKI_MAX];
	size_t kl = 0;
	if (fmt_key_spki_der(s->p256, spki, &kl, &err) != IDP_OK)
		die("spki", &err);
	f = fopen(pub, "wb");
	fwrite(spki, 1, kl, f);
	fclose(f);
	return t;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--rss") == 0)
		return child(argv[2], argv[3], argv[4]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct station s;
	station_new(&s);

	enum { N = 100000 };
	uint8_t *body = NULL;
	size_t len = 0;
	printf("batch manifest, %d devices (Ed25519 device keys, 1 attribute each)\n", N);
	static const enum fmt_manifest_sig kinds[] = {FMT_MANIFEST_SIG_ES256, FMT_MANIFEST_SIG_ED25519,
	                                              FMT_MANIFEST_SIG_CMS};
	for (size_t k = 0; k < 3; k++) {
		write_body(&s, kinds[k], N, NULL, &body, &len);
		if (k == 0)
			printf("  body %.1f MiB; ours (streaming, SHA-256 of the body) vs OpenSSL one-shot "
			       "over the same bytes:\n",
			       (double)len / 1048576);
		compare(&s, kinds[k], body, len);
		if (k + 1 < 3)
			free(body);
	}
	double best = 1e9;
	for (int round = 0; round < 3; round++) {
		double t0 = now();
		if (read_stream(NULL, body, len, false) != N)
			die("record count", NULL);
		best = now() - t0 < best ? now() - t0 : best;
	}
	printf("  reader        %9.0f records/s (%.1f MiB/s)\n", N / best, (double)len / 1048576 / best);
	best = 1e9;
	for (int round = 0; round < 3; round++) {
		double t0 = now();
		read_stream(NULL, body, len, true);
		best = now() - t0 < best ? now() - t0 : best;
	}
	printf("  reader+dedup  %9.0f records/s\n", N / best);
	free(body);

	char dir[] = "/tmp/idp-bench-manifest-XXXXXX";
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", NULL);
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		die("readlink", NULL);
	self[sl] = '\0';
	printf("peak RSS of a fresh process streaming the file (64 KiB reads):\n");
	static const size_t sizes[] = {100000, 1000000};
	long rss_read[2], rss_dedup[2], rss_start = 0;
	for (size_t i = 0; i < 2; i++) {
		char b[256], g[300], p[320];
		snprintf(b, sizeof(b), "%s/m%zu.manifest", dir, sizes[i]);
		snprintf(g, sizeof(g), "%s.sig", b);
		double tw = make_file(&s, sizes[i], b, g);
		double tr, tv;
		if (i == 0)
			rss_start = measure(self, "start", b, g, &tr);
		rss_read[i] = measure(self, "read", b, g, &tr);
		rss_dedup[i] = measure(self, "verify", b, g, &tv);
		printf("  %7zu devices: written in %.1f s; reader %6ld KiB (%.1f s); verify+reader+dedup "
		       "%6ld KiB (%.1f s)\n",
		       sizes[i], tw, rss_read[i], tr, rss_dedup[i], tv);
		snprintf(p, sizeof(p), "%s.spki", g);
		unlink(b);
		unlink(g);
		unlink(p);
	}
	rmdir(dir);
	printf("  (a process that starts and reads nothing: %ld KiB)\n", rss_start);
	printf("  reader RSS 1M/100k: %.2f (flat is 1.00); dedup grows by %.0f bytes/device\n",
	       (double)rss_read[1] / (double)rss_read[0],
	       (double)(rss_dedup[1] - rss_dedup[0]) * 1024 / 900000.0);
	fmt_key_free(s.p256);
	fmt_key_free(s.ed25519);
	fmt_key_free(s.ca_key);
	X509_free(s.ca);
	X509_free(s.cert);
	X509_STORE_free(s.store);
	return 0;
}
