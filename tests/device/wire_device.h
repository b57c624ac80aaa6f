/*
 * wire_device.h - a test-only device side of the wire protocol
 * (formats/wire.md §6.2), written from the spec, for the station tests: it
 * answers HELLO, INFO_REQ and CHALLENGE on an fd (a pty's slave side) with
 * the answer cache, and can misbehave on request (boot-log noise, split
 * writes, a wrong proof, silence). A line of devices is simulated by
 * switching to the next identity after each PROOF. The real agent
 * (idprov-agent factory) plays the device in
 * tests/integration/station/agent.sh (a line of agents, console noise, a
 * hung device, the seal) and behind the USB adapter of serial.sh; this one is kept only for what the agent cannot
 * be made to do: a wrong proof (the agent signs with its own key over its
 * own INFO only), silence after INFO, frames cut mid-line by a kernel
 * message, 7-byte split writes, and the kill.sh and bench runs that need
 * many identities per second. Keep it small.
 */
#ifndef IDP_TESTS_DEVICE_WIRE_DEVICE_H
#define IDP_TESTS_DEVICE_WIRE_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/keys.h"

struct tdev_cfg {
	const char *id_prefix;     /* device i is "<prefix>-<first + i>" */
	const char *serial_prefix; /* serial "<prefix>-<first + i>", "" = none */
	unsigned first;            /* number of the first device */
	unsigned devices;          /* identities to serve; then stop answering */
	enum fmt_key_type key_type;
	bool noise;            /* boot log before the first answer and inside lines */
	bool split;            /* answers in 7-byte writes with 2 ms pauses */
	bool cut_first;        /* the first INFO and first PROOF are cut by a kernel line */
	bool wrong_proof;      /* sign with another key */
	bool silent;           /* never answer anything */
	bool silent_challenge; /* answer HELLO and INFO, not CHALLENGE */
	bool dup_serial;       /* every device has the serial of device first */
	const char *done_file; /* append "<id>\n" after each PROOF sent, or NULL */
};

/* Serve on fd until end of input, a read error, *stop, or cfg->devices
 * identities were served (then keep reading silently until one of the
 * others). IDP_OK at the end; IDP_E_CRYPTO when a key cannot be made. */
IDP_MUST_CHECK enum idp_err tdev_run(int fd, const struct tdev_cfg *cfg, volatile const int *stop,
                                     struct idp_error *err);

#endif /* IDP_TESTS_DEVICE_WIRE_DEVICE_H */
