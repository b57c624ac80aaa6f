/*
 * fuzz_oob.c - libFuzzer target for formats/oob: the label secret's check
 * and the out-of-band proof (formats/api.md §15). Byte 0 says how many of
 * the following bytes are the device ID, the rest is both the secret (for
 * the check) and the SubjectPublicKeyInfo bytes (for the proof). The check
 * accepts exactly 1..64 bytes of 0x21..0x7e; the proof is made for exactly
 * the IDs of 1..64 bytes, is the same for the same input, and changes with
 * the exporter (a proof for one connection is not one for another).
 * (fmt_oob_verifier is not fuzzed: its 100000 PBKDF2 rounds would leave
 * the fuzzer nothing else; it takes the same checked secret and ID.)
 * Seeds: tests/fuzz/corpus/fuzz_oob/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/oob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	size_t idl = data[0] % (FMT_OOB_ID_MAX + 8);
	if (idl > size - 1)
		idl = size - 1;
	const uint8_t *rest = data + 1 + idl;
	size_t rl = size - 1 - idl;
	bool printable = rl >= 1 && rl <= FMT_OOB_SECRET_MAX;
	for (size_t i = 0; printable && i < rl; i++)
		printable = rest[i] >= 0x21 && rest[i] <= 0x7e;
	if ((fmt_oob_secret_check((const char *)rest, rl, NULL) == IDP_OK) != printable)
		abort(); /* the check disagrees with the secret's rule */
	char id[FMT_OOB_ID_MAX + 8];
	memcpy(id, data + 1, idl);
	id[idl] = '\0';
	static const uint8_t verifier[FMT_OOB_LEN] = {7};
	uint8_t ex[FMT_OOB_EXPORTER_LEN] = {1}, p1[FMT_OOB_LEN], p2[FMT_OOB_LEN], p3[FMT_OOB_LEN];
	enum idp_err rc = fmt_oob_proof(verifier, ex, id, rest, rl, p1, NULL);
	size_t n = strnlen(id, sizeof(id));
	if ((rc == IDP_OK) != (n >= 1 && n <= FMT_OOB_ID_MAX && rl > 0))
		abort(); /* a proof for an ID outside 1..64 bytes, or none for a valid one */
	if (rc != IDP_OK)
		return 0;
	if (fmt_oob_proof(verifier, ex, id, rest, rl, p2, NULL) != IDP_OK ||
	    memcmp(p1, p2, sizeof(p1)) != 0)
		abort(); /* not deterministic */
	ex[31] ^= 1;
	if (fmt_oob_proof(verifier, ex, id, rest, rl, p3, NULL) != IDP_OK ||
	    memcmp(p1, p3, sizeof(p1)) == 0)
		abort(); /* the same proof on another connection */
	return 0;
}
