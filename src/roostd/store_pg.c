/*
 * store_pg.c: the PostgreSQL store ("store = postgresql:<libpq connection
 * string>"), the same operations with the same meaning as store_sqlite.c,
 * on one libpq connection.  This is what several roostd will share (issue
 * 11); a database holds one Roost in the first schema of the connection's
 * search_path, so one database can hold several (options='-csearch_path=x').
 *
 * Every statement gets its input as bound parameters only (PQexecPrepared,
 * prepared on first use on each connection), never as SQL text; batches
 * (user_put, user_touch, repl_put) go in libpq's pipeline mode, up to
 * PIPE_MAX statements a round trip, BEGIN and COMMIT on their own.  Errors
 * carry the server's primary message and never its DETAIL (a failing row
 * there could show a doveadm key) nor the connection string, which may hold
 * a password.
 *
 * Time bounds: the session runs with lock_timeout LOCK_TIMEOUT_MS and
 * statement_timeout STMT_TIMEOUT_MS, so no call waits long for another
 * instance's row lock or a slow server; such a failure, a serialization
 * failure or a lost connection is STORE_ERETRY (the caller answers 503 or
 * tries again); a violated constraint (SQLSTATE class 23) STORE_ECONFLICT.
 * The loads at start and backend_delete (which may release many users)
 * lift the statement bound for their own transaction.  Those bounds are
 * the server's; roostd's own is on every wait for an answer (get_result):
 * the server's bound plus WAIT_MARGIN_MS, then the connection is dropped,
 * so a hung server or a network that loses its replies costs the loop two
 * seconds once, not forever.
 * A lost connection is made again on a thread, with libpq's blocking
 * connect (host names, each host's connect_timeout, the next host after a
 * hung one), once a RESET_INTERVAL_MS at most; the loop never waits for it.
 *
 * The change feed (feed.c): triggers number every change of what a lookup
 * answers in a `changes` table and notify at commit (migration 9 -> 10);
 * each session tags its writes with roost.origin (change_origin()), so an
 * instance skips its own.
 *
 * Roles (role.c): several roostd share a store, and the work one of them
 * must own (moves, replication dispatch, a backend's health verdict) is a
 * session advisory lock per role, keyed on the schema and the role's name.
 * PostgreSQL frees it the moment the holder's session ends (kill -9 resets
 * the connection), so a survivor takes it at its next claim.  A call that
 * re-establishes a lost connection while roles were held fails, busy: the
 * new session holds none, and the caller must not write as their holder
 * before role.c has seen that (role_held() says so without a round trip).
 *
 * Durability: a commit returns once PostgreSQL has it on stable storage
 * (synchronous_commit on, the server's default), so STORE_TX_ADMIN needs
 * nothing more here and durable() says 1 unless the session runs with
 * synchronous_commit off.
 *
 * What waits on the loop: a loop pass's batch of new users does not
 * (place_send), nor does a STORE_TX_SEND transaction (the replication
 * queue's flush, a health verdict): BEGIN, the writes and COMMIT go in
 * one round trip and the answer is read when it arrives.  Every other
 * call is synchronous on the caller's thread (roostd's event loop), one
 * round trip for a batch of records, bounded by the timeouts above, the
 * server's and roostd's own; so is the first use of a statement on a new
 * connection, which prepares it.  Left for the next steps of issue 11:
 * the moves' writes, which need their answers, the admin writes and the
 * feed's reads.
 */
#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "backend.h"
#include "log.h"
#include "store.h"
#include "store_pg.h"
#include "util.h"
#include "xmalloc.h"

#define LOCK_TIMEOUT_MS		50	/* another instance's row lock */
#define STMT_TIMEOUT_MS		500	/* any one statement on the loop */
#define BULK_TIMEOUT_MS		30000	/* backend_delete of many users */
#define RESET_INTERVAL_MS	1000	/* between reconnect attempts */
#define WAIT_MARGIN_MS		1500	/* past the server's own bound */
#define UNBOUNDED_WAIT_MS	600000	/* a statement the server lets run */
#define CONNECT_TIMEOUT_S	"5"	/* at open; the string may override */
/* Two instances migrating one database at once: the second waits. */
#define MIGRATE_LOCK_KEY	"7263737400000001"
/* Every roostd holds the store's open lock shared, and roostd -C (the
 * copy) holds it alone (exclusive()): neither runs while the other does. */
#define OPEN_LOCK		"(72637374, hashtext(current_schema()))"
/* A role's session lock: one int8 key, the schema's hash above the
 * role's (the two-int4 keys of the locks above are another key space). */
#define ROLE_KEY_OF(r)	"((hashtext(current_schema())::int8 << 32) |" \
				" (hashtext(" r ")::int8 & 4294967295))"
#define ROLE_KEY		ROLE_KEY_OF("$1")

/*
 * Schema migrations: step i takes the schema from version pg_steps[i].from
 * to pg_steps[i].to in one transaction with the version bump.  Append,
 * never edit.
 *
 * The PostgreSQL store begins at version 9 in one step: no PostgreSQL
 * store exists at an older version, so replaying SQLite's history (tables
 * that later steps alter) would only be code to get wrong.  From 9 on the
 * two stores take the same numbered steps, so a schema version means the
 * same tables in both (what a copy from SQLite to PostgreSQL relies on).
 * Column names are SQLite's; "user" and "full" are quoted (keywords).
 * Flags are integers 0/1 and times int8, as in SQLite.
 */
static const struct {
	int		 from, to;
	const char	*sql;
} pg_steps[] = {
	{ 0, 9,
	"CREATE TABLE meta ("
	"  key text PRIMARY KEY,"
	"  value text NOT NULL"
	");"
	"CREATE TABLE backends ("
	"  name text PRIMARY KEY,"
	"  host text NOT NULL,"
	"  hostip text NOT NULL DEFAULT '',"
	"  tag text NOT NULL DEFAULT '',"
	"  weight int8 NOT NULL,"
	"  state text NOT NULL,"
	"  port_imap int4 NOT NULL DEFAULT 0,"
	"  port_pop3 int4 NOT NULL DEFAULT 0,"
	"  port_lmtp int4 NOT NULL DEFAULT 0,"
	"  port_submission int4 NOT NULL DEFAULT 0,"
	"  port_sieve int4 NOT NULL DEFAULT 0,"
	"  port_doveadm int4 NOT NULL DEFAULT 0,"
	"  doveadm_url text,"
	"  doveadm_key text,"
	"  created int8 NOT NULL,"
	"  updated int8 NOT NULL,"
	"  tls text NOT NULL DEFAULT 'no',"
	"  probe_user text,"
	"  probe_password text"
	");"
	"CREATE TABLE users ("
	"  \"user\" text PRIMARY KEY,"
	"  backend text NOT NULL REFERENCES backends(name),"
	"  tag text NOT NULL DEFAULT '',"
	"  pinned int4 NOT NULL DEFAULT 0,"
	"  since int8 NOT NULL DEFAULT 0,"
	"  last_lookup int8 NOT NULL DEFAULT 0,"
	"  confirmed int4 NOT NULL DEFAULT 0,"
	"  replica text,"
	"  replica_current int4 NOT NULL DEFAULT 0,"
	"  failed_over int4 NOT NULL DEFAULT 0"
	");"
	/* C collation: user_list pages in byte order, as SQLite does. */
	"CREATE INDEX users_backend ON users(backend, \"user\" COLLATE \"C\");"
	"CREATE INDEX users_name ON users(\"user\" COLLATE \"C\");"
	"CREATE TABLE audit ("
	"  id int8 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  at int8 NOT NULL,"
	"  actor text NOT NULL,"
	"  action text NOT NULL,"
	"  subject text NOT NULL DEFAULT '',"
	"  detail text NOT NULL DEFAULT '{}'"
	");"
	"CREATE TABLE backend_health ("
	"  backend text PRIMARY KEY"
	"    REFERENCES backends(name) ON DELETE CASCADE,"
	"  state text NOT NULL,"
	"  since int8 NOT NULL,"
	"  error text NOT NULL DEFAULT '',"
	"  latency_ms int8 NOT NULL DEFAULT 0,"
	"  checked int8 NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE proxies ("
	"  name text PRIMARY KEY,"
	"  doveadm_url text NOT NULL,"
	"  doveadm_key text NOT NULL,"
	"  created int8 NOT NULL,"
	"  updated int8 NOT NULL"
	");"
	/* No foreign keys: a move outlives its backends as history. */
	"CREATE TABLE moves ("
	"  id int8 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  \"user\" text NOT NULL,"
	"  from_backend text NOT NULL,"
	"  to_backend text NOT NULL,"
	"  reason text NOT NULL,"
	"  state text NOT NULL,"
	"  pin int4 NOT NULL DEFAULT 0,"
	"  error text NOT NULL DEFAULT '',"
	"  created int8 NOT NULL,"
	"  updated int8 NOT NULL"
	");"
	"CREATE UNIQUE INDEX moves_open ON moves(\"user\")"
	"  WHERE state NOT IN ('done', 'failed');"
	"CREATE TABLE move_jobs ("
	"  id int8 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  kind text NOT NULL,"
	"  backend text NOT NULL DEFAULT '',"
	"  max int8 NOT NULL DEFAULT 0,"
	"  rate int8 NOT NULL DEFAULT 0,"
	"  made int8 NOT NULL DEFAULT 0,"
	"  state text NOT NULL,"
	"  created int8 NOT NULL,"
	"  updated int8 NOT NULL"
	");"
	"CREATE TABLE repl ("
	"  \"user\" text PRIMARY KEY,"
	"  priority int4,"
	"  queued int8 NOT NULL DEFAULT 0,"
	"  due int8 NOT NULL DEFAULT 0,"
	"  \"full\" int4 NOT NULL DEFAULT 0,"
	"  fails int4 NOT NULL DEFAULT 0,"
	"  stuck int4 NOT NULL DEFAULT 0,"
	"  error text NOT NULL DEFAULT '',"
	"  state text NOT NULL DEFAULT '',"
	"  last_fast int8 NOT NULL DEFAULT 0,"
	"  last_full int8 NOT NULL DEFAULT 0,"
	"  last_ok int8 NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX repl_work ON repl(\"user\")"
	"  WHERE priority IS NOT NULL OR fails > 0 OR stuck > 0;"
	/* A user's repl row goes with the user, a replica with its backend;
	 * the functions name their tables through the session's search_path,
	 * which is the schema they were created in. */
	"CREATE FUNCTION roost_users_repl_gone() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$ BEGIN"
	"  DELETE FROM repl WHERE \"user\" = OLD.\"user\"; RETURN NULL;"
	"  END $$;"
	"CREATE TRIGGER users_repl_gone AFTER DELETE ON users"
	"  FOR EACH ROW EXECUTE FUNCTION roost_users_repl_gone();"
	"CREATE FUNCTION roost_backends_replica_gone() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$ BEGIN"
	"  UPDATE users SET replica = NULL, replica_current = 0"
	"  WHERE replica = OLD.name; RETURN NULL; END $$;"
	"CREATE TRIGGER backends_replica_gone AFTER DELETE ON backends"
	"  FOR EACH ROW EXECUTE FUNCTION roost_backends_replica_gone();" },
	/*
	 * 9 -> 10: the change feed.  A row per change of what a lookup
	 * answers, written by triggers (so a writer that is not a roostd is
	 * seen too) and numbered in commit order: each writing transaction
	 * holds CHANGES_LOCK from its first change to its commit, so a
	 * reader that saw change n has seen every change before it (with a
	 * plain sequence a slow transaction would commit a number below
	 * one already read, and its change would be skipped).  The lock is
	 * per schema; roostd's transactions are short.  origin is the
	 * session's roost.origin (store_pg sets it), so an instance skips
	 * its own changes.  Lookup bookkeeping (last_lookup, confirmed) and
	 * a probe round that keeps the verdict are not changes: they would
	 * flood the feed.  pg_notify waits for the commit, and repeats in
	 * one transaction fold into one.
	 */
	{ 9, 10,
	"CREATE TABLE changes ("
	"  seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  kind text NOT NULL,"
	"  key text NOT NULL,"
	"  origin text NOT NULL DEFAULT '',"
	"  at int8 NOT NULL"
	");"
	"CREATE INDEX changes_at ON changes(at);"
	"CREATE FUNCTION roost_changed() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$ DECLARE r jsonb; BEGIN"
	"  IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD);"
	"  ELSE r := to_jsonb(NEW); END IF;"
	"  PERFORM pg_advisory_xact_lock(72637375, hashtext(current_schema()));"
	"  INSERT INTO changes (kind, key, origin, at) VALUES (TG_ARGV[0],"
	"    r->>TG_ARGV[1], coalesce(current_setting('roost.origin', true),"
	"    ''), (extract(epoch FROM clock_timestamp()) * 1000)::int8);"
	"  PERFORM pg_notify('roost_changes', current_schema());"
	"  RETURN NULL; END $$;"
	"CREATE TRIGGER users_changed AFTER INSERT OR DELETE ON users"
	"  FOR EACH ROW EXECUTE FUNCTION roost_changed('user', 'user');"
	"CREATE TRIGGER users_changed_upd AFTER UPDATE ON users FOR EACH ROW"
	"  WHEN ((OLD.\"user\", OLD.backend, OLD.tag, OLD.pinned, OLD.since,"
	"  OLD.replica, OLD.replica_current, OLD.failed_over) IS DISTINCT FROM"
	"  (NEW.\"user\", NEW.backend, NEW.tag, NEW.pinned, NEW.since,"
	"  NEW.replica, NEW.replica_current, NEW.failed_over))"
	"  EXECUTE FUNCTION roost_changed('user', 'user');"
	"CREATE TRIGGER backends_changed AFTER INSERT OR UPDATE OR DELETE"
	"  ON backends FOR EACH ROW"
	"  EXECUTE FUNCTION roost_changed('backend', 'name');"
	"CREATE TRIGGER health_changed AFTER INSERT OR DELETE ON backend_health"
	"  FOR EACH ROW EXECUTE FUNCTION roost_changed('health', 'backend');"
	"CREATE TRIGGER health_changed_upd AFTER UPDATE ON backend_health"
	"  FOR EACH ROW WHEN ((OLD.state, OLD.since, OLD.error) IS DISTINCT"
	"  FROM (NEW.state, NEW.since, NEW.error))"
	"  EXECUTE FUNCTION roost_changed('health', 'backend');"
	"CREATE TRIGGER proxies_changed AFTER INSERT OR UPDATE OR DELETE"
	"  ON proxies FOR EACH ROW"
	"  EXECUTE FUNCTION roost_changed('proxy', 'name');"
	"CREATE TRIGGER moves_changed AFTER INSERT ON moves FOR EACH ROW"
	"  EXECUTE FUNCTION roost_changed('move', 'user');"
	"CREATE TRIGGER moves_changed_upd AFTER UPDATE ON moves FOR EACH ROW"
	"  WHEN (OLD.state IS DISTINCT FROM NEW.state)"
	"  EXECUTE FUNCTION roost_changed('move', 'user');" },
	/*
	 * 10 -> 11: replication work asked of an instance that does not
	 * dispatch (role repl): a row per request, taken by the holder in
	 * the transaction that stores its queue entries.  A change of kind
	 * "repl" wakes the holder.
	 */
	{ 10, 11,
	"CREATE TABLE repl_requests ("
	"  id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  \"user\" text NOT NULL,"
	"  priority int4 NOT NULL,"
	"  \"full\" int4 NOT NULL DEFAULT 0,"
	"  at int8 NOT NULL"
	");"
	"CREATE TRIGGER repl_requests_changed AFTER INSERT ON repl_requests"
	"  FOR EACH ROW EXECUTE FUNCTION roost_changed('repl', 'user');" },
};

_Static_assert(PROTO_IMAP == 0 && PROTO_POP3 == 1 && PROTO_LMTP == 2 &&
    PROTO_SUBMISSION == 3 && PROTO_SIEVE == 4 && PROTO_DOVEADM == 5 &&
    PROTO_COUNT == 6, "port columns out of step with enum proto");

#define BACKEND_COLS							\
	"name, host, hostip, tag, weight, state, port_imap, port_pop3, "\
	"port_lmtp, port_submission, port_sieve, port_doveadm, "	\
	"doveadm_url, doveadm_key, created, updated, tls, probe_user, "\
	"probe_password"
#define USER_COLS	"\"user\", backend, tag, pinned, since, last_lookup, " \
			"confirmed, replica, replica_current, failed_over"
#define REPL_COLS	"\"user\", priority, queued, due, \"full\", fails, " \
			"stuck, error, state, last_fast, last_full, last_ok"
#define PROXY_COLS	"name, doveadm_url, doveadm_key, created, updated"
#define MOVE_COLS	"id, \"user\", from_backend, to_backend, reason, " \
			"state, pin, error, created, updated"
#define JOB_COLS	"id, kind, backend, max, rate, made, state, created, " \
			"updated"
/* Byte order for names, whatever the database's collation. */
#define C_USER		"\"user\" COLLATE \"C\""

enum stmt {
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
	S_MOVE_SEQ,
	S_JOB_SEQ,
	S_AUDIT_SEQ,
	/* the change feed */
	S_CHANGE_HEAD,
	S_CHANGE_LIST,
	S_CHANGE_PRUNE,
	S_BACKEND_GET,
	S_HEALTH_GET,
	S_PROXY_GET,
	S_MOVE_MARKED,
	/* roles */
	S_ROLE_CLAIM,
	S_ROLE_RELEASE,
	S_ROLE_RELEASES,
	S_REPL_STATES,
	S_REPL_REQ_ADD,
	S_REPL_REQ_LIST,
	S_REPL_REQ_DELETE,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BACKEND_LOAD] = "SELECT " BACKEND_COLS
	    " FROM backends ORDER BY name COLLATE \"C\"",
	[S_BACKEND_INSERT] = "INSERT INTO backends (" BACKEND_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
	    " $13, $14, $15, $16, $17, $18, $19)",
	[S_BACKEND_UPDATE] = "UPDATE backends SET host = $2, hostip = $3,"
	    " tag = $4, weight = $5, state = $6, port_imap = $7,"
	    " port_pop3 = $8, port_lmtp = $9, port_submission = $10,"
	    " port_sieve = $11, port_doveadm = $12, doveadm_url = $13,"
	    " doveadm_key = $14, created = $15, updated = $16, tls = $17,"
	    " probe_user = $18, probe_password = $19 WHERE name = $1",
	[S_BACKEND_DELETE_USERS] = "DELETE FROM users WHERE backend = $1",
	[S_BACKEND_DELETE] = "DELETE FROM backends WHERE name = $1",
	[S_USER_LOAD] = "SELECT " USER_COLS " FROM users",
	[S_USER_PUT] = "INSERT INTO users (" USER_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	    " ON CONFLICT (\"user\") DO UPDATE SET backend = excluded.backend,"
	    " tag = excluded.tag, pinned = excluded.pinned,"
	    " since = excluded.since, last_lookup = excluded.last_lookup,"
	    /* a user once seen stays confirmed whoever rewrites the row */
	    " confirmed = greatest(users.confirmed, excluded.confirmed),"
	    " replica = excluded.replica,"
	    " replica_current = excluded.replica_current,"
	    " failed_over = excluded.failed_over",
	[S_USER_DELETE] = "DELETE FROM users WHERE \"user\" = $1",
	[S_USER_GET] = "SELECT " USER_COLS " FROM users WHERE \"user\" = $1",
	/* NULL backend: all; NULL after: from the start. */
	[S_USER_LIST] = "SELECT " USER_COLS " FROM users"
	    " WHERE ($1::text IS NULL OR backend = $1)"
	    " AND ($2::text IS NULL OR " C_USER " > $2)"
	    " ORDER BY " C_USER " LIMIT $3",
	/* greatest(): a late flush of older times never moves one back. */
	[S_USER_TOUCH] = "UPDATE users SET"
	    " last_lookup = greatest(last_lookup, $2::int8),"
	    " confirmed = greatest(confirmed, $3::int4) WHERE \"user\" = $1",
	[S_USER_PLACE] = "INSERT INTO users (" USER_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	    " ON CONFLICT (\"user\") DO UPDATE SET backend = excluded.backend,"
	    " tag = excluded.tag, pinned = excluded.pinned,"
	    " since = excluded.since, last_lookup = excluded.last_lookup,"
	    " confirmed = greatest(users.confirmed, excluded.confirmed),"
	    " replica = excluded.replica,"
	    " replica_current = excluded.replica_current,"
	    " failed_over = excluded.failed_over"
	    /* NULL: never, the row stays as it is */
	    " WHERE users.backend = $11",
	[S_AUDIT_ADD] = "INSERT INTO audit (at, actor, action, subject, detail)"
	    " VALUES ($1, $2, $3, $4, $5)",
	[S_AUDIT_LIST] = "SELECT id, at, actor, action, subject, detail"
	    " FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
	[S_HEALTH_PUT] = "INSERT INTO backend_health (backend, state, since,"
	    " error, latency_ms, checked) VALUES ($1, $2, $3, $4, $5, $6)"
	    " ON CONFLICT (backend) DO UPDATE SET state = excluded.state,"
	    " since = excluded.since, error = excluded.error,"
	    " latency_ms = excluded.latency_ms, checked = excluded.checked",
	[S_HEALTH_LOAD] = "SELECT backend, state, since, error, latency_ms,"
	    " checked FROM backend_health ORDER BY backend COLLATE \"C\"",
	[S_PROXY_LOAD] = "SELECT " PROXY_COLS " FROM proxies"
	    " ORDER BY name COLLATE \"C\"",
	[S_PROXY_INSERT] = "INSERT INTO proxies (" PROXY_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5)",
	[S_PROXY_UPDATE] = "UPDATE proxies SET doveadm_url = $2,"
	    " doveadm_key = $3, created = $4, updated = $5 WHERE name = $1",
	[S_PROXY_DELETE] = "DELETE FROM proxies WHERE name = $1",
	[S_MOVE_INSERT] = "INSERT INTO moves (\"user\", from_backend,"
	    " to_backend, reason, state, pin, error, created, updated)"
	    " VALUES ($1, $2, $3, $4, $5, $6, '', $7, $7) RETURNING id",
	[S_MOVE_STATE] = "UPDATE moves SET state = $2, error = $3,"
	    " updated = $4 WHERE id = $1",
	/* The compare-and-set of move_switch: only while still on `from`. */
	[S_MOVE_SWITCH_USER] = "UPDATE users SET backend = $3, pinned = $4,"
	    " since = $5, replica = $6, replica_current = $7,"
	    " failed_over = $8 WHERE \"user\" = $1 AND backend = $2",
	[S_MOVE_LIST_OPEN] = "SELECT " MOVE_COLS " FROM moves"
	    " WHERE state NOT IN ('done', 'failed') ORDER BY id LIMIT $1",
	[S_MOVE_LIST] = "SELECT " MOVE_COLS " FROM moves WHERE id < $1"
	    " ORDER BY id DESC LIMIT $2",
	[S_JOB_INSERT] = "INSERT INTO move_jobs (kind, backend, max, rate,"
	    " made, state, created, updated)"
	    " VALUES ($1, $2, $3, $4, 0, 'running', $5, $5) RETURNING id",
	[S_JOB_STATE] = "UPDATE move_jobs SET state = $2, made = $3,"
	    " updated = $4 WHERE id = $1",
	[S_JOB_LIST] = "SELECT " JOB_COLS " FROM move_jobs"
	    " WHERE state = 'running' ORDER BY id",
	/* The dsync state and the times of good syncs are written only
	 * when given (after a sync), never wiped by a queue change. */
	[S_REPL_PUT] = "INSERT INTO repl (" REPL_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, ''),"
	    " $10, $11, $12)"
	    " ON CONFLICT (\"user\") DO UPDATE SET priority = excluded.priority,"
	    " queued = excluded.queued, due = excluded.due,"
	    " \"full\" = excluded.\"full\", fails = excluded.fails,"
	    " stuck = excluded.stuck, error = excluded.error,"
	    " state = coalesce($9, repl.state),"
	    " last_fast = greatest(repl.last_fast, excluded.last_fast),"
	    " last_full = greatest(repl.last_full, excluded.last_full),"
	    " last_ok = greatest(repl.last_ok, excluded.last_ok)",
	[S_REPL_GET] = "SELECT " REPL_COLS " FROM repl WHERE \"user\" = $1",
	[S_REPL_LOAD] = "SELECT " REPL_COLS " FROM repl"
	    " WHERE priority IS NOT NULL OR fails > 0 OR stuck > 0",
	[S_REPL_DELETE] = "DELETE FROM repl WHERE \"user\" = $1",
	/* The primary key's own order, so each page is an index range; no
	 * user is named "": after NULL binds "". */
	[S_REPL_LIST] = "SELECT " REPL_COLS " FROM repl WHERE \"user\" > $1"
	    " ORDER BY \"user\" LIMIT $2",
	[S_JOB_LIST_ALL] = "SELECT " JOB_COLS " FROM move_jobs ORDER BY id",
	[S_MOVE_RESTORE] = "INSERT INTO moves (" MOVE_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
	[S_JOB_RESTORE] = "INSERT INTO move_jobs (" JOB_COLS ")"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
	[S_AUDIT_RESTORE] = "INSERT INTO audit (id, at, actor, action,"
	    " subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
	/* After a restore the identity goes on from the highest id (a
	 * NULL max, an empty table, leaves it alone). */
	[S_MOVE_SEQ] = "SELECT setval(pg_get_serial_sequence('moves', 'id'),"
	    " max(id)) FROM moves",
	[S_JOB_SEQ] = "SELECT setval(pg_get_serial_sequence('move_jobs',"
	    " 'id'), max(id)) FROM move_jobs",
	[S_AUDIT_SEQ] = "SELECT setval(pg_get_serial_sequence('audit', 'id'),"
	    " max(id)) FROM audit",
	/* A store whose changes were all pruned still counts on. */
	[S_CHANGE_HEAD] = "SELECT greatest((SELECT coalesce(max(seq), 0)"
	    " FROM changes), (SELECT coalesce(max(value::int8), 0) FROM meta"
	    " WHERE key = 'changes_pruned'))",
	/* The prune mark with the changes, in one snapshot; one row with
	 * NULL changes when there are none. */
	[S_CHANGE_LIST] = "SELECT p.v, c.seq, c.kind, c.key, c.origin, c.at"
	    " FROM (SELECT coalesce(max(value::int8), 0) AS v FROM meta"
	    " WHERE key = 'changes_pruned') p LEFT JOIN LATERAL"
	    " (SELECT seq, kind, key, origin, at FROM changes WHERE seq > $1"
	    " ORDER BY seq LIMIT $2) c ON true ORDER BY c.seq",
	[S_CHANGE_PRUNE] = "WITH gone AS (DELETE FROM changes WHERE at <"
	    " (extract(epoch FROM clock_timestamp()) * 1000)::int8 - $1"
	    " RETURNING seq) INSERT INTO meta (key, value)"
	    " SELECT 'changes_pruned', max(seq)::text FROM gone"
	    " HAVING count(*) > 0 ON CONFLICT (key) DO UPDATE SET value ="
	    " greatest(meta.value::int8, excluded.value::int8)::text",
	[S_BACKEND_GET] = "SELECT " BACKEND_COLS " FROM backends"
	    " WHERE name = $1",
	[S_HEALTH_GET] = "SELECT backend, state, since, error, latency_ms,"
	    " checked FROM backend_health WHERE backend = $1",
	[S_PROXY_GET] = "SELECT " PROXY_COLS " FROM proxies WHERE name = $1",
	[S_MOVE_MARKED] = "SELECT count(*) FROM moves WHERE \"user\" = $1"
	    " AND state IN ('kicking', 'waiting', 'syncing')",
	/* Every role of a round in one round trip: $1 is the names, one a
	 * line (role names are backend names and fixed words: no newline),
	 * each answered in order. */
	[S_ROLE_CLAIM] = "SELECT pg_try_advisory_lock(" ROLE_KEY_OF("r")
	    ")::int4 FROM unnest(string_to_array($1, E'\\n')) WITH ORDINALITY"
	    " AS t(r, i) ORDER BY i",
	[S_ROLE_RELEASE] = "SELECT pg_advisory_unlock(" ROLE_KEY ")::int4",
	/* Several, as S_ROLE_CLAIM asks. */
	[S_ROLE_RELEASES] = "SELECT pg_advisory_unlock(" ROLE_KEY_OF("r")
	    ")::int4 FROM unnest(string_to_array($1, E'\\n')) WITH ORDINALITY"
	    " AS t(r, i) ORDER BY i",
	/* The dsync states of the users of $1, one a line, in their order:
	 * one row each, "" for a user without one. */
	[S_REPL_STATES] = "SELECT coalesce(r.state, '') FROM"
	    " unnest(string_to_array($1, E'\\n')) WITH ORDINALITY AS t(u, i)"
	    " LEFT JOIN repl r ON r.\"user\" = t.u ORDER BY t.i",
	[S_REPL_REQ_ADD] = "INSERT INTO repl_requests (\"user\", priority,"
	    " \"full\", at) VALUES ($1, $2, $3, $4)",
	[S_REPL_REQ_LIST] = "SELECT id, \"user\", priority, \"full\", at"
	    " FROM repl_requests ORDER BY id LIMIT $1",
	[S_REPL_REQ_DELETE] = "DELETE FROM repl_requests WHERE id = $1",
};

struct pg_store {
	PGconn		*conn;
	int		 prepared[S_COUNT];	/* on this connection */
	int		 in_tx;		/* inside the caller's begin() */
	int		 tx_failed;	/* begin() or commit() failed: none open */
	int		 resetting;	/* a reconnect thread runs */
	char		*spec;		/* the connection string */
	const char	*appname;	/* application_name, unless spec says */
	pthread_t	 rc_thread;
	atomic_int	 rc_done;	/* it has set rc_conn */
	PGconn		*rc_conn;	/* what it made, for the loop to take */
	int		 abandoned;	/* no answer in time: dropped */
	int		 bound_ms;	/* the server's statement_timeout now,
					 * 0 = none */
	char		 lost[96];	/* why it was dropped */
	uint64_t	 deadline_at;	/* a wait's end set by its caller */
	struct pg_place	*place;		/* a user_place under way */
	struct pg_send	*send;		/* a STORE_TX_SEND transaction */
	struct pg_ask	*ask;		/* a question sent, not answered
					 * yet: a role claim, dsync states */
	char		**roles;	/* held by this session */
	size_t		 nroles;
	uint64_t	 reset_at;	/* last reconnect attempt, mono ms */
	char		 origin[48];	/* roost.origin: tags our changes */
};

/* How an operation groups its statements: its own transaction, or a
 * savepoint inside the caller's, so that it is all or nothing and a failed
 * operation leaves the caller's earlier work alone (as in SQLite, where a
 * failed statement does not abort the transaction). */
enum txmode { TX_NONE, TX_OWN, TX_SAVEPOINT };

/* Bound parameters, as text. */
#define MAXPARAM	20
struct params {
	int		 n;
	const char	*v[MAXPARAM];
	char		 buf[MAXPARAM][24];
};

static struct pg_store *
impl(struct store *st)
{
	return st->impl;
}

static void
p_text(struct params *p, const char *v)
{
	p->v[p->n++] = v;
}

static void
p_int(struct params *p, int64_t v)
{
	snprintf(p->buf[p->n], sizeof(p->buf[0]), "%lld", (long long)v);
	p->v[p->n] = p->buf[p->n];
	p->n++;
}

/* Copy msg into the store's error, without newlines. */
static void
set_msg(struct store *st, const char *what, const char *msg)
{
	char *nl;

	store_set_error(st, "%s: %s", what, msg != NULL && *msg != '\0' ?
	    msg : "unknown error");
	while ((nl = strpbrk(st->err, "\r\n\t")) != NULL) {
		if (nl[1] == '\0')
			*nl = '\0';
		else
			*nl = ' ';
	}
}

/*
 * A new tag for this instance's changes, once a session went while a
 * statement was in flight: if that was a COMMIT, or a statement of its
 * own, the server may have done it without our hearing, and memory does
 * not have it.  Under the old tag the change feed would skip it as ours;
 * under the new one it reads the rows back like another writer's.
 */
static void
origin_renew(struct pg_store *ps)
{
	static unsigned	 gen;	/* the admin lane's thread renews too */

	snprintf(ps->origin, sizeof(ps->origin), "%ld-%llx-%u", (long)getpid(),
	    (unsigned long long)now_msec(), __atomic_add_fetch(&gen, 1,
	    __ATOMIC_RELAXED));
}

/*
 * Waiting for the server.  libpq's own calls wait as long as the server
 * takes, and the server's statement_timeout only helps while it runs: a
 * hung server, or a network that drops its replies, would hold the loop
 * forever.  So every statement is sent on a non-blocking connection and
 * its answer awaited here, for the server's bound plus WAIT_MARGIN_MS at
 * most; then the connection is abandoned: shut down, so that libpq calls
 * it lost and the server, once it looks, ends the session (rolling back
 * its transaction and freeing its locks).  The next call reconnects
 * (conn_ready).  A COMMIT abandoned this way may or may not have
 * happened; like any lost connection, that is STORE_ERETRY.
 */
static int
conn_ok(const struct pg_store *ps)
{
	return ps->conn != NULL && PQstatus(ps->conn) == CONNECTION_OK &&
	    !ps->resetting && !ps->abandoned;
}

static uint64_t
wait_deadline(const struct pg_store *ps)
{
	if (ps->deadline_at != 0)
		return ps->deadline_at;
	return now_msec_mono() + (ps->bound_ms > 0 ?
	    (uint64_t)ps->bound_ms + WAIT_MARGIN_MS : UNBOUNDED_WAIT_MS);
}

static void
conn_abandon(struct pg_store *ps, int waited_ms)
{
	int fd = PQsocket(ps->conn);

	snprintf(ps->lost, sizeof(ps->lost), "no answer from the server in "
	    "%d ms; connection dropped", waited_ms);
	ps->abandoned = 1;
	origin_renew(ps);
	if (fd != -1)
		(void)shutdown(fd, SHUT_RDWR);
	(void)PQconsumeInput(ps->conn);	/* meets the end: CONNECTION_BAD */
}

/* Wait for the socket until deadline; -1 (connection abandoned) when the
 * time is up. */
static int
conn_poll(struct pg_store *ps, short events, uint64_t start,
    uint64_t deadline)
{
	struct pollfd pfd;
	uint64_t now = now_msec_mono();

	if (now >= deadline) {
		conn_abandon(ps, (int)(now - start));
		return -1;
	}
	pfd.fd = PQsocket(ps->conn);
	pfd.events = events;
	pfd.revents = 0;
	if (poll(&pfd, 1, (int)(deadline - now)) == -1 && errno != EINTR) {
		conn_abandon(ps, (int)(now_msec_mono() - start));
		return -1;
	}
	return 0;
}

/*
 * PQgetResult, waiting no longer than the statement's bound allows: sends
 * what libpq still holds, then reads until a result is complete.  NULL is
 * the end of the results, or (conn_ok() then false) a lost or abandoned
 * connection.
 */
static PGresult *
get_result(struct pg_store *ps)
{
	PGconn *conn = ps->conn;
	uint64_t start = now_msec_mono(), deadline = wait_deadline(ps);
	int r;

	if (ps->abandoned)
		return NULL;
	while ((r = PQflush(conn)) == 1) {
		if (conn_poll(ps, POLLOUT | POLLIN, start, deadline) == -1)
			return NULL;
		if (!PQconsumeInput(conn))
			return NULL;
	}
	if (r == -1)
		return NULL;
	while (PQisBusy(conn)) {
		if (conn_poll(ps, POLLIN, start, deadline) == -1)
			return NULL;
		if (!PQconsumeInput(conn))
			break;	/* lost: PQgetResult says so */
	}
	return PQgetResult(conn);
}

/* Every result of what was sent, as PQexec gives it: the last one, or the
 * first that failed; NULL when the connection went. */
static PGresult *
get_results(struct pg_store *ps)
{
	PGresult *res, *keep = NULL;
	ExecStatusType ks;

	while ((res = get_result(ps)) != NULL) {
		ks = keep != NULL ? PQresultStatus(keep) : PGRES_COMMAND_OK;
		if (keep != NULL && ks != PGRES_COMMAND_OK &&
		    ks != PGRES_TUPLES_OK) {
			PQclear(res);
			continue;
		}
		PQclear(keep);
		keep = res;
	}
	if (!conn_ok(ps) && (keep == NULL ||
	    PQresultStatus(keep) == PGRES_COMMAND_OK ||
	    PQresultStatus(keep) == PGRES_TUPLES_OK)) {
		if (!ps->abandoned)
			origin_renew(ps);	/* lost mid-statement */
		PQclear(keep);
		return NULL;
	}
	return keep;
}

/* PQexec, PQexecParams, PQprepare and PQexecPrepared with bounded waits. */
static PGresult *
exec_sql(struct pg_store *ps, const char *sql)
{
	if (ps->abandoned || !PQsendQuery(ps->conn, sql))
		return NULL;
	return get_results(ps);
}

static PGresult *
exec_params(struct pg_store *ps, const char *sql, int n,
    const char *const *v)
{
	if (ps->abandoned ||
	    !PQsendQueryParams(ps->conn, sql, n, NULL, v, NULL, NULL, 0))
		return NULL;
	return get_results(ps);
}

static PGresult *
exec_prepare(struct pg_store *ps, const char *name, const char *sql)
{
	if (ps->abandoned || !PQsendPrepare(ps->conn, name, sql, 0, NULL))
		return NULL;
	return get_results(ps);
}

static PGresult *
exec_prepared(struct pg_store *ps, const char *name, int n,
    const char *const *v)
{
	if (ps->abandoned ||
	    !PQsendQueryPrepared(ps->conn, name, n, v, NULL, NULL, 0))
		return NULL;
	return get_results(ps);
}

/* Which failures are worth a retry: another's lock, a timeout, a
 * conflict between transactions, a server going away or coming up. */
static int
retryable(const char *state)
{
	static const char *const codes[] = {
		"55P03",	/* lock_not_available (lock_timeout) */
		"57014",	/* query_canceled (statement_timeout) */
		"40001",	/* serialization_failure */
		"40P01",	/* deadlock_detected */
		"57P01",	/* admin_shutdown */
		"57P02",	/* crash_shutdown */
		"57P03",	/* cannot_connect_now */
		"53300",	/* too_many_connections */
		"25006",	/* read_only_sql_transaction: a standby */
	};
	size_t i;

	if (state == NULL)
		return 0;
	if (strncmp(state, "08", 2) == 0)	/* connection exception */
		return 1;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(state, codes[i]) == 0)
			return 1;
	return 0;
}

/* Record why res (NULL: the connection) failed; returns -1. */
static int
pg_fail(struct store *st, const char *what, const PGresult *res)
{
	PGconn *conn = impl(st)->conn;
	const char *state = NULL, *msg = NULL;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (msg == NULL && impl(st)->abandoned)
		msg = impl(st)->lost;
	if (msg == NULL)
		msg = conn != NULL ? PQerrorMessage(conn) : "no connection";
	set_msg(st, what, msg);
	if (retryable(state) || !conn_ok(impl(st)))
		st->errclass = STORE_ERETRY;
	else if (state != NULL && strncmp(state, "23", 2) == 0)
		st->errclass = STORE_ECONFLICT;	/* integrity constraint */
	return -1;
}

static int
is_state(const PGresult *res, const char *code)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return s != NULL && strcmp(s, code) == 0;
}

static const char *
constraint(const PGresult *res)
{
	const char *c = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

	return c != NULL ? c : "";
}

/* The settings every connection gets, at open and after a reconnect. */
static int
session_setup(struct store *st)
{
	PGresult *res;
	char sql[256];

	snprintf(sql, sizeof(sql), "SET lock_timeout = %d;"
	    " SET statement_timeout = %d; SET client_encoding = 'UTF8';"
	    " SET idle_in_transaction_session_timeout = 60000;"
	    " SET roost.origin = '%s'", LOCK_TIMEOUT_MS, STMT_TIMEOUT_MS,
	    impl(st)->origin);
	res = exec_sql(impl(st), sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(st, "session setup", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	impl(st)->bound_ms = STMT_TIMEOUT_MS;
	return 0;
}

/* The open lock: shared (every roostd) or alone (a copy); 1 taken, 0
 * not, -1 on error. */
static int
open_lock(struct store *st, int alone)
{
	PGresult *res;
	int rv;

	res = exec_sql(impl(st), alone ? "SELECT pg_advisory_unlock_all();"
	    " SELECT pg_try_advisory_lock" OPEN_LOCK :
	    "SELECT pg_try_advisory_lock_shared" OPEN_LOCK);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_fail(st, "store lock", res);
		PQclear(res);
		return -1;
	}
	rv = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return rv;
}

/* The session that held the roles is gone, and the roles with it. */
static void
roles_forget(struct pg_store *ps)
{
	size_t i;

	for (i = 0; i < ps->nroles; i++)
		free(ps->roles[i]);
	free(ps->roles);
	ps->roles = NULL;
	ps->nroles = 0;
}

static void	place_finish(struct store *);
static void	ask_finish(struct store *);
static void	ask_free(struct pg_store *);
static int	send_building(const struct pg_store *);
static int	send_rollback(struct store *);
static int	pg_tx_send(struct store *, void (*)(void *), void *);
static int	pg_tx_poll(struct store *, int *);
static void	send_finish(struct store *);
static void	send_free(struct pg_store *);
static void	pg_notice(void *, const char *);
static void	place_free(struct pg_store *);

/*
 * Connecting waits: for a host name, for each host of the string until it
 * answers or its connect_timeout passes (a hung host never refuses), and
 * for the server's authentication.  So a lost connection is made again on
 * a thread of its own, with libpq's blocking connect, which knows all of
 * that (PQconnectPoll leaves connect_timeout to its caller and never goes
 * on to the next host of a hung one); the loop only looks whether it is
 * done.  The thread touches nothing but its own PGconn and the flag.
 */
static void *
reconnect_run(void *arg)
{
	struct pg_store *ps = arg;
	const char *keys[] = { "connect_timeout", "application_name",
	    "dbname", NULL };
	const char *vals[] = { CONNECT_TIMEOUT_S, ps->appname, ps->spec,
	    NULL };

	ps->rc_conn = PQconnectdbParams(keys, vals, 1);
	atomic_store(&ps->rc_done, 1);
	return NULL;
}

/* Wait for a reconnect under way (at close). */
static void
reconnect_join(struct pg_store *ps)
{
	if (!ps->resetting)
		return;
	pthread_join(ps->rc_thread, NULL);
	ps->resetting = 0;
	if (ps->rc_conn != NULL)
		PQfinish(ps->rc_conn);
	ps->rc_conn = NULL;
}

/*
 * Make sure there is a working connection, without blocking: a lost one
 * is made again on a thread (reconnect_run), once a RESET_INTERVAL_MS at
 * most, and the calls meanwhile fail busy.  Inside the caller's
 * transaction a lost connection stays lost: the transaction went with it,
 * and commit() has to say so.
 */
static int
conn_ready(struct store *st)
{
	struct pg_store *ps = impl(st);
	PGconn *conn;
	uint64_t now;
	int i;

	if (ps->place != NULL)
		place_finish(st);
	if (ps->ask != NULL)
		ask_finish(st);
	if (ps->send != NULL) {
		if (send_building(ps)) {
			store_set_error(st, "a sent transaction has only "
			    "writes that need no answer");
			return -1;
		}
		send_finish(st);
	}
	if (conn_ok(ps))
		return 0;
	if (ps->in_tx) {
		set_msg(st, "store", "connection lost inside a transaction");
		st->errclass = STORE_ERETRY;
		return -1;
	}
	now = now_msec_mono();
	if (!ps->resetting) {
		if (ps->reset_at != 0 && now - ps->reset_at < RESET_INTERVAL_MS)
			goto busy;
		ps->reset_at = now;
		atomic_store(&ps->rc_done, 0);
		ps->rc_conn = NULL;
		if (pthread_create(&ps->rc_thread, NULL, reconnect_run,
		    ps) != 0) {
			log_warn("postgresql store: reconnect thread");
			goto busy;
		}
		ps->resetting = 1;
	}
	if (!atomic_load(&ps->rc_done))
		goto busy;
	pthread_join(ps->rc_thread, NULL);
	ps->resetting = 0;
	conn = ps->rc_conn;
	ps->rc_conn = NULL;
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		set_msg(st, "store connection lost, reconnecting",
		    conn != NULL ? PQerrorMessage(conn) : "out of memory");
		st->errclass = STORE_ERETRY;
		if (conn != NULL)
			PQfinish(conn);
		return -1;
	}
	PQfinish(ps->conn);
	ps->conn = conn;
	PQsetNoticeProcessor(ps->conn, pg_notice, NULL);
	ps->abandoned = 0;
	for (i = 0; i < S_COUNT; i++)
		ps->prepared[i] = 0;
	if (PQsetnonblocking(ps->conn, 1) == -1)
		goto busy;
	if (session_setup(st) == -1)
		return -1;
	log_info("postgresql store: connection re-established");
	if (open_lock(st, 0) == 0)
		log_warnx("postgresql store: a copy (roostd -C) has the store");
	if (ps->nroles > 0) {
		/* The caller may be about to write as a role's holder:
		 * not in this session, which holds none. */
		roles_forget(ps);
		set_msg(st, "store", "connection re-established; the roles "
		    "went with the old session");
		st->errclass = STORE_ERETRY;
		return -1;
	}
	return 0;
busy:
	pg_fail(st, "store connection lost, reconnecting", NULL);
	st->errclass = STORE_ERETRY;
	return -1;
}

/* A statement without parameters or rows (BEGIN, SAVEPOINT, SET). */
static int
simple(struct store *st, const char *sql, const char *what)
{
	PGresult *res;

	res = exec_sql(impl(st), sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(st, what, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* Prepare statement id on this connection unless it is; named "r<id>". */
static int
prepare(struct store *st, enum stmt id, const char *what)
{
	struct pg_store *ps = impl(st);
	PGresult *res;
	char name[16];

	if (ps->prepared[id])
		return 0;
	snprintf(name, sizeof(name), "r%d", (int)id);
	res = exec_prepare(ps, name, stmt_sql[id]);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(st, what, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	ps->prepared[id] = 1;
	return 0;
}

/*
 * Run prepared statement id with p; the result (rows or not) for the
 * caller to PQclear, or NULL with the error set.  *errres, when given,
 * gets a failed result instead (for the constraint checks), also to clear.
 */
static PGresult *
run(struct store *st, enum stmt id, const struct params *p,
    const char *what, PGresult **errres)
{
	struct pg_store *ps = impl(st);
	PGresult *res;
	ExecStatusType rs;
	char name[16];

	if (errres != NULL)
		*errres = NULL;
	if (conn_ready(st) == -1 || prepare(st, id, what) == -1)
		return NULL;
	snprintf(name, sizeof(name), "r%d", (int)id);
	res = exec_prepared(ps, name, p != NULL ? p->n : 0,
	    p != NULL ? p->v : NULL);
	rs = PQresultStatus(res);
	if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK)
		return res;
	pg_fail(st, what, res);
	if (errres != NULL)
		*errres = res;
	else
		PQclear(res);
	return NULL;
}

/* The number of rows a command changed. */
static int64_t
cmd_tuples(PGresult *res)
{
	long long n;

	if (parse_ll(PQcmdTuples(res), 0, LLONG_MAX, &n) == -1)
		n = 0;
	return n;
}

/* Run a statement that returns no rows; *changed (if given) gets the
 * number of rows it changed. */
static int
run_cmd(struct store *st, enum stmt id, const struct params *p,
    const char *what, int64_t *changed)
{
	PGresult *res;

	if ((res = run(st, id, p, what, NULL)) == NULL)
		return -1;
	if (changed != NULL)
		*changed = cmd_tuples(res);
	PQclear(res);
	return 0;
}

/* Fill the parameters of record i; -1 (error set) refuses the record. */
typedef int (*fill_fn)(struct store *, const void *, size_t,
    struct params *);

/* A STORE_TX_SEND transaction's (below). */
static int	send_begin(struct store *);
static int	send_add(struct store *, enum stmt, const void *, size_t,
		    fill_fn, const char *);
static int	fill_params(struct store *, const void *, size_t,
		    struct params *);

/*
 * Run statement id once per record in libpq's pipeline mode, PIPE_MAX
 * statements a round trip instead of one each, inside the caller's unit of
 * work.  Stops at the first failure: *bad gets the record's index and
 * *errres its result (for the caller to PQclear), when the server refused
 * it.  changed, when given, gets the number of rows each statement changed.
 * open and close (NULL: none) go in the same round trips, before the first
 * record and after the last: BEGIN and COMMIT, so that a batch of up to
 * PIPE_MAX records is one round trip in all.  A COMMIT that the server
 * turned into a ROLLBACK (an earlier error) fails the batch.  The
 * connection is non-blocking and get_result() sends what is left.
 */
#define PIPE_MAX	256	/* >= STORE_PLACE_SEND_MAX: one round trip */

/* One round trip of a batch: records [i, end) and what goes with them. */
struct pipe {
	size_t		 i, end;
	size_t		 sent;		/* records sent */
	int		 sent_open, sent_close;
	int		 failed;
	size_t		 bad;
	PGresult	*errres;
};

/* Send one round trip's statements and the sync; the answers are read by
 * pipe_recv (at once, or when they arrive: place_send). */
static void
pipe_send(struct store *st, struct pipe *pp, const char *name,
    const void *recs, fill_fn fill, const char *what, const char *open,
    const char *close, size_t n)
{
	PGconn *conn = impl(st)->conn;
	struct params p;
	size_t j;

	if (!PQenterPipelineMode(conn)) {
		pg_fail(st, what, NULL);
		pp->failed = -1;	/* not in pipeline mode: nothing to read */
		return;
	}
	if (pp->i == 0 && open != NULL) {
		if (PQsendQueryParams(conn, open, 0, NULL, NULL, NULL, NULL,
		    0))
			pp->sent_open = 1;
		else {
			pg_fail(st, what, NULL);
			pp->failed = 1;
		}
	}
	for (j = pp->i; j < pp->end && !pp->failed; j++, pp->sent++) {
		memset(&p, 0, sizeof(p));
		if (fill(st, recs, j, &p) == -1) {
			pp->failed = 1;
			pp->bad = j;
			break;
		}
		if (!PQsendQueryPrepared(conn, name, p.n, p.v, NULL, NULL, 0)) {
			pg_fail(st, what, NULL);
			pp->failed = 1;
			pp->bad = j;
			break;
		}
	}
	if (pp->end == n && close != NULL && !pp->failed) {
		if (PQsendQueryParams(conn, close, 0, NULL, NULL, NULL, NULL, 0))
			pp->sent_close = 1;
		else {
			pg_fail(st, what, NULL);
			pp->failed = 1;
		}
	}
	if (!PQpipelineSync(conn) && !pp->failed) {
		pg_fail(st, what, NULL);
		pp->failed = 1;
	}
}

/* Read what pipe_send sent to the end; 0 or -1 (error set, pp->bad and
 * pp->errres as run_batch says). */
static int
pipe_recv(struct store *st, struct pipe *pp, const char *what,
    int64_t *changed)
{
	struct pg_store *ps = impl(st);
	PGresult *res;
	ExecStatusType rs;
	size_t j;

	if (pp->failed == -1)
		return -1;
	/* The opening statement's result and a NULL, if it went. */
	if (pp->sent_open && conn_ok(ps)) {
		while ((res = get_result(ps)) != NULL) {
			if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    !pp->failed) {
				pg_fail(st, what, res);
				pp->failed = 1;
			}
			PQclear(res);
		}
	}
	/* One result and a NULL per record sent; after a failure the rest
	 * come back aborted. */
	for (j = 0; j < pp->sent && conn_ok(ps); j++) {
		while ((res = get_result(ps)) != NULL) {
			rs = PQresultStatus(res);
			if (rs == PGRES_COMMAND_OK && changed != NULL)
				changed[pp->i + j] = cmd_tuples(res);
			if (rs == PGRES_COMMAND_OK ||
			    rs == PGRES_PIPELINE_ABORTED || pp->failed) {
				PQclear(res);
				continue;
			}
			pg_fail(st, what, res);
			pp->failed = 1;
			pp->bad = pp->i + j;
			pp->errres = res;
		}
	}
	/* The closing statement's: a COMMIT can say ROLLBACK. */
	if (pp->sent_close && conn_ok(ps)) {
		while ((res = get_result(ps)) != NULL) {
			rs = PQresultStatus(res);
			if (!pp->failed && (rs != PGRES_COMMAND_OK ||
			    strcmp(PQcmdStatus(res), "ROLLBACK") == 0)) {
				if (rs == PGRES_COMMAND_OK)
					set_msg(st, what, "the transaction "
					    "was rolled back");
				else
					pg_fail(st, what, res);
				pp->failed = 1;
			}
			PQclear(res);
		}
	}
	if (conn_ok(ps)) {
		res = get_result(ps);
		if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && !pp->failed) {
			pg_fail(st, what, res);
			pp->failed = 1;
		}
		PQclear(res);
	}
	if (!PQexitPipelineMode(ps->conn)) {
		if (!pp->failed)
			pg_fail(st, what, NULL);
		pp->failed = 1;
	}
	if (!conn_ok(ps)) {
		if (!pp->failed)
			pg_fail(st, what, NULL);
		if (!ps->abandoned)
			origin_renew(ps);	/* lost mid-batch */
		st->errclass = STORE_ERETRY;
		pp->failed = 1;
	}
	return pp->failed ? -1 : 0;
}

/*
 * Run statement id once per record in libpq's pipeline mode, PIPE_MAX
 * statements a round trip instead of one each, inside the caller's unit of
 * work.  Stops at the first failure: *bad gets the record's index and
 * *errres its result (for the caller to PQclear), when the server refused
 * it.  changed, when given, gets the number of rows each statement changed.
 * open and close (NULL: none) go in the same round trips, before the first
 * record and after the last: BEGIN and COMMIT, so that a batch of up to
 * PIPE_MAX records is one round trip in all.  A COMMIT that the server
 * turned into a ROLLBACK (an earlier error) fails the batch.  The
 * connection is non-blocking and get_result() sends what is left.
 */
static int
run_batch(struct store *st, enum stmt id, const void *recs, size_t n,
    fill_fn fill, const char *what, size_t *bad, PGresult **errres,
    int64_t *changed, const char *open, const char *close)
{
	struct pipe pp;
	size_t i;
	int rc = 0;
	char name[16];

	*errres = NULL;
	*bad = 0;
	if (conn_ready(st) == -1 || prepare(st, id, what) == -1)
		return -1;
	snprintf(name, sizeof(name), "r%d", (int)id);
	for (i = 0; i < n && rc == 0; i = pp.end) {
		memset(&pp, 0, sizeof(pp));
		pp.i = i;
		pp.end = n - i > PIPE_MAX ? i + PIPE_MAX : n;
		pipe_send(st, &pp, name, recs, fill, what, open, close, n);
		rc = pipe_recv(st, &pp, what, changed);
		*bad = pp.bad;
		*errres = pp.errres;
	}
	return rc;
}

static int
tx_start(struct store *st, enum txmode *mode)
{
	if (conn_ready(st) == -1)
		return -1;
	if (impl(st)->in_tx) {
		*mode = TX_SAVEPOINT;
		return simple(st, "SAVEPOINT roost_op", "savepoint");
	}
	*mode = TX_OWN;
	return simple(st, "BEGIN", "begin");
}

/* Close a unit of work: keep it when ok, undo it otherwise.  The error of
 * the failed step stays in st->err. */
static int
tx_end(struct store *st, enum txmode mode, int ok)
{
	struct pg_store *ps = impl(st);
	char saved[sizeof(st->err)];
	PGresult *res;
	enum store_err class;

	if (mode == TX_NONE)
		return ok ? 0 : -1;
	if (mode == TX_OWN)
		ps->bound_ms = STMT_TIMEOUT_MS;	/* SET LOCAL ends with it */
	if (ok) {
		if (mode == TX_SAVEPOINT)
			return simple(st, "RELEASE roost_op", "release");
		res = exec_sql(ps, "COMMIT");
		if (PQresultStatus(res) == PGRES_COMMAND_OK &&
		    strcmp(PQcmdStatus(res), "COMMIT") == 0) {
			PQclear(res);
			return 0;
		}
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
			set_msg(st, "commit", "the transaction was rolled "
			    "back after an earlier error");
		else
			pg_fail(st, "commit", res);
		PQclear(res);
		return -1;
	}
	memcpy(saved, st->err, sizeof(saved));
	class = st->errclass;
	if (conn_ok(ps) && PQtransactionStatus(ps->conn) != PQTRANS_IDLE) {
		if (mode == TX_OWN)
			simple(st, "ROLLBACK", "rollback");
		else if (simple(st, "ROLLBACK TO roost_op", "rollback") == 0)
			simple(st, "RELEASE roost_op", "release");
	}
	memcpy(st->err, saved, sizeof(saved));
	st->errclass = class;
	return -1;
}

/*
 * run_batch as a unit of work of its own, all or nothing: in the
 * caller's transaction between SAVEPOINT and RELEASE, else between BEGIN
 * and COMMIT (a single record outside a transaction is atomic alone), in
 * the batch's round trip.
 */
static int
batch_unit(struct store *st, enum stmt id, const void *recs, size_t n,
    fill_fn fill, const char *what, size_t *bad, PGresult **errres,
    int64_t *changed)
{
	struct pg_store *ps = impl(st);
	enum txmode mode = ps->in_tx ? TX_SAVEPOINT : n > 1 ? TX_OWN :
	    TX_NONE;
	const char *open = NULL, *close = NULL;

	if (send_building(ps))
		return send_add(st, id, recs, n, fill, what);
	if (mode == TX_SAVEPOINT) {
		open = "SAVEPOINT roost_op";
		close = "RELEASE roost_op";
	} else if (mode == TX_OWN) {
		open = "BEGIN";
		close = "COMMIT";
	}
	if (run_batch(st, id, recs, n, fill, what, bad, errres, changed,
	    open, close) == 0)
		return 0;
	/* Closes what the batch opened, if it still is open. */
	tx_end(st, mode, 0);
	return -1;
}

/* Lift the statement bound for the rest of this unit's transaction. */
static int
tx_timeout(struct store *st, int ms)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = %d", ms);
	if (simple(st, sql, "statement timeout") == -1)
		return -1;
	impl(st)->bound_ms = ms;
	return 0;
}

/* One-off statement at open: constant SQL, first column of the first row
 * (if any) into out. */
static int
open_query(struct store *st, const char *sql, char *out, size_t outlen)
{
	PGresult *res;
	ExecStatusType rs;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	res = exec_sql(impl(st), sql);
	rs = PQresultStatus(res);
	if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) {
		pg_fail(st, "open", res);
		PQclear(res);
		return -1;
	}
	if (out != NULL && rs == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
	    !PQgetisnull(res, 0, 0))
		snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* The schema version in the current schema: 0 for one without tables. */
static int
schema_version(struct store *st, long long *version)
{
	char buf[64];

	if (open_query(st, "SELECT coalesce(current_schema(), '')", buf,
	    sizeof(buf)) == -1)
		return -1;
	if (buf[0] == '\0') {
		set_msg(st, "open", "no schema to keep the tables in (the "
		    "search_path names none that exists)");
		return -1;
	}
	if (open_query(st, "SELECT count(*) FROM pg_tables"
	    " WHERE schemaname = current_schema() AND tablename = 'meta'",
	    buf, sizeof(buf)) == -1)
		return -1;
	if (strcmp(buf, "0") == 0) {
		if (open_query(st, "SELECT count(*) FROM pg_tables"
		    " WHERE schemaname = current_schema()", buf,
		    sizeof(buf)) == -1)
			return -1;
		if (strcmp(buf, "0") != 0) {
			store_set_error(st, "not a roost database (its schema "
			    "has tables but no schema version)");
			return -1;
		}
		*version = 0;
		return 0;
	}
	if (open_query(st, "SELECT value FROM meta"
	    " WHERE key = 'schema_version'", buf, sizeof(buf)) == -1)
		return -1;
	if (parse_ll(buf, 1, INT_MAX, version) == -1) {
		store_set_error(st, "bad schema_version \"%s\" in meta", buf);
		return -1;
	}
	return 0;
}

/* Bring the schema up to STORE_SCHEMA_VERSION, one step per transaction,
 * under an advisory lock so that instances starting together migrate once. */
static int
migrate(struct store *st)
{
	PGconn *conn = impl(st)->conn;
	const char *vals[1];
	char vbuf[24];
	PGresult *res;
	long long v;
	size_t i;

	for (;;) {
		if (simple(st, "BEGIN", "begin") == -1)
			return -1;
		if (open_query(st, "SELECT pg_advisory_xact_lock("
		    MIGRATE_LOCK_KEY ")", NULL, 0) == -1 ||
		    schema_version(st, &v) == -1)
			goto fail;
		if (v > STORE_SCHEMA_VERSION) {
			store_set_error(st, "database schema version %lld is "
			    "newer than this roostd supports (%d); "
			    "upgrade roostd", v, STORE_SCHEMA_VERSION);
			goto fail;
		}
		if (v == STORE_SCHEMA_VERSION)
			break;
		for (i = 0; i < sizeof(pg_steps) / sizeof(pg_steps[0]); i++)
			if (pg_steps[i].from == v)
				break;
		if (i == sizeof(pg_steps) / sizeof(pg_steps[0])) {
			store_set_error(st, "no migration from schema version "
			    "%lld", v);
			goto fail;
		}
		res = exec_sql(impl(st), pg_steps[i].sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char what[64];

			snprintf(what, sizeof(what), "schema migration %lld -> "
			    "%d", v, pg_steps[i].to);
			pg_fail(st, what, res);
			PQclear(res);
			goto fail;
		}
		PQclear(res);
		snprintf(vbuf, sizeof(vbuf), "%d", pg_steps[i].to);
		vals[0] = vbuf;
		res = exec_params(impl(st), "INSERT INTO meta (key, value)"
		    " VALUES ('schema_version', $1) ON CONFLICT (key)"
		    " DO UPDATE SET value = excluded.value", 1, vals);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			pg_fail(st, "schema version", res);
			PQclear(res);
			goto fail;
		}
		PQclear(res);
		if (simple(st, "COMMIT", "commit") == -1)
			goto fail;
		if (v > 0)
			log_info("store schema migrated to version %d",
			    pg_steps[i].to);
	}
	return simple(st, "COMMIT", "commit");
fail:
	if (conn_ok(impl(st)) && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(exec_sql(impl(st), "ROLLBACK"));
	return -1;
}

/* libpq notices (warnings from the server) go to our log, not stderr. */
static void
pg_notice(void *arg, const char *msg)
{
	char buf[256];

	(void)arg;
	snprintf(buf, sizeof(buf), "%s", msg);
	buf[strcspn(buf, "\r\n")] = '\0';
	log_debug("postgresql store: %s", buf);
}

static void	pg_close(struct store *);

static int
pg_open(struct store *st, const char *spec)
{
	struct pg_store *ps;
	/* Defaults first: the string's own settings override them. */
	const char *keys[] = { "connect_timeout", "application_name",
	    "dbname", NULL };
	const char *vals[] = { CONNECT_TIMEOUT_S, NULL, spec, NULL };

	if (spec == NULL || spec[0] == '\0') {
		store_set_error(st, "no connection string given "
		    "(postgresql:host=... dbname=...)");
		return -1;
	}
	ps = xcalloc(1, sizeof(*ps));
	st->impl = ps;
	ps->spec = xstrdup(spec);
	ps->appname = st->lane ? "roostd-admin" : "roostd";
	vals[1] = ps->appname;
	/* Unique enough among the instances of one store: pid and time. */
	origin_renew(ps);
	ps->conn = PQconnectdbParams(keys, vals, 1);
	if (ps->conn == NULL) {
		store_set_error(st, "out of memory");
		goto fail;
	}
	if (PQstatus(ps->conn) != CONNECTION_OK) {
		pg_fail(st, "connect", NULL);
		goto fail;
	}
	PQsetNoticeProcessor(ps->conn, pg_notice, NULL);
	if (PQsetnonblocking(ps->conn, 1) == -1) {
		pg_fail(st, "connect", NULL);
		goto fail;
	}
	if (session_setup(st) == -1)
		goto fail;
	/* Migrations may take their time and wait for another instance's. */
	if (simple(st, "SET statement_timeout = 0; SET lock_timeout = 0",
	    "open") == -1)
		goto fail;
	ps->bound_ms = 0;
	if (migrate(st) == -1 || session_setup(st) == -1)
		goto fail;
	switch (open_lock(st, 0)) {
	case 0:
		store_set_error(st, "store in use by a copy (roostd -C)");
		/* FALLTHROUGH */
	case -1:
		goto fail;
	}
	return 0;
fail:
	pg_close(st);
	return -1;
}

static void
pg_close(struct store *st)
{
	struct pg_store *ps = impl(st);

	if (ps == NULL)
		return;
	if (ps->in_tx)
		log_warnx("postgresql store: closed inside a transaction, "
		    "rolling it back");
	/* Closing the connection ends (rolls back) an open transaction. */
	place_free(ps);
	send_free(ps);
	ask_free(ps);
	reconnect_join(ps);
	if (ps->conn != NULL)
		PQfinish(ps->conn);
	roles_forget(ps);
	free(ps->spec);
	free(ps);
	st->impl = NULL;
}

static int
pg_ping(struct store *st)
{
	if (conn_ready(st) == -1)
		return -1;
	return open_query(st, "SELECT 1", NULL, 0);
}

static int
pg_begin(struct store *st, int flags)
{
	struct pg_store *ps = impl(st);

	/* STORE_TX_ADMIN: every commit is durable, see the top. */
	if (ps->in_tx) {
		store_set_error(st, "begin: a transaction is already open");
		return -1;
	}
	ps->tx_failed = 0;
	if ((flags & STORE_TX_SEND) ? send_begin(st) == -1 :
	    (conn_ready(st) == -1 || simple(st, "BEGIN", "begin") == -1)) {
		ps->tx_failed = 1;
		return -1;
	}
	ps->in_tx = 1;
	return 0;
}

static int
pg_commit(struct store *st)
{
	struct pg_store *ps = impl(st);
	int rv;

	if (!ps->in_tx) {
		store_set_error(st, "commit: no transaction is open");
		return -1;
	}
	if (send_building(ps)) {
		/* Sent, then waited for. */
		rv = pg_tx_send(st, NULL, NULL);
		if (rv == 0) {
			send_finish(st);
			pg_tx_poll(st, &rv);
		}
		if (rv == -1)
			ps->tx_failed = 1;
		return rv;
	}
	ps->in_tx = 0;
	ps->bound_ms = STMT_TIMEOUT_MS;	/* SET LOCAL ends with it */
	if (!conn_ok(ps)) {
		pg_fail(st, "commit: connection lost, the transaction with it",
		    NULL);
		st->errclass = STORE_ERETRY;
		ps->tx_failed = 1;
		return -1;
	}
	rv = tx_end(st, TX_OWN, 1);
	if (rv == -1) {
		ps->tx_failed = 1;
		if (conn_ok(ps) &&
		    PQtransactionStatus(ps->conn) != PQTRANS_IDLE) {
			char saved[sizeof(st->err)];
			enum store_err class = st->errclass;

			memcpy(saved, st->err, sizeof(saved));
			simple(st, "ROLLBACK", "rollback");
			memcpy(st->err, saved, sizeof(saved));
			st->errclass = class;
		}
	}
	return rv;
}

static int
pg_rollback(struct store *st)
{
	struct pg_store *ps = impl(st);

	if (!ps->in_tx) {
		/* After a failed begin or commit there is nothing to undo, and
		 * st->err must keep saying why it failed. */
		if (ps->tx_failed) {
			ps->tx_failed = 0;
			return 0;
		}
		store_set_error(st, "rollback: no transaction is open");
		return -1;
	}
	ps->in_tx = 0;
	ps->bound_ms = STMT_TIMEOUT_MS;
	if (send_building(ps))
		return send_rollback(st);
	if (!conn_ok(ps))
		return 0;	/* the transaction went with the connection */
	return simple(st, "ROLLBACK", "rollback");
}

static int
pg_durable(struct store *st)
{
	char level[16];

	if (conn_ready(st) == -1 ||
	    open_query(st, "SELECT current_setting('synchronous_commit')",
	    level, sizeof(level)) == -1)
		return -1;
	return strcmp(level, "off") != 0;
}

/* Column i of row r as text, "" when NULL. */
static const char *
col(const PGresult *res, int r, int i)
{
	return PQgetvalue(res, r, i);
}

static const char *
col_null(const PGresult *res, int r, int i)
{
	return PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
}

static int64_t
col_int(const PGresult *res, int r, int i)
{
	long long v;

	if (PQgetisnull(res, r, i) ||
	    parse_ll(PQgetvalue(res, r, i), LLONG_MIN, LLONG_MAX, &v) == -1)
		return 0;
	return v;
}

/* Copy a column into a fixed field; a value that does not fit is a
 * damaged row, not something to cut short silently. */
static int
col_copy(struct store *st, const PGresult *res, int r, int i, char *dst,
    size_t len, const char *name, const char *what)
{
	const char *v = col(res, r, i);

	if (strlen(v) >= len) {
		store_set_error(st, "backend %s: stored %s too long", name,
		    what);
		return -1;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* Run a read-only query and hand each row to fn; the unit of work keeps a
 * failed read from aborting the caller's transaction.  Returns the number
 * of rows, or -1.  fn returns 0, -1 when the caller's callback stopped, or
 * -2 for a damaged row (the error set). */
typedef int (*row_fn)(struct store *, const PGresult *, int, void *, void *);

static int64_t
rows(struct store *st, enum stmt id, const struct params *p, int unbounded,
    const char *what, row_fn fn, void *cb, void *arg)
{
	enum txmode mode = TX_NONE;
	PGresult *res = NULL;
	int r, n = 0;

	if ((unbounded || impl(st)->in_tx) && tx_start(st, &mode) == -1)
		return -1;
	if (unbounded && !impl(st)->in_tx && tx_timeout(st, 0) == -1)
		goto fail;
	if ((res = run(st, id, p, what, NULL)) == NULL)
		goto fail;
	n = PQntuples(res);
	for (r = 0; r < n; r++) {
		switch (fn(st, res, r, cb, arg)) {
		case 0:
			break;
		case -1:
			store_set_error(st, "%s: stopped by caller", what);
			goto fail;
		default:
			goto fail;
		}
	}
	PQclear(res);
	if (tx_end(st, mode, 1) == -1)
		return -1;
	return n;
fail:
	PQclear(res);
	tx_end(st, mode, 0);
	return -1;
}

static int
row_backend(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	store_backend_cb cb = (store_backend_cb)cbp;
	struct backend b;
	const char *state;
	int64_t v;
	int i;

	memset(&b, 0, sizeof(b));
	if (col_copy(st, res, r, 0, b.name, sizeof(b.name), col(res, r, 0),
	    "name") == -1 ||
	    col_copy(st, res, r, 1, b.host, sizeof(b.host), b.name,
	    "host") == -1 ||
	    col_copy(st, res, r, 2, b.hostip, sizeof(b.hostip), b.name,
	    "hostip") == -1 ||
	    col_copy(st, res, r, 3, b.tag, sizeof(b.tag), b.name, "tag") == -1)
		return -2;
	v = col_int(res, r, 4);
	if (v < 0 || v > BACKEND_WEIGHT_MAX) {
		store_set_error(st, "backend %s: stored weight %lld out of "
		    "range", b.name, (long long)v);
		return -2;
	}
	b.weight = (unsigned)v;
	state = col(res, r, 5);
	if (backend_state_parse(state, &b.state) == -1) {
		store_set_error(st, "backend %s: unknown stored state \"%s\"",
		    b.name, state);
		return -2;
	}
	for (i = 0; i < PROTO_COUNT; i++) {
		v = col_int(res, r, 6 + i);
		if (v < 0 || v > UINT16_MAX) {
			store_set_error(st, "backend %s: stored %s port out "
			    "of range", b.name, proto_names[i]);
			return -2;
		}
		b.ports[i] = (uint16_t)v;
	}
	/* Pointers into the result: valid during the callback only. */
	b.doveadm_url = (char *)col_null(res, r, 12);
	b.doveadm_key = (char *)col_null(res, r, 13);
	b.created = col_int(res, r, 14);
	b.updated = col_int(res, r, 15);
	state = col(res, r, 16);
	if (backend_tls_parse(state, &b.tls) == -1) {
		store_set_error(st, "backend %s: unknown stored tls \"%s\"",
		    b.name, state);
		return -2;
	}
	b.probe_user = (char *)col_null(res, r, 17);
	b.probe_pass = (char *)col_null(res, r, 18);
	/* The account goes into an IMAP LOGIN line: a row no roostd writes
	 * is refused, never sent (nor quoted here). */
	if ((b.probe_user == NULL) != (b.probe_pass == NULL) ||
	    (b.probe_user != NULL &&
	    (strlen(b.probe_user) > BACKEND_PROBE_USER_MAX ||
	    strlen(b.probe_pass) > BACKEND_PROBE_PASS_MAX ||
	    strpbrk(b.probe_user, "\r\n") != NULL ||
	    strpbrk(b.probe_pass, "\r\n") != NULL))) {
		store_set_error(st, "backend %s: stored probe account "
		    "damaged", b.name);
		return -2;
	}
	return cb(&b, arg) == -1 ? -1 : 0;
}

static int
pg_backend_load(struct store *st, store_backend_cb cb, void *arg)
{
	return rows(st, S_BACKEND_LOAD, NULL, 1, "backend load", row_backend,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
params_backend(struct store *st, struct params *p, const struct backend *b)
{
	int i;

	if ((unsigned)b->state > BACKEND_DOWN) {
		store_set_error(st, "backend %s: invalid state", b->name);
		return -1;
	}
	if ((unsigned)b->tls > BACKEND_TLS_STARTTLS) {
		store_set_error(st, "backend %s: invalid tls", b->name);
		return -1;
	}
	p_text(p, b->name);
	p_text(p, b->host);
	p_text(p, b->hostip);
	p_text(p, b->tag);
	p_int(p, b->weight);
	p_text(p, backend_state_name(b->state));
	for (i = 0; i < PROTO_COUNT; i++)
		p_int(p, b->ports[i]);
	p_text(p, b->doveadm_url);
	p_text(p, b->doveadm_key);
	p_int(p, b->created);
	p_int(p, b->updated);
	p_text(p, backend_tls_name(b->tls));
	p_text(p, b->probe_user);
	p_text(p, b->probe_pass);
	return 0;
}

/*
 * One statement as an operation: inside the caller's transaction under a
 * savepoint (a failure leaves the transaction usable), else on its own.
 * *errres as in run().
 */
static int
op_cmd(struct store *st, enum stmt id, const struct params *p,
    const char *what, int64_t *changed, PGresult **errres)
{
	enum txmode mode = TX_NONE;
	PGresult *res;
	long long n;

	if (errres != NULL)
		*errres = NULL;
	if (send_building(impl(st)) && changed == NULL && errres == NULL)
		return send_add(st, id, p, 1, fill_params, what);
	if (impl(st)->in_tx && tx_start(st, &mode) == -1)
		return -1;
	if ((res = run(st, id, p, what, errres)) == NULL) {
		tx_end(st, mode, 0);
		return -1;
	}
	if (changed != NULL) {
		if (parse_ll(PQcmdTuples(res), 0, LLONG_MAX, &n) == -1)
			n = 0;
		*changed = n;
	}
	PQclear(res);
	return tx_end(st, mode, 1);
}

static int
pg_backend_insert(struct store *st, const struct backend *b)
{
	struct params p = { 0 };
	PGresult *err;

	if (params_backend(st, &p, b) == -1)
		return -1;
	if (op_cmd(st, S_BACKEND_INSERT, &p, "backend insert", NULL,
	    &err) == 0)
		return 0;
	if (err != NULL && is_state(err, "23505"))
		store_set_conflict(st, "backend %s already exists", b->name);
	PQclear(err);
	return -1;
}

static int
pg_backend_update(struct store *st, const struct backend *b)
{
	struct params p = { 0 };
	int64_t n;

	if (params_backend(st, &p, b) == -1)
		return -1;
	if (op_cmd(st, S_BACKEND_UPDATE, &p, "backend update", &n,
	    NULL) == -1)
		return -1;
	if (n == 0) {
		store_set_conflict(st, "no backend named %s", b->name);
		return -1;
	}
	return 0;
}

static int
pg_backend_delete(struct store *st, const char *name, int64_t *released)
{
	struct params p = { 0 };
	enum txmode mode;
	int64_t n, gone;

	p_text(&p, name);
	if (tx_start(st, &mode) == -1)
		return -1;
	/* Possibly many users: this one may take its time. */
	if (tx_timeout(st, BULK_TIMEOUT_MS) == -1 ||
	    run_cmd(st, S_BACKEND_DELETE_USERS, &p, "backend delete",
	    &n) == -1 ||
	    run_cmd(st, S_BACKEND_DELETE, &p, "backend delete", &gone) == -1)
		goto fail;
	if (gone == 0) {
		store_set_conflict(st, "no backend named %s", name);
		goto fail;
	}
	/* Back to the bound for the rest of the caller's transaction. */
	if (mode == TX_SAVEPOINT && tx_timeout(st, STMT_TIMEOUT_MS) == -1)
		goto fail;
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
row_proxy(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	store_proxy_cb cb = (store_proxy_cb)cbp;
	struct proxy p;
	const char *name = col(res, r, 0);

	memset(&p, 0, sizeof(p));
	if (strlen(name) >= sizeof(p.name)) {
		store_set_error(st, "proxy: stored name too long");
		return -2;
	}
	memcpy(p.name, name, strlen(name) + 1);
	p.doveadm_url = (char *)col(res, r, 1);
	p.doveadm_key = (char *)col(res, r, 2);
	p.created = col_int(res, r, 3);
	p.updated = col_int(res, r, 4);
	return cb(&p, arg) == -1 ? -1 : 0;
}

static int
pg_proxy_load(struct store *st, store_proxy_cb cb, void *arg)
{
	return rows(st, S_PROXY_LOAD, NULL, 1, "proxy load", row_proxy,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
proxy_write(struct store *st, enum stmt id, const struct proxy *p,
    const char *what, int64_t *n)
{
	struct params pp = { 0 };
	PGresult *err;

	if (p->doveadm_url == NULL || p->doveadm_key == NULL) {
		store_set_error(st, "proxy %s: no doveadm url or key", p->name);
		return -1;
	}
	p_text(&pp, p->name);
	p_text(&pp, p->doveadm_url);
	p_text(&pp, p->doveadm_key);
	p_int(&pp, p->created);
	p_int(&pp, p->updated);
	if (op_cmd(st, id, &pp, what, n, &err) == 0)
		return 0;
	if (err != NULL && is_state(err, "23505"))
		store_set_conflict(st, "proxy %s already exists", p->name);
	PQclear(err);
	return -1;
}

static int
pg_proxy_insert(struct store *st, const struct proxy *p)
{
	return proxy_write(st, S_PROXY_INSERT, p, "proxy insert", NULL);
}

static int
pg_proxy_update(struct store *st, const struct proxy *p)
{
	int64_t n;

	if (proxy_write(st, S_PROXY_UPDATE, p, "proxy update", &n) == -1)
		return -1;
	if (n == 0) {
		store_set_error(st, "no proxy named %s", p->name);
		return -1;
	}
	return 0;
}

static int
pg_proxy_delete(struct store *st, const char *name)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, name);
	if (op_cmd(st, S_PROXY_DELETE, &p, "proxy delete", &n, NULL) == -1)
		return -1;
	if (n == 0) {
		store_set_error(st, "no proxy named %s", name);
		return -1;
	}
	return 0;
}

static int
row_user(struct store *st, const PGresult *res, int r, void *cbp, void *arg)
{
	store_user_cb cb = (store_user_cb)cbp;
	struct store_user u;

	(void)st;
	u.user = col(res, r, 0);
	u.backend = col(res, r, 1);
	u.tag = col(res, r, 2);
	u.pinned = (int)col_int(res, r, 3);
	u.since = col_int(res, r, 4);
	u.last_lookup = col_int(res, r, 5);
	u.confirmed = (int)col_int(res, r, 6);
	u.replica = col_null(res, r, 7);
	u.replica_current = (int)col_int(res, r, 8);
	u.failed_over = (int)col_int(res, r, 9);
	return cb(&u, arg) == -1 ? -1 : 0;
}

/*
 * All users, streamed row by row (single-row mode): a million users never
 * sit in one result.  The callback must not call the store meanwhile.
 */
static int
pg_user_load(struct store *st, store_user_cb cb, void *arg)
{
	struct pg_store *ps = impl(st);
	enum txmode mode;
	PGresult *res;
	char name[16];
	int failed = 0, stopped = 0;

	if (tx_start(st, &mode) == -1)
		return -1;
	if (!ps->in_tx && tx_timeout(st, 0) == -1)
		goto fail;
	if (!ps->prepared[S_USER_LOAD]) {
		snprintf(name, sizeof(name), "r%d", (int)S_USER_LOAD);
		res = exec_prepare(ps, name, stmt_sql[S_USER_LOAD]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			pg_fail(st, "user load", res);
			PQclear(res);
			goto fail;
		}
		PQclear(res);
		ps->prepared[S_USER_LOAD] = 1;
	}
	snprintf(name, sizeof(name), "r%d", (int)S_USER_LOAD);
	if (!PQsendQueryPrepared(ps->conn, name, 0, NULL, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(ps->conn)) {
		pg_fail(st, "user load", NULL);
		goto fail;
	}
	/* Read every result to the end, even after a failure: the
	 * connection is unusable until then. */
	while ((res = get_result(ps)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (!failed && !stopped &&
			    row_user(st, res, 0, (void *)cb, arg) == -1)
				stopped = 1;
			break;
		case PGRES_TUPLES_OK:
			break;
		default:
			if (!failed)
				pg_fail(st, "user load", res);
			failed = 1;
			break;
		}
		PQclear(res);
	}
	if (!failed && !conn_ok(ps)) {
		pg_fail(st, "user load", NULL);
		failed = 1;
	}
	if (stopped && !failed)
		store_set_error(st, "user load: stopped by caller");
	if (failed || stopped)
		goto fail;
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

static void
params_user(struct params *p, const struct store_user *u)
{
	p_text(p, u->user);
	p_text(p, u->backend);
	p_text(p, u->tag != NULL ? u->tag : "");
	p_int(p, u->pinned != 0);
	p_int(p, u->since);
	p_int(p, u->last_lookup);
	p_int(p, u->confirmed != 0);
	p_text(p, u->replica);
	p_int(p, u->replica_current != 0);
	p_int(p, u->failed_over != 0);
}

static int
fill_user(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_user *u = (const struct store_user *)recs + i;

	if (u->user == NULL || u->backend == NULL) {
		store_set_error(st, "user put: record %zu has no %s", i,
		    u->user == NULL ? "user" : "backend");
		return -1;
	}
	params_user(p, u);
	return 0;
}

static int
pg_user_put(struct store *st, const struct store_user *us, size_t n)
{
	PGresult *err;
	size_t bad;

	if (n == 0)
		return 0;
	if (batch_unit(st, S_USER_PUT, us, n, fill_user, "user put", &bad,
	    &err, NULL) == -1) {
		if (err != NULL && is_state(err, "23503"))
			store_set_conflict(st, "user %s: no backend named %s",
			    us[bad].user, us[bad].backend);
		PQclear(err);
		return -1;
	}
	return 0;
}

struct place {
	const struct store_user	 *us;
	const char *const	 *expect;
};

static int
fill_place(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct place *pl = recs;

	if (fill_user(st, pl->us, i, p) == -1)
		return -1;
	p_text(p, pl->expect != NULL ? pl->expect[i] : NULL);
	return 0;
}

/* The caller's callback, and whether it said stop. */
struct place_cb {
	store_user_cb	 cb;
	void		*arg;
	int		 stopped;
};

static int
place_seen(const struct store_user *u, void *arg)
{
	struct place_cb *pc = arg;

	if (pc->cb(u, pc->arg) == -1)
		pc->stopped = 1;
	return pc->stopped ? -1 : 0;
}

/*
 * One round trip like user_put, the transaction's BEGIN and COMMIT in it.
 * A record that wrote nothing met a row that another transaction
 * committed (one still open makes the statement wait for it, up to
 * lock_timeout: then STORE_ERETRY, nothing written) or that is on another
 * backend; the reads after the commit, statements of their own under READ
 * COMMITTED, see those rows.  Whatever a read cannot tell (the row went in
 * between, or the connection did) is no reason to call the committed
 * writes undone: cb gets that user with backend "" instead, meaning "ask
 * again".
 */
/* After the batch: cb gets what the store holds for each record that
 * wrote nothing, or that record with backend "" when it cannot say. */
static int
place_report(struct store *st, const struct store_user *us, size_t n,
    const int64_t *changed, store_user_cb cb, void *arg)
{
	struct place_cb pc = { cb, arg, 0 };
	struct store_user gone;
	struct params p;
	int64_t got;
	size_t i;
	int lost = 0;

	for (i = 0; i < n && !pc.stopped; i++) {
		if (changed[i] > 0)
			continue;
		got = 0;
		if (!lost) {
			memset(&p, 0, sizeof(p));
			p_text(&p, us[i].user);
			got = rows(st, S_USER_GET, &p, 0, "user place",
			    row_user, (void *)place_seen, &pc);
			lost = got == -1 && !pc.stopped;
		}
		if (got <= 0 && !pc.stopped) {
			gone = us[i];
			gone.backend = "";
			place_seen(&gone, &pc);
		}
	}
	if (pc.stopped)
		store_set_error(st, "user place: stopped by caller");
	return pc.stopped ? -1 : 0;
}

static int
pg_user_place(struct store *st, const struct store_user *us,
    const char *const *expect, size_t n, store_user_cb cb, void *arg)
{
	struct place pl = { us, expect };
	PGresult *err;
	int64_t *changed;
	size_t bad;
	int rc;

	if (n == 0)
		return 0;
	changed = xcalloc(n, sizeof(*changed));
	if (batch_unit(st, S_USER_PLACE, &pl, n, fill_place, "user place",
	    &bad, &err, changed) == -1) {
		if (err != NULL && is_state(err, "23503"))
			store_set_conflict(st, "user %s: no backend named %s",
			    us[bad].user, us[bad].backend);
		PQclear(err);
		free(changed);
		return -1;
	}
	rc = place_report(st, us, n, changed, cb, arg);
	free(changed);
	return rc;
}

/*
 * user_place without waiting on the loop (store.h: place_send).  The
 * batch goes out in one round trip, BEGIN and COMMIT in it, and the loop
 * watches place_fd() while the server works; place_poll reads the answer
 * once it has begun to arrive (the server sends the whole answer at the
 * sync, after the commit: what is left then is the rest of a message, not
 * the commit), then reads back the rows lost to another writer as
 * user_place does.  Any other call reads the answer first (conn_ready ->
 * place_finish), within the batch's own bound, and keeps its outcome for
 * place_poll.
 */
/* A round trip sent and not waited for: a place_send batch or a sent
 * transaction's commit. */
struct flight {
	struct pipe		 pp;
	enum txmode		 mode;		/* what the pipeline opened */
	uint64_t		 deadline;
	void			(*ready)(void *);
	void			*ready_arg;
	int			 done;		/* answer read: rc, err, class */
	int			 rc;
	enum store_err		 class;
	char			 err[512];
};

/* Send what the pipeline holds (a few hundred bytes, mostly at once)
 * within the wait bound, which is also the answer's deadline; -1 (fl's
 * pipe failed) when the connection does not take it. */
static int
flight_flush(struct store *st, struct flight *fl, const char *what)
{
	struct pg_store *ps = impl(st);
	uint64_t start = now_msec_mono();
	int r;

	fl->deadline = wait_deadline(ps);
	while (!fl->pp.failed && (r = PQflush(ps->conn)) != 0) {
		if (r == -1 || conn_poll(ps, POLLOUT, start,
		    fl->deadline) == -1) {
			pg_fail(st, what, NULL);
			fl->pp.failed = 1;
		}
	}
	return fl->pp.failed ? -1 : 0;
}

/* Read the answer to its end (within the flight's deadline) and keep its
 * outcome, rolling back what a failed one opened; the caller's error
 * stays.  refine, when given, rewords a failure first. */
static void
flight_read(struct store *st, struct flight *fl, const char *what,
    int64_t *changed, void (*refine)(struct store *))
{
	struct pg_store *ps = impl(st);
	char saved[sizeof(st->err)];
	enum store_err class = st->errclass;

	if (fl->done)
		return;
	memcpy(saved, st->err, sizeof(saved));
	ps->deadline_at = fl->deadline;
	fl->rc = pipe_recv(st, &fl->pp, what, changed);
	ps->deadline_at = 0;
	if (fl->rc == -1) {
		if (refine != NULL)
			refine(st);
		memcpy(fl->err, st->err, sizeof(fl->err));
		fl->class = st->errclass;
		tx_end(st, fl->mode, 0);
	} else if (fl->mode == TX_OWN)
		ps->bound_ms = STMT_TIMEOUT_MS;
	fl->done = 1;
	memcpy(st->err, saved, sizeof(saved));
	st->errclass = class;
	if (fl->ready != NULL)
		fl->ready(fl->ready_arg);
}

/* 0 while no answer has come (and the deadline is ahead); else 1, the
 * answer read (finish), its error in st->err when it failed. */
static int
flight_poll(struct store *st, struct flight *fl, void (*finish)(struct store *))
{
	struct pg_store *ps = impl(st);

	if (!fl->done) {
		if (PQconsumeInput(ps->conn) && PQisBusy(ps->conn) &&
		    now_msec_mono() < fl->deadline)
			return 0;
		finish(st);
	}
	if (fl->rc == -1) {
		memcpy(st->err, fl->err, sizeof(st->err));
		st->errclass = fl->class;
	}
	return 1;
}

struct pg_place {
	struct flight		 fl;
	struct place		 pl;
	int64_t			*changed;
};

static void
place_free(struct pg_store *ps)
{
	if (ps->place == NULL)
		return;
	PQclear(ps->place->fl.pp.errres);
	free(ps->place->changed);
	free(ps->place);
	ps->place = NULL;
}

static int
pg_place_send(struct store *st, const struct store_user *us,
    const char *const *expect, size_t n, void (*ready)(void *), void *arg)
{
	struct pg_store *ps = impl(st);
	struct pg_place *pp;
	char name[16];

	if (ps->place != NULL) {
		store_set_error(st, "user place: one is under way already");
		return -1;
	}
	if (n == 0 || n > STORE_PLACE_SEND_MAX || ps->in_tx) {
		store_set_error(st, "user place: %zu records%s cannot go "
		    "without waiting", n, ps->in_tx ? " in a transaction" : "");
		return -1;
	}
	if (conn_ready(st) == -1 ||
	    prepare(st, S_USER_PLACE, "user place") == -1)
		return -1;
	pp = xcalloc(1, sizeof(*pp));
	pp->pl.us = us;
	pp->pl.expect = expect;
	pp->fl.pp.end = n;
	pp->fl.mode = n > 1 ? TX_OWN : TX_NONE;
	pp->changed = xcalloc(n, sizeof(*pp->changed));
	ps->place = pp;
	snprintf(name, sizeof(name), "r%d", (int)S_USER_PLACE);
	pipe_send(st, &pp->fl.pp, name, &pp->pl, fill_place, "user place",
	    pp->fl.mode == TX_OWN ? "BEGIN" : NULL,
	    pp->fl.mode == TX_OWN ? "COMMIT" : NULL, n);
	if (flight_flush(st, &pp->fl, "user place") == -1) {
		place_finish(st);	/* reads what there is, rolls back */
		flight_poll(st, &pp->fl, place_finish);
		place_free(ps);
		return -1;
	}
	pp->fl.ready = ready;
	pp->fl.ready_arg = arg;
	return 0;
}

static int
pg_place_flying(struct store *st)
{
	struct pg_place *pp = impl(st)->place;

	return pp != NULL && !pp->fl.done;
}

static int
pg_place_fd(struct store *st)
{
	return PQsocket(impl(st)->conn);
}

/* Read the answer of the batch under way to its end (bounded by the
 * batch's deadline) and keep its outcome; the caller's error stays. */
static void
place_refine(struct store *st)
{
	struct pg_place *pp = impl(st)->place;

	if (pp->fl.pp.errres != NULL && is_state(pp->fl.pp.errres, "23503"))
		store_set_conflict(st, "user %s: no backend named %s",
		    pp->pl.us[pp->fl.pp.bad].user,
		    pp->pl.us[pp->fl.pp.bad].backend);
}

static void
place_finish(struct store *st)
{
	struct pg_place *pp = impl(st)->place;

	if (pp != NULL)
		flight_read(st, &pp->fl, "user place", pp->changed,
		    place_refine);
}

static int
pg_place_poll(struct store *st, store_user_cb cb, void *arg, int *rc)
{
	struct pg_store *ps = impl(st);
	struct pg_place *pp = ps->place;

	if (pp == NULL) {
		store_set_error(st, "user place: none under way");
		*rc = -1;
		return 1;
	}
	if (flight_poll(st, &pp->fl, place_finish) == 0)
		return 0;
	if (pp->fl.rc == -1)
		*rc = -1;
	else {
		/* Not this batch's: the reads below are calls of their
		 * own, and conn_ready must not finish it again. */
		ps->place = NULL;
		*rc = place_report(st, pp->pl.us, pp->fl.pp.end, pp->changed,
		    cb, arg);
		ps->place = pp;
	}
	place_free(ps);
	return 1;
}

/*
 * A transaction that the loop does not wait for (begin with
 * STORE_TX_SEND).  BEGIN goes into libpq's pipeline at begin, each write's
 * statements as the write is made (only writes whose answer nobody reads,
 * of the statements below), and COMMIT with the sync at tx_send, which
 * returns once they are on their way.  The answer is read when it arrives
 * (tx_poll), or by the next call that needs the connection (conn_ready ->
 * send_finish), within the transaction's bound, like a place_send batch.
 */
struct pg_send {
	struct flight	 fl;		/* BEGIN, the writes, COMMIT */
	int		 flying;	/* COMMIT and the sync are out */
};

/* What may be sent: every statement here is prepared at begin, before
 * the pipeline starts, so that a write never needs a round trip. */
static const enum stmt send_stmts[] = {
	S_USER_PUT, S_USER_TOUCH, S_REPL_PUT, S_REPL_REQ_ADD,
	S_REPL_REQ_DELETE, S_HEALTH_PUT, S_MOVE_STATE, S_JOB_STATE,
};

static int
send_building(const struct pg_store *ps)
{
	return ps->send != NULL && !ps->send->flying;
}

static void
send_free(struct pg_store *ps)
{
	if (ps->send == NULL)
		return;
	PQclear(ps->send->fl.pp.errres);
	free(ps->send);
	ps->send = NULL;
}

static int
fill_params(struct store *st, const void *recs, size_t i, struct params *p)
{
	(void)st;
	(void)i;
	*p = *(const struct params *)recs;
	return 0;
}

static int
send_begin(struct store *st)
{
	struct pg_store *ps = impl(st);
	size_t i;

	if (conn_ready(st) == -1)
		return -1;
	if (ps->send != NULL) {
		/* Answered, but its owner has not heard yet. */
		store_set_error(st, "begin: the last sent transaction is "
		    "not done yet");
		st->errclass = STORE_ERETRY;
		return -1;
	}
	for (i = 0; i < sizeof(send_stmts) / sizeof(send_stmts[0]); i++)
		if (prepare(st, send_stmts[i], "begin") == -1)
			return -1;
	if (!PQenterPipelineMode(ps->conn) ||
	    !PQsendQueryParams(ps->conn, "BEGIN", 0, NULL, NULL, NULL, NULL,
	    0)) {
		pg_fail(st, "begin", NULL);
		PQexitPipelineMode(ps->conn);
		return -1;
	}
	ps->send = xcalloc(1, sizeof(*ps->send));
	ps->send->fl.pp.sent_open = 1;
	ps->send->fl.mode = TX_OWN;
	return 0;
}

/* Statement id for each of the n records, into the pipeline. */
static int
send_add(struct store *st, enum stmt id, const void *recs, size_t n,
    fill_fn fill, const char *what)
{
	struct pg_send *sd = impl(st)->send;
	struct params p;
	char name[16];
	size_t i, j;

	if (sd->fl.pp.failed) {
		store_set_error(st, "%s: an earlier write of the transaction "
		    "failed", what);
		return -1;
	}
	for (i = 0; i < sizeof(send_stmts) / sizeof(send_stmts[0]); i++)
		if (send_stmts[i] == id)
			break;
	if (i == sizeof(send_stmts) / sizeof(send_stmts[0]) ||
	    sd->fl.pp.sent + n > STORE_SEND_MAX) {
		store_set_error(st, "%s: cannot go in a sent transaction%s",
		    what, i < sizeof(send_stmts) / sizeof(send_stmts[0]) ?
		    " (too many records)" : "");
		return -1;
	}
	snprintf(name, sizeof(name), "r%d", (int)id);
	for (j = 0; j < n; j++) {
		memset(&p, 0, sizeof(p));
		if (fill(st, recs, j, &p) == -1) {
			sd->fl.pp.failed = 1;
			return -1;
		}
		if (!PQsendQueryPrepared(impl(st)->conn, name, p.n, p.v, NULL,
		    NULL, 0)) {
			pg_fail(st, what, NULL);
			sd->fl.pp.failed = 1;
			return -1;
		}
		sd->fl.pp.sent++;
	}
	return 0;
}

/* Read the answer of the sent transaction to its end (within its
 * deadline) and keep its outcome; the caller's error stays. */
static void
send_finish(struct store *st)
{
	struct pg_send *sd = impl(st)->send;

	if (sd != NULL && sd->flying)
		flight_read(st, &sd->fl, "commit", NULL, NULL);
}

static int
pg_tx_send(struct store *st, void (*ready)(void *), void *arg)
{
	struct pg_store *ps = impl(st);
	struct pg_send *sd = ps->send;

	if (!send_building(ps)) {
		store_set_error(st, "commit: no sent transaction is open");
		return -1;
	}
	ps->in_tx = 0;
	sd->flying = 1;
	if (!sd->fl.pp.failed) {
		if (PQsendQueryParams(ps->conn, "COMMIT", 0, NULL, NULL, NULL,
		    NULL, 0))
			sd->fl.pp.sent_close = 1;
		else {
			pg_fail(st, "commit", NULL);
			sd->fl.pp.failed = 1;
		}
	}
	if (!PQpipelineSync(ps->conn) && !sd->fl.pp.failed) {
		pg_fail(st, "commit", NULL);
		sd->fl.pp.failed = 1;
	}
	if (sd->fl.pp.failed || flight_flush(st, &sd->fl, "commit") == -1) {
		send_finish(st);	/* reads what there is, rolls back */
		flight_poll(st, &sd->fl, send_finish);
		send_free(ps);
		return -1;
	}
	sd->fl.ready = ready;
	sd->fl.ready_arg = arg;
	return 0;
}

/* A sent transaction given up before its commit: its statements end in a
 * ROLLBACK, read to the end.  The error of the write that failed stays. */
static int
send_rollback(struct store *st)
{
	struct pg_store *ps = impl(st);
	struct pg_send *sd = ps->send;
	char saved[sizeof(st->err)];
	enum store_err class = st->errclass;
	int rv = 0;

	memcpy(saved, st->err, sizeof(saved));
	sd->flying = 1;
	if (conn_ok(ps)) {
		if (PQsendQueryParams(ps->conn, "ROLLBACK", 0, NULL, NULL,
		    NULL, NULL, 0))
			sd->fl.pp.sent_close = 1;
		else
			rv = -1;
		if (!PQpipelineSync(ps->conn))
			rv = -1;
		ps->deadline_at = wait_deadline(ps);
		sd->fl.pp.failed = 1;	/* every answer is only read */
		pipe_recv(st, &sd->fl.pp, "rollback", NULL);
		ps->deadline_at = 0;
		if (conn_ok(ps) &&
		    PQtransactionStatus(ps->conn) != PQTRANS_IDLE)
			rv = simple(st, "ROLLBACK", "rollback");
	}
	send_free(ps);
	memcpy(st->err, saved, sizeof(saved));
	st->errclass = class;
	return rv;
}

static int
pg_tx_poll(struct store *st, int *rc)
{
	struct pg_store *ps = impl(st);
	struct pg_send *sd = ps->send;

	if (sd == NULL || !sd->flying) {
		store_set_error(st, "commit: no sent transaction is under way");
		*rc = -1;
		return 1;
	}
	if (flight_poll(st, &sd->fl, send_finish) == 0)
		return 0;
	*rc = sd->fl.rc;
	send_free(ps);
	return 1;
}

static int
pg_user_delete(struct store *st, const char *user)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, user);
	if (op_cmd(st, S_USER_DELETE, &p, "user delete", &n, NULL) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
pg_user_get(struct store *st, const char *user, store_user_cb cb, void *arg)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, user);
	if ((n = rows(st, S_USER_GET, &p, 0, "user get", row_user, (void *)cb,
	    arg)) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
pg_user_list(struct store *st, const char *backend, const char *after,
    size_t limit, store_user_cb cb, void *arg)
{
	struct params p = { 0 };

	p_text(&p, backend);
	p_text(&p, after);
	p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return rows(st, S_USER_LIST, &p, 0, "user list", row_user, (void *)cb,
	    arg) == -1 ? -1 : 0;
}

static int
fill_touch(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_user *u = (const struct store_user *)recs + i;

	(void)st;
	/* A record without a user touches nobody (as in SQLite). */
	p_text(p, u->user != NULL ? u->user : "");
	p_int(p, u->last_lookup);
	p_int(p, u->confirmed != 0);
	return 0;
}

static int
pg_user_touch(struct store *st, const struct store_user *us, size_t n)
{
	PGresult *err;
	size_t bad;

	if (n == 0)
		return 0;
	/* One transaction for the lot: one commit instead of n. */
	if (batch_unit(st, S_USER_TOUCH, us, n, fill_touch, "user touch",
	    &bad, &err, NULL) == -1) {
		PQclear(err);
		return -1;
	}
	return 0;
}

static int
pg_health_put(struct store *st, const struct store_health *h)
{
	struct params p = { 0 };

	p_text(&p, h->backend);
	p_text(&p, h->state);
	p_int(&p, h->since);
	p_text(&p, h->error != NULL ? h->error : "");
	p_int(&p, h->latency_ms);
	p_int(&p, h->checked);
	return op_cmd(st, S_HEALTH_PUT, &p, "health put", NULL, NULL);
}

static int
row_health(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	store_health_cb cb = (store_health_cb)cbp;
	struct store_health h;

	(void)st;
	h.backend = col(res, r, 0);
	h.state = col(res, r, 1);
	h.since = col_int(res, r, 2);
	h.error = col(res, r, 3);
	h.latency_ms = col_int(res, r, 4);
	h.checked = col_int(res, r, 5);
	return cb(&h, arg) == -1 ? -1 : 0;
}

static int
pg_health_load(struct store *st, store_health_cb cb, void *arg)
{
	return rows(st, S_HEALTH_LOAD, NULL, 1, "health load", row_health,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
pg_move_insert(struct store *st, struct store_move *m)
{
	enum txmode mode = TX_NONE;
	struct params p = { 0 };
	PGresult *res, *err;

	p_text(&p, m->user);
	p_text(&p, m->from);
	p_text(&p, m->to);
	p_text(&p, m->reason);
	p_text(&p, m->state);
	p_int(&p, m->pin != 0);
	p_int(&p, m->created);
	if (impl(st)->in_tx && tx_start(st, &mode) == -1)
		return -1;
	if ((res = run(st, S_MOVE_INSERT, &p, "move insert", &err)) == NULL) {
		if (err != NULL && is_state(err, "23505") &&
		    strcmp(constraint(err), "moves_open") == 0)
			store_set_conflict(st, "user %s is being moved already",
			    m->user);
		PQclear(err);
		tx_end(st, mode, 0);
		return -1;
	}
	m->id = col_int(res, 0, 0);
	PQclear(res);
	return tx_end(st, mode, 1);
}

static int
pg_move_state(struct store *st, int64_t id, const char *state,
    const char *error)
{
	struct params p = { 0 };

	p_int(&p, id);
	p_text(&p, state);
	p_text(&p, error != NULL ? error : "");
	p_int(&p, now_sec());
	return op_cmd(st, S_MOVE_STATE, &p, "move state", NULL, NULL);
}

static int
pg_move_switch(struct store *st, const struct store_move *m,
    const struct store_user *u)
{
	struct params p = { 0 };
	enum txmode mode;
	int64_t n;

	p_text(&p, m->user);
	p_text(&p, m->from);
	p_text(&p, m->to);
	p_int(&p, u->pinned != 0);
	p_int(&p, u->since);
	p_text(&p, u->replica);
	p_int(&p, u->replica_current != 0);
	p_int(&p, u->failed_over != 0);
	if (tx_start(st, &mode) == -1)
		return -1;
	if (run_cmd(st, S_MOVE_SWITCH_USER, &p, "move switch", &n) == -1)
		goto fail;
	memset(&p, 0, sizeof(p));
	p_int(&p, m->id);
	p_text(&p, n == 1 ? "done" : "failed");
	p_text(&p, n == 1 ? "" :
	    "the user was no longer on the backend it left");
	p_int(&p, now_sec());
	if (run_cmd(st, S_MOVE_STATE, &p, "move state", NULL) == -1)
		goto fail;
	if (tx_end(st, mode, 1) == -1)
		return -1;
	return n == 1 ? 1 : 0;
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
row_move(struct store *st, const PGresult *res, int r, void *cbp, void *arg)
{
	store_move_cb cb = (store_move_cb)cbp;
	struct store_move m;

	(void)st;
	m.id = col_int(res, r, 0);
	m.user = col(res, r, 1);
	m.from = col(res, r, 2);
	m.to = col(res, r, 3);
	m.reason = col(res, r, 4);
	m.state = col(res, r, 5);
	m.pin = (int)col_int(res, r, 6);
	m.error = col(res, r, 7);
	m.created = col_int(res, r, 8);
	m.updated = col_int(res, r, 9);
	return cb(&m, arg) == -1 ? -1 : 0;
}

static int
pg_move_list(struct store *st, int active, int64_t before, size_t limit,
    store_move_cb cb, void *arg)
{
	struct params p = { 0 };
	int64_t lim = limit > INT64_MAX ? INT64_MAX : (int64_t)limit;

	if (active) {
		p_int(&p, lim);
		return rows(st, S_MOVE_LIST_OPEN, &p, 0, "move list", row_move,
		    (void *)cb, arg) == -1 ? -1 : 0;
	}
	p_int(&p, before > 0 ? before : INT64_MAX);
	p_int(&p, lim);
	return rows(st, S_MOVE_LIST, &p, 0, "move list", row_move, (void *)cb,
	    arg) == -1 ? -1 : 0;
}

static int
pg_job_insert(struct store *st, struct store_job *j)
{
	enum txmode mode = TX_NONE;
	struct params p = { 0 };
	PGresult *res;

	p_text(&p, j->kind);
	p_text(&p, j->backend != NULL ? j->backend : "");
	p_int(&p, j->max);
	p_int(&p, j->rate);
	p_int(&p, j->created);
	if (impl(st)->in_tx && tx_start(st, &mode) == -1)
		return -1;
	if ((res = run(st, S_JOB_INSERT, &p, "job insert", NULL)) == NULL) {
		tx_end(st, mode, 0);
		return -1;
	}
	j->id = col_int(res, 0, 0);
	PQclear(res);
	return tx_end(st, mode, 1);
}

static int
pg_job_state(struct store *st, int64_t id, const char *state, int64_t made)
{
	struct params p = { 0 };

	p_int(&p, id);
	p_text(&p, state);
	p_int(&p, made);
	p_int(&p, now_sec());
	return op_cmd(st, S_JOB_STATE, &p, "job state", NULL, NULL);
}

static int
row_job(struct store *st, const PGresult *res, int r, void *cbp, void *arg)
{
	store_job_cb cb = (store_job_cb)cbp;
	struct store_job j;

	(void)st;
	j.id = col_int(res, r, 0);
	j.kind = col(res, r, 1);
	j.backend = col(res, r, 2);
	j.max = col_int(res, r, 3);
	j.rate = col_int(res, r, 4);
	j.made = col_int(res, r, 5);
	j.state = col(res, r, 6);
	j.created = col_int(res, r, 7);
	j.updated = col_int(res, r, 8);
	return cb(&j, arg) == -1 ? -1 : 0;
}

static int
pg_job_list(struct store *st, store_job_cb cb, void *arg)
{
	return rows(st, S_JOB_LIST, NULL, 0, "job list", row_job, (void *)cb,
	    arg) == -1 ? -1 : 0;
}

static int
pg_audit_add(struct store *st, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	struct params p = { 0 };

	if (actor == NULL || action == NULL) {
		store_set_error(st, "audit add: actor and action required");
		return -1;
	}
	p_int(&p, now_sec());
	p_text(&p, actor);
	p_text(&p, action);
	p_text(&p, subject != NULL ? subject : "");
	p_text(&p, detail != NULL ? detail : "{}");
	return op_cmd(st, S_AUDIT_ADD, &p, "audit add", NULL, NULL);
}

static int
row_audit(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	store_audit_cb cb = (store_audit_cb)cbp;
	struct store_audit a;

	(void)st;
	a.id = col_int(res, r, 0);
	a.at = col_int(res, r, 1);
	a.actor = col(res, r, 2);
	a.action = col(res, r, 3);
	a.subject = col(res, r, 4);
	a.detail = col(res, r, 5);
	return cb(&a, arg) == -1 ? -1 : 0;
}

static int
pg_audit_list(struct store *st, int64_t before, size_t limit,
    store_audit_cb cb, void *arg)
{
	struct params p = { 0 };

	p_int(&p, before > 0 ? before : INT64_MAX);
	p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return rows(st, S_AUDIT_LIST, &p, 0, "audit list", row_audit,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
row_repl(struct store *st, const PGresult *res, int r, void *cbp, void *arg)
{
	store_repl_cb cb = (store_repl_cb)cbp;
	struct store_repl x;

	(void)st;
	x.user = col(res, r, 0);
	x.priority = PQgetisnull(res, r, 1) ? -1 : (int)col_int(res, r, 1);
	x.queued = col_int(res, r, 2);
	x.due = col_int(res, r, 3);
	x.full = (int)col_int(res, r, 4);
	x.fails = (int)col_int(res, r, 5);
	x.stuck = (int)col_int(res, r, 6);
	x.error = col(res, r, 7);
	x.state = col(res, r, 8);
	x.last_fast = col_int(res, r, 9);
	x.last_full = col_int(res, r, 10);
	x.last_ok = col_int(res, r, 11);
	return cb(&x, arg) == -1 ? -1 : 0;
}

static int
fill_repl(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_repl *r = (const struct store_repl *)recs + i;

	if (r->user == NULL) {
		store_set_error(st, "repl put: record %zu has no user", i);
		return -1;
	}
	p_text(p, r->user);
	if (r->priority < 0)
		p_text(p, NULL);
	else
		p_int(p, r->priority);
	p_int(p, r->queued);
	p_int(p, r->due);
	p_int(p, r->full != 0);
	p_int(p, r->fails);
	p_int(p, r->stuck != 0);
	p_text(p, r->error != NULL ? r->error : "");
	p_text(p, r->state);	/* NULL: keep */
	p_int(p, r->last_fast);
	p_int(p, r->last_full);
	p_int(p, r->last_ok);
	return 0;
}

static int	batch_op(struct store *, enum stmt, const void *, size_t,
		    fill_fn, const char *);

static int
pg_repl_put(struct store *st, const struct store_repl *rs, size_t n)
{
	return batch_op(st, S_REPL_PUT, rs, n, fill_repl, "repl put");
}

static int
pg_repl_get(struct store *st, const char *user, store_repl_cb cb, void *arg)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, user);
	if ((n = rows(st, S_REPL_GET, &p, 0, "repl get", row_repl, (void *)cb,
	    arg)) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
pg_repl_load(struct store *st, store_repl_cb cb, void *arg)
{
	return rows(st, S_REPL_LOAD, NULL, 1, "repl load", row_repl,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
pg_repl_delete(struct store *st, const char *user)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, user);
	if (op_cmd(st, S_REPL_DELETE, &p, "repl delete", &n, NULL) == -1)
		return -1;
	return n > 0 ? 1 : 0;
}

static int
pg_repl_list(struct store *st, const char *after, size_t limit,
    store_repl_cb cb, void *arg)
{
	struct params p = { 0 };

	p_text(&p, after != NULL ? after : "");
	p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return rows(st, S_REPL_LIST, &p, 1, "repl list", row_repl,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
pg_job_list_all(struct store *st, store_job_cb cb, void *arg)
{
	return rows(st, S_JOB_LIST_ALL, NULL, 1, "job list", row_job,
	    (void *)cb, arg) == -1 ? -1 : 0;
}

static int
fill_move(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_move *m = (const struct store_move *)recs + i;

	(void)st;
	p_int(p, m->id);
	p_text(p, m->user);
	p_text(p, m->from);
	p_text(p, m->to);
	p_text(p, m->reason);
	p_text(p, m->state);
	p_int(p, m->pin != 0);
	p_text(p, m->error != NULL ? m->error : "");
	p_int(p, m->created);
	p_int(p, m->updated);
	return 0;
}

static int
fill_job(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_job *j = (const struct store_job *)recs + i;

	(void)st;
	p_int(p, j->id);
	p_text(p, j->kind);
	p_text(p, j->backend != NULL ? j->backend : "");
	p_int(p, j->max);
	p_int(p, j->rate);
	p_int(p, j->made);
	p_text(p, j->state);
	p_int(p, j->created);
	p_int(p, j->updated);
	return 0;
}

static int
fill_audit(struct store *st, const void *recs, size_t i, struct params *p)
{
	const struct store_audit *a = (const struct store_audit *)recs + i;

	(void)st;
	p_int(p, a->id);
	p_int(p, a->at);
	p_text(p, a->actor);
	p_text(p, a->action);
	p_text(p, a->subject != NULL ? a->subject : "");
	p_text(p, a->detail != NULL ? a->detail : "{}");
	return 0;
}

/* Insert n records as given, then move the identity past them; all or
 * none. */
static int
restore(struct store *st, enum stmt id, enum stmt seq, const void *recs,
    size_t n, fill_fn fill, const char *what)
{
	enum txmode mode;
	PGresult *err;
	size_t bad;

	if (n == 0)
		return 0;
	if (tx_start(st, &mode) == -1)
		return -1;
	if (run_batch(st, id, recs, n, fill, what, &bad, &err, NULL, NULL,
	    NULL) == -1) {
		PQclear(err);
		goto fail;
	}
	if (run_cmd(st, seq, NULL, what, NULL) == -1)
		goto fail;
	return tx_end(st, mode, 1);
fail:
	tx_end(st, mode, 0);
	return -1;
}

static int
pg_move_restore(struct store *st, const struct store_move *ms, size_t n)
{
	return restore(st, S_MOVE_RESTORE, S_MOVE_SEQ, ms, n, fill_move,
	    "move restore");
}

static int
pg_job_restore(struct store *st, const struct store_job *js, size_t n)
{
	return restore(st, S_JOB_RESTORE, S_JOB_SEQ, js, n, fill_job,
	    "job restore");
}

static int
pg_audit_restore(struct store *st, const struct store_audit *as, size_t n)
{
	return restore(st, S_AUDIT_RESTORE, S_AUDIT_SEQ, as, n, fill_audit,
	    "audit restore");
}

/* The change feed: see migration 9 -> 10 and feed.c. */

static const char *
pg_change_origin(struct store *st)
{
	return impl(st)->origin;
}

/* The first column of the one row of a query with parameters p. */
static int
one_int(struct store *st, enum stmt id, const struct params *p,
    const char *what, int64_t *out)
{
	PGresult *res;

	if ((res = run(st, id, p, what, NULL)) == NULL)
		return -1;
	*out = PQntuples(res) > 0 ? col_int(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

static int
pg_change_head(struct store *st, int64_t *seq)
{
	return one_int(st, S_CHANGE_HEAD, NULL, "change head", seq);
}

struct change_ctx {
	store_change_cb	 cb;
	void		*arg;
	int64_t		*pruned;
};

static int
row_change(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	struct change_ctx *cx = cbp;
	struct store_change c;

	(void)st;
	(void)arg;
	*cx->pruned = col_int(res, r, 0);
	if (PQgetisnull(res, r, 1))
		return 0;		/* no changes, only the mark */
	c.seq = col_int(res, r, 1);
	c.kind = col(res, r, 2);
	c.key = col(res, r, 3);
	c.origin = col(res, r, 4);
	c.at = col_int(res, r, 5);
	return cx->cb(&c, cx->arg) == -1 ? -1 : 0;
}

static int
pg_change_list(struct store *st, int64_t after, size_t limit,
    int64_t *pruned, store_change_cb cb, void *arg)
{
	struct change_ctx cx = { cb, arg, pruned };
	struct params p = { 0 };

	*pruned = 0;
	p_int(&p, after);
	p_int(&p, (int64_t)limit);
	return rows(st, S_CHANGE_LIST, &p, 0, "change list", row_change,
	    &cx, NULL) == -1 ? -1 : 0;
}

static int
pg_change_prune(struct store *st, int64_t older_ms)
{
	struct params p = { 0 };

	p_int(&p, older_ms);
	return op_cmd(st, S_CHANGE_PRUNE, &p, "change prune", NULL, NULL);
}

static int
pg_backend_get(struct store *st, const char *name, store_backend_cb cb,
    void *arg)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, name);
	n = rows(st, S_BACKEND_GET, &p, 0, "backend get", row_backend,
	    (void *)cb, arg);
	return n == -1 ? -1 : n > 0;
}

static int
pg_health_get(struct store *st, const char *backend, store_health_cb cb,
    void *arg)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, backend);
	n = rows(st, S_HEALTH_GET, &p, 0, "health get", row_health,
	    (void *)cb, arg);
	return n == -1 ? -1 : n > 0;
}

static int
pg_proxy_get(struct store *st, const char *name, store_proxy_cb cb,
    void *arg)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, name);
	n = rows(st, S_PROXY_GET, &p, 0, "proxy get", row_proxy,
	    (void *)cb, arg);
	return n == -1 ? -1 : n > 0;
}

static int
pg_move_marked(struct store *st, const char *user)
{
	struct params p = { 0 };
	int64_t n;

	p_text(&p, user);
	if (one_int(st, S_MOVE_MARKED, &p, "move marked", &n) == -1)
		return -1;
	return n > 0;
}

/* --- the change feed's read (store_pg.h) ---------------------------- */

char *
store_pg_feed_changes_sql(int64_t after, size_t limit)
{
	char *sql;

	xasprintf(&sql, "SELECT p.v, c.seq, c.kind, c.key, c.origin, c.at"
	    " FROM (SELECT coalesce(max(value::int8), 0) AS v FROM meta WHERE"
	    " key = 'changes_pruned') p LEFT JOIN LATERAL (SELECT seq, kind,"
	    " key, origin, at FROM changes WHERE seq > %lld ORDER BY seq"
	    " LIMIT %zu) c ON true ORDER BY c.seq", (long long)after, limit);
	return sql;
}

char *
store_pg_feed_rows_sql(int64_t after, int64_t last, unsigned parts)
{
	/* Each part: what it selects, the keys it takes from the batch
	 * (changes of these kinds), what else holds. */
	static const struct {
		const char	*select, *kinds, *also;
	} part_sql[STORE_FEED_PARTS] = {
		[STORE_FEED_BACKENDS] = { "SELECT " BACKEND_COLS " FROM"
		    " backends WHERE name", "'backend'", "" },
		[STORE_FEED_HEALTH] = { "SELECT backend, state, since, error,"
		    " latency_ms, checked FROM backend_health WHERE backend",
		    "'health'", "" },
		[STORE_FEED_PROXIES] = { "SELECT " PROXY_COLS " FROM proxies"
		    " WHERE name", "'proxy'", "" },
		[STORE_FEED_MOVING] = { "SELECT DISTINCT \"user\" FROM moves"
		    " WHERE \"user\"", "'move'", " AND state IN ('kicking',"
		    " 'waiting', 'syncing')" },
		[STORE_FEED_USERS] = { "SELECT " USER_COLS " FROM users WHERE"
		    " \"user\"", "'user', 'move'", "" },
	};
	char *sql = xstrdup(""), *next;
	int i;

	/* The keys of the changes read, by their numbers: exactly the
	 * batch, whatever was committed since. */
	for (i = STORE_FEED_CHANGES + 1; i < STORE_FEED_PARTS; i++) {
		if (!(parts & (1u << i)))
			continue;
		xasprintf(&next, "%s%s%s IN (SELECT key FROM changes WHERE"
		    " seq > %lld AND seq <= %lld AND kind IN (%s))%s", sql,
		    *sql != '\0' ? "; " : "", part_sql[i].select,
		    (long long)after, (long long)last, part_sql[i].kinds,
		    part_sql[i].also);
		free(sql);
		sql = next;
	}
	return sql;
}

char *
store_pg_feed_reload_sql(void)
{
	/* The head first: every row read after it is at least that new,
	 * and a change after it is read again by the next pass. */
	return xstrdup(
	    "SELECT greatest((SELECT coalesce(max(seq), 0) FROM changes),"
	    " (SELECT coalesce(max(value::int8), 0) FROM meta WHERE key ="
	    " 'changes_pruned')); "
	    "SELECT " BACKEND_COLS " FROM backends; "
	    "SELECT backend, state, since, error, latency_ms, checked FROM"
	    " backend_health; "
	    "SELECT " PROXY_COLS " FROM proxies; "
	    "SELECT DISTINCT \"user\" FROM moves WHERE state IN ('kicking',"
	    " 'waiting', 'syncing'); "
	    "SELECT " USER_COLS " FROM users");
}

int
store_pg_feed_head(struct store *st, const PGresult *res, int64_t *head)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != 1 || PQgetisnull(res, 0, 0)) {
		store_set_error(st, "feed reload: no change head in the answer");
		return -1;
	}
	*head = col_int(res, 0, 0);
	return 0;
}

int
store_pg_feed_read(struct store *st, const char *sql, size_t nparts,
    PGresult **res)
{
	struct pg_store *ps = impl(st);
	PGresult *extra;
	size_t i, n = 0;

	if (conn_ready(st) == -1)
		return -1;
	if (ps->in_tx) {
		store_set_error(st, "feed read: inside a transaction");
		return -1;
	}
	if (!PQsendQuery(ps->conn, sql)) {
		pg_fail(st, "feed read", NULL);
		return -1;
	}
	for (n = 0; n < nparts; n++) {
		if ((res[n] = get_result(ps)) == NULL ||
		    PQresultStatus(res[n]) != PGRES_TUPLES_OK) {
			pg_fail(st, "feed read", res[n]);
			n++;
			goto fail;
		}
	}
	/* The end of the answer. */
	while ((extra = get_result(ps)) != NULL)
		PQclear(extra);
	return 0;
fail:
	for (i = 0; i < n; i++) {
		PQclear(res[i]);
		res[i] = NULL;
	}
	/* The rest of the answer (after an error: its end), so that the
	 * connection is idle for the next call. */
	while (conn_ok(ps) && (extra = get_result(ps)) != NULL)
		PQclear(extra);
	return -1;
}

static int
feed_moving_row(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	int (*cb)(const char *, void *) = (int (*)(const char *, void *))cbp;

	(void)st;
	return cb(col(res, r, 0), arg) == -1 ? -1 : 0;
}

int
store_pg_feed_rows(struct store *st, enum store_feed_part part,
    const PGresult *res, const struct store_feed_cbs *cbs, int64_t *pruned)
{
	/* Each part: its columns (checked before a row is read), how a row
	 * is read and where in cbs it goes (the changes: a change_ctx). */
#define CB(f)	offsetof(struct store_feed_cbs, f)
	static const struct {
		int	 cols;
		row_fn	 fn;
		size_t	 cb;
	} parts[STORE_FEED_PARTS] = {
		[STORE_FEED_CHANGES] = { 6, row_change, CB(change) },
		[STORE_FEED_BACKENDS] = { 19, row_backend, CB(backend) },
		[STORE_FEED_HEALTH] = { 6, row_health, CB(health) },
		[STORE_FEED_PROXIES] = { 5, row_proxy, CB(proxy) },
		[STORE_FEED_MOVING] = { 1, feed_moving_row, CB(moving) },
		[STORE_FEED_USERS] = { 10, row_user, CB(user) },
	};
#undef CB
	struct change_ctx cx;
	void *cbp;
	const char *msg;
	int r, n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		set_msg(st, "feed read", msg != NULL ? msg :
		    PQresultErrorMessage(res));
		st->errclass = STORE_ERETRY;
		return -1;
	}
	if ((int)part < 0 || part >= STORE_FEED_PARTS) {
		store_set_error(st, "feed read: no such part");
		return -1;
	}
	if (PQnfields(res) != parts[part].cols) {
		store_set_error(st, "feed read: part %d has %d columns, not %d",
		    (int)part, PQnfields(res), parts[part].cols);
		return -1;
	}
	/* The callbacks are function pointers of one size: read as such. */
	memcpy(&cbp, (const char *)cbs + parts[part].cb, sizeof(cbp));
	if (part == STORE_FEED_CHANGES) {
		cx.cb = cbs->change;
		cx.arg = cbs->arg;
		cx.pruned = pruned;
		*pruned = 0;
		cbp = &cx;
	}
	n = PQntuples(res);
	for (r = 0; r < n; r++) {
		switch (parts[part].fn(st, res, r, cbp, cbs->arg)) {
		case 0:
			break;
		case -1:
			store_set_error(st, "feed read: stopped by caller");
			return -1;
		default:
			return -1;
		}
	}
	return 0;
}

static long
role_find(const struct pg_store *ps, const char *role)
{
	size_t i;

	for (i = 0; i < ps->nroles; i++)
		if (strcmp(ps->roles[i], role) == 0)
			return (long)i;
	return -1;
}

static int
pg_role_held(struct store *st, const char *role)
{
	struct pg_store *ps = impl(st);

	return conn_ok(ps) && role_find(ps, role) != -1;
}

static int
row_role(struct store *st, const PGresult *res, int r, void *cbp, void *arg)
{
	int *got = cbp;

	(void)st;
	(void)arg;
	got[r] = col_int(res, r, 0) != 0;
	return 0;
}

/*
 * The roles not held yet are asked for in one statement: a round of a
 * roostd that holds none asks for every backend's health role each
 * second, and each question would be a round trip on the loop.  Held
 * ones need no question (and a second lock would stack).
 */
static int
pg_role_claim(struct store *st, const char *const *roles, size_t n,
    int *got)
{
	struct pg_store *ps = impl(st);
	struct params p = { 0 };
	size_t i, k, len = 0, nask = 0;
	const char **ask;
	int *asked = NULL, rc = -1;
	char *list = NULL;

	ask = xcalloc(n ? n : 1, sizeof(*ask));
	for (i = 0; i < n; i++) {
		if (strchr(roles[i], '\n') != NULL) {
			store_set_error(st, "role claim: a role name with a "
			    "newline");
			goto done;
		}
		if ((got[i] = pg_role_held(st, roles[i])) == 0) {
			ask[nask++] = roles[i];
			len += strlen(roles[i]) + 1;
		}
	}
	if (nask == 0) {
		rc = 0;
		goto done;
	}
	list = xmalloc(len);
	for (i = 0, len = 0; i < nask; i++) {
		k = strlen(ask[i]);
		memcpy(list + len, ask[i], k);
		len += k;
		list[len++] = i + 1 < nask ? '\n' : '\0';
	}
	asked = xcalloc(nask, sizeof(*asked));
	p_text(&p, list);
	/* A lost connection is re-established (forgetting every role)
	 * and this call fails busy; the next one claims anew. */
	if (rows(st, S_ROLE_CLAIM, &p, 0, "role claim", row_role, asked,
	    NULL) != (int64_t)nask)
		goto done;
	for (i = 0, k = 0; i < n; i++) {
		if (got[i])
			continue;
		if ((got[i] = asked[k++]) && role_find(ps, roles[i]) == -1) {
			ps->roles = xreallocarray(ps->roles, ps->nroles + 1,
			    sizeof(*ps->roles));
			ps->roles[ps->nroles++] = xstrdup(roles[i]);
		}
	}
	rc = 0;
done:
	free(ask);
	free(asked);
	free(list);
	return rc;
}

/*
 * Questions sent without waiting (store.h claim_send, states_send,
 * scan_send): one unnamed statement taking a list of names, one a line,
 * answered with one row a name asked in its order; or a fixed query of
 * nres statements.  The answer is read when it arrives (*_poll), or by
 * the next call that needs the connection (conn_ready -> ask_finish),
 * within the statement's bound; take() puts each result's rows where the
 * caller wants them, fail() says they did not all come.
 */
struct pg_ask {
	const char	*what;
	char		**names;	/* every name of the call, copied */
	size_t		 n;
	size_t		*ask;		/* indexes of those asked */
	size_t		 nask;
	void		*out;		/* the caller's answers */
	int		 nres;		/* results a fixed query has */
	void		(*take)(struct store *, struct pg_ask *, int,
			    const PGresult *);
	void		(*fail)(struct pg_ask *);
	/* Its deadline, ready and outcome, as a batch's (no pipeline). */
	struct flight	 fl;
};

static void
ask_free(struct pg_store *ps)
{
	struct pg_ask *a = ps->ask;
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++)
		free(a->names[i]);
	free(a->names);
	free(a->ask);
	free(a);
	ps->ask = NULL;
}

/* Read the answer (within the question's deadline) into the caller's
 * answers; the caller's error stays. */
static void
ask_finish(struct store *st)
{
	struct pg_store *ps = impl(st);
	struct pg_ask *a = ps->ask;
	char saved[sizeof(st->err)];
	enum store_err class = st->errclass;
	PGresult *res;
	int bad = 0, took = 0, want = a != NULL && a->nres > 0 ? a->nres : 1;

	if (a == NULL || a->fl.done)
		return;
	memcpy(saved, st->err, sizeof(saved));
	ps->deadline_at = a->fl.deadline;
	while ((res = get_result(ps)) != NULL) {
		if (!bad && took < want && (PQresultStatus(res) !=
		    PGRES_TUPLES_OK || (a->nres == 0 &&
		    PQntuples(res) != (int)a->nask))) {
			pg_fail(st, a->what, res);
			bad = 1;
		} else if (!bad && took < want) {
			a->take(st, a, took, res);
			took++;
		}
		PQclear(res);
	}
	ps->deadline_at = 0;
	if (!bad && (took < want || !conn_ok(ps))) {
		pg_fail(st, a->what, NULL);
		bad = 1;
	}
	if (bad) {
		a->fail(a);
		memcpy(a->fl.err, st->err, sizeof(a->fl.err));
		a->fl.class = st->errclass;
		a->fl.rc = -1;
	}
	a->fl.done = 1;
	memcpy(st->err, saved, sizeof(saved));
	st->errclass = class;
	if (a->fl.ready != NULL)
		a->fl.ready(a->fl.ready_arg);
}

/* Send the question: the names asked (a->ask) one a line as $1 of sql. */
static int
ask_send(struct store *st, struct pg_ask *a, const char *sql)
{
	struct pg_store *ps = impl(st);
	const char *v[1];
	char *list;
	size_t i, k, len = 0;
	uint64_t start;
	int r;

	ps->ask = a;
	if (a->nres > 0) {
		if (!PQsendQuery(ps->conn, sql)) {
			pg_fail(st, a->what, NULL);
			ask_free(ps);
			return -1;
		}
		goto flush;
	}
	if (a->nask == 0) {
		a->fl.done = 1;		/* nothing to ask: answered */
		return 0;
	}
	for (i = 0; i < a->nask; i++)
		len += strlen(a->names[a->ask[i]]) + 1;
	list = xmalloc(len);
	for (i = 0, len = 0; i < a->nask; i++) {
		k = strlen(a->names[a->ask[i]]);
		memcpy(list + len, a->names[a->ask[i]], k);
		len += k;
		list[len++] = i + 1 < a->nask ? '\n' : '\0';
	}
	v[0] = list;
	if (!PQsendQueryParams(ps->conn, sql, 1, NULL, v, NULL, NULL, 0)) {
		pg_fail(st, a->what, NULL);
		free(list);
		ask_free(ps);
		return -1;
	}
	free(list);
flush:
	start = now_msec_mono();
	a->fl.deadline = wait_deadline(ps);
	while ((r = PQflush(ps->conn)) != 0)
		if (r == -1 || conn_poll(ps, POLLOUT, start,
		    a->fl.deadline) == -1) {
			ask_finish(st);		/* answered as failed */
			break;
		}
	return 0;
}

/* The caller's side of a question: where the answers go, how. */
struct ask_to {
	void		*out;
	void		(*take)(struct store *, struct pg_ask *, int,
			    const PGresult *);
	void		(*fail)(struct pg_ask *);
	void		(*ready)(void *);
	void		*ready_arg;
};

/* A new question of n names, after the checks every one needs: none
 * under way, no newline in a name, a connection outside a transaction. */
static struct pg_ask *
ask_new(struct store *st, const char *what, const char *const *names,
    size_t n, const struct ask_to *to)
{
	struct pg_store *ps = impl(st);
	struct pg_ask *a;
	size_t i;

	if (ps->ask != NULL) {
		store_set_error(st, "%s: one is under way already", what);
		st->errclass = STORE_ERETRY;
		return NULL;
	}
	for (i = 0; i < n; i++)
		if (strchr(names[i], '\n') != NULL) {
			store_set_error(st, "%s: a name with a newline", what);
			return NULL;
		}
	if (conn_ready(st) == -1)
		return NULL;
	if (ps->in_tx) {
		store_set_error(st, "%s: inside a transaction", what);
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->what = what;
	a->out = to->out;
	a->take = to->take;
	a->fail = to->fail;
	a->fl.ready = to->ready;
	a->fl.ready_arg = to->ready_arg;
	a->names = xcalloc(n ? n : 1, sizeof(*a->names));
	a->ask = xcalloc(n ? n : 1, sizeof(*a->ask));
	a->n = n;
	for (i = 0; i < n; i++)
		a->names[i] = xstrdup(names[i]);
	return a;
}

static int
ask_poll(struct store *st, int *rc)
{
	struct pg_store *ps = impl(st);
	struct pg_ask *a = ps->ask;

	if (a == NULL) {
		store_set_error(st, "poll: no question is under way");
		*rc = -1;
		return 1;
	}
	if (flight_poll(st, &a->fl, ask_finish) == 0)
		return 0;
	*rc = a->fl.rc;
	ask_free(ps);
	return 1;
}

/* A claim's answer: got[] for the roles asked; the roles held. */
static void
claim_take(struct store *st, struct pg_ask *a, int k, const PGresult *res)
{
	struct pg_store *ps = impl(st);
	int *got = a->out;
	size_t i;

	(void)k;
	for (i = 0; i < a->nask; i++)
		got[a->ask[i]] = col_int(res, (int)i, 0) != 0;
	for (i = 0; i < a->n; i++)
		if (got[i] && role_find(ps, a->names[i]) == -1) {
			ps->roles = xreallocarray(ps->roles, ps->nroles + 1,
			    sizeof(*ps->roles));
			ps->roles[ps->nroles++] = xstrdup(a->names[i]);
		}
}

/* Nothing asked is taken: the session, if it went, took whatever the
 * server granted with it. */
static void
claim_fail(struct pg_ask *a)
{
	int *got = a->out;
	size_t i;

	for (i = 0; i < a->nask; i++)
		got[a->ask[i]] = 0;
}

static int
pg_claim_send(struct store *st, const char *const *roles, size_t n,
    int *got, void (*ready)(void *), void *arg)
{
	struct ask_to to = { got, claim_take, claim_fail, ready, arg };
	struct pg_ask *a;
	size_t i;

	if ((a = ask_new(st, "role claim", roles, n, &to)) == NULL)
		return -1;
	/* Held ones are not asked again (a second lock would stack). */
	for (i = 0; i < n; i++)
		if ((got[i] = pg_role_held(st, roles[i])) == 0)
			a->ask[a->nask++] = i;
	return ask_send(st, a, stmt_sql[S_ROLE_CLAIM]);
}

/* A release's answer says nothing the caller needs: whether the server
 * still had each lock.  The roles were forgotten when it was sent. */
static void
release_take(struct store *st, struct pg_ask *a, int k, const PGresult *res)
{
	(void)st;
	(void)a;
	(void)k;
	(void)res;
}

/* A release that did not go through leaves the lock until the session
 * ends: harmless, and not forgotten if claimed again (the server says
 * no while this session holds it: a second lock would stack). */
static void
release_fail(struct pg_ask *a)
{
	(void)a;
}

static int
pg_release_send(struct store *st, const char *const *roles, size_t n,
    void (*ready)(void *), void *arg)
{
	struct pg_store *ps = impl(st);
	struct ask_to to = { NULL, release_take, release_fail, ready, arg };
	struct pg_ask *a;
	size_t i;
	long k;

	if ((a = ask_new(st, "role release", roles, n, &to)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if ((k = role_find(ps, roles[i])) != -1) {
			free(ps->roles[k]);
			ps->roles[k] = ps->roles[--ps->nroles];
			a->ask[a->nask++] = i;
		}
	return ask_send(st, a, stmt_sql[S_ROLE_RELEASES]);
}

/* The states asked for, "" for a user without one. */
static void
states_take(struct store *st, struct pg_ask *a, int k, const PGresult *res)
{
	char **states = a->out;
	size_t i;

	(void)st;
	(void)k;
	for (i = 0; i < a->nask; i++)
		states[a->ask[i]] = xstrdup(col(res, (int)i, 0));
}

static void
states_fail(struct pg_ask *a)
{
	(void)a;
}

static int
pg_states_send(struct store *st, const char *const *users, size_t n,
    char **states, void (*ready)(void *), void *arg)
{
	struct ask_to to = { states, states_take, states_fail, ready, arg };
	struct pg_ask *a;
	size_t i;

	if ((a = ask_new(st, "replication states", users, n, &to)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		states[i] = NULL;
		a->ask[a->nask++] = i;
	}
	return ask_send(st, a, stmt_sql[S_REPL_STATES]);
}

/* The open moves, then the running jobs, copied for the caller. */
static void
scan_take(struct store *st, struct pg_ask *a, int k, const PGresult *res)
{
	int r, n = PQntuples(res);

	for (r = 0; r < n; r++) {
		if (k == 0)
			(void)row_move(st, res, r, (void *)store_scan_move,
			    a->out);
		else
			(void)row_job(st, res, r, (void *)store_scan_job,
			    a->out);
	}
}

static void
scan_fail(struct pg_ask *a)
{
	store_scan_clear(a->out);
}

static int
pg_scan_send(struct store *st, struct store_scan *out,
    void (*ready)(void *), void *arg)
{
	struct ask_to to = { out, scan_take, scan_fail, ready, arg };
	struct pg_ask *a;

	if ((a = ask_new(st, "moves scan", NULL, 0, &to)) == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	a->nres = 2;
	return ask_send(st, a, "SELECT " MOVE_COLS " FROM moves WHERE state"
	    " NOT IN ('done', 'failed') ORDER BY id; SELECT " JOB_COLS
	    " FROM move_jobs WHERE state = 'running' ORDER BY id");
}

static int	row_repl_request(struct store *, const PGresult *, int, void *,
		    void *);

static void
requests_take(struct store *st, struct pg_ask *a, int k, const PGresult *res)
{
	int r, n = PQntuples(res);

	(void)k;
	for (r = 0; r < n; r++)
		(void)row_repl_request(st, res, r, (void *)store_scan_request,
		    a->out);
}

static int
pg_requests_send(struct store *st, size_t limit, struct store_scan *out,
    void (*ready)(void *), void *arg)
{
	struct ask_to to = { out, requests_take, scan_fail, ready, arg };
	struct pg_ask *a;
	char sql[128];

	if ((a = ask_new(st, "replication requests", NULL, 0, &to)) == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	a->nres = 1;
	snprintf(sql, sizeof(sql), "SELECT id, \"user\", priority, \"full\","
	    " at FROM repl_requests ORDER BY id LIMIT %zu", limit);
	return ask_send(st, a, sql);
}

static int
pg_role_release(struct store *st, const char *role)
{
	struct pg_store *ps = impl(st);
	struct params p = { 0 };
	int64_t was;
	long i;

	if ((i = role_find(ps, role)) == -1)
		return 0;
	free(ps->roles[i]);
	ps->roles[i] = ps->roles[--ps->nroles];
	p_text(&p, role);
	/* A failure leaves it held until the session ends: harmless, and
	 * not forgotten if it is claimed again (the server says no). */
	return one_int(st, S_ROLE_RELEASE, &p, "role release", &was);
}

static int
fill_repl_request(struct store *st, const void *recs, size_t i,
    struct params *p)
{
	const struct store_repl_request *q =
	    (const struct store_repl_request *)recs + i;

	if (q->user == NULL) {
		store_set_error(st, "repl request: record %zu has no user", i);
		return -1;
	}
	p_text(p, q->user);
	p_int(p, q->priority);
	p_int(p, q->full != 0);
	p_int(p, q->at);
	return 0;
}

static int
fill_request_id(struct store *st, const void *recs, size_t i,
    struct params *p)
{
	(void)st;
	p_int(p, ((const int64_t *)recs)[i]);
	return 0;
}

/* A batch of one statement per record, all or nothing. */
static int
batch_op(struct store *st, enum stmt id, const void *recs, size_t n,
    fill_fn fill, const char *what)
{
	enum txmode mode = TX_NONE;
	PGresult *err;
	size_t bad;

	if (n == 0)
		return 0;
	if (send_building(impl(st)))
		return send_add(st, id, recs, n, fill, what);
	if ((n > 1 || impl(st)->in_tx) && tx_start(st, &mode) == -1)
		return -1;
	if (run_batch(st, id, recs, n, fill, what, &bad, &err, NULL, NULL,
	    NULL) == -1) {
		PQclear(err);
		tx_end(st, mode, 0);
		return -1;
	}
	return tx_end(st, mode, 1);
}

static int
pg_repl_request_add(struct store *st, const struct store_repl_request *q,
    size_t n)
{
	return batch_op(st, S_REPL_REQ_ADD, q, n, fill_repl_request,
	    "repl request");
}

static int
row_repl_request(struct store *st, const PGresult *res, int r, void *cbp,
    void *arg)
{
	store_repl_request_cb cb = (store_repl_request_cb)cbp;
	struct store_repl_request x;

	(void)st;
	x.id = col_int(res, r, 0);
	x.user = col(res, r, 1);
	x.priority = (int)col_int(res, r, 2);
	x.full = (int)col_int(res, r, 3);
	x.at = col_int(res, r, 4);
	return cb(&x, arg) == -1 ? -1 : 0;
}

static int
pg_repl_request_list(struct store *st, size_t limit,
    store_repl_request_cb cb, void *arg)
{
	struct params p = { 0 };

	p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return rows(st, S_REPL_REQ_LIST, &p, 0, "repl requests",
	    row_repl_request, (void *)cb, arg) == -1 ? -1 : 0;
}

static int
pg_repl_request_delete(struct store *st, const int64_t *ids, size_t n)
{
	return batch_op(st, S_REPL_REQ_DELETE, ids, n, fill_request_id,
	    "repl request delete");
}

/* Only this process: for roostd -C, which must not copy a store that a
 * roostd changes meanwhile. */
static int
pg_exclusive(struct store *st)
{
	roles_forget(impl(st));
	switch (open_lock(st, 1)) {
	case 1:
		return 0;
	case 0:
		open_lock(st, 0);
		store_set_error(st, "store in use by a roostd; stop every "
		    "roostd of this store first");
		return -1;
	}
	return -1;
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.ping = pg_ping,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.durable = pg_durable,
	.backend_load = pg_backend_load,
	.backend_insert = pg_backend_insert,
	.backend_update = pg_backend_update,
	.backend_delete = pg_backend_delete,
	.user_load = pg_user_load,
	.user_put = pg_user_put,
	.user_delete = pg_user_delete,
	.user_get = pg_user_get,
	.user_list = pg_user_list,
	.user_touch = pg_user_touch,
	.audit_add = pg_audit_add,
	.audit_list = pg_audit_list,
	.user_place = pg_user_place,
	.place_send = pg_place_send,
	.place_fd = pg_place_fd,
	.place_poll = pg_place_poll,
	.place_flying = pg_place_flying,
	.tx_send = pg_tx_send,
	.tx_poll = pg_tx_poll,
	.move_insert = pg_move_insert,
	.move_state = pg_move_state,
	.move_switch = pg_move_switch,
	.move_list = pg_move_list,
	.job_insert = pg_job_insert,
	.job_state = pg_job_state,
	.job_list = pg_job_list,
	.health_put = pg_health_put,
	.health_load = pg_health_load,
	.proxy_load = pg_proxy_load,
	.proxy_insert = pg_proxy_insert,
	.proxy_update = pg_proxy_update,
	.proxy_delete = pg_proxy_delete,
	.repl_put = pg_repl_put,
	.repl_get = pg_repl_get,
	.repl_load = pg_repl_load,
	.repl_delete = pg_repl_delete,
	.repl_list = pg_repl_list,
	.job_list_all = pg_job_list_all,
	.move_restore = pg_move_restore,
	.job_restore = pg_job_restore,
	.audit_restore = pg_audit_restore,
	.change_origin = pg_change_origin,
	.change_head = pg_change_head,
	.change_list = pg_change_list,
	.change_prune = pg_change_prune,
	.backend_get = pg_backend_get,
	.health_get = pg_health_get,
	.proxy_get = pg_proxy_get,
	.move_marked = pg_move_marked,
	.role_claim = pg_role_claim,
	.claim_send = pg_claim_send,
	.claim_poll = ask_poll,
	.states_send = pg_states_send,
	.states_poll = ask_poll,
	.scan_send = pg_scan_send,
	.scan_poll = ask_poll,
	.requests_send = pg_requests_send,
	.requests_poll = ask_poll,
	.role_release = pg_role_release,
	.release_send = pg_release_send,
	.role_held = pg_role_held,
	.exclusive = pg_exclusive,
	.repl_request_add = pg_repl_request_add,
	.repl_request_list = pg_repl_request_list,
	.repl_request_delete = pg_repl_request_delete,
};
