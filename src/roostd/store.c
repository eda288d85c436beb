/*
 * store.c: picks the store implementation from the scheme of the "store"
 * setting and holds what all implementations share.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "xmalloc.h"

extern const struct store_ops	store_pg_ops;	/* store_pg.c */

static const struct {
	const char		*scheme;
	const struct store_ops	*ops;
} store_schemes[] = {
	{ "sqlite:", &store_sqlite_ops },
	{ "postgresql:", &store_pg_ops },
};

struct store *
store_open(const char *url, char *err, size_t errlen)
{
	struct store *st;
	size_t i, len;

	for (i = 0; i < sizeof(store_schemes) / sizeof(store_schemes[0]); i++) {
		len = strlen(store_schemes[i].scheme);
		if (strncmp(url, store_schemes[i].scheme, len) != 0)
			continue;
		st = xcalloc(1, sizeof(*st));
		st->ops = store_schemes[i].ops;
		if (st->ops->open(st, url + len) == -1) {
			snprintf(err, errlen, "%s store: %s", st->ops->name,
			    st->err);
			free(st);
			return NULL;
		}
		return st;
	}
	snprintf(err, errlen, "unknown store type (expected sqlite:PATH or "
	    "postgresql:CONNINFO)");
	return NULL;
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st);
	free(st);
}

const char *
store_error(const struct store *st)
{
	return st->err;
}

int
store_retryable(const struct store *st)
{
	return st->errclass == STORE_ERETRY;
}

int
store_flying(struct store *st)
{
	return st->ops->place_flying != NULL && st->ops->place_flying(st);
}

int
store_http_status(const struct store *st)
{
	switch (st->errclass) {
	case STORE_ERETRY:
		return 503;
	case STORE_ECONFLICT:
		return 409;
	default:
		return 500;
	}
}

static void
set_error(struct store *st, enum store_err class, const char *fmt,
    va_list ap)
{
	st->errclass = class;
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
}

void
store_set_error(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error(st, STORE_EFATAL, fmt, ap);
	va_end(ap);
}

void
store_set_conflict(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error(st, STORE_ECONFLICT, fmt, ap);
	va_end(ap);
}
