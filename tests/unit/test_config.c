/*
 * test_config.c: roostd.conf parsing as an operator meets it: defaults,
 * every setting, every error with its line, secret files with real modes in
 * a temporary directory, and the user-name routing key.  Run from the top
 * of the source tree (the example config and man page are checked too).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "xmalloc.h"

#define SECRET_TEXT	"s3cr3t-T0ken-value"

static struct config *
parse_ok(const char *text)
{
	struct config *c;
	char err[512] = "";

	c = config_parse("test.conf", text, 0, err, sizeof(err));
	if (c == NULL)
		fail_msg("config did not parse: %s\n---\n%s", err, text);
	return c;
}

/* The parse must fail and the message must start with prefix. */
static void
parse_fails(const char *text, const char *prefix)
{
	struct config *c;
	char err[512] = "";

	c = config_parse("test.conf", text, 0, err, sizeof(err));
	if (c != NULL) {
		config_free(c);
		fail_msg("config parsed but should not:\n%s", text);
	}
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
}

/* One "key = value" line; the value must be refused for that key. */
static void
value_fails(const char *key, const char *value)
{
	char text[256], prefix[128];

	snprintf(text, sizeof(text), "%s = %s\n", key, value);
	snprintf(prefix, sizeof(prefix), "test.conf:1: %s: ", key);
	parse_fails(text, prefix);
}

static void
test_defaults(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok("");
	assert_string_equal(c->listen, "127.0.0.1:8470");
	assert_string_equal(c->store, "sqlite:/var/lib/roost/roost.db");
	assert_string_equal(c->admin_token_file, "/etc/roost/admin.token");
	assert_null(c->lookup_token_file);
	assert_int_equal(c->user_expire, 0);
	assert_null(c->events_token_file);
	assert_int_equal(c->unconfirmed_expire, 3600);
	assert_int_equal(c->activity_poll_interval, 60);
	assert_int_equal(c->username_format, USERNAME_LOWER);
	assert_null(c->master_user_separator);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	assert_null(c->admin_token);
	assert_null(c->lookup_token);
	config_free(c);

	/* Comments and blank lines only: still the defaults. */
	c = parse_ok("# nothing\n\n   \t\n  # indented comment\n");
	assert_string_equal(c->listen, "127.0.0.1:8470");
	config_free(c);
}

static void
test_every_setting(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(
	    "listen = [::1]:9000\n"
	    "store = sqlite:/tmp/roost/test.db\n"
	    "admin_token_file = /run/roost/admin\n"
	    "lookup_token_file = /run/roost/lookup\n"
	    "user_expire = 15m\n"
	    "username_format = %Ln\n"
	    "master_user_separator = *\n"
	    "log_level = debug\n");
	assert_string_equal(c->listen, "[::1]:9000");
	assert_string_equal(c->store, "sqlite:/tmp/roost/test.db");
	assert_string_equal(c->admin_token_file, "/run/roost/admin");
	assert_string_equal(c->lookup_token_file, "/run/roost/lookup");
	assert_int_equal(c->user_expire, 900);
	assert_int_equal(c->username_format, USERNAME_LOCALPART_LOWER);
	assert_string_equal(c->master_user_separator, "*");
	assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
	config_free(c);
}

static void
test_connection_settings(void **state)
{
	static const char *bad_max[] = {
		"-1", "1000001", "12x", "+5", "1e3", "0x10", "5s", "",
	};
	static const char *bad_timeout[] = {
		"61", "2m", "-1", "10q", "",
	};
	struct config *c;
	size_t i;

	(void)state;
	c = parse_ok("");
	assert_int_equal(c->max_connections, 0);
	assert_int_equal(c->request_timeout, 10);
	config_free(c);
	c = parse_ok("max_connections = 1000000\nrequest_timeout = 1m\n");
	assert_int_equal(c->max_connections, 1000000);
	assert_int_equal(c->request_timeout, 60);
	config_free(c);
	c = parse_ok("max_connections = 50\nrequest_timeout = never\n");
	assert_int_equal(c->max_connections, 50);
	assert_int_equal(c->request_timeout, 0);
	config_free(c);
	for (i = 0; i < sizeof(bad_max) / sizeof(bad_max[0]); i++)
		value_fails("max_connections", bad_max[i]);
	for (i = 0; i < sizeof(bad_timeout) / sizeof(bad_timeout[0]); i++)
		value_fails("request_timeout", bad_timeout[i]);
}

static void
test_enums(void **state)
{
	static const struct {
		const char		*text;
		enum username_format	 want;
	} uf[] = {
		{ "%u", USERNAME_EXACT }, { "%Lu", USERNAME_LOWER },
		{ "%n", USERNAME_LOCALPART },
		{ "%Ln", USERNAME_LOCALPART_LOWER },
		{ "%d", USERNAME_DOMAIN }, { "%Ld", USERNAME_DOMAIN_LOWER },
	};
	static const struct {
		const char	*text;
		enum log_level	 want;
	} ll[] = {
		{ "error", LOG_LEVEL_ERROR }, { "warn", LOG_LEVEL_WARN },
		{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
	};
	struct config *c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(uf) / sizeof(uf[0]); i++) {
		snprintf(text, sizeof(text), "username_format = %s\n",
		    uf[i].text);
		c = parse_ok(text);
		assert_int_equal(c->username_format, uf[i].want);
		config_free(c);
	}
	for (i = 0; i < sizeof(ll) / sizeof(ll[0]); i++) {
		snprintf(text, sizeof(text), "log_level = %s\n", ll[i].text);
		c = parse_ok(text);
		assert_int_equal(c->log_level, ll[i].want);
		config_free(c);
	}
	value_fails("username_format", "%x");
	value_fails("username_format", "%lu");
	value_fails("username_format", "%Lu%d");
	value_fails("username_format", "");
	value_fails("log_level", "verbose");
	value_fails("log_level", "INFO");
	value_fails("log_level", "");
}

static void
test_comments_and_quotes(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(
	    "\t listen\t=\t127.0.0.2:1 \t\r\n"
	    "log_level=warn   # quieter\r\n"
	    "store = sqlite:/var/db/a#b.db\n"
	    "admin_token_file = /etc/x/admin # the admin token\n");
	assert_string_equal(c->listen, "127.0.0.2:1");
	assert_int_equal(c->log_level, LOG_LEVEL_WARN);
	/* '#' not after whitespace is part of the value. */
	assert_string_equal(c->store, "sqlite:/var/db/a#b.db");
	assert_string_equal(c->admin_token_file, "/etc/x/admin");
	config_free(c);

	/* Quoted values are literal: '#', blanks, and \" \\ escapes. */
	c = parse_ok(
	    "master_user_separator = \"#\"   # a hash separator\n"
	    "store = \"sqlite:/var/db/my # db \"\n"
	    "admin_token_file = \"/etc/a\\\"b\\\\c\"\n"
	    "lookup_token_file = \"\"\n");
	assert_string_equal(c->master_user_separator, "#");
	assert_string_equal(c->store, "sqlite:/var/db/my # db ");
	assert_string_equal(c->admin_token_file, "/etc/a\"b\\c");
	assert_null(c->lookup_token_file);
	config_free(c);

	/* An unquoted empty value (or one that is only a comment). */
	c = parse_ok("master_user_separator =\nlookup_token_file = # none\n");
	assert_null(c->master_user_separator);
	assert_null(c->lookup_token_file);
	config_free(c);

	parse_fails("\nstore = \"sqlite:/x\n", "test.conf:2: store: "
	    "unterminated quoted value");
	parse_fails("store = \"sqlite:/x\\n\"\n", "test.conf:1: store: "
	    "invalid escape");
	parse_fails("store = \"sqlite:/x\" junk\n", "test.conf:1: store: "
	    "text after the closing quote");
}

static void
test_error_lines(void **state)
{
	char text[8000];
	size_t len;

	(void)state;
	parse_fails("# roostd\n\nfoo = bar\n",
	    "test.conf:3: unknown setting 'foo'");
	parse_fails("listen = 127.0.0.1:1\nlog_level\n",
	    "test.conf:2: missing '='");
	parse_fails("listen # = 1.2.3.4:5\n", "test.conf:1: missing '='");
	parse_fails("\n\n\n = x\n", "test.conf:4: missing setting name");
	parse_fails("log_level = info\n\n\nlisten = 127.0.0.1:0\n",
	    "test.conf:4: listen: ");
	parse_fails("Listen = 127.0.0.1:1\n",
	    "test.conf:1: unknown setting 'Listen'");
	parse_fails("log_level = info\x01\n",
	    "test.conf:1: control character");
	/* A line of 4097 bytes is refused, at its own line number. */
	len = (size_t)snprintf(text, sizeof(text), "# ok\nstore = sqlite:/");
	memset(text + len, 'a', 4097 - (len - 5));
	strcpy(text + 5 + 4097, "\n");
	parse_fails(text, "test.conf:2: line longer than 4096");
	/* ... and one of exactly 4096 is fine. */
	len = (size_t)snprintf(text, sizeof(text), "store = sqlite:/");
	memset(text + len, 'a', 4096 - len);
	strcpy(text + 4096, "\n");
	config_free(parse_ok(text));
}

static void
test_duplicate(void **state)
{
	(void)state;
	parse_fails("listen = 127.0.0.1:1\n# x\nlisten = 127.0.0.1:2\n",
	    "test.conf:3: duplicate setting 'listen'");
	/* Setting a default explicitly twice is still a duplicate. */
	parse_fails("log_level = info\nlog_level = info\n",
	    "test.conf:2: duplicate setting 'log_level'");
}

static void
test_duration(void **state)
{
	static const struct {
		const char	*text;
		long long	 want;
	} ok[] = {
		{ "0", 0 }, { "never", 0 }, { "0s", 0 }, { "0m", 0 },
		{ "60", 60 }, { "900", 900 }, { "15m", 900 }, { "1h", 3600 },
		{ "90s", 90 }, { "1d", 86400 }, { "30d", 30 * 86400 },
		{ "2592000", 2592000 },
	};
	static const char *bad[] = {
		"59", "59s", "1", "31d", "2592001", "721h", "-60", "15x",
		"15 m", "m", "1.5h", "Never", "", "+60",
		"99999999999999999999999",
	};
	struct config *c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "user_expire = %s\n", ok[i].text);
		c = parse_ok(text);
		assert_int_equal(c->user_expire, ok[i].want);
		config_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		value_fails("user_expire", bad[i]);
}

static void
test_listen(void **state)
{
	static const char *ok[] = {
		"127.0.0.1:8470", "0.0.0.0:1", "[::1]:8470", "[::]:65535",
		"localhost:80", "roost-1.example.com:8470", "[2001:db8::1]:1",
	};
	static const char *bad[] = {
		"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1", "127.0.0.1:",
		":8470", "garbage", "::1:8470", "[::1]8470", "[::1]",
		"[::1:8470", "[zz::1]:1", "[]:1", "[127.0.0.1]:1",
		"10.0.0.300:1", "host:+80", "host:80x", "host:-1",
		"ho st:80", "host..example:80", "a/b:80",
	};
	struct config *c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "listen = %s\nlookup_open = yes\n",
		    ok[i]);
		c = parse_ok(text);
		assert_string_equal(c->listen, ok[i]);
		config_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		value_fails("listen", bad[i]);
	/* listen_unix: an absolute path, unset by default */
	c = parse_ok("listen_unix = /run/roost/roostd.sock\n");
	assert_string_equal(c->listen_unix, "/run/roost/roostd.sock");
	config_free(c);
	c = parse_ok("listen = 127.0.0.1:8470\n");
	assert_null(c->listen_unix);
	config_free(c);
	value_fails("listen_unix", "roostd.sock");
	/* The reason says what is wrong. */
	parse_fails("listen = 127.0.0.1:0\n",
	    "test.conf:1: listen: '127.0.0.1:0': port must be 1-65535");
	parse_fails("listen = 127.0.0.1\n",
	    "test.conf:1: listen: '127.0.0.1': missing port");
	parse_fails("listen = ::1:8470\n",
	    "test.conf:1: listen: '::1:8470': an IPv6 address goes in "
	    "brackets");
}

/* Off loopback, lookups need a token unless the admin says otherwise. */
static void
test_secure_by_default(void **state)
{
	static const char *loopback[] = {
		"127.0.0.1:8470", "127.1.2.3:1", "[::1]:8470", "localhost:80",
	};
	static const char *other[] = {
		"0.0.0.0:8470", "10.0.0.1:8470", "[::]:8470", "[2001:db8::1]:1",
		"roost-1.example.com:8470", "128.0.0.1:1", "[::ffff:127.0.0.1]:1",
	};
	struct config *c;
	char text[256], prefix[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		snprintf(text, sizeof(text), "listen = %s\n", loopback[i]);
		c = parse_ok(text);
		assert_int_equal(c->lookup_open, 0);
		config_free(c);
	}
	for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		snprintf(text, sizeof(text), "listen = %s\n", other[i]);
		snprintf(prefix, sizeof(prefix), "test.conf: listen %s is not "
		    "a loopback address: set lookup_token_file", other[i]);
		parse_fails(text, prefix);
		snprintf(text, sizeof(text), "listen = %s\nlookup_open = yes\n",
		    other[i]);
		c = parse_ok(text);
		assert_int_equal(c->lookup_open, 1);
		config_free(c);
		snprintf(text, sizeof(text), "listen = %s\n"
		    "lookup_token_file = /etc/roost/lookup.token\n", other[i]);
		config_free(parse_ok(text));
	}
	value_fails("lookup_open", "maybe");
	value_fails("lookup_open", "1");
}

static void
test_store_and_paths(void **state)
{
	(void)state;
	value_fails("store", "sqlite:relative.db");
	value_fails("store", "sqlite:");
	value_fails("store", "/var/lib/roost/roost.db");
	value_fails("store", "postgresql://localhost/roost");
	value_fails("store", "SQLITE:/x");
	value_fails("store", "");
	parse_fails("store = mysql:x\n", "test.conf:1: store: unknown store "
	    "'mysql' (want sqlite:/absolute/path or postgresql:<libpq "
	    "connection string>)");
	/* The rest of the value may hold a password: never in a message. */
	parse_fails("store = postgres:password=s3cret\n", "test.conf:1: store: "
	    "unknown store 'postgres' (want sqlite:/absolute/path or "
	    "postgresql:<libpq connection string>)");
	parse_fails("store = postgresql:host=x password s3cret\n",
	    "test.conf:1: store: not a valid libpq connection string "
	    "(keyword=value ... or postgresql://...)");
	parse_fails("store = postgresql:host=x pasword=s3cret\n",
	    "test.conf:1: store: not a valid libpq connection string: an "
	    "unknown keyword");
	value_fails("store", "postgresql:");
	{
		const char *ok[] = {
			"store = postgresql:host=127.0.0.1 port=39001 "
			    "dbname=roost\n",
			"store = postgresql:postgresql://roost@db1,db2/roost?"
			    "target_session_attrs=read-write\n",
		};
		struct config *c;
		char err[512];
		size_t i;

		for (i = 0; i < 2; i++) {
			c = config_parse("test.conf", ok[i], 0, err,
			    sizeof(err));
			if (c == NULL)
				fail_msg("%s: %s", ok[i], err);
			assert_int_equal(strlen(c->store), strlen(ok[i]) - 9);
			assert_memory_equal(c->store, ok[i] + 8,
			    strlen(ok[i]) - 9);
			config_free(c);
		}
	}
	value_fails("admin_token_file", "");
	value_fails("admin_token_file", "admin.token");
	value_fails("lookup_token_file", "etc/lookup");
	value_fails("listen", "");
	value_fails("master_user_separator", "**");
	value_fails("master_user_separator", "\" \"");
	value_fails("master_user_separator", "\xc3\xa9");
}

/* Temporary directory with token files for the secret tests. */
struct tmp {
	char	dir[64];
	char	admin[128];
	char	lookup[128];
	char	conf[128];
};

static int
tmp_setup(void **state)
{
	struct tmp *t;

	t = xcalloc(1, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/roost-config-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->admin, sizeof(t->admin), "%s/admin.token", t->dir);
	snprintf(t->lookup, sizeof(t->lookup), "%s/lookup.token", t->dir);
	snprintf(t->conf, sizeof(t->conf), "%s/roostd.conf", t->dir);
	*state = t;
	return 0;
}

static int
tmp_teardown(void **state)
{
	struct tmp *t = *state;

	unlink(t->admin);
	unlink(t->lookup);
	unlink(t->conf);
	rmdir(t->dir);
	free(t);
	return 0;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	size_t len = strlen(text);
	int fd;

	unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		fail_msg("%s: %s", path, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		fail_msg("%s: short write", path);
	/* fchmod, not the umask: the test needs the exact mode. */
	if (fchmod(fd, mode) == -1)
		fail_msg("%s: %s", path, strerror(errno));
	close(fd);
}

static void
test_secrets(void **state)
{
	struct tmp *t = *state;
	struct config *c;
	char text[512], err[1024];

	snprintf(text, sizeof(text), "admin_token_file = %s\n"
	    "lookup_token_file = %s\n", t->admin, t->lookup);

	/* 0600 files are read; the secret is the first line. */
	write_file(t->admin, SECRET_TEXT "\nsecond line\n", 0600);
	write_file(t->lookup, "lookup-" SECRET_TEXT "\n", 0600);
	c = config_parse("test.conf", text, 1, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->admin_token, SECRET_TEXT);
	assert_string_equal(c->lookup_token, "lookup-" SECRET_TEXT);
	config_free(c);

	/* read_secrets=0 leaves the tokens alone. */
	c = config_parse("test.conf", text, 0, err, sizeof(err));
	assert_non_null(c);
	assert_null(c->admin_token);
	assert_null(c->lookup_token);
	config_free(c);

	/* 0644: refused, the message names setting and file, not the secret. */
	write_file(t->admin, SECRET_TEXT "\n", 0644);
	err[0] = '\0';
	c = config_parse("test.conf", text, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "test.conf: admin_token_file: "));
	assert_non_null(strstr(err, t->admin));
	assert_null(strstr(err, SECRET_TEXT));

	/* Same for the lookup token. */
	write_file(t->admin, SECRET_TEXT "\n", 0600);
	write_file(t->lookup, SECRET_TEXT "\n", 0640);
	err[0] = '\0';
	c = config_parse("test.conf", text, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "lookup_token_file: "));
	assert_non_null(strstr(err, t->lookup));
	assert_null(strstr(err, SECRET_TEXT));

	/* No lookup_token_file: lookups are open, only the admin is read. */
	snprintf(text, sizeof(text), "admin_token_file = %s\n", t->admin);
	c = config_parse("test.conf", text, 1, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->admin_token, SECRET_TEXT);
	assert_null(c->lookup_token);
	config_free(c);

	/* An empty admin token is no token. */
	write_file(t->admin, "\n", 0600);
	err[0] = '\0';
	assert_null(config_parse("test.conf", text, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "admin_token_file: "));
}

static void
test_secret_missing(void **state)
{
	struct tmp *t = *state;
	struct config *c;
	char text[512], err[1024] = "";

	snprintf(text, sizeof(text), "admin_token_file = %s\n", t->admin);
	c = config_parse("test.conf", text, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "test.conf: admin_token_file: "));
	assert_non_null(strstr(err, t->admin));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static void
test_load(void **state)
{
	struct tmp *t = *state;
	struct config *c;
	char text[512], prefix[256], err[1024] = "";
	char *big;
	size_t len;

	/* A real file, secrets and all. */
	write_file(t->admin, SECRET_TEXT "\n", 0600);
	snprintf(text, sizeof(text), "# roostd.conf\nlisten = localhost:8471\n"
	    "admin_token_file = %s\n", t->admin);
	write_file(t->conf, text, 0644);
	c = config_load(t->conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->listen, "localhost:8471");
	assert_string_equal(c->admin_token, SECRET_TEXT);
	config_free(c);

	/* Errors carry the file's path and the line. */
	write_file(t->conf, "\n\nbogus = 1\n", 0644);
	assert_null(config_load(t->conf, err, sizeof(err)));
	snprintf(prefix, sizeof(prefix), "%s:3: unknown setting 'bogus'",
	    t->conf);
	assert_string_equal(err, prefix);

	/* The admin token is required: the default path does not exist. */
	write_file(t->conf, "log_level = info\n", 0644);
	assert_null(config_load(t->conf, err, sizeof(err)));
	assert_non_null(strstr(err, "admin_token_file: "));

	/* A missing config file names itself. */
	unlink(t->conf);
	assert_null(config_load(t->conf, err, sizeof(err)));
	assert_non_null(strstr(err, t->conf));

	/* Over 1 MiB is refused before parsing; exactly 1 MiB of comment is not. */
	len = 1024 * 1024;
	big = xmalloc(len + 2);
	memset(big, '\n', len + 1);
	big[0] = '#';
	big[len + 1] = '\0';
	write_file(t->conf, big, 0644);
	assert_null(config_load(t->conf, err, sizeof(err)));
	assert_non_null(strstr(err, "larger than"));
	assert_null(config_parse("big", big, 0, err, sizeof(err)));
	big[len] = '\0';
	snprintf(text, sizeof(text), "admin_token_file = %s\n", t->admin);
	memcpy(big + len - strlen(text), text, strlen(text));
	write_file(t->conf, big, 0644);
	c = config_load(t->conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->admin_token, SECRET_TEXT);
	config_free(c);
	free(big);

	/* A NUL byte would hide the rest of the file: refused. */
	write_file(t->conf, "", 0644);
	{
		int fd = open(t->conf, O_WRONLY);

		assert_true(fd != -1);
		assert_int_equal(write(fd, "log_level = info\n\0x=y\n", 22), 22);
		close(fd);
	}
	assert_null(config_load(t->conf, err, sizeof(err)));
	assert_non_null(strstr(err, "NUL"));
}

static void
key_is(struct config *c, const char *user, const char *want)
{
	char out[300];
	int n;

	n = config_user_key(c, user, strlen(user), out, sizeof(out));
	if (want == NULL) {
		if (n != -1)
			fail_msg("user '%s': got '%s', want -1", user, out);
		return;
	}
	if (n < 0)
		fail_msg("user '%s': got -1, want '%s'", user, want);
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
}

static void
test_user_key(void **state)
{
	struct config *c;
	char out[8];

	(void)state;
	c = parse_ok("");			/* %Lu, no separator */
	key_is(c, "Alice@Example.COM", "alice@example.com");
	key_is(c, "alice*master", "alice*master");
	key_is(c, "", NULL);
	config_free(c);

	c = parse_ok("username_format = %u\nmaster_user_separator = *\n");
	key_is(c, "Alice@Example.COM", "Alice@Example.COM");
	key_is(c, "Alice*master", "Alice");
	key_is(c, "alice*master*x", "alice");	/* the first separator */
	key_is(c, "*master", NULL);
	key_is(c, "*", NULL);
	config_free(c);

	c = parse_ok("username_format = %n\n");
	key_is(c, "Alice@Example.COM", "Alice");
	key_is(c, "a@b@Example.COM", "a@b");	/* before the last '@' */
	key_is(c, "Alice", "Alice");
	key_is(c, "@example.com", NULL);
	config_free(c);

	c = parse_ok("username_format = %Ln\nmaster_user_separator = *\n");
	key_is(c, "Alice@Example.COM*Admin@X", "alice");
	key_is(c, "ALICE", "alice");
	config_free(c);

	c = parse_ok("username_format = %d\n");
	key_is(c, "alice@Example.COM", "Example.COM");
	key_is(c, "a@b@Example.COM", "Example.COM");
	key_is(c, "Alice", "Alice");		/* no domain: the whole name */
	key_is(c, "alice@", NULL);
	config_free(c);

	c = parse_ok("username_format = %Ld\nmaster_user_separator = \"#\"\n");
	key_is(c, "alice@Example.COM#master@other.org", "example.com");
	key_is(c, "ALICE", "alice");
	config_free(c);

	/* Only the first len bytes count; too long for out is -1. */
	c = parse_ok("");
	assert_int_equal(config_user_key(c, "BOBxyz", 3, out, sizeof(out)), 3);
	assert_string_equal(out, "bob");
	assert_int_equal(config_user_key(c, "12345678", 8, out, sizeof(out)),
	    -1);
	assert_int_equal(config_user_key(c, "1234567", 7, out, sizeof(out)), 7);
	assert_string_equal(out, "1234567");
	/* Non-ASCII bytes pass through unchanged. */
	assert_int_equal(config_user_key(c, "\xc3\x89T\xc3\xa9", 5, out,
	    sizeof(out)), 5);
	assert_memory_equal(out, "\xc3\x89t\xc3\xa9", 6);
	config_free(c);
}

static char *
read_text(const char *path)
{
	FILE *f;
	char *buf;
	size_t n;

	if ((f = fopen(path, "r")) == NULL)
		fail_msg("%s: %s (run from the top of the source tree)", path,
		    strerror(errno));
	buf = xmalloc(256 * 1024);
	n = fread(buf, 1, 256 * 1024 - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The shipped example parses to the defaults; the docs name every setting. */
static void
test_example_and_manual(void **state)
{
	static const char *names[] = {
		"listen", "store", "admin_token_file", "lookup_token_file",
		"lookup_open", "user_expire", "probe_interval", "probe_timeout",
		"probe_rise", "probe_fall", "move_timeout", "move_max_parallel",
		"move_login_wait", "username_format",
		"master_user_separator", "log_level", "max_connections",
		"request_timeout", "events_token_file", "unconfirmed_expire",
		"activity_poll_interval", "listen_unix",
	};
	struct config *c;
	char *example, *manual, err[512];
	size_t i;

	(void)state;
	example = read_text("dist/roostd.conf");
	manual = read_text("docs/roostd.conf.5");
	c = config_parse("dist/roostd.conf", example, 0, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->listen, "127.0.0.1:8470");
	assert_string_equal(c->store, "sqlite:/var/lib/roost/roost.db");
	assert_string_equal(c->admin_token_file, "/etc/roost/admin.token");
	assert_int_equal(c->username_format, USERNAME_LOWER);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	config_free(c);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strstr(example, names[i]) == NULL)
			fail_msg("dist/roostd.conf does not mention %s",
			    names[i]);
		if (strstr(manual, names[i]) == NULL)
			fail_msg("docs/roostd.conf.5 does not mention %s",
			    names[i]);
	}
	free(example);
	free(manual);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_setting),
		cmocka_unit_test(test_connection_settings),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_comments_and_quotes),
		cmocka_unit_test(test_error_lines),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_secure_by_default),
		cmocka_unit_test(test_store_and_paths),
		cmocka_unit_test_setup_teardown(test_secrets, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_secret_missing, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test(test_user_key),
		cmocka_unit_test(test_example_and_manual),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
