/*
 * rules.c - see rules.h.
 */
#include "server/rules.h"

#include <stdio.h>
#include <string.h>

/* Take "name=value" out of text (copied to out[size]) and append the other
 * words to rest[rest_size]. False when name= is missing, repeated or too long. */
static bool take(const char *text, const char *name, char *out, size_t size, char *rest,
                 size_t rest_size)
{
	size_t nl = strlen(name), used = 0;
	bool found = false;
	rest[0] = '\0';
	for (const char *p = text; *p != '\0';) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		const char *end = strchr(p, ' ');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			if (found || len - nl - 1 >= size)
				return false;
			memcpy(out, p + nl + 1, len - nl - 1);
			out[len - nl - 1] = '\0';
			found = true;
		} else {
			int w = snprintf(rest + used, rest_size - used, "%s%.*s",
			                 used > 0 ? " " : "", (int)len, p);
			if (w < 0 || (size_t)w >= rest_size - used)
				return false;
			used += (size_t)w;
		}
		p += len;
	}
	return found;
}

enum idp_err srv_rules_add(struct srv_rules *rules, const char *text, struct idp_error *err)
{
	if (rules->n >= SRV_RULES_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: more than %u rules", SRV_RULES_MAX);
	if (strnlen(text, SRV_RULE_TEXT_MAX) >= SRV_RULE_TEXT_MAX)
		return idp_error_set(err, IDP_E_LIMIT, "rule: longer than %u bytes",
		                     SRV_RULE_TEXT_MAX - 1);
	struct srv_rule *r = &rules->rule[rules->n];
	memset(r, 0, sizeof(*r));
	char field[16], rest1[SRV_RULE_TEXT_MAX], rest2[SRV_RULE_TEXT_MAX];
	if (!take(text, "product", r->product, sizeof(r->product), rest1, sizeof(rest1)) ||
	    r->product[0] == '\0')
		return idp_error_set(err, IDP_E_FORMAT,
		                     "rule: product= missing, repeated or too long");
	if (!take(rest1, "field", field, sizeof(field), rest2, sizeof(rest2)))
		return idp_error_set(err, IDP_E_FORMAT, "rule: field= missing or repeated");
	if (strcmp(field, "serial") == 0)
		r->field = SRV_RULE_SERIAL;
	else if (strcmp(field, "id") == 0)
		r->field = SRV_RULE_ID;
	else
		return idp_error_set(err, IDP_E_FORMAT, "rule: field '%s' is not serial or id",
		                     field);
	enum idp_err rc = fmt_idrule_parse(rest2, strlen(rest2), &r->rule, err);
	if (rc != IDP_OK) {
		idp_error_prefix(err, "rule");
		return rc;
	}
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
		enum idp_err rc = fmt_idrule_check(r->rule, v, strlen(v),
		                                   r->field == SRV_RULE_ID ? "id" : "serial", err);
		if (rc != IDP_OK)
			return rc;
	}
	return IDP_OK;
}

void srv_rules_free(struct srv_rules *rules)
{
	for (size_t i = 0; i < rules->n; i++)
		fmt_idrule_free(rules->rule[i].rule);
	rules->n = 0;
}
