/*
 * role.h: the work that one roostd of several sharing a store must own.
 * Every instance answers lookups and probes the backends; only the holder
 * of a role does its work: "moves" runs the moves and the jobs that make
 * them (flush, rebalance, failback), "repl" dispatches the syncs and runs
 * the replication walks, and "health:<backend>" writes that backend's
 * health verdict and starts its failover.  Work asked of an instance that
 * does not hold the role is written to the store, where the holder finds
 * it.  A role is the store's to give (store.h, role_claim): with
 * PostgreSQL it is freed when its holder dies, and another instance takes
 * it at its next claim round, about a second later; a store of one roostd
 * (SQLite) gives every role to it.
 */
#ifndef ROOST_ROLE_H
#define ROOST_ROLE_H

#include <jansson.h>

struct roost;

#define ROLE_MOVES		"moves"
#define ROLE_REPL		"repl"
#define ROLE_HEALTH_PREFIX	"health:"

/* Before the work starts: the first claim round, told to nobody (the
 * consumers look at what is held when they start). */
int	 role_init(struct roost *);
/* With the event loop: a claim round every second, telling the
 * consumers of each role gained or lost. */
int	 role_start(struct roost *);
void	 role_free(struct roost *);

/* Does this instance hold the role now?  No round trip: a lost
 * connection has lost it. */
int	 role_held(const struct roost *, const char *role);
int	 role_health(const struct roost *, const char *backend);
/* The roles this instance holds, for GET /v1/status. */
json_t	*role_status_json(const struct roost *);

#endif
