/*
 * repl.c: the replication queue and its syncs.
 *
 * Only users with work have an entry in memory (a hash table keyed like
 * the user map): queued, running, backing off or stuck.  Ready entries wait
 * in one FIFO per priority; entries that must wait (a backoff, a backend
 * that is down) sit in a min-heap on their due time.  Every change of an
 * entry marks it dirty, and one store transaction a loop pass writes all
 * dirty entries: a burst of a thousand events costs one commit, and the
 * event intake answers only once its entry is stored, so kill -9 loses
 * no user that Dovecot was told about.
 *
 * While a sync runs, the store keeps the entry's priority: a roostd killed
 * mid-sync syncs the user again after the restart.  A sync's outcome:
 * a new dsync state and the time of the good sync; exit 2 (the mailbox
 * changed meanwhile) runs again at once, a bounded number of times, after
 * which the user is "stuck" and only retried with backoff (a user whose
 * INBOX was created on both backends would otherwise spin forever); 67 (no
 * such user) drops the entry; 75 and anything else back off exponentially,
 * the latter forcing a full sync next.  A failing user never holds a
 * connection another user could use.
 *
 * Full syncs are spread evenly: a cursor walks the user map so that every
 * slot is passed once per replication_full_sync_interval.  A second walk,
 * at start and when a backend goes, gives replicas to users that have none
 * and queues a full sync for every replica not yet current.  A third, once
 * after the start, queues an incremental sync of every current replica at
 * the lowest priority: sessions open across a restart (or a kill) kept
 * changing mail while nobody took their events, and without it those
 * changes would wait for the user's next change or full sync.  It queues
 * only while the lowest priority is short, so memory and store writes
 * stay bounded on a large map.
 *
 * With several roostd on one store only the holder of the role "repl"
 * (role.h) keeps the queue, dispatches and walks; it alone writes the
 * queue entries.  Work that reaches another instance (a change event, a
 * failover at a lookup, a move's switch, an admin) is stored as a request
 * (repl_requests) and answered once stored, like an entry; the holder,
 * woken by the change feed, queues each request and deletes it in the
 * transaction that stores the queue entry, so a request is neither lost
 * nor queued twice when a holder dies.  A holder that loses the role
 * cancels its syncs and writes no entry more: each running sync's entry
 * is stored still queued, so the next holder runs it again, once, and
 * queued work not yet stored becomes requests.
 */
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doveadm.h"
#include "http.h"
#include "log.h"
#include "lookup.h"
#include "placement.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

#define REPL_TICK_MS		100	/* due entries, the full sync walk */
#define REPL_FLUSH_RETRY_MS	10	/* a busy store is tried again */
#define REPL_YIELD_MS		2	/* after a lookup batch in flight */
#define REPL_WAIT_MAX_MS	100	/* events wait for a busy store */
#define REPL_BACKOFF_MIN_MS	10000
#define REPL_BACKOFF_MAX_MS	600000
#define REPL_RERUNS		3	/* exit 2 in a row before "stuck" */
#define REPL_BLOCKED_MS		30000	/* a backend that is down: look again */
#define REPL_LATER_MS		1000	/* a user being moved or placed */
#define REPL_LOCK_TIMEOUT	30	/* s: dsync's lock of the user */
#define REPL_ASSIGN_SLOTS	4096	/* map slots the replica walk sees a tick */
#define REPL_RESYNC_SLOTS	1024	/* slots the restart walk sees a tick */
#define REPL_RESYNC_QUEUED	512	/* ... while fewer wait at "full" */
#define REPL_ERR_MAX		200
#define REPL_TAKE_MAX		1000	/* requests taken a look */
#define REPL_TAKE_MS		1000	/* between looks, without a wake-up */
#define REPL_REQ_WAIT_MS	10000	/* a request for a user not known
					 * here yet (the feed is behind) */
#define NOT_IN_HEAP		((size_t)-1)

/* While the store is away the queue is written again at every tick: one
 * warning every so often says so, not one a tick. */
static struct log_limit	store_limit = LOG_LIMIT_INIT(30 * 1000);

const char *const repl_priority_names[REPL_P_COUNT] = {
	"sync", "high", "low", "full"
};

struct repl_sync;

struct ritem {
	struct ritem		*hnext;
	TAILQ_ENTRY(ritem)	 q;		/* in ready[prio] */
	size_t			 hidx;		/* in the heap, or NOT_IN_HEAP */
	int8_t			 prio;		/* queued, -1: none */
	int8_t			 qprio;		/* the ready list it is on */
	int8_t			 taken;		/* the running sync's, -1 none */
	int8_t			 again;		/* asked for while running */
	uint8_t			 full, again_full;
	uint8_t			 ready, dirty, stuck, blocked;
	uint8_t			 flying;	/* its write is in a flight */
	uint8_t			 reruns;
	uint8_t			 rerun75;	/* exit 75 run again at once */
	uint16_t		 fails;
	int64_t			 queued;	/* wall ms */
	int64_t			 due;		/* wall ms */
	char			*error;		/* NULL: none */
	char			*state;		/* new dsync state, not stored */
	int64_t			 set_fast, set_full, set_ok;
	struct repl_sync	*sync;
	uint32_t		 hash;
	size_t			 keylen;
	char			 key[];
};

TAILQ_HEAD(ritem_list, ritem);

/* One sync call: of a queue entry, or of a move (run). */
struct repl_sync {
	struct repl		*r;
	struct ritem		*it;
	struct repl_run		*run;
	struct doveadm_call	*call;	/* NULL while its state is read */
	int			 fetching;	/* its state is read first */
	uint64_t		 fetch_gen;	/* by that read */
	int			 full;
	long			 from, to;
	char			 key[256];
	size_t			 keylen;
};

struct repl_run {
	LIST_ENTRY(repl_run)	 entry;
	struct repl_sync	*s;
	repl_run_cb		 cb;
	void			*arg;
};

struct repl {
	struct roost		*rs;
	struct ritem		**tab;
	size_t			  mask, count;
	struct ritem_list	  ready[REPL_P_COUNT];
	size_t			  nready[REPL_P_COUNT];
	struct ritem		**heap;
	size_t			  nheap, cheap;
	struct ritem		**dirty;
	size_t			  ndirty, cdirty;
	char			**urows;	/* users whose row changed */
	size_t			  nurows, curows;
	struct evhttp_request	**waiters;	/* answered once stored */
	size_t			  nwait, cwait;
	uint64_t		  wait_since;	/* mono ms, a busy store */
	struct event		 *flush_ev;
	struct event		 *tick_ev;
	LIST_HEAD(, repl_run)	  runs;
	size_t			  running;
	int			  paused;
	size_t			  full_cursor;
	double			  full_carry;
	int64_t			  full_last;	/* wall ms of the last walk */
	size_t			  assign_cursor;
	size_t			  assign_left;	/* slots the replica walk has
						 * still to see */
	size_t			  resync_cursor;
	size_t			  resync_left;	/* slots the restart walk has
						 * still to see */
	uint64_t		  synced, failed, events, bypass, from_replica,
				  refused;
	uint64_t		  refused_logged;	/* mono ms */
	/* Several roostd (role repl): */
	int			  held;		/* the role, as acted on */
	struct store_repl_request *reqs;	/* for the holder, to store */
	size_t			  nreqs, creqs;
	int64_t			 *taken;	/* requests queued here, to
						 * delete with their entries */
	size_t			  ntaken, ctaken;
	struct event		 *take_ev;
	uint64_t		  take_at;	/* mono ms of the last look */
	uint64_t		  gain_at;	/* mono ms, the last try */
	int			  gaining;	/* the queue's read is in the
					 * admin lane (struct gain) */
	uint64_t		  requested, took;
	struct repl_flight	 *flight;	/* a flush not answered yet */
	/* Syncs whose dsync state is read from the store first (without
	 * the loop waiting): the users of the next read, and the read
	 * under way (its users and the states it brings). */
	char			**fetch;
	size_t			  nfetch, cfetch;
	uint64_t		  fetch_gen;	/* of the next read */
	char			**fetching;
	char			**fstates;
	size_t			  nfetching;
	uint64_t		  fetching_gen;
	int			  fetch_busy;
	struct event		 *fetch_ev;
	int			  closing;	/* repl_free under way */
	int			  taking;	/* a read of requests is out */
	struct store_scan	  reqs_in;	/* what it brings */
};

/*
 * A flush whose commit is on its way (store_commit_send): what it wrote,
 * taken out of struct repl so that what changes meanwhile goes to the
 * next flush, and given back if the commit fails.
 */
struct repl_flight {
	struct repl		 *r;
	struct ritem		**items;	/* ->flying, dirty cleared */
	size_t			  nitems;
	size_t			  nrows;	/* user rows written */
	char			**urows;
	size_t			  nurows;
	struct store_repl_request *reqs;
	size_t			  nreqs;
	int64_t			 *taken;
	size_t			  ntaken;
	struct evhttp_request	**waiters;
	size_t			  nwait;
};

static void	repl_flush_cb(evutil_socket_t, short, void *);
static void	fetch_go(struct repl *);
static void	repl_tick_cb(evutil_socket_t, short, void *);
static void	dispatch(struct repl *);
static int	repl_sync_role(struct repl *);

int
repl_priority_parse(const char *s)
{
	int i;

	for (i = 0; i < REPL_P_COUNT; i++)
		if (strcmp(s, repl_priority_names[i]) == 0)
			return i;
	return -1;
}

/* --- the entry table ------------------------------------------------ */

static struct ritem *
item_find(const struct repl *r, const char *key, size_t len)
{
	uint32_t h = umap_hash(key, len);
	struct ritem *it;

	for (it = r->tab[h & r->mask]; it != NULL; it = it->hnext)
		if (it->hash == h && it->keylen == len &&
		    memcmp(it->key, key, len) == 0)
			return it;
	return NULL;
}

static void
table_grow(struct repl *r)
{
	struct ritem **nt, *it, *next;
	size_t i, nmask = r->mask * 2 + 1;

	nt = xcalloc(nmask + 1, sizeof(*nt));
	for (i = 0; i <= r->mask; i++)
		for (it = r->tab[i]; it != NULL; it = next) {
			next = it->hnext;
			it->hnext = nt[it->hash & nmask];
			nt[it->hash & nmask] = it;
		}
	free(r->tab);
	r->tab = nt;
	r->mask = nmask;
}

static struct ritem *
item_get(struct repl *r, const char *key, size_t len)
{
	struct ritem *it;
	size_t b;

	if ((it = item_find(r, key, len)) != NULL)
		return it;
	if (r->count > r->mask)
		table_grow(r);
	it = xcalloc(1, sizeof(*it) + len + 1);
	it->hash = umap_hash(key, len);
	it->keylen = len;
	memcpy(it->key, key, len);
	it->prio = it->taken = it->again = -1;
	it->hidx = NOT_IN_HEAP;
	b = it->hash & r->mask;
	it->hnext = r->tab[b];
	r->tab[b] = it;
	r->count++;
	return it;
}

/* --- the delay heap, on due time ----------------------------------- */

static void
heap_swap(struct repl *r, size_t a, size_t b)
{
	struct ritem *t = r->heap[a];

	r->heap[a] = r->heap[b];
	r->heap[b] = t;
	r->heap[a]->hidx = a;
	r->heap[b]->hidx = b;
}

static void
heap_up(struct repl *r, size_t i)
{
	while (i > 0 && r->heap[(i - 1) / 2]->due > r->heap[i]->due) {
		heap_swap(r, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct repl *r, size_t i)
{
	size_t l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < r->nheap && r->heap[l]->due < r->heap[m]->due)
			m = l;
		if (l + 1 < r->nheap && r->heap[l + 1]->due < r->heap[m]->due)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(r, i, m);
		i = m;
	}
}

static void
heap_push(struct repl *r, struct ritem *it)
{
	if (r->nheap == r->cheap) {
		r->cheap = r->cheap ? r->cheap * 2 : 64;
		r->heap = xreallocarray(r->heap, r->cheap, sizeof(*r->heap));
	}
	it->hidx = r->nheap;
	r->heap[r->nheap++] = it;
	heap_up(r, it->hidx);
}

static void
heap_remove(struct repl *r, struct ritem *it)
{
	size_t i = it->hidx;

	if (i == NOT_IN_HEAP)
		return;
	it->hidx = NOT_IN_HEAP;
	if (i == --r->nheap)
		return;
	r->heap[i] = r->heap[r->nheap];
	r->heap[i]->hidx = i;
	heap_down(r, i);
	heap_up(r, i);
}

/* --- queue moves ---------------------------------------------------- */

static void
unqueue(struct repl *r, struct ritem *it)
{
	if (it->ready) {
		TAILQ_REMOVE(&r->ready[it->qprio], it, q);
		r->nready[it->qprio]--;
		it->ready = 0;
	}
	heap_remove(r, it);
}

/* Put a queued entry where it belongs: ready now, or in the heap. */
static void
requeue(struct repl *r, struct ritem *it, int64_t now)
{
	unqueue(r, it);
	if (it->prio < 0 || it->sync != NULL)
		return;
	if (it->due > now) {
		heap_push(r, it);
		return;
	}
	it->blocked = 0;
	/* Remembered: callers change prio before they requeue. */
	it->qprio = it->prio;
	TAILQ_INSERT_TAIL(&r->ready[it->qprio], it, q);
	r->nready[it->qprio]++;
	it->ready = 1;
}

/* On the list of the next flush; 1 when it was not yet. */
static int
dirty_push(struct repl *r, struct ritem *it)
{
	if (it->dirty)
		return 0;
	it->dirty = 1;
	r->dirty = xgrow(r->dirty, r->ndirty, &r->cdirty, sizeof(*r->dirty));
	r->dirty[r->ndirty++] = it;
	return 1;
}

static void
mark_dirty(struct repl *r, struct ritem *it)
{
	if (dirty_push(r, it))
		event_active(r->flush_ev, EV_TIMEOUT, 0);
}

/* Takes key. */
static void
urow_push(struct repl *r, char *key)
{
	r->urows = xgrow(r->urows, r->nurows, &r->curows, sizeof(*r->urows));
	r->urows[r->nurows++] = key;
}

static void
user_row_dirty(struct repl *r, const struct umap_entry *e)
{
	urow_push(r, xstrdup(e->key));
	event_active(r->flush_ev, EV_TIMEOUT, 0);
}

/* Set the entry's error; 1 when it says something new. */
static int
set_error(struct ritem *it, const char *fmt, ...)
{
	char buf[REPL_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (it->error != NULL && strcmp(it->error, buf) == 0)
		return 0;
	free(it->error);
	it->error = xstrdup(buf);
	return 1;
}

/* An entry with nothing left to do or to write leaves memory. */
/* No failure in a row counts any more: the user starts afresh. */
static void
failures_forget(struct ritem *it)
{
	it->fails = 0;
	it->reruns = 0;
	it->rerun75 = 0;
	it->stuck = 0;
}

static void
item_maybe_free(struct repl *r, struct ritem *it)
{
	struct ritem **pp;

	if (it->prio >= 0 || it->sync != NULL || it->dirty || it->flying ||
	    it->fails > 0 || it->stuck || it->again >= 0)
		return;
	unqueue(r, it);
	for (pp = &r->tab[it->hash & r->mask]; *pp != it; pp = &(*pp)->hnext)
		;
	*pp = it->hnext;
	r->count--;
	free(it->error);
	free(it->state);
	free(it);
}

/* Queue work on an entry (memory; the caller marks it dirty). */
static void
item_queue(struct repl *r, struct ritem *it, int prio, int full, int64_t now)
{
	if (it->sync != NULL) {
		/* The running sync may have missed this change. */
		if (it->again < 0 || prio < it->again)
			it->again = (int8_t)prio;
		it->again_full |= full != 0;
		return;
	}
	it->full |= full != 0;
	if (it->prio >= 0 && it->prio <= prio)
		return;
	if (it->prio < 0)
		it->queued = now;
	it->prio = (int8_t)prio;
	/* New work on a stuck or backing off user waits for its backoff:
	 * an event per message must not defeat it. */
	if (it->due < now || (it->fails == 0 && !it->blocked))
		it->due = now;
	requeue(r, it, now);
}

/* Work for another instance, the holder of role repl: stored as a
 * request at the next flush. */
static struct store_repl_request *
request_push(struct repl *r)
{
	r->reqs = xgrow(r->reqs, r->nreqs, &r->creqs, sizeof(*r->reqs));
	return &r->reqs[r->nreqs++];
}

static void
request_add(struct repl *r, const char *key, int prio, int full)
{
	struct store_repl_request *q;

	q = request_push(r);
	memset(q, 0, sizeof(*q));
	q->user = xstrdup(key);
	q->priority = prio;
	q->full = full != 0;
	q->at = now_msec();
	r->requested++;
	event_active(r->flush_ev, EV_TIMEOUT, 0);
}

static void
requests_clear(struct repl *r)
{
	size_t i;

	for (i = 0; i < r->nreqs; i++)
		free((char *)r->reqs[i].user);
	r->nreqs = 0;
}

/* Queue work on the user's entry here (the caller dispatches), or, when
 * another instance dispatches, ask it. */
static void
work(struct repl *r, const char *key, size_t len, int prio, int full,
    int64_t now)
{
	struct ritem *it;

	if (!r->held) {
		request_add(r, key, prio, full);
		return;
	}
	it = item_get(r, key, len);
	item_queue(r, it, prio, full, now);
	mark_dirty(r, it);
}

/* --- the store ------------------------------------------------------ */

static void
taken_push(struct repl *r, int64_t id)
{
	r->taken = xgrow(r->taken, r->ntaken, &r->ctaken, sizeof(*r->taken));
	r->taken[r->ntaken++] = id;
}

static int
took_already(const struct repl *r, int64_t id)
{
	size_t i;

	for (i = 0; i < r->ntaken; i++)
		if (r->taken[i] == id)
			return 1;
	return 0;
}

static void
waiter_push(struct repl *r, struct evhttp_request *req)
{
	r->waiters = xgrow(r->waiters, r->nwait, &r->cwait,
	    sizeof(*r->waiters));
	r->waiters[r->nwait++] = req;
}

static void
answer(struct evhttp_request **w, size_t n, int ok)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ok)
			evhttp_send_reply(w[i], 204, "No Content", NULL);
		else
			http_reply_error_reason(w[i], 503, "store",
			    "the replication queue could not be stored; "
			    "the sync waits in memory for the store");
	}
}

static void
answer_waiters(struct repl *r, int ok)
{
	answer(r->waiters, r->nwait, ok);
	r->nwait = 0;
	r->wait_since = 0;
}

/* An array and its count go to a flight; r starts an empty one. */
#define TAKE(a, n, from, nfrom, cfrom) do {				\
	(a) = (from);							\
	(n) = (nfrom);							\
	(from) = NULL;							\
	(nfrom) = (cfrom) = 0;						\
} while (0)

/* The first k of an array go to a flight, the rest stay for the next
 * flush, in their order. */
#define TAKE_FIRST(a, n, k, from, nfrom, cfrom) do {			\
	if ((k) == (nfrom)) {						\
		TAKE(a, n, from, nfrom, cfrom);				\
	} else {							\
		(a) = xreallocarray(NULL, (k) ? (k) : 1,		\
		    sizeof(*(from)));					\
		memcpy((a), (from), (k) * sizeof(*(from)));		\
		memmove((from), (from) + (k),				\
		    ((nfrom) - (k)) * sizeof(*(from)));			\
		(n) = (k);						\
		(nfrom) -= (k);						\
	}								\
} while (0)

/*
 * What one flush writes, in this order, as repl_flush counts it: dirty
 * entries, user rows (nurows of them looked at, nrows written), requests
 * to store and taken requests to delete.
 */
struct flush_take {
	size_t	nitems, nurows, nrows, nreqs, ntaken;
};

/*
 * Take what a flush writes out of r, into its flight.  The waiters go
 * with it only when nothing an event made is left behind: one whose
 * entry, row or request waits for the next flush is answered by that
 * flush's flight.
 */
static struct repl_flight *
flight_take(struct repl *r, const struct flush_take *k)
{
	struct repl_flight *fl = xcalloc(1, sizeof(*fl));
	int all;
	size_t i;

	all = k->nitems == r->ndirty && k->nurows == r->nurows &&
	    k->nreqs == r->nreqs;
	fl->r = r;
	fl->nrows = k->nrows;
	TAKE_FIRST(fl->items, fl->nitems, k->nitems, r->dirty, r->ndirty,
	    r->cdirty);
	TAKE_FIRST(fl->urows, fl->nurows, k->nurows, r->urows, r->nurows,
	    r->curows);
	TAKE_FIRST(fl->reqs, fl->nreqs, k->nreqs, r->reqs, r->nreqs, r->creqs);
	TAKE_FIRST(fl->taken, fl->ntaken, k->ntaken, r->taken, r->ntaken,
	    r->ctaken);
	if (all)
		TAKE(fl->waiters, fl->nwait, r->waiters, r->nwait, r->cwait);
	for (i = 0; i < fl->nitems; i++) {
		fl->items[i]->dirty = 0;
		fl->items[i]->flying = 1;
	}
	r->flight = fl;
	return fl;
}

/* The commit failed: what it wrote is to write again, from r. */
static void
flight_give_back(struct repl *r, struct repl_flight *fl)
{
	size_t i;

	for (i = 0; i < fl->nitems; i++) {
		fl->items[i]->flying = 0;
		dirty_push(r, fl->items[i]);
	}
	for (i = 0; i < fl->nurows; i++)
		urow_push(r, fl->urows[i]);
	fl->nurows = 0;
	for (i = 0; i < fl->nreqs; i++)
		*request_push(r) = fl->reqs[i];
	fl->nreqs = 0;
	for (i = 0; i < fl->ntaken; i++)
		if (!took_already(r, fl->taken[i]))
			taken_push(r, fl->taken[i]);
	for (i = 0; i < fl->nwait; i++)
		waiter_push(r, fl->waiters[i]);
	fl->nwait = 0;
}

static void
flight_free(struct repl_flight *fl)
{
	size_t i;

	for (i = 0; i < fl->nurows; i++)
		free(fl->urows[i]);
	for (i = 0; i < fl->nreqs; i++)
		free((char *)fl->reqs[i].user);
	free(fl->items);
	free(fl->urows);
	free(fl->reqs);
	free(fl->taken);
	free(fl->waiters);
	free(fl);
}

static void	flush_failed(struct repl *, size_t);

/* The store answered a flush's commit. */
static void
flush_done(void *arg, int rc)
{
	struct repl_flight *fl = arg;
	struct repl *r = fl->r;
	struct ritem *it;
	size_t i;

	if (r == NULL) {		/* landed at the end */
		flight_free(fl);
		return;
	}
	r->flight = NULL;
	if (rc == -1) {
		flight_give_back(r, fl);
		flush_failed(r, fl->nitems);
		flight_free(fl);
		dispatch(r);
		return;
	}
	log_debug("replication: %zu queue entries and %zu user rows stored, "
	    "%zu requests stored and %zu taken, in one transaction",
	    fl->nitems, fl->nrows, fl->nreqs, fl->ntaken);
	for (i = 0; i < fl->nitems; i++) {
		it = fl->items[i];
		it->flying = 0;
		/* Changed since: what it has now goes with the next flush. */
		if (it->dirty)
			continue;
		free(it->state);
		it->state = NULL;
		it->set_fast = it->set_full = it->set_ok = 0;
	}
	for (i = 0; i < fl->nitems; i++)
		item_maybe_free(r, fl->items[i]);
	answer(fl->waiters, fl->nwait, 1);
	r->wait_since = 0;
	flight_free(fl);
	if (r->ndirty > 0 || r->nurows > 0 || r->nreqs > 0 || r->ntaken > 0 ||
	    r->nwait > 0)
		event_active(r->flush_ev, EV_TIMEOUT, 0);
	dispatch(r);
}

/*
 * Store what changed since the last flush, in one transaction sent
 * (store_commit_send) so that the loop goes on while the store commits;
 * what changes meanwhile waits for the answer.  A sent transaction takes
 * at most STORE_SEND_MAX records, so a flush takes no more: the rest (a
 * burst of events while one flew, a failover that changed many users'
 * rows) stays in r for the flushes its answer starts, rather than be
 * committed with the loop waiting.
 */
static void
repl_flush(struct repl *r)
{
	struct roost *rs = r->rs;
	struct store *st = rs->store;
	struct store_tx *tx;
	struct store_repl *recs = NULL;
	struct store_user *rows = NULL;
	struct flush_take k;
	struct repl_flight *fl;
	struct umap_entry *e;
	struct ritem *it;
	char **later = NULL;
	size_t i, left, max, nlater = 0;

	repl_sync_role(r);
	if (r->flight != NULL)
		return;		/* its answer flushes again */
	if (r->ndirty == 0 && r->nurows == 0 && r->nreqs == 0 &&
	    r->ntaken == 0) {
		answer_waiters(r, 1);
		goto out;
	}
	/* A moment later rather than wait for a lookup batch to land, or
	 * hold up one that is about to go. */
	if (store_flying(st) || lookup_waiting(rs)) {
		struct timeval tv = { 0, REPL_YIELD_MS * 1000 };

		if (event_add(r->flush_ev, &tv) == -1)
			fatalx("event_add");
		goto out;
	}
	memset(&k, 0, sizeof(k));
	left = STORE_SEND_MAX;
	k.nitems = r->ndirty < left ? r->ndirty : left;
	left -= k.nitems;
	recs = xcalloc(k.nitems ? k.nitems : 1, sizeof(*recs));
	for (i = 0; i < k.nitems; i++) {
		it = r->dirty[i];
		recs[i].user = it->key;
		/* A running sync's work stays queued in the store. */
		recs[i].priority = it->sync != NULL ? it->taken : it->prio;
		recs[i].queued = it->queued;
		recs[i].due = it->due;
		recs[i].full = it->full;
		recs[i].fails = it->fails;
		recs[i].stuck = it->stuck;
		recs[i].error = it->error ? it->error : "";
		recs[i].state = it->state;
		recs[i].last_fast = it->set_fast;
		recs[i].last_full = it->set_full;
		recs[i].last_ok = it->set_ok;
	}
	max = r->nurows < left ? r->nurows : left;
	rows = xcalloc(max ? max : 1, sizeof(*rows));
	for (; k.nurows < r->nurows && k.nrows < left; k.nurows++) {
		e = umap_get(rs->users, r->urows[k.nurows],
		    strlen(r->urows[k.nurows]));
		/* A row not yet committed is written with its batch. */
		if (e == NULL || (e->flags & UMAP_F_PENDING) ||
		    e->backend >= rs->nslots || rs->backends[e->backend] == NULL)
			continue;
		/* A moving user's row waits for the move's end, and a row
		 * an admin change or expiry writes (held) for its job's: they
		 * commit on the admin lane's session, and a row written here
		 * from memory before theirs reached memory would undo it in
		 * the store. */
		if ((e->flags & UMAP_F_MOVING) ||
		    store_lane_held(rs->lane, e->key)) {
			later = xreallocarray(later, nlater + 1,
			    sizeof(*later));
			later[nlater++] = xstrdup(e->key);
			continue;
		}
		state_user_record(rs, e, &rows[k.nrows++]);
	}
	left -= k.nrows;
	k.nreqs = r->nreqs < left ? r->nreqs : left;
	left -= k.nreqs;
	/* Taken requests last: deleted only by a flush that writes every
	 * dirty entry, theirs among them. */
	k.ntaken = r->ntaken < left ? r->ntaken : left;
	/* Only moving users' rows: nothing to write yet (they stay). */
	if (k.nitems == 0 && k.nrows == 0 && k.nreqs == 0 && k.ntaken == 0) {
		answer_waiters(r, 1);
		goto out;
	}
	if ((tx = store_begin(st, STORE_TX_SEND)) == NULL) {
		flush_failed(r, k.nitems);
		goto out;
	}
	if (store_repl_put(tx, recs, k.nitems) == -1 ||
	    store_user_put(tx, rows, k.nrows) == -1 ||
	    (k.nreqs > 0 && store_repl_request_add(tx, r->reqs,
	    k.nreqs) == -1) ||
	    (k.ntaken > 0 && store_repl_request_delete(tx, r->taken,
	    k.ntaken) == -1)) {
		store_rollback(tx);
		flush_failed(r, k.nitems);
		goto out;
	}
	fl = flight_take(r, &k);
	for (i = 0; i < nlater; i++)
		urow_push(r, later[i]);
	nlater = 0;
	/* SQLite commits here and calls flush_done before it returns. */
	if (store_commit_send(tx, rs->base, flush_done, fl) == -1)
		flush_done(fl, -1);
out:
	for (i = 0; i < nlater; i++)
		free(later[i]);
	free(later);
	free(recs);
	free(rows);
	dispatch(r);
}

/* The store did not take the flush: again soon while it is busy, for a
 * bounded time; the waiters then hear it failed.  What was to be written
 * stays to write. */
static void
flush_failed(struct repl *r, size_t n)
{
	struct store *st = r->rs->store;
	struct timeval tv = { 0, REPL_FLUSH_RETRY_MS * 1000 };

	if (r->wait_since == 0)
		r->wait_since = now_msec_mono();
	if (store_retryable(st) &&
	    now_msec_mono() - r->wait_since < REPL_WAIT_MAX_MS) {
		if (event_add(r->flush_ev, &tv) == -1)
			fatalx("event_add");
		return;
	}
	log_limited(&store_limit, LOG_LEVEL_WARN, "replication: storing %zu "
	    "queue entries: %s", n, store_error(st));
	answer_waiters(r, 0);
	/* Kept dirty: written with the next change or the next tick. */
	r->wait_since = 0;
}

static void
repl_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	repl_flush(arg);
}

/* --- backends ------------------------------------------------------- */

static const struct backend *
slot_backend(const struct roost *rs, long slot)
{
	if (slot < 0 || (size_t)slot >= rs->nslots)
		return NULL;
	return rs->backends[slot];
}

/* Why a sync cannot run from b now, or NULL when it can. */
static const char *
source_problem(const struct backend *b)
{
	if (b->doveadm_url == NULL)
		return "has no doveadm API";
	if (b->state == BACKEND_DOWN)
		return "is down";
	if (b->failed || b->health == HEALTH_FAILED)
		return "failed its probes";
	return NULL;
}

static const char *
dest_problem(const struct backend *b)
{
	if (b->ports[PROTO_DOVEADM] == 0)
		return "serves no doveadm port";
	if (b->state == BACKEND_DOWN)
		return "is down";
	/* Being emptied: no new copies there until an admin decides. */
	if (b->state == BACKEND_DRAIN)
		return "is draining";
	if (b->failed || b->health == HEALTH_FAILED)
		return "failed its probes";
	return NULL;
}

static int
same_host(const struct backend *a, const struct backend *b)
{
	if (a->hostip[0] != '\0' && b->hostip[0] != '\0')
		return strcmp(a->hostip, b->hostip) == 0;
	return strcmp(a->host, b->host) == 0;
}

long
repl_pick(struct roost *rs, const char *key, size_t len, const char *tag,
    long primary)
{
	const struct backend *p = slot_backend(rs, primary);
	long rank[8];
	size_t n, i;

	if (p == NULL)
		return -1;
	n = placement_rank(key, len, tag, rs->backends, rs->nslots, primary,
	    rank, 8);
	for (i = 0; i < n; i++)
		if (!same_host(p, rs->backends[rank[i]]))
			return rank[i];
	return -1;
}

int
repl_choose(struct roost *rs, struct umap_entry *e)
{
	long r;

	if (e->replica != UMAP_NO_BACKEND)
		return 0;
	if ((r = repl_pick(rs, e->key, e->keylen, state_tag_name(rs, e->tag),
	    (long)e->backend)) == -1)
		return 0;
	e->replica = (uint16_t)r;
	e->flags &= ~UMAP_F_REPL_CURRENT;
	return 1;
}

int
repl_can_fail_over(const struct roost *rs, const struct umap_entry *e)
{
	const struct backend *b = slot_backend(rs, e->replica);

	return b != NULL && (e->flags & UMAP_F_REPL_CURRENT) &&
	    state_backend_usable(rs, e->replica, state_tag_name(rs, e->tag));
}

int
repl_forced(const struct roost *rs, const struct umap_entry *e)
{
	const struct backend *b = slot_backend(rs, e->backend);

	return b != NULL && b->force_failover;
}

void
repl_pair_changed(struct roost *rs, struct umap_entry *e)
{
	struct repl *r = rs->repl;
	struct ritem *it;

	if (!repl_sync_role(r)) {
		/* The holder's next sync is a full one: the stored state,
		 * of the old pair, is not used. */
		if (e->replica == UMAP_NO_BACKEND && repl_choose(rs, e))
			user_row_dirty(r, e);
		if (e->replica != UMAP_NO_BACKEND)
			request_add(r, e->key, REPL_P_SYNC, 1);
		return;
	}
	it = item_get(r, e->key, e->keylen);
	free(it->state);
	it->state = xstrdup("");
	failures_forget(it);
	it->due = 0;
	it->blocked = 0;
	mark_dirty(r, it);
	/* A move next to the replica's host left the user without one. */
	if (e->replica == UMAP_NO_BACKEND && repl_choose(rs, e))
		user_row_dirty(r, e);
	if (e->replica != UMAP_NO_BACKEND)
		item_queue(r, it, REPL_P_SYNC, 1, now_msec());
}

void
repl_failover(struct roost *rs, struct umap_entry *e)
{
	uint16_t old = e->backend;
	const char *from = slot_backend(rs, old) ?
	    rs->backends[old]->name : "(removed)";

	log_info("user %s: failed over from %s to its replica %s%s", e->key,
	    from, rs->backends[e->replica]->name,
	    (e->flags & UMAP_F_REPL_CURRENT) ? "" : " (not current: forced)");
	state_user_assign(rs, e, e->replica);
	e->replica = slot_backend(rs, old) != NULL ? old : UMAP_NO_BACKEND;
	e->since = (uint32_t)now_sec();
	/* The old backend misses what happens from now on. */
	e->flags &= ~UMAP_F_REPL_CURRENT;
	e->flags |= UMAP_F_FAILED_OVER;
	repl_pair_changed(rs, e);
}

void
repl_refused(struct roost *rs, const struct umap_entry *e)
{
	struct repl *r = rs->repl;
	uint64_t now = now_msec_mono();
	const struct backend *q = slot_backend(rs, e->replica);

	r->refused++;
	if (r->refused_logged != 0 && now - r->refused_logged < 10000)
		return;
	r->refused_logged = now;
	log_warnx("ALARM: user %s is not failed over: its replica %s %s "
	    "(%llu refused so far; roostctl backend force-failover "
	    "overrides)", e->key, q ? q->name : "(none)",
	    q == NULL ? "is gone" : !(e->flags & UMAP_F_REPL_CURRENT) ?
	    "was never synced" : "is unavailable",
	    (unsigned long long)r->refused);
}

/* --- syncs ---------------------------------------------------------- */

static void	sync_done(void *, const struct doveadm_result *);

/* The doveadm call of sync s (its pair, kind and user set) from state. */
static void
sync_call(struct repl *r, struct repl_sync *s, const char *state)
{
	struct roost *rs = r->rs;
	const struct backend *src = rs->backends[s->from];
	const struct backend *dst = rs->backends[s->to];
	char dest[BACKEND_HOST_MAX + 32];
	json_t *params;
	int full = s->full;

	snprintf(dest, sizeof(dest), dst->hostip[0] != '\0' &&
	    strchr(dst->hostip, ':') != NULL ? "tcp:[%s]:%u" : "tcp:%s:%u",
	    dst->hostip[0] != '\0' ? dst->hostip : dst->host,
	    dst->ports[PROTO_DOVEADM]);
	/* The state is passed even when empty: else no new one comes back.
	 * The lock timeout makes dsync lock the user, so that no other sync
	 * of it (a move's, another roostd's) runs at the same time. */
	params = json_pack("{s:s, s:[s], s:s, s:i}", "user", s->key,
	    "destination", dest, "state", full ? "" : state,
	    "lockTimeout", REPL_LOCK_TIMEOUT);
	if (params == NULL)
		fatalx("json_pack");
	if (full)
		json_object_set_new(params, "fullSync", json_true());
	s->fetching = 0;
	s->call = doveadm_run_warm(rs->doveadm, src->doveadm_url,
	    src->doveadm_key, "sync", params,
	    (unsigned)rs->conf->replication_sync_timeout * 1000, sync_done, s);
	log_debug("replication: %s: %s sync %s -> %s", s->key,
	    full ? "full" : "incremental", src->name, dst->name);
}

static struct repl_sync *
sync_new(struct repl *r, struct umap_entry *e, long from, long to, int full)
{
	struct repl_sync *s = xcalloc(1, sizeof(*s));

	s->r = r;
	s->full = full;
	s->from = from;
	s->to = to;
	memcpy(s->key, e->key, e->keylen + 1);
	s->keylen = e->keylen;
	return s;
}

static struct repl_sync *
sync_start(struct repl *r, struct umap_entry *e, long from, long to, int full,
    const char *state)
{
	struct repl_sync *s = sync_new(r, e, from, to, full);

	sync_call(r, s, state);
	return s;
}

/*
 * A sync that starts once its dsync state has come from the store: it
 * runs from now (the entry's placeholder), and the next read, sent as
 * soon as the store takes it, asks for its state (fetch_done starts it).
 */
static struct repl_sync *
fetch_start(struct repl *r, struct umap_entry *e, long from, long to)
{
	struct repl_sync *s = sync_new(r, e, from, to, 0);

	s->fetching = 1;
	s->fetch_gen = r->fetch_gen;
	r->fetch = xgrow(r->fetch, r->nfetch, &r->cfetch, sizeof(*r->fetch));
	r->fetch[r->nfetch++] = xstrdup(e->key);
	event_active(r->fetch_ev, EV_TIMEOUT, 0);
	return s;
}

struct state_get {
	char	*state;
};

static int
got_state(const struct store_repl *sr, void *arg)
{
	struct state_get *g = arg;

	g->state = xstrdup(sr->state ? sr->state : "");
	return 0;
}

/* The user's dsync state to start from: the one not yet stored, else the
 * store's ("" when it has none); NULL when the store cannot say. */
static char *
item_state(struct repl *r, const char *key, size_t keylen)
{
	struct store *st = r->rs->store;
	struct state_get g = { NULL };
	struct ritem *it = item_find(r, key, keylen);

	if (it != NULL && it->state != NULL)
		return xstrdup(it->state);
	if (st->ops->repl_get(st, key, got_state, &g) == -1) {
		log_debug("replication: reading the state of %s: %s", key,
		    store_error(st));
		return NULL;
	}
	return g.state != NULL ? g.state : xstrdup("");
}

static void
backoff(struct repl *r, struct ritem *it, int64_t now)
{
	int64_t d = REPL_BACKOFF_MIN_MS;
	unsigned i;

	for (i = 1; i < it->fails && d < REPL_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > REPL_BACKOFF_MAX_MS)
		d = REPL_BACKOFF_MAX_MS;
	it->due = now + d;
	requeue(r, it, now);
}

/* Wait for a backend to come back (repl_backend_changed) or a while. */
static void
block(struct repl *r, struct ritem *it, int64_t now, int64_t ms,
    int changed)
{
	it->blocked = 1;
	it->due = now + ms;
	requeue(r, it, now);
	/* Stored when the reason changes, not at every look: a backend down
	 * for hours must not cost a write per waiting user twice a minute.
	 * (Its entry is in the store already; only the due time lags.) */
	if (changed)
		mark_dirty(r, it);
}

/* Start the sync of a ready entry, or put it back to wait. */
static void
item_start(struct repl *r, struct ritem *it, int64_t now)
{
	struct roost *rs = r->rs;
	struct umap_entry *e;
	const struct backend *p, *q;
	const char *why;
	char *state = NULL;
	int full;

	unqueue(r, it);
	if ((e = umap_get(rs->users, it->key, it->keylen)) == NULL) {
		it->prio = -1;
		failures_forget(it);
		item_maybe_free(r, it);
		return;
	}
	if (e->flags & (UMAP_F_PENDING | UMAP_F_MOVING)) {
		block(r, it, now, REPL_LATER_MS, set_error(it, "waiting: the "
		    "user is %s", (e->flags & UMAP_F_MOVING) ? "being moved" :
		    "being placed"));
		return;
	}
	if (e->replica == UMAP_NO_BACKEND && repl_choose(rs, e))
		user_row_dirty(r, e);
	p = slot_backend(rs, e->backend);
	q = slot_backend(rs, e->replica);
	if (p == NULL || q == NULL) {
		/* Nothing to sync to: a pool of one backend. */
		it->prio = -1;
		set_error(it, "no replica: no other backend in the pool");
		mark_dirty(r, it);
		return;
	}
	if ((why = source_problem(p)) != NULL) {
		block(r, it, now, REPL_BLOCKED_MS, set_error(it, "waiting: "
		    "backend %s %s", p->name, why));
		return;
	}
	if ((why = dest_problem(q)) != NULL) {
		block(r, it, now, REPL_BLOCKED_MS, set_error(it, "waiting: "
		    "replica %s %s", q->name, why));
		return;
	}
	full = it->full || !(e->flags & UMAP_F_REPL_CURRENT);
	if (!full && it->state == NULL &&
	    rs->store->ops->states_send != NULL) {
		/* The state is on its way from the store. */
		it->taken = it->prio;
		it->prio = -1;
		it->blocked = 0;
		it->sync = fetch_start(r, e, (long)e->backend,
		    (long)e->replica);
		it->sync->it = it;
		r->running++;
		return;
	}
	if (!full && (state = item_state(r, it->key, it->keylen)) == NULL) {
		block(r, it, now, REPL_LATER_MS, 0);
		return;
	}
	it->taken = it->prio;
	it->prio = -1;
	it->full = 0;
	it->blocked = 0;
	it->sync = sync_start(r, e, (long)e->backend, (long)e->replica, full,
	    state ? state : "");
	it->sync->it = it;
	r->running++;
	free(state);
}

static void
dispatch(struct repl *r)
{
	struct roost *rs = r->rs;
	struct ritem *it;
	int64_t now;
	int p;

	if (!rs->conf->replication || r->paused || !repl_sync_role(r))
		return;
	now = now_msec();
	while (r->nheap > 0 && r->heap[0]->due <= now) {
		it = r->heap[0];
		requeue(r, it, now);
	}
	while (r->running < (size_t)rs->conf->replication_max_conns) {
		for (p = 0; p < REPL_P_COUNT; p++)
			if ((it = TAILQ_FIRST(&r->ready[p])) != NULL)
				break;
		if (p == REPL_P_COUNT)
			break;
		item_start(r, it, now);
	}
}

/* A sync whose state did not come (later: the store could not say), or
 * whose pair changed meanwhile: the entry waits to start again. */
static void
fetch_undo(struct repl *r, struct ritem *it, int64_t now, int later)
{
	free(it->sync);
	it->sync = NULL;
	r->running--;
	it->prio = it->taken;
	if (it->again >= 0 && (it->prio < 0 || it->again < it->prio))
		it->prio = it->again;
	if (it->prio < 0)
		it->prio = REPL_P_LOW;
	it->full |= it->again_full;
	it->taken = it->again = -1;
	it->again_full = 0;
	if (!later) {
		it->due = now;
		requeue(r, it, now);
		return;
	}
	/* As when the state could not be read at once: a moment later, and
	 * nothing to store (the store is what failed). */
	block(r, it, now, REPL_LATER_MS, 0);
}

/* The store's answer to a read of states: the syncs waiting for it start
 * (those still waiting: a sync cancelled meanwhile is gone). */
/* A move's sync waiting for the state of key from the read that came. */
static struct repl_run *
fetching_run(struct repl *r, const char *key)
{
	struct repl_run *run;

	LIST_FOREACH(run, &r->runs, entry)
		if (run->s->fetching && run->s->fetch_gen == r->fetching_gen &&
		    strcmp(run->s->key, key) == 0)
			return run;
	return NULL;
}

/* It starts with the state that came (the move chose the pair), or
 * fails as a sync would. */
static void
run_fetched(struct repl *r, struct repl_run *run, const char *state)
{
	struct roost *rs = r->rs;
	struct repl_sync *s = run->s;
	char err[REPL_ERR_MAX];

	if (state != NULL && slot_backend(rs, s->from) != NULL &&
	    slot_backend(rs, s->to) != NULL) {
		sync_call(r, s, state);
		return;
	}
	if (state == NULL)
		snprintf(err, sizeof(err), "the dsync state could not be "
		    "read: %s", store_error(rs->store));
	else
		snprintf(err, sizeof(err), "a backend of the sync was removed");
	LIST_REMOVE(run, entry);
	run->cb(run->arg, 0, err, "");
	free(s);
	free(run);
}

static void
fetch_done(void *arg, int rc)
{
	struct repl *r = arg;
	struct roost *rs = r->rs;
	struct ritem *it;
	struct repl_run *run;
	struct repl_sync *s;
	struct umap_entry *e;
	int64_t now = now_msec();
	size_t i;

	r->fetch_busy = 0;
	if (rc == -1)
		log_debug("replication: reading %zu dsync states: %s",
		    r->nfetching, store_error(rs->store));
	for (i = 0; !r->closing && i < r->nfetching; i++) {
		const char *key = r->fetching[i];
		size_t len = strlen(key);

		if ((it = item_find(r, key, len)) == NULL ||
		    (s = it->sync) == NULL || !s->fetching ||
		    s->fetch_gen != r->fetching_gen)
			continue;
		e = umap_get(rs->users, key, len);
		if (r->fstates[i] == NULL)
			fetch_undo(r, it, now, 1);
		else if (e == NULL || e->backend != s->from ||
		    e->replica != s->to || slot_backend(rs, s->from) == NULL ||
		    slot_backend(rs, s->to) == NULL)
			fetch_undo(r, it, now, 0);	/* decide again */
		else
			sync_call(r, s, r->fstates[i]);
	}
	for (i = 0; !r->closing && i < r->nfetching; i++)
		while ((run = fetching_run(r, r->fetching[i])) != NULL)
			run_fetched(r, run, r->fstates[i]);
	for (i = 0; i < r->nfetching; i++) {
		free(r->fetching[i]);
		free(r->fstates[i]);
	}
	free(r->fetching);
	free(r->fstates);
	r->fetching = r->fstates = NULL;
	r->nfetching = 0;
	if (r->closing)
		return;
	fetch_go(r);
	dispatch(r);
}

/* Send the next read of states, when there are users for it and the
 * store takes it (else a moment later). */
static void
fetch_go(struct repl *r)
{
	struct store *st = r->rs->store;

	if (r->fetch_busy || r->nfetch == 0)
		return;
	if (store_flying(st)) {
		struct timeval tv = { 0, REPL_YIELD_MS * 1000 };

		if (event_add(r->fetch_ev, &tv) == -1)
			fatalx("event_add");
		return;
	}
	r->fetching = r->fetch;
	r->nfetching = r->nfetch;
	r->fetch = NULL;
	r->nfetch = r->cfetch = 0;
	r->fstates = xcalloc(r->nfetching, sizeof(*r->fstates));
	r->fetching_gen = r->fetch_gen++;
	r->fetch_busy = 1;
	if (store_repl_states_send(st, r->rs->base,
	    (const char *const *)r->fetching, r->nfetching, r->fstates,
	    fetch_done, r) == -1)
		fetch_done(r, -1);
}

static void
fetch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fetch_go(arg);
}

/* The "state" of a sync's answer: [{"state":"..."}]; NULL when none. */
static const char *
answer_state(const json_t *resp)
{
	const json_t *row;

	if (!json_is_array(resp) || (row = json_array_get(resp, 0)) == NULL)
		return NULL;
	return json_string_value(json_object_get(row, "state"));
}

static void
item_result(struct repl *r, struct ritem *it, struct repl_sync *s,
    const struct doveadm_result *res)
{
	struct roost *rs = r->rs;
	struct umap_entry *e = umap_get(rs->users, it->key, it->keylen);
	int64_t now = now_msec(), nows = now / 1000;
	const char *state, *from = rs->backends[s->from] ?
	    rs->backends[s->from]->name : "?", *to = rs->backends[s->to] ?
	    rs->backends[s->to]->name : "?";
	int taken = it->taken, again = it->again, again_full = it->again_full;
	int prio;

	it->sync = NULL;
	it->taken = -1;
	it->again = -1;
	it->again_full = 0;
	/* What is still asked of this user if the sync did not do it. */
	prio = taken;
	if (again >= 0 && (prio < 0 || again < prio))
		prio = again;
	if (prio < 0)
		prio = REPL_P_LOW;
	if (e == NULL) {
		it->prio = -1;
		failures_forget(it);
		mark_dirty(r, it);
		return;
	}
	/* The pair changed under the sync (a failover, a move): its state
	 * belongs to the old pair.  Whatever was asked is asked again. */
	if (e->backend != s->from || e->replica != s->to) {
		it->prio = -1;
		item_queue(r, it, prio, 1, now);
		mark_dirty(r, it);
		return;
	}
	if (res->ok) {
		r->synced++;
		if ((state = answer_state(res->response)) != NULL) {
			free(it->state);
			it->state = xstrdup(state);
		}
		it->set_ok = nows;
		if (s->full)
			it->set_full = nows;
		else
			it->set_fast = nows;
		if (it->stuck)
			log_info("replication: %s syncs again", it->key);
		failures_forget(it);
		free(it->error);
		it->error = NULL;
		if (s->full && !(e->flags & UMAP_F_REPL_CURRENT)) {
			e->flags |= UMAP_F_REPL_CURRENT;
			user_row_dirty(r, e);
			log_info("replication: %s: replica %s is current", e->key,
			    rs->backends[s->to]->name);
		}
		it->prio = -1;
		/* Changes that came in while it ran go out next. */
		if (again >= 0)
			item_queue(r, it, again, again_full, now);
		mark_dirty(r, it);
		return;
	}
	it->full |= again_full;
	r->failed++;
	it->prio = (int8_t)prio;
	if (it->queued == 0)
		it->queued = now;
	if (res->exit_code == 2) {
		set_error(it, "sync from %s to %s: a mailbox changed during "
		    "the sync (exit 2)", from, to);
		if (++it->reruns <= REPL_RERUNS) {
			it->due = now;
			requeue(r, it, now);
			mark_dirty(r, it);
			return;
		}
		if (!it->stuck)
			log_warnx("replication: %s is stuck: its sync from %s "
			    "to %s exited 2 %d times in a row; retried with "
			    "backoff only", it->key, from, to, it->reruns);
		it->stuck = 1;
		it->reruns = 0;
		it->full = 1;
	} else if (res->exit_code == 67 || res->exit_code == 68) {
		/* dsync says 67 for a user unknown on either side. */
		set_error(it, "sync from %s to %s: %s or %s does not know the "
		    "user (exit %d); dropped from the queue", from, to, from,
		    to, res->exit_code);
		log_info("replication: %s: %s", it->key, it->error);
		it->prio = -1;
		failures_forget(it);
		mark_dirty(r, it);
		return;
	} else if (res->exit_code == 75) {
		set_error(it, "sync from %s to %s: temporary failure (exit "
		    "75)", from, to);
		/* Most often one side died mid-way: Dovecot panics when
		 * fcntl() reports a deadlock between dsync and another
		 * process of the user (both versions, either side), and the
		 * next run goes through.  Once at once, after a success. */
		if (it->fails == 0 && !it->rerun75) {
			it->rerun75 = 1;
			log_debug("replication: %s: %s; run again at once",
			    it->key, it->error);
			it->due = now;
			requeue(r, it, now);
			mark_dirty(r, it);
			return;
		}
	} else if (res->http_status == 0) {
		/* No answer: 2.3's doveadm dies when the replica refuses the
		 * connection; like 75, nothing says the state is bad. */
		set_error(it, "sync from %s to %s: %s", from, to, res->error ?
		    res->error : "no answer");
	} else {
		if (res->exit_code != 0)
			set_error(it, "sync from %s to %s failed (exit %d)",
			    from, to, res->exit_code);
		else if (res->http_status == 401)
			set_error(it, "backend %s refused roostd's doveadm "
			    "key", from);
		else
			set_error(it, "sync from %s to %s: %s", from, to,
			    res->error ? res->error : "failed");
		it->full = 1;
	}
	it->reruns = 0;
	if (it->fails < UINT16_MAX)
		it->fails++;
	log_debug("replication: %s: %s; retry %d", it->key, it->error,
	    it->fails);
	backoff(r, it, now);
	mark_dirty(r, it);
}

static void
sync_done(void *arg, const struct doveadm_result *res)
{
	struct repl_sync *s = arg;
	struct repl *r = s->r;
	struct repl_run *run = s->run;
	char err[REPL_ERR_MAX];

	s->call = NULL;
	if (run != NULL) {
		if (res->ok)
			err[0] = '\0';
		else if (res->exit_code != 0)
			snprintf(err, sizeof(err), "sync exited %d",
			    res->exit_code);
		else
			snprintf(err, sizeof(err), "sync: %s", res->error ?
			    res->error : "failed");
		LIST_REMOVE(run, entry);
		run->cb(run->arg, res->ok, err, res->ok &&
		    answer_state(res->response) != NULL ?
		    answer_state(res->response) : "");
		free(run);
		free(s);
		return;
	}
	r->running--;
	item_result(r, s->it, s, res);
	free(s);
	dispatch(r);
}

/* --- moves' syncs ----------------------------------------------------- */

struct repl_run *
repl_run_sync(struct roost *rs, struct umap_entry *e, long from, long to,
    const char *given, repl_run_cb cb, void *arg)
{
	struct repl *r = rs->repl;
	struct repl_run *run;
	struct ritem *it;
	char *state = NULL;
	int full, fetch = 0;

	full = (long)e->replica != to || !(e->flags & UMAP_F_REPL_CURRENT);
	if (given != NULL && *given != '\0') {
		full = 0;
		state = xstrdup(given);
	} else if (!full && rs->store->ops->states_send != NULL &&
	    ((it = item_find(r, e->key, e->keylen)) == NULL ||
	    it->state == NULL))
		fetch = 1;	/* from the store, without the loop waiting */
	else if (!full && (state = item_state(r, e->key, e->keylen)) == NULL)
		return NULL;
	run = xcalloc(1, sizeof(*run));
	run->cb = cb;
	run->arg = arg;
	run->s = fetch ? fetch_start(r, e, from, to) :
	    sync_start(r, e, from, to, full, state ? state : "");
	run->s->run = run;
	LIST_INSERT_HEAD(&r->runs, run, entry);
	free(state);
	return run;
}

void
repl_run_cancel(struct repl_run *run)
{
	if (run == NULL)
		return;
	doveadm_cancel(run->s->call);
	LIST_REMOVE(run, entry);
	free(run->s);
	free(run);
}

/* --- intake --------------------------------------------------------- */

static void
add_waiter(struct repl *r, struct evhttp_request *req)
{
	waiter_push(r, req);
	event_active(r->flush_ev, EV_TIMEOUT, 0);
}

void
repl_enqueue(struct roost *rs, struct umap_entry *e, int prio, int full,
    struct evhttp_request *req)
{
	struct repl *r = rs->repl;

	repl_sync_role(r);
	/* A user without a replica gets one now, stored with the entry. */
	if (rs->conf->replication && e->replica == UMAP_NO_BACKEND &&
	    !(e->flags & UMAP_F_PENDING) && repl_choose(rs, e))
		user_row_dirty(r, e);
	if (rs->conf->replication && e->replica != UMAP_NO_BACKEND &&
	    prio >= 0 && prio < REPL_P_COUNT) {
		work(r, e->key, e->keylen, prio, full, now_msec());
		/* The sync starts now, beside the store write: the lag of a
		 * delivery is what a replicator is judged by.  A crash before
		 * the write only means the change was not acknowledged, and the
		 * exporter's event is answered after the write. */
		dispatch(r);
	}
	if (req != NULL)
		add_waiter(r, req);
}

void
repl_now(struct roost *rs, struct umap_entry *e)
{
	struct repl *r = rs->repl;
	struct ritem *it = item_find(r, e->key, e->keylen);
	int64_t now = now_msec();

	if (it == NULL || it->sync != NULL || it->prio < 0 || it->due <= now)
		return;
	it->due = now;
	it->blocked = 0;
	requeue(r, it, now);
	dispatch(r);
}

void
repl_change(struct roost *rs, struct umap_entry *e, long slot, int prio,
    struct evhttp_request *req)
{
	struct repl *r = rs->repl;

	r->events++;
	if (slot == (long)e->backend) {
		repl_enqueue(rs, e, prio, 0, req);
		return;
	}
	if (slot == (long)e->replica) {
		/* dsync applying the primary's changes there. */
		r->from_replica++;
	} else {
		r->bypass++;
		if (!(e->flags & UMAP_F_BYPASS_LOGGED)) {
			e->flags |= UMAP_F_BYPASS_LOGGED;
			log_warnx("replication: a change of %s on %s, which "
			    "is not its backend: something reached it around "
			    "roostd's routing", e->key,
			    rs->backends[slot]->name);
		}
	}
	if (req != NULL)
		evhttp_send_reply(req, 204, "No Content", NULL);
}

void
repl_forget(struct roost *rs, const char *key, size_t len)
{
	struct repl *r = rs->repl;
	struct ritem *it;

	if (r == NULL || (it = item_find(r, key, len)) == NULL)
		return;
	it->prio = -1;
	it->again = -1;
	failures_forget(it);
	if (it->sync != NULL) {
		doveadm_cancel(it->sync->call);
		free(it->sync);
		it->sync = NULL;
		r->running--;
	}
	/* The store's row went with the user's. */
	if (it->dirty) {
		size_t i;

		for (i = 0; i < r->ndirty; i++)
			if (r->dirty[i] == it) {
				r->dirty[i] = r->dirty[--r->ndirty];
				break;
			}
		it->dirty = 0;
	}
	item_maybe_free(r, it);
}

int
repl_remove(struct roost *rs, struct umap_entry *e)
{
	struct repl *r = rs->repl;
	struct ritem *it;

	if ((it = item_find(r, e->key, e->keylen)) == NULL)
		return 0;
	unqueue(r, it);
	it->prio = -1;
	it->again = -1;
	failures_forget(it);
	it->full = 0;
	it->blocked = 0;
	free(it->error);
	it->error = NULL;
	mark_dirty(r, it);
	return 1;
}

void
repl_backend_changed(struct roost *rs, long slot)
{
	struct repl *r = rs->repl;
	const struct backend *b = slot_backend(rs, slot);
	struct umap_entry *e;
	struct ritem *it;
	int64_t now = now_msec();
	size_t i;
	int again = 0;

	if (r == NULL)
		return;
	for (i = 0; i < r->nheap; i++) {
		it = r->heap[i];
		if ((e = umap_get(rs->users, it->key, it->keylen)) == NULL ||
		    ((long)e->backend != slot && (long)e->replica != slot))
			continue;
		/* Back in service: users whose syncs failed against it before
		 * the probes noticed (their backoff began then) need not wait
		 * it out.  Stuck users failed for reasons of their own. */
		if (!it->blocked && (b == NULL || b->health != HEALTH_OK ||
		    it->fails == 0 || it->stuck || ((long)e->backend == slot ?
		    source_problem(b) : dest_problem(b)) != NULL))
			continue;
		it->due = now;
		again = 1;
	}
	if (again) {
		/* Due times only went down: rebuild the heap order. */
		for (i = r->nheap / 2 + 1; i-- > 0;)
			if (i < r->nheap)
				heap_down(r, i);
		dispatch(r);
	}
}

void
repl_backends_changed(struct roost *rs)
{
	if (rs->repl != NULL)
		rs->repl->assign_left = umap_slots(rs->users);
}

/* --- several roostd: role repl ---------------------------------------- */

static int
load_one(const struct store_repl *, void *);

/*
 * Role repl gained: the stored queue is ours to run, as at a start.  It
 * is read through the admin lane (a large queue, a slow store: not on the
 * loop), copied there, and taken up here when it came, if the role is
 * still ours.
 */
struct gain {
	struct lane_job		 job;		/* first */
	struct repl		*r;
	struct store_repl	*rows;
	size_t			 n, cap;
};

static int
gain_row(const struct store_repl *sr, void *arg)
{
	struct gain *g = arg;
	struct store_repl *c;

	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->rows = xreallocarray(g->rows, g->cap, sizeof(*g->rows));
	}
	c = &g->rows[g->n++];
	*c = *sr;
	c->user = xstrdup(sr->user);
	c->error = sr->error != NULL ? xstrdup(sr->error) : NULL;
	c->state = NULL;	/* read when a sync starts */
	return 0;
}

static int
gain_run(struct store *st, struct lane_job *job)
{
	struct gain *g = (struct gain *)job;

	return st->ops->repl_load(st, gain_row, g);
}

static int	repl_gained(struct repl *);

static void
gain_done(struct lane_job *job)
{
	struct gain *g = (struct gain *)job;
	struct repl *r = g->r;
	size_t i;

	r->gaining = 0;
	if (job->rc == -1)
		log_warnx("replication: role taken, the queue not loaded yet: "
		    "%s", job->err);
	else if (!r->held && role_held(r->rs, ROLE_REPL)) {
		for (i = 0; i < g->n; i++)
			load_one(&g->rows[i], r);
		repl_gained(r);
	}
	for (i = 0; i < g->n; i++) {
		free((char *)g->rows[i].user);
		free((char *)g->rows[i].error);
	}
	free(g->rows);
	free(g);
}

static int
repl_gain(struct repl *r)
{
	struct gain *g;

	/* The lane exists from before repl_init (main.c). */
	g = xcalloc(1, sizeof(*g));
	g->r = r;
	g->job.what = "replication queue";
	g->job.run = gain_run;
	g->job.done = gain_done;
	r->gaining = 1;
	store_lane_give(r->rs->lane, &g->job);
	return 0;
}

static int
repl_gained(struct repl *r)
{
	struct roost *rs = r->rs;

	r->held = 1;
	r->assign_left = umap_slots(rs->users);
	r->take_at = 0;
	event_active(r->take_ev, EV_TIMEOUT, 0);
	log_info("replication: dispatching here now (%zu users with work)",
	    r->count);
	return 0;
}

/*
 * Role repl lost: cancel the syncs and forget the queue, writing no entry.
 * The store has each running sync's entry still queued (the next holder
 * runs it again); work not stored yet goes to the holder as requests.
 */
static void
repl_drop(struct repl *r)
{
	struct ritem *it, *next;
	size_t i, n = 0;
	int p, prio, full;

	r->held = 0;
	for (i = 0; i <= r->mask; i++) {
		for (it = r->tab[i]; it != NULL; it = next) {
			next = it->hnext;
			/* A running sync's work is what it took. */
			prio = it->sync != NULL ? it->taken : it->prio;
			full = it->sync != NULL ? it->sync->full : it->full;
			if (it->sync != NULL) {
				doveadm_cancel(it->sync->call);
				free(it->sync);
				r->running--;
				n++;
			}
			/* Not stored yet: the next holder hears of it as a
			 * request, or the event that brought it is not
			 * acknowledged. */
			if ((it->dirty || it->flying) && prio >= 0)
				request_add(r, it->key, prio, full);
			if (it->again >= 0)
				request_add(r, it->key, it->again,
				    it->again_full);
			free(it->error);
			free(it->state);
			free(it);
		}
		r->tab[i] = NULL;
	}
	r->count = 0;
	r->nheap = 0;
	r->ndirty = 0;
	r->ntaken = 0;
	/* Its entries are gone; whatever becomes of its commit, the next
	 * holder has the queue (and the requests, if it failed). */
	if (r->flight != NULL)
		r->flight->nitems = r->flight->ntaken = 0;
	for (p = 0; p < REPL_P_COUNT; p++) {
		TAILQ_INIT(&r->ready[p]);
		r->nready[p] = 0;
	}
	log_warnx("replication: role lost; %zu syncs cancelled, to run again "
	    "on the next holder", n);
}

/* Act on the role as the store has it now; 1 while this one dispatches. */
static int
repl_sync_role(struct repl *r)
{
	int now = role_held(r->rs, ROLE_REPL);

	if (r->held && !now)
		repl_drop(r);
	else if (!r->held && now && !r->gaining && (r->gain_at == 0 ||
	    now_msec_mono() - r->gain_at >= REPL_TAKE_MS)) {
		r->gain_at = now_msec_mono();
		repl_gain(r);
	}
	return r->held;
}

void
repl_role(struct roost *rs, int held)
{
	(void)held;
	if (rs->repl != NULL)
		repl_sync_role(rs->repl);
}

static int
take_one(const struct store_repl_request *q, void *arg)
{
	struct repl *r = arg;
	struct roost *rs = r->rs;
	struct umap_entry *e;
	size_t len = strlen(q->user);

	if (took_already(r, q->id))
		return 0;
	if ((e = umap_get(rs->users, q->user, len)) == NULL &&
	    now_msec() - q->at < REPL_REQ_WAIT_MS)
		return -1;	/* the feed brings the user soon: later */
	taken_push(r, q->id);
	r->took++;
	log_debug("replication: request %lld for %s taken", (long long)q->id,
	    q->user);
	/* A user gone meanwhile: the request goes, with nothing to do. */
	if (e != NULL && q->priority >= 0 && q->priority < REPL_P_COUNT)
		work(r, q->user, len, q->priority, q->full, now_msec());
	return 0;
}

/* The requests read: queued here, up to a user the feed has not brought
 * yet (the rest waits for the next look). */
static void
took(void *arg, int rc)
{
	struct repl *r = arg;
	size_t i, before = r->ntaken;

	r->taking = 0;
	if (rc == -1)
		log_debug("replication: requests: %s",
		    store_error(r->rs->store));
	else if (!r->closing && r->held)
		for (i = 0; i < r->reqs_in.nreqs; i++)
			if (take_one(&r->reqs_in.reqs[i], r) == -1)
				break;
	store_scan_clear(&r->reqs_in);
	if (r->ntaken > before) {
		event_active(r->flush_ev, EV_TIMEOUT, 0);
		dispatch(r);
	}
}

/* The holder queues what other instances asked for: read without the
 * loop waiting (store_repl_requests_send). */
static void
take_requests(struct repl *r)
{
	struct store *st = r->rs->store;

	if (st->ops->repl_request_list == NULL || r->taking ||
	    store_flying(st))
		return;		/* the next tick looks */
	r->take_at = now_msec_mono();
	r->taking = 1;
	if (store_repl_requests_send(st, r->rs->base, REPL_TAKE_MAX,
	    &r->reqs_in, took, r) == -1)
		took(r, -1);
}

static void
take_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (repl_sync_role(arg))
		take_requests(arg);
}

void
repl_requested(struct roost *rs)
{
	struct repl *r = rs->repl;

	if (r != NULL && r->held)
		event_active(r->take_ev, EV_TIMEOUT, 0);
}

/* --- walks over the user map ----------------------------------------- */

struct walk {
	struct repl	*r;
	int64_t		 now;
	int		 assign;
};

/* Queue the user for a walk unless it has work queued or running already;
 * stored: whether the entry is written (the restart walk's are not). */
static void
walk_queue(struct walk *w, struct umap_entry *e, int prio, int full,
    int stored)
{
	struct repl *r = w->r;
	struct ritem *it = item_find(r, e->key, e->keylen);

	if (it != NULL && (it->prio >= 0 || it->sync != NULL))
		return;
	it = item_get(r, e->key, e->keylen);
	item_queue(r, it, prio, full, w->now);
	if (stored)
		mark_dirty(r, it);
}

static int
walk_one(struct umap_entry *e, void *arg)
{
	struct walk *w = arg;
	struct repl *r = w->r;

	if (e->flags & UMAP_F_PENDING)
		return 0;
	if (w->assign) {
		if (e->replica == UMAP_NO_BACKEND) {
			if (!repl_choose(r->rs, e))
				return 0;
			user_row_dirty(r, e);
		}
		/* Not a user placed moments ago: whoever placed it asked
		 * for its first sync (with several roostd, a request on its
		 * way here), and a second would only copy it all again. */
		if (!(e->flags & UMAP_F_REPL_CURRENT) &&
		    (int64_t)e->since * 1000 + REPL_REQ_WAIT_MS <= w->now)
			walk_queue(w, e, REPL_P_LOW, 1, 1);
		return 0;
	}
	if (e->replica != UMAP_NO_BACKEND)
		walk_queue(w, e, REPL_P_FULL, 1, 1);
	return 0;
}

/* The restart walk: an incremental sync of a current replica. */
static int
resync_one(struct umap_entry *e, void *arg)
{
	struct walk *w = arg;
	struct repl *r = w->r;
	const struct backend *p, *q;

	if ((e->flags & UMAP_F_PENDING) || e->replica == UMAP_NO_BACKEND ||
	    !(e->flags & UMAP_F_REPL_CURRENT))
		return 0;
	/* Not toward a backend that is down: every user of it would wait
	 * in memory and be written to the store at each look (block()).
	 * Their next change or full sync carries what they missed. */
	if ((p = slot_backend(r->rs, e->backend)) == NULL ||
	    (q = slot_backend(r->rs, e->replica)) == NULL ||
	    source_problem(p) != NULL || dest_problem(q) != NULL)
		return 0;
	/* Not stored: a roostd killed again walks again. */
	walk_queue(w, e, REPL_P_FULL, 0, 0);
	return 0;
}

static void
repl_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	struct roost *rs = r->rs;
	struct timeval tv = { 0, REPL_TICK_MS * 1000 };
	struct walk w = { r, now_msec(), 0 };
	long long ival = rs->conf->replication_full_sync_interval;
	size_t slots = umap_slots(rs->users), n;
	double budget;

	(void)fd;
	(void)what;
	if (repl_sync_role(r) && (r->take_at == 0 ||
	    now_msec_mono() - r->take_at >= REPL_TAKE_MS))
		take_requests(r);
	if (r->held && rs->conf->replication && !r->paused) {
		if (r->assign_left > 0) {
			w.assign = 1;
			n = umap_scan(rs->users, &r->assign_cursor,
			    r->assign_left < REPL_ASSIGN_SLOTS ?
			    r->assign_left : REPL_ASSIGN_SLOTS, walk_one, &w);
			r->assign_left -= n < r->assign_left ? n :
			    r->assign_left;
			w.assign = 0;
		}
		if (r->resync_left > 0 &&
		    r->nready[REPL_P_FULL] < REPL_RESYNC_QUEUED) {
			n = umap_scan(rs->users, &r->resync_cursor,
			    r->resync_left < REPL_RESYNC_SLOTS ?
			    r->resync_left : REPL_RESYNC_SLOTS, resync_one, &w);
			r->resync_left -= n < r->resync_left ? n :
			    r->resync_left;
		}
		if (ival > 0 && r->full_last > 0 && w.now > r->full_last) {
			budget = (double)slots * (double)(w.now -
			    r->full_last) / ((double)ival * 1000.0) +
			    r->full_carry;
			n = (size_t)budget;
			r->full_carry = budget - (double)n;
			if (n > 0)
				umap_scan(rs->users, &r->full_cursor, n,
				    walk_one, &w);
		}
	}
	/* Writes that failed are tried again. */
	if (r->ndirty > 0 || r->nurows > 0 || r->nreqs > 0 || r->ntaken > 0)
		event_active(r->flush_ev, EV_TIMEOUT, 0);
	r->full_last = w.now;
	dispatch(r);
	if (event_add(r->tick_ev, &tv) == -1)
		fatalx("event_add");
}

/* --- start, status ----------------------------------------------------- */

static int
load_one(const struct store_repl *sr, void *arg)
{
	struct repl *r = arg;
	struct ritem *it;
	size_t len = strlen(sr->user);
	int64_t now = now_msec();

	if (umap_get(r->rs->users, sr->user, len) == NULL)
		return 0;
	it = item_get(r, sr->user, len);
	it->fails = sr->fails > UINT16_MAX ? UINT16_MAX :
	    (uint16_t)(sr->fails < 0 ? 0 : sr->fails);
	it->stuck = sr->stuck != 0;
	it->full = sr->full != 0;
	if (sr->error != NULL && *sr->error != '\0')
		it->error = xstrdup(sr->error);
	if (sr->priority >= 0 && sr->priority < REPL_P_COUNT) {
		it->prio = (int8_t)sr->priority;
		it->queued = sr->queued > 0 ? sr->queued : now;
		it->due = sr->due;
		requeue(r, it, now);
	}
	return 0;
}

int
repl_init(struct roost *rs)
{
	struct repl *r;
	struct timeval tv = { 0, REPL_TICK_MS * 1000 };
	int p;

	r = xcalloc(1, sizeof(*r));
	r->rs = rs;
	r->mask = 1023;
	r->tab = xcalloc(r->mask + 1, sizeof(*r->tab));
	for (p = 0; p < REPL_P_COUNT; p++)
		TAILQ_INIT(&r->ready[p]);
	LIST_INIT(&r->runs);
	rs->repl = r;
	if ((r->flush_ev = event_new(rs->base, -1, 0, repl_flush_cb, r)) ==
	    NULL || (r->tick_ev = event_new(rs->base, -1, 0, repl_tick_cb,
	    r)) == NULL || (r->take_ev = event_new(rs->base, -1, 0, take_cb,
	    r)) == NULL || (r->fetch_ev = event_new(rs->base, -1, 0,
	    fetch_cb, r)) == NULL)
		goto fail;
	if (!role_held(rs, ROLE_REPL))
		goto armed;
	if (rs->store->ops->repl_load(rs->store, load_one, r) == -1) {
		log_warnx("loading the replication queue: %s",
		    store_error(rs->store));
		goto fail;
	}
	r->held = 1;
	r->assign_left = umap_slots(rs->users);
	r->resync_left = umap_slots(rs->users);
	if (r->count > 0)
		log_info("replication: %zu users with work in the queue",
		    r->count);
	if (rs->conf->replication && umap_count(rs->users) > 0)
		log_info("replication: every current replica gets an "
		    "incremental sync, at the lowest priority, for changes "
		    "made while roostd was not running");
armed:
	if (event_add(r->tick_ev, &tv) == -1)
		goto fail;
	return 0;
fail:
	repl_free(rs);
	return -1;
}

void
repl_free(struct roost *rs)
{
	struct repl *r = rs->repl;
	struct repl_run *run;
	struct ritem *it, *next;
	size_t i;

	if (r == NULL)
		return;
	/* Its commit, answered before the loop and the store go; a read
	 * of states too (starting nothing). */
	r->closing = 1;
	if (r->flight != NULL) {
		r->flight->r = NULL;
		r->flight = NULL;
		store_flight_land(rs->store);
	}
	if (r->fetch_busy || r->taking)
		store_flight_land(rs->store);
	while ((run = LIST_FIRST(&r->runs)) != NULL)
		repl_run_cancel(run);
	for (i = 0; i <= r->mask; i++)
		for (it = r->tab[i]; it != NULL; it = next) {
			next = it->hnext;
			if (it->sync != NULL) {
				doveadm_cancel(it->sync->call);
				free(it->sync);
			}
			free(it->error);
			free(it->state);
			free(it);
		}
	free(r->tab);
	free(r->heap);
	free(r->dirty);
	for (i = 0; i < r->nurows; i++)
		free(r->urows[i]);
	free(r->urows);
	free(r->waiters);
	requests_clear(r);
	free(r->reqs);
	free(r->taken);
	if (r->take_ev != NULL)
		event_free(r->take_ev);
	if (r->flush_ev != NULL)
		event_free(r->flush_ev);
	if (r->tick_ev != NULL)
		event_free(r->tick_ev);
	if (r->fetch_ev != NULL)
		event_free(r->fetch_ev);
	for (i = 0; i < r->nfetch; i++)
		free(r->fetch[i]);
	free(r->fetch);
	free(r);
	rs->repl = NULL;
}

void
repl_reconfigure(struct roost *rs)
{
	struct repl *r = rs->repl;

	/* Turned on: look at every user again. */
	if (rs->conf->replication)
		r->assign_left = umap_slots(rs->users);
	dispatch(r);
}

void
repl_pause(struct roost *rs, int paused)
{
	rs->repl->paused = paused != 0;
	dispatch(rs->repl);
}

struct all {
	struct repl	*r;
	int		 prio, full;
	int64_t		 now;
	size_t		 n;
};

static int
all_one(struct umap_entry *e, void *arg)
{
	struct all *a = arg;

	if ((e->flags & UMAP_F_PENDING) || e->replica == UMAP_NO_BACKEND)
		return 0;
	work(a->r, e->key, e->keylen, a->prio, a->full, a->now);
	a->n++;
	return 0;
}

size_t
repl_enqueue_all(struct roost *rs, int prio, int full)
{
	struct all a = { rs->repl, prio, full, now_msec(), 0 };

	repl_sync_role(rs->repl);
	umap_walk(rs->users, all_one, &a);
	return a.n;
}

json_t *
repl_status_json(struct roost *rs)
{
	struct repl *r = rs->repl;
	struct ritem *it;
	json_t *o, *q;
	int64_t now = now_msec(), oldest = 0;
	size_t i, failing = 0, stuck = 0, waiting = 0, backoff_n = 0;
	size_t reading = 0, queued[REPL_P_COUNT] = { 0 };
	int p;

	for (i = 0; i <= r->mask; i++)
		for (it = r->tab[i]; it != NULL; it = it->hnext) {
			p = it->sync != NULL ? it->taken : it->prio;
			if (it->sync != NULL && it->sync->fetching)
				reading++;
			if (it->stuck)
				stuck++;
			else if (it->fails > 0)
				failing++;
			if (it->sync == NULL && it->prio >= 0) {
				queued[it->prio]++;
				if (it->blocked)
					waiting++;
				else if (it->due > now)
					backoff_n++;
			}
			if (p >= 0 && it->queued > 0 &&
			    (oldest == 0 || it->queued < oldest))
				oldest = it->queued;
		}
	q = json_object();
	for (p = 0; p < REPL_P_COUNT; p++)
		json_object_set_new(q, repl_priority_names[p],
		    json_integer((json_int_t)queued[p]));
	o = json_pack("{s:b, s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "enabled", rs->conf->replication != 0, "paused", r->paused != 0,
	    "queued", q, "running", (json_int_t)r->running,
	    "failed", (json_int_t)failing, "stuck", (json_int_t)stuck,
	    "waiting", (json_int_t)waiting, "backoff", (json_int_t)backoff_n,
	    "max_conns", (json_int_t)rs->conf->replication_max_conns,
	    "oldest_pending_s", (json_int_t)(oldest > 0 && now > oldest ?
	    (now - oldest) / 1000 : 0));
	if (o == NULL)
		fatalx("json_pack");
	json_object_set_new(o, "totals", json_pack("{s:I, s:I, s:I, s:I, "
	    "s:I}", "synced", (json_int_t)r->synced, "failed",
	    (json_int_t)r->failed, "events", (json_int_t)r->events,
	    "events_not_from_backend", (json_int_t)r->bypass,
	    "events_from_replica", (json_int_t)r->from_replica));
	json_object_set_new(json_object_get(o, "totals"), "failovers_refused",
	    json_integer((json_int_t)r->refused));
	json_object_set_new(o, "reading_states",
	    json_integer((json_int_t)reading));
	/* Several roostd: does this one dispatch, and the requests it
	 * stored for the one that does, or took from the others. */
	json_object_set_new(o, "dispatching", json_boolean(r->held));
	json_object_set_new(json_object_get(o, "totals"), "requests_stored",
	    json_integer((json_int_t)r->requested));
	json_object_set_new(json_object_get(o, "totals"), "requests_taken",
	    json_integer((json_int_t)r->took));
	return o;
}

static json_t *
time_or_null(int64_t t)
{
	return t > 0 ? json_integer((json_int_t)t) : json_null();
}

static int
got_user(const struct store_repl *sr, void *arg)
{
	struct repl_user_row *g = arg;

	g->sr = *sr;
	g->sr.user = NULL;
	g->sr.state = NULL;
	g->error = xstrdup(sr->error ? sr->error : "");
	g->found = 1;
	return 0;
}

int
repl_user_read(struct store *st, const char *key, struct repl_user_row *g)
{
	memset(g, 0, sizeof(*g));
	return st->ops->repl_get(st, key, got_user, g);
}

void
repl_user_row_clear(struct repl_user_row *g)
{
	free(g->error);
	g->error = NULL;
}

json_t *
repl_user_json(struct roost *rs, struct umap_entry *e,
    const struct repl_user_row *row)
{
	struct repl *r = rs->repl;
	struct ritem *it = item_find(r, e->key, e->keylen);
	const struct repl_user_row g = *row;
	const struct backend *q = slot_backend(rs, e->replica);
	const char *st = "idle", *err;
	int64_t now = now_msec();
	json_t *o;
	int p;

	p = it == NULL ? -1 : it->sync != NULL ? it->taken : it->prio;
	if (it != NULL) {
		if (it->sync != NULL)
			st = "running";
		else if (it->stuck)
			st = "stuck";
		else if (it->prio >= 0 && it->blocked)
			st = "waiting";
		else if (it->prio >= 0 && it->due > now)
			st = "backoff";
		else if (it->prio >= 0)
			st = "queued";
	}
	err = it != NULL ? (it->error ? it->error : "") :
	    (g.error ? g.error : "");
	o = json_pack("{s:s, s:s, s:o, s:b, s:b, s:s, s:o, s:o, s:o, s:o, "
	    "s:o, s:i}",
	    "user", e->key,
	    "backend", rs->backends[e->backend] ?
	    rs->backends[e->backend]->name : "",
	    "replica", q ? json_string(q->name) : json_null(),
	    "replica_current", (e->flags & UMAP_F_REPL_CURRENT) != 0,
	    "failed_over", (e->flags & UMAP_F_FAILED_OVER) != 0,
	    "state", st,
	    "priority", p >= 0 ? json_string(repl_priority_names[p]) :
	    json_null(),
	    "last_fast_sync", time_or_null(g.sr.last_fast),
	    "last_full_sync", time_or_null(g.sr.last_full),
	    "last_success", time_or_null(g.sr.last_ok),
	    "last_error", *err ? json_string(err) : json_null(),
	    "failures", it != NULL ? (int)it->fails : g.sr.fails);
	if (o == NULL)
		fatalx("json_pack");
	if (it != NULL && it->sync == NULL && it->prio >= 0 && it->due > now)
		json_object_set_new(o, "next_try", json_integer(
		    (json_int_t)(it->due / 1000)));
	return o;
}
