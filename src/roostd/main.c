/*
 * main.c: roostd's start, its signals and its one event loop.
 *
 *	roostd [-d] [-f FILE] [-n]
 *	roostd [-f FILE] -C [FROM] TO	(store_copy.c)
 *
 * Start order matters for invariant 2: the store is opened and the whole
 * map loaded before the listener binds, so the first lookup answered after a
 * restart already sees every acknowledged assignment.
 */
#include <event2/event.h>

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "doveadm.h"
#include "events.h"
#include "feed.h"
#include "health.h"
#include "log.h"
#include "lookup.h"
#include "move.h"
#include "repl.h"
#include "role.h"
#include "roostd.h"
#include "store_copy.h"
#include "store_lane.h"
#include "util.h"
#include "xmalloc.h"

/* Lookup-time writes and expiry run in small slices, often: each slice is
 * well under a millisecond, so no lookup waits behind one. */
#define MAINTAIN_INTERVAL_MS	100

static void
usage(void)
{
	fprintf(stderr, "usage: roostd [-dn] [-f file]\n"
	    "       roostd [-f file] -C [FROM] TO\n");
	exit(2);
}

/*
 * -C: copy a store into a new one and exit, roostd running on neither.
 * Without FROM the configuration's store is the source: the usual move is
 * "this roostd's SQLite store into PostgreSQL".
 */
static int
copy_store(const char *conf_path, int argc, char *argv[])
{
	struct config *conf = NULL;
	const char *from, *to;
	char err[1024];
	int rv;

	if (argc < 1 || argc > 2)
		usage();
	log_init("roostd", 1);
	log_set_level(LOG_LEVEL_WARN);
	if (argc == 1) {
		if ((conf = config_load(conf_path, err, sizeof(err))) == NULL) {
			fprintf(stderr, "roostd: %s\n", err);
			return 1;
		}
		from = conf->store;
		to = argv[0];
	} else {
		from = argv[0];
		to = argv[1];
	}
	umask(077);
	rv = store_copy_urls(from, to, stdout, err, sizeof(err));
	if (rv == -1)
		fprintf(stderr, "roostd: copy: %s\n", err);
	config_free(conf);
	return rv == -1 ? 1 : 0;
}

static void
on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct roost *rs = arg;

	(void)what;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(rs->base, NULL);
}

/*
 * SIGHUP: the new file is parsed and checked in full (secret files too)
 * before anything changes.  Settings bound at start (listen, store and the
 * user-name rules that shape stored keys) need a restart; say so.
 */
static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct roost *rs = arg;
	struct config *nc, *old = rs->conf;
	char err[1024];

	(void)sig;
	(void)what;
	if ((nc = config_load(rs->conf_path, err, sizeof(err))) == NULL) {
		log_warnx("reload: %s; keeping the running configuration", err);
		return;
	}
	if (strcmp(nc->listen, old->listen) != 0) {
		log_warnx("reload: listen changes need a restart; keeping %s",
		    old->listen);
		free(nc->listen);
		nc->listen = xstrdup(old->listen);
	}
	if ((nc->listen_unix == NULL) != (old->listen_unix == NULL) ||
	    (nc->listen_unix != NULL &&
	    strcmp(nc->listen_unix, old->listen_unix) != 0)) {
		log_warnx("reload: listen_unix changes need a restart; keeping "
		    "%s", old->listen_unix ? old->listen_unix : "none");
		free(nc->listen_unix);
		nc->listen_unix = old->listen_unix ?
		    xstrdup(old->listen_unix) : NULL;
	}
	if (strcmp(nc->store, old->store) != 0) {
		log_warnx("reload: store changes need a restart; keeping the "
		    "current store");
		free(nc->store);
		nc->store = xstrdup(old->store);
	}
	if (nc->username_format != old->username_format ||
	    (nc->master_user_separator == NULL) !=
	    (old->master_user_separator == NULL) ||
	    (nc->master_user_separator != NULL &&
	    strcmp(nc->master_user_separator, old->master_user_separator) != 0)) {
		log_warnx("reload: username_format and master_user_separator "
		    "change stored keys and need a restart; keeping them");
		nc->username_format = old->username_format;
		free(nc->master_user_separator);
		nc->master_user_separator = old->master_user_separator ?
		    xstrdup(old->master_user_separator) : NULL;
	}
	rs->conf = nc;
	config_free(old);
	log_set_level(nc->log_level);
	health_reconfigure(rs);
	events_reconfigure(rs);
	repl_reconfigure(rs);
	log_info("reload: configuration %s loaded", rs->conf_path);
}

static void
on_maintain(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lookup_maintain(arg, 0);
}

static void
daemonize(void)
{
	int fd;

	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

int
main(int argc, char *argv[])
{
	struct roost rs;
	struct event *ev_term, *ev_int, *ev_hup;
	struct timeval tv = { 0, MAINTAIN_INTERVAL_MS * 1000 };
	char err[1024];
	static const struct option longopts[] = {
		{ "copy-store", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, debug = 0, check = 0, copy = 0;

	memset(&rs, 0, sizeof(rs));
	rs.conf_path = CONFIG_DEFAULT_PATH;
	while ((ch = getopt_long(argc, argv, "Cdf:n", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			copy = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'f':
			rs.conf_path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		default:
			usage();
		}
	}
	if (copy) {
		if (debug || check)
			usage();
		return copy_store(rs.conf_path, argc - optind, argv + optind);
	}
	if (optind != argc)
		usage();

	log_init("roostd", 1);
	if ((rs.conf = config_load(rs.conf_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "roostd: %s\n", err);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		config_free(rs.conf);
		return 0;
	}
	log_set_level(rs.conf->log_level);
	umask(077);
	/* libcurl's global state is not thread-safe to set up: do it while
	 * roostd is one thread (curl's resolver starts threads later). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init");

	/* Detach before the store is opened: SQLite's file locks belong to
	 * the process that took them and do not survive a fork, nor do
	 * PostgreSQL's role locks, which belong to the store's session. */
	if (!debug) {
		log_init("roostd", 0);
		daemonize();
	}
	if ((rs.store = store_open(rs.conf->store, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	/* Where the change feed starts: before the load, so that what is
	 * committed meanwhile comes again rather than not at all. */
	if (feed_init(&rs) == -1)
		fatalx("cannot start the change feed");
	rs.users = umap_new(0);
	if (state_load(&rs) == -1)
		fatalx("cannot load the store");
	log_info("store %s: %zu backends, %zu users", rs.store->ops->name,
	    rs.nslots, umap_count(rs.users));
	signal(SIGPIPE, SIG_IGN);
	if ((rs.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (lookup_init(&rs) == -1)
		fatalx("lookup_init");
	rs.lane = store_lane_new(rs.base, rs.store, rs.conf->store);
	rs.doveadm = doveadm_new(rs.base);
	/* Which singleton work is this instance's: the engines below take
	 * up the stored work of the roles they hold. */
	if (role_init(&rs) == -1)
		fatalx("cannot claim roles");
	if (health_init(&rs) == -1 || health_load(&rs) == -1)
		fatalx("cannot start the health engine");
	/* Before the moves: a move taken up at start may sync at once. */
	if (repl_init(&rs) == -1)
		fatalx("repl_init");
	if (move_init(&rs) == -1)
		fatalx("cannot take up the open moves");
	if (events_init(&rs) == -1)
		fatalx("cannot start the event intake");
	if (feed_start(&rs) == -1)
		fatalx("cannot start the change feed");
	if (role_start(&rs) == -1)
		fatalx("cannot start the role claims");
	if (api_start(&rs) == -1)
		fatalx("cannot start the API listener");
	rs.started = now_sec();

	ev_term = evsignal_new(rs.base, SIGTERM, on_terminate, &rs);
	ev_int = evsignal_new(rs.base, SIGINT, on_terminate, &rs);
	ev_hup = evsignal_new(rs.base, SIGHUP, on_reload, &rs);
	rs.touch_ev = event_new(rs.base, -1, EV_PERSIST, on_maintain, &rs);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    rs.touch_ev == NULL || evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1 || evsignal_add(ev_hup, NULL) == -1 ||
	    event_add(rs.touch_ev, &tv) == -1)
		fatalx("cannot set up signal and timer events");

	log_info("roostd %s ready", ROOST_VERSION);
	event_base_dispatch(rs.base);

	/* Answer what is waiting, keep lookup times, then close cleanly. */
	lookup_maintain(&rs, 1);
	/* Before the listener: its jobs answer requests the listener owns. */
	store_lane_free(rs.lane);
	rs.lane = NULL;
	api_stop(&rs);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(rs.touch_ev);
	role_free(&rs);
	feed_free(&rs);
	events_free(&rs);	/* before the doveadm client its polls use */
	move_free(&rs);
	repl_free(&rs);
	lookup_free(&rs);
	health_free(&rs);
	doveadm_free(rs.doveadm);	/* after the probes that use it */
	event_base_free(rs.base);
	state_clear(&rs);
	store_free(rs.store);
	config_free(rs.conf);
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}
