/*
 * mac.c - see mac.h.
 */
#include "formats/mac.h"

#include <stdbool.h>

static int hexval(char c, bool upper_ok)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (upper_ok && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* True when s[0..len) spells an EUI-48 some other way: upper or mixed case,
 * '-' separators, "aabb.ccdd.eeff" or 12 bare digits. */
static bool other_spelling(const char *s, size_t len)
{
	size_t digits = 0;
	for (size_t i = 0; i < len; i++) {
		if (hexval(s[i], true) >= 0)
			digits++;
		else if (s[i] != ':' && s[i] != '-' && s[i] != '.')
			return false;
	}
	return digits == 12 && (len == 12 || len == 14 || len == 17);
}

enum idp_err fmt_mac_parse(const char *s, size_t len, uint8_t out[static FMT_MAC_LEN],
                           struct idp_error *err)
{
	uint8_t m[FMT_MAC_LEN];
	unsigned any = 0;
	bool ok = len == FMT_MAC_TEXT_LEN;
	for (size_t i = 0; ok && i < FMT_MAC_LEN; i++) {
		const char *p = s + 3 * i;
		int hi = hexval(p[0], false), lo = hexval(p[1], false);
		ok = hi >= 0 && lo >= 0 && (i + 1 == FMT_MAC_LEN || p[2] == ':');
		m[i] = (uint8_t)((ok ? hi : 0) << 4 | (ok ? lo : 0));
		any |= m[i];
	}
	char v[IDP_QUOTE_MAX];
	if (!ok && other_spelling(s, len))
		return idp_error_set(err, IDP_E_FORMAT,
		                     "mac: \"%s\" is not in canonical form (write aa:bb:cc:dd:ee:ff, "
		                     "lower case)",
		                     idp_quote(s, len, v));
	if (!ok)
		return idp_error_set(err, IDP_E_FORMAT, "mac: \"%s\" is not an EUI-48 address",
		                     idp_quote(s, len, v));
	if (any == 0)
		return idp_error_set(err, IDP_E_FORMAT, "mac: \"%s\" is the all-zero address",
		                     idp_quote(s, len, v));
	if (m[0] & 1u)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "mac: \"%s\" is a group (multicast) address, not a device's",
		                     idp_quote(s, len, v));
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
