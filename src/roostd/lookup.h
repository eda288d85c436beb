/*
 * lookup.h: the hot path.  GET /v1/lookup answers a known user from memory;
 * a new (or re-placed) user's assignment is committed to the store before
 * the answer goes out, with all assignments made in one pass of the event
 * loop committed together (group commit).
 */
#ifndef ROOST_LOOKUP_H
#define ROOST_LOOKUP_H

#include <stddef.h>

struct roost;
struct evhttp_request;

int	lookup_init(struct roost *);
void	lookup_free(struct roost *);
void	lookup_handle(struct roost *, struct evhttp_request *);
/* The 200 answer (or 503 no_port) for a committed entry. */
struct umap_entry;
void	lookup_reply(struct roost *, struct evhttp_request *,
	    const struct umap_entry *, int proto);
/* New users wait for their batch's commit: the store is theirs first. */
int	lookup_waiting(struct roost *);
/* 1 when every assignment made so far is in the store; else 0, and what
 * is pending is sent without the loop waiting (the admin lane asks again
 * before it works on the store). */
int	lookup_settled(struct roost *);
/* Write lookup times to the store and forget assignments idle past
 * user_expire: a bounded slice per call, or everything when `all`. */
void	lookup_maintain(struct roost *, int all);
/* Best eligible backends for a key, skipping slot `skip` (-1: none). */
size_t	lookup_rank(const struct roost *, const char *key, size_t len,
	    const char *tag, long skip, long *out, size_t nout);

#endif
