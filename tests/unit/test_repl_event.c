/* test_repl_event.c: the real event bodies of Dovecot 2.3 and 2.4
 * (tests/fixtures/events) get the priority replication needs, and what
 * dsync itself did, failed commands and other events get none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "repl.h"
#include "repl_event.h"

struct want {
	const char	*file;
	int		 prio;
};

/* Every fixture of both versions; 2.4 has two more (POP3 commands). */
static const struct want wants[] = {
	{ "lmtp_delivery", REPL_P_HIGH },
	{ "imap_append", REPL_P_HIGH },
	{ "imap_store", REPL_P_LOW },
	{ "imap_store_lowercase", REPL_P_LOW },
	{ "imap_uid_store", REPL_P_LOW },
	{ "imap_create", REPL_P_LOW },
	{ "imap_copy", REPL_P_LOW },
	{ "imap_uid_copy", REPL_P_LOW },
	{ "imap_move", REPL_P_LOW },
	{ "imap_uid_move", REPL_P_LOW },
	{ "imap_expunge", REPL_P_LOW },
	{ "imap_uid_expunge", REPL_P_LOW },
	{ "imap_rename", REPL_P_LOW },
	{ "imap_subscribe", REPL_P_LOW },
	{ "imap_unsubscribe", REPL_P_LOW },
	{ "imap_delete", REPL_P_LOW },
	{ "imap_setmetadata", REPL_P_LOW },
	{ "imap_setmetadata_server", REPL_P_LOW },
	{ "imap_copy_no", -1 },
	{ "imap_store_bad", -1 },
	{ "imap_move_mail_expunged", REPL_P_LOW },
	{ "imap_expunge_mail_expunged", REPL_P_LOW },
	{ "pop3_quit_mail_expunged", REPL_P_LOW },
	{ "doveadm_expunge_mail_expunged", REPL_P_LOW },
	{ "dsync_replica_mail_expunged", -1 },
	{ "dsync_primary_mail_expunged", -1 },
	/* 2.4 only: DELE expunges nothing; QUIT's expunge comes as
	 * mail_expunged. */
	{ "pop3_dele_command", -1 },
	{ "pop3_quit_command", -1 },
};

static int
classify_file(const char *path, int *prio)
{
	json_error_t jerr;
	json_t *o;

	if ((o = json_load_file(path, 0, &jerr)) == NULL)
		return -1;
	*prio = repl_event_classify(json_string_value(json_object_get(o,
	    "event")), json_object_get(o, "fields"));
	json_decref(o);
	return 0;
}

static void
test_fixtures(void **state)
{
	const char *versions[] = { "2.3", "2.4" };
	char path[256];
	size_t v, i, seen;
	int prio;

	(void)state;
	for (v = 0; v < 2; v++) {
		seen = 0;
		for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
			snprintf(path, sizeof(path),
			    "tests/fixtures/events/%s/%s.json", versions[v],
			    wants[i].file);
			if (classify_file(path, &prio) == -1)
				continue;	/* not on this version */
			seen++;
			if (prio != wants[i].prio)
				fail_msg("%s: priority %d, want %d", path, prio,
				    wants[i].prio);
		}
		/* Every fixture of 2.3 and 2.4 was read (26 and 28). */
		assert_int_equal(seen, v == 0 ? 26 : 28);
	}
}

static void
test_shapes(void **state)
{
	json_t *f;

	(void)state;
	assert_int_equal(repl_event_classify(NULL, NULL), -1);
	assert_int_equal(repl_event_classify("mail_delivery_finished", NULL),
	    REPL_P_HIGH);
	f = json_pack("{s:s}", "error", "Quota exceeded");
	assert_int_equal(repl_event_classify("mail_delivery_finished", f), -1);
	json_decref(f);
	/* A command without its name, or of a name that changes nothing. */
	assert_int_equal(repl_event_classify("imap_command_finished", NULL),
	    -1);
	f = json_pack("{s:s, s:s}", "cmd_name", "FETCH", "tagged_reply_state",
	    "OK");
	assert_int_equal(repl_event_classify("imap_command_finished", f), -1);
	json_decref(f);
	f = json_pack("{s:s}", "cmd_name", "uid move");
	assert_int_equal(repl_event_classify("imap_command_finished", f),
	    REPL_P_LOW);
	json_decref(f);
	/* reason_code as a plain string, as some filters may render it. */
	f = json_pack("{s:s}", "reason_code", "doveadm:cmd_dsync_server");
	assert_int_equal(repl_event_classify("mail_expunged", f), -1);
	json_decref(f);
	f = json_pack("{s:[i, s]}", "reason_code", 3, "pop3:cmd_quit");
	assert_int_equal(repl_event_classify("mail_expunged", f), REPL_P_LOW);
	json_decref(f);
	assert_int_equal(repl_event_classify("proxy_session_finished", NULL),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
