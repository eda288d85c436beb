/* xmalloc.h: allocation that cannot fail (it exits instead). */
#ifndef ROOST_XMALLOC_H
#define ROOST_XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
/* Room for element n of an array that has *cap: doubled (from 64) when
 * full, else p as it is. */
void	*xgrow(void *p, size_t n, size_t *cap, size_t size);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
