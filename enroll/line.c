/*
 * line.c - serial ports and ptys for the station; see line.h.
 */
#include "enroll/line.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

static bool baud_speed(uint64_t baud, speed_t *sp)
{
	static const struct {
		uint64_t b;
		speed_t s;
	} t[] = {{9600, B9600},     {19200, B19200},   {38400, B38400},   {57600, B57600},
	         {115200, B115200}, {230400, B230400}, {460800, B460800}, {921600, B921600}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].b == baud) {
			*sp = t[i].s;
			return true;
		}
	return false;
}

static bool raw_tty(int fd, uint64_t baud)
{
	struct termios t;
	speed_t sp = B115200;
	if (tcgetattr(fd, &t) != 0)
		return false;
	cfmakeraw(&t);
	if (baud_speed(baud, &sp)) {
		(void)cfsetispeed(&t, sp);
		(void)cfsetospeed(&t, sp);
	}
	t.c_cflag |= CLOCAL | CREAD;
	return tcsetattr(fd, TCSANOW, &t) == 0;
}

enum idp_err enr_line_open(const char *port, uint64_t baud, struct enr_line *l,
                           char pty_name[static ENR_PATH_MAX + 1], struct idp_error *err)
{
	l->fd = l->keep_fd = -1;
	l->sp = NULL;
	pty_name[0] = '\0';
	if (baud == 0)
		baud = 115200;
	if (port == NULL) {
		const char *name = NULL;
		if (openpty(&l->fd, &l->keep_fd, NULL, NULL, NULL) != 0 ||
		    (name = ttyname(l->keep_fd)) == NULL)
			return idp_error_set(err, IDP_E_IO, "pty: %s", strerror(errno));
		(void)fcntl(l->fd, F_SETFD, FD_CLOEXEC);
		(void)fcntl(l->keep_fd, F_SETFD, FD_CLOEXEC);
		if (!raw_tty(l->keep_fd, baud))
			return idp_error_set(err, IDP_E_IO, "%s: %s", name, strerror(errno));
		(void)snprintf(pty_name, ENR_PATH_MAX + 1, "%s", name);
		return IDP_OK;
	}
	if (sp_get_port_by_name(port, &l->sp) == SP_OK) {
		if (sp_open(l->sp, SP_MODE_READ_WRITE) != SP_OK ||
		    sp_set_baudrate(l->sp, (int)baud) != SP_OK || sp_set_bits(l->sp, 8) != SP_OK ||
		    sp_set_parity(l->sp, SP_PARITY_NONE) != SP_OK ||
		    sp_set_stopbits(l->sp, 1) != SP_OK ||
		    sp_set_flowcontrol(l->sp, SP_FLOWCONTROL_NONE) != SP_OK ||
		    sp_get_port_handle(l->sp, &l->fd) != SP_OK) {
			char *m = sp_last_error_message();
			(void)idp_error_set(err, IDP_E_IO, "%s: %s", port, m != NULL ? m : "error");
			sp_free_error_message(m);
			l->fd = -1;
			return IDP_E_IO;
		}
		return IDP_OK;
	}
	/* Not a port libserialport knows (a pty has no sysfs entry). */
	l->fd = open(port, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (l->fd < 0)
		return idp_error_set(err, IDP_E_IO, "%s: %s", port, strerror(errno));
	if (!raw_tty(l->fd, baud))
		return idp_error_set(err, IDP_E_IO, "%s: not a serial port", port);
	return IDP_OK;
}

void enr_line_close(struct enr_line *l)
{
	if (l->sp != NULL) {
		(void)sp_close(l->sp);
		sp_free_port(l->sp);
	} else if (l->fd >= 0) {
		(void)close(l->fd);
	}
	if (l->keep_fd >= 0)
		(void)close(l->keep_fd);
	l->fd = l->keep_fd = -1;
	l->sp = NULL;
}

static void copy_quoted(char *dst, size_t size, const char *src)
{
	char q[IDP_QUOTE_MAX];
	if (src == NULL) {
		dst[0] = '\0';
		return;
	}
	(void)snprintf(dst, size, "%s", idp_quote(src, strnlen(src, 256), q));
}

enum idp_err enr_line_ports(void (*fn)(void *arg, const struct enr_port_info *p), void *arg,
                            struct idp_error *err)
{
	struct sp_port **list = NULL;
	if (sp_list_ports(&list) != SP_OK) {
		char *m = sp_last_error_message();
		(void)idp_error_set(err, IDP_E_IO, "serial ports: %s", m != NULL ? m : "error");
		sp_free_error_message(m);
		return IDP_E_IO;
	}
	for (size_t i = 0; list[i] != NULL; i++) {
		struct sp_port *p = list[i];
		struct enr_port_info info;
		memset(&info, 0, sizeof(info));
		info.name = sp_get_port_name(p);
		info.usb = sp_get_port_transport(p) == SP_TRANSPORT_USB;
		if (info.usb) {
			int vid = 0, pid = 0;
			(void)sp_get_port_usb_vid_pid(p, &vid, &pid);
			info.vid = (unsigned)vid & 0xffffu;
			info.pid = (unsigned)pid & 0xffffu;
			copy_quoted(info.serial, sizeof(info.serial), sp_get_port_usb_serial(p));
			copy_quoted(info.manufacturer, sizeof(info.manufacturer),
			            sp_get_port_usb_manufacturer(p));
			copy_quoted(info.product, sizeof(info.product), sp_get_port_usb_product(p));
		} else {
			copy_quoted(info.description, sizeof(info.description),
			            sp_get_port_description(p));
		}
		fn(arg, &info);
	}
	sp_free_port_list(list);
	return IDP_OK;
}
