/*
 * journal-gen.c - journal-gen: a closed station batch journal of N devices
 * (formats/journal.md) written straight to a file, for the shell tests that
 * measure idprov-station close on batches of any size. Every device shares
 * one generated P-256 key and a made-up capture proof: close copies them
 * into the manifest without checking them. Not installed.
 *
 *   journal-gen OUT BATCH STATION PRODUCT N
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/journal.h"
#include "formats/keys.h"

int main(int argc, char **argv)
{
	if (argc != 6) {
		(void)fprintf(stderr, "usage: journal-gen OUT BATCH STATION PRODUCT N\n");
		return 2;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long n = strtoull(argv[5], &end, 10);
	if (errno != 0 || end == argv[5] || *end != '\0' || n > 10000000ull) {
		(void)fprintf(stderr, "journal-gen: N: not a count up to 10000000\n");
		return 2;
	}
	struct idp_error err = {0};
	struct fmt_key *key = NULL;
	static struct fmt_journal_entry e;
	uint8_t out[FMT_JOURNAL_ENTRY_MAX];
	size_t len = 0;
	FILE *f = fopen(argv[1], "wb");
	if (f == NULL) {
		(void)fprintf(stderr, "journal-gen: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int rc = 1;
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_OPEN;
	e.time = 1764547200;
	(void)snprintf(e.batch, sizeof(e.batch), "%s", argv[2]);
	(void)snprintf(e.station, sizeof(e.station), "%s", argv[3]);
	(void)snprintf(e.product, sizeof(e.product), "%s", argv[4]);
	if (fmt_journal_encode(&e, out, &len, &err) != IDP_OK ||
	    fwrite(out, 1, len, f) != len || fmt_key_generate(FMT_KEY_P256, &key, &err) != IDP_OK)
		goto out;
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_DEVICE;
	e.time = 1764547200;
	e.key_type = FMT_KEY_P256;
	if (fmt_key_spki_der(key, e.spki, &e.spki_len, &err) != IDP_OK)
		goto out;
	memset(e.nonce, 0x5a, sizeof(e.nonce));
	memset(e.sig, 0xa5, sizeof(e.sig));
	for (unsigned long long i = 1; i <= n; i++) {
		(void)snprintf(e.id, sizeof(e.id), "dev-%08llu", i);
		(void)snprintf(e.serial, sizeof(e.serial), "SN%08lluA", i);
		e.mac[0] = 0x02;
		for (int b = 0; b < 5; b++)
			e.mac[5 - b] = (uint8_t)(i >> (8 * b));
		if (fmt_journal_encode(&e, out, &len, &err) != IDP_OK ||
		    fwrite(out, 1, len, f) != len)
			goto out;
	}
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_CLOSE;
	e.time = 1764547200;
	e.count = n;
	if (fmt_journal_encode(&e, out, &len, &err) != IDP_OK || fwrite(out, 1, len, f) != len)
		goto out;
	rc = 0;
out:
	if (fclose(f) != 0 || (rc != 0 && err.msg[0] == '\0'))
		(void)fprintf(stderr, "journal-gen: %s: write failed\n", argv[1]);
	else if (rc != 0)
		(void)fprintf(stderr, "journal-gen: %s\n", err.msg);
	fmt_key_free(key);
	return rc == 0 && err.msg[0] == '\0' ? 0 : 1;
}
