/*
 * repl_event.h: what a Dovecot backend's change event asks of replication.
 * A pure function of the event's name and fields (events.c parses the
 * body), unit-tested and fuzzed on its own.
 */
#ifndef ROOST_REPL_EVENT_H
#define ROOST_REPL_EVENT_H

#include <jansson.h>

/*
 * The REPL_P_* priority the event asks for, or -1 when it changes nothing
 * another backend needs (a failed command, a read-only one, an event of
 * another kind).  fields may be anything, NULL included.
 */
int	repl_event_classify(const char *event, const json_t *fields);

#endif
