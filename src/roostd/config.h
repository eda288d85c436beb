/*
 * config.h: roostd.conf, driven by one settings table (config.c).  The file
 * holds daemon settings only; backends and users live in the store.
 */
#ifndef ROOST_CONFIG_H
#define ROOST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_DEFAULT_PATH	"/etc/roost/roostd.conf"

enum username_format {
	USERNAME_EXACT = 0,	/* %u  */
	USERNAME_LOWER,		/* %Lu (default, like the Director) */
	USERNAME_LOCALPART,	/* %n  */
	USERNAME_LOCALPART_LOWER, /* %Ln */
	USERNAME_DOMAIN,	/* %d  */
	USERNAME_DOMAIN_LOWER	/* %Ld */
};

struct config {
	char			*listen;		/* "host:port" */
	char			*listen_unix;		/* NULL = none */
	char			*store;			/* "sqlite:/path" */
	char			*admin_token_file;
	char			*lookup_token_file;	/* NULL = lookups open */
	char			*events_token_file;	/* NULL = no event intake */
	int			 lookup_open;		/* open off loopback too */
	long long		 user_expire;		/* seconds, 0 = never */
	long long		 unconfirmed_expire;	/* seconds, 0 = never */
	long long		 activity_poll_interval; /* seconds, 0 = off */
	long long		 probe_interval;	/* seconds, 0 = no probes */
	long long		 probe_timeout;		/* seconds */
	long long		 probe_rise;
	long long		 probe_fall;
	long long		 move_timeout;		/* seconds */
	long long		 move_max_parallel;
	long long		 move_login_wait;	/* seconds */
	int			 replication;		/* yes/no */
	long long		 replication_max_conns;
	long long		 replication_full_sync_interval; /* s, 0 = never */
	long long		 replication_sync_timeout; /* seconds */
	int			 failback;		/* 1 = auto */
	enum username_format	 username_format;
	char			*master_user_separator;	/* NULL = none */
	enum log_level		 log_level;
	long long		 max_connections;	/* 0 = from RLIMIT_NOFILE */
	long long		 request_timeout;	/* seconds, 0 = idle timeout */

	/* Not settings: loaded from the files named above by config_load. */
	char			*admin_token;
	char			*lookup_token;
	char			*events_token;
};

/*
 * Parse a file into a new config.  On error returns NULL and writes
 * "FILE:LINE: message" (or "FILE: message") into err.  Secret files are read
 * and checked too, so a config that loads is one the daemon can run with.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);
/* Same, from a string (for tests); name is used in messages. */
struct config	*config_parse(const char *name, const char *text, int read_secrets,
		    char *err, size_t errlen);
void		 config_free(struct config *);

/*
 * Apply username_format and master_user_separator to a user name.  Writes
 * the routing key into out (NUL-terminated).  Returns its length, or -1
 * when the result is empty or does not fit.
 */
int		 config_user_key(const struct config *, const char *user,
		    size_t len, char *out, size_t outlen);

#endif
