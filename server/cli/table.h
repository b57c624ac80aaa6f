/*
 * table.h - idprov-admin's human-readable output: admin API answers
 * (formats/admin_api.h, already parsed) as aligned tables or "name value"
 * lines, driven by the same field tables as the encoder and parser. Times
 * are local ISO 8601 with a numeric offset (2026-11-30T18:20:05+01:00);
 * absent values are "-"; control bytes in server text are shown as \xNN so
 * an answer cannot drive the terminal. Not thread-safe (localtime_r and the
 * stream only).
 */
#ifndef IDP_SERVER_CLI_TABLE_H
#define IDP_SERVER_CLI_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/admin_api.h"

#define ADM_TIME_MAX 32u /* bytes of adm_time_iso's text with its NUL */

/* t (Unix seconds) as local ISO 8601 with the offset as +hh:mm, into out.
 * Returns out ("-" when t cannot be converted). */
const char *adm_time_iso(int64_t t, char out[static ADM_TIME_MAX]);

/* l as a table: a header of the members' names in upper case, one line per
 * row, long text columns last, nested rows (a device's other keys) as
 * indented lines under their row; "(none)" for an empty list, and the
 * "--after" to pass for the next page when there is one. Returns 0, or -1
 * when out of memory (nothing printed). */
int adm_table_list(FILE *f, const struct fmt_admin_list *l);

/* row (a struct of kind) as aligned "name  value" lines; absent optional
 * members are left out. */
void adm_table_object(FILE *f, enum fmt_admin_kind kind, const void *row);

/* names[i] and values[i] (i < n) as aligned "name  value" lines (values
 * printed as given, escaped). */
void adm_table_pairs(FILE *f, const char *const *names, const char *const *values, size_t n);

#endif /* IDP_SERVER_CLI_TABLE_H */
