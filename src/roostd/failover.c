/*
 * failover.c: what happens between "this backend failed" and "its users
 * go elsewhere".  roostd's probes may fail while the proxies still reach
 * the backend (a broken link between roostd and it, a firewall), and then
 * users would have sessions there while they log in elsewhere: two
 * backends at once.  So before a failed backend stops being handed out,
 * every registered proxy kicks the sessions it proxies to it (doveadm
 * kick -f user_roost_backend NAME, the field roost.lua returns with every
 * answer).  The kicks are bounded by move_timeout; a proxy that does not
 * answer is logged and does not hold the failover up past it.
 *
 * Where the users go is not decided here: a failed backend's users are
 * placed again at their next lookup (lookup.c), one place for that choice.
 */
#include <sys/queue.h>

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doveadm.h"
#include "failover.h"
#include "health.h"
#include "log.h"
#include "proxy.h"
#include "roostd.h"
#include "util.h"
#include "xmalloc.h"

/* The field roost.lua puts in every answer, so proxies can kick by it. */
#define FAILOVER_FIELD	"user_roost_backend"

struct failover;

struct failover_call {
	LIST_ENTRY(failover_call) entry;
	struct failover		*fo;
	struct doveadm_call	*call;
	char			*url;		/* for a 2.3 retry */
	char			*key;
	char			 proxy[BACKEND_NAME_MAX + 1];
	int			 backend;	/* the backend's own kick */
};

struct failover {
	LIST_ENTRY(failover)	 entry;
	struct roost		*rs;
	long			 slot;
	int			 admin;		/* down or removal, not health */
	failover_done_cb	 done;
	void			*arg;
	char			 backend[BACKEND_NAME_MAX + 1];
	LIST_HEAD(, failover_call) calls;
	unsigned		 kicked, failed;
	struct event		*deadline;
};

/* The failovers under way, hanging off struct roost like every state. */
LIST_HEAD(failovers, failover);

static void
call_free(struct failover_call *fc)
{
	LIST_REMOVE(fc, entry);
	free(fc->url);
	if (fc->key != NULL) {
		explicit_bzero(fc->key, strlen(fc->key));
		free(fc->key);
	}
	free(fc);
}

static void
failover_free(struct failover *fo)
{
	struct failover_call *fc;

	while ((fc = LIST_FIRST(&fo->calls)) != NULL) {
		doveadm_cancel(fc->call);
		call_free(fc);
	}
	LIST_REMOVE(fo, entry);
	event_free(fo->deadline);
	free(fo);
}

/* The kicks are over (or their time is): hand the users elsewhere. */
static void
failover_done(struct failover *fo, int timed_out)
{
	struct roost *rs = fo->rs;
	struct failover_call *fc;
	size_t left = 0;
	int fo_admin = fo->admin;
	long slot;

	LIST_FOREACH(fc, &fo->calls, entry)
		left++;
	if (timed_out)
		log_warnx("backend %s: failover goes on after %llds with %zu "
		    "proxy kick(s) unanswered", fo->backend,
		    rs->conf->move_timeout, left);
	log_info("backend %s: %u kicks of its sessions done%s; its users "
	    "go elsewhere at their next login", fo->backend, fo->kicked,
	    fo->failed ? " (some failed)" : "");
	if (fo->admin && rs->backends[fo->slot] != NULL)
		rs->backends[fo->slot]->evacuating = 0;
	if (fo->done != NULL)
		fo->done(rs, fo->slot, fo->arg);
	slot = fo->slot;
	failover_free(fo);
	if (!fo_admin)
		health_failover_done(rs, slot);
	health_reroute(rs);
}

static void	kick_done(void *, const struct doveadm_result *);

static void
kick_start(struct failover_call *fc, enum doveadm_version v)
{
	fc->call = doveadm_kick_field(fc->fo->rs->doveadm, fc->url, fc->key, v,
	    FAILOVER_FIELD, fc->fo->backend, 5000, kick_done, fc);
}

static void
kick_done(void *arg, const struct doveadm_result *res)
{
	struct failover_call *fc = arg;
	struct failover *fo = fc->fo;

	/* A 2.3 proxy does not know kick -f: it has proxy kick instead. */
	if (!res->ok && res->invalid_request && !fc->backend) {
		kick_start(fc, DOVEADM_V23);
		return;
	}
	if (res->ok)
		fo->kicked++;
	else {
		fo->failed++;
		log_warnx("backend %s: %s %s did not kick its sessions: %s",
		    fo->backend, fc->backend ? "backend" : "proxy", fc->proxy,
		    res->error);
	}
	call_free(fc);
	if (LIST_EMPTY(&fo->calls))
		failover_done(fo, 0);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	failover_done(arg, 1);
}

static struct failovers *
failovers(struct roost *rs)
{
	if (rs->failovers == NULL) {
		rs->failovers = xcalloc(1, sizeof(*rs->failovers));
		LIST_INIT(rs->failovers);
	}
	return rs->failovers;
}

static struct failover *
failover_find(struct roost *rs, long slot)
{
	struct failover *fo;

	LIST_FOREACH(fo, failovers(rs), entry)
		if (fo->slot == slot)
			return fo;
	return NULL;
}

int
failover_pending(struct roost *rs, long slot)
{
	return failover_find(rs, slot) != NULL;
}

static int
failover_start(struct roost *rs, long slot, int admin, failover_done_cb done,
    void *arg)
{
	const struct backend *b = rs->backends[slot];
	struct failover *fo;
	struct failover_call *fc;
	struct timeval tv;
	size_t i;

	if (failover_find(rs, slot) != NULL ||
	    (rs->nproxies == 0 && (!admin || b->doveadm_url == NULL)))
		return 0;
	fo = xcalloc(1, sizeof(*fo));
	fo->rs = rs;
	fo->slot = slot;
	fo->admin = admin;
	fo->done = done;
	fo->arg = arg;
	snprintf(fo->backend, sizeof(fo->backend), "%s",
	    rs->backends[slot]->name);
	LIST_INIT(&fo->calls);
	if ((fo->deadline = evtimer_new(rs->base, deadline_cb, fo)) == NULL)
		fatalx("failover: out of event resources");
	LIST_INSERT_HEAD(failovers(rs), fo, entry);
	for (i = 0; i < rs->nproxies; i++) {
		fc = xcalloc(1, sizeof(*fc));
		fc->fo = fo;
		fc->url = xstrdup(rs->proxies[i]->doveadm_url);
		fc->key = xstrdup(rs->proxies[i]->doveadm_key);
		snprintf(fc->proxy, sizeof(fc->proxy), "%s",
		    rs->proxies[i]->name);
		LIST_INSERT_HEAD(&fo->calls, fc, entry);
		kick_start(fc, DOVEADM_V24);
	}
	/* An admin's down or removal: the backend still answers, so its
	 * own sessions are ended too (every user: the mask "*"). */
	if (admin && b->doveadm_url != NULL) {
		fc = xcalloc(1, sizeof(*fc));
		fc->fo = fo;
		fc->url = xstrdup(b->doveadm_url);
		fc->key = xstrdup(b->doveadm_key != NULL ? b->doveadm_key : "");
		snprintf(fc->proxy, sizeof(fc->proxy), "%s", b->name);
		fc->backend = 1;
		LIST_INSERT_HEAD(&fo->calls, fc, entry);
		fc->call = doveadm_kick_user(rs->doveadm, fc->url, fc->key, "*",
		    5000, kick_done, fc);
	}
	tv.tv_sec = (time_t)rs->conf->move_timeout;
	tv.tv_usec = 0;
	evtimer_add(fo->deadline, &tv);
	log_info("backend %s %s: %zu proxies%s kick its sessions before its "
	    "users go elsewhere", fo->backend, admin ? "leaves" : "failed",
	    rs->nproxies, admin && b->doveadm_url != NULL ? " and the backend" :
	    "");
	return 1;
}

int
failover_begin(struct roost *rs, long slot)
{
	if (rs->nproxies == 0)
		return 0;
	return failover_start(rs, slot, 0, NULL, NULL);
}

int
failover_evacuate(struct roost *rs, long slot, failover_done_cb done,
    void *arg)
{
	if (failover_start(rs, slot, 1, done, arg) == 0)
		return 0;
	rs->backends[slot]->evacuating = 1;
	return 1;
}

void
failover_cancel(struct roost *rs, long slot)
{
	struct failover *fo = failover_find(rs, slot);

	if (fo != NULL)
		failover_free(fo);
}

void
failover_free_all(struct roost *rs)
{
	struct failover *fo;

	if (rs->failovers == NULL)
		return;
	while ((fo = LIST_FIRST(rs->failovers)) != NULL)
		failover_free(fo);
	free(rs->failovers);
	rs->failovers = NULL;
}
