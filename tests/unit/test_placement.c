/* test_placement.c: weighted rendezvous hashing: shares, determinism,
 * stability when backends come and go, eligibility. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "placement.h"

#define NUSERS	100000

static struct backend *
mk(const char *name, unsigned weight)
{
	struct backend *b = backend_new(name);

	b->weight = weight;
	return b;
}

static long
primary(struct backend **bs, size_t n, const char *user)
{
	long out[1];

	if (placement_rank(user, strlen(user), "", bs, n, -1, out, 1) != 1)
		return -1;
	return out[0];
}

static void
free_all(struct backend **bs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		backend_free(bs[i]);
}

static void
test_weight_shares(void **state)
{
	struct backend *bs[3] = { mk("b1", 100), mk("b2", 200), mk("b3", 300) };
	size_t counts[3] = { 0, 0, 0 }, i;
	char user[64];

	(void)state;
	for (i = 0; i < NUSERS; i++) {
		snprintf(user, sizeof(user), "user%zu@example.com", i);
		counts[primary(bs, 3, user)]++;
	}
	for (i = 0; i < 3; i++) {
		double want = NUSERS * (double)bs[i]->weight / 600.0;
		double got = (double)counts[i];

		print_message("%s weight %u: %zu users (want %.0f)\n",
		    bs[i]->name, bs[i]->weight, counts[i], want);
		assert_true(fabs(got - want) / want < 0.05);
	}
	free_all(bs, 3);
}

static void
test_equal_weights_even(void **state)
{
	struct backend *bs[5] = { mk("a", 100), mk("b", 100), mk("c", 100),
	    mk("d", 100), mk("e", 100) };
	size_t counts[5] = { 0 }, i;
	char user[64];

	(void)state;
	for (i = 0; i < NUSERS; i++) {
		snprintf(user, sizeof(user), "u%zu", i);
		counts[primary(bs, 5, user)]++;
	}
	for (i = 0; i < 5; i++)
		assert_true(fabs((double)counts[i] - NUSERS / 5.0) /
		    (NUSERS / 5.0) < 0.05);
	free_all(bs, 5);
}

/*
 * Golden values, computed independently (a few lines of Python with libm's
 * log): if these change, every deployed map would reshuffle.
 */
static void
test_hash_is_stable(void **state)
{
	static const struct { const char *user, *want; } golden[] = {
		{ "alice", "b3" }, { "bob", "b3" }, { "carol", "b1" },
		{ "dave", "b3" }, { "eve", "b2" }, { "frank", "b1" },
		{ "grace", "b2" }, { "heidi", "b3" },
	};
	struct backend *bs[4] = { mk("b1", 100), mk("b2", 200), mk("b3", 300),
	    mk("b4", 100) };
	size_t i;

	(void)state;
	assert_true(placement_hash("alice", 5, "b1") ==
	    UINT64_C(0x1c7613d141bdc59c));
	assert_true(placement_hash("ab", 2, "c") != placement_hash("a", 1, "bc"));
	for (i = 0; i < sizeof(golden) / sizeof(golden[0]); i++)
		assert_string_equal(bs[primary(bs, 4, golden[i].user)]->name,
		    golden[i].want);
	free_all(bs, 4);
}

static void
test_slot_order_irrelevant(void **state)
{
	struct backend *fwd[4] = { mk("b1", 100), mk("b2", 50), mk("b3", 300),
	    mk("b4", 100) };
	struct backend *rev[4] = { fwd[3], fwd[2], fwd[1], fwd[0] };
	char user[64];
	size_t i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		snprintf(user, sizeof(user), "someone-%zu", i);
		assert_string_equal(fwd[primary(fwd, 4, user)]->name,
		    rev[primary(rev, 4, user)]->name);
	}
	free_all(fwd, 4);
}

/* The logarithm is our own (for bit-identical results everywhere); it must
 * agree with libm to within rounding. */
static void
test_score_matches_libm(void **state)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL;
	size_t i;

	(void)state;
	for (i = 0; i < 100000; i++) {
		double x, want, got;

		h ^= h << 13;
		h ^= h >> 7;
		h ^= h << 17;
		x = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
		want = -100.0 / log(x);
		got = placement_score(h, 100);
		assert_true(fabs(got - want) <= fabs(want) * 1e-13);
	}
	assert_true(placement_score(h, 0) == 0.0);
}

static void
test_fourth_backend_takes_a_quarter(void **state)
{
	struct backend *bs[4] = { mk("b1", 100), mk("b2", 100), mk("b3", 100),
	    mk("b4", 100) };
	size_t changed = 0, i;
	long before, after;
	char user[64];

	(void)state;
	for (i = 0; i < NUSERS; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		before = primary(bs, 3, user);
		after = primary(bs, 4, user);
		if (before != after) {
			/* Only ever to the newcomer: no reshuffle among the rest. */
			assert_int_equal(after, 3);
			changed++;
		}
	}
	print_message("4th backend: %zu of %d hashed choices changed\n",
	    changed, NUSERS);
	assert_true(changed > NUSERS * 0.22 && changed < NUSERS * 0.28);
	free_all(bs, 4);
}

static void
test_eligibility(void **state)
{
	struct backend *bs[5] = { mk("up", 100), mk("drain", 100),
	    mk("down", 100), mk("zero", 0), mk("other", 100) };
	long out[5];
	size_t n, i;
	char user[32];

	(void)state;
	bs[1]->state = BACKEND_DRAIN;
	bs[2]->state = BACKEND_DOWN;
	snprintf(bs[4]->tag, sizeof(bs[4]->tag), "pool2");
	for (i = 0; i < 1000; i++) {
		snprintf(user, sizeof(user), "u%zu", i);
		n = placement_rank(user, strlen(user), "", bs, 5, -1, out, 5);
		assert_int_equal(n, 1);
		assert_int_equal(out[0], 0);
		n = placement_rank(user, strlen(user), "pool2", bs, 5, -1, out, 5);
		assert_int_equal(n, 1);
		assert_int_equal(out[0], 4);
		n = placement_rank(user, strlen(user), "", bs, 5, 0, out, 5);
		assert_int_equal(n, 0);
		n = placement_rank(user, strlen(user), "nosuchtag", bs, 5, -1,
		    out, 5);
		assert_int_equal(n, 0);
	}
	free_all(bs, 5);
}

static void
test_replica_differs_and_null_slots(void **state)
{
	struct backend *bs[4] = { mk("b1", 100), NULL, mk("b3", 100),
	    mk("b4", 100) };
	long out[3];
	char user[32];
	size_t i, n;

	(void)state;
	for (i = 0; i < 5000; i++) {
		snprintf(user, sizeof(user), "r%zu", i);
		n = placement_rank(user, strlen(user), "", bs, 4, -1, out, 3);
		assert_int_equal(n, 3);
		assert_true(out[0] != out[1] && out[1] != out[2] &&
		    out[0] != out[2]);
		assert_true(out[0] != 1 && out[1] != 1 && out[2] != 1);
		/* Asking for two gives the first two of the full ranking. */
		long two[2];
		assert_int_equal(placement_rank(user, strlen(user), "", bs, 4,
		    -1, two, 2), 2);
		assert_int_equal(two[0], out[0]);
		assert_int_equal(two[1], out[1]);
	}
	backend_free(bs[0]);
	backend_free(bs[2]);
	backend_free(bs[3]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weight_shares),
		cmocka_unit_test(test_equal_weights_even),
		cmocka_unit_test(test_hash_is_stable),
		cmocka_unit_test(test_slot_order_irrelevant),
		cmocka_unit_test(test_score_matches_libm),
		cmocka_unit_test(test_fourth_backend_takes_a_quarter),
		cmocka_unit_test(test_eligibility),
		cmocka_unit_test(test_replica_differs_and_null_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
