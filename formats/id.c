/*
 * id.c - see id.h.
 */
#include "formats/id.h"

static bool id_char(unsigned char c, size_t i)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return i > 0 && (c == '.' || c == '_' || c == '-' || c == ':');
}

bool fmt_id_valid(const char *s, size_t len)
{
	if (len == 0 || len > FMT_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!id_char((unsigned char)s[i], i))
			return false;
	return true;
}

enum idp_err fmt_id_check(const char *s, size_t len, const char *what, struct idp_error *err)
{
	if (len == 0)
		return idp_error_set(err, IDP_E_FORMAT, "%s: empty", what);
	if (len > FMT_ID_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "%s: %zu bytes, max %u", what, len, FMT_ID_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!id_char(c, i))
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: byte 0x%02x at offset %zu is not allowed (A-Z a-z 0-9, "
			                     "then . _ - :)",
			                     what, c, i);
	}
	return IDP_OK;
}
