/*
 * umap.h: the user map in memory, the thing every lookup reads.  An open
 * addressing hash table of user entries keyed on the routing key; the store
 * holds the durable copy.  Sized for millions of users in tens of MB.
 */
#ifndef ROOST_UMAP_H
#define ROOST_UMAP_H

#include <stddef.h>
#include <stdint.h>

#define UMAP_NO_BACKEND	0xffff

struct umap_entry {
	uint32_t	hash;
	uint16_t	backend;	/* backend slot */
	uint16_t	tag;		/* interned tag id, 0 = "" */
	uint32_t	since;		/* unix s */
	uint32_t	last_lookup;	/* unix s, 0 = never */
	uint32_t	touched;	/* last_lookup as last written to the store */
	uint16_t	replica;	/* replica slot, UMAP_NO_BACKEND = none */
	uint8_t		pinned;
	uint8_t		flags;		/* UMAP_F_* */
	uint8_t		keylen;
	char		key[];		/* keylen bytes + NUL */
};

#define UMAP_F_MOVING	0x01	/* a move is under way: lookups wait */
#define UMAP_F_PENDING	0x02	/* assignment made, not yet committed */
#define UMAP_F_CONFIRMED 0x04	/* a session or a delivery was seen */
#define UMAP_F_CONFIRM_DIRTY 0x08 /* CONFIRMED not yet in the store */
#define UMAP_F_ACTIVE	0x10	/* has sessions on record (events.c) */
#define UMAP_F_REPL_CURRENT 0x20 /* the replica had its first full sync */
#define UMAP_F_FAILED_OVER 0x40	/* on its replica after a failure */
#define UMAP_F_BYPASS_LOGGED 0x80 /* an event from a backend that is not
				 * its own was logged (repl.c) */

struct umap;

/* The hash of a routing key; side tables keyed like the map use it too. */
uint32_t		 umap_hash(const char *key, size_t len);

struct umap		*umap_new(size_t expected);
void			 umap_free(struct umap *);
size_t			 umap_count(const struct umap *);
struct umap_entry	*umap_get(const struct umap *, const char *key, size_t len);
/* Insert or return the existing entry for key (fields zeroed when new). */
struct umap_entry	*umap_put(struct umap *, const char *key, size_t len,
			    int *created);
/* Returns 1 if removed. */
int			 umap_del(struct umap *, const char *key, size_t len);
/* Visit every entry; cb returns 0 to go on, 1 to remove the entry, -1 to stop. */
void			 umap_walk(struct umap *, int (*)(struct umap_entry *, void *),
			    void *);
/*
 * Visit up to `budget` slots starting at *cursor (wrapping), for work spread
 * over many loop passes.  cb returns 0 to go on, -1 to stop before the
 * entry (it is visited again next time).  *cursor moves past what was done.
 * Returns the number of slots looked at.
 */
size_t			 umap_scan(struct umap *, size_t *cursor, size_t budget,
			    int (*)(struct umap_entry *, void *), void *);
size_t			 umap_slots(const struct umap *);

#endif
