/*
 * health.c: the health engine.  A round probes every service a backend
 * serves (each port that is not 0, and the doveadm HTTP API when the
 * backend has a doveadm URL) at once; the round passes when every probe
 * does.  Rounds become verdicts through rise/fall counts
 * (health_apply), and a verdict that changes is logged once, written to
 * the store and applied to routing: a failed backend is handed out like a
 * down one, not at all, and its users fail over at their next login.  A
 * backend that has begun to fail is asked again at a quarter of the
 * interval, so a dead one is failed about one interval after it died.
 *
 * A backend with tls = yes is probed over TLS (the certificate is the
 * proxy's to check).
 *
 * With several roostd on one store every instance probes, but only the
 * holder of the role "health:<backend>" (role.h) turns its rounds into
 * that backend's verdict, writes it and starts the failover; the others
 * route on the stored verdict, which the change feed brings them.  A
 * failed verdict is written once the proxies have kicked the backend's
 * sessions (failover.c), so that no instance hands out another backend
 * for its users before.
 *
 * When every backend that is not down has failed, the likelier story is
 * that roostd lost its own network, not that every mail server died at
 * once: routing then stays with the last healthy set and an alarm is
 * logged, since sending every user elsewhere would be a mass move to
 * nowhere.
 */
#include <event2/dns.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "failover.h"
#include "health.h"
#include "log.h"
#include "probe.h"
#include "move.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "util.h"
#include "xmalloc.h"

#define HEALTH_TICK_MS		100	/* granularity of the due times */
#define HEALTH_FAST_DIV		4	/* a failing backend: interval / 4 */

struct health_slot;

/* The callback argument of one probe: which slot, which service. */
struct health_check {
	struct health_slot	*hs;
	enum proto		 proto;
};

struct health_slot {
	struct roost		*rs;
	long			 slot;
	struct health_count	 count;
	struct probe		*probes[PROTO_COUNT];
	struct probe_doveadm	*dprobe;	/* the doveadm API, if a URL */
	struct health_check	 checks[PROTO_COUNT];
	unsigned		 pending;	/* probes of this round still out */
	uint64_t		 due;		/* monotonic ms of the next round */
	int			 round_ok;
	unsigned		 round_ms;
	char			 round_err[BACKEND_ERROR_MAX + 1];
	int			 dirty;		/* verdict not yet in the store */
};

struct health {
	struct event		*tick;
	struct evdns_base	*dns;
	SSL_CTX			*tls;		/* for backends with tls = yes */
	struct health_slot	**slots;
	size_t			 nslots;
	int			 suspect;	/* everything failed: alarm raised */
	long long		 interval;	/* as the tick is armed now */
	int			 writing;	/* a verdict's commit is out */
};

/* A verdict on its way to the store: the slot it was for, and whose. */
struct health_write {
	struct roost		*rs;
	long			 slot;
	char			 name[BACKEND_NAME_MAX + 1];
};

int
health_apply(struct health_count *hc, int ok, unsigned rise, unsigned fall)
{
	enum health_state old = hc->state;

	if (ok) {
		hc->fail_run = 0;
		hc->ok_run++;
		if (hc->state == HEALTH_FAILING ||
		    (hc->state == HEALTH_FAILED && hc->ok_run >= rise))
			hc->state = HEALTH_OK;
	} else {
		hc->ok_run = 0;
		hc->fail_run++;
		if (hc->state != HEALTH_FAILED)
			hc->state = hc->fail_run >= fall ? HEALTH_FAILED :
			    HEALTH_FAILING;
	}
	return hc->state != old;
}

static struct health_slot *
slot_get(struct roost *rs, long slot)
{
	struct health *h = rs->health;
	struct health_slot *hs;

	if ((size_t)slot >= h->nslots) {
		h->slots = xreallocarray(h->slots, (size_t)slot + 1,
		    sizeof(*h->slots));
		memset(h->slots + h->nslots, 0,
		    ((size_t)slot + 1 - h->nslots) * sizeof(*h->slots));
		h->nslots = (size_t)slot + 1;
	}
	if ((hs = h->slots[slot]) == NULL) {
		hs = h->slots[slot] = xcalloc(1, sizeof(*hs));
		hs->rs = rs;
		hs->slot = slot;
	}
	return hs;
}

static void
slot_cancel(struct health_slot *hs)
{
	int i;

	for (i = 0; i < PROTO_COUNT; i++) {
		probe_cancel(hs->probes[i]);
		hs->probes[i] = NULL;
	}
	probe_doveadm_cancel(hs->dprobe);
	hs->dprobe = NULL;
	hs->pending = 0;
}

void
health_slot_reset(struct roost *rs, long slot)
{
	struct health *h = rs->health;

	if (h == NULL || (size_t)slot >= h->nslots || h->slots[slot] == NULL)
		return;
	slot_cancel(h->slots[slot]);
	free(h->slots[slot]);
	h->slots[slot] = NULL;
	failover_cancel(rs, slot);
}

/*
 * Which backends are handed out.  Normally every one whose verdict is not
 * failed; when that leaves none of the backends that are not down, keep
 * the set as it was (or, with no set at all, all of them) and say why.
 */
void
health_reroute(struct roost *rs)
{
	struct health *h = rs->health;
	struct backend *b;
	size_t i, live = 0, healthy = 0, routed = 0;

	for (i = 0; i < rs->nslots; i++) {
		if ((b = rs->backends[i]) == NULL || b->state == BACKEND_DOWN)
			continue;
		live++;
		if (b->health != HEALTH_FAILED)
			healthy++;
		if (!b->failed)
			routed++;
	}
	if (live > 0 && healthy == 0) {
		if (!h->suspect)
			log_warnx("ALARM: every backend failed its probes at "
			    "once; suspecting roostd's own network, so routing "
			    "stays with the last healthy set");
		h->suspect = 1;
		if (routed > 0)
			return;
		for (i = 0; i < rs->nslots; i++)
			if ((b = rs->backends[i]) != NULL)
				b->failed = 0;
		return;
	}
	if (h->suspect)
		log_info("backends pass their probes again: alarm cleared");
	h->suspect = 0;
	/* A failed backend whose proxies are still kicking its sessions is
	 * handed out until they are done (failover.c). */
	for (i = 0; i < rs->nslots; i++)
		if ((b = rs->backends[i]) != NULL)
			b->failed = b->health == HEALTH_FAILED &&
			    !failover_pending(rs, (long)i);
}

/* The store answered a verdict's commit: a failed one is written again
 * next round, if that slot still is that backend's. */
static void
health_stored(void *arg, int rc)
{
	struct health_write *hw = arg;
	struct roost *rs = hw->rs;
	struct health *h = rs->health;
	struct health_slot *hs;

	h->writing = 0;
	if (rc == -1) {
		log_debug("backend %s: keeping the health verdict: %s",
		    hw->name, store_error(rs->store));
		if ((size_t)hw->slot < h->nslots &&
		    (hs = h->slots[hw->slot]) != NULL &&
		    rs->backends[hw->slot] != NULL &&
		    strcmp(rs->backends[hw->slot]->name, hw->name) == 0)
			hs->dirty = 1;
	}
	free(hw);
}

/*
 * Write a changed verdict, without the loop waiting for the commit; a
 * busy store, or another commit still out, has it written next round.
 */
static void
health_store(struct health_slot *hs, const struct backend *b)
{
	struct roost *rs = hs->rs;
	struct store *st = rs->store;
	struct health_write *hw;
	struct store_health sh;
	struct store_tx *tx;

	hs->dirty = 1;
	if (store_flying(st) || (tx = store_begin(st, STORE_TX_SEND)) == NULL)
		return;
	memset(&sh, 0, sizeof(sh));
	sh.backend = b->name;
	sh.state = health_state_name(b->health);
	sh.since = b->health_since;
	sh.error = b->health_error;
	sh.latency_ms = b->health_latency_ms;
	sh.checked = b->health_checked;
	if (store_health_put(tx, &sh) == -1) {
		log_debug("backend %s: keeping the health verdict: %s",
		    b->name, store_error(st));
		store_rollback(tx);
		return;
	}
	hw = xcalloc(1, sizeof(*hw));
	hw->rs = rs;
	hw->slot = hs->slot;
	snprintf(hw->name, sizeof(hw->name), "%s", b->name);
	hs->dirty = 0;
	rs->health->writing = 1;
	if (store_commit_send(tx, rs->base, health_stored, hw) == -1)
		health_stored(hw, -1);
}

/* Is any backend that is not down still passing its probes? */
static int
healthy_left(const struct roost *rs)
{
	const struct backend *b;
	size_t i;

	for (i = 0; i < rs->nslots; i++)
		if ((b = rs->backends[i]) != NULL &&
		    b->state != BACKEND_DOWN && b->health != HEALTH_FAILED)
			return 1;
	return 0;
}

/* failback = auto: the users failed over from a backend that is healthy
 * again go back, each with a final sync (move.c). */
static void
failback_auto(struct roost *rs, long slot)
{
	move_failback_auto(rs, slot);
}

static void
round_done(struct health_slot *hs)
{
	struct roost *rs = hs->rs;
	struct backend *b = rs->backends[hs->slot];
	enum health_state old;
	int changed;

	if (b == NULL)
		return;
	old = b->health;
	b->health_checked = now_sec();
	if (hs->round_ok)
		b->health_latency_ms = hs->round_ms;
	else
		snprintf(b->health_error, sizeof(b->health_error), "%s",
		    hs->round_err);
	changed = health_apply(&hs->count, hs->round_ok,
	    (unsigned)rs->conf->probe_rise, (unsigned)rs->conf->probe_fall);
	if (!role_health(rs, b->name)) {
		/* Counted, not judged: the verdict is the stored one, and
		 * the runs count on from it should the role come here. */
		hs->count.state = b->health;
		hs->dirty = 0;
		return;
	}
	if (!changed) {
		if (hs->dirty && !failover_pending(rs, hs->slot))
			health_store(hs, b);
		return;
	}
	b->health = hs->count.state;
	b->health_since = b->health_checked;
	if (b->health == HEALTH_OK)
		log_info("backend %s: health %s -> ok (%u ms)", b->name,
		    health_state_name(old), hs->round_ms);
	else
		log_warnx("backend %s: health %s -> %s (%s)", b->name,
		    health_state_name(old), health_state_name(b->health),
		    b->health_error);
	if (b->health == HEALTH_OK)
		b->force_failover = 0;
	/* No kicks when nothing healthy is left: that is the suspect case,
	 * in which the users stay where they are. */
	if (b->health == HEALTH_FAILED && healthy_left(rs) &&
	    failover_begin(rs, hs->slot)) {
		/* Rerouted, and stored for the others, when the proxies
		 * are done (health_failover_done). */
		hs->dirty = 1;
		return;
	}
	health_store(hs, b);
	if (b->health == HEALTH_OK)
		failover_cancel(rs, hs->slot);
	health_reroute(rs);
	/* Syncs waiting on it look again (to run, or to wait on). */
	repl_backend_changed(rs, hs->slot);
	if (b->health == HEALTH_OK && rs->conf->replication &&
	    rs->conf->failback && b->state == BACKEND_UP)
		failback_auto(rs, hs->slot);
}

static void
check_done(void *arg, int ok, const char *err, unsigned ms)
{
	struct health_check *hc = arg;
	struct health_slot *hs = hc->hs;

	hs->probes[hc->proto] = NULL;
	if (!ok && hs->round_ok) {
		hs->round_ok = 0;
		snprintf(hs->round_err, sizeof(hs->round_err), "%s: %s",
		    proto_names[hc->proto], err);
	}
	if (ms > hs->round_ms)
		hs->round_ms = ms;
	if (--hs->pending == 0)
		round_done(hs);
}

static void
dcheck_done(void *arg, int ok, const char *err, unsigned ms)
{
	struct health_check *hc = arg;

	hc->hs->dprobe = NULL;
	check_done(arg, ok, err, ms);
}

static void
round_start(struct roost *rs, long slot)
{
	const struct backend *b = rs->backends[slot];
	struct health_slot *hs = slot_get(rs, slot);
	struct probe_spec spec;
	int i;

	if (hs->pending > 0 || now_msec_mono() < hs->due)
		return;
	/* A backend that just failed a round is asked again sooner, so that
	 * probe_fall rounds take about one interval, not probe_fall. */
	hs->due = now_msec_mono() + (uint64_t)rs->conf->probe_interval *
	    (hs->count.fail_run > 0 && hs->count.state != HEALTH_FAILED ?
	    1000 / HEALTH_FAST_DIV : 1000);
	hs->round_ok = 1;
	hs->round_ms = 0;
	hs->round_err[0] = '\0';
	memset(&spec, 0, sizeof(spec));
	spec.host = b->hostip[0] != '\0' ? b->hostip : b->host;
	spec.timeout_ms = (unsigned)rs->conf->probe_timeout * 1000;
	spec.tls = b->tls == BACKEND_TLS_YES ? rs->health->tls : NULL;
	/* Count first: a probe never calls back from inside its start. */
	for (i = 0; i < PROTO_COUNT; i++)
		if (i != PROTO_DOVEADM && b->ports[i] != 0)
			hs->pending++;
	/* The doveadm service is asked through its HTTP API, with the key
	 * that moves and syncs will use. */
	if (b->doveadm_url != NULL && rs->doveadm != NULL)
		hs->pending++;
	for (i = 0; i < PROTO_COUNT; i++) {
		if (i == PROTO_DOVEADM || b->ports[i] == 0)
			continue;
		spec.port = b->ports[i];
		spec.proto = (enum proto)i;
		/* The test account is an IMAP one: the other protocols are
		 * asked for their greeting only. */
		spec.login_user = i == PROTO_IMAP ? b->probe_user : NULL;
		spec.login_pass = i == PROTO_IMAP ? b->probe_pass : NULL;
		hs->checks[i].hs = hs;
		hs->checks[i].proto = (enum proto)i;
		hs->probes[i] = probe_banner_start(rs->base, rs->health->dns,
		    &spec, check_done, &hs->checks[i]);
	}
	if (b->doveadm_url != NULL && rs->doveadm != NULL) {
		hs->checks[PROTO_DOVEADM].hs = hs;
		hs->checks[PROTO_DOVEADM].proto = PROTO_DOVEADM;
		hs->dprobe = probe_doveadm_start(rs->doveadm, b->doveadm_url,
		    b->doveadm_key, spec.timeout_ms, dcheck_done,
		    &hs->checks[PROTO_DOVEADM]);
	}
}

static void
health_tick(evutil_socket_t fd, short what, void *arg)
{
	struct roost *rs = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < rs->nslots; i++)
		if (rs->backends[i] != NULL)
			round_start(rs, (long)i);
}

static void
health_arm(struct roost *rs)
{
	struct health *h = rs->health;
	struct timeval tv;

	evtimer_del(h->tick);
	h->interval = rs->conf->probe_interval;
	if (h->interval <= 0) {
		log_info("probes off (probe_interval = 0)");
		return;
	}
	/* The tick is finer than the interval: each slot keeps its own due
	 * time, and a failing one is due sooner. */
	tv.tv_sec = 0;
	tv.tv_usec = HEALTH_TICK_MS * 1000;
	event_add(h->tick, &tv);
}

int
health_init(struct roost *rs)
{
	struct health *h;

	h = xcalloc(1, sizeof(*h));
	rs->health = h;
	/* Resolve backends named by host only; no search domains to guess. */
	if ((h->dns = evdns_base_new(rs->base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
		log_warnx("health: no DNS resolver; backends without hostip "
		    "cannot be probed");
	if ((h->tick = event_new(rs->base, -1, EV_PERSIST, health_tick,
	    rs)) == NULL)
		goto fail;
	if ((h->tls = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_verify(h->tls, SSL_VERIFY_NONE, NULL);
	health_arm(rs);
	return 0;
fail:
	health_free(rs);
	return -1;
}

void
health_reconfigure(struct roost *rs)
{
	if (rs->health != NULL && rs->health->interval != rs->conf->probe_interval)
		health_arm(rs);
}

void
health_free(struct roost *rs)
{
	struct health *h = rs->health;
	size_t i;

	if (h == NULL)
		return;
	/* Its commit, answered before the loop and the store go. */
	if (h->writing)
		store_flight_land(rs->store);
	failover_free_all(rs);
	for (i = 0; i < h->nslots; i++)
		if (h->slots[i] != NULL) {
			slot_cancel(h->slots[i]);
			free(h->slots[i]);
		}
	free(h->slots);
	if (h->tick != NULL)
		event_free(h->tick);
	if (h->dns != NULL)
		evdns_base_free(h->dns, 0);
	if (h->tls != NULL)
		SSL_CTX_free(h->tls);
	free(h);
	rs->health = NULL;
}

void
health_failover_done(struct roost *rs, long slot)
{
	struct health *h = rs->health;
	struct health_slot *hs;

	if (h == NULL || (size_t)slot >= h->nslots ||
	    (hs = h->slots[slot]) == NULL || !hs->dirty ||
	    rs->backends[slot] == NULL)
		return;
	if (role_health(rs, rs->backends[slot]->name))
		health_store(hs, rs->backends[slot]);
	else
		hs->dirty = 0;
}

int
health_verdict_set(struct roost *rs, const struct store_health *sh)
{
	struct health_slot *hs;
	struct backend *b;
	enum health_state state;
	long slot;

	if ((slot = state_backend_find(rs, sh->backend)) == -1)
		return 0;
	if (health_state_parse(sh->state, &state) == -1) {
		log_warnx("store: backend %s: unknown health '%s'; ignored",
		    sh->backend, sh->state);
		return 0;
	}
	b = rs->backends[slot];
	b->health = state;
	b->health_since = sh->since;
	b->health_checked = sh->checked;
	b->health_latency_ms = sh->latency_ms < 0 ? 0 :
	    (unsigned)sh->latency_ms;
	snprintf(b->health_error, sizeof(b->health_error), "%s", sh->error);
	hs = slot_get(rs, slot);
	hs->count.state = state;
	return 0;
}

static int
load_verdict(const struct store_health *sh, void *arg)
{
	return health_verdict_set(arg, sh);
}

int
health_load(struct roost *rs)
{
	if (rs->store->ops->health_load(rs->store, load_verdict, rs) == -1) {
		log_warnx("loading health verdicts: %s", store_error(rs->store));
		return -1;
	}
	health_reroute(rs);
	return 0;
}
