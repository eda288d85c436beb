/*
 * role.c: who of the roostd sharing a store does which singleton work
 * (role.h).
 *
 * A claim round every ROLE_TICK_MS asks the store for each role this
 * instance wants and does not hold: "moves", "repl", and "health:<name>"
 * for every backend it knows.  The question goes out without the loop
 * waiting for its answer (store_role_claim_send).  The store's answer is the truth (with
 * PostgreSQL a session advisory lock per role); this file only remembers
 * what it last saw, to tell the consumers once when a role is gained (they
 * take up the stored work: the same path as a restart) or lost (they stop
 * and write nothing more: the work stays in the store for the next
 * holder).  A lost store connection loses every role at once.  A role
 * no longer wanted (its backend went) is given back the same way, in a
 * round of its own: no longer held from then on.
 *
 * Roles are not spread on purpose: the first instance to start holds them
 * all, and a survivor takes each over when its holder dies.  Whoever holds
 * one, every instance answers lookups from memory that the change feed
 * keeps in step.
 */
#include <event2/event.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "move.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "util.h"
#include "xmalloc.h"

#define ROLE_TICK_MS	1000

struct role {
	char		*name;
	int		 held;
	int		 wanted;	/* this round */
	int64_t		 since;		/* unix ms, held since */
};

struct roles {
	struct roost	*rs;
	struct role	*v;
	size_t		 n;
	struct event	*tick;
	uint64_t	 gained, lost;
	/* A claim on its way (store_role_claim_send): the names asked and
	 * the store's answers. */
	char		**ask;
	int		*got;
	size_t		 nask;
	int		 claiming;
	uint64_t	 claim_at;	/* mono ms it was sent */
	int		 notify;
	/* Roles to give back, and those on their way (store_role_release_
	 * send): no longer held either way. */
	char		**drop;
	size_t		 ndrop;
	char		**giving;
	size_t		 ngiving;
};

static void
names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
role_drop(struct roles *R, const char *name)
{
	R->drop = xreallocarray(R->drop, R->ndrop + 1, sizeof(*R->drop));
	R->drop[R->ndrop++] = xstrdup(name);
}

static struct role *
role_want(struct roles *R, const char *name)
{
	size_t i;

	for (i = 0; i < R->n; i++)
		if (strcmp(R->v[i].name, name) == 0) {
			R->v[i].wanted = 1;
			return &R->v[i];
		}
	R->v = xreallocarray(R->v, R->n + 1, sizeof(*R->v));
	memset(&R->v[R->n], 0, sizeof(R->v[0]));
	R->v[R->n].name = xstrdup(name);
	R->v[R->n].wanted = 1;
	return &R->v[R->n++];
}

/* Only the roles with a consumer to wake are told; health is looked up
 * when a verdict is due. */
static void
role_tell(struct roles *R, const struct role *r, int notify)
{
	if (!notify)
		return;
	if (strcmp(r->name, ROLE_MOVES) == 0)
		move_role(R->rs, r->held);
	else if (strcmp(r->name, ROLE_REPL) == 0)
		repl_role(R->rs, r->held);
}

static struct role *
role_find(struct roles *R, const char *name)
{
	size_t i;

	for (i = 0; i < R->n; i++)
		if (strcmp(R->v[i].name, name) == 0)
			return &R->v[i];
	return NULL;
}

/* The store's answer to a claim round. */
static void
claim_done(void *arg, int rc)
{
	struct roles *R = arg;
	struct store *st = R->rs->store;
	struct role *r;
	size_t i;

	R->claiming = 0;
	if (rc == -1)
		log_debug("claiming %zu roles: %s", R->nask, store_error(st));
	for (i = 0; rc == 0 && i < R->nask; i++) {
		if (!R->got[i])
			continue;
		if ((r = role_find(R, R->ask[i])) == NULL) {
			/* Not wanted any more (its backend went while the
			 * claim was on its way): not to be held either. */
			role_drop(R, R->ask[i]);
			continue;
		}
		if (r->held)
			continue;
		r->held = 1;
		r->since = now_msec();
		R->gained++;
		log_info("role %s taken", r->name);
		role_tell(R, r, R->notify);
	}
	for (i = 0; i < R->nask; i++)
		free(R->ask[i]);
	free(R->ask);
	free(R->got);
	R->ask = NULL;
	R->got = NULL;
	R->nask = 0;
}

static void
release_done(void *arg, int rc)
{
	struct roles *R = arg;

	if (rc == -1)
		log_debug("releasing %zu roles: %s", R->ngiving,
		    store_error(R->rs->store));
	names_free(R->giving, R->ngiving);
	R->giving = NULL;
	R->ngiving = 0;
}

/* Give back the roles dropped, without the loop waiting: 1 when that is
 * under way (the claims wait for the next round). */
static int
role_release_round(struct roles *R)
{
	struct roost *rs = R->rs;

	if (R->ndrop == 0 || R->giving != NULL || R->claiming ||
	    store_flying(rs->store))
		return R->giving != NULL;
	R->giving = R->drop;
	R->ngiving = R->ndrop;
	R->drop = NULL;
	R->ndrop = 0;
	if (store_role_release_send(rs->store, rs->base,
	    (const char *const *)R->giving, R->ngiving, release_done,
	    R) == -1)
		release_done(R, -1);
	return R->giving != NULL;
}

/*
 * Ask for every role not held, in one store call (one round trip): at
 * start before the loop runs, waiting for the answer; on the loop without
 * waiting (the answer comes to claim_done).
 */
static void
role_claim_round(struct roles *R, int notify)
{
	struct roost *rs = R->rs;
	struct store *st = rs->store;
	size_t i;

	if (R->claiming || store_flying(st))
		return;		/* the next round asks */
	for (i = 0; i < R->n; i++)
		if (!R->v[i].held)
			R->nask++;
	if (R->nask == 0)
		return;
	R->ask = xcalloc(R->nask, sizeof(*R->ask));
	R->got = xcalloc(R->nask, sizeof(*R->got));
	for (i = 0, R->nask = 0; i < R->n; i++)
		if (!R->v[i].held)
			R->ask[R->nask++] = xstrdup(R->v[i].name);
	R->notify = notify;
	R->claiming = 1;
	R->claim_at = now_msec_mono();
	if (!notify) {
		claim_done(R, st->ops->role_claim(st,
		    (const char *const *)R->ask, R->nask, R->got));
		return;
	}
	if (store_role_claim_send(st, rs->base, (const char *const *)R->ask,
	    R->nask, R->got, claim_done, R) == -1)
		claim_done(R, -1);
}

static void
role_round(struct roles *R, int notify)
{
	struct roost *rs = R->rs;
	struct store *st = rs->store;
	struct role *r;
	char name[BACKEND_NAME_MAX + sizeof(ROLE_HEALTH_PREFIX)];
	size_t i, j;
	int now;

	for (i = 0; i < R->n; i++)
		R->v[i].wanted = 0;
	role_want(R, ROLE_MOVES);
	role_want(R, ROLE_REPL);
	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] != NULL) {
			snprintf(name, sizeof(name), ROLE_HEALTH_PREFIX "%s",
			    rs->backends[i]->name);
			role_want(R, name);
		}
	for (i = j = 0; i < R->n; i++) {
		r = &R->v[i];
		now = st->ops->role_held(st, r->name);
		if (r->held && !now) {
			r->held = 0;
			R->lost++;
			log_warnx("role %s lost (the store connection went); "
			    "its work is left to the next holder", r->name);
			role_tell(R, r, notify);
		}
		if (!r->wanted) {
			if (now)
				role_drop(R, r->name);
			free(r->name);
			continue;
		}
		R->v[j++] = *r;
	}
	R->n = j;
	/* At start nothing is given back yet: the loop sends it. */
	if (notify && role_release_round(R))
		return;
	role_claim_round(R, notify);
}

static void
role_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	role_round(arg, 1);
}

int
role_init(struct roost *rs)
{
	struct roles *R;

	/* A store of one roostd: every role is its own, nothing to claim. */
	if (rs->store->ops->role_claim == NULL)
		return 0;
	R = xcalloc(1, sizeof(*R));
	R->rs = rs;
	rs->roles = R;
	role_round(R, 0);
	return 0;
}

int
role_start(struct roost *rs)
{
	struct roles *R = rs->roles;
	struct timeval tv = { ROLE_TICK_MS / 1000, (ROLE_TICK_MS % 1000) * 1000 };

	if (R == NULL)
		return 0;
	if ((R->tick = event_new(rs->base, -1, EV_PERSIST, role_tick,
	    R)) == NULL || event_add(R->tick, &tv) == -1)
		return -1;
	return 0;
}

void
role_free(struct roost *rs)
{
	struct roles *R = rs->roles;
	size_t i;

	if (R == NULL)
		return;
	/* Not released one by one: closing the store ends the session,
	 * and every role with it.  A claim on its way is answered first. */
	if (R->claiming || R->giving != NULL)
		store_flight_land(rs->store);
	names_free(R->drop, R->ndrop);
	names_free(R->giving, R->ngiving);
	if (R->tick != NULL)
		event_free(R->tick);
	for (i = 0; i < R->n; i++)
		free(R->v[i].name);
	free(R->v);
	free(R);
	rs->roles = NULL;
}

int
role_held(const struct roost *rs, const char *role)
{
	struct store *st = rs->store;

	if (rs->roles == NULL)
		return 1;
	return st->ops->role_held(st, role) == 1;
}

int
role_health(const struct roost *rs, const char *backend)
{
	char name[BACKEND_NAME_MAX + sizeof(ROLE_HEALTH_PREFIX)];

	if (rs->roles == NULL)
		return 1;
	snprintf(name, sizeof(name), ROLE_HEALTH_PREFIX "%s", backend);
	return role_held(rs, name);
}

json_t *
role_status_json(const struct roost *rs)
{
	const struct roles *R = rs->roles;
	json_t *held = json_array();
	size_t i;

	if (R == NULL) {
		/* Everything, as the names say it. */
		json_array_append_new(held, json_string(ROLE_MOVES));
		json_array_append_new(held, json_string(ROLE_REPL));
		for (i = 0; i < rs->nslots; i++)
			if (rs->backends[i] != NULL)
				json_array_append_new(held, json_pack("s+",
				    ROLE_HEALTH_PREFIX, rs->backends[i]->name));
		return json_pack("{s:s, s:o}", "instance", "", "held", held);
	}
	for (i = 0; i < R->n; i++)
		if (role_held(rs, R->v[i].name))
			json_array_append_new(held,
			    json_string(R->v[i].name));
	return json_pack("{s:s, s:o, s:I, s:I, s:I}", "instance",
	    rs->store->ops->change_origin(rs->store), "held", held,
	    "gained", (json_int_t)R->gained, "lost", (json_int_t)R->lost,
	    "claiming_ms", (json_int_t)(R->claiming ?
	    now_msec_mono() - R->claim_at : 0));
}
