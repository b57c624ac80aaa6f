/*
 * b64.c - see b64.h. Written here rather than taken from OpenSSL because
 * EVP_DecodeBlock accepts whitespace and non-canonical input, and a verifier
 * must not accept two spellings of one key or signature.
 */
#include "formats/b64.h"

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t fmt_b64_encoded_len(enum fmt_b64_alphabet a, size_t n)
{
	if (a == FMT_B64_STD)
		return (n + 2) / 3 * 4;
	return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t fmt_b64_decoded_max(size_t n)
{
	return n / 4 * 3 + 3;
}

size_t fmt_b64_encode(enum fmt_b64_alphabet a, const uint8_t *in, size_t n, char *out)
{
	const char *tab = a == FMT_B64_STD ? std_chars : url_chars;
	size_t o = 0, i = 0;
	for (; n - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		if (a == FMT_B64_STD) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		if (a == FMT_B64_STD)
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int sym(enum fmt_b64_alphabet a, char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (a == FMT_B64_STD ? '+' : '-'))
		return 62;
	if (c == (a == FMT_B64_STD ? '/' : '_'))
		return 63;
	return -1;
}

enum idp_err fmt_b64_decode(enum fmt_b64_alphabet a, const char *in, size_t n, uint8_t *out,
                            size_t out_max, size_t *out_len, struct idp_error *err)
{
	const char *what = a == FMT_B64_STD ? "base64" : "base64url";
	*out_len = 0;
	size_t data = n;
	if (a == FMT_B64_STD) {
		if (n % 4 != 0)
			return idp_error_set(err, IDP_E_FORMAT, "%s: length %zu is not a multiple of 4",
			                     what, n);
		if (data > 0 && in[data - 1] == '=')
			data--;
		if (data > 0 && in[data - 1] == '=')
			data--;
	} else if (n % 4 == 1) {
		return idp_error_set(err, IDP_E_FORMAT, "%s: length %zu is impossible", what, n);
	}
	size_t want = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
	if (want > out_max)
		return idp_error_set(err, IDP_E_LIMIT, "%s: decodes to %zu bytes, max %zu", what,
		                     want, out_max);
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < data; i++) {
		int v = sym(a, in[i]);
		if (v < 0)
			return idp_error_set(err, IDP_E_FORMAT, "%s: invalid character at offset %zu",
			                     what, i);
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: non-canonical final symbol", what);
	*out_len = o;
	return IDP_OK;
}
