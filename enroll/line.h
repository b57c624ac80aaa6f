/*
 * line.h - the station's end of the line: a serial port opened through
 * libserialport (8N1, no flow control), a tty libserialport cannot open
 * (a pty) in raw mode, or a new pty for a device simulator; and the list
 * of serial ports with their USB identity. The engine (enroll/station.h)
 * reads whatever fd this yields. Not thread-safe.
 */
#ifndef IDP_ENROLL_LINE_H
#define IDP_ENROLL_LINE_H

#include <stdbool.h>
#include <stdint.h>

#include "enroll/manifest_build.h"
#include "formats/error.h"

struct sp_port;

struct enr_line {
	int fd;      /* what the engine reads and writes */
	int keep_fd; /* pty: the slave side, kept open so the master never hangs up */
	struct sp_port *sp;
};

/* Open port at baud (115200 when 0), or with port NULL a new pty whose
 * slave path goes to pty_name. IDP_E_IO names the port and the cause. Close
 * with enr_line_close() (also after a failure). */
IDP_MUST_CHECK enum idp_err enr_line_open(const char *port, uint64_t baud, struct enr_line *l,
                                          char pty_name[static ENR_PATH_MAX + 1],
                                          struct idp_error *err);

/* Close what l holds; l is then empty. */
void enr_line_close(struct enr_line *l);

struct enr_port_info {
	const char *name; /* "/dev/ttyUSB0" */
	bool usb;
	unsigned vid, pid; /* USB vendor and product IDs */
	char serial[128];  /* USB serial number, printable, "" if none */
	char manufacturer[128];
	char product[128];
	char description[128]; /* other transports */
};

/* Call fn for each serial port libserialport finds. Device-supplied
 * strings are escaped (idp_quote) before fn sees them. */
IDP_MUST_CHECK enum idp_err enr_line_ports(void (*fn)(void *arg, const struct enr_port_info *p),
                                           void *arg, struct idp_error *err);

#endif /* IDP_ENROLL_LINE_H */
