/*
 * store_copy.h: the offline copy of a whole store into another, empty one
 * (roostd -C FROM TO): SQLite into PostgreSQL when a site moves to the
 * shared store, and back.
 */
#ifndef ROOST_STORE_COPY_H
#define ROOST_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

/* The tables of a store, in the order a copy writes them. */
enum store_table {
	ST_BACKENDS,
	ST_PROXIES,
	ST_HEALTH,
	ST_USERS,
	ST_REPL,
	ST_MOVES,
	ST_JOBS,
	ST_AUDIT,
	ST_COUNT
};

extern const char *const store_table_names[ST_COUNT];

/* Per table the number of records and a sum of their hashes, every field
 * hashed: equal digests mean the same records, in whatever order. */
struct store_digest {
	uint64_t	 n[ST_COUNT];
	uint64_t	 sum[ST_COUNT];
};

/* Read every record of st; 0, or -1 with store_error(st) saying why. */
int	store_digest(struct store *st, struct store_digest *d);

/*
 * Copy every record of src into dst in one transaction of dst, after
 * checking that dst holds nothing; then read dst back and compare its
 * digest with src's.  *d gets src's digest.  0, or -1 with err saying why
 * (and nothing written to dst).
 */
int	store_copy(struct store *src, struct store *dst, struct store_digest *d,
	    char *err, size_t errlen);

/*
 * roostd -C: open both stores by their URLs (as the store setting), copy,
 * print the counts to out.  A sqlite: source must exist.  0, or -1 with
 * err saying why, never with a connection string in it.
 */
int	store_copy_urls(const char *from, const char *to, FILE *out, char *err,
	    size_t errlen);

#endif
