/*
 * state.c: the daemon's model of backends, proxies and users, and how it is
 * rebuilt from the store at start.  Backends sit in numbered slots so a user entry
 * can name its backend in two bytes; a slot is reused only after every user
 * of the backend that held it is gone.
 */
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "log.h"
#include "repl.h"
#include "roostd.h"
#include "xmalloc.h"

long
state_backend_find(const struct roost *rs, const char *name)
{
	size_t i;

	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] != NULL &&
		    strcmp(rs->backends[i]->name, name) == 0)
			return (long)i;
	return -1;
}

int
state_backend_full(const struct roost *rs)
{
	size_t i;

	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] == NULL)
			return 0;
	return rs->nslots >= ROOST_MAX_BACKENDS;
}

long
state_backend_insert(struct roost *rs, struct backend *b)
{
	size_t i;

	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] == NULL)
			break;
	if (i == rs->nslots) {
		if (rs->nslots >= ROOST_MAX_BACKENDS)
			return -1;
		rs->backends = xreallocarray(rs->backends, rs->nslots + 1,
		    sizeof(*rs->backends));
		rs->slot_users = xreallocarray(rs->slot_users, rs->nslots + 1,
		    sizeof(*rs->slot_users));
		rs->nslots++;
	}
	rs->backends[i] = b;
	rs->slot_users[i] = 0;
	health_slot_reset(rs, (long)i);
	return (long)i;
}

struct drop {
	struct roost	*rs;
	uint16_t	 slot;
};

static int
drop_slot_users(struct umap_entry *e, void *arg)
{
	struct drop *d = arg;

	if (e->backend == d->slot) {
		repl_forget(d->rs, e->key, e->keylen);
		return 1;
	}
	/* The store drops the replica with its backend too. */
	if (e->replica == d->slot) {
		e->replica = UMAP_NO_BACKEND;
		e->flags &= ~UMAP_F_REPL_CURRENT;
	}
	return 0;
}

/* The backend and every user assigned to it leave memory; users whose
 * replica it was have none until repl.c chooses another. */
void
state_backend_remove(struct roost *rs, long slot)
{
	struct drop d = { rs, (uint16_t)slot };

	umap_walk(rs->users, drop_slot_users, &d);
	rs->slot_users[slot] = 0;
	health_slot_reset(rs, slot);
	backend_free(rs->backends[slot]);
	rs->backends[slot] = NULL;
}

void
state_user_assign(struct roost *rs, struct umap_entry *e, uint16_t slot)
{
	if (e->backend < rs->nslots)
		rs->slot_users[e->backend]--;
	e->backend = slot;
	if (slot < rs->nslots)
		rs->slot_users[slot]++;
}

void
state_user_forget(struct roost *rs, struct umap_entry *e)
{
	if (e->backend < rs->nslots)
		rs->slot_users[e->backend]--;
	repl_forget(rs, e->key, e->keylen);
	umap_del(rs->users, e->key, e->keylen);
}

void
state_user_record(const struct roost *rs, const struct umap_entry *e,
    struct store_user *su)
{
	memset(su, 0, sizeof(*su));
	su->user = e->key;
	su->backend = rs->backends[e->backend]->name;
	su->tag = state_tag_name(rs, e->tag);
	su->pinned = e->pinned;
	su->since = e->since;
	su->last_lookup = e->last_lookup;
	su->confirmed = (e->flags & UMAP_F_CONFIRMED) != 0;
	if (e->replica < rs->nslots && rs->backends[e->replica] != NULL)
		su->replica = rs->backends[e->replica]->name;
	su->replica_current = su->replica != NULL &&
	    (e->flags & UMAP_F_REPL_CURRENT) != 0;
	su->failed_over = (e->flags & UMAP_F_FAILED_OVER) != 0;
}

struct retain {
	struct roost	*rs;
	int		(*keep)(const struct umap_entry *, void *);
	void		*arg;
};

static int
retain_user(struct umap_entry *e, void *arg)
{
	struct retain *r = arg;

	if (r->keep(e, r->arg))
		return 0;
	if (e->backend < r->rs->nslots)
		r->rs->slot_users[e->backend]--;
	repl_forget(r->rs, e->key, e->keylen);
	return 1;
}

void
state_users_retain(struct roost *rs,
    int (*keep)(const struct umap_entry *, void *), void *arg)
{
	struct retain r = { rs, keep, arg };

	umap_walk(rs->users, retain_user, &r);
}

size_t
state_backend_users(const struct roost *rs, long slot)
{
	return rs->slot_users[slot];
}

uint16_t
state_tag_intern(struct roost *rs, const char *tag)
{
	size_t i;

	for (i = 0; i < rs->ntags; i++)
		if (strcmp(rs->tags[i], tag) == 0)
			return (uint16_t)i;
	if (rs->ntags >= 0xffff)
		fatalx("too many distinct tags");
	rs->tags = xreallocarray(rs->tags, rs->ntags + 1, sizeof(*rs->tags));
	rs->tags[rs->ntags] = xstrdup(tag);
	return (uint16_t)rs->ntags++;
}

const char *
state_tag_name(const struct roost *rs, uint16_t id)
{
	return id < rs->ntags ? rs->tags[id] : "";
}

int
state_backend_usable(const struct roost *rs, long slot, const char *tag)
{
	const struct backend *b;

	if (slot < 0 || (size_t)slot >= rs->nslots ||
	    (b = rs->backends[slot]) == NULL)
		return 0;
	return (b->state != BACKEND_DOWN || b->evacuating) && !b->failed &&
	    strcmp(b->tag, tag) == 0;
}

long
state_proxy_find(const struct roost *rs, const char *name)
{
	size_t i;

	for (i = 0; i < rs->nproxies; i++)
		if (strcmp(rs->proxies[i]->name, name) == 0)
			return (long)i;
	return -1;
}

/* Name order here, so every list is sorted without sorting it. */
void
state_proxy_insert(struct roost *rs, struct proxy *p)
{
	size_t i;

	rs->proxies = xreallocarray(rs->proxies, rs->nproxies + 1,
	    sizeof(*rs->proxies));
	for (i = rs->nproxies; i > 0 &&
	    strcmp(rs->proxies[i - 1]->name, p->name) > 0; i--)
		rs->proxies[i] = rs->proxies[i - 1];
	rs->proxies[i] = p;
	rs->nproxies++;
}

void
state_proxy_remove(struct roost *rs, long idx)
{
	proxy_free(rs->proxies[idx]);
	memmove(&rs->proxies[idx], &rs->proxies[idx + 1],
	    (rs->nproxies - (size_t)idx - 1) * sizeof(*rs->proxies));
	rs->nproxies--;
}

static int
load_backend(const struct backend *b, void *arg)
{
	struct roost *rs = arg;

	if (state_backend_insert(rs, backend_dup(b)) == -1) {
		log_warnx("store holds more than %d backends",
		    ROOST_MAX_BACKENDS);
		return -1;
	}
	return 0;
}

static int
load_proxy(const struct proxy *p, void *arg)
{
	struct roost *rs = arg;

	if (rs->nproxies >= ROOST_MAX_PROXIES) {
		log_warnx("store holds more than %d proxies",
		    ROOST_MAX_PROXIES);
		return -1;
	}
	state_proxy_insert(rs, proxy_dup(p));
	return 0;
}

/*
 * Set the user's entry from its stored row: at start, and when another
 * writer changed the row (feed.c).  Lookup times and a confirmation never
 * go back.  Returns -1 when the row names a backend not in memory, or a
 * name the map cannot hold.
 */
int
state_user_apply(struct roost *rs, const struct store_user *su)
{
	struct umap_entry *e;
	size_t len = strlen(su->user);
	long slot;
	int created;

	if ((slot = state_backend_find(rs, su->backend)) == -1)
		return -1;
	if ((e = umap_put(rs->users, su->user, len, &created)) == NULL)
		return -1;
	state_user_assign(rs, e, (uint16_t)slot);
	e->tag = state_tag_intern(rs, su->tag ? su->tag : "");
	e->pinned = su->pinned != 0;
	e->since = (uint32_t)su->since;
	if ((uint32_t)su->last_lookup > e->last_lookup)
		e->last_lookup = (uint32_t)su->last_lookup;
	if ((uint32_t)su->last_lookup > e->touched)
		e->touched = (uint32_t)su->last_lookup;
	if (su->confirmed)
		e->flags |= UMAP_F_CONFIRMED;
	e->flags &= ~(UMAP_F_REPL_CURRENT | UMAP_F_FAILED_OVER);
	e->replica = UMAP_NO_BACKEND;
	if (su->replica != NULL &&
	    (slot = state_backend_find(rs, su->replica)) != -1) {
		e->replica = (uint16_t)slot;
		if (su->replica_current)
			e->flags |= UMAP_F_REPL_CURRENT;
	}
	if (su->failed_over)
		e->flags |= UMAP_F_FAILED_OVER;
	return 0;
}

static int
load_user(const struct store_user *su, void *arg)
{
	struct roost *rs = arg;

	/* The foreign key makes an unknown backend impossible; say so if
	 * not. */
	if (state_user_apply(rs, su) == -1)
		log_warnx("store: user %s on unknown backend %s, or an invalid "
		    "name; ignored", su->user, su->backend);
	return 0;
}

/*
 * Another writer's version of a backend (feed.c): its settings replace
 * ours, what this instance learnt of it (health, failover, evacuation)
 * stays.  A new one takes a slot.  Returns the slot, or -1 when every
 * slot is taken.
 */
long
state_backend_apply(struct roost *rs, const struct backend *b)
{
	struct backend *nb, *old;
	long slot;

	if ((slot = state_backend_find(rs, b->name)) == -1) {
		if (state_backend_full(rs))
			return -1;
		return state_backend_insert(rs, backend_dup(b));
	}
	old = rs->backends[slot];
	nb = backend_dup(b);
	nb->health = old->health;
	nb->health_since = old->health_since;
	nb->health_checked = old->health_checked;
	nb->health_latency_ms = old->health_latency_ms;
	memcpy(nb->health_error, old->health_error, sizeof(nb->health_error));
	nb->failed = old->failed;
	nb->force_failover = old->force_failover;
	nb->evacuating = old->evacuating;
	backend_free(old);
	rs->backends[slot] = nb;
	return slot;
}

/* Another writer's version of a proxy (feed.c), or a new one. */
void
state_proxy_apply(struct roost *rs, const struct proxy *p)
{
	long idx;

	if ((idx = state_proxy_find(rs, p->name)) != -1) {
		proxy_free(rs->proxies[idx]);
		rs->proxies[idx] = proxy_dup(p);
		return;
	}
	state_proxy_insert(rs, proxy_dup(p));
}

int
state_load(struct roost *rs)
{
	if (rs->ntags == 0)
		state_tag_intern(rs, "");
	if (rs->store->ops->backend_load(rs->store, load_backend, rs) == -1) {
		log_warnx("loading backends: %s", store_error(rs->store));
		return -1;
	}
	if (rs->store->ops->proxy_load(rs->store, load_proxy, rs) == -1) {
		log_warnx("loading proxies: %s", store_error(rs->store));
		return -1;
	}
	if (rs->store->ops->user_load(rs->store, load_user, rs) == -1) {
		log_warnx("loading users: %s", store_error(rs->store));
		return -1;
	}
	return 0;
}

void
state_clear(struct roost *rs)
{
	size_t i;

	for (i = 0; i < rs->nslots; i++)
		backend_free(rs->backends[i]);
	free(rs->backends);
	rs->backends = NULL;
	free(rs->slot_users);
	rs->slot_users = NULL;
	rs->nslots = 0;
	for (i = 0; i < rs->nproxies; i++)
		proxy_free(rs->proxies[i]);
	free(rs->proxies);
	rs->proxies = NULL;
	rs->nproxies = 0;
	for (i = 0; i < rs->ntags; i++)
		free(rs->tags[i]);
	free(rs->tags);
	rs->tags = NULL;
	rs->ntags = 0;
	umap_free(rs->users);
	rs->users = NULL;
}
