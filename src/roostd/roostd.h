/*
 * roostd.h: the daemon's one context.  Everything the event loop serves
 * hangs off struct roost: the config, the store, the backends, the proxies
 * and the user map (the in-memory mirror of the store that lookups read).
 */
#ifndef ROOST_ROOSTD_H
#define ROOST_ROOSTD_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "proxy.h"
#include "store.h"
#include "umap.h"

#ifndef ROOST_VERSION
#define ROOST_VERSION	"0.0.0"
#endif

#define ROOST_MAX_BACKENDS	4096	/* slots are uint16_t in umap entries */
#define ROOST_MAX_PROXIES	1024	/* far above any site; bounds a kick */

struct event_base;
struct event;
struct evhttp;
struct lookup_batch;
struct health;
struct moves;
struct failovers;
struct doveadm;
struct events;
struct repl;
struct feed;
struct roles;
struct store_lane;

struct roost {
	struct event_base	*base;
	char			*conf_path;
	struct config		*conf;
	struct store		*store;

	struct backend		**backends;	/* slots; NULL = free */
	size_t			 *slot_users;	/* users assigned, per slot */
	size_t			  nslots;
	char			**tags;		/* interned; tags[0] = "" */
	size_t			  ntags;
	struct umap		 *users;
	struct proxy		**proxies;	/* in name order */
	size_t			  nproxies;

	struct evhttp		 *http;
	struct lookup_batch	 *batch;	/* assignments awaiting commit */
	struct health		 *health;	/* probes and verdicts */
	struct moves		 *moves;	/* moves queued and under way */
	struct failovers	 *failovers;	/* kicks before a failover */
	struct doveadm		 *doveadm;	/* every HTTP call to Dovecot */
	struct events		 *events;	/* who is active where */
	struct repl		 *repl;		/* the replication queue */
	struct feed		 *feed;		/* others' changes (PostgreSQL) */
	struct roles		 *roles;	/* singleton work held (role.c) */
	struct store_lane	 *lane;		/* admin work off the loop */
	struct event		 *touch_ev;
	int64_t			  started;
};

/* state.c: backends by slot, interned tags, loading from the store. */
int		 state_load(struct roost *);
void		 state_clear(struct roost *);
long		 state_backend_find(const struct roost *, const char *name);
int		 state_backend_full(const struct roost *);
long		 state_backend_insert(struct roost *, struct backend *);
void		 state_backend_remove(struct roost *, long slot);
uint16_t	 state_tag_intern(struct roost *, const char *tag);
const char	*state_tag_name(const struct roost *, uint16_t id);
/*
 * Every change of a user's backend goes through these two, so that the
 * per-backend user counts stay exact without walking the map.
 */
void		 state_user_assign(struct roost *, struct umap_entry *,
		    uint16_t slot);
void		 state_user_forget(struct roost *, struct umap_entry *);
/* The store's row of a committed user, from memory (strings borrowed). */
void		 state_user_record(const struct roost *,
		    const struct umap_entry *, struct store_user *);
size_t		 state_backend_users(const struct roost *, long slot);
/* Proxies, kept in name order; index or -1. */
long		 state_proxy_find(const struct roost *, const char *name);
void		 state_proxy_insert(struct roost *, struct proxy *);
void		 state_proxy_remove(struct roost *, long idx);
/* A stored row written by another (feed.c) or read at start, into memory;
 * see state.c for what each keeps of memory. */
int		 state_user_apply(struct roost *, const struct store_user *);
long		 state_backend_apply(struct roost *, const struct backend *);
void		 state_proxy_apply(struct roost *, const struct proxy *);
/* Forget every user for which keep() says 0 (a reload, feed.c). */
void		 state_users_retain(struct roost *,
		    int (*)(const struct umap_entry *, void *), void *);
/* Is an assignment to this slot still usable for a user of this tag? */
int		 state_backend_usable(const struct roost *, long slot,
		    const char *tag);

#endif
