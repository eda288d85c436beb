/*
 * roostctl.c: the command-line client of roostd's REST API (docs/api.md).
 *
 * One static table of verbs, like tmux's cmd_entry: each verb names its
 * usage, how many positional arguments it takes, which options it allows
 * and its handler.  Every verb is one blocking libcurl request (map follows
 * next_cursor), then either the server's JSON (--json) or a table for people.
 *
 * Exit codes (docs/roostctl.md): 0 ok, 1 the server refused (4xx/5xx),
 * 2 usage error or unusable local file, 3 cannot connect / no valid answer.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define EXIT_OK		0
#define EXIT_REFUSED	1
#define EXIT_USAGE	2
#define EXIT_CONN	3

#define DEFAULT_URL		"http://127.0.0.1:8470"
#define DEFAULT_TOKEN_FILE	"/etc/roost/admin.token"
#define CONNECT_TIMEOUT		5L
#define TOTAL_TIMEOUT		30L
/* Far above any real answer (a map page of 10000 users); stops a runaway peer. */
#define ANSWER_MAX		(64UL * 1024 * 1024)
#define MAP_PAGE		1000
/* map follows next_cursor; a server that never ends the walk must not hang us. */
#define MAP_PAGES_MAX		1000000

#ifndef ROOST_VERSION
#define ROOST_VERSION	"0.0.0"
#endif

/* Options a verb may take; a verb's entry holds a mask of these. */
enum opt_id {
	OPT_HOST,
	OPT_HOSTIP,
	OPT_TAG,
	OPT_WEIGHT,
	OPT_STATE,
	OPT_IMAP_PORT,
	OPT_POP3_PORT,
	OPT_LMTP_PORT,
	OPT_SUBMISSION_PORT,
	OPT_SIEVE_PORT,
	OPT_DOVEADM_PORT,
	OPT_DOVEADM_URL,
	OPT_DOVEADM_KEY_FILE,
	OPT_TLS,
	OPT_PROBE_USER,
	OPT_PROBE_PASSWORD_FILE,
	OPT_FORCE,
	OPT_BACKEND,
	OPT_LIMIT,
	OPT_PROTOCOL,
	OPT_JSON,
	OPT_NO_WAIT,
	OPT_ALL,
	OPT_MAXMOVES,
	OPT_RATE,
	OPT_FULL,
	OPT_PRIORITY,
	OPT_MAX
};

#define O(id)	(1U << (id))
#define O_BACKEND_FIELDS						\
	(O(OPT_HOST) | O(OPT_HOSTIP) | O(OPT_TAG) | O(OPT_WEIGHT) |	\
	O(OPT_STATE) | O(OPT_IMAP_PORT) | O(OPT_POP3_PORT) |		\
	O(OPT_LMTP_PORT) | O(OPT_SUBMISSION_PORT) | O(OPT_SIEVE_PORT) |	\
	O(OPT_DOVEADM_PORT) | O(OPT_DOVEADM_URL) | O(OPT_DOVEADM_KEY_FILE) | \
	O(OPT_TLS) | O(OPT_PROBE_USER) | O(OPT_PROBE_PASSWORD_FILE))
#define O_PROXY_FIELDS	(O(OPT_DOVEADM_URL) | O(OPT_DOVEADM_KEY_FILE))

/*
 * How each option is spelled and checked.  A numeric option (min <= max) is
 * parsed here, so a bad number is a usage error before any request; port
 * options also name their key in the backend's "ports" object.
 */
static const struct opt_entry {
	const char	*name;
	int		 has_arg;
	long long	 min, max;
	const char	*port;
} opt_table[OPT_MAX] = {
	[OPT_HOST] =		{ "host", 1, 1, 0, NULL },
	[OPT_HOSTIP] =		{ "hostip", 1, 1, 0, NULL },
	[OPT_TAG] =		{ "tag", 1, 1, 0, NULL },
	[OPT_WEIGHT] =		{ "weight", 1, 0, 1000, NULL },
	[OPT_STATE] =		{ "state", 1, 1, 0, NULL },
	[OPT_IMAP_PORT] =	{ "imap-port", 1, 0, 65535, "imap" },
	[OPT_POP3_PORT] =	{ "pop3-port", 1, 0, 65535, "pop3" },
	[OPT_LMTP_PORT] =	{ "lmtp-port", 1, 0, 65535, "lmtp" },
	[OPT_SUBMISSION_PORT] =	{ "submission-port", 1, 0, 65535, "submission" },
	[OPT_SIEVE_PORT] =	{ "sieve-port", 1, 0, 65535, "sieve" },
	[OPT_DOVEADM_PORT] =	{ "doveadm-port", 1, 0, 65535, "doveadm" },
	[OPT_DOVEADM_URL] =	{ "doveadm-url", 1, 1, 0, NULL },
	[OPT_DOVEADM_KEY_FILE] = { "doveadm-key-file", 1, 1, 0, NULL },
	[OPT_TLS] =		{ "tls", 1, 1, 0, NULL },
	[OPT_PROBE_USER] =	{ "probe-user", 1, 1, 0, NULL },
	[OPT_PROBE_PASSWORD_FILE] = { "probe-password-file", 1, 1, 0, NULL },
	[OPT_FORCE] =		{ "force", 0, 1, 0, NULL },
	[OPT_BACKEND] =		{ "backend", 1, 1, 0, NULL },
	/* The server takes 1..10000 per page; map walks pages up to N total. */
	[OPT_LIMIT] =		{ "limit", 1, 1, 1000000000LL, NULL },
	[OPT_PROTOCOL] =	{ "protocol", 1, 1, 0, NULL },
	[OPT_JSON] =		{ "json", 0, 1, 0, NULL },
	[OPT_NO_WAIT] =		{ "no-wait", 0, 1, 0, NULL },
	[OPT_ALL] =		{ "all", 0, 1, 0, NULL },
	[OPT_MAXMOVES] =	{ "max", 1, 0, 100000000LL, NULL },
	[OPT_RATE] =		{ "rate", 1, 0, 100000000LL, NULL },
	[OPT_FULL] =		{ "full", 0, 1, 0, NULL },
	[OPT_PRIORITY] =	{ "priority", 1, 1, 0, NULL },
};

/* args.seen is a mask of O(opt). */
_Static_assert(OPT_MAX <= 32, "too many options for the seen mask");

struct ctl {
	const char	*url;		/* base URL, no trailing '/' */
	const char	*token_file;
	char		*token;
	int		 json;
	CURL		*curl;
	char		 errbuf[CURL_ERROR_SIZE];
};

/* A verb's parsed command line. */
struct args {
	int		 argc;		/* positional arguments */
	char		**argv;
	unsigned int	 seen;		/* mask of O(opt) given */
	const char	*val[OPT_MAX];
	long long	 num[OPT_MAX];
};

struct cmd_entry {
	const char	*name;		/* one or two words */
	const char	*usage;		/* what follows the name */
	int		 args_min, args_max;
	unsigned int	 options;
	int		(*exec)(struct ctl *, const struct cmd_entry *,
			    struct args *);
	const char	*data;		/* handler-specific (a state) */
};

/* Column-aligned output; widths only grow so that map's pages line up. */
/*
 * What one column of a table (or one line of a key: value listing) shows:
 * a field of each JSON object, through fmt (NULL: fmt_value).
 */
struct column {
	const char	*title;
	const char	*key;
	char		*(*fmt)(json_t *);
};

struct table {
	size_t		 ncols;
	const struct column *cols;
	size_t		*width;
	char		**cells;	/* nrows * ncols, owned */
	size_t		 nrows, cap;
	int		 header_done;
};

/* The body of an answer as it arrives. */
struct answer {
	char		*buf;
	size_t		 len, cap;
	int		 too_big;
};

static int	cmd_help(struct ctl *, const struct cmd_entry *, struct args *);
static int	cmd_status(struct ctl *, const struct cmd_entry *, struct args *);
static int	cmd_backend_list(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_add(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_set(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_state(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_remove(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_show(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_user_show(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_user_pin(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_user_forget(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_map(struct ctl *, const struct cmd_entry *, struct args *);
static int	cmd_lookup(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_audit(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_user_move(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_moves(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_flush(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_user_kick(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_rebalance(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_proxy_list(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_proxy_show(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_proxy_add(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_proxy_set(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_proxy_remove(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_repl_status(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_replicate(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_repl_remove(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_repl_pause(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_failback(struct ctl *, const struct cmd_entry *,
		    struct args *);
static int	cmd_backend_force_failover(struct ctl *,
		    const struct cmd_entry *, struct args *);

static const struct cmd_entry cmd_table[] = {
	{ "status", "", 0, 0, 0, cmd_status, NULL },
	{ "backend list", "", 0, 0, 0, cmd_backend_list, NULL },
	{ "backend show", "NAME", 1, 1, 0, cmd_backend_show, NULL },
	{ "backend add",
	  "NAME --host H [--hostip IP] [--tag T] [--weight W]\n"
	  "\t[--state up|drain|down] [--imap-port P] [--pop3-port P]"
	  " [--lmtp-port P]\n"
	  "\t[--submission-port P] [--sieve-port P] [--doveadm-port P]\n"
	  "\t[--doveadm-url URL] [--doveadm-key-file F] [--tls no|yes|starttls]\n"
	  "\t[--probe-user U] [--probe-password-file F]",
	  1, 1, O_BACKEND_FIELDS, cmd_backend_add, NULL },
	{ "backend set",
	  "NAME [--host H] [--hostip IP] [--tag T] [--weight W]\n"
	  "\t[--state up|drain|down] [--imap-port P] [--pop3-port P]"
	  " [--lmtp-port P]\n"
	  "\t[--submission-port P] [--sieve-port P] [--doveadm-port P]\n"
	  "\t[--doveadm-url URL] [--doveadm-key-file F] [--tls no|yes|starttls]\n"
	  "\t[--probe-user U] [--probe-password-file F]",
	  1, 1, O_BACKEND_FIELDS, cmd_backend_set, NULL },
	{ "backend up", "NAME", 1, 1, 0, cmd_backend_state, "up" },
	{ "backend down", "NAME", 1, 1, 0, cmd_backend_state, "down" },
	{ "backend drain", "NAME", 1, 1, 0, cmd_backend_state, "drain" },
	{ "backend remove", "[--force] NAME", 1, 1, O(OPT_FORCE),
	  cmd_backend_remove, NULL },
	{ "proxy list", "", 0, 0, 0, cmd_proxy_list, NULL },
	{ "proxy show", "NAME", 1, 1, 0, cmd_proxy_show, NULL },
	{ "proxy add", "NAME --doveadm-url URL --doveadm-key-file F", 1, 1,
	  O_PROXY_FIELDS, cmd_proxy_add, NULL },
	{ "proxy set", "NAME [--doveadm-url URL] [--doveadm-key-file F]", 1, 1,
	  O_PROXY_FIELDS, cmd_proxy_set, NULL },
	{ "proxy remove", "NAME", 1, 1, 0, cmd_proxy_remove, NULL },
	{ "user show", "USER [--tag T]", 1, 1, O(OPT_TAG), cmd_user_show,
	  NULL },
	{ "user pin", "USER BACKEND", 2, 2, 0, cmd_user_pin, NULL },
	{ "user forget", "USER", 1, 1, 0, cmd_user_forget, NULL },
	{ "user move", "USER BACKEND [--no-wait]", 2, 2, O(OPT_NO_WAIT),
	  cmd_user_move, NULL },
	{ "user kick", "USER", 1, 1, 0, cmd_user_kick, NULL },
	{ "moves", "[--all] [--limit N]", 0, 0, O(OPT_ALL) | O(OPT_LIMIT),
	  cmd_moves, NULL },
	{ "backend flush", "NAME [--no-wait]", 1, 1, O(OPT_NO_WAIT),
	  cmd_backend_flush, NULL },
	{ "rebalance", "[--max N] [--rate R] [--no-wait]", 0, 0,
	  O(OPT_MAXMOVES) | O(OPT_RATE) | O(OPT_NO_WAIT), cmd_rebalance,
	  NULL },
	{ "replication status", "[USER]", 0, 1, 0, cmd_repl_status, NULL },
	{ "replicate", "[--full] [--priority sync|high|low|full] USER|--all",
	  0, 1, O(OPT_FULL) | O(OPT_PRIORITY) | O(OPT_ALL), cmd_replicate,
	  NULL },
	{ "replication remove", "USER", 1, 1, 0, cmd_repl_remove, NULL },
	{ "replication pause", "", 0, 0, 0, cmd_repl_pause, "pause" },
	{ "replication resume", "", 0, 0, 0, cmd_repl_pause, "resume" },
	{ "failback", "BACKEND [--no-wait]", 1, 1, O(OPT_NO_WAIT),
	  cmd_failback, NULL },
	{ "backend force-failover", "NAME", 1, 1, 0,
	  cmd_backend_force_failover, NULL },
	{ "map", "[--backend B] [--limit N]", 0, 0,
	  O(OPT_BACKEND) | O(OPT_LIMIT), cmd_map, NULL },
	{ "lookup", "USER [--protocol P] [--tag T]", 1, 1,
	  O(OPT_PROTOCOL) | O(OPT_TAG), cmd_lookup, NULL },
	{ "audit", "[--limit N]", 0, 0, O(OPT_LIMIT), cmd_audit, NULL },
	{ "help", "[VERB]", 0, 2, 0, cmd_help, NULL },
};
#define NCMDS	(sizeof(cmd_table) / sizeof(cmd_table[0]))

static const char *global_usage =
    "usage: roostctl [--url URL] [--token-file F] [--json] VERB [ARG ...]";

/* Messages for people: "roostctl: ..." on stderr, no timestamps. */
static void	msg(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
msg(const char *fmt, ...)
{
	va_list ap;

	fputs("roostctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
cmd_line(const struct cmd_entry *ce, const char *prefix, FILE *fp)
{
	fprintf(fp, "%sroostctl %s%s%s\n", prefix, ce->name,
	    ce->usage[0] != '\0' ? " " : "", ce->usage);
}

static void
cmd_usage(const struct cmd_entry *ce, FILE *fp)
{
	cmd_line(ce, "usage: ", fp);
}

static void
list_verbs(FILE *fp)
{
	size_t i;

	fprintf(fp, "%s\nverbs:\n", global_usage);
	for (i = 0; i < NCMDS; i++)
		cmd_line(&cmd_table[i], "  ", fp);
}

/*
 * Copy a string the server sent for a terminal: control characters become
 * '?', so an odd user name or detail cannot move the cursor or hide text.
 */
static char *
safe_str(const char *s)
{
	char *out, *p;

	out = xstrdup(s);
	for (p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

/* A JSON value as a table cell: "-" for null, missing or "". */
static char *
fmt_value(json_t *v)
{
	char *s, *out;

	if (v == NULL || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return json_string_length(v) == 0 ? xstrdup("-") :
		    safe_str(json_string_value(v));
	if (json_is_integer(v)) {
		xasprintf(&out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return out;
	}
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "yes" : "no");
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
	    JSON_PRESERVE_ORDER)) == NULL)
		return xstrdup("?");
	out = safe_str(s);
	free(s);
	return out;
}

/* A Unix time as ISO 8601 UTC; anything else as fmt_value would show it. */
static char *
fmt_time(json_t *v)
{
	char buf[64];
	struct tm tm;
	time_t t;

	if (!json_is_integer(v))
		return fmt_value(v);
	t = (time_t)json_integer_value(v);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return fmt_value(v);
	return xstrdup(buf);
}

static struct table *
table_new(const struct column *cols, size_t ncols)
{
	struct table *t;
	size_t i;

	t = xcalloc(1, sizeof(*t));
	t->ncols = ncols;
	t->cols = cols;
	t->width = xcalloc(ncols, sizeof(*t->width));
	for (i = 0; i < ncols; i++)
		t->width[i] = strlen(cols[i].title);
	return t;
}

static char *
column_value(const struct column *c, json_t *obj)
{
	json_t *v = json_object_get(obj, c->key);

	return c->fmt != NULL ? c->fmt(v) : fmt_value(v);
}

static void
table_clear(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	t->nrows = 0;
}

static void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	table_clear(t);
	free(t->cells);
	free(t->width);
	free(t);
}

/* Add a row made of the columns' fields of obj. */
static void
table_add(struct table *t, json_t *obj)
{
	size_t i, len;
	char *cell;

	if (t->nrows == t->cap) {
		t->cap = t->cap == 0 ? 64 : t->cap * 2;
		t->cells = xreallocarray(t->cells, t->cap * t->ncols,
		    sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++) {
		cell = column_value(&t->cols[i], obj);
		t->cells[t->nrows * t->ncols + i] = cell;
		if ((len = strlen(cell)) > t->width[i])
			t->width[i] = len;
	}
	t->nrows++;
}

static void
table_line(const struct table *t, char *const *cells)
{
	size_t i;
	const char *cell;

	for (i = 0; i < t->ncols; i++) {
		cell = cells != NULL ? cells[i] : t->cols[i].title;
		if (i == t->ncols - 1)
			printf("%s\n", cell);
		else
			printf("%-*s  ", (int)t->width[i], cell);
	}
}

/* Print the rows so far (and the header, once), then drop them. */
static void
table_flush(struct table *t)
{
	size_t r;

	if (!t->header_done) {
		table_line(t, NULL);
		t->header_done = 1;
	}
	for (r = 0; r < t->nrows; r++)
		table_line(t, &t->cells[r * t->ncols]);
	table_clear(t);
}

static void
print_json(json_t *v)
{
	if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == -1)
		msg("cannot print the answer");
	putchar('\n');
}

/* With --json the answer is printed as is, and consumed; returns 1 then. */
static int
json_shown(struct ctl *ctl, json_t *root)
{
	if (!ctl->json)
		return 0;
	print_json(root);
	json_decref(root);
	return 1;
}

/* Percent-encode one path segment or query value (user and backend names). */
static char *
url_escape(struct ctl *ctl, const char *s)
{
	char *e, *out;

	if ((e = curl_easy_escape(ctl->curl, s, 0)) == NULL)
		fatalx("curl_easy_escape failed");
	out = xstrdup(e);
	curl_free(e);
	return out;
}

static size_t
answer_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;

	if (n > ANSWER_MAX - a->len) {
		a->too_big = 1;
		return 0;
	}
	if (a->len + n + 1 > a->cap) {
		while (a->len + n + 1 > a->cap)
			a->cap = a->cap == 0 ? 8192 : a->cap * 2;
		a->buf = xreallocarray(a->buf, a->cap, 1);
	}
	memcpy(a->buf + a->len, data, n);
	a->len += n;
	a->buf[a->len] = '\0';
	return n;
}

/* Say why the server refused, in its words: "roostctl: <error> (field F)". */
static void
print_refusal(long status, json_t *root)
{
	json_t *err, *field, *reason;
	char *e, *f;

	err = root != NULL ? json_object_get(root, "error") : NULL;
	if (!json_is_string(err)) {
		msg("server answered HTTP %ld%s", status,
		    root == NULL ? " (not JSON)" : "");
		return;
	}
	e = safe_str(json_string_value(err));
	field = json_object_get(root, "field");
	reason = json_object_get(root, "reason");
	if (json_is_string(field)) {
		f = safe_str(json_string_value(field));
		msg("%s (field %s)", e, f);
		free(f);
	} else if (json_is_string(reason)) {
		/* lookup's 503 says why in "reason" rather than "field". */
		f = safe_str(json_string_value(reason));
		msg("%s (reason %s)", e, f);
		free(f);
	} else
		msg("%s", e);
	free(e);
}

/*
 * One request.  path starts with "/v1/" and is already escaped; body, when
 * not NULL, is sent as JSON.  Returns an exit code: EXIT_OK with the answer
 * (a JSON object) in *out, EXIT_REFUSED or EXIT_CONN after saying why.
 */
static int
api_call(struct ctl *ctl, const char *method, const char *path, json_t *body,
    json_t **out)
{
	struct curl_slist *hdrs = NULL;
	struct answer ans = { NULL, 0, 0, 0 };
	json_error_t jerr;
	json_t *root = NULL;
	char *url = NULL, *auth = NULL, *text = NULL;
	long status = 0;
	CURLcode rc;
	int ret = EXIT_CONN;

	*out = NULL;
	xasprintf(&url, "%s%s", ctl->url, path);
	xasprintf(&auth, "Authorization: Bearer %s", ctl->token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* Never wait a second for a 100 Continue the server will not send. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/json");
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL)
			fatalx("cannot encode the request");
	}
	if (hdrs == NULL)
		fatalx("curl_slist_append failed");

	curl_easy_reset(ctl->curl);
	ctl->errbuf[0] = '\0';
	curl_easy_setopt(ctl->curl, CURLOPT_ERRORBUFFER, ctl->errbuf);
	curl_easy_setopt(ctl->curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(ctl->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(ctl->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ctl->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	curl_easy_setopt(ctl->curl, CURLOPT_TIMEOUT, TOTAL_TIMEOUT);
	curl_easy_setopt(ctl->curl, CURLOPT_USERAGENT,
	    "roostctl/" ROOST_VERSION);
	curl_easy_setopt(ctl->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEFUNCTION, answer_write);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEDATA, &ans);
	if (text != NULL) {
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(text));
	}
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(ctl->curl, CURLOPT_CUSTOMREQUEST, method);

	if ((rc = curl_easy_perform(ctl->curl)) != CURLE_OK) {
		if (ans.too_big)
			msg("%s: answer larger than %lu bytes", ctl->url,
			    ANSWER_MAX);
		else
			msg("%s: %s", ctl->url, ctl->errbuf[0] != '\0' ?
			    ctl->errbuf : curl_easy_strerror(rc));
		goto fail;
	}
	curl_easy_getinfo(ctl->curl, CURLINFO_RESPONSE_CODE, &status);
	if (ans.len > 0) {
		root = json_loadb(ans.buf, ans.len, 0, &jerr);
		if (root != NULL && !json_is_object(root)) {
			json_decref(root);
			root = NULL;
		}
	}
	if (status >= 400 && status <= 599) {
		/* roostd (or its HTTP layer) refused: a refusal, JSON or not. */
		print_refusal(status, root);
		ret = EXIT_REFUSED;
		goto fail;
	}
	if (status < 200 || status > 299) {
		msg("%s: unexpected HTTP status %ld", ctl->url, status);
		goto fail;
	}
	if (root == NULL) {
		msg("%s: the answer is not a JSON object", ctl->url);
		goto fail;
	}
	*out = root;
	root = NULL;
	ret = EXIT_OK;
fail:
	json_decref(root);
	curl_slist_free_all(hdrs);
	/* The header carries the token and the body may carry a doveadm key. */
	explicit_bzero(auth, strlen(auth));
	free(auth);
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	free(ans.buf);
	free(url);
	return ret;
}

static const struct cmd_entry *
cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

static int
cmd_help(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	const struct cmd_entry *ce;
	char *name;

	(void)ctl;
	(void)self;
	if (a->argc == 0) {
		list_verbs(stdout);
		return EXIT_OK;
	}
	if (a->argc == 2)
		xasprintf(&name, "%s %s", a->argv[0], a->argv[1]);
	else
		name = xstrdup(a->argv[0]);
	ce = cmd_find(name);
	free(name);
	if (ce == NULL) {
		msg("unknown verb");
		list_verbs(stderr);
		return EXIT_USAGE;
	}
	cmd_usage(ce, stdout);
	return EXIT_OK;
}

/* A backend's health object as one word, and whether it is handed out
 * when that is not what the word implies (the everything-failed guard). */
static char *
fmt_health(json_t *h)
{
	const char *state = json_string_value(json_object_get(h, "state"));
	int routed = json_is_true(json_object_get(h, "routed"));
	char *out;

	if (state == NULL)
		return xstrdup("-");
	if (strcmp(state, "failed") == 0 && routed)
		xasprintf(&out, "%s (still routed)", state);
	else
		out = xstrdup(state);
	return out;
}

static char *
fmt_health_field(json_t *h, const char *key)
{
	return fmt_value(json_object_get(h, key));
}

/* Backends as NAME HOST HOSTIP TAG WEIGHT STATE HEALTH USERS. */
static int
print_backends(json_t *list)
{
	static const struct column cols[] = {
		{ "NAME", "name", NULL }, { "HOST", "host", NULL },
		{ "HOSTIP", "hostip", NULL }, { "TAG", "tag", NULL },
		{ "WEIGHT", "weight", NULL }, { "STATE", "state", NULL },
		{ "HEALTH", "health", fmt_health }, { "USERS", "users", NULL },
	};
	struct table *t;
	json_t *b;
	size_t i;

	if (!json_is_array(list)) {
		msg("the answer has no list of backends");
		return EXIT_CONN;
	}
	t = table_new(cols, sizeof(cols) / sizeof(cols[0]));
	json_array_foreach(list, i, b)
		table_add(t, b);
	table_flush(t);
	table_free(t);
	return EXIT_OK;
}

static int
cmd_status(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *root;
	char *ver, *store, *users, *proxies, *started;
	int ret;

	(void)self;
	(void)a;
	if ((ret = api_call(ctl, "GET", "/v1/status", NULL, &root)) != 0)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	ver = fmt_value(json_object_get(root, "version"));
	store = fmt_value(json_object_get(root, "store"));
	users = fmt_value(json_object_get(root, "users"));
	proxies = fmt_value(json_object_get(root, "proxies"));
	started = fmt_time(json_object_get(root, "started"));
	printf("roostd %s, store %s, %s users, %s proxies, started %s\n\n",
	    ver, store, users, proxies, started);
	free(ver);
	free(store);
	free(users);
	free(proxies);
	free(started);
	ret = print_backends(json_object_get(root, "backends"));
	json_decref(root);
	return ret;
}

static int
cmd_backend_list(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root;
	int ret;

	(void)self;
	(void)a;
	if ((ret = api_call(ctl, "GET", "/v1/backends", NULL, &root)) != 0)
		return ret;
	if (ctl->json)
		print_json(root);
	else
		ret = print_backends(json_object_get(root, "backends"));
	json_decref(root);
	return ret;
}

static void
print_kv(const char *key, char *value)
{
	printf("%-18s%s\n", key, value);
	free(value);
}

/* "Title: value" lines for the columns' fields of obj. */
static void
print_fields(json_t *obj, const struct column *cols, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		print_kv(cols[i].title, column_value(&cols[i], obj));
}

static int
cmd_backend_show(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	static const char *ports[] = { "imap", "pop3", "lmtp", "submission",
	    "sieve", "doveadm" };
	static const struct column fields[] = {
		{ "name:", "name", NULL }, { "host:", "host", NULL },
		{ "hostip:", "hostip", NULL }, { "tag:", "tag", NULL },
		{ "weight:", "weight", NULL }, { "state:", "state", NULL },
		{ "tls:", "tls", NULL }, { "users:", "users", NULL },
	};
	static const struct column times[] = {
		{ "created:", "created", fmt_time },
		{ "updated:", "updated", fmt_time },
	};
	static const char *known[] = { "name", "host", "hostip", "tag",
	    "weight", "state", "tls", "users", "ports", "doveadm", "probe",
	    "created", "updated", "health" };
	json_t *root, *p, *d, *h, *v, *pr;
	const char *key;
	char *name, *path, label[64];
	size_t i;
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s", name);
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	free(name);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	print_fields(root, fields, sizeof(fields) / sizeof(fields[0]));
	p = json_object_get(root, "ports");
	for (i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		snprintf(label, sizeof(label), "%s port:", ports[i]);
		print_kv(label, fmt_value(json_object_get(p, ports[i])));
	}
	d = json_object_get(root, "doveadm");
	print_kv("doveadm url:", fmt_value(json_object_get(d, "url")));
	print_kv("doveadm key:", xstrdup(json_is_true(json_object_get(d,
	    "api_key_set")) ? "set" : "not set"));
	pr = json_object_get(root, "probe");
	print_kv("probe user:", fmt_value(json_object_get(pr, "user")));
	print_kv("probe password:", xstrdup(json_is_true(json_object_get(pr,
	    "password_set")) ? "set" : "not set"));
	h = json_object_get(root, "health");
	print_kv("health:", fmt_health(h));
	print_kv("health since:", fmt_time(json_object_get(h, "since")));
	print_kv("last probed:", fmt_time(json_object_get(h, "checked")));
	print_kv("probe latency ms:", fmt_health_field(h, "latency_ms"));
	print_kv("last probe error:", fmt_health_field(h, "error"));
	print_fields(root, times, sizeof(times) / sizeof(times[0]));
	/* Fields a newer roostd adds still get shown. */
	json_object_foreach(root, key, v) {
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i < sizeof(known) / sizeof(known[0]))
			continue;
		name = safe_str(key);
		snprintf(label, sizeof(label), "%s:", name);
		free(name);
		print_kv(label, fmt_value(v));
	}
	json_decref(root);
	return EXIT_OK;
}

/*
 * Put a string from the command line into a request body.  jansson refuses
 * invalid UTF-8 by returning NULL, which would silently drop the field.
 */
static int
body_str(json_t *obj, const char *key, const char *val, const char *what)
{
	json_t *v;

	if ((v = json_string(val)) == NULL) {
		msg("%s: not valid UTF-8", what);
		return -1;
	}
	json_object_set_new(obj, key, v);
	return 0;
}

/*
 * obj[key] = the secret in the file at path (what names it in messages).
 * Messages say which file is wrong, never what is in it.
 */
static int
secret_json(json_t *obj, const char *key, const char *path, const char *what)
{
	char err[512], *secret;
	json_t *v;

	if ((secret = secret_read(path, err, sizeof(err))) == NULL) {
		msg("%s: %s", what, err);
		return -1;
	}
	v = json_string(secret);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	if (v == NULL) {
		msg("%s: %s: not valid UTF-8", what, path);
		return -1;
	}
	json_object_set_new(obj, key, v);
	return 0;
}

/*
 * The "doveadm" object of a backend or proxy body from --doveadm-url and
 * --doveadm-key-file, if either is given.  Returns an exit code: an unusable
 * key file is a local error (2), found before any request.
 */
static int
doveadm_body(const struct args *a, json_t *body)
{
	json_t *doveadm;

	if (!(a->seen & (O(OPT_DOVEADM_URL) | O(OPT_DOVEADM_KEY_FILE))))
		return EXIT_OK;
	doveadm = json_object();
	if ((a->seen & O(OPT_DOVEADM_URL)) && body_str(doveadm, "url",
	    a->val[OPT_DOVEADM_URL], "--doveadm-url") == -1)
		goto fail;
	if ((a->seen & O(OPT_DOVEADM_KEY_FILE)) && secret_json(doveadm,
	    "api_key", a->val[OPT_DOVEADM_KEY_FILE], "doveadm key") == -1)
		goto fail;
	json_object_set_new(body, "doveadm", doveadm);
	return EXIT_OK;
fail:
	json_decref(doveadm);
	return EXIT_USAGE;
}

/*
 * The "probe" object of a backend body from --probe-user and
 * --probe-password-file, if either is given.  An empty --probe-user alone
 * clears the test account.  Returns an exit code: an unusable password file
 * is a local error (2), found before any request.
 */
static int
probe_body(const struct args *a, json_t *body)
{
	json_t *probe;

	if (!(a->seen & (O(OPT_PROBE_USER) | O(OPT_PROBE_PASSWORD_FILE))))
		return EXIT_OK;
	probe = json_object();
	if ((a->seen & O(OPT_PROBE_USER)) &&
	    a->val[OPT_PROBE_USER][0] == '\0') {
		if (a->seen & O(OPT_PROBE_PASSWORD_FILE)) {
			msg("--probe-user \"\" clears the test account; "
			    "give no --probe-password-file with it");
			goto fail;
		}
		json_object_set_new(probe, "user", json_string(""));
		json_object_set_new(probe, "password", json_string(""));
		json_object_set_new(body, "probe", probe);
		return EXIT_OK;
	}
	if ((a->seen & O(OPT_PROBE_USER)) && body_str(probe, "user",
	    a->val[OPT_PROBE_USER], "--probe-user") == -1)
		goto fail;
	if ((a->seen & O(OPT_PROBE_PASSWORD_FILE)) && secret_json(probe,
	    "password", a->val[OPT_PROBE_PASSWORD_FILE],
	    "probe password") == -1)
		goto fail;
	json_object_set_new(body, "probe", probe);
	return EXIT_OK;
fail:
	json_decref(probe);
	return EXIT_USAGE;
}

/*
 * The body of backend add/set from the options.  Returns an exit code: a bad
 * value or doveadm key file is a local error (2), found before any request.
 */
static int
backend_body(const struct args *a, json_t *body)
{
	static const struct {
		enum opt_id	 opt;
		const char	*key;
	} strs[] = {
		{ OPT_HOST, "host" },
		{ OPT_HOSTIP, "hostip" },
		{ OPT_TAG, "tag" },
		{ OPT_STATE, "state" },
		{ OPT_TLS, "tls" },
	};
	json_t *ports = NULL;
	char what[64];
	size_t j;
	int i;

	for (j = 0; j < sizeof(strs) / sizeof(strs[0]); j++) {
		if (!(a->seen & O(strs[j].opt)))
			continue;
		snprintf(what, sizeof(what), "--%s",
		    opt_table[strs[j].opt].name);
		if (body_str(body, strs[j].key, a->val[strs[j].opt],
		    what) == -1)
			goto fail;
	}
	if (a->seen & O(OPT_WEIGHT))
		json_object_set_new(body, "weight",
		    json_integer(a->num[OPT_WEIGHT]));
	for (i = 0; i < OPT_MAX; i++) {
		if (opt_table[i].port == NULL || !(a->seen & O(i)))
			continue;
		if (ports == NULL)
			ports = json_object();
		json_object_set_new(ports, opt_table[i].port,
		    json_integer(a->num[i]));
	}
	if (ports != NULL) {
		json_object_set_new(body, "ports", ports);
		ports = NULL;
	}
	if (doveadm_body(a, body) != EXIT_OK)
		goto fail;
	if (probe_body(a, body) != EXIT_OK)
		goto fail;
	return EXIT_OK;
fail:
	json_decref(ports);
	return EXIT_USAGE;
}

/* After a change: the server's answer with --json, else one line. */
static int
changed(struct ctl *ctl, json_t *root, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
changed(struct ctl *ctl, json_t *root, const char *fmt, ...)
{
	va_list ap;

	if (ctl->json)
		print_json(root);
	else {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	json_decref(root);
	return EXIT_OK;
}

/* The backend's name as the server now spells it, for the one-line answer. */
static char *
answer_name(json_t *root, const char *key, const char *fallback)
{
	json_t *v = json_object_get(root, key);

	return safe_str(json_is_string(v) ? json_string_value(v) : fallback);
}

static int
cmd_backend_add(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *name;
	int ret;

	if (!(a->seen & O(OPT_HOST))) {
		msg("backend add needs --host");
		cmd_usage(self, stderr);
		return EXIT_USAGE;
	}
	body = json_object();
	if (body_str(body, "name", a->argv[0], "NAME") == -1)
		ret = EXIT_USAGE;
	else if ((ret = backend_body(a, body)) == EXIT_OK)
		ret = api_call(ctl, "POST", "/v1/backends", body, &root);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "backend %s added", name);
	free(name);
	return ret;
}

static int
cmd_backend_set(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *name, *path;
	int ret;

	if ((a->seen & O_BACKEND_FIELDS) == 0) {
		msg("backend set: nothing to change");
		cmd_usage(self, stderr);
		return EXIT_USAGE;
	}
	body = json_object();
	if ((ret = backend_body(a, body)) == EXIT_OK) {
		name = url_escape(ctl, a->argv[0]);
		xasprintf(&path, "/v1/backends/%s", name);
		ret = api_call(ctl, "PATCH", path, body, &root);
		free(path);
		free(name);
	}
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "backend %s updated", name);
	free(name);
	return ret;
}

static int
cmd_backend_state(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *body, *root;
	char *name, *path;
	int ret;

	body = json_pack("{ss}", "state", self->data);
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s", name);
	ret = api_call(ctl, "PATCH", path, body, &root);
	free(path);
	free(name);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "backend %s is %s", name,
	    strcmp(self->data, "drain") == 0 ? "draining" : self->data);
	free(name);
	return ret;
}

static int
cmd_backend_remove(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root, *n;
	char *name, *path;
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s%s", name,
	    (a->seen & O(OPT_FORCE)) ? "?force=1" : "");
	ret = api_call(ctl, "DELETE", path, NULL, &root);
	free(path);
	free(name);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "deleted", a->argv[0]);
	n = json_object_get(root, "users_released");
	ret = changed(ctl, root, "backend %s removed (%" JSON_INTEGER_FORMAT
	    " users released)", name, json_is_integer(n) ?
	    json_integer_value(n) : 0);
	free(name);
	return ret;
}

/* Whether a doveadm object has its key, as a word (the key never comes). */
static char *
fmt_key_set(json_t *d)
{
	return xstrdup(json_is_true(json_object_get(d, "api_key_set")) ?
	    "set" : "not set");
}

static char *
fmt_doveadm_url(json_t *d)
{
	return fmt_value(json_object_get(d, "url"));
}

/* Proxies as NAME URL KEY. */
static int
print_proxies(json_t *list)
{
	static const struct column cols[] = {
		{ "NAME", "name", NULL }, { "URL", "doveadm", fmt_doveadm_url },
		{ "KEY", "doveadm", fmt_key_set },
	};
	struct table *t;
	json_t *p;
	size_t i;

	if (!json_is_array(list)) {
		msg("the answer has no list of proxies");
		return EXIT_CONN;
	}
	t = table_new(cols, sizeof(cols) / sizeof(cols[0]));
	json_array_foreach(list, i, p)
		table_add(t, p);
	table_flush(t);
	table_free(t);
	return EXIT_OK;
}

static int
cmd_proxy_list(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *root;
	int ret;

	(void)self;
	(void)a;
	if ((ret = api_call(ctl, "GET", "/v1/proxies", NULL, &root)) != 0)
		return ret;
	if (ctl->json)
		print_json(root);
	else
		ret = print_proxies(json_object_get(root, "proxies"));
	json_decref(root);
	return ret;
}

static int
cmd_proxy_show(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	static const struct column fields[] = {
		{ "name:", "name", NULL },
		{ "doveadm url:", "doveadm", fmt_doveadm_url },
		{ "doveadm key:", "doveadm", fmt_key_set },
		{ "created:", "created", fmt_time },
		{ "updated:", "updated", fmt_time },
	};
	static const char *known[] = { "name", "doveadm", "created",
	    "updated" };
	json_t *root, *v;
	const char *key;
	char *name, *path, label[64];
	size_t i;
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/proxies/%s", name);
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	free(name);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	print_fields(root, fields, sizeof(fields) / sizeof(fields[0]));
	/* Fields a newer roostd adds still get shown. */
	json_object_foreach(root, key, v) {
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i < sizeof(known) / sizeof(known[0]))
			continue;
		name = safe_str(key);
		snprintf(label, sizeof(label), "%s:", name);
		free(name);
		print_kv(label, fmt_value(v));
	}
	json_decref(root);
	return EXIT_OK;
}

static int
cmd_proxy_add(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *name;
	int ret;

	if ((a->seen & O_PROXY_FIELDS) != O_PROXY_FIELDS) {
		msg("proxy add needs --doveadm-url and --doveadm-key-file");
		cmd_usage(self, stderr);
		return EXIT_USAGE;
	}
	body = json_object();
	if (body_str(body, "name", a->argv[0], "NAME") == -1)
		ret = EXIT_USAGE;
	else if ((ret = doveadm_body(a, body)) == EXIT_OK)
		ret = api_call(ctl, "POST", "/v1/proxies", body, &root);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "proxy %s added", name);
	free(name);
	return ret;
}

static int
cmd_proxy_set(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *name, *path;
	int ret;

	if ((a->seen & O_PROXY_FIELDS) == 0) {
		msg("proxy set: nothing to change");
		cmd_usage(self, stderr);
		return EXIT_USAGE;
	}
	body = json_object();
	if ((ret = doveadm_body(a, body)) == EXIT_OK) {
		name = url_escape(ctl, a->argv[0]);
		xasprintf(&path, "/v1/proxies/%s", name);
		ret = api_call(ctl, "PATCH", path, body, &root);
		free(path);
		free(name);
	}
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "proxy %s updated", name);
	free(name);
	return ret;
}

static int
cmd_proxy_remove(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root;
	char *name, *path;
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/proxies/%s", name);
	ret = api_call(ctl, "DELETE", path, NULL, &root);
	free(path);
	free(name);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "deleted", a->argv[0]);
	ret = changed(ctl, root, "proxy %s removed", name);
	free(name);
	return ret;
}

/* Like `doveadm director status USER`. */
static char *
fmt_current(json_t *v)
{
	return json_is_string(v) ? fmt_value(v) : xstrdup("(not assigned)");
}

static int
cmd_user_show(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	static const struct column fields[] = {
		{ "User:", "user", NULL }, { "Current:", "backend", fmt_current },
		{ "Hashed:", "hashed", NULL }, { "Replica:", "replica", NULL },
		{ "Replica current:", "replica_current", NULL },
		{ "Failed over:", "failed_over", NULL },
		{ "Pinned:", "pinned", NULL }, { "Tag:", "tag", NULL },
		{ "Since:", "since", fmt_time },
		{ "Last lookup:", "last_lookup", fmt_time },
	};
	json_t *root;
	char *user, *tag = NULL, *path;
	int ret;

	(void)self;
	user = url_escape(ctl, a->argv[0]);
	if (a->seen & O(OPT_TAG))
		tag = url_escape(ctl, a->val[OPT_TAG]);
	xasprintf(&path, "/v1/users/%s%s%s", user, tag != NULL ? "?tag=" : "",
	    tag != NULL ? tag : "");
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	free(tag);
	free(user);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	print_fields(root, fields, sizeof(fields) / sizeof(fields[0]));
	json_decref(root);
	return EXIT_OK;
}

static int
cmd_user_pin(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *user, *backend, *path;
	int ret;

	(void)self;
	body = json_object();
	if (body_str(body, "backend", a->argv[1], "BACKEND") == -1) {
		json_decref(body);
		return EXIT_USAGE;
	}
	user = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/users/%s", user);
	ret = api_call(ctl, "PUT", path, body, &root);
	free(path);
	free(user);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	user = answer_name(root, "user", a->argv[0]);
	backend = answer_name(root, "backend", a->argv[1]);
	ret = changed(ctl, root, "user %s pinned to %s", user, backend);
	free(backend);
	free(user);
	return ret;
}

static int
cmd_user_forget(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root;
	char *user, *path;
	int ret;

	(void)self;
	user = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/users/%s", user);
	ret = api_call(ctl, "DELETE", path, NULL, &root);
	free(path);
	free(user);
	if (ret != EXIT_OK)
		return ret;
	user = answer_name(root, "forgotten", a->argv[0]);
	ret = changed(ctl, root, "user %s forgotten", user);
	free(user);
	return ret;
}

/*
 * Every page of GET /v1/users, printed as it arrives so that a map of
 * millions of users never sits in memory.  With --limit N each page asks
 * for no more than is still wanted, so the last next_cursor stays exact.
 * --json prints one document: all users, one per line, and that cursor.
 */
static int
cmd_map(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	static const struct column cols[] = {
		{ "USER", "user", NULL }, { "BACKEND", "backend", NULL },
		{ "PINNED", "pinned", NULL }, { "SINCE", "since", fmt_time },
	};
	struct table *t = NULL;
	json_t *root = NULL, *users, *u, *next;
	char *backend = NULL, *cursor = NULL, *path, *s;
	long long want = -1, got = 0, page;
	size_t i, npages;
	int ret = EXIT_OK, first = 1;

	(void)self;
	if (a->seen & O(OPT_LIMIT))
		want = a->num[OPT_LIMIT];
	if (a->seen & O(OPT_BACKEND))
		backend = url_escape(ctl, a->val[OPT_BACKEND]);
	if (ctl->json)
		printf("{\n  \"users\": [");
	else
		t = table_new(cols, sizeof(cols) / sizeof(cols[0]));
	for (npages = 0; npages < MAP_PAGES_MAX; npages++) {
		page = MAP_PAGE;
		if (want != -1 && want - got < page)
			page = want - got;
		xasprintf(&path, "/v1/users?limit=%lld%s%s%s%s", page,
		    backend != NULL ? "&backend=" : "",
		    backend != NULL ? backend : "",
		    cursor != NULL ? "&cursor=" : "",
		    cursor != NULL ? cursor : "");
		ret = api_call(ctl, "GET", path, NULL, &root);
		free(path);
		if (ret != EXIT_OK)
			goto fail;
		users = json_object_get(root, "users");
		next = json_object_get(root, "next_cursor");
		if (!json_is_array(users) ||
		    (!json_is_null(next) && !json_is_string(next))) {
			msg("the answer has no list of users");
			ret = EXIT_CONN;
			goto fail;
		}
		json_array_foreach(users, i, u) {
			if (want != -1 && got >= want)
				break;
			got++;
			if (ctl->json) {
				s = json_dumps(u, JSON_COMPACT |
				    JSON_PRESERVE_ORDER);
				printf("%s\n    %s", first ? "" : ",",
				    s != NULL ? s : "null");
				free(s);
				first = 0;
				continue;
			}
			table_add(t, u);
		}
		if (t != NULL)
			table_flush(t);
		if (json_is_null(next) || (want != -1 && got >= want)) {
			if (ctl->json) {
				s = json_dumps(next, JSON_ENCODE_ANY);
				printf("\n  ],\n  \"next_cursor\": %s\n}\n",
				    s != NULL ? s : "null");
				free(s);
			}
			goto fail;
		}
		/* A cursor that does not move would loop for ever. */
		s = url_escape(ctl, json_string_value(next));
		if (cursor != NULL && strcmp(s, cursor) == 0) {
			free(s);
			msg("the server repeated cursor %s", cursor);
			ret = EXIT_CONN;
			goto fail;
		}
		free(cursor);
		cursor = s;
		json_decref(root);
		root = NULL;
	}
	msg("more than %d pages; stopped", MAP_PAGES_MAX);
	ret = EXIT_CONN;
fail:
	if (ret != EXIT_OK && ctl->json && !first)
		putchar('\n');
	json_decref(root);
	table_free(t);
	free(cursor);
	free(backend);
	return ret;
}

/* USER -> BACKEND HOST[HOSTIP]:PORT (replica R) */
static int
cmd_lookup(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *root, *hostip;
	char *user, *proto, *tag = NULL, *path, *f[6];
	int ret;
	size_t i;

	(void)self;
	user = url_escape(ctl, a->argv[0]);
	proto = url_escape(ctl, (a->seen & O(OPT_PROTOCOL)) ?
	    a->val[OPT_PROTOCOL] : "imap");
	if (a->seen & O(OPT_TAG))
		tag = url_escape(ctl, a->val[OPT_TAG]);
	xasprintf(&path, "/v1/lookup?user=%s&protocol=%s%s%s", user, proto,
	    tag != NULL ? "&tag=" : "", tag != NULL ? tag : "");
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	free(tag);
	free(proto);
	free(user);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	hostip = json_object_get(root, "hostip");
	f[0] = fmt_value(json_object_get(root, "user"));
	f[1] = fmt_value(json_object_get(root, "backend"));
	f[2] = fmt_value(json_object_get(root, "host"));
	f[3] = json_is_string(hostip) && json_string_length(hostip) > 0 ?
	    fmt_value(hostip) : NULL;
	f[4] = fmt_value(json_object_get(root, "port"));
	f[5] = fmt_value(json_object_get(root, "replica"));
	printf("%s -> %s %s%s%s%s:%s (replica %s)\n", f[0], f[1], f[2],
	    f[3] != NULL ? "[" : "", f[3] != NULL ? f[3] : "",
	    f[3] != NULL ? "]" : "", f[4], f[5]);
	for (i = 0; i < 6; i++)
		free(f[i]);
	json_decref(root);
	return EXIT_OK;
}

static int
cmd_audit(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	static const struct column cols[] = {
		{ "ID", "id", NULL }, { "AT", "at", fmt_time },
		{ "ACTOR", "actor", NULL }, { "ACTION", "action", NULL },
		{ "SUBJECT", "subject", NULL }, { "DETAIL", "detail", NULL },
	};
	struct table *t;
	json_t *root, *entries, *e;
	char *path;
	size_t i;
	int ret;

	(void)self;
	if (a->seen & O(OPT_LIMIT))
		xasprintf(&path, "/v1/audit?limit=%lld", a->num[OPT_LIMIT]);
	else
		path = xstrdup("/v1/audit");
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	if (!json_is_array(entries = json_object_get(root, "entries"))) {
		msg("the answer has no list of entries");
		json_decref(root);
		return EXIT_CONN;
	}
	t = table_new(cols, sizeof(cols) / sizeof(cols[0]));
	json_array_foreach(entries, i, e)
		table_add(t, e);
	table_flush(t);
	table_free(t);
	json_decref(root);
	return EXIT_OK;
}

/*
 * Move a user: the kick on the old backend and the proxies, then the
 * switch.  Waits (polling the move) until it is over unless --no-wait;
 * a failed move is exit 1 with roostd's reason.
 */
static int
cmd_user_move(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root, *mv;
	const char *state;
	char *path = NULL, *user;
	json_int_t id;
	int ret, i;

	(void)self;
	body = json_pack("{s:s}", "user", a->argv[0]);
	if (body == NULL || body_str(body, "backend", a->argv[1],
	    "BACKEND") == -1) {
		json_decref(body);
		msg("USER must be UTF-8");
		return EXIT_USAGE;
	}
	ret = api_call(ctl, "POST", "/v1/moves", body, &root);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	mv = json_object_get(root, "move");
	id = json_integer_value(json_object_get(mv, "id"));
	if (id <= 0) {
		msg("the answer has no move id");
		json_decref(root);
		return EXIT_CONN;
	}
	if (a->seen & O(OPT_NO_WAIT)) {
		if (json_shown(ctl, root))
			return EXIT_OK;
		user = answer_name(mv, "user", a->argv[0]);
		printf("move %lld of %s to %s queued\n", (long long)id, user,
		    a->argv[1]);
		free(user);
		json_decref(root);
		return EXIT_OK;
	}
	json_decref(root);
	xasprintf(&path, "/v1/moves/%lld", (long long)id);
	/* Bounded: roostd ends every move within its move_timeout. */
	for (i = 0; i < 6000; i++) {
		if ((ret = api_call(ctl, "GET", path, NULL, &root)) != EXIT_OK)
			break;
		state = json_string_value(json_object_get(root, "state"));
		if (state != NULL && (strcmp(state, "done") == 0 ||
		    strcmp(state, "failed") == 0)) {
			ret = strcmp(state, "done") == 0 ? EXIT_OK : EXIT_REFUSED;
			if (json_shown(ctl, root))
				break;
			user = answer_name(root, "user", a->argv[0]);
			if (ret == EXIT_OK)
				printf("user %s moved to %s\n", user, a->argv[1]);
			else {
				char *why = fmt_value(json_object_get(root,
				    "error"));

				msg("moving %s to %s failed: %s", user,
				    a->argv[1], why);
				free(why);
			}
			free(user);
			json_decref(root);
			break;
		}
		json_decref(root);
		nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
	}
	if (i == 6000) {
		msg("move %lld is still open after 10 minutes", (long long)id);
		ret = EXIT_REFUSED;
	}
	free(path);
	return ret;
}

/*
 * Wait until job id is no longer among the running jobs and no move is
 * open, printing progress once a second on a terminal.  Bounded.
 */
static int
wait_job(struct ctl *ctl, json_int_t id, const char *what)
{
	json_t *root, *jobs, *j;
	json_int_t made = 0, open;
	size_t i;
	int ret, k, running;

	for (k = 0; k < 36000; k++) {
		if ((ret = api_call(ctl, "GET", "/v1/moves?state=open&limit=1",
		    NULL, &root)) != EXIT_OK)
			return ret;
		jobs = json_object_get(root, "jobs");
		open = json_integer_value(json_object_get(root, "open"));
		running = 0;
		json_array_foreach(jobs, i, j)
			if (json_integer_value(json_object_get(j, "id")) == id) {
				running = 1;
				made = json_integer_value(json_object_get(j,
				    "made"));
			}
		json_decref(root);
		if (!running && open == 0) {
			printf("%s done\n", what);
			return EXIT_OK;
		}
		if (k % 10 == 0 && isatty(STDERR_FILENO))
			fprintf(stderr, "%s: %lld moves made, %lld open\n", what,
			    (long long)made, (long long)open);
		nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
	}
	msg("%s still running after an hour", what);
	return EXIT_REFUSED;
}

static int
start_job(struct ctl *ctl, const char *path, json_t *body, struct args *a,
    const char *what)
{
	json_t *root;
	json_int_t id;
	int ret;

	ret = api_call(ctl, "POST", path, body, &root);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	id = json_integer_value(json_object_get(json_object_get(root, "job"),
	    "id"));
	if (ctl->json || (a->seen & O(OPT_NO_WAIT))) {
		if (!json_shown(ctl, root)) {
			printf("%s started (job %lld)\n", what, (long long)id);
			json_decref(root);
		}
		return EXIT_OK;
	}
	json_decref(root);
	return wait_job(ctl, id, what);
}

static int
cmd_user_kick(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *root, *body = json_object();
	char *user, *path;
	int ret;

	(void)self;
	user = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/users/%s/kick", user);
	ret = api_call(ctl, "POST", path, body, &root);
	json_decref(body);
	free(path);
	free(user);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	user = answer_name(root, "user", a->argv[0]);
	printf("user %s kicked (%lld kicks)\n", user, (long long)
	    json_integer_value(json_object_get(root, "kicked")));
	free(user);
	json_decref(root);
	return EXIT_OK;
}

static int
cmd_backend_flush(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	char *name, *path, what[128];
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s/flush", name);
	snprintf(what, sizeof(what), "flush of %s", a->argv[0]);
	ret = start_job(ctl, path, json_object(), a, what);
	free(path);
	free(name);
	return ret;
}

static int
cmd_rebalance(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body = json_object();

	(void)self;
	if (a->seen & O(OPT_MAXMOVES))
		json_object_set_new(body, "max",
		    json_integer(a->num[OPT_MAXMOVES]));
	if (a->seen & O(OPT_RATE))
		json_object_set_new(body, "rate", json_integer(a->num[OPT_RATE]));
	return start_job(ctl, "/v1/rebalance", body, a, "rebalance");
}

static int
cmd_moves(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	static const struct column cols[] = {
		{ "ID", "id", NULL }, { "USER", "user", NULL },
		{ "FROM", "from", NULL }, { "TO", "to", NULL },
		{ "REASON", "reason", NULL }, { "STATE", "state", NULL },
		{ "UPDATED", "updated", fmt_time }, { "ERROR", "error", NULL },
	};
	struct table *t;
	json_t *root, *moves, *m;
	char *path;
	size_t i;
	int ret;

	(void)self;
	xasprintf(&path, "/v1/moves?state=%s&limit=%lld",
	    (a->seen & O(OPT_ALL)) ? "all" : "open",
	    (a->seen & O(OPT_LIMIT)) ? a->num[OPT_LIMIT] : 100LL);
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	if (!json_is_array(moves = json_object_get(root, "moves"))) {
		msg("the answer has no list of moves");
		json_decref(root);
		return EXIT_CONN;
	}
	t = table_new(cols, sizeof(cols) / sizeof(cols[0]));
	json_array_foreach(moves, i, m)
		table_add(t, m);
	table_flush(t);
	table_free(t);
	json_decref(root);
	return EXIT_OK;
}

/* --- replication ------------------------------------------------------ */

/* Seconds as an age for people: 45s, 3m07s, 2h05m, 4d03h. */
static char *
fmt_age(json_t *v)
{
	json_int_t s;
	char *out;

	if (!json_is_integer(v))
		return fmt_value(v);
	s = json_integer_value(v);
	if (s < 60)
		xasprintf(&out, "%llds", (long long)s);
	else if (s < 3600)
		xasprintf(&out, "%lldm%02llds", (long long)(s / 60),
		    (long long)(s % 60));
	else if (s < 86400)
		xasprintf(&out, "%lldh%02lldm", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else
		xasprintf(&out, "%lldd%02lldh", (long long)(s / 86400),
		    (long long)(s % 86400 / 3600));
	return out;
}

static json_int_t
int_of(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* The queue as a few lines: what waits, what runs, what fails. */
static int
print_repl_status(json_t *root)
{
	static const char *prio[] = { "sync", "high", "low", "full" };
	json_t *q, *tot;
	char line[256];
	size_t i, len;

	if (!json_is_object(q = json_object_get(root, "queued"))) {
		msg("the answer has no queue");
		return EXIT_CONN;
	}
	tot = json_object_get(root, "totals");
	print_kv("replication:", xstrdup(!json_is_true(json_object_get(root,
	    "enabled")) ? "off (replication = no in roostd.conf)" :
	    json_is_true(json_object_get(root, "paused")) ? "on, paused" :
	    "on"));
	line[0] = '\0';
	/* Four short items: far from filling the line. */
	for (i = 0, len = 0; i < sizeof(prio) / sizeof(prio[0]) &&
	    len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len,
		    "%s%s %lld", i > 0 ? ", " : "", prio[i],
		    (long long)int_of(q, prio[i]));
	print_kv("queued:", xstrdup(line));
	snprintf(line, sizeof(line), "%lld (at most %lld at once)",
	    (long long)int_of(root, "running"),
	    (long long)int_of(root, "max_conns"));
	print_kv("running:", xstrdup(line));
	print_kv("failed:", fmt_value(json_object_get(root, "failed")));
	print_kv("stuck:", fmt_value(json_object_get(root, "stuck")));
	print_kv("waiting:", fmt_value(json_object_get(root, "waiting")));
	print_kv("backing off:", fmt_value(json_object_get(root, "backoff")));
	print_kv("oldest pending:", int_of(root, "oldest_pending_s") > 0 ?
	    fmt_age(json_object_get(root, "oldest_pending_s")) :
	    xstrdup("-"));
	print_kv("synced:", fmt_value(json_object_get(tot, "synced")));
	print_kv("syncs failed:", fmt_value(json_object_get(tot, "failed")));
	snprintf(line, sizeof(line), "%lld (%lld from a replica, %lld not "
	    "from the user's backend)", (long long)int_of(tot, "events"),
	    (long long)int_of(tot, "events_from_replica"),
	    (long long)int_of(tot, "events_not_from_backend"));
	print_kv("events:", xstrdup(line));
	snprintf(line, sizeof(line), "%lld failovers (replica not current)",
	    (long long)int_of(tot, "failovers_refused"));
	print_kv("refused:", xstrdup(line));
	return EXIT_OK;
}

/* One user's replication: where to, how current, how it went. */
static void
print_repl_user(json_t *root)
{
	static const struct column times[] = {
		{ "last fast sync:", "last_fast_sync", fmt_time },
		{ "last full sync:", "last_full_sync", fmt_time },
		{ "last success:", "last_success", fmt_time },
		{ "last error:", "last_error", NULL },
		{ "failures:", "failures", NULL },
	};
	static const char *known[] = { "user", "backend", "replica",
	    "replica_current", "failed_over", "state", "priority",
	    "last_fast_sync", "last_full_sync", "last_success", "last_error",
	    "failures", "next_try" };
	json_t *rep, *prio, *v;
	const char *key;
	char *a, *b, *out, label[64];
	size_t i;

	print_kv("user:", fmt_value(json_object_get(root, "user")));
	print_kv("backend:", fmt_value(json_object_get(root, "backend")));
	rep = json_object_get(root, "replica");
	if (json_is_string(rep)) {
		a = fmt_value(rep);
		xasprintf(&out, "%s (%s)", a, json_is_true(json_object_get(root,
		    "replica_current")) ? "current" :
		    "not current: a full sync is due");
		free(a);
		print_kv("replica:", out);
	} else
		print_kv("replica:", xstrdup("- (no other backend in the pool)"));
	print_kv("failed over:", fmt_value(json_object_get(root,
	    "failed_over")));
	prio = json_object_get(root, "priority");
	a = fmt_value(json_object_get(root, "state"));
	if (json_is_string(prio)) {
		b = fmt_value(prio);
		xasprintf(&out, "%s (priority %s)", a, b);
		free(a);
		free(b);
	} else
		out = a;
	print_kv("state:", out);
	if ((v = json_object_get(root, "next_try")) != NULL)
		print_kv("next try:", fmt_time(v));
	print_fields(root, times, sizeof(times) / sizeof(times[0]));
	/* Fields a newer roostd adds still get shown. */
	json_object_foreach(root, key, v) {
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i < sizeof(known) / sizeof(known[0]))
			continue;
		a = safe_str(key);
		snprintf(label, sizeof(label), "%s:", a);
		free(a);
		print_kv(label, fmt_value(v));
	}
}

static int
cmd_repl_status(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root;
	char *user, *path;
	int ret;

	(void)self;
	if (a->argc == 1) {
		user = url_escape(ctl, a->argv[0]);
		xasprintf(&path, "/v1/replication/users/%s", user);
		free(user);
	} else
		path = xstrdup("/v1/replication");
	ret = api_call(ctl, "GET", path, NULL, &root);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	if (a->argc == 1)
		print_repl_user(root);
	else
		ret = print_repl_status(root);
	json_decref(root);
	return ret;
}

/* replicate USER | --all: queue syncs (the server says at what priority). */
static int
cmd_replicate(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	json_t *body, *root;
	char *user, *path, *prio;
	const char *how;
	int ret;

	if ((a->argc == 1) == ((a->seen & O(OPT_ALL)) != 0)) {
		msg("replicate: give a USER or --all");
		cmd_usage(self, stderr);
		return EXIT_USAGE;
	}
	body = json_object();
	if (a->seen & O(OPT_PRIORITY))
		json_object_set_new(body, "priority",
		    json_string(a->val[OPT_PRIORITY]));
	if (a->seen & O(OPT_FULL))
		json_object_set_new(body, "full", json_true());
	if (a->argc == 1) {
		user = url_escape(ctl, a->argv[0]);
		xasprintf(&path, "/v1/replication/users/%s", user);
		free(user);
	} else
		path = xstrdup("/v1/replication/all");
	ret = api_call(ctl, "POST", path, body, &root);
	free(path);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (json_shown(ctl, root))
		return EXIT_OK;
	prio = answer_name(root, "priority", "high");
	how = json_is_true(json_object_get(root, "full")) ? ", full sync" : "";
	if (a->argc == 1) {
		user = answer_name(root, "user", a->argv[0]);
		printf("user %s queued for replication (priority %s%s)\n", user,
		    prio, how);
		free(user);
	} else
		printf("%lld users queued for replication (priority %s%s)\n",
		    (long long)int_of(root, "queued"), prio, how);
	free(prio);
	json_decref(root);
	return EXIT_OK;
}

static int
cmd_repl_remove(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root;
	char *user, *path;
	int ret, removed;

	(void)self;
	user = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/replication/users/%s", user);
	free(user);
	ret = api_call(ctl, "DELETE", path, NULL, &root);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	user = answer_name(root, "user", a->argv[0]);
	removed = json_is_true(json_object_get(root, "removed"));
	ret = changed(ctl, root, removed ? "user %s removed from the "
	    "replication queue" : "user %s was not in the replication queue",
	    user);
	free(user);
	return ret;
}

static int
cmd_repl_pause(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root, *body = json_object();
	char *path;
	int ret;

	(void)a;
	xasprintf(&path, "/v1/replication/%s", self->data);
	ret = api_call(ctl, "POST", path, body, &root);
	json_decref(body);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	return changed(ctl, root, "replication %s", strcmp(self->data,
	    "pause") == 0 ? "paused: no sync starts until resume" :
	    "resumed");
}

static int
cmd_failback(struct ctl *ctl, const struct cmd_entry *self, struct args *a)
{
	char *name, *path, what[128];
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s/failback", name);
	snprintf(what, sizeof(what), "failback to %s", a->argv[0]);
	ret = start_job(ctl, path, json_object(), a, what);
	free(path);
	free(name);
	return ret;
}

static int
cmd_backend_force_failover(struct ctl *ctl, const struct cmd_entry *self,
    struct args *a)
{
	json_t *root, *body = json_object();
	char *name, *path;
	int ret;

	(void)self;
	name = url_escape(ctl, a->argv[0]);
	xasprintf(&path, "/v1/backends/%s/force-failover", name);
	free(name);
	ret = api_call(ctl, "POST", path, body, &root);
	json_decref(body);
	free(path);
	if (ret != EXIT_OK)
		return ret;
	name = answer_name(root, "name", a->argv[0]);
	ret = changed(ctl, root, "backend %s: its users may now fail over "
	    "onto replicas that are not current, until it is healthy again",
	    name);
	free(name);
	return ret;
}

/*
 * Find the verb at argv[0] (and argv[1] for two-word verbs).  Returns the
 * entry and the number of words it used, or NULL.
 */
static const struct cmd_entry *
verb_match(int argc, char **argv, int *words)
{
	const struct cmd_entry *ce;
	const char *sp;
	size_t i, len;

	for (i = 0; i < NCMDS; i++) {
		ce = &cmd_table[i];
		if ((sp = strchr(ce->name, ' ')) == NULL) {
			if (strcmp(argv[0], ce->name) == 0) {
				*words = 1;
				return ce;
			}
			continue;
		}
		len = (size_t)(sp - ce->name);
		if (argc >= 2 && strlen(argv[0]) == len &&
		    strncmp(argv[0], ce->name, len) == 0 &&
		    strcmp(argv[1], sp + 1) == 0) {
			*words = 2;
			return ce;
		}
	}
	return NULL;
}

/* An incomplete or unknown verb: show the verbs that start like it. */
static int
verb_unknown(int argc, char **argv)
{
	size_t i, len;
	int n = 0;

	len = strlen(argv[0]);
	for (i = 0; i < NCMDS; i++) {
		if (strncmp(cmd_table[i].name, argv[0], len) == 0 &&
		    cmd_table[i].name[len] == ' ') {
			if (n++ == 0) {
				if (argc >= 2)
					msg("unknown verb: %s %s", argv[0],
					    argv[1]);
				else
					msg("%s: which one?", argv[0]);
			}
			cmd_usage(&cmd_table[i], stderr);
		}
	}
	if (n == 0) {
		msg("unknown verb: %s", argv[0]);
		list_verbs(stderr);
	}
	return EXIT_USAGE;
}

/*
 * Parse a verb's options and arguments (options may come anywhere; "--"
 * ends them).  argv[0] is the verb's last word.  Returns an exit code.
 */
static int
verb_args(struct ctl *ctl, const struct cmd_entry *ce, int argc, char **argv,
    struct args *a)
{
	struct option longopts[OPT_MAX + 1];
	const struct opt_entry *oe;
	int ch, i;

	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < OPT_MAX; i++) {
		longopts[i].name = opt_table[i].name;
		longopts[i].has_arg = opt_table[i].has_arg ? required_argument :
		    no_argument;
		longopts[i].val = 256 + i;
	}
	memset(a, 0, sizeof(*a));
	optind = 0;	/* glibc: start over, argv is a new vector */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (ch == ':') {
			msg("option %s needs a value", argv[optind - 1]);
			goto usage;
		}
		if (ch < 256 || ch >= 256 + OPT_MAX) {
			msg("unknown option %s", argv[optind - 1]);
			goto usage;
		}
		i = ch - 256;
		oe = &opt_table[i];
		/* --json is global but harmless after the verb too. */
		if (i == OPT_JSON) {
			ctl->json = 1;
			continue;
		}
		if (!(ce->options & O(i))) {
			msg("%s takes no --%s", ce->name, oe->name);
			goto usage;
		}
		a->seen |= O(i);
		a->val[i] = optarg;
		if (oe->min <= oe->max &&
		    parse_ll(optarg, oe->min, oe->max, &a->num[i]) == -1) {
			msg("--%s: not a number in %lld..%lld", oe->name,
			    oe->min, oe->max);
			goto usage;
		}
	}
	if ((a->seen & O(OPT_STATE)) && strcmp(a->val[OPT_STATE], "up") != 0 &&
	    strcmp(a->val[OPT_STATE], "drain") != 0 &&
	    strcmp(a->val[OPT_STATE], "down") != 0) {
		msg("--state: one of up, drain, down");
		goto usage;
	}
	if ((a->seen & O(OPT_PRIORITY)) &&
	    strcmp(a->val[OPT_PRIORITY], "sync") != 0 &&
	    strcmp(a->val[OPT_PRIORITY], "high") != 0 &&
	    strcmp(a->val[OPT_PRIORITY], "low") != 0 &&
	    strcmp(a->val[OPT_PRIORITY], "full") != 0) {
		msg("--priority: one of sync, high, low, full");
		goto usage;
	}
	a->argc = argc - optind;
	a->argv = argv + optind;
	if (a->argc < ce->args_min || a->argc > ce->args_max) {
		msg("%s: wrong number of arguments", ce->name);
		goto usage;
	}
	/* An empty name would turn /v1/users/NAME into another endpoint. */
	for (i = 0; i < a->argc; i++)
		if (a->argv[i][0] == '\0') {
			msg("%s: empty argument", ce->name);
			goto usage;
		}
	return EXIT_OK;
usage:
	cmd_usage(ce, stderr);
	return EXIT_USAGE;
}

int
main(int argc, char *argv[])
{
	static const struct option gopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry *ce;
	struct ctl ctl;
	struct args a;
	char err[512], *url = NULL;
	const char *env;
	size_t len;
	int ch, words, ret = EXIT_USAGE, curl_up = 0;

	log_init("roostctl", 1);
	memset(&ctl, 0, sizeof(ctl));
	ctl.url = (env = getenv("ROOST_URL")) != NULL && *env != '\0' ?
	    env : DEFAULT_URL;
	ctl.token_file = (env = getenv("ROOST_TOKEN_FILE")) != NULL &&
	    *env != '\0' ? env : DEFAULT_TOKEN_FILE;

	opterr = 0;
	/* "+": stop at the verb; its options are parsed against its entry. */
	while ((ch = getopt_long(argc, argv, "+:h", gopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			ctl.url = optarg;
			break;
		case 't':
			ctl.token_file = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'h':
			list_verbs(stdout);
			return EXIT_OK;
		case 'V':
			printf("roostctl %s\n", ROOST_VERSION);
			return EXIT_OK;
		case ':':
			msg("option %s needs a value", argv[optind - 1]);
			fprintf(stderr, "%s\n", global_usage);
			return EXIT_USAGE;
		default:
			msg("unknown option %s", argv[optind - 1]);
			fprintf(stderr, "%s\n", global_usage);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		list_verbs(stderr);
		return EXIT_USAGE;
	}
	if ((ce = verb_match(argc, argv, &words)) == NULL)
		return verb_unknown(argc, argv);
	if (verb_args(&ctl, ce, argc - words + 1, argv + words - 1, &a) != 0)
		return EXIT_USAGE;
	if (ce->exec == cmd_help)
		return cmd_help(&ctl, ce, &a);

	/* "http://host:8470/" and "http://host:8470" mean the same server. */
	url = xstrdup(ctl.url);
	len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';
	if (len == 0) {
		msg("--url: empty");
		goto fail;
	}
	ctl.url = url;
	if ((ctl.token = secret_read(ctl.token_file, err, sizeof(err))) ==
	    NULL) {
		msg("token: %s", err);
		goto fail;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		msg("cannot initialise libcurl");
		ret = EXIT_CONN;
		goto fail;
	}
	curl_up = 1;
	if ((ctl.curl = curl_easy_init()) == NULL) {
		msg("cannot initialise libcurl");
		ret = EXIT_CONN;
		goto fail;
	}
	ret = ce->exec(&ctl, ce, &a);
	if (fflush(stdout) == EOF && ret == EXIT_OK) {
		msg("stdout: %s", strerror(errno));
		ret = EXIT_CONN;
	}
fail:
	if (ctl.curl != NULL)
		curl_easy_cleanup(ctl.curl);
	if (curl_up)
		curl_global_cleanup();
	if (ctl.token != NULL) {
		explicit_bzero(ctl.token, strlen(ctl.token));
		free(ctl.token);
	}
	free(url);
	return ret;
}
