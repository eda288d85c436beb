/*
 * hist.c: log-linear histogram (the HdrHistogram idea, cut down).  Values
 * below 256 us get one bucket each; above, every power of two is split into
 * 128 equal buckets, so a bucket is at most 1/128 of its lower edge wide and
 * its midpoint is within 1/256 of any sample in it.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "hist.h"

#define SUB		(1U << HIST_SUB_BITS)	/* 256 */
#define HALF		(SUB / 2)		/* 128 */

static unsigned int
bucket_of(uint64_t v)
{
	unsigned int msb, shift;
	uint64_t top;

	if (v > HIST_MAX_US)
		v = HIST_MAX_US;
	if (v < SUB)
		return (unsigned int)v;
	msb = 63 - (unsigned int)__builtin_clzll(v);
	shift = msb - (HIST_SUB_BITS - 1);
	top = v >> shift;			/* in [HALF, SUB) */
	return SUB + (shift - 1) * HALF + (unsigned int)(top - HALF);
}

/* The midpoint of bucket b: the value every sample in it is reported as. */
static uint64_t
bucket_mid(unsigned int b)
{
	unsigned int j, shift;
	uint64_t low, width;

	if (b < SUB)
		return b;
	j = b - SUB;
	shift = j / HALF + 1;
	low = (uint64_t)(HALF + j % HALF) << shift;
	width = (uint64_t)1 << shift;
	return low + (width - 1) / 2;
}

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

void
hist_add(struct hist *h, uint64_t usec)
{
	h->counts[bucket_of(usec)]++;
	if (h->n == 0 || usec < h->min)
		h->min = usec;
	if (usec > h->max)
		h->max = usec;
	h->n++;
	h->sum += usec;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, v;
	unsigned int b;

	if (h->n == 0)
		return 0;
	if (q <= 0.0)
		return h->min;
	if (q >= 1.0)
		return h->max;
	/* The smallest sample with at least q*n samples at or below it. */
	rank = (uint64_t)ceil(q * (double)h->n);
	if (rank == 0)
		rank = 1;
	for (b = 0; b < HIST_BUCKETS; b++) {
		seen += h->counts[b];
		if (seen >= rank)
			break;
	}
	if (b == HIST_BUCKETS)
		return h->max;
	v = bucket_mid(b);
	/* The exact extremes are known; never report past them. */
	if (v < h->min)
		v = h->min;
	if (v > h->max)
		v = h->max;
	return v;
}

uint64_t
hist_repr(uint64_t usec)
{
	return bucket_mid(bucket_of(usec));
}
