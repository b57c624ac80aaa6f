/*
 * publish.c - see publish.h.
 */
#include "server/publish.h"

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
