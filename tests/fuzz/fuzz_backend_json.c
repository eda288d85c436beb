/* fuzz_backend_json.c: backend admin input, as POST and as PATCH. */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "backend.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct backend *b;
	const char *field;
	json_error_t jerr;
	char err[256];
	json_t *obj, *out;
	int creating;

	if ((obj = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL)
		return 0;
	for (creating = 0; creating < 2; creating++) {
		b = backend_new("b0");
		if (backend_apply_json(b, obj, creating, &field, err,
		    sizeof(err)) == 0) {
			out = backend_to_json(b);
			json_decref(out);
		}
		backend_free(b);
	}
	json_decref(obj);
	return 0;
}
