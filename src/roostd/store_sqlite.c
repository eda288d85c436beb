/*
 * store_sqlite.c: the embedded store, one SQLite file in WAL mode.  This is
 * what a single roostd runs on; it keeps backends, proxies, user assignments
 * and the audit trail.  Every statement is prepared once at open and only ever gets
 * bound parameters, so no input is ever part of SQL text.
 *
 * One roostd per file: each roostd keeps the whole map in memory, so two on
 * one file would drift apart.  Open takes an flock on FILE.lock (which then
 * holds the pid) for as long as the store is open; several roostd need the
 * shared PostgreSQL store.
 *
 * Durability: commits run with synchronous=NORMAL, which in WAL mode puts a
 * commit in the -wal file before it returns, so it survives kill -9 of
 * roostd; the WAL is fsynced only by the checkpointer, once a second.  Admin
 * transactions (backends, pins, forgets, and moves and the queue later) run
 * with synchronous=FULL: fsynced before the answer, so a power loss cannot
 * lose them.  The lookup group commits stay NORMAL, on purpose: an fsync
 * per pass would put the disk's latency on every new user's login.  What a
 * power loss can take is the last second of new assignments, and each of
 * them was computed by the hash from the backend set; every change of that
 * set is an admin transaction whose fsync also makes every earlier commit
 * durable.  So after the reboot the hash puts a lost user where it put him
 * before, unless what the hash saw was not stored: backend health (probes)
 * or an idle assignment expired in that same second.  That is the known
 * cost of NORMAL here.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>
#include <time.h>

#include "backend.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/*
 * Schema migrations: step i takes the schema from version i to i + 1 and runs
 * in a transaction of its own together with the version bump, so a crash in
 * the middle leaves the previous version intact.  Append, never edit.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE meta ("
	"  key	TEXT PRIMARY KEY,"
	"  value	TEXT NOT NULL"
	");"
	"CREATE TABLE backends ("
	"  name		TEXT PRIMARY KEY,"
	"  host		TEXT NOT NULL,"
	"  hostip		TEXT NOT NULL DEFAULT '',"
	"  tag		TEXT NOT NULL DEFAULT '',"
	"  weight		INTEGER NOT NULL,"
	"  state		TEXT NOT NULL,"
	"  port_imap	INTEGER NOT NULL DEFAULT 0,"
	"  port_pop3	INTEGER NOT NULL DEFAULT 0,"
	"  port_lmtp	INTEGER NOT NULL DEFAULT 0,"
	"  port_submission	INTEGER NOT NULL DEFAULT 0,"
	"  port_sieve	INTEGER NOT NULL DEFAULT 0,"
	"  port_doveadm	INTEGER NOT NULL DEFAULT 0,"
	"  doveadm_url	TEXT,"
	"  doveadm_key	TEXT,"
	"  created		INTEGER NOT NULL,"
	"  updated		INTEGER NOT NULL"
	");"
	/* Keyed and clustered on the user: user_list pages walk the table in
	 * order and there is no second copy of the key in a rowid index. */
	"CREATE TABLE users ("
	"  user		TEXT PRIMARY KEY,"
	"  backend		TEXT NOT NULL REFERENCES backends(name),"
	"  tag		TEXT NOT NULL DEFAULT '',"
	"  pinned		INTEGER NOT NULL DEFAULT 0,"
	"  since		INTEGER NOT NULL DEFAULT 0,"
	"  last_lookup	INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE INDEX users_backend ON users(backend, user);"
	"CREATE TABLE audit ("
	"  id		INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at		INTEGER NOT NULL,"
	"  actor		TEXT NOT NULL,"
	"  action		TEXT NOT NULL,"
	"  subject		TEXT NOT NULL DEFAULT '',"
	"  detail		TEXT NOT NULL DEFAULT '{}'"
	");",
	/* 1 -> 2: how proxies reach the backend (backend_tls_name) */
	"ALTER TABLE backends ADD COLUMN tls TEXT NOT NULL DEFAULT 'no';",
	/* 2 -> 3: health verdicts, kept so that a restart does not hand
	 * out a failed backend before the probes have seen it again. */
	"CREATE TABLE backend_health ("
	"  backend		TEXT PRIMARY KEY"
	"    REFERENCES backends(name) ON DELETE CASCADE,"
	"  state		TEXT NOT NULL,"
	"  since		INTEGER NOT NULL,"
	"  error		TEXT NOT NULL DEFAULT '',"
	"  latency_ms	INTEGER NOT NULL DEFAULT 0,"
	"  checked		INTEGER NOT NULL DEFAULT 0"
	");",
	/* 3 -> 4: the Dovecot proxies, whose doveadm API kicks go to */
	"CREATE TABLE proxies ("
	"  name		TEXT PRIMARY KEY,"
	"  doveadm_url	TEXT NOT NULL,"
	"  doveadm_key	TEXT NOT NULL,"
	"  created		INTEGER NOT NULL,"
	"  updated		INTEGER NOT NULL"
	");",
	/* 4 -> 5: moves.  No foreign keys: a move outlives its backends as
	 * history.  The partial index keeps one open move per user. */
	"CREATE TABLE moves ("
	"  id		INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  user		TEXT NOT NULL,"
	"  from_backend	TEXT NOT NULL,"
	"  to_backend	TEXT NOT NULL,"
	"  reason		TEXT NOT NULL,"
	"  state		TEXT NOT NULL,"
	"  pin		INTEGER NOT NULL DEFAULT 0,"
	"  error		TEXT NOT NULL DEFAULT '',"
	"  created		INTEGER NOT NULL,"
	"  updated		INTEGER NOT NULL"
	");"
	"CREATE UNIQUE INDEX moves_open ON moves(user)"
	"  WHERE state NOT IN ('done', 'failed');",
	/* 5 -> 6: flush and rebalance jobs, taken up again at start. */
	"CREATE TABLE move_jobs ("
	"  id		INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind		TEXT NOT NULL,"
	"  backend		TEXT NOT NULL DEFAULT '',"
	"  max		INTEGER NOT NULL DEFAULT 0,"
	"  rate		INTEGER NOT NULL DEFAULT 0,"
	"  made		INTEGER NOT NULL DEFAULT 0,"
	"  state		TEXT NOT NULL,"
	"  created		INTEGER NOT NULL,"
	"  updated		INTEGER NOT NULL"
	");",
	/* 6 -> 7: has the user been seen in a session or a delivery?
	 * Assignments from before were never asked: count them as
	 * confirmed, so that an upgrade forgets none of them. */
	"ALTER TABLE users ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;"
	"UPDATE users SET confirmed = 1;",
	/* 7 -> 8: the IMAP probe's test account (NULL: none).  The password
	 * is kept as given: roostd has to send it to the backend. */
	"ALTER TABLE backends ADD COLUMN probe_user TEXT;"
	"ALTER TABLE backends ADD COLUMN probe_password TEXT;",
	/* 8 -> 9: replication.  The replica is stored with the assignment
	 * (NULL: none yet); the queue and each user's dsync state in repl,
	 * which goes with the user, as a replica goes with its backend. */
	"ALTER TABLE users ADD COLUMN replica TEXT;"
	"ALTER TABLE users ADD COLUMN replica_current INTEGER NOT NULL"
	"  DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN failed_over INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE repl ("
	"  user		TEXT PRIMARY KEY,"
	"  priority	INTEGER,"
	"  queued		INTEGER NOT NULL DEFAULT 0,"
	"  due		INTEGER NOT NULL DEFAULT 0,"
	"  full		INTEGER NOT NULL DEFAULT 0,"
	"  fails		INTEGER NOT NULL DEFAULT 0,"
	"  stuck		INTEGER NOT NULL DEFAULT 0,"
	"  error		TEXT NOT NULL DEFAULT '',"
	"  state		TEXT NOT NULL DEFAULT '',"
	"  last_fast	INTEGER NOT NULL DEFAULT 0,"
	"  last_full	INTEGER NOT NULL DEFAULT 0,"
	"  last_ok		INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	/* What repl_load reads at start: the users with work, not all. */
	"CREATE INDEX repl_work ON repl(user)"
	"  WHERE priority IS NOT NULL OR fails > 0 OR stuck > 0;"
	"CREATE TRIGGER users_repl_gone AFTER DELETE ON users"
	"  BEGIN DELETE FROM repl WHERE user = old.user; END;"
	"CREATE TRIGGER backends_replica_gone AFTER DELETE ON backends"
	"  BEGIN UPDATE users SET replica = NULL, replica_current = 0"
	"  WHERE replica = old.name; END;",
	/* 9 -> 10: the change feed's table, as in PostgreSQL, so that one
	 * schema version means the same tables in both stores (a copy from
	 * one to the other relies on it).  Nothing fills it here: one
	 * roostd per SQLite file, so there is nobody to tell, and the
	 * store has no change_* operations. */
	"CREATE TABLE changes ("
	"  seq		INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind		TEXT NOT NULL,"
	"  key		TEXT NOT NULL,"
	"  origin		TEXT NOT NULL DEFAULT '',"
	"  at		INTEGER NOT NULL"
	");"
	"CREATE INDEX changes_at ON changes(at);",
	/* 10 -> 11: replication requests, as in PostgreSQL (the same tables
	 * for the same version); unused here, where one roostd does all. */
	"CREATE TABLE repl_requests ("
	"  id		INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  user		TEXT NOT NULL,"
	"  priority	INTEGER NOT NULL,"
	"  full		INTEGER NOT NULL DEFAULT 0,"
	"  at		INTEGER NOT NULL"
	");",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
    STORE_SCHEMA_VERSION, "one migration step per schema version");
/* The port columns below follow enum proto. */
_Static_assert(PROTO_IMAP == 0 && PROTO_POP3 == 1 && PROTO_LMTP == 2 &&
    PROTO_SUBMISSION == 3 && PROTO_SIEVE == 4 && PROTO_DOVEADM == 5 &&
    PROTO_COUNT == 6, "port columns out of step with enum proto");

#define BACKEND_COLS							\
	"name, host, hostip, tag, weight, state, port_imap, port_pop3, "\
	"port_lmtp, port_submission, port_sieve, port_doveadm, "	\
	"doveadm_url, doveadm_key, created, updated, tls, probe_user, "\
	"probe_password"
#define USER_COLS	"user, backend, tag, pinned, since, last_lookup, confirmed, " \
			"replica, replica_current, failed_over"
#define REPL_COLS	"user, priority, queued, due, full, fails, stuck, " \
			"error, state, last_fast, last_full, last_ok"
#define PROXY_COLS	"name, doveadm_url, doveadm_key, created, updated"

enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_PING,
	S_BACKEND_LOAD,
	S_BACKEND_INSERT,
	S_BACKEND_UPDATE,
	S_BACKEND_DELETE_USERS,
	S_BACKEND_DELETE,
	S_USER_LOAD,
	S_USER_PUT,
	S_USER_DELETE,
	S_USER_GET,
	S_USER_LIST,
	S_USER_LIST_AFTER,
	S_USER_LIST_BACKEND,
	S_USER_LIST_BACKEND_AFTER,
	S_USER_TOUCH,
	S_USER_PLACE,
	S_AUDIT_ADD,
	S_AUDIT_LIST,
	S_HEALTH_PUT,
	S_HEALTH_LOAD,
	S_PROXY_LOAD,
	S_PROXY_INSERT,
	S_PROXY_UPDATE,
	S_PROXY_DELETE,
	S_MOVE_INSERT,
	S_MOVE_STATE,
	S_MOVE_SWITCH_USER,
	S_MOVE_LIST_OPEN,
	S_MOVE_LIST,
	S_JOB_INSERT,
	S_JOB_STATE,
	S_JOB_LIST,
	S_REPL_PUT,
	S_REPL_GET,
	S_REPL_LOAD,
	S_REPL_DELETE,
	S_REPL_LIST,
	S_JOB_LIST_ALL,
	S_MOVE_RESTORE,
	S_JOB_RESTORE,
	S_AUDIT_RESTORE,
	S_COUNT
};

#define MOVE_COLS	"id, user, from_backend, to_backend, reason, state," \
			" pin, error, created, updated"
#define JOB_COLS	"id, kind, backend, max, rate, made, state, created," \
			" updated"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT batch",
	[S_RELEASE] = "RELEASE batch",
	[S_ROLLBACK_TO] = "ROLLBACK TO batch",
	[S_PING] = "SELECT value FROM meta WHERE key = 'schema_version'",
	[S_BACKEND_LOAD] = "SELECT " BACKEND_COLS
	    " FROM backends ORDER BY name",
	[S_BACKEND_INSERT] = "INSERT INTO backends (" BACKEND_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
	    " ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
	[S_BACKEND_UPDATE] = "UPDATE backends SET host = ?2, hostip = ?3,"
	    " tag = ?4, weight = ?5, state = ?6, port_imap = ?7,"
	    " port_pop3 = ?8, port_lmtp = ?9, port_submission = ?10,"
	    " port_sieve = ?11, port_doveadm = ?12, doveadm_url = ?13,"
	    " doveadm_key = ?14, created = ?15, updated = ?16, tls = ?17,"
	    " probe_user = ?18, probe_password = ?19 WHERE name = ?1",
	[S_BACKEND_DELETE_USERS] = "DELETE FROM users WHERE backend = ?1",
	[S_BACKEND_DELETE] = "DELETE FROM backends WHERE name = ?1",
	[S_USER_LOAD] = "SELECT " USER_COLS " FROM users",
	[S_USER_PUT] = "INSERT INTO users (" USER_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
	    " ON CONFLICT (user) DO UPDATE SET backend = excluded.backend,"
	    " tag = excluded.tag, pinned = excluded.pinned,"
	    " since = excluded.since, last_lookup = excluded.last_lookup,"
	    /* a user once seen stays confirmed whoever rewrites the row */
	    " confirmed = max(confirmed, excluded.confirmed),"
	    " replica = excluded.replica,"
	    " replica_current = excluded.replica_current,"
	    " failed_over = excluded.failed_over",
	[S_USER_DELETE] = "DELETE FROM users WHERE user = ?1",
	[S_USER_GET] = "SELECT " USER_COLS " FROM users WHERE user = ?1",
	[S_USER_LIST] = "SELECT " USER_COLS " FROM users"
	    " ORDER BY user LIMIT ?3",
	[S_USER_LIST_AFTER] = "SELECT " USER_COLS " FROM users"
	    " WHERE user > ?2 ORDER BY user LIMIT ?3",
	[S_USER_LIST_BACKEND] = "SELECT " USER_COLS " FROM users"
	    " WHERE backend = ?1 ORDER BY user LIMIT ?3",
	[S_USER_LIST_BACKEND_AFTER] = "SELECT " USER_COLS " FROM users"
	    " WHERE backend = ?1 AND user > ?2 ORDER BY user LIMIT ?3",
	/* max(): a late flush of older lookup times never moves one back. */
	[S_USER_TOUCH] = "UPDATE users SET last_lookup = max(last_lookup, ?2),"
	    " confirmed = max(confirmed, ?3) WHERE user = ?1",
	[S_USER_PLACE] = "INSERT INTO users (" USER_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
	    " ON CONFLICT (user) DO UPDATE SET backend = excluded.backend,"
	    " tag = excluded.tag, pinned = excluded.pinned,"
	    " since = excluded.since, last_lookup = excluded.last_lookup,"
	    " confirmed = max(confirmed, excluded.confirmed),"
	    " replica = excluded.replica,"
	    " replica_current = excluded.replica_current,"
	    " failed_over = excluded.failed_over"
	    /* NULL: never, the row stays as it is */
	    " WHERE users.backend = ?11",
	[S_AUDIT_ADD] = "INSERT INTO audit (at, actor, action, subject, detail)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_AUDIT_LIST] = "SELECT id, at, actor, action, subject, detail"
	    " FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
	[S_HEALTH_PUT] = "INSERT OR REPLACE INTO backend_health (backend,"
	    " state, since, error, latency_ms, checked)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_HEALTH_LOAD] = "SELECT backend, state, since, error, latency_ms,"
	    " checked FROM backend_health ORDER BY backend",
	[S_PROXY_LOAD] = "SELECT " PROXY_COLS " FROM proxies ORDER BY name",
	[S_PROXY_INSERT] = "INSERT INTO proxies (" PROXY_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_PROXY_UPDATE] = "UPDATE proxies SET doveadm_url = ?2,"
	    " doveadm_key = ?3, created = ?4, updated = ?5 WHERE name = ?1",
	[S_PROXY_DELETE] = "DELETE FROM proxies WHERE name = ?1",
	[S_MOVE_INSERT] = "INSERT INTO moves (user, from_backend, to_backend,"
	    " reason, state, pin, error, created, updated)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?7)",
	[S_MOVE_STATE] = "UPDATE moves SET state = ?2, error = ?3,"
	    " updated = ?4 WHERE id = ?1",
	[S_MOVE_SWITCH_USER] = "UPDATE users SET backend = ?3, pinned = ?4,"
	    " since = ?5, replica = ?6, replica_current = ?7,"
	    " failed_over = ?8 WHERE user = ?1 AND backend = ?2",
	[S_MOVE_LIST_OPEN] = "SELECT " MOVE_COLS " FROM moves"
	    " WHERE state NOT IN ('done', 'failed') ORDER BY id LIMIT ?2",
	[S_MOVE_LIST] = "SELECT " MOVE_COLS " FROM moves WHERE id < ?1"
	    " ORDER BY id DESC LIMIT ?2",
	[S_JOB_INSERT] = "INSERT INTO move_jobs (kind, backend, max, rate,"
	    " made, state, created, updated)"
	    " VALUES (?1, ?2, ?3, ?4, 0, 'running', ?5, ?5)",
	[S_JOB_STATE] = "UPDATE move_jobs SET state = ?2, made = ?3,"
	    " updated = ?4 WHERE id = ?1",
	[S_JOB_LIST] = "SELECT " JOB_COLS " FROM move_jobs"
	    " WHERE state = 'running' ORDER BY id",
	/* The dsync state and the times of good syncs are written only
	 * when given (after a sync), never wiped by a queue change. */
	[S_REPL_PUT] = "INSERT INTO repl (" REPL_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, coalesce(?9, ''),"
	    " ?10, ?11, ?12)"
	    " ON CONFLICT (user) DO UPDATE SET priority = excluded.priority,"
	    " queued = excluded.queued, due = excluded.due,"
	    " full = excluded.full, fails = excluded.fails,"
	    " stuck = excluded.stuck, error = excluded.error,"
	    " state = coalesce(?9, state),"
	    " last_fast = max(last_fast, excluded.last_fast),"
	    " last_full = max(last_full, excluded.last_full),"
	    " last_ok = max(last_ok, excluded.last_ok)",
	[S_REPL_GET] = "SELECT " REPL_COLS " FROM repl WHERE user = ?1",
	[S_REPL_LOAD] = "SELECT " REPL_COLS " FROM repl"
	    " WHERE priority IS NOT NULL OR fails > 0 OR stuck > 0",
	[S_REPL_DELETE] = "DELETE FROM repl WHERE user = ?1",
	/* No user is named "": after NULL binds "". */
	[S_REPL_LIST] = "SELECT " REPL_COLS " FROM repl WHERE user > ?1"
	    " ORDER BY user LIMIT ?2",
	[S_JOB_LIST_ALL] = "SELECT " JOB_COLS " FROM move_jobs ORDER BY id",
	/* AUTOINCREMENT keeps the highest id inserted: later ids follow. */
	[S_MOVE_RESTORE] = "INSERT INTO moves (" MOVE_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[S_JOB_RESTORE] = "INSERT INTO move_jobs (" JOB_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_AUDIT_RESTORE] = "INSERT INTO audit (id, at, actor, action,"
	    " subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

/*
 * The checkpointer: a thread with its own connection that copies the WAL
 * into the database file every CKPT_INTERVAL.  A checkpoint fsyncs (the
 * only fsync of WAL with synchronous=NORMAL), and roostd's one event loop
 * must never wait on the disk: so automatic checkpoints are off on the
 * main connection and this thread does them, PASSIVE, never blocking the
 * loop's readers and writers.
 */
#define CKPT_INTERVAL_MS	1000
/* How long a write waits for another process's write lock: at open, before
 * the loop runs, and then on the loop, where every lookup waits with it. */
#define OPEN_BUSY_MS		5000
#define LOOP_BUSY_MS		5

struct ckpt {
	pthread_t	 thread;
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cond;
	int		 stop;
	int		 running;
	sqlite3		*db;
};

struct sqlite_store {
	sqlite3		*db;
	sqlite3_stmt	*stmt[S_COUNT];
	int		 in_tx;		/* inside the caller's begin() */
	int		 tx_full;	/* ... an admin one, synchronous=FULL */
	int		 tx_failed;	/* begin() or commit() failed: none open */
	int		 lockfd;	/* FILE.lock, flocked while open */
	struct ckpt	 ckpt;
};

/* How a mutation groups its statements: its own transaction, or a savepoint
 * inside the caller's so that it is still all or nothing. */
enum txmode { TX_NONE, TX_OWN, TX_SAVEPOINT };

static struct sqlite_store *
impl(struct store *st)
{
	return st->impl;
}

/* Reset after every use so the statement holds no read lock and no
 * references to the caller's strings (they are bound SQLITE_STATIC). */
static void
stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int
sq_fail(struct store *st, const char *what)
{
	sqlite3 *db = impl(st)->db;

	store_set_error(st, "%s: %s", what, sqlite3_errmsg(db));
	switch (sqlite3_extended_errcode(db) & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		st->errclass = STORE_ERETRY;
		break;
	case SQLITE_CONSTRAINT:
		st->errclass = STORE_ECONFLICT;
		break;
	}
	return -1;
}

/* Run a statement that returns no rows; the caller has bound it. */
static int
stmt_exec(struct store *st, enum stmt id, const char *what)
{
	sqlite3_stmt *s = impl(st)->stmt[id];
	int rc;

	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sq_fail(st, what);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t == NULL ? "" : (const char *)t;
}

/*
 * Open a unit of work for a mutation of several statements.  Inside the
 * caller's begin() a savepoint keeps a failed batch from leaving half of
 * itself in the caller's transaction.  A savepoint copies every page it
 * touches first: cheap for the few rows of an API request, but a bulk import
 * of millions of rows is about six times faster outside begin(), in batches.
 */
static int
tx_start(struct store *st, enum txmode *mode)
{
	if (impl(st)->in_tx) {
		*mode = TX_SAVEPOINT;
		return stmt_exec(st, S_SAVEPOINT, "savepoint");
	}
	*mode = TX_OWN;
	return stmt_exec(st, S_BEGIN, "begin");
}

/* Close a unit of work: keep it when ok, undo it otherwise.  The error of
 * the failed step stays in st->err. */
static int
tx_end(struct store *st, enum txmode mode, int ok)
{
	struct sqlite_store *ss = impl(st);
	char saved[sizeof(st->err)];
	enum store_err class;

	if (mode == TX_NONE)
		return ok ? 0 : -1;
	if (ok) {
		if (stmt_exec(st, mode == TX_OWN ? S_COMMIT : S_RELEASE,
		    "commit") == 0)
			return 0;
		/* A failed COMMIT may leave the transaction open. */
	}
	memcpy(saved, st->err, sizeof(saved));
	class = st->errclass;
	if (mode == TX_OWN) {
		if (!sqlite3_get_autocommit(ss->db) &&
		    stmt_exec(st, S_ROLLBACK, "rollback") == -1)
			log_warnx("sqlite store: %s", st->err);
	} else {
		/* ROLLBACK TO keeps the savepoint; RELEASE drops it. */
		if (!sqlite3_get_autocommit(ss->db) &&
		    (stmt_exec(st, S_ROLLBACK_TO, "rollback") == -1 ||
		    stmt_exec(st, S_RELEASE, "release") == -1))
			log_warnx("sqlite store: %s", st->err);
		/* An I/O error can make SQLite roll the whole transaction
		 * back; the caller's commit() then reports it. */
	}
	memcpy(st->err, saved, sizeof(saved));
	st->errclass = class;
	return -1;
}

/*
 * Take FILE.lock for as long as the store is open and write our pid into
 * it.  flock, not fcntl: fcntl locks belong to the process and any close()
 * of the file drops them, and SQLite uses fcntl locks of its own.  The
 * kernel releases an flock when the process dies, so kill -9 leaves the
 * file but not the lock; the pid in it only names a live holder.
 */
static int
lock_take(struct store *st, const char *path)
{
	struct sqlite_store *ss = impl(st);
	char *lockpath, buf[32];
	long long pid;
	ssize_t n;
	int fd;

	xasprintf(&lockpath, "%s.lock", path);
	if ((fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		store_set_error(st, "%s: %s", lockpath, strerror(errno));
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK) {
			store_set_error(st, "%s: flock: %s", lockpath,
			    strerror(errno));
			goto fail;
		}
		/* Empty while the holder is between flock and write. */
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (parse_ll(buf, 1, INT_MAX, &pid) == 0)
			store_set_error(st, "%s: store in use by pid %lld; "
			    "one roostd per SQLite store", path, pid);
		else
			store_set_error(st, "%s: store in use by another "
			    "process; one roostd per SQLite store", path);
		goto fail;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n) {
		store_set_error(st, "%s: %s", lockpath, strerror(errno));
		goto fail;
	}
	ss->lockfd = fd;
	free(lockpath);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	free(lockpath);
	return -1;
}

/*
 * Make sure the file exists with mode 0600 before SQLite opens it: it holds
 * doveadm API keys, and SQLite gives the -wal and -shm files the mode of the
 * database file.  The directory is not created: a missing one is usually a
 * typo in the configuration.
 */
static int
prepare_file(struct store *st, const char *path)
{
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
	    0600)) == -1) {
		if (errno == ENOENT)
			store_set_error(st, "%s: directory does not exist",
			    path);
		else
			store_set_error(st, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1) {
		store_set_error(st, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		store_set_error(st, "%s: not a regular file", path);
		goto fail;
	}
	if ((sb.st_mode & 077) != 0) {
		if (fchmod(fd, 0600) == -1) {
			store_set_error(st, "%s: accessible by others and "
			    "chmod 0600 failed: %s", path, strerror(errno));
			goto fail;
		}
		log_warnx("%s: was accessible by others, now mode 0600", path);
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* One-off statement at open time: constant SQL, one integer parameter or
 * none, first column of the first row as text into out (if given). */
static int
open_query(struct store *st, const char *sql, int64_t arg, int has_arg,
    char *out, size_t outlen)
{
	sqlite3 *db = impl(st)->db;
	sqlite3_stmt *s = NULL;
	int rc;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		goto fail;
	if (has_arg && sqlite3_bind_int64(s, 1, arg) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out != NULL)
		snprintf(out, outlen, "%s", col_text(s, 0));
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	sq_fail(st, "open");
	sqlite3_finalize(s);
	return -1;
}

/* The schema version of the open database: 0 for an empty one. */
static int
schema_version(struct store *st, long long *version)
{
	char buf[32];

	if (open_query(st, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'meta'", 0, 0,
	    buf, sizeof(buf)) == -1)
		return -1;
	if (strcmp(buf, "0") == 0) {
		if (open_query(st, "SELECT count(*) FROM sqlite_master",
		    0, 0, buf, sizeof(buf)) == -1)
			return -1;
		if (strcmp(buf, "0") != 0) {
			store_set_error(st, "not a roost database (it has "
			    "tables but no schema version)");
			return -1;
		}
		*version = 0;
		return 0;
	}
	if (open_query(st, "SELECT value FROM meta"
	    " WHERE key = 'schema_version'", 0, 0, buf, sizeof(buf)) == -1)
		return -1;
	if (parse_ll(buf, 1, INT_MAX, version) == -1) {
		store_set_error(st, "bad schema_version \"%s\" in meta", buf);
		return -1;
	}
	return 0;
}

/* Bring the schema up to STORE_SCHEMA_VERSION, one step per transaction. */
static int
migrate(struct store *st)
{
	sqlite3 *db = impl(st)->db;
	long long v;

	for (;;) {
		/* IMMEDIATE: another process opening the same file at the
		 * same time waits here instead of migrating twice. */
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK)
			return sq_fail(st, "begin");
		if (schema_version(st, &v) == -1)
			goto fail;
		if (v > STORE_SCHEMA_VERSION) {
			store_set_error(st, "database schema version %lld is "
			    "newer than this roostd supports (%d); "
			    "upgrade roostd", v, STORE_SCHEMA_VERSION);
			goto fail;
		}
		if (v == STORE_SCHEMA_VERSION)
			break;
		if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) !=
		    SQLITE_OK) {
			store_set_error(st, "schema migration %lld -> %lld: %s",
			    v, v + 1, sqlite3_errmsg(db));
			goto fail;
		}
		if (open_query(st, "INSERT INTO meta (key, value)"
		    " VALUES ('schema_version', ?1) ON CONFLICT (key)"
		    " DO UPDATE SET value = excluded.value", v + 1, 1,
		    NULL, 0) == -1)
			goto fail;
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sq_fail(st, "commit");
			goto fail;
		}
		if (v > 0)
			log_info("store schema migrated to version %lld",
			    v + 1);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(st, "commit");
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void *
ckpt_main(void *arg)
{
	struct ckpt *c = arg;
	struct timespec ts;
	int nlog, nckpt;

	pthread_mutex_lock(&c->mtx);
	while (!c->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (CKPT_INTERVAL_MS % 1000) * 1000000L;
		ts.tv_sec += CKPT_INTERVAL_MS / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&c->cond, &c->mtx, &ts);
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mtx);
		/* BUSY only means another checkpoint runs; try next time. */
		if (sqlite3_wal_checkpoint_v2(c->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt) != SQLITE_OK &&
		    sqlite3_errcode(c->db) != SQLITE_BUSY)
			log_warnx("sqlite store: checkpoint: %s",
			    sqlite3_errmsg(c->db));
		pthread_mutex_lock(&c->mtx);
	}
	pthread_mutex_unlock(&c->mtx);
	return NULL;
}

static int
ckpt_start(struct store *st, const char *path)
{
	struct ckpt *c = &impl(st)->ckpt;

	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		store_set_error(st, "checkpointer: %s", c->db ?
		    sqlite3_errmsg(c->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(c->db, 100);
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
		store_set_error(st, "checkpointer: cannot start a thread");
		pthread_mutex_destroy(&c->mtx);
		pthread_cond_destroy(&c->cond);
		return -1;
	}
	c->running = 1;
	return 0;
}

static void
ckpt_stop(struct ckpt *c)
{
	if (c->running) {
		pthread_mutex_lock(&c->mtx);
		c->stop = 1;
		pthread_cond_signal(&c->cond);
		pthread_mutex_unlock(&c->mtx);
		pthread_join(c->thread, NULL);
		pthread_mutex_destroy(&c->mtx);
		pthread_cond_destroy(&c->cond);
		c->running = 0;
	}
	if (c->db != NULL)
		sqlite3_close(c->db);
	c->db = NULL;
}

static void	sqlite_close(struct store *);

static int
sqlite_open(struct store *st, const char *spec)
{
	struct sqlite_store *ss;
	char mode[16], *path = NULL;
	int i;

	if (spec == NULL || spec[0] == '\0') {
		store_set_error(st, "no database file given (sqlite:PATH)");
		return -1;
	}
	/* Never let a path be read as an SQLite URI ("file:..."). */
	if (spec[0] != '/')
		xasprintf(&path, "./%s", spec);
	else
		path = xstrdup(spec);
	if (prepare_file(st, spec) == -1)
		goto fail_path;

	ss = xcalloc(1, sizeof(*ss));
	ss->lockfd = -1;
	st->impl = ss;
	if (lock_take(st, spec) == -1)
		goto fail;
	if (sqlite3_open_v2(path, &ss->db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		if (ss->db == NULL)
			store_set_error(st, "%s: out of memory", spec);
		else
			store_set_error(st, "%s: %s", spec,
			    sqlite3_errmsg(ss->db));
		goto fail;
	}
	sqlite3_extended_result_codes(ss->db, 1);
	sqlite3_busy_timeout(ss->db, OPEN_BUSY_MS);

	/* NORMAL by default, FULL for admin transactions: see the top. */
	if (open_query(st, "PRAGMA journal_mode = WAL", 0, 0, mode,
	    sizeof(mode)) == -1) {
		/* The first read: where a file that is no database shows. */
		store_set_error(st, "%s: %s", spec, sqlite3_errmsg(ss->db));
		goto fail;
	}
	if (strcmp(mode, "wal") != 0) {
		store_set_error(st, "%s: cannot use WAL mode (got \"%s\")",
		    spec, mode);
		goto fail;
	}
	if (sqlite3_exec(ss->db, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = ON;"
	    "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL) != SQLITE_OK) {
		sq_fail(st, "pragma");
		goto fail;
	}
	if (migrate(st) == -1)
		goto fail;
	sqlite3_busy_timeout(ss->db, LOOP_BUSY_MS);

	for (i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(ss->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &ss->stmt[i], NULL) !=
		    SQLITE_OK) {
			sq_fail(st, "prepare");
			goto fail;
		}
	}
	if (ckpt_start(st, path) == -1)
		goto fail;
	free(path);
	return 0;
fail:
	sqlite_close(st);
fail_path:
	free(path);
	return -1;
}

static void
sqlite_close(struct store *st)
{
	struct sqlite_store *ss = impl(st);
	int i;

	if (ss == NULL)
		return;
	if (ss->in_tx) {
		log_warnx("sqlite store: closed inside a transaction, "
		    "rolling it back");
		if (ss->stmt[S_ROLLBACK] != NULL)
			stmt_exec(st, S_ROLLBACK, "rollback");
	}
	ckpt_stop(&ss->ckpt);
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(ss->stmt[i]);
	if (ss->db != NULL && sqlite3_close(ss->db) != SQLITE_OK)
		log_warnx("sqlite store: close: %s", sqlite3_errmsg(ss->db));
	/* Last: the next roostd may open the file once this is gone. */
	if (ss->lockfd != -1)
		close(ss->lockfd);
	free(ss);
	st->impl = NULL;
}

static int
sqlite_ping(struct store *st)
{
	return stmt_exec(st, S_PING, "ping");
}

/*
 * Back to NORMAL after an admin transaction.  The pragma cannot change
 * inside a transaction, so it is set around BEGIN and COMMIT, and never
 * from a prepared statement: SQLite applies (and reads) it when the
 * statement is compiled, not when it runs.  A failure here must not
 * replace the error of the transaction itself.
 */
static void
tx_closed(struct store *st)
{
	struct sqlite_store *ss = impl(st);

	ss->in_tx = 0;
	if (!ss->tx_full)
		return;
	ss->tx_full = 0;
	if (sqlite3_exec(ss->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
	    NULL) != SQLITE_OK)
		log_warnx("sqlite store: synchronous = NORMAL: %s",
		    sqlite3_errmsg(ss->db));
}

static int
sqlite_begin(struct store *st, int flags)
{
	struct sqlite_store *ss = impl(st);

	if (ss->in_tx) {
		store_set_error(st, "begin: a transaction is already open");
		return -1;
	}
	ss->tx_failed = 0;
	if (flags & STORE_TX_ADMIN) {
		if (sqlite3_exec(ss->db, "PRAGMA synchronous = FULL", NULL,
		    NULL, NULL) != SQLITE_OK) {
			ss->tx_failed = 1;
			return sq_fail(st, "synchronous = FULL");
		}
		ss->tx_full = 1;
	}
	if (stmt_exec(st, S_BEGIN, "begin") == -1) {
		tx_closed(st);
		ss->tx_failed = 1;
		return -1;
	}
	ss->in_tx = 1;
	return 0;
}

static int
sqlite_commit(struct store *st)
{
	struct sqlite_store *ss = impl(st);

	if (!ss->in_tx) {
		store_set_error(st, "commit: no transaction is open");
		return -1;
	}
	if (sqlite3_get_autocommit(ss->db)) {
		/* SQLite already rolled it back after an I/O error. */
		tx_closed(st);
		ss->tx_failed = 1;
		store_set_error(st, "commit: the transaction was rolled "
		    "back after an earlier error");
		return -1;
	}
	if (stmt_exec(st, S_COMMIT, "commit") == -1) {
		if (!sqlite3_get_autocommit(ss->db))
			sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
		tx_closed(st);
		ss->tx_failed = 1;
		return -1;
	}
	tx_closed(st);
	return 0;
}

static int
sqlite_rollback(struct store *st)
{
	struct sqlite_store *ss = impl(st);
	int rv = 0;

	if (!ss->in_tx) {
		/* After a failed begin or commit there is nothing to undo, and
		 * st->err must keep saying why it failed. */
		if (ss->tx_failed) {
			ss->tx_failed = 0;
			return 0;
		}
		store_set_error(st, "rollback: no transaction is open");
		return -1;
	}
	/* Unless SQLite already did it. */
	if (!sqlite3_get_autocommit(ss->db))
		rv = stmt_exec(st, S_ROLLBACK, "rollback");
	tx_closed(st);
	return rv;
}

static int
sqlite_durable(struct store *st)
{
	char level[8];

	/* Compiled afresh: see tx_closed. */
	if (open_query(st, "PRAGMA synchronous", 0, 0, level,
	    sizeof(level)) == -1)
		return -1;
	/* 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA: FULL syncs the WAL at commit. */
	return strcmp(level, "2") == 0 || strcmp(level, "3") == 0;
}

/* Copy a column into a fixed field; a value that does not fit is a
 * damaged row, not something to cut short silently. */
static int
col_copy(struct store *st, sqlite3_stmt *s, int i, char *dst, size_t len,
    const char *name, const char *what)
{
	const char *v = col_text(s, i);

	if (strlen(v) >= len) {
		store_set_error(st, "backend %s: stored %s too long", name,
		    what);
		return -1;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
sqlite_backend_load(struct store *st, store_backend_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_BACKEND_LOAD];
	struct backend b;
	const char *state;
	int64_t v;
	int i, rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&b, 0, sizeof(b));
		if (col_copy(st, s, 0, b.name, sizeof(b.name), col_text(s, 0),
		    "name") == -1 ||
		    col_copy(st, s, 1, b.host, sizeof(b.host), b.name,
		    "host") == -1 ||
		    col_copy(st, s, 2, b.hostip, sizeof(b.hostip), b.name,
		    "hostip") == -1 ||
		    col_copy(st, s, 3, b.tag, sizeof(b.tag), b.name,
		    "tag") == -1)
			goto fail;
		v = sqlite3_column_int64(s, 4);
		if (v < 0 || v > BACKEND_WEIGHT_MAX) {
			store_set_error(st, "backend %s: stored weight %lld "
			    "out of range", b.name, (long long)v);
			goto fail;
		}
		b.weight = (unsigned)v;
		state = col_text(s, 5);
		if (backend_state_parse(state, &b.state) == -1) {
			store_set_error(st, "backend %s: unknown stored "
			    "state \"%s\"", b.name, state);
			goto fail;
		}
		for (i = 0; i < PROTO_COUNT; i++) {
			v = sqlite3_column_int64(s, 6 + i);
			if (v < 0 || v > UINT16_MAX) {
				store_set_error(st, "backend %s: stored %s "
				    "port out of range", b.name,
				    proto_names[i]);
				goto fail;
			}
			b.ports[i] = (uint16_t)v;
		}
		/* Pointers into the row: valid during the callback only,
		 * as store.h says. */
		b.doveadm_url = (char *)sqlite3_column_text(s, 12);
		b.doveadm_key = (char *)sqlite3_column_text(s, 13);
		b.created = sqlite3_column_int64(s, 14);
		b.updated = sqlite3_column_int64(s, 15);
		state = col_text(s, 16);
		if (backend_tls_parse(state, &b.tls) == -1) {
			store_set_error(st, "backend %s: unknown stored "
			    "tls \"%s\"", b.name, state);
			goto fail;
		}
		b.probe_user = (char *)sqlite3_column_text(s, 17);
		b.probe_pass = (char *)sqlite3_column_text(s, 18);
		/* The account goes into an IMAP LOGIN line: a row no roostd
		 * writes is refused, never sent (nor quoted here). */
		if ((b.probe_user == NULL) != (b.probe_pass == NULL) ||
		    (b.probe_user != NULL &&
		    (strlen(b.probe_user) > BACKEND_PROBE_USER_MAX ||
		    strlen(b.probe_pass) > BACKEND_PROBE_PASS_MAX ||
		    strpbrk(b.probe_user, "\r\n") != NULL ||
		    strpbrk(b.probe_pass, "\r\n") != NULL))) {
			store_set_error(st, "backend %s: stored probe "
			    "account damaged", b.name);
			goto fail;
		}
		if (cb(&b, arg) == -1) {
			store_set_error(st, "backend load: stopped by caller");
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "backend load");
		goto fail;
	}
	stmt_done(s);
	return 0;
fail:
	stmt_done(s);
	return -1;
}

/* Bind every column of a backend to the insert or update statement. */
static int
bind_backend(struct store *st, sqlite3_stmt *s, const struct backend *b)
{
	int i, rc = SQLITE_OK;

	if ((unsigned)b->state > BACKEND_DOWN) {
		store_set_error(st, "backend %s: invalid state", b->name);
		return -1;
	}
	if ((unsigned)b->tls > BACKEND_TLS_STARTTLS) {
		store_set_error(st, "backend %s: invalid tls", b->name);
		return -1;
	}
	rc |= bind_text(s, 1, b->name);
	rc |= bind_text(s, 2, b->host);
	rc |= bind_text(s, 3, b->hostip);
	rc |= bind_text(s, 4, b->tag);
	rc |= sqlite3_bind_int64(s, 5, b->weight);
	rc |= bind_text(s, 6, backend_state_name(b->state));
	for (i = 0; i < PROTO_COUNT; i++)
		rc |= sqlite3_bind_int(s, 7 + i, b->ports[i]);
	rc |= bind_text(s, 13, b->doveadm_url);
	rc |= bind_text(s, 14, b->doveadm_key);
	rc |= sqlite3_bind_int64(s, 15, b->created);
	rc |= sqlite3_bind_int64(s, 16, b->updated);
	rc |= bind_text(s, 17, backend_tls_name(b->tls));
	rc |= bind_text(s, 18, b->probe_user);
	rc |= bind_text(s, 19, b->probe_pass);
	if (rc != SQLITE_OK) {
		sq_fail(st, "bind");
		stmt_done(s);
		return -1;
	}
	return 0;
}

static int
sqlite_backend_insert(struct store *st, const struct backend *b)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_BACKEND_INSERT];
	int rc;

	if (bind_backend(st, s, b) == -1)
		return -1;
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			store_set_conflict(st, "backend %s already exists",
			    b->name);
		else
			sq_fail(st, "backend insert");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_backend_update(struct store *st, const struct backend *b)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_BACKEND_UPDATE];

	if (bind_backend(st, s, b) == -1)
		return -1;
	if (sqlite3_step(s) != SQLITE_DONE) {
		sq_fail(st, "backend update");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	if (sqlite3_changes(ss->db) == 0) {
		store_set_conflict(st, "no backend named %s", b->name);
		return -1;
	}
	return 0;
}

static int
sqlite_backend_delete(struct store *st, const char *name, int64_t *released)
{
	struct sqlite_store *ss = impl(st);
	enum txmode mode;
	int64_t n;

	if (tx_start(st, &mode) == -1)
		return -1;
	bind_text(ss->stmt[S_BACKEND_DELETE_USERS], 1, name);
	if (stmt_exec(st, S_BACKEND_DELETE_USERS, "backend delete") == -1)
		goto fail;
	n = sqlite3_changes64(ss->db);
	bind_text(ss->stmt[S_BACKEND_DELETE], 1, name);
	if (stmt_exec(st, S_BACKEND_DELETE, "backend delete") == -1)
		goto fail;
	if (sqlite3_changes64(ss->db) == 0) {
		store_set_conflict(st, "no backend named %s", name);
		goto fail;
	}
	if (tx_end(st, mode, 1) == -1)
		return -1;
	if (released != NULL)
		*released = n;
	return 0;
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
sqlite_proxy_load(struct store *st, store_proxy_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_PROXY_LOAD];
	struct proxy p;
	const char *name;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&p, 0, sizeof(p));
		name = col_text(s, 0);
		if (strlen(name) >= sizeof(p.name)) {
			store_set_error(st, "proxy: stored name too long");
			goto fail;
		}
		memcpy(p.name, name, strlen(name) + 1);
		/* Pointers into the row: valid during the callback only. */
		p.doveadm_url = (char *)col_text(s, 1);
		p.doveadm_key = (char *)col_text(s, 2);
		p.created = sqlite3_column_int64(s, 3);
		p.updated = sqlite3_column_int64(s, 4);
		if (cb(&p, arg) == -1) {
			store_set_error(st, "proxy load: stopped by caller");
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "proxy load");
		goto fail;
	}
	stmt_done(s);
	return 0;
fail:
	stmt_done(s);
	return -1;
}

/* Bind a proxy to the insert or update statement and run it. */
static int
proxy_write(struct store *st, enum stmt id, const struct proxy *p,
    const char *what)
{
	sqlite3_stmt *s = impl(st)->stmt[id];
	int rc = SQLITE_OK;

	if (p->doveadm_url == NULL || p->doveadm_key == NULL) {
		store_set_error(st, "proxy %s: no doveadm url or key", p->name);
		return -1;
	}
	rc |= bind_text(s, 1, p->name);
	rc |= bind_text(s, 2, p->doveadm_url);
	rc |= bind_text(s, 3, p->doveadm_key);
	rc |= sqlite3_bind_int64(s, 4, p->created);
	rc |= sqlite3_bind_int64(s, 5, p->updated);
	if (rc != SQLITE_OK) {
		sq_fail(st, "bind");
		stmt_done(s);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			store_set_conflict(st, "proxy %s already exists", p->name);
		else
			sq_fail(st, what);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_proxy_insert(struct store *st, const struct proxy *p)
{
	return proxy_write(st, S_PROXY_INSERT, p, "proxy insert");
}

static int
sqlite_proxy_update(struct store *st, const struct proxy *p)
{
	if (proxy_write(st, S_PROXY_UPDATE, p, "proxy update") == -1)
		return -1;
	if (sqlite3_changes(impl(st)->db) == 0) {
		store_set_error(st, "no proxy named %s", p->name);
		return -1;
	}
	return 0;
}

static int
sqlite_proxy_delete(struct store *st, const char *name)
{
	struct sqlite_store *ss = impl(st);

	bind_text(ss->stmt[S_PROXY_DELETE], 1, name);
	if (stmt_exec(st, S_PROXY_DELETE, "proxy delete") == -1)
		return -1;
	if (sqlite3_changes(ss->db) == 0) {
		store_set_error(st, "no proxy named %s", name);
		return -1;
	}
	return 0;
}

static void
row_user(sqlite3_stmt *s, struct store_user *u)
{
	u->user = col_text(s, 0);
	u->backend = col_text(s, 1);
	u->tag = col_text(s, 2);
	u->pinned = sqlite3_column_int(s, 3);
	u->since = sqlite3_column_int64(s, 4);
	u->last_lookup = sqlite3_column_int64(s, 5);
	u->confirmed = sqlite3_column_int(s, 6);
	u->replica = sqlite3_column_type(s, 7) == SQLITE_NULL ? NULL :
	    col_text(s, 7);
	u->replica_current = sqlite3_column_int(s, 8);
	u->failed_over = sqlite3_column_int(s, 9);
}

/* Step a user query and hand each row to cb; returns the row count.  The
 * callback must not call the operation it is called from: the statement is
 * still in use. */
static int64_t
user_rows(struct store *st, sqlite3_stmt *s, const char *what,
    store_user_cb cb, void *arg)
{
	struct store_user u;
	int64_t n = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row_user(s, &u);
		n++;
		if (cb(&u, arg) == -1) {
			store_set_error(st, "%s: stopped by caller", what);
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, what);
		goto fail;
	}
	stmt_done(s);
	return n;
fail:
	stmt_done(s);
	return -1;
}

static int
sqlite_user_load(struct store *st, store_user_cb cb, void *arg)
{
	if (user_rows(st, impl(st)->stmt[S_USER_LOAD], "user load", cb,
	    arg) == -1)
		return -1;
	return 0;
}

/* Bind record i of a batch to the user columns of s and run it. */
static int
user_write(struct store *st, sqlite3_stmt *s, const struct store_user *u,
    size_t i, const char *what)
{
	int rc;

	if (u->user == NULL || u->backend == NULL) {
		store_set_error(st, "%s: record %zu has no %s", what, i,
		    u->user == NULL ? "user" : "backend");
		return -1;
	}
	rc = bind_text(s, 1, u->user);
	rc |= bind_text(s, 2, u->backend);
	rc |= bind_text(s, 3, u->tag != NULL ? u->tag : "");
	rc |= sqlite3_bind_int(s, 4, u->pinned != 0);
	rc |= sqlite3_bind_int64(s, 5, u->since);
	rc |= sqlite3_bind_int64(s, 6, u->last_lookup);
	rc |= sqlite3_bind_int(s, 7, u->confirmed != 0);
	rc |= bind_text(s, 8, u->replica);
	rc |= sqlite3_bind_int(s, 9, u->replica_current != 0);
	rc |= sqlite3_bind_int(s, 10, u->failed_over != 0);
	if (rc != SQLITE_OK) {
		sq_fail(st, what);
		stmt_done(s);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			store_set_conflict(st, "user %s: no backend named %s",
			    u->user, u->backend);
		else
			sq_fail(st, what);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_user_put(struct store *st, const struct store_user *us, size_t n)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_USER_PUT];
	enum txmode mode = TX_NONE;
	size_t i;

	if (n == 0)
		return 0;
	/* One statement is atomic on its own; a batch needs a transaction. */
	if ((n > 1 || ss->in_tx) && tx_start(st, &mode) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (user_write(st, s, &us[i], i, "user put") == -1)
			goto fail;
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

/*
 * SQLite has one writer at a time, so within the transaction a record that
 * changed nothing met a row that stays as it is until the commit, and that
 * row is what cb gets.
 */
static int
sqlite_user_place(struct store *st, const struct store_user *us,
    const char *const *expect, size_t n, store_user_cb cb, void *arg)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_USER_PLACE], *get = ss->stmt[S_USER_GET];
	enum txmode mode = TX_NONE;
	size_t i;

	if (n == 0)
		return 0;
	if ((n > 1 || ss->in_tx) && tx_start(st, &mode) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		/* user_write binds the rest and clears them all after. */
		bind_text(s, 11, expect != NULL ? expect[i] : NULL);
		if (user_write(st, s, &us[i], i, "user place") == -1)
			goto fail;
		if (sqlite3_changes(ss->db) > 0)
			continue;
		bind_text(get, 1, us[i].user);
		if (user_rows(st, get, "user place", cb, arg) == -1)
			goto fail;
	}
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
sqlite_user_delete(struct store *st, const char *user)
{
	struct sqlite_store *ss = impl(st);

	bind_text(ss->stmt[S_USER_DELETE], 1, user);
	if (stmt_exec(st, S_USER_DELETE, "user delete") == -1)
		return -1;
	return sqlite3_changes(ss->db) > 0 ? 1 : 0;
}

static int
sqlite_user_get(struct store *st, const char *user, store_user_cb cb,
    void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_USER_GET];
	int64_t n;

	bind_text(s, 1, user);
	if ((n = user_rows(st, s, "user get", cb, arg)) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
sqlite_user_list(struct store *st, const char *backend, const char *after,
    size_t limit, store_user_cb cb, void *arg)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s;
	enum stmt id;

	if (backend != NULL)
		id = after != NULL ? S_USER_LIST_BACKEND_AFTER :
		    S_USER_LIST_BACKEND;
	else
		id = after != NULL ? S_USER_LIST_AFTER : S_USER_LIST;
	s = ss->stmt[id];
	if (backend != NULL)
		bind_text(s, 1, backend);
	if (after != NULL)
		bind_text(s, 2, after);
	sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX :
	    (int64_t)limit);
	if (user_rows(st, s, "user list", cb, arg) == -1)
		return -1;
	return 0;
}

static int
sqlite_user_touch(struct store *st, const struct store_user *us, size_t n)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_USER_TOUCH];
	enum txmode mode = TX_NONE;
	size_t i;
	int rv = -1;

	if (n == 0)
		return 0;
	/*
	 * Lookup times are best effort: when another process holds the
	 * write lock, give up at once rather than hold roostd's event loop
	 * for the busy timeout; the caller tries again later.
	 */
	if (!ss->in_tx)
		sqlite3_busy_timeout(ss->db, 0);
	/* One transaction for the lot: one WAL write instead of n. */
	if ((n > 1 || ss->in_tx) && tx_start(st, &mode) == -1)
		goto done;
	for (i = 0; i < n; i++) {
		if (us[i].user == NULL)
			continue;
		bind_text(s, 1, us[i].user);
		sqlite3_bind_int64(s, 2, us[i].last_lookup);
		sqlite3_bind_int(s, 3, us[i].confirmed != 0);
		if (stmt_exec(st, S_USER_TOUCH, "user touch") == -1) {
			tx_end(st, mode, 0);
			goto done;
		}
	}
	rv = tx_end(st, mode, 1);
done:
	if (!ss->in_tx)
		sqlite3_busy_timeout(ss->db, LOOP_BUSY_MS);
	return rv;
}

static int
sqlite_health_put(struct store *st, const struct store_health *h)
{
	sqlite3_stmt *s = impl(st)->stmt[S_HEALTH_PUT];

	bind_text(s, 1, h->backend);
	bind_text(s, 2, h->state);
	sqlite3_bind_int64(s, 3, h->since);
	bind_text(s, 4, h->error != NULL ? h->error : "");
	sqlite3_bind_int64(s, 5, h->latency_ms);
	sqlite3_bind_int64(s, 6, h->checked);
	return stmt_exec(st, S_HEALTH_PUT, "health put");
}

static int
sqlite_health_load(struct store *st, store_health_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_HEALTH_LOAD];
	struct store_health h;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		h.backend = col_text(s, 0);
		h.state = col_text(s, 1);
		h.since = sqlite3_column_int64(s, 2);
		h.error = col_text(s, 3);
		h.latency_ms = sqlite3_column_int64(s, 4);
		h.checked = sqlite3_column_int64(s, 5);
		if (cb(&h, arg) == -1) {
			store_set_error(st, "health load: stopped by caller");
			stmt_done(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "health load");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_move_insert(struct store *st, struct store_move *m)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_MOVE_INSERT];
	int rc;

	bind_text(s, 1, m->user);
	bind_text(s, 2, m->from);
	bind_text(s, 3, m->to);
	bind_text(s, 4, m->reason);
	bind_text(s, 5, m->state);
	sqlite3_bind_int(s, 6, m->pin != 0);
	sqlite3_bind_int64(s, 7, m->created);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_UNIQUE)
			store_set_conflict(st, "user %s is being moved already",
			    m->user);
		else
			sq_fail(st, "move insert");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	m->id = sqlite3_last_insert_rowid(ss->db);
	return 0;
}

static int
sqlite_move_state(struct store *st, int64_t id, const char *state,
    const char *error)
{
	sqlite3_stmt *s = impl(st)->stmt[S_MOVE_STATE];

	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, state);
	bind_text(s, 3, error != NULL ? error : "");
	sqlite3_bind_int64(s, 4, now_sec());
	return stmt_exec(st, S_MOVE_STATE, "move state");
}

static int
sqlite_move_switch(struct store *st, const struct store_move *m,
    const struct store_user *u)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_MOVE_SWITCH_USER];
	enum txmode mode;
	int64_t n;

	if (tx_start(st, &mode) == -1)
		return -1;
	bind_text(s, 1, m->user);
	bind_text(s, 2, m->from);
	bind_text(s, 3, m->to);
	sqlite3_bind_int(s, 4, u->pinned != 0);
	sqlite3_bind_int64(s, 5, u->since);
	if (u->replica != NULL)
		bind_text(s, 6, u->replica);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_int(s, 7, u->replica_current != 0);
	sqlite3_bind_int(s, 8, u->failed_over != 0);
	if (stmt_exec(st, S_MOVE_SWITCH_USER, "move switch") == -1)
		goto fail;
	n = sqlite3_changes64(ss->db);
	if (sqlite_move_state(st, m->id, n == 1 ? "done" : "failed",
	    n == 1 ? "" : "the user was no longer on the backend it left") == -1)
		goto fail;
	if (tx_end(st, mode, 1) == -1)
		return -1;
	return n == 1 ? 1 : 0;
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
sqlite_move_list(struct store *st, int active, int64_t before, size_t limit,
    store_move_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[active ? S_MOVE_LIST_OPEN :
	    S_MOVE_LIST];
	struct store_move m;
	int rc;

	sqlite3_bind_int64(s, 1, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX :
	    (int64_t)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		m.id = sqlite3_column_int64(s, 0);
		m.user = col_text(s, 1);
		m.from = col_text(s, 2);
		m.to = col_text(s, 3);
		m.reason = col_text(s, 4);
		m.state = col_text(s, 5);
		m.pin = sqlite3_column_int(s, 6);
		m.error = col_text(s, 7);
		m.created = sqlite3_column_int64(s, 8);
		m.updated = sqlite3_column_int64(s, 9);
		if (cb(&m, arg) == -1) {
			store_set_error(st, "move list: stopped by caller");
			stmt_done(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "move list");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_job_insert(struct store *st, struct store_job *j)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_JOB_INSERT];

	bind_text(s, 1, j->kind);
	bind_text(s, 2, j->backend != NULL ? j->backend : "");
	sqlite3_bind_int64(s, 3, j->max);
	sqlite3_bind_int64(s, 4, j->rate);
	sqlite3_bind_int64(s, 5, j->created);
	if (stmt_exec(st, S_JOB_INSERT, "job insert") == -1)
		return -1;
	j->id = sqlite3_last_insert_rowid(ss->db);
	return 0;
}

static int
sqlite_job_state(struct store *st, int64_t id, const char *state,
    int64_t made)
{
	sqlite3_stmt *s = impl(st)->stmt[S_JOB_STATE];

	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, state);
	sqlite3_bind_int64(s, 3, made);
	sqlite3_bind_int64(s, 4, now_sec());
	return stmt_exec(st, S_JOB_STATE, "job state");
}

static int
job_rows(struct store *st, enum stmt id, store_job_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[id];
	struct store_job j;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		j.id = sqlite3_column_int64(s, 0);
		j.kind = col_text(s, 1);
		j.backend = col_text(s, 2);
		j.max = sqlite3_column_int64(s, 3);
		j.rate = sqlite3_column_int64(s, 4);
		j.made = sqlite3_column_int64(s, 5);
		j.state = col_text(s, 6);
		j.created = sqlite3_column_int64(s, 7);
		j.updated = sqlite3_column_int64(s, 8);
		if (cb(&j, arg) == -1) {
			store_set_error(st, "job list: stopped by caller");
			stmt_done(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "job list");
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int
sqlite_job_list(struct store *st, store_job_cb cb, void *arg)
{
	return job_rows(st, S_JOB_LIST, cb, arg);
}

static int
sqlite_job_list_all(struct store *st, store_job_cb cb, void *arg)
{
	return job_rows(st, S_JOB_LIST_ALL, cb, arg);
}

static int
sqlite_audit_add(struct store *st, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	sqlite3_stmt *s = impl(st)->stmt[S_AUDIT_ADD];

	if (actor == NULL || action == NULL) {
		store_set_error(st, "audit add: actor and action required");
		return -1;
	}
	sqlite3_bind_int64(s, 1, now_sec());
	bind_text(s, 2, actor);
	bind_text(s, 3, action);
	bind_text(s, 4, subject != NULL ? subject : "");
	bind_text(s, 5, detail != NULL ? detail : "{}");
	return stmt_exec(st, S_AUDIT_ADD, "audit add");
}

static int
sqlite_audit_list(struct store *st, int64_t before, size_t limit,
    store_audit_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_AUDIT_LIST];
	struct store_audit a;
	int rc;

	sqlite3_bind_int64(s, 1, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX :
	    (int64_t)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		a.id = sqlite3_column_int64(s, 0);
		a.at = sqlite3_column_int64(s, 1);
		a.actor = col_text(s, 2);
		a.action = col_text(s, 3);
		a.subject = col_text(s, 4);
		a.detail = col_text(s, 5);
		if (cb(&a, arg) == -1) {
			store_set_error(st, "audit list: stopped by caller");
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, "audit list");
		goto fail;
	}
	stmt_done(s);
	return 0;
fail:
	stmt_done(s);
	return -1;
}

static void
row_repl(sqlite3_stmt *s, struct store_repl *r)
{
	r->user = col_text(s, 0);
	r->priority = sqlite3_column_type(s, 1) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(s, 1);
	r->queued = sqlite3_column_int64(s, 2);
	r->due = sqlite3_column_int64(s, 3);
	r->full = sqlite3_column_int(s, 4);
	r->fails = sqlite3_column_int(s, 5);
	r->stuck = sqlite3_column_int(s, 6);
	r->error = col_text(s, 7);
	r->state = col_text(s, 8);
	r->last_fast = sqlite3_column_int64(s, 9);
	r->last_full = sqlite3_column_int64(s, 10);
	r->last_ok = sqlite3_column_int64(s, 11);
}

static int64_t
repl_rows(struct store *st, sqlite3_stmt *s, const char *what,
    store_repl_cb cb, void *arg)
{
	struct store_repl r;
	int64_t n = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row_repl(s, &r);
		n++;
		if (cb(&r, arg) == -1) {
			store_set_error(st, "%s: stopped by caller", what);
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		sq_fail(st, what);
		goto fail;
	}
	stmt_done(s);
	return n;
fail:
	stmt_done(s);
	return -1;
}

static int
sqlite_repl_put(struct store *st, const struct store_repl *rs, size_t n)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[S_REPL_PUT];
	enum txmode mode = TX_NONE;
	size_t i;
	int rc;

	if (n == 0)
		return 0;
	if ((n > 1 || ss->in_tx) && tx_start(st, &mode) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (rs[i].user == NULL) {
			store_set_error(st, "repl put: record %zu has no user",
			    i);
			goto fail;
		}
		rc = bind_text(s, 1, rs[i].user);
		if (rs[i].priority < 0)
			rc |= sqlite3_bind_null(s, 2);
		else
			rc |= sqlite3_bind_int(s, 2, rs[i].priority);
		rc |= sqlite3_bind_int64(s, 3, rs[i].queued);
		rc |= sqlite3_bind_int64(s, 4, rs[i].due);
		rc |= sqlite3_bind_int(s, 5, rs[i].full != 0);
		rc |= sqlite3_bind_int(s, 6, rs[i].fails);
		rc |= sqlite3_bind_int(s, 7, rs[i].stuck != 0);
		rc |= bind_text(s, 8, rs[i].error != NULL ? rs[i].error : "");
		rc |= bind_text(s, 9, rs[i].state);	/* NULL: keep */
		rc |= sqlite3_bind_int64(s, 10, rs[i].last_fast);
		rc |= sqlite3_bind_int64(s, 11, rs[i].last_full);
		rc |= sqlite3_bind_int64(s, 12, rs[i].last_ok);
		if (rc != SQLITE_OK) {
			sq_fail(st, "repl put");
			stmt_done(s);
			goto fail;
		}
		if (sqlite3_step(s) != SQLITE_DONE) {
			sq_fail(st, "repl put");
			stmt_done(s);
			goto fail;
		}
		stmt_done(s);
	}
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
sqlite_repl_get(struct store *st, const char *user, store_repl_cb cb,
    void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_REPL_GET];
	int64_t n;

	bind_text(s, 1, user);
	if ((n = repl_rows(st, s, "repl get", cb, arg)) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
sqlite_repl_load(struct store *st, store_repl_cb cb, void *arg)
{
	if (repl_rows(st, impl(st)->stmt[S_REPL_LOAD], "repl load", cb,
	    arg) == -1)
		return -1;
	return 0;
}

static int
sqlite_repl_delete(struct store *st, const char *user)
{
	struct sqlite_store *ss = impl(st);

	bind_text(ss->stmt[S_REPL_DELETE], 1, user);
	if (stmt_exec(st, S_REPL_DELETE, "repl delete") == -1)
		return -1;
	return sqlite3_changes(ss->db) > 0 ? 1 : 0;
}

static int
sqlite_repl_list(struct store *st, const char *after, size_t limit,
    store_repl_cb cb, void *arg)
{
	sqlite3_stmt *s = impl(st)->stmt[S_REPL_LIST];

	bind_text(s, 1, after != NULL ? after : "");
	sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX :
	    (int64_t)limit);
	return repl_rows(st, s, "repl list", cb, arg) == -1 ? -1 : 0;
}

/* Bind record i of a restore batch; returns an SQLite code. */
typedef int (*restore_bind)(sqlite3_stmt *, const void *, size_t);

static int
bind_move(sqlite3_stmt *s, const void *recs, size_t i)
{
	const struct store_move *m = (const struct store_move *)recs + i;
	int rc;

	rc = sqlite3_bind_int64(s, 1, m->id);
	rc |= bind_text(s, 2, m->user);
	rc |= bind_text(s, 3, m->from);
	rc |= bind_text(s, 4, m->to);
	rc |= bind_text(s, 5, m->reason);
	rc |= bind_text(s, 6, m->state);
	rc |= sqlite3_bind_int(s, 7, m->pin != 0);
	rc |= bind_text(s, 8, m->error != NULL ? m->error : "");
	rc |= sqlite3_bind_int64(s, 9, m->created);
	rc |= sqlite3_bind_int64(s, 10, m->updated);
	return rc;
}

static int
bind_job(sqlite3_stmt *s, const void *recs, size_t i)
{
	const struct store_job *j = (const struct store_job *)recs + i;
	int rc;

	rc = sqlite3_bind_int64(s, 1, j->id);
	rc |= bind_text(s, 2, j->kind);
	rc |= bind_text(s, 3, j->backend != NULL ? j->backend : "");
	rc |= sqlite3_bind_int64(s, 4, j->max);
	rc |= sqlite3_bind_int64(s, 5, j->rate);
	rc |= sqlite3_bind_int64(s, 6, j->made);
	rc |= bind_text(s, 7, j->state);
	rc |= sqlite3_bind_int64(s, 8, j->created);
	rc |= sqlite3_bind_int64(s, 9, j->updated);
	return rc;
}

static int
bind_audit(sqlite3_stmt *s, const void *recs, size_t i)
{
	const struct store_audit *a = (const struct store_audit *)recs + i;
	int rc;

	rc = sqlite3_bind_int64(s, 1, a->id);
	rc |= sqlite3_bind_int64(s, 2, a->at);
	rc |= bind_text(s, 3, a->actor);
	rc |= bind_text(s, 4, a->action);
	rc |= bind_text(s, 5, a->subject != NULL ? a->subject : "");
	rc |= bind_text(s, 6, a->detail != NULL ? a->detail : "{}");
	return rc;
}

/* Insert n records as given, all or none. */
static int
restore(struct store *st, enum stmt id, const void *recs, size_t n,
    restore_bind bind, const char *what)
{
	struct sqlite_store *ss = impl(st);
	sqlite3_stmt *s = ss->stmt[id];
	enum txmode mode;
	size_t i;

	if (n == 0)
		return 0;
	if (tx_start(st, &mode) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (bind(s, recs, i) != SQLITE_OK) {
			sq_fail(st, what);
			stmt_done(s);
			goto fail;
		}
		if (stmt_exec(st, id, what) == -1)
			goto fail;
	}
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
sqlite_move_restore(struct store *st, const struct store_move *ms, size_t n)
{
	return restore(st, S_MOVE_RESTORE, ms, n, bind_move, "move restore");
}

static int
sqlite_job_restore(struct store *st, const struct store_job *js, size_t n)
{
	return restore(st, S_JOB_RESTORE, js, n, bind_job, "job restore");
}

static int
sqlite_audit_restore(struct store *st, const struct store_audit *as,
    size_t n)
{
	return restore(st, S_AUDIT_RESTORE, as, n, bind_audit,
	    "audit restore");
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.ping = sqlite_ping,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.durable = sqlite_durable,
	.backend_load = sqlite_backend_load,
	.backend_insert = sqlite_backend_insert,
	.backend_update = sqlite_backend_update,
	.backend_delete = sqlite_backend_delete,
	.user_load = sqlite_user_load,
	.user_put = sqlite_user_put,
	.user_delete = sqlite_user_delete,
	.user_get = sqlite_user_get,
	.user_list = sqlite_user_list,
	.user_touch = sqlite_user_touch,
	.audit_add = sqlite_audit_add,
	.audit_list = sqlite_audit_list,
	.user_place = sqlite_user_place,
	.move_insert = sqlite_move_insert,
	.move_state = sqlite_move_state,
	.move_switch = sqlite_move_switch,
	.move_list = sqlite_move_list,
	.job_insert = sqlite_job_insert,
	.job_state = sqlite_job_state,
	.job_list = sqlite_job_list,
	.health_put = sqlite_health_put,
	.health_load = sqlite_health_load,
	.proxy_load = sqlite_proxy_load,
	.proxy_insert = sqlite_proxy_insert,
	.proxy_update = sqlite_proxy_update,
	.proxy_delete = sqlite_proxy_delete,
	.repl_put = sqlite_repl_put,
	.repl_get = sqlite_repl_get,
	.repl_load = sqlite_repl_load,
	.repl_delete = sqlite_repl_delete,
	.repl_list = sqlite_repl_list,
	.job_list_all = sqlite_job_list_all,
	.move_restore = sqlite_move_restore,
	.job_restore = sqlite_job_restore,
	.audit_restore = sqlite_audit_restore,
};
