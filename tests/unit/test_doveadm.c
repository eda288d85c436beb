/*
 * test_doveadm.c: the doveadm HTTP API client against a fake doveadm
 * server (evhttp on 127.0.0.1) on the same event loop: what goes on the
 * wire (request line, body, the X-Dovecot-API header), how each kind of
 * answer reaches the callback (a response, an exit code, 401, 400, a
 * server that never answers, a refused connection, an oversized body),
 * that a cancelled call never calls back, that 200 calls at once all end,
 * that the key shows up in no error text, and that a sync goes out on a
 * connection opened ahead when one is ready (doveadm_run_warm), at once,
 * with the next one opened only after it.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "doveadm.h"

#define KEY		"s3cret-Key-never-shown"
#define KEY_B64		"czNjcmV0LUtleS1uZXZlci1zaG93bg=="

/* What the fake server saw last, and how it answers. */
struct fake {
	struct event_base	*base;
	struct evhttp		*http;
	unsigned short		 port;
	char			 url[128];
	char			 mode[32];	/* "ok", "exit67", "401", ... */
	unsigned		 requests;
	char			 method[16];
	char			 uri[128];
	char			 auth[256];
	char			 ctype[128];
	char			*body;
	int			 close;		/* answer Connection: close, as
						 * 2.3 does */
	struct bufferevent	*accepted[64];	/* connections, in order */
	unsigned		 naccepted;
	int			 conn;		/* of the last request: index in
						 * accepted, -1 unknown */
};

/* One call's outcome, copied out of the callback. */
struct outcome {
	int		 done;
	int		 ok;
	long		 http_status;
	int		 exit_code;
	char		 error[512];
	char		*response;	/* JSON text of the payload */
	unsigned	 ms;
};

static struct fake	*F;

static void
fake_reply(struct evhttp_request *req, int code, const char *text)
{
	struct evbuffer *out = evbuffer_new();

	evbuffer_add(out, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	if (F->close)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "No", out);
	evbuffer_free(out);
}

/* Which accepted connection a request came on. */
static int
conn_index(struct fake *f, struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(
	    evhttp_request_get_connection(req));
	unsigned i;

	/* From the newest: a closed connection's memory may be reused. */
	for (i = f->naccepted; i > 0; i--)
		if (f->accepted[i - 1] == bev)
			return (int)i - 1;
	return -1;
}

/* evhttp makes each accepted connection's bufferevent here: a record of
 * the connections in the order they were accepted. */
static struct bufferevent *
fake_accept(struct event_base *base, void *arg)
{
	struct fake *f = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE);

	if (f->naccepted < sizeof(f->accepted) / sizeof(f->accepted[0]))
		f->accepted[f->naccepted++] = bev;
	return bev;
}

static void
fake_handle(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *v;
	char *big;
	size_t n;

	f->requests++;
	f->conn = conn_index(f, req);
	snprintf(f->method, sizeof(f->method), "%s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" :
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "?");
	snprintf(f->uri, sizeof(f->uri), "%s", evhttp_request_get_uri(req));
	v = evhttp_find_header(h, "Authorization");
	snprintf(f->auth, sizeof(f->auth), "%s", v ? v : "");
	v = evhttp_find_header(h, "Content-Type");
	snprintf(f->ctype, sizeof(f->ctype), "%s", v ? v : "");
	free(f->body);
	n = evbuffer_get_length(in);
	f->body = calloc(1, n + 1);
	evbuffer_copyout(in, f->body, n);

	if (strcmp(f->mode, "silent") == 0)
		return;		/* never answers; evhttp_free cleans up */
	if (strcmp(f->mode, "401") == 0)
		fake_reply(req, 401, "");
	else if (strcmp(f->mode, "400") == 0)
		fake_reply(req, 400, "");
	else if (strcmp(f->mode, "junk") == 0)
		fake_reply(req, 200, "<html>" KEY "</html>");
	else if (strcmp(f->mode, "big") == 0) {
		n = DOVEADM_BODY_MAX + 1;
		big = malloc(n + 1);
		memset(big, ' ', n);
		big[0] = '[';
		big[n - 1] = ']';
		big[n] = '\0';
		fake_reply(req, 200, big);
		free(big);
	} else {
		/* Echo the tag the client sent, as Dovecot does. */
		json_t *j = json_loads(f->body, 0, NULL), *ans;
		const char *tag = "?";
		char *text;

		if (json_is_array(json_array_get(j, 0)))
			tag = json_string_value(json_array_get(
			    json_array_get(j, 0), 2));
		ans = json_pack("[[s,[{s:s,s:i}],s]]", "doveadmResponse",
		    "username", "alice", "connections", 2, tag ? tag : "?");
		text = json_dumps(ans, JSON_COMPACT);
		fake_reply(req, 200, text);
		free(text);
		json_decref(ans);
		json_decref(j);
	}
}

/* The exit-code answer must carry the caller's tag: patch it in. */
static void
fake_handle_tagged(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;

	if (strcmp(f->mode, "exit67") == 0 || strcmp(f->mode, "who23") == 0) {
		json_t *j;
		const char *tag = "?";
		char text[256];
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		char *body = calloc(1, n + 1);

		evbuffer_copyout(in, body, n);
		f->requests++;
		free(f->body);
		f->body = body;
		j = json_loads(body, 0, NULL);
		if (json_is_array(json_array_get(j, 0)))
			tag = json_string_value(json_array_get(
			    json_array_get(j, 0), 2));
		if (strcmp(f->mode, "who23") == 0)
			/* 2.3's shape for a table of several rows. */
			snprintf(text, sizeof(text), "[[\"doveadmResponse\","
			    "[{\"username\":\"u3\"}],{\"username\":\"u1\"},"
			    "{\"username\":\"u2\"},\"%s\"]]", tag ? tag : "?");
		else
			snprintf(text, sizeof(text), "[[\"error\",{\"type\":"
			    "\"exitCode\",\"exitCode\":67},\"%s\"]]",
			    tag ? tag : "?");
		json_decref(j);
		fake_reply(req, 200, text);
		return;
	}
	fake_handle(req, arg);
}

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, fake_handle_tagged, f);
	evhttp_set_bevcb(f->http, fake_accept, f);
	f->conn = -1;
	bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	assert_non_null(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin,
	    &len);
	f->port = ntohs(sin.sin_port);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/doveadm/v1",
	    f->port);
	snprintf(f->mode, sizeof(f->mode), "ok");
	F = f;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake *f = *state;

	evhttp_free(f->http);
	event_base_free(f->base);
	free(f->body);
	free(f);
	F = NULL;
	return 0;
}

static void
record(void *arg, const struct doveadm_result *r)
{
	struct outcome *o = arg;

	o->done++;
	o->ok = r->ok;
	o->http_status = r->http_status;
	o->exit_code = r->exit_code;
	snprintf(o->error, sizeof(o->error), "%s", r->error ? r->error : "");
	o->response = r->response ? json_dumps(r->response, JSON_COMPACT) :
	    NULL;
	o->ms = r->ms;
}

/* Run the loop until the outcome is in (or a generous bound passes). */
static void
wait_for(struct fake *f, struct doveadm *dc, int *flag, unsigned max_ms)
{
	struct timeval tv = { 0, 10 * 1000 };
	unsigned waited = 0;

	while (!*flag && waited < max_ms) {
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
		waited += 10;
	}
	(void)dc;
}

static void
run_one(struct fake *f, const char *mode, const char *url, unsigned timeout,
    struct outcome *o)
{
	struct doveadm *dc = doveadm_new(f->base);

	memset(o, 0, sizeof(*o));
	snprintf(f->mode, sizeof(f->mode), "%s", mode);
	assert_non_null(doveadm_run(dc, url, KEY, "who",
	    json_pack("{s:[s]}", "mask", "alice"), timeout, record, o));
	assert_int_equal(o->done, 0);	/* never from inside doveadm_run */
	wait_for(f, dc, &o->done, 10000);
	assert_int_equal(o->done, 1);
	assert_int_equal(doveadm_running(dc), 0);
	doveadm_free(dc);
	assert_null(strstr(o->error, KEY));
	assert_null(strstr(o->error, KEY_B64));
}

static void
test_request_and_success(void **state)
{
	struct fake *f = *state;
	struct outcome o;
	json_t *j;

	run_one(f, "ok", f->url, 5000, &o);
	assert_string_equal(f->method, "POST");
	assert_string_equal(f->uri, "/doveadm/v1");
	assert_string_equal(f->auth, "X-Dovecot-API " KEY_B64);
	assert_string_equal(f->ctype, "application/json");
	j = json_loads(f->body, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_array(j) && json_array_size(j) == 1);
	assert_string_equal(json_string_value(json_array_get(
	    json_array_get(j, 0), 0)), "who");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    json_array_get(json_array_get(j, 0), 1), "mask"), 0)), "alice");
	assert_true(json_is_string(json_array_get(json_array_get(j, 0), 2)));
	json_decref(j);
	assert_int_equal(o.ok, 1);
	assert_int_equal(o.http_status, 200);
	assert_int_equal(o.exit_code, 0);
	assert_string_equal(o.response,
	    "[{\"username\":\"alice\",\"connections\":2}]");
	free(o.response);
}

static void
test_exit_code(void **state)
{
	struct fake *f = *state;
	struct outcome o;

	run_one(f, "exit67", f->url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 200);
	assert_int_equal(o.exit_code, 67);
	assert_non_null(strstr(o.error, "67"));
	free(o.response);
}

/* 2.3 spills the rows after the first out of the row array. */
static void
test_who_rows_of_23(void **state)
{
	struct fake *f = *state;
	struct outcome o;

	run_one(f, "who23", f->url, 5000, &o);
	assert_int_equal(o.ok, 1);
	assert_string_equal(o.response, "[{\"username\":\"u3\"},"
	    "{\"username\":\"u1\"},{\"username\":\"u2\"}]");
	free(o.response);
}

static void
test_401_and_400(void **state)
{
	struct fake *f = *state;
	struct outcome o;

	run_one(f, "401", f->url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 401);
	assert_non_null(strstr(o.error, "refused the key"));
	run_one(f, "400", f->url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 400);
	assert_non_null(strstr(o.error, "400"));
	run_one(f, "junk", f->url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 200);
	assert_non_null(strstr(o.error, "not a doveadm answer"));
}

static void
test_silent_server_times_out(void **state)
{
	struct fake *f = *state;
	struct outcome o;

	run_one(f, "silent", f->url, 300, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 0);
	assert_non_null(strstr(o.error, "timed out"));
	assert_in_range(o.ms, 250, 2000);
}

static void
test_refused_and_bad_urls(void **state)
{
	struct fake *f = *state;
	struct outcome o;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char url[128];
	int s;

	/* A port nobody listens on: bind one, note it, close it. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(s, (struct sockaddr *)&sin, &len);
	close(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/doveadm/v1",
	    ntohs(sin.sin_port));
	run_one(f, "ok", url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(o.http_status, 0);
	assert_true(o.error[0] != '\0');

	/* Credentials in the URL and other schemes are refused, later. */
	snprintf(url, sizeof(url), "http://doveadm:" KEY "@127.0.0.1:%u/",
	    f->port);
	f->requests = 0;
	run_one(f, "ok", url, 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(f->requests, 0);
	run_one(f, "ok", "file:///etc/passwd", 5000, &o);
	assert_int_equal(o.ok, 0);
	assert_int_equal(f->requests, 0);
	run_one(f, "ok", "gopher://127.0.0.1/", 5000, &o);
	assert_int_equal(o.ok, 0);
}

static void
test_oversized_body_refused(void **state)
{
	struct fake *f = *state;
	struct outcome o;

	run_one(f, "big", f->url, 10000, &o);
	assert_int_equal(o.ok, 0);
	assert_null(o.response);
	assert_non_null(strstr(o.error, "larger than"));
}

static void
never(void *arg, const struct doveadm_result *r)
{
	(void)arg;
	(void)r;
	fail_msg("a cancelled call called back");
}

static void
test_cancel(void **state)
{
	struct fake *f = *state;
	struct doveadm *dc = doveadm_new(f->base);
	struct doveadm_call *c1, *c2;
	struct outcome o;

	memset(&o, 0, sizeof(o));
	snprintf(f->mode, sizeof(f->mode), "silent");
	c1 = doveadm_run(dc, f->url, KEY, "who", NULL, 5000, never, NULL);
	c2 = doveadm_run(dc, "http://a:b@127.0.0.1:1/", KEY, "who", NULL,
	    5000, never, NULL);
	assert_int_equal(doveadm_running(dc), 2);
	doveadm_cancel(c2);
	wait_for(f, dc, &o.done, 200);		/* c1 reaches the server */
	doveadm_cancel(c1);
	assert_int_equal(doveadm_running(dc), 0);
	wait_for(f, dc, &o.done, 300);		/* nothing calls back */
	/* Freeing the client cancels what is left, without callbacks. */
	doveadm_run(dc, f->url, KEY, "who", NULL, 5000, never, NULL);
	wait_for(f, dc, &o.done, 100);
	doveadm_free(dc);
	wait_for(f, dc, &o.done, 100);
}

#define MANY	200

struct many {
	unsigned	 done;
	unsigned	 ok;
	int		 all;
};

static void
count(void *arg, const struct doveadm_result *r)
{
	struct many *m = arg;

	m->done++;
	if (r->ok)
		m->ok++;
	if (m->done == MANY)
		m->all = 1;
}

static void
test_many_at_once(void **state)
{
	struct fake *f = *state;
	struct doveadm *dc = doveadm_new(f->base);
	struct many m = { 0, 0, 0 };
	int i;

	snprintf(f->mode, sizeof(f->mode), "ok");
	for (i = 0; i < MANY; i++)
		doveadm_run(dc, f->url, KEY, "who", json_pack("{s:[s]}",
		    "mask", "alice"), 10000, count, &m);
	assert_int_equal(doveadm_running(dc), MANY);
	wait_for(f, dc, &m.all, 20000);
	assert_int_equal(m.done, MANY);
	assert_int_equal(m.ok, MANY);
	assert_int_equal(doveadm_running(dc), 0);
	doveadm_free(dc);
}

static void
test_who_and_kick_helpers(void **state)
{
	struct fake *f = *state;
	struct doveadm *dc = doveadm_new(f->base);
	struct outcome o;
	json_t *j, *cmd;

	memset(&o, 0, sizeof(o));
	snprintf(f->mode, sizeof(f->mode), "ok");
	doveadm_who_user(dc, f->url, KEY, "alice", 5000, record, &o);
	wait_for(f, dc, &o.done, 5000);
	assert_int_equal(o.ok, 1);
	free(o.response);
	j = json_loads(f->body, 0, NULL);
	cmd = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), "who");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    json_array_get(cmd, 1), "mask"), 0)), "alice");
	json_decref(j);

	memset(&o, 0, sizeof(o));
	doveadm_kick_user(dc, f->url, KEY, "alice", 5000, record, &o);
	wait_for(f, dc, &o.done, 5000);
	free(o.response);
	j = json_loads(f->body, 0, NULL);
	cmd = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), "kick");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    json_array_get(cmd, 1), "mask"), 0)), "alice");
	json_decref(j);

	memset(&o, 0, sizeof(o));
	doveadm_kick_field(dc, f->url, KEY, DOVEADM_V24, "user_roost_backend",
	    "b1", 5000, record, &o);
	wait_for(f, dc, &o.done, 5000);
	free(o.response);
	j = json_loads(f->body, 0, NULL);
	cmd = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), "kick");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(cmd, 1), "passdbField")), "user_roost_backend");
	json_decref(j);
	doveadm_free(dc);
}

static void
call_and_wait(struct fake *f, struct doveadm *dc, int warm,
    struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	assert_non_null((warm ? doveadm_run_warm : doveadm_run)(dc, f->url,
	    KEY, "who", json_pack("{s:[s]}", "mask", "alice"), 5000, record,
	    o));
	wait_for(f, dc, &o->done, 10000);
	assert_int_equal(o->done, 1);
	assert_int_equal(o->ok, 1);
	free(o->response);
}

/* Run the loop until a connection opened ahead is ready. */
static void
wait_warm(struct fake *f, struct doveadm *dc)
{
	struct timeval tv = { 0, 10 * 1000 };
	unsigned waited;

	for (waited = 0; doveadm_warm_ready(dc) == 0 && waited < 5000;
	    waited += 10) {
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	assert_int_equal(doveadm_warm_ready(dc), 1);
}

/*
 * A server that closes after each answer (2.3): after the first sync a
 * connection is opened ahead, the next sync's request comes on it (one
 * that the server accepted before the call was made), and another is
 * opened for the one after.  Calls that are not syncs never take it.
 */
static void
test_warm_connection_opened_ahead(void **state)
{
	struct fake *f = *state;
	struct doveadm *dc = doveadm_new(f->base);
	struct outcome o;
	unsigned before;
	int first;

	f->close = 1;
	assert_int_equal(doveadm_warm_ready(dc), 0);
	call_and_wait(f, dc, 1, &o);
	first = f->conn;
	assert_true(first >= 0);
	wait_warm(f, dc);
	before = f->naccepted;
	assert_true(before >= 2);

	call_and_wait(f, dc, 1, &o);
	assert_true(f->conn >= 0);
	assert_true((unsigned)f->conn < before);	/* accepted before */
	assert_true(f->conn != first);
	wait_warm(f, dc);				/* the next one */

	before = f->naccepted;
	call_and_wait(f, dc, 0, &o);
	assert_true((unsigned)f->conn >= before);	/* a new one */
	assert_int_equal(doveadm_warm_ready(dc), 1);	/* still there */
	assert_int_equal(f->requests, 3);
	doveadm_free(dc);
}

/*
 * A sync on a connection opened ahead is on the wire when the call
 * returns, before the loop runs again (the caller's store write comes
 * after it), and the next connection is opened only once that call is
 * over: opening one makes Dovecot read its configuration, which would
 * compete with the sync for the CPU.
 */
static void
test_warm_sync_sent_at_once_next_opened_after(void **state)
{
	struct fake *f = *state;
	struct doveadm *dc = doveadm_new(f->base);
	struct doveadm_call *c;
	struct outcome o;
	struct timeval tv = { 0, 300 * 1000 };
	unsigned before;
	int pending = 0;

	f->close = 1;
	call_and_wait(f, dc, 1, &o);
	wait_warm(f, dc);
	before = f->naccepted;

	snprintf(f->mode, sizeof(f->mode), "silent");
	memset(&o, 0, sizeof(o));
	c = doveadm_run_warm(dc, f->url, KEY, "sync", json_pack("{s:s}",
	    "user", "alice"), 5000, record, &o);
	assert_non_null(c);
	assert_int_equal(ioctl(bufferevent_getfd(f->accepted[before - 1]),
	    FIONREAD, &pending), 0);
	assert_true(pending > 0);
	assert_int_equal(o.done, 0);

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
	assert_int_equal(f->requests, 2);	/* it came on that one */
	assert_int_equal(f->conn, (int)before - 1);
	assert_int_equal(f->naccepted, before);	/* and nothing new */
	assert_int_equal(doveadm_warm_ready(dc), 0);

	doveadm_cancel(c);
	wait_warm(f, dc);
	assert_int_equal(f->naccepted, before + 1);
	assert_int_equal(o.done, 0);
	doveadm_free(dc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_and_success,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_who_rows_of_23, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_exit_code, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_401_and_400, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_silent_server_times_out,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_and_bad_urls,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_body_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_at_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_who_and_kick_helpers,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_warm_connection_opened_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_warm_sync_sent_at_once_next_opened_after, setup,
		    teardown),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
