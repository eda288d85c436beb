/*
 * test_store_pg.c: the store contract of store.h, each case run against
 * both stores: SQLite (a file in a fresh directory) and PostgreSQL (a fresh
 * schema per case in a throw-away cluster that tests/pg/pgtmp starts for
 * this run, or the one ROOST_PG names).  Then the cases only PostgreSQL
 * has: a lost connection, the time bounds, secrets in errors.
 *
 * Without PostgreSQL installed (pgtmp exits 77) the PostgreSQL cases are
 * skipped, saying so; any other failure to start it fails them.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "backend.h"
#include "pgtmp.h"
#include "proxy.h"
#include "repl.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

enum kind { K_SQLITE, K_PG };

struct fixture {
	enum kind	 kind;
	char		 dir[64];
	char		 path[128];
	char		 schema[48];
	char		 url[1024];
};

static int
setup_kind(void **state, enum kind kind)
{
	struct fixture *f;
	char sql[128];

	if (kind == K_PG) {
		pg_up();
		if (pg.state == 77) {
			print_message("skipped: %s\n", pg.why);
			*state = NULL;
			return 0;
		}
		if (pg.state != 1) {
			print_message("PostgreSQL: %s\n", pg.why);
			return -1;
		}
	}
	f = xcalloc(1, sizeof(*f));
	f->kind = kind;
	if (kind == K_SQLITE) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/roost-store-XXXXXX");
		if (mkdtemp(f->dir) == NULL) {
			free(f);
			return -1;
		}
		snprintf(f->path, sizeof(f->path), "%s/roost.db", f->dir);
		snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
	} else {
		snprintf(f->schema, sizeof(f->schema), "t_%ld_%d",
		    (long)getpid(), ++pg.seq);
		snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->schema);
		pg_exec(sql);
		snprintf(f->url, sizeof(f->url), "postgresql:%s "
		    "options='-csearch_path=%s'", pg.conninfo, f->schema);
	}
	*state = f;
	return 0;
}

static int
setup_sqlite(void **state)
{
	return setup_kind(state, K_SQLITE);
}

static int
setup_pg(void **state)
{
	return setup_kind(state, K_PG);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = { "", "-wal", "-shm", "-journal", ".lock" };
	char p[200];
	size_t i;

	if (f == NULL)
		return 0;
	if (f->kind == K_SQLITE) {
		for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
			snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
			unlink(p);
		}
		rmdir(f->dir);
	} else {
		snprintf(p, sizeof(p), "DROP SCHEMA %s CASCADE", f->schema);
		pg_exec(p);
	}
	free(f);
	return 0;
}

/* The case's fixture; none: PostgreSQL is not installed, skip. */
static struct fixture *
fixture(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

static struct store *
open_ok(const struct fixture *f)
{
	struct store *st;
	char err[600];

	st = store_open(f->url, err, sizeof(err));
	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

/* Run SQL straight on the store, behind its back. */
static void
raw_sql(const struct fixture *f, const char *sql)
{
	char *q;
	sqlite3 *db;

	if (f->kind == K_SQLITE) {
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
		return;
	}
	xasprintf(&q, "SET search_path = %s; %s; RESET search_path",
	    f->schema, sql);
	pg_exec(q);
	free(q);
}

static struct backend *
mkbackend(const char *name, const char *tag)
{
	struct backend *b;

	b = backend_new(name);
	snprintf(b->host, sizeof(b->host), "%s.example.com", name);
	snprintf(b->tag, sizeof(b->tag), "%s", tag);
	b->created = 1700000000;
	b->updated = 1700000000;
	return b;
}

static void
add_backend(struct store *st, const char *name)
{
	struct backend *b = mkbackend(name, "");

	if (st->ops->backend_insert(st, b) == -1)
		fail_msg("backend_insert %s: %s", name, store_error(st));
	backend_free(b);
}

static void
put_user(struct store *st, const char *user, const char *backend)
{
	struct store_user u = { user, backend, "", 0, 1700000100, 0, 0, NULL,
	    0, 0 };

	if (st->ops->user_put(st, &u, 1) == -1)
		fail_msg("user_put %s: %s", user, store_error(st));
}

struct bcoll {
	size_t		 n;
	struct backend	*b[16];
};

static int
collect_backend(const struct backend *b, void *arg)
{
	struct bcoll *c = arg;

	if (c->n >= 16)
		return -1;
	c->b[c->n++] = backend_dup(b);
	return 0;
}

static void
bcoll_free(struct bcoll *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		backend_free(c->b[i]);
	c->n = 0;
}

struct ucoll {
	size_t	 n;
	char	 user[64][32];
	char	 backend[64][32];
	char	 tag[64][32];
	char	 replica[64][32];
	int	 has_replica[64];
	int	 pinned[64];
	int	 confirmed[64];
	int	 replica_current[64];
	int	 failed_over[64];
	int64_t	 since[64];
	int64_t	 last_lookup[64];
};

static int
collect_user(const struct store_user *u, void *arg)
{
	struct ucoll *c = arg;

	if (c->n >= 64)
		return -1;
	snprintf(c->user[c->n], 32, "%s", u->user);
	snprintf(c->backend[c->n], 32, "%s", u->backend);
	snprintf(c->tag[c->n], 32, "%s", u->tag);
	snprintf(c->replica[c->n], 32, "%s", u->replica ? u->replica : "");
	c->has_replica[c->n] = u->replica != NULL;
	c->pinned[c->n] = u->pinned;
	c->confirmed[c->n] = u->confirmed;
	c->replica_current[c->n] = u->replica_current;
	c->failed_over[c->n] = u->failed_over;
	c->since[c->n] = u->since;
	c->last_lookup[c->n] = u->last_lookup;
	c->n++;
	return 0;
}

static int
count_user(const struct store_user *u, void *arg)
{
	(void)u;
	(*(size_t *)arg)++;
	return 0;
}

static size_t
user_count(struct store *st)
{
	size_t n = 0;

	if (st->ops->user_load(st, count_user, &n) == -1)
		fail_msg("user_load: %s", store_error(st));
	return n;
}

/* One user's record into c (emptied first); returns user_get's result. */
static int
get_user(struct store *st, const char *user, struct ucoll *c)
{
	memset(c, 0, sizeof(*c));
	return st->ops->user_get(st, user, collect_user, c);
}

/* ---------------------------------------------------------------- cases */

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct bcoll bc = { 0 };
	struct ucoll uc;

	st = open_ok(f);
	assert_int_equal(st->ops->ping(st), 0);
	add_backend(st, "b1");
	put_user(st, "alice", "b1");
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_string_equal(bc.b[0]->name, "b1");
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(uc.since[0], 1700000100);
	bcoll_free(&bc);
	store_free(st);
}

/* A commit survives the process dying on the spot; an open transaction
 * does not. */
static void
test_survives_kill(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct ucoll uc;
	pid_t pid;
	int status;

	st = open_ok(f);
	store_free(st);
	if ((pid = fork()) == 0) {
		char err[600];

		st = store_open(f->url, err, sizeof(err));
		if (st == NULL)
			_exit(1);
		add_backend(st, "b1");
		put_user(st, "alice", "b1");
		st->ops->begin(st, 0);
		put_user(st, "bob", "b1");
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	st = open_ok(f);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(get_user(st, "bob", &uc), 0);
	store_free(st);
}

static void
test_schema_version(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	char err[600];

	st = open_ok(f);
	store_free(st);
	/* Reopening an up-to-date store changes nothing. */
	st = open_ok(f);
	store_free(st);
	/* The stored version is this roostd's: a newer one is refused. */
	raw_sql(f, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"
	    " AND value = '11'");
	st = store_open(f->url, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, "99"));
}

static void
test_foreign_database_refused(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	char err[600];

	raw_sql(f, "CREATE TABLE other (x INTEGER)");
	st = store_open(f->url, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "not a roost database"));
}

static void
test_backend_roundtrip(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct backend *b;
	struct bcoll bc = { 0 };
	int i;

	st = open_ok(f);
	b = mkbackend("b1", "ssd");
	snprintf(b->hostip, sizeof(b->hostip), "127.0.0.11");
	b->weight = 250;
	b->state = BACKEND_DRAIN;
	b->tls = BACKEND_TLS_STARTTLS;
	for (i = 0; i < PROTO_COUNT; i++)
		b->ports[i] = (uint16_t)(10000 + i);
	b->ports[PROTO_SIEVE] = 0;
	b->doveadm_url = xstrdup("http://127.0.0.11:8080/doveadm/v1");
	b->doveadm_key = xstrdup("s3cret-key");
	b->probe_user = xstrdup("probe");
	b->probe_pass = xstrdup("probe-pw");
	b->created = 1700000001;
	b->updated = 1700000002;
	assert_int_equal(st->ops->backend_insert(st, b), 0);
	assert_int_equal(st->ops->backend_insert(st, b), -1);
	assert_non_null(strstr(store_error(st), "already exists"));
	assert_null(strstr(store_error(st), "s3cret-key"));

	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_string_equal(bc.b[0]->host, "b1.example.com");
	assert_string_equal(bc.b[0]->hostip, "127.0.0.11");
	assert_string_equal(bc.b[0]->tag, "ssd");
	assert_int_equal(bc.b[0]->weight, 250);
	assert_int_equal(bc.b[0]->state, BACKEND_DRAIN);
	assert_int_equal(bc.b[0]->tls, BACKEND_TLS_STARTTLS);
	for (i = 0; i < PROTO_COUNT; i++)
		assert_int_equal(bc.b[0]->ports[i], b->ports[i]);
	assert_string_equal(bc.b[0]->doveadm_url, b->doveadm_url);
	assert_string_equal(bc.b[0]->doveadm_key, "s3cret-key");
	assert_string_equal(bc.b[0]->probe_user, "probe");
	assert_string_equal(bc.b[0]->probe_pass, "probe-pw");
	assert_int_equal(bc.b[0]->created, 1700000001);
	assert_int_equal(bc.b[0]->updated, 1700000002);
	bcoll_free(&bc);

	free(b->doveadm_key);
	b->doveadm_key = xstrdup("other-key");
	free(b->doveadm_url);
	b->doveadm_url = NULL;
	free(b->probe_user);
	free(b->probe_pass);
	b->probe_user = b->probe_pass = NULL;
	b->state = BACKEND_UP;
	b->weight = 0;
	b->updated = 1700000003;
	assert_int_equal(st->ops->backend_update(st, b), 0);
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_null(bc.b[0]->doveadm_url);
	assert_null(bc.b[0]->probe_user);
	assert_null(bc.b[0]->probe_pass);
	assert_string_equal(bc.b[0]->doveadm_key, "other-key");
	assert_int_equal(bc.b[0]->state, BACKEND_UP);
	assert_int_equal(bc.b[0]->weight, 0);
	assert_int_equal(bc.b[0]->updated, 1700000003);
	bcoll_free(&bc);

	snprintf(b->name, sizeof(b->name), "nope");
	assert_int_equal(st->ops->backend_update(st, b), -1);
	assert_non_null(strstr(store_error(st), "nope"));
	assert_null(strstr(store_error(st), "other-key"));
	backend_free(b);

	/* Name order (bytes), whatever the insert order. */
	add_backend(st, "c9");
	add_backend(st, "a0");
	add_backend(st, "B2");
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 4);
	assert_string_equal(bc.b[0]->name, "B2");
	assert_string_equal(bc.b[1]->name, "a0");
	assert_string_equal(bc.b[2]->name, "b1");
	assert_string_equal(bc.b[3]->name, "c9");
	bcoll_free(&bc);

	/* A damaged row is refused on load, the password not quoted. */
	raw_sql(f, f->kind == K_SQLITE ?
	    "UPDATE backends SET probe_user = 'u',"
	    " probe_password = 'pw-x' || char(13) WHERE name = 'a0'" :
	    "UPDATE backends SET probe_user = 'u',"
	    " probe_password = 'pw-x' || chr(13) WHERE name = 'a0'");
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), -1);
	assert_non_null(strstr(store_error(st), "probe"));
	assert_null(strstr(store_error(st), "pw-x"));
	bcoll_free(&bc);
	store_free(st);
}

struct pcoll {
	size_t		 n;
	struct proxy	*p[16];
};

static int
collect_proxy(const struct proxy *p, void *arg)
{
	struct pcoll *c = arg;

	if (c->n >= 16)
		return -1;
	c->p[c->n++] = proxy_dup(p);
	return 0;
}

static void
pcoll_free(struct pcoll *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		proxy_free(c->p[i]);
	c->n = 0;
}

static struct proxy *
mkproxy(const char *name, const char *key)
{
	struct proxy *p = proxy_new(name);

	xasprintf(&p->doveadm_url, "http://%s.example.com:8080/doveadm/v1",
	    name);
	p->doveadm_key = xstrdup(key);
	p->created = 1700000001;
	p->updated = 1700000002;
	return p;
}

static void
test_proxy_roundtrip(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct proxy *p;
	struct pcoll pc = { 0 };

	st = open_ok(f);
	p = mkproxy("p2", "proxy-key-2");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	assert_int_equal(st->ops->proxy_insert(st, p), -1);
	assert_non_null(strstr(store_error(st), "already exists"));
	assert_null(strstr(store_error(st), "proxy-key-2"));
	proxy_free(p);
	p = mkproxy("p1", "proxy-key-1");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	proxy_free(p);

	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 2);
	assert_string_equal(pc.p[0]->name, "p1");
	assert_string_equal(pc.p[1]->doveadm_key, "proxy-key-2");
	p = proxy_dup(pc.p[1]);
	pcoll_free(&pc);
	free(p->doveadm_key);
	p->doveadm_key = xstrdup("proxy-key-new");
	p->updated = 1700000009;
	assert_int_equal(st->ops->proxy_update(st, p), 0);
	snprintf(p->name, sizeof(p->name), "nope");
	assert_int_equal(st->ops->proxy_update(st, p), -1);
	assert_non_null(strstr(store_error(st), "nope"));
	proxy_free(p);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_string_equal(pc.p[1]->doveadm_key, "proxy-key-new");
	assert_int_equal(pc.p[1]->updated, 1700000009);
	pcoll_free(&pc);

	assert_int_equal(st->ops->proxy_delete(st, "p1"), 0);
	assert_int_equal(st->ops->proxy_delete(st, "p1"), -1);
	assert_non_null(strstr(store_error(st), "p1"));

	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), 0);
	p = mkproxy("p3", "proxy-key-3");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	proxy_free(p);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 1);
	assert_string_equal(pc.p[0]->name, "p2");
	pcoll_free(&pc);
	store_free(st);
}

static int
stop_at_first(const struct backend *b, void *arg)
{
	(void)b;
	(*(int *)arg)++;
	return -1;
}

static void
test_callback_stops(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	int calls = 0;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->backend_load(st, stop_at_first, &calls), -1);
	assert_int_equal(calls, 1);
	assert_non_null(strstr(store_error(st), "stopped by caller"));
	calls = 0;
	assert_int_equal(st->ops->backend_load(st, stop_at_first, &calls), -1);
	assert_int_equal(calls, 1);
	/* and the store works on */
	put_user(st, "alice", "b1");
	assert_int_equal(user_count(st), 1);
	store_free(st);
}

static void
test_user_unknown_backend(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct store_user u = { "alice", "ghost", "", 0, 1, 0, 0, NULL, 0, 0 };

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->user_put(st, &u, 1), -1);
	assert_non_null(strstr(store_error(st), "ghost"));
	assert_int_equal(st->errclass, STORE_ECONFLICT);
	assert_int_equal(user_count(st), 0);
	store_free(st);
}

static void
test_backend_delete_releases(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct bcoll bc = { 0 };
	struct ucoll uc = { 0 };
	int64_t released = -1;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	put_user(st, "alice", "b1");
	put_user(st, "bob", "b1");
	put_user(st, "carol", "b1");
	put_user(st, "dave", "b2");

	assert_int_equal(st->ops->backend_delete(st, "b1", &released), 0);
	assert_int_equal(released, 3);
	assert_int_equal(st->ops->user_list(st, NULL, NULL, 100, collect_user,
	    &uc), 0);
	assert_int_equal(uc.n, 1);
	assert_string_equal(uc.user[0], "dave");
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	bcoll_free(&bc);

	add_backend(st, "b3");
	assert_int_equal(st->ops->backend_delete(st, "b3", &released), 0);
	assert_int_equal(released, 0);
	assert_int_equal(st->ops->backend_delete(st, "b1", &released), -1);
	assert_non_null(strstr(store_error(st), "b1"));
	assert_int_equal(user_count(st), 1);

	/* Inside the caller's transaction, undone by its rollback. */
	assert_int_equal(st->ops->begin(st, 0), 0);
	assert_int_equal(st->ops->backend_delete(st, "b2", &released), 0);
	assert_int_equal(released, 1);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(user_count(st), 1);
	store_free(st);
}

static void
test_user_put_batch_atomic(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct ucoll uc;
	struct store_user bad[3] = {
		{ "u1", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u2", "ghost", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u3", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
	};
	struct store_user good[3] = {
		{ "u1", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u2", "b2", "gold", 1, 2, 3, 0, "b1", 1, 1 },
		/* the same user twice in a batch: the last one wins */
		{ "u1", "b2", "", 0, 7, 0, 0, NULL, 0, 0 },
	};

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, bad, 3), -1);
	assert_int_equal(user_count(st), 0);
	assert_int_equal(st->ops->user_put(st, good, 3), 0);
	assert_int_equal(user_count(st), 2);
	assert_int_equal(get_user(st, "u1", &uc), 1);
	assert_string_equal(uc.backend[0], "b2");
	assert_int_equal(uc.since[0], 7);
	assert_int_equal(get_user(st, "u2", &uc), 1);
	assert_string_equal(uc.tag[0], "gold");
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(uc.last_lookup[0], 3);
	assert_string_equal(uc.replica[0], "b1");
	assert_int_equal(uc.replica_current[0], 1);
	assert_int_equal(uc.failed_over[0], 1);

	/* Inside begin(): a failed batch (or a failed insert) leaves the
	 * earlier work of the transaction alone and writes none of its own. */
	assert_int_equal(st->ops->begin(st, 0), 0);
	put_user(st, "early", "b1");
	bad[0].user = "u10";
	bad[2].user = "u30";
	assert_int_equal(st->ops->user_put(st, bad, 3), -1);
	assert_int_equal(st->ops->user_put(st, &bad[1], 1), -1);
	{
		struct backend *b = mkbackend("b1", "");

		assert_int_equal(st->ops->backend_insert(st, b), -1);
		backend_free(b);
	}
	put_user(st, "late", "b2");
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(user_count(st), 4);
	assert_int_equal(get_user(st, "early", &uc), 1);
	assert_int_equal(get_user(st, "late", &uc), 1);
	assert_int_equal(get_user(st, "u10", &uc), 0);
	store_free(st);
}

/* A user once confirmed stays confirmed whoever rewrites the row. */
static void
test_user_put_keeps_confirmed(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct ucoll uc;
	struct store_user u = { "alice", "b1", "", 0, 1, 0, 1, NULL, 0, 0 };

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	u.confirmed = 0;
	u.since = 2;
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_int_equal(uc.confirmed[0], 1);
	assert_int_equal(uc.since[0], 2);
	store_free(st);
}

static void
test_user_delete(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;

	st = open_ok(f);
	add_backend(st, "b1");
	put_user(st, "alice", "b1");
	put_user(st, "bob", "b1");
	assert_int_equal(st->ops->user_delete(st, "alice"), 1);
	assert_int_equal(st->ops->user_delete(st, "alice"), 0);
	assert_int_equal(st->ops->user_delete(st, "nobody"), 0);
	assert_int_equal(user_count(st), 1);
	store_free(st);
}

static void
test_user_list_pages(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct ucoll uc;
	char name[32], last[32], expect[32];
	const char *after;
	int i, seen, pages;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	for (i = 24; i >= 0; i--) {
		snprintf(name, sizeof(name), "user%02d", i);
		put_user(st, name, i % 2 == 0 ? "b1" : "b2");
	}
	after = NULL;
	seen = 0;
	for (pages = 0; pages < 10; pages++) {
		memset(&uc, 0, sizeof(uc));
		assert_int_equal(st->ops->user_list(st, NULL, after, 10,
		    collect_user, &uc), 0);
		if (uc.n == 0)
			break;
		for (i = 0; i < (int)uc.n; i++) {
			snprintf(expect, sizeof(expect), "user%02d", seen++);
			assert_string_equal(uc.user[i], expect);
		}
		snprintf(last, sizeof(last), "%s", uc.user[uc.n - 1]);
		after = last;
	}
	assert_int_equal(seen, 25);
	assert_int_equal(pages, 3);

	after = NULL;
	seen = 0;
	for (pages = 0; pages < 10; pages++) {
		memset(&uc, 0, sizeof(uc));
		assert_int_equal(st->ops->user_list(st, "b2", after, 4,
		    collect_user, &uc), 0);
		if (uc.n == 0)
			break;
		for (i = 0; i < (int)uc.n; i++) {
			snprintf(expect, sizeof(expect), "user%02d",
			    2 * seen++ + 1);
			assert_string_equal(uc.user[i], expect);
			assert_string_equal(uc.backend[i], "b2");
		}
		snprintf(last, sizeof(last), "%s", uc.user[uc.n - 1]);
		after = last;
	}
	assert_int_equal(seen, 12);
	assert_int_equal(pages, 3);

	memset(&uc, 0, sizeof(uc));
	assert_int_equal(st->ops->user_list(st, "b1", "user05x", 100,
	    collect_user, &uc), 0);
	assert_int_equal(uc.n, 10);
	assert_string_equal(uc.user[0], "user06");
	memset(&uc, 0, sizeof(uc));
	assert_int_equal(st->ops->user_list(st, "zz", NULL, 100,
	    collect_user, &uc), 0);
	assert_int_equal(uc.n, 0);

	/* Byte order: upper case before lower, as SQLite compares. */
	put_user(st, "Zed", "b1");
	memset(&uc, 0, sizeof(uc));
	assert_int_equal(st->ops->user_list(st, NULL, NULL, 1, collect_user,
	    &uc), 0);
	assert_string_equal(uc.user[0], "Zed");
	store_free(st);
}

static void
test_user_touch(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct ucoll uc;
	struct store_user u = { "alice", "b1", "gold", 1, 500, 0, 0, NULL, 0,
	    0 };
	struct store_user t[3] = {
		{ "alice", NULL, NULL, 0, 0, 1000, 1, NULL, 0, 0 },
		{ "ghost", NULL, NULL, 0, 0, 1000, 0, NULL, 0, 0 },
		{ "bob", NULL, NULL, 0, 0, 2000, 0, NULL, 0, 0 },
	};

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	put_user(st, "bob", "b1");
	assert_int_equal(st->ops->user_touch(st, t, 3), 0);
	assert_int_equal(user_count(st), 2);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_int_equal(uc.last_lookup[0], 1000);
	assert_int_equal(uc.confirmed[0], 1);
	assert_string_equal(uc.tag[0], "gold");
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(uc.since[0], 500);
	assert_int_equal(get_user(st, "bob", &uc), 1);
	assert_int_equal(uc.last_lookup[0], 2000);

	/* Neither goes back. */
	t[0].last_lookup = 900;
	t[0].confirmed = 0;
	assert_int_equal(st->ops->user_touch(st, t, 1), 0);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_int_equal(uc.last_lookup[0], 1000);
	assert_int_equal(uc.confirmed[0], 1);
	store_free(st);
}

struct acoll {
	size_t	 n;
	int64_t	 id[16];
	int64_t	 at[16];
	char	 action[16][32];
	char	 subject[16][32];
	char	 detail[16][64];
};

static int
collect_audit(const struct store_audit *a, void *arg)
{
	struct acoll *c = arg;

	if (c->n >= 16)
		return -1;
	c->id[c->n] = a->id;
	c->at[c->n] = a->at;
	snprintf(c->action[c->n], 32, "%s", a->action);
	snprintf(c->subject[c->n], 32, "%s", a->subject);
	snprintf(c->detail[c->n], 64, "%s", a->detail);
	c->n++;
	return 0;
}

static void
test_audit(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct acoll ac;
	char subject[16];
	int64_t t0, first;
	int i;

	st = open_ok(f);
	t0 = now_sec();
	for (i = 1; i <= 5; i++) {
		snprintf(subject, sizeof(subject), "b%d", i);
		assert_int_equal(st->ops->audit_add(st, "admin", "backend.add",
		    subject, "{\"weight\": 100}"), 0);
	}
	assert_int_equal(st->ops->audit_add(st, "system", "x", NULL, NULL), 0);
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(st->ops->audit_list(st, 0, 3, collect_audit, &ac), 0);
	assert_int_equal(ac.n, 3);
	assert_string_equal(ac.action[0], "x");
	assert_string_equal(ac.subject[0], "");
	assert_string_equal(ac.detail[0], "{}");
	assert_string_equal(ac.subject[1], "b5");
	assert_string_equal(ac.detail[1], "{\"weight\": 100}");
	assert_true(ac.id[0] > ac.id[1] && ac.id[1] > ac.id[2]);
	assert_true(ac.at[0] >= t0 && ac.at[0] <= now_sec());
	first = ac.id[2];
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(st->ops->audit_list(st, first, 10, collect_audit,
	    &ac), 0);
	assert_int_equal(ac.n, 3);
	assert_string_equal(ac.subject[0], "b3");
	assert_string_equal(ac.subject[2], "b1");
	assert_int_equal(st->ops->audit_add(st, NULL, "x", NULL, NULL), -1);
	store_free(st);
}

static void
test_transactions(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	struct bcoll bc = { 0 };
	struct acoll ac = { 0 };

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->begin(st, 0), 0);
	add_backend(st, "b2");
	put_user(st, "alice", "b2");
	assert_int_equal(st->ops->audit_add(st, "admin", "backend.add", "b2",
	    "{}"), 0);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	bcoll_free(&bc);
	assert_int_equal(user_count(st), 0);
	assert_int_equal(st->ops->audit_list(st, 0, 10, collect_audit, &ac), 0);
	assert_int_equal(ac.n, 0);

	assert_int_equal(st->ops->begin(st, 0), 0);
	assert_int_equal(st->ops->begin(st, 0), -1);	/* no nesting */
	put_user(st, "alice", "b1");
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(user_count(st), 1);
	assert_int_equal(st->ops->commit(st), -1);
	assert_int_equal(st->ops->rollback(st), -1);

	/* Left open at close: rolled back, not committed. */
	assert_int_equal(st->ops->begin(st, 0), 0);
	put_user(st, "bob", "b1");
	store_free(st);
	st = open_ok(f);
	assert_int_equal(user_count(st), 1);
	store_free(st);
}

struct rcoll {
	size_t	n;
	char	user[8][32];
	char	state[8][64];
	char	error[8][64];
	int	prio[8];
	int	fails[8];
	int	full[8];
	int64_t	queued[8];
	int64_t	last_ok[8];
	int64_t	last_fast[8];
};

static int
collect_repl(const struct store_repl *r, void *arg)
{
	struct rcoll *c = arg;

	if (c->n < 8) {
		snprintf(c->user[c->n], sizeof(c->user[0]), "%s", r->user);
		snprintf(c->state[c->n], sizeof(c->state[0]), "%s", r->state);
		snprintf(c->error[c->n], sizeof(c->error[0]), "%s", r->error);
		c->prio[c->n] = r->priority;
		c->fails[c->n] = r->fails;
		c->full[c->n] = r->full;
		c->queued[c->n] = r->queued;
		c->last_ok[c->n] = r->last_ok;
		c->last_fast[c->n] = r->last_fast;
	}
	c->n++;
	return 0;
}

static void
test_repl_records(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user u = { "alice", "b1", "", 0, 1, 0, 1, "b2", 1, 1 };
	struct store_repl r;
	struct rcoll c;
	struct ucoll uc;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	put_user(st, "bob", "b1");
	assert_int_equal(get_user(st, "bob", &uc), 1);
	assert_false(uc.has_replica[0]);

	memset(&r, 0, sizeof(r));
	r.user = "alice";
	r.priority = -1;
	r.state = "STATE-1";
	r.last_ok = r.last_fast = 100;
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	/* Queued again: no state given, the stored one stays; the times of
	 * good syncs never go back. */
	memset(&r, 0, sizeof(r));
	r.user = "alice";
	r.priority = REPL_P_HIGH;
	r.queued = 5000;
	r.full = 1;
	r.error = "sync failed";
	r.fails = 2;
	r.last_fast = 50;
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_get(st, "alice", collect_repl, &c), 1);
	assert_string_equal(c.state[0], "STATE-1");
	assert_string_equal(c.error[0], "sync failed");
	assert_int_equal(c.prio[0], REPL_P_HIGH);
	assert_int_equal(c.queued[0], 5000);
	assert_int_equal(c.fails[0], 2);
	assert_int_equal(c.full[0], 1);
	assert_int_equal(c.last_ok[0], 100);
	assert_int_equal(c.last_fast[0], 100);
	assert_int_equal(st->ops->repl_get(st, "bob", collect_repl, &c), 0);

	/* Only users with work load at start; a batch is one unit. */
	{
		struct store_repl two[2];

		memset(two, 0, sizeof(two));
		two[0].user = "bob";
		two[0].priority = -1;
		two[0].state = "S";
		two[1].user = "carol";
		two[1].priority = REPL_P_LOW;
		assert_int_equal(st->ops->repl_put(st, two, 2), 0);
	}
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_load(st, collect_repl, &c), 0);
	assert_int_equal(c.n, 2);

	/* The record goes with the user; the replica with its backend. */
	assert_int_equal(st->ops->user_delete(st, "bob"), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_get(st, "bob", collect_repl, &c), 0);
	assert_int_equal(st->ops->backend_delete(st, "b2", NULL), 0);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_false(uc.has_replica[0]);
	assert_int_equal(uc.replica_current[0], 0);
	assert_int_equal(st->ops->repl_delete(st, "alice"), 1);
	assert_int_equal(st->ops->repl_delete(st, "alice"), 0);
	/* and with a backend's users */
	assert_int_equal(st->ops->backend_delete(st, "b1", NULL), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_load(st, collect_repl, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.user[0], "carol");
	store_free(st);
}

struct mcoll {
	size_t	 n;
	int64_t	 id[16];
	char	 user[16][32];
	char	 state[16][16];
	char	 error[16][64];
	int	 pin[16];
};

static int
collect_move(const struct store_move *m, void *arg)
{
	struct mcoll *c = arg;

	if (c->n >= 16)
		return -1;
	c->id[c->n] = m->id;
	snprintf(c->user[c->n], 32, "%s", m->user);
	snprintf(c->state[c->n], 16, "%s", m->state);
	snprintf(c->error[c->n], 64, "%s", m->error);
	c->pin[c->n] = m->pin;
	c->n++;
	return 0;
}

/* Moves: one open move per user; the switch is a compare-and-set on the
 * backend the user leaves, and ends the move either way. */
static void
test_moves(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_move m1 = { 0, "alice", "b1", "b2", "move", "queued", "",
	    1, 1700000000, 0 };
	struct store_move m2 = { 0, "bob", "b2", "b1", "flush", "queued", "",
	    0, 1700000001, 0 };
	struct store_move dup;
	struct store_user to = { "alice", "b2", "", 1, 1700000500, 0, 0, "b1",
	    0, 0 };
	struct mcoll mc;
	struct ucoll uc;

	add_backend(st, "b1");
	add_backend(st, "b2");
	put_user(st, "alice", "b1");
	put_user(st, "bob", "b1");
	assert_int_equal(st->ops->move_insert(st, &m1), 0);
	assert_true(m1.id > 0);
	dup = m1;
	assert_int_equal(st->ops->move_insert(st, &dup), -1);
	assert_non_null(strstr(store_error(st), "being moved already"));
	assert_int_equal(st->ops->move_insert(st, &m2), 0);
	assert_true(m2.id > m1.id);

	memset(&mc, 0, sizeof(mc));
	assert_int_equal(st->ops->move_list(st, 1, 0, 10, collect_move, &mc),
	    0);
	assert_int_equal(mc.n, 2);
	assert_int_equal(mc.id[0], m1.id);	/* oldest first */
	assert_int_equal(mc.pin[0], 1);
	assert_int_equal(st->ops->move_state(st, m1.id, "kicking", NULL), 0);

	/* alice is on b1: switched, pinned, with the given replica. */
	assert_int_equal(st->ops->move_switch(st, &m1, &to), 1);
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_string_equal(uc.backend[0], "b2");
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(uc.since[0], 1700000500);
	assert_string_equal(uc.replica[0], "b1");
	/* bob is not on b2 (m2's from): nothing written, the move failed. */
	to.user = "bob";
	assert_int_equal(st->ops->move_switch(st, &m2, &to), 0);
	assert_int_equal(get_user(st, "bob", &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(uc.pinned[0], 0);

	memset(&mc, 0, sizeof(mc));
	assert_int_equal(st->ops->move_list(st, 1, 0, 10, collect_move, &mc),
	    0);
	assert_int_equal(mc.n, 0);
	memset(&mc, 0, sizeof(mc));
	assert_int_equal(st->ops->move_list(st, 0, 0, 10, collect_move, &mc),
	    0);
	assert_int_equal(mc.n, 2);
	assert_int_equal(mc.id[0], m2.id);	/* newest first */
	assert_string_equal(mc.state[0], "failed");
	assert_non_null(strstr(mc.error[0], "no longer"));
	assert_string_equal(mc.state[1], "done");
	memset(&mc, 0, sizeof(mc));
	assert_int_equal(st->ops->move_list(st, 0, m2.id, 10, collect_move,
	    &mc), 0);
	assert_int_equal(mc.n, 1);
	assert_int_equal(mc.id[0], m1.id);

	/* Over: a new move of the same user is allowed again. */
	dup.id = 0;
	assert_int_equal(st->ops->move_insert(st, &dup), 0);
	assert_true(dup.id > m2.id);
	store_free(st);
}

struct jcoll {
	size_t	 n;
	int64_t	 id[8];
	int64_t	 made[8];
	char	 kind[8][16];
	char	 backend[8][16];
};

static int
collect_job(const struct store_job *j, void *arg)
{
	struct jcoll *c = arg;

	if (c->n >= 8)
		return -1;
	c->id[c->n] = j->id;
	c->made[c->n] = j->made;
	snprintf(c->kind[c->n], 16, "%s", j->kind);
	snprintf(c->backend[c->n], 16, "%s", j->backend);
	c->n++;
	return 0;
}

static void
test_jobs(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_job j1 = { 0, "flush", "b1", 0, 5, 0, "running", 1, 1 };
	struct store_job j2 = { 0, "rebalance", NULL, 30, 0, 0, "running", 2, 2 };
	struct jcoll jc;

	assert_int_equal(st->ops->job_insert(st, &j1), 0);
	assert_int_equal(st->ops->job_insert(st, &j2), 0);
	assert_true(j2.id > j1.id && j1.id > 0);
	assert_int_equal(st->ops->job_state(st, j1.id, "running", 7), 0);
	assert_int_equal(st->ops->job_state(st, j2.id, "done", 30), 0);
	memset(&jc, 0, sizeof(jc));
	assert_int_equal(st->ops->job_list(st, collect_job, &jc), 0);
	assert_int_equal(jc.n, 1);
	assert_int_equal(jc.id[0], j1.id);
	assert_int_equal(jc.made[0], 7);
	assert_string_equal(jc.kind[0], "flush");
	assert_string_equal(jc.backend[0], "b1");
	store_free(st);
}

struct hcoll {
	size_t	 n;
	char	 backend[8][16];
	char	 state[8][16];
	char	 error[8][32];
	int64_t	 latency[8];
};

static int
collect_health(const struct store_health *h, void *arg)
{
	struct hcoll *c = arg;

	if (c->n >= 8)
		return -1;
	snprintf(c->backend[c->n], 16, "%s", h->backend);
	snprintf(c->state[c->n], 16, "%s", h->state);
	snprintf(c->error[c->n], 32, "%s", h->error);
	c->latency[c->n] = h->latency_ms;
	c->n++;
	return 0;
}

static void
test_health(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_health h = { "b2", "failed", 10, "refused", 0, 11 };
	struct hcoll hc;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->health_put(st, &h), 0);
	h.backend = "b1";
	h.state = "ok";
	h.error = NULL;
	h.latency_ms = 3;
	assert_int_equal(st->ops->health_put(st, &h), 0);
	h.latency_ms = 4;
	assert_int_equal(st->ops->health_put(st, &h), 0);	/* replaces */
	memset(&hc, 0, sizeof(hc));
	assert_int_equal(st->ops->health_load(st, collect_health, &hc), 0);
	assert_int_equal(hc.n, 2);
	assert_string_equal(hc.backend[0], "b1");
	assert_int_equal(hc.latency[0], 4);
	assert_string_equal(hc.error[0], "");
	assert_string_equal(hc.state[1], "failed");
	assert_string_equal(hc.error[1], "refused");
	/* A verdict goes with its backend. */
	assert_int_equal(st->ops->backend_delete(st, "b2", NULL), 0);
	memset(&hc, 0, sizeof(hc));
	assert_int_equal(st->ops->health_load(st, collect_health, &hc), 0);
	assert_int_equal(hc.n, 1);
	store_free(st);
}

/* A million-user store loads at start; here 20,000 in batches. */
static void
test_user_load_many(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user *us;
	char (*names)[32];
	size_t i, n = 20000, batch = 500;

	add_backend(st, "b1");
	us = xcalloc(n, sizeof(*us));
	names = xcalloc(n, sizeof(*names));
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "user%06zu", i);
		us[i].user = names[i];
		us[i].backend = "b1";
		us[i].tag = "";
		us[i].since = (int64_t)i;
	}
	for (i = 0; i < n; i += batch)
		if (st->ops->user_put(st, us + i, batch) == -1)
			fail_msg("user_put: %s", store_error(st));
	assert_int_equal(user_count(st), n);
	free(us);
	free(names);
	store_free(st);
}

/*
 * Another holder of the lock (another process for SQLite, another
 * instance's transaction for PostgreSQL): a write gives up fast, says busy,
 * and goes through once the lock is gone.
 */
static void
test_busy_gives_up_fast(void **state)
{
	struct fixture *f = fixture(state);
	struct store_user us[2] = {
		{ "alice", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "bob", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct store *st;
	sqlite3 *other = NULL;
	PGconn *pc = NULL;
	uint64_t t0, ms;
	char sql[128];

	st = open_ok(f);
	add_backend(st, "b1");
	if (f->kind == K_SQLITE) {
		assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
		assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL,
		    NULL, NULL), SQLITE_OK);
	} else {
		pc = PQconnectdb(pg.conninfo);
		assert_int_equal(PQstatus(pc), CONNECTION_OK);
		snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s.users IN "
		    "EXCLUSIVE MODE", f->schema);
		PQclear(PQexec(pc, sql));
	}
	t0 = now_msec_mono();
	assert_int_equal(st->ops->user_put(st, us, 2), -1);
	ms = now_msec_mono() - t0;
	print_message("user_put gave up after %llu ms: %s\n",
	    (unsigned long long)ms, store_error(st));
	if (ms > 300)
		fail_msg("user_put waited %llu ms for the lock",
		    (unsigned long long)ms);
	assert_int_equal(st->errclass, STORE_ERETRY);
	/* Reads are not blocked by writers. */
	assert_int_equal(st->ops->user_get(st, "alice", collect_user, NULL),
	    0);
	if (other != NULL) {
		sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(other);
	} else {
		PQclear(PQexec(pc, "ROLLBACK"));
		PQfinish(pc);
	}
	assert_int_equal(st->ops->user_put(st, us, 2), 0);
	assert_int_equal(user_count(st), 2);
	store_free(st);
}

/* Another instance's connection to the store, raw SQL behind the store's
 * back (for SQLite another process's handle on the file). */
struct other {
	sqlite3	*db;
	PGconn	*pc;
};

static void
other_open(const struct fixture *f, struct other *o)
{
	char sql[128];

	memset(o, 0, sizeof(*o));
	if (f->kind == K_SQLITE) {
		assert_int_equal(sqlite3_open(f->path, &o->db), SQLITE_OK);
		return;
	}
	o->pc = PQconnectdb(pg.conninfo);
	assert_int_equal(PQstatus(o->pc), CONNECTION_OK);
	snprintf(sql, sizeof(sql), "SET search_path = %s", f->schema);
	PQclear(PQexec(o->pc, sql));
}

static void
other_exec(struct other *o, const char *sql)
{
	PGresult *res;

	if (o->db != NULL) {
		if (sqlite3_exec(o->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(o->db));
		return;
	}
	res = PQexec(o->pc, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(o->pc));
	PQclear(res);
}

static void
other_close(struct other *o)
{
	if (o->db != NULL)
		sqlite3_close(o->db);
	if (o->pc != NULL)
		PQfinish(o->pc);
}

#define OTHER_COLS	"(\"user\", backend, tag, pinned, since, last_lookup," \
			" confirmed, replica, replica_current, failed_over)"

/*
 * Insert-if-absent: new users are written, a user with a row keeps it
 * untouched and the caller gets that row; a user twice in one batch gets
 * its first record's row; a failure writes nothing, and inside begin() a
 * rollback undoes it.  Compare-and-set: a row is overwritten only while on
 * the expected backend, and a user without a row is inserted.
 */
static void
test_user_place(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user stored = { "alice", "b2", "gold", 1, 1700000001, 5,
	    1, "b1", 1, 0 };
	struct store_user recs[3] = {
		{ "alice", "b1", "", 0, 1700000100, 7, 0, NULL, 0, 0 },
		{ "bob", "b1", "", 0, 1700000100, 7, 0, "b2", 0, 0 },
		{ "bob", "b2", "", 0, 1700000200, 8, 0, NULL, 0, 0 },
	};
	struct store_user ghost[2] = {
		{ "carol", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "dave", "nosuch", "", 0, 1, 0, 0, NULL, 0, 0 },
	};
	struct ucoll lost, uc;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, &stored, 1), 0);

	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->user_place(st, recs, NULL, 3, collect_user,
	    &lost), 0);
	assert_int_equal(lost.n, 2);
	assert_string_equal(lost.user[0], "alice");
	assert_string_equal(lost.backend[0], "b2");
	assert_string_equal(lost.tag[0], "gold");
	assert_int_equal(lost.pinned[0], 1);
	assert_int_equal(lost.since[0], 1700000001);
	assert_string_equal(lost.replica[0], "b1");
	assert_int_equal(lost.replica_current[0], 1);
	assert_int_equal(lost.confirmed[0], 1);
	assert_string_equal(lost.user[1], "bob");
	assert_string_equal(lost.backend[1], "b1");
	assert_int_equal(lost.since[1], 1700000100);
	/* alice untouched, bob as first given */
	assert_int_equal(get_user(st, "alice", &uc), 1);
	assert_string_equal(uc.backend[0], "b2");
	assert_int_equal(uc.last_lookup[0], 5);
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(get_user(st, "bob", &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_string_equal(uc.replica[0], "b2");
	assert_int_equal(user_count(st), 2);

	/* A backend the store does not hold: a conflict, nothing written. */
	assert_int_equal(st->ops->user_place(st, ghost, NULL, 2, collect_user,
	    &lost), -1);
	assert_int_equal(st->errclass, STORE_ECONFLICT);
	assert_non_null(strstr(store_error(st), "nosuch"));
	assert_int_equal(get_user(st, "carol", &uc), 0);

	/* Inside the caller's transaction: its rollback undoes it. */
	assert_int_equal(st->ops->begin(st, 0), 0);
	assert_int_equal(st->ops->user_place(st, ghost, NULL, 1, collect_user,
	    &lost), 0);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(get_user(st, "carol", &uc), 0);
	assert_int_equal(user_count(st), 2);

	/* alice is on b2, bob on b1: only bob's row is as expected. */
	{
		const char *expect[3] = { "b1", "b1", "b2" };
		struct store_user cas[3] = {
			{ "alice", "b1", "", 0, 1700000300, 9, 0, NULL, 0, 0 },
			{ "bob", "b2", "", 1, 1700000300, 9, 0, NULL, 0, 0 },
			{ "erin", "b2", "", 0, 1700000300, 9, 0, NULL, 0, 0 },
		};

		memset(&lost, 0, sizeof(lost));
		assert_int_equal(st->ops->user_place(st, cas, expect, 3,
		    collect_user, &lost), 0);
		assert_int_equal(lost.n, 1);
		assert_string_equal(lost.user[0], "alice");
		assert_string_equal(lost.backend[0], "b2");
		assert_int_equal(get_user(st, "alice", &uc), 1);
		assert_string_equal(uc.backend[0], "b2");
		assert_int_equal(uc.since[0], 1700000001);
		assert_int_equal(get_user(st, "bob", &uc), 1);
		assert_string_equal(uc.backend[0], "b2");
		assert_int_equal(uc.pinned[0], 1);
		assert_int_equal(uc.since[0], 1700000300);
		assert_int_equal(uc.has_replica[0], 0);
		assert_int_equal(get_user(st, "erin", &uc), 1);
		assert_string_equal(uc.backend[0], "b2");
	}
	store_free(st);
}

/*
 * Error classes: a duplicate is a conflict (trying again changes nothing);
 * another connection's lock is retryable and writes nothing, and once it
 * is gone the same call works.  An insert-if-absent that meets a row
 * another connection inserted and has not committed yet waits for it
 * (bounded), then adopts what that connection committed.
 */
static void
test_error_classes(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_move m = { 0, "alice", "b1", "b2", "move", "queued", "",
	    0, 1700000000, 0 };
	struct store_user carol = { "carol", "b1", "", 0, 1700000100, 0, 0,
	    NULL, 0, 0 };
	struct store_user alice = { "alice", "b2", "", 0, 1700000100, 0, 0,
	    NULL, 0, 0 };
	struct backend *b = mkbackend("b1", "");
	struct other o;
	struct ucoll lost, uc;
	uint64_t t0;

	add_backend(st, "b1");
	add_backend(st, "b2");
	put_user(st, "alice", "b1");
	assert_int_equal(st->ops->backend_insert(st, b), -1);
	assert_int_equal(st->errclass, STORE_ECONFLICT);
	assert_int_equal(store_http_status(st), 409);
	backend_free(b);
	assert_int_equal(st->ops->move_insert(st, &m), 0);
	assert_int_equal(st->ops->move_insert(st, &m), -1);
	assert_int_equal(st->errclass, STORE_ECONFLICT);

	/* A lock held by another connection: on alice's row (PostgreSQL),
	 * on the whole file (SQLite). */
	other_open(f, &o);
	if (f->kind == K_SQLITE)
		other_exec(&o, "BEGIN IMMEDIATE");
	else
		other_exec(&o, "BEGIN; SELECT 1 FROM users WHERE \"user\" ="
		    " 'alice' FOR UPDATE");
	t0 = now_msec_mono();
	assert_int_equal(st->ops->user_put(st, &alice, 1), -1);
	print_message("locked row: %s after %llu ms\n", store_error(st),
	    (unsigned long long)(now_msec_mono() - t0));
	assert_int_equal(st->errclass, STORE_ERETRY);
	assert_true(store_retryable(st));
	assert_int_equal(store_http_status(st), 503);
	other_exec(&o, "ROLLBACK");
	assert_int_equal(st->ops->user_put(st, &alice, 1), 0);

	/* Another instance placing carol, not committed yet. */
	other_exec(&o, f->kind == K_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
	other_exec(&o, "INSERT INTO users " OTHER_COLS " VALUES ('carol',"
	    " 'b2', '', 0, 1700000050, 0, 0, NULL, 0, 0)");
	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->user_place(st, &carol, NULL, 1, collect_user,
	    &lost), -1);
	assert_int_equal(st->errclass, STORE_ERETRY);
	assert_int_equal(lost.n, 0);
	other_exec(&o, "COMMIT");
	assert_int_equal(st->ops->user_place(st, &carol, NULL, 1, collect_user,
	    &lost), 0);
	assert_int_equal(lost.n, 1);
	assert_string_equal(lost.backend[0], "b2");
	assert_int_equal(get_user(st, "carol", &uc), 1);
	assert_string_equal(uc.backend[0], "b2");
	other_close(&o);
	store_free(st);
}

/* ------------------------------------------------ PostgreSQL only */

/* End the store's server session, as a restart or failover would. */
static void
pg_kill_sessions(void)
{
	pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE application_name = 'roostd' AND pid <> pg_backend_pid()");
}

/* Retry op for up to 5 s (the caller's retry loop); returns its result. */
static int
retry_put(struct store *st, const char *user)
{
	struct store_user u = { user, "b1", "", 0, 1, 0, 0, NULL, 0, 0 };
	int i, rc = -1;

	for (i = 0; i < 100; i++) {
		if ((rc = st->ops->user_put(st, &u, 1)) == 0)
			break;
		if (!store_retryable(st))
			fail_msg("not busy: %s", store_error(st));
		usleep(50000);
	}
	return rc;
}

/*
 * The server ends the session (restart, failover, an admin): the open
 * transaction is lost and commit says so (rollback keeps that error); the
 * next calls are busy until the store has reconnected on its own, never
 * blocking long, and then work; nothing half-done was kept.
 */
static void
test_pg_connection_lost(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	uint64_t t0, ms;
	int rc;

	add_backend(st, "b1");
	assert_int_equal(st->ops->begin(st, 0), 0);
	put_user(st, "alice", "b1");
	pg_kill_sessions();
	assert_int_equal(st->ops->commit(st), -1);
	assert_int_equal(st->errclass, STORE_ERETRY);
	assert_int_equal(st->ops->rollback(st), 0);
	print_message("commit failed: %s\n", store_error(st));
	if (strstr(store_error(st), "commit") == NULL)
		fail_msg("after the rollback the error is \"%s\"",
		    store_error(st));
	assert_null(strstr(store_error(st), "password"));

	t0 = now_msec_mono();
	rc = st->ops->user_put(st, &(struct store_user){ "bob", "b1", "", 0, 1,
	    0, 0, NULL, 0, 0 }, 1);
	ms = now_msec_mono() - t0;
	if (ms > 200)
		fail_msg("a call while reconnecting took %llu ms",
		    (unsigned long long)ms);
	if (rc == -1)
		assert_int_equal(st->errclass, STORE_ERETRY);
	assert_int_equal(retry_put(st, "bob"), 0);
	assert_int_equal(user_count(st), 1);	/* bob; alice was lost */

	/* Without a transaction: the statement fails busy, then works. */
	pg_kill_sessions();
	assert_int_equal(retry_put(st, "carol"), 0);
	assert_int_equal(user_count(st), 2);

	/* A batch (pipelined) meets the lost session: all or nothing. */
	{
		struct store_user three[3] = {
			{ "d1", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
			{ "d2", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
			{ "d3", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		};
		int i;

		usleep(1100 * 1000);	/* past the reconnect interval */
		pg_kill_sessions();
		assert_int_equal(st->ops->user_put(st, three, 3), -1);
		assert_int_equal(st->errclass, STORE_ERETRY);
		for (i = 0; i < 100; i++) {
			if (st->ops->user_put(st, three, 3) == 0)
				break;
			assert_int_equal(st->errclass, STORE_ERETRY);
			usleep(50000);
		}
		assert_true(i < 100);
		assert_int_equal(user_count(st), 5);
	}
	store_free(st);
}

/*
 * Send sig to the server process of each roostd session that also meets
 * cond (SQL, "" for none), asking on connection c; the number signalled,
 * -1 when the query failed.  *first (if given) gets the first one's pid.
 * No cmocka asserts: a test's helper thread calls it too.
 */
static int
signal_sessions(PGconn *c, const char *cond, int sig, long long *first)
{
	PGresult *res;
	char sql[256];
	long long pid;
	int i, n = 0;

	snprintf(sql, sizeof(sql), "SELECT pid FROM pg_stat_activity WHERE"
	    " application_name = 'roostd'%s", cond);
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++)
		if (parse_ll(PQgetvalue(res, i, 0), 1, INT_MAX, &pid) == 0 &&
		    kill((pid_t)pid, sig) == 0) {
			if (n++ == 0 && first != NULL)
				*first = pid;
		}
	PQclear(res);
	return n;
}

static int
pg_signal_sessions(int sig)
{
	int n = signal_sessions(pg.admin, "", sig, NULL);

	if (n == -1)
		fail_msg("session pids: %s", PQerrorMessage(pg.admin));
	return n;
}

/*
 * The server stops answering and closes nothing (its process stopped: a
 * hung server, or a network dropping the replies).  Its statement timeout
 * cannot help, so the store's own bound must: the call gives up busy
 * instead of waiting as long as the server does (an alarm fails the test
 * if it waits 20 s), the connection is dropped, and once the server runs
 * again the store reconnects by itself; the abandoned write is not there.
 */
static void
test_pg_hung_server(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	int rc;

	add_backend(st, "b1");
	assert_int_equal(pg_signal_sessions(SIGSTOP), 1);
	alarm(20);
	rc = st->ops->user_put(st, &(struct store_user){ "bob", "b1", "", 0,
	    1, 0, 0, NULL, 0, 0 }, 1);
	alarm(0);
	pg_signal_sessions(SIGCONT);
	assert_int_equal(rc, -1);
	assert_int_equal(st->errclass, STORE_ERETRY);
	print_message("hung server: %s\n", store_error(st));
	if (strstr(store_error(st), "no answer") == NULL)
		fail_msg("the error says \"%s\"", store_error(st));
	assert_null(strstr(store_error(st), "password"));

	assert_int_equal(retry_put(st, "carol"), 0);
	assert_int_equal(user_count(st), 1);	/* carol; bob was never kept */
	store_free(st);
}

/* Every commit is on stable storage when it returns. */
static void
test_pg_durable(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);

	assert_int_equal(st->ops->durable(st), 1);
	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), 0);
	assert_int_equal(st->ops->durable(st), 1);
	assert_int_equal(st->ops->rollback(st), 0);
	store_free(st);
}

/* Refused opens say why, never with the password; a bad connection gives
 * up within connect_timeout. */
static void
test_pg_open_errors(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	char url[1200], err[600], *pw;
	const char *p;

	/* The password from the harness's string, replaced by a wrong one. */
	snprintf(url, sizeof(url), "%s", f->url);
	if ((pw = strstr(url, "password=")) == NULL)
		skip();
	pw += strlen("password=");
	memset(pw, 'x', strcspn(pw, " "));
	st = store_open(url, err, sizeof(err));
	assert_null(st);
	print_message("wrong password: %s\n", err);
	assert_non_null(strstr(err, "postgresql store"));
	assert_null(strstr(err, "xxxxxxxx"));
	p = strstr(f->url, "password=") + strlen("password=");
	snprintf(url, sizeof(url), "%.*s", (int)strcspn(p, " "), p);
	assert_null(strstr(err, url));

	/* A search_path naming no schema. */
	snprintf(url, sizeof(url), "postgresql:%s "
	    "options='-csearch_path=nosuchschema'", pg.conninfo);
	st = store_open(url, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "schema"));

	st = store_open("postgresql:", err, sizeof(err));
	assert_null(st);
}

/* Several instances opening one fresh schema at once migrate it once. */
static void
test_pg_concurrent_open(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	pid_t pids[4];
	int i, status, ok = 0;

	for (i = 0; i < 4; i++) {
		if ((pids[i] = fork()) == 0) {
			char err[600];

			st = store_open(f->url, err, sizeof(err));
			if (st == NULL) {
				fprintf(stderr, "open: %s\n", err);
				_exit(1);
			}
			store_free(st);
			_exit(0);
		}
		assert_true(pids[i] > 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	assert_int_equal(ok, 4);
	st = open_ok(f);
	add_backend(st, "b1");
	store_free(st);
}

/* One role, through the batched claim: 1 held, 0 another's, -1. */
static int
claim(struct store *st, const char *role)
{
	int got = 0;

	if (st->ops->role_claim(st, &role, 1, &got) == -1)
		return -1;
	return got;
}

/* Claim a role for up to 3 s (a dead holder's session takes a moment
 * to end); 1 once held, else what the last claim said. */
static int
claim_within(struct store *st, const char *role, uint64_t *ms)
{
	uint64_t t0 = now_msec_mono();
	int rc;

	while ((rc = claim(st, role)) == 0 &&
	    now_msec_mono() - t0 < 3000)
		usleep(20 * 1000);
	if (ms != NULL)
		*ms = now_msec_mono() - t0;
	return rc;
}

/*
 * Several roostd share a store: each opens it, and a role is held by one
 * session at a time.  A claim by the holder is 1 again (and does not
 * stack: one release frees it); the others get 0 until it is released,
 * or until the holder's session ends (a roostd that exits, or is killed).
 */
static void
test_pg_roles(void **state)
{
	struct fixture *f = fixture(state);
	struct store *a, *b, *c;
	uint64_t ms;

	a = open_ok(f);
	b = open_ok(f);		/* no longer refused */
	add_backend(a, "b1");
	assert_int_equal(claim(a, "moves"), 1);
	assert_int_equal(claim(b, "moves"), 0);
	assert_int_equal(claim(a, "moves"), 1);
	assert_int_equal(a->ops->role_held(a, "moves"), 1);
	assert_int_equal(b->ops->role_held(b, "moves"), 0);
	/* Roles are independent of each other. */
	assert_int_equal(claim(b, "health:b1"), 1);
	assert_int_equal(claim(a, "health:b1"), 0);
	/* Claimed twice, released once: free. */
	assert_int_equal(a->ops->role_release(a, "moves"), 0);
	assert_int_equal(a->ops->role_held(a, "moves"), 0);
	assert_int_equal(claim(b, "moves"), 1);
	assert_int_equal(claim(a, "moves"), 0);
	/* The holder goes: its roles are free for the other. */
	store_free(b);
	assert_int_equal(claim_within(a, "moves", &ms), 1);
	print_message("role taken %llu ms after its holder closed\n",
	    (unsigned long long)ms);
	assert_int_equal(claim_within(a, "health:b1", NULL), 1);
	/* A third instance: every role has its holder. */
	c = open_ok(f);
	assert_int_equal(claim(a, "repl"), 1);
	assert_int_equal(claim(c, "repl"), 0);
	assert_int_equal(claim(c, "moves"), 0);
	assert_int_equal(claim(c, "health:b1"), 0);
	/* A round asks for many at once: each answered in its place, the
	 * free ones taken, the held ones left. */
	{
		const char *round[] = { "moves", "health:b2", "repl",
		    "health:b3", "health:b1" };
		const char *bad[] = { "health:b4\nmoves" };
		int got[5] = { 7, 7, 7, 7, 7 };

		assert_int_equal(c->ops->role_claim(c, round, 5, got), 0);
		assert_int_equal(got[0], 0);
		assert_int_equal(got[1], 1);
		assert_int_equal(got[2], 0);
		assert_int_equal(got[3], 1);
		assert_int_equal(got[4], 0);
		assert_int_equal(c->ops->role_held(c, "health:b2"), 1);
		assert_int_equal(c->ops->role_held(c, "repl"), 0);
		assert_int_equal(claim(a, "health:b3"), 0);
		/* Held ones are not asked again (no stacked lock). */
		assert_int_equal(c->ops->role_claim(c, round, 5, got), 0);
		assert_int_equal(got[1] + got[3], 2);
		assert_int_equal(c->ops->role_release(c, "health:b2"), 0);
		assert_int_equal(claim(a, "health:b2"), 1);
		assert_int_equal(c->ops->role_claim(c, bad, 1, got), -1);
	}
	store_free(c);
	store_free(a);
}

/*
 * The holder's session ends under it (the server restarts, an admin ends
 * it, a network cut): another instance takes the role, and the old
 * holder's store says at once that it holds nothing.  Its next call
 * reconnects and fails busy, so that no write it meant as the holder lands
 * in the new session; then it may claim again, and gets 0.
 */
static void
test_pg_roles_lost_with_session(void **state)
{
	struct fixture *f = fixture(state);
	struct store *a, *b;
	uint64_t ms;
	int i, rc = -1;

	a = open_ok(f);
	add_backend(a, "b1");
	assert_int_equal(claim(a, "moves"), 1);
	assert_int_equal(claim(a, "repl"), 1);
	/* b is opened after the kill: only a's session ends. */
	pg_kill_sessions();
	b = open_ok(f);
	assert_int_equal(claim_within(b, "moves", &ms), 1);
	print_message("role taken %llu ms after the holder's session ended\n",
	    (unsigned long long)ms);
	/* a learns of it on its next call, then fails the call that
	 * reconnects (busy), then works, holding nothing. */
	rc = a->ops->user_put(a, &(struct store_user){ "x", "b1", "", 0, 1,
	    0, 0, NULL, 0, 0 }, 1);
	assert_int_equal(rc, -1);
	assert_true(store_retryable(a));
	assert_int_equal(a->ops->role_held(a, "moves"), 0);
	assert_int_equal(a->ops->role_held(a, "repl"), 0);
	for (i = 0; i < 100 && (rc = claim(a, "moves")) == -1;
	    i++) {
		assert_true(store_retryable(a));
		usleep(50 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(claim(a, "repl"), 1);
	assert_int_equal(claim(b, "repl"), 0);
	store_free(a);
	store_free(b);
}

/*
 * roostd -C copies a store only when no roostd has it open: exclusive()
 * fails, naming why, while one does; once it is taken, a roostd's open
 * fails until the copy is done.
 */
static void
test_pg_copy_alone(void **state)
{
	struct fixture *f = fixture(state);
	struct store *a, *copy, *late;
	char err[600];
	uint64_t t0;
	int rc;

	a = open_ok(f);
	copy = open_ok(f);
	assert_int_equal(copy->ops->exclusive(copy), -1);
	assert_non_null(strstr(store_error(copy), "in use by a roostd"));
	store_free(a);
	/* Its session ends a moment after it closed. */
	t0 = now_msec_mono();
	while ((rc = copy->ops->exclusive(copy)) == -1 &&
	    now_msec_mono() - t0 < 3000)
		usleep(20 * 1000);
	assert_int_equal(rc, 0);
	late = store_open(f->url, err, sizeof(err));
	assert_null(late);
	assert_non_null(strstr(err, "in use by a copy"));
	store_free(copy);
	a = open_ok(f);
	store_free(a);
}

/* A store of one roostd has no roles to claim: every one is its own. */
static void
test_sqlite_roles(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);

	assert_null(st->ops->role_claim);
	assert_null(st->ops->role_held);
	store_free(st);
}

/* The change feed's rows after `after`, as "kind:key" lines. */
struct ccoll {
	size_t	 n;
	int64_t	 last;
	char	 line[64][80];
	char	 origin[64][48];
};

static int
collect_change(const struct store_change *c, void *arg)
{
	struct ccoll *cc = arg;

	if (cc->n >= 64)
		return -1;
	assert_true(c->seq > cc->last);		/* oldest first */
	assert_true(c->at > 0);
	cc->last = c->seq;
	snprintf(cc->line[cc->n], sizeof(cc->line[0]), "%s:%s", c->kind,
	    c->key);
	snprintf(cc->origin[cc->n], sizeof(cc->origin[0]), "%s", c->origin);
	cc->n++;
	return 0;
}

static void
changes_after(struct store *st, int64_t after, struct ccoll *cc,
    int64_t *pruned)
{
	memset(cc, 0, sizeof(*cc));
	cc->last = after;
	if (st->ops->change_list(st, after, 64, pruned, collect_change,
	    cc) == -1)
		fail_msg("change_list: %s", store_error(st));
}

/* What a change list holds, in order, joined by spaces. */
static void
assert_changes(const struct ccoll *cc, const char *want)
{
	char got[2048];
	size_t i, len = 0;

	got[0] = '\0';
	for (i = 0; i < cc->n; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s",
		    i > 0 ? " " : "", cc->line[i]);
	assert_string_equal(got, want);
}

static int
found_backend(const struct backend *b, void *arg)
{
	(void)b;
	(*(int *)arg)++;
	return 0;
}

static int
found_proxy(const struct proxy *p, void *arg)
{
	(void)p;
	(*(int *)arg)++;
	return 0;
}

static int
found_health(const struct store_health *h, void *arg)
{
	(void)h;
	(*(int *)arg)++;
	return 0;
}

/*
 * A conflicting row that is gone by the time it is read back (here a
 * deferred trigger of the same commit deletes it): the committed writes
 * stand, and that user is reported with backend "" (ask again) instead
 * of a row the store no longer holds.
 */
static void
test_pg_place_row_gone(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user y = { "y", "b2", "", 0, 1700000001, 0, 0, NULL, 0,
	    0 };
	struct store_user recs[2] = {
		{ "x", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "y", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	const char *expect[2] = { NULL, "b1" };	/* y is on b2: no write */
	struct ucoll lost, uc;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, &y, 1), 0);
	raw_sql(f, "CREATE FUNCTION drop_y() RETURNS trigger LANGUAGE plpgsql"
	    " AS $$ BEGIN DELETE FROM users WHERE \"user\" = 'y';"
	    " RETURN NULL; END $$");
	raw_sql(f, "CREATE CONSTRAINT TRIGGER drop_y AFTER INSERT ON users"
	    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
	    " WHEN (NEW.\"user\" = 'x') EXECUTE FUNCTION drop_y()");

	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->user_place(st, recs, expect, 2,
	    collect_user, &lost), 0);
	assert_int_equal(lost.n, 1);
	assert_string_equal(lost.user[0], "y");
	assert_string_equal(lost.backend[0], "");
	assert_int_equal(get_user(st, "x", &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(get_user(st, "y", &uc), 0);
	store_free(st);
}

static void
count_ready(void *arg)
{
	(*(int *)arg)++;
}

/* place_poll until done, waiting on place_fd; returns *rc. */
static int
place_wait(struct store *st, struct ucoll *uc)
{
	struct pollfd pfd;
	int rc, i;

	for (i = 0; i < 500; i++) {
		if (st->ops->place_poll(st, collect_user, uc, &rc) == 1)
			return rc;
		pfd.fd = st->ops->place_fd(st);
		pfd.events = POLLIN;
		poll(&pfd, 1, 10);
	}
	fail_msg("place_poll never said done");
	return -1;
}

/*
 * user_place without waiting: place_send returns at once, the answer is
 * read when it comes, with the same outcome as user_place (the new rows
 * written, the row another writer holds reported); one at a time; another
 * call meanwhile reads the answer first and place_poll still reports it;
 * a failed batch (an unknown backend) is a conflict that wrote nothing.
 */
static void
test_pg_place_send(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user other = { "held", "b2", "", 0, 1700000001, 0, 0,
	    NULL, 0, 0 };
	struct store_user recs[3] = {
		{ "n1", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "held", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "n2", "b2", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct store_user bad[2] = {
		{ "n3", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "n4", "nosuch", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct ucoll lost, uc;
	int ready = 0;

	assert_non_null(st->ops->place_send);
	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, &other, 1), 0);

	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->place_send(st, recs, NULL, 3, NULL, NULL), 0);
	assert_int_equal(st->ops->place_send(st, recs, NULL, 3, NULL, NULL), -1);
	assert_int_equal(place_wait(st, &lost), 0);
	assert_int_equal(lost.n, 1);
	assert_string_equal(lost.user[0], "held");
	assert_string_equal(lost.backend[0], "b2");
	assert_int_equal(user_count(st), 3);

	/* Another call first: it reads the answer and says so (the
	 * descriptor may not), place_poll reports it. */
	recs[0].user = "n5";
	recs[2].user = "n6";
	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->place_send(st, recs, NULL, 3, count_ready,
	    &ready), 0);
	assert_int_equal(ready, 0);
	assert_int_equal(get_user(st, "n5", &uc), 1);
	assert_int_equal(ready, 1);
	assert_int_equal(place_wait(st, &lost), 0);
	assert_int_equal(lost.n, 1);
	assert_string_equal(lost.backend[0], "b2");
	assert_int_equal(user_count(st), 5);

	/* All or nothing. */
	memset(&lost, 0, sizeof(lost));
	assert_int_equal(st->ops->place_send(st, bad, NULL, 2, NULL, NULL), 0);
	assert_int_equal(place_wait(st, &lost), -1);
	assert_int_equal(st->errclass, STORE_ECONFLICT);
	assert_non_null(strstr(store_error(st), "nosuch"));
	assert_int_equal(get_user(st, "n3", &uc), 0);
	assert_int_equal(user_count(st), 5);
	store_free(st);
}

/* What a sent commit's done said. */
struct sent {
	int	 calls;
	int	 rc;
	char	 err[256];
	struct store *st;
};

static void
sent_done(void *arg, int rc)
{
	struct sent *sd = arg;

	sd->calls++;
	sd->rc = rc;
	snprintf(sd->err, sizeof(sd->err), "%s", store_error(sd->st));
}

/* Run the loop until done came (bounded: the store's own deadline ends
 * every flight within seconds). */
static void
sent_wait(struct event_base *base, struct sent *sd)
{
	int i;

	for (i = 0; i < 400 && sd->calls == 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(sd->calls, 1);
}

/*
 * A role claim without waiting (store_role_claim_send): done tells how it
 * ended, with got[] as role_claim fills it (the free roles taken, the held
 * ones refused, those this session holds not asked again); a second flight
 * meanwhile is refused as busy; another call during the flight reads the
 * answer first, and done still comes; a name with a newline fails.
 */
static void
test_pg_claim_send(void **state)
{
	struct fixture *f = fixture(state);
	struct store *a = open_ok(f), *b = open_ok(f);
	struct event_base *base = event_base_new();
	const char *round[] = { "moves", "repl", "health:b1" };
	const char *bad[] = { "health:b2\nrepl" };
	int got[3] = { 7, 7, 7 }, again[3] = { 7, 7, 7 };
	struct sent sd = { 0 }, sd2 = { 0 };

	assert_non_null(base);
	assert_non_null(a->ops->claim_send);
	assert_int_equal(claim(b, "repl"), 1);
	sd.st = a;
	assert_int_equal(store_role_claim_send(a, base, round, 3, got,
	    sent_done, &sd), 0);
	assert_int_equal(store_flying(a), 1);
	sd2.st = a;
	assert_int_equal(store_role_claim_send(a, base, round, 3, again,
	    sent_done, &sd2), -1);
	assert_int_equal(a->errclass, STORE_ERETRY);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(got[0], 1);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[2], 1);
	assert_int_equal(a->ops->role_held(a, "moves"), 1);
	assert_int_equal(a->ops->role_held(a, "repl"), 0);
	assert_int_equal(claim(b, "moves"), 0);
	assert_int_equal(store_flying(a), 0);

	/* Held ones are not asked again: answered without a round trip. */
	memset(&sd, 0, sizeof(sd));
	sd.st = a;
	assert_int_equal(store_role_claim_send(a, base, round, 2, again,
	    sent_done, &sd), 0);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(again[0], 1);
	assert_int_equal(again[1], 0);

	/* Another call first: it reads the answer; done comes all the same. */
	assert_int_equal(b->ops->role_release(b, "repl"), 0);
	memset(&sd, 0, sizeof(sd));
	sd.st = a;
	assert_int_equal(store_role_claim_send(a, base, round, 3, got,
	    sent_done, &sd), 0);
	assert_int_equal(user_count(a), 0);
	assert_int_equal(a->ops->role_held(a, "repl"), 1);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(got[1], 1);
	assert_int_equal(claim(b, "repl"), 0);

	memset(&sd, 0, sizeof(sd));
	sd.st = a;
	assert_int_equal(store_role_claim_send(a, base, bad, 1, got,
	    sent_done, &sd), -1);
	assert_int_equal(sd.calls, 0);
	assert_int_equal(store_flying(a), 0);
	store_free(b);
	store_free(a);
	event_base_free(base);
}

/*
 * Roles given back without waiting (store_role_release_send): no longer
 * held from the call on, free for another session once done has come;
 * those this session does not hold are left alone; a second flight
 * meanwhile is refused as busy.
 */
static void
test_pg_release_send(void **state)
{
	struct fixture *f = fixture(state);
	struct store *a = open_ok(f), *b = open_ok(f);
	struct event_base *base = event_base_new();
	const char *give[] = { "health:b1", "repl", "moves" };
	int got[3] = { 7, 7, 7 };
	struct sent sd = { 0 }, sd2 = { 0 };

	assert_non_null(base);
	assert_non_null(a->ops->release_send);
	assert_int_equal(claim(a, "health:b1"), 1);
	assert_int_equal(claim(a, "moves"), 1);
	assert_int_equal(claim(b, "repl"), 1);
	sd.st = a;
	assert_int_equal(store_role_release_send(a, base, give, 3, sent_done,
	    &sd), 0);
	assert_int_equal(a->ops->role_held(a, "health:b1"), 0);
	assert_int_equal(a->ops->role_held(a, "moves"), 0);
	sd2.st = a;
	assert_int_equal(store_role_claim_send(a, base, give, 3, got,
	    sent_done, &sd2), -1);
	assert_int_equal(a->errclass, STORE_ERETRY);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(store_flying(a), 0);
	assert_int_equal(claim(b, "health:b1"), 1);
	assert_int_equal(claim(b, "moves"), 1);
	/* b's role was not a's to give. */
	assert_int_equal(b->ops->role_held(b, "repl"), 1);
	assert_int_equal(claim(a, "repl"), 0);
	store_free(b);
	store_free(a);
	event_base_free(base);
}

/*
 * Users' dsync states without waiting (store_repl_states_send): each in
 * its place, "" for a user with a record but no state and for one with
 * no record; another call during the flight reads the answer first, and
 * done still reports it.
 */
static void
test_pg_states_send(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct event_base *base = event_base_new();
	const char *users[] = { "bob", "nobody", "alice", "carol" };
	char *states[4] = { NULL };
	struct store_repl r;
	struct sent sd = { 0 };
	size_t i;

	assert_non_null(base);
	add_backend(st, "b1");
	put_user(st, "alice", "b1");
	put_user(st, "bob", "b1");
	put_user(st, "carol", "b1");
	memset(&r, 0, sizeof(r));
	r.user = "alice";
	r.priority = -1;
	r.state = "STATE-A";
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	r.user = "bob";
	r.state = "STATE-B";
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	r.user = "carol";
	r.state = NULL;
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);

	sd.st = st;
	assert_int_equal(store_repl_states_send(st, base, users, 4, states,
	    sent_done, &sd), 0);
	assert_int_equal(store_flying(st), 1);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_string_equal(states[0], "STATE-B");
	assert_string_equal(states[1], "");
	assert_string_equal(states[2], "STATE-A");
	assert_string_equal(states[3], "");
	for (i = 0; i < 4; i++) {
		free(states[i]);
		states[i] = NULL;
	}
	/* Read first by another call, still reported. */
	memset(&sd, 0, sizeof(sd));
	sd.st = st;
	assert_int_equal(store_repl_states_send(st, base, users, 2, states,
	    sent_done, &sd), 0);
	assert_int_equal(user_count(st), 3);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_string_equal(states[0], "STATE-B");
	for (i = 0; i < 2; i++)
		free(states[i]);
	store_free(st);
	event_base_free(base);
}

/*
 * A STORE_TX_SEND transaction: the writes go out as they are made, the
 * commit without the caller waiting, and done tells how it ended; all of
 * it or none; reads and writes that need an answer are refused in it;
 * another call during the flight reads the answer first.
 */
static void
test_pg_tx_send(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct event_base *base = event_base_new();
	struct store_user us[2] = {
		{ "s1", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "s2", "b2", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct store_user bad[2] = {
		{ "s3", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "s4", "nosuch", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct store_repl rq = { "s1", 1, 1700000000000, 1700000000000, 0, 0,
	    0, "", "dsync-state", 0, 0, 0 };
	struct store_health h = { "b1", "failing", 1700000000, "refused", 3,
	    1700000001 };
	struct store_move m;
	struct store_tx *tx;
	struct sent sd = { 0, 0, "", st };
	struct rcoll rc;
	struct ucoll uc;
	int n = 0;

	assert_non_null(base);
	add_backend(st, "b1");
	add_backend(st, "b2");

	/* Written, committed, told. */
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, us, 2), 0);
	assert_int_equal(store_repl_put(tx, &rq, 1), 0);
	assert_int_equal(store_health_put(tx, &h), 0);
	assert_int_equal(store_commit_send(tx, base, sent_done, &sd), 0);
	assert_int_equal(store_flying(st), 1);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(store_flying(st), 0);
	assert_int_equal(user_count(st), 2);
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(st->ops->repl_get(st, "s1", collect_repl, &rc), 1);
	assert_string_equal(rc.state[0], "dsync-state");
	assert_int_equal(st->ops->health_get(st, "b1", found_health, &n), 1);

	/* All or nothing: the server refuses one record, and the other,
	 * sent with it, is not there either. */
	memset(&sd, 0, sizeof(sd));
	sd.st = st;
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, bad, 2), 0);
	assert_int_equal(store_commit_send(tx, base, sent_done, &sd), 0);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, -1);
	assert_non_null(strstr(sd.err, "backend"));
	assert_int_equal(get_user(st, "s3", &uc), 0);
	assert_int_equal(user_count(st), 2);

	/* Nothing that needs an answer: a read, an insert that returns its
	 * id.  The transaction is then only rolled back. */
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, &bad[0], 1), 0);
	assert_int_equal(get_user(st, "s1", &uc), -1);
	assert_non_null(strstr(store_error(st), "only writes"));
	memset(&m, 0, sizeof(m));
	m.user = "s1";
	m.from = "b1";
	m.to = "b2";
	m.reason = "move";
	m.state = "queued";
	assert_int_equal(store_move_insert(tx, &m), -1);
	assert_int_equal(store_rollback(tx), 0);
	assert_int_equal(get_user(st, "s3", &uc), 0);
	assert_int_equal(user_count(st), 2);

	/* Another call during the flight reads the answer first; done
	 * still comes, on the loop. */
	memset(&sd, 0, sizeof(sd));
	sd.st = st;
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, &bad[0], 1), 0);
	assert_int_equal(store_commit_send(tx, base, sent_done, &sd), 0);
	assert_int_equal(get_user(st, "s3", &uc), 1);
	assert_int_equal(sd.calls, 0);
	/* A transaction of the ordinary kind meanwhile is its own; the next
	 * sent one waits until done was told. */
	assert_non_null(tx = store_begin(st, STORE_TX_ADMIN));
	assert_int_equal(store_audit_add(tx, "admin", "user.pin", "s3", "{}"),
	    0);
	assert_int_equal(store_commit(tx), 0);
	assert_null(store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_retryable(st), 1);
	sent_wait(base, &sd);
	assert_int_equal(sd.rc, 0);

	/* Landed on purpose (an owner that ends), without the loop. */
	memset(&sd, 0, sizeof(sd));
	sd.st = st;
	us[0].user = "s5";
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, us, 1), 0);
	assert_int_equal(store_commit_send(tx, base, sent_done, &sd), 0);
	store_flight_land(st);
	assert_int_equal(sd.calls, 1);
	assert_int_equal(sd.rc, 0);
	assert_int_equal(store_flying(st), 0);

	/* Committed the waiting way, too. */
	us[0].user = "s6";
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, us, 1), 0);
	assert_int_equal(store_commit(tx), 0);
	assert_int_equal(user_count(st), 5);
	store_free(st);
	event_base_free(base);
}

/* Stops the first roostd session found sleeping in pg_sleep (a COMMIT in
 * its deferred trigger), for test_pg_commit_outcome_unknown. */
struct freezer {
	long long	 pid;
	int		 found;
};

static void *
freeze_sleeper(void *arg)
{
	struct freezer *fz = arg;
	PGconn *c = PQconnectdb(pg.conninfo);
	int i;

	for (i = 0; i < 2000 && PQstatus(c) == CONNECTION_OK; i++) {
		if (signal_sessions(c, " AND wait_event = 'PgSleep'", SIGSTOP,
		    &fz->pid) > 0) {
			fz->found = 1;
			break;
		}
		usleep(2000);
	}
	PQfinish(c);
	return NULL;
}

/*
 * The server takes a COMMIT and goes quiet before it answers: roostd
 * gives up on it, busy, though the server (once it runs again) commits.
 * That change is in the store and not in memory; the session's tag is
 * renewed at once, so the change feed reads it back like another
 * writer's instead of skipping it as already known.
 */
static void
test_pg_commit_outcome_unknown(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user u = { "slow", "b1", "", 0, 1700000100, 0, 0, NULL,
	    0, 0 };
	struct freezer fz = { 0, 0 };
	struct ccoll cc;
	char before[48];
	pthread_t th;
	int64_t head, pruned;
	int rc, i;

	add_backend(st, "b1");
	raw_sql(f, "CREATE FUNCTION slow_commit() RETURNS trigger"
	    " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3);"
	    " RETURN NULL; END $$");
	raw_sql(f, "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON"
	    " users DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
	    " EXECUTE FUNCTION slow_commit()");
	assert_int_equal(st->ops->change_head(st, &head), 0);
	snprintf(before, sizeof(before), "%s", st->ops->change_origin(st));

	assert_int_equal(pthread_create(&th, NULL, freeze_sleeper, &fz), 0);
	alarm(20);
	assert_int_equal(st->ops->begin(st, 0), 0);
	rc = st->ops->user_put(st, &u, 1);
	if (rc == 0)
		rc = st->ops->commit(st);
	else
		st->ops->rollback(st);
	alarm(0);
	pthread_join(th, NULL);
	if (fz.found)
		kill((pid_t)fz.pid, SIGCONT);
	assert_true(fz.found);
	assert_int_equal(rc, -1);
	assert_int_equal(st->errclass, STORE_ERETRY);
	print_message("commit without an answer: %s\n", store_error(st));
	assert_string_not_equal(st->ops->change_origin(st), before);

	/* The server did commit it, under the old tag. */
	memset(&cc, 0, sizeof(cc));
	for (i = 0; i < 100; i++) {
		if (retry_put(st, "other") == 0)
			changes_after(st, head, &cc, &pruned);
		if (cc.n >= 1 && strcmp(cc.line[0], "user:slow") == 0)
			break;
		usleep(50000);
	}
	assert_true(i < 100);
	assert_string_equal(cc.origin[0], before);
	assert_string_not_equal(cc.origin[0], st->ops->change_origin(st));
	store_free(st);
}

/*
 * Every mutation of what a lookup answers leaves a change, in commit
 * order, tagged with the writer's origin; lookup bookkeeping, a probe
 * round that keeps the verdict and a move step that keeps the state do
 * not.  A writer that is not a roostd leaves changes too, untagged.
 */
static void
test_pg_changes(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user u = { "u1", "b1", "", 0, 1700000100, 0, 0, NULL, 0,
	    0 };
	struct store_health h = { "b1", "ok", 1700000000, "", 3, 1700000000 };
	struct store_move m = { 0, "u1", "b1", "b2", "move", "queued", "", 0,
	    1700000000, 1700000000 };
	struct backend *b = mkbackend("b1", "");
	struct proxy *px = proxy_new("px1");
	struct ccoll cc;
	int64_t head, pruned, released;
	const char *origin;
	size_t i;
	int n = 0;

	assert_non_null(st->ops->change_head);
	assert_int_equal(st->ops->change_head(st, &head), 0);
	assert_int_equal(head, 0);
	origin = st->ops->change_origin(st);
	assert_true(origin[0] != '\0');

	add_backend(st, "b1");
	add_backend(st, "b2");
	b->weight = 50;
	assert_int_equal(st->ops->backend_update(st, b), 0);
	put_user(st, "u1", "b1");
	/* A lookup's bookkeeping is no change. */
	u.last_lookup = 1700000200;
	u.confirmed = 1;
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	u.last_lookup = 1700000300;
	assert_int_equal(st->ops->user_touch(st, &u, 1), 0);
	u.pinned = 1;
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	assert_int_equal(st->ops->health_put(st, &h), 0);
	h.checked = 1700000010;		/* the same verdict, checked again */
	assert_int_equal(st->ops->health_put(st, &h), 0);
	h.state = "failed";
	assert_int_equal(st->ops->health_put(st, &h), 0);
	px->doveadm_url = xstrdup("http://127.0.0.1:8080/doveadm/v1");
	px->doveadm_key = xstrdup("k");
	assert_int_equal(st->ops->proxy_insert(st, px), 0);
	assert_int_equal(st->ops->move_insert(st, &m), 0);
	assert_int_equal(st->ops->move_state(st, m.id, "waiting", ""), 0);
	assert_int_equal(st->ops->move_state(st, m.id, "waiting", ""), 0);
	assert_int_equal(st->ops->proxy_delete(st, "px1"), 0);
	put_user(st, "u2", "b2");
	assert_int_equal(st->ops->user_delete(st, "u1"), 1);
	assert_int_equal(st->ops->backend_delete(st, "b2", &released), 0);
	assert_int_equal(released, 1);

	changes_after(st, head, &cc, &pruned);
	assert_int_equal(pruned, 0);
	assert_changes(&cc, "backend:b1 backend:b2 backend:b1 user:u1 "
	    "user:u1 health:b1 health:b1 proxy:px1 move:u1 move:u1 "
	    "proxy:px1 user:u2 user:u1 user:u2 backend:b2");
	for (i = 0; i < cc.n; i++)
		assert_string_equal(cc.origin[i], origin);
	assert_int_equal(st->ops->change_head(st, &head), 0);
	assert_int_equal(head, cc.last);

	/* Another writer: seen, without our origin. */
	raw_sql(f, "UPDATE backends SET state = 'drain' WHERE name = 'b1'");
	changes_after(st, head, &cc, &pruned);
	assert_changes(&cc, "backend:b1");
	assert_string_equal(cc.origin[0], "");

	/* The rows a change names, read again. */
	assert_int_equal(st->ops->move_marked(st, "u1"), 1);
	assert_int_equal(st->ops->move_marked(st, "nobody"), 0);
	assert_int_equal(st->ops->backend_get(st, "b1", found_backend, &n), 1);
	assert_int_equal(st->ops->backend_get(st, "b2", found_backend, &n), 0);
	assert_int_equal(st->ops->health_get(st, "b1", found_health, &n), 1);
	assert_int_equal(st->ops->health_get(st, "b2", found_health, &n), 0);
	assert_int_equal(st->ops->proxy_get(st, "px1", found_proxy, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(st->ops->move_state(st, m.id, "done", ""), 0);
	assert_int_equal(st->ops->move_marked(st, "u1"), 0);

	proxy_free(px);
	backend_free(b);
	store_free(st);
}

/*
 * Pruning forgets old changes and says how far: a reader that had read
 * that far goes on, one that had not knows it missed some (and reloads);
 * the numbering goes on past the pruned ones.
 */
static void
test_pg_changes_pruned(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct ccoll cc;
	int64_t head, pruned, mid;

	add_backend(st, "b1");
	put_user(st, "u1", "b1");
	assert_int_equal(st->ops->change_head(st, &mid), 0);
	put_user(st, "u2", "b1");
	assert_int_equal(st->ops->change_head(st, &head), 0);
	assert_true(head > mid);

	/* Kept for 10 minutes: nothing goes. */
	assert_int_equal(st->ops->change_prune(st, 600000), 0);
	changes_after(st, 0, &cc, &pruned);
	assert_int_equal(cc.n, 3);
	assert_int_equal(pruned, 0);

	usleep(5000);
	assert_int_equal(st->ops->change_prune(st, 0), 0);
	changes_after(st, 0, &cc, &pruned);
	assert_int_equal(cc.n, 0);
	assert_int_equal(pruned, head);
	/* Read up to mid only: changes were missed. */
	changes_after(st, mid, &cc, &pruned);
	assert_true(pruned > mid);
	/* Read all: nothing missed, and the head stays. */
	changes_after(st, head, &cc, &pruned);
	assert_false(pruned > head);
	assert_int_equal(st->ops->change_head(st, &mid), 0);
	assert_int_equal(mid, head);

	put_user(st, "u3", "b1");
	changes_after(st, head, &cc, &pruned);
	assert_changes(&cc, "user:u3");
	assert_true(cc.last > head);
	store_free(st);
}

/*
 * Changes are numbered in commit order: a writer's transaction holds the
 * numbering from its first change to its commit, so a reader that saw
 * change n never finds a lower one later (a slow transaction committing
 * below what was read would be skipped for good).  Another writer waits,
 * bounded: the store answers busy, then goes on.
 */
static void
test_pg_changes_commit_order(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user u = { "quick", "b1", "", 0, 1, 0, 0, NULL, 0, 0 };
	struct ccoll cc;
	int64_t head, pruned;
	char *sql;

	add_backend(st, "b1");
	assert_int_equal(st->ops->change_head(st, &head), 0);
	xasprintf(&sql, "BEGIN; SET LOCAL search_path = %s;"
	    " INSERT INTO users (\"user\", backend) VALUES ('slow', 'b1')",
	    f->schema);
	pg_exec(sql);
	free(sql);
	/* Behind the open transaction: busy, nothing numbered. */
	assert_int_equal(st->ops->user_put(st, &u, 1), -1);
	assert_int_equal(st->errclass, STORE_ERETRY);
	changes_after(st, head, &cc, &pruned);
	assert_int_equal(cc.n, 0);
	pg_exec("COMMIT");
	put_user(st, "quick", "b1");
	changes_after(st, head, &cc, &pruned);
	assert_changes(&cc, "user:slow user:quick");
	store_free(st);
}

/*
 * Two instances placing the same 1000 new users at once, the same batches
 * of 100 started together, the other going through each batch backwards:
 * the store through user_place, the other as raw INSERT ... ON
 * CONFLICT DO NOTHING (one roostd per schema still holds the store's
 * lock).  Where they meet the store waits (bounded) or deadlocks, fails
 * retryable and tries again.  Every user ends with one row, and what the
 * store reported (its own insert, or the row it lost to) is that row: both
 * see the same backend.
 */
#define RACE_USERS	1000
#define RACE_BATCH	100

struct race {
	const struct fixture	*f;
	pthread_barrier_t	 go;	/* both start each batch together */
	int			 failed;
	char			 why[256];
};

static void *
race_other(void *arg)
{
	struct race *r = arg;
	char *sql, *q;
	PGconn *pc;
	PGresult *res;
	int i, j;

	pc = PQconnectdb(pg.conninfo);
	if (PQstatus(pc) != CONNECTION_OK) {
		snprintf(r->why, sizeof(r->why), "connect failed");
		r->failed = 1;
	}
	/* The same batches as the store, at the same time. */
	for (i = RACE_BATCH; i <= RACE_USERS; i += RACE_BATCH) {
		if (r->failed) {
			pthread_barrier_wait(&r->go);
			continue;
		}
		xasprintf(&sql, "SET search_path = %s; BEGIN; INSERT INTO users "
		    OTHER_COLS " VALUES", r->f->schema);
		/* Each batch backwards: the two meet inside it. */
		for (j = i - 1; j >= i - RACE_BATCH; j--) {
			xasprintf(&q, "%s%s('u%04d', 'b2', '', 0, 1, 0, 0, NULL,"
			    " 0, 0)", sql, j < i - 1 ? ", " : " ", j);
			free(sql);
			sql = q;
		}
		xasprintf(&q, "%s ON CONFLICT (\"user\") DO NOTHING; COMMIT",
		    sql);
		free(sql);
		pthread_barrier_wait(&r->go);
		res = PQexec(pc, q);
		free(q);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			snprintf(r->why, sizeof(r->why), "%s",
			    PQerrorMessage(pc));
			r->failed = 1;
		}
		PQclear(res);
	}
	PQfinish(pc);
	return NULL;
}

struct seen {
	char	 backend[RACE_USERS][4];
	size_t	 adopted;
};

static int
race_adopt(const struct store_user *u, void *arg)
{
	struct seen *s = arg;
	long long i;

	if (parse_ll(u->user + 1, 0, RACE_USERS - 1, &i) == -1)
		return -1;
	snprintf(s->backend[i], sizeof(s->backend[i]), "%s", u->backend);
	s->adopted++;
	return 0;
}

static void
test_pg_insert_new_race(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st = open_ok(f);
	struct store_user recs[RACE_BATCH];
	char names[RACE_BATCH][8], sql[256];
	struct seen *seen = xcalloc(1, sizeof(*seen));
	struct race r = { .f = f };
	size_t retries = 0, rows;
	pthread_t t;
	PGresult *res;
	int i, j, k;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(pthread_barrier_init(&r.go, NULL, 2), 0);
	assert_int_equal(pthread_create(&t, NULL, race_other, &r), 0);
	for (i = 0; i < RACE_USERS; i += RACE_BATCH) {
		for (j = 0; j < RACE_BATCH; j++) {
			snprintf(names[j], sizeof(names[j]), "u%04d", i + j);
			recs[j] = (struct store_user){ names[j], "b1", "", 0,
			    2, 0, 0, NULL, 0, 0 };
		}
		pthread_barrier_wait(&r.go);
		/* The caller's retry: a retryable failure wrote nothing. */
		for (k = 0; k < 200; k++) {
			size_t before = seen->adopted;

			if (st->ops->user_place(st, recs, NULL, RACE_BATCH,
			    race_adopt, seen) == 0)
				break;
			if (!store_retryable(st))
				fail_msg("not retryable: %s", store_error(st));
			/* What a failed call reported is void. */
			for (j = 0; j < RACE_BATCH; j++)
				seen->backend[i + j][0] = '\0';
			seen->adopted = before;
			retries++;
			usleep(1000);
		}
		assert_true(k < 200);
		for (j = 0; j < RACE_BATCH; j++)
			if (seen->backend[i + j][0] == '\0')
				snprintf(seen->backend[i + j], 4, "b1");
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_barrier_destroy(&r.go);
	if (r.failed)
		fail_msg("the other instance: %s", r.why);
	print_message("%zu of %d users lost to the other instance, %zu "
	    "retries\n", seen->adopted, RACE_USERS, retries);

	/* One row per user, and it is what the store reported. */
	snprintf(sql, sizeof(sql), "SELECT \"user\", backend FROM %s.users"
	    " ORDER BY \"user\"", f->schema);
	res = PQexec(pg.admin, sql);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	rows = (size_t)PQntuples(res);
	assert_int_equal(rows, RACE_USERS);
	for (i = 0; i < RACE_USERS; i++)
		if (strcmp(PQgetvalue(res, i, 1), seen->backend[i]) != 0)
			fail_msg("%s: stored on %s, the store said %s",
			    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			    seen->backend[i]);
	PQclear(res);
	free(seen);
	store_free(st);
}

#define BOTH(fn)							\
	{ "sqlite_" #fn, fn, setup_sqlite, teardown, NULL },		\
	{ "pg_" #fn, fn, setup_pg, teardown, NULL }
#define PG(fn)		{ #fn, fn, setup_pg, teardown, NULL }

int
main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_reopen_keeps_data),
		BOTH(test_survives_kill),
		BOTH(test_schema_version),
		BOTH(test_foreign_database_refused),
		BOTH(test_backend_roundtrip),
		BOTH(test_proxy_roundtrip),
		BOTH(test_callback_stops),
		BOTH(test_user_unknown_backend),
		BOTH(test_backend_delete_releases),
		BOTH(test_user_put_batch_atomic),
		BOTH(test_user_put_keeps_confirmed),
		BOTH(test_user_delete),
		BOTH(test_user_list_pages),
		BOTH(test_user_touch),
		BOTH(test_audit),
		BOTH(test_transactions),
		BOTH(test_repl_records),
		BOTH(test_moves),
		BOTH(test_jobs),
		BOTH(test_health),
		BOTH(test_user_load_many),
		BOTH(test_busy_gives_up_fast),
		BOTH(test_user_place),
		BOTH(test_error_classes),
		PG(test_pg_connection_lost),
		PG(test_pg_hung_server),
		PG(test_pg_place_row_gone),
		PG(test_pg_place_send),
		PG(test_pg_commit_outcome_unknown),
		PG(test_pg_durable),
		PG(test_pg_open_errors),
		PG(test_pg_concurrent_open),
		PG(test_pg_insert_new_race),
		PG(test_pg_roles),
		PG(test_pg_roles_lost_with_session),
		PG(test_pg_copy_alone),
		{ "test_sqlite_roles", test_sqlite_roles, setup_sqlite,
		    teardown, NULL },
		PG(test_pg_changes),
		PG(test_pg_changes_pruned),
		PG(test_pg_changes_commit_order),
		PG(test_pg_tx_send),
		PG(test_pg_claim_send),
		PG(test_pg_release_send),
		PG(test_pg_states_send),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	pg_down();
	return rc;
}
