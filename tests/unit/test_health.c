/*
 * test_health.c: how probe rounds become verdicts (health_apply): fall
 * failed rounds in a row make a backend failed, rise passed rounds in a
 * row bring it back, a passed round ends "failing" at once, and a verdict
 * never flaps on rounds that alternate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "health.h"

/* Feed rounds ("+" passed, "-" failed); returns the states after each. */
static void
feed(struct health_count *hc, const char *rounds, unsigned rise,
    unsigned fall, enum health_state *out)
{
	size_t i;

	for (i = 0; rounds[i] != '\0'; i++) {
		health_apply(hc, rounds[i] == '+', rise, fall);
		out[i] = hc->state;
	}
}

#define OK	HEALTH_OK
#define FG	HEALTH_FAILING
#define FD	HEALTH_FAILED

static void
test_fall_and_rise(void **state)
{
	struct health_count hc = { HEALTH_OK, 0, 0 };
	enum health_state got[16];
	static const enum health_state want[] = {
		OK, FG, FD, FD, FD, FD, OK, OK,
	};

	(void)state;
	feed(&hc, "+--" "-++" "++", 3, 2, got);
	assert_memory_equal(got, want, sizeof(want));
}

static void
test_failing_recovers_at_once(void **state)
{
	struct health_count hc = { HEALTH_OK, 0, 0 };
	enum health_state got[16];
	static const enum health_state want[] = { FG, FG, OK, FG, OK };

	(void)state;
	feed(&hc, "--+-+", 2, 3, got);
	assert_memory_equal(got, want, sizeof(want));
}

static void
test_no_flapping(void **state)
{
	struct health_count hc = { HEALTH_FAILED, 0, 0 };
	enum health_state got[16];
	static const enum health_state want[] = { FD, FD, FD, FD, FD, FD, FD,
	    OK, OK };

	(void)state;
	/* Alternating rounds never rise a failed backend (rise 2); two
	 * passed rounds in a row do. */
	feed(&hc, "+-+-+-+" "++", 2, 2, got);
	assert_memory_equal(got, want, sizeof(want));
}

static void
test_fall_one_and_changes(void **state)
{
	struct health_count hc = { HEALTH_OK, 0, 0 };

	(void)state;
	assert_int_equal(health_apply(&hc, 1, 1, 1), 0);
	assert_int_equal(health_apply(&hc, 0, 1, 1), 1);
	assert_int_equal(hc.state, HEALTH_FAILED);
	assert_int_equal(health_apply(&hc, 0, 1, 1), 0);
	assert_int_equal(health_apply(&hc, 1, 1, 1), 1);
	assert_int_equal(hc.state, HEALTH_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fall_and_rise),
		cmocka_unit_test(test_failing_recovers_at_once),
		cmocka_unit_test(test_no_flapping),
		cmocka_unit_test(test_fall_one_and_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
