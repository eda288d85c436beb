/*
 * probe.h: one check of one backend service, on the event loop.  The health
 * engine (health.c) starts probes and turns their results into verdicts;
 * each kind of probe lives in a file of its own (probe_banner.c: a mail
 * protocol's greeting dialogue; probe_doveadm.c: the doveadm HTTP API).
 */
#ifndef ROOST_PROBE_H
#define ROOST_PROBE_H

#include <stdint.h>

#include "backend.h"

struct event_base;
struct evdns_base;
struct doveadm;
struct probe;
struct probe_doveadm;

/* ok: 1 passed, 0 failed with err (never a secret); ms: time taken. */
typedef void	(*probe_done_cb)(void *arg, int ok, const char *err,
		    unsigned ms);

struct probe_spec {
	const char	*host;		/* IP literal or name (resolved async) */
	uint16_t	 port;
	enum proto	 proto;
	const char	*login_user;	/* IMAP only: LOGIN, then LOGOUT */
	const char	*login_pass;
	unsigned	 timeout_ms;	/* the whole dialogue */
	void		*tls;		/* an SSL_CTX: TLS from the first byte
					 * (imaps, pop3s); NULL: plain */
};

/*
 * Start a greeting probe.  done is called exactly once, later (never from
 * inside this call), unless the probe is cancelled first; the probe frees
 * itself after calling done.
 */
struct probe	*probe_banner_start(struct event_base *, struct evdns_base *,
		    const struct probe_spec *, probe_done_cb, void *arg);
/* Stop a probe without calling its callback. */
void		 probe_cancel(struct probe *);

/*
 * Start a doveadm HTTP API probe: the URL answers and takes the key (a 401
 * fails it, as does no answer within timeout_ms).  done as above.
 */
struct probe_doveadm *probe_doveadm_start(struct doveadm *, const char *url,
		    const char *api_key, unsigned timeout_ms, probe_done_cb,
		    void *arg);
void		 probe_doveadm_cancel(struct probe_doveadm *);

#endif
