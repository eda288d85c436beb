/*
 * listener.c: the API's listening socket, and what keeps idle or hostile
 * clients from using up roostd's file descriptors.
 *
 * Open connections are counted; at max_connections the listener is disabled
 * and new clients wait in the kernel's backlog until one closes (as relayd
 * and httpd do).  A failed accept (EMFILE and the like) pauses the listener
 * for a moment instead of retrying at once: libevent alone would spin on the
 * still-readable socket and log every failure.  A new connection gets
 * request_timeout for its first request, then the longer idle timeout that
 * keep-alive clients (the Dovecot proxies) rely on between requests.
 *
 * evhttp 2.1 neither limits connections nor hands out a new connection
 * before its first request.  Its bevcb tells us one was accepted (counted
 * there, so the limit holds inside one accept burst); right after the burst
 * each new bufferevent's callback argument is its evhttp_connection, which
 * gets a close callback.  (A pass-through filter bufferevent would show the
 * free too, but 2.1.12's filters stall evhttp's replies.)  There is one
 * listener per process, so the state is file-static: connections that
 * evhttp_free closes after listener_stop still find it.
 *
 * With listen_unix the same API also listens on a unix socket, for proxies
 * on roostd's own host: their lookups then skip TCP.  Its connections are
 * counted and limited with the others.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "xmalloc.h"

/* Between two requests of a keep-alive connection. */
#define LISTENER_IDLE_TIMEOUT	60
/* Descriptors kept for everything but clients: store, log, signals,
 * outgoing HTTP; plus a share of large limits. */
#define LISTENER_RESERVE	32
#define LISTENER_RESERVE_DIV	16
#define LISTENER_DEFAULT_MIN	4
#define LISTENER_DEFAULT_MAX	16384
/* After a failed accept: long enough not to spin, short enough that a
 * client barely notices. */
#define LISTENER_PAUSE_MS	1000
/* One line per minute at most about a full or failing listener. */
#define LISTENER_LOG_MS		60000

static struct {
	struct evconnlistener	*lev;		/* owned by evhttp */
	struct evconnlistener	*ulev;		/* listen_unix, owned by evhttp */
	char			*upath;		/* removed again at stop */
	struct event		*resume_ev;
	struct event		*adopt_ev;
	struct bufferevent	**pending;	/* accepted, not yet adopted */
	size_t			 npending, pending_cap;
	long long		 open, max;
	int			 full;		/* at max: not accepting */
	int			 paused;	/* after a failed accept */
	struct timeval		 idle_tv;
	int			 lengthen;	/* idle_tv differs from the first */
	void			(*cb)(struct evhttp_request *, void *);
	void			*cbarg;
} L;

static struct log_limit	full_limit = LOG_LIMIT_INIT(LISTENER_LOG_MS);
static struct log_limit	accept_limit = LOG_LIMIT_INIT(LISTENER_LOG_MS);
static struct log_limit	event_limit = LOG_LIMIT_INIT(1000);

static void
listener_update(void)
{
	if (L.lev == NULL)
		return;
	if (L.full || L.paused) {
		evconnlistener_disable(L.lev);
		if (L.ulev != NULL)
			evconnlistener_disable(L.ulev);
	} else {
		evconnlistener_enable(L.lev);
		if (L.ulev != NULL)
			evconnlistener_enable(L.ulev);
	}
}

/* One counted connection is gone. */
static void
listener_release(void)
{
	L.open--;
	if (L.full && L.open < L.max) {
		L.full = 0;
		listener_update();
	}
	/* A descriptor came free: no need to sit out the pause. */
	if (L.paused) {
		L.paused = 0;
		if (L.resume_ev != NULL)
			evtimer_del(L.resume_ev);
		listener_update();
	}
}

static void
listener_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	(void)arg;
	listener_release();
}

/*
 * After an accept burst: evhttp has set up each new connection and made
 * it its bufferevent's callback argument.  Nothing of theirs has run yet
 * (this event was activated before any of their I/O could be), so each is
 * alive unless evhttp dropped it while setting it up; a dropped one has had
 * its callbacks cleared, and its memory waits for the finalizers queued
 * behind this event.
 */
static void
listener_adopt(evutil_socket_t fd, short what, void *arg)
{
	bufferevent_event_cb errorcb;
	void *cbarg;
	size_t i;

	(void)fd;
	(void)what;
	(void)arg;
	for (i = 0; i < L.npending; i++) {
		cbarg = NULL;
		errorcb = NULL;
		bufferevent_getcb(L.pending[i], NULL, NULL, &errorcb, &cbarg);
		if (errorcb == NULL || cbarg == NULL) {
			listener_release();
			continue;
		}
		evhttp_connection_set_closecb(cbarg, listener_closed, NULL);
	}
	L.npending = 0;
}

/* evhttp's bevcb: called once for every connection evhttp takes on. */
static struct bufferevent *
listener_newconn(struct event_base *base, void *arg)
{
	struct bufferevent *bev;

	(void)arg;
	/* Options as evhttp's own: it closes the descriptor itself.  Failing
	 * here would leave evhttp to make an uncounted one. */
	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		fatalx("out of memory for a new connection");
	if (L.npending == L.pending_cap) {
		L.pending_cap = L.pending_cap ? L.pending_cap * 2 : 16;
		L.pending = xreallocarray(L.pending, L.pending_cap,
		    sizeof(*L.pending));
	}
	L.pending[L.npending++] = bev;
	if (L.npending == 1)
		event_active(L.adopt_ev, EV_TIMEOUT, 1);
	if (++L.open >= L.max && !L.full) {
		L.full = 1;
		listener_update();
		log_limited(&full_limit, LOG_LEVEL_WARN, "%lld connections "
		    "open (max_connections): new ones wait until one closes",
		    L.open);
	}
	return bev;
}

static void
listener_accept_error(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = { 0, LISTENER_PAUSE_MS * 1000 };
	int saved = errno;

	(void)lev;
	(void)arg;
	L.paused = 1;
	listener_update();
	evtimer_add(L.resume_ev, &tv);
	log_limited(&accept_limit, LOG_LEVEL_WARN, "accept: %s; pausing "
	    "new connections (%lld open)", strerror(saved), L.open);
}

static void
listener_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	L.paused = 0;
	listener_update();
}

static void
listener_dispatch(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon;

	(void)arg;
	/* A request arrived: the client is a real one, give it the idle
	 * timeout from now on. */
	if (L.lengthen && (evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_set_timeout_tv(evcon, &L.idle_tv);
	L.cb(req, L.cbarg);
}

/* libevent's own messages, into our log and never faster than 1/s. */
static void
listener_event_log(int severity, const char *msg)
{
	enum log_level level;

	switch (severity) {
	case EVENT_LOG_DEBUG:
		level = LOG_LEVEL_DEBUG;
		break;
	case EVENT_LOG_MSG:
		level = LOG_LEVEL_INFO;
		break;
	case EVENT_LOG_WARN:
		level = LOG_LEVEL_WARN;
		break;
	default:
		level = LOG_LEVEL_ERROR;
		break;
	}
	log_limited(&event_limit, level, "libevent: %s", msg);
}

/*
 * Use every descriptor the hard limit allows, and size the default limit
 * on connections from that, keeping a reserve for everything else.
 */
static long long
listener_default_max(long long *nofile)
{
	struct rlimit rl;
	long long n, reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit RLIMIT_NOFILE");
		*nofile = 1024;
		return 1024 - LISTENER_RESERVE;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("raising RLIMIT_NOFILE to %llu",
			    (unsigned long long)rl.rlim_max);
			rl.rlim_cur = was;
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000000)
		n = 1000000000;
	else
		n = (long long)rl.rlim_cur;
	*nofile = n;
	reserve = LISTENER_RESERVE + n / LISTENER_RESERVE_DIV;
	n -= reserve;
	if (n < LISTENER_DEFAULT_MIN)
		n = LISTENER_DEFAULT_MIN;
	if (n > LISTENER_DEFAULT_MAX)
		n = LISTENER_DEFAULT_MAX;
	return n;
}

/*
 * The unix socket of listen_unix.  A socket file that a roostd left behind
 * is replaced; one that some process still answers on is not, nor anything
 * that is not a socket.  Anyone who can reach the directory may connect
 * (mode 0666): put it where only the proxies' auth processes get.  The
 * admin API still wants its token, and lookups theirs when one is set.
 */
static int
listener_bind_unix(struct evhttp *http, struct event_base *base,
    const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("listen_unix %s: longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
		goto fail;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("listen_unix %s: exists and is not a socket",
			    path);
			goto fail;
		}
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
		    -1) {
			log_warn("listen_unix: socket");
			goto fail;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			log_warnx("listen_unix %s: in use by another process",
			    path);
			goto fail;
		}
		close(fd);
		if (unlink(path) == -1) {
			log_warn("listen_unix %s: removing the old socket",
			    path);
			goto fail;
		}
	}
	if ((L.ulev = evconnlistener_new_bind(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
	    (struct sockaddr *)&sun, sizeof(sun))) == NULL) {
		log_warn("listen_unix %s", path);
		goto fail;
	}
	L.upath = xstrdup(path);
	if (chmod(path, 0666) == -1) {
		log_warn("listen_unix %s: chmod", path);
		goto fail;
	}
	if (evhttp_bind_listener(http, L.ulev) == NULL) {
		log_warnx("listen_unix %s: evhttp_bind_listener", path);
		goto fail;
	}
	evconnlistener_set_error_cb(L.ulev, listener_accept_error);
	log_info("listening on %s too", path);
	return 0;
fail:
	if (L.ulev != NULL) {
		evconnlistener_free(L.ulev);
		L.ulev = NULL;
	}
	if (L.upath != NULL) {
		unlink(L.upath);
		free(L.upath);
		L.upath = NULL;
	}
	return -1;
}

int
listener_start(struct evhttp *http, const char *host, uint16_t port,
    const struct config *conf, void (*cb)(struct evhttp_request *, void *),
    void *arg)
{
	struct evhttp_bound_socket *bound;
	struct timeval first_tv;
	long long nofile, def;

	event_set_log_callback(listener_event_log);
	def = listener_default_max(&nofile);
	L.max = conf->max_connections != 0 ? conf->max_connections : def;
	if (L.max > nofile - LISTENER_RESERVE)
		log_warnx("max_connections %lld is more than %lld descriptors "
		    "(RLIMIT_NOFILE) allow: accepts will pause when they run "
		    "out", L.max, nofile);
	L.open = 0;
	L.full = L.paused = 0;
	L.cb = cb;
	L.cbarg = arg;
	L.idle_tv.tv_sec = LISTENER_IDLE_TIMEOUT;
	L.idle_tv.tv_usec = 0;
	first_tv = L.idle_tv;
	if (conf->request_timeout != 0)
		first_tv.tv_sec = (time_t)conf->request_timeout;
	L.lengthen = first_tv.tv_sec != L.idle_tv.tv_sec;

	evhttp_set_timeout_tv(http, &first_tv);
	evhttp_set_bevcb(http, listener_newconn, NULL);
	evhttp_set_gencb(http, listener_dispatch, NULL);
	if ((bound = evhttp_bind_socket_with_handle(http, host, port)) == NULL)
		return -1;
	L.lev = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(L.lev, listener_accept_error);
	if ((L.resume_ev = evtimer_new(evconnlistener_get_base(L.lev),
	    listener_resume, NULL)) == NULL ||
	    (L.adopt_ev = event_new(evconnlistener_get_base(L.lev), -1, 0,
	    listener_adopt, NULL)) == NULL)
		fatalx("out of memory for the listener");
	if (conf->listen_unix != NULL && listener_bind_unix(http,
	    evconnlistener_get_base(L.lev), conf->listen_unix) == -1)
		return -1;
	log_info("accepting up to %lld connections", L.max);
	return 0;
}

void
listener_stop(void)
{
	L.lev = NULL;
	L.ulev = NULL;		/* evhttp_free closes it */
	if (L.upath != NULL) {
		unlink(L.upath);
		free(L.upath);
		L.upath = NULL;
	}
	if (L.resume_ev != NULL)
		event_free(L.resume_ev);
	L.resume_ev = NULL;
	/* evhttp_free closes what is left; the close callbacks only count. */
	listener_adopt(-1, 0, NULL);
	if (L.adopt_ev != NULL)
		event_free(L.adopt_ev);
	L.adopt_ev = NULL;
	free(L.pending);
	L.pending = NULL;
	L.npending = L.pending_cap = 0;
}
