/*
 * station.c - the station engine: one device session over an fd. Spec:
 * formats/wire.md §6.1; recovery rules in station.h.
 */
#include "enroll/station.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "formats/io/log.h"

#define READ_CHUNK 512u

/* One session's state. */
struct sess {
	int fd;
	struct fmt_wire_decoder *dec;
	const struct enr_station_cfg *cfg;
	struct enr_result *res;
	uint16_t seq;
	uint8_t line[FMT_WIRE_LINE_MAX];
	size_t line_len;
	uint8_t pending[READ_CHUNK]; /* read but not yet fed */
	size_t pend_off, pend_len;
	struct fmt_wire_frame frame;
};

static void fail(struct sess *s, enum enr_stage stage, const char *fmt, ...) IDP_PRINTF(3, 4);
static void fail(struct sess *s, enum enr_stage stage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	/* (clang-analyzer 14 misreads a va_list, as in formats/error.c.) */
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	(void)vsnprintf(s->res->reason, sizeof(s->res->reason), fmt, ap);
	va_end(ap);
	s->res->pass = false;
	s->res->stage = stage;
}

static uint64_t damaged(const struct fmt_wire_decoder *dec)
{
	struct fmt_wire_stats st;
	fmt_wire_decoder_stats(dec, &st);
	return st.bad_overlong + st.bad_cut + st.bad_base64 + st.bad_length + st.bad_crc;
}

/* Write the outstanding request line; false when the port failed. */
static bool send_line(struct sess *s)
{
	size_t off = 0;
	while (off < s->line_len) {
		ssize_t w = write(s->fd, s->line + off, s->line_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = s->fd, .events = POLLOUT};
			if (poll(&p, 1, 1000) <= 0)
				return false;
			continue;
		}
		if (w <= 0)
			return false;
		off += (size_t)w;
	}
	return true;
}

/* Encode m under a new seq into s->line and send it. */
static bool send_msg(struct sess *s, struct fmt_wire_msg *m, bool new_seq)
{
	if (new_seq)
		s->seq++;
	m->seq = s->seq;
	struct idp_error e;
	if (fmt_wire_msg_encode(m, s->line, sizeof(s->line), &s->line_len, &e) != IDP_OK) {
		fail(s, s->res->stage, "station: cannot encode a request: %s", e.msg);
		return false;
	}
	if (!send_line(s)) {
		s->res->gone = true;
		fail(s, s->res->stage, "port: write failed (%s): device gone?", strerror(errno));
		return false;
	}
	return true;
}

enum wait_rc {
	W_GOT,     /* *m holds the awaited answer (or an ERROR for our seq) */
	W_TIMEOUT, /* deadline passed */
	W_DAMAGED, /* a damaged marker line arrived: resend now */
	W_FAIL,    /* res->reason says why (port gone, stopped, bad answer) */
};

/* Wait until deadline for a response of type want (or ERROR) under s->seq. */
static enum wait_rc await(struct sess *s, uint8_t want, int64_t deadline, bool allow_early,
                          struct fmt_wire_msg *m)
{
	uint64_t bad0 = damaged(s->dec);
	for (;;) {
		while (s->pend_off < s->pend_len) {
			size_t used = 0;
			bool got = false;
			struct idp_error e;
			if (fmt_wire_feed(s->dec, s->pending + s->pend_off,
			                  s->pend_len - s->pend_off, &used, &s->frame, &got,
			                  &e) != IDP_OK) {
				fail(s, s->res->stage, "station: decoder: %s", e.msg);
				return W_FAIL;
			}
			s->pend_off += used;
			if (!got || (s->frame.type & 0x80u) == 0 || s->frame.seq != s->seq)
				continue; /* echo, or a late answer to an earlier attempt */
			if (s->frame.type != want && s->frame.type != FMT_WIRE_ERROR)
				continue;
			if (fmt_wire_msg_parse(&s->frame, m, &e) != IDP_OK) {
				fail(s, s->res->stage, "device: bad answer: %s", e.msg);
				return W_FAIL;
			}
			m->seq = s->frame.seq;
			return W_GOT;
		}
		if (allow_early && damaged(s->dec) != bad0)
			return W_DAMAGED;
		if (s->cfg->stop != NULL && *s->cfg->stop) {
			s->res->stopped = true;
			fail(s, s->res->stage, "station: stopped");
			return W_FAIL;
		}
		int64_t now = fio_mono_ms();
		if (now >= deadline)
			return W_TIMEOUT;
		int64_t left = deadline - now;
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		int pr = poll(&p, 1, left > 200 ? 200 : (int)left); /* 200: notice stop */
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			fail(s, s->res->stage, "port: poll: %s", strerror(errno));
			return W_FAIL;
		}
		if (pr == 0)
			continue;
		ssize_t r = read(s->fd, s->pending, sizeof(s->pending));
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r <= 0) {
			s->res->gone = true;
			fail(s, s->res->stage, "port: %s: device gone",
			     r == 0 ? "end of input" : strerror(errno));
			return W_FAIL;
		}
		s->pend_off = 0;
		s->pend_len = (size_t)r;
	}
}

static const char *err_name(uint16_t code)
{
	switch (code) {
	case FMT_WIRE_ERR_VERSION:
		return "VERSION";
	case FMT_WIRE_ERR_TYPE:
		return "TYPE";
	case FMT_WIRE_ERR_PAYLOAD:
		return "PAYLOAD";
	case FMT_WIRE_ERR_SEQ_REUSED:
		return "SEQ_REUSED";
	case FMT_WIRE_ERR_NO_KEY:
		return "NO_KEY";
	case FMT_WIRE_ERR_BUSY:
		return "BUSY";
	default:
		return "INTERNAL";
	}
}

/* HELLO until a HELLO_ACK or the window ends. The same line (same seq) is
 * resent, so a slow device's answer to any attempt counts. */
static bool hello(struct sess *s)
{
	const struct enr_station_cfg *c = s->cfg;
	unsigned interval = c->hello_interval_ms ? c->hello_interval_ms : FMT_WIRE_HELLO_TIMEOUT_MS;
	unsigned window = c->hello_window_ms ? c->hello_window_ms : FMT_WIRE_HELLO_WINDOW_MS;
	int64_t end = fio_mono_ms() + window;
	struct fmt_wire_msg m = {.type = FMT_WIRE_HELLO};
	m.u.hello.role = FMT_WIRE_ROLE_STATION;
	m.u.hello.versions = 1u << FMT_WIRE_VERSION;
	s->res->stage = ENR_STAGE_HELLO;
	if (!send_msg(s, &m, true))
		return false;
	for (;;) {
		int64_t now = fio_mono_ms();
		int64_t dl = now + interval < end ? now + interval : end;
		struct fmt_wire_msg a;
		enum wait_rc w = await(s, FMT_WIRE_HELLO_ACK, dl, !c->no_early_resend, &a);
		if (w == W_FAIL)
			return false;
		if (w == W_GOT && a.type == FMT_WIRE_ERROR) {
			fail(s, ENR_STAGE_HELLO, "device: ERROR %s to HELLO: %.*s",
			     err_name(a.u.error.code), (int)a.u.error.text_len, a.u.error.text);
			return false;
		}
		if (w == W_GOT) {
			if (a.u.hello.role != FMT_WIRE_ROLE_DEVICE ||
			    fmt_wire_version_pick(a.u.hello.versions, m.u.hello.versions) == 0) {
				fail(s, ENR_STAGE_HELLO, "device: no common protocol version");
				return false;
			}
			return true;
		}
		if (fio_mono_ms() >= end) {
			fail(s, ENR_STAGE_HELLO, "device: no answer to HELLO within %u ms", window);
			return false;
		}
		if (!send_line(s)) {
			s->res->gone = true;
			fail(s, ENR_STAGE_HELLO, "port: write failed: device gone?");
			return false;
		}
	}
}

/* One request with timeouts, early resends and ERROR retries (wire.md
 * §6.1); all share one budget of 1 + retries attempts. */
static bool exchange(struct sess *s, struct fmt_wire_msg *req, uint8_t want, unsigned timeout,
                     const char *what, struct fmt_wire_msg *ans)
{
	unsigned budget = 1u + (s->cfg->retries ? s->cfg->retries : FMT_WIRE_RETRIES);
	unsigned payload_errors = 0;
	if (!send_msg(s, req, true))
		return false;
	int64_t dl = fio_mono_ms() + timeout;
	for (unsigned attempt = 1;;) {
		enum wait_rc w = await(s, want, dl, !s->cfg->no_early_resend, ans);
		if (w == W_FAIL)
			return false;
		if (w == W_GOT && ans->type == want)
			return true;
		if (attempt >= budget) {
			if (w == W_GOT)
				fail(s, s->res->stage, "device: ERROR %s to %s: %.*s",
				     err_name(ans->u.error.code), what, (int)ans->u.error.text_len,
				     ans->u.error.text);
			else
				fail(s, s->res->stage,
				     "device: no %s answer after %u attempts of %u ms", what,
				     budget, timeout);
			return false;
		}
		attempt++;
		if (w == W_TIMEOUT || w == W_DAMAGED) {
			if (w == W_DAMAGED)
				s->res->early_resends++;
			else
				s->res->resends++;
			if (!send_line(s)) {
				s->res->gone = true;
				fail(s, s->res->stage, "port: write failed: device gone?");
				return false;
			}
			dl = fio_mono_ms() + timeout;
			continue;
		}
		/* An ERROR for our seq. */
		uint16_t code = ans->u.error.code;
		if (code == FMT_WIRE_ERR_PAYLOAD && payload_errors++ == 0) {
			/* retry once under a new seq */
		} else if (code == FMT_WIRE_ERR_NO_KEY || code == FMT_WIRE_ERR_BUSY) {
			/* retry under a new seq once the request's timeout has passed */
			struct fmt_wire_msg ignore;
			if (await(s, 0, dl, false, &ignore) == W_FAIL)
				return false;
		} else {
			fail(s, s->res->stage, "device: ERROR %s to %s: %.*s", err_name(code), what,
			     (int)ans->u.error.text_len, ans->u.error.text);
			return false;
		}
		if (req->type == FMT_WIRE_CHALLENGE &&
		    RAND_bytes(req->u.challenge.nonce, FMT_WIRE_NONCE_LEN) != 1) {
			fail(s, s->res->stage, "station: no random bytes for a nonce");
			return false;
		}
		if (!send_msg(s, req, true))
			return false;
		dl = fio_mono_ms() + timeout;
	}
}

enum idp_err enr_station_read(int fd, struct fmt_wire_decoder *dec,
                              const struct enr_station_cfg *cfg, struct enr_result *res,
                              struct idp_error *err)
{
	if (fd < 0 || dec == NULL || cfg == NULL || res == NULL || cfg->station_id == NULL)
		return idp_error_set(err, IDP_E_ARG, "station: bad arguments");
	memset(res, 0, sizeof(*res));
	static struct sess s; /* 6 KiB of buffers; one engine per process */
	memset(&s, 0, sizeof(s));
	s.fd = fd;
	s.dec = dec;
	s.cfg = cfg;
	s.res = res;
	if (RAND_bytes((uint8_t *)&s.seq, sizeof(s.seq)) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "station: random seq");
	int64_t t0 = fio_mono_ms();
	struct fmt_wire_msg req, ans;
	if (!hello(&s))
		goto out;
	res->stage = ENR_STAGE_INFO;
	memset(&req, 0, sizeof(req));
	req.type = FMT_WIRE_INFO_REQ;
	unsigned info_ms = cfg->info_timeout_ms ? cfg->info_timeout_ms : FMT_WIRE_INFO_TIMEOUT_MS;
	if (!exchange(&s, &req, FMT_WIRE_INFO, info_ms, "INFO_REQ", &ans))
		goto out;
	res->info = ans.u.info;
	res->identified = true;
	res->stage = ENR_STAGE_CHALLENGE;
	if (cfg->info_only)
		goto out;
	memset(&req, 0, sizeof(req));
	req.type = FMT_WIRE_CHALLENGE;
	size_t sl = strnlen(cfg->station_id, FMT_WIRE_ID_MAX + 1);
	if (sl == 0 || sl > FMT_WIRE_ID_MAX) {
		res->stage = ENR_STAGE_HELLO;
		return idp_error_set(err, IDP_E_ARG, "station: station ID must be 1..%u bytes",
		                     FMT_WIRE_ID_MAX);
	}
	memcpy(req.u.challenge.station_id, cfg->station_id, sl);
	req.u.challenge.station_id_len = sl;
	if (RAND_bytes(req.u.challenge.nonce, FMT_WIRE_NONCE_LEN) != 1)
		return idp_error_ssl(err, IDP_E_CRYPTO, "station: random nonce");
	unsigned ch_ms = cfg->challenge_timeout_ms ? cfg->challenge_timeout_ms
	                                           : FMT_WIRE_CHALLENGE_TIMEOUT_MS;
	if (!exchange(&s, &req, FMT_WIRE_PROOF, ch_ms, "CHALLENGE", &ans))
		goto out;
	/* Verify against the challenge as last sent (a retry after an ERROR
	 * carries a fresh nonce), never against anything the device echoes. */
	memcpy(res->nonce, req.u.challenge.nonce, FMT_WIRE_NONCE_LEN);
	res->proof = ans.u.proof;
	res->stage = ENR_STAGE_VERIFY;
	struct idp_error e;
	if (fmt_wire_proof_verify(&req.u.challenge, &res->info, &res->proof, &e) != IDP_OK) {
		fail(&s, ENR_STAGE_VERIFY, "%s", e.msg); /* "proof: ..." */
		goto out;
	}
	res->stage = ENR_STAGE_RULES;
	const struct fmt_wire_info *in = &res->info;
	if (in->serial_len == 0) {
		fail(&s, ENR_STAGE_RULES, "serial: the device reports none (a manifest needs one)");
		goto out;
	}
	if ((cfg->id_rule != NULL && fmt_idrule_check(cfg->id_rule, in->device_id,
	                                              in->device_id_len, "id", &e) != IDP_OK) ||
	    (cfg->serial_rule != NULL &&
	     fmt_idrule_check(cfg->serial_rule, in->serial, in->serial_len, "serial", &e) !=
	             IDP_OK)) {
		fail(&s, ENR_STAGE_RULES, "%s", e.msg);
		goto out;
	}
	res->stage = ENR_STAGE_DONE;
	res->pass = true;
out:
	res->elapsed_ms = (uint64_t)(fio_mono_ms() - t0);
	return IDP_OK;
}

enum idp_err enr_station_identify(int fd, struct fmt_wire_decoder *dec,
                                  const struct enr_station_cfg *cfg, struct enr_result *res,
                                  struct idp_error *err)
{
	if (cfg == NULL)
		return idp_error_set(err, IDP_E_ARG, "station: bad arguments");
	struct enr_station_cfg c = *cfg;
	c.info_only = true;
	return enr_station_read(fd, dec, &c, res, err);
}
