/*
 * store_lane.h: admin work on a store session of its own, off the loop.
 */
#ifndef ROOST_STORE_LANE_H
#define ROOST_STORE_LANE_H

#include <sys/queue.h>

#include <jansson.h>

struct event_base;
struct store;

#define LANE_NOT_YET	1	/* prepare: ask again in a moment */

/*
 * One piece of admin work, embedded first in its owner's struct.  In
 * turn, one at a time and in the order given:
 *   prepare(job) (NULL: go on), on the loop: look at memory and decide;
 *   0 to go on,
 *   LANE_NOT_YET to be asked again shortly (what the store must see
 *   first is still on its way there), -1 when it answered already (done
 *   is then called with rc -1 and status 0);
 *   run(store, job), in the lane's thread where the store waits on a
 *   network (PostgreSQL), else on the loop: store calls only, never
 *   memory that the loop changes; 0 or -1 with the store's error;
 *   done(job), on the loop: rc, status (store_http_status() of a
 *   failure) and err say how it went; done frees the job.
 */
struct lane_job {
	int		(*prepare)(struct lane_job *);
	int		(*run)(struct store *, struct lane_job *);
	void		(*done)(struct lane_job *);
	const char	*what;			/* for GET /v1/status */
	int		 rc;
	int		 status;
	char		 err[512];		/* never holds secrets */
	uint64_t	 since;			/* mono ms it was given */
	TAILQ_ENTRY(lane_job) entry;
};

struct store_lane;

/* The lane of store st (opened from url): a thread with a session of
 * its own where st waits on a network, else work runs on the loop. */
struct store_lane	*store_lane_new(struct event_base *, struct store *st,
			    const char *url);
/* Every job not done yet gets done() with rc -1 and status 503. */
void			 store_lane_free(struct store_lane *);
void			 store_lane_give(struct store_lane *,
			    struct lane_job *);
/*
 * Users whose row a job writes: held from its check to its done, so that
 * the loop's own writes of their rows (the replication flush, from
 * memory) wait until memory has what the lane wrote.  A user may be
 * held by several jobs.
 */
void			 store_lane_hold(struct store_lane *, const char *user);
void			 store_lane_release(struct store_lane *,
			    const char *user);
int			 store_lane_held(const struct store_lane *,
			    const char *user);
/* 1 when origin tags a change the lane's session wrote (under its
 * current tag: after a commit it could not hear the end of, the session
 * takes a new one, and the change feed reads that commit back). */
int			 store_lane_own(struct store_lane *, const char *origin);
/* 1 while a job is given and its done() has not run. */
int			 store_lane_busy(struct store_lane *);
/* {"what": ..., "ms": ..., "queued": N} while work is under way, or
 * JSON null. */
json_t			*store_lane_json(struct store_lane *);

#endif
