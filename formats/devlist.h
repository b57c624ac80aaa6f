/*
 * devlist.h - the station's device list (CSV or JSON Lines), one record a
 * line, read into manifest records. Spec: formats/devlist.md. Pure: works on
 * a memory buffer, no I/O; a key given as a PEM path is handed back to the
 * caller to load. One reader per list, not shared between threads.
 */
#ifndef IDP_FORMATS_DEVLIST_H
#define IDP_FORMATS_DEVLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/manifest.h"

#define FMT_DEVLIST_PATH_MAX 4000u /* bytes of a pub field that names a .pem file */

enum fmt_devlist_format {
	FMT_DEVLIST_CSV = 1,   /* id,mac,serial[,pub] */
	FMT_DEVLIST_JSONL = 2, /* one manifest record object a line */
};

/* Reader state; zero it, set format, then call fmt_devlist_next() until
 * *got is 0. lineno is the line of the record last returned (1-based). */
struct fmt_devlist {
	enum fmt_devlist_format format;
	uint64_t lineno;
	size_t pos;       /* bytes of the buffer consumed */
	bool seen_line;   /* a non-blank, non-comment line was read (header rule) */
};

/* Read the next record from buf[0..len) (the whole list, same buffer every
 * call). Blank lines, lines starting with '#' and, in CSV, a first line
 * "id,mac,serial[,pub]" (any case) are skipped; CR LF is accepted. On IDP_OK
 * with *got = 1, *r holds the record; when the CSV pub field names a .pem
 * file, r->pub_len is 0 and pem_path holds the path (NUL-terminated) for the
 * caller to load, else pem_path is "". *got = 0 at the end. On failure the
 * message names the field; the caller prefixes "FILE: line N" (d->lineno). */
IDP_MUST_CHECK enum idp_err fmt_devlist_next(struct fmt_devlist *d, const uint8_t *buf, size_t len,
                                             struct fmt_manifest_record *r,
                                             char pem_path[static FMT_DEVLIST_PATH_MAX + 1],
                                             int *got, struct idp_error *err);

#endif /* IDP_FORMATS_DEVLIST_H */
