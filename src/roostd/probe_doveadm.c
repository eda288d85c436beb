/*
 * probe_doveadm.c: does a backend's doveadm HTTP API answer, and does it
 * take the key roostd holds for it?  Moves and replication depend on both
 * (kick, who, sync), and a rotated key or a dead doveadm service would
 * otherwise show up only when a move needs it.  The probe asks for the
 * command list (GET on the URL): cheap, no user touched, and Dovecot checks
 * the key on it like on any command.
 */
#include <stdio.h>
#include <stdlib.h>

#include "doveadm.h"
#include "probe.h"
#include "xmalloc.h"

struct probe_doveadm {
	struct doveadm_call	*call;
	probe_done_cb		 cb;
	void			*arg;
};

static void
probe_doveadm_done(void *arg, const struct doveadm_result *r)
{
	struct probe_doveadm *p = arg;
	char err[200];

	p->call = NULL;
	if (r->ok)
		p->cb(p->arg, 1, NULL, r->ms);
	else {
		/* An HTTP answer already says "doveadm API ..."; a missing one
		 * is curl's reason, which does not. */
		snprintf(err, sizeof(err), "%s%s", r->http_status == 0 ?
		    "doveadm API did not answer: " : "", r->error);
		p->cb(p->arg, 0, err, r->ms);
	}
	free(p);
}

struct probe_doveadm *
probe_doveadm_start(struct doveadm *dc, const char *url, const char *api_key,
    unsigned timeout_ms, probe_done_cb cb, void *arg)
{
	struct probe_doveadm *p = xcalloc(1, sizeof(*p));

	p->cb = cb;
	p->arg = arg;
	p->call = doveadm_ping(dc, url, api_key, timeout_ms, probe_doveadm_done,
	    p);
	return p;
}

void
probe_doveadm_cancel(struct probe_doveadm *p)
{
	if (p == NULL)
		return;
	doveadm_cancel(p->call);
	free(p);
}
