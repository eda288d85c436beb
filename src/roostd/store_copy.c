/*
 * store_copy.c: roostd -C FROM TO, the copy of a whole store into another,
 * empty one: how a site moves from SQLite to the shared PostgreSQL store
 * (and back).  It runs offline: both stores are taken for the copy alone
 * (SQLite's one-roostd lock at open, PostgreSQL's exclusive()), so a
 * roostd running on either makes the copy refuse to start, and no roostd
 * can change either meanwhile.
 *
 * Everything goes through store.h, so any pair of stores works.  The
 * destination gets every record in one transaction (all or nothing), ids
 * and times kept; then it is read back and each table's count and digest
 * (a sum of per-record hashes over every field) must equal what was read
 * from the source.  A connection string is never printed: the stores are
 * named by their type and, for SQLite, the file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "proxy.h"
#include "store.h"
#include "store_copy.h"
#include "xmalloc.h"

/* Records per write (PostgreSQL sends a batch as one pipeline) and per
 * page read of the paged lists. */
#define COPY_BATCH	256
#define COPY_PAGE	1000
/* Strings one batched record holds at most. */
#define REC_STRS	8

const char *const store_table_names[ST_COUNT] = {
	[ST_BACKENDS] = "backends",
	[ST_PROXIES] = "proxies",
	[ST_HEALTH] = "health",
	[ST_USERS] = "users",
	[ST_REPL] = "replication",
	[ST_MOVES] = "moves",
	[ST_JOBS] = "jobs",
	[ST_AUDIT] = "audit",
};

/* One walk over a store: hashes each record, and when dst is set, writes
 * it there, batched. */
struct walk {
	struct store_tx		*dst;		/* the copy's; NULL: digest */
	struct store_digest	*d;
	int			 dst_failed;	/* the error is dst's */
	/* the batch of the table being walked */
	size_t			 n;
	union {
		struct store_user	u[COPY_BATCH];
		struct store_repl	r[COPY_BATCH];
		struct store_move	m[COPY_BATCH];
		struct store_job	j[COPY_BATCH];
		struct store_audit	a[COPY_BATCH];
	}			 b;
	char			*strs[COPY_BATCH * REC_STRS];
	size_t			 nstrs;
	/* paging */
	size_t			 page;		/* rows of this page */
	char			*after;		/* repl: last user */
	int64_t			 before;	/* moves, audit: last id */
};

/* FNV-1a, 64 bits. */
static uint64_t
h_bytes(uint64_t h, const void *p, size_t len)
{
	const unsigned char *c = p;

	while (len-- > 0) {
		h ^= *c++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* NUL ends a string, so "ab","c" and "a","bc" differ; NULL differs
 * from "". */
static uint64_t
h_str(uint64_t h, const char *s)
{
	static const unsigned char null = 0xff;

	if (s == NULL)
		return h_bytes(h, &null, 1);
	return h_bytes(h, s, strlen(s) + 1);
}

static uint64_t
h_int(uint64_t h, int64_t v)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)v >> (8 * i));
	return h_bytes(h, b, sizeof(b));
}

/* Add a record's hash to its table; mixed first, so that a sum of
 * related records cannot cancel out. */
static void
h_add(struct walk *w, enum store_table t, uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	w->d->n[t]++;
	w->d->sum[t] += h;
}

#define H0	0xcbf29ce484222325ULL

/* A copy of s that lives until the batch is written. */
static const char *
keep(struct walk *w, const char *s)
{
	if (s == NULL)
		return NULL;
	return w->strs[w->nstrs++] = xstrdup(s);
}

static void
batch_clear(struct walk *w)
{
	size_t i;

	for (i = 0; i < w->nstrs; i++)
		free(w->strs[i]);
	w->nstrs = 0;
	w->n = 0;
}

/* Write the batch of table t to dst. */
static int
flush(struct walk *w, enum store_table t)
{
	struct store_tx *dst = w->dst;
	int rv = 0;

	if (dst == NULL || w->n == 0)
		return 0;
	switch (t) {
	case ST_USERS:
		rv = store_user_put(dst, w->b.u, w->n);
		break;
	case ST_REPL:
		rv = store_repl_put(dst, w->b.r, w->n);
		break;
	case ST_MOVES:
		rv = store_move_restore(dst, w->b.m, w->n);
		break;
	case ST_JOBS:
		rv = store_job_restore(dst, w->b.j, w->n);
		break;
	case ST_AUDIT:
		rv = store_audit_restore(dst, w->b.a, w->n);
		break;
	default:
		break;
	}
	batch_clear(w);
	if (rv == -1)
		w->dst_failed = 1;
	return rv;
}

static int
on_backend(const struct backend *b, void *arg)
{
	struct walk *w = arg;
	uint64_t h = H0;
	int i;

	h = h_str(h, b->name);
	h = h_str(h, b->host);
	h = h_str(h, b->hostip);
	h = h_str(h, b->tag);
	h = h_int(h, b->weight);
	h = h_int(h, b->state);
	h = h_int(h, b->tls);
	for (i = 0; i < PROTO_COUNT; i++)
		h = h_int(h, b->ports[i]);
	h = h_str(h, b->doveadm_url);
	h = h_str(h, b->doveadm_key);
	h = h_str(h, b->probe_user);
	h = h_str(h, b->probe_pass);
	h = h_int(h, b->created);
	h = h_int(h, b->updated);
	h_add(w, ST_BACKENDS, h);
	if (w->dst != NULL && store_backend_insert(w->dst, b) == -1) {
		w->dst_failed = 1;
		return -1;
	}
	return 0;
}

static int
on_proxy(const struct proxy *p, void *arg)
{
	struct walk *w = arg;
	uint64_t h = H0;

	h = h_str(h, p->name);
	h = h_str(h, p->doveadm_url);
	h = h_str(h, p->doveadm_key);
	h = h_int(h, p->created);
	h = h_int(h, p->updated);
	h_add(w, ST_PROXIES, h);
	if (w->dst != NULL && store_proxy_insert(w->dst, p) == -1) {
		w->dst_failed = 1;
		return -1;
	}
	return 0;
}

static int
on_health(const struct store_health *x, void *arg)
{
	struct walk *w = arg;
	uint64_t h = H0;

	h = h_str(h, x->backend);
	h = h_str(h, x->state);
	h = h_int(h, x->since);
	h = h_str(h, x->error);
	h = h_int(h, x->latency_ms);
	h = h_int(h, x->checked);
	h_add(w, ST_HEALTH, h);
	if (w->dst != NULL && store_health_put(w->dst, x) == -1) {
		w->dst_failed = 1;
		return -1;
	}
	return 0;
}

static int
on_user(const struct store_user *u, void *arg)
{
	struct walk *w = arg;
	struct store_user *c;
	uint64_t h = H0;

	h = h_str(h, u->user);
	h = h_str(h, u->backend);
	h = h_str(h, u->tag);
	h = h_int(h, u->pinned);
	h = h_int(h, u->since);
	h = h_int(h, u->last_lookup);
	h = h_int(h, u->confirmed);
	h = h_str(h, u->replica);
	h = h_int(h, u->replica_current);
	h = h_int(h, u->failed_over);
	h_add(w, ST_USERS, h);
	if (w->dst == NULL)
		return 0;
	c = &w->b.u[w->n++];
	*c = *u;
	c->user = keep(w, u->user);
	c->backend = keep(w, u->backend);
	c->tag = keep(w, u->tag);
	c->replica = keep(w, u->replica);
	return w->n == COPY_BATCH ? flush(w, ST_USERS) : 0;
}

static int
on_repl(const struct store_repl *r, void *arg)
{
	struct walk *w = arg;
	struct store_repl *c;
	uint64_t h = H0;

	h = h_str(h, r->user);
	h = h_int(h, r->priority);
	h = h_int(h, r->queued);
	h = h_int(h, r->due);
	h = h_int(h, r->full);
	h = h_int(h, r->fails);
	h = h_int(h, r->stuck);
	h = h_str(h, r->error);
	h = h_str(h, r->state);
	h = h_int(h, r->last_fast);
	h = h_int(h, r->last_full);
	h = h_int(h, r->last_ok);
	h_add(w, ST_REPL, h);
	free(w->after);
	w->after = xstrdup(r->user);
	w->page++;
	if (w->dst == NULL)
		return 0;
	c = &w->b.r[w->n++];
	*c = *r;
	c->user = keep(w, r->user);
	c->error = keep(w, r->error);
	/* "" is a state too: NULL would keep none on the insert anyway,
	 * but the record is copied as it reads. */
	c->state = keep(w, r->state != NULL ? r->state : "");
	return w->n == COPY_BATCH ? flush(w, ST_REPL) : 0;
}

static int
on_move(const struct store_move *m, void *arg)
{
	struct walk *w = arg;
	struct store_move *c;
	uint64_t h = H0;

	h = h_int(h, m->id);
	h = h_str(h, m->user);
	h = h_str(h, m->from);
	h = h_str(h, m->to);
	h = h_str(h, m->reason);
	h = h_str(h, m->state);
	h = h_str(h, m->error);
	h = h_int(h, m->pin);
	h = h_int(h, m->created);
	h = h_int(h, m->updated);
	h_add(w, ST_MOVES, h);
	w->before = m->id;
	w->page++;
	if (w->dst == NULL)
		return 0;
	c = &w->b.m[w->n++];
	*c = *m;
	c->user = keep(w, m->user);
	c->from = keep(w, m->from);
	c->to = keep(w, m->to);
	c->reason = keep(w, m->reason);
	c->state = keep(w, m->state);
	c->error = keep(w, m->error);
	return w->n == COPY_BATCH ? flush(w, ST_MOVES) : 0;
}

static int
on_job(const struct store_job *j, void *arg)
{
	struct walk *w = arg;
	struct store_job *c;
	uint64_t h = H0;

	h = h_int(h, j->id);
	h = h_str(h, j->kind);
	h = h_str(h, j->backend);
	h = h_int(h, j->max);
	h = h_int(h, j->rate);
	h = h_int(h, j->made);
	h = h_str(h, j->state);
	h = h_int(h, j->created);
	h = h_int(h, j->updated);
	h_add(w, ST_JOBS, h);
	if (w->dst == NULL)
		return 0;
	c = &w->b.j[w->n++];
	*c = *j;
	c->kind = keep(w, j->kind);
	c->backend = keep(w, j->backend);
	c->state = keep(w, j->state);
	return w->n == COPY_BATCH ? flush(w, ST_JOBS) : 0;
}

static int
on_audit(const struct store_audit *a, void *arg)
{
	struct walk *w = arg;
	struct store_audit *c;
	uint64_t h = H0;

	h = h_int(h, a->id);
	h = h_int(h, a->at);
	h = h_str(h, a->actor);
	h = h_str(h, a->action);
	h = h_str(h, a->subject);
	h = h_str(h, a->detail);
	h_add(w, ST_AUDIT, h);
	w->before = a->id;
	w->page++;
	if (w->dst == NULL)
		return 0;
	c = &w->b.a[w->n++];
	*c = *a;
	c->actor = keep(w, a->actor);
	c->action = keep(w, a->action);
	c->subject = keep(w, a->subject);
	c->detail = keep(w, a->detail);
	return w->n == COPY_BATCH ? flush(w, ST_AUDIT) : 0;
}

/*
 * Walk every table of st in the order a copy must write them (users after
 * their backends).  The long tables are read in pages, so neither store
 * holds more than a page in memory nor runs one long statement.
 */
static int
walk(struct store *st, struct walk *w)
{
	const struct store_ops *o = st->ops;

	memset(w->d, 0, sizeof(*w->d));
	if (o->backend_load(st, on_backend, w) == -1 ||
	    o->proxy_load(st, on_proxy, w) == -1 ||
	    o->health_load(st, on_health, w) == -1 ||
	    o->user_load(st, on_user, w) == -1 || flush(w, ST_USERS) == -1)
		return -1;
	do {
		w->page = 0;
		if (o->repl_list(st, w->after, COPY_PAGE, on_repl, w) == -1)
			return -1;
	} while (w->page == COPY_PAGE);
	if (flush(w, ST_REPL) == -1)
		return -1;
	w->before = 0;
	do {
		w->page = 0;
		if (o->move_list(st, 0, w->before, COPY_PAGE, on_move,
		    w) == -1)
			return -1;
	} while (w->page == COPY_PAGE);
	if (flush(w, ST_MOVES) == -1 ||
	    o->job_list_all(st, on_job, w) == -1 || flush(w, ST_JOBS) == -1)
		return -1;
	w->before = 0;
	do {
		w->page = 0;
		if (o->audit_list(st, w->before, COPY_PAGE, on_audit,
		    w) == -1)
			return -1;
	} while (w->page == COPY_PAGE);
	return flush(w, ST_AUDIT);
}

static struct walk *
walk_new(struct store_tx *dst, struct store_digest *d)
{
	struct walk *w;

	w = xcalloc(1, sizeof(*w));
	w->dst = dst;
	w->d = d;
	return w;
}

static void
walk_free(struct walk *w)
{
	batch_clear(w);
	free(w->after);
	free(w);
}

int
store_digest(struct store *st, struct store_digest *d)
{
	struct walk *w = walk_new(NULL, d);
	int rv;

	rv = walk(st, w);
	walk_free(w);
	return rv;
}

/* "3 backends, 10 users" for the tables that hold something. */
static void
describe(const struct store_digest *d, char *buf, size_t len)
{
	size_t off = 0;
	int t;

	buf[0] = '\0';
	for (t = 0; t < ST_COUNT && off < len; t++) {
		if (d->n[t] == 0)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%" PRIu64
		    " %s", off > 0 ? ", " : "", d->n[t], store_table_names[t]);
	}
}

int
store_copy(struct store *src, struct store *dst, struct store_digest *d,
    char *err, size_t errlen)
{
	struct store_digest got;
	struct store_tx *tx;
	struct walk *w = NULL;
	char what[512];
	int t;

	if (store_digest(dst, &got) == -1) {
		snprintf(err, errlen, "reading the destination: %s",
		    store_error(dst));
		return -1;
	}
	describe(&got, what, sizeof(what));
	if (what[0] != '\0') {
		snprintf(err, errlen, "the destination is not empty (it has "
		    "%s); copy only into a new store", what);
		return -1;
	}
	if ((tx = store_begin(dst, STORE_TX_ADMIN)) == NULL) {
		snprintf(err, errlen, "destination: %s", store_error(dst));
		return -1;
	}
	w = walk_new(tx, d);
	if (walk(src, w) == -1) {
		if (w->dst_failed)
			snprintf(err, errlen, "writing the destination: %s",
			    store_error(dst));
		else
			snprintf(err, errlen, "reading the source: %s",
			    store_error(src));
		store_rollback(tx);
		goto fail;
	}
	if (store_commit(tx) == -1) {
		snprintf(err, errlen, "destination: commit: %s",
		    store_error(dst));
		goto fail;
	}
	walk_free(w);
	w = NULL;

	if (store_digest(dst, &got) == -1) {
		snprintf(err, errlen, "verifying the destination: %s",
		    store_error(dst));
		return -1;
	}
	for (t = 0; t < ST_COUNT; t++) {
		if (got.n[t] != d->n[t] || got.sum[t] != d->sum[t]) {
			snprintf(err, errlen, "verifying the destination: "
			    "%s: %" PRIu64 " copied, %" PRIu64 " read back%s",
			    store_table_names[t], d->n[t], got.n[t],
			    got.n[t] == d->n[t] ? ", their contents differ" :
			    "");
			return -1;
		}
	}
	return 0;
fail:
	walk_free(w);
	return -1;
}

/* How a store is named in messages: never its connection string. */
static void
store_label(const char *url, char *buf, size_t len)
{
	if (strncmp(url, "sqlite:", 7) == 0)
		snprintf(buf, len, "SQLite store %s", url + 7);
	else if (strncmp(url, "postgresql:", 11) == 0)
		snprintf(buf, len, "PostgreSQL store");
	else
		snprintf(buf, len, "store");
}

int
store_copy_urls(const char *from, const char *to, FILE *out, char *err,
    size_t errlen)
{
	struct store *src = NULL, *dst = NULL;
	struct store_digest d;
	struct stat sb;
	char lfrom[300], lto[300], msg[1024];
	uint64_t total = 0;
	int t, rv = -1;

	store_label(from, lfrom, sizeof(lfrom));
	store_label(to, lto, sizeof(lto));
	if (strcmp(from, to) == 0) {
		snprintf(err, errlen, "FROM and TO are the same store");
		return -1;
	}
	/* Opening a store creates it: a missing source is a typo, not an
	 * empty store to copy. */
	if (strncmp(from, "sqlite:", 7) == 0 && stat(from + 7, &sb) == -1) {
		snprintf(err, errlen, "source: %s: %s", from + 7,
		    strerror(errno));
		return -1;
	}
	if ((src = store_open(from, msg, sizeof(msg))) == NULL) {
		snprintf(err, errlen, "source: %s", msg);
		return -1;
	}
	if (src->ops->exclusive != NULL && src->ops->exclusive(src) == -1) {
		snprintf(err, errlen, "source: %s", store_error(src));
		goto done;
	}
	if ((dst = store_open(to, msg, sizeof(msg))) == NULL) {
		snprintf(err, errlen, "destination: %s", msg);
		goto done;
	}
	if (dst->ops->exclusive != NULL && dst->ops->exclusive(dst) == -1) {
		snprintf(err, errlen, "destination: %s", store_error(dst));
		goto done;
	}
	if (store_copy(src, dst, &d, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s", msg);
		goto done;
	}
	fprintf(out, "copied %s to %s:\n", lfrom, lto);
	for (t = 0; t < ST_COUNT; t++) {
		fprintf(out, "  %-12s %10" PRIu64 "\n", store_table_names[t],
		    d.n[t]);
		total += d.n[t];
	}
	fprintf(out, "verified: %" PRIu64 " records, the same count and "
	    "checksum in every table\n", total);
	rv = 0;
done:
	store_free(dst);
	store_free(src);
	return rv;
}
