/* test_umap.c: the in-memory user map: growth, deletion with backward
 * shift (no entry lost from a probe chain), walks that remove. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "umap.h"

#define N	200000

static void
key(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "user%zu@example.org", i);
}

static void
test_put_get_grow(void **state)
{
	struct umap *m = umap_new(0);
	struct umap_entry *e;
	char k[64];
	size_t i;
	int created;

	(void)state;
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		e = umap_put(m, k, strlen(k), &created);
		assert_non_null(e);
		assert_true(created);
		e->backend = (uint16_t)(i % 7);
	}
	assert_int_equal(umap_count(m), N);
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		e = umap_get(m, k, strlen(k));
		assert_non_null(e);
		assert_int_equal(e->backend, i % 7);
		assert_memory_equal(e->key, k, strlen(k) + 1);
		assert_ptr_equal(umap_put(m, k, strlen(k), &created), e);
		assert_false(created);
	}
	assert_null(umap_get(m, "nobody", 6));
	assert_null(umap_put(m, "", 0, &created));
	umap_free(m);
}

static void
test_delete_keeps_chains(void **state)
{
	struct umap *m = umap_new(0);
	char k[64];
	size_t i;
	int created;

	(void)state;
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		umap_put(m, k, strlen(k), &created);
	}
	for (i = 0; i < N; i += 2) {
		key(i, k, sizeof(k));
		assert_int_equal(umap_del(m, k, strlen(k)), 1);
		assert_int_equal(umap_del(m, k, strlen(k)), 0);
	}
	assert_int_equal(umap_count(m), N / 2);
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		if (i % 2)
			assert_non_null(umap_get(m, k, strlen(k)));
		else
			assert_null(umap_get(m, k, strlen(k)));
	}
	umap_free(m);
}

static int
count_one(struct umap_entry *e, void *arg)
{
	((size_t *)arg)[e->backend]++;
	return 0;
}

static void
count_backends(struct umap *m, size_t *counts)
{
	memset(counts, 0, 8 * sizeof(*counts));
	umap_walk(m, count_one, counts);
}

static int
drop_backend3(struct umap_entry *e, void *arg)
{
	(*(size_t *)arg)++;
	return e->backend == 3 ? 1 : 0;
}

static void
test_walk_remove_and_count(void **state)
{
	struct umap *m = umap_new(1000);
	struct umap_entry *e;
	size_t counts[8], i, visits = 0;
	char k[64];
	int created;

	(void)state;
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		e = umap_put(m, k, strlen(k), &created);
		e->backend = (uint16_t)(i % 8);
	}
	count_backends(m, counts);
	for (i = 0; i < 8; i++)
		assert_int_equal(counts[i], N / 8);
	umap_walk(m, drop_backend3, &visits);
	assert_true(visits >= N);
	assert_int_equal(umap_count(m), N - N / 8);
	count_backends(m, counts);
	assert_int_equal(counts[3], 0);
	assert_int_equal(counts[4], N / 8);
	for (i = 0; i < N; i++) {
		key(i, k, sizeof(k));
		e = umap_get(m, k, strlen(k));
		if (i % 8 == 3)
			assert_null(e);
		else
			assert_non_null(e);
	}
	umap_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_grow),
		cmocka_unit_test(test_delete_keeps_chains),
		cmocka_unit_test(test_walk_remove_and_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
