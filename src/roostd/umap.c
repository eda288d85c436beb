/*
 * umap.c: open addressing with linear probing over an array of entry
 * pointers; backward-shift deletion keeps probe chains short without
 * tombstones.  The table doubles at 70% load.
 */
#include <stdlib.h>
#include <string.h>

#include "umap.h"
#include "xmalloc.h"

struct umap {
	struct umap_entry	**slots;
	size_t			  mask;		/* nslots - 1 */
	size_t			  count;
};

uint32_t
umap_hash(const char *key, size_t len)
{
	/* FNV-1a, then a finalizer: short keys spread over all bits. */
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

struct umap *
umap_new(size_t expected)
{
	struct umap *m;
	size_t n = 1024;

	while (n * 7 / 10 < expected)
		n <<= 1;
	m = xcalloc(1, sizeof(*m));
	m->slots = xcalloc(n, sizeof(*m->slots));
	m->mask = n - 1;
	return m;
}

void
umap_free(struct umap *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i <= m->mask; i++)
		free(m->slots[i]);
	free(m->slots);
	free(m);
}

size_t
umap_count(const struct umap *m)
{
	return m->count;
}

static size_t
umap_find(const struct umap *m, const char *key, size_t len, uint32_t h)
{
	size_t i = h & m->mask;
	struct umap_entry *e;

	while ((e = m->slots[i]) != NULL) {
		if (e->hash == h && e->keylen == len &&
		    memcmp(e->key, key, len) == 0)
			return i;
		i = (i + 1) & m->mask;
	}
	return i;
}

struct umap_entry *
umap_get(const struct umap *m, const char *key, size_t len)
{
	if (len > 255)
		return NULL;
	return m->slots[umap_find(m, key, len, umap_hash(key, len))];
}

static void
umap_grow(struct umap *m)
{
	struct umap_entry **old = m->slots;
	size_t oldn = m->mask + 1, i, j;

	m->slots = xcalloc(oldn * 2, sizeof(*m->slots));
	m->mask = oldn * 2 - 1;
	for (i = 0; i < oldn; i++) {
		if (old[i] == NULL)
			continue;
		j = old[i]->hash & m->mask;
		while (m->slots[j] != NULL)
			j = (j + 1) & m->mask;
		m->slots[j] = old[i];
	}
	free(old);
}

struct umap_entry *
umap_put(struct umap *m, const char *key, size_t len, int *created)
{
	struct umap_entry *e;
	uint32_t h;
	size_t i;

	*created = 0;
	if (len == 0 || len > 255)
		return NULL;
	h = umap_hash(key, len);
	i = umap_find(m, key, len, h);
	if (m->slots[i] != NULL)
		return m->slots[i];
	if ((m->count + 1) * 10 > (m->mask + 1) * 7) {
		umap_grow(m);
		i = umap_find(m, key, len, h);
	}
	e = xcalloc(1, sizeof(*e) + len + 1);
	e->hash = h;
	e->backend = UMAP_NO_BACKEND;
	e->replica = UMAP_NO_BACKEND;
	e->keylen = (uint8_t)len;
	memcpy(e->key, key, len);
	m->slots[i] = e;
	m->count++;
	*created = 1;
	return e;
}

/* Remove slot i and pull later members of its probe chain back. */
static void
umap_remove_slot(struct umap *m, size_t i)
{
	size_t j, home;

	free(m->slots[i]);
	m->slots[i] = NULL;
	m->count--;
	j = i;
	for (;;) {
		j = (j + 1) & m->mask;
		if (m->slots[j] == NULL)
			break;
		home = m->slots[j]->hash & m->mask;
		/* Move j into the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			m->slots[i] = m->slots[j];
			m->slots[j] = NULL;
			i = j;
		}
	}
}

int
umap_del(struct umap *m, const char *key, size_t len)
{
	size_t i;

	if (len == 0 || len > 255)
		return 0;
	i = umap_find(m, key, len, umap_hash(key, len));
	if (m->slots[i] == NULL)
		return 0;
	umap_remove_slot(m, i);
	return 1;
}

void
umap_walk(struct umap *m, int (*cb)(struct umap_entry *, void *), void *arg)
{
	size_t i = 0;
	int r;

	while (i <= m->mask) {
		if (m->slots[i] == NULL) {
			i++;
			continue;
		}
		r = cb(m->slots[i], arg);
		if (r == -1)
			return;
		if (r == 1) {
			/* The shift may pull an unvisited entry into i. */
			umap_remove_slot(m, i);
			continue;
		}
		i++;
	}
}

size_t
umap_slots(const struct umap *m)
{
	return m->mask + 1;
}

size_t
umap_scan(struct umap *m, size_t *cursor, size_t budget,
    int (*cb)(struct umap_entry *, void *), void *arg)
{
	size_t i = *cursor & m->mask, done = 0;

	while (done < budget && done <= m->mask) {
		if (m->slots[i] != NULL && cb(m->slots[i], arg) == -1)
			break;
		i = (i + 1) & m->mask;
		done++;
	}
	*cursor = i;
	return done;
}
