/*
 * manifest_sig.c - see manifest_sig.h. Spec: formats/manifest.md.
 *
 * CMS goes through OpenSSL's CMS API only: CMS_sign + CMS_dataInit /
 * CMS_dataFinal to sign a stream; to verify a stream, the body's SHA-256 is
 * compared with the signed messageDigest attribute, CMS_SignerInfo_verify
 * checks the signature over the signed attributes and X509_verify_cert the
 * chain, with the "smime_sign" purpose that `openssl cms -verify` uses, so
 * both accept and refuse the same certificates.
 */
#include "formats/manifest_sig.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>

struct fmt_manifest_signer {
	enum fmt_manifest_sig kind;
	const struct fmt_key *key;
	EVP_MD_CTX *md;       /* SHA-256 of the body, every kind */
	CMS_ContentInfo *cms; /* cms: partial SignedData */
	BIO *cms_bio;         /* cms: CMS_dataInit chain the body is written into */
	bool spent;
};

struct fmt_manifest_verifier {
	enum fmt_manifest_sig kind;
	const struct fmt_key *key; /* es256, ed25519 */
	X509_STORE *store;         /* cms */
	CMS_ContentInfo *cms;      /* cms */
	uint8_t sig[FMT_KEY_SIG_MAX];
	size_t sig_len;
	EVP_MD_CTX *md;
	uint64_t body_len;
	uint8_t header[FMT_MANIFEST_LINE_MAX]; /* the first line, as it streams past */
	size_t header_len;
	bool header_done; /* its LF was seen */
	bool spent;
	X509 *signer; /* cms: the verified signer certificate, names the station */
};

static enum idp_err md_new(EVP_MD_CTX **md, struct idp_error *err)
{
	*md = EVP_MD_CTX_new();
	if (*md == NULL || EVP_DigestInit_ex2(*md, EVP_sha256(), NULL) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "manifest: sha-256");
	return IDP_OK;
}

static enum idp_err md_final(EVP_MD_CTX *md, uint8_t out[static FMT_MANIFEST_HASH_LEN],
                             struct idp_error *err)
{
	unsigned n = 0;
	if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != FMT_MANIFEST_HASH_LEN)
		return idp_error_ssl(err, IDP_E_CRYPTO, "manifest: sha-256");
	return IDP_OK;
}

/* The key type a kind needs. */
static enum fmt_key_type key_type_for(enum fmt_manifest_sig kind)
{
	return kind == FMT_MANIFEST_SIG_ED25519 ? FMT_KEY_ED25519 : FMT_KEY_P256;
}

/* ---------------------------------------------------------------- signer */

enum idp_err fmt_manifest_signer_new(enum fmt_manifest_sig kind, const struct fmt_key *key,
                                     X509 *cert, STACK_OF(X509) *chain,
                                     struct fmt_manifest_signer **out, struct idp_error *err)
{
	*out = NULL;
	if (kind != FMT_MANIFEST_SIG_CMS && kind != FMT_MANIFEST_SIG_ES256 &&
	    kind != FMT_MANIFEST_SIG_ED25519)
		return idp_error_set(err, IDP_E_ARG, "sign: unknown kind %d", (int)kind);
	if (!fmt_key_has_private(key))
		return idp_error_set(err, IDP_E_ARG, "sign: station key has no private half");
	if (fmt_key_type(key) != key_type_for(kind))
		return idp_error_set(err, IDP_E_UNSUPPORTED, "sign: %s needs a %s key, not %s",
		                     fmt_manifest_sig_name(kind),
		                     fmt_key_type_name(key_type_for(kind)),
		                     fmt_key_type_name(fmt_key_type(key)));
	if (kind == FMT_MANIFEST_SIG_CMS && cert == NULL)
		return idp_error_set(err, IDP_E_ARG, "sign: cms needs the station certificate");
	struct fmt_manifest_signer *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "sign: out of memory");
	s->kind = kind;
	s->key = key;
	enum idp_err rc = md_new(&s->md, err);
	if (rc != IDP_OK)
		goto out;
	if (kind == FMT_MANIFEST_SIG_CMS) {
		if (X509_check_private_key(cert, fmt_key_evp(key)) != 1) {
			rc = idp_error_ssl(err, IDP_E_ARG,
			                   "sign: station certificate is not for the station key");
			goto out;
		}
		unsigned flags = CMS_BINARY | CMS_DETACHED | CMS_PARTIAL | CMS_NOSMIMECAP;
		s->cms = CMS_sign(cert, fmt_key_evp(key), chain, NULL, flags);
		if (s->cms == NULL) {
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms");
			goto out;
		}
		s->cms_bio = CMS_dataInit(s->cms, NULL);
		if (s->cms_bio == NULL) {
			rc = idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms");
			goto out;
		}
	}
	*out = s;
	s = NULL;
out:
	fmt_manifest_signer_free(s);
	return rc;
}

enum idp_err fmt_manifest_signer_update(struct fmt_manifest_signer *s, const uint8_t *buf,
                                        size_t len, struct idp_error *err)
{
	if (s->spent)
		return idp_error_set(err, IDP_E_ARG, "sign: signer already finished");
	/* cms hashes the body in its own BIO chain; hashing twice would halve the rate. */
	if (s->cms_bio == NULL && len > 0 && EVP_DigestUpdate(s->md, buf, len) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "sign: sha-256");
	while (s->cms_bio != NULL && len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		int w = BIO_write(s->cms_bio, buf, n);
		if (w <= 0)
			return idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms");
		buf += w;
		len -= (size_t)w;
	}
	return IDP_OK;
}

/* ECDSA over a precomputed SHA-256, DER: what `openssl dgst -sha256 -sign` makes. */
static enum idp_err es256_sign(const struct fmt_key *key, const uint8_t *digest, uint8_t *sig,
                               size_t *len, struct idp_error *err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(fmt_key_evp(key), NULL);
	enum idp_err rc = IDP_OK;
	*len = FMT_KEY_SIG_MAX;
	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_sign(ctx, sig, len, digest, FMT_MANIFEST_HASH_LEN) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "sign: es256");
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

static enum idp_err cms_final(struct fmt_manifest_signer *s, uint8_t **sig, size_t *sig_len,
                              uint8_t digest[static FMT_MANIFEST_HASH_LEN], struct idp_error *err)
{
	if (BIO_flush(s->cms_bio) != 1 || CMS_dataFinal(s->cms, s->cms_bio) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms");
	/* The body's SHA-256 is the signed messageDigest attribute. */
	CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(s->cms), 0);
	ASN1_OCTET_STRING *md = si == NULL ? NULL
	                                   : CMS_signed_get0_data_by_OBJ(
	                                             si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
	                                             V_ASN1_OCTET_STRING);
	if (md == NULL || ASN1_STRING_length(md) != (int)FMT_MANIFEST_HASH_LEN)
		return idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms has no sha-256 messageDigest");
	memcpy(digest, ASN1_STRING_get0_data(md), FMT_MANIFEST_HASH_LEN);
	int n = i2d_CMS_ContentInfo(s->cms, NULL);
	if (n <= 0 || (size_t)n > FMT_MANIFEST_SIG_MAX)
		return idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms encodes to %d bytes", n);
	uint8_t *der = malloc((size_t)n);
	if (der == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "sign: out of memory");
	unsigned char *p = der;
	if (i2d_CMS_ContentInfo(s->cms, &p) != n) {
		free(der);
		return idp_error_ssl(err, IDP_E_CRYPTO, "sign: cms");
	}
	*sig = der;
	*sig_len = (size_t)n;
	return IDP_OK;
}

enum idp_err fmt_manifest_signer_final(struct fmt_manifest_signer *s, uint8_t **sig,
                                       size_t *sig_len, uint8_t *body_sha256,
                                       struct idp_error *err)
{
	*sig = NULL;
	*sig_len = 0;
	if (s->spent)
		return idp_error_set(err, IDP_E_ARG, "sign: signer already finished");
	s->spent = true;
	uint8_t digest[FMT_MANIFEST_HASH_LEN];
	enum idp_err rc;
	if (s->kind == FMT_MANIFEST_SIG_CMS) {
		rc = cms_final(s, sig, sig_len, digest, err);
	} else if ((rc = md_final(s->md, digest, err)) == IDP_OK) {
		uint8_t buf[FMT_KEY_SIG_MAX];
		size_t n = 0;
		if (s->kind == FMT_MANIFEST_SIG_ES256)
			rc = es256_sign(s->key, digest, buf, &n, err);
		else
			rc = fmt_key_sign(s->key, FMT_SIG_DER, digest, sizeof(digest), buf, &n, err);
		if (rc == IDP_OK) {
			*sig = malloc(n);
			if (*sig == NULL)
				return idp_error_set(err, IDP_E_NOMEM, "sign: out of memory");
			memcpy(*sig, buf, n);
			*sig_len = n;
		}
	}
	if (rc == IDP_OK && body_sha256 != NULL)
		memcpy(body_sha256, digest, sizeof(digest));
	return rc;
}

void fmt_manifest_signer_free(struct fmt_manifest_signer *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->md);
	BIO_free_all(s->cms_bio);
	CMS_ContentInfo_free(s->cms);
	free(s);
}

enum idp_err fmt_manifest_sign(enum fmt_manifest_sig kind, const struct fmt_key *key, X509 *cert,
                               STACK_OF(X509) *chain, const uint8_t *body, size_t len,
                               uint8_t **sig, size_t *sig_len, struct idp_error *err)
{
	*sig = NULL;
	*sig_len = 0;
	struct fmt_manifest_signer *s = NULL;
	enum idp_err rc = fmt_manifest_signer_new(kind, key, cert, chain, &s, err);
	if (rc == IDP_OK && s != NULL) { /* s is set whenever rc is IDP_OK */
		rc = fmt_manifest_signer_update(s, body, len, err);
		if (rc == IDP_OK)
			rc = fmt_manifest_signer_final(s, sig, sig_len, NULL, err);
	}
	fmt_manifest_signer_free(s);
	return rc;
}

/* ---------------------------------------------------------------- verifier */

/* The fields CMS verification ignores, pinned to the one profile we sign:
 * SignedData version 1, digestAlgorithms exactly {sha-256}, one SignerInfo
 * of version 1. The CMS API has no getters for them; the PKCS#7 structures
 * (same ASN.1 for this profile) have, so one byte changed there is refused
 * too. */
static enum idp_err cms_profile(const uint8_t *sig, size_t len, struct idp_error *err)
{
	const unsigned char *p = sig;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	bool ok = p7 != NULL && PKCS7_type_is_signed(p7) && p7->d.sign != NULL;
	if (ok) {
		const PKCS7_SIGNED *sd = p7->d.sign;
		ok = ASN1_INTEGER_get(sd->version) == 1 && sk_X509_ALGOR_num(sd->md_algs) == 1 &&
		     sk_PKCS7_SIGNER_INFO_num(sd->signer_info) == 1;
		if (ok) {
			const ASN1_OBJECT *obj = NULL;
			int ptype = 0;
			X509_ALGOR_get0(&obj, &ptype, NULL, sk_X509_ALGOR_value(sd->md_algs, 0));
			const PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(sd->signer_info, 0);
			ok = OBJ_obj2nid(obj) == NID_sha256 && ptype == V_ASN1_UNDEF &&
			     ASN1_INTEGER_get(si->version) == 1;
		}
	}
	PKCS7_free(p7);
	ERR_clear_error();
	if (!ok)
		return idp_error_set(err, IDP_E_VERIFY,
		                     "signature: cms is not the manifest profile (SignedData v1, "
		                     "sha-256 only, one SignerInfo v1)");
	return IDP_OK;
}

/* Parse and pre-check a detached CMS SignedData with one signer. */
static enum idp_err cms_parse(const uint8_t *sig, size_t len, CMS_ContentInfo **out,
                              struct idp_error *err)
{
	const unsigned char *p = sig;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	enum idp_err rc = IDP_OK;
	if (cms == NULL) {
		rc = idp_error_ssl(err, IDP_E_VERIFY, "signature: not a DER CMS structure");
		goto out;
	}
	if (p != sig + len) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: %zu bytes after the CMS structure",
		                   (size_t)(sig + len - p));
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms is not SignedData");
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms content type is not data");
		goto out;
	}
	ASN1_OCTET_STRING **content = CMS_get0_content(cms);
	if (content == NULL || *content != NULL) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "signature: cms carries its own content; expected detached");
		goto out;
	}
	/* OpenSSL's decoder tolerates some wrong tags; DER has one encoding. */
	int n = i2d_CMS_ContentInfo(cms, NULL);
	uint8_t *again = n > 0 ? malloc((size_t)n) : NULL;
	unsigned char *q = again;
	bool same = again != NULL && i2d_CMS_ContentInfo(cms, &q) == n && (size_t)n == len &&
	            memcmp(again, sig, len) == 0;
	free(again);
	if (!same) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms is not in DER form");
		goto out;
	}
	if ((rc = cms_profile(sig, len, err)) != IDP_OK)
		goto out;
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	if (sis == NULL || sk_CMS_SignerInfo_num(sis) != 1) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms must have exactly one signer");
		goto out;
	}
	STACK_OF(X509) *certs = CMS_get1_certs(cms);
	int ncerts = certs == NULL ? 0 : sk_X509_num(certs);
	sk_X509_pop_free(certs, X509_free);
	if (ncerts > (int)FMT_MANIFEST_CERTS_MAX) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms carries %d certificates, max %u",
		                   ncerts, FMT_MANIFEST_CERTS_MAX);
		goto out;
	}
	*out = cms;
	cms = NULL;
out:
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return rc;
}

enum idp_err fmt_manifest_verifier_new(const uint8_t *sig, size_t sig_len,
                                       const struct fmt_manifest_trust *trust,
                                       struct fmt_manifest_verifier **out, struct idp_error *err)
{
	*out = NULL;
	if ((trust->station_key == NULL) == (trust->store == NULL))
		return idp_error_set(err, IDP_E_ARG,
		                     "verify: trust needs exactly one of a station key or a CA store");
	if (sig_len == 0)
		return idp_error_set(err, IDP_E_VERIFY, "signature: empty");
	if (sig_len > FMT_MANIFEST_SIG_MAX)
		return idp_error_set(err, IDP_E_VERIFY, "signature: %zu bytes, max %u", sig_len,
		                     FMT_MANIFEST_SIG_MAX);
	struct fmt_manifest_verifier *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "verify: out of memory");
	enum idp_err rc = md_new(&v->md, err);
	if (rc != IDP_OK)
		goto out;
	if (trust->store != NULL) {
		v->kind = FMT_MANIFEST_SIG_CMS;
		v->store = trust->store;
		rc = cms_parse(sig, sig_len, &v->cms, err);
	} else {
		v->key = trust->station_key;
		v->kind = fmt_key_type(v->key) == FMT_KEY_P256 ? FMT_MANIFEST_SIG_ES256
		                                               : FMT_MANIFEST_SIG_ED25519;
		if (sig_len > sizeof(v->sig))
			rc = idp_error_set(err, IDP_E_VERIFY,
			                   "signature: %zu bytes is too long for %s", sig_len,
			                   fmt_manifest_sig_name(v->kind));
		memcpy(v->sig, sig, sig_len <= sizeof(v->sig) ? sig_len : 0);
		v->sig_len = sig_len;
	}
	if (rc != IDP_OK)
		goto out;
	*out = v;
	v = NULL;
out:
	fmt_manifest_verifier_free(v);
	return rc;
}

enum idp_err fmt_manifest_verifier_update(struct fmt_manifest_verifier *v, const uint8_t *buf,
                                          size_t len, struct idp_error *err)
{
	if (v->spent)
		return idp_error_set(err, IDP_E_ARG, "verify: verifier already finished");
	/* Keep the header line (bounded) to bind the kind and key afterwards. */
	size_t i = 0;
	while (!v->header_done && i < len && v->header_len < sizeof(v->header)) {
		uint8_t c = buf[i++];
		v->header[v->header_len++] = c;
		v->header_done = c == '\n';
	}
	if (len > 0 && EVP_DigestUpdate(v->md, buf, len) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "verify: sha-256");
	v->body_len += len;
	return IDP_OK;
}

/* ECDSA signature over the precomputed SHA-256. */
static enum idp_err es256_verify(const struct fmt_manifest_verifier *v, const uint8_t *digest,
                                 struct idp_error *err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(fmt_key_evp(v->key), NULL);
	enum idp_err rc = IDP_OK;
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "verify: es256");
	else if (EVP_PKEY_verify(ctx, v->sig, v->sig_len, digest, FMT_MANIFEST_HASH_LEN) != 1)
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: does not match the body (es256)");
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* The signer certificate's chain, with the purpose `openssl cms -verify` uses. */
static enum idp_err cms_chain(const struct fmt_manifest_verifier *v, X509 *signer,
                              struct idp_error *err)
{
	STACK_OF(X509) *untrusted = CMS_get1_certs(v->cms);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	enum idp_err rc = IDP_OK;
	if (ctx == NULL || X509_STORE_CTX_init(ctx, v->store, signer, untrusted) != 1 ||
	    X509_STORE_CTX_set_default(ctx, "smime_sign") != 1) {
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "verify: certificate store");
	} else if (X509_verify_cert(ctx) <= 0) {
		int e = X509_STORE_CTX_get_error(ctx);
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: station certificate: %s",
		                   X509_verify_cert_error_string(e));
	}
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(untrusted, X509_free);
	ERR_clear_error();
	return rc;
}

/* True when a and b have the same DER bytes (not just the same canonical form). */
static bool same_der_name(const X509_NAME *a, const X509_NAME *b)
{
	const unsigned char *da = NULL, *db = NULL;
	size_t la = 0, lb = 0;
	if (X509_NAME_get0_der(a, &da, &la) != 1 || X509_NAME_get0_der(b, &db, &lb) != 1)
		return false;
	return la == lb && memcmp(da, db, la) == 0;
}

/* Verify the one SignerInfo against the body digest; *signer_fp gets the
 * fingerprint of the signer certificate's key. */
static enum idp_err cms_verify(struct fmt_manifest_verifier *v, const uint8_t *digest,
                               uint8_t signer_fp[static FMT_KEY_FINGERPRINT_LEN],
                               struct idp_error *err)
{
	CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(v->cms), 0);
	enum idp_err rc = IDP_OK;
	struct fmt_key *k = NULL;
	/* Attach the signer certificate from those inside the CMS. */
	if (CMS_set1_signers_certs(v->cms, NULL, 0) < 0) {
		rc = idp_error_ssl(err, IDP_E_VERIFY, "signature: cms signer certificate");
		goto out;
	}
	X509 *signer = NULL;
	X509_ALGOR *dig = NULL, *sigalg = NULL;
	CMS_SignerInfo_get0_algs(si, NULL, &signer, &dig, &sigalg);
	if (signer == NULL) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "signature: cms does not carry the signer certificate");
		goto out;
	}
	const ASN1_OBJECT *dobj = NULL;
	X509_ALGOR_get0(&dobj, NULL, NULL, dig);
	if (OBJ_obj2nid(dobj) != NID_sha256) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms digest is not sha-256");
		goto out;
	}
	/* The unsigned parts that name the signer and algorithm must say exactly
	 * what was used (OpenSSL alone matches names case-insensitively and
	 * ignores the signature algorithm identifier). */
	const ASN1_OBJECT *sobj = NULL;
	int sptype = 0;
	X509_ALGOR_get0(&sobj, &sptype, NULL, sigalg);
	if (OBJ_obj2nid(sobj) != NID_ecdsa_with_SHA256 || sptype != V_ASN1_UNDEF) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "signature: cms signature algorithm is not ecdsa-with-SHA256");
		goto out;
	}
	X509_NAME *issuer = NULL;
	if (CMS_SignerInfo_get0_signer_id(si, NULL, &issuer, NULL) != 1 || issuer == NULL ||
	    !same_der_name(issuer, X509_get_issuer_name(signer))) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "signature: cms signer identifier does not name the certificate");
		goto out;
	}
	rc = fmt_key_from_evp(X509_get0_pubkey(signer), &k, err);
	if (rc == IDP_OK && fmt_key_type(k) != FMT_KEY_P256)
		rc = idp_error_set(err, IDP_E_UNSUPPORTED, "signature: cms signer key is %s, not p256",
		                   fmt_key_type_name(fmt_key_type(k)));
	if (rc == IDP_OK)
		rc = fmt_key_fingerprint(k, signer_fp, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "signature: cms signer");
		goto out;
	}
	if ((rc = cms_chain(v, signer, err)) != IDP_OK)
		goto out;
	if (X509_up_ref(signer) == 1)
		v->signer = signer;
	if (CMS_signed_get_attr_count(si) <= 0) {
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: cms has no signed attributes");
		goto out;
	}
	if (CMS_SignerInfo_verify(si) != 1) {
		rc = idp_error_set(err, IDP_E_VERIFY,
		                   "signature: cms signature over the signed attributes is wrong");
		goto out;
	}
	ASN1_OCTET_STRING *md = CMS_signed_get0_data_by_OBJ(
		si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3, V_ASN1_OCTET_STRING);
	if (md == NULL || ASN1_STRING_length(md) != (int)FMT_MANIFEST_HASH_LEN ||
	    CRYPTO_memcmp(ASN1_STRING_get0_data(md), digest, FMT_MANIFEST_HASH_LEN) != 0)
		rc = idp_error_set(err, IDP_E_VERIFY, "signature: does not match the body (cms)");
out:
	fmt_key_free(k);
	ERR_clear_error();
	return rc;
}

/* The signed header must name this kind and this key. */
static enum idp_err bind_header(const struct fmt_manifest_verifier *v,
                                const uint8_t fp[static FMT_KEY_FINGERPRINT_LEN],
                                struct fmt_manifest_header *h, struct idp_error *err)
{
	if (!v->header_done)
		return idp_error_set(err, IDP_E_FORMAT, "line 1: header: no complete header line");
	enum idp_err rc = fmt_manifest_parse_header(v->header, v->header_len, true, h, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "line 1");
		return rc;
	}
	if (h->sig != v->kind)
		return idp_error_set(err, IDP_E_VERIFY,
		                     "line 1: sig: header says %s but the trust given verifies %s",
		                     fmt_manifest_sig_name(h->sig), fmt_manifest_sig_name(v->kind));
	/* cms: the factory CA vouches for the station's name, not only its key;
	 * without this any certified station could write batches as another. */
	if (v->kind == FMT_MANIFEST_SIG_CMS) {
		enum idp_err rc2 = v->signer != NULL
		                           ? fmt_manifest_cert_station_check(v->signer, h->station, err)
		                           : idp_error_set(err, IDP_E_VERIFY,
		                                           "station: no verified signer certificate");
		if (rc2 != IDP_OK) {
			idp_error_prefix(err, "line 1");
			return rc2;
		}
	}
	if (CRYPTO_memcmp(h->key, fp, FMT_KEY_FINGERPRINT_LEN) != 0) {
		char want[65], got[65];
		fmt_key_fingerprint_hex(h->key, want);
		fmt_key_fingerprint_hex(fp, got);
		return idp_error_set(err, IDP_E_VERIFY,
		                     "line 1: key: header names station key %.16s... but the "
		                     "verifying key is %.16s...",
		                     want, got);
	}
	return IDP_OK;
}

/* Check the signature over digest, and bind the kept header line. */
static enum idp_err verify_digest(struct fmt_manifest_verifier *v,
                                  const uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                  struct fmt_manifest_verified *out, struct idp_error *err)
{
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN] = {0};
	enum idp_err rc = IDP_OK;
	if (v->kind == FMT_MANIFEST_SIG_CMS) {
		rc = cms_verify(v, digest, fp, err);
	} else {
		rc = fmt_key_fingerprint(v->key, fp, err);
		if (rc != IDP_OK)
			return rc;
		if (v->kind == FMT_MANIFEST_SIG_ES256)
			rc = es256_verify(v, digest, err);
		else if (fmt_key_verify(v->key, FMT_SIG_DER, digest, FMT_MANIFEST_HASH_LEN, v->sig,
		                        v->sig_len, err) != IDP_OK)
			rc = idp_error_set(err, IDP_E_VERIFY,
			                   "signature: does not match the body (ed25519)");
	}
	/* Both must hold. When the signature fails and the (untrusted) header
	 * names another kind or key, say that: it is the likelier cause. */
	struct fmt_manifest_header h;
	struct idp_error herr = {IDP_OK, ""};
	enum idp_err hrc = bind_header(v, fp, &h, &herr);
	bool fp_known = v->kind != FMT_MANIFEST_SIG_CMS || rc == IDP_OK;
	if (rc != IDP_OK) {
		if (hrc == IDP_E_VERIFY && fp_known && err != NULL)
			*err = herr;
		return rc;
	}
	if (hrc != IDP_OK) {
		if (err != NULL)
			*err = herr;
		return hrc;
	}
	out->header = h;
	memcpy(out->body_sha256, digest, FMT_MANIFEST_HASH_LEN);
	out->body_len = v->body_len;
	return IDP_OK;
}

enum idp_err fmt_manifest_verifier_final(struct fmt_manifest_verifier *v,
                                         struct fmt_manifest_verified *out, struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	if (v->spent)
		return idp_error_set(err, IDP_E_ARG, "verify: verifier already finished");
	v->spent = true;
	uint8_t digest[FMT_MANIFEST_HASH_LEN];
	enum idp_err rc = md_final(v->md, digest, err);
	return rc != IDP_OK ? rc : verify_digest(v, digest, out, err);
}

enum idp_err fmt_manifest_verifier_final_digest(struct fmt_manifest_verifier *v,
                                                const uint8_t *header, size_t header_len,
                                                const uint8_t digest[static FMT_MANIFEST_HASH_LEN],
                                                uint64_t body_len,
                                                struct fmt_manifest_verified *out,
                                                struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	if (v->spent || v->body_len != 0)
		return idp_error_set(err, IDP_E_ARG, "verify: verifier already fed or finished");
	v->spent = true;
	/* The header as _update would have kept it: whole only with its LF. */
	v->header_len = header_len < sizeof(v->header) ? header_len : sizeof(v->header);
	if (v->header_len > 0)
		memcpy(v->header, header, v->header_len);
	v->header_done = v->header_len > 0 && v->header[v->header_len - 1] == '\n' &&
	                 memchr(v->header, '\n', v->header_len) == v->header + v->header_len - 1;
	v->body_len = body_len;
	return verify_digest(v, digest, out, err);
}

void fmt_manifest_verifier_free(struct fmt_manifest_verifier *v)
{
	if (v == NULL)
		return;
	EVP_MD_CTX_free(v->md);
	CMS_ContentInfo_free(v->cms);
	X509_free(v->signer);
	free(v);
}

enum idp_err fmt_manifest_verify(const uint8_t *sig, size_t sig_len,
                                 const struct fmt_manifest_trust *trust, const uint8_t *body,
                                 size_t len, struct fmt_manifest_verified *out,
                                 struct idp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct fmt_manifest_verifier *v = NULL;
	enum idp_err rc = fmt_manifest_verifier_new(sig, sig_len, trust, &v, err);
	if (rc == IDP_OK && v != NULL) { /* v is set whenever rc is IDP_OK */
		rc = fmt_manifest_verifier_update(v, body, len, err);
		if (rc == IDP_OK)
			rc = fmt_manifest_verifier_final(v, out, err);
	}
	fmt_manifest_verifier_free(v);
	return rc;
}

/* ---------------------------------------------------------------- certificates */

enum idp_err fmt_manifest_cert_station_check(const X509 *cert, const char *station,
                                             struct idp_error *err)
{
	char name[FMT_MANIFEST_ID_MAX + 1];
	size_t n = 0;
	if (fmt_x509_cn(cert, name, sizeof(name), &n, NULL) != IDP_OK)
		return idp_error_set(err, IDP_E_VERIFY,
		                     "station: the station certificate has no single commonName of "
		                     "1..%u bytes to match \"%s\"",
		                     FMT_MANIFEST_ID_MAX, station);
	size_t sn = strnlen(station, FMT_MANIFEST_ID_MAX + 1);
	if (sn != n || memcmp(station, name, sn) != 0) {
		char q[IDP_QUOTE_MAX];
		return idp_error_set(err, IDP_E_VERIFY,
		                     "station: header says \"%s\" but the station certificate is "
		                     "for \"%s\"",
		                     station, idp_quote(name, n, q));
	}
	return IDP_OK;
}
