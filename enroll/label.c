/*
 * label.c - device labels; see label.h and formats/label.md.
 */
#include "enroll/label.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "enroll/manifest_build.h"
#include "formats/buf.h"
#include "formats/file.h"
#include "formats/label.h"
#include "formats/mac.h"

#define QUIET  4 /* modules of white around the code */
#define PGM_PX 4 /* pixels a module in the PGM raster */
/* bytes of one label file: a version 40 code is about 600 KiB as SVG or PGM */
#define LABEL_FILE_MAX ((size_t)16 << 20)

static bool dark(const QRcode *q, int x, int y)
{
	return x >= 0 && y >= 0 && x < q->width && y < q->width && (q->data[y * q->width + x] & 1);
}

static void render_svg(const QRcode *q, const char *text, struct fmt_buf *b)
{
	int n = q->width + 2 * QUIET;
	fmt_buf_addf(b,
	             "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
	             "width=\"%d\" height=\"%d\">\n<rect width=\"%d\" height=\"%d\" "
	             "fill=\"#fff\"/>\n<path d=\"",
	             n * 3, n + 4, n * 12, (n + 4) * 4, n * 3, n + 4);
	for (int y = 0; y < q->width; y++)
		for (int x = 0; x < q->width; x++)
			if (dark(q, x, y))
				fmt_buf_addf(b, "M%d %dh1v1h-1z", x + QUIET, y + QUIET);
	fmt_buf_addf(b,
	             "\"/>\n<text x=\"%d\" y=\"%d\" font-family=\"monospace\" "
	             "font-size=\"2\">%s</text>\n</svg>\n",
	             n + 1, QUIET + 2, text);
}

static enum idp_err render_pgm(const QRcode *q, struct fmt_buf *b, struct idp_error *err)
{
	int n = (q->width + 2 * QUIET) * PGM_PX;
	uint8_t row[4096];
	if ((size_t)n > sizeof(row))
		return idp_error_set(err, IDP_E_LIMIT, "label: QR code too large");
	fmt_buf_addf(b, "P5\n%d %d\n255\n", n, n);
	for (int y = 0; y < n; y++) {
		for (int x = 0; x < n; x++)
			row[x] = dark(q, x / PGM_PX - QUIET, y / PGM_PX - QUIET) ? 0 : 255;
		fmt_buf_add(b, row, (size_t)n);
	}
	return IDP_OK;
}

static enum idp_err write_file(const char *dir, const char *id, const char *ext,
                               const struct fmt_buf *b, struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	int n = snprintf(path, sizeof(path), "%s/%s.%s", dir, id, ext);
	if (n < 0 || (size_t)n >= sizeof(path))
		return idp_error_set(err, IDP_E_ARG, "%s: label path too long", dir);
	enum idp_err rc = fmt_buf_check(b, "label", err);
	if (rc != IDP_OK)
		return rc;
	return fmt_file_write_atomic(path, b->p, b->len, 0644, err);
}

enum idp_err enr_label_write(const char *dir, const struct fmt_wire_info *info,
                             const char *print_cmd, struct idp_error *err)
{
	uint8_t fp[FMT_KEY_FINGERPRINT_LEN];
	char payload[FMT_LABEL_MAX + 1], mac[FMT_MAC_TEXT_LEN + 1];
	size_t plen = 0;
	enum idp_err rc;
	if ((rc = fmt_label_fingerprint(info->spki, info->spki_len, fp, err)) ||
	    (rc = fmt_label_encode(info->device_id, info->device_id_len, fp, payload, &plen, err)))
		return rc;
	payload[plen] = '\0';
	fmt_mac_format(info->mac, mac);
	QRcode *q = QRcode_encodeString(payload, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (q == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "label: QR code: cannot encode");
	struct fmt_buf zpl, svg, pgm;
	fmt_buf_init(&zpl, LABEL_FILE_MAX, 0);
	fmt_buf_init(&svg, LABEL_FILE_MAX, 0);
	fmt_buf_init(&pgm, LABEL_FILE_MAX, 0);
	/* Device strings are ID-rule text (no '^', '~', '<', '&'), safe in ZPL and SVG. */
	fmt_buf_addf(&zpl,
	             "^XA\n^FO20,20^BQN,2,5^FDMA,%s^FS\n"
	             "^FO260,30^A0N,32,32^FD%s^FS\n^FO260,80^A0N,26,26^FDS/N %s^FS\n"
	             "^FO260,120^A0N,26,26^FDMAC %s^FS\n^XZ\n",
	             payload, info->device_id, info->serial, mac);
	render_svg(q, info->device_id, &svg);
	if ((rc = render_pgm(q, &pgm, err)) ||
	    (rc = write_file(dir, info->device_id, "zpl", &zpl, err)) ||
	    (rc = write_file(dir, info->device_id, "svg", &svg, err)) ||
	    (rc = write_file(dir, info->device_id, "pgm", &pgm, err)))
		goto out;
	if (print_cmd != NULL) {
		FILE *p = popen(print_cmd, "w");
		if (p == NULL) {
			rc = idp_error_set(err, IDP_E_IO, "label: cannot run \"%s\"", print_cmd);
			goto out;
		}
		size_t w = fwrite(zpl.p, 1, zpl.len, p);
		int st = pclose(p);
		if (w != zpl.len || st != 0)
			rc = idp_error_set(err, IDP_E_IO, "label: \"%s\" failed (status %d)",
			                   print_cmd, st);
	}
out:
	QRcode_free(q);
	fmt_buf_free(&zpl);
	fmt_buf_free(&svg);
	fmt_buf_free(&pgm);
	return rc;
}
