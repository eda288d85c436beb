/*
 * warm.h: TCP connections opened ahead, one per address, for calls whose
 * latency counts (a replication sync).
 *
 * Dovecot's doveadm server (2.3 and 2.4, process per connection) reads its
 * whole configuration from the config service when it accepts a
 * connection, before it reads a request: a connection that was accepted a
 * while ago takes that work off the call.  Measured by hand on a 2.3
 * backend: a no-op sync 14.5 ms median on a new connection, 9.0 ms on one
 * opened 30 ms before (docs/dovecot.md).
 *
 * The pool keeps at most one idle connection per address, and only for an
 * address that was asked for within WARM_IDLE_MS: an idle connection
 * holds one of the server's processes.  The next one is opened when the
 * call that took the last one is over, not at once: the server's reading
 * of its configuration for it competed for the CPU with that very call
 * (a delivery's replication lag on 2 cores went from 14.3 to 12.9 ms,
 * median of round medians: bench/PROFILING.md).  A connection that the
 * server closes soon after it opened (or that cannot be opened) is tried
 * again with a backoff, never in a loop.
 */
#ifndef ROOST_WARM_H
#define ROOST_WARM_H

#include <sys/socket.h>

#define WARM_IDLE_MS		(5 * 60 * 1000)
#define WARM_BACKOFF_MIN_MS	1000
#define WARM_BACKOFF_MAX_MS	(60 * 1000)
/* A connection closed by the server earlier than this after it opened is
 * a failure (backoff); later, an idle timeout (open the next at once). */
#define WARM_SHORT_MS		1000

struct event_base;
struct warm;

struct warm	*warm_new(struct event_base *);
/* Closes every connection. */
void		 warm_free(struct warm *);

/*
 * A connected socket to addr that nothing has used yet, now the caller's
 * until it calls warm_done; -1 when none is ready.  Either way addr counts
 * as wanted: a connection to it is opened ahead (again) from the event
 * loop, for the next call, once no call on a taken one runs.
 */
int		 warm_take(struct warm *, const struct sockaddr *, socklen_t);
/*
 * The call on a connection warm_take gave for addr is over: the next
 * connection to addr may be opened.
 */
void		 warm_done(struct warm *, const struct sockaddr *);

/* Connections ready now, for tests and status. */
size_t		 warm_ready(const struct warm *);

#endif
