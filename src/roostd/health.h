/*
 * health.h: the health engine.  Every probe_interval it probes each
 * backend's services (probe.h), turns rounds into verdicts with rise/fall
 * counts, keeps them in the store and decides which backends are handed
 * out: a failed one is not, like admin state down, unless every backend
 * failed at once (then roostd suspects its own network).
 */
#ifndef ROOST_HEALTH_H
#define ROOST_HEALTH_H

#include "backend.h"

struct roost;

/* A verdict and the runs that lead to the next one. */
struct health_count {
	enum health_state	state;
	unsigned		ok_run;		/* rounds passed in a row */
	unsigned		fail_run;	/* rounds failed in a row */
};

/*
 * Apply one round's result: `fall` failed rounds in a row make a backend
 * failed, `rise` passed rounds in a row make a failed one ok again, and a
 * failing one is ok again at its first passed round.  Returns 1 when the
 * state changed.
 */
int	health_apply(struct health_count *, int ok, unsigned rise,
	    unsigned fall);

int	health_init(struct roost *);
/* The proxies kicked a failed backend's sessions: its verdict is stored
 * now (failover.c). */
void	health_failover_done(struct roost *, long slot);
void	health_free(struct roost *);
/* Load the verdicts kept in the store onto the backends (at start). */
int	health_load(struct roost *);
/* A verdict as stored (at start, or another instance's through the
 * feed) onto its backend; health_reroute() then decides again. */
struct store_health;
int	health_verdict_set(struct roost *, const struct store_health *);
/* The config changed (SIGHUP): new interval, timeout, counts. */
void	health_reconfigure(struct roost *);
/* Decide again which backends are handed out (after a verdict, or when a
 * failover's proxy kicks are over). */
void	health_reroute(struct roost *);
/* A backend slot was freed or refilled: forget its probes and counts. */
void	health_slot_reset(struct roost *, long slot);

#endif
