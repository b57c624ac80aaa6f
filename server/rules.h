/*
 * rules.h - serial and ID validation rules per product (the second seed's
 * "each serial number is valid"), applied to every record of an import.
 *
 * A rule is one line of text, as the config key "rule" holds it:
 *
 *   product=NAME field=serial|id [pattern=ERE] [check=luhn|mod97-10|div7]
 *
 * product "*" applies to every product. pattern is a POSIX extended regular
 * expression the whole value must match (anchor it with ^...$). The checks
 * run over the value's characters as described at each function below. A
 * record must pass every rule of its product. Thread-safe once built.
 */
#ifndef IDP_SERVER_RULES_H
#define IDP_SERVER_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "formats/error.h"

#define SRV_RULES_MAX        16u
#define SRV_RULE_TEXT_MAX    512u
#define SRV_RULE_PRODUCT_MAX 64u

enum srv_rule_field { SRV_RULE_SERIAL = 1, SRV_RULE_ID = 2 };
enum srv_rule_check { SRV_CHECK_NONE = 0, SRV_CHECK_LUHN, SRV_CHECK_MOD97_10, SRV_CHECK_DIV7 };

struct srv_rule {
	char product[SRV_RULE_PRODUCT_MAX + 1];
	enum srv_rule_field field;
	bool has_pattern;
	regex_t pattern;
	enum srv_rule_check check;
	char text[SRV_RULE_TEXT_MAX]; /* as written, for errors */
};

struct srv_rules {
	struct srv_rule rule[SRV_RULES_MAX];
	size_t n;
};

/* Add the rule written as text to rules. IDP_E_FORMAT names the bad part. */
IDP_MUST_CHECK enum idp_err srv_rules_add(struct srv_rules *rules, const char *text,
                                          struct idp_error *err);

/* Check a record of product: IDP_OK, or IDP_E_FORMAT naming the field, the
 * value and the rule it fails. */
IDP_MUST_CHECK enum idp_err srv_rules_check(const struct srv_rules *rules, const char *product,
                                            const char *id, const char *serial,
                                            struct idp_error *err);

/* Free the compiled patterns; rules is then empty. */
void srv_rules_free(struct srv_rules *rules);

/* Luhn (ISO/IEC 7812-1) over the decimal digits of s (other characters are
 * skipped); at least two digits. */
bool srv_check_luhn(const char *s);

/* ISO 7064 MOD 97-10 over the letters and digits of s (letters A..Z, either
 * case, count as 10..35, as in an IBAN): the number mod 97 is 1. At least
 * three characters. */
bool srv_check_mod97_10(const char *s);

/* The decimal digits of s, as one number, are divisible by 7 (the second
 * seed's sample rule). At least one digit. */
bool srv_check_div7(const char *s);

#endif /* IDP_SERVER_RULES_H */
