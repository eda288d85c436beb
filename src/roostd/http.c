/*
 * http.c: reply and request helpers on top of evhttp, so each handler deals
 * only with its own logic.  Error bodies are always JSON, and nothing sent
 * back ever contains a token: auth failures say only that it was wrong.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

static int	hexval(char);

static const char *
method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_DELETE: return "DELETE";
	default: return "request";
	}
}

static const char *
status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

void
http_reply_buf(struct evhttp_request *req, int status, struct evbuffer *buf)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(buf, "\n", 1);
	evhttp_send_reply(req, status, status_reason(status), buf);
}

static void
free_text(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)(uintptr_t)data);
}

void
http_reply_json(struct evhttp_request *req, int status, json_t *obj)
{
	static const char broken[] = "{\"error\":\"the answer could not be "
	    "rendered\"}";
	struct evbuffer *buf;
	char *text;

	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	/* json_pack gives NULL for a string that is not UTF-8: a bug to log,
	 * never an HTML page or a crash. */
	if (obj == NULL || (text = json_dumps(obj, JSON_COMPACT)) == NULL) {
		log_warnx("%s %s: answer %d could not be rendered as JSON",
		    method_name(req), evhttp_request_get_uri(req), status);
		evbuffer_add(buf, broken, sizeof(broken) - 1);
		http_reply_buf(req, 500, buf);
		evbuffer_free(buf);
		json_decref(obj);
		return;
	}
	evbuffer_add_reference(buf, text, strlen(text), free_text, NULL);
	http_reply_buf(req, status, buf);
	evbuffer_free(buf);
	json_decref(obj);
}

static void
reply_error(struct evhttp_request *req, int status, const char *key,
    const char *val, const char *fmt, va_list ap)
{
	char msg[512];
	json_t *obj;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	obj = json_pack("{s:s}", "error", msg);
	if (val != NULL)
		json_object_set_new(obj, key, json_string(val));
	http_reply_json(req, status, obj);
}

void
http_reply_error(struct evhttp_request *req, int status, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error(req, status, "field", field, fmt, ap);
	va_end(ap);
}

void
http_reply_error_reason(struct evhttp_request *req, int status,
    const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error(req, status, "reason", reason, fmt, ap);
	va_end(ap);
}

int
http_check_bearer(struct evhttp_request *req, const char *tok1,
    const char *tok2)
{
	const char *auth, *tok;
	size_t len;

	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"roost\"");
		http_reply_error(req, 401, NULL,
		    "bearer token required (Authorization: Bearer TOKEN)");
		return -1;
	}
	tok = auth + 7;
	while (*tok == ' ')
		tok++;
	len = strlen(tok);
	/* Check both so the time does not tell which one came close. */
	if ((tok1 != NULL && ct_equal(tok, len, tok1, strlen(tok1))) |
	    (tok2 != NULL && ct_equal(tok, len, tok2, strlen(tok2))))
		return 0;
	http_reply_error(req, 403, NULL, "invalid token");
	return -1;
}

json_t *
http_body_object(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	unsigned char *data;
	json_t *obj;

	if (len > HTTP_BODY_MAX) {
		http_reply_error(req, 413, "body", "request body over %d bytes",
		    HTTP_BODY_MAX);
		return NULL;
	}
	if (len == 0) {
		http_reply_error(req, 400, "body", "a JSON object is required");
		return NULL;
	}
	data = evbuffer_pullup(in, -1);
	obj = json_loadb((const char *)data, len,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL) {
		http_reply_error(req, 400, "body", "malformed JSON at line %d "
		    "column %d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		http_reply_error(req, 400, "body", "must be a JSON object");
		return NULL;
	}
	return obj;
}

void
http_json_str(struct evbuffer *buf, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
	size_t n;

	evbuffer_add(buf, "\"", 1);
	while (*s != '\0') {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80) {
			/* Bytes that are not UTF-8 would make the whole
			 * answer invalid JSON: each becomes U+FFFD. */
			/* 4 is enough: the NUL ends a sequence early. */
			if ((n = utf8_seq(s, 4)) > 0) {
				s += n;
				continue;
			}
			evbuffer_add(buf, run, (size_t)(s - run));
			evbuffer_add(buf, "\\ufffd", 6);
			run = ++s;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			s++;
			continue;
		}
		evbuffer_add(buf, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			char two[2] = { '\\', (char)c };
			evbuffer_add(buf, two, 2);
		} else {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			evbuffer_add(buf, esc, 6);
		}
		run = ++s;
	}
	evbuffer_add(buf, run, (size_t)(s - run));
	evbuffer_add(buf, "\"", 1);
}

json_t *
http_json_text(const char *s)
{
	size_t len = strlen(s), i = 0, n;
	char *out, *p;
	json_t *j;

	if (valid_utf8(s, len))
		return json_stringn(s, len);
	p = out = xreallocarray(NULL, len + 1, 3);
	while (i < len) {
		if ((n = utf8_seq(s + i, len - i)) == 0) {
			memcpy(p, "\xef\xbf\xbd", 3);	/* U+FFFD */
			p += 3;
			i++;
			continue;
		}
		memcpy(p, s + i, n);
		p += n;
		i += n;
	}
	j = json_stringn(out, (size_t)(p - out));
	free(out);
	return j;
}

void
http_hex(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[(unsigned char)s[i] >> 4];
		out[2 * i + 1] = hex[(unsigned char)s[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
http_unhex(const char *s, char *out, size_t outlen)
{
	size_t len = strlen(s), i;
	int hi, lo;

	if (len == 0 || len % 2 != 0 || len / 2 >= outlen)
		return -1;
	for (i = 0; i < len; i += 2) {
		if ((hi = hexval(s[i])) == -1 || (lo = hexval(s[i + 1])) == -1 ||
		    (hi == 0 && lo == 0))
			return -1;
		out[i / 2] = (char)(hi << 4 | lo);
	}
	out[len / 2] = '\0';
	return (int)(len / 2);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
http_decode_segment(const char *s, size_t len)
{
	char *out, *p;
	size_t i;
	int hi, lo;

	p = out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			*p++ = s[i];
			continue;
		}
		if (i + 2 >= len)
			goto fail;
		if ((hi = hexval(s[i + 1])) == -1 || (lo = hexval(s[i + 2])) == -1)
			goto fail;
		if (hi == 0 && lo == 0)
			goto fail;
		*p++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*p = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

void
http_query_free(char **values, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(values[i]);
		values[i] = NULL;
	}
}

int
http_query_parse(const char *q, const char *const *names, char **values,
    size_t n, const char **field)
{
	const char *p = q, *amp, *eq;
	size_t i, klen, plen;

	for (i = 0; i < n; i++)
		values[i] = NULL;
	*field = NULL;
	while (p != NULL && *p != '\0') {
		amp = strchr(p, '&');
		plen = amp ? (size_t)(amp - p) : strlen(p);
		if ((eq = memchr(p, '=', plen)) == NULL)
			goto next;
		klen = (size_t)(eq - p);
		for (i = 0; i < n; i++)
			if (strlen(names[i]) == klen &&
			    memcmp(p, names[i], klen) == 0)
				break;
		if (i == n)
			goto next;
		*field = names[i];
		if (values[i] != NULL)
			goto fail;
		eq++;
		if ((values[i] = http_decode_segment(eq,
		    plen - klen - 1)) == NULL)
			goto fail;
next:
		p = amp ? amp + 1 : NULL;
	}
	*field = NULL;
	return 0;
fail:
	http_query_free(values, n);
	return -1;
}
