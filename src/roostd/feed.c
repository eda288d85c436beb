/*
 * feed.c: the change feed (feed.h), the PostgreSQL side of several roostd
 * on one store.
 *
 * The store's triggers add a row to `changes` (kind, key) for each change
 * of what a lookup answers, numbered in commit order, and notify channel
 * FEED_CHANNEL at commit (store_pg.c, migration 9 -> 10).  This file keeps
 * a second libpq connection of its own, driven by the event loop without
 * ever waiting on it: connecting (PQconnectStart/PQconnectPoll), LISTEN,
 * the notifications and the reads all go on the socket's events, and a
 * lost connection is tried again with a growing backoff.
 *
 * A notification (and every (re)connect, which may have missed some) runs
 * a pass: one read (store_pg.h) of the changes after the last one applied
 * together with the rows they name as they are now, applied when all of it
 * has come.  Applying the row instead of carrying values in the change
 * makes a change idempotent: applying one twice, or out of date, only ever
 * leaves memory as the store is now.  Changes this instance wrote carry
 * its origin and are skipped: memory already has them.  A read waits for
 * the server as long as FEED_STMT_MS allows, never holding the loop; while
 * the connection is down, a pass every FEED_TICK_MS goes through the
 * store's own connection instead, within the store's bound.
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
#include "store_pg.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

#define FEED_CHANNEL	"roost_changes"
#define FEED_BATCH	1000		/* changes read a pass */
#define FEED_YIELD_MS	2		/* a lookup batch in flight lands */
#define FEED_STMT_MS	5000		/* the feed session's statement bound */
#define FEED_READ_MS	(FEED_STMT_MS + 1500) /* then the connection goes */
#define FEED_RELOAD_MS	(STORE_FEED_PARTS * FEED_STMT_MS + 1500) /* a reload's
					 * statements, each bounded */
#define FEED_TICK_MS	1000		/* retry a failed pass, poll while
					 * not listening; prune */
#define FEED_PRUNE_MS	60000		/* between prunes */
#define FEED_RETAIN_MS	(10 * 60 * 1000) /* changes kept for the late */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define STORE_PREFIX	"postgresql:"

enum feed_state { F_IDLE, F_CONNECTING, F_LISTENING, F_READY };
enum feed_read { READ_NONE, READ_CHANGES, READ_ROWS, READ_RELOAD };
enum change_kind { C_USER, C_BACKEND, C_HEALTH, C_PROXY, C_MOVE, C_REPL,
    C_UNKNOWN };

struct change {
	int64_t		 seq;
	enum change_kind kind;
	char		*key;
	int		 own;		/* written by this instance */
	int64_t		 at;
};

/*
 * A pass between its two reads: the keys of the batch's changes by another
 * writer, one set per kind (the entries' flags say which were met in the
 * rows), and the parts of the rows to read.
 */
#define MET		0x01	/* its row came */

struct feed;

struct pass {
	struct feed	*f;
	struct umap	*want[C_UNKNOWN];
	int		 repl;		/* replication requests were stored */
	size_t		 foreign;	/* changes by another writer */
	int64_t		 last_at;	/* the newest of those */
	int64_t		 after, upto;	/* the batch: changes after, up to */
	unsigned	 parts;		/* rows to read: 1 << store_feed_part */
	size_t		 nparts;
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
	int		 pruning;	/* a prune is in the admin lane */
	int		 lane_pass;	/* a pass's read is in the lane */
	char		**moving;	/* users another instance moves */
	size_t		 nmoving;
	struct change	*batch;		/* of the pass under way */
	size_t		 nbatch;
	int		 busy;		/* the connection has a query out */
	int		 reading;	/* that query is a pass's read:
					 * enum feed_read */
	struct pass	 pass;
	int		 owed;		/* a pass, once the query is done */
	uint64_t	 read_at;	/* mono ms the read went out */
	struct event	*read_ev;	/* its bound */
	PGresult	*res[STORE_FEED_PARTS]; /* its results so far */
	size_t		 nres;
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

static void
drop_backend(struct feed *f, const char *name)
{
	struct roost *rs = f->rs;
	long slot;

	if ((slot = state_backend_find(rs, name)) != -1) {
		state_backend_remove(rs, slot);
		repl_backends_changed(rs);
		health_reroute(rs);
	}
}

static int
got_user(const struct store_user *su, void *arg)
{
	struct feed *f = arg;
	struct roost *rs = f->rs;

	if (user_ours(f, umap_get(rs->users, su->user, strlen(su->user))))
		return 0;
	/*
	 * A backend not known here yet.  Added by the admin lane, whose
	 * change the feed skips as this instance's own: it is in memory
	 * once the lane's job is done, and the pass is read again then.
	 * Else the row is newer than the read's backends (added since), so
	 * the change that put the user there comes after the backend's,
	 * and a later pass applies both, in that order; memory keeps the
	 * user as it was until then.
	 */
	if (state_user_apply(rs, su) == 0)
		return 0;
	if (store_lane_busy(rs->lane))
		return -1;
	log_debug("feed: user %s on backend %s, not known yet; applied "
	    "with a later change", su->user, su->backend);
	return 0;
}

/* The user has no row any more. */
static void
drop_user(struct feed *f, const char *user)
{
	struct roost *rs = f->rs;
	struct umap_entry *e = umap_get(rs->users, user, strlen(user));

	if (e != NULL && !user_ours(f, e))
		state_user_forget(rs, e);
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
got_proxy(const struct proxy *p, void *arg)
{
	struct feed *f = arg;

	state_proxy_apply(f->rs, p);
	return 0;
}

static void
drop_proxy(struct feed *f, const char *name)
{
	long idx;

	if ((idx = state_proxy_find(f->rs, name)) != -1)
		state_proxy_remove(f->rs, idx);
}

/* A move past its start (marked) holds the user on every instance: its
 * logins wait until the move is over and the new row has come. */
static void
move_mark(struct feed *f, const char *user, int marked)
{
	struct roost *rs = f->rs;
	struct umap_entry *e = umap_get(rs->users, user, strlen(user));

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
reload_moving(const char *user, void *arg)
{
	struct reload *r = arg;

	move_mark(r->f, user, 1);
	return 0;
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

/*
 * The answer of a reload read (store_pg_feed_reload_sql: the head, then
 * every row, one result a part) has all come: memory becomes the store.
 * 0, or -1 (what was applied stays; the next pass reads again).
 */
static int
reload_apply(struct feed *f, PGresult **res)
{
	struct roost *rs = f->rs;
	struct store *st = rs->store;
	struct reload r = { f, NULL, 0, NULL };
	struct store_feed_cbs cbs = { NULL, reload_backend, got_health,
	    reload_proxy, reload_moving, reload_user, &r };
	int64_t head;
	size_t i;
	long idx;

	if (store_pg_feed_head(st, res[STORE_FEED_CHANGES], &head) == -1 ||
	    store_pg_feed_rows(st, STORE_FEED_BACKENDS,
	    res[STORE_FEED_BACKENDS], &cbs, NULL) == -1)
		goto fail;
	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] != NULL &&
		    !named(&r, rs->backends[i]->name))
			state_backend_remove(rs, (long)i);
	reload_names_free(&r);
	cbs.arg = f;
	if (store_pg_feed_rows(st, STORE_FEED_HEALTH, res[STORE_FEED_HEALTH],
	    &cbs, NULL) == -1)
		goto fail;
	cbs.arg = &r;
	if (store_pg_feed_rows(st, STORE_FEED_PROXIES,
	    res[STORE_FEED_PROXIES], &cbs, NULL) == -1)
		goto fail;
	for (idx = (long)rs->nproxies - 1; idx >= 0; idx--)
		if (!named(&r, rs->proxies[idx]->name))
			state_proxy_remove(rs, idx);
	reload_names_free(&r);
	r.seen = umap_new(umap_count(rs->users));
	if (store_pg_feed_rows(st, STORE_FEED_USERS, res[STORE_FEED_USERS],
	    &cbs, NULL) == -1)
		goto fail;
	state_users_retain(rs, keep_user, &r);
	umap_free(r.seen);
	r.seen = NULL;
	/* Moves: those that ended while away, then those under way. */
	for (i = 0; i < f->nmoving; i++) {
		struct umap_entry *e = umap_get(rs->users, f->moving[i],
		    strlen(f->moving[i]));

		if (e != NULL)
			e->flags &= ~UMAP_F_MOVING;
		free(f->moving[i]);
	}
	free(f->moving);
	f->moving = NULL;
	f->nmoving = 0;
	if (store_pg_feed_rows(st, STORE_FEED_MOVING, res[STORE_FEED_MOVING],
	    &cbs, NULL) == -1)
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
	/* The admin lane's session writes as this instance too. */
	c->own = strcmp(sc->origin,
	    f->rs->store->ops->change_origin(f->rs->store)) == 0 ||
	    store_lane_own(f->rs->lane, sc->origin);
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

/*
 * A pass's wanted rows: the keys of the batch's changes by another writer,
 * one set per kind (the entries' flags say which were met in the rows).
 * The rows are read at one time for the whole batch and applied kind by
 * kind: backends before the users on them, a move's end after its user's
 * new row.
 */
static struct umap_entry *
wanted(struct pass *p, enum change_kind k, const char *key)
{
	if (p->want[k] == NULL)
		return NULL;
	return umap_get(p->want[k], key, strlen(key));
}

static int
want_backend(const struct backend *b, void *arg)
{
	struct pass *p = arg;
	struct umap_entry *w = wanted(p, C_BACKEND, b->name);

	if (w == NULL)
		return 0;
	w->flags |= MET;
	return got_backend(b, p->f);
}

static int
want_health(const struct store_health *sh, void *arg)
{
	struct pass *p = arg;
	struct umap_entry *w = wanted(p, C_HEALTH, sh->backend);

	if (w == NULL)
		return 0;
	w->flags |= MET;
	return got_health(sh, p->f);
}

static int
want_proxy(const struct proxy *px, void *arg)
{
	struct pass *p = arg;
	struct umap_entry *w = wanted(p, C_PROXY, px->name);

	if (w == NULL)
		return 0;
	w->flags |= MET;
	return got_proxy(px, p->f);
}

static int
want_moving(const char *user, void *arg)
{
	struct pass *p = arg;
	struct umap_entry *w = wanted(p, C_MOVE, user);

	if (w != NULL)
		w->flags |= MET;
	return 0;
}

/* A user row comes for a user change and for a move's (whose end the
 * new row goes with). */
static int
want_user(const struct store_user *su, void *arg)
{
	struct pass *p = arg;
	struct umap_entry *w = wanted(p, C_USER, su->user);

	if (w != NULL)
		w->flags |= MET;
	else if (wanted(p, C_MOVE, su->user) == NULL)
		return 0;
	return got_user(su, p->f);
}

struct unmet {
	struct pass	*p;
	enum change_kind kind;
};

/* A wanted key whose row did not come: gone (a move: over). */
static int
unmet(struct umap_entry *w, void *arg)
{
	struct unmet *u = arg;
	struct feed *f = u->p->f;

	switch (u->kind) {
	case C_BACKEND:
		if (!(w->flags & MET))
			drop_backend(f, w->key);
		break;
	case C_PROXY:
		if (!(w->flags & MET))
			drop_proxy(f, w->key);
		break;
	case C_USER:
		if (!(w->flags & MET))
			drop_user(f, w->key);
		break;
	case C_MOVE:
		move_mark(f, w->key, (w->flags & MET) != 0);
		break;
	default:
		break;		/* a verdict goes only with its backend */
	}
	return 0;
}

static void
settle(struct pass *p, enum change_kind kind)
{
	struct unmet u = { p, kind };

	if (p->want[kind] != NULL)
		umap_walk(p->want[kind], unmet, &u);
}

static void
pass_clear(struct feed *f)
{
	struct pass *p = &f->pass;
	size_t k;

	for (k = 0; k < C_UNKNOWN; k++)
		if (p->want[k] != NULL)
			umap_free(p->want[k]);
	memset(p, 0, sizeof(*p));
	batch_clear(f);
}

static void
results_clear(PGresult **res, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		PQclear(res[i]);
		res[i] = NULL;
	}
}

/*
 * A pass's first read has come (res: the changes): plan the second, the
 * rows wanted.  0 with f->pass.parts set (none: nothing to read), 2 when
 * the changes were pruned and memory is to be reloaded instead
 * (store_pg_feed_reload_sql), -1 when not read (the store's error says
 * why).
 */
static int
pass_plan(struct feed *f, const PGresult *res)
{
	struct store *st = f->rs->store;
	struct pass *p = &f->pass;
	struct store_feed_cbs cbs = { collect, NULL, NULL, NULL, NULL, NULL,
	    f };
	int64_t pruned = 0;
	size_t i, n;
	int created;

	pass_clear(f);
	p->f = f;
	p->after = p->upto = f->last;
	if (store_pg_feed_rows(st, STORE_FEED_CHANGES, res, &cbs,
	    &pruned) == -1)
		return -1;
	if (pruned > f->last) {
		batch_clear(f);
		log_warnx("feed: changes after %lld were pruned before this "
		    "instance read them; reloading everything",
		    (long long)f->last);
		return 2;
	}
	n = f->nbatch;
	if (n > 0)
		p->upto = f->batch[n - 1].seq;
	for (i = 0; i < n; i++) {
		struct change *c = &f->batch[i];

		if (c->own || c->kind == C_UNKNOWN)
			continue;
		p->foreign++;
		p->last_at = c->at;
		if (c->kind == C_REPL) {
			p->repl = 1;
			continue;
		}
		if (p->want[c->kind] == NULL)
			p->want[c->kind] = umap_new(n);
		umap_put(p->want[c->kind], c->key, strlen(c->key), &created);
	}
	if (p->want[C_BACKEND] != NULL)
		p->parts |= 1u << STORE_FEED_BACKENDS;
	if (p->want[C_HEALTH] != NULL)
		p->parts |= 1u << STORE_FEED_HEALTH;
	if (p->want[C_PROXY] != NULL)
		p->parts |= 1u << STORE_FEED_PROXIES;
	if (p->want[C_MOVE] != NULL)
		p->parts |= 1u << STORE_FEED_MOVING;
	if (p->want[C_USER] != NULL || p->want[C_MOVE] != NULL)
		p->parts |= 1u << STORE_FEED_USERS;
	for (i = 0; i < STORE_FEED_PARTS; i++)
		if (p->parts & (1u << i))
			p->nparts++;
	return 0;
}

/*
 * The rows have come (res: one result for each part planned, in part
 * order): apply them kind by kind, backends before the users on them and
 * a move's end after its user's new row.  1 when the batch was full (more
 * to read), 0 when applied, -1 when not (what was applied stays, and
 * applies again).
 */
static int
pass_apply(struct feed *f, PGresult **res)
{
	struct store *st = f->rs->store;
	struct pass *p = &f->pass;
	struct store_feed_cbs cbs = { NULL, want_backend, want_health,
	    want_proxy, want_moving, want_user, p };
	size_t i, r = 0, n = f->nbatch;

	for (i = STORE_FEED_CHANGES + 1; i < STORE_FEED_PARTS; i++) {
		if (!(p->parts & (1u << i)))
			continue;
		if (i == STORE_FEED_USERS) {
			settle(p, C_BACKEND);
			settle(p, C_PROXY);
		}
		if (store_pg_feed_rows(st, (enum store_feed_part)i, res[r++],
		    &cbs, NULL) == -1)
			return -1;
	}
	if (!(p->parts & (1u << STORE_FEED_USERS))) {
		settle(p, C_BACKEND);
		settle(p, C_PROXY);
	}
	settle(p, C_USER);
	settle(p, C_MOVE);
	/* Only the holder of role repl reads requests. */
	if (p->repl)
		repl_requested(f->rs);
	if (n > 0)
		f->last = f->batch[n - 1].seq;
	if (p->foreign > 0) {
		f->applied += p->foreign;
		f->lag_ms = now_msec() - p->last_at;
	}
	return n == FEED_BATCH ? 1 : 0;
}

/*
 * What a pass reads after its plan (rc as pass_plan): the rows the
 * changes name, or everything for a reload; NULL when nothing (the plan
 * failed, or no row is wanted).  *n results are expected, read as *phase.
 */
static char *
pass_next(struct feed *f, int rc, size_t *n, int *phase)
{
	struct pass *p = &f->pass;

	if (rc == 2) {
		*n = STORE_FEED_PARTS;
		*phase = READ_RELOAD;
		return store_pg_feed_reload_sql();
	}
	if (rc != 0 || p->nparts == 0)
		return NULL;
	*n = p->nparts;
	*phase = READ_ROWS;
	return store_pg_feed_rows_sql(p->after, p->upto, p->parts);
}

/* The second read has all come: applied as its phase says. */
static int
pass_read_apply(struct feed *f, int phase, PGresult **res)
{
	return phase == READ_RELOAD ? reload_apply(f, res) :
	    pass_apply(f, res);
}

static void	feed_wait(struct feed *, short);
static void	feed_drop(struct feed *, const char *);
static const char *conn_error(const struct feed *);

/* What a pass left: the next one now, or after a tick. */
static void
feed_applied(struct feed *f, int rc)
{
	pass_clear(f);
	if (rc == -1) {
		log_debug("feed: changes after %lld not applied: %s; trying "
		    "again", (long long)f->last, store_error(f->rs->store));
		f->behind = 1;
		return;
	}
	if (rc == 1 || f->owed)
		event_active(f->pass_ev, EV_TIMEOUT, 0);
	f->owed = 0;
}

/* Send a read on the feed's connection; its answer goes to
 * feed_read_done. */
static void
feed_send(struct feed *f, char *sql, int phase)
{
	int ms = phase == READ_RELOAD ? FEED_RELOAD_MS : FEED_READ_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int ok;

	ok = PQsendQuery(f->conn, sql);
	free(sql);
	if (!ok) {
		pass_clear(f);
		f->behind = 1;
		feed_drop(f, conn_error(f));
		return;
	}
	f->busy = 1;
	f->reading = phase;
	f->read_at = now_msec_mono();
	f->nres = 0;
	if (event_add(f->read_ev, &tv) == -1)
		fatalx("event_add");
	feed_wait(f, PQflush(f->conn) == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/*
 * Read and apply the changes after f->last, FEED_BATCH a pass, the rest
 * in the next pass so that the loop serves in between.  On the feed's own
 * connection each read goes out and its answer is taken when it has all
 * come (feed_read_done): the loop never waits for it.  Without that
 * connection, through the store, within its bound.
 */
/*
 * A pass while the feed's connection is down: its two reads go through
 * the admin lane's session (a read that waits on a lock or a hung server
 * must not hold the loop), and are planned and applied here between.
 */
struct lane_read {
	struct lane_job	 job;		/* first */
	struct feed	*f;
	int		 phase;		/* enum feed_read */
	char		*sql;
	size_t		 n;
	PGresult	*res[STORE_FEED_PARTS];
};

static void	lane_read_give(struct feed *, int, char *, size_t);

static int
lane_read_run(struct store *st, struct lane_job *job)
{
	struct lane_read *lr = (struct lane_read *)job;

	return store_pg_feed_read(st, lr->sql, lr->n, lr->res);
}

static void
lane_read_done(struct lane_job *job)
{
	struct lane_read *lr = (struct lane_read *)job;
	struct feed *f = lr->f;
	int rc = job->rc, phase;
	char *sql;
	size_t n;

	f->lane_pass = 0;
	if (rc == -1)
		store_set_error(f->rs->store, "%s", job->err);
	else if (lr->phase == READ_CHANGES) {
		rc = pass_plan(f, lr->res[0]);
		if ((sql = pass_next(f, rc, &n, &phase)) != NULL) {
			lane_read_give(f, phase, sql, n);
			goto done;
		}
		if (rc == 0)
			rc = pass_apply(f, lr->res);
	} else
		rc = pass_read_apply(f, lr->phase, lr->res);
	feed_applied(f, rc);
done:
	results_clear(lr->res, lr->n);
	free(lr->sql);
	free(lr);
}

static void
lane_read_give(struct feed *f, int phase, char *sql, size_t n)
{
	struct lane_read *lr = xcalloc(1, sizeof(*lr));

	lr->f = f;
	lr->phase = phase;
	lr->sql = sql;
	lr->n = n;
	lr->job.what = "feed read";
	lr->job.run = lane_read_run;
	lr->job.done = lane_read_done;
	f->lane_pass = 1;
	store_lane_give(f->rs->lane, &lr->job);
}

static void
feed_pass(struct feed *f)
{
	struct store *st = f->rs->store;
	PGresult *res[STORE_FEED_PARTS] = { NULL };
	char *sql;
	size_t n;
	int rc, phase;

	if (f->lane_pass) {
		f->owed = 1;		/* after the one in the lane */
		return;
	}
	f->behind = 0;
	if (f->state == F_READY) {
		if (f->busy) {
			f->owed = 1;	/* after what is under way */
			return;
		}
		feed_send(f, store_pg_feed_changes_sql(f->last, FEED_BATCH),
		    READ_CHANGES);
		return;
	}
	if (f->rs->lane != NULL) {
		lane_read_give(f, READ_CHANGES, store_pg_feed_changes_sql(
		    f->last, FEED_BATCH), 1);
		return;
	}
	/* Before the loop runs (the first pass at start): here. */
	if (store_flying(st)) {
		struct timeval y = { 0, FEED_YIELD_MS * 1000 };

		if (event_add(f->pass_ev, &y) == -1)
			fatalx("event_add");
		return;
	}
	sql = store_pg_feed_changes_sql(f->last, FEED_BATCH);
	rc = store_pg_feed_read(st, sql, 1, res);
	free(sql);
	if (rc == -1) {
		feed_applied(f, -1);
		return;
	}
	rc = pass_plan(f, res[0]);
	results_clear(res, 1);
	if (rc == -1) {
		feed_applied(f, -1);
		return;
	}
	n = 0;
	phase = READ_ROWS;
	if ((sql = pass_next(f, rc, &n, &phase)) != NULL) {
		rc = store_pg_feed_read(st, sql, n, res);
		free(sql);
		if (rc == -1) {
			feed_applied(f, -1);
			return;
		}
	}
	rc = pass_read_apply(f, phase, res);
	results_clear(res, n);
	feed_applied(f, rc);
}

/* A read on the feed's connection has all come (or failed). */
static void
feed_read_done(struct feed *f)
{
	struct store *st = f->rs->store;
	struct pass *p = &f->pass;
	int phase = f->reading, rc = 0, next;
	size_t i, n, want = phase == READ_CHANGES ? 1 : phase == READ_RELOAD ?
	    STORE_FEED_PARTS : p->nparts;
	char *sql;

	evtimer_del(f->read_ev);
	f->reading = 0;
	for (i = 0; i < f->nres; i++)
		if (PQresultStatus(f->res[i]) != PGRES_TUPLES_OK) {
			(void)store_pg_feed_rows(st, STORE_FEED_CHANGES,
			    f->res[i], NULL, NULL);
			rc = -1;
			break;
		}
	if (rc == 0 && f->nres != want) {
		store_set_error(st, "feed read: %zu results, not %zu",
		    f->nres, want);
		rc = -1;
	}
	if (rc == 0 && phase == READ_CHANGES) {
		rc = pass_plan(f, f->res[0]);
		results_clear(f->res, f->nres);
		f->nres = 0;
		if ((sql = pass_next(f, rc, &n, &next)) != NULL) {
			feed_send(f, sql, next);
			return;
		}
		if (rc == 0)
			rc = pass_apply(f, f->res);
	} else if (rc == 0)
		rc = pass_read_apply(f, phase, f->res);
	results_clear(f->res, f->nres);
	f->nres = 0;
	feed_applied(f, rc);
}

static void
on_read_bound(evutil_socket_t fd, short what, void *arg)
{
	struct feed *f = arg;
	char why[64];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no answer to a read in %d ms",
	    FEED_READ_MS);
	f->behind = 1;
	feed_drop(f, why);
}

static void
on_pass(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	feed_pass(arg);
}

/* Pruning old changes: a DELETE that may wait on locks and a busy
 * disk, so it goes through the admin lane, not the loop's session. */
struct prune {
	struct lane_job	 job;		/* first */
	struct feed	*f;
};

static int
prune_run(struct store *st, struct lane_job *job)
{
	(void)job;
	return store_change_prune(store_auto(st), FEED_RETAIN_MS);
}

static void
prune_done(struct lane_job *job)
{
	struct prune *p = (struct prune *)job;

	if (job->rc == -1)
		log_debug("feed: prune: %s", job->err);
	p->f->pruning = 0;
	free(p);
}

static void
prune_start(struct feed *f)
{
	struct prune *p;

	if (f->pruning || f->rs->lane == NULL)
		return;
	p = xcalloc(1, sizeof(*p));
	p->f = f;
	p->job.what = "feed prune";
	p->job.run = prune_run;
	p->job.done = prune_done;
	f->pruning = 1;
	store_lane_give(f->rs->lane, &p->job);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct feed *f = arg;
	uint64_t now = now_msec_mono();

	(void)fd;
	(void)what;
	/* Without the connection nothing wakes a pass: poll meanwhile. */
	if (f->behind || f->state != F_READY)
		feed_pass(f);
	if (now - f->pruned_at >= FEED_PRUNE_MS) {
		f->pruned_at = now;
		prune_start(f);
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
	if (f->reading) {
		/* The pass is owed: the tick makes it, through the store
		 * while there is no connection. */
		evtimer_del(f->read_ev);
		results_clear(f->res, f->nres);
		f->nres = 0;
		f->reading = READ_NONE;
		pass_clear(f);
		f->behind = 1;
	}
	f->busy = f->owed = 0;
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
	char sql[80];

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
	/* No lock_timeout: a read waiting for a lock holds up only the
	 * feed, never the loop, and the statement bound ends the wait. */
	snprintf(sql, sizeof(sql), "SET statement_timeout = %d; LISTEN %s",
	    FEED_STMT_MS, FEED_CHANNEL);
	if (PQsetnonblocking(f->conn, 1) == -1 ||
	    !PQsendQuery(f->conn, sql)) {
		feed_drop(f, conn_error(f));
		return;
	}
	f->busy = 1;
	f->state = F_LISTENING;
	if (PQflush(f->conn) == 1)
		feed_wait(f, EV_READ | EV_WRITE);
	else
		feed_wait(f, EV_READ);
}

/*
 * The results that have come: LISTEN's, or a pass's read, kept until the
 * whole of it is there.  0 while all went well.
 */
static int
feed_results(struct feed *f)
{
	PGresult *res;

	for (;;) {
		if (PQisBusy(f->conn))
			return 0;
		if ((res = PQgetResult(f->conn)) == NULL)
			break;			/* the query is done */
		if (f->reading) {
			if (f->nres < STORE_FEED_PARTS)
				f->res[f->nres++] = res;
			else
				PQclear(res);
			continue;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	if (!f->busy)
		return 0;
	f->busy = 0;
	if (f->reading) {
		feed_read_done(f);
	} else if (f->state == F_LISTENING) {
		f->state = F_READY;
		f->backoff_ms = BACKOFF_MIN_MS;
		f->reconnects++;
		log_info("feed: listening for changes");
		feed_wait(f, EV_READ);
		/* What came while there was no connection. */
		f->owed = 1;
	}
	if (f->owed && f->conn != NULL && f->state == F_READY) {
		f->owed = 0;
		event_active(f->pass_ev, EV_TIMEOUT, 0);
	}
	return 0;
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
	if (what & EV_WRITE) {
		switch (PQflush(f->conn)) {
		case -1:
			feed_drop(f, conn_error(f));
			return;
		case 0:
			feed_wait(f, EV_READ);	/* all sent */
			break;
		}
	}
	if (!(what & EV_READ))
		return;
	if (!PQconsumeInput(f->conn) || feed_results(f) == -1) {
		feed_drop(f, conn_error(f));
		return;
	}
	if (f->conn == NULL)
		return;		/* dropped while the results were taken */
	if (PQstatus(f->conn) != CONNECTION_OK) {
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
	f->read_ev = evtimer_new(rs->base, on_read_bound, f);
	if (f->sock_ev == NULL || f->retry_ev == NULL || f->pass_ev == NULL ||
	    f->tick_ev == NULL || f->read_ev == NULL ||
	    event_add(f->tick_ev, &tv) == -1)
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
	if (f->read_ev != NULL)
		event_free(f->read_ev);
	results_clear(f->res, f->nres);
	for (i = 0; i < f->nmoving; i++)
		free(f->moving[i]);
	free(f->moving);
	pass_clear(f);
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
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "connected", f->state == F_READY,
	    "reading_ms", (json_int_t)(f->reading ?
	    now_msec_mono() - f->read_at : 0),
	    "last_seq", (json_int_t)f->last,
	    "lag_ms", (json_int_t)f->lag_ms,
	    "applied", (json_int_t)f->applied,
	    "reloads", (json_int_t)f->reloads,
	    "connects", (json_int_t)f->reconnects,
	    "moving", (json_int_t)f->nmoving);
}
