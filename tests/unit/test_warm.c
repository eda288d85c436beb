/*
 * test_warm.c: connections opened ahead (warm.c) against listeners on
 * 127.0.0.1 in this process: the first take finds none and opens one, the
 * next gets that very connection (the server side reads what the caller
 * writes on it), and the one after is opened only when the call on that
 * one is done; a server that closes every connection at once is retried
 * after a backoff, not in a loop; an address nobody listens on leaves
 * nothing ready and the caller on its own socket.
 */
#include <event2/event.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "warm.h"

struct server {
	int			 fd;
	struct sockaddr_in	 sin;
	int			 close_at_once;
	int			 peers[16];
	unsigned		 accepts;
	struct event		*ev;
};

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	int c;

	(void)what;
	if ((c = accept(fd, NULL, NULL)) == -1)
		return;
	if (s->close_at_once || s->accepts >= 16)
		close(c);
	else
		s->peers[s->accepts] = c;
	s->accepts++;
}

static void
server_start(struct event_base *base, struct server *s, int close_at_once)
{
	socklen_t len = sizeof(s->sin);

	memset(s, 0, sizeof(*s));
	s->close_at_once = close_at_once;
	s->sin.sin_family = AF_INET;
	s->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s->fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&s->sin,
	    sizeof(s->sin)), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&s->sin,
	    &len), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	s->ev = event_new(base, s->fd, EV_READ | EV_PERSIST, on_accept, s);
	event_add(s->ev, NULL);
}

static void
server_stop(struct server *s)
{
	unsigned i;

	event_free(s->ev);
	close(s->fd);
	for (i = 0; i < s->accepts && i < 16; i++)
		if (!s->close_at_once)
			close(s->peers[i]);
}

static void
run_for(struct event_base *base, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
test_take_gets_the_connection_opened_ahead(void **state)
{
	struct event_base *base = event_base_new();
	struct warm *w = warm_new(base);
	struct server s;
	char buf[8];
	int fd;

	(void)state;
	server_start(base, &s, 0);
	assert_int_equal(warm_take(w, (struct sockaddr *)&s.sin,
	    sizeof(s.sin)), -1);
	run_for(base, 200);
	assert_int_equal(s.accepts, 1);
	assert_int_equal(warm_ready(w), 1);

	fd = warm_take(w, (struct sockaddr *)&s.sin, sizeof(s.sin));
	assert_true(fd >= 0);
	assert_int_equal(warm_ready(w), 0);
	assert_int_equal(write(fd, "ping", 4), 4);
	assert_int_equal(read(s.peers[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);

	/* No next one while the call on it runs, even when asked for: the
	 * server's work for a new connection would slow that call down. */
	run_for(base, 200);
	assert_int_equal(s.accepts, 1);
	assert_int_equal(warm_take(w, (struct sockaddr *)&s.sin,
	    sizeof(s.sin)), -1);
	run_for(base, 200);
	assert_int_equal(s.accepts, 1);
	assert_int_equal(warm_ready(w), 0);

	warm_done(w, (struct sockaddr *)&s.sin);
	close(fd);
	run_for(base, 200);		/* the next one */
	assert_int_equal(s.accepts, 2);
	assert_int_equal(warm_ready(w), 1);
	/* A second "done" for the same take changes nothing. */
	warm_done(w, (struct sockaddr *)&s.sin);
	run_for(base, 100);
	assert_int_equal(s.accepts, 2);
	warm_free(w);
	server_stop(&s);
	event_base_free(base);
}

static void
test_early_close_backs_off(void **state)
{
	struct event_base *base = event_base_new();
	struct warm *w = warm_new(base);
	struct server s;

	(void)state;
	server_start(base, &s, 1);
	assert_int_equal(warm_take(w, (struct sockaddr *)&s.sin,
	    sizeof(s.sin)), -1);
	run_for(base, WARM_BACKOFF_MIN_MS / 2);
	assert_int_equal(s.accepts, 1);	/* closed at once: no second yet */
	assert_int_equal(warm_ready(w), 0);
	run_for(base, WARM_BACKOFF_MIN_MS);
	assert_int_equal(s.accepts, 2);	/* tried again after the backoff */
	run_for(base, WARM_BACKOFF_MIN_MS * 7 / 10);
	assert_int_equal(s.accepts, 2);	/* then waits twice as long */
	run_for(base, WARM_BACKOFF_MIN_MS * 3 / 2);
	assert_int_equal(s.accepts, 3);
	warm_free(w);
	server_stop(&s);
	event_base_free(base);
}

static void
test_nobody_listening(void **state)
{
	struct event_base *base = event_base_new();
	struct warm *w = warm_new(base);
	struct server s;

	(void)state;
	server_start(base, &s, 0);
	server_stop(&s);		/* the port is free again */
	assert_int_equal(warm_take(w, (struct sockaddr *)&s.sin,
	    sizeof(s.sin)), -1);
	run_for(base, 300);
	assert_int_equal(warm_ready(w), 0);
	assert_int_equal(warm_take(w, (struct sockaddr *)&s.sin,
	    sizeof(s.sin)), -1);
	warm_free(w);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_gets_the_connection_opened_ahead),
		cmocka_unit_test(test_early_close_backs_off),
		cmocka_unit_test(test_nobody_listening),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
