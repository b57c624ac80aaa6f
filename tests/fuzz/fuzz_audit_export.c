/*
 * fuzz_audit_export.c - libFuzzer target for formats/audit_export: any
 * bytes as an audit export (JSON Lines, formats/audit.md §7). The verifier
 * must never read past its input, and may call an export intact only when
 * it made no finding and every checkpoint it counted is within the entries.
 */
#include <stdint.h>
#include <stdlib.h>

#include "formats/audit_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fmt_audit_verdict v;
	enum idp_err rc = fmt_audit_export_verify(data, size, NULL, &v, NULL);
	if (rc != IDP_OK && v.intact)
		abort();
	if (v.intact && (v.reason[0] != '\0' || v.truncated || v.last_seq < v.first_seq - 1))
		abort();
	return 0;
}
