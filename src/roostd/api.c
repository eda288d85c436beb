/*
 * api.c: the REST API of roostd.  One table maps (path pattern, method) to a
 * handler and the credentials it needs; everything else (404, 405, 401/403,
 * body caps) is decided here before a handler runs.
 *
 * Every admin change follows the same order: validate completely, write to
 * the store in one transaction together with its audit record, and only
 * after the commit change memory and answer.  A failed commit leaves memory
 * untouched, so the map never runs ahead of the store.  The store part,
 * and every admin read of the store, goes through the admin lane
 * (store_lane.h): one at a time, in order, and on PostgreSQL on a session
 * of its own, so that the loop never waits for it (struct admin below).
 */
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "failover.h"
#include "events.h"
#include "feed.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "lookup.h"
#include "move.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

enum auth { AUTH_NONE, AUTH_ADMIN, AUTH_LOOKUP };

#define ROUTE_PARAMS	3

struct call;

struct route {
	const char	*prefix;	/* exact path, or prefix ending in '/' */
	int		 has_arg;	/* one path segment follows the prefix */
	int		 method;	/* EVHTTP_REQ_* */
	enum auth	 auth;
	void		(*fn)(struct call *);
	/* The query parameters the handler reads; http_query_parse decodes
	 * them for every endpoint alike (lookup.c parses its own). */
	const char	*params[ROUTE_PARAMS];
};

struct call {
	struct roost		*rs;
	struct evhttp_request	*req;
	const struct route	*route;
	char			*arg;		/* decoded {name} of the path */
	char			*qv[ROUTE_PARAMS]; /* values of route->params */
};

static void	h_lookup(struct call *);
static void	h_health(struct call *);
static void	h_status(struct call *);
static void	h_backends_list(struct call *);
static void	h_backends_add(struct call *);
static void	h_backend_get(struct call *);
static void	h_backend_patch(struct call *);
static void	h_backend_delete(struct call *);
static void	h_users_list(struct call *);
static void	h_user_get(struct call *);
static void	h_user_pin(struct call *);
static void	h_user_forget(struct call *);
static void	h_audit(struct call *);
static void	h_proxies_list(struct call *);
static void	h_proxies_add(struct call *);
static void	h_proxy_get(struct call *);
static void	h_proxy_patch(struct call *);
static void	h_proxy_delete(struct call *);
static void	h_moves_list(struct call *);
static void	h_moves_add(struct call *);
static void	h_move_get(struct call *);
static void	h_backend_flush(struct call *);
static void	h_rebalance(struct call *);
static void	h_user_kick(struct call *);
static void	h_events(struct call *);
static void	h_repl_status(struct call *);
static void	h_repl_user_get(struct call *);
static void	h_repl_user_queue(struct call *);
static void	h_repl_user_remove(struct call *);
static void	h_repl_all(struct call *);
static void	h_repl_pause(struct call *);
static void	h_repl_resume(struct call *);
static void	h_backend_failback(struct call *);
static void	h_backend_force_failover(struct call *);

static const struct route routes[] = {
	{ "/v1/lookup",		0, EVHTTP_REQ_GET,    AUTH_LOOKUP, h_lookup,
	  { NULL } },
	{ "/v1/health",		0, EVHTTP_REQ_GET,    AUTH_NONE,  h_health,
	  { NULL } },
	{ "/v1/status",		0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_status,
	  { NULL } },
	{ "/v1/backends",	0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_backends_list,
	  { NULL } },
	{ "/v1/backends",	0, EVHTTP_REQ_POST,   AUTH_ADMIN, h_backends_add,
	  { NULL } },
	{ "/v1/backends/",	1, EVHTTP_REQ_GET,    AUTH_ADMIN, h_backend_get,
	  { NULL } },
	{ "/v1/backends/",	1, EVHTTP_REQ_PATCH,  AUTH_ADMIN, h_backend_patch,
	  { NULL } },
	{ "/v1/backends/",	1, EVHTTP_REQ_DELETE, AUTH_ADMIN, h_backend_delete,
	  { "force" } },
	{ "/v1/users",		0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_users_list,
	  { "limit", "backend", "cursor" } },
	{ "/v1/users/",		1, EVHTTP_REQ_GET,    AUTH_ADMIN, h_user_get,
	  { "tag" } },
	{ "/v1/users/",		1, EVHTTP_REQ_PUT,    AUTH_ADMIN, h_user_pin,
	  { NULL } },
	{ "/v1/users/",		1, EVHTTP_REQ_DELETE, AUTH_ADMIN, h_user_forget,
	  { NULL } },
	{ "/v1/audit",		0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_audit,
	  { "limit", "before" } },
	{ "/v1/proxies",	0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_proxies_list,
	  { NULL } },
	{ "/v1/proxies",	0, EVHTTP_REQ_POST,   AUTH_ADMIN, h_proxies_add,
	  { NULL } },
	{ "/v1/proxies/",	1, EVHTTP_REQ_GET,    AUTH_ADMIN, h_proxy_get,
	  { NULL } },
	{ "/v1/proxies/",	1, EVHTTP_REQ_PATCH,  AUTH_ADMIN, h_proxy_patch,
	  { NULL } },
	{ "/v1/proxies/",	1, EVHTTP_REQ_DELETE, AUTH_ADMIN, h_proxy_delete,
	  { NULL } },
	{ "/v1/backends/*/flush", 1, EVHTTP_REQ_POST, AUTH_ADMIN, h_backend_flush,
	  { NULL } },
	{ "/v1/users/*/kick",	1, EVHTTP_REQ_POST,   AUTH_ADMIN, h_user_kick,
	  { NULL } },
	{ "/v1/rebalance",	0, EVHTTP_REQ_POST,   AUTH_ADMIN, h_rebalance,
	  { NULL } },
	{ "/v1/moves",		0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_moves_list,
	  { "limit", "before", "state" } },
	{ "/v1/moves",		0, EVHTTP_REQ_POST,   AUTH_ADMIN, h_moves_add,
	  { NULL } },
	/* The exporter sends no headers of its own: events.c checks the
	 * token it puts in the URL (Basic auth). */
	{ "/v1/events/dovecot/", 1, EVHTTP_REQ_POST,  AUTH_NONE,  h_events,
	  { NULL } },
	{ "/v1/moves/",		1, EVHTTP_REQ_GET,    AUTH_ADMIN, h_move_get,
	  { NULL } },
	{ "/v1/replication",	0, EVHTTP_REQ_GET,    AUTH_ADMIN, h_repl_status,
	  { NULL } },
	{ "/v1/replication/users/", 1, EVHTTP_REQ_GET, AUTH_ADMIN,
	  h_repl_user_get, { NULL } },
	{ "/v1/replication/users/", 1, EVHTTP_REQ_POST, AUTH_ADMIN,
	  h_repl_user_queue, { NULL } },
	{ "/v1/replication/users/", 1, EVHTTP_REQ_DELETE, AUTH_ADMIN,
	  h_repl_user_remove, { NULL } },
	{ "/v1/replication/all", 0, EVHTTP_REQ_POST,  AUTH_ADMIN, h_repl_all,
	  { NULL } },
	{ "/v1/replication/pause", 0, EVHTTP_REQ_POST, AUTH_ADMIN,
	  h_repl_pause, { NULL } },
	{ "/v1/replication/resume", 0, EVHTTP_REQ_POST, AUTH_ADMIN,
	  h_repl_resume, { NULL } },
	{ "/v1/backends/*/failback", 1, EVHTTP_REQ_POST, AUTH_ADMIN,
	  h_backend_failback, { NULL } },
	{ "/v1/backends/*/force-failover", 1, EVHTTP_REQ_POST, AUTH_ADMIN,
	  h_backend_force_failover, { NULL } },
};

static const struct {
	int		 method;
	const char	*name;
} method_names[] = {
	{ EVHTTP_REQ_GET, "GET" }, { EVHTTP_REQ_POST, "POST" },
	{ EVHTTP_REQ_PUT, "PUT" }, { EVHTTP_REQ_PATCH, "PATCH" },
	{ EVHTTP_REQ_DELETE, "DELETE" },
};

/* --- helpers ------------------------------------------------------------ */

/* The decoded value of a query parameter the route declares, or NULL. */
static const char *
query(const struct call *c, const char *name)
{
	size_t i;

	for (i = 0; i < ROUTE_PARAMS && c->route->params[i] != NULL; i++)
		if (strcmp(c->route->params[i], name) == 0)
			return c->qv[i];
	fatalx("route %s reads undeclared parameter %s", c->route->prefix,
	    name);
}

static void
backend_reply(struct roost *rs, struct evhttp_request *req, int status,
    long slot)
{
	json_t *o = backend_to_json(rs->backends[slot]);

	json_object_set_new(o, "users",
	    json_integer((json_int_t)state_backend_users(rs, slot)));
	http_reply_json(req, status, o);
}

/* --- admin work through the store lane ----------------------------------- */

/* Placements or moves' steps awaited before an admin change reads or
 * writes the store: at most this long under a stream of new users. */
#define ADMIN_GATE_MAX_MS	1000

/*
 * One admin change or read on its way through the store lane
 * (store_lane.h): checked against memory when its turn comes (check:
 * -1 when it answered), written together with its audit record in one
 * transaction (write) or read (read) off the loop, then applied to memory
 * and answered (apply).  A failed write leaves memory untouched.
 */
struct admin {
	struct lane_job		 job;		/* first */
	struct roost		*rs;
	struct evhttp_request	*req;
	int			 flush;		/* placements in the store first */
	int			 steps;		/* moves' steps there first */
	int			(*check)(struct admin *);
	int			(*write)(struct store_tx *, struct admin *);
	int			(*read)(struct store *, struct admin *);
	void			(*apply)(struct admin *);
	const char		*action;	/* the audit record's */
	const char		*field;		/* named by a 409 of write */
	char			*detail;
	/* What the kinds of work carry. */
	char			 name[256];	/* backend, proxy or user key */
	size_t			 keylen;
	struct backend		*b;
	struct proxy		*p;
	struct move		*m;		/* checked, not stored yet */
	struct move_job_ask	 ask;		/* a job asked for */
	int			 holds;		/* store_lane_hold(name) */
	json_t			*body;
	json_t			*out;
	struct store_user	 su;
	char			 su_backend[BACKEND_NAME_MAX + 1];
	char			 su_tag[BACKEND_NAME_MAX + 1];
	char			 su_replica[BACKEND_NAME_MAX + 1];
	char			 expect[BACKEND_NAME_MAX + 1]; /* "": a new user */
	char			 stored[BACKEND_NAME_MAX + 2];
	long			 replica;
	int64_t			 count;
	long long		 limit, before;
	long long		 max, rate;	/* a rebalance's */
	int			 flag;
	int			 prio;		/* a replication request's */
	struct repl_user_row	 row;
};

static struct admin *
admin_new(struct call *c, const char *what)
{
	struct admin *a = xcalloc(1, sizeof(*a));

	a->rs = c->rs;
	a->req = c->req;
	a->job.what = what;
	a->replica = -1;
	if (c->arg != NULL)
		snprintf(a->name, sizeof(a->name), "%s", c->arg);
	return a;
}

static void
admin_free(struct admin *a)
{
	backend_free(a->b);
	proxy_free(a->p);
	if (a->m != NULL)
		move_unstored(a->m);
	if (a->ask.storing)
		move_job_unstored(a->rs, &a->ask);
	if (a->holds)
		store_lane_release(a->rs->lane, a->name);
	json_decref(a->body);
	json_decref(a->out);
	free(a->detail);
	repl_user_row_clear(&a->row);
	free(a);
}

static int
admin_prepare(struct lane_job *job)
{
	struct admin *a = (struct admin *)job;
	int late = now_msec_mono() - job->since > ADMIN_GATE_MAX_MS;

	/* What the store must have before this reads or writes it goes
	 * there first, without the loop waiting for it. */
	if (a->flush && !lookup_settled(a->rs) && !late)
		return LANE_NOT_YET;
	if (a->steps && !move_steps_settled(a->rs) && !late)
		return LANE_NOT_YET;
	return a->check != NULL ? a->check(a) : 0;
}

/* In the lane: the read, or the write with its audit record. */
static int
admin_run(struct store *st, struct lane_job *job)
{
	struct admin *a = (struct admin *)job;
	struct store_tx *tx;

	if (a->read != NULL)
		return a->read(st, a) == -1 ? -1 : 0;
	if ((tx = store_begin(st, STORE_TX_ADMIN)) == NULL) {
		job->status = store_retryable(st) ? 503 : 500;
		return -1;
	}
	if (a->write(tx, a) == -1 || store_audit_add(tx, "admin", a->action,
	    a->name, a->detail ? a->detail : "{}") == -1 ||
	    store_commit(tx) == -1) {
		if (job->status == 0 &&
		    (job->status = store_http_status(st)) == 409)
			snprintf(job->err, sizeof(job->err), "%s; nothing was "
			    "changed", store_error(st));
		store_rollback(tx);
		return -1;
	}
	return 0;
}

static void
admin_done(struct lane_job *job)
{
	struct admin *a = (struct admin *)job;

	if (job->rc == 0) {
		if (a->read == NULL)
			log_info("admin: %s %s", a->action, a->name);
		a->apply(a);
	} else if (job->status == 409) {
		http_reply_error(a->req, 409, a->field, "%s", job->err);
	} else if (job->status != 0) {
		log_warnx("store: %s", job->err);
		if (a->read != NULL && job->status == 503)
			http_reply_error(a->req, 503, NULL, "store: %s",
			    job->err);
		else if (a->read != NULL)
			http_reply_error(a->req, 500, NULL, "store read failed");
		else
			http_reply_error(a->req, job->status, NULL, "%s; nothing "
			    "was changed", job->status == 503 ? "store busy" :
			    "store write failed");
	}
	admin_free(a);
}

static void
admin_give(struct admin *a)
{
	a->job.prepare = admin_prepare;
	a->job.run = admin_run;
	a->job.done = admin_done;
	store_lane_give(a->rs->lane, &a->job);
}

static void
admin_reply_out(struct admin *a)
{
	http_reply_json(a->req, 200, a->out);
	a->out = NULL;
}

/* The detail of the audit record, from o (taken). */
static void
admin_detail(struct admin *a, json_t *o)
{
	free(a->detail);
	a->detail = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) :
	    NULL;
	json_decref(o);
}

static int
admin_move_write(struct store_tx *tx, struct admin *a)
{
	return move_write(tx, a->m);
}

static void
admin_move_apply(struct admin *a)
{
	struct move *m = a->m;

	a->m = NULL;
	/* A pin is answered when its move is over; a move at once. */
	move_stored(m, a->flag ? a->req : NULL);
	if (!a->flag)
		http_reply_json(a->req, 202, json_pack("{s:o}", "move",
		    move_json(m)));
}

/*
 * The admin work becomes a move of the user of e to slot (the check of
 * a pin or of POST /v1/moves): stored in the lane with its audit record,
 * then queued.  -1 after a refusal.
 */
static int
admin_move(struct admin *a, struct umap_entry *e, long slot,
    const char *reason, int answer_at_end)
{
	const char *field;
	char err[256];
	int st;

	if ((a->m = move_check(a->rs, e, slot, reason, 1, &st, &field, err,
	    sizeof(err))) == NULL) {
		http_reply_error(a->req, st, field, "%s", err);
		return -1;
	}
	a->flag = answer_at_end;
	a->action = "user.move";
	a->write = admin_move_write;
	a->apply = admin_move_apply;
	admin_detail(a, NULL);
	return 0;
}

static int
admin_job_write(struct store_tx *tx, struct admin *a)
{
	if (move_job_write(tx, &a->ask) == 0)
		return 0;
	if (a->ask.dup) {
		a->job.status = 409;
		a->field = a->ask.slot != -1 ? "name" : NULL;
		move_job_dup(&a->ask, a->job.err, sizeof(a->job.err));
	}
	return -1;
}

static void
admin_job_apply(struct admin *a)
{
	struct move_job *j;
	char err[256];
	long slot;
	int st;

	if ((j = move_job_stored(a->rs, &a->ask, &st, err,
	    sizeof(err))) == NULL) {
		http_reply_error(a->req, st, a->ask.slot != -1 ? "name" : NULL,
		    "%s", err);
		return;
	}
	/* A flush says how many users it moves. */
	if (a->ask.slot != -1 && !a->ask.failback &&
	    (slot = state_backend_find(a->rs, a->ask.backend)) != -1)
		http_reply_json(a->req, 202, json_pack("{s:o, s:I}", "job",
		    move_job_json(j), "users", (json_int_t)state_backend_users(
		    a->rs, slot)));
	else
		http_reply_json(a->req, 202, json_pack("{s:o}", "job",
		    move_job_json(j)));
}

/*
 * The admin work becomes a job (a flush, a rebalance, a failback): it
 * is stored in the lane with its audit record, then started.  -1 after
 * a refusal.
 */
static int
admin_job(struct admin *a, long slot, int failback, long long max,
    long long rate)
{
	char err[256];
	int st;

	if (move_job_check(a->rs, slot, failback, max, rate, &a->ask, &st, err,
	    sizeof(err)) == -1) {
		http_reply_error(a->req, st, slot != -1 && st == 409 ? "name" :
		    NULL, "%s", err);
		return -1;
	}
	a->action = failback ? "backend.failback" : slot != -1 ?
	    "backend.flush" : "rebalance";
	snprintf(a->name, sizeof(a->name), "%s", a->ask.backend);
	admin_detail(a, json_pack("{s:I, s:I}", "max", (json_int_t)max,
	    "rate", (json_int_t)rate));
	a->write = admin_job_write;
	a->apply = admin_job_apply;
	return 0;
}

static int
query_limit(struct call *c, long long def, long long max, long long *out)
{
	const char *s = query(c, "limit");

	*out = def;
	if (s != NULL && parse_ll(s, 1, max, out) == -1) {
		http_reply_error(c->req, 400, "limit", "must be an integer from "
		    "1 to %lld", max);
		return -1;
	}
	return 0;
}

static long
find_backend_or_404(struct call *c, const char *name, const char *field)
{
	long slot = state_backend_find(c->rs, name);

	if (slot == -1)
		http_reply_error(c->req, 404, field, "no backend named %s",
		    valid_name(name) ? name : "(invalid name)");
	return slot;
}

/* The routing key for the {user} in the path, or -1 after a 400. */
static int
user_key(struct call *c, char *key, size_t keylen)
{
	int n;

	if (!valid_username(c->arg, strlen(c->arg))) {
		http_reply_error(c->req, 400, "user", "must be 1-255 bytes "
		    "of UTF-8 without control characters");
		return -1;
	}
	n = config_user_key(c->rs->conf, c->arg, strlen(c->arg), key, keylen);
	if (n == -1)
		http_reply_error(c->req, 400, "user", "empty after applying "
		    "username_format and master_user_separator");
	return n;
}

static json_t *
user_json(struct roost *rs, const char *key, size_t len,
    const struct umap_entry *e, const char *tag)
{
	json_t *o;
	long best[2];
	size_t n;

	if (e != NULL)
		tag = state_tag_name(rs, e->tag);
	o = json_pack("{s:s, s:b, s:b, s:s}", "user", key, "assigned",
	    e != NULL, "pinned", e != NULL && e->pinned, "tag", tag);
	n = lookup_rank(rs, key, len, tag, -1, best, 2);
	json_object_set_new(o, "hashed", n > 0 ?
	    json_string(rs->backends[best[0]]->name) : json_null());
	if (e == NULL) {
		json_object_set_new(o, "backend", json_null());
		json_object_set_new(o, "replica", n > 1 ?
		    json_string(rs->backends[best[1]]->name) : json_null());
		json_object_set_new(o, "since", json_null());
		json_object_set_new(o, "last_lookup", json_null());
		json_object_set_new(o, "confirmed", json_false());
		json_object_set_new(o, "activity", events_user_json(rs, NULL));
		return o;
	}
	json_object_set_new(o, "backend",
	    json_string(rs->backends[e->backend]->name));
	json_object_set_new(o, "replica", e->replica < rs->nslots &&
	    rs->backends[e->replica] != NULL ?
	    json_string(rs->backends[e->replica]->name) : json_null());
	json_object_set_new(o, "replica_current",
	    json_boolean(e->flags & UMAP_F_REPL_CURRENT));
	json_object_set_new(o, "failed_over",
	    json_boolean(e->flags & UMAP_F_FAILED_OVER));
	json_object_set_new(o, "since", json_integer(e->since));
	json_object_set_new(o, "last_lookup", e->last_lookup ?
	    json_integer(e->last_lookup) : json_null());
	json_object_set_new(o, "confirmed",
	    json_boolean(e->flags & UMAP_F_CONFIRMED));
	json_object_set_new(o, "activity", events_user_json(rs, e));
	return o;
}

void
api_reply_user(struct roost *rs, struct evhttp_request *req, const char *key,
    size_t len)
{
	http_reply_json(req, 200, user_json(rs, key, len,
	    umap_get(rs->users, key, len), ""));
}

/* --- handlers ----------------------------------------------------------- */

static void
h_lookup(struct call *c)
{
	lookup_handle(c->rs, c->req);
}

static void
h_events(struct call *c)
{
	events_handle(c->rs, c->req, c->arg);
}

static int
health_read(struct store *st, struct admin *a)
{
	if (st->ops->ping(st) == -1) {
		a->job.status = 503;
		return -1;
	}
	return 0;
}

static void
health_apply(struct admin *a)
{
	http_reply_json(a->req, 200, json_pack("{s:s}", "status", "ok"));
}

/* The store answers: asked in the lane, so that a monitor polling a
 * roostd whose database hangs never holds its loop. */
static void
h_health(struct call *c)
{
	struct admin *a = admin_new(c, "health");

	a->read = health_read;
	a->apply = health_apply;
	admin_give(a);
}

static json_t *
backends_array(struct roost *rs)
{
	json_t *arr = json_array(), *o;
	size_t i, j, n = 0;
	long *order = xcalloc(rs->nslots + 1, sizeof(*order));

	/* Name order, not slot order: stable output for people and scripts. */
	for (i = 0; i < rs->nslots; i++) {
		if (rs->backends[i] == NULL)
			continue;
		for (j = n; j > 0 && strcmp(rs->backends[order[j - 1]]->name,
		    rs->backends[i]->name) > 0; j--)
			order[j] = order[j - 1];
		order[j] = (long)i;
		n++;
	}
	for (i = 0; i < n; i++) {
		o = backend_to_json(rs->backends[order[i]]);
		json_object_set_new(o, "users", json_integer(
		    (json_int_t)state_backend_users(rs, order[i])));
		json_array_append_new(arr, o);
	}
	free(order);
	return arr;
}

static void
h_status(struct call *c)
{
	struct roost *rs = c->rs;

	http_reply_json(c->req, 200, json_pack("{s:s, s:s, s:o, s:o, s:I, s:I,"
	    " s:o, s:I, s:o, s:o}",
	    "version", ROOST_VERSION, "store", rs->store->ops->name,
	    "store_flight", store_flight_json(rs->store),
	    "store_lane", store_lane_json(rs->lane),
	    "users", (json_int_t)umap_count(rs->users),
	    "started", (json_int_t)rs->started,
	    "backends", backends_array(rs),
	    "proxies", (json_int_t)rs->nproxies,
	    "feed", feed_status_json(rs),
	    "roles", role_status_json(rs)));
}

static void
h_backends_list(struct call *c)
{
	http_reply_json(c->req, 200, json_pack("{s:o}", "backends",
	    backends_array(c->rs)));
}

static int
backend_add_check(struct admin *a)
{
	struct roost *rs = a->rs;

	if (state_backend_find(rs, a->b->name) != -1) {
		http_reply_error(a->req, 409, "name", "backend %s exists",
		    a->b->name);
		return -1;
	}
	if (state_backend_full(rs)) {
		http_reply_error(a->req, 409, "name", "at most %d backends",
		    ROOST_MAX_BACKENDS);
		return -1;
	}
	a->b->created = a->b->updated = now_sec();
	admin_detail(a, backend_to_json(a->b));
	return 0;
}

static int
backend_add_write(struct store_tx *tx, struct admin *a)
{
	return store_backend_insert(tx, a->b);
}

static void
backend_add_apply(struct admin *a)
{
	struct roost *rs = a->rs;
	long slot;

	/* A row of that name may have come through the feed meanwhile
	 * (a commit the lane lost the answer of), and other writers'
	 * backends may have taken the last slot. */
	if ((slot = state_backend_find(rs, a->b->name)) != -1) {
		backend_free(rs->backends[slot]);
		rs->backends[slot] = a->b;
	} else if ((slot = state_backend_insert(rs, a->b)) == -1) {
		log_warnx("backend %s: stored, but every slot is taken",
		    a->b->name);
		http_reply_error(a->req, 503, NULL, "backend %s is stored, but "
		    "this roostd has no slot for it", a->b->name);
		return;
	}
	a->b = NULL;
	repl_backends_changed(rs);
	backend_reply(rs, a->req, 201, slot);
}

static void
h_backends_add(struct call *c)
{
	struct admin *a = admin_new(c, "backend add");
	const char *field;
	char err[256];

	a->b = backend_new("");
	if ((a->body = http_body_object(c->req)) == NULL)
		goto fail;
	if (backend_apply_json(a->b, a->body, 1, &field, err,
	    sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto fail;
	}
	snprintf(a->name, sizeof(a->name), "%s", a->b->name);
	a->action = "backend.add";
	a->check = backend_add_check;
	a->write = backend_add_write;
	a->apply = backend_add_apply;
	admin_give(a);
	return;
fail:
	admin_free(a);
}

static void
h_backend_get(struct call *c)
{
	long slot;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	backend_reply(c->rs, c->req, 200, slot);
}

/* The backend the admin work names, or -1 after a 404. */
static long
admin_backend(struct admin *a)
{
	long slot = state_backend_find(a->rs, a->name);

	if (slot == -1)
		http_reply_error(a->req, 404, "name", "no backend named %s",
		    valid_name(a->name) ? a->name : "(invalid name)");
	return slot;
}

static int
backend_patch_check(struct admin *a)
{
	const char *field;
	char err[256];
	long slot;

	if ((slot = admin_backend(a)) == -1)
		return -1;
	a->b = backend_dup(a->rs->backends[slot]);
	if (backend_apply_json(a->b, a->body, 0, &field, err,
	    sizeof(err)) == -1) {
		http_reply_error(a->req, 400, field, "%s", err);
		return -1;
	}
	a->b->updated = now_sec();
	admin_detail(a, backend_to_json(a->b));
	return 0;
}

static int
backend_patch_write(struct store_tx *tx, struct admin *a)
{
	return store_backend_update(tx, a->b);
}

static void
backend_patch_apply(struct admin *a)
{
	struct roost *rs = a->rs;
	struct backend *nb = a->b;
	long slot;
	int going_down;

	if ((slot = admin_backend(a)) == -1)
		return;
	if (rs->backends[slot]->state != nb->state)
		log_info("backend %s: state %s -> %s", nb->name,
		    backend_state_name(rs->backends[slot]->state),
		    backend_state_name(nb->state));
	going_down = rs->backends[slot]->state != BACKEND_DOWN &&
	    nb->state == BACKEND_DOWN;
	/* An admin's force-failover ends when the backend is up again. */
	if (rs->backends[slot]->state != BACKEND_UP &&
	    nb->state == BACKEND_UP)
		nb->force_failover = 0;
	backend_free(rs->backends[slot]);
	rs->backends[slot] = nb;
	a->b = NULL;
	/* Down: no new users at once; its users keep it until their
	 * sessions are kicked, then go elsewhere (failover.c). */
	if (going_down && state_backend_users(rs, slot) > 0)
		failover_evacuate(rs, slot, NULL, NULL);
	repl_backend_changed(rs, slot);
	backend_reply(rs, a->req, 200, slot);
}

static void
h_backend_patch(struct call *c)
{
	struct admin *a;

	if (find_backend_or_404(c, c->arg, "name") == -1)
		return;
	a = admin_new(c, "backend set");
	if ((a->body = http_body_object(c->req)) == NULL) {
		admin_free(a);
		return;
	}
	a->action = "backend.set";
	a->check = backend_patch_check;
	a->write = backend_patch_write;
	a->apply = backend_patch_apply;
	admin_give(a);
}

static int
backend_remove_check(struct admin *a)
{
	return admin_backend(a) == -1 ? -1 : 0;
}

static int
backend_remove_write(struct store_tx *tx, struct admin *a)
{
	if (store_backend_delete(tx, a->name, &a->count) == -1)
		return -1;
	admin_detail(a, json_pack("{s:I}", "users_released",
	    (json_int_t)a->count));
	return 0;
}

static void
backend_remove_apply(struct admin *a)
{
	long slot;

	if ((slot = state_backend_find(a->rs, a->name)) != -1) {
		state_backend_remove(a->rs, slot);
		repl_backends_changed(a->rs);
	}
	http_reply_json(a->req, 200, json_pack("{s:s, s:I}", "deleted",
	    a->name, "users_released", (json_int_t)a->count));
}

/* The removal itself: store, then memory, then the answer.  The
 * assignments made so far go to the store first, so that the removal
 * releases them too. */
static void
backend_remove_now(struct roost *rs, struct evhttp_request *req, long slot)
{
	struct admin *a = xcalloc(1, sizeof(*a));

	a->rs = rs;
	a->req = req;
	a->job.what = "backend remove";
	snprintf(a->name, sizeof(a->name), "%s", rs->backends[slot]->name);
	a->action = "backend.remove";
	a->flush = 1;
	a->check = backend_remove_check;
	a->write = backend_remove_write;
	a->apply = backend_remove_apply;
	admin_give(a);
}

static void
backend_removed(struct roost *rs, long slot, void *arg)
{
	backend_remove_now(rs, arg, slot);
}

static void
h_backend_delete(struct call *c)
{
	struct roost *rs = c->rs;
	const char *force = query(c, "force");
	size_t users;
	long slot;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	if (force != NULL && strcmp(force, "1") != 0 && strcmp(force, "0") != 0) {
		http_reply_error(c->req, 400, "force", "must be 0 or 1");
		return;
	}
	users = state_backend_users(rs, slot);
	if (users > 0 && (force == NULL || strcmp(force, "1") != 0)) {
		http_reply_error(c->req, 409, "force", "backend %s has %zu "
		    "assigned users; move them or use force=1", c->arg, users);
		return;
	}
	/* Its users keep it until their sessions are kicked; the answer
	 * comes when the backend is gone. */
	if (users > 0 && !rs->backends[slot]->evacuating &&
	    failover_evacuate(rs, slot, backend_removed, c->req))
		return;
	backend_remove_now(rs, c->req, slot);
}

struct list_ctx {
	json_t		*arr;
	size_t		 rows;		/* rows read, shown or not */
	char		 last[256];	/* raw key of the last row */
};

static int
list_user(const struct store_user *su, void *arg)
{
	struct list_ctx *lc = arg;
	int64_t last = su->last_lookup;
	size_t len = strlen(su->user);
	char hex[2 * sizeof(lc->last) + 1];
	json_t *o;

	/* The store gets lookup times lazily; memory has the exact one,
	 * merged on the loop (users_list_apply): this runs in the lane. */
	o = json_pack("{s:o, s:b, s:s, s:s, s:b, s:I, s:o}",
	    "user", http_json_text(su->user), "assigned", 1,
	    "backend", su->backend, "tag", su->tag ? su->tag : "",
	    "pinned", su->pinned != 0, "since", (json_int_t)su->since,
	    "last_lookup", last ? json_integer(last) : json_null());
	if (o == NULL)
		fatalx("rendering the user list");
	/* A name an older roostd let in without UTF-8: shown with U+FFFD,
	 * and exactly in hex, so that two such rows can be told apart. */
	if (!valid_utf8(su->user, len) && len < sizeof(lc->last)) {
		http_hex(su->user, len, hex);
		json_object_set_new(o, "user_hex", json_string(hex));
	}
	json_array_append_new(lc->arr, o);
	lc->rows++;
	snprintf(lc->last, sizeof(lc->last), "%s", su->user);
	return 0;
}

static int
users_list_read(struct store *st, struct admin *a)
{
	struct list_ctx lc;
	char hex[2 * sizeof(lc.last) + 1];
	json_t *next;

	memset(&lc, 0, sizeof(lc));
	lc.arr = json_array();
	if (st->ops->user_list(st, a->su_backend[0] ? a->su_backend : NULL,
	    a->flag ? a->name : NULL, (size_t)a->limit, list_user, &lc) == -1) {
		json_decref(lc.arr);
		return -1;
	}
	next = json_null();
	if (lc.rows == (size_t)a->limit) {
		http_hex(lc.last, strlen(lc.last), hex);
		next = json_string(hex);
	}
	a->out = json_pack("{s:o, s:o}", "users", lc.arr, "next_cursor", next);
	return 0;
}

static void
users_list_apply(struct admin *a)
{
	json_t *arr = json_object_get(a->out, "users"), *o, *hex;
	const struct umap_entry *e;
	char key[256];
	const char *u;
	size_t i;
	int n;

	json_array_foreach(arr, i, o) {
		/* The exact key: in hex where the name is not UTF-8. */
		if ((hex = json_object_get(o, "user_hex")) != NULL) {
			if ((n = http_unhex(json_string_value(hex), key,
			    sizeof(key))) == -1)
				continue;
		} else {
			u = json_string_value(json_object_get(o, "user"));
			n = snprintf(key, sizeof(key), "%s", u ? u : "");
		}
		e = umap_get(a->rs->users, key, (size_t)n);
		if (e != NULL && (json_int_t)e->last_lookup > json_integer_value(
		    json_object_get(o, "last_lookup")))
			json_object_set_new(o, "last_lookup",
			    json_integer(e->last_lookup));
	}
	admin_reply_out(a);
}

static void
h_users_list(struct call *c)
{
	const char *backend = query(c, "backend");
	const char *cursor = query(c, "cursor");
	struct admin *a;
	char after[256];
	long long limit;
	int n = 0;

	if (query_limit(c, 1000, 10000, &limit) == -1)
		return;
	if (backend != NULL && find_backend_or_404(c, backend, "backend") == -1)
		return;
	/* The cursor is the last key in hex: exact for any stored bytes. */
	if (cursor != NULL && (n = http_unhex(cursor, after,
	    sizeof(after))) == -1) {
		http_reply_error(c->req, 400, "cursor", "invalid cursor (pass "
		    "next_cursor back as it came)");
		return;
	}
	a = admin_new(c, "user list");
	a->limit = limit;
	if (backend != NULL)
		snprintf(a->su_backend, sizeof(a->su_backend), "%s", backend);
	if (cursor != NULL) {
		memcpy(a->name, after, (size_t)n);
		a->name[n] = '\0';
		a->flag = 1;
	}
	/* What lookups placed so far is listed too. */
	a->flush = 1;
	a->read = users_list_read;
	a->apply = users_list_apply;
	admin_give(a);
}

/* Answered from memory, once what lookups placed so far is stored (a
 * placement another controller won is adopted by then). */
static int
user_get_now(struct admin *a)
{
	http_reply_json(a->req, 200, user_json(a->rs, a->name, a->keylen,
	    umap_get(a->rs->users, a->name, a->keylen), a->su_tag));
	return -1;
}

static void
h_user_get(struct call *c)
{
	const char *tag = query(c, "tag");
	struct admin *a;
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	if (tag != NULL && *tag != '\0' && !valid_name(tag)) {
		http_reply_error(c->req, 400, "tag", "invalid tag");
		return;
	}
	a = admin_new(c, "user get");
	memcpy(a->name, key, (size_t)n + 1);
	a->keylen = (size_t)n;
	snprintf(a->su_tag, sizeof(a->su_tag), "%s", tag ? tag : "");
	a->flush = 1;
	a->check = user_get_now;
	admin_give(a);
}

/* The backend of the row a pin did not overwrite. */
static int
pin_lost(const struct store_user *su, void *arg)
{
	snprintf(arg, BACKEND_NAME_MAX + 2, "%s", su->backend[0] != '\0' ?
	    su->backend : "?");
	return 0;
}

/*
 * A user whose placement is still on its way to the store: the admin
 * gate waits for placements at most ADMIN_GATE_MAX_MS (a stream of new
 * users must not hold admin work back for ever), and a write of the row
 * now could cross the placement's (a forget undone by the insert that
 * lands after it).  503 and nothing changed; -1 then.
 */
static int
admin_placing(struct admin *a, const struct umap_entry *e)
{
	if (e == NULL || !(e->flags & UMAP_F_PENDING))
		return 0;
	http_reply_error(a->req, 503, "user", "the placement of %s is not "
	    "stored yet; nothing was changed", a->name);
	return -1;
}

static int
user_pin_check(struct admin *a)
{
	struct roost *rs = a->rs;
	struct umap_entry *e;
	const char *bname = a->su_backend;
	long slot, replica;
	uint32_t now = (uint32_t)now_sec();

	if ((slot = state_backend_find(rs, bname)) == -1) {
		http_reply_error(a->req, 404, "backend", "no backend named %s",
		    bname);
		return -1;
	}
	if (rs->backends[slot]->state == BACKEND_DOWN) {
		http_reply_error(a->req, 409, "backend", "backend %s is down",
		    bname);
		return -1;
	}
	e = umap_get(rs->users, a->name, a->keylen);
	if (admin_placing(a, e) == -1)
		return -1;
	/* A user keeps the pool it was placed in: the proxies of that pool
	 * ask with its tag, and would never be answered with this backend. */
	if (e != NULL && strcmp(state_tag_name(rs, e->tag),
	    rs->backends[slot]->tag) != 0) {
		http_reply_error(a->req, 409, "backend", "backend %s is in pool "
		    "\"%s\"; user %s is in pool \"%s\"", bname,
		    rs->backends[slot]->tag, a->name, state_tag_name(rs, e->tag));
		return -1;
	}
	/* An assigned user changes backend only through a move: its sessions
	 * are kicked before the new backend is handed out.  The answer comes
	 * when the move is over. */
	if (e != NULL && e->backend != slot)
		return admin_move(a, e, slot, "pin", 1);
	if (e != NULL && (e->flags & UMAP_F_MOVING)) {
		http_reply_error(a->req, 409, "user", "user %s is being moved",
		    a->name);
		return -1;
	}
	if (e != NULL)
		state_user_record(rs, e, &a->su);
	else {
		memset(&a->su, 0, sizeof(a->su));
		/* Its replica, chosen with the assignment. */
		replica = repl_pick(rs, a->name, a->keylen,
		    rs->backends[slot]->tag, slot);
		if (replica >= 0) {
			snprintf(a->su_replica, sizeof(a->su_replica), "%s",
			    rs->backends[replica]->name);
			a->su.replica = a->su_replica;
			a->replica = replica;
		}
	}
	/* Copies: the row is written off the loop, where memory may
	 * change meanwhile. */
	if (a->su.replica != NULL && a->su.replica != a->su_replica) {
		snprintf(a->su_replica, sizeof(a->su_replica), "%s",
		    a->su.replica);
		a->su.replica = a->su_replica;
	}
	snprintf(a->su_tag, sizeof(a->su_tag), "%s", rs->backends[slot]->tag);
	a->su.user = a->name;
	a->su.backend = a->su_backend;
	a->su.tag = a->su_tag;
	a->su.pinned = 1;
	a->su.since = (e != NULL && e->backend == slot) ? e->since : now;
	a->su.last_lookup = e != NULL ? e->last_lookup : 0;
	/* Only over the row memory knows: another controller sharing the
	 * store may have placed or moved the user meanwhile. */
	if (e != NULL)
		snprintf(a->expect, sizeof(a->expect), "%s",
		    rs->backends[e->backend]->name);
	admin_detail(a, json_pack("{s:s, s:o}", "backend", bname, "previous",
	    e != NULL ? json_string(a->expect) : json_null()));
	store_lane_hold(a->rs->lane, a->name);
	a->holds = 1;
	return 0;
}

static int
user_pin_write(struct store_tx *tx, struct admin *a)
{
	const char *expect = a->expect[0] != '\0' ? a->expect : NULL;

	if (store_user_place(tx, &a->su, &expect, 1, pin_lost,
	    a->stored) == -1)
		return -1;
	if (a->stored[0] != '\0') {
		a->job.status = 409;
		a->field = "user";
		snprintf(a->job.err, sizeof(a->job.err), "user %s was changed "
		    "by another controller (the store has it on %s); nothing "
		    "was changed", a->name, a->stored);
		return -1;
	}
	return 0;
}

static void
user_pin_apply(struct admin *a)
{
	struct roost *rs = a->rs;
	struct umap_entry *e;
	long slot;
	int created;

	if ((slot = state_backend_find(rs, a->su_backend)) == -1) {
		http_reply_error(a->req, 409, "backend", "backend %s was removed "
		    "meanwhile", a->su_backend);
		return;
	}
	e = umap_put(rs->users, a->name, a->keylen, &created);
	state_user_assign(rs, e, (uint16_t)slot);
	if (created) {
		e->replica = a->replica >= 0 && (size_t)a->replica < rs->nslots &&
		    rs->backends[a->replica] != NULL ? (uint16_t)a->replica :
		    UMAP_NO_BACKEND;
		repl_enqueue(rs, e, REPL_P_LOW, 1, NULL);
	}
	e->tag = state_tag_intern(rs, a->su_tag);
	e->pinned = 1;
	e->since = (uint32_t)a->su.since;
	e->last_lookup = e->touched = (uint32_t)a->su.last_lookup;
	http_reply_json(a->req, 200, user_json(rs, a->name, a->keylen, e, ""));
}

static void
h_user_pin(struct call *c)
{
	struct admin *a;
	const char *key1, *bname = NULL;
	char key[256];
	json_t *body, *v;
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	if ((body = http_body_object(c->req)) == NULL)
		return;
	json_object_foreach(body, key1, v) {
		if (strcmp(key1, "backend") != 0) {
			http_reply_error(c->req, 400, key1, "unknown field");
			goto done;
		}
		if (!json_is_string(v)) {
			http_reply_error(c->req, 400, "backend", "must be a string");
			goto done;
		}
		bname = json_string_value(v);
	}
	if (bname == NULL) {
		http_reply_error(c->req, 400, "backend", "is required");
		goto done;
	}
	if (find_backend_or_404(c, bname, "backend") == -1)
		goto done;
	a = admin_new(c, "user pin");
	memcpy(a->name, key, (size_t)n + 1);
	a->keylen = (size_t)n;
	snprintf(a->su_backend, sizeof(a->su_backend), "%s", bname);
	a->action = "user.pin";
	a->flush = 1;
	a->check = user_pin_check;
	a->write = user_pin_write;
	a->apply = user_pin_apply;
	admin_give(a);
done:
	json_decref(body);
}

static int
user_forget_check(struct admin *a)
{
	struct umap_entry *e;

	if ((e = umap_get(a->rs->users, a->name, a->keylen)) == NULL) {
		http_reply_error(a->req, 404, "user", "user %s has no assignment",
		    a->name);
		return -1;
	}
	if (admin_placing(a, e) == -1)
		return -1;
	if (e->flags & UMAP_F_MOVING) {
		http_reply_error(a->req, 409, "user", "user %s is being moved",
		    a->name);
		return -1;
	}
	store_lane_hold(a->rs->lane, a->name);
	a->holds = 1;
	return 0;
}

static int
user_forget_write(struct store_tx *tx, struct admin *a)
{
	return store_user_delete(tx, a->name) == -1 ? -1 : 0;
}

static void
user_forget_apply(struct admin *a)
{
	struct umap_entry *e = umap_get(a->rs->users, a->name, a->keylen);

	if (e != NULL)
		state_user_forget(a->rs, e);
	http_reply_json(a->req, 200, json_pack("{s:s}", "forgotten", a->name));
}

static void
h_user_forget(struct call *c)
{
	struct admin *a;
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	a = admin_new(c, "user forget");
	memcpy(a->name, key, (size_t)n + 1);
	a->keylen = (size_t)n;
	a->action = "user.forget";
	a->flush = 1;
	a->check = user_forget_check;
	a->write = user_forget_write;
	a->apply = user_forget_apply;
	admin_give(a);
}

struct audit_ctx {
	json_t	*arr;
	size_t	 rows;		/* rows read, shown or not */
	int64_t	 last;
};

static int
audit_entry(const struct store_audit *a, void *arg)
{
	struct audit_ctx *ac = arg;
	json_t *o;

	/* Text an older roostd stored without UTF-8 shows with U+FFFD. */
	o = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)a->id, "at", (json_int_t)a->at,
	    "actor", http_json_text(a->actor), "action",
	    http_json_text(a->action), "subject", http_json_text(a->subject),
	    "detail", http_json_text(a->detail));
	if (o == NULL)
		fatalx("rendering the audit list");
	json_array_append_new(ac->arr, o);
	ac->rows++;
	ac->last = a->id;
	return 0;
}

static int
audit_read(struct store *st, struct admin *a)
{
	struct audit_ctx ac;

	ac.arr = json_array();
	ac.rows = 0;
	ac.last = 0;
	if (st->ops->audit_list(st, a->before, (size_t)a->limit, audit_entry,
	    &ac) == -1) {
		json_decref(ac.arr);
		return -1;
	}
	a->out = json_pack("{s:o, s:o}", "entries", ac.arr, "next_before",
	    ac.rows == (size_t)a->limit && ac.last > 1 ?
	    json_integer(ac.last) : json_null());
	return 0;
}

static void
h_audit(struct call *c)
{
	const char *before_s = query(c, "before");
	struct admin *a;
	long long limit, before = 0;

	if (query_limit(c, 100, 1000, &limit) == -1)
		return;
	if (before_s != NULL && parse_ll(before_s, 1, INT64_MAX, &before) == -1) {
		http_reply_error(c->req, 400, "before", "must be a positive "
		    "integer");
		return;
	}
	a = admin_new(c, "audit list");
	a->limit = limit;
	a->before = before;
	a->read = audit_read;
	a->apply = admin_reply_out;
	admin_give(a);
}

static long
find_proxy_or_404(struct call *c)
{
	long idx = state_proxy_find(c->rs, c->arg);

	if (idx == -1)
		http_reply_error(c->req, 404, "name", "no proxy named %s",
		    valid_name(c->arg) ? c->arg : "(invalid name)");
	return idx;
}

static void
h_proxies_list(struct call *c)
{
	struct roost *rs = c->rs;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < rs->nproxies; i++)
		json_array_append_new(arr, proxy_to_json(rs->proxies[i]));
	http_reply_json(c->req, 200, json_pack("{s:o}", "proxies", arr));
}

static int
proxy_add_check(struct admin *a)
{
	struct roost *rs = a->rs;

	if (state_proxy_find(rs, a->p->name) != -1) {
		http_reply_error(a->req, 409, "name", "proxy %s exists",
		    a->p->name);
		return -1;
	}
	if (rs->nproxies >= ROOST_MAX_PROXIES) {
		http_reply_error(a->req, 409, "name", "at most %d proxies",
		    ROOST_MAX_PROXIES);
		return -1;
	}
	a->p->created = a->p->updated = now_sec();
	admin_detail(a, proxy_to_json(a->p));
	return 0;
}

static int
proxy_add_write(struct store_tx *tx, struct admin *a)
{
	return store_proxy_insert(tx, a->p);
}

static void
proxy_add_apply(struct admin *a)
{
	struct roost *rs = a->rs;
	long idx;

	/* The feed may have brought the row back already. */
	if ((idx = state_proxy_find(rs, a->p->name)) != -1) {
		proxy_free(rs->proxies[idx]);
		rs->proxies[idx] = a->p;
	} else if (rs->nproxies >= ROOST_MAX_PROXIES) {
		http_reply_error(a->req, 503, NULL, "proxy %s is stored, but "
		    "this roostd has no room for it", a->p->name);
		return;
	} else
		state_proxy_insert(rs, a->p);
	http_reply_json(a->req, 201, proxy_to_json(a->p));
	a->p = NULL;
}

static void
h_proxies_add(struct call *c)
{
	struct admin *a = admin_new(c, "proxy add");
	const char *field;
	char err[256];

	a->p = proxy_new("");
	if ((a->body = http_body_object(c->req)) == NULL)
		goto fail;
	if (proxy_apply_json(a->p, a->body, 1, &field, err,
	    sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto fail;
	}
	snprintf(a->name, sizeof(a->name), "%s", a->p->name);
	a->action = "proxy.add";
	a->check = proxy_add_check;
	a->write = proxy_add_write;
	a->apply = proxy_add_apply;
	admin_give(a);
	return;
fail:
	admin_free(a);
}

static void
h_proxy_get(struct call *c)
{
	long idx;

	if ((idx = find_proxy_or_404(c)) == -1)
		return;
	http_reply_json(c->req, 200, proxy_to_json(c->rs->proxies[idx]));
}

/* The proxy the admin work names, or -1 after a 404. */
static long
admin_proxy(struct admin *a)
{
	long idx = state_proxy_find(a->rs, a->name);

	if (idx == -1)
		http_reply_error(a->req, 404, "name", "no proxy named %s",
		    valid_name(a->name) ? a->name : "(invalid name)");
	return idx;
}

static int
proxy_patch_check(struct admin *a)
{
	const char *field;
	char err[256];
	long idx;

	if ((idx = admin_proxy(a)) == -1)
		return -1;
	a->p = proxy_dup(a->rs->proxies[idx]);
	if (proxy_apply_json(a->p, a->body, 0, &field, err,
	    sizeof(err)) == -1) {
		http_reply_error(a->req, 400, field, "%s", err);
		return -1;
	}
	a->p->updated = now_sec();
	admin_detail(a, proxy_to_json(a->p));
	return 0;
}

static int
proxy_patch_write(struct store_tx *tx, struct admin *a)
{
	return store_proxy_update(tx, a->p);
}

static void
proxy_patch_apply(struct admin *a)
{
	struct roost *rs = a->rs;
	long idx;

	if ((idx = admin_proxy(a)) == -1)
		return;
	proxy_free(rs->proxies[idx]);
	rs->proxies[idx] = a->p;
	a->p = NULL;
	http_reply_json(a->req, 200, proxy_to_json(rs->proxies[idx]));
}

static void
h_proxy_patch(struct call *c)
{
	struct admin *a;

	if (find_proxy_or_404(c) == -1)
		return;
	a = admin_new(c, "proxy set");
	if ((a->body = http_body_object(c->req)) == NULL) {
		admin_free(a);
		return;
	}
	a->action = "proxy.set";
	a->check = proxy_patch_check;
	a->write = proxy_patch_write;
	a->apply = proxy_patch_apply;
	admin_give(a);
}

static int
proxy_delete_check(struct admin *a)
{
	return admin_proxy(a) == -1 ? -1 : 0;
}

static int
proxy_delete_write(struct store_tx *tx, struct admin *a)
{
	return store_proxy_delete(tx, a->name);
}

static void
proxy_delete_apply(struct admin *a)
{
	long idx;

	if ((idx = state_proxy_find(a->rs, a->name)) != -1)
		state_proxy_remove(a->rs, idx);
	http_reply_json(a->req, 200, json_pack("{s:s}", "deleted", a->name));
}

static void
h_proxy_delete(struct call *c)
{
	struct admin *a;

	if (find_proxy_or_404(c) == -1)
		return;
	a = admin_new(c, "proxy remove");
	a->action = "proxy.remove";
	a->check = proxy_delete_check;
	a->write = proxy_delete_write;
	a->apply = proxy_delete_apply;
	admin_give(a);
}

struct moves_ctx {
	json_t	*arr;
	size_t	 rows;
	int64_t	 last;
};

static int
moves_entry(const struct store_move *m, void *arg)
{
	struct moves_ctx *mc = arg;
	json_t *o;

	o = json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:b, s:o, s:I, s:I}",
	    "id", (json_int_t)m->id, "user", http_json_text(m->user),
	    "from", m->from, "to", m->to, "reason", m->reason,
	    "state", m->state, "pin", m->pin != 0,
	    "error", http_json_text(m->error),
	    "created", (json_int_t)m->created,
	    "updated", (json_int_t)m->updated);
	if (o == NULL)
		fatalx("rendering the move list");
	json_array_append_new(mc->arr, o);
	mc->rows++;
	mc->last = m->id;
	return 0;
}

/*
 * GET /v1/moves: newest first; state=open lists the moves not over
 * (oldest first, as they run).  The store has each move's last stored
 * step; "waiting" lives in memory only.
 */
static int
moves_read(struct store *st, struct admin *a)
{
	struct moves_ctx mc;

	memset(&mc, 0, sizeof(mc));
	mc.arr = json_array();
	if (st->ops->move_list(st, a->flag == 1, a->before, (size_t)a->limit,
	    moves_entry, &mc) == -1) {
		json_decref(mc.arr);
		return -1;
	}
	a->count = (int64_t)mc.rows;
	a->out = json_pack("{s:o, s:o}", "moves", mc.arr, "next_before",
	    a->flag == 0 && mc.rows == (size_t)a->limit && mc.last > 1 ?
	    json_integer(mc.last) : json_null());
	return 0;
}

static void
moves_list_apply(struct admin *a)
{
	json_object_set_new(a->out, "open",
	    json_integer((json_int_t)move_open_count(a->rs)));
	json_object_set_new(a->out, "jobs", move_jobs_json(a->rs));
	admin_reply_out(a);
}

static void
h_moves_list(struct call *c)
{
	const char *before_s = query(c, "before"), *state = query(c, "state");
	struct admin *a;
	long long limit, before = 0;
	int open;

	if (query_limit(c, 100, 10000, &limit) == -1)
		return;
	if (before_s != NULL && parse_ll(before_s, 1, INT64_MAX, &before) == -1) {
		http_reply_error(c->req, 400, "before", "must be a positive "
		    "integer");
		return;
	}
	if (state != NULL && strcmp(state, "open") != 0 &&
	    strcmp(state, "all") != 0) {
		http_reply_error(c->req, 400, "state", "must be open or all");
		return;
	}
	open = state != NULL && strcmp(state, "open") == 0;
	a = admin_new(c, "move list");
	a->flag = open;
	a->before = open ? 0 : before;
	a->limit = limit;
	a->steps = 1;
	a->read = moves_read;
	a->apply = moves_list_apply;
	admin_give(a);
}

static void
move_get_apply(struct admin *a)
{
	json_t *arr = json_object_get(a->out, "moves"), *m;

	m = json_array_get(arr, 0);
	if (m == NULL || json_integer_value(json_object_get(m, "id")) !=
	    a->before - 1) {
		http_reply_error(a->req, 404, "id", "no move %lld",
		    a->before - 1);
		return;
	}
	http_reply_json(a->req, 200, json_incref(m));
}

static void
h_move_get(struct call *c)
{
	struct admin *a;
	long long id;

	if (parse_ll(c->arg, 1, INT64_MAX - 1, &id) == -1) {
		http_reply_error(c->req, 400, "id", "must be a move id");
		return;
	}
	a = admin_new(c, "move get");
	a->before = id + 1;
	a->limit = 1;
	a->steps = 1;
	a->read = moves_read;
	a->apply = move_get_apply;
	admin_give(a);
}

/* POST /v1/backends/{name}/flush: 202 and the job; every user moves. */
static int
backend_flush_now(struct admin *a)
{
	long slot;

	if ((slot = admin_backend(a)) == -1)
		return -1;
	return admin_job(a, slot, 0, 0, 0);
}

static void
h_backend_flush(struct call *c)
{
	struct admin *a;

	if (find_backend_or_404(c, c->arg, "name") == -1)
		return;
	a = admin_new(c, "backend flush");
	a->flush = 1;
	a->check = backend_flush_now;
	admin_give(a);
}

static int
user_kick_now(struct admin *a)
{
	struct umap_entry *e;

	if ((e = umap_get(a->rs->users, a->name, a->keylen)) == NULL) {
		http_reply_error(a->req, 404, "user", "user %s has no assignment",
		    a->name);
		return -1;
	}
	move_kick_user(a->rs, e, a->req);
	return -1;
}

static void
h_user_kick(struct call *c)
{
	struct admin *a;
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	a = admin_new(c, "user kick");
	memcpy(a->name, key, (size_t)n + 1);
	a->keylen = (size_t)n;
	a->flush = 1;
	a->check = user_kick_now;
	admin_give(a);
}

/* POST /v1/rebalance {"max": N, "rate": R}: 202 and the job. */
static int
rebalance_now(struct admin *a)
{
	return admin_job(a, -1, 0, a->max, a->rate);
}

static void
h_rebalance(struct call *c)
{
	struct admin *a;
	const char *key1;
	long long max = 0, rate = 0;
	json_t *body, *v;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	json_object_foreach(body, key1, v) {
		long long *dst;

		if (strcmp(key1, "max") == 0)
			dst = &max;
		else if (strcmp(key1, "rate") == 0)
			dst = &rate;
		else {
			http_reply_error(c->req, 400, key1, "unknown field");
			goto done;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 100000000) {
			http_reply_error(c->req, 400, key1, "must be an integer "
			    "from 0 (no bound) to 100000000");
			goto done;
		}
		*dst = json_integer_value(v);
	}
	a = admin_new(c, "rebalance");
	a->max = max;
	a->rate = rate;
	a->flush = 1;
	a->check = rebalance_now;
	admin_give(a);
done:
	json_decref(body);
}

/* POST /v1/moves {"user": U, "backend": B}: 202 and the queued move. */
static int
moves_add_now(struct admin *a)
{
	struct roost *rs = a->rs;
	struct umap_entry *e;
	const char *bname = a->su_backend;
	long slot;

	if ((slot = state_backend_find(rs, bname)) == -1) {
		http_reply_error(a->req, 404, "backend", "no backend named %s",
		    bname);
		return -1;
	}
	if ((e = umap_get(rs->users, a->name, a->keylen)) == NULL) {
		http_reply_error(a->req, 404, "user", "user %s has no assignment "
		    "(pin it instead)", a->name);
		return -1;
	}
	if (strcmp(state_tag_name(rs, e->tag), rs->backends[slot]->tag) != 0) {
		http_reply_error(a->req, 409, "backend", "backend %s is in pool "
		    "\"%s\"; user %s is in pool \"%s\"", bname,
		    rs->backends[slot]->tag, a->name, state_tag_name(rs, e->tag));
		return -1;
	}
	return admin_move(a, e, slot, "move", 0);
}

static void
h_moves_add(struct call *c)
{
	struct roost *rs = c->rs;
	struct admin *a;
	const char *user = NULL, *bname = NULL, *key1;
	char key[256];
	json_t *body, *v;
	int n;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	json_object_foreach(body, key1, v) {
		if (strcmp(key1, "user") != 0 && strcmp(key1, "backend") != 0) {
			http_reply_error(c->req, 400, key1, "unknown field");
			goto done;
		}
		if (!json_is_string(v)) {
			http_reply_error(c->req, 400, key1, "must be a string");
			goto done;
		}
		if (strcmp(key1, "user") == 0)
			user = json_string_value(v);
		else
			bname = json_string_value(v);
	}
	if (user == NULL || bname == NULL) {
		http_reply_error(c->req, 400, user == NULL ? "user" : "backend",
		    "is required");
		goto done;
	}
	if (!valid_username(user, strlen(user)) || (n = config_user_key(rs->conf,
	    user, strlen(user), key, sizeof(key))) == -1) {
		http_reply_error(c->req, 400, "user", "must be 1-255 bytes of "
		    "UTF-8 without control characters");
		goto done;
	}
	if (find_backend_or_404(c, bname, "backend") == -1)
		goto done;
	a = admin_new(c, "move add");
	memcpy(a->name, key, (size_t)n + 1);
	a->keylen = (size_t)n;
	snprintf(a->su_backend, sizeof(a->su_backend), "%s", bname);
	a->flush = 1;
	a->check = moves_add_now;
	admin_give(a);
done:
	json_decref(body);
}

/* --- dispatch ------------------------------------------------------------ */

static void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct roost *rs = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri), *q, *seg, *field, *star;
	const char *end;
	int method = evhttp_request_get_command(req), path_known = 0;
	char allow[64] = "";
	struct call c;
	size_t i, plen, slen, j, nparams;

	memset(&c, 0, sizeof(c));
	c.rs = rs;
	c.req = req;
	if (path == NULL)
		path = "/";
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];

		/* A prefix with a star ("/v1/backends/STAR/flush"): one segment at
		 * the star, then the rest of the path as written. */
		star = strchr(r->prefix, '*');
		plen = star != NULL ? (size_t)(star - r->prefix) :
		    strlen(r->prefix);
		slen = 0;
		if (!r->has_arg) {
			if (strcmp(path, r->prefix) != 0)
				continue;
		} else {
			seg = path + plen;
			if (strncmp(path, r->prefix, plen) != 0 || *seg == '\0')
				continue;
			end = strchr(seg, '/');
			if (star == NULL ? end != NULL : (end == NULL || end ==
			    seg || strcmp(end, star + 1) != 0))
				continue;
			slen = star != NULL ? strlen(star + 1) : 0;
		}
		path_known = 1;
		if (r->method != method) {
			for (j = 0; j < sizeof(method_names) /
			    sizeof(method_names[0]); j++)
				if (method_names[j].method == r->method &&
				    strstr(allow, method_names[j].name) == NULL) {
					size_t al = strlen(allow);

					snprintf(allow + al, sizeof(allow) - al,
					    "%s%s", al ? ", " : "",
					    method_names[j].name);
				}
			continue;
		}
		if (r->auth == AUTH_ADMIN &&
		    http_check_bearer(req, rs->conf->admin_token, NULL) == -1)
			return;
		if (r->has_arg) {
			seg = path + plen;
			if ((c.arg = http_decode_segment(seg,
			    strlen(seg) - slen)) == NULL) {
				http_reply_error(req, 400, "path", "bad "
				    "percent-encoding in the path");
				return;
			}
		}
		c.route = r;
		for (nparams = 0; nparams < ROUTE_PARAMS &&
		    r->params[nparams] != NULL; nparams++)
			;
		q = evhttp_uri_get_query(uri);
		if (nparams > 0 && http_query_parse(q ? q : "", r->params, c.qv,
		    nparams, &field) == -1) {
			http_reply_error(req, 400, field, "repeated or badly "
			    "percent-encoded parameter");
			goto done;
		}
		r->fn(&c);
		goto done;
	}
	if (path_known) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", allow);
		http_reply_error(req, 405, NULL, "method not allowed here; "
		    "allowed: %s", allow);
	} else
		http_reply_error(req, 404, NULL, "no such endpoint");
	return;
done:
	http_query_free(c.qv, ROUTE_PARAMS);
	free(c.arg);
}

int
api_start(struct roost *rs)
{
	char host[256];
	const char *listen = rs->conf->listen, *colon;
	long long port;
	size_t hlen;

	/* "host:port" or "[v6]:port"; config.c has checked the form. */
	colon = strrchr(listen, ':');
	if (colon == NULL || parse_ll(colon + 1, 1, 65535, &port) == -1)
		goto bad;
	hlen = (size_t)(colon - listen);
	if (listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
		listen++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, listen, hlen);
	host[hlen] = '\0';

	if ((rs->http = evhttp_new(rs->base)) == NULL)
		return -1;
	evhttp_set_allowed_methods(rs->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(rs->http, HTTP_TRANSPORT_MAX);
	evhttp_set_max_headers_size(rs->http, HTTP_HEADERS_MAX);
	evhttp_set_default_content_type(rs->http, "application/json");
	if (listener_start(rs->http, host, (uint16_t)port, rs->conf,
	    api_dispatch, rs) == -1) {
		log_warn("listen on %s", rs->conf->listen);
		evhttp_free(rs->http);
		rs->http = NULL;
		return -1;
	}
	log_info("listening on %s", rs->conf->listen);
	return 0;
bad:
	log_warnx("listen: bad address %s", rs->conf->listen);
	return -1;
}

void
api_stop(struct roost *rs)
{
	listener_stop();
	if (rs->http != NULL)
		evhttp_free(rs->http);
	rs->http = NULL;
}

/* --- replication ---------------------------------------------------------- */

static void
h_repl_status(struct call *c)
{
	http_reply_json(c->req, 200, repl_status_json(c->rs));
}

/* The user of the path into a (admin_new'd): -1 after a 400. */
static int
admin_user(struct call *c, struct admin *a)
{
	int n;

	if ((n = user_key(c, a->name, sizeof(a->name))) == -1)
		return -1;
	a->keylen = (size_t)n;
	return 0;
}

/* The assigned user that a names, or NULL after a 404. */
static struct umap_entry *
admin_assigned(struct admin *a)
{
	struct umap_entry *e;

	if ((e = umap_get(a->rs->users, a->name, a->keylen)) == NULL ||
	    (e->flags & UMAP_F_PENDING)) {
		http_reply_error(a->req, 404, "user", "user %s has no "
		    "assignment", a->name);
		return NULL;
	}
	return e;
}

static int
assigned_check(struct admin *a)
{
	return admin_assigned(a) == NULL ? -1 : 0;
}

static int
repl_user_read_lane(struct store *st, struct admin *a)
{
	return repl_user_read(st, a->name, &a->row);
}

static void
repl_user_apply(struct admin *a)
{
	struct umap_entry *e;

	if ((e = admin_assigned(a)) == NULL)
		return;
	http_reply_json(a->req, 200, repl_user_json(a->rs, e, &a->row));
}

static void
h_repl_user_get(struct call *c)
{
	struct admin *a = admin_new(c, "replication user");

	if (admin_user(c, a) == -1) {
		admin_free(a);
		return;
	}
	a->flush = 1;
	a->check = assigned_check;
	a->read = repl_user_read_lane;
	a->apply = repl_user_apply;
	admin_give(a);
}

/* {"priority": "high", "full": false}: both optional; -1 after a 400. */
static int
repl_request(struct call *c, json_t *body, int *prio, int *full)
{
	const char *k;
	json_t *v;

	*prio = REPL_P_HIGH;
	*full = 0;
	json_object_foreach(body, k, v) {
		if (strcmp(k, "priority") == 0) {
			if (!json_is_string(v) || (*prio = repl_priority_parse(
			    json_string_value(v))) == -1) {
				http_reply_error(c->req, 400, "priority", "must "
				    "be one of sync, high, low, full");
				return -1;
			}
		} else if (strcmp(k, "full") == 0) {
			if (!json_is_boolean(v)) {
				http_reply_error(c->req, 400, "full", "must be "
				    "true or false");
				return -1;
			}
			*full = json_is_true(v);
		} else {
			http_reply_error(c->req, 400, k, "unknown field");
			return -1;
		}
	}
	if (!c->rs->conf->replication) {
		http_reply_error(c->req, 409, NULL, "replication is off "
		    "(replication = no in roostd.conf)");
		return -1;
	}
	return 0;
}

static int
repl_user_queue_now(struct admin *a)
{
	struct umap_entry *e;

	if ((e = admin_assigned(a)) == NULL)
		return -1;
	repl_enqueue(a->rs, e, a->prio, a->flag, NULL);
	if (e->replica == UMAP_NO_BACKEND) {
		http_reply_error(a->req, 409, "user", "user %s has no replica: "
		    "its pool has no other backend", e->key);
		return -1;
	}
	/* An admin asking means now, not after the user's backoff. */
	repl_now(a->rs, e);
	log_info("admin: replicate %s (%s%s)", e->key,
	    repl_priority_names[a->prio], a->flag ? ", full" : "");
	http_reply_json(a->req, 202, json_pack("{s:s, s:s, s:b}", "user",
	    e->key, "priority", repl_priority_names[a->prio], "full",
	    a->flag));
	return -1;
}

static void
h_repl_user_queue(struct call *c)
{
	struct admin *a;
	json_t *body;
	int prio, full;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	if (repl_request(c, body, &prio, &full) == -1)
		goto done;
	a = admin_new(c, "replicate user");
	if (admin_user(c, a) == -1) {
		admin_free(a);
		goto done;
	}
	a->prio = prio;
	a->flag = full;
	a->flush = 1;
	a->check = repl_user_queue_now;
	admin_give(a);
done:
	json_decref(body);
}

static int
repl_all_now(struct admin *a)
{
	size_t n;

	n = repl_enqueue_all(a->rs, a->prio, a->flag);
	log_info("admin: replicate all: %zu users (%s%s)", n,
	    repl_priority_names[a->prio], a->flag ? ", full" : "");
	http_reply_json(a->req, 202, json_pack("{s:I, s:s, s:b}", "queued",
	    (json_int_t)n, "priority", repl_priority_names[a->prio], "full",
	    a->flag));
	return -1;
}

static void
h_repl_all(struct call *c)
{
	struct admin *a;
	json_t *body;
	int prio, full;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	if (repl_request(c, body, &prio, &full) == -1)
		goto done;
	a = admin_new(c, "replicate all");
	a->prio = prio;
	a->flag = full;
	a->flush = 1;
	a->check = repl_all_now;
	admin_give(a);
done:
	json_decref(body);
}

/* Writes of nothing but their audit record. */
static int
audit_only(struct store_tx *tx, struct admin *a)
{
	(void)tx;
	(void)a;
	return 0;
}

static void
repl_remove_apply(struct admin *a)
{
	struct umap_entry *e = umap_get(a->rs->users, a->name, a->keylen);
	int had = e != NULL && repl_remove(a->rs, e);

	http_reply_json(a->req, 200, json_pack("{s:s, s:b}", "user", a->name,
	    "removed", had));
}

static void
h_repl_user_remove(struct call *c)
{
	struct admin *a = admin_new(c, "replication remove");

	if (admin_user(c, a) == -1) {
		admin_free(a);
		return;
	}
	a->flush = 1;
	a->check = assigned_check;
	a->action = "replication.remove";
	a->write = audit_only;
	a->apply = repl_remove_apply;
	admin_give(a);
}

static void
repl_paused_apply(struct admin *a)
{
	repl_pause(a->rs, a->flag);
	http_reply_json(a->req, 200, repl_status_json(a->rs));
}

static void
repl_set_paused(struct call *c, int paused)
{
	struct admin *a = admin_new(c, paused ? "replication pause" :
	    "replication resume");

	a->name[0] = '\0';
	a->flag = paused;
	a->action = paused ? "replication.pause" : "replication.resume";
	a->write = audit_only;
	a->apply = repl_paused_apply;
	admin_give(a);
}

static void
h_repl_pause(struct call *c)
{
	repl_set_paused(c, 1);
}

static void
h_repl_resume(struct call *c)
{
	repl_set_paused(c, 0);
}

/* POST /v1/backends/{name}/failback: its failed-over users go home. */
static int
failback_now(struct admin *a)
{
	long slot;

	if ((slot = admin_backend(a)) == -1)
		return -1;
	return admin_job(a, slot, 1, 0, 0);
}

static void
h_backend_failback(struct call *c)
{
	struct admin *a;
	long slot;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	if (c->rs->backends[slot]->state != BACKEND_UP ||
	    c->rs->backends[slot]->failed) {
		http_reply_error(c->req, 409, "name", "backend %s does not take "
		    "users now (%s%s)", c->arg,
		    backend_state_name(c->rs->backends[slot]->state),
		    c->rs->backends[slot]->failed ? ", failed" : "");
		return;
	}
	a = admin_new(c, "backend failback");
	a->flush = 1;
	a->check = failback_now;
	admin_give(a);
}

/*
 * POST /v1/backends/{name}/force-failover: let the users of a backend that
 * cannot serve them go to replicas that are not current (an empty or
 * stale mailbox rather than none), until it is healthy again.
 */
static void
force_failover_apply(struct admin *a)
{
	long slot;

	if ((slot = admin_backend(a)) == -1)
		return;
	a->rs->backends[slot]->force_failover = 1;
	log_warnx("backend %s: failovers onto replicas that are not current "
	    "allowed by an admin", a->name);
	backend_reply(a->rs, a->req, 200, slot);
}

static void
h_backend_force_failover(struct call *c)
{
	struct admin *a;
	long slot;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	/* Only for a backend that cannot serve its users now: the override
	 * ends when it is healthy again, and must not wait for a failure
	 * to come days later. */
	if (!c->rs->backends[slot]->failed &&
	    c->rs->backends[slot]->state != BACKEND_DOWN) {
		http_reply_error(c->req, 409, "name", "backend %s serves its "
		    "users; force-failover is for a failed or down backend",
		    c->arg);
		return;
	}
	a = admin_new(c, "backend force-failover");
	a->action = "backend.force_failover";
	a->write = audit_only;
	a->apply = force_failover_apply;
	admin_give(a);
}
