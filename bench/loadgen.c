/*
 * loadgen.c: roost-loadgen, a load generator for Dovecot logins and LMTP
 * deliveries.  N clients share one libevent loop; each repeats one whole
 * operation (IMAP: connect, LOGIN, LOGOUT; LMTP: connect, one delivery,
 * QUIT) and the tool reports operations per second, errors by kind and the
 * latency of whole operations.  It talks only to loopback and always stops by
 * itself, so it can neither be aimed at someone else's server nor be left
 * running.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "hist.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define OP_TIMEOUT_MS	5000	/* a whole operation, connect included */
#define LINGER_MS	1000	/* wait for the server to close first */
#define BACKOFF_MS	10	/* after an error: no busy loop on a dead port */
#define LINE_MAX_LEN	16384
#define DURATION_MAX	600
#define DURATION_DEF	10
#define COUNT_MAX	10000000LL
#define CLIENTS_MAX	1000
#define USERS_MAX	10000000LL
#define STR_MAX		255
#define ERRLOG_MAX	5	/* error details shown on stderr */

enum mode { MODE_IMAP, MODE_LMTP };

enum err_kind {
	ERR_NONE = 0,
	ERR_CONNECT,
	ERR_TIMEOUT,
	ERR_CLOSED,
	ERR_NO,
	ERR_BAD,
	ERR_4XX,
	ERR_5XX,
	ERR_PROTOCOL,
	ERR_MAX
};

static const char *err_names[ERR_MAX] = {
	"ok", "connect", "timeout", "closed", "no", "bad", "4xx", "5xx",
	"protocol"
};

enum cstate {
	CS_IDLE,		/* between operations, or finished */
	CS_CONNECTING,
	CS_GREETING,
	CS_LOGIN,		/* IMAP */
	CS_LOGOUT,
	CS_LHLO,		/* LMTP */
	CS_MAIL,
	CS_RCPT,
	CS_DATA,
	CS_BODY,
	CS_QUIT,
	CS_LINGER		/* done; waiting for the server's close */
};

enum stop_reason { STOP_NONE, STOP_DURATION, STOP_COUNT, STOP_LIMIT,
    STOP_SIGNAL };

static const char *stop_names[] = {
	"none", "duration", "count", "limit", "signal"
};

struct loadgen;

struct client {
	struct loadgen		*lg;
	unsigned int		 id;
	struct bufferevent	*bev;
	struct event		*timer;
	enum cstate		 state;
	uint64_t		 t_start;	/* us, monotonic */
	long long		 next_user;	/* 0-based index */
	long long		 seq;		/* operation number, from 1 */
	char			 user[STR_MAX + 1];
};

/* The --users format, split so that no format string comes from argv. */
struct userfmt {
	char			 prefix[STR_MAX + 1];
	char			 suffix[STR_MAX + 1];
	int			 zero;
	int			 width;
};

struct loadgen {
	enum mode		 mode;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 host[INET6_ADDRSTRLEN];
	int			 port;
	unsigned int		 nclients;
	long long		 duration;	/* s; the cap with --count */
	long long		 count;		/* 0: run for duration */
	struct userfmt		 ufmt;
	long long		 user_count;
	long long		 first_user;	/* 0-based: where clients start */
	const char		*password;
	int			 json;

	struct event_base	*base;
	struct event		*stop_ev;
	struct event		*sigint_ev;
	struct event		*sigterm_ev;
	struct client		*clients;
	char			 date[64];	/* Date: header of messages */

	long long		 started;
	long long		 completed;
	uint64_t		 errors[ERR_MAX];
	unsigned int		 errlogged;
	struct hist		 lat;
	uint64_t		 t_begin;
	uint64_t		 t_end;
	int			 stopping;
	enum stop_reason	 stopped_by;
};

static void	client_start(struct client *);
static void	client_timer(evutil_socket_t, short, void *);

static __attribute__((noreturn)) void
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: roost-loadgen --mode imap|lmtp --port P [--host ADDR]\n"
	    "           [--clients N] [--duration S | --count N]"
	    " [--users FMT]\n"
	    "           [--user-count K] [--first-user F] [--password PASS]"
	    " [--json]\n");
	exit(status);
}

static uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
msec_tv(struct timeval *tv, long long ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* Only loopback: this tool opens thousands of connections a second. */
static int
host_parse(struct loadgen *lg, const char *host)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&lg->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&lg->ss;

	memset(&lg->ss, 0, sizeof(lg->ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)lg->port);
		lg->sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)lg->port);
		lg->sslen = sizeof(*sin6);
	} else
		return -1;
	snprintf(lg->host, sizeof(lg->host), "%s", host);
	return 0;
}

/*
 * A user name or password goes inside an IMAP quoted string and an LMTP
 * path: no control characters, no spaces or angle brackets.
 */
static int
safe_string(const char *s)
{
	const unsigned char *p;

	if (*s == '\0' || strlen(s) > STR_MAX)
		return -1;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>')
			return -1;
	return 0;
}

/* Copy s into dst, turning "%%" into "%"; -1 on any other '%'. */
static int
unescape_pct(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 1 >= len || s[i + 1] != '%')
				return -1;
			i++;
		}
		if (o + 1 >= dstlen)
			return -1;
		dst[o++] = s[i];
	}
	dst[o] = '\0';
	return 0;
}

/* FMT holds exactly one %d, optionally %0Nd or %Nd (N < 20). */
static int
userfmt_parse(struct userfmt *uf, const char *fmt)
{
	const char *p, *spec = NULL, *end = NULL;

	memset(uf, 0, sizeof(*uf));
	for (p = fmt; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		if (p[1] == '%') {
			p++;
			continue;
		}
		if (spec != NULL)
			return -1;
		spec = p++;
		if (*p == '0') {
			uf->zero = 1;
			p++;
		}
		if (*p >= '1' && *p <= '9') {
			uf->width = *p++ - '0';
			if (*p >= '0' && *p <= '9')
				uf->width = uf->width * 10 + (*p++ - '0');
			if (uf->width >= 20)
				return -1;
		}
		if (*p != 'd')
			return -1;
		end = p + 1;
	}
	if (spec == NULL)
		return -1;
	if (unescape_pct(uf->prefix, sizeof(uf->prefix), fmt,
	    (size_t)(spec - fmt)) == -1 ||
	    unescape_pct(uf->suffix, sizeof(uf->suffix), end,
	    strlen(end)) == -1)
		return -1;
	return 0;
}

static int
userfmt_format(const struct userfmt *uf, long long n, char *buf, size_t len)
{
	int r;

	if (uf->zero)
		r = snprintf(buf, len, "%s%0*lld%s", uf->prefix, uf->width, n,
		    uf->suffix);
	else
		r = snprintf(buf, len, "%s%*lld%s", uf->prefix, uf->width, n,
		    uf->suffix);
	if (r < 0 || (size_t)r >= len)
		return -1;
	return 0;
}

/*
 * Users are numbered 1..K.  With N <= K clients, client i takes the users
 * whose index is i modulo N, so no two clients ever log in as the same user
 * at once (that would test Dovecot's locking, not its logins).
 */
static void
client_next_user(struct client *c)
{
	struct loadgen *lg = c->lg;
	long long u;

	if ((long long)lg->nclients > lg->user_count)
		u = c->id % lg->user_count;
	else {
		u = c->next_user;
		c->next_user += lg->nclients;
		if (c->next_user >= lg->user_count)
			c->next_user = c->id;
	}
	/* Checked for the largest index in main(). */
	if (userfmt_format(&lg->ufmt, u + 1, c->user, sizeof(c->user)) == -1)
		fatalx("user name too long");
}

static void
loadgen_stop(struct loadgen *lg, enum stop_reason why)
{
	if (lg->stopping)
		return;
	lg->stopping = 1;
	lg->stopped_by = why;
	lg->t_end = now_usec();
	event_base_loopbreak(lg->base);
}

static void
client_close(struct client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
}

/* Server text goes to a terminal: keep it printable and short. */
static void
log_op_error(struct client *c, enum err_kind kind, const char *detail)
{
	struct loadgen *lg = c->lg;
	char clean[128];
	size_t i;

	if (lg->errlogged > ERRLOG_MAX)
		return;
	if (lg->errlogged++ == ERRLOG_MAX) {
		log_warnx("further errors are counted, not shown");
		return;
	}
	if (detail == NULL)
		detail = "";
	for (i = 0; detail[i] != '\0' && i < sizeof(clean) - 1; i++)
		clean[i] = (detail[i] < 0x20 || detail[i] == 0x7f) ?
		    '?' : detail[i];
	clean[i] = '\0';
	log_warnx("client %u, %s: %s%s%s", c->id, c->user, err_names[kind],
	    *clean != '\0' ? ": " : "", clean);
}

static void
op_count(struct client *c)
{
	struct loadgen *lg = c->lg;

	lg->completed++;
	if (lg->count > 0 && lg->completed >= lg->count)
		loadgen_stop(lg, STOP_COUNT);
}

/* The operation failed: count it, drop the connection, retry shortly. */
static void
op_fail(struct client *c, enum err_kind kind, const char *detail)
{
	struct loadgen *lg = c->lg;
	struct timeval tv;

	if (lg->stopping)
		return;
	lg->errors[kind]++;
	log_op_error(c, kind, detail);
	client_close(c);
	c->state = CS_IDLE;
	op_count(c);
	msec_tv(&tv, BACKOFF_MS);
	evtimer_add(c->timer, &tv);
}

/* The operation succeeded; the caller decides whether to linger. */
static void
op_ok(struct client *c)
{
	struct loadgen *lg = c->lg;

	if (lg->stopping)
		return;
	hist_add(&lg->lat, now_usec() - c->t_start);
	op_count(c);
}

static void
op_ok_linger(struct client *c)
{
	struct timeval tv;

	op_ok(c);
	if (c->lg->stopping)
		return;
	c->state = CS_LINGER;
	evtimer_del(c->timer);
	msec_tv(&tv, LINGER_MS);
	evtimer_add(c->timer, &tv);
}

static void
op_ok_closed(struct client *c)
{
	op_ok(c);
	if (c->lg->stopping)
		return;
	client_close(c);
	client_start(c);
}

static void
send_quoted(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add(out, "\\", 1);
		evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* "TAG OK ..." and the like: ERR_NONE, ERR_NO, ERR_BAD, or -1 if not tagged. */
static int
imap_tagged(const char *line, const char *tag)
{
	size_t tl = strlen(tag);

	if (strncmp(line, tag, tl) != 0 || line[tl] != ' ')
		return -1;
	line += tl + 1;
	if (strncasecmp(line, "OK", 2) == 0 && (line[2] == ' ' ||
	    line[2] == '\0'))
		return ERR_NONE;
	if (strncasecmp(line, "NO", 2) == 0 && (line[2] == ' ' ||
	    line[2] == '\0'))
		return ERR_NO;
	if (strncasecmp(line, "BAD", 3) == 0 && (line[3] == ' ' ||
	    line[3] == '\0'))
		return ERR_BAD;
	return ERR_PROTOCOL;
}

/* One line from an IMAP server; the client may be closed on return. */
static void
imap_line(struct client *c, const char *line)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int r;

	switch (c->state) {
	case CS_GREETING:
		if (strncasecmp(line, "* OK", 4) != 0) {
			op_fail(c, strncasecmp(line, "* BYE", 5) == 0 ?
			    ERR_CLOSED : ERR_PROTOCOL, line);
			return;
		}
		evbuffer_add_printf(out, "a LOGIN ");
		send_quoted(out, c->user);
		evbuffer_add(out, " ", 1);
		send_quoted(out, c->lg->password);
		evbuffer_add(out, "\r\n", 2);
		c->state = CS_LOGIN;
		return;
	case CS_LOGIN:
	case CS_LOGOUT:
		if (line[0] == '*' && line[1] == ' ')
			return;		/* untagged: CAPABILITY, BYE */
		r = imap_tagged(line, c->state == CS_LOGIN ? "a" : "b");
		if (r == -1)
			op_fail(c, ERR_PROTOCOL, line);
		else if (r != ERR_NONE)
			op_fail(c, (enum err_kind)r, line);
		else if (c->state == CS_LOGIN) {
			evbuffer_add_printf(out, "b LOGOUT\r\n");
			c->state = CS_LOGOUT;
		} else
			op_ok_linger(c);
		return;
	default:
		/* Anything after the end is the server's business. */
		return;
	}
}

/* An SMTP/LMTP reply line: 1 for the last line of a reply, 0 for "NNN-". */
static int
smtp_reply(const char *line, int *code)
{
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (line[3] == '-')
		return 0;
	if (line[3] == ' ' || line[3] == '\0')
		return 1;
	return -1;
}

static void
lmtp_send_message(struct client *c, struct evbuffer *out)
{
	struct loadgen *lg = c->lg;

	evbuffer_add_printf(out,
	    "From: roost-loadgen <loadgen@localhost>\r\n"
	    "To: <%s>\r\n"
	    "Subject: roost-loadgen test %lld\r\n"
	    "Message-ID: <%lld.%d.%" PRIu64 "@roost-loadgen>\r\n"
	    "Date: %s\r\n"
	    "\r\n"
	    "This message was delivered by roost-loadgen.\r\n"
	    ".\r\n", c->user, c->seq, c->seq, (int)getpid(), c->t_start,
	    lg->date);
}

/* One line from an LMTP server; the client may be closed on return. */
static void
lmtp_line(struct client *c, const char *line)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int code, r;

	if (c->state == CS_LINGER || c->state == CS_IDLE)
		return;
	if ((r = smtp_reply(line, &code)) == -1) {
		op_fail(c, ERR_PROTOCOL, line);
		return;
	}
	if (r == 0)
		return;		/* wait for the last line */
	if (code >= 500) {
		op_fail(c, ERR_5XX, line);
		return;
	}
	if (code >= 400) {
		op_fail(c, ERR_4XX, line);
		return;
	}
	if ((c->state == CS_DATA) != (code / 100 == 3)) {
		op_fail(c, ERR_PROTOCOL, line);
		return;
	}
	switch (c->state) {
	case CS_GREETING:
		evbuffer_add_printf(out, "LHLO roost-loadgen.localhost\r\n");
		c->state = CS_LHLO;
		break;
	case CS_LHLO:
		evbuffer_add_printf(out, "MAIL FROM:<loadgen@localhost>\r\n");
		c->state = CS_MAIL;
		break;
	case CS_MAIL:
		evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", c->user);
		c->state = CS_RCPT;
		break;
	case CS_RCPT:
		evbuffer_add_printf(out, "DATA\r\n");
		c->state = CS_DATA;
		break;
	case CS_DATA:
		lmtp_send_message(c, out);
		c->state = CS_BODY;
		break;
	case CS_BODY:
		/* One reply per accepted recipient, and there is one. */
		evbuffer_add_printf(out, "QUIT\r\n");
		c->state = CS_QUIT;
		break;
	case CS_QUIT:
		op_ok_linger(c);
		break;
	default:
		break;
	}
}

/* Hand each complete line to the protocol; stop when the client moved on. */
static void
client_input(struct client *c)
{
	struct bufferevent *bev = c->bev;
	struct evbuffer *in;
	char *line;
	size_t len;

	while (c->bev == bev && bev != NULL && !c->lg->stopping) {
		in = bufferevent_get_input(bev);
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > LINE_MAX_LEN)
				op_fail(c, ERR_PROTOCOL, "line too long");
			return;
		}
		if (len > LINE_MAX_LEN || strlen(line) != len)
			op_fail(c, ERR_PROTOCOL, "bad line");
		else if (c->state == CS_LINGER)
			;		/* after the end: ignore */
		else if (c->lg->mode == MODE_IMAP)
			imap_line(c, line);
		else
			lmtp_line(c, line);
		free(line);
	}
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_input(arg);
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (c->lg->stopping)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		c->state = CS_GREETING;
		return;
	}
	if (c->state == CS_CONNECTING) {
		op_fail(c, ERR_CONNECT, evutil_socket_error_to_string(err));
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
		return;
	/* Lines that came with the close count before it. */
	client_input(c);
	if (c->bev != bev || c->lg->stopping)
		return;
	switch (c->state) {
	case CS_LINGER:
		client_close(c);
		client_start(c);
		break;
	case CS_LOGOUT:
	case CS_QUIT:
		/* A server may close instead of answering LOGOUT or QUIT. */
		op_ok_closed(c);
		break;
	default:
		op_fail(c, ERR_CLOSED, (what & BEV_EVENT_ERROR) ?
		    evutil_socket_error_to_string(err) : "connection closed");
		break;
	}
}

static void
client_timer(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->lg->stopping)
		return;
	switch (c->state) {
	case CS_IDLE:
		client_start(c);
		break;
	case CS_LINGER:
		client_close(c);
		client_start(c);
		break;
	default:
		op_fail(c, ERR_TIMEOUT, NULL);
		break;
	}
}

static void
client_start(struct client *c)
{
	struct loadgen *lg = c->lg;
	struct timeval tv;

	c->state = CS_IDLE;
	if (lg->stopping || (lg->count > 0 && lg->started >= lg->count))
		return;
	c->seq = ++lg->started;
	client_next_user(c);
	c->t_start = now_usec();
	c->bev = bufferevent_socket_new(lg->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(c->bev, client_read, NULL, client_event, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1)
		fatalx("bufferevent_enable failed");
	c->state = CS_CONNECTING;
	msec_tv(&tv, OP_TIMEOUT_MS);
	evtimer_add(c->timer, &tv);
	/* An immediate failure (no ports left, say) reports no event. */
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&lg->ss,
	    (int)lg->sslen) == -1)
		op_fail(c, ERR_CONNECT, strerror(errno));
}

static void
stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct loadgen *lg = arg;

	(void)fd;
	(void)what;
	loadgen_stop(lg, lg->count > 0 ? STOP_LIMIT : STOP_DURATION);
}

static void
stop_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	loadgen_stop(arg, STOP_SIGNAL);
}

static int
loadgen_setup(struct loadgen *lg)
{
	struct timeval tv;
	struct tm tm;
	time_t now;
	unsigned int i;

	if ((lg->base = event_base_new()) == NULL) {
		log_warnx("event_base_new failed");
		return -1;
	}
	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL || strftime(lg->date,
	    sizeof(lg->date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		snprintf(lg->date, sizeof(lg->date), "Thu, 1 Jan 1970 00:00:00 +0000");
	hist_init(&lg->lat);
	lg->clients = xcalloc(lg->nclients, sizeof(*lg->clients));
	for (i = 0; i < lg->nclients; i++) {
		struct client *c = &lg->clients[i];

		c->lg = lg;
		c->id = i;
		c->next_user = (lg->first_user + i) % lg->user_count;
		c->state = CS_IDLE;
		c->timer = evtimer_new(lg->base, client_timer, c);
		if (c->timer == NULL)
			fatalx("evtimer_new failed");
	}
	lg->stop_ev = evtimer_new(lg->base, stop_timer, lg);
	lg->sigint_ev = evsignal_new(lg->base, SIGINT, stop_signal, lg);
	lg->sigterm_ev = evsignal_new(lg->base, SIGTERM, stop_signal, lg);
	if (lg->stop_ev == NULL || lg->sigint_ev == NULL ||
	    lg->sigterm_ev == NULL)
		fatalx("evtimer_new failed");
	tv.tv_sec = lg->duration;
	tv.tv_usec = 0;
	if (evtimer_add(lg->stop_ev, &tv) == -1 ||
	    evsignal_add(lg->sigint_ev, NULL) == -1 ||
	    evsignal_add(lg->sigterm_ev, NULL) == -1) {
		log_warnx("cannot arm the stop events");
		return -1;
	}
	return 0;
}

static void
loadgen_free(struct loadgen *lg)
{
	unsigned int i;

	if (lg->clients != NULL) {
		for (i = 0; i < lg->nclients; i++) {
			if (lg->clients[i].bev != NULL)
				bufferevent_free(lg->clients[i].bev);
			if (lg->clients[i].timer != NULL)
				event_free(lg->clients[i].timer);
		}
		free(lg->clients);
		lg->clients = NULL;
	}
	if (lg->stop_ev != NULL)
		event_free(lg->stop_ev);
	if (lg->sigint_ev != NULL)
		event_free(lg->sigint_ev);
	if (lg->sigterm_ev != NULL)
		event_free(lg->sigterm_ev);
	if (lg->base != NULL)
		event_base_free(lg->base);
	lg->stop_ev = lg->sigint_ev = lg->sigterm_ev = NULL;
	lg->base = NULL;
}

static void
loadgen_report(const struct loadgen *lg)
{
	const char *mode = lg->mode == MODE_IMAP ? "imap" : "lmtp";
	double elapsed, rate, p50, p99, max, mean;
	uint64_t errs = 0;
	int i;

	for (i = ERR_NONE + 1; i < ERR_MAX; i++)
		errs += lg->errors[i];
	elapsed = (double)(lg->t_end - lg->t_begin) / 1e6;
	rate = elapsed > 0 ? (double)lg->lat.n / elapsed : 0.0;
	p50 = (double)hist_quantile(&lg->lat, 0.50) / 1000.0;
	p99 = (double)hist_quantile(&lg->lat, 0.99) / 1000.0;
	max = (double)lg->lat.max / 1000.0;
	mean = lg->lat.n > 0 ?
	    (double)lg->lat.sum / (double)lg->lat.n / 1000.0 : 0.0;

	if (lg->json) {
		printf("{\"mode\":\"%s\",\"host\":\"%s\",\"port\":%d,"
		    "\"clients\":%u,\"stopped_by\":\"%s\","
		    "\"elapsed_s\":%.3f,\"operations\":%lld,\"ok\":%" PRIu64
		    ",\"ops_per_sec\":%.1f,\"errors\":{\"total\":%" PRIu64,
		    mode, lg->host, lg->port, lg->nclients,
		    stop_names[lg->stopped_by], elapsed, lg->completed,
		    lg->lat.n, rate, errs);
		for (i = ERR_NONE + 1; i < ERR_MAX; i++)
			printf(",\"%s\":%" PRIu64, err_names[i], lg->errors[i]);
		printf("},\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
		    "\"max\":%.3f,\"mean\":%.3f}}\n", p50, p99, max, mean);
		return;
	}
	printf("roost-loadgen: %s %s port %d, %u clients, %.2f s (stopped by "
	    "%s)\n", mode, lg->host, lg->port, lg->nclients, elapsed,
	    stop_names[lg->stopped_by]);
	printf("operations  %lld: %" PRIu64 " ok, %" PRIu64 " errors\n",
	    lg->completed, lg->lat.n, errs);
	printf("rate        %.1f %s/s\n", rate,
	    lg->mode == MODE_IMAP ? "logins" : "deliveries");
	printf("errors     ");
	for (i = ERR_NONE + 1; i < ERR_MAX; i++)
		printf(" %s %" PRIu64, err_names[i], lg->errors[i]);
	printf("\n");
	printf("latency ms  p50 %.3f  p99 %.3f  max %.3f  mean %.3f\n",
	    p50, p99, max, mean);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "mode",	required_argument,	NULL, 'm' },
		{ "host",	required_argument,	NULL, 'H' },
		{ "port",	required_argument,	NULL, 'p' },
		{ "clients",	required_argument,	NULL, 'c' },
		{ "duration",	required_argument,	NULL, 'd' },
		{ "count",	required_argument,	NULL, 'n' },
		{ "users",	required_argument,	NULL, 'u' },
		{ "user-count",	required_argument,	NULL, 'k' },
		{ "first-user",	required_argument,	NULL, 'f' },
		{ "password",	required_argument,	NULL, 'P' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct loadgen lg;
	const char *host = "127.0.0.1", *ufmt = "user%d";
	char probe[STR_MAX + 1];
	long long v;
	unsigned int i;
	int ch, have_mode = 0, have_port = 0, have_duration = 0;

	log_init("roost-loadgen", 1);
	memset(&lg, 0, sizeof(lg));
	lg.nclients = 8;
	lg.duration = DURATION_DEF;
	lg.user_count = 1000;
	lg.password = "pass";

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			if (strcmp(optarg, "imap") == 0)
				lg.mode = MODE_IMAP;
			else if (strcmp(optarg, "lmtp") == 0)
				lg.mode = MODE_LMTP;
			else {
				log_warnx("--mode must be imap or lmtp");
				usage(2);
			}
			have_mode = 1;
			break;
		case 'H':
			host = optarg;
			break;
		case 'p':
			if (parse_ll(optarg, 1, 65535, &v) == -1) {
				log_warnx("--port must be 1..65535");
				usage(2);
			}
			lg.port = (int)v;
			have_port = 1;
			break;
		case 'c':
			if (parse_ll(optarg, 1, CLIENTS_MAX, &v) == -1) {
				log_warnx("--clients must be 1..%d",
				    CLIENTS_MAX);
				usage(2);
			}
			lg.nclients = (unsigned int)v;
			break;
		case 'd':
			if (parse_duration(optarg, 1, DURATION_MAX, &v) ==
			    -1) {
				log_warnx("--duration must be 1..%d seconds",
				    DURATION_MAX);
				usage(2);
			}
			lg.duration = v;
			have_duration = 1;
			break;
		case 'n':
			if (parse_ll(optarg, 1, COUNT_MAX, &v) == -1) {
				log_warnx("--count must be 1..%lld",
				    COUNT_MAX);
				usage(2);
			}
			lg.count = v;
			break;
		case 'u':
			ufmt = optarg;
			break;
		case 'k':
			if (parse_ll(optarg, 1, USERS_MAX, &v) == -1) {
				log_warnx("--user-count must be 1..%lld",
				    USERS_MAX);
				usage(2);
			}
			lg.user_count = v;
			break;
		case 'f':
			if (parse_ll(optarg, 1, USERS_MAX, &v) == -1) {
				log_warnx("--first-user must be 1..%lld",
				    USERS_MAX);
				usage(2);
			}
			lg.first_user = v - 1;
			break;
		case 'P':
			lg.password = optarg;
			break;
		case 'j':
			lg.json = 1;
			break;
		case 'h':
			printf("roost-loadgen: IMAP login / LMTP delivery "
			    "load against a loopback Dovecot\n");
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc) {
		log_warnx("unexpected argument: %s", argv[optind]);
		usage(2);
	}
	if (!have_mode || !have_port) {
		log_warnx("--mode and --port are required");
		usage(2);
	}
	if (have_duration && lg.count > 0) {
		log_warnx("--duration and --count exclude each other");
		usage(2);
	}
	if (lg.count > 0)
		lg.duration = DURATION_MAX;	/* a count still stops */
	if (host_parse(&lg, host) == -1) {
		log_warnx("--host must be a loopback address (127.0.0.0/8, "
		    "::1)");
		usage(2);
	}
	if (userfmt_parse(&lg.ufmt, ufmt) == -1) {
		log_warnx("--users must contain exactly one %%d");
		usage(2);
	}
	/* The longest name is the largest index; check it and the first. */
	if (userfmt_format(&lg.ufmt, lg.user_count, probe,
	    sizeof(probe)) == -1 || safe_string(probe) == -1 ||
	    userfmt_format(&lg.ufmt, 1, probe, sizeof(probe)) == -1 ||
	    safe_string(probe) == -1) {
		log_warnx("--users gives names with spaces, control "
		    "characters or angle brackets, or over %d bytes", STR_MAX);
		usage(2);
	}
	if (safe_string(lg.password) == -1) {
		log_warnx("--password must be 1..%d bytes without spaces or "
		    "control characters", STR_MAX);
		usage(2);
	}
	if ((long long)lg.nclients > lg.user_count)
		log_warnx("%u clients share %lld users: some log in as the "
		    "same user at once", lg.nclients, lg.user_count);

	/* A peer closing mid-write must be an error count, not a death. */
	signal(SIGPIPE, SIG_IGN);

	if (loadgen_setup(&lg) == -1) {
		loadgen_free(&lg);
		return 1;
	}
	lg.t_begin = now_usec();
	for (i = 0; i < lg.nclients; i++)
		client_start(&lg.clients[i]);
	if (event_base_dispatch(lg.base) == -1) {
		log_warnx("event loop failed");
		loadgen_free(&lg);
		return 1;
	}
	if (!lg.stopping)
		loadgen_stop(&lg, STOP_COUNT);
	loadgen_report(&lg);
	loadgen_free(&lg);
	return 0;
}
