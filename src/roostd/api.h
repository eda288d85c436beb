/* api.h: the REST API: one table of routes, dispatched from evhttp. */
#ifndef ROOST_API_H
#define ROOST_API_H

#include <stddef.h>

struct roost;

/* Bind the listener from the config and install the routes. */
int	api_start(struct roost *);
void	api_stop(struct roost *);
/* 200 and the user object (GET /v1/users/{user}) for a routing key. */
struct evhttp_request;
void	api_reply_user(struct roost *, struct evhttp_request *,
	    const char *key, size_t len);

#endif
