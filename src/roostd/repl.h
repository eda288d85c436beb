/*
 * repl.h: replication, the replicator Dovecot 2.4 dropped.  Every user with
 * a replica has one entry at most in a persisted priority queue; up to
 * replication_max_conns syncs run at once, each a doveadm HTTP API `sync`
 * on the user's backend toward its replica's doveadm server, on the event
 * loop.  A failing user backs off on its own and never holds up the rest.
 *
 * Work comes from the backends' change events (events.c, classified by
 * repl_event.c), from the full sync spread over
 * replication_full_sync_interval, from failovers and moves, and from the
 * admin API.
 */
#ifndef ROOST_REPL_H
#define ROOST_REPL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

struct roost;
struct umap_entry;
struct evhttp_request;

/* Queue priorities, most urgent first. */
enum repl_priority {
	REPL_P_SYNC = 0,	/* a replica that must catch up first: after
				 * a failover, before anything else */
	REPL_P_HIGH,		/* a delivery or an APPEND */
	REPL_P_LOW,		/* flags, expunges, folder changes */
	REPL_P_FULL,		/* the periodic full sync */
	REPL_P_COUNT
};

extern const char *const repl_priority_names[REPL_P_COUNT];
/* "sync", "high", "low", "full" -> REPL_P_*; -1 when none of them. */
int	repl_priority_parse(const char *);

int	repl_init(struct roost *);
void	repl_free(struct roost *);
/* Role repl (role.h) gained: take up the stored queue; lost: stop
 * dispatching and write nothing more of the queue. */
void	repl_role(struct roost *, int held);
/* The feed saw a request stored by another instance: the holder takes
 * it (and whatever else waits). */
void	repl_requested(struct roost *);
/* After a config reload: replication turned on or off, limits changed. */
void	repl_reconfigure(struct roost *);

/*
 * Queue a sync of the user (raising its priority if it is queued lower;
 * full: the next sync is a full one).  In memory now, in the store at the
 * end of this loop pass.  When req is not NULL it is answered (204, or
 * 503 `store`) once the entry is stored.  Nothing happens for a user
 * without a replica, or while replication is off (req still answered).
 */
void	repl_enqueue(struct roost *, struct umap_entry *, int priority,
	    int full, struct evhttp_request *req);
/*
 * A change event from backend slot about the user of e: queued when the
 * slot is the user's backend; from its replica it is dsync's own doing
 * and ignored; from anywhere else it is counted and logged once per user.
 */
void	repl_change(struct roost *, struct umap_entry *, long slot,
	    int priority, struct evhttp_request *req);
/* The user's assignment is gone: drop its queue entry. */
void	repl_forget(struct roost *, const char *key, size_t len);
/* A backend's state or health changed: users waiting on it look again. */
void	repl_backend_changed(struct roost *, long slot);
/* A backend was added or removed: users without a replica may get one. */
void	repl_backends_changed(struct roost *);

/*
 * Choose the user's replica if it has none: the next backend of its pool
 * in hash order, never on the primary's host.  Returns 1 when one was
 * chosen (memory only: the caller stores the user's row), else 0.
 */
int	repl_choose(struct roost *, struct umap_entry *);
/* The same for a user not in the map yet: a slot, or -1. */
long	repl_pick(struct roost *, const char *key, size_t len, const char *tag,
	    long primary);

/* An admin asked for the user: its queued sync runs now, whatever its
 * backoff (a failure after it backs off further). */
void	repl_now(struct roost *, struct umap_entry *);
/* Pause or resume the dispatch of syncs (running ones finish). */
void	repl_pause(struct roost *, int paused);
/* Queue every user with a replica; returns how many. */
size_t	repl_enqueue_all(struct roost *, int priority, int full);
/* Drop the user's queue entry, backoff and stuck mark; 1 if it had one. */
int	repl_remove(struct roost *, struct umap_entry *);

/*
 * A sync run for a move, outside the queue and its limit: from the user's
 * backend slot `from` toward slot `to`; incremental from `state` when given
 * (what an earlier run answered), else from the stored state when `to` is
 * the user's current replica, else full (a stored state is read without
 * the loop waiting, where the store can).  done(arg, ok, error, state)
 * runs once, later, unless cancelled; state is the new dsync state (""
 * when none came), valid during the call.  NULL when the state could not
 * be read at once.
 */
struct repl_run;
typedef void	(*repl_run_cb)(void *, int ok, const char *error,
		    const char *state);
struct repl_run *repl_run_sync(struct roost *, struct umap_entry *, long from,
	    long to, const char *state, repl_run_cb, void *);
void	repl_run_cancel(struct repl_run *);

/* GET /v1/replication, GET /v1/replication/users/{user}: new references. */
json_t	*repl_status_json(struct roost *);
/* A user's stored replication record, read by the admin lane with its
 * own store (store calls only); repl_user_json adds what memory has. */
struct repl_user_row {
	struct store_repl	 sr;
	char			*error;
	int			 found;
};
int	 repl_user_read(struct store *, const char *user,
	    struct repl_user_row *);
void	 repl_user_row_clear(struct repl_user_row *);
json_t	*repl_user_json(struct roost *, struct umap_entry *,
	    const struct repl_user_row *);

/* Is the user's replica up to date enough to fail over to? */
int	repl_can_fail_over(const struct roost *, const struct umap_entry *);
/* Has an admin forced failovers off the user's backend onto replicas
 * that are not current? */
int	repl_forced(const struct roost *, const struct umap_entry *);
/*
 * Fail the user over (memory; the caller commits the user's row): its
 * replica becomes its backend and the old backend its replica, which is
 * synced from the new one before anything else once it is back.
 */
void	repl_failover(struct roost *, struct umap_entry *);
/* A failover refused for want of a current replica: counted, alarmed. */
void	repl_refused(struct roost *, const struct umap_entry *);
/*
 * The user's backend and replica were set anew (a move's switch): the
 * stored dsync state belonged to the old pair; the next sync starts from
 * none (full when the replica is not current).
 */
void	repl_pair_changed(struct roost *, struct umap_entry *);

#endif
