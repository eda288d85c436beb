/*
 * http.h: the HTTP edge of roostd on top of libevent's evhttp: JSON replies
 * and errors, bearer-token checks, capped JSON bodies, path and query
 * decoding.  Every reply roostd sends goes through here.
 */
#ifndef ROOST_HTTP_H
#define ROOST_HTTP_H

#include <stddef.h>

#include <jansson.h>

struct evhttp_request;
struct evbuffer;

#define HTTP_BODY_MAX		(64 * 1024)	/* API limit: 413 above */
#define HTTP_TRANSPORT_MAX	(1024 * 1024)	/* evhttp drops the connection above */
#define HTTP_HEADERS_MAX	(8 * 1024)

/* Send obj (reference stolen) with status. */
void	http_reply_json(struct evhttp_request *, int status, json_t *obj);
/* Send a body already rendered as JSON text. */
void	http_reply_buf(struct evhttp_request *, int status, struct evbuffer *);
/* {"error": msg, "field": field (when not NULL), extra key/value} */
void	http_reply_error(struct evhttp_request *, int status, const char *field,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	http_reply_error_reason(struct evhttp_request *, int status,
	    const char *reason, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/*
 * Check "Authorization: Bearer T" against up to two accepted tokens (NULL
 * entries skipped).  Returns 0 when it matches; otherwise replies 401 (no
 * bearer credentials) or 403 (wrong token) and returns -1.
 */
int	http_check_bearer(struct evhttp_request *, const char *tok1,
	    const char *tok2);

/*
 * Parse the request body as a JSON object.  On failure replies (413 over
 * HTTP_BODY_MAX, 400 malformed or not an object) and returns NULL.
 */
json_t	*http_body_object(struct evhttp_request *);

/* Append s as a JSON string literal (with quotes) to buf; bytes that are
 * not UTF-8 become U+FFFD, so the answer stays valid JSON. */
void	http_json_str(struct evbuffer *, const char *s);
/* A JSON string of s, never NULL for want of UTF-8: bad bytes become
 * U+FFFD (for showing stored text that an older roostd let in). */
json_t	*http_json_text(const char *s);
/* len bytes as 2 * len lower-case hex digits and a NUL into out. */
void	http_hex(const char *s, size_t len, char *out);
/* Hex digits back to bytes (no NUL byte) into out; returns the length, or
 * -1 when s is not an even count of hex digits or does not fit. */
int	http_unhex(const char *s, char *out, size_t outlen);

/*
 * Percent-decode one path segment into a new string; NULL when it holds an
 * encoded NUL or a bad escape.
 */
char	*http_decode_segment(const char *, size_t len);

/*
 * Parse a query string strictly for the n parameters named in names[]:
 * values[i] gets the decoded value (NULL when absent).  '+' stays '+' (user
 * names like "a+b@x" are common), %00 and bad escapes are refused, and so is
 * a repeated parameter; unknown parameters are ignored.  On error returns -1
 * with *field naming the parameter; values[] is then freed and NULL.
 */
int	http_query_parse(const char *q, const char *const *names, char **values,
	    size_t n, const char **field);
void	http_query_free(char **values, size_t n);

#endif
