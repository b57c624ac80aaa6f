/*
 * manifest_dedup.c - see manifest_dedup.h. Spec: formats/manifest.md.
 *
 * SHA-256 rather than a fast non-cryptographic hash: the values come from a
 * signed but still external file, and a crafted batch must not be able to
 * turn the table into a linear list (hash flooding) or force collisions.
 */
#include "formats/manifest_dedup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define INITIAL_SLOTS 1024u
#define SLOTS_MAX     ((size_t)1 << 27) /* 1 GiB of table; 4 x FMT_MANIFEST_COUNT_MAX fits */

enum field { F_ID, F_MAC, F_SERIAL, F_PUB, F_COUNT };

static const char *const field_names[F_COUNT] = {"id", "mac", "serial", "pub"};

struct fmt_manifest_dedup {
	uint64_t *slots; /* 0 = empty */
	size_t nslots;   /* a power of two */
	size_t used;
	EVP_MD_CTX *md;
	EVP_MD *sha256; /* fetched once: an implicit fetch per value costs more than the hash */
};

struct fmt_manifest_dedup *fmt_manifest_dedup_new(void)
{
	struct fmt_manifest_dedup *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->slots = calloc(INITIAL_SLOTS, sizeof(uint64_t));
	d->md = EVP_MD_CTX_new();
	d->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (d->slots == NULL || d->md == NULL || d->sha256 == NULL) {
		fmt_manifest_dedup_free(d);
		return NULL;
	}
	d->nslots = INITIAL_SLOTS;
	return d;
}

void fmt_manifest_dedup_free(struct fmt_manifest_dedup *d)
{
	if (d == NULL)
		return;
	free(d->slots);
	EVP_MD_CTX_free(d->md);
	EVP_MD_free(d->sha256);
	free(d);
}

size_t fmt_manifest_dedup_bytes(const struct fmt_manifest_dedup *d)
{
	return sizeof(*d) + d->nslots * sizeof(uint64_t);
}

/* First 64 bits of SHA-256(tag || value), never 0. */
static enum idp_err hash(struct fmt_manifest_dedup *d, enum field f, const void *v, size_t n,
                         uint64_t *out, struct idp_error *err)
{
	uint8_t tag = (uint8_t)f, md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (EVP_DigestInit_ex2(d->md, d->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(d->md, &tag, 1) != 1 || EVP_DigestUpdate(d->md, v, n) != 1 ||
	    EVP_DigestFinal_ex(d->md, md, &mdlen) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "dedup: sha-256");
	uint64_t h = 0;
	for (size_t i = 0; i < 8; i++)
		h = h << 8 | md[i];
	*out = h != 0 ? h : 1;
	return IDP_OK;
}

/* Slot index holding h, or the empty slot where it would go. */
static size_t find(const uint64_t *slots, size_t nslots, uint64_t h)
{
	size_t mask = nslots - 1, i = (size_t)h & mask;
	while (slots[i] != 0 && slots[i] != h)
		i = (i + 1) & mask;
	return i;
}

static enum idp_err grow(struct fmt_manifest_dedup *d, struct idp_error *err)
{
	if (d->nslots >= SLOTS_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "dedup: more than %zu values",
		                     SLOTS_MAX / 4 * 3);
	size_t n = d->nslots * 2;
	uint64_t *s = calloc(n, sizeof(uint64_t));
	if (s == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "dedup: out of memory for %zu values",
		                     d->used);
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i] != 0)
			s[find(s, n, d->slots[i])] = d->slots[i];
	free(d->slots);
	d->slots = s;
	d->nslots = n;
	return IDP_OK;
}

enum idp_err fmt_manifest_dedup_add(struct fmt_manifest_dedup *d,
                                    const struct fmt_manifest_record *r, struct idp_error *err)
{
	uint64_t h[F_COUNT] = {0};
	size_t n = r->pub_len > 0 ? F_COUNT : F_PUB;
	enum idp_err rc;
	if ((rc = hash(d, F_ID, r->id, strnlen(r->id, sizeof(r->id)), &h[F_ID], err)) ||
	    (rc = hash(d, F_MAC, r->mac, sizeof(r->mac), &h[F_MAC], err)) ||
	    (rc = hash(d, F_SERIAL, r->serial, strnlen(r->serial, sizeof(r->serial)), &h[F_SERIAL],
	               err)) ||
	    (n == F_COUNT && (rc = hash(d, F_PUB, r->pub, r->pub_len, &h[F_PUB], err))))
		return rc;
	for (size_t f = 0; f < n; f++) {
		if (d->slots[find(d->slots, d->nslots, h[f])] == 0)
			continue;
		char mac[18];
		fmt_mac_format(r->mac, mac);
		const char *v = f == F_ID ? r->id : f == F_MAC ? mac : f == F_SERIAL ? r->serial : NULL;
		if (v == NULL)
			return idp_error_set(err, IDP_E_DUPLICATE,
			                     "pub: the same public key appears twice in the batch");
		return idp_error_set(err, IDP_E_DUPLICATE, "%s: \"%s\" appears twice in the batch",
		                     field_names[f], v);
	}
	for (size_t f = 0; f < n; f++) {
		if ((d->used + 1) * 4 > d->nslots * 3 && (rc = grow(d, err)) != IDP_OK)
			return rc;
		d->slots[find(d->slots, d->nslots, h[f])] = h[f];
		d->used++;
	}
	return IDP_OK;
}
