/*
 * rules.c - see rules.h.
 */
#include "server/rules.h"

#include <stdio.h>
#include <string.h>

bool srv_check_luhn(const char *s)
{
	size_t n = strlen(s), digits = 0;
	unsigned sum = 0;
	for (size_t i = n; i > 0; i--) {
		char c = s[i - 1];
		if (c < '0' || c > '9')
			continue;
		unsigned d = (unsigned)(c - '0');
		if (digits % 2 == 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
		digits++;
	}
	return digits >= 2 && sum % 10 == 0;
}

bool srv_check_mod97_10(const char *s)
{
	unsigned rem = 0;
	size_t used = 0;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned v;
		if (*p >= '0' && *p <= '9')
			v = (unsigned)(*p - '0');
		else if (*p >= 'A' && *p <= 'Z')
			v = (unsigned)(*p - 'A') + 10;
		else if (*p >= 'a' && *p <= 'z')
			v = (unsigned)(*p - 'a') + 10;
		else
			continue;
		rem = (v >= 10 ? rem * 100 : rem * 10) + v;
		rem %= 97;
		used++;
	}
	return used >= 3 && rem == 1;
}

bool srv_check_div7(const char *s)
{
	unsigned rem = 0;
	size_t digits = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			continue;
		rem = (rem * 10 + (unsigned)(*p - '0')) % 7;
		digits++;
	}
	return digits > 0 && rem == 0;
}

static const char *const check_names[] = {
        [SRV_CHECK_NONE] = "none",
        [SRV_CHECK_LUHN] = "luhn",
        [SRV_CHECK_MOD97_10] = "mod97-10",
        [SRV_CHECK_DIV7] = "div7",
};

/* The value of "name=" in text (up to the next space), copied to out. */
static bool word(const char *text, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	for (const char *p = text; p != NULL && *p != '\0';) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ' ');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl >= size)
				return false;
			memcpy(out, p + nl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

enum idp_err srv_rules_add(struct srv_rules *rules, const char *text, struct idp_error *err)
{
	if (rules->n >= SRV_RULES_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: more than %u rules", SRV_RULES_MAX);
	if (strnlen(text, SRV_RULE_TEXT_MAX) >= SRV_RULE_TEXT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: longer than %u bytes",
		                     SRV_RULE_TEXT_MAX - 1);
	/* Every word must be one of the four keys. */
	for (const char *p = text; *p != '\0';) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (strncmp(p, "product=", 8) != 0 && strncmp(p, "field=", 6) != 0 &&
		    strncmp(p, "pattern=", 8) != 0 && strncmp(p, "check=", 6) != 0)
			return idp_error_set(err, IDP_E_FORMAT, "rule: unknown part '%.32s'", p);
		const char *end = strchr(p, ' ');
		p = end != NULL ? end : p + strlen(p);
	}
	struct srv_rule *r = &rules->rule[rules->n];
	memset(r, 0, sizeof(*r));
	(void)snprintf(r->text, sizeof(r->text), "%s", text);
	char field[16], check[16], pattern[SRV_RULE_TEXT_MAX];
	if (!word(text, "product", r->product, sizeof(r->product)) || r->product[0] == '\0')
		return idp_error_set(err, IDP_E_FORMAT, "rule: product= missing or too long");
	if (!word(text, "field", field, sizeof(field)))
		return idp_error_set(err, IDP_E_FORMAT, "rule: field= missing");
	if (strcmp(field, "serial") == 0)
		r->field = SRV_RULE_SERIAL;
	else if (strcmp(field, "id") == 0)
		r->field = SRV_RULE_ID;
	else
		return idp_error_set(err, IDP_E_FORMAT, "rule: field '%s' is not serial or id",
		                     field);
	if (word(text, "check", check, sizeof(check))) {
		size_t i = 1;
		for (; i < sizeof(check_names) / sizeof(check_names[0]); i++)
			if (strcmp(check, check_names[i]) == 0)
				break;
		if (i == sizeof(check_names) / sizeof(check_names[0]))
			return idp_error_set(err, IDP_E_FORMAT,
			                     "rule: check '%s' is not luhn, mod97-10 or div7",
			                     check);
		r->check = (enum srv_rule_check)i;
	}
	if (word(text, "pattern", pattern, sizeof(pattern))) {
		if (regcomp(&r->pattern, pattern, REG_EXTENDED | REG_NOSUB) != 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "rule: pattern '%.64s' does not compile", pattern);
		r->has_pattern = true;
	}
	if (!r->has_pattern && r->check == SRV_CHECK_NONE)
		return idp_error_set(err, IDP_E_FORMAT, "rule: needs a pattern= or a check=");
	rules->n++;
	return IDP_OK;
}

enum idp_err srv_rules_check(const struct srv_rules *rules, const char *product, const char *id,
                             const char *serial, struct idp_error *err)
{
	for (size_t i = 0; rules != NULL && i < rules->n; i++) {
		const struct srv_rule *r = &rules->rule[i];
		if (strcmp(r->product, "*") != 0 && strcmp(r->product, product) != 0)
			continue;
		const char *v = r->field == SRV_RULE_ID ? id : serial;
		const char *what = r->field == SRV_RULE_ID ? "id" : "serial";
		if (r->has_pattern && regexec(&r->pattern, v, 0, NULL, 0) != 0)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s %s does not match the pattern of rule '%s'", what,
			                     v, r->text);
		bool ok = r->check == SRV_CHECK_LUHN       ? srv_check_luhn(v)
		          : r->check == SRV_CHECK_MOD97_10 ? srv_check_mod97_10(v)
		          : r->check == SRV_CHECK_DIV7     ? srv_check_div7(v)
		                                           : true;
		if (!ok)
			return idp_error_set(err, IDP_E_FORMAT,
			                     "%s %s fails the %s check of rule '%s'", what, v,
			                     check_names[r->check], r->text);
	}
	return IDP_OK;
}

void srv_rules_free(struct srv_rules *rules)
{
	for (size_t i = 0; i < rules->n; i++)
		if (rules->rule[i].has_pattern)
			regfree(&rules->rule[i].pattern);
	rules->n = 0;
}
