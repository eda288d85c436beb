/* listener.h: the API's listening socket and the bounds on its connections. */
#ifndef ROOST_LISTENER_H
#define ROOST_LISTENER_H

#include <stdint.h>

struct config;
struct evhttp;
struct evhttp_request;

/*
 * Bind host:port for http and serve each complete request with cb.  Open
 * connections are counted against max_connections; new ones wait in the
 * kernel's backlog while the count is at the limit.
 */
int	listener_start(struct evhttp *, const char *host, uint16_t port,
	    const struct config *,
	    void (*cb)(struct evhttp_request *, void *), void *arg);
/* Before evhttp_free: connections closed from then on only get counted. */
void	listener_stop(void);

#endif
