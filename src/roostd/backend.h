/* backend.h: the backend record, its JSON form, and validation of admin input. */
#ifndef ROOST_BACKEND_H
#define ROOST_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define BACKEND_NAME_MAX	64	/* also the tag limit */
#define BACKEND_HOST_MAX	253
#define BACKEND_HOSTIP_MAX	45	/* INET6_ADDRSTRLEN - 1 */
#define BACKEND_URL_MAX		1024
#define BACKEND_KEY_MAX		1024
#define BACKEND_PROBE_USER_MAX	255	/* the IMAP probe's test account */
#define BACKEND_PROBE_PASS_MAX	1024
#define BACKEND_WEIGHT_MAX	1000
#define BACKEND_WEIGHT_DEFAULT	100

enum proto {
	PROTO_IMAP = 0,
	PROTO_POP3,
	PROTO_LMTP,
	PROTO_SUBMISSION,
	PROTO_SIEVE,
	PROTO_DOVEADM,
	PROTO_COUNT
};

enum backend_state {
	BACKEND_UP = 0,		/* takes new users */
	BACKEND_DRAIN,		/* keeps its users, gets no new ones */
	BACKEND_DOWN		/* serves nobody */
};

/* How proxies reach the backend: roost.lua turns it into ssl= / starttls=. */
enum backend_tls {
	BACKEND_TLS_NO = 0,
	BACKEND_TLS_YES,	/* TLS from the first byte (imaps, pop3s) */
	BACKEND_TLS_STARTTLS	/* plain port, then STARTTLS */
};

/* What the probes say (health.c); admin state is separate. */
enum health_state {
	HEALTH_OK = 0,		/* passing, or never probed */
	HEALTH_FAILING,		/* failed recently, fewer than probe_fall times */
	HEALTH_FAILED		/* failed probe_fall rounds in a row */
};

#define BACKEND_ERROR_MAX	159

struct backend {
	char		 name[BACKEND_NAME_MAX + 1];
	char		 host[BACKEND_HOST_MAX + 1];
	char		 hostip[BACKEND_HOSTIP_MAX + 1];	/* "" = none */
	char		 tag[BACKEND_NAME_MAX + 1];		/* "" = default pool */
	unsigned	 weight;				/* 0..1000 */
	enum backend_state state;
	enum backend_tls tls;
	uint16_t	 ports[PROTO_COUNT];			/* 0 = not served */
	char		*doveadm_url;				/* NULL = none */
	char		*doveadm_key;				/* NULL = none; never echoed */
	char		*probe_user;	/* IMAP probe's test login; NULL = none */
	char		*probe_pass;	/* set with probe_user; never echoed */
	int64_t		 created;
	int64_t		 updated;

	/* Health: kept by health.c, never set through the API. */
	enum health_state health;
	int64_t		 health_since;
	int64_t		 health_checked;
	unsigned	 health_latency_ms;
	char		 health_error[BACKEND_ERROR_MAX + 1];
	int		 failed;	/* not handed out (health, and the
					 * everything-failed guard) */
	int		 force_failover; /* an admin lets its users fail over
					 * onto replicas that are not
					 * current (until it is healthy) */
	int		 evacuating;	/* down or removed by an admin, its
					 * sessions being kicked: its users
					 * keep it until that is done */
};

extern const char	*proto_names[PROTO_COUNT];
extern const uint16_t	 proto_default_ports[PROTO_COUNT];

int		 proto_parse(const char *, enum proto *);
const char	*backend_state_name(enum backend_state);
const char	*health_state_name(enum health_state);
int		 health_state_parse(const char *, enum health_state *);
int		 backend_state_parse(const char *, enum backend_state *);
const char	*backend_tls_name(enum backend_tls);
int		 backend_tls_parse(const char *, enum backend_tls *);

/* A backend with defaults (weight 100, up, standard ports). */
struct backend	*backend_new(const char *name);
struct backend	*backend_dup(const struct backend *);
void		 backend_free(struct backend *);

/*
 * Apply a JSON object to a backend: for POST (creating = 1, "name" and
 * "host" required) or PATCH (creating = 0, "name" refused).  On error returns
 * -1, leaves *b unchanged, and names the offending field in *field and the
 * problem in err.  Unknown fields are errors.
 */
int		 backend_apply_json(struct backend *b, const json_t *obj,
		    int creating, const char **field, char *err, size_t errlen);

/* The public JSON form: the doveadm key is shown only as "api_key_set", the
 * probe password only as "password_set". */
json_t		*backend_to_json(const struct backend *);

/* Is the string an IPv4 or IPv6 literal? */
int		 is_ip_literal(const char *);

#endif
