/*
 * usb.h - the station's USB transport (libusb-1.0): a device's vendor
 * interface with one bulk IN and one bulk OUT endpoint carries the same
 * bytes as a serial line (formats/wire.md; the frames are the same marker
 * lines). A bridge moves those bytes between the endpoints and one end of
 * a socket pair, so the engine (enroll/station.h) reads a USB device
 * through an fd exactly as it reads a serial port; when the device is
 * unplugged the bridge closes its end and the engine sees end of input
 * (res.gone). Devices are found by hotplug (libusb_hotplug_register_callback,
 * existing ones included): the next matching device is opened when it is
 * plugged in.
 *
 * One thread of its own owns every libusb call after enr_usb_open(): the
 * hotplug callbacks, the transfers, opening and closing devices. The
 * functions below are called from one other thread (the station's main
 * thread); not thread-safe among themselves.
 */
#ifndef IDP_ENROLL_USB_H
#define IDP_ENROLL_USB_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/error.h"

#define ENR_USB_DESC_MAX 64u /* bytes of a device's description, NUL included */

/* Which devices are the line's. */
struct enr_usb_match {
	uint16_t vid;  /* vendor ID */
	uint16_t pid;  /* product ID; 0 = any product of vid */
	uint8_t iface; /* interface number holding the two bulk endpoints */
};

/* Parse "VVVV:PPPP" (hex; "VVVV:*" for any product) and an interface
 * number ("0".."255", NULL = 0) into m. IDP_E_ARG names the bad value. */
IDP_MUST_CHECK enum idp_err enr_usb_parse(const char *ids, const char *iface,
                                          struct enr_usb_match *m, struct idp_error *err);

struct enr_usb; /* opaque */

/* Start libusb, register for hotplug of matching devices (those already
 * plugged in count as arrived) and start the USB thread. IDP_E_IO when
 * libusb cannot start or has no hotplug support. Free with enr_usb_close(). */
IDP_MUST_CHECK enum idp_err enr_usb_open(const struct enr_usb_match *m, struct enr_usb **out,
                                         struct idp_error *err);

/* Wait up to wait_ms (or until *stop) for a matching device that has
 * arrived, open it, claim the interface and start the bridge. IDP_OK: *fd
 * is the engine's end (owned by u: valid until enr_usb_detach()) and desc
 * names the device ("usb 1d50:6189 bus 1 device 2"). IDP_E_NOTFOUND: no
 * device arrived in time. IDP_E_IO: the device could not be used (no
 * permission, no such interface or endpoints, claimed by a driver): the
 * message says why, and that device is skipped until it arrives again. */
IDP_MUST_CHECK enum idp_err enr_usb_attach(struct enr_usb *u, unsigned wait_ms,
                                           volatile const int *stop, int *fd,
                                           char desc[static ENR_USB_DESC_MAX],
                                           struct idp_error *err);

/* Copy why the attached device's bridge ended ("usb: device unplugged")
 * into out, or "" while it runs. */
void enr_usb_gone_reason(struct enr_usb *u, char out[static IDP_ERROR_MSG_MAX]);

/* Stop the bridge, release the interface, close the device and both ends
 * of the socket pair. No-op when nothing is attached. */
void enr_usb_detach(struct enr_usb *u);

/* Detach, deregister, stop the USB thread and libusb. NULL is a no-op. */
void enr_usb_close(struct enr_usb *u);

struct enr_usb_info {
	uint16_t vid, pid;
	uint8_t bus, address;
	char serial[128]; /* printable (idp_quote), "" if none or unreadable */
	char manufacturer[128];
	char product[128];
	bool access; /* the device could be opened (its strings read) */
};

/* Call fn for each plugged-in device matching m. Device-supplied strings
 * are escaped before fn sees them. IDP_E_IO when libusb cannot start. */
IDP_MUST_CHECK enum idp_err enr_usb_list(const struct enr_usb_match *m,
                                         void (*fn)(void *arg, const struct enr_usb_info *d),
                                         void *arg, struct idp_error *err);

#endif /* IDP_ENROLL_USB_H */
