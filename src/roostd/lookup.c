/*
 * lookup.c: which backend serves this user, now.
 *
 * Invariant 2 (nothing acknowledged is lost) meets the hot path here.  A
 * user already in the map is answered from memory: its assignment is in the
 * store already.  A user that needs a (new) assignment gets one in memory,
 * marked pending, and its request waits; once per loop pass every pending
 * assignment is committed in one transaction and only then are the waiting
 * requests answered.  If the commit fails, the memory changes are undone and
 * the requests get 503, so no answer ever names a backend the store does not
 * hold.  Lookups for a pending user wait for the same commit.
 *
 * Several roostd may place the same user at once, so the batch is a
 * compare-and-set (user_place): a new user is written only if the store
 * has no row for them, a user re-placed only if their row is still on the
 * backend memory had.  When another instance got there first, memory
 * adopts the stored row and both answer the same backend.
 *
 * When another process holds the store's write lock, the commit gives up
 * after a few milliseconds (the store's bound) and the batch stays pending:
 * it is tried again every BATCH_RETRY_MS, the loop answering known users in
 * between, and after BATCH_BUSY_MAX_MS of trying its waiters get 503.
 *
 * A store on the network (PostgreSQL) takes the batch without the loop
 * waiting for the commit (place_send): the batch flies, known users are
 * answered meanwhile, and the lookups that need the batch, or would make
 * one, wait for it to land (fly_start, fly_end).  A batch holds no more
 * than one place_send takes (STORE_PLACE_SEND_MAX): the lookups that
 * would make it larger wait for it too, and make the next.  Callers that
 * need the store at once (admin changes, maintenance at exit) land it
 * first.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "http.h"
#include "log.h"
#include "lookup.h"
#include "move.h"
#include "placement.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

#define TOUCH_GRANULARITY	60	/* s between stored lookup times */
#define MAINT_TOUCH_MAX		20	/* rows written per pass */
#define MAINT_EXPIRE_MAX	20
#define MAINT_SWEEP		300	/* passes to cover the whole table */
#define MAINT_SLOW_MS		5	/* a pass this long is worth a log line */
#define BATCH_RETRY_MS		10	/* between commits of a batch the store refused */
#define BATCH_YIELD_MS		1	/* to another's commit in flight */
#define BATCH_BUSY_MAX_MS	2000	/* then its lookups get 503 */

/* Each refused batch answers its lookups 503; while the store is away the
 * log says so every so often, not once a batch. */
static struct log_limit	commit_limit = LOG_LIMIT_INIT(30 * 1000);

struct pending {
	char		 key[256];
	size_t		 len;
	int		 created;	/* entry did not exist before */
	int		 repeat;	/* pending already in this batch */
	uint16_t	 prev_backend;
	uint16_t	 prev_tag;
	uint32_t	 prev_since;
	uint16_t	 prev_replica;
	uint8_t		 prev_pinned;
	uint8_t		 prev_flags;	/* UMAP_F_REPL_CURRENT, FAILED_OVER */
};

#define REPL_FLAGS	(UMAP_F_REPL_CURRENT | UMAP_F_FAILED_OVER)

struct waiter {
	struct evhttp_request	*req;
	char			 key[256];
	size_t			 len;
	enum proto		 proto;
};

/* A new user another instance placed first: the row the store holds. */
struct adopt {
	char		 key[256];
	size_t		 len;
	char		 backend[BACKEND_NAME_MAX + 1];
	char		 tag[BACKEND_NAME_MAX + 1];
	char		 replica[BACKEND_NAME_MAX + 1];	/* "" = none */
	int		 pinned;
	int		 confirmed;
	int		 replica_current;
	int		 failed_over;
	int64_t		 since;
	int64_t		 last_lookup;
	int		 status;	/* the waiters' answer: 0 the route */
	const char	*unknown;	/* 503: the backend not in memory */
};

struct lookup_batch {
	struct event	*ev;
	size_t		 maint_cursor;	/* where the next maintenance slice starts */
	uint64_t	 busy_since;	/* ms (monotonic) the store first said busy */
	struct pending	*pend;
	size_t		 npend, cpend;
	struct waiter	*wait;
	size_t		 nwait, cwait;
	struct adopt	*adopt;
	size_t		 nadopt, cadopt;
	size_t		 nrefused;	/* adoptions not answered by the route */
	/* A batch sent without waiting (place_send), in flight: its own
	 * pending and waiters, swapped out of the fields above, its records,
	 * and the lookups that came meanwhile and need it landed. */
	struct event	*fly_ev;
	struct pending	*fpend;
	size_t		 fnpend, fcpend;
	struct waiter	*fwait;
	size_t		 fnwait, fcwait;
	struct store_user *frec;
	const char	**fexpect;
	uint64_t	 fly_deadline;	/* ms (monotonic) to give it up */
	struct evhttp_request **defer;
	size_t		 ndefer, cdefer;
	/* Users whose expiry is in the admin lane (struct expiry), and
	 * the lookups of them that wait for its end. */
	struct umap	*expiring;
	size_t		 nexpiring;
	struct evhttp_request **xwait;
	size_t		 nxwait, cxwait;
};

#define FLY_WAIT_MS	3000	/* the store gives up on its own first */
#define FLY_POLL_MS	50	/* looks that see the store give up: a
				 * hung server never wakes the socket */

static void	lookup_flush_cb(evutil_socket_t, short, void *);

int
lookup_init(struct roost *rs)
{
	struct lookup_batch *lb;

	lb = xcalloc(1, sizeof(*lb));
	if ((lb->ev = event_new(rs->base, -1, 0, lookup_flush_cb, rs)) == NULL) {
		free(lb);
		return -1;
	}
	rs->batch = lb;
	return 0;
}

void
lookup_free(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;

	if (lb == NULL)
		return;
	event_free(lb->ev);
	if (lb->fly_ev != NULL)
		event_free(lb->fly_ev);
	free(lb->pend);
	free(lb->wait);
	free(lb->adopt);
	free(lb->fpend);
	free(lb->fwait);
	free(lb->frec);
	free(lb->fexpect);
	free(lb->defer);
	if (lb->expiring != NULL)
		umap_free(lb->expiring);
	free(lb->xwait);
	free(lb);
	rs->batch = NULL;
}

size_t
lookup_rank(const struct roost *rs, const char *key, size_t len,
    const char *tag, long skip, long *out, size_t nout)
{
	return placement_rank(key, len, tag, rs->backends, rs->nslots, skip,
	    out, nout);
}

/* Append a string literal, its length counted by the compiler. */
#define ADD_LIT(buf, lit)	evbuffer_add((buf), (lit), sizeof(lit) - 1)

static size_t
fmt_port(char *out, uint16_t v)
{
	char tmp[8];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Render the 200 answer for an entry that is committed. */
static void
reply_route(struct roost *rs, struct evhttp_request *req,
    const struct umap_entry *e, enum proto proto)
{
	const struct backend *b = rs->backends[e->backend];
	struct evbuffer *buf;
	char port[8];

	if (b->ports[proto] == 0) {
		http_reply_error_reason(req, 503, "no_port",
		    "backend %s serves no %s port", b->name, proto_names[proto]);
		return;
	}
	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	ADD_LIT(buf, "{\"user\":");
	http_json_str(buf, e->key);
	ADD_LIT(buf, ",\"backend\":");
	http_json_str(buf, b->name);
	ADD_LIT(buf, ",\"host\":");
	http_json_str(buf, b->host);
	ADD_LIT(buf, ",\"hostip\":");
	http_json_str(buf, b->hostip);
	/* Not evbuffer_add_printf: it costs more than the rest of the
	 * answer together (callgrind), for five digits. */
	ADD_LIT(buf, ",\"port\":\"");
	evbuffer_add(buf, port, fmt_port(port, b->ports[proto]));
	ADD_LIT(buf, "\",\"tls\":\"");
	evbuffer_add(buf, backend_tls_name(b->tls),
	    strlen(backend_tls_name(b->tls)));
	ADD_LIT(buf, "\",\"replica\":");
	if (e->replica < rs->nslots && rs->backends[e->replica] != NULL)
		http_json_str(buf, rs->backends[e->replica]->name);
	else
		ADD_LIT(buf, "null");
	ADD_LIT(buf, "}");
	http_reply_buf(req, 200, buf);
	evbuffer_free(buf);
	/* A login on its way to b, until the proxy says it began or failed
	 * (a move waits for it).  LMTP and doveadm are no login sessions. */
	if (proto != PROTO_LMTP && proto != PROTO_DOVEADM)
		events_login_answered(rs, e);
}

void
lookup_reply(struct roost *rs, struct evhttp_request *req,
    const struct umap_entry *e, int proto)
{
	reply_route(rs, req, e, (enum proto)proto);
}

static struct pending	*batch_pending(struct roost *);

/* Remember what the entry was, to undo it if the batch fails. */
static void
pending_add(struct roost *rs, struct umap_entry *e, int created)
{
	struct pending *p = batch_pending(rs);

	memcpy(p->key, e->key, e->keylen + 1);
	p->len = e->keylen;
	p->created = created;
	p->repeat = (e->flags & UMAP_F_PENDING) != 0;
	p->prev_backend = e->backend;
	p->prev_tag = e->tag;
	p->prev_since = e->since;
	p->prev_pinned = e->pinned;
	p->prev_replica = e->replica;
	p->prev_flags = e->flags & REPL_FLAGS;
}

static void
batch_wait(struct roost *rs, struct evhttp_request *req,
    const struct umap_entry *e, enum proto proto)
{
	struct lookup_batch *lb = rs->batch;
	struct waiter *w;

	if (lb->nwait == lb->cwait) {
		lb->cwait = lb->cwait ? lb->cwait * 2 : 64;
		lb->wait = xreallocarray(lb->wait, lb->cwait, sizeof(*lb->wait));
	}
	w = &lb->wait[lb->nwait++];
	w->req = req;
	memcpy(w->key, e->key, e->keylen + 1);
	w->len = e->keylen;
	w->proto = proto;
	/* While the store is busy the retry timer is set already. */
	if (lb->busy_since == 0)
		event_active(lb->ev, 0, 0);
}

/* A lookup that needs the batch in flight landed first: asked again
 * then, in the order it came. */
static void
batch_defer(struct roost *rs, struct evhttp_request *req)
{
	struct lookup_batch *lb = rs->batch;

	if (lb->ndefer == lb->cdefer) {
		lb->cdefer = lb->cdefer ? lb->cdefer * 2 : 64;
		lb->defer = xreallocarray(lb->defer, lb->cdefer,
		    sizeof(*lb->defer));
	}
	lb->defer[lb->ndefer++] = req;
}

static struct pending *
batch_pending(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;

	if (lb->npend == lb->cpend) {
		lb->cpend = lb->cpend ? lb->cpend * 2 : 64;
		lb->pend = xreallocarray(lb->pend, lb->cpend, sizeof(*lb->pend));
	}
	return &lb->pend[lb->npend++];
}

/* The store's row of a new user that another instance placed first. */
static int
batch_adopt(const struct store_user *su, void *arg)
{
	struct lookup_batch *lb = arg;
	struct adopt *a;

	if (lb->nadopt == lb->cadopt) {
		lb->cadopt = lb->cadopt ? lb->cadopt * 2 : 16;
		lb->adopt = xreallocarray(lb->adopt, lb->cadopt,
		    sizeof(*lb->adopt));
	}
	a = &lb->adopt[lb->nadopt++];
	memset(a, 0, sizeof(*a));
	a->len = strlen(su->user);
	if (a->len >= sizeof(a->key)) {
		lb->nadopt--;
		return -1;
	}
	memcpy(a->key, su->user, a->len + 1);
	/* A name too long to be ours matches no backend: refused below. */
	snprintf(a->backend, sizeof(a->backend), "%s", su->backend);
	snprintf(a->tag, sizeof(a->tag), "%s", su->tag ? su->tag : "");
	snprintf(a->replica, sizeof(a->replica), "%s",
	    su->replica ? su->replica : "");
	a->pinned = su->pinned;
	a->confirmed = su->confirmed;
	a->replica_current = su->replica_current;
	a->failed_over = su->failed_over;
	a->since = su->since;
	a->last_lookup = su->last_lookup;
	return 0;
}

/*
 * Memory takes the row the store holds for a user another instance placed
 * or re-placed first, so that both answer the same backend.  A backend this roostd has
 * not heard of yet (added by another instance) cannot be answered, nor
 * left in memory: its lookups get 503 and the entry goes, to be read
 * again.  A row of another pool answers the lookup like any user of
 * another pool: 409.
 */
static void
batch_adopt_apply(struct roost *rs, struct umap_entry *e, struct adopt *a)
{
	struct store_user su;
	long slot, rslot = UMAP_NO_BACKEND;
	uint16_t asked = e->tag;
	int pair_changed;

	if (a->backend[0] == '\0') {
		/* The store could not say (user_place): ask again. */
		log_info("user %s: placed meanwhile by another instance, and "
		    "the row could not be read back", a->key);
		a->unknown = a->backend;
		a->status = 503;
		rs->batch->nrefused++;
		return;
	}
	if ((slot = state_backend_find(rs, a->backend)) == -1)
		a->unknown = a->backend;
	else if (a->replica[0] != '\0' &&
	    (rslot = state_backend_find(rs, a->replica)) == -1)
		a->unknown = a->replica;
	if (a->unknown != NULL) {
		log_warnx("user %s: placed by another instance on backend %s, "
		    "which this roostd does not know yet", a->key, a->unknown);
		a->status = 503;
		rs->batch->nrefused++;
		return;
	}
	log_info("user %s: placed by another instance on %s; adopted",
	    a->key, a->backend);
	pair_changed = e->backend != slot || e->replica != rslot;
	memset(&su, 0, sizeof(su));
	su.user = a->key;
	su.backend = a->backend;
	su.tag = a->tag;
	su.pinned = a->pinned;
	su.since = a->since;
	su.last_lookup = a->last_lookup;
	su.confirmed = a->confirmed;
	su.replica = a->replica[0] != '\0' ? a->replica : NULL;
	su.replica_current = a->replica_current;
	su.failed_over = a->failed_over;
	state_user_apply(rs, &su);	/* its backends are known: see above */
	/* The first sync was queued for the pair this roostd chose. */
	if (pair_changed) {
		repl_forget(rs, e->key, e->keylen);
		repl_enqueue(rs, e, REPL_P_LOW, 1, NULL);
	}
	if (e->tag != asked) {
		a->status = 409;
		rs->batch->nrefused++;
	}
}

/* The adoption that refuses waiter w's answer, if any. */
static const struct adopt *
batch_refused(const struct lookup_batch *lb, const struct waiter *w)
{
	size_t i;

	if (lb->nrefused == 0)
		return NULL;
	for (i = 0; i < lb->nadopt; i++)
		if (lb->adopt[i].status != 0 && lb->adopt[i].len == w->len &&
		    memcmp(lb->adopt[i].key, w->key, w->len) == 0)
			return &lb->adopt[i];
	return NULL;
}

static int	batch_after(struct roost *, int, struct store_user *,
		    const char **, size_t, int);
static int	batch_done(struct roost *, struct store_user *,
		    const char **, size_t, int);
static void	fly_cb(evutil_socket_t, short, void *);

/* The batch's pending and waiters into the flight, or back: the side
 * they leave is empty. */
static void
fly_swap(struct lookup_batch *lb)
{
	struct pending *tp = lb->fpend;
	struct waiter *tw = lb->fwait;
	size_t t;

	lb->fpend = lb->pend, lb->pend = tp;
	t = lb->fcpend, lb->fcpend = lb->cpend, lb->cpend = t;
	t = lb->fnpend, lb->fnpend = lb->npend, lb->npend = t;
	lb->fwait = lb->wait, lb->wait = tw;
	t = lb->fcwait, lb->fcwait = lb->cwait, lb->cwait = t;
	t = lb->fnwait, lb->fnwait = lb->nwait, lb->nwait = t;
}

/*
 * A batch in flight (place_send): its pending users and waiters leave the
 * batch for the flight, and while it flies every lookup that would touch
 * them, or place anyone, waits in `defer` (batch_defer) instead of
 * starting a batch of its own: memory then holds one uncommitted batch at
 * a time, as when the loop waited.  Known users are answered meanwhile.
 */
static void
fly_start(struct roost *rs, struct store_user *rec, const char **expect)
{
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct timeval tv = { 0, FLY_POLL_MS * 1000 };

	fly_swap(lb);
	lb->frec = rec;
	lb->fexpect = expect;
	lb->fly_deadline = now_msec_mono() + FLY_WAIT_MS;
	lb->fly_ev = event_new(rs->base, st->ops->place_fd(st), EV_READ,
	    fly_cb, rs);
	if (lb->fly_ev == NULL || event_add(lb->fly_ev, &tv) == -1)
		fatalx("lookup: cannot watch the store");
}

/*
 * The deferred lookups, asked again in the order they came, once the
 * batch they waited for is over.  Each one is answered, waits for the
 * next batch (batch_wait: it is committed later, from the loop) or is
 * deferred again, into a new list: none commits here.
 */
static void
defer_rerun(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;
	struct evhttp_request **defer = lb->defer;
	size_t i, ndefer = lb->ndefer;

	lb->defer = NULL;
	lb->ndefer = lb->cdefer = 0;
	for (i = 0; i < ndefer; i++)
		lookup_handle(rs, defer[i]);
	free(defer);
}

/* The flight is over (rc as user_place): the batch is back where the
 * rest of a commit expects it, and the deferred lookups are asked again. */
static void
fly_end(struct roost *rs, int rc)
{
	struct lookup_batch *lb = rs->batch;

	event_free(lb->fly_ev);
	lb->fly_ev = NULL;
	/* Nothing joins the batch while it flies (lookup_handle defers). */
	if (lb->npend != 0 || lb->nwait != 0)
		fatalx("lookup: %zu assignments and %zu waiters joined a "
		    "batch in flight", lb->npend, lb->nwait);
	fly_swap(lb);
	if (rc == -1)
		lb->nadopt = 0;
	batch_after(rs, 0, lb->frec, lb->fexpect, lb->npend, rc);
	lb->frec = NULL;
	lb->fexpect = NULL;
	defer_rerun(rs);
}

/* The store read the answer while doing something else. */
static void
fly_ready(void *arg)
{
	struct roost *rs = arg;

	if (rs->batch->fly_ev != NULL)
		event_active(rs->batch->fly_ev, EV_READ, 0);
}

static void
fly_cb(evutil_socket_t fd, short what, void *arg)
{
	struct roost *rs = arg;
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct timeval tv;
	uint64_t now;
	int rc;

	(void)fd;
	(void)what;
	if (st->ops->place_poll(st, batch_adopt, lb, &rc) == 0) {
		now = now_msec_mono();
		now = now < lb->fly_deadline ? lb->fly_deadline - now : 1;
		if (now > FLY_POLL_MS)
			now = FLY_POLL_MS;
		tv.tv_sec = (time_t)(now / 1000);
		tv.tv_usec = (suseconds_t)(now % 1000) * 1000;
		if (event_add(lb->fly_ev, &tv) == -1)
			fatalx("event_add");
		return;
	}
	fly_end(rs, rc);
}

/* Land the batch in flight now: the caller needs the store. */
static void
fly_land(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct pollfd pfd;
	int rc;

	while (st->ops->place_poll(st, batch_adopt, lb, &rc) == 0) {
		pfd.fd = st->ops->place_fd(st);
		pfd.events = POLLIN;
		(void)poll(&pfd, 1, 10);
	}
	fly_end(rs, rc);
}

/*
 * Commit the batch.  final: no retry later, a busy store fails it.
 * nowait: a store that can (place_send) takes it without the loop waiting
 * for the answer: the batch flies, and lands in fly_cb.  Otherwise, and
 * for a batch in flight when the caller needs the store now, the loop
 * waits (within the store's bounds).
 */
static int
batch_commit(struct roost *rs, int final, int nowait)
{
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct store_user *rec = NULL;
	const char **expect = NULL;
	size_t i, n, nrec = 0;
	int rc = 0;

	if (lb->fly_ev != NULL) {
		if (nowait)
			return 0;	/* it lands, then the rest goes */
		fly_land(rs);
	}
	n = lb->npend;
	if (lb->npend == 0 && lb->nwait == 0)
		return 0;
	/* Another commit in flight (the replication queue's, a verdict's):
	 * the batch goes once it has landed, rather than the loop wait. */
	if (nowait && store_flying(st)) {
		struct timeval tv = { 0, BATCH_YIELD_MS * 1000 };

		if (event_add(lb->ev, &tv) == -1)
			fatalx("event_add");
		return 0;
	}
	lb->nadopt = lb->nrefused = 0;
	if (n > 0) {
		/* Each user once, as memory has it now; expected where it
		 * was before the batch (a removed backend took the row). */
		rec = xcalloc(n, sizeof(*rec));
		expect = xcalloc(n, sizeof(*expect));
		for (i = 0; i < n; i++) {
			struct pending *p = &lb->pend[i];

			if (p->repeat)
				continue;
			if (!p->created && p->prev_backend < rs->nslots &&
			    rs->backends[p->prev_backend] != NULL)
				expect[nrec] =
				    rs->backends[p->prev_backend]->name;
			state_user_record(rs, umap_get(rs->users, p->key,
			    p->len), &rec[nrec++]);
		}
		if (nowait && st->ops->place_send != NULL &&
		    nrec <= STORE_PLACE_SEND_MAX) {
			if ((rc = st->ops->place_send(st, rec, expect,
			    nrec, fly_ready, rs)) == 0) {
				fly_start(rs, rec, expect);
				return 0;
			}
		} else
			rc = store_user_place(store_auto(st), rec, expect,
			    nrec, batch_adopt, lb);
		if (rc == -1)
			lb->nadopt = 0;
	}
	/* Over without a flight: the lookups that found the batch full go
	 * now (into the next one; again deferred if the store kept it). */
	rc = batch_after(rs, final, rec, expect, n, rc);
	defer_rerun(rs);
	return rc;
}

/* At the end, every lookup answered: the lookups a full batch deferred
 * make the next one, until none is left (each batch answers some). */
static void
batch_final(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;

	do
		batch_commit(rs, 1, 0);
	while (lb->npend > 0 || lb->nwait > 0);
}

/* The store said rc: a busy store gets the batch again soon (unless
 * final), else the commit ends (batch_done). */
static int
batch_after(struct roost *rs, int final, struct store_user *rec,
    const char **expect, size_t n, int rc)
{
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct timeval tv;
	uint64_t now = now_msec_mono();

	if (rc == -1 && store_retryable(st) && !final &&
	    (lb->busy_since == 0 || now - lb->busy_since < BATCH_BUSY_MAX_MS)) {
		if (lb->busy_since == 0) {
			lb->busy_since = now;
			log_debug("store busy, %zu assignments wait: %s", n,
			    store_error(st));
		}
		free(rec);
		free(expect);
		tv.tv_sec = 0;
		tv.tv_usec = BATCH_RETRY_MS * 1000;
		if (event_add(lb->ev, &tv) == -1)
			fatalx("event_add");
		return -1;
	}
	return batch_done(rs, rec, expect, n, rc);
}

/* The rest of a commit, once the store said (rc): memory keeps or undoes
 * the batch, takes the rows of users another instance placed first, and
 * every waiter is answered. */
static int
batch_done(struct roost *rs, struct store_user *rec, const char **expect,
    size_t n, int rc)
{
	struct lookup_batch *lb = rs->batch;
	struct store *st = rs->store;
	struct umap_entry *e;
	const struct adopt *a;
	size_t i;
	int ok = rc == 0;

	if (n > 0) {
		if (!ok)
			log_limited(&commit_limit, LOG_LEVEL_WARN,
			    "committing %zu assignments: %s", n,
			    store_error(st));
		lb->busy_since = 0;
		free(rec);
		free(expect);
		/* Undo newest first: a key assigned twice in one batch ends
		 * with its state from before the batch. */
		for (i = n; i-- > 0;) {
			struct pending *p = &lb->pend[i];

			e = umap_get(rs->users, p->key, p->len);
			if (ok) {
				e->flags &= ~UMAP_F_PENDING;
				e->touched = e->last_lookup;
			} else if (p->created)
				state_user_forget(rs, e);
			else {
				state_user_assign(rs, e, p->prev_backend);
				e->tag = p->prev_tag;
				e->since = p->prev_since;
				e->pinned = p->prev_pinned;
				e->replica = p->prev_replica;
				e->flags &= ~(UMAP_F_PENDING | REPL_FLAGS);
				e->flags |= p->prev_flags;
			}
		}
		for (i = 0; i < lb->nadopt; i++)
			if ((e = umap_get(rs->users, lb->adopt[i].key,
			    lb->adopt[i].len)) != NULL)
				batch_adopt_apply(rs, e, &lb->adopt[i]);
		if (ok)
			log_debug("committed %zu new assignments, %zu placed "
			    "by another instance", n - lb->nadopt, lb->nadopt);
	}
	lb->npend = 0;
	for (i = 0; i < lb->nwait; i++) {
		struct waiter *w = &lb->wait[i];

		e = umap_get(rs->users, w->key, w->len);
		if (!ok || e == NULL)
			http_reply_error_reason(w->req, 503, "store",
			    "the assignment could not be stored; try again");
		else if ((a = batch_refused(lb, w)) == NULL)
			reply_route(rs, w->req, e, w->proto);
		else if (a->status == 409)
			http_reply_error(w->req, 409, "tag", "user %s belongs "
			    "to pool \"%s\"", e->key, state_tag_name(rs,
			    e->tag));
		else if (a->unknown[0] == '\0')
			http_reply_error_reason(w->req, 503, "store",
			    "user %s was placed meanwhile by another "
			    "controller; try again", e->key);
		else
			http_reply_error_reason(w->req, 503, "unknown_backend",
			    "user %s is on backend %s, which this controller "
			    "does not know yet; try again", e->key, a->unknown);
	}
	lb->nwait = 0;
	/* Not answerable from memory: the next lookup places the user
	 * again and meets the same row, until this roostd knows that
	 * backend (a restart, or the change feed of issue 11). */
	for (i = 0; i < lb->nadopt; i++)
		if (lb->adopt[i].status == 503 && (e = umap_get(rs->users,
		    lb->adopt[i].key, lb->adopt[i].len)) != NULL)
			state_user_forget(rs, e);
	lb->nadopt = lb->nrefused = 0;
	return 0;
}

int
lookup_settled(struct roost *rs)
{
	struct lookup_batch *lb = rs->batch;

	if (lb == NULL || (lb->fly_ev == NULL && lb->npend == 0 &&
	    lb->nwait == 0))
		return 1;
	batch_commit(rs, 0, 1);
	/* A store that never waits on a network committed it just now. */
	return lb->fly_ev == NULL && lb->npend == 0 && lb->nwait == 0;
}

int
lookup_waiting(struct roost *rs)
{
	return rs->batch != NULL && rs->batch->npend > 0 &&
	    rs->batch->fly_ev == NULL;
}

static void
lookup_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	batch_commit(arg, 0, 1);
}

enum { ARG_USER, ARG_PROTOCOL, ARG_TAG, ARG_COUNT };
static const char *const arg_names[ARG_COUNT] = { "user", "protocol", "tag" };

/*
 * Is an assignment to be forgotten?
 *
 * user_expire: idle time counts from the end of the user's last session
 * (events.c), or from the last lookup when that is later (a login that
 * the proxies' events have not reported yet); a user with a session open
 * never expires.  Lookup times reach the store lazily and sessions are not
 * stored at all, so after a restart idle time counts from the start at the
 * earliest, and an assignment expires late rather than early (an early
 * expiry would move a user who still has sessions).
 *
 * unconfirmed_expire: an assignment that never saw a session or a delivery
 * (a name guessed at the proxy) goes that long after it was made.  Only
 * with the event intake on: without it nothing could ever confirm a user.
 */
static int
lookup_expired(const struct roost *rs, const struct umap_entry *e,
    uint32_t now)
{
	const struct config *conf = rs->conf;
	struct events_activity act;
	long long last = e->last_lookup;

	if (e->pinned)
		return 0;
	if (events_user_activity(rs, e, &act)) {
		if (act.open > 0)
			return 0;
		if (act.last_end > last)
			last = act.last_end;
	}
	if (!(e->flags & UMAP_F_CONFIRMED) && conf->events_token != NULL &&
	    conf->unconfirmed_expire > 0 &&
	    (long long)now - e->since > conf->unconfirmed_expire)
		return 1;
	/* With replication the mail lives on the backend: never expire. */
	if (conf->user_expire <= 0 || last == 0 || conf->replication)
		return 0;
	if (last < rs->started)
		last = rs->started;
	return (long long)now - last > conf->user_expire;
}

/*
 * At a lookup.  Several roostd on one store (roles) each see only some of
 * a user's lookups and sessions, so no one's memory may decide at a
 * lookup that a user is idle: placing it again there would move a user
 * another instance saw in session, without a kick.  The holder of
 * ROLE_MOVES forgets idle users after asking the store (maint_write), the
 * feed tells every instance, and the next lookup places the user anew.
 */
static int
lookup_expired_here(const struct roost *rs, const struct umap_entry *e,
    uint32_t now)
{
	return rs->roles == NULL && lookup_expired(rs, e, now);
}

void
lookup_handle(struct roost *rs, struct evhttp_request *req)
{
	const struct config *conf = rs->conf;
	char *a[ARG_COUNT] = { NULL, NULL, NULL };
	struct umap_entry *e;
	const char *q, *field = NULL, *tag;
	char key[256];
	enum proto proto;
	uint32_t now;
	long rank;
	int klen, created;

	if (conf->lookup_token != NULL &&
	    http_check_bearer(req, conf->lookup_token, conf->admin_token) == -1)
		return;
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (http_query_parse(q ? q : "", arg_names, a, ARG_COUNT, &field) == -1) {
		http_reply_error(req, 400, field, "repeated or badly "
		    "percent-encoded parameter");
		goto done;
	}
	if (a[ARG_USER] == NULL || !valid_username(a[ARG_USER], strlen(a[ARG_USER]))) {
		http_reply_error(req, 400, "user", "must be 1-255 bytes "
		    "of UTF-8 without control characters");
		goto done;
	}
	if (a[ARG_PROTOCOL] == NULL || proto_parse(a[ARG_PROTOCOL], &proto) == -1) {
		http_reply_error(req, 400, "protocol", "must be one of imap, "
		    "pop3, lmtp, submission, sieve, doveadm");
		goto done;
	}
	tag = a[ARG_TAG] ? a[ARG_TAG] : "";
	if (*tag != '\0' && !valid_name(tag)) {
		http_reply_error(req, 400, "tag", "must be 1-64 characters of "
		    "A-Z a-z 0-9 . _ -");
		goto done;
	}
	if ((klen = config_user_key(conf, a[ARG_USER], strlen(a[ARG_USER]), key,
	    sizeof(key))) == -1) {
		http_reply_error(req, 400, "user", "empty after applying "
		    "username_format and master_user_separator");
		goto done;
	}
	now = (uint32_t)now_sec();
	e = umap_get(rs->users, key, (size_t)klen);
	/*
	 * A lookup never moves a user (only the admin API and failover do):
	 * a tag names the pool for a user that has no assignment yet, and
	 * must match the stored pool of one that has.  Re-placing on a
	 * mismatch would let any proxy (or anyone who may look up) undo a
	 * pin, and the next plain lookup would move the user back.
	 */
	if (e != NULL && strcmp(state_tag_name(rs, e->tag), tag) != 0) {
		http_reply_error(req, 409, "tag", "user %s belongs to pool "
		    "\"%s\", not \"%s\"", e->key, state_tag_name(rs, e->tag),
		    tag);
		goto done;
	}
	/* A user whose expiry is on its way to the store: the answer waits
	 * for it, since it may forget the backend this would name. */
	if (e != NULL && rs->batch->nexpiring > 0 &&
	    umap_get(rs->batch->expiring, key, (size_t)klen) != NULL) {
		struct lookup_batch *lb = rs->batch;

		if (lb->nxwait == lb->cxwait) {
			lb->cxwait = lb->cxwait ? lb->cxwait * 2 : 16;
			lb->xwait = xreallocarray(lb->xwait, lb->cxwait,
			    sizeof(*lb->xwait));
		}
		lb->xwait[lb->nxwait++] = req;
		goto done;
	}
	/* A user being moved waits for the move's end (move.c), whatever
	 * its old backend's state: the move decides where it goes. */
	if (e != NULL && (e->flags & UMAP_F_MOVING)) {
		e->last_lookup = now;
		move_park(rs, e, req, (int)proto);
		goto done;
	}
	if (e != NULL && state_backend_usable(rs, e->backend, tag) &&
	    !lookup_expired_here(rs, e, now)) {
		e->last_lookup = now;
		if (!(e->flags & UMAP_F_PENDING))
			reply_route(rs, req, e, proto);
		else if (rs->batch->fly_ev != NULL)
			batch_defer(rs, req);
		else
			batch_wait(rs, req, e, proto);
		goto done;
	}
	/*
	 * Everything below makes an assignment: not while one flies, nor
	 * into a batch already as large as one place_send takes, which
	 * would be committed with the loop waiting.  (Without place_send,
	 * SQLite, every commit waits: no cap.)
	 */
	if (rs->batch->fly_ev != NULL || (rs->store->ops->place_send != NULL &&
	    rs->batch->npend >= STORE_PLACE_SEND_MAX)) {
		batch_defer(rs, req);
		goto done;
	}

	/*
	 * With replication, a user whose backend cannot serve it goes to its
	 * replica, which then holds its mail as of the last sync; never to
	 * a replica that was not synced yet (the user would see an empty
	 * mailbox, and dsync could never merge the two INBOXes after),
	 * unless an admin forces it.  (A guessed name waits for
	 * unconfirmed_expire like any other; then the hash places it.)
	 */
	if (e != NULL && rs->conf->replication &&
	    !lookup_expired_here(rs, e, now)) {
		if (repl_can_fail_over(rs, e) ||
		    (state_backend_usable(rs, e->replica, tag) &&
		    repl_forced(rs, e))) {
			pending_add(rs, e, 0);
			repl_failover(rs, e);
			e->last_lookup = now;
			e->flags |= UMAP_F_PENDING;
			batch_wait(rs, req, e, proto);
			goto done;
		}
		if (e->replica != UMAP_NO_BACKEND) {
			repl_refused(rs, e);
			http_reply_error_reason(req, 503, "replica_not_current",
			    "the backend of user %s is unavailable and its "
			    "replica is not synced; try again", e->key);
			goto done;
		}
	}

	/* Place the user by the hash and commit before answering. */
	if (lookup_rank(rs, key, (size_t)klen, tag, -1, &rank, 1) == 0) {
		http_reply_error_reason(req, 503, "no_backend",
		    "no backend%s%s is up to take users", *tag ? " of tag " : "",
		    tag);
		goto done;
	}
	e = umap_put(rs->users, key, (size_t)klen, &created);
	pending_add(rs, e, created);
	if (!created)
		log_info("user %s: re-placed from %s to %s", key,
		    e->backend < rs->nslots && rs->backends[e->backend] ?
		    rs->backends[e->backend]->name : "(removed)",
		    rs->backends[rank]->name);
	state_user_assign(rs, e, (uint16_t)rank);
	e->tag = state_tag_intern(rs, tag);
	e->since = now;
	e->last_lookup = now;
	e->pinned = 0;
	e->replica = UMAP_NO_BACKEND;
	e->flags &= ~REPL_FLAGS;
	/* The replica is chosen once, with the assignment. */
	repl_choose(rs, e);
	e->flags |= UMAP_F_PENDING;
	batch_wait(rs, req, e, proto);
	/* Its first sync makes the replica current. */
	repl_enqueue(rs, e, REPL_P_LOW, 1, NULL);
done:
	http_query_free(a, ARG_COUNT);
}

/*
 * Maintenance writes lookup times to the store and forgets assignments
 * idle past user_expire.  It runs ten times a second on a slice of the
 * table with a cap on rows written, so no pass holds the loop for more
 * than a fraction of a millisecond however many users there are; lookup times in the store may
 * lag, which costs nothing (they are not acknowledged state), and idle
 * assignments only ever expire late, never early.
 */
struct maint {
	struct roost		*rs;
	struct umap_entry	**touch;
	size_t			  ntouch, maxtouch;
	struct umap_entry	**expire;
	size_t			  nexpire, maxexpire;
	uint32_t		  granularity;
	uint32_t		  now;
	int			  may_expire;	/* holds ROLE_MOVES */
};

static int
maint_collect(struct umap_entry *e, void *arg)
{
	struct maint *m = arg;
	if (e->flags & (UMAP_F_PENDING | UMAP_F_MOVING))
		return 0;
	if (m->may_expire && lookup_expired(m->rs, e, m->now)) {
		if (m->nexpire == m->maxexpire)
			return -1;
		m->expire[m->nexpire++] = e;
		return 0;
	}
	if (e->last_lookup >= e->touched + m->granularity &&
	    e->last_lookup != e->touched) {
		if (m->ntouch == m->maxtouch)
			return -1;
		m->touch[m->ntouch++] = e;
	}
	return 0;
}

/* Another process's lock (an admin's sqlite3 shell, a backup) is worth a
 * debug line, not a warning on every pass: the work is retried later. */
static void
maint_error(struct store *st, const char *what)
{
	if (store_retryable(st))
		log_debug("%s: %s; trying again later", what, store_error(st));
	else
		log_warnx("%s: %s", what, store_error(st));
}

/*
 * Forgetting idle assignments, through the admin lane.  Several roostd on
 * one store each see some of a user's lookups and sessions: before an
 * assignment is forgotten, what the store has from the others (their
 * lookup times, a confirmation) is taken in and the rule asked again.
 * Only the holder of ROLE_MOVES forgets (maint_collect), whose polls of
 * every proxy see every open session.  The candidates are marked expiring
 * (their lookups wait: an answer could name a backend that is about to be
 * forgotten); in the lane, in one transaction, each is read and deleted
 * if still idle by the same rule (expiry_due, on copies: no memory there);
 * then memory forgets the deleted, takes in what the store had of the
 * others, and the lookups that waited are asked again.
 */
struct expiry_one {
	char		 key[256];
	size_t		 len;
	int64_t		 last;		/* memory's last lookup or session end */
	int64_t		 since;
	int		 confirmed;
	int		 found;		/* the store's row: */
	int64_t		 store_last;
	int		 store_confirmed;
	int		 deleted;
};

struct expiry {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	struct expiry_one	*one;
	size_t			 n;
	/* The rule's inputs (lookup_expired), copied. */
	int64_t			 now, started;
	int64_t			 user_expire, unconfirmed_expire;
	int			 unconfirmed_on, replication;
};

static int
expiry_due(const struct expiry *x, const struct expiry_one *o, int64_t last,
    int confirmed)
{
	if (!confirmed && x->unconfirmed_on && x->unconfirmed_expire > 0 &&
	    x->now - o->since > x->unconfirmed_expire)
		return 1;
	if (x->user_expire <= 0 || last == 0 || x->replication)
		return 0;
	if (last < x->started)
		last = x->started;
	return x->now - last > x->user_expire;
}

static int
expiry_seen(const struct store_user *su, void *arg)
{
	struct expiry_one *o = arg;

	o->found = 1;
	o->store_last = su->last_lookup;
	o->store_confirmed = su->confirmed != 0;
	return 0;
}

static int
expiry_run(struct store *st, struct lane_job *job)
{
	struct expiry *x = (struct expiry *)job;
	struct expiry_one *o;
	struct store_tx *tx;
	int64_t last;
	size_t i;

	if ((tx = store_begin(st, 0)) == NULL)
		return -1;
	for (i = 0; i < x->n; i++) {
		o = &x->one[i];
		if (st->ops->user_get(st, o->key, expiry_seen, o) == -1)
			goto fail;
		last = o->store_last > o->last ? o->store_last : o->last;
		if (!o->found || !expiry_due(x, o, last,
		    o->confirmed || o->store_confirmed))
			continue;
		if (store_user_delete(tx, o->key) == -1)
			goto fail;
		o->deleted = 1;
	}
	return store_commit(tx);
fail:
	store_rollback(tx);
	return -1;
}

static void
expiry_done(struct lane_job *job)
{
	struct expiry *x = (struct expiry *)job;
	struct roost *rs = x->rs;
	struct lookup_batch *lb = rs->batch;
	struct evhttp_request **wait = lb->xwait;
	struct umap_entry *e;
	struct expiry_one *o;
	size_t i, n = lb->nxwait, forgot = 0;

	for (i = 0; i < x->n; i++) {
		o = &x->one[i];
		if (umap_del(lb->expiring, o->key, o->len) == 1)
			lb->nexpiring--;
		store_lane_release(rs->lane, o->key);
		if ((e = umap_get(rs->users, o->key, o->len)) == NULL)
			continue;
		if (job->rc == 0 && o->deleted) {
			events_user_forget(rs, o->key, o->len);
			state_user_forget(rs, e);
			forgot++;
			continue;
		}
		/* Kept: what the other instances wrote counts from now. */
		if (o->found && o->store_last > (int64_t)e->last_lookup &&
		    o->store_last <= UINT32_MAX) {
			e->last_lookup = (uint32_t)o->store_last;
			e->touched = e->last_lookup;
		}
		if (o->found && o->store_confirmed)
			e->flags |= UMAP_F_CONFIRMED;
	}
	if (job->rc == -1) {
		if (job->status == 503)
			log_debug("forgetting idle assignments: %s; trying "
			    "again later", job->err);
		else
			log_warnx("forgetting idle assignments: %s", job->err);
	} else if (forgot > 0)
		log_info("forgot %zu assignments idle past user_expire or "
		    "never confirmed", forgot);
	free(x->one);
	free(x);
	/* The lookups that waited, asked again. */
	lb->xwait = NULL;
	lb->nxwait = lb->cxwait = 0;
	for (i = 0; i < n; i++)
		lookup_handle(rs, wait[i]);
	free(wait);
}

/* The candidates of a pass to the lane; one expiry at a time. */
static void
expiry_give(struct roost *rs, struct maint *m)
{
	const struct config *conf = rs->conf;
	struct lookup_batch *lb = rs->batch;
	struct events_activity act;
	struct umap_entry *e;
	struct expiry_one *o;
	struct expiry *x;
	int created;
	size_t i;

	x = xcalloc(1, sizeof(*x));
	x->rs = rs;
	x->one = xcalloc(m->nexpire, sizeof(*x->one));
	x->now = m->now;
	x->started = rs->started;
	x->user_expire = conf->user_expire;
	x->unconfirmed_expire = conf->unconfirmed_expire;
	x->unconfirmed_on = conf->events_token != NULL;
	x->replication = conf->replication;
	if (lb->expiring == NULL)
		lb->expiring = umap_new(m->nexpire);
	for (i = 0; i < m->nexpire; i++) {
		e = m->expire[i];
		o = &x->one[x->n++];
		memcpy(o->key, e->key, e->keylen + 1);
		o->len = e->keylen;
		o->last = e->last_lookup;
		if (events_user_activity(rs, e, &act) && act.last_end > o->last)
			o->last = act.last_end;
		o->since = e->since;
		o->confirmed = (e->flags & UMAP_F_CONFIRMED) != 0;
		umap_put(lb->expiring, o->key, o->len, &created);
		if (created)
			lb->nexpiring++;
		store_lane_hold(rs->lane, o->key);
	}
	x->job.what = "expiry";
	x->job.run = expiry_run;
	x->job.done = expiry_done;
	store_lane_give(rs->lane, &x->job);
}

/* Lookup times and confirmations on their way to the store: what to
 * note in memory once they are there. */
struct touched {
	struct roost	*rs;
	char		**keys;		/* of the lookup times */
	uint32_t	*times;		/* as written */
	size_t		 n;
	size_t		 nconf;		/* confirmations after them */
};

static void
touched_done(void *arg, int rc)
{
	struct touched *t = arg;
	struct roost *rs = t->rs;
	struct umap_entry *e;
	size_t i;

	if (rc == -1)
		maint_error(rs->store, "recording lookup times");
	else {
		for (i = 0; i < t->n; i++)
			if ((e = umap_get(rs->users, t->keys[i],
			    strlen(t->keys[i]))) != NULL &&
			    e->touched < t->times[i])
				e->touched = t->times[i];
		events_confirm_done(rs, t->nconf);
	}
	for (i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->times);
	free(t);
}

/*
 * Write the lookup times and confirmations of a pass.  They go as a sent
 * transaction (store_commit_send) that the loop does not wait for; at the
 * end (all) and when there are too many for one, the write is waited for.
 */
static void
maint_touch(struct roost *rs, const struct store_user *rec, size_t n,
    struct umap_entry *const *touch, size_t ntouch, size_t nconf, int all)
{
	struct store *st = rs->store;
	struct store_tx *tx;
	struct touched *t;
	size_t i;

	t = xcalloc(1, sizeof(*t));
	t->rs = rs;
	t->keys = xcalloc(ntouch ? ntouch : 1, sizeof(*t->keys));
	t->times = xcalloc(ntouch ? ntouch : 1, sizeof(*t->times));
	for (i = 0; i < ntouch; i++) {
		t->keys[i] = xstrdup(touch[i]->key);
		t->times[i] = touch[i]->last_lookup;
	}
	t->n = ntouch;
	t->nconf = nconf;
	if (all || n > STORE_SEND_MAX) {
		touched_done(t, store_user_touch(store_auto(st), rec, n));
		return;
	}
	if ((tx = store_begin(st, STORE_TX_SEND)) == NULL) {
		touched_done(t, -1);
		return;
	}
	if (store_user_touch(tx, rec, n) == -1) {
		store_rollback(tx);
		touched_done(t, -1);
		return;
	}
	if (store_commit_send(tx, rs->base, touched_done, t) == -1)
		touched_done(t, -1);
}

static void
maint_write(struct roost *rs, struct maint *m, int all)
{
	struct store_user *rec = NULL;
	const char **ckeys;
	size_t i, nconf, n;

	/* Confirmations ride with the lookup times, in the same write:
	 * from the events' queue, not the sweep, so that they are stored
	 * within a pass or two, not after a whole sweep of the table. */
	ckeys = xcalloc(m->maxtouch, sizeof(*ckeys));
	nconf = events_confirm_peek(rs, ckeys, m->maxtouch);
	if ((n = m->ntouch + nconf) > 0) {
		rec = xcalloc(n, sizeof(*rec));
		for (i = 0; i < m->ntouch; i++) {
			rec[i].user = m->touch[i]->key;
			rec[i].last_lookup = m->touch[i]->last_lookup;
			rec[i].confirmed = (m->touch[i]->flags &
			    UMAP_F_CONFIRMED) != 0;
		}
		for (i = 0; i < nconf; i++) {
			rec[m->ntouch + i].user = ckeys[i];
			rec[m->ntouch + i].confirmed = 1;
		}
		maint_touch(rs, rec, n, m->touch, m->ntouch, nconf, all);
		free(rec);
	}
	free(ckeys);
	if (m->nexpire > 0)
		expiry_give(rs, m);
}

void
lookup_maintain(struct roost *rs, int all)
{
	struct maint m;
	size_t slots, budget;
	uint64_t t0, ms;

	/* At shutdown (all) no later pass will retry: answer every lookup,
	 * and land what is on its way. */
	if (all) {
		batch_final(rs);
		store_flight_land(rs->store);
	} else
		batch_commit(rs, 0, 1);
	/* Lookup times and expiry wait for the next pass, not the batch. */
	if (!all && store_flying(rs->store))
		return;
	memset(&m, 0, sizeof(m));
	m.rs = rs;
	m.now = (uint32_t)now_sec();
	m.granularity = all ? 0 : TOUCH_GRANULARITY;
	/* One expiry at a time; none at the end (no later pass would
	 * answer the lookups it holds). */
	m.may_expire = role_held(rs, ROLE_MOVES) && !all &&
	    rs->batch->nexpiring == 0 && rs->lane != NULL;
	m.maxtouch = all ? umap_count(rs->users) + 1 : MAINT_TOUCH_MAX;
	m.maxexpire = all ? umap_count(rs->users) + 1 : MAINT_EXPIRE_MAX;
	m.touch = xcalloc(m.maxtouch, sizeof(*m.touch));
	m.expire = xcalloc(m.maxexpire, sizeof(*m.expire));
	slots = umap_slots(rs->users);
	/* The whole table once per MAINT_SWEEP passes. */
	budget = all ? slots : slots / MAINT_SWEEP + 1;
	t0 = now_msec_mono();
	umap_scan(rs->users, &rs->batch->maint_cursor, budget, maint_collect,
	    &m);
	maint_write(rs, &m, all);
	if ((ms = now_msec_mono() - t0) >= MAINT_SLOW_MS)
		log_info("maintenance pass took %llu ms (%zu lookup times, "
		    "%zu expired)", (unsigned long long)ms, m.ntouch, m.nexpire);
	free(m.touch);
	free(m.expire);
}
