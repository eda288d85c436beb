/*
 * test_hist.c: the latency histogram must report any value from 1 us to
 * 60 s within 1%, and percentiles of a known distribution where they are.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hist.h"

static void
within_1pct(uint64_t got, uint64_t want)
{
	uint64_t diff = got > want ? got - want : want - got;

	if (diff * 100 > want) {
		fail_msg("got %llu, want %llu (off by more than 1%%)",
		    (unsigned long long)got, (unsigned long long)want);
	}
}

static void
test_every_magnitude(void **state)
{
	uint64_t v;

	(void)state;
	for (v = 1; v <= HIST_MAX_US; v = v + v / 97 + 1)
		within_1pct(hist_repr(v), v);
	within_1pct(hist_repr(HIST_MAX_US), HIST_MAX_US);
	/* Exact below 256 us. */
	for (v = 0; v < 256; v++)
		assert_int_equal(hist_repr(v), v);
}

static void
test_clamped_above_range(void **state)
{
	struct hist h;

	(void)state;
	hist_init(&h);
	within_1pct(hist_repr(3600000000ULL), HIST_MAX_US);
	hist_add(&h, 3600000000ULL);
	/* max stays exact even when the bucket is clamped */
	assert_int_equal(h.max, 3600000000ULL);
	assert_int_equal(hist_quantile(&h, 1.0), 3600000000ULL);
}

static void
test_uniform_quantiles(void **state)
{
	struct hist h;
	uint64_t v;

	(void)state;
	hist_init(&h);
	for (v = 1; v <= 100000; v++)
		hist_add(&h, v);
	within_1pct(hist_quantile(&h, 0.50), 50000);
	within_1pct(hist_quantile(&h, 0.99), 99000);
	within_1pct(hist_quantile(&h, 0.999), 99900);
	assert_int_equal(hist_quantile(&h, 1.0), 100000);
	assert_int_equal(h.min, 1);
	assert_int_equal(h.n, 100000);
}

static void
test_skewed_quantiles(void **state)
{
	struct hist h;
	int i;

	(void)state;
	hist_init(&h);
	/* 990 fast logins at 2.5 ms, 10 slow ones at 1.2 s */
	for (i = 0; i < 990; i++)
		hist_add(&h, 2500);
	for (i = 0; i < 10; i++)
		hist_add(&h, 1200000);
	within_1pct(hist_quantile(&h, 0.50), 2500);
	within_1pct(hist_quantile(&h, 0.99), 2500);
	within_1pct(hist_quantile(&h, 0.995), 1200000);
	assert_int_equal(hist_quantile(&h, 1.0), 1200000);
}

static void
test_empty(void **state)
{
	struct hist h;

	(void)state;
	hist_init(&h);
	assert_int_equal(hist_quantile(&h, 0.5), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_magnitude),
		cmocka_unit_test(test_clamped_above_range),
		cmocka_unit_test(test_uniform_quantiles),
		cmocka_unit_test(test_skewed_quantiles),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
