/*
 * config.c: roostd.conf.  One table names every setting with its type,
 * bounds, default and place in struct config; defaults, parsing, secret
 * loading and freeing all walk it, so a new setting is one table entry.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define CONFIG_LINE_MAX		4096
#define CONFIG_FILE_MAX		(1024 * 1024)
#define CONFIG_PATH_MAX		4095
#define CONFIG_HOST_MAX		253
#define CONFIG_WHY_MAX		256

/* Enum settings are stored through an int; make sure that is the layout. */
_Static_assert(sizeof(enum username_format) == sizeof(int),
    "enum username_format is not int-sized");
_Static_assert(sizeof(enum log_level) == sizeof(int),
    "enum log_level is not int-sized");

enum set_type {
	SET_STRING,	/* char *, length within [min, max], optional check */
	SET_PATH,	/* char *, an absolute path */
	SET_DURATION,	/* long long seconds; 0/never or within [min, max] */
	SET_ENUM,	/* int, one of names[] */
	SET_LOGLEVEL,	/* enum log_level, through log_level_parse */
	SET_NUMBER,	/* long long within [min, max] */
	SET_LISTEN	/* char *, host:port or [v6]:port */
};

#define SF_OPTIONAL	0x01	/* an empty value means unset (NULL) */
#define SF_SECRET	0x02	/* names a secret file, loaded into secret_off */

struct enum_name {
	const char	*name;
	int		 value;
};

struct setting {
	const char		*name;
	enum set_type		 type;
	int			 flags;
	long long		 min, max;
	const char		*def;		/* parsed like a file value */
	size_t			 off;
	size_t			 secret_off;	/* with SF_SECRET */
	const struct enum_name	*names;		/* SET_ENUM, NULL-terminated */
	int			(*check)(const char *, char *, size_t);
	const char		*descr;
};

/*
 * Stores roostd can use.  A new backend (postgresql:) is one more line here
 * with a checker for the rest of its value.
 */
struct store_scheme {
	const char	*prefix;
	const char	*form;		/* for error messages */
	int		(*check)(const char *, char *, size_t);
};

static int	check_abspath(const char *, char *, size_t);
static int	check_conninfo(const char *, char *, size_t);
static int	check_store(const char *, char *, size_t);
static int	check_separator(const char *, char *, size_t);

static const struct store_scheme store_schemes[] = {
	{ "sqlite:", "sqlite:/absolute/path", check_abspath },
	{ "postgresql:", "postgresql:<libpq connection string>",
	  check_conninfo },
};

static const struct enum_name username_formats[] = {
	{ "%u",  USERNAME_EXACT },
	{ "%Lu", USERNAME_LOWER },
	{ "%n",  USERNAME_LOCALPART },
	{ "%Ln", USERNAME_LOCALPART_LOWER },
	{ "%d",  USERNAME_DOMAIN },
	{ "%Ld", USERNAME_DOMAIN_LOWER },
	{ NULL, 0 }
};

static const struct enum_name yes_no[] = {
	{ "no", 0 },
	{ "yes", 1 },
	{ NULL, 0 }
};

static const struct enum_name failback_modes[] = {
	{ "manual", 0 },
	{ "auto", 1 },
	{ NULL, 0 }
};

#define OFF(field)	offsetof(struct config, field)

static const struct setting settings[] = {
	{ .name = "listen", .type = SET_LISTEN,
	  .def = "127.0.0.1:8470", .off = OFF(listen),
	  .descr = "address and port of the HTTP API" },
	{ .name = "listen_unix", .type = SET_PATH, .flags = SF_OPTIONAL,
	  .off = OFF(listen_unix),
	  .descr = "unix socket the HTTP API also listens on (unset: none)" },
	{ .name = "store", .type = SET_STRING, .min = 1, .max = CONFIG_LINE_MAX,
	  .def = "sqlite:/var/lib/roost/roost.db", .off = OFF(store),
	  .check = check_store,
	  .descr = "where backends and users are kept" },
	{ .name = "admin_token_file", .type = SET_PATH, .flags = SF_SECRET,
	  .def = "/etc/roost/admin.token", .off = OFF(admin_token_file),
	  .secret_off = OFF(admin_token),
	  .descr = "file holding the bearer token of the admin API (required)" },
	{ .name = "lookup_token_file", .type = SET_PATH,
	  .flags = SF_SECRET | SF_OPTIONAL,
	  .off = OFF(lookup_token_file), .secret_off = OFF(lookup_token),
	  .descr = "file holding the bearer token of /v1/lookup (unset: open)" },
	{ .name = "events_token_file", .type = SET_PATH,
	  .flags = SF_SECRET | SF_OPTIONAL,
	  .off = OFF(events_token_file), .secret_off = OFF(events_token),
	  .descr = "file holding the token of /v1/events (unset: no events)" },
	{ .name = "lookup_open", .type = SET_ENUM, .names = yes_no,
	  .def = "no", .off = OFF(lookup_open),
	  .descr = "yes: /v1/lookup without a token on a non-loopback listen" },
	{ .name = "user_expire", .type = SET_DURATION,
	  .min = 60, .max = 30 * 86400,
	  .def = "never", .off = OFF(user_expire),
	  .descr = "idle time after which an assignment falls back to the hash" },
	{ .name = "unconfirmed_expire", .type = SET_DURATION,
	  .min = 60, .max = 30 * 86400,
	  .def = "1h", .off = OFF(unconfirmed_expire),
	  .descr = "age at which an assignment that never saw a session or "
	    "a delivery is forgotten (with events_token_file)" },
	{ .name = "activity_poll_interval", .type = SET_DURATION,
	  .min = 1, .max = 3600,
	  .def = "60s", .off = OFF(activity_poll_interval),
	  .descr = "time between polls of the proxies' sessions (0: none)" },
	{ .name = "probe_interval", .type = SET_DURATION,
	  .min = 1, .max = 3600,
	  .def = "1s", .off = OFF(probe_interval),
	  .descr = "time between probe rounds of each backend (0: no probes)" },
	{ .name = "probe_timeout", .type = SET_DURATION,
	  .min = 1, .max = 60,
	  .def = "2s", .off = OFF(probe_timeout),
	  .descr = "time one probe round may take before it fails" },
	{ .name = "probe_rise", .type = SET_NUMBER,
	  .min = 1, .max = 100,
	  .def = "3", .off = OFF(probe_rise),
	  .descr = "passed rounds in a row that make a failed backend ok" },
	{ .name = "probe_fall", .type = SET_NUMBER,
	  .min = 1, .max = 100,
	  .def = "2", .off = OFF(probe_fall),
	  .descr = "failed rounds in a row that make a backend failed" },
	{ .name = "move_timeout", .type = SET_DURATION,
	  .min = 1, .max = 600,
	  .def = "10s", .off = OFF(move_timeout),
	  .descr = "time a move may take to see the user's sessions gone" },
	{ .name = "move_max_parallel", .type = SET_NUMBER,
	  .min = 1, .max = 10000,
	  .def = "100", .off = OFF(move_max_parallel),
	  .descr = "moves under way at once; more wait in the queue" },
	{ .name = "move_login_wait", .type = SET_DURATION,
	  .min = 1, .max = 30,
	  .def = "2s", .off = OFF(move_login_wait),
	  .descr = "time a login of a moving user waits before a "
	    "temporary failure" },
	{ .name = "replication", .type = SET_ENUM, .names = yes_no,
	  .def = "no", .off = OFF(replication),
	  .descr = "yes: dsync each user's mail to its replica, and fail "
	    "users over to their replica (local storage)" },
	{ .name = "replication_max_conns", .type = SET_NUMBER,
	  .min = 1, .max = 1000,
	  .def = "10", .off = OFF(replication_max_conns),
	  .descr = "syncs under way at once" },
	{ .name = "replication_full_sync_interval", .type = SET_DURATION,
	  .min = 60, .max = 365 * 86400,
	  .def = "24h", .off = OFF(replication_full_sync_interval),
	  .descr = "time between two full syncs of a user, spread over "
	    "the interval (0: none)" },
	{ .name = "replication_sync_timeout", .type = SET_DURATION,
	  .min = 1, .max = 86400,
	  .def = "10m", .off = OFF(replication_sync_timeout),
	  .descr = "time one sync may take before it counts as failed" },
	{ .name = "failback", .type = SET_ENUM, .names = failback_modes,
	  .def = "manual", .off = OFF(failback),
	  .descr = "auto: users failed over go home once their backend is "
	    "healthy and synced; manual: roostctl failback" },
	{ .name = "username_format", .type = SET_ENUM, .names = username_formats,
	  .def = "%Lu", .off = OFF(username_format),
	  .descr = "which part of the user name is routed, and its case" },
	{ .name = "master_user_separator", .type = SET_STRING,
	  .flags = SF_OPTIONAL, .min = 1, .max = 1,
	  .off = OFF(master_user_separator), .check = check_separator,
	  .descr = "character before a master user name, cut off (unset: none)" },
	{ .name = "log_level", .type = SET_LOGLEVEL,
	  .def = "info", .off = OFF(log_level),
	  .descr = "error, warn, info or debug" },
	{ .name = "max_connections", .type = SET_NUMBER,
	  .min = 0, .max = 1000000,
	  .def = "0", .off = OFF(max_connections),
	  .descr = "open API connections at most (0: from RLIMIT_NOFILE)" },
	{ .name = "request_timeout", .type = SET_DURATION,
	  .min = 1, .max = 60,
	  .def = "10s", .off = OFF(request_timeout),
	  .descr = "time a new connection has for its first request" },
};

#define NSETTINGS	(sizeof(settings) / sizeof(settings[0]))

/* Where one file or string is in its parse, for messages. */
struct parse {
	const char	*name;
	size_t		 lineno;
	size_t		 seen[NSETTINGS];	/* line each setting was set on */
	char		*err;
	size_t		 errlen;
};

static void	seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char **
field_str(struct config *conf, const struct setting *s)
{
	return (char **)(void *)((char *)conf + s->off);
}

static char **
field_secret(struct config *conf, const struct setting *s)
{
	return (char **)(void *)((char *)conf + s->secret_off);
}

static int
type_is_string(enum set_type t)
{
	return t == SET_STRING || t == SET_PATH || t == SET_LISTEN;
}

static void
field_set_int(struct config *conf, const struct setting *s, int v)
{
	memcpy((char *)conf + s->off, &v, sizeof(v));
}

static int
check_abspath(const char *v, char *why, size_t whylen)
{
	if (v[0] != '/') {
		seterr(why, whylen, "'%.128s' is not an absolute path", v);
		return -1;
	}
	if (strlen(v) > CONFIG_PATH_MAX) {
		seterr(why, whylen, "path longer than %d bytes", CONFIG_PATH_MAX);
		return -1;
	}
	return 0;
}

/*
 * A libpq connection string ("host=... dbname=..." or a postgresql:// URI),
 * checked for its form only: the server is not asked.  It may hold a
 * password, so no part of it goes into the message, nor libpq's, which can
 * quote a piece of the string.
 */
static int
check_conninfo(const char *v, char *why, size_t whylen)
{
	PQconninfoOption *opts;
	char *err = NULL;

	if (v[0] == '\0') {
		seterr(why, whylen, "no connection string after postgresql:");
		return -1;
	}
	if (strncmp(v, "//", 2) == 0) {
		seterr(why, whylen, "a URI follows the scheme: "
		    "postgresql:postgresql://...");
		return -1;
	}
	if ((opts = PQconninfoParse(v, &err)) == NULL) {
		if (err != NULL &&
		    strncmp(err, "invalid connection option", 25) == 0)
			seterr(why, whylen, "not a valid libpq connection "
			    "string: an unknown keyword");
		else
			seterr(why, whylen, "not a valid libpq connection "
			    "string (keyword=value ... or postgresql://...)");
		PQfreemem(err);
		return -1;
	}
	PQconninfoFree(opts);
	return 0;
}

static int
check_store(const char *v, char *why, size_t whylen)
{
	char forms[256];
	size_t i, len, flen = 0;

	for (i = 0; i < sizeof(store_schemes) / sizeof(store_schemes[0]); i++) {
		len = strlen(store_schemes[i].prefix);
		if (strncmp(v, store_schemes[i].prefix, len) == 0)
			return store_schemes[i].check(v + len, why, whylen);
	}
	forms[0] = '\0';
	for (i = 0; i < sizeof(store_schemes) / sizeof(store_schemes[0]) &&
	    flen < sizeof(forms); i++)
		flen += (size_t)snprintf(forms + flen, sizeof(forms) - flen, "%s%s",
		    i > 0 ? " or " : "", store_schemes[i].form);
	/* Only the scheme: the rest may hold a password. */
	seterr(why, whylen, "unknown store '%.*s' (want %s)",
	    (int)strcspn(v, ":"), v, forms);
	return -1;
}

static int
check_separator(const char *v, char *why, size_t whylen)
{
	unsigned char c = (unsigned char)v[0];

	/* Length is checked by the table; the character must be visible. */
	if (c <= 0x20 || c >= 0x7f) {
		seterr(why, whylen, "must be a visible ASCII character");
		return -1;
	}
	return 0;
}

static int
check_listen(const char *v, char *why, size_t whylen)
{
	struct in6_addr a6;
	char host[CONFIG_HOST_MAX + 1];
	const char *end, *port;
	long long p;
	size_t hlen;

	if (v[0] == '[') {
		if ((end = strchr(v, ']')) == NULL) {
			seterr(why, whylen, "'%.128s': missing ']'", v);
			return -1;
		}
		hlen = (size_t)(end - (v + 1));
		if (end[1] != ':') {
			seterr(why, whylen, "'%.128s': missing port "
			    "(want [address]:port)", v);
			return -1;
		}
		port = end + 2;
		if (hlen == 0 || hlen > CONFIG_HOST_MAX) {
			seterr(why, whylen, "'%.128s': invalid IPv6 address", v);
			return -1;
		}
		memcpy(host, v + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			seterr(why, whylen, "'%.128s': invalid IPv6 address", v);
			return -1;
		}
	} else {
		if ((end = strrchr(v, ':')) == NULL) {
			seterr(why, whylen, "'%.128s': missing port "
			    "(want host:port)", v);
			return -1;
		}
		hlen = (size_t)(end - v);
		port = end + 1;
		if (memchr(v, ':', hlen) != NULL) {
			seterr(why, whylen, "'%.128s': an IPv6 address goes in "
			    "brackets, as [::1]:8470", v);
			return -1;
		}
		if (hlen == 0) {
			seterr(why, whylen, "'%.128s': missing host", v);
			return -1;
		}
		if (hlen > CONFIG_HOST_MAX) {
			seterr(why, whylen, "host longer than %d bytes",
			    CONFIG_HOST_MAX);
			return -1;
		}
		memcpy(host, v, hlen);
		host[hlen] = '\0';
		if (!valid_hostname(host)) {
			seterr(why, whylen, "'%.128s': invalid host", v);
			return -1;
		}
	}
	if (parse_ll(port, 1, 65535, &p) == -1) {
		seterr(why, whylen, "'%.128s': port must be 1-65535", v);
		return -1;
	}
	return 0;
}

static void
format_duration(long long secs, char *buf, size_t len)
{
	if (secs % 86400 == 0)
		snprintf(buf, len, "%lldd", secs / 86400);
	else if (secs % 3600 == 0)
		snprintf(buf, len, "%lldh", secs / 3600);
	else if (secs % 60 == 0)
		snprintf(buf, len, "%lldm", secs / 60);
	else
		snprintf(buf, len, "%llds", secs);
}

/* Set one setting from its text; on error writes the reason into why. */
static int
setting_set(struct config *conf, const struct setting *s, const char *v,
    char *why, size_t whylen)
{
	const struct enum_name *en;
	enum log_level level;
	char lo[32], hi[32], list[128];
	long long n;
	size_t len, l;
	char **sp;

	if (type_is_string(s->type)) {
		sp = field_str(conf, s);
		len = strlen(v);
		if (len == 0 && (s->flags & SF_OPTIONAL)) {
			free(*sp);
			*sp = NULL;
			return 0;
		}
		if (len == 0) {
			seterr(why, whylen, "empty value");
			return -1;
		}
		if (s->type == SET_PATH && check_abspath(v, why, whylen) == -1)
			return -1;
		if (s->type == SET_LISTEN && check_listen(v, why, whylen) == -1)
			return -1;
		if (s->type == SET_STRING) {
			if ((long long)len < s->min || (long long)len > s->max) {
				if (s->min == s->max)
					seterr(why, whylen, "must be exactly "
					    "%lld character%s", s->min,
					    s->min == 1 ? "" : "s");
				else
					seterr(why, whylen, "length must be "
					    "%lld-%lld", s->min, s->max);
				return -1;
			}
			if (s->check != NULL && s->check(v, why, whylen) == -1)
				return -1;
		}
		free(*sp);
		*sp = xstrdup(v);
		return 0;
	}

	switch (s->type) {
	case SET_DURATION:
		if (strcmp(v, "never") == 0 ||
		    parse_duration(v, 0, 0, &n) == 0) {
			n = 0;
		} else if (parse_duration(v, s->min, s->max, &n) == -1) {
			format_duration(s->min, lo, sizeof(lo));
			format_duration(s->max, hi, sizeof(hi));
			seterr(why, whylen, "'%.64s': want 0 or never, or a "
			    "duration from %s to %s (as 900, 15m, 1h, 1d)",
			    v, lo, hi);
			return -1;
		}
		memcpy((char *)conf + s->off, &n, sizeof(n));
		return 0;
	case SET_ENUM:
		for (en = s->names; en->name != NULL; en++) {
			if (strcmp(v, en->name) == 0) {
				field_set_int(conf, s, en->value);
				return 0;
			}
		}
		list[0] = '\0';
		l = 0;
		for (en = s->names; en->name != NULL && l < sizeof(list); en++)
			l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s",
			    en == s->names ? "" : " ", en->name);
		seterr(why, whylen, "'%.64s': want one of %s", v, list);
		return -1;
	case SET_LOGLEVEL:
		if (log_level_parse(v, &level) == -1) {
			seterr(why, whylen, "'%.64s': want error, warn, info "
			    "or debug", v);
			return -1;
		}
		field_set_int(conf, s, (int)level);
		return 0;
	case SET_NUMBER:
		if (parse_ll(v, s->min, s->max, &n) == -1) {
			seterr(why, whylen, "'%.64s': want a number from %lld "
			    "to %lld", v, s->min, s->max);
			return -1;
		}
		memcpy((char *)conf + s->off, &n, sizeof(n));
		return 0;
	default:
		break;
	}
	seterr(why, whylen, "unsupported setting type");
	return -1;
}

static struct config *
config_defaults(void)
{
	struct config *conf;
	char why[CONFIG_WHY_MAX];
	size_t i;

	conf = xcalloc(1, sizeof(*conf));
	for (i = 0; i < NSETTINGS; i++) {
		if (settings[i].def == NULL)
			continue;
		if (setting_set(conf, &settings[i], settings[i].def, why,
		    sizeof(why)) == -1)
			fatalx("config: default of %s: %s", settings[i].name,
			    why);
	}
	return conf;
}

/*
 * Split a value off in place: a quoted value is taken literally but for
 * \" and \\; an unquoted one ends at a '#' after whitespace.  Returns the
 * value, or NULL with the reason in why.
 */
static char *
parse_value(char *v, char *why, size_t whylen)
{
	char *r, *w, *rest, *q;

	while (is_ws(*v))
		v++;
	if (*v == '"') {
		r = w = ++v;
		for (;;) {
			if (*r == '\0') {
				seterr(why, whylen, "unterminated quoted value");
				return NULL;
			}
			if (*r == '"')
				break;
			if (*r == '\\') {
				r++;
				if (*r != '"' && *r != '\\') {
					seterr(why, whylen, "invalid escape in "
					    "quoted value (only \\\" and \\\\)");
					return NULL;
				}
			}
			*w++ = *r++;
		}
		rest = r + 1;
		*w = '\0';
		while (is_ws(*rest))
			rest++;
		if (*rest != '\0' && *rest != '#') {
			seterr(why, whylen, "text after the closing quote");
			return NULL;
		}
		return v;
	}
	/* v[-1] exists: the caller's '=' at least. */
	for (q = v; *q != '\0'; q++) {
		if (*q == '#' && is_ws(q[-1])) {
			*q = '\0';
			break;
		}
	}
	for (q = v + strlen(v); q > v && is_ws(q[-1]); q--)
		;
	*q = '\0';
	return v;
}

static int
parse_line(struct config *conf, struct parse *ps, char *line)
{
	const struct setting *s = NULL;
	char why[CONFIG_WHY_MAX];
	char *key, *q, *v;
	size_t i;

	for (q = line; *q != '\0'; q++) {
		unsigned char c = (unsigned char)*q;

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			seterr(ps->err, ps->errlen, "%s:%zu: control character "
			    "in line", ps->name, ps->lineno);
			return -1;
		}
	}
	key = line;
	while (is_ws(*key))
		key++;
	if (*key == '\0' || *key == '#')
		return 0;
	/* key[0] is neither blank nor '#', so q[-1] is inside the line. */
	for (q = key; *q != '\0' && *q != '='; q++)
		if (*q == '#' && is_ws(q[-1]))
			break;
	if (*q != '=') {
		seterr(ps->err, ps->errlen, "%s:%zu: missing '='", ps->name,
		    ps->lineno);
		return -1;
	}
	v = q + 1;
	while (q > key && is_ws(q[-1]))
		q--;
	*q = '\0';
	if (*key == '\0') {
		seterr(ps->err, ps->errlen, "%s:%zu: missing setting name "
		    "before '='", ps->name, ps->lineno);
		return -1;
	}
	for (i = 0; i < NSETTINGS; i++) {
		if (strcmp(settings[i].name, key) == 0) {
			s = &settings[i];
			break;
		}
	}
	if (s == NULL) {
		seterr(ps->err, ps->errlen, "%s:%zu: unknown setting '%.64s'",
		    ps->name, ps->lineno, key);
		return -1;
	}
	if (ps->seen[i] != 0) {
		seterr(ps->err, ps->errlen, "%s:%zu: duplicate setting '%s' "
		    "(first set on line %zu)", ps->name, ps->lineno, s->name,
		    ps->seen[i]);
		return -1;
	}
	if ((v = parse_value(v, why, sizeof(why))) == NULL ||
	    setting_set(conf, s, v, why, sizeof(why)) == -1) {
		seterr(ps->err, ps->errlen, "%s:%zu: %s: %s", ps->name,
		    ps->lineno, s->name, why);
		return -1;
	}
	ps->seen[i] = ps->lineno;
	return 0;
}

/* Read the secret files the settings name; messages never hold a secret. */
static int
config_secrets(struct config *conf, const char *name, char *err,
    size_t errlen)
{
	char why[CONFIG_WHY_MAX + CONFIG_PATH_MAX];
	const char *path;
	char **dst;
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		if (!(settings[i].flags & SF_SECRET))
			continue;
		if ((path = *field_str(conf, &settings[i])) == NULL)
			continue;
		dst = field_secret(conf, &settings[i]);
		if ((*dst = secret_read(path, why, sizeof(why))) == NULL) {
			seterr(err, errlen, "%s: %s: %s", name,
			    settings[i].name, why);
			return -1;
		}
	}
	return 0;
}

/* Is the host part of a listen value a loopback address? */
static int
listen_is_loopback(const char *listen)
{
	struct in_addr a4;
	struct in6_addr a6;
	char host[CONFIG_HOST_MAX + 1];
	const char *colon = strrchr(listen, ':');
	size_t hlen;

	if (colon == NULL)
		return 0;
	hlen = (size_t)(colon - listen);
	if (listen[0] == '[' && hlen >= 2) {
		listen++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > CONFIG_HOST_MAX)
		return 0;
	memcpy(host, listen, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	/* Any other name may resolve to an address others reach. */
	return 0;
}

/*
 * Rules between settings.  An open lookup endpoint tells anyone who can
 * reach it where every user lives and lets them add assignments, so off
 * loopback it needs a token, or an admin who says the network is trusted.
 */
static int
config_check(const struct config *conf, const char *name, char *err,
    size_t errlen)
{
	if (conf->lookup_token_file == NULL && !conf->lookup_open &&
	    !listen_is_loopback(conf->listen)) {
		seterr(err, errlen, "%s: listen %s is not a loopback address: "
		    "set lookup_token_file (and the same token in roost.lua), "
		    "or lookup_open = yes if every host that reaches it is "
		    "trusted", name, conf->listen);
		return -1;
	}
	return 0;
}

struct config *
config_parse(const char *name, const char *text, int read_secrets,
    char *err, size_t errlen)
{
	struct config *conf;
	struct parse ps;
	char line[CONFIG_LINE_MAX + 2];
	const char *p, *eol;
	size_t len;

	if (strlen(text) > CONFIG_FILE_MAX) {
		seterr(err, errlen, "%s: larger than %d bytes", name,
		    CONFIG_FILE_MAX);
		return NULL;
	}
	memset(&ps, 0, sizeof(ps));
	ps.name = name;
	ps.err = err;
	ps.errlen = errlen;
	conf = config_defaults();
	for (p = text; *p != '\0'; p = (*eol == '\n') ? eol + 1 : eol) {
		ps.lineno++;
		if ((eol = strchr(p, '\n')) == NULL)
			eol = p + strlen(p);
		len = (size_t)(eol - p);
		/* Files written on Windows still parse. */
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > CONFIG_LINE_MAX) {
			seterr(err, errlen, "%s:%zu: line longer than %d bytes",
			    name, ps.lineno, CONFIG_LINE_MAX);
			goto fail;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		if (parse_line(conf, &ps, line) == -1)
			goto fail;
	}
	if (config_check(conf, name, err, errlen) == -1)
		goto fail;
	if (read_secrets && config_secrets(conf, name, err, errlen) == -1)
		goto fail;
	return conf;
fail:
	config_free(conf);
	return NULL;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *conf;
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		seterr(err, errlen, "%s: larger than %d bytes", path,
		    CONFIG_FILE_MAX);
		goto fail;
	}
	/* Read to the cap + 1 whatever fstat said: the file may be growing. */
	text = xmalloc(CONFIG_FILE_MAX + 2);
	for (;;) {
		n = read(fd, text + len, CONFIG_FILE_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			seterr(err, errlen, "%s: larger than %d bytes", path,
			    CONFIG_FILE_MAX);
			goto fail;
		}
	}
	close(fd);
	fd = -1;
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		seterr(err, errlen, "%s: contains a NUL byte", path);
		goto fail;
	}
	conf = config_parse(path, text, 1, err, errlen);
	free(text);
	return conf;
fail:
	if (fd != -1)
		close(fd);
	free(text);
	return NULL;
}

void
config_free(struct config *conf)
{
	char **sp;
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < NSETTINGS; i++) {
		if (settings[i].flags & SF_SECRET) {
			sp = field_secret(conf, &settings[i]);
			if (*sp != NULL) {
				explicit_bzero(*sp, strlen(*sp));
				free(*sp);
			}
		}
		if (type_is_string(settings[i].type))
			free(*field_str(conf, &settings[i]));
	}
	free(conf);
}

int
config_user_key(const struct config *conf, const char *user, size_t len,
    char *out, size_t outlen)
{
	const char *start = user, *at = NULL, *sep;
	int lower = 0;
	size_t i;

	if (conf->master_user_separator != NULL &&
	    (sep = memchr(user, conf->master_user_separator[0], len)) != NULL)
		len = (size_t)(sep - user);
	for (i = len; i > 0; i--) {
		if (user[i - 1] == '@') {
			at = user + i - 1;
			break;
		}
	}
	switch (conf->username_format) {
	case USERNAME_LOWER:
		lower = 1;
		/* FALLTHROUGH */
	case USERNAME_EXACT:
		break;
	case USERNAME_LOCALPART_LOWER:
		lower = 1;
		/* FALLTHROUGH */
	case USERNAME_LOCALPART:
		if (at != NULL)
			len = (size_t)(at - user);
		break;
	case USERNAME_DOMAIN_LOWER:
		lower = 1;
		/* FALLTHROUGH */
	case USERNAME_DOMAIN:
		/* A name without a domain routes as a whole, not as "". */
		if (at != NULL) {
			start = at + 1;
			len -= (size_t)(start - user);
		}
		break;
	}
	if (len == 0 || len >= outlen || len > 0x7fffffff)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = lower ? ascii_lower(start[i]) : start[i];
	out[len] = '\0';
	return (int)len;
}
