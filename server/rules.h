/*
 * rules.h - which serial and ID rules apply to which product at import.
 * A rule is one line of text, as the config key "rule" holds it:
 *
 *   product=NAME field=serial|id RULE
 *
 * where RULE is a formats/idrule.h rule ("pattern=ERE check=luhn|mod97-10|
 * div:N", spec formats/idrule.md). product "*" applies to every product. A
 * record must pass every rule of its product. Thread-safe once built.
 */
#ifndef IDP_SERVER_RULES_H
#define IDP_SERVER_RULES_H

#include <stddef.h>

#include "formats/error.h"
#include "formats/idrule.h"
#include "formats/manifest.h"

#define SRV_RULES_MAX        16u
#define SRV_RULE_TEXT_MAX    (FMT_IDRULE_SPEC_MAX + 128u)
#define SRV_RULE_PRODUCT_MAX FMT_MANIFEST_PRODUCT_MAX

enum srv_rule_field { SRV_RULE_SERIAL = 1, SRV_RULE_ID = 2 };

struct srv_rule {
	char product[SRV_RULE_PRODUCT_MAX + 1];
	enum srv_rule_field field;
	struct fmt_idrule *rule;
};

struct srv_rules {
	struct srv_rule rule[SRV_RULES_MAX];
	size_t n;
};

/* Add the rule written as text to rules. IDP_E_FORMAT names the bad part. */
IDP_MUST_CHECK enum idp_err srv_rules_add(struct srv_rules *rules, const char *text,
                                          struct idp_error *err);

/* Check a record of product against every rule for it: IDP_OK, or the
 * rule's error naming the field and the value. rules may be NULL. */
IDP_MUST_CHECK enum idp_err srv_rules_check(const struct srv_rules *rules, const char *product,
                                            const char *id, const char *serial,
                                            struct idp_error *err);

/* Free the compiled rules; rules is then empty. */
void srv_rules_free(struct srv_rules *rules);

#endif /* IDP_SERVER_RULES_H */
