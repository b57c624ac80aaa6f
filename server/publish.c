/*
 * publish.c - see publish.h.
 */
#include "server/publish.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/io/dnssd.h"
#include "formats/io/log.h"

struct srv_publish {
	struct fio_dnssd_pub *pub[SRV_CONFIG_LISTEN_MAX];
	uint16_t port[SRV_CONFIG_LISTEN_MAX];
	size_t n;
};

static void on_event(void *arg, enum fio_dnssd_event ev, const char *detail)
{
	unsigned port = (unsigned)(uintptr_t)arg;
	char q[IDP_QUOTE_MAX];
	const char *d = idp_quote(detail, strnlen(detail, FIO_DNSSD_STR_MAX), q);
	if (ev == FIO_DNSSD_PUBLISHED)
		fio_log(FIO_LOG_INFO, "dnssd.published", "type=%s name=\"%s\" port=%u",
		        SRV_PUBLISH_TYPE, d, port);
	else if (ev == FIO_DNSSD_RENAMED)
		fio_log(FIO_LOG_WARN, "dnssd.renamed", "type=%s name=\"%s\" port=%u",
		        SRV_PUBLISH_TYPE, d, port);
	else if (ev == FIO_DNSSD_HOST_RENAMED)
		fio_log(FIO_LOG_WARN, "dnssd.host_renamed", "host=\"%s\" port=%u", d, port);
	else
		fio_log(FIO_LOG_WARN, "dnssd.failed", "type=%s port=%u error=\"%s\"",
		        SRV_PUBLISH_TYPE, port, d);
}

/* The port of "ADDR:PORT" / "[ADDR]:PORT"; 0 when unreadable or loopback. */
static uint16_t public_port(const char *bound, bool *loopback)
{
	const char *c = strrchr(bound, ':');
	*loopback = strncmp(bound, "127.", 4) == 0 || strncmp(bound, "[::1]", 5) == 0;
	if (c == NULL)
		return 0;
	char *end = NULL;
	unsigned long p = strtoul(c + 1, &end, 10);
	return end != c + 1 && *end == '\0' && p > 0 && p <= 65535 ? (uint16_t)p : 0;
}

/* One listener's address ("ADDR:PORT" / "[ADDR]:PORT") into a; false when
 * unreadable. */
static bool bound_addr(const char *bound, int *family, struct in6_addr *a6, struct in_addr *a4)
{
	char host[INET6_ADDRSTRLEN];
	const char *c = strrchr(bound, ':');
	const char *h = bound[0] == '[' ? bound + 1 : bound;
	const char *e = bound[0] == '[' ? strchr(bound, ']') : c;
	if (c == NULL || e == NULL || e < h || (size_t)(e - h) >= sizeof(host))
		return false;
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	*family = bound[0] == '[' ? AF_INET6 : AF_INET;
	return inet_pton(*family, host, *family == AF_INET6 ? (void *)a6 : (void *)a4) == 1;
}

/* Does ifa carry this address (loopback: is ifa the loopback interface)? */
static bool carries(const struct ifaddrs *ifa, int family, const struct in6_addr *a6,
                    const struct in_addr *a4, bool loopback)
{
	if (loopback)
		return (ifa->ifa_flags & IFF_LOOPBACK) != 0;
	if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
		return false;
	if (family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)ifa->ifa_addr)->sin6_addr,
		              a6, sizeof(*a6)) == 0;
	return ((const struct sockaddr_in *)(const void *)ifa->ifa_addr)->sin_addr.s_addr ==
	       a4->s_addr;
}

/* Restrict the embedded backend to names[0..n) (all: every interface) and
 * log it; from: the config key that chose them, or NULL (the listeners). */
static void use_interfaces(const char *const *names, size_t n, bool all, const char *from,
                           enum fio_dnssd_backend be)
{
	static const char *const lo[] = {"lo"};
	char list[FIO_DNSSD_IFACES_MAX * (FIO_DNSSD_IFNAME_MAX + 1) + 1] = "";
	size_t used = 0;
	if (!all && n == 0) {
		/* WARNING: no names would mean every interface to dnssd.h. */
		names = lo;
		n = 1;
	}
	for (size_t i = 0; !all && i < n; i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? "," : "",
		                 names[i]);
		if (w > 0 && (size_t)w < sizeof(list) - used)
			used += (size_t)w;
	}
	struct idp_error err = {0};
	char ebuf[FIO_LOG_ESC_MAX];
	if (fio_dnssd_use_interfaces(all ? NULL : names, all ? 0 : n, &err) != IDP_OK) {
		/* Names are checked when read: not expected. Nothing leaves the
		 * host rather than everything everywhere. */
		fio_log(FIO_LOG_WARN, "dnssd.interfaces_refused", "error=%s names=lo",
		        fio_log_err(&err, ebuf));
		if (fio_dnssd_use_interfaces(lo, 1, NULL) != IDP_OK)
			fio_log(FIO_LOG_WARN, "dnssd.interfaces_refused", "names=lo");
		return;
	}
	fio_log(FIO_LOG_INFO, "dnssd.interfaces", "names=%s%s%s%s", all ? "all" : list,
	        from != NULL ? " from=" : "", from != NULL ? from : "",
	        be == FIO_DNSSD_DAEMON ? " note=\"avahi-daemon serves the interfaces of its "
	                                 "own allow-interfaces\""
	                               : "");
}

/* The interfaces the listeners' addresses are on, for the embedded mDNS
 * responder and querier (formats/io/dnssd.h): a server listening on some
 * addresses speaks mDNS only where those are, a loopback one only on the
 * loopback interface (the host). A wildcard listener: every interface.
 * An address on no interface is logged and left out (none left: the
 * loopback interface, so nothing leaves the host). */
static void use_listen_interfaces(const struct srv_httpd *h, enum fio_dnssd_backend be)
{
	char names[FIO_DNSSD_IFACES_MAX][FIO_DNSSD_IFNAME_MAX + 1];
	const char *ptrs[FIO_DNSSD_IFACES_MAX];
	size_t n = 0;
	bool all = false;
	struct ifaddrs *ifs = NULL;
	if (getifaddrs(&ifs) != 0)
		ifs = NULL;
	const char *b;
	for (size_t i = 0; !all && (b = srv_httpd_bound(h, i)) != NULL; i++) {
		int family = AF_INET;
		struct in6_addr a6;
		struct in_addr a4;
		if (!bound_addr(b, &family, &a6, &a4)) {
			fio_log(FIO_LOG_WARN, "dnssd.interface_unknown", "addr=%s reason=unreadable", b);
			continue;
		}
		all = family == AF_INET6 ? IN6_IS_ADDR_UNSPECIFIED(&a6) : a4.s_addr == INADDR_ANY;
		bool loopback = family == AF_INET6 ? IN6_IS_ADDR_LOOPBACK(&a6)
		                                   : (ntohl(a4.s_addr) >> 24) == 127;
		const char *found = NULL;
		for (const struct ifaddrs *ifa = ifs; !all && found == NULL && ifa != NULL;
		     ifa = ifa->ifa_next)
			if (ifa->ifa_name != NULL && carries(ifa, family, &a6, &a4, loopback))
				found = ifa->ifa_name;
		if (!all && found == NULL)
			fio_log(FIO_LOG_WARN, "dnssd.interface_unknown",
			        "addr=%s reason=on-no-interface note=\"no mDNS for it\"", b);
		bool dup = found == NULL;
		for (size_t k = 0; !dup && k < n; k++)
			dup = strcmp(names[k], found) == 0;
		if (!dup && n < FIO_DNSSD_IFACES_MAX &&
		    strnlen(found, FIO_DNSSD_IFNAME_MAX + 1) <= FIO_DNSSD_IFNAME_MAX) {
			memcpy(names[n], found, strlen(found) + 1);
			ptrs[n] = names[n];
			n++;
		}
	}
	for (const struct ifaddrs *ifa = ifs; !all && n == 0 && ifa != NULL; ifa = ifa->ifa_next)
		if (ifa->ifa_name != NULL && (ifa->ifa_flags & IFF_LOOPBACK) != 0 &&
		    strnlen(ifa->ifa_name, FIO_DNSSD_IFNAME_MAX + 1) <= FIO_DNSSD_IFNAME_MAX) {
			memcpy(names[0], ifa->ifa_name, strlen(ifa->ifa_name) + 1);
			ptrs[n++] = names[0];
		}
	if (ifs != NULL)
		freeifaddrs(ifs);
	use_interfaces(ptrs, n, all, NULL, be);
}

struct srv_publish *srv_publish_start(const struct srv_config *cfg, const struct srv_state *state,
                                      const struct srv_httpd *h)
{
	if (!cfg->dnssd) {
		fio_log(FIO_LOG_INFO, "dnssd.off", "note=\"dnssd = off: not published\"");
		return NULL;
	}
	/* The backend of the whole process: the watch (server/site.h),
	 * started next, shares it. */
	fio_dnssd_use(cfg->dnssd_backend);
	bool by_auto = false;
	enum fio_dnssd_backend be = fio_dnssd_backend_current(&by_auto);
	fio_log(FIO_LOG_INFO, "dnssd.backend", "backend=%s chosen=%s", fio_dnssd_backend_name(be),
	        !by_auto                    ? "dnssd-backend"
	        : be == FIO_DNSSD_EMBEDDED ? "auto:no-avahi-daemon"
	                                   : "auto:avahi-daemon");
	if (cfg->dnssd_ifaces_all || cfg->n_dnssd_ifaces > 0) {
		/* dnssd-interfaces given (names checked when read). */
		const char *ptrs[FIO_DNSSD_IFACES_MAX];
		for (size_t i = 0; i < cfg->n_dnssd_ifaces && i < FIO_DNSSD_IFACES_MAX; i++)
			ptrs[i] = cfg->dnssd_ifaces[i];
		use_interfaces(ptrs, cfg->n_dnssd_ifaces, cfg->dnssd_ifaces_all, "dnssd-interfaces",
		               be);
	} else {
		use_listen_interfaces(h, be);
	}
	struct srv_publish *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		fio_log(FIO_LOG_WARN, "dnssd.unavailable", "error=\"out of memory\"");
		return NULL;
	}
	char host[FIO_DNSSD_NAME_MAX + 1] = "";
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	char fp[8 + sizeof(state->ca_fingerprint)];
	(void)snprintf(fp, sizeof(fp), "fp=%s", state->ca_fingerprint);
	const char *const txt[] = {"v=1", "path=/v1", fp};
	const char *b;
	for (size_t i = 0; (b = srv_httpd_bound(h, i)) != NULL; i++) {
		bool loopback = false;
		uint16_t port = public_port(b, &loopback);
		bool dup = false;
		for (size_t k = 0; k < p->n; k++)
			dup = dup || p->port[k] == port;
		if (loopback || port == 0 || dup) {
			if (!dup)
				fio_log(FIO_LOG_INFO, "dnssd.skipped", "addr=%s reason=%s", b,
				        loopback ? "loopback" : "no-port");
			continue;
		}
		/* One instance per port: "idprov on HOST", then "... port N". */
		char name[FIO_DNSSD_NAME_MAX + 1];
		int n = p->n == 0
		                ? snprintf(name, sizeof(name), "idprov on %s", host)
		                : snprintf(name, sizeof(name), "idprov on %s port %u", host, port);
		if (n < 0 || (size_t)n >= sizeof(name))
			name[sizeof(name) - 1] = '\0'; /* a long host name is cut; Avahi renames */
		const struct fio_dnssd_service s = {.type = SRV_PUBLISH_TYPE,
		                                    .name = name,
		                                    .port = port,
		                                    .txt = txt,
		                                    .n_txt = sizeof(txt) / sizeof(txt[0])};
		struct idp_error err = {0};
		char ebuf[FIO_LOG_ESC_MAX];
		struct fio_dnssd_pub *pub = NULL;
		if (fio_dnssd_publish(&s, on_event, (void *)(uintptr_t)port, &pub, &err) !=
		    IDP_OK) {
			fio_log(FIO_LOG_WARN, "dnssd.unavailable",
			        "port=%u error=%s note=\"running without DNS-SD\"", port,
			        fio_log_err(&err, ebuf));
			break; /* Avahi is not there for the next port either */
		}
		fio_log(FIO_LOG_INFO, "dnssd.publishing", "type=%s name=\"%s\" port=%u fp=%s",
		        SRV_PUBLISH_TYPE, name, port, state->ca_fingerprint);
		p->pub[p->n] = pub;
		p->port[p->n++] = port;
	}
	if (p->n == 0) {
		free(p);
		return NULL;
	}
	return p;
}

void srv_publish_stop(struct srv_publish *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		fio_dnssd_unpublish(p->pub[i]);
	fio_log(FIO_LOG_INFO, "dnssd.withdrawn", "instances=%zu", p->n);
	free(p);
}
