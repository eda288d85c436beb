/*
 * events.h: what Dovecot tells roostd.  The intake of Dovecot's event
 * exporter (POST /v1/events/dovecot/{name}, name a registered proxy or a
 * backend), and who is active where: the login proxies' session events,
 * reconciled by polling each proxy's proxied sessions, kept in memory for
 * the users that have an assignment.  user_expire and unconfirmed_expire
 * (lookup.c) read it; the one durable bit, "confirmed", is written by
 * lookup.c's maintenance.
 */
#ifndef ROOST_EVENTS_H
#define ROOST_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct roost;
struct evhttp_request;
struct umap_entry;

int	events_init(struct roost *);
void	events_free(struct roost *);
/* After a config reload: the poll interval may have changed. */
void	events_reconfigure(struct roost *);

/* POST /v1/events/dovecot/{name}.  Updates memory only, never waits on
 * the store or on Dovecot. */
void	events_handle(struct roost *, struct evhttp_request *,
	    const char *name);

/*
 * A user's sessions as last seen.  Returns 0 when roostd has seen none of
 * them (nothing is set then).  `open` counts sessions over every proxy.
 */
struct events_activity {
	uint32_t	open;
	uint32_t	last_start;	/* unix s, 0 = none seen */
	uint32_t	last_end;	/* unix s, 0 = none seen */
};
int	events_user_activity(const struct roost *, const struct umap_entry *,
	    struct events_activity *);
/* The "activity" object of GET /v1/users/{user} (new reference). */
json_t	*events_user_json(const struct roost *, const struct umap_entry *);
/*
 * Logins in flight.  A lookup that answered a backend for a login protocol
 * (imap, pop3, submission, sieve) calls events_login_answered; the proxy's
 * session event (begun, or failed) lands it.  Counted only with the
 * events token set and proxies registered, the only way events come in.
 * events_logins_in_flight: the user's logins answered within the last few
 * seconds and not landed.
 */
void	 events_login_answered(struct roost *, const struct umap_entry *);
unsigned events_logins_in_flight(struct roost *, const char *key,
	    size_t len);
/* The user's assignment is gone: drop what was kept about it. */
void	events_user_forget(struct roost *, const char *key, size_t len);

/*
 * Confirmations (a session or a delivery seen) not yet in the store, oldest
 * first: the keys of up to max users, without taking them (valid until
 * events_confirm_done).  events_confirm_done(n)
 * takes the first n once the store has them.
 */
size_t	events_confirm_peek(struct roost *, const char **keys, size_t max);
void	events_confirm_done(struct roost *, size_t n);

#endif
