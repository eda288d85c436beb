/* fuzz_http_query.c: query strings and percent-encoded path segments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const char *const names[] = { "user", "protocol", "tag" };
	char *values[3], *text, *seg;
	const char *field;
	size_t i;

	text = malloc(len + 1);
	memcpy(text, data, len);
	text[len] = '\0';
	if (http_query_parse(text, names, values, 3, &field) == 0) {
		for (i = 0; i < 3; i++)
			if (values[i] != NULL)
				valid_username(values[i], strlen(values[i]));
		http_query_free(values, 3);
	}
	if ((seg = http_decode_segment((const char *)data, len)) != NULL)
		free(seg);
	free(text);
	return 0;
}
