/*
 * store.c: picks the store implementation from the scheme of the "store"
 * setting and holds what all implementations share.
 */
#include <event2/event.h>

#include <poll.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* How often a commit in flight is asked for its answer when its
 * descriptor says nothing: the store's own deadline is checked then. */
#define FLIGHT_POLL_MS	50

extern const struct store_ops	store_pg_ops;	/* store_pg.c */

static const struct {
	const char		*scheme;
	const struct store_ops	*ops;
} store_schemes[] = {
	{ "sqlite:", &store_sqlite_ops },
	{ "postgresql:", &store_pg_ops },
};

static struct store *
open_as(const char *url, int lane, char *err, size_t errlen)
{
	struct store *st;
	size_t i, len;

	for (i = 0; i < sizeof(store_schemes) / sizeof(store_schemes[0]); i++) {
		len = strlen(store_schemes[i].scheme);
		if (strncmp(url, store_schemes[i].scheme, len) != 0)
			continue;
		st = xcalloc(1, sizeof(*st));
		st->ops = store_schemes[i].ops;
		st->tx.st = st;
		st->none.st = st;
		st->none.autocommit = 1;
		st->lane = lane;
		if (st->ops->open(st, url + len) == -1) {
			snprintf(err, errlen, "%s store: %s", st->ops->name,
			    st->err);
			free(st);
			return NULL;
		}
		return st;
	}
	snprintf(err, errlen, "unknown store type (expected sqlite:PATH or "
	    "postgresql:CONNINFO)");
	return NULL;
}

struct store *
store_open(const char *url, char *err, size_t errlen)
{
	return open_as(url, 0, err, errlen);
}

struct store *
store_open_lane(const char *url, char *err, size_t errlen)
{
	return open_as(url, 1, err, errlen);
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	/* Its owner landed it; a flight left now has nobody to tell. */
	if (st->flight != NULL)
		event_free(st->flight);
	st->ops->close(st);
	free(st);
}

const char *
store_error(const struct store *st)
{
	return st->err;
}

struct store_tx *
store_begin(struct store *st, int flags)
{
	if (st->tx.open) {
		store_set_error(st, "begin: a transaction is already open");
		return NULL;
	}
	if (st->ops->begin(st, flags) == -1)
		return NULL;
	st->tx.flags = flags;
	st->tx.open = 1;
	return &st->tx;
}

int
store_commit(struct store_tx *tx)
{
	struct store *st = tx->st;

	if (!tx->open) {
		store_set_error(st, "commit: %s", tx->autocommit ?
		    "there is no transaction to commit" :
		    "the transaction has ended");
		return -1;
	}
	tx->open = 0;
	if (st->ops->commit(st) == 0)
		return 0;
	/* What is open is rolled back; the commit's error stays. */
	st->ops->rollback(st);
	return -1;
}

int
store_rollback(struct store_tx *tx)
{
	/* Ended already (a failed commit rolls back): nothing to undo, and
	 * the error must stay the one that says why. */
	if (!tx->open)
		return 0;
	tx->open = 0;
	return tx->st->ops->rollback(tx->st);
}

struct store_tx *
store_auto(struct store *st)
{
	return &st->none;
}

static struct store *
tx_store(struct store_tx *tx, const char *what)
{
	struct store *st = tx->st;

	if (tx->autocommit && st->tx.open) {
		/* It would join a transaction its caller did not name. */
		store_set_error(st, "%s: a transaction is open; the write "
		    "must name it", what);
		return NULL;
	}
	if (!tx->autocommit && !tx->open) {
		store_set_error(st, "%s: the transaction has ended", what);
		return NULL;
	}
	return st;
}

int
store_retryable(const struct store *st)
{
	return st->errclass == STORE_ERETRY;
}

json_t *
store_flight_json(struct store *st)
{
	if (st->flight != NULL)
		return json_pack("{s:s, s:I}", "what", st->flight_what, "ms",
		    (json_int_t)(now_msec_mono() - st->flight_at));
	if (st->ops->place_flying != NULL && st->ops->place_flying(st))
		return json_pack("{s:s}", "what", "new users");
	return json_null();
}

int
store_flying(struct store *st)
{
	return st->flight != NULL ||
	    (st->ops->place_flying != NULL && st->ops->place_flying(st));
}

/* The answer came, or its deadline: the owner hears how it ended. */
static int
flight_poll(struct store *st)
{
	void (*done)(void *, int) = st->flight_done;
	void *arg = st->flight_arg;
	int rc;

	if (st->flight_poll(st, &rc) == 0)
		return 0;
	event_free(st->flight);
	st->flight = NULL;
	done(arg, rc);
	return 1;
}

static void
flight_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flight_poll(arg);
}

/* Another call read the answer: the descriptor will not say so. */
static void
flight_ready(void *arg)
{
	struct store *st = arg;

	event_active(st->flight, EV_READ, 0);
}

/* One flight at a time on the session: -1 (retryable), naming what was
 * refused, while another is under way. */
static int
flight_refused(struct store *st, const char *what)
{
	if (st->flight == NULL)
		return 0;
	store_set_error(st, "%s: another flight is under way", what);
	st->errclass = STORE_ERETRY;
	return -1;
}

/* Watch the flight sent: its answer goes to done through poll. */
static void
flight_watch(struct store *st, struct event_base *base, const char *what,
    int (*poll)(struct store *, int *), void (*done)(void *, int), void *arg)
{
	struct timeval tv = { 0, FLIGHT_POLL_MS * 1000 };

	st->flight_what = what;
	st->flight_at = now_msec_mono();
	st->flight_poll = poll;
	st->flight_done = done;
	st->flight_arg = arg;
	st->flight = event_new(base, st->ops->place_fd(st),
	    EV_READ | EV_PERSIST, flight_cb, st);
	if (st->flight == NULL || event_add(st->flight, &tv) == -1)
		fatalx("store: cannot watch a flight");
}

int
store_commit_send(struct store_tx *tx, struct event_base *base,
    void (*done)(void *, int), void *arg)
{
	struct store *st = tx->st;

	if (tx->open && st->flight != NULL) {
		/* Its callers wait while store_flying() says so. */
		store_rollback(tx);
		store_set_error(st, "commit: another flight is under way");
		st->errclass = STORE_ERETRY;
		return -1;
	}
	if (!tx->open || !(tx->flags & STORE_TX_SEND)) {
		store_set_error(st, "commit: %s", tx->open ? "the transaction "
		    "was not begun to be sent" : "no transaction is open");
		return -1;
	}
	if (st->ops->tx_send == NULL) {
		done(arg, store_commit(tx));
		return 0;
	}
	tx->open = 0;
	if (st->ops->tx_send(st, flight_ready, st) == -1)
		return -1;
	flight_watch(st, base, "commit", st->ops->tx_poll, done, arg);
	return 0;
}

int
store_scan_move(const struct store_move *m, void *arg)
{
	struct store_scan *sc = arg;
	struct store_move *c;

	sc->moves = xreallocarray(sc->moves, sc->nmoves + 1,
	    sizeof(*sc->moves));
	c = &sc->moves[sc->nmoves++];
	*c = *m;
	c->user = xstrdup(m->user);
	c->from = xstrdup(m->from);
	c->to = xstrdup(m->to);
	c->reason = xstrdup(m->reason);
	c->state = xstrdup(m->state);
	c->error = xstrdup(m->error != NULL ? m->error : "");
	return 0;
}

int
store_scan_job(const struct store_job *j, void *arg)
{
	struct store_scan *sc = arg;
	struct store_job *c;

	sc->jobs = xreallocarray(sc->jobs, sc->njobs + 1, sizeof(*sc->jobs));
	c = &sc->jobs[sc->njobs++];
	*c = *j;
	c->kind = xstrdup(j->kind);
	c->backend = xstrdup(j->backend != NULL ? j->backend : "");
	c->state = xstrdup(j->state);
	return 0;
}

int
store_scan_request(const struct store_repl_request *q, void *arg)
{
	struct store_scan *sc = arg;
	struct store_repl_request *c;

	sc->reqs = xreallocarray(sc->reqs, sc->nreqs + 1, sizeof(*sc->reqs));
	c = &sc->reqs[sc->nreqs++];
	*c = *q;
	c->user = xstrdup(q->user);
	return 0;
}

void
store_scan_clear(struct store_scan *sc)
{
	size_t i;

	for (i = 0; i < sc->nmoves; i++) {
		free((char *)sc->moves[i].user);
		free((char *)sc->moves[i].from);
		free((char *)sc->moves[i].to);
		free((char *)sc->moves[i].reason);
		free((char *)sc->moves[i].state);
		free((char *)sc->moves[i].error);
	}
	for (i = 0; i < sc->njobs; i++) {
		free((char *)sc->jobs[i].kind);
		free((char *)sc->jobs[i].backend);
		free((char *)sc->jobs[i].state);
	}
	for (i = 0; i < sc->nreqs; i++)
		free((char *)sc->reqs[i].user);
	free(sc->moves);
	free(sc->jobs);
	free(sc->reqs);
	memset(sc, 0, sizeof(*sc));
}

int
store_moves_scan_send(struct store *st, struct event_base *base,
    struct store_scan *out, void (*done)(void *, int), void *arg)
{
	int rc;

	if (st->ops->scan_send == NULL) {
		memset(out, 0, sizeof(*out));
		rc = st->ops->move_list(st, 1, 0, SIZE_MAX, store_scan_move,
		    out) == -1 || st->ops->job_list(st, store_scan_job,
		    out) == -1 ? -1 : 0;
		if (rc == -1)
			store_scan_clear(out);
		done(arg, rc);
		return 0;
	}
	if (flight_refused(st, "moves scan") == -1)
		return -1;
	if (st->ops->scan_send(st, out, flight_ready, st) == -1)
		return -1;
	flight_watch(st, base, "moves scan", st->ops->scan_poll, done, arg);
	return 0;
}

int
store_repl_requests_send(struct store *st, struct event_base *base,
    size_t limit, struct store_scan *out, void (*done)(void *, int),
    void *arg)
{
	int rc;

	if (st->ops->requests_send == NULL) {
		memset(out, 0, sizeof(*out));
		rc = st->ops->repl_request_list(st, limit, store_scan_request,
		    out);
		if (rc == -1)
			store_scan_clear(out);
		done(arg, rc);
		return 0;
	}
	if (flight_refused(st, "replication requests") == -1)
		return -1;
	if (st->ops->requests_send(st, limit, out, flight_ready, st) == -1)
		return -1;
	flight_watch(st, base, "replication requests", st->ops->requests_poll,
	    done, arg);
	return 0;
}

static int
state_copy(const struct store_repl *sr, void *arg)
{
	char **state = arg;

	*state = xstrdup(sr->state != NULL ? sr->state : "");
	return 0;
}

int
store_repl_states_send(struct store *st, struct event_base *base,
    const char *const *users, size_t n, char **states,
    void (*done)(void *, int), void *arg)
{
	size_t i;
	int rc = 0, got;

	if (st->ops->states_send == NULL) {
		for (i = 0; i < n; i++) {
			states[i] = NULL;
			if ((got = st->ops->repl_get(st, users[i], state_copy,
			    &states[i])) == -1)
				rc = -1;
			else if (got == 0)
				states[i] = xstrdup("");
		}
		done(arg, rc);
		return 0;
	}
	if (flight_refused(st, "replication states") == -1)
		return -1;
	if (st->ops->states_send(st, users, n, states, flight_ready,
	    st) == -1)
		return -1;
	flight_watch(st, base, "replication states", st->ops->states_poll,
	    done, arg);
	flight_poll(st);
	return 0;
}

int
store_role_claim_send(struct store *st, struct event_base *base,
    const char *const *roles, size_t n, int *got,
    void (*done)(void *, int), void *arg)
{
	if (st->ops->claim_send == NULL) {
		done(arg, st->ops->role_claim(st, roles, n, got));
		return 0;
	}
	if (flight_refused(st, "role claim") == -1)
		return -1;
	if (st->ops->claim_send(st, roles, n, got, flight_ready, st) == -1)
		return -1;
	flight_watch(st, base, "role claim", st->ops->claim_poll, done, arg);
	/* Answered already (nothing to ask, or it failed at once). */
	flight_poll(st);
	return 0;
}

int
store_role_release_send(struct store *st, struct event_base *base,
    const char *const *roles, size_t n, void (*done)(void *, int), void *arg)
{
	size_t i;
	int rc = 0;

	if (st->ops->release_send == NULL) {
		for (i = 0; i < n; i++)
			if (st->ops->role_release(st, roles[i]) == -1)
				rc = -1;
		done(arg, rc);
		return 0;
	}
	if (flight_refused(st, "role release") == -1)
		return -1;
	if (st->ops->release_send(st, roles, n, flight_ready, st) == -1)
		return -1;
	flight_watch(st, base, "role release", st->ops->claim_poll, done,
	    arg);
	flight_poll(st);
	return 0;
}

void
store_flight_land(struct store *st)
{
	struct pollfd pfd;

	while (st->flight != NULL && !flight_poll(st)) {
		pfd.fd = st->ops->place_fd(st);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, FLIGHT_POLL_MS) == -1)
			log_debug("store: poll: %s", strerror(errno));
	}
}

int
store_http_status(const struct store *st)
{
	switch (st->errclass) {
	case STORE_ERETRY:
		return 503;
	case STORE_ECONFLICT:
		return 409;
	default:
		return 500;
	}
}

static void
set_error(struct store *st, enum store_err class, const char *fmt,
    va_list ap)
{
	st->errclass = class;
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
}

void
store_set_error(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error(st, STORE_EFATAL, fmt, ap);
	va_end(ap);
}

void
store_set_conflict(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error(st, STORE_ECONFLICT, fmt, ap);
	va_end(ap);
}

static int
no_op(struct store *st, const char *what)
{
	store_set_error(st, "%s: the %s store has no such write", what,
	    st->ops->name);
	return -1;
}

/*
 * Each write checks its handle here, so that no implementation has to:
 * the ops themselves act on the connection's transaction, whichever it is.
 */
#define TX_STORE(tx, op)						\
	struct store *st = tx_store((tx), #op);				\
	if (st == NULL)							\
		return -1;						\
	if (st->ops->op == NULL)					\
		return no_op(st, #op)

int
store_backend_insert(struct store_tx *tx, const struct backend *b)
{
	TX_STORE(tx, backend_insert);
	return st->ops->backend_insert(st, b);
}

int
store_backend_update(struct store_tx *tx, const struct backend *b)
{
	TX_STORE(tx, backend_update);
	return st->ops->backend_update(st, b);
}

int
store_backend_delete(struct store_tx *tx, const char *name, int64_t *released)
{
	TX_STORE(tx, backend_delete);
	return st->ops->backend_delete(st, name, released);
}

int
store_proxy_insert(struct store_tx *tx, const struct proxy *p)
{
	TX_STORE(tx, proxy_insert);
	return st->ops->proxy_insert(st, p);
}

int
store_proxy_update(struct store_tx *tx, const struct proxy *p)
{
	TX_STORE(tx, proxy_update);
	return st->ops->proxy_update(st, p);
}

int
store_proxy_delete(struct store_tx *tx, const char *name)
{
	TX_STORE(tx, proxy_delete);
	return st->ops->proxy_delete(st, name);
}

int
store_health_put(struct store_tx *tx, const struct store_health *h)
{
	TX_STORE(tx, health_put);
	return st->ops->health_put(st, h);
}

int
store_move_insert(struct store_tx *tx, struct store_move *m)
{
	TX_STORE(tx, move_insert);
	return st->ops->move_insert(st, m);
}

int
store_move_state(struct store_tx *tx, int64_t id, const char *state,
    const char *error)
{
	TX_STORE(tx, move_state);
	return st->ops->move_state(st, id, state, error);
}

int
store_move_switch(struct store_tx *tx, const struct store_move *m,
    const struct store_user *u)
{
	TX_STORE(tx, move_switch);
	return st->ops->move_switch(st, m, u);
}

int
store_job_insert(struct store_tx *tx, struct store_job *j)
{
	TX_STORE(tx, job_insert);
	return st->ops->job_insert(st, j);
}

int
store_job_state(struct store_tx *tx, int64_t id, const char *state,
    int64_t made)
{
	TX_STORE(tx, job_state);
	return st->ops->job_state(st, id, state, made);
}

int
store_user_put(struct store_tx *tx, const struct store_user *us, size_t n)
{
	TX_STORE(tx, user_put);
	return st->ops->user_put(st, us, n);
}

int
store_user_delete(struct store_tx *tx, const char *user)
{
	TX_STORE(tx, user_delete);
	return st->ops->user_delete(st, user);
}

int
store_user_touch(struct store_tx *tx, const struct store_user *us, size_t n)
{
	TX_STORE(tx, user_touch);
	return st->ops->user_touch(st, us, n);
}

int
store_user_place(struct store_tx *tx, const struct store_user *us,
    const char *const *expect, size_t n, store_user_cb cb, void *arg)
{
	TX_STORE(tx, user_place);
	return st->ops->user_place(st, us, expect, n, cb, arg);
}

int
store_repl_put(struct store_tx *tx, const struct store_repl *rs, size_t n)
{
	TX_STORE(tx, repl_put);
	return st->ops->repl_put(st, rs, n);
}

int
store_repl_delete(struct store_tx *tx, const char *user)
{
	TX_STORE(tx, repl_delete);
	return st->ops->repl_delete(st, user);
}

int
store_audit_add(struct store_tx *tx, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	TX_STORE(tx, audit_add);
	return st->ops->audit_add(st, actor, action, subject, detail);
}

int
store_move_restore(struct store_tx *tx, const struct store_move *ms, size_t n)
{
	TX_STORE(tx, move_restore);
	return st->ops->move_restore(st, ms, n);
}

int
store_job_restore(struct store_tx *tx, const struct store_job *js, size_t n)
{
	TX_STORE(tx, job_restore);
	return st->ops->job_restore(st, js, n);
}

int
store_audit_restore(struct store_tx *tx, const struct store_audit *as,
    size_t n)
{
	TX_STORE(tx, audit_restore);
	return st->ops->audit_restore(st, as, n);
}

int
store_change_prune(struct store_tx *tx, int64_t older_ms)
{
	TX_STORE(tx, change_prune);
	return st->ops->change_prune(st, older_ms);
}

int
store_repl_request_add(struct store_tx *tx, const struct store_repl_request *rq,
    size_t n)
{
	TX_STORE(tx, repl_request_add);
	return st->ops->repl_request_add(st, rq, n);
}

int
store_repl_request_delete(struct store_tx *tx, const int64_t *ids, size_t n)
{
	TX_STORE(tx, repl_request_delete);
	return st->ops->repl_request_delete(st, ids, n);
}
