/*
 * store_lane.c: admin work on a store session of its own, off the loop.
 *
 * An admin change or read (a backend added, a user pinned, the audit log
 * listed) waits for its own commit or answer before it can reply.  On a
 * store that waits on a network (PostgreSQL) that wait, up to the store's
 * bound of about two seconds when the server hangs, must not be the
 * loop's: every lookup would wait with it.  So the store part of such
 * work runs in one thread with a store session of its own, opened at the
 * first job; the loop decides before (prepare) and applies after (done),
 * so memory is only ever touched by the loop.  Jobs run one at a time in
 * the order given, as the synchronous handlers ran them before: the next
 * one's prepare sees memory as the last one left it.  On SQLite, which
 * never waits on a network, the same jobs run on the loop at once.
 *
 * The lane's session tags its changes with an origin of its own, and the
 * change feed skips them as this instance's (store_lane_own): done puts
 * them in memory.  After a commit whose answer was lost the session
 * takes a new tag, so that the feed reads that commit back if it
 * happened.  Before each job the session is asked whether it answers,
 * and given the time to reconnect (after a restart of the server, or a
 * standby taking over): the admin waits for that, the loop does not.
 */
#include <sys/queue.h>

#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

#define LANE_AGAIN_MS	2	/* a prepare that said "not yet" */
#define LANE_QUEUE_MAX	256	/* jobs waiting; more get 503 at once */
#define LANE_CONNECT_MS	3000	/* for a lost session to come back */
#define LANE_RETRY_MS	50

TAILQ_HEAD(lane_jobs, lane_job);

struct store_lane {
	struct event_base	*base;
	struct store		*main;		/* the loop's */
	char			*url;
	int			 threaded;
	struct lane_jobs	 queue;		/* given, not prepared */
	struct event		*again;
	size_t			 nqueued;
	int			 pumping;	/* pump() under way: a job given
						 * meanwhile waits for its loop */
	/* The job in the thread: set by the loop, ended by the thread. */
	pthread_t		 thread;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cond;
	struct lane_job		*cur;		/* handed over, not done */
	struct lane_job		*fin;		/* run, for the loop */
	int			 stop;
	int			 wake[2];	/* thread -> loop */
	struct event		*wake_ev;
	uint64_t		 cur_at;	/* mono ms it was handed over */
	struct store		*own;		/* the thread's session */
	char			 origin[64];	/* own's tag for its changes */
	char			**held;		/* store_lane_hold(), loop only */
	size_t			 nheld;
};

static void	pump(struct store_lane *);

static void
job_failed(struct lane_job *job, int status, const char *err)
{
	job->rc = -1;
	job->status = status;
	snprintf(job->err, sizeof(job->err), "%s", err);
}

/* Run job on store st and note how it went. */
static void
job_run(struct store *st, struct lane_job *job)
{
	job->status = 0;
	job->err[0] = '\0';
	if ((job->rc = job->run(st, job)) == -1) {
		if (job->status == 0)
			job->status = store_http_status(st);
		if (job->err[0] == '\0')
			snprintf(job->err, sizeof(job->err), "%s",
			    store_error(st));
	}
}

/* Under mtx: the tag of the session's changes, for the feed. */
static void
origin_note(struct store_lane *sl)
{
	const char *o = sl->own != NULL && sl->own->ops->change_origin ?
	    sl->own->ops->change_origin(sl->own) : "";

	snprintf(sl->origin, sizeof(sl->origin), "%s", o ? o : "");
}

/*
 * The session answers before a job starts, or has had the time a
 * reconnect takes: after the server restarted or a standby took over, the
 * first admin change must not fail on the session it lost meanwhile.
 * The loop never waits for this; the admin's answer does.
 */
static void
lane_connect(struct store_lane *sl)
{
	uint64_t end = now_msec_mono() + LANE_CONNECT_MS;
	struct store *st = sl->own;

	while (st->ops->ping(st) == -1 && store_retryable(st) &&
	    now_msec_mono() < end)
		usleep(LANE_RETRY_MS * 1000);
}

static void *
lane_main(void *arg)
{
	struct store_lane *sl = arg;
	struct lane_job *job;
	char err[512];

	pthread_mutex_lock(&sl->mtx);
	for (;;) {
		while (!sl->stop && (sl->cur == NULL || sl->fin != NULL))
			pthread_cond_wait(&sl->cond, &sl->mtx);
		if (sl->stop)
			break;
		job = sl->cur;
		pthread_mutex_unlock(&sl->mtx);

		if (sl->own == NULL && (sl->own = store_open_lane(sl->url, err,
		    sizeof(err))) != NULL) {
			pthread_mutex_lock(&sl->mtx);
			origin_note(sl);
			pthread_mutex_unlock(&sl->mtx);
		}
		if (sl->own == NULL)
			job_failed(job, 503, err);
		else {
			lane_connect(sl);
			job_run(sl->own, job);
		}

		pthread_mutex_lock(&sl->mtx);
		origin_note(sl);
		sl->fin = job;
		sl->cur = NULL;
		if (write(sl->wake[1], "", 1) == -1 && errno != EAGAIN)
			log_warn("store lane: wake");
	}
	pthread_mutex_unlock(&sl->mtx);
	store_free(sl->own);
	sl->own = NULL;
	return NULL;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store_lane *sl = arg;
	struct lane_job *job;
	char buf[16];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&sl->mtx);
	job = sl->fin;
	sl->fin = NULL;
	pthread_mutex_unlock(&sl->mtx);
	if (job == NULL)
		return;
	job->done(job);
	pump(sl);
}

static void
again_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

static int
lane_busy(struct store_lane *sl)
{
	int busy;

	if (!sl->threaded)
		return 0;
	pthread_mutex_lock(&sl->mtx);
	busy = sl->cur != NULL || sl->fin != NULL;
	pthread_mutex_unlock(&sl->mtx);
	return busy;
}

/* The next jobs in turn, until one is in the thread or must wait. */
static void
pump(struct store_lane *sl)
{
	struct timeval tv = { 0, LANE_AGAIN_MS * 1000 };
	struct lane_job *job;
	int r;

	if (sl->pumping)
		return;
	sl->pumping = 1;
	while (!lane_busy(sl) && (job = TAILQ_FIRST(&sl->queue)) != NULL) {
		r = job->prepare != NULL ? job->prepare(job) : 0;
		if (r == LANE_NOT_YET) {
			if (!evtimer_pending(sl->again, NULL) &&
			    evtimer_add(sl->again, &tv) == -1)
				fatalx("store lane: evtimer_add");
			break;
		}
		TAILQ_REMOVE(&sl->queue, job, entry);
		sl->nqueued--;
		if (r == -1) {
			job->rc = -1;
			job->status = 0;
			job->done(job);
			continue;
		}
		if (!sl->threaded) {
			job_run(sl->main, job);
			job->done(job);
			continue;
		}
		pthread_mutex_lock(&sl->mtx);
		sl->cur = job;
		sl->cur_at = now_msec_mono();
		pthread_cond_signal(&sl->cond);
		pthread_mutex_unlock(&sl->mtx);
	}
	sl->pumping = 0;
}

struct store_lane *
store_lane_new(struct event_base *base, struct store *st, const char *url)
{
	struct store_lane *sl = xcalloc(1, sizeof(*sl));
	sigset_t all, old;

	sl->base = base;
	sl->main = st;
	sl->url = xstrdup(url);
	sl->wake[0] = sl->wake[1] = -1;
	TAILQ_INIT(&sl->queue);
	if ((sl->again = evtimer_new(base, again_cb, sl)) == NULL)
		fatalx("store lane: evtimer_new");
	/* Only a store that waits on a network needs the thread. */
	if (st->ops->place_send == NULL)
		return sl;
	if (pipe2(sl->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("store lane: pipe");
	if ((sl->wake_ev = event_new(base, sl->wake[0], EV_READ | EV_PERSIST,
	    wake_cb, sl)) == NULL || event_add(sl->wake_ev, NULL) == -1)
		fatalx("store lane: event_new");
	pthread_mutex_init(&sl->mtx, NULL);
	pthread_cond_init(&sl->cond, NULL);
	/* Signals are the loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&sl->thread, NULL, lane_main, sl) != 0)
		fatalx("store lane: cannot start its thread");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sl->threaded = 1;
	return sl;
}

void
store_lane_free(struct store_lane *sl)
{
	struct lane_job *job;

	if (sl == NULL)
		return;
	if (sl->threaded) {
		pthread_mutex_lock(&sl->mtx);
		sl->stop = 1;
		pthread_cond_signal(&sl->cond);
		pthread_mutex_unlock(&sl->mtx);
		/* A job under way ends within the store's bound. */
		pthread_join(sl->thread, NULL);
		if ((job = sl->fin) != NULL || (job = sl->cur) != NULL) {
			if (job == sl->cur)
				job_failed(job, 503, "roostd is stopping");
			sl->fin = sl->cur = NULL;
			job->done(job);
		}
		event_free(sl->wake_ev);
		close(sl->wake[0]);
		close(sl->wake[1]);
		pthread_mutex_destroy(&sl->mtx);
		pthread_cond_destroy(&sl->cond);
	}
	while ((job = TAILQ_FIRST(&sl->queue)) != NULL) {
		TAILQ_REMOVE(&sl->queue, job, entry);
		job_failed(job, 503, "roostd is stopping");
		job->done(job);
	}
	event_free(sl->again);
	while (sl->nheld > 0)
		free(sl->held[--sl->nheld]);
	free(sl->held);
	free(sl->url);
	free(sl);
}

void
store_lane_give(struct store_lane *sl, struct lane_job *job)
{
	job->since = now_msec_mono();
	job->rc = 0;
	job->status = 0;
	job->err[0] = '\0';
	/* GET /v1/health needs no credentials: its callers must not grow
	 * the queue without end while the store is slow. */
	if (sl->nqueued >= LANE_QUEUE_MAX) {
		job_failed(job, 503, "too much admin work waiting for the "
		    "store");
		job->done(job);
		return;
	}
	TAILQ_INSERT_TAIL(&sl->queue, job, entry);
	sl->nqueued++;
	pump(sl);
}

void
store_lane_hold(struct store_lane *sl, const char *user)
{
	sl->held = xreallocarray(sl->held, sl->nheld + 1, sizeof(*sl->held));
	sl->held[sl->nheld++] = xstrdup(user);
}

void
store_lane_release(struct store_lane *sl, const char *user)
{
	size_t i;

	for (i = 0; i < sl->nheld; i++)
		if (strcmp(sl->held[i], user) == 0) {
			free(sl->held[i]);
			sl->held[i] = sl->held[--sl->nheld];
			return;
		}
}

int
store_lane_held(const struct store_lane *sl, const char *user)
{
	size_t i;

	if (sl == NULL)
		return 0;
	for (i = 0; i < sl->nheld; i++)
		if (strcmp(sl->held[i], user) == 0)
			return 1;
	return 0;
}

int
store_lane_own(struct store_lane *sl, const char *origin)
{
	int own;

	if (sl == NULL || !sl->threaded || origin == NULL || *origin == '\0')
		return 0;
	pthread_mutex_lock(&sl->mtx);
	own = strcmp(sl->origin, origin) == 0;
	pthread_mutex_unlock(&sl->mtx);
	return own;
}

int
store_lane_busy(struct store_lane *sl)
{
	return sl != NULL && (lane_busy(sl) || !TAILQ_EMPTY(&sl->queue));
}

json_t *
store_lane_json(struct store_lane *sl)
{
	const char *what = NULL;
	uint64_t at = 0;

	if (sl->threaded) {
		pthread_mutex_lock(&sl->mtx);
		if (sl->cur != NULL) {
			what = sl->cur->what;
			at = sl->cur_at;
		}
		pthread_mutex_unlock(&sl->mtx);
	}
	if (what == NULL && sl->nqueued == 0)
		return json_null();
	return json_pack("{s:s?, s:I, s:I}", "what", what, "ms",
	    (json_int_t)(what != NULL ? now_msec_mono() - at : 0),
	    "queued", (json_int_t)sl->nqueued);
}
