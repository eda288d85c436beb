/*
 * failover.h: before a failed backend's users go elsewhere, every
 * registered proxy kicks the sessions it proxies to that backend
 * (failover.c).  The health engine starts it and is told when it is over.
 */
#ifndef ROOST_FAILOVER_H
#define ROOST_FAILOVER_H

struct roost;

/* Kick the backend's proxied sessions everywhere; health_reroute() runs
 * when that is over.  Returns 1 when kicks were started, 0 when there is
 * nothing to wait for (no proxies, or a failover already under way). */
int	failover_begin(struct roost *, long slot);
/*
 * An admin set the backend down or removes it: its users keep it until
 * the proxies and the backend itself have kicked their sessions (bounded
 * by move_timeout), then done runs and the users go elsewhere at their
 * next login.  Returns 0 when there is nobody to ask (done is not run).
 */
typedef void	(*failover_done_cb)(struct roost *, long slot, void *);
int	failover_evacuate(struct roost *, long slot, failover_done_cb done,
	    void *arg);
/* Is the backend of this slot still waiting for its proxies' kicks? */
int	failover_pending(struct roost *, long slot);
/* The backend passed again, or went: stop waiting for its kicks. */
void	failover_cancel(struct roost *, long slot);
void	failover_free_all(struct roost *);

#endif
