/*
 * table.c - see table.h.
 */
#include "server/cli/table.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/buf.h"

#define COL_GAP 2 /* spaces between columns */

const char *adm_time_iso(int64_t t, char out[static ADM_TIME_MAX])
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[ADM_TIME_MAX] = "";
	size_t n = 0;
	if (localtime_r(&tt, &tm) != NULL)
		n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", &tm);
	/* %z is +hhmm; ISO 8601's extended form wants +hh:mm. */
	if (n < 5 || (buf[n - 5] != '+' && buf[n - 5] != '-')) {
		(void)snprintf(out, ADM_TIME_MAX, "-");
		return out;
	}
	(void)snprintf(out, ADM_TIME_MAX, "%.*s:%s", (int)(n - 2), buf, buf + n - 2);
	return out;
}

/* s with each control byte (C0, DEL, and the C1 controls U+0080..U+009F as
 * UTF-8) written as \xNN; a new string (NULL when out of memory). */
static char *escape(const char *s)
{
	size_t len = strlen(s);
	struct fmt_buf b;
	fmt_buf_init(&b, 4 * len + 1, 0);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool c1 = c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		          (unsigned char)s[i + 1] <= 0x9f;
		if (c < 0x20 || c == 0x7f || c == '\\' || c1)
			fmt_buf_addf(&b, "\\x%02x", c1 ? (unsigned char)s[++i] : c);
		else
			fmt_buf_add(&b, &s[i], 1);
	}
	size_t n = 0;
	char *o = fmt_buf_status(&b) == IDP_OK ? (char *)fmt_buf_detach(&b, &n) : NULL;
	fmt_buf_free(&b);
	return o;
}

/* Columns s takes on a terminal: its UTF-8 characters. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* A duration in seconds as "3d04h", "5h07m", "2m05s" or "42s". */
static void duration(int64_t s, char *out, size_t max)
{
	long long v = (long long)s;
	if (v >= 86400)
		(void)snprintf(out, max, "%lldd%02lldh", v / 86400, v % 86400 / 3600);
	else if (v >= 3600)
		(void)snprintf(out, max, "%lldh%02lldm", v / 3600, v % 3600 / 60);
	else if (v >= 60)
		(void)snprintf(out, max, "%lldm%02llds", v / 60, v % 60);
	else
		(void)snprintf(out, max, "%llds", v);
}

/* Whether field f of row is absent (an optional member not sent, a member
 * off by its gate) or not for tables. */
static bool absent(const struct fmt_admin_field *f, const void *row)
{
	if ((f->flags & FMT_ADMIN_F_HIDDEN) || fmt_admin_gated_off(f, row))
		return true;
	if (!(f->flags & FMT_ADMIN_F_OPTIONAL))
		return false;
	switch (f->type) {
	case FMT_ADMIN_T_INT:
	case FMT_ADMIN_T_TIME:
	case FMT_ADMIN_T_SECONDS:
		return fmt_admin_get_int(f, row) == 0;
	case FMT_ADMIN_T_BOOL:
	case FMT_ADMIN_T_TRUE:
	case FMT_ADMIN_T_ROWS:
		return false;
	default:
		return fmt_admin_get_string(f, row) == NULL;
	}
}

/* Field f of row as a new, escaped cell text (NULL when out of memory). */
static char *cell(const struct fmt_admin_field *f, const void *row)
{
	char buf[64];
	const char *s = buf;
	switch (f->type) {
	case FMT_ADMIN_T_INT:
		(void)snprintf(buf, sizeof(buf), "%lld", (long long)fmt_admin_get_int(f, row));
		break;
	case FMT_ADMIN_T_TIME: {
		int64_t t = fmt_admin_get_int(f, row);
		if (t == 0)
			s = "-";
		else
			(void)adm_time_iso(t, buf);
		break;
	}
	case FMT_ADMIN_T_SECONDS:
		duration(fmt_admin_get_int(f, row), buf, sizeof(buf));
		break;
	case FMT_ADMIN_T_BOOL:
	case FMT_ADMIN_T_TRUE:
		s = fmt_admin_get_bool(f, row) ? "yes" : "no";
		break;
	case FMT_ADMIN_T_ROWS:
		s = "";
		break;
	default:
		s = fmt_admin_get_string(f, row);
		if (s == NULL || s[0] == '\0')
			s = "-";
		break;
	}
	return escape(s);
}

static void upper(const char *name, char *out, size_t max)
{
	size_t i = 0;
	for (; name[i] != '\0' && i + 1 < max; i++) {
		out[i] = name[i];
		if (out[i] >= 'a' && out[i] <= 'z')
			out[i] -= 'a' - 'A';
	}
	out[i] = '\0';
}

/* Print cells[0..n) padded to widths (the last one not padded). */
static void print_line(FILE *f, char *const *cells, const size_t *widths, size_t n)
{
	for (size_t c = 0; c < n; c++) {
		(void)fputs(cells[c], f);
		if (c + 1 < n)
			(void)fprintf(f, "%*s", (int)(widths[c] - width(cells[c]) + COL_GAP), "");
	}
	(void)fputc('\n', f);
}

/* The nested rows of field rf of row, one indented line each. */
static int print_nested(FILE *f, const struct fmt_admin_field *rf, const void *row)
{
	size_t n = 0, nf = 0;
	const char *sub = fmt_admin_get_rows(rf, row, &n);
	const struct fmt_admin_field *fields = fmt_admin_fields(rf->rows, &nf);
	size_t size = fmt_admin_size(rf->rows);
	for (size_t i = 0; i < n; i++) {
		(void)fprintf(f, "    %s:", rf->name);
		for (size_t k = 0; k < nf; k++) {
			char *v = cell(&fields[k], sub + i * size);
			if (v == NULL)
				return -1;
			(void)fprintf(f, " %s=%s", fields[k].name, v);
			free(v);
		}
		(void)fputc('\n', f);
	}
	return 0;
}

int adm_table_list(FILE *f, const struct fmt_admin_list *l)
{
	size_t nf = 0;
	const struct fmt_admin_field *fields = fmt_admin_fields(l->kind, &nf);
	size_t size = fmt_admin_size(l->kind);
	size_t order[16], ncols = 0;
	const struct fmt_admin_field *nested = NULL;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < nf && ncols < 16; i++) {
			if (fields[i].type == FMT_ADMIN_T_ROWS)
				nested = &fields[i];
			else if (fields[i].flags & FMT_ADMIN_F_HIDDEN)
				continue;
			else if (((fields[i].flags & FMT_ADMIN_F_WIDE) != 0) == (pass == 1))
				order[ncols++] = i;
		}
	if (fields == NULL || ncols == 0)
		return -1;
	char **cells = calloc((l->n + 1) * ncols, sizeof(*cells));
	size_t *widths = calloc(ncols, sizeof(*widths));
	int rc = cells != NULL && widths != NULL ? 0 : -1;
	for (size_t c = 0; rc == 0 && c < ncols; c++) {
		char h[64];
		upper(fields[order[c]].name, h, sizeof(h));
		cells[c] = strdup(h);
		for (size_t r = 0; cells[c] != NULL && r < l->n; r++) {
			char **p = &cells[(r + 1) * ncols + c];
			*p = cell(&fields[order[c]], (const char *)l->rows + r * size);
			if (*p == NULL)
				break;
		}
		for (size_t r = 0; r <= l->n; r++) {
			const char *s = cells[r * ncols + c];
			if (s == NULL) {
				rc = -1;
				break;
			}
			if (width(s) > widths[c])
				widths[c] = width(s);
		}
	}
	for (size_t r = 0; rc == 0 && r <= l->n; r++) {
		print_line(f, cells + r * ncols, widths, ncols);
		if (r > 0 && nested != NULL)
			rc = print_nested(f, nested, (const char *)l->rows + (r - 1) * size);
	}
	if (rc == 0 && l->n == 0)
		(void)fputs("(none)\n", f);
	if (rc == 0 && l->next != NULL)
		(void)fprintf(f, "more: continue with --after %s\n", l->next);
	for (size_t i = 0; cells != NULL && i < (l->n + 1) * ncols; i++)
		free(cells[i]);
	free(cells);
	free(widths);
	return rc;
}

void adm_table_pairs(FILE *f, const char *const *names, const char *const *values, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) > w)
			w = strlen(names[i]);
	for (size_t i = 0; i < n; i++) {
		char *v = escape(values[i]);
		(void)fprintf(f, "%-*s%*s%s\n", (int)w, names[i], COL_GAP, "",
		              v != NULL ? v : "(out of memory)");
		free(v);
	}
}

void adm_table_object(FILE *f, enum fmt_admin_kind kind, const void *row)
{
	size_t nf = 0;
	const struct fmt_admin_field *fields = fmt_admin_fields(kind, &nf);
	const char *names[16];
	char *values[16];
	size_t n = 0;
	for (size_t i = 0; i < nf && n < 16; i++) {
		if (fields[i].type == FMT_ADMIN_T_ROWS || absent(&fields[i], row))
			continue;
		char *v = cell(&fields[i], row);
		if (v == NULL)
			continue;
		names[n] = fields[i].name;
		values[n++] = v;
	}
	/* The cells are escaped already; print them as they are. */
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) > w)
			w = strlen(names[i]);
	for (size_t i = 0; i < n; i++) {
		(void)fprintf(f, "%-*s%*s%s\n", (int)w, names[i], COL_GAP, "", values[i]);
		free(values[i]);
	}
	/* Nested rows (a suspension's publishers seen) follow, one a line. */
	for (size_t i = 0; i < nf; i++)
		if (fields[i].type == FMT_ADMIN_T_ROWS && print_nested(f, &fields[i], row) != 0)
			(void)fputs("(out of memory)\n", f);
}
