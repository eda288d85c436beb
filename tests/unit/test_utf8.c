/*
 * test_utf8.c: what counts as a user name's UTF-8, and how text that is not
 * UTF-8 is still shown as valid JSON (U+FFFD) and paged exactly (hex).
 */
#include <event2/buffer.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "util.h"

static void
test_valid(void **state)
{
	static const char *good[] = {
		"alice", "j\xc3\xb6rg", "\xe7\x94\xa8\xe6\x88\xb7",
		"\xf0\x9f\x90\xa6", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf",
		"\xed\x9f\xbf", "\xe0\xa0\x80",
	};
	static const char *bad[] = {
		"\xff", "\xfe", "a\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x9f\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
		"\xf5\x80\x80\x80", "\xe2\x82", "\xf0\x9f\x90", "caf\xe9",
		"\xc3", "\xc3\x28",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!valid_utf8(good[i], strlen(good[i])))
			fail_msg("good[%zu] refused", i);
		assert_true(valid_username(good[i], strlen(good[i])));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (valid_utf8(bad[i], strlen(bad[i])))
			fail_msg("bad[%zu] accepted", i);
		assert_false(valid_username(bad[i], strlen(bad[i])));
	}
	/* A sequence cut short by the end of the buffer. */
	assert_int_equal(utf8_seq("\xc3\xb6", 1), 0);
	assert_int_equal(utf8_seq("\xc3\xb6", 2), 2);
}

static void
test_lossy_json(void **state)
{
	struct evbuffer *buf = evbuffer_new();
	json_t *j;
	char *out;
	size_t len;

	(void)state;
	http_json_str(buf, "a\xff" "b\xc3\xb6\"\x01");
	len = evbuffer_get_length(buf);
	out = (char *)evbuffer_pullup(buf, -1);
	assert_int_equal(len, strlen("\"a\\ufffdb\xc3\xb6\\\"\\u0001\""));
	assert_memory_equal(out, "\"a\\ufffdb\xc3\xb6\\\"\\u0001\"", len);
	evbuffer_free(buf);

	j = http_json_text("m\xfe\xfftwo");
	assert_non_null(j);
	assert_string_equal(json_string_value(j),
	    "m\xef\xbf\xbd\xef\xbf\xbdtwo");
	json_decref(j);
	j = http_json_text("ok");
	assert_string_equal(json_string_value(j), "ok");
	json_decref(j);
}

static void
test_hex(void **state)
{
	char hex[64], back[32];

	(void)state;
	http_hex("m\xff", 2, hex);
	assert_string_equal(hex, "6dff");
	assert_int_equal(http_unhex(hex, back, sizeof(back)), 2);
	assert_memory_equal(back, "m\xff", 3);
	assert_int_equal(http_unhex("6DFF", back, sizeof(back)), 2);
	assert_int_equal(http_unhex("", back, sizeof(back)), -1);
	assert_int_equal(http_unhex("6d0", back, sizeof(back)), -1);
	assert_int_equal(http_unhex("6d00", back, sizeof(back)), -1);
	assert_int_equal(http_unhex("zz", back, sizeof(back)), -1);
	assert_int_equal(http_unhex("6162636465", back, 5), -1);
	assert_int_equal(http_unhex("61626364", back, 5), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_lossy_json),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
