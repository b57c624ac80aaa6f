/*
 * mac.c - see mac.h.
 */
#include "formats/mac.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum idp_err fmt_mac_parse(const char *s, size_t len, uint8_t out[static FMT_MAC_LEN],
                           struct idp_error *err)
{
	if (len != FMT_MAC_TEXT_LEN)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "mac: %zu characters, expected %u (aa:bb:cc:dd:ee:ff)", len,
		                     FMT_MAC_TEXT_LEN);
	uint8_t m[FMT_MAC_LEN];
	unsigned any = 0;
	for (size_t i = 0; i < FMT_MAC_LEN; i++) {
		const char *p = s + 3 * i;
		if (i > 0 && p[-1] != ':')
			return idp_error_set(err, IDP_E_FORMAT,
			                     "mac: expected ':' at offset %zu", 3 * i - 1);
		int hi = hexval(p[0]), lo = hexval(p[1]);
		if (hi < 0 || lo < 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "mac: expected lower-case hex at offset %zu", 3 * i);
		m[i] = (uint8_t)(hi << 4 | lo);
		any |= m[i];
	}
	if (any == 0)
		return idp_error_set(err, IDP_E_FORMAT, "mac: all-zero address");
	if (m[0] & 1u)
		return idp_error_set(err, IDP_E_FORMAT, "mac: group (multicast) address");
	for (size_t i = 0; i < FMT_MAC_LEN; i++)
		out[i] = m[i];
	return IDP_OK;
}

void fmt_mac_format(const uint8_t mac[static FMT_MAC_LEN], char out[static FMT_MAC_TEXT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < FMT_MAC_LEN; i++) {
		out[3 * i] = hex[mac[i] >> 4];
		out[3 * i + 1] = hex[mac[i] & 15];
		out[3 * i + 2] = i + 1 < FMT_MAC_LEN ? ':' : '\0';
	}
}
