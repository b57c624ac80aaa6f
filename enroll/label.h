/*
 * label.h - a PASSed device's label: the QR code of formats/label.md made
 * with libqrencode, written as ZPL for a label printer, SVG for a preview
 * and PGM for automatic checks, and optionally piped to a print command.
 * Not thread-safe (one label at a time).
 */
#ifndef IDP_ENROLL_LABEL_H
#define IDP_ENROLL_LABEL_H

#include "formats/error.h"
#include "formats/wire.h"

/* Write DIR/ID.zpl, DIR/ID.svg and DIR/ID.pgm for the device info (each
 * atomically), then, when print_cmd is not NULL, run it with the ZPL on its
 * standard input (/bin/sh -c). IDP_E_IO names the file or the command. */
IDP_MUST_CHECK enum idp_err enr_label_write(const char *dir, const struct fmt_wire_info *info,
                                            const char *print_cmd, struct idp_error *err);

#endif /* IDP_ENROLL_LABEL_H */
