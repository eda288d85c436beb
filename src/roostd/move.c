/*
 * move.c: moves, the one way an assigned user changes backend.
 *
 *	queued -> waiting -> (switch) done
 *	            |   ^      \---> failed (sessions outlived move_timeout)
 *	            v   |
 *	           kicking    (only while who shows a session)
 *
 * A move marks the user moving in memory (lookups wait).  Waiting asks the
 * old backend's `who` (one poll of all users serves every move off that
 * backend) until the user has no session there; while it has one, the old
 * backend, then every registered proxy, kick the user's sessions through
 * their doveadm HTTP API.  A backend that cannot be asked (no doveadm URL,
 * down, failed) is left to the proxies' kicks.
 *
 * The switch writes the user's new backend and the move's end in one
 * transaction that only applies if the user is still on the old backend
 * (compare and set: with several roostd on one store, the loser of a race
 * changes nothing).  Only then do waiting lookups get the new backend: at
 * no moment are two backends handed out for a user.
 *
 * Each step is written to the store.  A roostd killed mid-move takes the
 * open moves up again at start and runs them from the start (kicking twice
 * is harmless); a switch is atomic, so a move is never half done.  At most
 * move_max_parallel moves run at once; more wait in the queue, in the
 * order they came.
 *
 * With several roostd on one store only the holder of the role "moves"
 * (role.c) runs moves and jobs.  Another instance asked for one stores it
 * ("handed": an admin waiting for its end is answered when the change feed
 * shows it over); the holder takes up every open move and running job it
 * does not run yet, at once when the feed names one and every
 * MOVE_SCAN_MS anyway (queued ones; those already begun only when it
 * gains the role, from the holder before it).  A holder that loses the
 * role stops at once and writes nothing more: the next holder takes the
 * stored moves up as a restart would, and meanwhile the users of moves
 * under way stay held.
 */
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "doveadm.h"
#include "events.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "lookup.h"
#include "move.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

#define MOVE_TICK_MS		50	/* deadlines and who polls are checked */
#define MOVE_WHO_EVERY_MS	100	/* between two who polls of a backend */
#define MOVE_GRACE_MS		300	/* a login answered before the mark
					 * reaches the backend within this */
#define MOVE_CALL_MS		5000	/* one doveadm call at most */
#define MOVE_ERR_MAX		160
#define MOVE_SCAN_MS		1000	/* the holder looks for stored work */
#define MOVE_YIELD_MS		2	/* steps wait for another's flight */
#define MOVE_HANDED_MS		30000	/* past move_timeout: a handed move's
					 * end not seen, its admin answered */

enum move_state {
	MOVE_QUEUED,
	MOVE_KICKING,
	MOVE_WAITING,
	MOVE_SYNCING,
	MOVE_DONE,
	MOVE_FAILED
};

static const char *const move_state_names[] = {
	"queued", "kicking", "waiting", "syncing", "done", "failed"
};

/* A request answered when its move is over: a lookup, or an admin call. */
struct move_wait {
	struct evhttp_request	*req;
	int			 proto;		/* lookups */
	int			 admin;
	uint64_t		 deadline;	/* lookups: monotonic ms */
};

/* One doveadm call of a move; the callback gets this, not the handle. */
struct move_call {
	LIST_ENTRY(move_call)	 entry;
	struct move		*m;
	struct doveadm_call	*call;
};

struct move {
	TAILQ_ENTRY(move)	 entry;
	struct roost		*rs;
	int64_t			 id;
	char			 user[256];
	size_t			 len;
	long			 from, to;
	char			 from_name[BACKEND_NAME_MAX + 1];
	char			 to_name[BACKEND_NAME_MAX + 1];
	char			 reason[16];
	int			 pin;
	enum move_state		 state;
	int64_t			 created;
	uint64_t		 deadline;	/* monotonic ms: move_timeout */
	LIST_HEAD(, move_call)	 calls;		/* kicks and who out */
	unsigned		 kicks_out;
	int			 kicked;	/* the kicks were sent */
	int			 kicked_backend;	/* proxies' turn */
	int			 mark_pending;	/* its step "waiting" not yet
						 * in the store: no kick */
	uint64_t		 marked;	/* monotonic ms: marked moving */
	uint64_t		 flying_seen;	/* monotonic ms: a login answered
						 * before the mark was last seen
						 * on its way (events.c) */
	int			 ready;		/* to switch at the next pass */
	int			 switching;	/* its switch is in the admin
						 * lane (struct switches) */
	int			 checking;	/* handed: 1 its row is read in
						 * the lane, 2 and to be read
						 * again after */
	struct repl_run		*sync;		/* a sync of the move, running */
	int			 presynced;	/* the copy before the kick is done */
	char			*sync_state;	/* the dsync state it answered */
	int			 synced;	/* the final sync is done */
	struct move_job		*job;		/* the job that made it, if any */
	struct move_wait	*waits;
	size_t			 nwaits, cwaits;
	char			 error[MOVE_ERR_MAX];
};

TAILQ_HEAD(move_list, move);

/*
 * A flush or a rebalance: it walks the user map a slice at a time and
 * makes moves only as room frees up under move_max_parallel, so a backend
 * of a million users costs a million moves over time, never at once.
 */
struct move_job {
	TAILQ_ENTRY(move_job)	 entry;
	int64_t			 id;
	int			 flush;		/* else a rebalance */
	int			 failback;	/* a flush in reverse: the
						 * users failed over from slot
						 * go back to it */
	long			 slot;		/* flush, failback: the backend */
	char			 backend[BACKEND_NAME_MAX + 1];
	long long		 max;		/* moves at most, 0: no bound */
	long long		 rate;		/* moves a second, 0: no bound */
	long long		 made;
	size_t			 cursor;	/* in the user map */
	size_t			 swept;		/* slots seen this sweep */
	size_t			 sweep_made;	/* moves made this sweep */
	size_t			 stuck;		/* users with nowhere to go */
	uint64_t		 rest_until;	/* mono ms: no sweep before */
	size_t			 sweep_waiting;	/* failback: users seen this sweep
						 * whose backend is not synced
						 * for them yet */
	uint64_t		 t0;
	unsigned		 open;		/* its moves not over */
	int			 pulling;	/* moves on their way to the
						 * store (struct pull) */
	int			 done;
};

TAILQ_HEAD(job_list, move_job);

struct moves {
	struct move_list	 queue;
	struct move_list	 active;
	/* Made, and on their way to the store through the admin lane: the
	 * moves scan, which may read them back before the lane's answer
	 * comes, must not take them up a second time. */
	struct move_list	 storing;
	struct move_job_ask	**asks;		/* jobs the same way */
	size_t			 nasks;
	/* Ends on their way to the store (state_write): the scan leaves
	 * them alone too.  Ids of moves (move) and of jobs. */
	struct ending {
		int64_t		 id;
		int		 move;
	}			*ending;
	size_t			 nending;
	size_t			 nqueued, nactive;
	struct job_list		 jobs;
	struct who_poll		**polls;	/* by backend slot */
	size_t			 npolls;
	struct event		*tick;
	/* Not the holder of role moves: */
	struct move_list	 handed;	/* stored for the holder; their
						 * admins wait for the feed */
	struct job_list		 handed_jobs;	/* stored for the holder; kept
						 * for the caller's answer */
	/* The holder: */
	int			 held;		/* role moves, as acted on */
	int			 need_all;	/* begun moves not taken up yet */
	int			 scan_due;	/* the feed named a move */
	uint64_t		 scanned;	/* mono ms, the last take-up */
	int			 scanning;	/* a look on its way */
	struct store_scan	 scan;		/* what it brings */
	int			 closing;	/* move_free under way */
	/* Steps to store, the newest of each move (move_store_state),
	 * written together without the loop waiting. */
	struct step		*steps;
	size_t			 nsteps, csteps;
	int			 steps_flying;
	struct event		*steps_ev;
	int			 switching;	/* a batch of switches in the
						 * admin lane */
};

struct step {
	int64_t			 id;
	enum move_state		 state;
	char			 error[MOVE_ERR_MAX];
};

#define JOB_SCAN_SLOTS		65536	/* map slots a pass looks at */

static void	move_finish(struct move *, int ok, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
static int	move_storing(const struct moves *, const char *);

int64_t
move_id(const struct move *m)
{
	return m->id;
}

size_t
move_open_count(const struct roost *rs)
{
	return rs->moves != NULL ? rs->moves->nqueued + rs->moves->nactive : 0;
}

json_t *
move_json(const struct move *m)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I}",
	    "id", (json_int_t)m->id, "user", m->user, "from", m->from_name,
	    "to", m->to_name, "reason", m->reason,
	    "state", move_state_names[m->state], "pin", m->pin,
	    "error", m->error, "created", (json_int_t)m->created);
}

static struct move *
handed_find(struct roost *rs, const char *key, size_t len)
{
	struct move *m;

	TAILQ_FOREACH(m, &rs->moves->handed, entry)
		if (m->len == len && memcmp(m->user, key, len) == 0)
			return m;
	return NULL;
}

static struct move *
move_find(struct roost *rs, const char *key, size_t len)
{
	struct moves *mv = rs->moves;
	struct move *m;

	TAILQ_FOREACH(m, &mv->active, entry)
		if (m->len == len && memcmp(m->user, key, len) == 0)
			return m;
	TAILQ_FOREACH(m, &mv->queue, entry)
		if (m->len == len && memcmp(m->user, key, len) == 0)
			return m;
	return NULL;
}

static void
move_wait_add(struct move *m, struct evhttp_request *req, int proto,
    int admin)
{
	struct move_wait *w;

	if (m->nwaits == m->cwaits) {
		m->cwaits = m->cwaits ? m->cwaits * 2 : 4;
		m->waits = xreallocarray(m->waits, m->cwaits, sizeof(*m->waits));
	}
	w = &m->waits[m->nwaits++];
	w->req = req;
	w->proto = proto;
	w->admin = admin;
	w->deadline = now_msec_mono() +
	    (uint64_t)m->rs->conf->move_login_wait * 1000;
}

static void	move_unasked(struct move *);
static int	move_must_ask(const struct move *);

static int
step_noted(const struct moves *mv, int64_t id)
{
	size_t i;

	for (i = 0; i < mv->nsteps; i++)
		if (mv->steps[i].id == id)
			return 1;
	return 0;
}

/*
 * A move's first step past queued (waiting) marks its user moving for
 * every other instance (the change feed), which then holds the user's
 * logins: no who poll and no kick before it is in the store, or another
 * instance could send a login to the old backend after the kick.  Called
 * when the steps written have landed (a step the store did not take, best
 * effort, holds nothing up): the moves whose mark is no longer waiting to
 * be sent go on.
 */
static void
steps_release(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move *m, *next;

	for (m = TAILQ_FIRST(&mv->active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (!m->mark_pending || step_noted(mv, m->id))
			continue;
		m->mark_pending = 0;
		if (m->state == MOVE_WAITING && !move_must_ask(m))
			move_unasked(m);
	}
}

/* The steps stored: best effort, as the comment above says. */
static void
steps_done(void *arg, int rc)
{
	struct roost *rs = arg;

	rs->moves->steps_flying = 0;
	if (rc == -1)
		log_debug("moves: steps not stored: %s",
		    store_error(rs->store));
	if (rs->moves->closing)
		return;
	steps_release(rs);
	if (rs->moves->nsteps > 0)
		event_active(rs->moves->steps_ev, EV_TIMEOUT, 0);
}

/* Write the steps noted since the last write, as one sent transaction. */
static void
steps_write(evutil_socket_t fd, short what, void *arg)
{
	struct roost *rs = arg;
	struct moves *mv = rs->moves;
	struct store *st = rs->store;
	struct store_tx *tx;
	size_t i, n;

	(void)fd;
	(void)what;
	if (mv->nsteps == 0 || mv->steps_flying)
		return;
	if (store_flying(st)) {
		struct timeval tv = { 0, MOVE_YIELD_MS * 1000 };

		if (event_add(mv->steps_ev, &tv) == -1)
			fatalx("event_add");
		return;
	}
	n = mv->nsteps < STORE_SEND_MAX ? mv->nsteps : STORE_SEND_MAX;
	if ((tx = store_begin(st, STORE_TX_SEND)) == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if (store_move_state(tx, mv->steps[i].id,
		    move_state_names[mv->steps[i].state],
		    mv->steps[i].error) == -1) {
			store_rollback(tx);
			goto fail;
		}
	memmove(mv->steps, mv->steps + n, (mv->nsteps - n) *
	    sizeof(*mv->steps));
	mv->nsteps -= n;
	mv->steps_flying = 1;
	if (store_commit_send(tx, rs->base, steps_done, rs) == -1)
		steps_done(rs, -1);
	return;
fail:
	/* Dropped: a move that runs again starts from its kick. */
	log_debug("moves: %zu steps not stored: %s", mv->nsteps,
	    store_error(st));
	mv->nsteps = 0;
	steps_release(rs);
}

static void
steps_forget(struct moves *mv, int64_t id)
{
	size_t i;

	for (i = 0; i < mv->nsteps; i++)
		if (mv->steps[i].id == id) {
			memmove(&mv->steps[i], &mv->steps[i + 1],
			    (mv->nsteps - i - 1) * sizeof(*mv->steps));
			mv->nsteps--;
			return;
		}
}

int
move_steps_settled(struct roost *rs)
{
	struct moves *mv = rs->moves;

	if (mv == NULL || (mv->nsteps == 0 && !mv->steps_flying))
		return 1;
	if (!mv->steps_flying)
		event_active(mv->steps_ev, EV_TIMEOUT, 0);
	return 0;
}

/*
 * Note the move's step for the store.  Best effort: at restart an open
 * move runs again from the kick, whatever step the store last saw, so
 * the steps go together a moment later and the loop does not wait for
 * them.  A switch waits for them: it goes on the same connection after
 * them, and its own step (done) is the move's newest.
 */
static void
move_store_state(struct move *m)
{
	struct moves *mv = m->rs->moves;
	struct step *sp = NULL;
	size_t i;

	/* Another instance runs the move now: its steps are the ones. */
	if (!role_held(m->rs, ROLE_MOVES))
		return;
	for (i = 0; i < mv->nsteps && sp == NULL; i++)
		if (mv->steps[i].id == m->id)
			sp = &mv->steps[i];
	if (sp == NULL) {
		mv->steps = xgrow(mv->steps, mv->nsteps, &mv->csteps,
		    sizeof(*mv->steps));
		sp = &mv->steps[mv->nsteps++];
		sp->id = m->id;
	}
	sp->state = m->state;
	snprintf(sp->error, sizeof(sp->error), "%s", m->error);
	event_active(mv->steps_ev, EV_TIMEOUT, 0);
}

static void
move_cancel_calls(struct move *m)
{
	struct move_call *mc;

	while ((mc = LIST_FIRST(&m->calls)) != NULL) {
		LIST_REMOVE(mc, entry);
		doveadm_cancel(mc->call);
		free(mc);
	}
	m->kicks_out = 0;
}

static struct move_call *
move_call_new(struct move *m)
{
	struct move_call *mc = xcalloc(1, sizeof(*mc));

	mc->m = m;
	LIST_INSERT_HEAD(&m->calls, mc, entry);
	return mc;
}

/* In a callback: the call is over; returns its move. */
static struct move *
move_call_done(struct move_call *mc)
{
	struct move *m = mc->m;

	LIST_REMOVE(mc, entry);
	free(mc);
	return m;
}

static void
move_destroy(struct move *m)
{
	move_cancel_calls(m);
	repl_run_cancel(m->sync);
	free(m->sync_state);
	free(m->waits);
	free(m);
}

/* Answer what waited for the move, as it ended. */
static void
move_answer(struct move *m, int ok)
{
	struct roost *rs = m->rs;
	struct umap_entry *e = umap_get(rs->users, m->user, m->len);
	size_t i;

	for (i = 0; i < m->nwaits; i++) {
		struct move_wait *w = &m->waits[i];

		if (w->admin) {
			if (ok)
				api_reply_user(rs, w->req, m->user, m->len);
			else
				http_reply_error(w->req, 409, "backend", "moving "
				    "%s to %s failed: %s", m->user, m->to_name,
				    m->error);
		} else if (e != NULL)
			lookup_reply(rs, w->req, e, w->proto);
		else
			http_reply_error_reason(w->req, 503, "moving",
			    "user %s was moved; try again", m->user);
	}
	m->nwaits = 0;
}

static void
move_finish(struct move *m, int ok, const char *fmt, ...)
{
	struct roost *rs = m->rs;
	struct moves *mv = rs->moves;
	struct umap_entry *e;
	char why[MOVE_ERR_MAX];
	va_list ap;

	if (fmt != NULL) {
		/* The arguments may be m->error itself. */
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		memcpy(m->error, why, sizeof(m->error));
	}
	move_cancel_calls(m);
	if ((e = umap_get(rs->users, m->user, m->len)) != NULL)
		e->flags &= ~UMAP_F_MOVING;
	if (!ok) {
		m->state = MOVE_FAILED;
		move_store_state(m);
		log_warnx("move %lld: %s from %s to %s failed: %s",
		    (long long)m->id, m->user, m->from_name, m->to_name,
		    m->error);
	} else
		log_info("move %lld: %s from %s to %s done (%s)",
		    (long long)m->id, m->user, m->from_name, m->to_name,
		    m->reason);
	move_answer(m, ok);
	if (m->job != NULL)
		m->job->open--;
	TAILQ_REMOVE(&mv->active, m, entry);
	mv->nactive--;
	move_destroy(m);
}

static void	move_ready(struct move *);

static void
final_sync_done(void *arg, int ok, const char *error, const char *state)
{
	struct move *m = arg;

	(void)state;
	m->sync = NULL;
	if (!ok) {
		move_finish(m, 0, "final sync from %s to %s: %s", m->from_name,
		    m->to_name, error);
		return;
	}
	m->synced = 1;
	move_ready(m);
}

/*
 * With replication the mail has to be where the user goes: the sessions
 * are gone, so one last sync from the old backend (incremental when the
 * new one is the user's replica) leaves nothing behind, and only then is
 * the new backend handed out.  Without a way to sync from the old backend
 * (down, failed) only a current replica may take the user, as in a
 * failover.
 */
static int
move_needs_sync(struct move *m, struct umap_entry *e)
{
	struct roost *rs = m->rs;
	const struct backend *b = rs->backends[m->from];

	if (!rs->conf->replication || m->synced || e == NULL)
		return 0;
	if (b == NULL || b->doveadm_url == NULL || b->state == BACKEND_DOWN ||
	    b->failed) {
		if ((long)e->replica == m->to &&
		    (e->flags & UMAP_F_REPL_CURRENT))
			return 0;
		return -1;
	}
	return 1;
}

/*
 * The switch is asked for here and done by move_commit_ready() at the next
 * pass, together with every other move ready by then: one transaction for
 * all, so a flush costs one store round trip (and one fsync) a pass, not a
 * move.
 */
static void
move_switch(struct move *m)
{
	struct roost *rs = m->rs;
	struct umap_entry *e = umap_get(rs->users, m->user, m->len);
	uint64_t limit;

	if (m->sync != NULL || m->state == MOVE_SYNCING)
		return;
	switch (move_needs_sync(m, e)) {
	case 0:
		move_ready(m);
		return;
	case -1:
		move_finish(m, 0, "cannot sync from %s, and %s is not the "
		    "user's current replica", m->from_name, m->to_name);
		return;
	}
	m->state = MOVE_SYNCING;
	move_store_state(m);
	/* The sync has its own bound, on top of the move's. */
	limit = now_msec_mono() + (uint64_t)rs->conf->replication_sync_timeout *
	    1000 + 1000;
	if (m->deadline < limit)
		m->deadline = limit;
	/* After the copy, only what changed since: from its state. */
	if ((m->sync = repl_run_sync(rs, e, m->from, m->to, m->sync_state,
	    final_sync_done, m)) == NULL)
		move_finish(m, 0, "final sync: the dsync state could not be "
		    "read: %s", store_error(rs->store));
}

static void
move_ready(struct move *m)
{
	m->ready = 1;
	event_active(m->rs->moves->tick, EV_TIMEOUT, 0);
}

/*
 * Where the user's replica is after the switch: a move onto the replica
 * swaps the two (and the final sync made the old backend a current copy);
 * a move elsewhere keeps the replica, unless the new backend shares its
 * host.  A user that moved has a new home: it is no longer failed over.
 */
static long
move_replica_after(struct roost *rs, const struct move *m,
    const struct umap_entry *e, int *current)
{
	const struct backend *to = rs->backends[m->to], *r;

	*current = (e->flags & UMAP_F_REPL_CURRENT) != 0;
	if ((long)e->replica == m->to) {
		*current = m->synced && rs->conf->replication;
		return rs->backends[m->from] != NULL ? m->from : -1;
	}
	if (e->replica >= rs->nslots || (r = rs->backends[e->replica]) == NULL)
		return -1;
	if ((r->hostip[0] != '\0' && strcmp(r->hostip, to->hostip) == 0) ||
	    strcmp(r->host, to->host) == 0)
		return -1;
	return (long)e->replica;
}

static void
move_new_replica(struct roost *rs, const struct move *m,
    const struct umap_entry *e, struct store_user *su)
{
	long r;
	int current;

	r = move_replica_after(rs, m, e, &current);
	su->replica = r >= 0 ? rs->backends[r]->name : NULL;
	su->replica_current = r >= 0 && current;
	su->failed_over = 0;
}

/*
 * The switches of the moves that are ready, together: compare and set in
 * one transaction through the admin lane (the loop does not wait for the
 * commit), then memory, then the answers.  What is written is copied
 * here, so that the answer applies what the store has even when the move
 * went meanwhile (the role lost).
 */
struct switch_one {
	int64_t			 id;
	char			 user[256];
	size_t			 len;
	char			 from[BACKEND_NAME_MAX + 1];
	char			 to[BACKEND_NAME_MAX + 1];
	char			 replica[BACKEND_NAME_MAX + 1];
	int			 replica_current;
	int			 pin;
	int64_t			 since;
	int			 res;		/* 1 switched, 0 the store no
						 * longer had it on from */
};

struct switches {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	struct switch_one	*one;
	size_t			 n;
};

static int
switches_prepare(struct lane_job *job)
{
	struct switches *sw = (struct switches *)job;

	/* A step of these moves on its way would land after the switch's
	 * own (done) and overwrite it: the flight lands first (within the
	 * store's bound).  Their steps not sent yet were forgotten, and
	 * none is noted while they switch, so only the flight matters: the
	 * steps of other moves, which may keep coming, do not hold it. */
	return sw->rs->moves->steps_flying ? LANE_NOT_YET : 0;
}

static int
switches_run(struct store *st, struct lane_job *job)
{
	struct switches *sw = (struct switches *)job;
	struct store_tx *tx;
	struct store_move sm;
	struct store_user su;
	struct switch_one *o;
	size_t i;

	if ((tx = store_begin(st, STORE_TX_ADMIN)) == NULL)
		return -1;
	for (i = 0; i < sw->n; i++) {
		o = &sw->one[i];
		memset(&sm, 0, sizeof(sm));
		sm.id = o->id;
		sm.user = o->user;
		sm.from = o->from;
		sm.to = o->to;
		memset(&su, 0, sizeof(su));
		su.user = o->user;
		su.pinned = o->pin;
		su.since = o->since;
		su.replica = o->replica[0] != '\0' ? o->replica : NULL;
		su.replica_current = o->replica_current;
		if ((o->res = store_move_switch(tx, &sm, &su)) == -1) {
			store_rollback(tx);
			return -1;
		}
	}
	return store_commit(tx);
}

static struct move *
active_find(struct moves *mv, int64_t id)
{
	struct move *m;

	TAILQ_FOREACH(m, &mv->active, entry)
		if (m->id == id)
			return m;
	return NULL;
}

/* Memory as the store has it after the switch of o. */
static void
switch_apply(struct roost *rs, const struct switch_one *o)
{
	struct umap_entry *e;
	long to, r;

	if ((e = umap_get(rs->users, o->user, o->len)) == NULL ||
	    (to = state_backend_find(rs, o->to)) == -1)
		return;
	r = o->replica[0] != '\0' ? state_backend_find(rs, o->replica) : -1;
	e->replica = r >= 0 ? (uint16_t)r : UMAP_NO_BACKEND;
	e->flags &= ~(UMAP_F_REPL_CURRENT | UMAP_F_FAILED_OVER);
	if (r >= 0 && o->replica_current)
		e->flags |= UMAP_F_REPL_CURRENT;
	state_user_assign(rs, e, (uint16_t)to);
	e->pinned = o->pin != 0;
	e->since = (uint32_t)o->since;
	repl_pair_changed(rs, e);
}

static void
switches_done(struct lane_job *job)
{
	struct switches *sw = (struct switches *)job;
	struct roost *rs = sw->rs;
	struct moves *mv = rs->moves;
	struct switch_one *o;
	struct move *m;
	size_t i;

	mv->switching = 0;
	if (job->rc == -1)
		/* Tried again at the next pass, until each move's
		 * deadline. */
		log_debug("%zu move switches not written yet: %s", sw->n,
		    job->err);
	for (i = 0; i < sw->n; i++) {
		o = &sw->one[i];
		m = active_find(mv, o->id);
		if (m != NULL)
			m->switching = 0;
		if (job->rc == -1)
			continue;
		if (o->res == 0) {
			if (m != NULL) {
				snprintf(m->error, sizeof(m->error), "the store "
				    "no longer has the user on %s", o->from);
				move_finish(m, 0, NULL);
			}
			continue;
		}
		switch_apply(rs, o);
		if (m != NULL) {
			m->state = MOVE_DONE;
			move_finish(m, 1, NULL);
		}
	}
	free(sw->one);
	free(sw);
	if (mv->tick != NULL)
		event_active(mv->tick, EV_TIMEOUT, 0);
}

static void
move_commit_ready(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move *m, *next;
	struct umap_entry *e;
	struct store_user su;
	struct switches *sw;
	struct switch_one *o;
	int64_t now = now_sec();

	if (mv->switching)
		return;
	sw = xcalloc(1, sizeof(*sw));
	sw->rs = rs;
	for (m = TAILQ_FIRST(&mv->active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (!m->ready || m->switching)
			continue;
		e = umap_get(rs->users, m->user, m->len);
		if (e == NULL || e->backend != m->from) {
			move_finish(m, 0, "the user left %s meanwhile",
			    m->from_name);
			continue;
		}
		if (rs->backends[m->to] == NULL ||
		    strcmp(rs->backends[m->to]->name, m->to_name) != 0) {
			move_finish(m, 0, "backend %s is gone", m->to_name);
			continue;
		}
		/* The switch stores its own step (done), the newest: an
		 * older one noted and not sent yet must not follow it. */
		steps_forget(mv, m->id);
		m->switching = 1;
		sw->one = xreallocarray(sw->one, sw->n + 1, sizeof(*sw->one));
		o = &sw->one[sw->n++];
		memset(o, 0, sizeof(*o));
		o->id = m->id;
		memcpy(o->user, m->user, m->len + 1);
		o->len = m->len;
		snprintf(o->from, sizeof(o->from), "%s", m->from_name);
		snprintf(o->to, sizeof(o->to), "%s", m->to_name);
		memset(&su, 0, sizeof(su));
		move_new_replica(rs, m, e, &su);
		if (su.replica != NULL)
			snprintf(o->replica, sizeof(o->replica), "%s",
			    su.replica);
		o->replica_current = su.replica_current;
		o->pin = m->pin;
		o->since = now;
	}
	if (sw->n == 0) {
		free(sw);
		return;
	}
	sw->job.what = "move switches";
	sw->job.prepare = switches_prepare;
	sw->job.run = switches_run;
	sw->job.done = switches_done;
	mv->switching = 1;
	store_lane_give(rs->lane, &sw->job);
}

/* Can the old backend still hold sessions that only its who can show? */
static int
move_must_ask(const struct move *m)
{
	const struct backend *b = m->rs->backends[m->from];

	return b != NULL && strcmp(b->name, m->from_name) == 0 &&
	    b->doveadm_url != NULL && b->state != BACKEND_DOWN && !b->failed;
}

/*
 * One `who` of all users a poll on a backend serves every move leaving it:
 * a backend's doveadm API answers a hundred or two requests a second, so a
 * question per user would cap a flush there.  A move waits for a poll that
 * began at least MOVE_GRACE_MS after the user was marked moving, and after
 * every login answered before the mark was seen to begin or fail (the
 * proxies' session events, events.c; the proxy may take longer than the
 * grace to reach the backend, and a poll before its session would miss
 * it).  Without those events, or when one is lost, only the grace holds.
 * If the poll shows no session of the user, the move switches; if it
 * does, the user is kicked on the backend, then on the proxies, and the
 * next polls decide.
 */
struct who_poll {
	struct roost		*rs;
	long			 slot;
	char			 backend[BACKEND_NAME_MAX + 1];
	struct doveadm_call	*call;		/* NULL: none out */
	uint64_t		 started;
	uint64_t		 last;		/* when the last one began */
};

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void	move_kick_at(struct move *, const char *, const char *);

/*
 * The backend first: its kick says BYE, which the proxies relay; a
 * proxy's own kick just cuts the connection, so the proxies come after
 * (kick_done), for what the backend could not end.
 */
static void
move_kick(struct move *m)
{
	const struct backend *b = m->rs->backends[m->from];

	m->state = MOVE_KICKING;
	m->kicked_backend = 0;
	move_store_state(m);
	move_kick_at(m, b->doveadm_url, b->doveadm_key);
}

static void
move_kick_proxies(struct move *m)
{
	struct roost *rs = m->rs;
	size_t i;

	m->kicked_backend = 1;
	for (i = 0; i < rs->nproxies; i++)
		move_kick_at(m, rs->proxies[i]->doveadm_url,
		    rs->proxies[i]->doveadm_key);
}

static void
who_all_done(void *arg, const struct doveadm_result *res)
{
	struct who_poll *wp = arg;
	struct roost *rs = wp->rs;
	struct move *m, *next;
	const char **names = NULL, *key = NULL;
	size_t n = 0, i;
	json_t *row;

	wp->call = NULL;
	if (res->ok && json_is_array(res->response)) {
		names = xcalloc(json_array_size(res->response) + 1,
		    sizeof(*names));
		json_array_foreach(res->response, i, row) {
			const char *u = json_string_value(json_object_get(row,
			    "username"));

			if (u != NULL)
				names[n++] = u;
		}
		qsort(names, n, sizeof(*names), name_cmp);
	}
	for (m = TAILQ_FIRST(&rs->moves->active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->from != wp->slot || m->ready || m->state == MOVE_QUEUED ||
		    m->state == MOVE_SYNCING ||
		    m->marked + MOVE_GRACE_MS > wp->started ||
		    m->flying_seen >= wp->started)
			continue;
		if (!res->ok) {
			snprintf(m->error, sizeof(m->error), "who on %s: %s",
			    m->from_name, res->error);
			continue;
		}
		key = m->user;
		if (bsearch(&key, names, n, sizeof(*names), name_cmp) == NULL) {
			m->error[0] = '\0';
			move_switch(m);
			continue;
		}
		snprintf(m->error, sizeof(m->error), "sessions still on %s",
		    m->from_name);
		if (m->kicks_out == 0 && !m->kicked) {
			m->kicked = 1;
			move_kick(m);
		}
	}
	free(names);
}

/* Start the polls that waiting moves need; called every tick. */
static void
move_polls(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct who_poll *wp;
	const struct backend *b;
	struct move *m;
	uint64_t now = now_msec_mono();

	TAILQ_FOREACH(m, &mv->active, entry) {
		if (m->ready || m->mark_pending || m->state == MOVE_QUEUED ||
		    m->state == MOVE_SYNCING || !move_must_ask(m))
			continue;
		/* Seen at this tick: no poll begun now decides this move
		 * (who_all_done), whichever move it was begun for. */
		if (events_logins_in_flight(rs, m->user, m->len) > 0)
			m->flying_seen = now;
		if (m->marked + MOVE_GRACE_MS > now || m->flying_seen == now)
			continue;
		if ((size_t)m->from >= mv->npolls) {
			mv->polls = xreallocarray(mv->polls, (size_t)m->from + 1,
			    sizeof(*mv->polls));
			memset(mv->polls + mv->npolls, 0, ((size_t)m->from + 1 -
			    mv->npolls) * sizeof(*mv->polls));
			mv->npolls = (size_t)m->from + 1;
		}
		if ((wp = mv->polls[m->from]) == NULL) {
			wp = mv->polls[m->from] = xcalloc(1, sizeof(*wp));
			wp->rs = rs;
			wp->slot = m->from;
		}
		if (wp->call != NULL || now < wp->last + MOVE_WHO_EVERY_MS)
			continue;
		b = rs->backends[m->from];
		snprintf(wp->backend, sizeof(wp->backend), "%s", b->name);
		wp->started = wp->last = now;
		wp->call = doveadm_run(rs->doveadm, b->doveadm_url,
		    b->doveadm_key, "who", NULL, MOVE_CALL_MS, who_all_done, wp);
	}
}

static void
kick_done(void *arg, const struct doveadm_result *res)
{
	struct move *m = move_call_done(arg);

	if (!res->ok)
		log_info("move %lld: kick of %s: %s (the who poll decides)",
		    (long long)m->id, m->user, res->error);
	if (--m->kicks_out > 0 || m->state != MOVE_KICKING)
		return;
	if (!m->kicked_backend && move_must_ask(m)) {
		move_kick_proxies(m);
		if (m->kicks_out > 0)
			return;
	}
	m->state = MOVE_WAITING;
	/* A backend that cannot be asked: the proxies' kicks were all. */
	if (!move_must_ask(m))
		move_switch(m);
}

static void
move_kick_at(struct move *m, const char *url, const char *key)
{
	struct move_call *mc = move_call_new(m);

	m->kicks_out++;
	mc->call = doveadm_kick_user(m->rs->doveadm, url, key, m->user,
	    MOVE_CALL_MS, kick_done, mc);
}

static void	move_start(struct move *);

static void
presync_done(void *arg, int ok, const char *error, const char *state)
{
	struct move *m = arg;

	m->sync = NULL;
	free(m->sync_state);
	m->sync_state = xstrdup(state);
	if (!ok) {
		move_finish(m, 0, "copying the mail from %s to %s: %s",
		    m->from_name, m->to_name, error);
		return;
	}
	m->presynced = 1;
	move_start(m);
}

/*
 * With replication, a move to a backend that is not the user's current
 * replica first copies the mail there while the user keeps working: the
 * final sync after the kick then has only the last changes to carry, and
 * the user waits for that, not for a whole mailbox.
 */
static int
move_presync(struct move *m, struct umap_entry *e)
{
	struct roost *rs = m->rs;
	const struct backend *b = rs->backends[m->from];

	if (!rs->conf->replication || m->presynced ||
	    ((long)e->replica == m->to && (e->flags & UMAP_F_REPL_CURRENT)) ||
	    b == NULL || b->doveadm_url == NULL || b->state == BACKEND_DOWN ||
	    b->failed)
		return 0;
	m->state = MOVE_SYNCING;
	move_store_state(m);
	m->deadline = now_msec_mono() + (uint64_t)rs->conf->
	    replication_sync_timeout * 1000 + 1000;
	if ((m->sync = repl_run_sync(rs, e, m->from, m->to, NULL, presync_done,
	    m)) == NULL) {
		move_finish(m, 0, "copying the mail: the dsync state could not "
		    "be read: %s", store_error(rs->store));
		return 1;
	}
	return 1;
}

static void
move_start(struct move *m)
{
	struct roost *rs = m->rs;
	struct umap_entry *e = umap_get(rs->users, m->user, m->len);

	if (e == NULL || e->backend != m->from) {
		move_finish(m, 0, "the user left %s before the move began",
		    m->from_name);
		return;
	}
	if (move_presync(m, e))
		return;
	/* Taken over from an instance that marked it: ours now. */
	feed_moving_mark(rs, m->user, 0);
	e->flags |= UMAP_F_MOVING;
	m->marked = now_msec_mono();
	m->deadline = m->marked + (uint64_t)rs->conf->move_timeout * 1000;
	m->state = MOVE_WAITING;
	move_store_state(m);
	/* Held until the mark is stored (steps_release); not noted (the
	 * role went): nothing to wait for. */
	m->mark_pending = step_noted(rs->moves, m->id);
	if (m->mark_pending || move_must_ask(m))
		return;		/* the backend's who polls decide */
	move_unasked(m);
}

/* Nothing to ask on the backend (no doveadm URL, down or failed): the
 * proxies kick what they proxy there, and that is all. */
static void
move_unasked(struct move *m)
{
	m->state = MOVE_KICKING;
	move_kick_proxies(m);
	if (m->kicks_out == 0) {
		m->state = MOVE_WAITING;
		move_switch(m);
	}
}

static struct move *move_new(struct roost *, const char *, size_t, long,
		    long, const char *, int);

static const char *
job_kind(const struct move_job *j)
{
	return j->failback ? "failback" : j->flush ? "flush" : "rebalance";
}

/* Where a job would send this user, or -1 to leave it. */
static long
job_target(struct roost *rs, struct move_job *j, struct umap_entry *e)
{
	const char *tag = state_tag_name(rs, e->tag);
	long to;

	if (e->flags & (UMAP_F_MOVING | UMAP_F_PENDING))
		return -1;
	/* Failback: once the backend is synced for the user (its
	 * replica is current), so the final sync is a short one and the
	 * user is not held in a move for a full copy. */
	if (j->failback) {
		if (!(e->flags & UMAP_F_FAILED_OVER) ||
		    (long)e->replica != j->slot)
			return -1;
		if (rs->conf->replication && !(e->flags & UMAP_F_REPL_CURRENT)) {
			j->sweep_waiting++;
			return -1;
		}
		return j->slot;
	}
	if (j->flush) {
		if ((long)e->backend != j->slot)
			return -1;
		/* With replication the replica has the mail already. */
		if (rs->conf->replication && state_backend_usable(rs,
		    (long)e->replica, tag) &&
		    rs->backends[e->replica]->state == BACKEND_UP)
			return (long)e->replica;
		if (lookup_rank(rs, e->key, e->keylen, tag, j->slot, &to,
		    1) == 0) {
			j->stuck++;
			return -1;
		}
		return to;
	}
	/* Rebalance: a pinned user stays where an admin put it. */
	if (e->pinned || lookup_rank(rs, e->key, e->keylen, tag, -1, &to,
	    1) == 0 || to == (long)e->backend)
		return -1;
	return to;
}

struct job_scan {
	struct roost		*rs;
	struct move_job		*job;
	struct umap_entry	**found;
	long			*to;
	size_t			 n, room;
};

static int
job_scan_one(struct umap_entry *e, void *arg)
{
	struct job_scan *js = arg;
	long to;

	if (js->n == js->room)
		return -1;
	if ((to = job_target(js->rs, js->job, e)) == -1 ||
	    move_find(js->rs, e->key, e->keylen) != NULL ||
	    move_storing(js->rs->moves, e->key))
		return 0;
	js->found[js->n] = e;
	js->to[js->n++] = to;
	return 0;
}

/*
 * The end of a job (done), or of a move that was never taken up
 * (failed), stored through the admin lane: after what the lane stores before (it
 * keeps the order), and without the loop waiting.  Not stored (the store
 * away): the next holder's take-up finds it again and ends it.
 */
struct state_write {
	struct lane_job		 job;		/* first */
	struct moves		*mv;
	int64_t			 id;
	int			 move;		/* a move's end, else a job's */
	long long		 made;		/* a job's */
	char			 error[128];	/* a move's */
};

static int
state_write_run(struct store *st, struct lane_job *job)
{
	struct state_write *sw = (struct state_write *)job;

	if (sw->move)
		return store_move_state(store_auto(st), sw->id, "failed",
		    sw->error);
	return store_job_state(store_auto(st), sw->id, "done", sw->made);
}

static void
state_write_done(struct lane_job *job)
{
	struct state_write *sw = (struct state_write *)job;
	struct moves *mv = sw->mv;
	size_t i;

	if (job->rc == -1)
		log_warnx("%s %lld: end not stored: %s", sw->move ? "move" :
		    "job", (long long)sw->id, job->err);
	for (i = 0; i < mv->nending; i++)
		if (mv->ending[i].id == sw->id &&
		    mv->ending[i].move == sw->move) {
			mv->ending[i] = mv->ending[--mv->nending];
			break;
		}
	free(sw);
}

static int
state_writing(const struct moves *mv, int64_t id, int move)
{
	size_t i;

	for (i = 0; i < mv->nending; i++)
		if (mv->ending[i].id == id && mv->ending[i].move == move)
			return 1;
	return 0;
}

static void
state_write(struct roost *rs, int64_t id, int move, long long made,
    const char *error)
{
	struct state_write *sw = xcalloc(1, sizeof(*sw));
	struct moves *mv = rs->moves;

	mv->ending = xreallocarray(mv->ending, mv->nending + 1,
	    sizeof(*mv->ending));
	mv->ending[mv->nending].id = id;
	mv->ending[mv->nending++].move = move;
	sw->mv = mv;
	sw->id = id;
	sw->move = move;
	sw->made = made;
	snprintf(sw->error, sizeof(sw->error), "%s", error);
	sw->job.what = move ? "move end" : "job end";
	sw->job.run = state_write_run;
	sw->job.done = state_write_done;
	store_lane_give(rs->lane, &sw->job);
}

static void
job_end_store(struct roost *rs, int64_t id, long long made)
{
	state_write(rs, id, 0, made, "");
}

static void
move_fail_store(struct roost *rs, int64_t id, const char *error)
{
	state_write(rs, id, 1, 0, error);
}

static void
job_end(struct roost *rs, struct move_job *j)
{
	job_end_store(rs, j->id, j->made);
	if (j->failback)
		log_info("failback to %s done: %lld moves in %.1f s",
		    j->backend, j->made, (double)(now_msec_mono() - j->t0) /
		    1000);
	else if (j->flush)
		log_info("flush of %s done: %lld moves in %.1f s%s", j->backend,
		    j->made, (double)(now_msec_mono() - j->t0) / 1000,
		    j->stuck ? ", some users have no other backend" : "");
	else
		log_info("rebalance done: %lld moves in %.1f s", j->made,
		    (double)(now_msec_mono() - j->t0) / 1000);
	TAILQ_REMOVE(&rs->moves->jobs, j, entry);
	free(j);
}

/*
 * A job's moves on their way to the store, in one transaction with the
 * job's count, through the admin lane: a flush of a large backend stores
 * moves all along, and none of those commits may hold the loop.  Until
 * they are stored the job pulls no more; once they are, they queue.
 */
struct pull {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	int64_t			 job_id;
	long long		 made;		/* the job's count with them */
	struct move		**moves;
	size_t			 n;
};

static int
pull_run(struct store *st, struct lane_job *job)
{
	struct pull *p = (struct pull *)job;
	struct store_tx *tx;
	size_t i;

	if ((tx = store_begin(st, STORE_TX_ADMIN)) == NULL)
		return -1;
	for (i = 0; i < p->n; i++)
		if (move_write(tx, p->moves[i]) == -1)
			goto fail;
	if (store_job_state(tx, p->job_id, "running", p->made) == -1 ||
	    store_commit(tx) == -1)
		goto fail;
	return 0;
fail:
	store_rollback(tx);
	return -1;
}

static void
pull_done(struct lane_job *job)
{
	struct pull *p = (struct pull *)job;
	struct roost *rs = p->rs;
	struct moves *mv = rs->moves;
	struct move_job *j;
	size_t i;

	TAILQ_FOREACH(j, &mv->jobs, entry)
		if (j->id == p->job_id)
			break;
	if (j != NULL)
		j->pulling = 0;
	for (i = 0; i < p->n; i++)
		TAILQ_REMOVE(&mv->storing, p->moves[i], entry);
	if (job->rc == -1 || j == NULL || !mv->held) {
		/* Not stored: the job pulls them again.  Stored, but the
		 * job or the role went meanwhile: the holder's moves scan
		 * takes them up from the store. */
		if (job->rc == -1)
			log_debug("job %lld: moves not stored yet: %s",
			    (long long)p->job_id, job->err);
		for (i = 0; i < p->n; i++)
			move_destroy(p->moves[i]);
	} else {
		for (i = 0; i < p->n; i++) {
			p->moves[i]->job = j;
			j->open++;
			TAILQ_INSERT_TAIL(&mv->queue, p->moves[i], entry);
			mv->nqueued++;
		}
		j->made += (long long)p->n;
		j->sweep_made += p->n;
	}
	free(p->moves);
	free(p);
	if (mv->tick != NULL)
		event_active(mv->tick, EV_TIMEOUT, 0);
}

/* Make up to room moves for a job; they are stored, then queued (struct
 * pull).  Returns how many are on their way. */
static size_t
job_pull(struct roost *rs, struct move_job *j, size_t room)
{
	struct job_scan js;
	struct pull *p;
	size_t i, seen, slots = umap_slots(rs->users);
	long long allowed;

	if (j->pulling)
		return 0;
	if (j->max > 0 && j->made >= j->max) {
		/* Its last moves are under way; over when they are. */
		if (j->open == 0)
			j->done = 1;
		return 0;
	}
	if (j->max > 0 && j->made + (long long)room > j->max)
		room = (size_t)(j->max - j->made);
	if (j->rate > 0) {
		allowed = j->rate * (long long)(now_msec_mono() - j->t0) /
		    1000 + 1 - j->made;
		if (allowed < (long long)room)
			room = allowed > 0 ? (size_t)allowed : 0;
	}
	if (room == 0 || now_msec_mono() < j->rest_until)
		return 0;
	memset(&js, 0, sizeof(js));
	js.rs = rs;
	js.job = j;
	js.room = room;
	js.found = xcalloc(room, sizeof(*js.found));
	js.to = xcalloc(room, sizeof(*js.to));
	seen = umap_scan(rs->users, &j->cursor, JOB_SCAN_SLOTS, job_scan_one,
	    &js);
	j->swept += seen;
	if (js.n > 0) {
		p = xcalloc(1, sizeof(*p));
		p->rs = rs;
		p->job_id = j->id;
		p->made = j->made + (long long)js.n;
		p->n = js.n;
		p->moves = xcalloc(js.n, sizeof(*p->moves));
		for (i = 0; i < js.n; i++) {
			p->moves[i] = move_new(rs, js.found[i]->key,
			    js.found[i]->keylen, (long)js.found[i]->backend,
			    js.to[i], job_kind(j), 0);
			TAILQ_INSERT_TAIL(&rs->moves->storing, p->moves[i],
			    entry);
		}
		p->job.what = "job moves";
		p->job.run = pull_run;
		p->job.done = pull_done;
		j->pulling = 1;
		store_lane_give(rs->lane, &p->job);
	}

	/* A whole sweep that found nobody, and nothing of it still moving:
	 * done (a sweep that made moves is followed by another, so users
	 * the map's growth skipped past are found too). */
	if (j->swept >= slots) {
		if (j->sweep_made == 0 && j->open == 0 && js.n == 0 &&
		    j->sweep_waiting == 0)
			j->done = 1;
		/* Only users waiting for their sync: look again later. */
		if (j->sweep_made == 0 && j->sweep_waiting > 0)
			j->rest_until = now_msec_mono() + 1000;
		j->swept = 0;
		j->sweep_made = 0;
		j->sweep_waiting = 0;
	}
	free(js.found);
	free(js.to);
	return js.n;
}

static void
move_pump(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move_job *j, *jnext;
	struct move *m;
	size_t room;

	for (;;) {
		while (mv->nactive < (size_t)rs->conf->move_max_parallel &&
		    (m = TAILQ_FIRST(&mv->queue)) != NULL) {
			TAILQ_REMOVE(&mv->queue, m, entry);
			mv->nqueued--;
			TAILQ_INSERT_TAIL(&mv->active, m, entry);
			mv->nactive++;
			move_start(m);
		}
		room = (size_t)rs->conf->move_max_parallel - mv->nactive;
		if (mv->nactive >= (size_t)rs->conf->move_max_parallel ||
		    TAILQ_EMPTY(&mv->jobs))
			break;
		/* One pull per job and pass: other work gets the loop too. */
		for (j = TAILQ_FIRST(&mv->jobs); j != NULL; j = jnext) {
			jnext = TAILQ_NEXT(j, entry);
			job_pull(rs, j, room);
			if (j->done)
				job_end(rs, j);
		}
		if (TAILQ_EMPTY(&mv->queue))
			break;
	}
}

static void	move_drop(struct roost *);
static void	handed_tick(struct roost *);
static int	move_take_up(struct roost *, int);

static void
move_tick(evutil_socket_t fd, short what, void *arg)
{
	struct roost *rs = arg;
	struct moves *mv = rs->moves;
	struct move *m, *next;
	uint64_t now = now_msec_mono();
	size_t i, j;

	(void)fd;
	(void)what;
	if (!role_held(rs, ROLE_MOVES)) {
		/* Lost before role.c said so: stop now all the same. */
		if (mv->held)
			move_drop(rs);
		handed_tick(rs);
		return;
	}
	if (!mv->held)
		move_role(rs, 1);
	else if (mv->need_all || mv->scan_due ||
	    now - mv->scanned >= MOVE_SCAN_MS)
		move_take_up(rs, mv->need_all);
	move_commit_ready(rs);
	for (m = TAILQ_FIRST(&mv->active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		/* Lookups that waited long enough: a temporary failure. */
		for (i = j = 0; i < m->nwaits; i++) {
			if (!m->waits[i].admin && now >= m->waits[i].deadline)
				http_reply_error_reason(m->waits[i].req, 503,
				    "moving", "user %s is being moved; try "
				    "again shortly", m->user);
			else
				m->waits[j++] = m->waits[i];
		}
		m->nwaits = j;
		/* A switch in the lane ends by itself, within the store's
		 * bound: the store may have it already. */
		if (now >= m->deadline && !m->switching) {
			move_finish(m, 0, "%s after %llds", m->error[0] ?
			    m->error : "no answer from the kicks",
			    rs->conf->move_timeout);
			continue;
		}
		/* The backend went down or failed meanwhile: nothing to ask
		 * any more, and the proxies' kicks (if any) are done. */
		if (m->state == MOVE_WAITING && !m->ready && m->kicks_out == 0 &&
		    !m->mark_pending && !move_must_ask(m))
			move_switch(m);
	}
	move_pump(rs);
	move_polls(rs);
}

static struct move *
move_new(struct roost *rs, const char *user, size_t len, long from, long to,
    const char *reason, int pin)
{
	struct move *m = xcalloc(1, sizeof(*m));

	LIST_INIT(&m->calls);
	m->rs = rs;
	memcpy(m->user, user, len);
	m->user[len] = '\0';
	m->len = len;
	m->from = from;
	m->to = to;
	snprintf(m->from_name, sizeof(m->from_name), "%s",
	    rs->backends[from]->name);
	snprintf(m->to_name, sizeof(m->to_name), "%s", rs->backends[to]->name);
	snprintf(m->reason, sizeof(m->reason), "%s", reason);
	m->pin = pin;
	m->state = MOVE_QUEUED;
	m->created = now_sec();
	return m;
}

struct move *
move_check(struct roost *rs, struct umap_entry *e, long to,
    const char *reason, int pin, int *status, const char **field, char *err,
    size_t errlen)
{
	struct move *m;

	*field = "user";
	if (e->flags & (UMAP_F_MOVING | UMAP_F_PENDING) ||
	    move_find(rs, e->key, e->keylen) != NULL ||
	    handed_find(rs, e->key, e->keylen) != NULL) {
		*status = 409;
		snprintf(err, errlen, "user %s is being moved already", e->key);
		return NULL;
	}
	*field = "backend";
	if (!state_backend_usable(rs, to, state_tag_name(rs, e->tag)) ||
	    rs->backends[to]->state != BACKEND_UP) {
		*status = 409;
		snprintf(err, errlen, "backend %s does not take users now",
		    rs->backends[to]->name);
		return NULL;
	}
	if ((long)e->backend == to) {
		*status = 409;
		snprintf(err, errlen, "user %s is on %s already", e->key,
		    rs->backends[to]->name);
		return NULL;
	}
	m = move_new(rs, e->key, e->keylen, (long)e->backend, to, reason,
	    pin);
	TAILQ_INSERT_TAIL(&rs->moves->storing, m, entry);
	return m;
}

int
move_write(struct store_tx *tx, struct move *m)
{
	struct store_move sm;

	memset(&sm, 0, sizeof(sm));
	sm.user = m->user;
	sm.from = m->from_name;
	sm.to = m->to_name;
	sm.reason = m->reason;
	sm.state = "queued";
	sm.pin = m->pin;
	sm.created = m->created;
	if (store_move_insert(tx, &sm) == -1)
		return -1;
	m->id = sm.id;
	return 0;
}

void
move_unstored(struct move *m)
{
	TAILQ_REMOVE(&m->rs->moves->storing, m, entry);
	move_destroy(m);
}

void
move_stored(struct move *m, struct evhttp_request *req)
{
	struct roost *rs = m->rs;
	struct moves *mv = rs->moves;

	TAILQ_REMOVE(&mv->storing, m, entry);
	if (req != NULL)
		move_wait_add(m, req, 0, 1);
	if (!role_held(rs, ROLE_MOVES)) {
		m->deadline = now_msec_mono() + (uint64_t)rs->conf->
		    move_timeout * 1000 + MOVE_HANDED_MS;
		TAILQ_INSERT_TAIL(&mv->handed, m, entry);
		log_info("move %lld: %s from %s to %s stored for the instance "
		    "that runs moves (%s)", (long long)m->id, m->user,
		    m->from_name, m->to_name, m->reason);
		return;
	}
	TAILQ_INSERT_TAIL(&mv->queue, m, entry);
	mv->nqueued++;
	log_info("move %lld: %s from %s to %s queued (%s)", (long long)m->id,
	    m->user, m->from_name, m->to_name, m->reason);
	/* Started from the loop, never inside the caller, which may still
	 * use m; a pin is answered within a pass or two. */
	event_active(mv->tick, EV_TIMEOUT, 0);
}

void
move_park(struct roost *rs, struct umap_entry *e, struct evhttp_request *req,
    int proto)
{
	struct move *m = move_find(rs, e->key, e->keylen);

	if (m == NULL && feed_moving(rs, e->key, e->keylen)) {
		/* Another instance moves the user: only its end, through
		 * the feed, lets the login through. */
		http_reply_error_reason(req, 503, "moving", "user %s is being "
		    "moved; try again", e->key);
		return;
	}
	if (m == NULL) {
		/* A flag without a move: nothing holds the user any more. */
		e->flags &= ~UMAP_F_MOVING;
		lookup_reply(rs, req, e, proto);
		return;
	}
	move_wait_add(m, req, proto, 0);
}

json_t *
move_job_json(const struct move_job *j)
{
	return json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:i, s:I}",
	    "id", (json_int_t)j->id, "kind", job_kind(j),
	    "backend", j->backend, "made", (json_int_t)j->made,
	    "max", (json_int_t)j->max, "rate", (json_int_t)j->rate,
	    "open", (int)j->open, "stuck", (json_int_t)j->stuck);
}

json_t *
move_jobs_json(const struct roost *rs)
{
	json_t *arr = json_array();
	struct move_job *j;

	TAILQ_FOREACH(j, &rs->moves->jobs, entry)
		json_array_append_new(arr, move_job_json(j));
	return arr;
}

static struct move_job *
job_new(struct roost *rs, long slot, int failback, long long max,
    long long rate)
{
	struct move_job *j = xcalloc(1, sizeof(*j));

	j->failback = failback;
	j->flush = slot != -1 && !failback;
	j->slot = slot;
	if (slot != -1)
		snprintf(j->backend, sizeof(j->backend), "%s",
		    rs->backends[slot]->name);
	j->max = max;
	j->rate = rate;
	j->t0 = now_msec_mono();
	TAILQ_INSERT_TAIL(&rs->moves->jobs, j, entry);
	return j;
}

/* Is a job like sj (the same backend, or a rebalance) running in the
 * store?  1 yes, 0 no, -1 error. */
struct job_like {
	const struct store_job	*want;
	int			 found;
};

static int
job_like_one(const struct store_job *sj, void *arg)
{
	struct job_like *jl = arg;
	int rebalance = strcmp(sj->kind, "rebalance") == 0;

	if (rebalance == (strcmp(jl->want->kind, "rebalance") == 0) &&
	    (rebalance || strcmp(sj->backend, jl->want->backend) == 0))
		jl->found = 1;
	return 0;
}

/* Is a job like sj running in store st?  1 yes, 0 no, -1 error. */
static int
job_stored_in(struct store *st, const struct store_job *want)
{
	struct job_like jl = { want, 0 };

	if (st->ops->job_list(st, job_like_one, &jl) == -1)
		return -1;
	return jl.found;
}

void
move_job_dup(const struct move_job_ask *ask, char *err, size_t errlen)
{
	snprintf(err, errlen, "a %s is under way already", ask->slot == -1 ?
	    "rebalance" : ask->failback ? "failback to this backend" :
	    "flush of this backend");
}

/* The jobs between their check and their end (struct move_job_ask): the
 * moves scan must not take one up while the lane stores it. */
static void
mv_asks_add(struct moves *mv, struct move_job_ask *ask)
{
	mv->asks = xreallocarray(mv->asks, mv->nasks + 1, sizeof(*mv->asks));
	mv->asks[mv->nasks++] = ask;
	ask->storing = 1;
}

static void
mv_asks_del(struct moves *mv, struct move_job_ask *ask)
{
	size_t i;

	if (!ask->storing)
		return;
	ask->storing = 0;
	for (i = 0; i < mv->nasks; i++)
		if (mv->asks[i] == ask) {
			mv->asks[i] = mv->asks[--mv->nasks];
			return;
		}
}

static int
mv_asked(const struct moves *mv, const struct store_job *sj)
{
	size_t i;

	for (i = 0; i < mv->nasks; i++)
		if (strcmp(mv->asks[i]->kind, sj->kind) == 0 &&
		    strcmp(mv->asks[i]->backend, sj->backend) == 0)
			return 1;
	return 0;
}

int
move_job_check(struct roost *rs, long slot, int failback, long long max,
    long long rate, struct move_job_ask *ask, int *status, char *err,
    size_t errlen)
{
	struct move_job *j;

	memset(ask, 0, sizeof(*ask));
	ask->slot = slot;
	ask->failback = failback;
	ask->max = max;
	ask->rate = rate;
	ask->held = role_held(rs, ROLE_MOVES);
	snprintf(ask->kind, sizeof(ask->kind), "%s", failback ? "failback" :
	    slot != -1 ? "flush" : "rebalance");
	if (slot != -1)
		snprintf(ask->backend, sizeof(ask->backend), "%s",
		    rs->backends[slot]->name);
	TAILQ_FOREACH(j, &rs->moves->jobs, entry)
		if (j->slot == slot) {
			*status = 409;
			move_job_dup(ask, err, errlen);
			return -1;
		}
	mv_asks_add(rs->moves, ask);
	return 0;
}

void
move_job_unstored(struct roost *rs, struct move_job_ask *ask)
{
	mv_asks_del(rs->moves, ask);
}

int
move_job_write(struct store_tx *tx, struct move_job_ask *ask)
{
	struct store *st = tx->st;
	struct store_job sj;

	memset(&sj, 0, sizeof(sj));
	sj.kind = ask->kind;
	sj.backend = ask->backend;
	/* Another instance runs the jobs: ask the store what runs. */
	if (!ask->held) {
		switch (job_stored_in(st, &sj)) {
		case 1:
			ask->dup = 1;
			/* FALLTHROUGH */
		case -1:
			return -1;
		}
	}
	sj.max = ask->max;
	sj.rate = ask->rate;
	sj.created = now_sec();
	if (store_job_insert(tx, &sj) == -1)
		return -1;
	ask->id = sj.id;
	return 0;
}

struct move_job *
move_job_stored(struct roost *rs, struct move_job_ask *ask,
    int *status, char *err, size_t errlen)
{
	struct move_job *j;
	long slot = -1;

	mv_asks_del(rs->moves, ask);
	/* What the feed or the moves scan brought meanwhile: the backend
	 * gone, or such a job taken up already.  The stored one ends. */
	if (ask->slot != -1 && (slot = state_backend_find(rs,
	    ask->backend)) == -1) {
		*status = 409;
		snprintf(err, errlen, "backend %s was removed meanwhile",
		    ask->backend);
		goto gone;
	}
	TAILQ_FOREACH(j, &rs->moves->jobs, entry)
		if (j->slot == slot) {
			*status = 409;
			move_job_dup(ask, err, errlen);
			goto gone;
		}
	j = job_new(rs, slot, ask->failback, ask->max, ask->rate);
	j->id = ask->id;
	if (!ask->held || !role_held(rs, ROLE_MOVES)) {
		/* Kept only for the caller's answer: the holder runs it. */
		TAILQ_REMOVE(&rs->moves->jobs, j, entry);
		TAILQ_INSERT_TAIL(&rs->moves->handed_jobs, j, entry);
		log_info("%s%s%s stored for the instance that runs moves",
		    ask->kind, ask->slot != -1 ? " of " : "", ask->backend);
		return j;
	}
	log_info("%s%s%s started", ask->kind, ask->slot != -1 ? " of " : "",
	    ask->backend);
	event_active(rs->moves->tick, EV_TIMEOUT, 0);
	return j;
gone:
	job_end_store(rs, ask->id, 0);
	return NULL;
}

/* failback = auto (health.c): a job like an admin's, through the admin
 * lane, with nobody waiting for the answer. */
struct auto_failback {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	char			 backend[BACKEND_NAME_MAX + 1];
	struct move_job_ask	 ask;
};

static int
auto_failback_prepare(struct lane_job *job)
{
	struct auto_failback *af = (struct auto_failback *)job;
	char err[256];
	long slot;
	int st;

	if ((slot = state_backend_find(af->rs, af->backend)) == -1)
		return -1;
	if (move_job_check(af->rs, slot, 1, 0, 0, &af->ask, &st, err,
	    sizeof(err)) == -1) {
		if (st != 409)
			log_warnx("backend %s: automatic failback: %s",
			    af->backend, err);
		return -1;
	}
	return 0;
}

static int
auto_failback_run(struct store *st, struct lane_job *job)
{
	struct auto_failback *af = (struct auto_failback *)job;
	struct store_tx *tx;

	if ((tx = store_begin(st, STORE_TX_ADMIN)) == NULL)
		return -1;
	if (move_job_write(tx, &af->ask) == -1 ||
	    store_audit_add(tx, "admin", "backend.failback", af->backend,
	    "{\"max\":0,\"rate\":0}") == -1 || store_commit(tx) == -1) {
		store_rollback(tx);
		return -1;
	}
	return 0;
}

static void
auto_failback_done(struct lane_job *job)
{
	struct auto_failback *af = (struct auto_failback *)job;
	char err[256];
	int st;

	if (job->rc == 0) {
		if (move_job_stored(af->rs, &af->ask, &st, err,
		    sizeof(err)) == NULL && st != 409)
			log_warnx("backend %s: automatic failback: %s",
			    af->backend, err);
	} else {
		move_job_unstored(af->rs, &af->ask);
		if (job->status != 0 && !af->ask.dup)
			log_warnx("backend %s: automatic failback: the job "
			    "could not be stored: %s", af->backend, job->err);
	}
	free(af);
}

void
move_failback_auto(struct roost *rs, long slot)
{
	struct auto_failback *af = xcalloc(1, sizeof(*af));

	af->rs = rs;
	snprintf(af->backend, sizeof(af->backend), "%s",
	    rs->backends[slot]->name);
	af->job.what = "automatic failback";
	af->job.prepare = auto_failback_prepare;
	af->job.run = auto_failback_run;
	af->job.done = auto_failback_done;
	store_lane_give(rs->lane, &af->job);
}

/* Taking up stored work: at start, or when the role moves is gained. */
struct reload {
	struct roost	*rs;
	int		 all;		/* begun ones too: the role is new */
	size_t		 taken, dropped, jobs;
};

static int
job_reload_one(const struct store_job *sj, void *arg)
{
	struct reload *rl = arg;
	struct roost *rs = rl->rs;
	struct move_job *j;
	long slot = -1;

	TAILQ_FOREACH(j, &rs->moves->jobs, entry)
		if (j->id == sj->id)
			return 0;
	/* Stored by the lane just now: its answer starts it; or ending. */
	if (mv_asked(rs->moves, sj) || state_writing(rs->moves, sj->id, 0))
		return 0;
	if (strcmp(sj->kind, "rebalance") != 0 &&
	    (slot = state_backend_find(rs, sj->backend)) == -1) {
		job_end_store(rs, sj->id, sj->made);
		return 0;
	}
	/* Two instances asked for the same at once: one job does it. */
	TAILQ_FOREACH(j, &rs->moves->jobs, entry)
		if (j->slot == slot) {
			log_info("%s%s%s: one runs already", sj->kind,
			    slot != -1 ? " of " : "", sj->backend);
			job_end_store(rs, sj->id, sj->made);
			return 0;
		}
	rl->jobs++;
	j = job_new(rs, slot, strcmp(sj->kind, "failback") == 0, sj->max,
	    sj->rate);
	j->id = sj->id;
	j->made = sj->made;
	log_info("%s%s%s taken up again", sj->kind, slot != -1 ? " of " : "",
	    sj->backend);
	return 0;
}

/* POST /v1/users/{user}/kick: the user's sessions everywhere, now. */
struct kick_req {
	struct roost		*rs;
	struct evhttp_request	*req;
	char			 user[256];
	unsigned		 pending, ok, failed;
	json_t			*errors;
};

static void
kick_req_done(void *arg, const struct doveadm_result *res)
{
	struct kick_req *kr = arg;

	if (res->ok)
		kr->ok++;
	else {
		kr->failed++;
		json_array_append_new(kr->errors, json_string(res->error));
	}
	if (--kr->pending > 0)
		return;
	http_reply_json(kr->req, kr->failed == 0 ? 200 : 502, json_pack(
	    "{s:s, s:i, s:i, s:o}", "user", kr->user, "kicked", (int)kr->ok,
	    "failed", (int)kr->failed, "errors", kr->errors));
	free(kr);
}

void
move_kick_user(struct roost *rs, struct umap_entry *e,
    struct evhttp_request *req)
{
	const struct backend *b = rs->backends[e->backend];
	struct kick_req *kr;
	size_t i;

	kr = xcalloc(1, sizeof(*kr));
	kr->rs = rs;
	kr->req = req;
	snprintf(kr->user, sizeof(kr->user), "%s", e->key);
	kr->errors = json_array();
	/* Count first: no callback runs inside a start. */
	kr->pending = (unsigned)rs->nproxies + (b->doveadm_url != NULL);
	if (kr->pending == 0) {
		json_decref(kr->errors);
		free(kr);
		http_reply_error(req, 409, "user", "neither %s nor any proxy "
		    "has a doveadm URL: nothing can kick", b->name);
		return;
	}
	if (b->doveadm_url != NULL)
		doveadm_kick_user(rs->doveadm, b->doveadm_url, b->doveadm_key,
		    e->key, MOVE_CALL_MS, kick_req_done, kr);
	for (i = 0; i < rs->nproxies; i++)
		doveadm_kick_user(rs->doveadm, rs->proxies[i]->doveadm_url,
		    rs->proxies[i]->doveadm_key, e->key, MOVE_CALL_MS,
		    kick_req_done, kr);
	log_info("kicking %s on %s and %zu proxies", e->key, b->name,
	    rs->nproxies);
}

static int
move_storing(const struct moves *mv, const char *user)
{
	const struct move *m;

	TAILQ_FOREACH(m, &mv->storing, entry)
		if (strcmp(m->user, user) == 0)
			return 1;
	return 0;
}

static int
move_known(const struct moves *mv, int64_t id)
{
	const struct move *m;

	TAILQ_FOREACH(m, &mv->active, entry)
		if (m->id == id)
			return 1;
	TAILQ_FOREACH(m, &mv->queue, entry)
		if (m->id == id)
			return 1;
	return 0;
}

static int
move_reload_one(const struct store_move *sm, void *arg)
{
	struct reload *rl = arg;
	struct roost *rs = rl->rs;
	struct moves *mv = rs->moves;
	struct umap_entry *e;
	struct move *m, *h;
	long from, to;

	/* A move past its start belongs to whoever began it, alive as
	 * long as this instance has held the role: only the one that had
	 * it before can have left it (dead, or cut off from the store). */
	if (move_known(mv, sm->id) || move_storing(mv, sm->user) ||
	    state_writing(mv, sm->id, 1) || (!rl->all &&
	    strcmp(sm->state, "queued") != 0))
		return 0;
	e = umap_get(rs->users, sm->user, strlen(sm->user));
	from = state_backend_find(rs, sm->from);
	to = state_backend_find(rs, sm->to);
	if (e == NULL || from == -1 || to == -1 || e->backend != from) {
		move_fail_store(rs, sm->id, "overtaken before it was taken "
		    "up");
		rl->dropped++;
		return 0;
	}
	m = move_new(rs, sm->user, strlen(sm->user), from, to, sm->reason,
	    sm->pin);
	m->id = sm->id;
	m->created = sm->created;
	/* Handed to the holder by this very instance: its admin waits on. */
	TAILQ_FOREACH(h, &mv->handed, entry)
		if (h->id == sm->id) {
			TAILQ_REMOVE(&mv->handed, h, entry);
			m->waits = h->waits;
			m->nwaits = h->nwaits;
			m->cwaits = h->cwaits;
			h->waits = NULL;
			h->nwaits = 0;
			move_destroy(h);
			break;
		}
	TAILQ_INSERT_TAIL(&mv->queue, m, entry);
	mv->nqueued++;
	rl->taken++;
	return 0;
}

/* What a look at the store brought: take up what this one does not run. */
static int
take_up(struct roost *rs, const struct store_scan *sc, int all)
{
	struct moves *mv = rs->moves;
	struct reload rl;
	size_t i;

	memset(&rl, 0, sizeof(rl));
	rl.rs = rs;
	rl.all = all;
	for (i = 0; i < sc->nmoves; i++)
		if (move_reload_one(&sc->moves[i], &rl) == -1) {
			log_warnx("taking up open moves: %s",
			    store_error(rs->store));
			return -1;
		}
	for (i = 0; i < sc->njobs; i++)
		if (job_reload_one(&sc->jobs[i], &rl) == -1) {
			log_warnx("taking up jobs: %s",
			    store_error(rs->store));
			return -1;
		}
	if (rl.taken > 0 || rl.dropped > 0 || rl.jobs > 0)
		log_info("moves: %zu taken up again, %zu overtaken, %zu jobs "
		    "taken up", rl.taken, rl.dropped, rl.jobs);
	if (rl.taken > 0)
		event_active(mv->tick, EV_TIMEOUT, 0);
	return 0;
}

static void
scan_done(void *arg, int rc)
{
	struct roost *rs = arg;
	struct moves *mv = rs->moves;

	mv->scanning = 0;
	if (rc == -1)
		log_warnx("loading open moves: %s", store_error(rs->store));
	/* The role may have gone while the look was on its way. */
	else if (!mv->closing && mv->held && role_held(rs, ROLE_MOVES))
		(void)take_up(rs, &mv->scan, 0);
	store_scan_clear(&mv->scan);
}

/*
 * The holder of role moves takes up what the store has open and it does
 * not run: everything when it starts or gains the role (a restart, or an
 * instance that died mid-move), waiting for the store, and what other
 * instances stored since, at every look (MOVE_SCAN_MS, or when the feed
 * names a move), which the loop does not wait for.
 */
static int
move_take_up(struct roost *rs, int all)
{
	struct moves *mv = rs->moves;
	struct store *st = rs->store;
	struct store_scan sc;
	int rc;

	if (!all) {
		if (mv->scanning || store_flying(st))
			return 0;	/* the next tick looks */
		mv->scan_due = 0;
		mv->scanned = now_msec_mono();
		mv->scanning = 1;
		if (store_moves_scan_send(st, rs->base, &mv->scan, scan_done,
		    rs) == -1)
			scan_done(rs, -1);
		return 0;
	}
	mv->scan_due = 0;
	mv->scanned = now_msec_mono();
	memset(&sc, 0, sizeof(sc));
	if (st->ops->move_list(st, 1, 0, SIZE_MAX, store_scan_move,
	    &sc) == -1) {
		log_warnx("loading open moves: %s", store_error(st));
		store_scan_clear(&sc);
		return -1;
	}
	if (st->ops->job_list(st, store_scan_job, &sc) == -1) {
		log_warnx("loading jobs: %s", store_error(st));
		store_scan_clear(&sc);
		return -1;
	}
	rc = take_up(rs, &sc, 1);
	store_scan_clear(&sc);
	if (rc == 0)
		mv->need_all = 0;
	return rc;
}

/*
 * Role moves lost: another instance takes the stored moves up.  Nothing
 * more is written; users whose move had begun stay held (their logins
 * wait) until the feed shows the new holder's end of it, and an admin
 * waiting for a move is answered then.
 */
static void
move_drop(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move_job *j;
	struct move *m;
	size_t i, k, n = 0;

	mv->held = 0;
	/* The next holder's steps are the ones now. */
	mv->nsteps = 0;
	while ((m = TAILQ_FIRST(&mv->active)) != NULL ||
	    (m = TAILQ_FIRST(&mv->queue)) != NULL) {
		if (m->state != MOVE_QUEUED) {
			TAILQ_REMOVE(&mv->active, m, entry);
			mv->nactive--;
			feed_moving_mark(rs, m->user, 1);
		} else {
			TAILQ_REMOVE(&mv->queue, m, entry);
			mv->nqueued--;
		}
		move_cancel_calls(m);
		repl_run_cancel(m->sync);
		m->sync = NULL;
		for (i = k = 0; i < m->nwaits; i++) {
			if (m->waits[i].admin)
				m->waits[k++] = m->waits[i];
			else
				http_reply_error_reason(m->waits[i].req, 503,
				    "moving", "user %s is being moved; try "
				    "again shortly", m->user);
		}
		m->nwaits = k;
		m->job = NULL;
		n++;
		if (m->nwaits > 0) {
			m->deadline = now_msec_mono() + (uint64_t)rs->conf->
			    move_timeout * 1000 + MOVE_HANDED_MS;
			TAILQ_INSERT_TAIL(&mv->handed, m, entry);
		} else
			move_destroy(m);
	}
	while ((j = TAILQ_FIRST(&mv->jobs)) != NULL) {
		TAILQ_REMOVE(&mv->jobs, j, entry);
		free(j);
	}
	for (i = 0; i < mv->npolls; i++)
		if (mv->polls[i] != NULL) {
			doveadm_cancel(mv->polls[i]->call);
			mv->polls[i]->call = NULL;
		}
	log_warnx("moves: role lost; %zu moves left to the next holder", n);
}

void
move_role(struct roost *rs, int held)
{
	struct moves *mv = rs->moves;

	if (mv == NULL)
		return;
	if (!held) {
		if (mv->held)
			move_drop(rs);
		return;
	}
	/* Tried again at each tick until the store answers. */
	mv->held = 1;
	mv->need_all = 1;
	move_take_up(rs, 1);
}

static void	handed_check(struct roost *, struct move *);

/*
 * A handed move as the store has it now, read through the admin lane:
 * its end answers the admins waiting on it.
 */
struct handed_read {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	int64_t			 id;
	int			 over;		/* done or failed */
	int			 ok;		/* done */
	char			 error[sizeof(((struct move *)0)->error)];
};

static int
handed_got(const struct store_move *sm, void *arg)
{
	struct handed_read *hr = arg;

	if (sm->id != hr->id || (strcmp(sm->state, "done") != 0 &&
	    strcmp(sm->state, "failed") != 0))
		return 0;
	hr->over = 1;
	hr->ok = strcmp(sm->state, "done") == 0;
	snprintf(hr->error, sizeof(hr->error), "%s", sm->error);
	return 0;
}

static int
handed_read_run(struct store *st, struct lane_job *job)
{
	struct handed_read *hr = (struct handed_read *)job;

	/* Ids below id + 1, newest first: this one. */
	return st->ops->move_list(st, 0, hr->id + 1, 1, handed_got, hr);
}

/* Memory shows handed move m done: the user on its new backend and no
 * longer held as moving (or gone since: nothing to wait for). */
static int
handed_row_in(struct roost *rs, const struct move *m)
{
	const struct umap_entry *e = umap_get(rs->users, m->user, m->len);

	return e == NULL || ((long)e->backend == m->to &&
	    !(e->flags & UMAP_F_MOVING));
}

static void
handed_read_done(struct lane_job *job)
{
	struct handed_read *hr = (struct handed_read *)job;
	struct roost *rs = hr->rs;
	struct move *m;
	size_t i;
	int again;

	TAILQ_FOREACH(m, &rs->moves->handed, entry)
		if (m->id == hr->id)
			break;
	if (job->rc == -1)
		log_debug("move %lld: %s", (long long)hr->id, job->err);
	if (m == NULL)			/* answered meanwhile (its bound) */
		goto done;
	again = m->checking == 2;
	m->checking = 0;
	/* Done, but the user's new row has not come through this
	 * instance's feed yet: the answer (and every lookup after it) must
	 * show the move, so it waits for the row.  A later check (the
	 * feed's mark, or the tick's scan) answers. */
	if (hr->over && hr->ok && !handed_row_in(rs, m))
		hr->over = 0;
	if (hr->over) {
		snprintf(m->error, sizeof(m->error), "%s", hr->error);
		for (i = 0; i < m->nwaits; i++)
			if (hr->ok)
				api_reply_user(rs, m->waits[i].req, m->user,
				    m->len);
			else
				http_reply_error(m->waits[i].req, 409,
				    "backend", "moving %s to %s failed: %s",
				    m->user, m->to_name, m->error);
		m->nwaits = 0;
	}
	if (m->nwaits == 0) {
		TAILQ_REMOVE(&rs->moves->handed, m, entry);
		move_destroy(m);
	} else if (again)
		handed_check(rs, m);
done:
	free(hr);
}

static void
handed_check(struct roost *rs, struct move *m)
{
	struct handed_read *hr;

	if (m->nwaits == 0) {
		TAILQ_REMOVE(&rs->moves->handed, m, entry);
		move_destroy(m);
		return;
	}
	if (m->checking) {
		m->checking = 2;	/* read again after the one under way */
		return;
	}
	m->checking = 1;
	hr = xcalloc(1, sizeof(*hr));
	hr->rs = rs;
	hr->id = m->id;
	hr->job.what = "move read";
	hr->job.run = handed_read_run;
	hr->job.done = handed_read_done;
	store_lane_give(rs->lane, &hr->job);
}

/* Not the holder: answer what waits on handed moves, bounded. */
static void
handed_tick(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move_job *j;
	struct move *m, *next;
	uint64_t now = now_msec_mono();
	size_t i;
	int scan = now - mv->scanned >= MOVE_SCAN_MS;

	while ((j = TAILQ_FIRST(&mv->handed_jobs)) != NULL) {
		TAILQ_REMOVE(&mv->handed_jobs, j, entry);
		free(j);
	}
	if (scan)
		mv->scanned = now;
	for (m = TAILQ_FIRST(&mv->handed); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (now >= m->deadline) {
			for (i = 0; i < m->nwaits; i++)
				http_reply_error_reason(m->waits[i].req, 503,
				    "moving", "move %lld of %s is stored; its "
				    "end was not seen in time", (long long)m->id,
				    m->user);
			m->nwaits = 0;
		}
		if (m->nwaits == 0) {
			TAILQ_REMOVE(&mv->handed, m, entry);
			move_destroy(m);
		} else if (scan)
			handed_check(rs, m);
	}
}

void
move_changed_elsewhere(struct roost *rs, const char *user)
{
	struct moves *mv = rs->moves;
	struct move *m;

	if (mv == NULL)
		return;
	if (mv->held) {
		/* Perhaps a move stored for us: take it up at once. */
		mv->scan_due = 1;
		event_active(mv->tick, EV_TIMEOUT, 0);
		return;
	}
	if ((m = handed_find(rs, user, strlen(user))) != NULL)
		handed_check(rs, m);
}

int
move_init(struct roost *rs)
{
	struct moves *mv;
	struct timeval tv = { 0, MOVE_TICK_MS * 1000 };

	mv = xcalloc(1, sizeof(*mv));
	TAILQ_INIT(&mv->queue);
	TAILQ_INIT(&mv->active);
	TAILQ_INIT(&mv->storing);
	TAILQ_INIT(&mv->jobs);
	TAILQ_INIT(&mv->handed);
	TAILQ_INIT(&mv->handed_jobs);
	rs->moves = mv;
	if ((mv->tick = event_new(rs->base, -1, EV_PERSIST, move_tick,
	    rs)) == NULL || event_add(mv->tick, &tv) == -1 ||
	    (mv->steps_ev = event_new(rs->base, -1, 0, steps_write,
	    rs)) == NULL)
		return -1;
	if (!role_held(rs, ROLE_MOVES))
		return 0;
	mv->held = 1;
	mv->need_all = 1;
	return move_take_up(rs, 1);
}

void
move_free(struct roost *rs)
{
	struct moves *mv = rs->moves;
	struct move_job *j;
	struct move *m;
	size_t i;

	if (mv == NULL)
		return;
	/* A look on its way is answered first, taking up nothing; steps
	 * on their way land, those not sent yet are written now. */
	mv->closing = 1;
	if (mv->scanning || mv->steps_flying)
		store_flight_land(rs->store);
	if (mv->nsteps > 0 && mv->steps_ev != NULL) {
		steps_write(-1, 0, rs);
		store_flight_land(rs->store);
	}
	/* Open moves stay in the store: the next start takes them up. */
	while ((m = TAILQ_FIRST(&mv->active)) != NULL ||
	    (m = TAILQ_FIRST(&mv->queue)) != NULL) {
		for (i = 0; i < m->nwaits; i++)
			http_reply_error_reason(m->waits[i].req, 503, "moving",
			    "roostd is stopping; try again");
		if (m->state != MOVE_QUEUED) {
			struct umap_entry *e = umap_get(rs->users, m->user,
			    m->len);

			if (e != NULL)
				e->flags &= ~UMAP_F_MOVING;
			TAILQ_REMOVE(&mv->active, m, entry);
		} else
			TAILQ_REMOVE(&mv->queue, m, entry);
		move_destroy(m);
	}
	while ((m = TAILQ_FIRST(&mv->handed)) != NULL) {
		for (i = 0; i < m->nwaits; i++)
			http_reply_error_reason(m->waits[i].req, 503, "moving",
			    "roostd is stopping; try again");
		TAILQ_REMOVE(&mv->handed, m, entry);
		move_destroy(m);
	}
	while ((j = TAILQ_FIRST(&mv->jobs)) != NULL ||
	    (j = TAILQ_FIRST(&mv->handed_jobs)) != NULL) {
		if (TAILQ_FIRST(&mv->jobs) == j)
			TAILQ_REMOVE(&mv->jobs, j, entry);
		else
			TAILQ_REMOVE(&mv->handed_jobs, j, entry);
		free(j);
	}
	for (i = 0; i < mv->npolls; i++)
		if (mv->polls[i] != NULL) {
			doveadm_cancel(mv->polls[i]->call);
			free(mv->polls[i]);
		}
	free(mv->polls);
	if (mv->tick != NULL)
		event_free(mv->tick);
	if (mv->steps_ev != NULL)
		event_free(mv->steps_ev);
	free(mv->steps);
	free(mv->asks);
	free(mv->ending);
	free(mv);
	rs->moves = NULL;
}
