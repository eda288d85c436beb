/* test_backend_json.c: admin input for backends: every field checked,
 * errors name the field, a rejected change leaves the backend untouched,
 * the doveadm key and the probe password never appear in the JSON output,
 * and the proxy-to-backend TLS mode round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backend.h"

static int
apply(struct backend *b, const char *json, int creating, const char **field)
{
	json_error_t jerr;
	json_t *obj = json_loads(json, 0, &jerr);
	char err[256];
	int rv;

	assert_non_null(obj);
	rv = backend_apply_json(b, obj, creating, field, err, sizeof(err));
	json_decref(obj);
	return rv;
}

static void
test_create_full(void **state)
{
	struct backend *b = backend_new("");
	const char *field;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"mail1.example.com\","
	    "\"hostip\":\"127.0.0.11\",\"tag\":\"eu\",\"weight\":250,"
	    "\"state\":\"drain\",\"ports\":{\"imap\":10143,\"doveadm\":8080},"
	    "\"doveadm\":{\"url\":\"http://127.0.0.11:8080/doveadm/v1\","
	    "\"api_key\":\"sekrit\"}}", 1, &field), 0);
	assert_string_equal(b->name, "b1");
	assert_string_equal(b->host, "mail1.example.com");
	assert_string_equal(b->hostip, "127.0.0.11");
	assert_string_equal(b->tag, "eu");
	assert_int_equal(b->weight, 250);
	assert_int_equal(b->state, BACKEND_DRAIN);
	assert_int_equal(b->ports[PROTO_IMAP], 10143);
	assert_int_equal(b->ports[PROTO_POP3], 110);
	assert_int_equal(b->ports[PROTO_DOVEADM], 8080);
	assert_string_equal(b->doveadm_key, "sekrit");
	backend_free(b);
}

static void
test_hostip_defaults_to_ip_host(void **state)
{
	struct backend *b = backend_new("");
	const char *field;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"::1\"}", 1,
	    &field), 0);
	assert_string_equal(b->hostip, "::1");
	backend_free(b);
	b = backend_new("");
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"mx.example\"}", 1,
	    &field), 0);
	assert_string_equal(b->hostip, "");
	backend_free(b);
}

static void
test_errors_name_the_field(void **state)
{
	static const struct { const char *json, *field; int creating; } cases[] = {
		{ "{\"host\":\"h\"}", "name", 1 },
		{ "{\"name\":\"b1\"}", "host", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"weight\":\"x\"}", "weight", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"weight\":1001}", "weight", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"weight\":-1}", "weight", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"weight\":1.5}", "weight", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"state\":\"sideways\"}", "state", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"ports\":{\"imap\":70000}}",
		    "ports.imap", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"ports\":{\"gopher\":70}}",
		    "ports.gopher", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"ports\":[]}", "ports", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"hostip\":\"nope\"}", "hostip", 1 },
		{ "{\"name\":\"b1\",\"host\":\"bad host\"}", "host", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"tag\":\"a/b\"}", "tag", 1 },
		{ "{\"name\":\"b 1\",\"host\":\"h\"}", "name", 1 },
		{ "{\"name\":\".b1\",\"host\":\"h\"}", "name", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"colour\":\"red\"}", "colour", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"doveadm\":{\"url\":\"ftp://x\"}}",
		    "doveadm.url", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"doveadm\":{\"api_key\":5}}",
		    "doveadm.api_key", 1 },
		{ "{\"name\":\"b1\",\"host\":\"h\",\"doveadm\":{\"x\":1}}",
		    "doveadm", 1 },
		{ "{\"name\":\"b2\"}", "name", 0 },
	};
	const char *field;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct backend *b = backend_new("");

		field = NULL;
		assert_int_equal(apply(b, cases[i].json, cases[i].creating,
		    &field), -1);
		assert_non_null(field);
		assert_string_equal(field, cases[i].field);
		backend_free(b);
	}
}

static void
test_name_length(void **state)
{
	char json[256];
	const char *field;
	struct backend *b = backend_new("");

	(void)state;
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"host\":\"h\"}",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(apply(b, json, 1, &field), 0);	/* 64: fits */
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"host\":\"h\"}",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(apply(b, json, 1, &field), -1);	/* 65 */
	assert_string_equal(field, "name");
	backend_free(b);
}

static void
test_rejected_patch_changes_nothing(void **state)
{
	struct backend *b = backend_new("");
	const char *field;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h1\",\"weight\":5,"
	    "\"doveadm\":{\"api_key\":\"k1\"}}", 1, &field), 0);
	/* Valid fields first, a bad one last: none may stick. */
	assert_int_equal(apply(b, "{\"host\":\"h2\",\"weight\":7,"
	    "\"doveadm\":{\"api_key\":\"k2\"},\"state\":\"bogus\"}", 0,
	    &field), -1);
	assert_string_equal(b->host, "h1");
	assert_int_equal(b->weight, 5);
	assert_string_equal(b->doveadm_key, "k1");
	assert_int_equal(apply(b, "{\"host\":\"h2\",\"weight\":7}", 0, &field), 0);
	assert_string_equal(b->host, "h2");
	assert_string_equal(b->doveadm_key, "k1");
	backend_free(b);
}

static void
test_json_hides_key(void **state)
{
	struct backend *b = backend_new("");
	const char *field;
	json_t *o;
	char *text;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h\",\"doveadm\":"
	    "{\"api_key\":\"topsecretvalue\"}}", 1, &field), 0);
	o = backend_to_json(b);
	text = json_dumps(o, 0);
	assert_null(strstr(text, "topsecretvalue"));
	assert_true(json_is_true(json_object_get(json_object_get(o, "doveadm"),
	    "api_key_set")));
	/* GET output can be sent back as a PATCH body. */
	json_object_del(o, "name");
	assert_int_equal(backend_apply_json(b, o, 0, &field, text, 1), 0);
	assert_string_equal(b->doveadm_key, "topsecretvalue");
	free(text);
	json_decref(o);
	backend_free(b);
}

/* The "tls" of a backend's JSON form, "(none)" when it has none. */
static const char *
json_tls(json_t *o)
{
	const char *s = json_string_value(json_object_get(o, "tls"));

	return s != NULL ? s : "(none)";
}

static void
test_tls_field(void **state)
{
	struct backend *b = backend_new("");
	const char *field;
	json_t *o;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h\"}", 1,
	    &field), 0);
	o = backend_to_json(b);
	assert_string_equal(json_tls(o), "no");
	json_decref(o);
	assert_int_equal(apply(b, "{\"tls\":\"starttls\"}", 0, &field), 0);
	o = backend_to_json(b);
	assert_string_equal(json_tls(o), "starttls");
	json_decref(o);
	assert_int_equal(apply(b, "{\"tls\":\"yes\"}", 0, &field), 0);
	/* A bad value names the field and keeps what was there. */
	assert_int_equal(apply(b, "{\"tls\":\"maybe\"}", 0, &field), -1);
	assert_string_equal(field, "tls");
	assert_int_equal(apply(b, "{\"tls\":true}", 0, &field), -1);
	assert_string_equal(field, "tls");
	o = backend_to_json(b);
	assert_string_equal(json_tls(o), "yes");
	/* GET output goes back as a PATCH body with tls in it. */
	json_object_del(o, "name");
	assert_int_equal(backend_apply_json(b, o, 0, &field, (char [8]){ 0 }, 8),
	    0);
	json_decref(o);
	o = backend_to_json(b);
	assert_string_equal(json_tls(o), "yes");
	json_decref(o);
	backend_free(b);
}

/* The "probe" object of a backend's JSON form. */
static json_t *
json_probe(json_t *o)
{
	json_t *p = json_object_get(o, "probe");

	assert_true(json_is_object(p));
	return p;
}

static void
test_probe_account(void **state)
{
	struct backend *b = backend_new("");
	const char *field;
	json_t *o, *p;
	char *text;

	(void)state;
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h\"}", 1,
	    &field), 0);
	o = backend_to_json(b);
	p = json_probe(o);
	assert_string_equal(json_string_value(json_object_get(p, "user")), "");
	assert_true(json_is_false(json_object_get(p, "password_set")));
	json_decref(o);

	assert_int_equal(apply(b, "{\"probe\":{\"user\":\"probe@example.com\","
	    "\"password\":\"Pr0be-pw-never-shown\"}}", 0, &field), 0);
	o = backend_to_json(b);
	text = json_dumps(o, 0);
	assert_null(strstr(text, "Pr0be-pw-never-shown"));
	free(text);
	p = json_probe(o);
	assert_string_equal(json_string_value(json_object_get(p, "user")),
	    "probe@example.com");
	assert_true(json_is_true(json_object_get(p, "password_set")));
	assert_null(json_object_get(p, "password"));

	/* GET output sent back as a PATCH keeps the password it hides. */
	json_object_del(o, "name");
	assert_int_equal(backend_apply_json(b, o, 0, &field,
	    (char [8]){ 0 }, 8), 0);
	json_decref(o);
	assert_string_equal(b->probe_user, "probe@example.com");
	assert_string_equal(b->probe_pass, "Pr0be-pw-never-shown");

	/* A new user alone keeps the password; a new password alone keeps
	 * the user. */
	assert_int_equal(apply(b, "{\"probe\":{\"user\":\"p2\"}}", 0, &field),
	    0);
	assert_string_equal(b->probe_user, "p2");
	assert_string_equal(b->probe_pass, "Pr0be-pw-never-shown");
	assert_int_equal(apply(b, "{\"probe\":{\"password\":\"new pw \\\"q\\\"\"}}",
	    0, &field), 0);
	assert_string_equal(b->probe_user, "p2");
	assert_string_equal(b->probe_pass, "new pw \"q\"");

	/* Empty strings clear the account. */
	assert_int_equal(apply(b, "{\"probe\":{\"user\":\"\",\"password\":\"\"}}",
	    0, &field), 0);
	assert_null(b->probe_user);
	assert_null(b->probe_pass);
	o = backend_to_json(b);
	p = json_probe(o);
	assert_string_equal(json_string_value(json_object_get(p, "user")), "");
	assert_true(json_is_false(json_object_get(p, "password_set")));
	/* ... and that GET body goes back as a PATCH, too. */
	json_object_del(o, "name");
	assert_int_equal(backend_apply_json(b, o, 0, &field,
	    (char [8]){ 0 }, 8), 0);
	json_decref(o);
	assert_null(b->probe_user);
	assert_null(b->probe_pass);

	/* The copy owns its strings. */
	assert_int_equal(apply(b, "{\"probe\":{\"user\":\"u\",\"password\":"
	    "\"pw\"}}", 0, &field), 0);
	{
		struct backend *c = backend_dup(b);

		assert_ptr_not_equal(c->probe_user, b->probe_user);
		assert_ptr_not_equal(c->probe_pass, b->probe_pass);
		assert_string_equal(c->probe_pass, "pw");
		backend_free(c);
	}
	backend_free(b);
}

static void
test_probe_refused(void **state)
{
	static const struct { const char *json, *field; } cases[] = {
		{ "{\"probe\":\"u:pw\"}", "probe" },
		{ "{\"probe\":{\"user\":5,\"password\":\"pw\"}}", "probe.user" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":true}}",
		    "probe.password" },
		{ "{\"probe\":{\"user\":\"u\"}}", "probe.password" },
		{ "{\"probe\":{\"password\":\"pw-only-given\"}}", "probe.user" },
		{ "{\"probe\":{\"user\":\"u\\r\\nA1 X\",\"password\":\"pw\"}}",
		    "probe.user" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"pw\\nwith-lf\"}}",
		    "probe.password" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"pw\\rwith-cr\"}}",
		    "probe.password" },
		{ "{\"probe\":{\"user\":\"u\\u0000x\",\"password\":\"pw\"}}",
		    "probe.user" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"pw\\u0000nul\"}}",
		    "probe.password" },
		{ "{\"probe\":{\"user\":\"\",\"password\":\"pw-without-user\"}}",
		    "probe.user" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"\"}}",
		    "probe.password" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"pw\","
		    "\"password_set\":\"yes\"}}", "probe.password_set" },
		{ "{\"probe\":{\"user\":\"u\",\"password\":\"pw\",\"x\":1}}",
		    "probe" },
	};
	struct backend *b;
	const char *field;
	json_error_t jerr;
	json_t *obj;
	char err[256], json[1400], big[1100];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = backend_new("");
		assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h\"}",
		    1, &field), 0);
		field = NULL;
		obj = json_loads(cases[i].json, JSON_ALLOW_NUL, &jerr);
		assert_non_null(obj);
		if (backend_apply_json(b, obj, 0, &field, err,
		    sizeof(err)) != -1)
			fail_msg("accepted: %s", cases[i].json);
		json_decref(obj);
		assert_non_null(field);
		assert_string_equal(field, cases[i].field);
		/* The error never quotes a password back. */
		assert_null(strstr(err, "pw"));
		assert_null(b->probe_user);
		assert_null(b->probe_pass);
		backend_free(b);
	}

	/* Lengths: user 1-255 bytes, password 1-1024 bytes. */
	b = backend_new("");
	assert_int_equal(apply(b, "{\"name\":\"b1\",\"host\":\"h\"}", 1,
	    &field), 0);
	memset(big, 'u', 255);
	big[255] = '\0';
	snprintf(json, sizeof(json), "{\"probe\":{\"user\":\"%s\","
	    "\"password\":\"pw\"}}", big);
	assert_int_equal(apply(b, json, 0, &field), 0);
	assert_int_equal(strlen(b->probe_user), 255);
	big[255] = 'u';
	big[256] = '\0';
	snprintf(json, sizeof(json), "{\"probe\":{\"user\":\"%s\","
	    "\"password\":\"pw\"}}", big);
	assert_int_equal(apply(b, json, 0, &field), -1);
	assert_string_equal(field, "probe.user");
	memset(big, 'p', 1024);
	big[1024] = '\0';
	snprintf(json, sizeof(json), "{\"probe\":{\"user\":\"u\","
	    "\"password\":\"%s\"}}", big);
	assert_int_equal(apply(b, json, 0, &field), 0);
	assert_int_equal(strlen(b->probe_pass), 1024);
	big[1024] = 'p';
	big[1025] = '\0';
	snprintf(json, sizeof(json), "{\"probe\":{\"user\":\"u\","
	    "\"password\":\"%s\"}}", big);
	assert_int_equal(apply(b, json, 0, &field), -1);
	assert_string_equal(field, "probe.password");
	/* The refused change left the account as it was. */
	assert_string_equal(b->probe_user, "u");
	assert_int_equal(strlen(b->probe_pass), 1024);
	backend_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_full),
		cmocka_unit_test(test_hostip_defaults_to_ip_host),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_name_length),
		cmocka_unit_test(test_rejected_patch_changes_nothing),
		cmocka_unit_test(test_json_hides_key),
		cmocka_unit_test(test_tls_field),
		cmocka_unit_test(test_probe_account),
		cmocka_unit_test(test_probe_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
