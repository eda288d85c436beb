/*
 * warm.c: TCP connections opened ahead, one per address (warm.h says why).
 * Each address the HTTP client asked for has a small state machine on the
 * event loop: closed -> connecting -> ready (idle, watched for the server
 * closing it) -> taken (then opened again at once), with a backoff timer
 * when the server refuses or drops connections early, and closed for good
 * once nothing asked for it within the idle time.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "warm.h"
#include "xmalloc.h"

#define WARM_CONNECT_MS		5000

struct warm_addr {
	struct warm		*w;
	struct warm_addr	*next;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 fd;		/* -1: none */
	int			 ready;		/* fd is connected and idle */
	struct event		*ev;		/* on fd */
	struct event		*timer;		/* open (again) */
	uint64_t		 opened;	/* ms: when fd became ready */
	uint64_t		 wanted;	/* ms: last warm_take */
	unsigned		 backoff;	/* ms: 0 while all is well */
	unsigned		 busy;		/* taken, their calls not over */
};

struct warm {
	struct event_base	*base;
	struct warm_addr	*addrs;
};

static void	addr_open(struct warm_addr *);

/* Same family, address and port: what a connection goes to. */
static int
same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->sa_family != b->ss_family)
		return 0;
	if (a->sa_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port &&
	    a6->sin6_scope_id == b6->sin6_scope_id &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

static void
addr_close(struct warm_addr *a)
{
	if (a->ev != NULL) {
		event_free(a->ev);
		a->ev = NULL;
	}
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
	a->ready = 0;
}

static void
open_in(struct warm_addr *a, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(a->timer, &tv);
}

/* The server refused or dropped us early: try again later, ever later. */
static void
addr_failed(struct warm_addr *a)
{
	addr_close(a);
	a->backoff = a->backoff == 0 ? WARM_BACKOFF_MIN_MS :
	    a->backoff >= WARM_BACKOFF_MAX_MS / 2 ? WARM_BACKOFF_MAX_MS :
	    a->backoff * 2;
	open_in(a, a->backoff);
}

static int
idle_left(const struct warm_addr *a, uint64_t now)
{
	return now - a->wanted < WARM_IDLE_MS;
}

/* Readable while idle: the server closed it (an HTTP server sends nothing
 * unasked), or the idle time is over. */
static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct warm_addr *a = arg;
	uint64_t now = now_msec_mono();
	struct timeval tv;

	(void)fd;
	if (what & EV_TIMEOUT) {
		if (!idle_left(a, now)) {
			addr_close(a);	/* until it is asked for again */
			return;
		}
		tv.tv_sec = (WARM_IDLE_MS - (now - a->wanted)) / 1000 + 1;
		tv.tv_usec = 0;
		event_add(a->ev, &tv);
		return;
	}
	if (now - a->opened < WARM_SHORT_MS) {
		log_debug("warm: a connection was closed %llu ms after it "
		    "opened; next in %u ms", (unsigned long long)(now -
		    a->opened), a->backoff ? a->backoff * 2 :
		    WARM_BACKOFF_MIN_MS);
		addr_failed(a);
		return;
	}
	addr_close(a);
	a->backoff = 0;
	if (idle_left(a, now))
		addr_open(a);
}

static void
on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct warm_addr *a = arg;
	int err = 0;
	socklen_t len = sizeof(err);
	struct timeval tv = { WARM_IDLE_MS / 1000, 0 };

	if ((what & EV_TIMEOUT) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		addr_failed(a);
		return;
	}
	event_free(a->ev);
	a->ready = 1;
	a->opened = now_msec_mono();
	if ((a->ev = event_new(a->w->base, a->fd, EV_READ, on_idle, a)) ==
	    NULL || event_add(a->ev, &tv) == -1)
		fatalx("warm: cannot watch a connection");
}

static void
addr_open(struct warm_addr *a)
{
	struct timeval tv = { WARM_CONNECT_MS / 1000, 0 };

	if (a->fd != -1 || evtimer_pending(a->timer, NULL))
		return;
	a->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (a->fd == -1) {
		log_warn("warm: socket");
		addr_failed(a);
		return;
	}
	if (connect(a->fd, (struct sockaddr *)&a->ss, a->sslen) == -1 &&
	    errno != EINPROGRESS) {
		addr_failed(a);
		return;
	}
	if ((a->ev = event_new(a->w->base, a->fd, EV_WRITE, on_connected,
	    a)) == NULL || event_add(a->ev, &tv) == -1)
		fatalx("warm: cannot watch a connection");
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct warm_addr *a = arg;

	(void)fd;
	(void)what;
	if (idle_left(a, now_msec_mono()))
		addr_open(a);
}

struct warm *
warm_new(struct event_base *base)
{
	struct warm *w = xcalloc(1, sizeof(*w));

	w->base = base;
	return w;
}

void
warm_free(struct warm *w)
{
	struct warm_addr *a;

	if (w == NULL)
		return;
	while ((a = w->addrs) != NULL) {
		w->addrs = a->next;
		addr_close(a);
		event_free(a->timer);
		free(a);
	}
	free(w);
}

/* The entry of addr; NULL when it has none (only IPv4 and IPv6 have). */
static struct warm_addr *
addr_find(struct warm *w, const struct sockaddr *sa)
{
	struct warm_addr *a;

	for (a = w ? w->addrs : NULL; a != NULL; a = a->next)
		if (same_addr(sa, &a->ss))
			return a;
	return NULL;
}

/* The entry of addr, made if it has none; NULL for what is not IPv4 or
 * IPv6. */
static struct warm_addr *
addr_get(struct warm *w, const struct sockaddr *sa, socklen_t len)
{
	struct warm_addr *a;

	if (w == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6) || len > sizeof(a->ss))
		return NULL;
	if ((a = addr_find(w, sa)) != NULL)
		return a;
	a = xcalloc(1, sizeof(*a));
	a->w = w;
	a->fd = -1;
	memcpy(&a->ss, sa, len);
	a->sslen = len;
	if ((a->timer = evtimer_new(w->base, on_timer, a)) == NULL)
		fatalx("warm: cannot make a timer");
	a->next = w->addrs;
	w->addrs = a;
	return a;
}

/*
 * The next connection to a, from the loop: never inside the caller's
 * call, and not while a call on one taken from here runs.  Opening one
 * makes the server read its whole configuration, which competes for the
 * CPU with the sync the last one carries.
 */
static void
open_next(struct warm_addr *a)
{
	if (a->busy == 0 && a->fd == -1 && !evtimer_pending(a->timer, NULL))
		open_in(a, 0);
}

int
warm_take(struct warm *w, const struct sockaddr *sa, socklen_t len)
{
	struct warm_addr *a;
	struct pollfd pfd;
	int fd = -1;

	if ((a = addr_get(w, sa, len)) == NULL)
		return -1;
	a->wanted = now_msec_mono();
	if (a->ready) {
		/* Closed by the server since the loop last looked? */
		pfd.fd = a->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 0) {
			fd = a->fd;
			a->fd = -1;
			a->backoff = 0;
			a->busy++;
		}
		addr_close(a);
	}
	open_next(a);
	return fd;
}

void
warm_done(struct warm *w, const struct sockaddr *sa)
{
	struct warm_addr *a;

	if ((a = addr_find(w, sa)) == NULL || a->busy == 0)
		return;
	a->busy--;
	open_next(a);
}

size_t
warm_ready(const struct warm *w)
{
	const struct warm_addr *a;
	size_t n = 0;

	for (a = w ? w->addrs : NULL; a != NULL; a = a->next)
		n += a->ready;
	return n;
}
