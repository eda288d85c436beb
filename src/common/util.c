/*
 * util.c: helpers that several modules need and that must be right once:
 * strict number parsing (no atoi), secret files with permission checks, and
 * comparisons that do not leak a token's contents through timing.
 */
#include <sys/stat.h>

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "xmalloc.h"

#define SECRET_MAX	4096

int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	/* strtoll accepts leading blanks and '+'; a config value must not. */
	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
parse_duration(const char *s, long long min, long long max, long long *out)
{
	char num[32];
	size_t len;
	long long mult = 1, v;

	if (s == NULL || (len = strlen(s)) == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len + 1);
	switch (num[len - 1]) {
	case 's': mult = 1; num[--len] = '\0'; break;
	case 'm': mult = 60; num[--len] = '\0'; break;
	case 'h': mult = 3600; num[--len] = '\0'; break;
	case 'd': mult = 86400; num[--len] = '\0'; break;
	default: break;
	}
	if (parse_ll(num, 0, LLONG_MAX / 86400, &v) == -1)
		return -1;
	v *= mult;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

char *
secret_read(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char buf[SECRET_MAX + 2];
	ssize_t n;
	size_t len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s: readable or writable by group or others "
		    "(mode %03o); chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	if ((n = read(fd, buf, sizeof(buf) - 1)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "%s: empty secret", path);
		goto fail;
	}
	if (len > SECRET_MAX) {
		snprintf(err, errlen, "%s: secret longer than %d bytes", path,
		    SECRET_MAX);
		goto fail;
	}
	return xstrdup(buf);
fail:
	if (fd != -1)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	return NULL;
}

int
ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff;
	size_t i;

	diff = (alen != blen);
	/* Walk the expected secret's length whatever the input is. */
	for (i = 0; i < blen; i++)
		diff |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
	return diff == 0;
}

int
valid_name(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (i >= 64)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

size_t
utf8_seq(const char *s, size_t left)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (left == 0)
		return 0;
	if (u[0] < 0x80)
		return 1;
	/* The second byte's range rules out overlong forms, surrogates and
	 * code points above U+10FFFF (RFC 3629, table 3-7 of Unicode). */
	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		n = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		n = 3;
		if (u[0] == 0xe0)
			lo = 0xa0;
		else if (u[0] == 0xed)
			hi = 0x9f;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		n = 4;
		if (u[0] == 0xf0)
			lo = 0x90;
		else if (u[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (left < n || u[1] < lo || u[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return 0;
	return n;
}

int
valid_utf8(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_seq(s + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

int
valid_username(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	/* Names go out in JSON answers and audit records: UTF-8 only. */
	return valid_utf8(s, len);
}

int
valid_http_url(const char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (len > max)
		return 0;
	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
		return 0;
	/* No space or control character: the URL goes into request lines
	 * as it is. */
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	return len > 8;
}

int
valid_hostname(const char *h)
{
	struct in_addr a4;
	size_t i, label = 0;
	int alldigits = 1;

	for (i = 0; h[i] != '\0'; i++) {
		char c = h[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (!(c >= '0' && c <= '9'))
			alldigits = 0;
		if (++label > 63)
			return 0;
	}
	if (i == 0 || i > 253 || label == 0)
		return 0;
	/* "10.0.0.300" is no host name: digits and dots must be an address. */
	if (alldigits)
		return inet_pton(AF_INET, h, &a4) == 1;
	return 1;
}

/* The same clock as now_msec(): time(3) reads the kernel's coarse
 * seconds, which trail CLOCK_REALTIME by up to a tick after a second
 * begins, so a time taken with one could come before one taken earlier
 * with the other (a client's clock, or our own now_msec()). */
int64_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
now_msec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + (int64_t)ts.tv_nsec / 1000000;
}

uint64_t
now_msec_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
