/* fuzz_proxy_json.c: proxy admin input, as POST and as PATCH; whatever is
 * accepted must render, and a PATCH must keep the url and key set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy.h"
#include "xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct proxy *p;
	const char *field;
	json_error_t jerr;
	char err[256];
	json_t *obj, *out;
	int creating;

	if ((obj = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL)
		return 0;
	for (creating = 0; creating < 2; creating++) {
		p = proxy_new(creating ? "" : "p0");
		if (!creating) {
			p->doveadm_url = xstrdup("http://p0/doveadm/v1");
			p->doveadm_key = xstrdup("k");
		}
		if (proxy_apply_json(p, obj, creating, &field, err,
		    sizeof(err)) == 0) {
			if (p->doveadm_url == NULL || p->doveadm_key == NULL)
				abort();
			out = proxy_to_json(p);
			json_decref(out);
		} else if (field == NULL)
			abort();
		proxy_free(p);
	}
	json_decref(obj);
	return 0;
}
