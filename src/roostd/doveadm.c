/*
 * doveadm.c: the one HTTP client roostd uses to call Dovecot: the doveadm
 * HTTP API on backends and proxies.  One libcurl multi handle per daemon,
 * driven by libevent (curl tells us which sockets and which timeout to
 * watch; we tell curl when they fire), so a slow or dead backend costs a
 * timer, never a blocked loop; the multi handle keeps connections alive
 * between calls.
 *
 * Keys travel only in the Authorization header; error texts come from
 * curl's error buffer and from what we know of the answer, and URLs with
 * user:password@ are refused before curl sees them, so no error text can
 * hold a secret.
 */
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "doveadm.h"
#include "log.h"
#include "util.h"
#include "warm.h"
#include "xmalloc.h"

#ifndef ROOST_VERSION
#define ROOST_VERSION	"0.0.0"
#endif

/* More calls to one host wait in curl's queue rather than opening ever
 * more connections to one doveadm service. */
#define DOVEADM_HOST_CONNS	16
#define DOVEADM_ERR_MAX		256
#define DOVEADM_EXIT_NOT_FOUND	68
/* curl reads a timeout of 0 as none: every call gets a bound. */
#define DOVEADM_TIMEOUT_DEFAULT	30000

struct doveadm {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	struct event		*drain;		/* reads what curl finished */
	struct doveadm_call	*calls;		/* every call not called back */
	size_t			 ncalls;
	struct warm		*warm;		/* connections opened ahead */
	unsigned long long	 seq;		/* for request tags */
};

struct doveadm_call {
	struct doveadm		*dc;
	struct doveadm_call	*prev, *next;
	CURL			*easy;		/* NULL: failed before curl */
	struct event		*later;		/* delivers such a failure */
	struct curl_slist	*headers;
	char			*req;
	char			*resp;
	size_t			 resp_len, resp_cap;
	int			 too_big;
	int			 ping;		/* GET: any 200 will do */
	int			 not_found_ok;	/* exitCode 68 is success */
	int			 took_warm;	/* this attempt's socket was
						 * opened ahead: connected */
	unsigned		 warm_held;	/* such sockets taken */
	struct sockaddr_storage	 warm_ss;	/* where they went */
	char			 tag[32];
	char			 curl_err[CURL_ERROR_SIZE];
	char			 err[DOVEADM_ERR_MAX];
	uint64_t		 t0;
	doveadm_cb		 cb;
	void			*arg;
};

/* The libevent side of one socket curl watches. */
struct doveadm_sock {
	struct doveadm		*dc;
	struct event		*ev;
};

static void	doveadm_drain(struct doveadm *);

static void
call_unlink(struct doveadm_call *c)
{
	struct doveadm *dc = c->dc;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		dc->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	dc->ncalls--;
}

static void
call_free(struct doveadm_call *c)
{
	struct curl_slist *h;

	call_unlink(c);
	for (; c->warm_held > 0; c->warm_held--)
		warm_done(c->dc->warm, (struct sockaddr *)&c->warm_ss);
	if (c->easy != NULL) {
		curl_multi_remove_handle(c->dc->multi, c->easy);
		curl_easy_cleanup(c->easy);
	}
	if (c->later != NULL)
		event_free(c->later);
	/* The Authorization line is in here: wipe it, not just free it. */
	for (h = c->headers; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(c->headers);
	free(c->req);
	free(c->resp);
	free(c);
}

/* Keep only printable ASCII, so a server's bytes cannot forge log lines. */
static void
clean_copy(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	if (len > 0)
		dst[i] = '\0';
}

static const char *
exit_meaning(int code)
{
	switch (code) {
	case 2:
		return "changed during sync, run again";
	case 64:
		return "bad usage";
	case 67:
		return "no such user";
	case 68:
		return "not found";
	case 75:
		return "temporary failure";
	case 77:
		return "permission denied";
	default:
		return "failed";
	}
}

/* Read a 200 answer: [[type, payload, tag]]. */
static void
parse_answer(struct doveadm_call *c, struct doveadm_result *r, json_t **hold)
{
	json_t *j, *one, *payload, *code;
	const char *type, *tag, *etype;
	size_t n, i;

	if ((j = json_loadb(c->resp ? c->resp : "", c->resp_len, 0,
	    NULL)) == NULL || !json_is_array(j) ||
	    !json_is_array(one = json_array_get(j, 0)) ||
	    (n = json_array_size(one)) < 3 ||
	    (type = json_string_value(json_array_get(one, 0))) == NULL ||
	    (tag = json_string_value(json_array_get(one, n - 1))) == NULL ||
	    strcmp(tag, c->tag) != 0) {
		snprintf(c->err, sizeof(c->err), "not a doveadm answer "
		    "(HTTP 200, %zu bytes)", c->resp_len);
		json_decref(j);
		return;
	}
	payload = json_array_get(one, 1);
	/*
	 * 2.3 closes the row array after the first row of a table answer
	 * (who of several users): [["doveadmResponse",[r1],r2,r3,"tag"]].
	 * The rows that spill out belong to the payload.
	 */
	if (n > 3 && json_is_array(payload)) {
		for (i = 2; i < n - 1; i++)
			if (json_is_object(json_array_get(one, i)))
				json_array_append(payload,
				    json_array_get(one, i));
	}
	*hold = j;
	if (strcmp(type, "doveadmResponse") == 0) {
		r->ok = 1;
		r->response = payload;
		return;
	}
	etype = json_string_value(json_object_get(payload, "type"));
	code = json_object_get(payload, "exitCode");
	if (strcmp(type, "error") == 0 && etype != NULL &&
	    strcmp(etype, "exitCode") == 0 && json_is_integer(code) &&
	    json_integer_value(code) > 0 && json_integer_value(code) < 256) {
		r->exit_code = (int)json_integer_value(code);
		if (r->exit_code == DOVEADM_EXIT_NOT_FOUND && c->not_found_ok) {
			r->ok = 1;
			r->exit_code = 0;
			json_decref(j);
			*hold = json_array();
			r->response = *hold;
			return;
		}
		snprintf(c->err, sizeof(c->err), "doveadm exit code %d (%s)",
		    r->exit_code, exit_meaning(r->exit_code));
		return;
	}
	if (strcmp(type, "error") == 0 && etype != NULL) {
		char clean[64];

		clean_copy(clean, sizeof(clean), etype);
		r->invalid_request = strcmp(etype, "invalidRequest") == 0;
		snprintf(c->err, sizeof(c->err), "doveadm error %s%s", clean,
		    strcmp(etype, "invalidRequest") == 0 ? " (a parameter "
		    "this Dovecot does not know)" : "");
		return;
	}
	snprintf(c->err, sizeof(c->err), "not a doveadm answer");
}

/* Turn a finished call into its result, call back, free it. */
static void
call_finish(struct doveadm_call *c, CURLcode cc)
{
	struct doveadm_result r;
	json_t *hold = NULL;
	char clean[CURL_ERROR_SIZE];
	long status = 0;

	memset(&r, 0, sizeof(r));
	r.ms = (unsigned)(now_msec_mono() - c->t0);
	if (c->easy != NULL)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (c->easy == NULL)
		;	/* c->err says why it never started */
	else if (c->too_big || cc == CURLE_FILESIZE_EXCEEDED)
		snprintf(c->err, sizeof(c->err), "answer larger than %d bytes",
		    DOVEADM_BODY_MAX);
	else if (cc == CURLE_OPERATION_TIMEDOUT) {
		status = 0;
		snprintf(c->err, sizeof(c->err), "timed out after %u ms",
		    r.ms);
	} else if (cc != CURLE_OK) {
		status = 0;
		clean_copy(clean, sizeof(clean), c->curl_err[0] != '\0' ?
		    c->curl_err : curl_easy_strerror(cc));
		snprintf(c->err, sizeof(c->err), "%s", clean);
	} else if (status == 401)
		snprintf(c->err, sizeof(c->err), "doveadm API refused the key "
		    "(HTTP 401)");
	else if (status == 400)
		snprintf(c->err, sizeof(c->err), "doveadm API refused the "
		    "request's parameters (HTTP 400)");
	else if (status != 200)
		snprintf(c->err, sizeof(c->err), "doveadm API answered HTTP "
		    "%ld", status);
	else if (c->ping)
		r.ok = 1;
	else
		parse_answer(c, &r, &hold);
	r.http_status = status;
	r.error = r.ok ? NULL : c->err;
	c->cb(c->arg, &r);
	json_decref(hold);
	call_free(c);
}

/* Calls curl has finished, one at a time: a callback may add or cancel. */
static void
doveadm_drain(struct doveadm *dc)
{
	struct doveadm_call *c;
	CURLMsg *m;
	CURLcode cc;
	int left;

	while ((m = curl_multi_info_read(dc->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		cc = m->data.result;
		c = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (c == NULL)
			continue;
		call_finish(c, cc);
	}
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct doveadm_sock *ds = arg;
	struct doveadm *dc = ds->dc;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(dc->multi, fd, flags, &running);
	doveadm_drain(dc);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct doveadm *dc = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(dc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	doveadm_drain(dc);
}

static void
on_drain(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	doveadm_drain(arg);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one socket. */
static int
sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct doveadm *dc = userp;
	struct doveadm_sock *ds = socketp;
	short events = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (ds != NULL) {
			event_free(ds->ev);
			free(ds);
			curl_multi_assign(dc->multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (ds == NULL) {
		ds = xcalloc(1, sizeof(*ds));
		ds->dc = dc;
		curl_multi_assign(dc->multi, s, ds);
	} else {
		event_free(ds->ev);
	}
	if ((ds->ev = event_new(dc->base, s, events, on_sock, ds)) == NULL ||
	    event_add(ds->ev, NULL) == -1)
		fatalx("doveadm: cannot watch a socket");
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be asked again after ms. */
static int
timer_cb(CURLM *multi, long ms, void *userp)
{
	struct doveadm *dc = userp;
	struct timeval tv;

	(void)multi;
	if (ms < 0) {
		evtimer_del(dc->timer);
		return 0;
	}
	/* Never act from inside curl: even "now" goes through the loop. */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(dc->timer, &tv);
	return 0;
}

struct doveadm *
doveadm_new(struct event_base *base)
{
	struct doveadm *dc = xcalloc(1, sizeof(*dc));

	dc->base = base;
	dc->warm = warm_new(base);
	if ((dc->multi = curl_multi_init()) == NULL ||
	    (dc->timer = evtimer_new(base, on_timer, dc)) == NULL ||
	    (dc->drain = event_new(base, -1, 0, on_drain, dc)) == NULL)
		fatalx("doveadm: cannot start the HTTP client");
	curl_multi_setopt(dc->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(dc->multi, CURLMOPT_SOCKETDATA, dc);
	curl_multi_setopt(dc->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(dc->multi, CURLMOPT_TIMERDATA, dc);
	curl_multi_setopt(dc->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)DOVEADM_HOST_CONNS);
	return dc;
}

void
doveadm_free(struct doveadm *dc)
{
	if (dc == NULL)
		return;
	while (dc->calls != NULL)
		call_free(dc->calls);
	curl_multi_cleanup(dc->multi);
	event_free(dc->timer);
	event_free(dc->drain);
	warm_free(dc->warm);
	free(dc);
}

void
doveadm_cancel(struct doveadm_call *c)
{
	if (c != NULL)
		call_free(c);
}

size_t
doveadm_running(const struct doveadm *dc)
{
	return dc->ncalls;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct doveadm_call *c = arg;
	size_t len = size * n;

	if (len > DOVEADM_BODY_MAX - c->resp_len) {
		c->too_big = 1;
		return 0;	/* curl ends the transfer */
	}
	if (c->resp_len + len + 1 > c->resp_cap) {
		c->resp_cap = (c->resp_len + len + 1) * 2;
		if (c->resp_cap > DOVEADM_BODY_MAX + 1)
			c->resp_cap = DOVEADM_BODY_MAX + 1;
		c->resp = xreallocarray(c->resp, c->resp_cap, 1);
	}
	memcpy(c->resp + c->resp_len, data, len);
	c->resp_len += len;
	c->resp[c->resp_len] = '\0';
	return len;
}

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	call_finish(arg, CURLE_OK);
}

/* Only http(s), and no credentials in the URL: they would end up in
 * curl's messages and be sent as Basic auth besides the key. */
static int
url_check(const char *url, char *err, size_t len)
{
	CURLU *u;
	char *scheme = NULL, *part = NULL;
	int rc = -1;

	if ((u = curl_url()) == NULL)
		fatalx("doveadm: out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, len, "doveadm URL does not parse");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(err, len, "doveadm URL must be http:// or https://");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
		snprintf(err, len, "doveadm URL must not hold user:password@ "
		    "(the key is given apart)");
		goto fail;
	}
	rc = 0;
fail:
	if (part != NULL) {
		explicit_bzero(part, strlen(part));
		curl_free(part);
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

/* CURLOPT_OPENSOCKETFUNCTION of a call that may use a connection opened
 * ahead: that one when it is ready, else a new socket as curl would. */
static curl_socket_t
open_sock(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct doveadm_call *c = arg;
	int fd;

	c->took_warm = 0;
	if (purpose == CURLSOCKTYPE_IPCXN && addr->socktype == SOCK_STREAM &&
	    addr->addrlen <= sizeof(c->warm_ss) &&
	    (fd = warm_take(c->dc->warm, &addr->addr, addr->addrlen)) != -1) {
		c->took_warm = 1;
		c->warm_held++;
		memcpy(&c->warm_ss, &addr->addr, addr->addrlen);
		return fd;
	}
	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC,
	    addr->protocol);
	return fd == -1 ? CURL_SOCKET_BAD : fd;
}

/* CURLOPT_SOCKOPTFUNCTION: curl must not connect what is connected. */
static int
sock_opt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	struct doveadm_call *c = arg;

	(void)fd;
	(void)purpose;
	return c->took_warm ? CURL_SOCKOPT_ALREADY_CONNECTED : CURL_SOCKOPT_OK;
}

static struct doveadm_call *
call_start(struct doveadm *dc, const char *url, const char *api_key,
    const char *command, json_t *params, unsigned timeout_ms, int warm,
    doveadm_cb cb, void *arg)
{
	struct doveadm_call *c = xcalloc(1, sizeof(*c));
	json_t *body;
	char *hdr, *b64;
	size_t klen, hlen;
	struct timeval now = { 0, 0 };
	int running;

	c->dc = dc;
	c->cb = cb;
	c->arg = arg;
	c->t0 = now_msec_mono();
	c->next = dc->calls;
	if (dc->calls != NULL)
		dc->calls->prev = c;
	dc->calls = c;
	dc->ncalls++;
	snprintf(c->tag, sizeof(c->tag), "roost%llu", ++dc->seq);

	if (command != NULL) {
		if (params == NULL)
			params = json_object();
		body = json_pack("[[s,o,s]]", command, params, c->tag);
		params = NULL;
		if (body == NULL ||
		    (c->req = json_dumps(body, JSON_COMPACT)) == NULL)
			fatalx("doveadm: cannot encode a request");
		json_decref(body);
	} else
		c->ping = 1;
	json_decref(params);

	if (url_check(url, c->err, sizeof(c->err)) == -1)
		goto later;
	if ((c->easy = curl_easy_init()) == NULL)
		fatalx("doveadm: curl_easy_init");

	klen = strlen(api_key ? api_key : "");
	b64 = xmalloc(4 * ((klen + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)
	    (api_key ? api_key : ""), (int)klen);
	hlen = strlen(b64) + 64;
	hdr = xmalloc(hlen);
	snprintf(hdr, hlen, "Authorization: X-Dovecot-API %s", b64);
	c->headers = curl_slist_append(c->headers, hdr);
	explicit_bzero(hdr, hlen);
	explicit_bzero(b64, strlen(b64));
	free(hdr);
	free(b64);
	c->headers = curl_slist_append(c->headers,
	    "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Accept: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	if (c->headers == NULL)
		fatalx("doveadm: out of memory");

	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	if (c->req != NULL) {
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req);
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(c->req));
	}
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ?
	    timeout_ms : DOVEADM_TIMEOUT_DEFAULT));
	curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->easy, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)DOVEADM_BODY_MAX);
	curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "roostd/" ROOST_VERSION);
	if (warm) {
		curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETFUNCTION, open_sock);
		curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETDATA, c);
		curl_easy_setopt(c->easy, CURLOPT_SOCKOPTFUNCTION, sock_opt);
		curl_easy_setopt(c->easy, CURLOPT_SOCKOPTDATA, c);
	}
	if (curl_multi_add_handle(dc->multi, c->easy) != CURLM_OK) {
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
		snprintf(c->err, sizeof(c->err), "cannot start the call");
		goto later;
	}
	/* Sent now, not at the loop's next turn: a sync's request is then
	 * on its way before the store write of the event that asked for it,
	 * and that write is not what a delivery's replication lag should
	 * wait on.  What curl finished meanwhile is called back from the
	 * loop, never from inside this call. */
	curl_multi_socket_action(dc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	event_active(dc->drain, EV_TIMEOUT, 0);
	return c;
later:
	if ((c->later = evtimer_new(dc->base, on_later, c)) == NULL ||
	    evtimer_add(c->later, &now) == -1)
		fatalx("doveadm: cannot schedule a callback");
	return c;
}

struct doveadm_call *
doveadm_run(struct doveadm *dc, const char *url, const char *api_key,
    const char *command, json_t *params, unsigned timeout_ms, doveadm_cb cb,
    void *arg)
{
	return call_start(dc, url, api_key, command, params, timeout_ms, 0,
	    cb, arg);
}

struct doveadm_call *
doveadm_run_warm(struct doveadm *dc, const char *url, const char *api_key,
    const char *command, json_t *params, unsigned timeout_ms, doveadm_cb cb,
    void *arg)
{
	return call_start(dc, url, api_key, command, params, timeout_ms, 1,
	    cb, arg);
}

size_t
doveadm_warm_ready(const struct doveadm *dc)
{
	return warm_ready(dc->warm);
}

struct doveadm_call *
doveadm_ping(struct doveadm *dc, const char *url, const char *api_key,
    unsigned timeout_ms, doveadm_cb cb, void *arg)
{
	return call_start(dc, url, api_key, NULL, NULL, timeout_ms, 0, cb, arg);
}

struct doveadm_call *
doveadm_kick_user(struct doveadm *dc, const char *url, const char *api_key,
    const char *user, unsigned timeout_ms, doveadm_cb cb, void *arg)
{
	struct doveadm_call *c;

	c = call_start(dc, url, api_key, "kick", json_pack("{s:[s]}", "mask",
	    user), timeout_ms, 0, cb, arg);
	c->not_found_ok = 1;	/* 2.3: nobody was logged in */
	return c;
}

struct doveadm_call *
doveadm_kick_field(struct doveadm *dc, const char *url, const char *api_key,
    enum doveadm_version v, const char *field, const char *value,
    unsigned timeout_ms, doveadm_cb cb, void *arg)
{
	/* 2.3 names the value "user" and has -f only on proxy kick; 2.4's
	 * kick takes -f itself, the value as the mask. */
	if (v == DOVEADM_V23)
		return call_start(dc, url, api_key, "proxyKick",
		    json_pack("{s:s,s:[s]}", "passdbField", field, "user",
		    value), timeout_ms, 0, cb, arg);
	return call_start(dc, url, api_key, "kick", json_pack("{s:s,s:[s]}",
	    "passdbField", field, "mask", value), timeout_ms, 0, cb, arg);
}

struct doveadm_call *
doveadm_who_user(struct doveadm *dc, const char *url, const char *api_key,
    const char *user, unsigned timeout_ms, doveadm_cb cb, void *arg)
{
	return call_start(dc, url, api_key, "who", json_pack("{s:[s]}", "mask",
	    user), timeout_ms, 0, cb, arg);
}
