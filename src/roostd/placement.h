/*
 * placement.h: which backends a user belongs on.  Weighted rendezvous
 * hashing: every backend gets a score from a hash of (user, backend name)
 * scaled by its weight; the best eligible score is the primary, the next the
 * replica.  Pure functions: the same inputs give the same answer in every
 * process, on every machine, across restarts.
 */
#ifndef ROOST_PLACEMENT_H
#define ROOST_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* Can this backend take new users of this tag? */
int		placement_eligible(const struct backend *, const char *tag);

/* The 64-bit hash of one (user, backend) pair; stable forever. */
uint64_t	placement_hash(const char *user, size_t userlen,
		    const char *backend);

/* The weighted score of a pair; higher wins.  0 for weight 0. */
double		placement_score(uint64_t hash, unsigned weight);

/*
 * Rank the eligible backends for a user, best first, skipping index `skip`
 * (-1 for none).  backends[] may hold NULL slots.  Writes up to nout indexes
 * into out and returns how many.
 */
size_t		placement_rank(const char *user, size_t userlen, const char *tag,
		    struct backend *const *backends, size_t nbackends, long skip,
		    long *out, size_t nout);

#endif
