/*
 * pgtmp.h: the throw-away PostgreSQL cluster of one unit test run, for the
 * tests that need one: tests/pg/pgtmp starts it (stopped when the test
 * process ends), or ROOST_PG names one.  pg.state 77: PostgreSQL is not
 * installed, and the caller skips its PostgreSQL cases saying so (pg.why).
 * Static functions: each test program includes it once.
 */
#ifndef ROOST_TEST_PGTMP_H
#define ROOST_TEST_PGTMP_H

#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

/* The cluster for the whole run. */
static struct {
	int	 state;		/* 0 not tried, 1 up, -1 failed, 77 absent */
	char	 conninfo[512];
	char	 dir[64];	/* ours to stop, "" when ROOST_PG gave it */
	char	 why[256];
	PGconn	*admin;		/* raw SQL behind the store's back */
	int	 seq;
} pg;

static void
pg_up(void)
{
	const char *env = getenv("ROOST_PG");
	const char *paths[] = { "tests/pg/pgtmp", "../../tests/pg/pgtmp" };
	char cmd[512], *nl;
	FILE *fp;
	size_t i;
	int rc;

	if (pg.state != 0)
		return;
	pg.state = -1;
	if (env != NULL && env[0] != '\0') {
		snprintf(pg.conninfo, sizeof(pg.conninfo), "%s", env);
	} else {
		for (i = 0; i < 2; i++)
			if (access(paths[i], X_OK) == 0)
				break;
		if (i == 2) {
			snprintf(pg.why, sizeof(pg.why), "tests/pg/pgtmp not "
			    "found (run from the top of the tree)");
			return;
		}
		snprintf(pg.dir, sizeof(pg.dir), "/tmp/pgtmp.XXXXXX");
		if (mkdtemp(pg.dir) == NULL) {
			snprintf(pg.why, sizeof(pg.why), "mkdtemp: %s",
			    strerror(errno));
			pg.dir[0] = '\0';
			return;
		}
		snprintf(cmd, sizeof(cmd), "%s start %s --owner-pid %ld",
		    paths[i], pg.dir, (long)getpid());
		if ((fp = popen(cmd, "r")) == NULL) {
			snprintf(pg.why, sizeof(pg.why), "popen: %s",
			    strerror(errno));
			return;
		}
		if (fgets(pg.conninfo, sizeof(pg.conninfo), fp) == NULL)
			pg.conninfo[0] = '\0';
		rc = pclose(fp);
		if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
			pg.state = 77;
			snprintf(pg.why, sizeof(pg.why), "PostgreSQL is not "
			    "installed (scripts/install-deps installs it)");
			return;
		}
		if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
			snprintf(pg.why, sizeof(pg.why), "tests/pg/pgtmp start "
			    "failed (status %d)", rc);
			return;
		}
		if ((nl = strchr(pg.conninfo, '\n')) != NULL)
			*nl = '\0';
	}
	pg.admin = PQconnectdb(pg.conninfo);
	if (PQstatus(pg.admin) != CONNECTION_OK) {
		snprintf(pg.why, sizeof(pg.why), "connect: %s",
		    PQerrorMessage(pg.admin));
		return;
	}
	PQclear(PQexec(pg.admin, "SET client_min_messages = warning"));
	pg.state = 1;
}

static void
pg_down(void)
{
	char cmd[256];

	if (pg.admin != NULL)
		PQfinish(pg.admin);
	if (pg.dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "tests/pg/pgtmp stop %s 2>/dev/null"
		    " || ../../tests/pg/pgtmp stop %s", pg.dir, pg.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "pgtmp stop %s failed\n", pg.dir);
	}
}

/* Raw SQL on the admin connection; fails the test unless it works. */
static void
pg_exec(const char *sql)
{
	PGresult *res = PQexec(pg.admin, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg.admin));
	PQclear(res);
}

#endif
