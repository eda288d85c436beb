/*
 * store_pg.h: what the change feed (feed.c) reads from a PostgreSQL store,
 * beside the store.h table.  A feed pass is two reads: the changes after
 * the last one applied, then the rows they name as they are now, one
 * statement for each kind of row the changes name (a table no change
 * names is not read, so a lock on it holds nothing up).  The feed sends
 * them on its own connection and reads the answers on the loop; only the
 * schema's knowledge (the SQL, the columns, the checks of a stored row)
 * lives here.
 */
#ifndef ROOST_STORE_PG_H
#define ROOST_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

/* The parts of a read, in the order the server answers them.  Users come
 * after the moves, so that a move read as over never meets a user row
 * older than itself. */
enum store_feed_part {
	STORE_FEED_CHANGES,	/* the changes, with the prune mark */
	STORE_FEED_BACKENDS,	/* rows named by "backend" changes */
	STORE_FEED_HEALTH,	/* by "health" changes */
	STORE_FEED_PROXIES,	/* by "proxy" changes */
	STORE_FEED_MOVING,	/* users of "move" changes whose move is past
				 * its start */
	STORE_FEED_USERS,	/* users named by "user" or "move" changes */
	STORE_FEED_PARTS
};

/* Where the rows of a part go; rows are valid during the call only. */
struct store_feed_cbs {
	store_change_cb	 change;
	store_backend_cb backend;
	store_health_cb	 health;
	store_proxy_cb	 proxy;
	int		(*moving)(const char *user, void *);
	store_user_cb	 user;
	void		*arg;
};

/* The read of a pass's first step: at most `limit` changes after `after`
 * (the part STORE_FEED_CHANGES).  The caller frees it. */
char	*store_pg_feed_changes_sql(int64_t after, size_t limit);
/* Its second step: the rows named by the changes numbered after `after`
 * up to `last`, one statement for each part in `parts` (a mask of
 * 1 << part), answered in part order.  The caller frees it. */
char	*store_pg_feed_rows_sql(int64_t after, int64_t last, unsigned parts);
/* Everything a lookup answers from, for an instance that fell behind the
 * kept history: the change head (read with store_pg_feed_head), then
 * every row of the parts after STORE_FEED_CHANGES, in part order
 * (STORE_FEED_PARTS results in all).  The caller frees it. */
char	*store_pg_feed_reload_sql(void);
int	 store_pg_feed_head(struct store *, const PGresult *, int64_t *head);
/* Either read on the store's own connection, within its bound: res[]
 * gets its nparts results, for the caller to PQclear.  0, or -1 with the
 * store's error set (nothing to clear then). */
int	 store_pg_feed_read(struct store *, const char *sql, size_t nparts,
	    PGresult **res);
/* Hand the rows of one part to cbs (*pruned: the changes part's prune
 * mark).  0, or -1 with the store's error set: a failed statement (cbs
 * is not looked at then), a damaged row, a callback that returned -1. */
int	 store_pg_feed_rows(struct store *, enum store_feed_part,
	    const PGresult *, const struct store_feed_cbs *, int64_t *pruned);

#endif
