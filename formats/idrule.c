/*
 * idrule.c - see idrule.h. Spec: formats/idrule.md.
 */
#include "formats/idrule.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/id.h"

struct fmt_idrule {
	bool has_pattern;
	regex_t re;
	enum fmt_idrule_check check;
	uint32_t divisor;
	char text[FMT_IDRULE_SPEC_MAX + 1];
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool fmt_idrule_luhn_valid(const char *s, size_t len)
{
	unsigned sum = 0, n = 0;
	for (size_t i = len; i-- > 0;) {
		if (!is_digit(s[i]))
			continue;
		unsigned d = (unsigned)(s[i] - '0');
		if (n++ % 2 == 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return n >= 2 && sum % 10 == 0;
}

bool fmt_idrule_mod97_10_valid(const char *s, size_t len)
{
	unsigned r = 0, n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (is_digit(c)) {
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
			unsigned v = (unsigned)((c >= 'a' ? c - 'a' : c - 'A') + 10);
			r = (r * 100 + v) % 97;
		} else {
			continue;
		}
		n++;
	}
	return n >= 3 && r == 1;
}

bool fmt_idrule_divisible(const char *s, size_t len, uint32_t divisor)
{
	if (divisor == 0)
		return false;
	uint64_t r = 0;
	unsigned n = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			continue;
		r = (r * 10 + (uint64_t)(s[i] - '0')) % divisor;
		n++;
	}
	return n > 0 && r == 0;
}

static const char *check_name(enum fmt_idrule_check c)
{
	switch (c) {
	case FMT_IDRULE_CHECK_NONE: return "none";
	case FMT_IDRULE_CHECK_LUHN: return "luhn";
	case FMT_IDRULE_CHECK_MOD97_10: return "mod97-10";
	case FMT_IDRULE_CHECK_DIVISIBLE: return "div";
	}
	return "none";
}

static enum idp_err parse_check(struct fmt_idrule *r, const char *v, size_t n, struct idp_error *err)
{
	if (n == 4 && memcmp(v, "luhn", 4) == 0) {
		r->check = FMT_IDRULE_CHECK_LUHN;
		return IDP_OK;
	}
	if (n == 8 && memcmp(v, "mod97-10", 8) == 0) {
		r->check = FMT_IDRULE_CHECK_MOD97_10;
		return IDP_OK;
	}
	if (n > 4 && memcmp(v, "div:", 4) == 0) {
		uint64_t d = 0;
		for (size_t i = 4; i < n; i++) {
			if (!is_digit(v[i]) || (i == 4 && v[i] == '0') || i - 4 >= 10)
				goto bad;
			d = d * 10 + (uint64_t)(v[i] - '0');
		}
		if (d < 2 || d > FMT_IDRULE_DIVISOR_MAX)
			goto bad;
		r->check = FMT_IDRULE_CHECK_DIVISIBLE;
		r->divisor = (uint32_t)d;
		return IDP_OK;
	}
bad:
	return idp_error_set(err, IDP_E_FORMAT,
	                     "rule: check \"%.*s\" is not luhn, mod97-10 or div:N (N 2..%u)",
	                     (int)(n > 32 ? 32 : n), v, FMT_IDRULE_DIVISOR_MAX);
}

static enum idp_err parse_pattern(struct fmt_idrule *r, const char *v, size_t n,
                                  struct idp_error *err)
{
	if (n == 0 || n > FMT_IDRULE_PATTERN_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: pattern is %zu bytes, must be 1..%u", n,
		                     FMT_IDRULE_PATTERN_MAX);
	/* glibc's regcomp grows without bound on stacked quantifiers ("a+++"),
	 * found by fuzzing: refuse them, and bound how many a pattern has. */
	unsigned quantifiers = 0;
	for (size_t i = 0; i < n; i++) {
		bool q = v[i] == '*' || v[i] == '+' || v[i] == '?' || v[i] == '{';
		bool prev_q = i > 0 && (v[i - 1] == '*' || v[i - 1] == '+' || v[i - 1] == '?' ||
		                        v[i - 1] == '}');
		if (i > 0 && v[i - 1] == '\\')
			q = prev_q = false;
		if (q && prev_q)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "rule: pattern has stacked quantifiers at offset %zu", i);
		if (q && ++quantifiers > FMT_IDRULE_QUANTIFIERS_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "rule: pattern has more than %u quantifiers",
			                     FMT_IDRULE_QUANTIFIERS_MAX);
	}
	/* Anchor: the whole value must match, whatever the pattern says. */
	char re[FMT_IDRULE_PATTERN_MAX + 8];
	int w = snprintf(re, sizeof(re), "^(%.*s)$", (int)n, v);
	if (w < 0 || (size_t)w >= sizeof(re))
		return idp_error_set(err, IDP_E_LIMIT, "rule: pattern too long");
	int rc = regcomp(&r->re, re, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char msg[128];
		(void)regerror(rc, &r->re, msg, sizeof(msg));
		return idp_error_set(err, IDP_E_FORMAT, "rule: pattern \"%.*s\": %s",
		                     (int)(n > 64 ? 64 : n), v, msg);
	}
	r->has_pattern = true;
	return IDP_OK;
}

enum idp_err fmt_idrule_parse(const char *spec, size_t len, struct fmt_idrule **out,
                              struct idp_error *err)
{
	*out = NULL;
	if (len > FMT_IDRULE_SPEC_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: %zu bytes, max %u", len,
		                     FMT_IDRULE_SPEC_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)spec[i] < 0x20 || (unsigned char)spec[i] > 0x7e)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "rule: byte 0x%02x at offset %zu is not printable ASCII",
			                     (unsigned char)spec[i], i);
	struct fmt_idrule *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "rule: out of memory");
	enum idp_err rc = IDP_OK;
	bool seen_check = false;
	size_t i = 0;
	while (i < len) {
		while (i < len && spec[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && spec[i] != ' ')
			i++;
		const char *item = spec + start;
		size_t n = i - start;
		const char *eq = memchr(item, '=', n);
		if (eq == NULL) {
			rc = idp_error_set(err, IDP_E_FORMAT, "rule: \"%.*s\" is not key=value",
			                   (int)(n > 32 ? 32 : n), item);
			goto out;
		}
		size_t kl = (size_t)(eq - item);
		const char *v = eq + 1;
		size_t vl = n - kl - 1;
		if (kl == 7 && memcmp(item, "pattern", 7) == 0 && !r->has_pattern) {
			rc = parse_pattern(r, v, vl, err);
		} else if (kl == 5 && memcmp(item, "check", 5) == 0 && !seen_check) {
			rc = parse_check(r, v, vl, err);
			seen_check = true;
		} else {
			rc = idp_error_set(err, IDP_E_FORMAT,
			                   "rule: \"%.*s\" is unknown or repeated (pattern=, check=)",
			                   (int)(kl > 32 ? 32 : kl), item);
		}
		if (rc != IDP_OK)
			goto out;
	}
	if (!r->has_pattern && r->check == FMT_IDRULE_CHECK_NONE) {
		rc = idp_error_set(err, IDP_E_FORMAT, "rule: empty (give pattern= and/or check=)");
		goto out;
	}
	memcpy(r->text, spec, len);
	r->text[len] = '\0';
	*out = r;
	return IDP_OK;
out:
	fmt_idrule_free(r);
	return rc;
}

enum idp_err fmt_idrule_check(const struct fmt_idrule *rule, const char *value, size_t len,
                              const char *what, struct idp_error *err)
{
	/* Rules apply to IDs and serials, which follow the one ID rule first; so
	 * a value quoted below is printable and short. */
	enum idp_err rc = fmt_id_check(value, len, what, err);
	if (rc != IDP_OK)
		return rc;
	char v[80];
	int vl = (int)len;
	if (rule->has_pattern) {
		/* regexec needs a NUL-terminated string; IDs are at most FMT_ID_MAX. */
		char buf[FMT_ID_MAX + 1];
		memcpy(buf, value, len);
		buf[len] = '\0';
		if (regexec(&rule->re, buf, 0, NULL, 0) != 0) {
			(void)snprintf(v, sizeof(v), "%.*s", vl, value);
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s: \"%s\" does not match the product's pattern", what, v);
		}
	}
	bool ok = true;
	switch (rule->check) {
	case FMT_IDRULE_CHECK_NONE: break;
	case FMT_IDRULE_CHECK_LUHN: ok = fmt_idrule_luhn_valid(value, len); break;
	case FMT_IDRULE_CHECK_MOD97_10: ok = fmt_idrule_mod97_10_valid(value, len); break;
	case FMT_IDRULE_CHECK_DIVISIBLE: ok = fmt_idrule_divisible(value, len, rule->divisor); break;
	}
	if (!ok) {
		(void)snprintf(v, sizeof(v), "%.*s", vl, value);
		if (rule->check == FMT_IDRULE_CHECK_DIVISIBLE)
			return idp_error_set(err, IDP_E_FORMAT, "%s: \"%s\" is not divisible by %u",
			                     what, v, rule->divisor);
		return idp_error_set(err, IDP_E_FORMAT, "%s: \"%s\" fails the %s check", what, v,
		                     check_name(rule->check));
	}
	return IDP_OK;
}

const char *fmt_idrule_text(const struct fmt_idrule *rule)
{
	return rule->text;
}

void fmt_idrule_free(struct fmt_idrule *rule)
{
	if (rule == NULL)
		return;
	if (rule->has_pattern)
		regfree(&rule->re);
	free(rule);
}
