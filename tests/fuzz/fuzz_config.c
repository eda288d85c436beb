/* fuzz_config.c: roostd.conf parsing and the user-name rules it sets up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config *c;
	char err[1024], key[256], *text;

	text = malloc(len + 1);
	memcpy(text, data, len);
	text[len] = '\0';
	if ((c = config_parse("fuzz.conf", text, 0, err, sizeof(err))) != NULL) {
		config_user_key(c, text, strnlen(text, 300), key, sizeof(key));
		config_free(c);
	}
	free(text);
	return 0;
}
