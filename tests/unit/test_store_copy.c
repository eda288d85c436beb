/*
 * test_store_copy.c: roostd -C, the copy of a whole store (store_copy.c).
 * A SQLite store filled through the store operations with every kind of
 * record is copied into PostgreSQL (a fresh schema in the cluster of
 * pgtmp.h) and back into a new SQLite file; each side is read back through
 * the operations and compared field by field, record by record.  A copy
 * into a store that holds anything, from a missing file, to an unreachable
 * server or one that fails half-way writes nothing.
 *
 * Without PostgreSQL installed (pgtmp exits 77) the cases are skipped,
 * saying so.
 */
#include <sys/stat.h>

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "backend.h"
#include "pgtmp.h"
#include "proxy.h"
#include "store.h"
#include "store_copy.h"
#include "xmalloc.h"

#define NUSERS	1500	/* more than a page (1000) and a batch (256) */
#define NAUDIT	1200
#define NMOVES	1100	/* more than a page of moves too */

struct fixture {
	char	 dir[64];
	char	 src[128];	/* sqlite:DIR/src.db */
	char	 back[128];	/* sqlite:DIR/back.db, the way back */
	char	 schema[48];
	char	 pgurl[1024];
};

static int
setup(void **state)
{
	struct fixture *f;
	char sql[128];

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
	f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/roost-copy-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->src, sizeof(f->src), "sqlite:%s/src.db", f->dir);
	snprintf(f->back, sizeof(f->back), "sqlite:%s/back.db", f->dir);
	snprintf(f->schema, sizeof(f->schema), "c_%ld_%d", (long)getpid(),
	    ++pg.seq);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->schema);
	pg_exec(sql);
	snprintf(f->pgurl, sizeof(f->pgurl), "postgresql:%s "
	    "options='-csearch_path=%s'", pg.conninfo, f->schema);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	if (f == NULL)
		return 0;
	snprintf(cmd, sizeof(cmd), "DROP SCHEMA %s CASCADE", f->schema);
	pg_exec(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		print_message("cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static struct fixture *
fixture(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

static struct store *
open_ok(const char *url)
{
	struct store *st;
	char err[600];

	if ((st = store_open(url, err, sizeof(err))) == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

#define OK(st, call) do {						\
	if ((call) == -1)						\
		fail_msg("%s: %s", #call, store_error(st));		\
} while (0)

static void
add_backends(struct store *st)
{
	struct backend *b;

	b = backend_new("b1");
	snprintf(b->host, sizeof(b->host), "b1.example.com");
	snprintf(b->hostip, sizeof(b->hostip), "192.0.2.1");
	snprintf(b->tag, sizeof(b->tag), "pool");
	b->weight = 250;
	b->state = BACKEND_DRAIN;
	b->tls = BACKEND_TLS_STARTTLS;
	b->ports[PROTO_IMAP] = 1143;
	b->ports[PROTO_DOVEADM] = 8080;
	b->doveadm_url = xstrdup("http://192.0.2.1:8080/doveadm/v1");
	b->doveadm_key = xstrdup("k3y-of-b1");
	b->probe_user = xstrdup("probe@example.com");
	b->probe_pass = xstrdup("pr0be");
	b->created = 1700000001;
	b->updated = 1700000002;
	OK(st, st->ops->backend_insert(st, b));
	backend_free(b);

	b = backend_new("b2");
	snprintf(b->host, sizeof(b->host), "b2.example.com");
	b->weight = 0;
	b->state = BACKEND_DOWN;
	b->created = 1700000003;
	b->updated = 1700000004;
	OK(st, st->ops->backend_insert(st, b));
	backend_free(b);
}

static void
add_proxies(struct store *st)
{
	struct proxy *p;
	int i;

	for (i = 1; i <= 2; i++) {
		p = proxy_new(i == 1 ? "p1" : "p2");
		p->doveadm_url = xstrdup(i == 1 ? "http://p1:8080/doveadm/v1" :
		    "http://p2:8080/doveadm/v1");
		p->doveadm_key = xstrdup(i == 1 ? "proxy-key-1" : "proxy-key-2");
		p->created = 1700000010 + i;
		p->updated = 1700000020 + i;
		OK(st, st->ops->proxy_insert(st, p));
		proxy_free(p);
	}
}

static void
add_health(struct store *st)
{
	struct store_health h1 = { "b1", "ok", 1700000100, "", 12, 1700000200 };
	struct store_health h2 = { "b2", "failed", 1700000101,
	    "connect: refused", 0, 1700000201 };

	OK(st, st->ops->health_put(st, &h1));
	OK(st, st->ops->health_put(st, &h2));
}

static void
add_users_and_repl(struct store *st)
{
	static struct store_user us[NUSERS];
	static struct store_repl rs[NUSERS];
	static char names[NUSERS][16], states[NUSERS][64];
	int i;

	for (i = 0; i < NUSERS; i++) {
		snprintf(names[i], sizeof(names[i]), "user%04d", i);
		snprintf(states[i], sizeof(states[i]), "dsync-state-%d-%08x", i,
		    (unsigned)(i * 2654435761u));
		us[i] = (struct store_user){ names[i], i % 2 ? "b2" : "b1",
		    i % 3 ? "" : "pool", i % 7 == 0, 1700001000 + i,
		    i % 3 ? 1700002000 + i : 0, i % 2, i % 2 ? NULL :
		    (i % 4 ? "b2" : "b1"), i % 4 == 0, i % 11 == 0 };
		/* Every user has a record; only some have work queued. */
		rs[i] = (struct store_repl){ names[i], i % 5 == 0 ? i % 4 : -1,
		    i % 5 == 0 ? 1700003000000LL + i : 0,
		    i % 9 == 0 ? 1700004000000LL + i : 0, i % 2, i % 9 == 0 ?
		    3 : 0, i % 13 == 0, i % 9 == 0 ? "sync failed: exit 75" :
		    "", states[i], 1700005000 + i, i % 3 ? 1700006000 + i : 0,
		    1700005000 + i };
	}
	OK(st, st->ops->begin(st, 0));
	OK(st, st->ops->user_put(st, us, NUSERS));
	OK(st, st->ops->repl_put(st, rs, NUSERS));
	OK(st, st->ops->commit(st));
}

static void
add_moves_and_jobs(struct store *st)
{
	struct store_move m = { 0, NULL, "b1", "b2", "move", "queued", "", 0,
	    1700007000, 0 };
	struct store_job j1 = { 0, "flush", "b1", 10, 5, 0, "running",
	    1700008000, 0 };
	struct store_job j2 = { 0, "rebalance", "", 0, 2, 0, "running",
	    1700008001, 0 };
	char user[16];
	int i;

	OK(st, st->ops->begin(st, 0));
	for (i = 0; i < NMOVES; i++) {
		snprintf(user, sizeof(user), "user%04d", i);
		m.user = user;
		m.pin = i % 2;
		m.reason = i % 3 ? "move" : "pin";
		m.created = 1700007000 + i;
		OK(st, st->ops->move_insert(st, &m));
		/* The last ones stay open: active moves. */
		if (i < NMOVES - 3)
			OK(st, st->ops->move_state(st, m.id, i % 4 ? "done" :
			    "failed", i % 4 ? "" : "the user was busy"));
		else if (i == NMOVES - 1)
			OK(st, st->ops->move_state(st, m.id, "kicking", ""));
	}
	OK(st, st->ops->job_insert(st, &j1));
	OK(st, st->ops->job_state(st, j1.id, "done", 7));
	OK(st, st->ops->job_insert(st, &j2));
	OK(st, st->ops->job_state(st, j2.id, "running", 1));
	OK(st, st->ops->commit(st));
}

static void
add_audit(struct store *st)
{
	char detail[64];
	int i;

	OK(st, st->ops->begin(st, 0));
	for (i = 0; i < NAUDIT; i++) {
		snprintf(detail, sizeof(detail), "{\"n\":%d}", i);
		OK(st, st->ops->audit_add(st, i % 2 ? "admin" : "system",
		    i % 3 ? "user.pin" : "backend.add", i % 5 ? "b1" : "",
		    detail));
	}
	OK(st, st->ops->commit(st));
}

static void
fill(const char *url)
{
	struct store *st = open_ok(url);

	add_backends(st);
	add_proxies(st);
	add_health(st);
	add_users_and_repl(st);
	add_moves_and_jobs(st);
	add_audit(st);
	store_free(st);
}

/* A store's records, each as one line of every field, sorted. */
struct dump {
	char	**line;
	size_t	  n, cap;
};

static void
dump_add(struct dump *d, const char *fmt, ...)
{
	va_list ap;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 1024;
		d->line = xreallocarray(d->line, d->cap, sizeof(*d->line));
	}
	va_start(ap, fmt);
	if (vasprintf(&d->line[d->n], fmt, ap) == -1)
		fail_msg("vasprintf");
	va_end(ap);
	d->n++;
}

#define S(s)	((s) != NULL ? (s) : "(null)")

static int
d_backend(const struct backend *b, void *arg)
{
	dump_add(arg, "backend %s|%s|%s|%s|%u|%d|%d|%u,%u,%u,%u,%u,%u|%s|%s|"
	    "%s|%s|%lld|%lld", b->name, b->host, b->hostip, b->tag, b->weight,
	    (int)b->state, (int)b->tls, b->ports[0], b->ports[1], b->ports[2],
	    b->ports[3], b->ports[4], b->ports[5], S(b->doveadm_url),
	    S(b->doveadm_key), S(b->probe_user), S(b->probe_pass),
	    (long long)b->created, (long long)b->updated);
	return 0;
}

static int
d_proxy(const struct proxy *p, void *arg)
{
	dump_add(arg, "proxy %s|%s|%s|%lld|%lld", p->name, p->doveadm_url,
	    p->doveadm_key, (long long)p->created, (long long)p->updated);
	return 0;
}

static int
d_health(const struct store_health *h, void *arg)
{
	dump_add(arg, "health %s|%s|%lld|%s|%lld|%lld", h->backend, h->state,
	    (long long)h->since, h->error, (long long)h->latency_ms,
	    (long long)h->checked);
	return 0;
}

static int
d_user(const struct store_user *u, void *arg)
{
	dump_add(arg, "user %s|%s|%s|%d|%lld|%lld|%d|%s|%d|%d", u->user,
	    u->backend, u->tag, u->pinned, (long long)u->since,
	    (long long)u->last_lookup, u->confirmed, S(u->replica),
	    u->replica_current, u->failed_over);
	return 0;
}

struct repl_page {
	struct dump	*d;
	char		 last[64];
	size_t		 n;
};

static int
d_repl(const struct store_repl *r, void *arg)
{
	struct repl_page *p = arg;

	dump_add(p->d, "repl %s|%d|%lld|%lld|%d|%d|%d|%s|%s|%lld|%lld|%lld",
	    r->user, r->priority, (long long)r->queued, (long long)r->due,
	    r->full, r->fails, r->stuck, r->error, S(r->state),
	    (long long)r->last_fast, (long long)r->last_full,
	    (long long)r->last_ok);
	snprintf(p->last, sizeof(p->last), "%s", r->user);
	p->n++;
	return 0;
}

static int
d_move(const struct store_move *m, void *arg)
{
	dump_add(arg, "move %lld|%s|%s|%s|%s|%s|%s|%d|%lld|%lld",
	    (long long)m->id, m->user, m->from, m->to, m->reason, m->state,
	    m->error, m->pin, (long long)m->created, (long long)m->updated);
	return 0;
}

static int
d_job(const struct store_job *j, void *arg)
{
	dump_add(arg, "job %lld|%s|%s|%lld|%lld|%lld|%s|%lld|%lld",
	    (long long)j->id, j->kind, j->backend, (long long)j->max,
	    (long long)j->rate, (long long)j->made, j->state,
	    (long long)j->created, (long long)j->updated);
	return 0;
}

static int
d_audit(const struct store_audit *a, void *arg)
{
	dump_add(arg, "audit %lld|%lld|%s|%s|%s|%s", (long long)a->id,
	    (long long)a->at, a->actor, a->action, a->subject, a->detail);
	return 0;
}

static int
line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every record of the store at url, read with the plain operations (the
 * repl records one at a time with repl_get, not the copy's repl_list). */
static void
dump_store(const char *url, struct dump *d)
{
	struct store *st = open_ok(url);
	struct repl_page rp = { d, "", 0 };
	struct dump users = { 0 };
	size_t i;
	char *u, *bar;

	memset(d, 0, sizeof(*d));
	OK(st, st->ops->backend_load(st, d_backend, d));
	OK(st, st->ops->proxy_load(st, d_proxy, d));
	OK(st, st->ops->health_load(st, d_health, d));
	OK(st, st->ops->user_load(st, d_user, &users));
	for (i = 0; i < users.n; i++) {
		u = users.line[i] + strlen("user ");
		bar = strchr(u, '|');
		*bar = '\0';
		if (st->ops->repl_get(st, u, d_repl, &rp) == -1)
			fail_msg("repl_get %s: %s", u, store_error(st));
		*bar = '|';
		dump_add(d, "%s", users.line[i]);
		free(users.line[i]);
	}
	free(users.line);
	OK(st, st->ops->move_list(st, 0, 0, SIZE_MAX, d_move, d));
	OK(st, st->ops->job_list_all(st, d_job, d));
	OK(st, st->ops->audit_list(st, 0, SIZE_MAX, d_audit, d));
	store_free(st);
	qsort(d->line, d->n, sizeof(*d->line), line_cmp);
}

static void
dump_free(struct dump *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->line[i]);
	free(d->line);
}

static void
assert_same(const struct dump *a, const struct dump *b)
{
	size_t i;

	for (i = 0; i < a->n && i < b->n; i++)
		if (strcmp(a->line[i], b->line[i]) != 0)
			fail_msg("first difference:\n  %s\n  %s", a->line[i],
			    b->line[i]);
	assert_int_equal(a->n, b->n);
}

static int
has_line(const struct dump *d, const char *line)
{
	return bsearch(&line, d->line, d->n, sizeof(*d->line),
	    line_cmp) != NULL;
}

static int
has_prefix(const struct dump *d, const char *prefix)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strncmp(d->line[i], prefix, strlen(prefix)) == 0)
			return 1;
	return 0;
}

/* SQL on the fixture's schema, behind the store's back. */
static void
raw_pg(const struct fixture *f, const char *sql)
{
	char *q;

	xasprintf(&q, "SET search_path = %s; %s; RESET search_path",
	    f->schema, sql);
	pg_exec(q);
	free(q);
}

/* The first column of the first row of a query on the admin connection,
 * as a number. */
static long
pg_count(const char *fmt, ...)
{
	PGresult *res;
	va_list ap;
	char *sql;
	long n;

	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) == -1)
		fail_msg("vasprintf");
	va_end(ap);
	res = PQexec(pg.admin, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg.admin));
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	free(sql);
	return n;
}

/* Copy with store_copy_urls; its output into out (of outlen). */
static int
copy(const char *from, const char *to, char *out, size_t outlen, char *err,
    size_t errlen)
{
	FILE *fp = tmpfile();
	size_t n;
	int rv;

	assert_non_null(fp);
	err[0] = '\0';
	rv = store_copy_urls(from, to, fp, err, errlen);
	rewind(fp);
	n = fread(out, 1, outlen - 1, fp);
	out[n] = '\0';
	fclose(fp);
	return rv;
}

static void
digest_of(const char *url, struct store_digest *d)
{
	struct store *st = open_ok(url);

	OK(st, store_digest(st, d));
	store_free(st);
}

static int
count_audit(const struct store_audit *a, void *arg)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

static void
test_copy_there_and_back(void **state)
{
	struct fixture *f = fixture(state);
	struct dump src, pg_d, back;
	struct store_digest d1, d2;
	struct store *st;
	struct store_move m = { 0, "user1400", "b1", "b2", "move", "queued",
	    "", 0, 1700009000, 0 };
	char out[2048], err[1024], line[128];
	int n, t;

	fill(f->src);
	dump_store(f->src, &src);
	/* 2 backends, 2 proxies, 2 verdicts, the users and their records,
	 * the moves, 2 jobs, the audit. */
	assert_int_equal(src.n, 6 + 2 * NUSERS + NMOVES + 2 + NAUDIT);

	if (copy(f->src, f->pgurl, out, sizeof(out), err, sizeof(err)) != 0)
		fail_msg("copy to PostgreSQL: %s", err);
	snprintf(line, sizeof(line), "  users        %10d\n", NUSERS);
	assert_non_null(strstr(out, line));
	snprintf(line, sizeof(line), "  replication  %10d\n", NUSERS);
	assert_non_null(strstr(out, line));
	snprintf(line, sizeof(line), "  audit        %10d\n", NAUDIT);
	assert_non_null(strstr(out, line));
	assert_non_null(strstr(out, "  jobs                  2\n"));
	assert_non_null(strstr(out, "verified: "));
	/* Never the connection string, nor its password. */
	assert_null(strstr(out, "password"));
	assert_null(strstr(out, pg.conninfo));

	dump_store(f->pgurl, &pg_d);
	assert_same(&src, &pg_d);
	/* A few by hand, so that the dumps cannot both be wrong alike. */
	assert_true(has_line(&pg_d, "backend b1|b1.example.com|192.0.2.1|pool|"
	    "250|1|2|1143,110,24,587,4190,8080|"
	    "http://192.0.2.1:8080/doveadm/v1|k3y-of-b1|probe@example.com|"
	    "pr0be|1700000001|1700000002"));
	assert_true(has_line(&pg_d, "user user0000|b1|pool|1|1700001000|0|0|"
	    "b1|1|1"));
	snprintf(line, sizeof(line), "repl user0007|-1|0|0|1|0|0||"
	    "dsync-state-7-%08x|1700005007|1700006007|1700005007",
	    (unsigned)(7 * 2654435761u));
	assert_true(has_line(&pg_d, line));
	assert_true(has_line(&pg_d, "repl user0000|0|1700003000000|"
	    "1700004000000|0|3|1|sync failed: exit 75|"
	    "dsync-state-0-00000000|1700005000|0|1700005000"));
	assert_true(has_prefix(&pg_d, "job 1|flush|b1|10|5|7|done|1700008000|"));
	assert_true(has_prefix(&pg_d, "move 1|user0000|b1|b2|pin|failed|"
	    "the user was busy|0|1700007000|"));
	assert_true(has_prefix(&pg_d, "move 1100|user1099|b1|b2|move|kicking||"
	    "1|1700008099|"));
	assert_true(has_line(&pg_d, "audit 1200|") == 0);
	assert_true(has_prefix(&pg_d, "audit 1200|"));

	/* New ids go on past the copied ones. */
	st = open_ok(f->pgurl);
	OK(st, st->ops->move_insert(st, &m));
	assert_int_equal(m.id, NMOVES + 1);
	OK(st, st->ops->audit_add(st, "admin", "test", "", "{}"));
	n = 0;
	OK(st, st->ops->audit_list(st, NAUDIT + 2, 1, count_audit, &n));
	assert_int_equal(n, 1);
	OK(st, st->ops->move_state(st, m.id, "failed", "test"));
	store_free(st);
	raw_pg(f, "DELETE FROM moves WHERE id > 1100; "
	    "DELETE FROM audit WHERE id > 1200");

	/* And the way back: PostgreSQL into a new SQLite file. */
	if (copy(f->pgurl, f->back, out, sizeof(out), err, sizeof(err)) != 0)
		fail_msg("copy back to SQLite: %s", err);
	dump_store(f->back, &back);
	assert_same(&src, &back);

	/* What the copy's check compares: one dsync state changed behind
	 * the store's back shows in that table's digest, and only there. */
	raw_pg(f, "UPDATE repl SET state = 'other' WHERE \"user\" = 'user0500'");
	digest_of(f->back, &d1);
	digest_of(f->pgurl, &d2);
	for (t = 0; t < ST_COUNT; t++) {
		assert_int_equal(d1.n[t], d2.n[t]);
		if (t == ST_REPL)
			assert_true(d1.sum[t] != d2.sum[t]);
		else
			assert_true(d1.sum[t] == d2.sum[t]);
	}
	dump_free(&src);
	dump_free(&pg_d);
	dump_free(&back);
}

/* Every table of the fixture's schema but meta is empty. */
static void
assert_pg_empty(const struct fixture *f)
{
	const char *tables[] = { "backends", "proxies", "backend_health",
	    "users", "repl", "moves", "move_jobs", "audit" };
	size_t i;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (pg_count("SELECT count(*) FROM %s.%s", f->schema,
		    tables[i]) != 0)
			fail_msg("%s has rows", tables[i]);
}

static void
test_copy_refuses_non_empty(void **state)
{
	struct fixture *f = fixture(state);
	struct store *st;
	char out[2048], err[1024];

	fill(f->src);
	/* Anything at all: here only an audit entry. */
	st = open_ok(f->pgurl);
	OK(st, st->ops->audit_add(st, "admin", "test", "", "{}"));
	store_free(st);
	assert_int_equal(copy(f->src, f->pgurl, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_string_equal(err, "the destination is not empty (it has "
	    "1 audit); copy only into a new store");
	assert_string_equal(out, "");
	assert_int_equal(pg_count("SELECT count(*) FROM %s.audit",
	    f->schema), 1);
	raw_pg(f, "DELETE FROM audit");
	assert_pg_empty(f);

	/* Nor into a SQLite store that holds something. */
	assert_int_equal(copy(f->pgurl, f->src, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "the destination is not empty (it has "
	    "2 backends, 2 proxies, 2 health, 1500 users, 1500 replication, "
	    "1100 moves, 2 jobs, 1200 audit)"));
}

static void
test_copy_bad_source_or_destination(void **state)
{
	struct fixture *f = fixture(state);
	struct stat sb;
	char out[2048], err[1024], missing[160], bad[1200];

	/* A missing source file is not created, nor anything copied. */
	snprintf(missing, sizeof(missing), "sqlite:%s/nosuch.db", f->dir);
	assert_int_equal(copy(missing, f->pgurl, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "source: "));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(stat(missing + 7, &sb), -1);
	/* The destination was not even opened: no tables made. */
	assert_int_equal(pg_count("SELECT count(*) FROM pg_tables"
	    " WHERE schemaname = '%s'", f->schema), 0);

	/* An unreachable server, its password never in the message. */
	fill(f->src);
	assert_int_equal(copy(f->src, "postgresql:host=127.0.0.1 port=1 "
	    "user=roost password=s3cr3t-pw connect_timeout=2", out,
	    sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "destination: postgresql store: "));
	assert_null(strstr(err, "s3cr3t-pw"));
	assert_string_equal(out, "");

	/* Not a store of either kind; the same store twice. */
	assert_int_equal(copy(f->src, "mysql:x", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown store type"));
	assert_int_equal(copy(f->src, f->src, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_string_equal(err, "FROM and TO are the same store");

	/* A record PostgreSQL refuses half-way (text that is not UTF-8,
	 * which SQLite keeps): the copy fails and writes nothing at all. */
	snprintf(bad, sizeof(bad), "%s/src.db", f->dir);
	{
		sqlite3 *db;

		assert_int_equal(sqlite3_open(bad, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE audit SET detail ="
		    " CAST(X'7B22E2' || X'FF7D' AS TEXT) WHERE id = 1000",
		    NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(copy(f->src, f->pgurl, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "writing the destination: audit "
	    "restore: "));
	assert_string_equal(out, "");
	assert_pg_empty(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_there_and_back,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_refuses_non_empty,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_copy_bad_source_or_destination, setup, teardown),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	pg_down();
	return rc;
}
