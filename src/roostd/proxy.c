/*
 * proxy.c: the proxy record.  Like a backend, admin input is checked
 * completely on a scratch copy, which replaces the record only when every
 * field passed, so a refused request leaves the proxy as it was.  A proxy
 * is useful only when its doveadm API can be reached and will take our
 * requests, so its url and key are required and cannot be cleared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"
#include "util.h"
#include "xmalloc.h"

#define FAIL(f, ...) do {					\
	*field = (f);						\
	snprintf(err, errlen, __VA_ARGS__);			\
	goto fail;						\
} while (0)

struct proxy *
proxy_new(const char *name)
{
	struct proxy *p;

	p = xcalloc(1, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

struct proxy *
proxy_dup(const struct proxy *src)
{
	struct proxy *p;

	p = xmalloc(sizeof(*p));
	*p = *src;
	p->doveadm_url = src->doveadm_url ? xstrdup(src->doveadm_url) : NULL;
	p->doveadm_key = src->doveadm_key ? xstrdup(src->doveadm_key) : NULL;
	return p;
}

static void
key_free(char *key)
{
	if (key == NULL)
		return;
	explicit_bzero(key, strlen(key));
	free(key);
}

void
proxy_free(struct proxy *p)
{
	if (p == NULL)
		return;
	free(p->doveadm_url);
	key_free(p->doveadm_key);
	free(p);
}

/* A JSON string without a NUL inside (which would cut it short silently). */
static int
json_get_string(const json_t *v, const char **out)
{
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return -1;
	return 0;
}

static int
apply_doveadm(struct proxy *np, const json_t *obj, const char **field,
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
			if (!valid_http_url(s, PROXY_URL_MAX))
				FAIL("doveadm.url", "must be an http:// or "
				    "https:// URL of at most %d characters",
				    PROXY_URL_MAX);
			free(np->doveadm_url);
			np->doveadm_url = xstrdup(s);
		} else if (strcmp(key, "api_key") == 0) {
			/* Never quote the key back: it is a secret. */
			if (json_get_string(v, &s) == -1)
				FAIL("doveadm.api_key", "must be a string");
			if (*s == '\0')
				FAIL("doveadm.api_key", "must not be empty");
			if (strlen(s) > PROXY_KEY_MAX)
				FAIL("doveadm.api_key", "longer than %d bytes",
				    PROXY_KEY_MAX);
			key_free(np->doveadm_key);
			np->doveadm_key = xstrdup(s);
		} else if (strcmp(key, "api_key_set") == 0) {
			/* Echoed by GET; accepted so a GET body can be sent
			 * back as a PATCH. */
			if (!json_is_boolean(v))
				FAIL("doveadm.api_key_set", "must be a boolean");
		} else
			FAIL("doveadm", "unknown field '%.40s'", key);
	}
	return 0;
fail:
	return -1;
}

int
proxy_apply_json(struct proxy *p, const json_t *obj, int creating,
    const char **field, char *err, size_t errlen)
{
	struct proxy *np;
	const char *key, *s;
	json_t *v;
	static char fname[64];

	*field = NULL;
	if (!json_is_object(obj)) {
		*field = "body";
		snprintf(err, errlen, "must be a JSON object");
		return -1;
	}
	np = proxy_dup(p);
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "name") == 0) {
			if (json_get_string(v, &s) == -1)
				FAIL("name", "must be a string");
			if (!creating && strcmp(s, p->name) != 0)
				FAIL("name", "cannot be changed");
			if (!valid_name(s))
				FAIL("name", "must be 1-64 characters of "
				    "A-Z a-z 0-9 . _ - not starting with '.'");
			snprintf(np->name, sizeof(np->name), "%s", s);
		} else if (strcmp(key, "doveadm") == 0) {
			if (apply_doveadm(np, v, field, err, errlen) == -1)
				goto fail;
		} else if (strcmp(key, "created") == 0 ||
		    strcmp(key, "updated") == 0) {
			/* Read-only fields of GET: ignored. */
			continue;
		} else {
			snprintf(fname, sizeof(fname), "%.60s", key);
			FAIL(fname, "unknown field");
		}
	}
	if (creating && np->name[0] == '\0')
		FAIL("name", "is required");
	if (np->doveadm_url == NULL)
		FAIL("doveadm.url", "is required");
	if (np->doveadm_key == NULL)
		FAIL("doveadm.api_key", "is required");

	/* Commit: swap the checked copy into place. */
	free(p->doveadm_url);
	key_free(p->doveadm_key);
	*p = *np;
	free(np);
	return 0;
fail:
	proxy_free(np);
	return -1;
}

json_t *
proxy_to_json(const struct proxy *p)
{
	json_t *o;

	o = json_pack("{s:s, s:{s:s, s:b}, s:I, s:I}",
	    "name", p->name,
	    "doveadm", "url", p->doveadm_url ? p->doveadm_url : "",
	    "api_key_set", p->doveadm_key != NULL,
	    "created", (json_int_t)p->created,
	    "updated", (json_int_t)p->updated);
	if (o == NULL)
		fatalx("rendering proxy %s", p->name);
	return o;
}
