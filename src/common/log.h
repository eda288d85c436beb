/* log.h: the daemon's and the tools' logging (stderr with -d, syslog otherwise). */
#ifndef ROOST_LOG_H
#define ROOST_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void	log_init(const char *ident, int to_stderr);
void	log_set_level(enum log_level);
int	log_level_parse(const char *, enum log_level *);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/*
 * A message that can repeat at a high rate (accept errors, libevent's own
 * warnings) goes through a limit: at most one is written per interval, and
 * the next one written says how many were dropped in between.
 */
struct log_limit {
	uint64_t	interval_ms;
	uint64_t	last_ms;	/* when one was last written; 0 = never */
	unsigned long	suppressed;
};
#define LOG_LIMIT_INIT(ms)	{ (ms), 0, 0 }

void	log_limited(struct log_limit *, enum log_level, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
