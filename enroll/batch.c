/*
 * batch.c - the station's batches on disk; see batch.h and
 * formats/journal.md.
 */
#include "enroll/batch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/manifest_dedup.h"

#define JOURNAL_SUFFIX ".journal"

struct enr_batch {
	char dir[ENR_PATH_MAX + 1];
	char path[ENR_PATH_MAX + 1];
	int fd;
	struct fmt_journal_entry open;
	uint64_t count, history;
	struct fmt_manifest_record *recs; /* this batch's devices, for messages and manifests */
	size_t cap;
	struct fmt_manifest_dedup *seen; /* this batch and the earlier ones */
};

enum idp_err enr_batch_path(const char *dir, const char *batch, const char *suffix,
                            char out[static ENR_PATH_MAX + 1], struct idp_error *err)
{
	int n = snprintf(out, ENR_PATH_MAX + 1, "%s/batches/%s%s", dir, batch, suffix);
	if (n < 0 || (size_t)n > ENR_PATH_MAX)
		return idp_error_set(err, IDP_E_ARG, "%s: state path too long", dir);
	return IDP_OK;
}

static void to_record(const struct fmt_journal_entry *e, struct fmt_manifest_record *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->id, e->id, sizeof(r->id));
	memcpy(r->mac, e->mac, sizeof(r->mac));
	memcpy(r->serial, e->serial, sizeof(r->serial));
	r->pub_len = e->spki_len;
	memcpy(r->pub, e->spki, e->spki_len);
	/* The capture proof travels with the device (manifest.md 2.4). */
	r->has_capture = true;
	memcpy(r->capture_nonce, e->nonce, sizeof(r->capture_nonce));
	memcpy(r->capture_sig, e->sig, sizeof(r->capture_sig));
}

/* Walk the journal at path: fn(arg, entry) for each good entry. *good gets
 * the length of the good prefix, *size the file's, so that the caller can
 * cut a torn tail. IDP_E_NOTFOUND when there is no journal. */
#define WALK_READ (64u * 1024u) /* bytes read at a time: a walk's memory, whatever the size */

/* Read into win[*wlen..cap) until it is full or the file ends (*eof). */
static enum idp_err walk_fill(int fd, const char *path, uint8_t *win, size_t cap, size_t *wlen,
                              uint64_t *total, bool *eof, struct idp_error *err)
{
	while (!*eof && *wlen < cap) {
		ssize_t r = read(fd, win + *wlen, cap - *wlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return idp_error_set(err, IDP_E_IO, "%s: read: %s", path, strerror(errno));
		*eof = r == 0;
		*wlen += (size_t)r;
		*total += (uint64_t)r;
		if (*total > ENR_JOURNAL_FILE_MAX)
			return idp_error_set(err, IDP_E_LIMIT, "%s: more than %zu bytes", path,
			                     ENR_JOURNAL_FILE_MAX);
	}
	return IDP_OK;
}

/* Whether the rest of the file from its current offset is zeros. */
static enum idp_err walk_rest_zero(int fd, const char *path, uint8_t *win, size_t cap,
                                   uint64_t *total, bool *zero, struct idp_error *err)
{
	bool eof = false;
	*zero = true;
	while (!eof && *zero) {
		size_t n = 0;
		enum idp_err rc = walk_fill(fd, path, win, cap, &n, total, &eof, err);
		if (rc != IDP_OK)
			return rc;
		for (size_t i = 0; i < n && *zero; i++)
			*zero = win[i] == 0;
	}
	return IDP_OK;
}

/* Walk the journal at path: fn(arg, entry) for each good entry. *good gets
 * the length of the good prefix, *size the file's, so that the caller can
 * cut a torn tail. IDP_E_NOTFOUND when there is no journal. The file is
 * read in pieces (WALK_READ): memory does not grow with the batch. */
static enum idp_err walk(const char *path,
                         enum idp_err (*fn)(void *, const struct fmt_journal_entry *,
                                            struct idp_error *),
                         void *arg, size_t *good, size_t *size, struct idp_error *err)
{
	*good = 0;
	*size = 0;
	int fd = -1;
	enum idp_err rc = fmt_file_open_read(path, ENR_JOURNAL_FILE_MAX, &fd, err);
	if (rc != IDP_OK)
		return rc;
	const size_t cap = WALK_READ + FMT_JOURNAL_ENTRY_MAX;
	uint8_t *win = malloc(cap);
	if (win == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "%s: out of memory", path);
		goto out;
	}
	static struct fmt_journal_entry e;
	uint64_t base = 0, total = 0; /* file offset of win[0]; bytes read */
	size_t wlen = 0, wpos = 0;
	bool eof = false, first = true, closed = false, journal = false;
	for (;;) {
		/* A whole entry (at most FMT_JOURNAL_ENTRY_MAX) in the window,
		 * unless the file ends first. */
		if (!eof && wlen - wpos < FMT_JOURNAL_ENTRY_MAX) {
			memmove(win, win + wpos, wlen - wpos);
			base += wpos;
			wlen -= wpos;
			wpos = 0;
			if ((rc = walk_fill(fd, path, win, cap, &wlen, &total, &eof, err))) {
				journal = false; /* the message names path already */
				break;
			}
		}
		journal = true;
		enum fmt_journal_item item;
		if ((rc = fmt_journal_next_at(win, wlen, &wpos, base, &e, &item, err)) != IDP_OK)
			break;
		if (item == FMT_JOURNAL_ITEM_TORN && !eof) {
			/* Zeros to the window's end: a torn tail only if the rest
			 * of the file is zeros too (journal.md 4). */
			bool zero = false;
			if ((rc = walk_rest_zero(fd, path, win, cap, &total, &zero, err))) {
				journal = false;
				break;
			}
			if (!zero) {
				rc = idp_error_set(err, IDP_E_FORMAT,
				                   "journal: offset %" PRIu64
				                   ": damaged entry before further data (damaged journal)",
				                   base + wpos);
				break;
			}
		}
		if (item != FMT_JOURNAL_ITEM_ENTRY)
			break;
		if (first != (e.type == FMT_JOURNAL_OPEN) || closed) {
			rc = idp_error_set(
			        err, IDP_E_FORMAT,
			        "journal: entry of type %d out of order before offset %" PRIu64,
			        (int)e.type, base + wpos);
			break;
		}
		first = false;
		closed = e.type == FMT_JOURNAL_CLOSE;
		if (fn != NULL && (rc = fn(arg, &e, err)) != IDP_OK)
			break;
	}
	if (rc == IDP_OK && first)
		rc = idp_error_set(err, IDP_E_FORMAT, "journal: no OPEN entry");
	if (rc != IDP_OK && journal)
		idp_error_prefix(err, "%s", path);
	*good = (size_t)(base + wpos);
	*size = (size_t)total;
out:
	free(win);
	(void)close(fd);
	return rc;
}

struct summary {
	struct fmt_journal_entry open;
	uint64_t count;
	bool closed;
};

static enum idp_err on_summary(void *arg, const struct fmt_journal_entry *e, struct idp_error *err)
{
	(void)err;
	struct summary *s = arg;
	if (e->type == FMT_JOURNAL_OPEN)
		s->open = *e;
	else if (e->type == FMT_JOURNAL_DEVICE)
		s->count++;
	else
		s->closed = true;
	return IDP_OK;
}

enum idp_err enr_batch_summary(const char *dir, const char *batch, struct fmt_journal_entry *open,
                               uint64_t *count, bool *closed, struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	enum idp_err rc = enr_batch_path(dir, batch, JOURNAL_SUFFIX, path, err);
	static struct summary s;
	memset(&s, 0, sizeof(s));
	size_t good = 0, size = 0;
	if (rc == IDP_OK)
		rc = walk(path, on_summary, &s, &good, &size, err);
	if (open != NULL)
		*open = s.open;
	*count = s.count;
	*closed = s.closed;
	return rc;
}

struct devices_ctx {
	void (*fn)(void *arg, const struct fmt_journal_entry *e);
	void *arg;
};

static enum idp_err on_device(void *arg, const struct fmt_journal_entry *e, struct idp_error *err)
{
	(void)err;
	const struct devices_ctx *d = arg;
	if (e->type == FMT_JOURNAL_DEVICE)
		d->fn(d->arg, e);
	return IDP_OK;
}

enum idp_err enr_batch_devices(const char *dir, const char *batch,
                               void (*fn)(void *arg, const struct fmt_journal_entry *e), void *arg,
                               struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	struct devices_ctx d = {fn, arg};
	size_t good = 0, size = 0;
	enum idp_err rc = enr_batch_path(dir, batch, JOURNAL_SUFFIX, path, err);
	return rc != IDP_OK ? rc : walk(path, on_device, &d, &good, &size, err);
}

/* Is name "X.journal" with X an ID? Then copy X. */
static bool journal_name(const char *name, char batch[static FMT_ID_MAX + 1])
{
	size_t n = strnlen(name, 256), sl = sizeof(JOURNAL_SUFFIX) - 1;
	if (n <= sl || strcmp(name + n - sl, JOURNAL_SUFFIX) != 0 || n - sl > FMT_ID_MAX ||
	    !fmt_id_valid(name, n - sl))
		return false;
	memcpy(batch, name, n - sl);
	batch[n - sl] = '\0';
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum idp_err enr_batch_each(const char *dir, void (*fn)(void *arg, const char *batch), void *arg,
                            struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	int n = snprintf(path, sizeof(path), "%s/batches", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return idp_error_set(err, IDP_E_ARG, "%s: state path too long", dir);
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT
		               ? IDP_OK
		               : idp_error_set(err, IDP_E_IO, "%s: %s", path, strerror(errno));
	char **names = NULL;
	size_t count = 0, cap = 0;
	enum idp_err rc = IDP_OK;
	struct dirent *de;
	char b[FMT_ID_MAX + 1];
	while ((de = readdir(d)) != NULL) {
		if (!journal_name(de->d_name, b))
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			char **p = realloc(names, cap * sizeof(*names));
			if (p == NULL) {
				rc = idp_error_set(err, IDP_E_NOMEM, "out of memory");
				break;
			}
			names = p;
		}
		names[count] = strdup(b);
		if (names[count] == NULL) {
			rc = idp_error_set(err, IDP_E_NOMEM, "out of memory");
			break;
		}
		count++;
	}
	(void)closedir(d);
	if (rc == IDP_OK && count > 0) {
		qsort(names, count, sizeof(*names), cmp_str);
		for (size_t i = 0; i < count; i++)
			fn(arg, names[i]);
	}
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return rc;
}

struct find_ctx {
	const char *dir;
	char *batch;
	unsigned open;
	enum idp_err rc;
	struct idp_error *err;
};

static void on_find(void *arg, const char *batch)
{
	struct find_ctx *f = arg;
	uint64_t count = 0;
	bool closed = false;
	if (f->rc != IDP_OK)
		return;
	f->rc = enr_batch_summary(f->dir, batch, NULL, &count, &closed, f->err);
	if (f->rc == IDP_OK && !closed) {
		if (f->open++ > 0) {
			f->rc = idp_error_set(f->err, IDP_E_CONFLICT,
			                      "%s: batches %s and %s are both open", f->dir,
			                      f->batch, batch);
			return;
		}
		(void)snprintf(f->batch, FMT_ID_MAX + 1, "%s", batch);
	}
}

enum idp_err enr_batch_find_open(const char *dir, char batch[static FMT_ID_MAX + 1], bool *found,
                                 struct idp_error *err)
{
	struct find_ctx f = {dir, batch, 0, IDP_OK, err};
	batch[0] = '\0';
	enum idp_err rc = enr_batch_each(dir, on_find, &f, err);
	*found = f.open == 1;
	return rc != IDP_OK ? rc : f.rc;
}

static enum idp_err write_all(int fd, const uint8_t *p, size_t n, const char *path,
                              struct idp_error *err)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return idp_error_set(err, IDP_E_IO, "%s: write: %s", path,
			                     w < 0 ? strerror(errno) : "nothing written");
		p += w;
		n -= (size_t)w;
	}
	return IDP_OK;
}

/* Append one entry and make it durable. */
static enum idp_err append(struct enr_batch *b, const struct fmt_journal_entry *e,
                           struct idp_error *err)
{
	uint8_t buf[FMT_JOURNAL_ENTRY_MAX];
	size_t n = 0;
	enum idp_err rc = fmt_journal_encode(e, buf, &n, err);
	if (rc == IDP_OK)
		rc = write_all(b->fd, buf, n, b->path, err);
	if (rc == IDP_OK && fdatasync(b->fd) != 0)
		rc = idp_error_set(err, IDP_E_IO, "%s: fsync: %s", b->path, strerror(errno));
	return rc;
}

static enum idp_err remember(struct enr_batch *b, const struct fmt_manifest_record *r,
                             struct idp_error *err)
{
	if (b->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct fmt_manifest_record *p = realloc(b->recs, cap * sizeof(*p));
		if (p == NULL)
			return idp_error_set(err, IDP_E_NOMEM, "batch: out of memory");
		b->recs = p;
		b->cap = cap;
	}
	b->recs[b->count++] = *r;
	return IDP_OK;
}

static enum idp_err on_own(void *arg, const struct fmt_journal_entry *e, struct idp_error *err)
{
	struct enr_batch *b = arg;
	if (e->type == FMT_JOURNAL_OPEN) {
		b->open = *e;
		return IDP_OK;
	}
	if (e->type == FMT_JOURNAL_CLOSE)
		return IDP_OK;
	static struct fmt_manifest_record r;
	to_record(e, &r);
	enum idp_err rc = fmt_manifest_dedup_add(b->seen, &r, err);
	return rc != IDP_OK ? rc : remember(b, &r, err);
}

static enum idp_err on_history(void *arg, const struct fmt_journal_entry *e, struct idp_error *err)
{
	struct enr_batch *b = arg;
	if (e->type != FMT_JOURNAL_DEVICE)
		return IDP_OK;
	static struct fmt_manifest_record r;
	to_record(e, &r);
	struct idp_error ignore;
	enum idp_err rc = fmt_manifest_dedup_add(b->seen, &r, &ignore);
	if (rc == IDP_E_NOMEM)
		return idp_error_set(err, rc, "batch: out of memory");
	b->history++;
	return IDP_OK;
}

struct hist_ctx {
	struct enr_batch *b;
	enum idp_err rc;
	struct idp_error *err;
};

static void on_history_batch(void *arg, const char *batch)
{
	struct hist_ctx *h = arg;
	char path[ENR_PATH_MAX + 1];
	size_t good = 0, size = 0;
	if (h->rc != IDP_OK || strcmp(batch, h->b->open.batch) == 0)
		return;
	h->rc = enr_batch_path(h->b->dir, batch, JOURNAL_SUFFIX, path, h->err);
	if (h->rc == IDP_OK)
		h->rc = walk(path, on_history, h->b, &good, &size, h->err);
}

static enum idp_err make_dirs(const char *dir, struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	int n = snprintf(path, sizeof(path), "%s/batches", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return idp_error_set(err, IDP_E_ARG, "%s: state path too long", dir);
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) != 0 && errno != EEXIST))
		return idp_error_set(err, IDP_E_IO, "%s: %s", path, strerror(errno));
	return IDP_OK;
}

enum idp_err enr_batch_open(const char *dir, const char *batch, const char *station,
                            const char *product, uint64_t target, struct enr_batch **out,
                            bool *resumed, struct idp_error *err)
{
	*out = NULL;
	*resumed = false;
	if (fmt_id_check(batch, strnlen(batch, FMT_ID_MAX + 1), "batch", err) != IDP_OK)
		return IDP_E_ARG;
	struct enr_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return idp_error_set(err, IDP_E_NOMEM, "out of memory");
	b->fd = -1;
	enum idp_err rc;
	if (strnlen(dir, ENR_PATH_MAX + 1) > ENR_PATH_MAX) {
		rc = idp_error_set(err, IDP_E_ARG, "state directory: path too long");
		goto fail;
	}
	(void)snprintf(b->dir, sizeof(b->dir), "%s", dir);
	b->seen = fmt_manifest_dedup_new();
	if (b->seen == NULL) {
		rc = idp_error_set(err, IDP_E_NOMEM, "out of memory");
		goto fail;
	}
	if ((rc = make_dirs(dir, err)) ||
	    (rc = enr_batch_path(dir, batch, JOURNAL_SUFFIX, b->path, err)))
		goto fail;
	size_t good = 0, size = 0;
	rc = walk(b->path, on_own, b, &good, &size, err);
	if (rc == IDP_OK) {
		bool closed = false;
		uint64_t n = 0;
		if ((rc = enr_batch_summary(dir, batch, NULL, &n, &closed, err)))
			goto fail;
		if (closed) {
			rc = idp_error_set(err, IDP_E_CONFLICT, "batch %s is closed", batch);
			goto fail;
		}
		if (strcmp(b->open.station, station) != 0) {
			rc = idp_error_set(err, IDP_E_CONFLICT, "batch %s belongs to station %s",
			                   batch, b->open.station);
			goto fail;
		}
		b->fd = open(b->path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (b->fd < 0) {
			rc = idp_error_set(err, IDP_E_IO, "%s: %s", b->path, strerror(errno));
			goto fail;
		}
		/* A crash during the last append left a torn tail: cut it off
		 * before appending, or the next entry would sit behind it. */
		if (good != size && (ftruncate(b->fd, (off_t)good) != 0 || fsync(b->fd) != 0)) {
			rc = idp_error_set(err, IDP_E_IO, "%s: cutting a torn tail: %s", b->path,
			                   strerror(errno));
			goto fail;
		}
		*resumed = true;
	} else if (rc == IDP_E_NOTFOUND) {
		memset(&b->open, 0, sizeof(b->open));
		b->open.type = FMT_JOURNAL_OPEN;
		b->open.time = (int64_t)time(NULL);
		b->open.target = target;
		if (snprintf(b->open.batch, sizeof(b->open.batch), "%s", batch) < 0 ||
		    snprintf(b->open.station, sizeof(b->open.station), "%s", station) < 0 ||
		    snprintf(b->open.product, sizeof(b->open.product), "%s", product) < 0) {
			rc = idp_error_set(err, IDP_E_ARG, "batch: bad argument");
			goto fail;
		}
		uint8_t buf[FMT_JOURNAL_ENTRY_MAX];
		size_t n = 0;
		if ((rc = fmt_journal_encode(&b->open, buf, &n, err)))
			goto fail;
		b->fd = open(b->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (b->fd < 0) {
			rc = idp_error_set(err, IDP_E_IO, "%s: %s", b->path, strerror(errno));
			goto fail;
		}
		if ((rc = write_all(b->fd, buf, n, b->path, err)))
			goto fail;
		if (fsync(b->fd) != 0) {
			rc = idp_error_set(err, IDP_E_IO, "%s: fsync: %s", b->path,
			                   strerror(errno));
			goto fail;
		}
		if ((rc = fmt_file_sync_dir(b->path, err)))
			goto fail;
	} else {
		goto fail;
	}
	struct hist_ctx h = {b, IDP_OK, err};
	if ((rc = enr_batch_each(dir, on_history_batch, &h, err)) || (rc = h.rc))
		goto fail;
	*out = b;
	return IDP_OK;
fail:
	enr_batch_free(b);
	return rc;
}

uint64_t enr_batch_count(const struct enr_batch *b)
{
	return b->count;
}

uint64_t enr_batch_target(const struct enr_batch *b)
{
	return b->open.target;
}

uint64_t enr_batch_history(const struct enr_batch *b)
{
	return b->history;
}

const struct fmt_journal_entry *enr_batch_opened(const struct enr_batch *b)
{
	return &b->open;
}

/* Which device of this batch shares a value with r, or SIZE_MAX. */
static size_t find_in_batch(const struct enr_batch *b, const struct fmt_manifest_record *r)
{
	for (size_t i = 0; i < b->count; i++) {
		const struct fmt_manifest_record *x = &b->recs[i];
		if (strcmp(x->id, r->id) == 0 || memcmp(x->mac, r->mac, sizeof(r->mac)) == 0 ||
		    strcmp(x->serial, r->serial) == 0 ||
		    (x->pub_len == r->pub_len && memcmp(x->pub, r->pub, r->pub_len) == 0))
			return i;
	}
	return SIZE_MAX;
}

enum idp_err enr_batch_add(struct enr_batch *b, const struct fmt_wire_info *info,
                           const uint8_t nonce[static FMT_WIRE_NONCE_LEN],
                           const struct fmt_wire_proof *proof, int64_t now, struct idp_error *err)
{
	static struct fmt_journal_entry e;
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_DEVICE;
	e.time = now;
	memcpy(e.id, info->device_id, info->device_id_len);
	memcpy(e.mac, info->mac, sizeof(e.mac));
	memcpy(e.serial, info->serial, info->serial_len);
	e.key_type = info->key_type;
	e.spki_len = info->spki_len;
	memcpy(e.spki, info->spki, info->spki_len);
	memcpy(e.nonce, nonce, FMT_JOURNAL_NONCE_LEN);
	memcpy(e.sig, proof->sig, FMT_JOURNAL_SIG_LEN);
	static struct fmt_manifest_record r;
	to_record(&e, &r);
	struct idp_error dup;
	enum idp_err rc = fmt_manifest_dedup_add(b->seen, &r, &dup);
	if (rc == IDP_E_DUPLICATE) {
		size_t i = find_in_batch(b, &r);
		if (i != SIZE_MAX)
			return idp_error_set(err, rc, "already in this batch as device %zu (%s)",
			                     i + 1, b->recs[i].id);
		return idp_error_set(err, rc, "already in an earlier batch of this station");
	}
	if (rc != IDP_OK) {
		if (err != NULL)
			*err = dup;
		return rc;
	}
	if ((rc = append(b, &e, err)) != IDP_OK)
		return rc;
	return remember(b, &r, err);
}

enum idp_err enr_batch_close(struct enr_batch *b, int64_t now, struct idp_error *err)
{
	if (b->count == 0)
		return idp_error_set(err, IDP_E_FORMAT, "batch %s: no devices, nothing to close",
		                     b->open.batch);
	struct fmt_journal_entry e;
	memset(&e, 0, sizeof(e));
	e.type = FMT_JOURNAL_CLOSE;
	e.count = b->count;
	e.time = now;
	return append(b, &e, err);
}

void enr_batch_free(struct enr_batch *b)
{
	if (b == NULL)
		return;
	if (b->fd >= 0)
		(void)close(b->fd);
	fmt_manifest_dedup_free(b->seen);
	free(b->recs);
	free(b);
}

/* ---- station state and manifests ---- */

struct state {
	uint64_t seq;
	uint8_t prev[FMT_MANIFEST_HASH_LEN];
	char last[FMT_ID_MAX + 1];
};

static enum idp_err hex_decode(const char *s, size_t n, uint8_t *out, size_t out_len)
{
	if (n != 2 * out_len)
		return IDP_E_FORMAT;
	for (size_t i = 0; i < out_len; i++) {
		unsigned v = 0;
		for (size_t k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			                                    : 16u;
			if (d > 15)
				return IDP_E_FORMAT;
			v = v * 16 + d;
		}
		out[i] = (uint8_t)v;
	}
	return IDP_OK;
}

static enum idp_err state_load(const char *dir, struct state *st, struct idp_error *err)
{
	memset(st, 0, sizeof(*st));
	char path[ENR_PATH_MAX + 1];
	int pn = snprintf(path, sizeof(path), "%s/station.state", dir);
	if (pn < 0 || (size_t)pn >= sizeof(path))
		return idp_error_set(err, IDP_E_ARG, "%s: state path too long", dir);
	uint8_t *buf = NULL;
	size_t len = 0;
	enum idp_err rc = fmt_file_read(path, 4096, &buf, &len, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK; /* a new station: seq 0, prev zero */
	if (rc != IDP_OK)
		return rc;
	const char *p = (const char *)buf;
	bool have_seq = false, have_prev = false;
	while (*p != '\0') {
		size_t n = strcspn(p, "\n");
		if (n > 4 && strncmp(p, "seq ", 4) == 0) {
			char *end = NULL;
			errno = 0;
			st->seq = strtoull(p + 4, &end, 10);
			have_seq = errno == 0 && end == p + n && p[4] != '-';
		} else if (strncmp(p, "prev ", 5) == 0) {
			have_prev = hex_decode(p + 5, n - 5, st->prev, sizeof(st->prev)) == IDP_OK;
		} else if (strncmp(p, "last ", 5) == 0 && n - 5 <= FMT_ID_MAX) {
			memcpy(st->last, p + 5, n - 5);
			st->last[n - 5] = '\0';
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	free(buf);
	if (!have_seq || !have_prev)
		return idp_error_set(err, IDP_E_FORMAT,
		                     "%s: needs \"seq N\" and \"prev HEX64\" lines", path);
	return IDP_OK;
}

static enum idp_err state_save(const char *dir, const struct state *st, struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1], hex[65], text[256];
	int pn = snprintf(path, sizeof(path), "%s/station.state", dir);
	if (pn < 0 || (size_t)pn >= sizeof(path))
		return idp_error_set(err, IDP_E_ARG, "%s: state path too long", dir);
	fmt_key_fingerprint_hex(st->prev, hex);
	int n = snprintf(text, sizeof(text), "seq %" PRIu64 "\nprev %s\nlast %s\n", st->seq, hex,
	                 st->last);
	if (n < 0 || (size_t)n >= sizeof(text))
		return idp_error_set(err, IDP_E_LIMIT, "station state: too long");
	return fmt_file_write_atomic(path, (const uint8_t *)text, (size_t)n, 0600, err);
}

struct build_ctx {
	struct enr_manifest_out out;
	uint64_t written;
};

/* Each DEVICE entry as its record line, into the manifest being written. */
static enum idp_err on_build(void *arg, const struct fmt_journal_entry *e, struct idp_error *err)
{
	struct build_ctx *c = arg;
	if (e->type != FMT_JOURNAL_DEVICE)
		return IDP_OK;
	static struct fmt_manifest_record r;
	uint8_t line[FMT_MANIFEST_LINE_MAX];
	size_t n = 0;
	to_record(e, &r);
	enum idp_err rc = fmt_manifest_encode_record(&r, line, &n, err);
	if (rc == IDP_OK)
		rc = enr_manifest_out_record(&c->out, line, n, err);
	return rc;
}

enum idp_err enr_batch_manifest(const char *dir, const char *batch, const struct enr_signing *s,
                                int64_t now, uint64_t *seq, uint64_t *count,
                                uint8_t digest[static FMT_MANIFEST_HASH_LEN], bool *already,
                                struct idp_error *err)
{
	*already = false;
	*seq = 0;
	*count = 0;
	char jpath[ENR_PATH_MAX + 1], mpath[ENR_PATH_MAX + 1];
	static struct summary sum;
	memset(&sum, 0, sizeof(sum));
	static struct build_ctx c;
	memset(&c, 0, sizeof(c));
	struct state st;
	size_t good = 0, size = 0;
	enum idp_err rc;
	if ((rc = enr_batch_path(dir, batch, JOURNAL_SUFFIX, jpath, err)) ||
	    (rc = enr_batch_path(dir, batch, ".manifest", mpath, err)) ||
	    (rc = state_load(dir, &st, err)))
		return rc;
	if (strcmp(st.last, batch) == 0 && access(mpath, F_OK) == 0) {
		*already = true;
		*seq = st.seq;
		memcpy(digest, st.prev, FMT_MANIFEST_HASH_LEN);
		return IDP_OK;
	}
	/* Two passes over the journal, neither held in memory: the header
	 * needs the count before the first record line is written. */
	if ((rc = walk(jpath, on_summary, &sum, &good, &size, err)))
		return rc;
	if (!sum.closed)
		return idp_error_set(err, IDP_E_CONFLICT, "batch %s is still open", batch);
	struct fmt_manifest_header h;
	memset(&h, 0, sizeof(h));
	h.version = FMT_MANIFEST_VERSION_CAPTURE; /* every DEVICE entry holds its proof */
	memcpy(h.batch, sum.open.batch, sizeof(h.batch));
	memcpy(h.station, sum.open.station, sizeof(h.station));
	memcpy(h.product, sum.open.product, sizeof(h.product));
	h.seq = st.seq + 1;
	memcpy(h.prev, st.prev, sizeof(h.prev));
	if ((rc = fmt_manifest_time_format(now, h.created, err)) ||
	    (rc = enr_manifest_out_begin(&c.out, s, &h, sum.count, mpath, err)) ||
	    (rc = walk(jpath, on_build, &c, &good, &size, err)) ||
	    (rc = enr_manifest_out_finish(&c.out, digest, err)))
		goto out;
	st.seq = h.seq;
	memcpy(st.prev, digest, sizeof(st.prev));
	(void)snprintf(st.last, sizeof(st.last), "%s", batch);
	if ((rc = enr_batch_status_set(dir, batch, "pending", err)) ||
	    (rc = state_save(dir, &st, err)))
		goto out;
	*seq = h.seq;
	*count = sum.count;
out:
	enr_manifest_out_abort(&c.out);
	return rc;
}

enum idp_err enr_batch_status_get(const char *dir, const char *batch,
                                  char out[static ENR_STATUS_MAX], struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1];
	out[0] = '\0';
	enum idp_err rc = enr_batch_path(dir, batch, ".status", path, err);
	uint8_t *buf = NULL;
	size_t len = 0;
	if (rc == IDP_OK)
		rc = fmt_file_read(path, ENR_STATUS_MAX - 1, &buf, &len, err);
	if (rc == IDP_E_NOTFOUND)
		return IDP_OK;
	if (rc != IDP_OK)
		return rc;
	size_t n = strcspn((const char *)buf, "\n");
	memcpy(out, buf, n);
	out[n] = '\0';
	free(buf);
	return IDP_OK;
}

enum idp_err enr_batch_status_set(const char *dir, const char *batch, const char *status,
                                  struct idp_error *err)
{
	char path[ENR_PATH_MAX + 1], text[ENR_STATUS_MAX];
	enum idp_err rc = enr_batch_path(dir, batch, ".status", path, err);
	if (rc != IDP_OK)
		return rc;
	int n = snprintf(text, sizeof(text), "%s\n", status);
	if (n < 0)
		return idp_error_set(err, IDP_E_ARG, "status: bad text");
	size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
	return fmt_file_write_atomic(path, (const uint8_t *)text, len, 0600, err);
}
