/* fuzz_repl_event.c: a backend's event body as the intake reads it: any
 * JSON at all gets a priority in range or none, and never a crash. */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "repl.h"
#include "repl_event.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	json_error_t jerr;
	json_t *obj;
	int p;

	if ((obj = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL)
		return 0;
	p = repl_event_classify(json_string_value(json_object_get(obj,
	    "event")), json_object_get(obj, "fields"));
	if (p < -1 || p >= REPL_P_COUNT)
		abort();
	/* The fields alone, whatever they are. */
	p = repl_event_classify("imap_command_finished", obj);
	if (p < -1 || p >= REPL_P_COUNT)
		abort();
	json_decref(obj);
	return 0;
}
