/* test_log.c: log_limited writes a burst of one message as one line, and
 * the next line after the interval says how many were dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Run fn with stderr going to a temporary file; return what it wrote. */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX", *out;
	FILE *f;
	long len;
	int fd, saved;

	fd = mkstemp(path);
	assert_true(fd != -1);
	unlink(path);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved != -1);
	assert_true(dup2(fd, STDERR_FILENO) != -1);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	f = fdopen(fd, "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	out = calloc(1, (size_t)len + 1);
	assert_non_null(out);
	assert_int_equal(fread(out, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return out;
}

static size_t
lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

static void
burst(void)
{
	static struct log_limit lim = LOG_LIMIT_INIT(200);
	struct timespec ts = { 0, 300 * 1000000L };
	int i;

	for (i = 0; i < 100000; i++)
		log_limited(&lim, LOG_LEVEL_WARN, "accept: error %d", i);
	nanosleep(&ts, NULL);
	log_limited(&lim, LOG_LEVEL_WARN, "accept: error again");
	/* Below the log level: neither written nor counted. */
	log_limited(&lim, LOG_LEVEL_DEBUG, "hidden");
}

static void
test_burst_is_one_line(void **state)
{
	char *out;

	(void)state;
	log_init("test_log", 1);
	log_set_level(LOG_LEVEL_INFO);
	out = capture(burst);
	assert_int_equal(lines(out), 2);
	assert_non_null(strstr(out, "accept: error 0\n"));
	assert_non_null(strstr(out, "accept: error again (99999 like it "
	    "suppressed)\n"));
	assert_null(strstr(out, "hidden"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_is_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
