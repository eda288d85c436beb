/*
 * probe_banner.c: is a backend's mail service really serving?  Connect,
 * read the greeting and go one step further where the protocol has one
 * (LMTP LHLO, Submission EHLO, an optional IMAP LOGIN with a test
 * account), then say goodbye.  A port that accepts but never greets, a
 * "* BYE" greeting or a refused test login all fail, which a bare TCP
 * connect would not notice.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "backend.h"
#include "probe.h"
#include "util.h"
#include "xmalloc.h"

#define PROBE_LINE_MAX	8192	/* a greeting line longer than this is junk */
#define PROBE_HELO	"roost.probe"

enum step {
	STEP_GREETING,		/* waiting for the greeting */
	STEP_REPLY,		/* waiting for the answer to LHLO/EHLO/LOGIN */
	STEP_CLOSING		/* goodbye sent; done when the server closes
				 * (so that TLS, too, delivers the goodbye) */
};

struct probe {
	struct bufferevent	*bev;
	struct event		*deadline;
	enum proto		 proto;
	enum step		 step;
	char			*user;
	char			*pass;
	SSL_CTX			*tls;		/* TLS once connected; NULL: plain */
	char			*sni;		/* server name for TLS, if a name */
	char			 err[160];	/* set before an early failure */
	uint64_t		 t0;
	probe_done_cb		 cb;
	void			*arg;
};

static void
probe_destroy(struct probe *p)
{
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	if (p->deadline != NULL)
		event_free(p->deadline);
	free(p->user);
	free(p->sni);
	if (p->pass != NULL) {
		explicit_bzero(p->pass, strlen(p->pass));
		free(p->pass);
	}
	free(p);
}

void
probe_cancel(struct probe *p)
{
	if (p != NULL)
		probe_destroy(p);
}

static void
probe_finish(struct probe *p, int ok, const char *err)
{
	unsigned ms = (unsigned)(now_msec_mono() - p->t0);

	p->cb(p->arg, ok, ok ? NULL : err, ms);
	probe_destroy(p);
}

/* What the server said, fit for a log line: printable ASCII, bounded. */
static void
probe_fail_said(struct probe *p, const char *what, const char *line)
{
	char clean[96], msg[200];
	size_t i;

	for (i = 0; line[i] != '\0' && i < sizeof(clean) - 1; i++)
		clean[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
	clean[i] = '\0';
	snprintf(msg, sizeof(msg), "%s: \"%s\"", what, clean);
	probe_finish(p, 0, msg);
}

static void
probe_send(struct probe *p, const char *text)
{
	bufferevent_write(p->bev, text, strlen(text));
}

static void
probe_goodbye(struct probe *p, const char *text)
{
	p->step = STEP_CLOSING;
	probe_send(p, text);
}

/* An IMAP quoted string; the backend fields refuse CR, LF and NUL. */
static void
imap_quoted(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add(out, "\\", 1);
		evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static int
starts(const char *line, const char *prefix)
{
	return strncmp(line, prefix, strlen(prefix)) == 0;
}

/* One line of the dialogue; returns 1 when the probe has finished. */
static int
probe_line(struct probe *p, const char *line)
{
	struct evbuffer *out;

	switch (p->proto) {
	case PROTO_IMAP:
		if (p->step == STEP_GREETING) {
			if (!starts(line, "* OK"))
				goto bad_greeting;
			if (p->user == NULL) {
				probe_goodbye(p, "R2 LOGOUT\r\n");
				return 0;
			}
			out = bufferevent_get_output(p->bev);
			evbuffer_add_printf(out, "R1 LOGIN ");
			imap_quoted(out, p->user);
			evbuffer_add(out, " ", 1);
			imap_quoted(out, p->pass);
			evbuffer_add(out, "\r\n", 2);
			p->step = STEP_REPLY;
			return 0;
		}
		if (p->step == STEP_REPLY) {
			if (starts(line, "* "))
				return 0;
			if (starts(line, "R1 OK")) {
				probe_goodbye(p, "R2 LOGOUT\r\n");
				return 0;
			}
			probe_fail_said(p, "test login refused", line);
			return 1;
		}
		return 0;
	case PROTO_POP3:
		if (p->step != STEP_GREETING)
			return 0;
		if (!starts(line, "+OK"))
			goto bad_greeting;
		probe_goodbye(p, "QUIT\r\n");
		return 0;
	case PROTO_LMTP:
	case PROTO_SUBMISSION:
		if (p->step == STEP_GREETING) {
			if (!starts(line, "220"))
				goto bad_greeting;
			/* A multi-line greeting ("220-") goes on. */
			if (line[3] == '-')
				return 0;
			probe_send(p, p->proto == PROTO_LMTP ?
			    "LHLO " PROBE_HELO "\r\n" : "EHLO " PROBE_HELO "\r\n");
			p->step = STEP_REPLY;
			return 0;
		}
		if (p->step == STEP_REPLY) {
			if (starts(line, "250-"))
				return 0;
			if (starts(line, "250 ") || strcmp(line, "250") == 0) {
				probe_goodbye(p, "QUIT\r\n");
				return 0;
			}
			probe_fail_said(p, p->proto == PROTO_LMTP ?
			    "LHLO refused" : "EHLO refused", line);
			return 1;
		}
		return 0;
	case PROTO_SIEVE:
		/* Capabilities are quoted lines; the greeting ends "OK". */
		if (p->step != STEP_GREETING || line[0] == '"')
			return 0;
		if (!starts(line, "OK"))
			goto bad_greeting;
		probe_goodbye(p, "LOGOUT\r\n");
		return 0;
	default:
		probe_finish(p, 0, "no probe for this protocol");
		return 1;
	}
bad_greeting:
	probe_fail_said(p, "unexpected greeting", line);
	return 1;
}

static void
probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;
	int done;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		done = probe_line(p, line);
		free(line);
		if (done)
			return;
	}
	if (evbuffer_get_length(in) > PROBE_LINE_MAX)
		probe_finish(p, 0, "a line longer than 8 KiB");
}


static void	probe_event_cb(struct bufferevent *, short, void *);

/*
 * TCP is up: run TLS over it.  The certificate is not checked here: the
 * proxy checks it on every login; the probe asks whether the service
 * answers behind its TLS.
 */
static void
probe_start_tls(struct probe *p)
{
	struct bufferevent *tls;
	SSL *ssl;

	if ((ssl = SSL_new(p->tls)) == NULL)
		fatalx("probe: SSL_new failed");
	if (p->sni != NULL)
		SSL_set_tlsext_host_name(ssl, p->sni);
	tls = bufferevent_openssl_filter_new(bufferevent_get_base(p->bev),
	    p->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL)
		fatalx("probe: no TLS bufferevent");
	/* Servers often close without a TLS close_notify after a goodbye. */
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	p->bev = tls;
	bufferevent_setcb(tls, probe_read_cb, NULL, probe_event_cb,
	    p);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

static void
probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe *p = arg;
	char msg[160], ebuf[120];
	unsigned long ossl;
	int dnserr, err;

	if (what & BEV_EVENT_CONNECTED) {
		if (p->tls != NULL && bufferevent_get_underlying(bev) == NULL)
			probe_start_tls(p);
		return;
	}
	/* After our goodbye, any close is the server's answer to it. */
	if (p->step == STEP_CLOSING) {
		probe_finish(p, 1, NULL);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		probe_finish(p, 0, "connection closed before the dialogue ended");
		return;
	}
	if (bufferevent_get_underlying(bev) != NULL &&
	    (ossl = bufferevent_get_openssl_error(bev)) != 0) {
		ERR_error_string_n(ossl, ebuf, sizeof(ebuf));
		snprintf(msg, sizeof(msg), "TLS: %s", ebuf);
	} else if (bufferevent_get_underlying(bev) == NULL &&
	    (dnserr = bufferevent_socket_get_dns_error(bev)) != 0)
		snprintf(msg, sizeof(msg), "resolving: %s",
		    evutil_gai_strerror(dnserr));
	else if ((err = EVUTIL_SOCKET_ERROR()) != 0)
		snprintf(msg, sizeof(msg), "%s", evutil_socket_error_to_string(err));
	else
		snprintf(msg, sizeof(msg), "connection error");
	probe_finish(p, 0, msg);
}

static void
probe_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	(void)fd;
	(void)what;
	/* A service that answered everything but then lingers on our
	 * goodbye has still passed. */
	if (p->step == STEP_CLOSING)
		probe_finish(p, 1, NULL);
	else
		probe_finish(p, 0, p->err[0] != '\0' ? p->err : "timed out");
}

struct probe *
probe_banner_start(struct event_base *base, struct evdns_base *dns,
    const struct probe_spec *spec, probe_done_cb cb, void *arg)
{
	struct probe *p;
	struct timeval tv;

	p = xcalloc(1, sizeof(*p));
	p->proto = spec->proto;
	p->cb = cb;
	p->arg = arg;
	p->t0 = now_msec_mono();
	if (spec->proto == PROTO_IMAP && spec->login_user != NULL &&
	    spec->login_pass != NULL) {
		p->user = xstrdup(spec->login_user);
		p->pass = xstrdup(spec->login_pass);
	}
	p->tls = spec->tls;
	if (p->tls != NULL && !is_ip_literal(spec->host))
		p->sni = xstrdup(spec->host);
	if ((p->deadline = evtimer_new(base, probe_deadline_cb, p)) == NULL ||
	    (p->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("probe: out of event resources");
	bufferevent_setcb(p->bev, probe_read_cb, NULL,
	    probe_event_cb, p);
	tv.tv_sec = spec->timeout_ms / 1000;
	tv.tv_usec = (spec->timeout_ms % 1000) * 1000;
	if (bufferevent_enable(p->bev, EV_READ | EV_WRITE) == -1 ||
	    bufferevent_socket_connect_hostname(p->bev, dns, AF_UNSPEC,
	    spec->host, spec->port) == -1) {
		/* Report on the next loop pass, never from inside start. */
		snprintf(p->err, sizeof(p->err), "connect: %s",
		    strerror(errno ? errno : ECONNREFUSED));
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	}
	evtimer_add(p->deadline, &tv);
	return p;
}
