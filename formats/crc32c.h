/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as in
 * iSCSI, SCTP and ext4): the integrity check of station<->device frames.
 * Spec: formats/wire.md section 3.
 *
 * Written here because none of the project's libraries exports it (OpenSSL
 * has no CRC, zlib's crc32 is the other polynomial). Table-driven, one byte
 * per step. Pure; thread-safe.
 */
#ifndef IDP_FORMATS_CRC32C_H
#define IDP_FORMATS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#define FMT_CRC32C_CHECK 0xE3069283u /* CRC-32C of the ASCII "123456789" */

/* CRC-32C of buf[0..len), continuing from crc: pass 0 for the first chunk and
 * the previous result for the next, so that chunked input gives the same value
 * as the whole. */
uint32_t fmt_crc32c(uint32_t crc, const uint8_t *buf, size_t len);

#endif /* IDP_FORMATS_CRC32C_H */
