/*
 * repl_event.c: which backend events mean a user's mail changed, and how
 * urgently the replica should hear of it.
 *
 * A delivery or an APPEND is new mail that a failover would lose: high.
 * Flag changes, expunges and folder changes only make the replica stale:
 * low.  Only commands that ended with a tagged OK changed anything; a
 * command that failed is nothing to copy.  IMAP names UID commands "UID
 * STORE" and so on; the UID forms count like the plain ones.
 *
 * POP3 changes mail only by deleting it, at QUIT, which shows as
 * mail_expunged (both versions; there is nothing at DELE).  An expunge
 * that dsync itself applied (reason doveadm:cmd_sync on the side that ran
 * the sync, doveadm:cmd_dsync_server on the other) is replication's own
 * echo: taking it as a change would sync forever.  The shipped exporter
 * filter leaves those out; this holds whatever a site's filter sends.
 * The bodies these rules were written from are in tests/fixtures/events.
 */
#include <string.h>
#include <strings.h>

#include "repl.h"
#include "repl_event.h"

static const char *const imap_low[] = {
	"STORE", "EXPUNGE", "COPY", "MOVE", "CREATE", "DELETE", "RENAME",
	"SUBSCRIBE", "UNSUBSCRIBE", "SETMETADATA", "UID STORE",
	"UID EXPUNGE", "UID COPY", "UID MOVE", NULL
};


static int
in_list(const char *s, const char *const *list)
{
	size_t i;

	for (i = 0; list[i] != NULL; i++)
		if (strcasecmp(s, list[i]) == 0)
			return 1;
	return 0;
}

/* A string field, or NULL when absent or of another type. */
static const char *
field_str(const json_t *fields, const char *name)
{
	if (!json_is_object(fields))
		return NULL;
	return json_string_value(json_object_get(fields, name));
}

/* Did the command or the delivery end in an error? */
static int
failed(const json_t *fields)
{
	const char *s;

	if ((s = field_str(fields, "error")) != NULL && *s != '\0')
		return 1;
	if ((s = field_str(fields, "tagged_reply_state")) != NULL &&
	    strcasecmp(s, "OK") != 0)
		return 1;
	return 0;
}

static int
dsync_reason(const char *s)
{
	return s != NULL && (strcmp(s, "doveadm:cmd_sync") == 0 ||
	    strcmp(s, "doveadm:cmd_dsync_server") == 0);
}

/* Did dsync make this change?  reason_code is a list (a string, too). */
static int
by_dsync(const json_t *fields)
{
	const json_t *codes, *c;
	size_t i;

	if (!json_is_object(fields))
		return 0;
	codes = json_object_get(fields, "reason_code");
	if (json_is_string(codes))
		return dsync_reason(json_string_value(codes));
	json_array_foreach(codes, i, c)
		if (dsync_reason(json_string_value(c)))
			return 1;
	return 0;
}

int
repl_event_classify(const char *event, const json_t *fields)
{
	const char *cmd;

	if (event == NULL)
		return -1;
	if (strcmp(event, "mail_delivery_finished") == 0)
		return failed(fields) ? -1 : REPL_P_HIGH;
	if (strcmp(event, "mail_expunged") == 0)
		return by_dsync(fields) ? -1 : REPL_P_LOW;
	if (strcmp(event, "imap_command_finished") == 0) {
		if ((cmd = field_str(fields, "cmd_name")) == NULL ||
		    failed(fields))
			return -1;
		if (strcasecmp(cmd, "APPEND") == 0)
			return REPL_P_HIGH;
		return in_list(cmd, imap_low) ? REPL_P_LOW : -1;
	}
	return -1;
}
