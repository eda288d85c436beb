/* api.h: the REST API: one table of routes, dispatched from evhttp. */
#ifndef ROOST_API_H
#define ROOST_API_H

struct roost;

/* Bind the listener from the config and install the routes. */
int	api_start(struct roost *);
void	api_stop(struct roost *);

#endif
