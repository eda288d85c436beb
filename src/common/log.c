/*
 * log.c: one place where messages leave the program.  With -d (or in the
 * command-line tools) they go to stderr; a daemon sends them to syslog.
 * log_warn appends strerror(errno); the "x" variants do not.  log_limited
 * keeps a message that may repeat thousands of times a second from filling
 * the disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int		 log_stderr = 1;
static enum log_level	 log_max = LOG_LEVEL_INFO;
static const char	*log_ident = "roost";

void
log_init(const char *ident, int to_stderr)
{
	log_ident = ident;
	log_stderr = to_stderr;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	log_max = level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
vlog(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];
	int saved = errno;
	size_t len;

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	}
	if (log_stderr) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000L,
		    log_ident, msg);
	} else
		syslog(prio[level], "%s", msg);
	errno = saved;
}

#define LOG_FN(fn, level, with_errno)		\
void						\
fn(const char *fmt, ...)			\
{						\
	va_list ap;				\
	va_start(ap, fmt);			\
	vlog(level, with_errno, fmt, ap);	\
	va_end(ap);				\
}

static void	log_at(enum log_level, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
log_at(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void
log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;
	char msg[1024];
	uint64_t now;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* +1: a clock that reads 0 must not look like "never written". */
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
	if (lim->last_ms != 0 && now - lim->last_ms < lim->interval_ms) {
		lim->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lim->last_ms = now;
	if (lim->suppressed > 0) {
		log_at(level, "%s (%lu like it suppressed)", msg, lim->suppressed);
		lim->suppressed = 0;
	} else
		log_at(level, "%s", msg);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
