/*
 * api.c: the REST API of roostd.  One table maps (path pattern, method) to a
 * handler and the credentials it needs; everything else (404, 405, 401/403,
 * body caps) is decided here before a handler runs.
 *
 * Every admin change follows the same order: validate completely, write to
 * the store in one transaction together with its audit record, and only
 * after the commit change memory and answer.  A failed commit leaves memory
 * untouched, so the map never runs ahead of the store.
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
	struct store_tx		*tx;		/* tx_begin's, until its end */
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
backend_reply(struct call *c, int status, long slot)
{
	json_t *o = backend_to_json(c->rs->backends[slot]);

	json_object_set_new(o, "users",
	    json_integer((json_int_t)state_backend_users(c->rs, slot)));
	http_reply_json(c->req, status, o);
}

/*
 * A store write failed and nothing was changed: 503 when it may work
 * later, 409 naming the conflict (another change got there first; store
 * errors never hold secrets), else 500.  status: store_http_status() taken
 * before the rollback.
 */
static void
reply_write_failed(struct evhttp_request *req, int status,
    const struct store *st)
{
	if (status == 409)
		http_reply_error(req, 409, NULL, "%s; nothing was changed",
		    store_error(st));
	else
		http_reply_error(req, status, NULL, "%s; nothing was changed",
		    status == 503 ? "store busy" : "store write failed");
}

/* Store transaction with an audit record; returns 0 or replies 500 (503
 * when another process holds the store). */
static int
tx_begin(struct call *c)
{
	struct store *st = c->rs->store;

	/* Another process's write lock: refuse now rather than hold the
	 * loop (and every lookup) until it is gone. */
	if (lookup_flush(c->rs) == -1) {
		http_reply_error(c->req, 503, NULL, "store busy; nothing was "
		    "changed");
		return -1;
	}
	if ((c->tx = store_begin(st, STORE_TX_ADMIN)) == NULL) {
		log_warnx("store: %s", store_error(st));
		if (store_retryable(st))
			http_reply_error(c->req, 503, NULL, "store busy; "
			    "nothing was changed");
		else
			http_reply_error(c->req, 500, NULL,
			    "store unavailable");
		return -1;
	}
	return 0;
}

static int
tx_commit(struct call *c, const char *action, const char *subject,
    json_t *detail)
{
	struct store *st = c->rs->store;
	char *text = NULL;
	int rv = -1;

	if (detail != NULL)
		text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	if (store_audit_add(c->tx, "admin", action, subject,
	    text ? text : "{}") == -1 || store_commit(c->tx) == -1) {
		int status = store_http_status(st);

		log_warnx("store: %s", store_error(st));
		store_rollback(c->tx);
		reply_write_failed(c->req, status, st);
		goto done;
	}
	log_info("admin: %s %s", action, subject);
	rv = 0;
done:
	free(text);
	json_decref(detail);
	return rv;
}

static void
tx_abort(struct call *c)
{
	struct store *st = c->rs->store;
	int status = store_http_status(st);

	log_warnx("store: %s", store_error(st));
	store_rollback(c->tx);
	reply_write_failed(c->req, status, st);
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

static void
h_health(struct call *c)
{
	struct store *st = c->rs->store;

	if (st->ops->ping(st) == -1) {
		http_reply_error(c->req, 503, NULL, "store: %s",
		    store_error(st));
		return;
	}
	http_reply_json(c->req, 200, json_pack("{s:s}", "status", "ok"));
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

	http_reply_json(c->req, 200, json_pack("{s:s, s:s, s:o, s:I, s:I, s:o,"
	    " s:I, s:o, s:o}",
	    "version", ROOST_VERSION, "store", rs->store->ops->name,
	    "store_flight", store_flight_json(rs->store),
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

static void
h_backends_add(struct call *c)
{
	struct roost *rs = c->rs;
	struct backend *b = backend_new("");
	const char *field;
	char err[256];
	json_t *body;
	long slot;

	if ((body = http_body_object(c->req)) == NULL)
		goto done;
	if (backend_apply_json(b, body, 1, &field, err, sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto done;
	}
	if (state_backend_find(rs, b->name) != -1) {
		http_reply_error(c->req, 409, "name", "backend %s exists",
		    b->name);
		goto done;
	}
	if (state_backend_full(rs)) {
		http_reply_error(c->req, 409, "name", "at most %d backends",
		    ROOST_MAX_BACKENDS);
		goto done;
	}
	b->created = b->updated = now_sec();
	if (tx_begin(c) == -1)
		goto done;
	if (store_backend_insert(c->tx, b) == -1) {
		tx_abort(c);
		goto done;
	}
	if (tx_commit(c, "backend.add", b->name, backend_to_json(b)) == -1)
		goto done;
	if ((slot = state_backend_insert(rs, b)) == -1)
		fatalx("backend slots exhausted after the check");
	b = NULL;
	repl_backends_changed(rs);
	backend_reply(c, 201, slot);
done:
	backend_free(b);
	json_decref(body);
}

static void
h_backend_get(struct call *c)
{
	long slot;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	backend_reply(c, 200, slot);
}

static void
h_backend_patch(struct call *c)
{
	struct roost *rs = c->rs;
	struct backend *nb = NULL;
	const char *field;
	char err[256];
	json_t *body = NULL;
	long slot;
	int going_down;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	if ((body = http_body_object(c->req)) == NULL)
		return;
	nb = backend_dup(rs->backends[slot]);
	if (backend_apply_json(nb, body, 0, &field, err, sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto done;
	}
	nb->updated = now_sec();
	if (tx_begin(c) == -1)
		goto done;
	if (store_backend_update(c->tx, nb) == -1) {
		tx_abort(c);
		goto done;
	}
	if (tx_commit(c, "backend.set", nb->name, backend_to_json(nb)) == -1)
		goto done;
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
	nb = NULL;
	/* Down: no new users at once; its users keep it until their
	 * sessions are kicked, then go elsewhere (failover.c). */
	if (going_down && state_backend_users(rs, slot) > 0)
		failover_evacuate(rs, slot, NULL, NULL);
	repl_backend_changed(rs, slot);
	backend_reply(c, 200, slot);
done:
	backend_free(nb);
	json_decref(body);
}

/* The removal itself: store, then memory, then the answer. */
static void
backend_remove_now(struct roost *rs, struct evhttp_request *req, long slot)
{
	struct store *st = rs->store;
	struct store_tx *tx;
	char name[BACKEND_NAME_MAX + 1], *text;
	int64_t released = 0;
	json_t *detail;

	snprintf(name, sizeof(name), "%s", rs->backends[slot]->name);
	lookup_flush(rs);
	if ((tx = store_begin(st, STORE_TX_ADMIN)) == NULL)
		goto fail;
	if (store_backend_delete(tx, name, &released) == -1)
		goto abort;
	detail = json_pack("{s:I}", "users_released", (json_int_t)released);
	text = json_dumps(detail, JSON_COMPACT);
	json_decref(detail);
	if (store_audit_add(tx, "admin", "backend.remove", name,
	    text) == -1 || store_commit(tx) == -1) {
		free(text);
		goto abort;
	}
	free(text);
	log_info("admin: backend.remove %s", name);
	state_backend_remove(rs, slot);
	repl_backends_changed(rs);
	http_reply_json(req, 200, json_pack("{s:s, s:I}", "deleted", name,
	    "users_released", (json_int_t)released));
	return;
abort:
	store_rollback(tx);
fail:
	log_warnx("store: %s", store_error(st));
	reply_write_failed(req, store_http_status(st), st);
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
	lookup_flush(rs);
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
	struct roost	*rs;
	json_t		*arr;
	size_t		 rows;		/* rows read, shown or not */
	char		 last[256];	/* raw key of the last row */
};

static int
list_user(const struct store_user *su, void *arg)
{
	struct list_ctx *lc = arg;
	const struct umap_entry *e;
	int64_t last = su->last_lookup;
	size_t len = strlen(su->user);
	char hex[2 * sizeof(lc->last) + 1];
	json_t *o;

	/* The store gets lookup times lazily; memory has the exact one. */
	e = umap_get(lc->rs->users, su->user, len);
	if (e != NULL && e->last_lookup > last)
		last = e->last_lookup;
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

static void
h_users_list(struct call *c)
{
	struct roost *rs = c->rs;
	struct store *st = rs->store;
	const char *backend = query(c, "backend");
	const char *cursor = query(c, "cursor");
	struct list_ctx lc;
	char after[256], hex[2 * sizeof(lc.last) + 1];
	json_t *next;
	long long limit;

	if (query_limit(c, 1000, 10000, &limit) == -1)
		return;
	if (backend != NULL && find_backend_or_404(c, backend, "backend") == -1)
		return;
	/* The cursor is the last key in hex: exact for any stored bytes. */
	if (cursor != NULL && http_unhex(cursor, after, sizeof(after)) == -1) {
		http_reply_error(c->req, 400, "cursor", "invalid cursor (pass "
		    "next_cursor back as it came)");
		return;
	}
	lookup_flush(rs);
	memset(&lc, 0, sizeof(lc));
	lc.rs = rs;
	lc.arr = json_array();
	if (st->ops->user_list(st, backend, cursor ? after : NULL,
	    (size_t)limit, list_user, &lc) == -1) {
		json_decref(lc.arr);
		log_warnx("store: %s", store_error(st));
		http_reply_error(c->req, 500, NULL, "store read failed");
		return;
	}
	next = json_null();
	if (lc.rows == (size_t)limit) {
		http_hex(lc.last, strlen(lc.last), hex);
		next = json_string(hex);
	}
	http_reply_json(c->req, 200, json_pack("{s:o, s:o}", "users", lc.arr,
	    "next_cursor", next));
}

static void
h_user_get(struct call *c)
{
	const char *tag = query(c, "tag");
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	if (tag != NULL && *tag != '\0' && !valid_name(tag)) {
		http_reply_error(c->req, 400, "tag", "invalid tag");
		return;
	}
	lookup_flush(c->rs);
	http_reply_json(c->req, 200, user_json(c->rs, key, (size_t)n,
	    umap_get(c->rs->users, key, (size_t)n), tag ? tag : ""));
}

/* The backend of the row a pin did not overwrite. */
static int
pin_lost(const struct store_user *su, void *arg)
{
	snprintf(arg, BACKEND_NAME_MAX + 2, "%s", su->backend[0] != '\0' ?
	    su->backend : "?");
	return 0;
}

static void
h_user_pin(struct call *c)
{
	struct roost *rs = c->rs;
	struct store_user su;
	struct umap_entry *e;
	const char *key1, *bname = NULL, *expect;
	char key[256], stored[BACKEND_NAME_MAX + 2] = "";
	json_t *body, *v;
	long slot, replica = -1;
	uint32_t now = (uint32_t)now_sec();
	int n, created;

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
	if ((slot = find_backend_or_404(c, bname, "backend")) == -1)
		goto done;
	if (rs->backends[slot]->state == BACKEND_DOWN) {
		http_reply_error(c->req, 409, "backend", "backend %s is down",
		    bname);
		goto done;
	}
	lookup_flush(rs);
	e = umap_get(rs->users, key, (size_t)n);
	/* A user keeps the pool it was placed in: the proxies of that pool
	 * ask with its tag, and would never be answered with this backend. */
	if (e != NULL && strcmp(state_tag_name(rs, e->tag),
	    rs->backends[slot]->tag) != 0) {
		http_reply_error(c->req, 409, "backend", "backend %s is in pool "
		    "\"%s\"; user %s is in pool \"%s\"", bname,
		    rs->backends[slot]->tag, key, state_tag_name(rs, e->tag));
		goto done;
	}
	/* An assigned user changes backend only through a move: its sessions
	 * are kicked before the new backend is handed out.  The answer comes
	 * when the move is over. */
	if (e != NULL && e->backend != slot) {
		const char *field;
		char err[256];
		int st;

		if (move_submit(rs, e, slot, "pin", 1, c->req, &st, &field, err,
		    sizeof(err)) == NULL)
			http_reply_error(c->req, st, field, "%s", err);
		goto done;
	}
	if (e != NULL && (e->flags & UMAP_F_MOVING)) {
		http_reply_error(c->req, 409, "user", "user %s is being moved",
		    key);
		goto done;
	}
	if (tx_begin(c) == -1)
		goto done;
	e = umap_get(rs->users, key, (size_t)n);
	if (e != NULL)
		state_user_record(rs, e, &su);
	else {
		memset(&su, 0, sizeof(su));
		su.user = key;
		/* Its replica, chosen with the assignment. */
		replica = repl_pick(rs, key, (size_t)n, rs->backends[slot]->tag,
		    slot);
		su.replica = replica >= 0 ? rs->backends[replica]->name : NULL;
	}
	su.backend = rs->backends[slot]->name;
	su.tag = rs->backends[slot]->tag;
	su.pinned = 1;
	su.since = (e != NULL && e->backend == slot) ? e->since : now;
	su.last_lookup = e != NULL ? e->last_lookup : 0;
	/* Only over the row memory knows: another controller sharing the
	 * store may have placed or moved the user meanwhile. */
	expect = e != NULL ? rs->backends[e->backend]->name : NULL;
	if (store_user_place(c->tx, &su, &expect, 1, pin_lost,
	    stored) == -1) {
		tx_abort(c);
		goto done;
	}
	if (stored[0] != '\0') {
		store_rollback(c->tx);
		http_reply_error(c->req, 409, "user", "user %s was changed by "
		    "another controller (the store has it on %s); nothing was "
		    "changed", key, stored);
		goto done;
	}
	if (tx_commit(c, "user.pin", key, json_pack("{s:s, s:o}", "backend",
	    bname, "previous", e != NULL ?
	    json_string(rs->backends[e->backend]->name) : json_null())) == -1)
		goto done;
	e = umap_put(rs->users, key, (size_t)n, &created);
	state_user_assign(rs, e, (uint16_t)slot);
	if (created) {
		e->replica = replica >= 0 ? (uint16_t)replica :
		    UMAP_NO_BACKEND;
		repl_enqueue(rs, e, REPL_P_LOW, 1, NULL);
	}
	e->tag = state_tag_intern(rs, su.tag);
	e->pinned = 1;
	e->since = (uint32_t)su.since;
	e->last_lookup = e->touched = (uint32_t)su.last_lookup;
	http_reply_json(c->req, 200, user_json(rs, key, (size_t)n, e, ""));
done:
	json_decref(body);
}

static void
h_user_forget(struct call *c)
{
	struct roost *rs = c->rs;
	struct umap_entry *e;
	char key[256];
	int n, r;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	lookup_flush(rs);
	if ((e = umap_get(rs->users, key, (size_t)n)) == NULL) {
		http_reply_error(c->req, 404, "user", "user %s has no assignment",
		    key);
		return;
	}
	if (e->flags & UMAP_F_MOVING) {
		http_reply_error(c->req, 409, "user", "user %s is being moved",
		    key);
		return;
	}
	if (tx_begin(c) == -1)
		return;
	if ((r = store_user_delete(c->tx, key)) == -1) {
		tx_abort(c);
		return;
	}
	if (tx_commit(c, "user.forget", key, NULL) == -1)
		return;
	state_user_forget(rs, umap_get(rs->users, key, (size_t)n));
	http_reply_json(c->req, 200, json_pack("{s:s}", "forgotten", key));
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

static void
h_audit(struct call *c)
{
	struct store *st = c->rs->store;
	const char *before_s = query(c, "before");
	struct audit_ctx ac;
	long long limit, before = 0;

	if (query_limit(c, 100, 1000, &limit) == -1)
		return;
	if (before_s != NULL && parse_ll(before_s, 1, INT64_MAX, &before) == -1) {
		http_reply_error(c->req, 400, "before", "must be a positive "
		    "integer");
		return;
	}
	ac.arr = json_array();
	ac.rows = 0;
	ac.last = 0;
	if (st->ops->audit_list(st, before, (size_t)limit, audit_entry,
	    &ac) == -1) {
		json_decref(ac.arr);
		http_reply_error(c->req, 500, NULL, "store read failed");
		return;
	}
	http_reply_json(c->req, 200, json_pack("{s:o, s:o}", "entries", ac.arr,
	    "next_before", ac.rows == (size_t)limit && ac.last > 1 ?
	    json_integer(ac.last) : json_null()));
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

static void
h_proxies_add(struct call *c)
{
	struct roost *rs = c->rs;
	struct proxy *p = proxy_new("");
	const char *field;
	char err[256];
	json_t *body;

	if ((body = http_body_object(c->req)) == NULL)
		goto done;
	if (proxy_apply_json(p, body, 1, &field, err, sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto done;
	}
	if (state_proxy_find(rs, p->name) != -1) {
		http_reply_error(c->req, 409, "name", "proxy %s exists",
		    p->name);
		goto done;
	}
	if (rs->nproxies >= ROOST_MAX_PROXIES) {
		http_reply_error(c->req, 409, "name", "at most %d proxies",
		    ROOST_MAX_PROXIES);
		goto done;
	}
	p->created = p->updated = now_sec();
	if (tx_begin(c) == -1)
		goto done;
	if (store_proxy_insert(c->tx, p) == -1) {
		tx_abort(c);
		goto done;
	}
	if (tx_commit(c, "proxy.add", p->name, proxy_to_json(p)) == -1)
		goto done;
	http_reply_json(c->req, 201, proxy_to_json(p));
	state_proxy_insert(rs, p);
	p = NULL;
done:
	proxy_free(p);
	json_decref(body);
}

static void
h_proxy_get(struct call *c)
{
	long idx;

	if ((idx = find_proxy_or_404(c)) == -1)
		return;
	http_reply_json(c->req, 200, proxy_to_json(c->rs->proxies[idx]));
}

static void
h_proxy_patch(struct call *c)
{
	struct roost *rs = c->rs;
	struct proxy *np = NULL;
	const char *field;
	char err[256];
	json_t *body = NULL;
	long idx;

	if ((idx = find_proxy_or_404(c)) == -1)
		return;
	if ((body = http_body_object(c->req)) == NULL)
		return;
	np = proxy_dup(rs->proxies[idx]);
	if (proxy_apply_json(np, body, 0, &field, err, sizeof(err)) == -1) {
		http_reply_error(c->req, 400, field, "%s", err);
		goto done;
	}
	np->updated = now_sec();
	if (tx_begin(c) == -1)
		goto done;
	if (store_proxy_update(c->tx, np) == -1) {
		tx_abort(c);
		goto done;
	}
	if (tx_commit(c, "proxy.set", np->name, proxy_to_json(np)) == -1)
		goto done;
	proxy_free(rs->proxies[idx]);
	rs->proxies[idx] = np;
	np = NULL;
	http_reply_json(c->req, 200, proxy_to_json(rs->proxies[idx]));
done:
	proxy_free(np);
	json_decref(body);
}

static void
h_proxy_delete(struct call *c)
{
	struct roost *rs = c->rs;
	long idx;

	if ((idx = find_proxy_or_404(c)) == -1)
		return;
	if (tx_begin(c) == -1)
		return;
	if (store_proxy_delete(c->tx, c->arg) == -1) {
		tx_abort(c);
		return;
	}
	if (tx_commit(c, "proxy.remove", c->arg, NULL) == -1)
		return;
	state_proxy_remove(rs, idx);
	http_reply_json(c->req, 200, json_pack("{s:s}", "deleted", c->arg));
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
static void
h_moves_list(struct call *c)
{
	struct store *st = c->rs->store;
	const char *before_s = query(c, "before"), *state = query(c, "state");
	struct moves_ctx mc;
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
	move_steps_land(c->rs);
	memset(&mc, 0, sizeof(mc));
	mc.arr = json_array();
	if (st->ops->move_list(st, open, open ? 0 : before, (size_t)limit,
	    moves_entry, &mc) == -1) {
		json_decref(mc.arr);
		log_warnx("store: %s", store_error(st));
		http_reply_error(c->req, 500, NULL, "store read failed");
		return;
	}
	http_reply_json(c->req, 200, json_pack("{s:o, s:I, s:o, s:o}", "moves",
	    mc.arr, "open", (json_int_t)move_open_count(c->rs),
	    "jobs", move_jobs_json(c->rs), "next_before",
	    !open && mc.rows == (size_t)limit && mc.last > 1 ?
	    json_integer(mc.last) : json_null()));
}

static void
h_move_get(struct call *c)
{
	struct store *st = c->rs->store;
	struct moves_ctx mc;
	long long id;
	json_t *m;

	if (parse_ll(c->arg, 1, INT64_MAX - 1, &id) == -1) {
		http_reply_error(c->req, 400, "id", "must be a move id");
		return;
	}
	move_steps_land(c->rs);
	memset(&mc, 0, sizeof(mc));
	mc.arr = json_array();
	if (st->ops->move_list(st, 0, id + 1, 1, moves_entry, &mc) == -1) {
		json_decref(mc.arr);
		http_reply_error(c->req, 500, NULL, "store read failed");
		return;
	}
	if (mc.rows == 0 || mc.last != id) {
		json_decref(mc.arr);
		http_reply_error(c->req, 404, "id", "no move %lld", id);
		return;
	}
	m = json_incref(json_array_get(mc.arr, 0));
	json_decref(mc.arr);
	http_reply_json(c->req, 200, m);
}

/* POST /v1/backends/{name}/flush: 202 and the job; every user moves. */
static void
h_backend_flush(struct call *c)
{
	struct move_job *j;
	char err[256];
	long slot;
	int st;

	if ((slot = find_backend_or_404(c, c->arg, "name")) == -1)
		return;
	lookup_flush(c->rs);
	if ((j = move_job_start(c->rs, slot, 0, 0, 0, &st, err,
	    sizeof(err))) == NULL) {
		http_reply_error(c->req, st, st == 409 ? "name" : NULL, "%s",
		    err);
		return;
	}
	http_reply_json(c->req, 202, json_pack("{s:o, s:I}", "job",
	    move_job_json(j), "users", (json_int_t)state_backend_users(c->rs,
	    slot)));
}

static void
h_user_kick(struct call *c)
{
	struct umap_entry *e;
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return;
	lookup_flush(c->rs);
	if ((e = umap_get(c->rs->users, key, (size_t)n)) == NULL) {
		http_reply_error(c->req, 404, "user", "user %s has no assignment",
		    key);
		return;
	}
	move_kick_user(c->rs, e, c->req);
}

/* POST /v1/rebalance {"max": N, "rate": R}: 202 and the job. */
static void
h_rebalance(struct call *c)
{
	struct move_job *j;
	const char *key1;
	long long max = 0, rate = 0;
	char err[256];
	json_t *body, *v;
	int st;

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
	lookup_flush(c->rs);
	if ((j = move_job_start(c->rs, -1, 0, max, rate, &st, err,
	    sizeof(err))) == NULL) {
		http_reply_error(c->req, st, NULL, "%s", err);
		goto done;
	}
	http_reply_json(c->req, 202, json_pack("{s:o}", "job",
	    move_job_json(j)));
done:
	json_decref(body);
}

/* POST /v1/moves {"user": U, "backend": B}: 202 and the queued move. */
static void
h_moves_add(struct call *c)
{
	struct roost *rs = c->rs;
	struct umap_entry *e;
	struct move *m;
	const char *user = NULL, *bname = NULL, *key1, *field;
	char key[256], err[256];
	json_t *body, *v;
	long slot;
	int n, st;

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
	if ((slot = find_backend_or_404(c, bname, "backend")) == -1)
		goto done;
	lookup_flush(rs);
	if ((e = umap_get(rs->users, key, (size_t)n)) == NULL) {
		http_reply_error(c->req, 404, "user", "user %s has no assignment "
		    "(pin it instead)", key);
		goto done;
	}
	if (strcmp(state_tag_name(rs, e->tag), rs->backends[slot]->tag) != 0) {
		http_reply_error(c->req, 409, "backend", "backend %s is in pool "
		    "\"%s\"; user %s is in pool \"%s\"", bname,
		    rs->backends[slot]->tag, key, state_tag_name(rs, e->tag));
		goto done;
	}
	if ((m = move_submit(rs, e, slot, "move", 1, NULL, &st, &field, err,
	    sizeof(err))) == NULL) {
		http_reply_error(c->req, st, field, "%s", err);
		goto done;
	}
	http_reply_json(c->req, 202, json_pack("{s:o}", "move", move_json(m)));
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

/* The assigned user of the path, or NULL after a 400 or 404. */
static struct umap_entry *
assigned_user(struct call *c)
{
	struct umap_entry *e;
	char key[256];
	int n;

	if ((n = user_key(c, key, sizeof(key))) == -1)
		return NULL;
	lookup_flush(c->rs);
	if ((e = umap_get(c->rs->users, key, (size_t)n)) == NULL ||
	    (e->flags & UMAP_F_PENDING))
		http_reply_error(c->req, 404, "user", "user %s has no "
		    "assignment", key);
	return e;
}

static void
h_repl_user_get(struct call *c)
{
	struct umap_entry *e;
	json_t *o;

	if ((e = assigned_user(c)) == NULL)
		return;
	if ((o = repl_user_json(c->rs, e)) == NULL) {
		http_reply_error(c->req, store_http_status(c->rs->store), NULL,
		    "the replication record could not be read");
		return;
	}
	http_reply_json(c->req, 200, o);
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

static void
h_repl_user_queue(struct call *c)
{
	struct umap_entry *e;
	json_t *body;
	int prio, full;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	if (repl_request(c, body, &prio, &full) == -1 ||
	    (e = assigned_user(c)) == NULL)
		goto done;
	repl_enqueue(c->rs, e, prio, full, NULL);
	if (e->replica == UMAP_NO_BACKEND) {
		http_reply_error(c->req, 409, "user", "user %s has no replica: "
		    "its pool has no other backend", e->key);
		goto done;
	}
	/* An admin asking means now, not after the user's backoff. */
	repl_now(c->rs, e);
	log_info("admin: replicate %s (%s%s)", e->key,
	    repl_priority_names[prio], full ? ", full" : "");
	http_reply_json(c->req, 202, json_pack("{s:s, s:s, s:b}", "user",
	    e->key, "priority", repl_priority_names[prio], "full", full));
done:
	json_decref(body);
}

static void
h_repl_all(struct call *c)
{
	json_t *body;
	size_t n;
	int prio, full;

	if ((body = http_body_object(c->req)) == NULL)
		return;
	if (repl_request(c, body, &prio, &full) == -1)
		goto done;
	lookup_flush(c->rs);
	n = repl_enqueue_all(c->rs, prio, full);
	log_info("admin: replicate all: %zu users (%s%s)", n,
	    repl_priority_names[prio], full ? ", full" : "");
	http_reply_json(c->req, 202, json_pack("{s:I, s:s, s:b}", "queued",
	    (json_int_t)n, "priority", repl_priority_names[prio], "full",
	    full));
done:
	json_decref(body);
}

static void
h_repl_user_remove(struct call *c)
{
	struct umap_entry *e;
	int had;

	if ((e = assigned_user(c)) == NULL)
		return;
	if (tx_begin(c) == -1 || tx_commit(c, "replication.remove", e->key,
	    NULL) == -1)
		return;
	had = repl_remove(c->rs, e);
	http_reply_json(c->req, 200, json_pack("{s:s, s:b}", "user", e->key,
	    "removed", had));
}

static void
repl_set_paused(struct call *c, int paused)
{
	if (tx_begin(c) == -1 || tx_commit(c, paused ? "replication.pause" :
	    "replication.resume", "", NULL) == -1)
		return;
	repl_pause(c->rs, paused);
	http_reply_json(c->req, 200, repl_status_json(c->rs));
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
static void
h_backend_failback(struct call *c)
{
	struct move_job *j;
	char err[256];
	long slot;
	int st;

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
	lookup_flush(c->rs);
	if ((j = move_job_start(c->rs, slot, 1, 0, 0, &st, err,
	    sizeof(err))) == NULL) {
		http_reply_error(c->req, st, st == 409 ? "name" : NULL, "%s",
		    err);
		return;
	}
	http_reply_json(c->req, 202, json_pack("{s:o}", "job",
	    move_job_json(j)));
}

/*
 * POST /v1/backends/{name}/force-failover: let the users of a backend that
 * cannot serve them go to replicas that are not current (an empty or
 * stale mailbox rather than none), until it is healthy again.
 */
static void
h_backend_force_failover(struct call *c)
{
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
	if (tx_begin(c) == -1)
		return;
	if (tx_commit(c, "backend.force_failover", c->arg, NULL) == -1)
		return;
	c->rs->backends[slot]->force_failover = 1;
	log_warnx("backend %s: failovers onto replicas that are not current "
	    "allowed by an admin", c->arg);
	backend_reply(c, 200, slot);
}
