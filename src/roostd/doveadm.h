/*
 * doveadm.h: the one HTTP client roostd uses to call Dovecot (doveadm HTTP
 * API: kick, who, and later sync), on the event loop through libcurl's
 * multi interface.  roostd never waits on a backend or a proxy.
 *
 * What Dovecot answers (checked by hand against 2.3.19.1 and 2.4.1 rigs):
 *
 *  - Every answer to a command is HTTP 200 with [[TYPE, PAYLOAD, TAG]]:
 *    TYPE "doveadmResponse" with the command's rows, or TYPE "error" with
 *    {"type":"exitCode","exitCode":N}.  An unknown parameter is also HTTP
 *    200, {"type":"invalidRequest","exitCode":0} on 2.3.  A bad key is 401;
 *    parameters of the wrong type are 400.
 *  - 2.3 writes a table answer of several rows wrongly, closing the row
 *    array after the first: [["doveadmResponse",[r1],r2,r3,"tag"]];
 *    the parser puts r2, r3 back into the payload.
 *  - who {"mask":["u"]}: rows {"username","connections","service","pids",
 *    "ips"} (2.3: every value a string, pids/ips as "(1 2)"); no session:
 *    an empty array.  "mask" is an array on both; 2.3 takes a bare string
 *    too.
 *  - kick {"mask":["u"]} on a backend: {"result":"u"} rows on 2.3, and the
 *    sessions end with "* BYE Server shutting down."; nobody to kick:
 *    exitCode 68 on 2.3 (doveadm_kick_user turns that into success).
 *  - kick by passdb field on a proxy (doveadm kick -f FIELD VALUE):
 *    2.3 has it only as proxyKick {"passdbField":F,"user":[V]} answering
 *    [{"count":"N"}], and refuses kick with passdbField (invalidRequest);
 *    2.4 folded proxy kick into kick: see doveadm_kick_field.
 */
#ifndef ROOST_DOVEADM_H
#define ROOST_DOVEADM_H

#include <stddef.h>

#include <jansson.h>

/* `who` on a big backend is large; anything past this is refused. */
#define DOVEADM_BODY_MAX	(16 * 1024 * 1024)

struct event_base;
struct doveadm;
struct doveadm_call;

struct doveadm_result {
	int		 ok;		/* 1: HTTP 200 with a doveadmResponse */
	long		 http_status;	/* 0: no HTTP answer (connect failed,
					 * timed out, refused URL) */
	int		 exit_code;	/* doveadm's exitCode from an error
					 * answer, else 0 */
	int		 invalid_request; /* an invalidRequest error: this
					 * Dovecot does not know a parameter
					 * (2.3 answering a 2.4 form) */
	const char	*error;		/* for logs; NULL when ok; never holds
					 * the key */
	json_t		*response;	/* the doveadmResponse payload, valid
					 * during the callback only */
	unsigned	 ms;		/* from doveadm_run to the answer */
};

typedef void	(*doveadm_cb)(void *arg, const struct doveadm_result *);

/* Which Dovecot a proxy runs, where the two differ. */
enum doveadm_version {
	DOVEADM_V23 = 0,
	DOVEADM_V24
};

struct doveadm	*doveadm_new(struct event_base *);
/* Cancels every call without callbacks.  Not from inside a callback. */
void		 doveadm_free(struct doveadm *);

/*
 * POST [[command, params, tag]] to url with the key (X-Dovecot-API).
 * params is stolen (NULL: {}).  The callback runs exactly once and always
 * later, from the event loop, never inside this call, unless the call is
 * cancelled first; a URL that is not http(s) or carries user:password@
 * fails that way too.  The handle is valid until the callback starts
 * (not to be cancelled from its own callback).  timeout_ms bounds the
 * whole call; 0 means 30 s, never unbounded.
 */
struct doveadm_call *doveadm_run(struct doveadm *, const char *url,
		    const char *api_key, const char *command, json_t *params,
		    unsigned timeout_ms, doveadm_cb, void *arg);
/*
 * doveadm_run on a connection opened ahead when one is ready (warm.h):
 * for the calls whose latency counts, the replication syncs.  The first
 * call to an address opens the first such connection, for the next.
 */
struct doveadm_call *doveadm_run_warm(struct doveadm *, const char *url,
		    const char *api_key, const char *command, json_t *params,
		    unsigned timeout_ms, doveadm_cb, void *arg);
/* Connections opened ahead that wait for a call. */
size_t		 doveadm_warm_ready(const struct doveadm *);
/* Stop a call; its callback never runs.  NULL is fine. */
void		 doveadm_cancel(struct doveadm_call *);
/* Calls not yet called back. */
size_t		 doveadm_running(const struct doveadm *);

/*
 * GET the URL (the command list): the cheapest question that proves the
 * API answers and takes the key.  response is NULL in its result.
 */
struct doveadm_call *doveadm_ping(struct doveadm *, const char *url,
		    const char *api_key, unsigned timeout_ms, doveadm_cb,
		    void *arg);

/*
 * End a user's sessions on a backend (kick {"mask":[user]}, both
 * versions).  "Nobody to kick" (exitCode 68) counts as ok.
 */
struct doveadm_call *doveadm_kick_user(struct doveadm *, const char *url,
		    const char *api_key, const char *user, unsigned timeout_ms,
		    doveadm_cb, void *arg);
/*
 * On a proxy, end every session whose passdb field equals value
 * (doveadm kick -f FIELD VALUE), e.g. user_roost_backend b1.
 */
struct doveadm_call *doveadm_kick_field(struct doveadm *, const char *url,
		    const char *api_key, enum doveadm_version,
		    const char *field, const char *value, unsigned timeout_ms,
		    doveadm_cb, void *arg);
/* A user's sessions (who {"mask":[user]}): response is the row array. */
struct doveadm_call *doveadm_who_user(struct doveadm *, const char *url,
		    const char *api_key, const char *user, unsigned timeout_ms,
		    doveadm_cb, void *arg);

#endif
