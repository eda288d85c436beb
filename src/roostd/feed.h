/*
 * feed.h: the change feed.  Several roostd share one PostgreSQL store and
 * each answers lookups from memory, so each has to hear of what the others
 * write: the store numbers every change of what a lookup answers and sends
 * a notification at commit; the feed listens on a connection of its own,
 * reads the changes after the last one it applied, re-reads the rows they
 * name and puts them into memory.  Stores without a feed (SQLite) leave
 * this off.
 */
#ifndef ROOST_FEED_H
#define ROOST_FEED_H

#include <stddef.h>

#include <jansson.h>

struct roost;

/* Before the store is loaded into memory: where the feed starts, so that
 * nothing committed while loading is missed (it is applied again). */
int	 feed_init(struct roost *);
/* With the event loop: connect and listen (reconnecting as needed). */
int	 feed_start(struct roost *);
void	 feed_free(struct roost *);
/* Is another instance moving this user (its logins wait)? */
int	 feed_moving(const struct roost *, const char *key, size_t len);
/* Whose move it is changed hands (move.c): on, another instance's now
 * (this one lost role moves); off, this one's (taken up). */
void	 feed_moving_mark(struct roost *, const char *user, int on);
/* The feed's state for GET /v1/status; JSON null without a feed. */
json_t	*feed_status_json(const struct roost *);

#endif
