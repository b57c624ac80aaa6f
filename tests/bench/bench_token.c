/*
 * bench_token.c - token sign+verify rate against the ceiling of OpenSSL's own
 * EVP sign+verify rate, measured in the same run with the same key over a
 * message of the same size as the token's signing input. Prints the ratio per
 * algorithm (goal >= 0.8: the JWS, JSON and base64url work around the
 * signature costs at most a quarter of the signature itself).
 *
 * Short bursts of token and raw runs alternate, and the ratio printed is the
 * median of the ratios of adjacent bursts: a noisy neighbour on a shared
 * machine slows both sides of a pair alike, and the median drops the pairs it
 * split. The rates printed are the best burst of each side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "formats/token.h"

#define NOW        1800000000LL
#define PAIRS      41 /* odd: the median is one pair's ratio */
#define ROUND_SECS 0.05
#define GOAL       0.8

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ctx {
	const struct fmt_key *key;
	const char *kid;
	struct fmt_token_claims claims;
	size_t msg_len; /* the signing input of one token */
};

static void die(const char *what, const struct idp_error *err)
{
	fprintf(stderr, "bench_token: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

/* One token signed and verified, as the server does on issue and use. */
static void token_once(const struct ctx *c)
{
	struct idp_error err;
	struct fmt_token_claims cl = c->claims;
	char *t = NULL;
	size_t len = 0;
	if (fmt_token_sign(c->key, c->kid, &cl, NOW, 0, NULL, &t, &len, &err) != IDP_OK)
		die("sign", &err);
	struct fmt_token_key set[1] = {{c->kid, c->key}};
	struct fmt_token_policy p = {
	        .iss = cl.iss, .aud = cl.aud, .jkt = cl.jkt, .kinds = FMT_TOKEN_DEVICE, .now = NOW};
	if (fmt_token_verify((const uint8_t *)t, len, set, 1, &p, NULL, NULL, &err) != IDP_OK)
		die("verify", &err);
	fmt_token_free(t);
}

/* The ceiling: a plain EVP sign and verify of a message of the same size,
 * each with its own context as a server handling requests would. */
static void raw_once(const struct ctx *c)
{
	static uint8_t msg[FMT_TOKEN_MAX];
	EVP_PKEY *pk = fmt_key_evp(c->key);
	const char *md = fmt_key_type(c->key) == FMT_KEY_P256 ? "SHA256" : NULL;
	uint8_t sig[128];
	size_t sn = sizeof(sig);
	EVP_MD_CTX *s = EVP_MD_CTX_new();
	if (s == NULL || EVP_DigestSignInit_ex(s, NULL, md, NULL, NULL, pk, NULL) != 1 ||
	    EVP_DigestSign(s, sig, &sn, msg, c->msg_len) != 1)
		die("raw sign", NULL);
	EVP_MD_CTX_free(s);
	EVP_MD_CTX *v = EVP_MD_CTX_new();
	if (v == NULL || EVP_DigestVerifyInit_ex(v, NULL, md, NULL, NULL, pk, NULL) != 1 ||
	    EVP_DigestVerify(v, sig, sn, msg, c->msg_len) != 1)
		die("raw verify", NULL);
	EVP_MD_CTX_free(v);
}

/* Operations per second of f over one round. */
static double rate(void (*f)(const struct ctx *), const struct ctx *c)
{
	double t0 = now_s(), t;
	long n = 0;
	do {
		f(c);
		n++;
		t = now_s();
	} while (t - t0 < ROUND_SECS);
	return (double)n / (t - t0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int bench(enum fmt_key_type type, const char *alg)
{
	struct idp_error err;
	struct fmt_key *key = NULL, *dev = NULL;
	if (fmt_key_generate(type, &key, &err) != IDP_OK ||
	    fmt_key_generate(FMT_KEY_P256, &dev, &err) != IDP_OK)
		die("keygen", &err);
	struct ctx c = {.key = key, .kid = "tok-2026-1"};
	snprintf(c.claims.iss, sizeof(c.claims.iss), "https://idprovd.local:8443");
	snprintf(c.claims.aud, sizeof(c.claims.aud), "idprov");
	snprintf(c.claims.sub, sizeof(c.claims.sub), "dev-0000000001");
	c.claims.kind = FMT_TOKEN_DEVICE;
	if (fmt_token_jkt(dev, c.claims.jkt, &err) != IDP_OK)
		die("jkt", &err);
	struct fmt_token_claims cl = c.claims;
	char *t = NULL;
	size_t len = 0;
	if (fmt_token_sign(key, c.kid, &cl, NOW, 0, NULL, &t, &len, &err) != IDP_OK)
		die("sign", &err);
	c.msg_len = (size_t)(strrchr(t, '.') - t);
	fmt_token_free(t);

	double best_tok = 0, best_raw = 0, ratios[PAIRS];
	token_once(&c); /* warm up both paths */
	raw_once(&c);
	for (int r = 0; r < PAIRS; r++) {
		double a = rate(token_once, &c), b = rate(raw_once, &c);
		best_tok = a > best_tok ? a : best_tok;
		best_raw = b > best_raw ? b : best_raw;
		ratios[r] = a / b;
	}
	qsort(ratios, PAIRS, sizeof(ratios[0]), cmp_double);
	double ratio = ratios[PAIRS / 2];
	printf("token %-5s sign+verify %8.0f/s; raw EVP %-7s sign+verify (%zu-byte message) "
	       "%8.0f/s; ratio %.2f (median of %d pairs; goal >= %.1f)%s\n",
	       alg, best_tok, fmt_key_type_name(type), c.msg_len, best_raw, ratio, PAIRS, GOAL,
	       ratio >= GOAL ? "" : "  BELOW GOAL");
	fmt_key_free(key);
	fmt_key_free(dev);
	return ratio >= GOAL;
}

int main(void)
{
	bench(FMT_KEY_P256, "ES256");
	bench(FMT_KEY_ED25519, "EdDSA");
	return 0;
}
