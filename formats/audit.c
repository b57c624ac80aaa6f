/*
 * audit.c - see audit.h. Spec: formats/audit.md.
 */
#include "formats/audit.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define TAG_LEN (sizeof(FMT_AUDIT_TAG) - 1)

size_t fmt_audit_canonical_len(const struct fmt_audit_entry *e)
{
	size_t n = TAG_LEN + 8u + 8u + 6u + e->event_len + e->subject_len + e->detail_len;
	return e->version == 2 ? n + 2u + e->actor_len : n;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put_text(uint8_t *p, const char *s, size_t len)
{
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	if (len > 0)
		memcpy(p, s, len);
	return p + len;
}

enum idp_err fmt_audit_canonical(const struct fmt_audit_entry *e, uint8_t *out, size_t cap,
                                 size_t *len, struct idp_error *err)
{
	*len = 0;
	if (e->version != 0 && e->version != 1 && e->version != 2)
		return idp_error_set(err, IDP_E_FORMAT, "audit: entry version %d unknown",
		                     e->version);
	const size_t lens[4] = {e->event_len, e->subject_len, e->detail_len, e->actor_len};
	const char *const ptrs[4] = {e->event, e->subject, e->detail, e->actor};
	static const char *const names[4] = {"event", "subject", "detail", "actor"};
	const size_t fields = e->version == 2 ? 4 : 3;
	for (size_t i = 0; i < fields; i++) {
		if (lens[i] > FMT_AUDIT_FIELD_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "audit: %s is %zu bytes, max %u",
			                     names[i], lens[i], FMT_AUDIT_FIELD_MAX);
		if (lens[i] > 0 && ptrs[i] == NULL)
			return idp_error_set(err, IDP_E_ARG, "audit: %s is NULL with a length",
			                     names[i]);
	}
	size_t need = fmt_audit_canonical_len(e);
	if (need > cap)
		return idp_error_set(err, IDP_E_LIMIT, "audit: entry needs %zu bytes, buffer has %zu",
		                     need, cap);
	uint8_t *p = out;
	memcpy(p, e->version == 2 ? FMT_AUDIT_TAG_V2 : FMT_AUDIT_TAG, TAG_LEN);
	p += TAG_LEN;
	p = put_u64(p, (uint64_t)e->seq);
	p = put_u64(p, (uint64_t)e->at);
	for (size_t i = 0; i < fields; i++)
		p = put_text(p, ptrs[i], lens[i]);
	*len = (size_t)(p - out);
	return IDP_OK;
}

enum idp_err fmt_audit_hash(const uint8_t prev[static FMT_AUDIT_HASH_LEN],
                            const struct fmt_audit_entry *e,
                            uint8_t out[static FMT_AUDIT_HASH_LEN], struct idp_error *err)
{
	size_t cap = fmt_audit_canonical_len(e);
	uint8_t *buf = malloc(cap > 0 ? cap : 1);
	if (buf == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "audit: out of memory");
	size_t len = 0;
	enum idp_err rc = fmt_audit_canonical(e, buf, cap, &len, err);
	EVP_MD_CTX *md = rc == IDP_OK ? EVP_MD_CTX_new() : NULL;
	unsigned int n = 0;
	if (rc == IDP_OK &&
	    (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	     EVP_DigestUpdate(md, prev, FMT_AUDIT_HASH_LEN) != 1 ||
	     EVP_DigestUpdate(md, buf, len) != 1 || EVP_DigestFinal_ex(md, out, &n) != 1 ||
	     n != FMT_AUDIT_HASH_LEN))
		rc = idp_error_ssl(err, IDP_E_CRYPTO, "audit: sha-256");
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

void fmt_audit_checkpoint_bytes(const struct fmt_audit_checkpoint *c,
                                uint8_t out[static FMT_AUDIT_CKPT_LEN])
{
	size_t tl = sizeof(FMT_AUDIT_CKPT_TAG) - 1;
	memcpy(out, FMT_AUDIT_CKPT_TAG, tl);
	uint8_t *p = put_u64(out + tl, (uint64_t)c->n);
	p = put_u64(p, (uint64_t)c->seq);
	p = put_u64(p, (uint64_t)c->at);
	memcpy(p, c->hash, FMT_AUDIT_HASH_LEN);
}

bool fmt_audit_hash_from_hex(const char *hex, size_t len, uint8_t out[static FMT_AUDIT_HASH_LEN])
{
	if (hex == NULL || len != (size_t)2 * FMT_AUDIT_HASH_LEN)
		return false;
	for (size_t i = 0; i < FMT_AUDIT_HASH_LEN; i++) {
		unsigned v = 0;
		for (size_t k = 0; k < 2; k++) {
			char c = hex[2 * i + k];
			if (c >= '0' && c <= '9')
				v = v * 16 + (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (unsigned)(c - 'a' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return true;
}
