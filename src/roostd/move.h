/*
 * move.h: every change of an assigned user's backend is a move, one
 * persisted state machine that keeps the user on one backend at a time:
 * queued, kicking (the user is marked moving; its sessions are kicked on
 * the old backend and on every proxy), waiting (until the old backend's
 * `who` shows no session, bounded by move_timeout), then the switch, in
 * one store transaction with the move's end.  Lookups of a moving user
 * wait, bounded by move_login_wait, and land on the new backend.
 */
#ifndef ROOST_MOVE_H
#define ROOST_MOVE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backend.h"

struct roost;
struct umap_entry;
struct evhttp_request;
struct move;
struct store_tx;

/* Start the engine and take up the moves a previous run left open (when
 * this instance holds the role moves, role.h). */
int	 move_init(struct roost *);
void	 move_free(struct roost *);
/* Role moves gained (take up the stored moves and jobs) or lost (stop,
 * write nothing more: the next holder takes them up). */
void	 move_role(struct roost *, int held);
/* The feed saw another instance change a move of this user. */
void	 move_changed_elsewhere(struct roost *, const char *user);

/*
 * An admin's move of the user of e to backend slot `to`, in three steps
 * (the admin lane's, api.c): move_check() decides on the loop: the move,
 * not stored yet, or NULL with an HTTP status, the offending field and a
 * message.  reason names what asked for it ("move", "pin"); pin: the user
 * ends pinned.  move_write() stores its row in the lane's transaction
 * (store calls only).  Then, on the loop, move_stored() queues it (or
 * hands it to the instance that runs moves), and when req is not NULL
 * answers it when the move is over: 200 and the user object, or 409 with
 * why it failed; move_unstored() frees a move that was not stored.
 */
struct move *move_check(struct roost *, struct umap_entry *e, long to,
	    const char *reason, int pin, int *status, const char **field,
	    char *err, size_t errlen);
int	 move_write(struct store_tx *, struct move *);
void	 move_stored(struct move *, struct evhttp_request *req);
void	 move_unstored(struct move *);

/* A lookup of a user that is moving: answered when the move is over. */
void	 move_park(struct roost *, struct umap_entry *,
	    struct evhttp_request *, int proto);

/*
 * Jobs: a failback to backend slot (every user failed over from it goes
 * back, each with a final sync before its switch), a flush of backend
 * slot (every user moved to its next choice in its pool) or, with slot
 * -1, a rebalance (every user not pinned whose hashed choice is not its
 * backend), at most max moves (0: all) and rate moves a second (0: as
 * fast as move_max_parallel allows).  Persisted: taken up again at start.
 */
struct move_job;
/* failback = auto: the failback job of backend slot, with nobody waiting
 * for the answer (a refusal is logged). */
void	 move_failback_auto(struct roost *, long slot);
/*
 * An admin's, in the admin lane's three steps (as move_check):
 * move_job_check() on the loop (0, or -1 with status and err),
 * move_job_write() in the lane's transaction (store calls only; -1 with
 * ask->dup set when the store has such a job running already), then
 * move_job_stored() on the loop: the job, started or handed on.
 */
struct move_job_ask {
	long		 slot;
	int		 failback;
	long long	 max, rate;
	int		 held;		/* this instance runs the moves */
	char		 kind[16];
	char		 backend[BACKEND_NAME_MAX + 1];
	int64_t		 id;
	int		 dup;
	int		 storing;	/* between the check and its end */
};
int	 move_job_check(struct roost *, long slot, int failback,
	    long long max, long long rate, struct move_job_ask *, int *status,
	    char *err, size_t errlen);
int	 move_job_write(struct store_tx *, struct move_job_ask *);
struct move_job *move_job_stored(struct roost *, struct move_job_ask *,
	    int *status, char *err, size_t errlen);
/* A job checked and not stored after all (the lane's write failed). */
void	 move_job_unstored(struct roost *, struct move_job_ask *);
/* Why move_job_write found a job like it: "a flush of this backend is
 * under way already", for a 409. */
void	 move_job_dup(const struct move_job_ask *, char *err, size_t errlen);
json_t	*move_job_json(const struct move_job *);
json_t	*move_jobs_json(const struct roost *);

/* End the user's sessions on its backend and every proxy; answers req
 * when all have answered (200, or 502 naming what failed). */
void	 move_kick_user(struct roost *, struct umap_entry *,
	    struct evhttp_request *);

json_t	*move_json(const struct move *);
int64_t	 move_id(const struct move *);
/* Moves queued or under way now. */
size_t	 move_open_count(const struct roost *);
/* 1 when every step noted so far is in the store; else 0, and they are
 * sent without the loop waiting. */
int	 move_steps_settled(struct roost *);

#endif
