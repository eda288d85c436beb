/* test_proxy_json.c: admin input for proxies: the url and key are required
 * and checked, errors name the field, a rejected change leaves the proxy
 * untouched, a GET body goes back as a PATCH, and the key never appears in
 * the JSON output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy.h"

#define URL	"http://127.0.0.21:8080/doveadm/v1"

static int
apply(struct proxy *p, const char *json, int creating, const char **field)
{
	json_error_t jerr;
	json_t *obj = json_loads(json, 0, &jerr);
	char err[256];
	int rv;

	assert_non_null(obj);
	rv = proxy_apply_json(p, obj, creating, field, err, sizeof(err));
	/* Whatever the outcome, the message never quotes a key. */
	assert_null(strstr(err, "sekrit"));
	json_decref(obj);
	return rv;
}

/* A proxy as a POST of the given url and key creates it. */
static struct proxy *
created(void)
{
	struct proxy *p = proxy_new("");
	const char *field;

	assert_int_equal(apply(p, "{\"name\":\"p1\",\"doveadm\":{\"url\":\""
	    URL "\",\"api_key\":\"sekrit\"}}", 1, &field), 0);
	return p;
}

static void
test_create(void **state)
{
	struct proxy *p = created();

	(void)state;
	assert_string_equal(p->name, "p1");
	assert_string_equal(p->doveadm_url, URL);
	assert_string_equal(p->doveadm_key, "sekrit");
	proxy_free(p);
}

static void
test_errors_name_the_field(void **state)
{
	static const struct {
		const char	*json;
		int		 creating;
		const char	*field;
	} cases[] = {
		{ "[]", 1, "body" },
		{ "{\"doveadm\":{\"url\":\"" URL "\",\"api_key\":\"k\"}}", 1,
		  "name" },
		{ "{\"name\":\".p\",\"doveadm\":{\"url\":\"" URL "\","
		  "\"api_key\":\"k\"}}", 1, "name" },
		{ "{\"name\":7}", 1, "name" },
		{ "{\"name\":\"p1\"}", 1, "doveadm.url" },
		{ "{\"name\":\"p1\",\"doveadm\":{\"api_key\":\"k\"}}", 1,
		  "doveadm.url" },
		{ "{\"name\":\"p1\",\"doveadm\":{\"url\":\"" URL "\"}}", 1,
		  "doveadm.api_key" },
		{ "{\"name\":\"p1\",\"doveadm\":{\"url\":\"gopher://x/\","
		  "\"api_key\":\"k\"}}", 1, "doveadm.url" },
		{ "{\"name\":\"p1\",\"doveadm\":{\"url\":\"http://a b/\","
		  "\"api_key\":\"k\"}}", 1, "doveadm.url" },
		{ "{\"name\":\"p1\",\"doveadm\":[]}", 1, "doveadm" },
		{ "{\"name\":\"p1\",\"doveadm\":{\"user\":\"x\"}}", 1,
		  "doveadm" },
		{ "{\"name\":\"p1\",\"port\":1}", 1, "port" },
		{ "{\"doveadm\":{\"url\":\"\"}}", 0, "doveadm.url" },
		{ "{\"doveadm\":{\"api_key\":\"\"}}", 0, "doveadm.api_key" },
		{ "{\"doveadm\":{\"api_key\":null}}", 0, "doveadm.api_key" },
		{ "{\"doveadm\":{\"api_key_set\":\"yes\"}}", 0,
		  "doveadm.api_key_set" },
		{ "{\"name\":\"p2\"}", 0, "name" },
		{ "{\"created\":\"x\",\"bogus\":1}", 0, "bogus" },
	};
	struct proxy *p;
	const char *field;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = cases[i].creating ? proxy_new("") : created();
		field = NULL;
		if (apply(p, cases[i].json, cases[i].creating, &field) != -1)
			fail_msg("accepted: %s", cases[i].json);
		assert_non_null(field);
		if (strcmp(field, cases[i].field) != 0)
			fail_msg("%s: field %s, want %s", cases[i].json, field,
			    cases[i].field);
		proxy_free(p);
	}
}

static void
test_key_length(void **state)
{
	struct proxy *p = created();
	const char *field;
	char *json;
	size_t n;

	(void)state;
	for (n = PROXY_KEY_MAX; n <= PROXY_KEY_MAX + 1; n++) {
		json = malloc(n + 64);
		assert_non_null(json);
		strcpy(json, "{\"doveadm\":{\"api_key\":\"");
		memset(json + strlen(json), 'k', n);
		strcpy(json + strlen("{\"doveadm\":{\"api_key\":\"") + n, "\"}}");
		assert_int_equal(apply(p, json, 0, &field),
		    n <= PROXY_KEY_MAX ? 0 : -1);
		free(json);
	}
	assert_string_equal(field, "doveadm.api_key");
	assert_int_equal(strlen(p->doveadm_key), PROXY_KEY_MAX);
	proxy_free(p);
}

static void
test_rejected_patch_changes_nothing(void **state)
{
	struct proxy *p = created();
	const char *field;

	(void)state;
	/* The url is good and comes first; the key after it is not. */
	assert_int_equal(apply(p, "{\"doveadm\":{\"url\":\"https://other/\","
	    "\"api_key\":5}}", 0, &field), -1);
	assert_string_equal(field, "doveadm.api_key");
	assert_string_equal(p->doveadm_url, URL);
	assert_string_equal(p->doveadm_key, "sekrit");
	assert_string_equal(p->name, "p1");
	proxy_free(p);
}

static void
test_patch_and_get_body(void **state)
{
	struct proxy *p = created();
	const char *field;
	char err[256];
	json_t *o;

	(void)state;
	p->created = 1700000001;
	p->updated = 1700000002;
	assert_int_equal(apply(p, "{\"doveadm\":{\"url\":\"https://p/x\"}}", 0,
	    &field), 0);
	assert_string_equal(p->doveadm_url, "https://p/x");
	assert_string_equal(p->doveadm_key, "sekrit");

	/* What GET shows goes back unchanged as a PATCH. */
	o = proxy_to_json(p);
	assert_int_equal(proxy_apply_json(p, o, 0, &field, err, sizeof(err)),
	    0);
	json_decref(o);
	assert_string_equal(p->name, "p1");
	assert_string_equal(p->doveadm_url, "https://p/x");
	assert_string_equal(p->doveadm_key, "sekrit");
	assert_int_equal(p->created, 1700000001);
	proxy_free(p);
}

static void
test_json_hides_key(void **state)
{
	struct proxy *p = created();
	json_t *o, *d;
	char *text;

	(void)state;
	p->created = 1700000001;
	p->updated = 1700000002;
	o = proxy_to_json(p);
	text = json_dumps(o, JSON_COMPACT);
	assert_null(strstr(text, "sekrit"));
	free(text);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "p1");
	d = json_object_get(o, "doveadm");
	assert_string_equal(json_string_value(json_object_get(d, "url")), URL);
	assert_true(json_is_true(json_object_get(d, "api_key_set")));
	assert_null(json_object_get(d, "api_key"));
	assert_int_equal(json_integer_value(json_object_get(o, "created")),
	    1700000001);
	assert_int_equal(json_integer_value(json_object_get(o, "updated")),
	    1700000002);
	json_decref(o);
	proxy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_key_length),
		cmocka_unit_test(test_rejected_patch_changes_nothing),
		cmocka_unit_test(test_patch_and_get_body),
		cmocka_unit_test(test_json_hides_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
