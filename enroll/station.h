/*
 * station.h - the station engine: read one device over a byte stream (a
 * serial port or a pty: any fd) with the wire protocol (formats/wire.md):
 * HELLO/HELLO_ACK, INFO_REQ/INFO, CHALLENGE with a fresh nonce/PROOF, then
 * verify the proof against the key the device reported and check its ID
 * and serial with the product's rules (formats/idrule.md). Duplicates and
 * the journal are the batch's business (enroll/batch.h).
 *
 * Recovery (wire.md §6.1, and docs/station-operator.md): besides resending
 * after a timeout, the engine resends the outstanding request at once when
 * the decoder counts a damaged marker line (cut, bad CRC, bad base64, bad
 * length, overlong) while it waits: the answer it awaits was most likely
 * that line. The resend is the identical line (same seq, same nonce), so
 * the device answers from its cache and signs nothing twice; it uses up
 * one attempt of the same retry budget as a timeout. ERROR PAYLOAD is
 * retried once and NO_KEY/BUSY after the timeout, each under a new seq (and
 * a fresh nonce), from the same budget; any other ERROR, SEQ_REUSED
 * included, ends the read as FAIL (the next read is a new session).
 *
 * One engine call per device; not thread-safe (one fd, one decoder).
 */
#ifndef IDP_ENROLL_STATION_H
#define IDP_ENROLL_STATION_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/idrule.h"
#include "formats/wire.h"

struct enr_station_cfg {
	const char *station_id;               /* sent in CHALLENGE, 1..64 bytes, formats/id.h */
	const struct fmt_idrule *id_rule;     /* device ID rule, or NULL */
	const struct fmt_idrule *serial_rule; /* serial rule, or NULL */
	unsigned hello_interval_ms;           /* 0 = FMT_WIRE_HELLO_TIMEOUT_MS */
	unsigned hello_window_ms;             /* 0 = FMT_WIRE_HELLO_WINDOW_MS */
	unsigned info_timeout_ms;             /* 0 = FMT_WIRE_INFO_TIMEOUT_MS */
	unsigned challenge_timeout_ms;        /* 0 = FMT_WIRE_CHALLENGE_TIMEOUT_MS */
	unsigned retries;                     /* 0 = FMT_WIRE_RETRIES */
	volatile const int *stop;             /* non-zero: give up (signal), or NULL */
	bool no_early_resend;                 /* wait for the timeout only (for comparison) */
	bool info_only;                       /* stop after INFO: enr_station_identify() */
};

/* Where a read ended. */
enum enr_stage {
	ENR_STAGE_HELLO = 1, /* no device answered (yet) */
	ENR_STAGE_INFO,
	ENR_STAGE_CHALLENGE,
	ENR_STAGE_VERIFY,
	ENR_STAGE_RULES,
	ENR_STAGE_DONE, /* PASS */
};

struct enr_result {
	bool pass;
	enum enr_stage stage;
	bool identified;                /* INFO arrived: info is valid */
	bool gone;                      /* the port hung up or failed (device unplugged) */
	bool stopped;                   /* cfg->stop was set */
	char reason[IDP_ERROR_MSG_MAX]; /* FAIL: why, printable ("" on PASS) */
	struct fmt_wire_info info;      /* valid from stage CHALLENGE on */
	uint8_t nonce[FMT_WIRE_NONCE_LEN];
	struct fmt_wire_proof proof; /* valid on PASS */
	unsigned resends;            /* requests sent again after a timeout */
	unsigned early_resends;      /* ... at once after a damaged frame */
	uint64_t elapsed_ms;         /* from the first HELLO to the result */
};

/* Read one device on fd (non-blocking or blocking; the engine polls) with
 * decoder dec (kept by the caller across devices for its counters). *res
 * gets PASS or FAIL with a reason; IDP_OK either way. Fails only on bad
 * arguments (IDP_E_ARG) or when no random bytes are available (IDP_E_CRYPTO). */
IDP_MUST_CHECK enum idp_err enr_station_read(int fd, struct fmt_wire_decoder *dec,
                                             const struct enr_station_cfg *cfg,
                                             struct enr_result *res, struct idp_error *err);

/* Who is on fd: HELLO and INFO only, no CHALLENGE (the device signs
 * nothing). res->identified and res->info say who answered; res->pass
 * stays false. Used to notice that a device already read is still
 * connected. Errors as enr_station_read(). */
IDP_MUST_CHECK enum idp_err enr_station_identify(int fd, struct fmt_wire_decoder *dec,
                                                 const struct enr_station_cfg *cfg,
                                                 struct enr_result *res, struct idp_error *err);

#endif /* IDP_ENROLL_STATION_H */
