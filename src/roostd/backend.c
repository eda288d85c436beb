/*
 * backend.c: the backend record.  Admin input arrives as JSON; it is checked
 * completely into a scratch copy before anything is changed, so a rejected
 * request leaves the backend as it was.
 */
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

const char *proto_names[PROTO_COUNT] = {
	"imap", "pop3", "lmtp", "submission", "sieve", "doveadm"
};

const uint16_t proto_default_ports[PROTO_COUNT] = {
	143, 110, 24, 587, 4190, 0
};

static const char *state_names[] = { "up", "drain", "down" };
static const char *tls_names[] = { "no", "yes", "starttls" };

int
proto_parse(const char *s, enum proto *out)
{
	int i;

	for (i = 0; i < PROTO_COUNT; i++) {
		if (strcmp(s, proto_names[i]) == 0) {
			*out = (enum proto)i;
			return 0;
		}
	}
	return -1;
}

const char *
backend_state_name(enum backend_state st)
{
	return state_names[st];
}

int
backend_state_parse(const char *s, enum backend_state *out)
{
	size_t i;

	for (i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum backend_state)i;
			return 0;
		}
	}
	return -1;
}

const char *
backend_tls_name(enum backend_tls t)
{
	return tls_names[t];
}

int
backend_tls_parse(const char *s, enum backend_tls *out)
{
	size_t i;

	for (i = 0; i < sizeof(tls_names) / sizeof(tls_names[0]); i++) {
		if (strcmp(s, tls_names[i]) == 0) {
			*out = (enum backend_tls)i;
			return 0;
		}
	}
	return -1;
}

struct backend *
backend_new(const char *name)
{
	struct backend *b;

	b = xcalloc(1, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->weight = BACKEND_WEIGHT_DEFAULT;
	b->state = BACKEND_UP;
	memcpy(b->ports, proto_default_ports, sizeof(b->ports));
	return b;
}

struct backend *
backend_dup(const struct backend *src)
{
	struct backend *b;

	b = xmalloc(sizeof(*b));
	*b = *src;
	b->doveadm_url = src->doveadm_url ? xstrdup(src->doveadm_url) : NULL;
	b->doveadm_key = src->doveadm_key ? xstrdup(src->doveadm_key) : NULL;
	b->probe_user = src->probe_user ? xstrdup(src->probe_user) : NULL;
	b->probe_pass = src->probe_pass ? xstrdup(src->probe_pass) : NULL;
	return b;
}

void
backend_free(struct backend *b)
{
	if (b == NULL)
		return;
	free(b->doveadm_url);
	if (b->doveadm_key != NULL) {
		explicit_bzero(b->doveadm_key, strlen(b->doveadm_key));
		free(b->doveadm_key);
	}
	free(b->probe_user);
	if (b->probe_pass != NULL) {
		explicit_bzero(b->probe_pass, strlen(b->probe_pass));
		free(b->probe_pass);
	}
	free(b);
}

int
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A DNS name or an IP literal (IPv6 too: a backend host is no URL). */
static int
valid_host(const char *s)
{
	return is_ip_literal(s) || valid_hostname(s);
}

#define FAIL(f, ...) do {					\
	*field = (f);						\
	snprintf(err, errlen, __VA_ARGS__);			\
	goto fail;						\
} while (0)

static int
json_get_string(const json_t *v, const char **out)
{
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	/* A NUL inside a JSON string would cut the value short silently. */
	if (strlen(*out) != json_string_length(v))
		return -1;
	return 0;
}

static int
apply_ports(struct backend *nb, const json_t *ports, const char **field,
    char *err, size_t errlen)
{
	static char fname[64];
	const char *key;
	json_t *v;
	enum proto p;

	if (!json_is_object(ports))
		FAIL("ports", "must be an object");
	json_object_foreach((json_t *)ports, key, v) {
		if (proto_parse(key, &p) == -1) {
			snprintf(fname, sizeof(fname), "ports.%.40s", key);
			FAIL(fname, "unknown protocol");
		}
		snprintf(fname, sizeof(fname), "ports.%s", proto_names[p]);
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 65535)
			FAIL(fname, "must be an integer from 0 to 65535");
		nb->ports[p] = (uint16_t)json_integer_value(v);
	}
	return 0;
fail:
	return -1;
}

static int
apply_doveadm(struct backend *nb, const json_t *obj, const char **field,
    char *err, size_t errlen)
{
	const char *key, *s;
	json_t *v;

	if (!json_is_object(obj))
		FAIL("doveadm", "must be an object");
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "url") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("doveadm.url", "must be a string");
			if (*s != '\0' && !valid_http_url(s, BACKEND_URL_MAX))
				FAIL("doveadm.url", "must be an http:// or "
				    "https:// URL of at most %d characters",
				    BACKEND_URL_MAX);
			free(nb->doveadm_url);
			nb->doveadm_url = *s ? xstrdup(s) : NULL;
		} else if (strcmp(key, "api_key") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("doveadm.api_key", "must be a string");
			if (strlen(s) > BACKEND_KEY_MAX)
				FAIL("doveadm.api_key", "longer than %d bytes",
				    BACKEND_KEY_MAX);
			/* Never quote the key back: it is a secret. */
			if (nb->doveadm_key != NULL) {
				explicit_bzero(nb->doveadm_key,
				    strlen(nb->doveadm_key));
				free(nb->doveadm_key);
			}
			nb->doveadm_key = *s ? xstrdup(s) : NULL;
		} else if (strcmp(key, "api_key_set") == 0) {
			/* Echoed by GET; accepted so a GET body can be PATCHed back. */
			if (!json_is_boolean(v))
				FAIL("doveadm.api_key_set", "must be a boolean");
		} else
			FAIL("doveadm", "unknown field '%.40s'", key);
	}
	return 0;
fail:
	return -1;
}

/* Would the string break the IMAP LOGIN line it goes into? */
static int
has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/*
 * The IMAP probe's test account.  Either part may be changed alone (a GET
 * body carries the user but only password_set), but the result has both or
 * neither: a user without a password would be probed with no login at all.
 */
static int
apply_probe(struct backend *nb, const json_t *obj, const char **field,
    char *err, size_t errlen)
{
	const char *key, *s;
	json_t *v;

	if (!json_is_object(obj))
		FAIL("probe", "must be an object");
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "user") == 0) {
			/* json_get_string refuses an embedded NUL. */
			if (json_get_string(v, &s) == -1)
				FAIL("probe.user", "must be a string "
				    "without NUL");
			if (strlen(s) > BACKEND_PROBE_USER_MAX)
				FAIL("probe.user", "longer than %d bytes",
				    BACKEND_PROBE_USER_MAX);
			if (has_line_break(s))
				FAIL("probe.user", "must not contain CR or LF");
			free(nb->probe_user);
			nb->probe_user = *s ? xstrdup(s) : NULL;
		} else if (strcmp(key, "password") == 0) {
			/* Never quote the password back: it is a secret. */
			if (json_get_string(v, &s) == -1)
				FAIL("probe.password", "must be a string "
				    "without NUL");
			if (strlen(s) > BACKEND_PROBE_PASS_MAX)
				FAIL("probe.password", "longer than %d bytes",
				    BACKEND_PROBE_PASS_MAX);
			if (has_line_break(s))
				FAIL("probe.password", "must not contain CR "
				    "or LF");
			if (nb->probe_pass != NULL) {
				explicit_bzero(nb->probe_pass,
				    strlen(nb->probe_pass));
				free(nb->probe_pass);
			}
			nb->probe_pass = *s ? xstrdup(s) : NULL;
		} else if (strcmp(key, "password_set") == 0) {
			/* Echoed by GET; accepted so a GET body can be PATCHed back. */
			if (!json_is_boolean(v))
				FAIL("probe.password_set", "must be a boolean");
		} else
			FAIL("probe", "unknown field '%.40s'", key);
	}
	if (nb->probe_user == NULL && nb->probe_pass != NULL)
		FAIL("probe.user", "is required with probe.password (empty "
		    "strings for both clear the test account)");
	if (nb->probe_user != NULL && nb->probe_pass == NULL)
		FAIL("probe.password", "is required with probe.user (empty "
		    "strings for both clear the test account)");
	return 0;
fail:
	return -1;
}

int
backend_apply_json(struct backend *b, const json_t *obj, int creating,
    const char **field, char *err, size_t errlen)
{
	struct backend *nb;
	const char *key, *s;
	json_t *v;
	int hostip_given = 0;
	static char fname[64];

	*field = NULL;
	if (!json_is_object(obj)) {
		*field = "body";
		snprintf(err, errlen, "must be a JSON object");
		return -1;
	}
	nb = backend_dup(b);
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "name") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("name", "must be a string");
			/* The same name is accepted, so that a GET body can
			 * be edited and sent back. */
			if (!creating && strcmp(s, b->name) != 0)
				FAIL("name", "cannot be changed");
			if (!valid_name(s))
				FAIL("name", "must be 1-64 characters of "
				    "A-Z a-z 0-9 . _ - not starting with '.'");
			snprintf(nb->name, sizeof(nb->name), "%s", s);
		} else if (strcmp(key, "host") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("host", "must be a string");
			if (!valid_host(s))
				FAIL("host", "must be a host name or an IP "
				    "address of at most %d characters",
				    BACKEND_HOST_MAX);
			snprintf(nb->host, sizeof(nb->host), "%s", s);
		} else if (strcmp(key, "hostip") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("hostip", "must be a string");
			if (*s != '\0' && !is_ip_literal(s))
				FAIL("hostip", "must be an IPv4 or IPv6 address");
			snprintf(nb->hostip, sizeof(nb->hostip), "%s", s);
			hostip_given = 1;
		} else if (strcmp(key, "tag") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("tag", "must be a string");
			if (*s != '\0' && !valid_name(s))
				FAIL("tag", "must be empty or 1-64 characters "
				    "of A-Z a-z 0-9 . _ - not starting with '.'");
			snprintf(nb->tag, sizeof(nb->tag), "%s", s);
		} else if (strcmp(key, "weight") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > BACKEND_WEIGHT_MAX)
				FAIL("weight", "must be an integer from 0 to %d",
				    BACKEND_WEIGHT_MAX);
			nb->weight = (unsigned)json_integer_value(v);
		} else if (strcmp(key, "state") == 0) {
			if (json_get_string(v, &s) == -1 ||
			    backend_state_parse(s, &nb->state) == -1)
				FAIL("state", "must be one of up, drain, down");
		} else if (strcmp(key, "tls") == 0) {
			if (json_get_string(v, &s) == -1 ||
			    backend_tls_parse(s, &nb->tls) == -1)
				FAIL("tls", "must be one of no, yes, starttls");
		} else if (strcmp(key, "ports") == 0) {
			if (apply_ports(nb, v, field, err, errlen) == -1)
				goto fail;
		} else if (strcmp(key, "doveadm") == 0) {
			if (apply_doveadm(nb, v, field, err, errlen) == -1)
				goto fail;
		} else if (strcmp(key, "probe") == 0) {
			if (apply_probe(nb, v, field, err, errlen) == -1)
				goto fail;
		} else if (strcmp(key, "users") == 0 ||
		    strcmp(key, "created") == 0 || strcmp(key, "updated") == 0 ||
		    strcmp(key, "health") == 0) {
			/* Read-only fields of GET: ignored, so GET output
			 * can be edited and sent back. */
			continue;
		} else {
			snprintf(fname, sizeof(fname), "%.60s", key);
			FAIL(fname, "unknown field");
		}
	}
	if (creating && nb->name[0] == '\0')
		FAIL("name", "is required");
	if (creating && nb->host[0] == '\0')
		FAIL("host", "is required");
	/*
	 * hostip follows host unless the request sets it: Dovecot connects to
	 * hostip, so an old one kept after a host change sends every login
	 * to the old machine.  An echo of a hostip that was following the
	 * host (a GET body sent back with host edited) does not count as
	 * setting it.
	 */
	if (hostip_given && !creating && strcmp(nb->host, b->host) != 0 &&
	    strcmp(b->hostip, b->host) == 0 && strcmp(nb->hostip, b->hostip) == 0)
		hostip_given = 0;
	if (!hostip_given && (creating || strcmp(nb->host, b->host) != 0)) {
		if (is_ip_literal(nb->host) &&
		    strlen(nb->host) < sizeof(nb->hostip))
			memcpy(nb->hostip, nb->host, strlen(nb->host) + 1);
		else
			nb->hostip[0] = '\0';
	}

	/* Commit: swap the checked copy into place. */
	free(b->doveadm_url);
	if (b->doveadm_key != NULL) {
		explicit_bzero(b->doveadm_key, strlen(b->doveadm_key));
		free(b->doveadm_key);
	}
	free(b->probe_user);
	if (b->probe_pass != NULL) {
		explicit_bzero(b->probe_pass, strlen(b->probe_pass));
		free(b->probe_pass);
	}
	*b = *nb;
	free(nb);
	return 0;
fail:
	backend_free(nb);
	return -1;
}

static const char *const health_names[] = { "ok", "failing", "failed" };

const char *
health_state_name(enum health_state h)
{
	return (unsigned)h < 3 ? health_names[h] : "ok";
}

int
health_state_parse(const char *s, enum health_state *out)
{
	unsigned i;

	for (i = 0; i < 3; i++)
		if (strcmp(s, health_names[i]) == 0) {
			*out = (enum health_state)i;
			return 0;
		}
	return -1;
}

json_t *
backend_to_json(const struct backend *b)
{
	json_t *ports, *o;
	int i;

	ports = json_object();
	for (i = 0; i < PROTO_COUNT; i++)
		json_object_set_new(ports, proto_names[i],
		    json_integer(b->ports[i]));
	o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, "
	    "s:{s:s, s:b}, s:{s:s, s:b}, s:I, s:I}",
	    "name", b->name,
	    "host", b->host,
	    "hostip", b->hostip,
	    "tag", b->tag,
	    "weight", (int)b->weight,
	    "state", backend_state_name(b->state),
	    "tls", backend_tls_name(b->tls),
	    "ports", ports,
	    "doveadm", "url", b->doveadm_url ? b->doveadm_url : "",
	    "api_key_set", b->doveadm_key != NULL,
	    "probe", "user", b->probe_user ? b->probe_user : "",
	    "password_set", b->probe_pass != NULL,
	    "created", (json_int_t)b->created,
	    "updated", (json_int_t)b->updated);
	if (o == NULL)
		fatalx("rendering backend %s", b->name);
	json_object_set_new(o, "health", json_pack("{s:s, s:b, s:o, s:o, "
	    "s:o, s:s}", "state", health_state_name(b->health),
	    "routed", !b->failed,
	    "since", b->health_since ? json_integer(b->health_since) :
	    json_null(),
	    "checked", b->health_checked ? json_integer(b->health_checked) :
	    json_null(),
	    "latency_ms", b->health_checked ?
	    json_integer(b->health_latency_ms) : json_null(),
	    "error", b->health_error));
	return o;
}
