/*
 * events.c: Dovecot's event exporter posts here, and this is where roostd
 * learns who is active where.
 *
 * The exporter (driver http-post) sends one JSON object per event, gives up
 * after a few hundred milliseconds (2.3: 250 ms) and sends no header of its
 * own, so the token rides in the URL as user:password (Dovecot turns that
 * into Basic auth) and the handler only changes memory: no store write, no
 * call out.  Dropped events are normal; polling each proxy's proxied
 * sessions (proxyList, one row per session on 2.3, per user with a
 * "connections" count on 2.4) every activity_poll_interval puts right what
 * they missed.
 *
 * Sessions are kept in a side table keyed by user, not in the user map:
 * only users seen in a session pay for it, and only users with an
 * assignment get a row (events for anyone else are counted and dropped), so
 * the table never outgrows the user map.  UMAP_F_ACTIVE marks the users
 * that have a row, so expiry looks it up only for them.
 *
 * Logins in flight are kept apart: a lookup answered for a login protocol
 * counts as one until the proxy posts that the session began, or that the
 * login failed.  A move asks (events_logins_in_flight) so that its `who`
 * poll of the old backend comes after every login that was answered the
 * old backend just before the user was marked moving.  Such a row lives
 * LOGIN_FLIGHT_MS after its last answer at most (an event lost, a login
 * the proxy gave up before it connected), so the table holds the last few
 * seconds of logins, not the users.
 */
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "doveadm.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "repl.h"
#include "repl_event.h"
#include "roostd.h"
#include "util.h"
#include "xmalloc.h"

#define POLL_FIRST_S	1	/* first poll after start: sessions open
				 * across a restart are known at once */
#define POLL_TIMEOUT_MS	10000
#define AUTH_MAX	4096	/* an Authorization header longer is refused */
#define LOGIN_FLIGHT_MS	5000	/* a login not seen to begin or fail is
				 * forgotten this long after its answer */

struct act_proxy {
	uint16_t	id;		/* interned proxy name */
	uint16_t	open;
	uint32_t	gen;		/* poll that last counted it */
};

struct act {
	struct act		*next;
	uint32_t		 hash;
	uint32_t		 last_start;
	uint32_t		 last_end;
	uint16_t		 nper;
	struct act_proxy	*per;
	size_t			 keylen;
	char			 key[];
};

/* A user's logins answered and not yet seen to begin or fail. */
struct flight {
	struct flight		*next;		/* hash chain */
	TAILQ_ENTRY(flight)	 age;		/* oldest answer first */
	uint32_t		 hash;
	uint32_t		 n;
	uint64_t		 at;		/* mono ms, the last answer */
	size_t			 keylen;
	char			 key[];
};

TAILQ_HEAD(flight_age, flight);

struct poll {
	struct roost		*rs;
	struct doveadm_call	*call;
	uint16_t		 pid;
};

struct events {
	struct act	**tab;
	size_t		  mask;
	size_t		  count;
	char		**pnames;	/* interned proxy names, never shrinks */
	uint32_t	 *plastgen;	/* per name: gen of its last poll */
	uint8_t		 *pgone;	/* per name: unregistered, sessions ended */
	size_t		  npnames;
	uint32_t	  gen;
	char		**confirm;	/* keys whose confirmation is not stored */
	size_t		  nconfirm, cconfirm;
	struct poll	**polls;	/* in flight */
	size_t		  npolls;
	struct event	 *poll_ev;
	uint64_t	  received, ignored, unknown_user;
	struct flight	**ftab;		/* logins in flight */
	size_t		  fmask, fcount;
	struct flight_age fage;
};

static void	poll_cb(evutil_socket_t, short, void *);

static struct act *
act_find(const struct events *ev, const char *key, size_t len)
{
	uint32_t h = umap_hash(key, len);
	struct act *a;

	for (a = ev->tab[h & ev->mask]; a != NULL; a = a->next)
		if (a->hash == h && a->keylen == len &&
		    memcmp(a->key, key, len) == 0)
			return a;
	return NULL;
}

static void
act_grow(struct events *ev)
{
	struct act **nt, *a, *next;
	size_t i, nmask = ev->mask * 2 + 1;

	nt = xcalloc(nmask + 1, sizeof(*nt));
	for (i = 0; i <= ev->mask; i++)
		for (a = ev->tab[i]; a != NULL; a = next) {
			next = a->next;
			a->next = nt[a->hash & nmask];
			nt[a->hash & nmask] = a;
		}
	free(ev->tab);
	ev->tab = nt;
	ev->mask = nmask;
}

static struct act *
act_get(struct events *ev, struct umap_entry *e)
{
	struct act *a;
	size_t b;

	if ((a = act_find(ev, e->key, e->keylen)) != NULL)
		return a;
	if (ev->count > ev->mask)
		act_grow(ev);
	a = xcalloc(1, sizeof(*a) + e->keylen + 1);
	a->hash = umap_hash(e->key, e->keylen);
	a->keylen = e->keylen;
	memcpy(a->key, e->key, e->keylen);
	b = a->hash & ev->mask;
	a->next = ev->tab[b];
	ev->tab[b] = a;
	ev->count++;
	e->flags |= UMAP_F_ACTIVE;
	return a;
}

static void
act_free(struct act *a)
{
	free(a->per);
	free(a);
}

static struct act_proxy *
act_proxy(struct act *a, uint16_t id)
{
	uint16_t i;

	for (i = 0; i < a->nper; i++)
		if (a->per[i].id == id)
			return &a->per[i];
	a->per = xreallocarray(a->per, (size_t)a->nper + 1, sizeof(*a->per));
	a->per[a->nper].id = id;
	a->per[a->nper].open = 0;
	a->per[a->nper].gen = 0;
	return &a->per[a->nper++];
}

static uint32_t
act_open(const struct act *a)
{
	uint32_t n = 0;
	uint16_t i;

	for (i = 0; i < a->nper; i++)
		n += a->per[i].open;
	return n;
}

static uint16_t
proxy_id(struct events *ev, const char *name)
{
	size_t i;

	for (i = 0; i < ev->npnames; i++)
		if (strcmp(ev->pnames[i], name) == 0)
			return (uint16_t)i;
	/* Names are registered proxies (ROOST_MAX_PROXIES at a time); a
	 * site that renames them past 64k gets the last slot shared. */
	if (ev->npnames == UINT16_MAX)
		return UINT16_MAX - 1;
	ev->pnames = xreallocarray(ev->pnames, ev->npnames + 1,
	    sizeof(*ev->pnames));
	ev->pnames[ev->npnames] = xstrdup(name);
	ev->plastgen = xreallocarray(ev->plastgen, ev->npnames + 1,
	    sizeof(*ev->plastgen));
	ev->plastgen[ev->npnames] = 0;
	ev->pgone = xreallocarray(ev->pgone, ev->npnames + 1,
	    sizeof(*ev->pgone));
	ev->pgone[ev->npnames] = 0;
	return (uint16_t)ev->npnames++;
}

/* A session or a delivery proves the name is a real user. */
static void
confirm(struct events *ev, struct umap_entry *e)
{
	if (e->flags & UMAP_F_CONFIRMED)
		return;
	e->flags |= UMAP_F_CONFIRMED | UMAP_F_CONFIRM_DIRTY;
	if (ev->nconfirm == ev->cconfirm) {
		ev->cconfirm = ev->cconfirm ? ev->cconfirm * 2 : 64;
		ev->confirm = xreallocarray(ev->confirm, ev->cconfirm,
		    sizeof(*ev->confirm));
	}
	ev->confirm[ev->nconfirm++] = xstrdup(e->key);
}

/* --- logins in flight ------------------------------------------------ */

static struct flight **
flight_slot(struct events *ev, const char *key, size_t len, uint32_t h)
{
	struct flight **fp;

	for (fp = &ev->ftab[h & ev->fmask]; *fp != NULL; fp = &(*fp)->next)
		if ((*fp)->hash == h && (*fp)->keylen == len &&
		    memcmp((*fp)->key, key, len) == 0)
			break;
	return fp;
}

static void
flight_drop(struct events *ev, struct flight **fp)
{
	struct flight *f = *fp;

	*fp = f->next;
	TAILQ_REMOVE(&ev->fage, f, age);
	ev->fcount--;
	free(f);
}

/* Rows whose last answer is older than LOGIN_FLIGHT_MS go. */
static void
flight_expire(struct events *ev, uint64_t now)
{
	struct flight *f;

	while ((f = TAILQ_FIRST(&ev->fage)) != NULL &&
	    f->at + LOGIN_FLIGHT_MS <= now)
		flight_drop(ev, flight_slot(ev, f->key, f->keylen, f->hash));
}

static void
flight_grow(struct events *ev)
{
	struct flight **nt, *f, *next;
	size_t i, nmask = ev->fmask * 2 + 1;

	nt = xcalloc(nmask + 1, sizeof(*nt));
	for (i = 0; i <= ev->fmask; i++)
		for (f = ev->ftab[i]; f != NULL; f = next) {
			next = f->next;
			f->next = nt[f->hash & nmask];
			nt[f->hash & nmask] = f;
		}
	free(ev->ftab);
	ev->ftab = nt;
	ev->fmask = nmask;
}

void
events_login_answered(struct roost *rs, const struct umap_entry *e)
{
	struct events *ev = rs->events;
	struct flight **fp, *f;
	uint64_t now;

	/* Without the proxies' session events nothing would end a flight:
	 * every move would wait LOGIN_FLIGHT_MS for nothing. */
	if (ev == NULL || rs->conf->events_token == NULL || rs->nproxies == 0)
		return;
	now = now_msec_mono();
	flight_expire(ev, now);
	fp = flight_slot(ev, e->key, e->keylen, e->hash);
	if ((f = *fp) != NULL) {
		TAILQ_REMOVE(&ev->fage, f, age);
	} else {
		if (ev->fcount > ev->fmask) {
			flight_grow(ev);
			fp = flight_slot(ev, e->key, e->keylen, e->hash);
		}
		f = xcalloc(1, sizeof(*f) + e->keylen + 1);
		f->hash = e->hash;
		f->keylen = e->keylen;
		memcpy(f->key, e->key, e->keylen);
		*fp = f;
		ev->fcount++;
	}
	f->n++;
	f->at = now;
	TAILQ_INSERT_TAIL(&ev->fage, f, age);
}

/* One of the user's logins began, or failed: no longer in flight. */
static void
flight_land(struct events *ev, const struct umap_entry *e)
{
	struct flight **fp = flight_slot(ev, e->key, e->keylen, e->hash);

	if (*fp != NULL && --(*fp)->n == 0)
		flight_drop(ev, fp);
}

unsigned
events_logins_in_flight(struct roost *rs, const char *key, size_t len)
{
	struct events *ev = rs->events;
	struct flight *f;

	if (ev == NULL)
		return 0;
	flight_expire(ev, now_msec_mono());
	f = *flight_slot(ev, key, len, umap_hash(key, len));
	return f != NULL ? f->n : 0;
}

/* --- a session on a backend that is not the user's ----------------- */

#define ELSEWHERE_KICK_MS	5000

static void
elsewhere_kicked(void *arg, const struct doveadm_result *res)
{
	char *what = arg;

	if (res->ok)
		log_info("events: %s: kicked", what);
	else
		log_warnx("events: %s: the kick failed: %s", what, res->error);
	free(what);
}

/*
 * A session began on a backend other than the user's: a login answered
 * before a move (or a failover) changed the assignment, that reached the
 * old backend after it.  With one roostd the move waits for such logins
 * (move.c); with several, the instance that answered may not be the one
 * that moved the user, and an event may be lost.  One backend per user at
 * any moment: the session is kicked there at once.  The backend is known
 * by the address and port the proxy connected to.
 */
static void
session_elsewhere(struct roost *rs, const struct umap_entry *e,
    json_t *fields)
{
	const char *ip, *host, *svc;
	const struct backend *b;
	json_t *jport;
	enum proto proto;
	json_int_t port;
	size_t i;
	char *what;

	if (e->flags & (UMAP_F_MOVING | UMAP_F_PENDING))
		return;		/* the move or the commit decides */
	ip = json_string_value(json_object_get(fields, "dest_ip"));
	host = json_string_value(json_object_get(fields, "dest_host"));
	/* 2.4 names the protocol ("imap"; its service is "imap-login"),
	 * 2.3 only the service ("imap"). */
	if ((svc = json_string_value(json_object_get(fields, "protocol"))) ==
	    NULL)
		svc = json_string_value(json_object_get(fields, "service"));
	jport = json_object_get(fields, "dest_port");
	if (svc == NULL || !json_is_integer(jport) ||
	    (ip == NULL && host == NULL))
		return;
	if (strcmp(svc, "managesieve") == 0)
		proto = PROTO_SIEVE;
	else if (proto_parse(svc, &proto) == -1)
		return;
	port = json_integer_value(jport);
	for (i = 0; i < rs->nslots; i++) {
		b = rs->backends[i];
		if (b != NULL && b->ports[proto] == port &&
		    ((ip != NULL && b->hostip[0] != '\0' &&
		    strcmp(b->hostip, ip) == 0) ||
		    (host != NULL && strcmp(b->host, host) == 0)))
			break;
	}
	if (i == rs->nslots || i == e->backend)
		return;
	if (b->doveadm_url == NULL) {
		log_warnx("events: %s began a session on %s, not on its "
		    "backend, and %s has no doveadm URL to kick it", e->key,
		    b->name, b->name);
		return;
	}
	log_warnx("events: %s began a session on %s, not on its backend %s "
	    "(a login answered before its backend changed): kicking it",
	    e->key, b->name, e->backend < rs->nslots &&
	    rs->backends[e->backend] != NULL ?
	    rs->backends[e->backend]->name : "?");
	xasprintf(&what, "%s's session on %s", e->key, b->name);
	doveadm_kick_user(rs->doveadm, b->doveadm_url, b->doveadm_key, e->key,
	    ELSEWHERE_KICK_MS, elsewhere_kicked, what);
}

/* The user map entry of a Dovecot user name, or NULL (not ours). */
static struct umap_entry *
user_entry(struct roost *rs, const char *user)
{
	char key[256];
	int n;

	if (!valid_username(user, strlen(user)))
		return NULL;
	if ((n = config_user_key(rs->conf, user, strlen(user), key,
	    sizeof(key))) == -1)
		return NULL;
	return umap_get(rs->users, key, (size_t)n);
}

static void
session_start(struct roost *rs, struct umap_entry *e, uint16_t pid,
    uint32_t now)
{
	struct act *a = act_get(rs->events, e);
	struct act_proxy *p = act_proxy(a, pid);

	if (p->open < UINT16_MAX)
		p->open++;
	a->last_start = now;
	confirm(rs->events, e);
}

static void
session_end(struct roost *rs, struct umap_entry *e, uint16_t pid,
    uint32_t now)
{
	struct act *a = act_get(rs->events, e);
	struct act_proxy *p = act_proxy(a, pid);

	/* A start the exporter dropped leaves nothing to take off. */
	if (p->open > 0)
		p->open--;
	a->last_end = now;
	confirm(rs->events, e);
}

int
events_init(struct roost *rs)
{
	struct events *ev;

	ev = xcalloc(1, sizeof(*ev));
	ev->mask = 1023;
	ev->tab = xcalloc(ev->mask + 1, sizeof(*ev->tab));
	ev->fmask = 255;
	ev->ftab = xcalloc(ev->fmask + 1, sizeof(*ev->ftab));
	TAILQ_INIT(&ev->fage);
	if ((ev->poll_ev = event_new(rs->base, -1, 0, poll_cb, rs)) == NULL) {
		free(ev->ftab);
		free(ev->tab);
		free(ev);
		return -1;
	}
	rs->events = ev;
	events_reconfigure(rs);
	return 0;
}

void
events_free(struct roost *rs)
{
	struct events *ev = rs->events;
	struct act *a, *next;
	struct flight *f;
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < ev->npolls; i++) {
		doveadm_cancel(ev->polls[i]->call);
		free(ev->polls[i]);
	}
	free(ev->polls);
	event_free(ev->poll_ev);
	for (i = 0; i <= ev->mask; i++)
		for (a = ev->tab[i]; a != NULL; a = next) {
			next = a->next;
			act_free(a);
		}
	free(ev->tab);
	while ((f = TAILQ_FIRST(&ev->fage)) != NULL) {
		TAILQ_REMOVE(&ev->fage, f, age);
		free(f);
	}
	free(ev->ftab);
	for (i = 0; i < ev->npnames; i++)
		free(ev->pnames[i]);
	free(ev->pnames);
	free(ev->plastgen);
	free(ev->pgone);
	for (i = 0; i < ev->nconfirm; i++)
		free(ev->confirm[i]);
	free(ev->confirm);
	free(ev);
	rs->events = NULL;
}

void
events_reconfigure(struct roost *rs)
{
	struct events *ev = rs->events;
	struct timeval tv = { POLL_FIRST_S, 0 };

	event_del(ev->poll_ev);
	if (rs->conf->activity_poll_interval <= 0)
		return;
	if (event_add(ev->poll_ev, &tv) == -1)
		fatalx("event_add");
}

/* --- the intake ----------------------------------------------------- */

static int
b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64 (padding optional) into out; -1 on a bad digit or no room. */
static int
b64_decode(const char *s, char *out, size_t outlen)
{
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0, v;

	for (; *s != '\0' && *s != '='; s++) {
		if ((v = b64_val((unsigned char)*s)) == -1)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= outlen)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	while (*s == '=')
		s++;
	if (*s != '\0')
		return -1;
	out[n] = '\0';
	return (int)n;
}

/*
 * The events token is the password of Basic auth (the exporter's URL is
 * http://roost:TOKEN@host/...); the user part is not checked.  Everything
 * else is 403, with no hint of what came close and never the token.
 */
static int
check_token(struct roost *rs, struct evhttp_request *req)
{
	const char *tok = rs->conf->events_token, *auth, *colon;
	char dec[AUTH_MAX];
	int n, ok = 0;

	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (tok != NULL && auth != NULL && strlen(auth) < AUTH_MAX &&
	    strncasecmp(auth, "Basic ", 6) == 0) {
		auth += 6;
		while (*auth == ' ')
			auth++;
		if ((n = b64_decode(auth, dec, sizeof(dec))) > 0 &&
		    (colon = memchr(dec, ':', (size_t)n)) != NULL)
			ok = ct_equal(colon + 1, (size_t)(dec + n - colon - 1),
			    tok, strlen(tok));
		explicit_bzero(dec, sizeof(dec));
	}
	if (ok)
		return 0;
	http_reply_error(req, 403, NULL, "events need the events token as "
	    "the password of Basic auth (http://roost:TOKEN@host/...)");
	return -1;
}

static uint32_t
clamp_now(void)
{
	return (uint32_t)now_sec();
}

/* The user an event is about, or NULL after a 400 naming fields.user. */
static const char *
event_user(struct evhttp_request *req, const char *name, json_t *fields)
{
	const char *user;

	if (!json_is_object(fields) ||
	    (user = json_string_value(json_object_get(fields, "user"))) ==
	    NULL) {
		http_reply_error(req, 400, "fields.user", "a %s event needs "
		    "fields.user, a string", name);
		return NULL;
	}
	return user;
}

/* An event from a proxy's login processes. */
static int
proxy_event(struct roost *rs, struct evhttp_request *req, const char *proxy,
    const char *name, json_t *fields)
{
	struct events *ev = rs->events;
	struct umap_entry *e;
	const char *user;
	json_t *err;
	int start, failed;

	if (strcmp(name, "proxy_session_established") == 0)
		start = 1;
	else if (strcmp(name, "proxy_session_finished") == 0)
		start = 0;
	else {
		ev->ignored++;
		return 0;
	}
	if ((user = event_user(req, name, fields)) == NULL)
		return -1;
	e = user_entry(rs, user);
	/* A finish with an error is a login that never reached a backend
	 * (a guessed name, a wrong password): no session, no proof. */
	err = json_object_get(fields, "error");
	failed = !start && json_is_string(err) &&
	    *json_string_value(err) != '\0';
	/* Either ends a login's flight; a plain finish follows a start. */
	if (e != NULL && (start || failed))
		flight_land(ev, e);
	if (failed) {
		ev->ignored++;
		return 0;
	}
	if (e == NULL || (e->flags & UMAP_F_PENDING)) {
		ev->unknown_user++;
		return 0;
	}
	if (start) {
		session_start(rs, e, proxy_id(ev, proxy), clamp_now());
		session_elsewhere(rs, e, fields);
	} else
		session_end(rs, e, proxy_id(ev, proxy), clamp_now());
	log_debug("events: %s %s on proxy %s", e->key, start ? "session "
	    "started" : "session ended", proxy);
	return 0;
}

/*
 * An event from a backend: a delivery proves the user exists, and a change
 * of the user's mail is queued for its replica (repl.c), which answers the
 * request once the queue entry is stored.  Returns 1 when the request is
 * in repl.c's hands, 0 when the caller answers, -1 after a 400.
 */
static int
backend_event(struct roost *rs, struct evhttp_request *req, long slot,
    const char *name, json_t *fields)
{
	struct events *ev = rs->events;
	struct umap_entry *e;
	const char *user;
	int prio;

	prio = repl_event_classify(name, fields);
	if (prio < 0 && strcmp(name, "mail_delivery_finished") != 0) {
		ev->ignored++;
		return 0;
	}
	if ((user = event_user(req, name, fields)) == NULL)
		return -1;
	if ((e = user_entry(rs, user)) == NULL ||
	    (e->flags & UMAP_F_PENDING)) {
		ev->unknown_user++;
		return 0;
	}
	if (prio < 0) {
		ev->ignored++;
		return 0;
	}
	if (strcmp(name, "mail_delivery_finished") == 0)
		confirm(ev, e);
	repl_change(rs, e, slot, prio, req);
	return 1;
}

void
events_handle(struct roost *rs, struct evhttp_request *req, const char *name)
{
	json_t *body = NULL, *jname;
	long pidx, slot = -1;

	if (check_token(rs, req) == -1)
		return;
	if ((pidx = state_proxy_find(rs, name)) == -1 &&
	    (slot = state_backend_find(rs, name)) == -1) {
		http_reply_error(req, 404, "name", "no proxy or backend named "
		    "%s", name);
		return;
	}
	if ((body = http_body_object(req)) == NULL)
		return;
	jname = json_object_get(body, "event");
	if (!json_is_string(jname) || *json_string_value(jname) == '\0') {
		http_reply_error(req, 400, "event", "the event's name, a "
		    "string, is required");
		goto done;
	}
	rs->events->received++;
	if (pidx != -1) {
		if (proxy_event(rs, req, rs->proxies[pidx]->name,
		    json_string_value(jname), json_object_get(body,
		    "fields")) == -1)
			goto done;
	} else {
		switch (backend_event(rs, req, slot, json_string_value(jname),
		    json_object_get(body, "fields"))) {
		case -1:
		case 1:
			goto done;
		}
	}
	evhttp_send_reply(req, 204, "No Content", NULL);
done:
	json_decref(body);
}

/* --- reconciling with the proxies ---------------------------------- */

/* Rows of proxyList: one per session (2.3) or per user with a
 * "connections" count (2.4, the same rows as who). */
static void
poll_apply(struct roost *rs, uint16_t pid, json_t *rows)
{
	struct events *ev = rs->events;
	struct umap_entry *e;
	struct act_proxy *p;
	struct act *a, **ap;
	const char *user, *conns;
	long long n;
	uint32_t now = clamp_now(), gen = ++ev->gen, prev, was;
	size_t i, idx, added = 0, ended = 0;
	json_t *row;
	int again;

	prev = ev->plastgen[pid];
	ev->plastgen[pid] = gen;
	json_array_foreach(rows, idx, row) {
		if ((user = json_string_value(json_object_get(row,
		    "username"))) == NULL)
			continue;
		if ((e = user_entry(rs, user)) == NULL ||
		    (e->flags & UMAP_F_PENDING))
			continue;
		n = 1;
		conns = json_string_value(json_object_get(row, "connections"));
		if (conns != NULL && parse_ll(conns, 1, UINT16_MAX, &n) == -1)
			n = 1;
		a = act_get(ev, e);
		p = act_proxy(a, pid);
		/* A proxy lists a login still being authenticated at the
		 * backend too (2.3): only a session seen by two polls in a
		 * row proves the user exists. */
		again = p->gen != gen && prev != 0 && p->gen == prev &&
		    p->open > 0;
		if (p->gen == gen)
			n += p->open;
		if (n > UINT16_MAX)
			n = UINT16_MAX;
		if (p->gen != gen && p->open == 0) {
			a->last_start = now;
			added++;
		}
		p->open = (uint16_t)n;
		p->gen = gen;
		if (again)
			confirm(ev, e);
	}
	/* What the proxy no longer has has ended; rows of users that lost
	 * their assignment go. */
	for (i = 0; i <= ev->mask; i++)
		for (ap = &ev->tab[i]; (a = *ap) != NULL;) {
			for (idx = 0; idx < a->nper; idx++) {
				p = &a->per[idx];
				if (p->id != pid || p->gen == gen ||
				    p->open == 0)
					continue;
				p->open = 0;
				a->last_end = now;
				ended++;
			}
			was = act_open(a);
			if (was == 0 && umap_get(rs->users, a->key,
			    a->keylen) == NULL) {
				*ap = a->next;
				act_free(a);
				ev->count--;
				continue;
			}
			ap = &a->next;
		}
	if (added > 0 || ended > 0)
		log_debug("events: proxy %s polled: %zu sessions the events "
		    "missed, %zu ended unseen", ev->pnames[pid], added, ended);
}

static void
poll_done(void *arg, const struct doveadm_result *res)
{
	struct poll *pl = arg;
	struct roost *rs = pl->rs;
	struct events *ev = rs->events;
	size_t i;

	for (i = 0; i < ev->npolls; i++)
		if (ev->polls[i] == pl) {
			ev->polls[i] = ev->polls[--ev->npolls];
			break;
		}
	if (!res->ok || !json_is_array(res->response))
		log_warnx("events: polling the sessions of proxy %s: %s",
		    ev->pnames[pl->pid], res->error ? res->error :
		    "not a list");
	else
		poll_apply(rs, pl->pid, res->response);
	free(pl);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct roost *rs = arg;
	struct events *ev = rs->events;
	struct timeval tv = { 0, 0 };
	struct poll *pl;
	struct proxy *p;
	json_t *empty;
	size_t i, j;
	uint16_t pid;

	(void)fd;
	(void)what;
	/* A proxy removed from the registry has no sessions any more: left
	 * counted, they would keep its users from ever expiring. */
	for (i = 0; i < ev->npnames; i++) {
		if (state_proxy_find(rs, ev->pnames[i]) != -1) {
			ev->pgone[i] = 0;
			continue;
		}
		if (!ev->pgone[i]) {
			empty = json_array();
			poll_apply(rs, (uint16_t)i, empty);
			json_decref(empty);
			ev->pgone[i] = 1;
		}
	}
	for (i = 0; i < rs->nproxies; i++) {
		p = rs->proxies[i];
		pid = proxy_id(ev, p->name);
		for (j = 0; j < ev->npolls; j++)
			if (ev->polls[j]->pid == pid)
				break;
		if (j < ev->npolls)
			continue;	/* the last poll is still out */
		pl = xcalloc(1, sizeof(*pl));
		pl->rs = rs;
		pl->pid = pid;
		ev->polls = xreallocarray(ev->polls, ev->npolls + 1,
		    sizeof(*ev->polls));
		ev->polls[ev->npolls++] = pl;
		pl->call = doveadm_run(rs->doveadm, p->doveadm_url,
		    p->doveadm_key, "proxyList", NULL, POLL_TIMEOUT_MS,
		    poll_done, pl);
	}
	if (rs->conf->activity_poll_interval <= 0)
		return;
	tv.tv_sec = (time_t)rs->conf->activity_poll_interval;
	if (event_add(ev->poll_ev, &tv) == -1)
		fatalx("event_add");
}

/* --- readers -------------------------------------------------------- */

int
events_user_activity(const struct roost *rs, const struct umap_entry *e,
    struct events_activity *out)
{
	const struct act *a;

	if (!(e->flags & UMAP_F_ACTIVE) ||
	    (a = act_find(rs->events, e->key, e->keylen)) == NULL)
		return 0;
	out->open = act_open(a);
	out->last_start = a->last_start;
	out->last_end = a->last_end;
	return 1;
}

json_t *
events_user_json(const struct roost *rs, const struct umap_entry *e)
{
	const struct events *ev = rs->events;
	const struct act *a = NULL;
	json_t *o, *per;
	uint16_t i;

	if (e != NULL && (e->flags & UMAP_F_ACTIVE))
		a = act_find(ev, e->key, e->keylen);
	per = json_object();
	if (a != NULL)
		for (i = 0; i < a->nper; i++)
			if (a->per[i].open > 0)
				json_object_set_new(per,
				    ev->pnames[a->per[i].id],
				    json_integer(a->per[i].open));
	o = json_pack("{s:i, s:o, s:o, s:o}",
	    "sessions", a != NULL ? (json_int_t)act_open(a) : 0,
	    "proxies", per,
	    "last_session_start", a != NULL && a->last_start ?
	    json_integer(a->last_start) : json_null(),
	    "last_session_end", a != NULL && a->last_end ?
	    json_integer(a->last_end) : json_null());
	return o;
}

void
events_user_forget(struct roost *rs, const char *key, size_t len)
{
	struct events *ev = rs->events;
	struct act *a, **ap;
	struct flight **fp;
	uint32_t h = umap_hash(key, len);

	if (*(fp = flight_slot(ev, key, len, h)) != NULL)
		flight_drop(ev, fp);
	for (ap = &ev->tab[h & ev->mask]; (a = *ap) != NULL; ap = &a->next)
		if (a->hash == h && a->keylen == len &&
		    memcmp(a->key, key, len) == 0) {
			*ap = a->next;
			act_free(a);
			ev->count--;
			return;
		}
}

size_t
events_confirm_peek(struct roost *rs, const char **keys, size_t max)
{
	struct events *ev = rs->events;
	size_t i, n = ev->nconfirm < max ? ev->nconfirm : max;

	for (i = 0; i < n; i++)
		keys[i] = ev->confirm[i];
	return n;
}

void
events_confirm_done(struct roost *rs, size_t n)
{
	struct events *ev = rs->events;
	struct umap_entry *e;
	size_t i;

	if (n > ev->nconfirm)
		n = ev->nconfirm;
	for (i = 0; i < n; i++) {
		if ((e = umap_get(rs->users, ev->confirm[i],
		    strlen(ev->confirm[i]))) != NULL)
			e->flags &= ~UMAP_F_CONFIRM_DIRTY;
		free(ev->confirm[i]);
	}
	memmove(ev->confirm, ev->confirm + n,
	    (ev->nconfirm - n) * sizeof(*ev->confirm));
	ev->nconfirm -= n;
}
