/*
 * store.h: the durable store behind roostd, as a table of operations.  The
 * SQLite store (store_sqlite.c) is the embedded default; a PostgreSQL store
 * implements the same table.  Every mutation that roostd acknowledges is
 * committed here first.
 *
 * All functions return 0 on success and -1 on error (store_error() then says
 * why), unless documented otherwise.  Strings passed in are copied or used
 * only during the call; records passed to callbacks are valid only during the
 * callback.  A callback returning -1 stops the iteration, which then returns -1.
 *
 * Every failure also sets `errclass` (enum store_err), what the caller
 * does next: a retryable one (STORE_ERETRY) wrote nothing and the same call
 * may work later; a conflict (STORE_ECONFLICT) is the store's rows saying
 * no, so trying again changes nothing until the caller re-reads; anything
 * else is STORE_EFATAL.  roostd calls the store from its one event loop, so
 * an implementation never waits long for a lock another process holds: it
 * gives up after a few milliseconds with STORE_ERETRY, and the caller
 * tries again later or answers 503.
 *
 * Every write names the transaction it belongs to (struct store_tx):
 * store_begin() opens one and returns its handle, store_commit() or
 * store_rollback() ends it.  store_auto() is the handle of no transaction:
 * a write given it is a transaction of its own, all of its records or
 * none.  Such a write fails while a transaction is open, and so does a
 * write on a handle that was ended: no write joins a transaction its
 * caller did not name.  Reads take the store and, inside a transaction,
 * see its writes.
 */
#ifndef ROOST_STORE_H
#define ROOST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backend.h"
#include "proxy.h"

#define STORE_SCHEMA_VERSION	11
#define STORE_PLACE_SEND_MAX	256	/* records of one place_send */
#define STORE_SEND_MAX		1024	/* records of a STORE_TX_SEND
					 * transaction */

/* begin() flags */
#define STORE_TX_ADMIN	0x01	/* an admin change: on stable storage, not
				 * only written, when commit() returns */
#define STORE_TX_SEND	0x02	/* for store_commit_send: writes whose
				 * answer nobody reads (user_put,
				 * user_touch, repl_put, repl_request_add and
				 * _delete, health_put, move_state,
				 * job_state), at most STORE_SEND_MAX
				 * records; no reads */

struct store;
struct event;
struct event_base;

/* A transaction, or store_auto()'s "none".  Owned by the store. */
struct store_tx {
	struct store	*st;
	int		 flags;		/* begin()'s */
	int		 open;		/* from store_begin to its end */
	int		 autocommit;	/* store_auto()'s handle */
};

enum store_err {
	STORE_OK = 0,
	STORE_ERETRY,		/* another's lock, a timeout, a serialization
				 * failure, a lost connection */
	STORE_ECONFLICT,	/* a unique or foreign key said no: another
				 * change got there first */
	STORE_EFATAL,		/* anything else */
};

struct store_user {
	const char	*user;		/* the routing key (normalized user name) */
	const char	*backend;	/* backend name */
	const char	*tag;		/* tag the user was placed with ("" = default) */
	int		 pinned;	/* set by an admin, not by the hash */
	int64_t		 since;		/* when assigned to this backend (unix s) */
	int64_t		 last_lookup;	/* unix s, 0 = never */
	int		 confirmed;	/* seen in a session or a delivery */
	const char	*replica;	/* replica backend name, NULL = none */
	int		 replica_current; /* the replica had its first full
					 * sync since it became the replica */
	int		 failed_over;	/* on its replica since its backend
					 * failed: failback takes it home */
};

struct store_audit {
	int64_t		 id;
	int64_t		 at;		/* unix s */
	const char	*actor;		/* "admin", "lookup", "system" */
	const char	*action;	/* "backend.add", "user.pin", ... */
	const char	*subject;	/* backend or user name */
	const char	*detail;	/* JSON text, never a secret */
};

/* A backend's health verdict as the probes last saw it (health.c). */
struct store_health {
	const char	*backend;
	const char	*state;		/* "ok", "failing", "failed" */
	int64_t		 since;		/* unix s the state began */
	const char	*error;		/* last failure, "" when none */
	int64_t		 latency_ms;	/* of the last passed round */
	int64_t		 checked;	/* unix s of the last round */
};

/*
 * A move of one user from one backend to another (move.c): the persisted
 * state machine that keeps a user on one backend at a time.  A user has at
 * most one move that is not over (done or failed).
 */
struct store_move {
	int64_t		 id;
	const char	*user;
	const char	*from;		/* backend the user leaves */
	const char	*to;		/* backend the user goes to */
	const char	*reason;	/* "move", "pin", "flush", ... */
	const char	*state;		/* "queued", "kicking", "waiting", "done",
					 * "failed" */
	const char	*error;		/* why it failed, "" otherwise */
	int		 pin;		/* the user ends pinned */
	int64_t		 created;
	int64_t		 updated;
};

/* A job that makes moves as room frees up: a flush or a rebalance. */
struct store_job {
	int64_t		 id;
	const char	*kind;		/* "flush", "rebalance" */
	const char	*backend;	/* flush: the backend; else "" */
	int64_t		 max;		/* moves at most, 0: no bound */
	int64_t		 rate;		/* moves a second at most, 0: none */
	int64_t		 made;		/* moves made so far */
	const char	*state;		/* "running", "done" */
	int64_t		 created;
	int64_t		 updated;	/* last progress (job lists only) */
};

/*
 * A user's replication record (repl.c): its place in the queue, its backoff
 * and the dsync state of the last good sync.  Times in unix seconds, queue
 * times in unix milliseconds.
 */
struct store_repl {
	const char	*user;
	int		 priority;	/* REPL_P_*, -1: nothing queued */
	int64_t		 queued;	/* ms: when its work was queued */
	int64_t		 due;		/* ms: not before (backoff) */
	int		 full;		/* the next sync is a full one */
	int		 fails;		/* failures in a row */
	int		 stuck;		/* reruns kept failing: reported */
	const char	*error;		/* last failure, "" none */
	/* For repl_put: NULL / 0 keep what is stored. */
	const char	*state;		/* dsync state of the last good sync */
	int64_t		 last_fast;	/* last good incremental sync */
	int64_t		 last_full;	/* last good full sync */
	int64_t		 last_ok;	/* last good sync of either kind */
};

/*
 * Replication work asked of a roostd that does not dispatch the syncs
 * (role repl, role.h), for the one that does: "queue this user's sync".
 */
struct store_repl_request {
	int64_t		 id;		/* set by the store */
	const char	*user;
	int		 priority;	/* REPL_P_* */
	int		 full;
	int64_t		 at;		/* unix ms it was asked */
};

/*
 * One entry of the change feed (feed.c): something a lookup answers
 * changed.  kind names what, key which one: "user" (user name), "backend"
 * and "health" (backend name), "proxy" (proxy name), "move" (user name),
 * "repl" (user name: a replication request was stored).
 */
struct store_change {
	int64_t		 seq;		/* numbered in commit order */
	const char	*kind;
	const char	*key;
	const char	*origin;	/* the writer's change_origin(), "" for
					 * a writer that is not a roostd */
	int64_t		 at;		/* unix ms it was written */
};

/* Rows copied out of a read that the loop did not wait for: open moves
 * and running jobs (store_moves_scan_send), replication requests
 * (store_repl_requests_send). */
struct store_scan {
	struct store_move	*moves;		/* oldest first */
	size_t			 nmoves;
	struct store_job	*jobs;
	size_t			 njobs;
	struct store_repl_request *reqs;	/* in id order */
	size_t			 nreqs;
};

typedef int (*store_change_cb)(const struct store_change *, void *);
typedef int (*store_backend_cb)(const struct backend *, void *);
typedef int (*store_job_cb)(const struct store_job *, void *);
typedef int (*store_proxy_cb)(const struct proxy *, void *);
typedef int (*store_move_cb)(const struct store_move *, void *);
typedef int (*store_health_cb)(const struct store_health *, void *);
typedef int (*store_user_cb)(const struct store_user *, void *);
typedef int (*store_audit_cb)(const struct store_audit *, void *);
typedef int (*store_repl_cb)(const struct store_repl *, void *);
typedef int (*store_repl_request_cb)(const struct store_repl_request *,
    void *);

struct store_ops {
	const char	*name;		/* "sqlite", "postgresql" */
	/* spec is what follows "sqlite:" in the store setting */
	int	(*open)(struct store *, const char *spec);
	void	(*close)(struct store *);
	int	(*ping)(struct store *);

	/* The transaction of the connection, for store_begin(),
	 * store_commit() and store_rollback() only.  A failed begin() or
	 * commit() leaves no transaction open; a rollback() after it
	 * returns 0 and keeps that error (and its class). */
	int	(*begin)(struct store *, int flags);
	int	(*commit)(struct store *);
	int	(*rollback)(struct store *);
	/* 1 if a commit now would reach stable storage before it returns
	 * (survives a power loss), 0 if only a crash of roostd, -1 on error. */
	int	(*durable)(struct store *);

	int	(*backend_load)(struct store *, store_backend_cb, void *);
	int	(*backend_insert)(struct store *, const struct backend *);
	int	(*backend_update)(struct store *, const struct backend *);
	/* Deletes the backend and every user assigned to it; *released gets
	 * the number of those users.  Users whose replica it was have none
	 * after. */
	int	(*backend_delete)(struct store *, const char *name,
		    int64_t *released);

	/* The registered proxies, in name order.  update and delete fail
	 * (naming the proxy) when there is none of that name. */
	int	(*proxy_load)(struct store *, store_proxy_cb, void *);
	int	(*proxy_insert)(struct store *, const struct proxy *);
	int	(*proxy_update)(struct store *, const struct proxy *);
	int	(*proxy_delete)(struct store *, const char *name);

	/* Health verdicts: insert or replace one; load all.  A backend's
	 * verdict goes when the backend does. */
	int	(*health_put)(struct store *, const struct store_health *);
	int	(*health_load)(struct store *, store_health_cb, void *);

	/* A new move (its id is set); fails when the user has a move that
	 * is not over. */
	int	(*move_insert)(struct store *, struct store_move *);
	int	(*move_state)(struct store *, int64_t id, const char *state,
		    const char *error);
	/*
	 * The switch, in one transaction: the user's row goes from m->from to
	 * m->to (with u's pin, since, replica, replica_current and
	 * failed_over) only if it is still on m->from, and the move is done.  Returns 1 when switched, 0 when the user was no
	 * longer on m->from (nothing written), -1 on error.
	 */
	int	(*move_switch)(struct store *, const struct store_move *,
		    const struct store_user *u);
	/* Moves that are not over, oldest first (active != 0); else all,
	 * newest first, ids below `before` (0: from the newest). */
	int	(*move_list)(struct store *, int active, int64_t before,
		    size_t limit, store_move_cb, void *);

	/* Jobs: insert (id set), record progress or the end, list running. */
	int	(*job_insert)(struct store *, struct store_job *);
	int	(*job_state)(struct store *, int64_t id, const char *state,
		    int64_t made);
	int	(*job_list)(struct store *, store_job_cb, void *);

	int	(*user_load)(struct store *, store_user_cb, void *);
	/* Insert or replace (keyed on user) each record. */
	int	(*user_put)(struct store *, const struct store_user *, size_t);
	/* Returns 1 if a row was deleted, 0 if there was none, -1 on error. */
	int	(*user_delete)(struct store *, const char *user);
	/* One user; returns 1 and calls cb when found, 0 when not. */
	int	(*user_get)(struct store *, const char *user, store_user_cb,
		    void *);
	/* Users ordered by name, after `after` (NULL = from the start),
	 * only of `backend` unless NULL, at most `limit`. */
	int	(*user_list)(struct store *, const char *backend,
		    const char *after, size_t limit, store_user_cb, void *);
	/* Record lookup times and confirmations only (user, last_lookup
	 * and confirmed of each record; neither ever goes back); rows that
	 * no longer exist are skipped. */
	int	(*user_touch)(struct store *, const struct store_user *, size_t);

	/*
	 * Replication records.  put: insert or update each (state and
	 * last_* only when given); get: one, returns 1 and calls cb when
	 * found, 0 when not; load: those with work (queued, failing or
	 * stuck); delete: returns 1 if there was one.  A user's record goes
	 * with the user (user_delete, backend_delete).
	 */
	int	(*repl_put)(struct store *, const struct store_repl *, size_t);
	int	(*repl_get)(struct store *, const char *user, store_repl_cb,
		    void *);
	/*
	 * The dsync states of n users without waiting, for
	 * store_repl_states_send() (NULL where nothing waits on a network):
	 * as claim_send (below), with states[i] set, once answered, to a
	 * copy of users[i]'s state ("" when it has none or no record; the
	 * caller frees it), NULL when not answered.
	 */
	int	(*states_send)(struct store *, const char *const *users,
		    size_t n, char **states, void (*ready)(void *), void *arg);
	int	(*states_poll)(struct store *, int *rc);
	/* move_list(active) and job_list without waiting, into *out once
	 * answered (empty when it failed), as claim_send does otherwise;
	 * for store_moves_scan_send(). */
	int	(*scan_send)(struct store *, struct store_scan *out,
		    void (*ready)(void *), void *arg);
	int	(*scan_poll)(struct store *, int *rc);
	/* repl_request_list (below) the same way, into out->reqs. */
	int	(*requests_send)(struct store *, size_t limit,
		    struct store_scan *out, void (*ready)(void *), void *arg);
	int	(*requests_poll)(struct store *, int *rc);
	int	(*repl_load)(struct store *, store_repl_cb, void *);
	int	(*repl_delete)(struct store *, const char *user);

	int	(*audit_add)(struct store *, const char *actor,
		    const char *action, const char *subject, const char *detail);
	/* Newest first, ids below `before` (0 = from the newest). */
	int	(*audit_list)(struct store *, int64_t before, size_t limit,
		    store_audit_cb, void *);

	/*
	 * For the offline copy of a whole store (store_copy.c).  repl_list:
	 * every replication record, with work or not, ordered by user in the
	 * store's own order, after `after` (NULL: from the start), at most
	 * `limit`.  job_list_all: every job, done ones too.  The restores
	 * insert records exactly as given, ids and times included; a later
	 * insert still gets a higher id than any restored one.
	 */
	int	(*repl_list)(struct store *, const char *after, size_t limit,
		    store_repl_cb, void *);
	int	(*job_list_all)(struct store *, store_job_cb, void *);
	int	(*move_restore)(struct store *, const struct store_move *,
		    size_t);
	int	(*job_restore)(struct store *, const struct store_job *,
		    size_t);
	int	(*audit_restore)(struct store *, const struct store_audit *,
		    size_t);

	/*
	 * The change feed (feed.c).  NULL in a store that has none (SQLite:
	 * one roostd per file, nobody else writes).  Every commit that
	 * changes what a lookup answers (users but not their lookup times,
	 * backends, health verdicts, proxies, the marking of a move) adds
	 * changes, numbered in commit order, and wakes the listeners.
	 */
	/* The tag this store's own writes carry (to skip them). */
	const char *(*change_origin)(struct store *);
	/* *seq: the newest change (0: none yet). */
	int	(*change_head)(struct store *, int64_t *seq);
	/* Changes after `after`, oldest first, at most limit.  *pruned: the
	 * newest change forgotten; when it is past `after`, changes were
	 * missed and only a reload of everything catches up. */
	int	(*change_list)(struct store *, int64_t after, size_t limit,
		    int64_t *pruned, store_change_cb, void *);
	/* Forget the changes older than older_ms (by the store's clock,
	 * the one that wrote them). */
	int	(*change_prune)(struct store *, int64_t older_ms);
	/* One record; each returns 1 and calls cb when found, 0 when not. */
	int	(*backend_get)(struct store *, const char *name,
		    store_backend_cb, void *);
	int	(*health_get)(struct store *, const char *backend,
		    store_health_cb, void *);
	int	(*proxy_get)(struct store *, const char *name,
		    store_proxy_cb, void *);
	/* 1 when the user has a move past its start (kicking, waiting or
	 * syncing: its logins wait), 0 when not. */
	int	(*move_marked)(struct store *, const char *user);

	/*
	 * Compare-and-set of assignments that several roostd may race on:
	 * record i is written (as user_put would) only if its user has no
	 * row (insert-if-absent), or, when expect is given and expect[i] is
	 * not NULL, has one still on backend expect[i].  For each record not
	 * written cb gets the row the store holds (a user twice in recs: the
	 * second meets the first's), or, when that row cannot be read back
	 * (it went meanwhile, or the connection did), the record with backend
	 * "": neither written nor known, ask again.  The writes are all or
	 * nothing; cb is called before the call returns, and when it returns
	 * -1 the call does too, the writes being then undetermined.
	 * user_put stays the overwrite, for changes that must win.
	 */
	int	(*user_place)(struct store *, const struct store_user *,
		    const char *const *expect, size_t, store_user_cb, void *);
	/*
	 * user_place without waiting for the store (NULL in a store whose
	 * calls never wait on a network: SQLite).  place_send sends up to
	 * STORE_PLACE_SEND_MAX records, outside a transaction, and returns;
	 * recs and expect must stay as they are until place_poll says done.
	 * Meanwhile the caller watches place_fd() for reading and then calls
	 * place_poll: 0, not answered yet; 1, done, with *rc what user_place
	 * would have returned and cb called as it would have.  One at a time;
	 * any other call on the store reads the answer first (waiting, within
	 * the store's bound), then calls ready(arg): the descriptor may not
	 * say so any more, and place_poll reports it.
	 */
	int	(*place_send)(struct store *, const struct store_user *,
		    const char *const *expect, size_t, void (*ready)(void *),
		    void *arg);
	int	(*place_fd)(struct store *);
	int	(*place_poll)(struct store *, store_user_cb, void *, int *rc);
	/* 1 while a place_send is not answered yet. */
	int	(*place_flying)(struct store *);
	/*
	 * The commit of a STORE_TX_SEND transaction without waiting, for
	 * store_commit_send() (NULL where nothing waits on a network):
	 * tx_send sends it and returns (-1: it failed at once, and nothing
	 * is open); then, as with place_send, the caller watches place_fd()
	 * and calls tx_poll: 0, no answer yet; 1, done, *rc what commit()
	 * would have returned.  Another call that needs the connection reads
	 * the answer first and calls ready(arg).
	 */
	int	(*tx_send)(struct store *, void (*ready)(void *), void *arg);
	int	(*tx_poll)(struct store *, int *rc);

	/*
	 * Roles (role.c): work one roostd of those sharing the store must
	 * own.  claim: asks for n roles at once, one round trip for those
	 * not held yet; got[i] is 1 when this store's session holds roles[i]
	 * (taken now or before), 0 when another holds it; -1 on error.  A
	 * role is held until release, or until the session ends: the
	 * holder's death or a lost connection frees it for another.  held:
	 * 1 while the
	 * current session holds it, without a round trip (0 once the
	 * connection was lost).  NULL in a store that one roostd has to
	 * itself (SQLite): every role is its own.
	 */
	int	(*role_claim)(struct store *, const char *const *roles,
		    size_t n, int *got);
	/*
	 * role_claim without waiting, for store_role_claim_send() (NULL
	 * where nothing waits on a network): claim_send asks and returns;
	 * got (n of them) must stay until the answer.  Then, as with
	 * tx_send, the caller watches place_fd() and calls claim_poll: 0,
	 * no answer yet; 1, done, with got[] and *rc as role_claim would
	 * have left them.  Another call that needs the connection reads the
	 * answer first and calls ready(arg).
	 */
	int	(*claim_send)(struct store *, const char *const *roles,
		    size_t n, int *got, void (*ready)(void *), void *arg);
	int	(*claim_poll)(struct store *, int *rc);
	int	(*role_release)(struct store *, const char *role);
	/* role_release of several without waiting, for
	 * store_role_release_send(): the roles are no longer held from the
	 * call on, their locks go back when the server has the question;
	 * its answer is read as claim_send's, with claim_poll.  NULL where
	 * nothing waits on a network. */
	int	(*release_send)(struct store *, const char *const *roles,
		    size_t n, void (*ready)(void *), void *arg);
	int	(*role_held)(struct store *, const char *role);
	/* This process alone (roostd -C): fails, naming why, while a roostd
	 * has the store open, and keeps any from opening it.  NULL where
	 * opening already takes the store alone (SQLite). */
	int	(*exclusive)(struct store *);
	/*
	 * Replication requests (repl.c): add each (ids set by the store);
	 * list the oldest, at most limit, in id order; delete those of the
	 * given ids (the holder of repl, in the transaction that queued
	 * them).  NULL where one roostd does all (SQLite).
	 */
	int	(*repl_request_add)(struct store *,
		    const struct store_repl_request *, size_t);
	int	(*repl_request_list)(struct store *, size_t limit,
		    store_repl_request_cb, void *);
	int	(*repl_request_delete)(struct store *, const int64_t *ids,
		    size_t);
};

struct store {
	const struct store_ops	*ops;
	void			*impl;		/* the implementation's state */
	char			 err[512];	/* last error, never with secrets */
	enum store_err		 errclass;	/* of the last error */
	struct store_tx		 tx;		/* the one store_begin opens */
	struct store_tx		 none;		/* store_auto()'s */
	int			 lane;		/* store_open_lane()'s */
	/* A commit sent by store_commit_send, or a claim sent by
	 * store_role_claim_send, until its answer. */
	struct event		*flight;
	const char		*flight_what;	/* for the status */
	uint64_t		 flight_at;	/* mono ms it went */
	int			(*flight_poll)(struct store *, int *);
	void			(*flight_done)(void *, int);
	void			*flight_arg;
};

extern const struct store_ops	store_sqlite_ops;

/* "sqlite:/path/file.db" -> an open store, or NULL with err filled. */
struct store	*store_open(const char *url, char *err, size_t errlen);
/* The same for the admin lane (store_lane.c): a session of its own, which
 * the server lists as application "roostd-admin". */
struct store	*store_open_lane(const char *url, char *err, size_t errlen);
void		 store_free(struct store *);
const char	*store_error(const struct store *);
/* Opens a transaction (flags: STORE_TX_*): its handle, or NULL (the error
 * in store_error) when one is open already or the store said no. */
struct store_tx	*store_begin(struct store *, int flags);
/* Ends the transaction: 0 when committed, -1 when not, and then it is
 * rolled back with store_error() saying why it failed. */
int		 store_commit(struct store_tx *);
/* Ends the transaction, undoing its writes; the last error stays (a failed
 * write's, say).  Nothing to do for a handle that has ended (a failed
 * commit) or for store_auto()'s.  -1 only if the rollback itself failed. */
int		 store_rollback(struct store_tx *);
/*
 * Ends a STORE_TX_SEND transaction without the loop waiting for the
 * store: 0 when its commit is on the way, and done(arg, rc) comes later,
 * on base's loop, with rc what store_commit would have returned (and
 * store_error why); -1 when it failed at once (nothing committed, store_error
 * says why, done is not called).  A store that never waits on a network
 * (SQLite) commits now and calls done before returning.  Until done,
 * store_flying() is 1, and any other call waits for the answer first.
 */
int		 store_commit_send(struct store_tx *, struct event_base *,
		    void (*done)(void *, int), void *arg);
/*
 * The store's role_claim (roles, n, got as there) without the loop waiting
 * for the answer, where the store can (claim_send): done(arg, rc) is called
 * when it came, got[] filled as role_claim would have (got must stay until
 * then).  One flight at a time with store_commit_send's: -1 (retryable)
 * while another is under way.  Elsewhere role_claim runs and done is
 * called before this returns.
 */
int		 store_role_claim_send(struct store *, struct event_base *,
		    const char *const *roles, size_t n, int *got,
		    void (*done)(void *, int), void *arg);
/* Its mirror: the roles given back (role_release of each), as a flight
 * of the same kind. */
int		 store_role_release_send(struct store *,
		    struct event_base *, const char *const *roles, size_t n,
		    void (*done)(void *, int), void *arg);
/*
 * The dsync states of n users (states[i]: a copy of users[i]'s, "" when it
 * has none, NULL when the store could not say; the caller frees them and
 * keeps the array until done) without the loop waiting, where the store
 * can (states_send); else read one by one before this returns.  done and
 * the flight as with store_role_claim_send.
 */
int		 store_repl_states_send(struct store *, struct event_base *,
		    const char *const *users, size_t n, char **states,
		    void (*done)(void *, int), void *arg);
/*
 * The open moves and running jobs (move_list with active, job_list) into
 * *out, without the loop waiting where the store can (scan_send); done and
 * the flight as with store_role_claim_send.  *out must stay until done;
 * store_scan_clear() frees what it holds.
 */
int		 store_moves_scan_send(struct store *, struct event_base *,
		    struct store_scan *out, void (*done)(void *, int),
		    void *arg);
/* The oldest replication requests, at most limit (repl_request_list),
 * into out->reqs the same way. */
int		 store_repl_requests_send(struct store *, struct event_base *,
		    size_t limit, struct store_scan *out,
		    void (*done)(void *, int), void *arg);
void		 store_scan_clear(struct store_scan *);
/* For implementations: copy a row into a struct store_scan. */
int		 store_scan_move(const struct store_move *, void *scan);
int		 store_scan_job(const struct store_job *, void *scan);
int		 store_scan_request(const struct store_repl_request *,
		    void *scan);
/* Waits for the commit or claim in flight, if any, and calls its done:
 * for the owner of a flight that ends (bounded by the store's own
 * waits). */
void		 store_flight_land(struct store *);
/* The handle of no transaction: each write given it stands alone. */
struct store_tx	*store_auto(struct store *);
/*
 * The writes, each on the transaction it names (the ops of the same name
 * say what they do).  roostd writes only through these: a write on an
 * ended handle, or on store_auto()'s while a transaction is open, fails
 * without reaching the store.
 */
int		 store_backend_insert(struct store_tx *,
		    const struct backend *b);
int		 store_backend_update(struct store_tx *,
		    const struct backend *b);
int		 store_backend_delete(struct store_tx *, const char *name,
		    int64_t *released);
int		 store_proxy_insert(struct store_tx *, const struct proxy *p);
int		 store_proxy_update(struct store_tx *, const struct proxy *p);
int		 store_proxy_delete(struct store_tx *, const char *name);
int		 store_health_put(struct store_tx *,
		    const struct store_health *h);
int		 store_move_insert(struct store_tx *, struct store_move *m);
int		 store_move_state(struct store_tx *, int64_t id,
		    const char *state, const char *error);
int		 store_move_switch(struct store_tx *,
		    const struct store_move *m, const struct store_user *u);
int		 store_job_insert(struct store_tx *, struct store_job *j);
int		 store_job_state(struct store_tx *, int64_t id,
		    const char *state, int64_t made);
int		 store_user_put(struct store_tx *, const struct store_user *us,
		    size_t n);
int		 store_user_delete(struct store_tx *, const char *user);
int		 store_user_touch(struct store_tx *,
		    const struct store_user *us, size_t n);
int		 store_user_place(struct store_tx *,
		    const struct store_user *us, const char *const *expect,
		    size_t n, store_user_cb cb, void *arg);
int		 store_repl_put(struct store_tx *, const struct store_repl *rs,
		    size_t n);
int		 store_repl_delete(struct store_tx *, const char *user);
int		 store_audit_add(struct store_tx *, const char *actor,
		    const char *action, const char *subject,
		    const char *detail);
int		 store_move_restore(struct store_tx *,
		    const struct store_move *ms, size_t n);
int		 store_job_restore(struct store_tx *,
		    const struct store_job *js, size_t n);
int		 store_audit_restore(struct store_tx *,
		    const struct store_audit *as, size_t n);
int		 store_change_prune(struct store_tx *, int64_t older_ms);
int		 store_repl_request_add(struct store_tx *,
		    const struct store_repl_request *rq, size_t n);
int		 store_repl_request_delete(struct store_tx *,
		    const int64_t *ids, size_t n);

/* The last error was retryable (STORE_ERETRY). */
int		 store_retryable(const struct store *);
/* A batch (place_send), a commit (store_commit_send) or a claim
 * (store_role_claim_send) is in flight: work
 * that can wait a moment does not call the store now, which would wait for
 * it to land. */
int		 store_flying(struct store *);
/* What is in flight for GET /v1/status: {"what": "...", "ms": N} (how long
 * it has waited for the store), or JSON null. */
json_t		*store_flight_json(struct store *);
/* The HTTP status that answers the last error: 503 retryable, 409
 * conflict, else 500. */
int		 store_http_status(const struct store *);
/* For implementations: record an error message, of class STORE_EFATAL
 * or STORE_ECONFLICT. */
void		 store_set_error(struct store *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 store_set_conflict(struct store *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

#endif
