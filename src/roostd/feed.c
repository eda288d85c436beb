/*
 * feed.c: the change feed (feed.h), the PostgreSQL side of several roostd
 * on one store.
 *
 * The store's triggers add a row to `changes` (kind, key) for each change
 * of what a lookup answers, numbered in commit order, and notify channel
 * FEED_CHANNEL at commit (store_pg.c, migration 9 -> 10).  This file keeps
 * a second libpq connection that only LISTENs, driven by the event loop
 * without ever waiting on it: connecting (PQconnectStart/PQconnectPoll),
 * LISTEN and the notifications are all read on the socket's events, and a
 * lost connection is tried again with a growing backoff (and the changes
 * are polled every FEED_TICK_MS meanwhile).
 *
 * A notification (and every (re)connect, which may have missed some) runs
 * a pass: the changes after the last one applied, read through the store
 * like every other store call (synchronous on the loop for now, bounded by
 * the store's statement timeout), then each named row read again and put
 * into memory with state.c.  Re-reading the row instead of carrying its
 * values makes a change idempotent: applying one twice, or out of date, only
 * ever leaves memory as the store is now.  Changes this instance wrote
 * carry its origin and are skipped: memory already has them.
 *
 * What is left alone: a user whose assignment this instance has not
 * committed yet, or that one of this instance's own moves holds, keeps its
 * memory (the commit or the move's compare-and-set decides).  The holder
 * of role moves (role.h) hears of moves stored by others from here.
 *
 * Changes older than FEED_RETAIN_MS are pruned; an instance that was away
 * longer (its last change pruned) reloads everything instead.
 */
#include <event2/event.h>

#include <libpq-fe.h>

#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "health.h"
#include "log.h"
#include "move.h"
#include "repl.h"
#include "roostd.h"
#include "util.h"
#include "xmalloc.h"

#define FEED_CHANNEL	"roost_changes"
#define FEED_BATCH	1000		/* changes read a pass */
#define FEED_YIELD_MS	2		/* a lookup batch in flight lands */
#define FEED_TICK_MS	1000		/* retry a failed pass, poll while
					 * not listening; prune */
#define FEED_PRUNE_MS	60000		/* between prunes */
#define FEED_RETAIN_MS	(10 * 60 * 1000) /* changes kept for the late */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define STORE_PREFIX	"postgresql:"

enum feed_state { F_IDLE, F_CONNECTING, F_LISTENING, F_READY };
enum change_kind { C_USER, C_BACKEND, C_HEALTH, C_PROXY, C_MOVE, C_REPL,
    C_UNKNOWN };

struct change {
	int64_t		 seq;
	enum change_kind kind;
	char		*key;
	int		 own;		/* written by this instance */
	int64_t		 at;
};

struct feed {
	struct roost	*rs;
	char		*conninfo;	/* never logged: may hold a password */
	PGconn		*conn;
	enum feed_state	 state;
	struct event	*sock_ev;	/* the connection's socket */
	struct event	*retry_ev;	/* backoff before a reconnect */
	struct event	*pass_ev;	/* a pass, soon */
	struct event	*tick_ev;
	unsigned	 backoff_ms;
	int		 behind;	/* a pass is owed (a failed one) */
	int64_t		 last;		/* the newest change applied */
	int64_t		 lag_ms;	/* commit to applied, of the last */
	uint64_t	 applied, reloads, reconnects;
	uint64_t	 pruned_at;	/* mono ms */
	char		**moving;	/* users another instance moves */
	size_t		 nmoving;
	struct change	*batch;		/* of the pass under way */
	size_t		 nbatch;
};

static void	feed_connect(struct feed *);
static void	feed_pass(struct feed *);

static const char *const kind_names[] = {
	[C_USER] = "user", [C_BACKEND] = "backend", [C_HEALTH] = "health",
	[C_PROXY] = "proxy", [C_MOVE] = "move", [C_REPL] = "repl",
};

/* Users being moved by another instance: few, so a plain array. */
static long
moving_find(const struct feed *f, const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < f->nmoving; i++)
		if (strlen(f->moving[i]) == len &&
		    memcmp(f->moving[i], key, len) == 0)
			return (long)i;
	return -1;
}

static void
moving_set(struct feed *f, const char *key, int on)
{
	long i = moving_find(f, key, strlen(key));

	if (on && i == -1) {
		f->moving = xreallocarray(f->moving, f->nmoving + 1,
		    sizeof(*f->moving));
		f->moving[f->nmoving++] = xstrdup(key);
	} else if (!on && i != -1) {
		free(f->moving[i]);
		f->moving[i] = f->moving[--f->nmoving];
	}
}

void
feed_moving_mark(struct roost *rs, const char *user, int on)
{
	if (rs->feed != NULL)
		moving_set(rs->feed, user, on);
}

int
feed_moving(const struct roost *rs, const char *key, size_t len)
{
	return rs->feed != NULL && moving_find(rs->feed, key, len) != -1;
}

/* May the feed write this user's entry?  Not while this instance holds
 * it: an assignment not yet committed, or a move of its own. */
static int
user_ours(struct feed *f, const struct umap_entry *e)
{
	if (e == NULL)
		return 0;
	if (e->flags & UMAP_F_PENDING)
		return 1;
	return (e->flags & UMAP_F_MOVING) &&
	    moving_find(f, e->key, e->keylen) == -1;
}

/* Apply helpers: each is one kind of change, from the row as stored now. */

static int
got_backend(const struct backend *b, void *arg)
{
	struct feed *f = arg;
	struct roost *rs = f->rs;
	long known = state_backend_find(rs, b->name), slot;

	if ((slot = state_backend_apply(rs, b)) == -1) {
		log_warnx("feed: backend %s: no free slot; not applied",
		    b->name);
		return 0;
	}
	if (known == -1)
		repl_backends_changed(rs);
	else
		repl_backend_changed(rs, slot);
	health_reroute(rs);
	return 0;
}

static int
apply_backend(struct feed *f, const char *name)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	long slot;
	int rc;

	if ((rc = st->ops->backend_get(st, name, got_backend, f)) != 0)
		return rc == -1 ? -1 : 0;
	if ((slot = state_backend_find(rs, name)) != -1) {
		state_backend_remove(rs, slot);
		repl_backends_changed(rs);
		health_reroute(rs);
	}
	return 0;
}

static int
got_user(const struct store_user *su, void *arg)
{
	struct feed *f = arg;
	struct roost *rs = f->rs;

	if (user_ours(f, umap_get(rs->users, su->user, strlen(su->user))))
		return 0;
	if (state_user_apply(rs, su) == 0)
		return 0;
	/* A backend this instance has not heard of yet: fetch it. */
	if (state_backend_find(rs, su->backend) == -1 &&
	    apply_backend(f, su->backend) == -1)
		return -1;
	if (state_user_apply(rs, su) == -1)
		log_warnx("feed: user %s on unknown backend %s; not applied",
		    su->user, su->backend);
	return 0;
}

static int
apply_user(struct feed *f, const char *user)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	struct umap_entry *e;
	int rc;

	if ((rc = st->ops->user_get(st, user, got_user, f)) != 0)
		return rc == -1 ? -1 : 0;
	e = umap_get(rs->users, user, strlen(user));
	if (e != NULL && !user_ours(f, e))
		state_user_forget(rs, e);
	return 0;
}

static int
got_health(const struct store_health *sh, void *arg)
{
	struct feed *f = arg;

	health_verdict_set(f->rs, sh);
	health_reroute(f->rs);
	return 0;
}

static int
apply_health(struct feed *f, const char *backend)
{
	struct store *st = f->rs->store;

	/* A verdict goes only with its backend: nothing to do then. */
	return st->ops->health_get(st, backend, got_health, f) == -1 ? -1 : 0;
}

static int
got_proxy(const struct proxy *p, void *arg)
{
	struct feed *f = arg;

	state_proxy_apply(f->rs, p);
	return 0;
}

static int
apply_proxy(struct feed *f, const char *name)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	long idx;
	int rc;

	if ((rc = st->ops->proxy_get(st, name, got_proxy, f)) != 0)
		return rc == -1 ? -1 : 0;
	if ((idx = state_proxy_find(rs, name)) != -1)
		state_proxy_remove(rs, idx);
	return 0;
}

/* A move past its start holds the user on every instance: its logins
 * wait until the move is over and the new row has come. */
static int
apply_move(struct feed *f, const char *user)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	struct umap_entry *e = umap_get(rs->users, user, strlen(user));
	int marked;

	if ((marked = st->ops->move_marked(st, user)) == -1)
		return -1;
	if (marked) {
		if (e != NULL && (e->flags & UMAP_F_MOVING) &&
		    moving_find(f, user, strlen(user)) == -1)
			goto told;	/* our own move */
		moving_set(f, user, 1);
		if (e != NULL)
			e->flags |= UMAP_F_MOVING;
	} else if (moving_find(f, user, strlen(user)) != -1) {
		moving_set(f, user, 0);
		if (e != NULL)
			e->flags &= ~UMAP_F_MOVING;
	}
told:
	/* A move stored for the holder, or the end of one handed to it. */
	move_changed_elsewhere(rs, user);
	return 0;
}

static int
apply(struct feed *f, const struct change *c)
{
	switch (c->kind) {
	case C_USER:
		return apply_user(f, c->key);
	case C_BACKEND:
		return apply_backend(f, c->key);
	case C_HEALTH:
		return apply_health(f, c->key);
	case C_PROXY:
		return apply_proxy(f, c->key);
	case C_MOVE:
		return apply_move(f, c->key);
	case C_REPL:
		/* Only the holder of role repl reads requests. */
		repl_requested(f->rs);
		return 0;
	case C_UNKNOWN:
		break;
	}
	return 0;
}

/*
 * Fell behind the kept history: make memory the store again, row by row,
 * keeping what this instance holds (as a change would).
 */
struct reload {
	struct feed	*f;
	char		**names;
	size_t		 nnames;
	struct umap	*seen;
};

static int
reload_backend(const struct backend *b, void *arg)
{
	struct reload *r = arg;

	r->names = xreallocarray(r->names, r->nnames + 1, sizeof(*r->names));
	r->names[r->nnames++] = xstrdup(b->name);
	return got_backend(b, r->f);
}

static int
reload_proxy(const struct proxy *p, void *arg)
{
	struct reload *r = arg;

	r->names = xreallocarray(r->names, r->nnames + 1, sizeof(*r->names));
	r->names[r->nnames++] = xstrdup(p->name);
	return got_proxy(p, r->f);
}

static int
reload_user(const struct store_user *su, void *arg)
{
	struct reload *r = arg;
	int created;

	umap_put(r->seen, su->user, strlen(su->user), &created);
	return got_user(su, r->f);
}

static int
reload_move(const struct store_move *m, void *arg)
{
	struct reload *r = arg;

	if (strcmp(m->state, "queued") == 0)
		return 0;
	return apply_move(r->f, m->user);
}

static int
named(const struct reload *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i], name) == 0)
			return 1;
	return 0;
}

static void
reload_names_free(struct reload *r)
{
	size_t i;

	for (i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	r->names = NULL;
	r->nnames = 0;
}

static int
keep_user(const struct umap_entry *e, void *arg)
{
	struct reload *r = arg;

	return umap_get(r->seen, e->key, e->keylen) != NULL ||
	    user_ours(r->f, e);
}

static int
feed_reload(struct feed *f)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	struct reload r = { f, NULL, 0, NULL };
	int64_t head;
	size_t i;
	long idx;
	char **was;
	size_t nwas;

	log_warnx("feed: changes after %lld were pruned before this instance "
	    "read them; reloading everything", (long long)f->last);
	if (st->ops->change_head(st, &head) == -1 ||
	    st->ops->backend_load(st, reload_backend, &r) == -1)
		goto fail;
	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] != NULL &&
		    !named(&r, rs->backends[i]->name))
			state_backend_remove(rs, (long)i);
	reload_names_free(&r);
	if (st->ops->health_load(st, got_health, f) == -1 ||
	    st->ops->proxy_load(st, reload_proxy, &r) == -1)
		goto fail;
	for (idx = (long)rs->nproxies - 1; idx >= 0; idx--)
		if (!named(&r, rs->proxies[idx]->name))
			state_proxy_remove(rs, idx);
	reload_names_free(&r);
	r.seen = umap_new(umap_count(rs->users));
	if (st->ops->user_load(st, reload_user, &r) == -1)
		goto fail;
	state_users_retain(rs, keep_user, &r);
	umap_free(r.seen);
	r.seen = NULL;
	/* Moves: those that ended while away, then those under way. */
	was = f->moving;
	nwas = f->nmoving;
	f->moving = NULL;
	f->nmoving = 0;
	for (i = 0; i < nwas; i++) {
		struct umap_entry *e = umap_get(rs->users, was[i],
		    strlen(was[i]));

		if (e != NULL)
			e->flags &= ~UMAP_F_MOVING;
		free(was[i]);
	}
	free(was);
	if (st->ops->move_list(st, 1, 0, 100000, reload_move, &r) == -1)
		goto fail;
	repl_backends_changed(rs);
	health_reroute(rs);
	f->last = head;
	f->reloads++;
	log_info("feed: reloaded %zu backends, %zu users", rs->nslots,
	    umap_count(rs->users));
	return 0;
fail:
	reload_names_free(&r);
	if (r.seen != NULL)
		umap_free(r.seen);
	log_warnx("feed: reload: %s; trying again", store_error(st));
	return -1;
}

static int
collect(const struct store_change *sc, void *arg)
{
	struct feed *f = arg;
	struct change *c;
	size_t k;

	for (k = 0; k < C_UNKNOWN; k++)
		if (strcmp(sc->kind, kind_names[k]) == 0)
			break;
	if (k == C_UNKNOWN)	/* a newer roostd's: not ours to read */
		log_debug("feed: change %lld of unknown kind %s skipped",
		    (long long)sc->seq, sc->kind);
	f->batch = xreallocarray(f->batch, f->nbatch + 1, sizeof(*f->batch));
	c = &f->batch[f->nbatch++];
	c->seq = sc->seq;
	c->kind = (enum change_kind)k;
	c->key = xstrdup(sc->key);
	c->own = strcmp(sc->origin,
	    f->rs->store->ops->change_origin(f->rs->store)) == 0;
	c->at = sc->at;
	return 0;
}

static void
batch_clear(struct feed *f)
{
	size_t i;

	for (i = 0; i < f->nbatch; i++)
		free(f->batch[i].key);
	free(f->batch);
	f->batch = NULL;
	f->nbatch = 0;
}

/* Read and apply the changes after f->last; FEED_BATCH a pass, the rest
 * in the next pass, so that the loop serves in between. */
static void
feed_pass(struct feed *f)
{
	struct store *st = f->rs->store;
	int64_t pruned = 0, after = f->last;
	size_t i, n;

	if (store_flying(st)) {
		struct timeval tv = { 0, FEED_YIELD_MS * 1000 };

		if (event_add(f->pass_ev, &tv) == -1)
			fatalx("event_add");
		return;
	}
	f->behind = 0;
	if (st->ops->change_list(st, after, FEED_BATCH, &pruned, collect,
	    f) == -1)
		goto busy;
	if (pruned > after) {
		batch_clear(f);
		if (feed_reload(f) == -1)
			f->behind = 1;
		return;
	}
	n = f->nbatch;
	for (i = 0; i < n; i++) {
		struct change *c = &f->batch[i];

		if (!c->own && c->kind != C_UNKNOWN) {
			if (apply(f, c) == -1)
				goto busy;
			f->applied++;
			f->lag_ms = now_msec() - c->at;
		}
		f->last = c->seq;
	}
	batch_clear(f);
	if (n == FEED_BATCH)
		event_active(f->pass_ev, EV_TIMEOUT, 0);
	return;
busy:
	batch_clear(f);
	log_debug("feed: changes after %lld not read: %s; trying again",
	    (long long)f->last, store_error(st));
	f->behind = 1;
}

static void
on_pass(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	feed_pass(arg);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct feed *f = arg;
	struct store *st = f->rs->store;
	uint64_t now = now_msec_mono();

	(void)fd;
	(void)what;
	/* Without the connection nothing wakes a pass: poll meanwhile. */
	if (f->behind || f->state != F_READY)
		feed_pass(f);
	if (now - f->pruned_at >= FEED_PRUNE_MS) {
		f->pruned_at = now;
		if (store_change_prune(store_auto(st), FEED_RETAIN_MS) == -1)
			log_debug("feed: prune: %s", store_error(st));
	}
}

/* The connection: lost, so close it and try again after the backoff. */
static void
feed_drop(struct feed *f, const char *why)
{
	struct timeval tv;

	if (f->state == F_READY)
		log_warnx("feed: connection lost (%s); reconnecting", why);
	else
		log_debug("feed: cannot connect (%s); next try in %u ms", why,
		    f->backoff_ms);
	event_del(f->sock_ev);
	if (f->conn != NULL)
		PQfinish(f->conn);
	f->conn = NULL;
	f->state = F_IDLE;
	tv.tv_sec = f->backoff_ms / 1000;
	tv.tv_usec = (f->backoff_ms % 1000) * 1000;
	event_add(f->retry_ev, &tv);
	f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
	    f->backoff_ms * 2;
}

/* libpq's message, first line only, for the log: never the conninfo. */
static const char *
conn_error(const struct feed *f)
{
	static char buf[160];

	snprintf(buf, sizeof(buf), "%s", f->conn != NULL ?
	    PQerrorMessage(f->conn) : "out of memory");
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] != '\0' ? buf : "connection closed";
}

static void	on_socket(evutil_socket_t, short, void *);

/* Wait for the socket (it may change while connecting). */
static void
feed_wait(struct feed *f, short what)
{
	event_del(f->sock_ev);
	event_assign(f->sock_ev, f->rs->base, PQsocket(f->conn),
	    what | (f->state == F_READY ? EV_PERSIST : 0), on_socket, f);
	event_add(f->sock_ev, NULL);
}

static void
feed_poll_connect(struct feed *f)
{
	switch (PQconnectPoll(f->conn)) {
	case PGRES_POLLING_READING:
		feed_wait(f, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		feed_wait(f, EV_WRITE);
		return;
	case PGRES_POLLING_FAILED:
		feed_drop(f, conn_error(f));
		return;
	default:
		break;
	}
	if (PQsetnonblocking(f->conn, 1) == -1 ||
	    !PQsendQuery(f->conn, "LISTEN " FEED_CHANNEL)) {
		feed_drop(f, conn_error(f));
		return;
	}
	f->state = F_LISTENING;
	if (PQflush(f->conn) == 1)
		feed_wait(f, EV_READ | EV_WRITE);
	else
		feed_wait(f, EV_READ);
}

/* Results of LISTEN (or anything else): 0 while all went well. */
static int
feed_results(struct feed *f)
{
	PGresult *res;
	int bad = 0;

	while (!PQisBusy(f->conn) && (res = PQgetResult(f->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			bad = 1;
		PQclear(res);
		if (!bad && f->state == F_LISTENING) {
			f->state = F_READY;
			f->backoff_ms = BACKOFF_MIN_MS;
			f->reconnects++;
			log_info("feed: listening for changes");
			feed_wait(f, EV_READ);
			/* What came while there was no connection. */
			event_active(f->pass_ev, EV_TIMEOUT, 0);
		}
	}
	return bad ? -1 : 0;
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct feed *f = arg;
	PGnotify *n;
	int wake = 0;

	(void)fd;
	if (f->state == F_CONNECTING) {
		feed_poll_connect(f);
		return;
	}
	if ((what & EV_WRITE) && PQflush(f->conn) == -1) {
		feed_drop(f, conn_error(f));
		return;
	}
	if (!(what & EV_READ))
		return;
	if (!PQconsumeInput(f->conn) || feed_results(f) == -1 ||
	    PQstatus(f->conn) != CONNECTION_OK) {
		feed_drop(f, conn_error(f));
		return;
	}
	while ((n = PQnotifies(f->conn)) != NULL) {
		if (strcmp(n->relname, FEED_CHANNEL) == 0)
			wake = 1;
		PQfreemem(n);
	}
	if (f->state == F_LISTENING)
		feed_wait(f, EV_READ);
	if (wake)
		feed_pass(f);
}

static void
feed_connect(struct feed *f)
{
	/* The string's settings win over the defaults before it; the name
	 * after it wins over the string's, so the feed is easy to tell
	 * from the store's own connection. */
	const char *keys[] = { "connect_timeout", "dbname",
	    "application_name", NULL };
	const char *vals[] = { "5", f->conninfo, "roostd-feed", NULL };

	f->conn = PQconnectStartParams(keys, vals, 1);
	if (f->conn == NULL || PQstatus(f->conn) == CONNECTION_BAD) {
		feed_drop(f, conn_error(f));
		return;
	}
	f->state = F_CONNECTING;
	feed_wait(f, EV_WRITE);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	feed_connect(arg);
}

int
feed_init(struct roost *rs)
{
	struct store *st = rs->store;
	struct feed *f;

	if (st->ops->change_head == NULL ||
	    strncmp(rs->conf->store, STORE_PREFIX, strlen(STORE_PREFIX)) != 0)
		return 0;
	f = xcalloc(1, sizeof(*f));
	f->rs = rs;
	/* A copy: SIGHUP replaces the config (the store setting itself
	 * needs a restart). */
	f->conninfo = xstrdup(rs->conf->store + strlen(STORE_PREFIX));
	f->backoff_ms = BACKOFF_MIN_MS;
	if (st->ops->change_head(st, &f->last) == -1) {
		log_warnx("feed: %s", store_error(st));
		free(f->conninfo);
		free(f);
		return -1;
	}
	rs->feed = f;
	return 0;
}

int
feed_start(struct roost *rs)
{
	struct feed *f = rs->feed;
	struct timeval tv = { FEED_TICK_MS / 1000, (FEED_TICK_MS % 1000) * 1000 };

	if (f == NULL)
		return 0;
	f->sock_ev = event_new(rs->base, -1, 0, on_socket, f);
	f->retry_ev = evtimer_new(rs->base, on_retry, f);
	f->pass_ev = event_new(rs->base, -1, 0, on_pass, f);
	f->tick_ev = event_new(rs->base, -1, EV_PERSIST, on_tick, f);
	if (f->sock_ev == NULL || f->retry_ev == NULL || f->pass_ev == NULL ||
	    f->tick_ev == NULL || event_add(f->tick_ev, &tv) == -1)
		return -1;
	f->pruned_at = now_msec_mono() - FEED_PRUNE_MS;
	feed_connect(f);
	return 0;
}

void
feed_free(struct roost *rs)
{
	struct feed *f = rs->feed;
	size_t i;

	if (f == NULL)
		return;
	if (f->conn != NULL)
		PQfinish(f->conn);
	if (f->sock_ev != NULL)
		event_free(f->sock_ev);
	if (f->retry_ev != NULL)
		event_free(f->retry_ev);
	if (f->pass_ev != NULL)
		event_free(f->pass_ev);
	if (f->tick_ev != NULL)
		event_free(f->tick_ev);
	for (i = 0; i < f->nmoving; i++)
		free(f->moving[i]);
	free(f->moving);
	batch_clear(f);
	free(f->conninfo);
	free(f);
	rs->feed = NULL;
}

json_t *
feed_status_json(const struct roost *rs)
{
	const struct feed *f = rs->feed;

	if (f == NULL)
		return json_null();
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "connected", f->state == F_READY,
	    "last_seq", (json_int_t)f->last,
	    "lag_ms", (json_int_t)f->lag_ms,
	    "applied", (json_int_t)f->applied,
	    "reloads", (json_int_t)f->reloads,
	    "connects", (json_int_t)f->reconnects,
	    "moving", (json_int_t)f->nmoving);
}
