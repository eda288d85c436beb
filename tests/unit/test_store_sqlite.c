/*
 * test_store_sqlite.c: the SQLite store against a real database file in a
 * fresh temporary directory per test.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
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
#include <jansson.h>
#include <sqlite3.h>

#include "backend.h"
#include "proxy.h"
#include "repl.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

struct fixture {
	char	 dir[64];
	char	 path[128];
	char	 url[160];
};

static int
setup(void **state)
{
	struct fixture *f;

	f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/roost-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/roost.db", f->dir);
	snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	const char *suffix[] = { "", "-wal", "-shm", "-journal", ".lock" };
	char p[200];
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
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

/* Run SQL straight on the file, behind the store's back. */
static void
raw_sql(const struct fixture *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
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
	struct store_user u = { user, backend, "", 0, 1700000100, 0, 0, NULL, 0, 0 };

	if (st->ops->user_put(st, &u, 1) == -1)
		fail_msg("user_put %s: %s", user, store_error(st));
}

/* Collected callback output. */
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
	int	 pinned[64];
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
	c->pinned[c->n] = u->pinned;
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

	assert_int_equal(st->ops->user_load(st, count_user, &n), 0);
	return n;
}

static void
test_missing_directory(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct stat sb;
	char url[200], dir[150], err[600];

	snprintf(dir, sizeof(dir), "%s/nodir", f->dir);
	snprintf(url, sizeof(url), "sqlite:%s/roost.db", dir);
	st = store_open(url, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "directory does not exist"));
	assert_int_equal(stat(dir, &sb), -1);

	st = store_open("sqlite:", err, sizeof(err));
	assert_null(st);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct bcoll bc = { 0 };
	struct ucoll uc = { 0 };

	st = open_ok(f);
	assert_int_equal(st->ops->ping(st), 0);
	add_backend(st, "b1");
	put_user(st, "alice", "b1");
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_string_equal(bc.b[0]->name, "b1");
	assert_int_equal(st->ops->user_get(st, "alice", collect_user, &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(uc.since[0], 1700000100);
	bcoll_free(&bc);
	store_free(st);
}

/* A commit has to survive the process dying on the spot (kill -9). */
static void
test_survives_kill(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct ucoll uc = { 0 };
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
		/* Left open, uncommitted: this must vanish. */
		st->ops->begin(st, 0);
		put_user(st, "bob", "b1");
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	st = open_ok(f);
	assert_int_equal(st->ops->user_get(st, "alice", collect_user, &uc), 1);
	assert_string_equal(uc.backend[0], "b1");
	assert_int_equal(st->ops->user_get(st, "bob", collect_user, &uc), 0);
	store_free(st);
}

static void
test_schema_version(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	sqlite3 *db;
	sqlite3_stmt *s;
	char err[600];

	st = open_ok(f);
	store_free(st);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE "
	    "key = 'schema_version'", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* Reopening an up-to-date file is fine and changes nothing. */
	st = open_ok(f);
	store_free(st);

	raw_sql(f, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
	st = store_open(f->url, err, sizeof(err));
	assert_null(st);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, "99"));
}

static void
test_foreign_database_refused(void **state)
{
	struct fixture *f = *state;
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
	struct fixture *f = *state;
	struct store *st;
	struct backend *b;
	struct bcoll bc = { 0 };
	int i;

	st = open_ok(f);
	b = mkbackend("b1", "ssd");
	snprintf(b->hostip, sizeof(b->hostip), "127.0.0.11");
	b->weight = 250;
	b->state = BACKEND_DRAIN;
	for (i = 0; i < PROTO_COUNT; i++)
		b->ports[i] = (uint16_t)(10000 + i);
	b->ports[PROTO_SIEVE] = 0;
	b->doveadm_url = xstrdup("http://127.0.0.11:8080/doveadm/v1");
	b->doveadm_key = xstrdup("s3cret-key");
	b->created = 1700000001;
	b->updated = 1700000002;
	assert_int_equal(st->ops->backend_insert(st, b), 0);

	/* Same name again: refused with a clear message. */
	assert_int_equal(st->ops->backend_insert(st, b), -1);
	assert_non_null(strstr(store_error(st), "already exists"));

	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_string_equal(bc.b[0]->name, "b1");
	assert_string_equal(bc.b[0]->host, "b1.example.com");
	assert_string_equal(bc.b[0]->hostip, "127.0.0.11");
	assert_string_equal(bc.b[0]->tag, "ssd");
	assert_int_equal(bc.b[0]->weight, 250);
	assert_int_equal(bc.b[0]->state, BACKEND_DRAIN);
	for (i = 0; i < PROTO_COUNT; i++)
		assert_int_equal(bc.b[0]->ports[i], b->ports[i]);
	assert_string_equal(bc.b[0]->doveadm_url, b->doveadm_url);
	assert_string_equal(bc.b[0]->doveadm_key, "s3cret-key");
	assert_int_equal(bc.b[0]->created, 1700000001);
	assert_int_equal(bc.b[0]->updated, 1700000002);
	bcoll_free(&bc);

	/* Update: new key, no URL any more, back up. */
	free(b->doveadm_key);
	b->doveadm_key = xstrdup("other-key");
	free(b->doveadm_url);
	b->doveadm_url = NULL;
	b->state = BACKEND_UP;
	b->weight = 0;
	b->updated = 1700000003;
	assert_int_equal(st->ops->backend_update(st, b), 0);
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	assert_null(bc.b[0]->doveadm_url);
	assert_string_equal(bc.b[0]->doveadm_key, "other-key");
	assert_int_equal(bc.b[0]->state, BACKEND_UP);
	assert_int_equal(bc.b[0]->weight, 0);
	assert_int_equal(bc.b[0]->created, 1700000001);
	assert_int_equal(bc.b[0]->updated, 1700000003);
	bcoll_free(&bc);

	/* Updating a backend that does not exist is an error. */
	snprintf(b->name, sizeof(b->name), "nope");
	assert_int_equal(st->ops->backend_update(st, b), -1);
	assert_non_null(strstr(store_error(st), "nope"));
	/* The key never shows up in an error. */
	assert_null(strstr(store_error(st), "other-key"));
	backend_free(b);

	/* Loaded in name order whatever the insert order. */
	add_backend(st, "c9");
	add_backend(st, "a0");
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 3);
	assert_string_equal(bc.b[0]->name, "a0");
	assert_string_equal(bc.b[1]->name, "b1");
	assert_string_equal(bc.b[2]->name, "c9");
	bcoll_free(&bc);
	store_free(st);
}

/*
 * The TLS mode is stored, and a database from before the tls column (schema
 * version 1) is migrated on open with every backend at tls "no".
 */
static void
test_backend_tls_and_migration(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct backend *b;
	struct bcoll bc = { 0 };
	json_t *o;
	const char *field;
	char err[64];

	st = open_ok(f);
	b = mkbackend("b1", "");
	o = json_pack("{s:s}", "tls", "starttls");
	assert_int_equal(backend_apply_json(b, o, 0, &field, err, sizeof(err)),
	    0);
	json_decref(o);
	assert_int_equal(st->ops->backend_insert(st, b), 0);
	backend_free(b);
	add_backend(st, "b2");
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 2);
	o = backend_to_json(bc.b[0]);
	assert_string_equal(json_string_value(json_object_get(o, "tls")),
	    "starttls");
	json_decref(o);
	o = backend_to_json(bc.b[1]);
	assert_string_equal(json_string_value(json_object_get(o, "tls")), "no");
	json_decref(o);
	bcoll_free(&bc);
	store_free(st);

	/* Make it a version 1 database again, as an older roostd left it. */
	raw_sql(f, "ALTER TABLE backends DROP COLUMN tls;"
	    "ALTER TABLE backends DROP COLUMN probe_user;"
	    "ALTER TABLE backends DROP COLUMN probe_password;"
	    "ALTER TABLE users DROP COLUMN confirmed;"
	    "DROP TABLE backend_health;"
	    "DROP TABLE moves;"
	    "DROP TABLE move_jobs;"
	    "DROP TABLE proxies;"
	    "DROP TRIGGER users_repl_gone;"
	    "DROP TRIGGER backends_replica_gone;"
	    "DROP TABLE repl;"
	    "DROP TABLE changes;"
	    "DROP TABLE repl_requests;"
	    "ALTER TABLE users DROP COLUMN replica;"
	    "ALTER TABLE users DROP COLUMN replica_current;"
	    "ALTER TABLE users DROP COLUMN failed_over;"
	    "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 2);
	o = backend_to_json(bc.b[0]);
	assert_string_equal(json_string_value(json_object_get(o, "tls")), "no");
	assert_string_equal(json_string_value(json_object_get(o, "host")),
	    "b1.example.com");
	json_decref(o);
	bcoll_free(&bc);
	store_free(st);

	/* A value no roostd writes is refused, not taken for "no". */
	raw_sql(f, "UPDATE backends SET tls = 'maybe' WHERE name = 'b2'");
	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), -1);
	assert_non_null(strstr(store_error(st), "tls"));
	bcoll_free(&bc);
	store_free(st);
}

/*
 * The IMAP probe's test account is stored (the password in clear: roostd
 * sends it to the backend) and cleared; a database from before the probe
 * columns (schema version 7) is migrated on open with no account.
 */
static void
test_backend_probe_and_migration(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct backend *b;
	struct bcoll bc = { 0 };
	json_t *o;
	const char *field;
	char err[64];

	st = open_ok(f);
	b = mkbackend("b1", "");
	o = json_pack("{s:{s:s, s:s}}", "probe", "user", "probe@example.com",
	    "password", "probe-pw-1");
	assert_int_equal(backend_apply_json(b, o, 0, &field, err, sizeof(err)),
	    0);
	json_decref(o);
	assert_int_equal(st->ops->backend_insert(st, b), 0);
	add_backend(st, "b2");
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 2);
	assert_non_null(bc.b[0]->probe_user);
	assert_string_equal(bc.b[0]->probe_user, "probe@example.com");
	assert_non_null(bc.b[0]->probe_pass);
	assert_string_equal(bc.b[0]->probe_pass, "probe-pw-1");
	assert_null(bc.b[1]->probe_user);
	assert_null(bc.b[1]->probe_pass);
	bcoll_free(&bc);

	/* Cleared through the API's empty strings: gone after a reopen. */
	o = json_pack("{s:{s:s, s:s}}", "probe", "user", "", "password", "");
	assert_int_equal(backend_apply_json(b, o, 0, &field, err, sizeof(err)),
	    0);
	json_decref(o);
	assert_int_equal(st->ops->backend_update(st, b), 0);
	store_free(st);
	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 2);
	assert_null(bc.b[0]->probe_user);
	assert_null(bc.b[0]->probe_pass);
	bcoll_free(&bc);

	/* Set again, then make it a version 7 database, as an older roostd
	 * left it: the backends load with no test account. */
	o = json_pack("{s:{s:s, s:s}}", "probe", "user", "u2", "password",
	    "probe-pw-2");
	assert_int_equal(backend_apply_json(b, o, 0, &field, err, sizeof(err)),
	    0);
	json_decref(o);
	assert_int_equal(st->ops->backend_update(st, b), 0);
	store_free(st);
	raw_sql(f, "ALTER TABLE backends DROP COLUMN probe_user;"
	    "ALTER TABLE backends DROP COLUMN probe_password;"
	    "DROP TRIGGER users_repl_gone;"
	    "DROP TRIGGER backends_replica_gone;"
	    "DROP TABLE repl;"
	    "DROP TABLE changes;"
	    "DROP TABLE repl_requests;"
	    "ALTER TABLE users DROP COLUMN replica;"
	    "ALTER TABLE users DROP COLUMN replica_current;"
	    "ALTER TABLE users DROP COLUMN failed_over;"
	    "UPDATE meta SET value = '7' WHERE key = 'schema_version'");
	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 2);
	assert_string_equal(bc.b[0]->host, "b1.example.com");
	assert_null(bc.b[0]->probe_user);
	assert_null(bc.b[0]->probe_pass);
	bcoll_free(&bc);
	/* ... and the migrated columns take an account again. */
	assert_int_equal(st->ops->backend_update(st, b), 0);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_string_equal(bc.b[0]->probe_user, "u2");
	assert_string_equal(bc.b[0]->probe_pass, "probe-pw-2");
	bcoll_free(&bc);
	backend_free(b);
	store_free(st);

	/* A row no roostd writes would break the LOGIN line: refused on
	 * load, without quoting the password. */
	raw_sql(f, "UPDATE backends SET probe_password = 'probe-pw-3' ||"
	    " char(13, 10) || 'A1 LOGOUT' WHERE name = 'b1'");
	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), -1);
	assert_non_null(strstr(store_error(st), "probe"));
	assert_null(strstr(store_error(st), "probe-pw"));
	bcoll_free(&bc);
	store_free(st);
}

/* Collected proxies. */
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

/*
 * Proxies are stored, loaded in name order, updated and deleted; a
 * duplicate, an update or delete of an unknown name fail with an error that
 * names the proxy and never its key; a rolled back insert leaves nothing.
 */
static void
test_proxy_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct proxy *p;
	struct pcoll pc = { 0 };

	st = open_ok(f);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 0);

	p = mkproxy("p2", "proxy-key-2");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	assert_int_equal(st->ops->proxy_insert(st, p), -1);
	assert_non_null(strstr(store_error(st), "already exists"));
	assert_null(strstr(store_error(st), "proxy-key-2"));
	proxy_free(p);
	p = mkproxy("p1", "proxy-key-1");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	proxy_free(p);
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 2);
	assert_string_equal(pc.p[0]->name, "p1");
	assert_string_equal(pc.p[1]->name, "p2");
	assert_string_equal(pc.p[1]->doveadm_url,
	    "http://p2.example.com:8080/doveadm/v1");
	assert_string_equal(pc.p[1]->doveadm_key, "proxy-key-2");
	assert_int_equal(pc.p[1]->created, 1700000001);
	assert_int_equal(pc.p[1]->updated, 1700000002);

	/* Update: new url and key, created kept as given. */
	p = proxy_dup(pc.p[1]);
	pcoll_free(&pc);
	free(p->doveadm_url);
	p->doveadm_url = xstrdup("https://other:8443/doveadm/v1");
	free(p->doveadm_key);
	p->doveadm_key = xstrdup("proxy-key-new");
	p->updated = 1700000009;
	assert_int_equal(st->ops->proxy_update(st, p), 0);
	snprintf(p->name, sizeof(p->name), "nope");
	assert_int_equal(st->ops->proxy_update(st, p), -1);
	assert_non_null(strstr(store_error(st), "nope"));
	assert_null(strstr(store_error(st), "proxy-key-new"));
	proxy_free(p);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 2);
	assert_string_equal(pc.p[1]->doveadm_url,
	    "https://other:8443/doveadm/v1");
	assert_string_equal(pc.p[1]->doveadm_key, "proxy-key-new");
	assert_int_equal(pc.p[1]->updated, 1700000009);
	pcoll_free(&pc);

	/* Delete one; a second delete finds nothing. */
	assert_int_equal(st->ops->proxy_delete(st, "p1"), 0);
	assert_int_equal(st->ops->proxy_delete(st, "p1"), -1);
	assert_non_null(strstr(store_error(st), "p1"));

	/* Inside a rolled back transaction: gone with it. */
	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), 0);
	p = mkproxy("p3", "proxy-key-3");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	proxy_free(p);
	assert_int_equal(st->ops->rollback(st), 0);
	store_free(st);

	st = open_ok(f);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 1);
	assert_string_equal(pc.p[0]->name, "p2");
	pcoll_free(&pc);
	store_free(st);
}

/*
 * A version 3 database (before proxies) is migrated on open: its backends
 * stay, it has no proxies, and proxies can be added.  A stored row no roostd
 * writes (a name too long) is refused on load, not cut short.
 */
static void
test_proxy_migration(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct proxy *p;
	struct bcoll bc = { 0 };
	struct pcoll pc = { 0 };

	st = open_ok(f);
	add_backend(st, "b1");
	store_free(st);
	raw_sql(f, "DROP TABLE proxies;"
	    "DROP TABLE moves;"
	    "DROP TABLE move_jobs;"
	    "ALTER TABLE users DROP COLUMN confirmed;"
	    "ALTER TABLE backends DROP COLUMN probe_user;"
	    "ALTER TABLE backends DROP COLUMN probe_password;"
	    "DROP TRIGGER users_repl_gone;"
	    "DROP TRIGGER backends_replica_gone;"
	    "DROP TABLE repl;"
	    "DROP TABLE changes;"
	    "DROP TABLE repl_requests;"
	    "ALTER TABLE users DROP COLUMN replica;"
	    "ALTER TABLE users DROP COLUMN replica_current;"
	    "ALTER TABLE users DROP COLUMN failed_over;"
	    "UPDATE meta SET value = '3' WHERE key = 'schema_version'");

	st = open_ok(f);
	assert_int_equal(st->ops->backend_load(st, collect_backend, &bc), 0);
	assert_int_equal(bc.n, 1);
	bcoll_free(&bc);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), 0);
	assert_int_equal(pc.n, 0);
	p = mkproxy("p1", "proxy-key-1");
	assert_int_equal(st->ops->proxy_insert(st, p), 0);
	proxy_free(p);
	store_free(st);

	raw_sql(f, "UPDATE proxies SET name = '"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'");
	st = open_ok(f);
	assert_int_equal(st->ops->proxy_load(st, collect_proxy, &pc), -1);
	assert_non_null(strstr(store_error(st), "name"));
	assert_null(strstr(store_error(st), "proxy-key-1"));
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
	struct fixture *f = *state;
	struct store *st;
	int calls = 0;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->backend_load(st, stop_at_first, &calls), -1);
	assert_int_equal(calls, 1);
	/* The statement was reset: the next load starts afresh. */
	calls = 0;
	assert_int_equal(st->ops->backend_load(st, stop_at_first, &calls), -1);
	assert_int_equal(calls, 1);
	store_free(st);
}

static void
test_user_unknown_backend(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_user u = { "alice", "ghost", "", 0, 1, 0, 0, NULL, 0, 0 };

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->user_put(st, &u, 1), -1);
	assert_non_null(strstr(store_error(st), "ghost"));
	assert_int_equal(user_count(st), 0);
	store_free(st);
}

static void
test_backend_delete_releases(void **state)
{
	struct fixture *f = *state;
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
	assert_string_equal(bc.b[0]->name, "b2");
	bcoll_free(&bc);

	/* An empty backend releases nobody. */
	add_backend(st, "b3");
	assert_int_equal(st->ops->backend_delete(st, "b3", &released), 0);
	assert_int_equal(released, 0);

	/* Unknown: an error, and nothing else changes. */
	assert_int_equal(st->ops->backend_delete(st, "b1", &released), -1);
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
	struct fixture *f = *state;
	struct store *st;
	struct ucoll uc = { 0 };
	struct store_user bad[3] = {
		{ "u1", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u2", "ghost", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u3", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
	};
	struct store_user good[2] = {
		{ "u1", "b1", "", 0, 1, 0, 0, NULL, 0, 0 },
		{ "u2", "b2", "gold", 1, 2, 3, 0, NULL, 0, 0 },
	};

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");

	assert_int_equal(st->ops->user_put(st, bad, 3), -1);
	assert_int_equal(user_count(st), 0);

	assert_int_equal(st->ops->user_put(st, good, 2), 0);
	assert_int_equal(user_count(st), 2);

	/* Upsert: the same user again replaces the record. */
	good[0].backend = "b2";
	good[0].pinned = 1;
	good[0].since = 50;
	assert_int_equal(st->ops->user_put(st, good, 1), 0);
	assert_int_equal(user_count(st), 2);
	assert_int_equal(st->ops->user_get(st, "u1", collect_user, &uc), 1);
	assert_string_equal(uc.backend[0], "b2");
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(uc.since[0], 50);
	uc.n = 0;
	assert_int_equal(st->ops->user_get(st, "u2", collect_user, &uc), 1);
	assert_string_equal(uc.tag[0], "gold");
	assert_int_equal(uc.last_lookup[0], 3);

	/* Inside begin(): a failed batch leaves the earlier work of the
	 * transaction alone and writes none of its own records. */
	assert_int_equal(st->ops->begin(st, 0), 0);
	put_user(st, "early", "b1");
	bad[0].user = "u10";
	bad[2].user = "u30";
	assert_int_equal(st->ops->user_put(st, bad, 3), -1);
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(user_count(st), 3);
	uc.n = 0;
	assert_int_equal(st->ops->user_get(st, "early", collect_user, &uc), 1);
	assert_int_equal(st->ops->user_get(st, "u10", collect_user, &uc), 0);
	store_free(st);
}

static void
test_user_delete(void **state)
{
	struct fixture *f = *state;
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
	struct fixture *f = *state;
	struct store *st;
	struct ucoll uc;
	char name[32], last[32], expect[32];
	const char *after;
	int i, seen, pages;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	/* Inserted out of order; even numbers on b1, odd on b2. */
	for (i = 24; i >= 0; i--) {
		snprintf(name, sizeof(name), "user%02d", i);
		put_user(st, name, i % 2 == 0 ? "b1" : "b2");
	}

	/* All users, 10 a page. */
	after = NULL;
	seen = 0;
	for (pages = 0; pages < 10; pages++) {
		memset(&uc, 0, sizeof(uc));
		assert_int_equal(st->ops->user_list(st, NULL, after, 10,
		    collect_user, &uc), 0);
		if (uc.n == 0)
			break;
		assert_true(uc.n <= 10);
		for (i = 0; i < (int)uc.n; i++) {
			snprintf(expect, sizeof(expect), "user%02d", seen++);
			assert_string_equal(uc.user[i], expect);
		}
		snprintf(last, sizeof(last), "%s", uc.user[uc.n - 1]);
		after = last;
	}
	assert_int_equal(seen, 25);
	assert_int_equal(pages, 3);

	/* Only b2 (odd numbers), 4 a page. */
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

	/* `after` need not be an existing user. */
	memset(&uc, 0, sizeof(uc));
	assert_int_equal(st->ops->user_list(st, "b1", "user05x", 100,
	    collect_user, &uc), 0);
	assert_int_equal(uc.n, 10);
	assert_string_equal(uc.user[0], "user06");

	/* Unknown backend: an empty list. */
	memset(&uc, 0, sizeof(uc));
	assert_int_equal(st->ops->user_list(st, "zz", NULL, 100,
	    collect_user, &uc), 0);
	assert_int_equal(uc.n, 0);
	store_free(st);
}

static void
test_user_touch(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct ucoll uc = { 0 };
	struct store_user u = { "alice", "b1", "gold", 1, 500, 0, 0, NULL, 0, 0 };
	struct store_user t[3] = {
		{ "alice", NULL, NULL, 0, 0, 1000, 0, NULL, 0, 0 },
		{ "ghost", NULL, NULL, 0, 0, 1000, 0, NULL, 0, 0 },
		{ "bob", NULL, NULL, 0, 0, 2000, 0, NULL, 0, 0 },
	};

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	put_user(st, "bob", "b1");

	assert_int_equal(st->ops->user_touch(st, t, 3), 0);
	/* A touch never creates a user. */
	assert_int_equal(user_count(st), 2);
	assert_int_equal(st->ops->user_get(st, "alice", collect_user, &uc), 1);
	assert_int_equal(uc.last_lookup[0], 1000);
	/* and leaves the rest of the record alone */
	assert_string_equal(uc.backend[0], "b1");
	assert_string_equal(uc.tag[0], "gold");
	assert_int_equal(uc.pinned[0], 1);
	assert_int_equal(uc.since[0], 500);
	assert_int_equal(st->ops->user_get(st, "bob", collect_user, &uc), 1);
	assert_int_equal(uc.last_lookup[1], 2000);

	/* An older time arriving late does not move it back. */
	t[0].last_lookup = 900;
	assert_int_equal(st->ops->user_touch(st, t, 1), 0);
	uc.n = 0;
	assert_int_equal(st->ops->user_get(st, "alice", collect_user, &uc), 1);
	assert_int_equal(uc.last_lookup[0], 1000);
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
	struct fixture *f = *state;
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
	assert_string_equal(ac.subject[1], "b5");
	assert_string_equal(ac.subject[2], "b4");
	assert_string_equal(ac.detail[1], "{\"weight\": 100}");
	assert_true(ac.id[0] > ac.id[1] && ac.id[1] > ac.id[2]);
	assert_true(ac.at[0] >= t0 && ac.at[0] <= now_sec());
	first = ac.id[2];

	/* Next page: strictly older than the last id seen. */
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(st->ops->audit_list(st, first, 10, collect_audit,
	    &ac), 0);
	assert_int_equal(ac.n, 3);
	assert_string_equal(ac.subject[0], "b3");
	assert_string_equal(ac.subject[2], "b1");

	/* Before the oldest: nothing more. */
	first = ac.id[2];
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(st->ops->audit_list(st, first, 10, collect_audit,
	    &ac), 0);
	assert_int_equal(ac.n, 0);
	store_free(st);

	/* Still there after a reopen. */
	st = open_ok(f);
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(st->ops->audit_list(st, 0, 100, collect_audit, &ac),
	    0);
	assert_int_equal(ac.n, 6);
	store_free(st);
}

static void
test_transactions(void **state)
{
	struct fixture *f = *state;
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

/*
 * The transaction handle: every write names its transaction.  A write on
 * the "none" handle while a transaction is open, or on a handle that has
 * ended, fails and writes nothing; it never joins a transaction unseen.
 */
static void
test_tx_handle(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_tx *tx, *tx2;
	struct store_user u = { "alice", "b1", "", 0, 1700000100, 0, 0, NULL,
	    0, 0 };
	struct store_user v = { "bob", "b1", "", 0, 1700000100, 0, 0, NULL,
	    0, 0 };
	char saved[sizeof(st->err)];

	st = open_ok(f);
	add_backend(st, "b1");

	/* Alone: a transaction of its own. */
	assert_int_equal(store_user_put(store_auto(st), &u, 1), 0);
	assert_int_equal(user_count(st), 1);
	/* No transaction to end. */
	assert_int_equal(store_commit(store_auto(st)), -1);

	assert_non_null(tx = store_begin(st, 0));
	assert_null(store_begin(st, 0));		/* one at a time */
	assert_non_null(strstr(store_error(st), "already open"));
	/* The "none" handle may not join the open transaction. */
	assert_int_equal(store_user_put(store_auto(st), &v, 1), -1);
	assert_non_null(strstr(store_error(st), "a transaction is open"));
	assert_int_equal(store_user_delete(tx, "alice"), 1);
	assert_int_equal(store_rollback(tx), 0);
	/* Both undone: bob was refused, alice's delete rolled back. */
	assert_int_equal(user_count(st), 1);

	/* An ended handle writes nothing, in or out of a new one. */
	assert_int_equal(store_user_put(tx, &v, 1), -1);
	assert_non_null(strstr(store_error(st), "has ended"));
	assert_int_equal(store_commit(tx), -1);
	assert_int_equal(user_count(st), 1);

	assert_non_null(tx2 = store_begin(st, STORE_TX_ADMIN));
	assert_int_equal(store_user_put(tx2, &v, 1), 0);
	assert_int_equal(store_audit_add(tx2, "admin", "user.pin", "bob",
	    "{}"), 0);
	assert_int_equal(store_commit(tx2), 0);
	assert_int_equal(user_count(st), 2);

	/* A rollback after the end changes nothing, the error included. */
	memcpy(saved, st->err, sizeof(saved));
	assert_int_equal(store_rollback(tx2), 0);
	assert_string_equal(st->err, saved);

	/* A write the store has no op for says so. */
	assert_non_null(tx = store_begin(st, 0));
	assert_int_equal(store_change_prune(tx, 1000), -1);
	assert_non_null(strstr(store_error(st), "no such write"));
	assert_int_equal(store_rollback(tx), 0);
	store_free(st);
}

static void
sent_done(void *arg, int rc)
{
	int *got = arg;

	*got = rc == 0 ? 1 : -1;
}

/* A STORE_TX_SEND transaction on SQLite, which never waits on a network:
 * committed at once, done told before store_commit_send returns. */
static void
test_tx_send(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_tx *tx;
	struct event_base *base = event_base_new();
	struct store_user u = { "alice", "b1", "", 0, 1700000100, 0, 0, NULL,
	    0, 0 };
	int got = 0;

	assert_non_null(base);
	st = open_ok(f);
	add_backend(st, "b1");
	assert_non_null(tx = store_begin(st, STORE_TX_SEND));
	assert_int_equal(store_user_put(tx, &u, 1), 0);
	assert_int_equal(store_commit_send(tx, base, sent_done, &got), 0);
	assert_int_equal(got, 1);
	assert_int_equal(store_flying(st), 0);
	assert_int_equal(user_count(st), 1);
	/* Only a transaction begun to be sent. */
	assert_non_null(tx = store_begin(st, 0));
	assert_int_equal(store_commit_send(tx, base, sent_done, &got), -1);
	assert_int_equal(store_rollback(tx), 0);
	store_free(st);
	event_base_free(base);
}

static void
test_file_mode(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct stat sb;
	char wal[200];
	mode_t old;
	int fd;

	/* Not relying on the umask: a wide one still gives 0600. */
	old = umask(0);
	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	store_free(st);
	umask(old);

	/* A file made readable by others is tightened at open. */
	assert_int_equal(chmod(f->path, 0644), 0);
	st = open_ok(f);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	store_free(st);

	/* A file that is not a database is an error, not overwritten. */
	teardown(state);
	setup(state);
	f = *state;
	fd = open(f->path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not sqlite, just text......"
	    "................................................", 83), 83);
	close(fd);
	{
		char err[600];

		assert_null(store_open(f->url, err, sizeof(err)));
		assert_true(strlen(err) > 0);
	}
}

#define BIG_USERS	1000000
#define BIG_BATCH	10000

static int
check_user(const struct store_user *u, void *arg)
{
	size_t *n = arg;

	if (u->user[0] != 'u' || u->backend[0] != 'b')
		return -1;
	(*n)++;
	return 0;
}

static double
elapsed(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) +
	    (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* The daemon loads every assignment at start: a million in well under 2 s. */
static void
test_user_load_million(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_user *batch;
	struct timespec t;
	char (*names)[24];
	size_t i, j, n;
	double load_s, put_s;

	st = open_ok(f);
	add_backend(st, "b1");
	add_backend(st, "b2");
	batch = xcalloc(BIG_BATCH, sizeof(*batch));
	names = xcalloc(BIG_BATCH, sizeof(*names));

	/* Batches in transactions of their own, as an import would. */
	clock_gettime(CLOCK_MONOTONIC, &t);
	for (i = 0; i < BIG_USERS; i += BIG_BATCH) {
		for (j = 0; j < BIG_BATCH; j++) {
			snprintf(names[j], sizeof(names[j]),
			    "user%zu@example.com", i + j);
			batch[j].user = names[j];
			batch[j].backend = (i + j) % 2 ? "b1" : "b2";
			batch[j].tag = "";
			batch[j].since = 1700000000;
		}
		assert_int_equal(st->ops->user_put(st, batch, BIG_BATCH), 0);
	}
	put_s = elapsed(&t);
	free(batch);
	free(names);
	store_free(st);

	/* From a freshly opened store, as at daemon start. */
	st = open_ok(f);
	n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t);
	assert_int_equal(st->ops->user_load(st, check_user, &n), 0);
	load_s = elapsed(&t);
	assert_int_equal(n, BIG_USERS);
	print_message("      %d users: stored in %.2f s, loaded in %.3f s\n",
	    BIG_USERS, put_s, load_s);
	assert_true(load_s < 2.0);
	store_free(st);
}

/* A second store on the same file (a second roostd) is refused and names
 * the holder; once the first is closed the file is free again. */
static void
test_one_store_per_file(void **state)
{
	struct fixture *f = *state;
	struct store *st, *st2;
	char err[600], want[64];

	st = open_ok(f);
	add_backend(st, "b1");
	st2 = store_open(f->url, err, sizeof(err));
	assert_null(st2);
	snprintf(want, sizeof(want), "store in use by pid %ld", (long)getpid());
	if (strstr(err, want) == NULL)
		fail_msg("second open: \"%s\", want \"%s\"", err, want);
	/* The refused open changed nothing. */
	assert_int_equal(user_count(st), 0);
	add_backend(st, "b2");
	store_free(st);

	st = open_ok(f);
	add_backend(st, "b3");
	store_free(st);
}

/* Hold the write lock from another connection, as another process would. */
static sqlite3 *
lock_writer(const struct fixture *f)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	return db;
}

static void
unlock_writer(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

/* roostd's loop must not wait for another process's write lock: a write
 * gives up within a few milliseconds and says the store was busy. */
static void
test_busy_gives_up_fast(void **state)
{
	struct fixture *f = *state;
	struct store_user us[2] = {
		{ "alice", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
		{ "bob", "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 },
	};
	struct store *st;
	sqlite3 *other;
	uint64_t t0, ms;

	st = open_ok(f);
	add_backend(st, "b1");
	other = lock_writer(f);

	t0 = now_msec_mono();
	assert_int_equal(st->ops->user_put(st, us, 2), -1);
	ms = now_msec_mono() - t0;
	if (ms > 50)
		fail_msg("user_put waited %llu ms for the lock",
		    (unsigned long long)ms);
	if (strstr(store_error(st), "locked") == NULL)
		fail_msg("error: %s", store_error(st));
	assert_int_equal(st->errclass, STORE_ERETRY);

	t0 = now_msec_mono();
	assert_int_equal(st->ops->begin(st, 0), -1);
	ms = now_msec_mono() - t0;
	if (ms > 50)
		fail_msg("begin waited %llu ms for the lock",
		    (unsigned long long)ms);
	if (strstr(store_error(st), "locked") == NULL)
		fail_msg("error: %s", store_error(st));
	assert_int_equal(st->errclass, STORE_ERETRY);
	t0 = now_msec_mono();
	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), -1);
	ms = now_msec_mono() - t0;
	if (ms > 50)
		fail_msg("begin waited %llu ms for the lock",
		    (unsigned long long)ms);
	if (strstr(store_error(st), "locked") == NULL)
		fail_msg("error: %s", store_error(st));
	assert_int_equal(st->errclass, STORE_ERETRY);
	/* A refused admin begin leaves the connection as it was. */
	assert_int_equal(st->ops->durable(st), 0);

	/* Once the lock is gone the same write goes through. */
	unlock_writer(other);
	assert_int_equal(st->ops->user_put(st, us, 2), 0);
	assert_int_equal(user_count(st), 2);
	store_free(st);
}

/* A commit that fails (here: the WAL cannot grow past the file size
 * limit) keeps its own error, also after the rollback that callers do
 * next; "no transaction is open" would hide the real cause. */
static void
test_failed_commit_keeps_error(void **state)
{
	struct fixture *f = *state;
	struct store_user u = { NULL, "b1", "", 0, 1700000100, 0, 0, NULL, 0, 0 };
	struct store *st;
	struct rlimit old, small;
	char name[32];
	int i, rc;

	st = open_ok(f);
	add_backend(st, "b1");
	assert_int_equal(st->ops->begin(st, 0), 0);
	/* Enough rows that the commit writes far past the limit below, few
	 * enough that they stay in the page cache until the commit. */
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "user%05d@example.com", i);
		u.user = name;
		if (st->ops->user_put(st, &u, 1) == -1)
			fail_msg("user_put: %s", store_error(st));
	}
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 64 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	rc = st->ops->commit(st);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -1);
	st->ops->rollback(st);
	print_message("commit failed: %s\n", store_error(st));
	if (strstr(store_error(st), "commit") == NULL ||
	    strstr(store_error(st), "no transaction") != NULL)
		fail_msg("after the rollback the error is \"%s\"",
		    store_error(st));
	/* Nothing of it was kept, and the store works on. */
	assert_int_equal(user_count(st), 0);
	put_user(st, "alice", "b1");
	assert_int_equal(user_count(st), 1);
	store_free(st);
}

/* Admin transactions are on stable storage when commit returns (FULL);
 * the others, lookup group commits among them, stay NORMAL. */
static void
test_admin_tx_durable(void **state)
{
	struct fixture *f = *state;
	struct store *st;

	st = open_ok(f);
	assert_int_equal(st->ops->durable(st), 0);
	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), 0);
	assert_int_equal(st->ops->durable(st), 1);
	add_backend(st, "b1");
	assert_int_equal(st->ops->commit(st), 0);
	assert_int_equal(st->ops->durable(st), 0);

	assert_int_equal(st->ops->begin(st, 0), 0);
	assert_int_equal(st->ops->durable(st), 0);
	put_user(st, "alice", "b1");
	assert_int_equal(st->ops->commit(st), 0);

	assert_int_equal(st->ops->begin(st, STORE_TX_ADMIN), 0);
	assert_int_equal(st->ops->durable(st), 1);
	assert_int_equal(st->ops->rollback(st), 0);
	assert_int_equal(st->ops->durable(st), 0);
	store_free(st);
}

/* Replication records: the dsync state survives queue changes, the record
 * goes with its user, a replica goes with its backend. */
struct rcoll {
	size_t	n;
	char	user[8][32];
	char	state[8][64];
	int	prio[8];
	int64_t	last_ok[8];
};

static int
collect_repl(const struct store_repl *r, void *arg)
{
	struct rcoll *c = arg;

	if (c->n < 8) {
		snprintf(c->user[c->n], sizeof(c->user[0]), "%s", r->user);
		snprintf(c->state[c->n], sizeof(c->state[0]), "%s", r->state);
		c->prio[c->n] = r->priority;
		c->last_ok[c->n] = r->last_ok;
	}
	c->n++;
	return 0;
}

static int
collect_one_user(const struct store_user *u, void *arg)
{
	struct store_user *out = arg;
	static char replica[64];

	*out = *u;
	out->user = NULL;
	out->backend = NULL;
	out->tag = NULL;
	snprintf(replica, sizeof(replica), "%s", u->replica ? u->replica : "");
	out->replica = u->replica ? replica : NULL;
	return 0;
}

static void
test_repl_records(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_user u = { "alice", "b1", "", 0, 1, 0, 1, "b2", 1, 1 };
	struct store_user got;
	struct store_repl r;
	struct rcoll c;

	add_backend(st, "b1");
	add_backend(st, "b2");
	assert_int_equal(st->ops->user_put(st, &u, 1), 0);
	put_user(st, "bob", "b1");

	memset(&got, 0, sizeof(got));
	assert_int_equal(st->ops->user_get(st, "alice", collect_one_user,
	    &got), 1);
	assert_string_equal(got.replica, "b2");
	assert_int_equal(got.replica_current, 1);
	assert_int_equal(got.failed_over, 1);
	assert_int_equal(st->ops->user_get(st, "bob", collect_one_user,
	    &got), 1);
	assert_null(got.replica);

	/* A good sync: state and times. */
	memset(&r, 0, sizeof(r));
	r.user = "alice";
	r.priority = -1;
	r.state = "STATE-1";
	r.last_ok = r.last_fast = 100;
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	/* Queued again: no state given, the stored one stays; times never
	 * go back. */
	memset(&r, 0, sizeof(r));
	r.user = "alice";
	r.priority = REPL_P_HIGH;
	r.queued = 5000;
	r.error = "sync failed";
	r.fails = 2;
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_get(st, "alice", collect_repl, &c), 1);
	assert_string_equal(c.state[0], "STATE-1");
	assert_int_equal(c.prio[0], REPL_P_HIGH);
	assert_int_equal(c.last_ok[0], 100);
	assert_int_equal(st->ops->repl_get(st, "bob", collect_repl, &c), 0);

	/* Only users with work load at start. */
	memset(&r, 0, sizeof(r));
	r.user = "bob";
	r.priority = -1;
	r.state = "S";
	assert_int_equal(st->ops->repl_put(st, &r, 1), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_load(st, collect_repl, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.user[0], "alice");

	/* The record goes with the user; the replica with its backend. */
	assert_int_equal(st->ops->user_delete(st, "bob"), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(st->ops->repl_get(st, "bob", collect_repl, &c), 0);
	assert_int_equal(st->ops->backend_delete(st, "b2", NULL), 0);
	assert_int_equal(st->ops->user_get(st, "alice", collect_one_user,
	    &got), 1);
	assert_null(got.replica);
	assert_int_equal(got.replica_current, 0);
	assert_int_equal(st->ops->repl_delete(st, "alice"), 1);
	assert_int_equal(st->ops->repl_delete(st, "alice"), 0);
	store_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_directory,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_kill,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_roundtrip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_tls_and_migration,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_probe_and_migration,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_roundtrip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_migration,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_stops,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_unknown_backend,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_delete_releases,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_put_batch_atomic,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_delete,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_list_pages,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_touch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_load_million,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_store_per_file,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_gives_up_fast,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_keeps_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_repl_records,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_handle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tx_send, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_admin_tx_durable,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
