/*
 * proxy.h: the registered Dovecot proxies: where each one's doveadm HTTP API
 * answers, so that a kick reaches the sessions proxied through it.  Their
 * JSON form and the checks on admin input.
 */
#ifndef ROOST_PROXY_H
#define ROOST_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROXY_NAME_MAX	64
#define PROXY_URL_MAX	1024
#define PROXY_KEY_MAX	1024

struct proxy {
	char		 name[PROXY_NAME_MAX + 1];
	char		*doveadm_url;		/* always set once created */
	char		*doveadm_key;		/* always set; never echoed */
	int64_t		 created;
	int64_t		 updated;
};

struct proxy	*proxy_new(const char *name);
struct proxy	*proxy_dup(const struct proxy *);
void		 proxy_free(struct proxy *);

/*
 * Apply a JSON object to a proxy: for POST (creating = 1: "name",
 * "doveadm.url" and "doveadm.api_key" required) or PATCH (creating = 0:
 * "name" only unchanged).  On error returns -1, leaves *p unchanged, names
 * the offending field in *field and the problem in err, which never quotes
 * the key.  Unknown fields are errors.
 */
int		 proxy_apply_json(struct proxy *p, const json_t *obj,
		    int creating, const char **field, char *err, size_t errlen);

/* The public JSON form: the key is shown only as "api_key_set". */
json_t		*proxy_to_json(const struct proxy *);

#endif
