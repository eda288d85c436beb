/* util.h: small helpers shared by roostd and roostctl: strict number parsing,
 * secret files, string checks and constant-time comparison. */
#ifndef ROOST_UTIL_H
#define ROOST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Whole-string decimal conversion within [min, max]; 0 or -1 (errno unset). */
int	 parse_ll(const char *, long long min, long long max, long long *);
/* Like parse_ll but accepts a unit suffix: s, m, h, d (seconds out). */
int	 parse_duration(const char *, long long min, long long max, long long *);

/*
 * Read a secret (a token or key) from a file: the first line, without its
 * newline.  Refuses a file readable or writable by group or others, an empty
 * secret and one over 4096 bytes.  On error returns NULL and writes a reason
 * that never contains the secret into err.
 */
char	*secret_read(const char *path, char *err, size_t errlen);

/* Compare two byte strings in time that depends only on the lengths. */
int	 ct_equal(const char *, size_t, const char *, size_t);

/* A name of a backend or a tag: 1..64 of [A-Za-z0-9._-], not starting with '.'. */
int	 valid_name(const char *);
/* A user name: 1..255 bytes of UTF-8, no control characters (< 0x20, 0x7f). */
int	 valid_username(const char *, size_t);
/* Length of the well-formed UTF-8 sequence at s (1-4), or 0 when the bytes
 * there are not one (overlong, surrogate, above U+10FFFF, cut short). */
size_t	 utf8_seq(const char *s, size_t left);
int	 valid_utf8(const char *, size_t);

/* A DNS name (labels of [A-Za-z0-9-_], at most 253 characters) or an IPv4
 * literal; all-digit labels must make a valid IPv4 address. */
int	 valid_hostname(const char *);
/* An http:// or https:// URL of at most max bytes, no spaces or control
 * characters (a doveadm HTTP API address). */
int	 valid_http_url(const char *, size_t max);

int64_t	 now_sec(void);
/* Wall clock in milliseconds (persisted times), and monotonic. */
int64_t	 now_msec(void);
uint64_t now_msec_mono(void);

#endif
