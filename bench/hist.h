/*
 * hist.h: a log-linear latency histogram for the load generator.  Keeping
 * every sample of a 10-million-operation run would cost 80 MB; 2560 buckets
 * covering 1 us .. 60 s keep any reported value within 0.4% of the truth.
 */
#ifndef ROOST_BENCH_HIST_H
#define ROOST_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	8			/* 256 linear steps per octave */
#define HIST_MAX_US	60000000ULL		/* samples above are clamped */
#define HIST_BUCKETS	2560

struct hist {
	uint64_t	counts[HIST_BUCKETS];
	uint64_t	n;
	uint64_t	min;	/* exact, in us */
	uint64_t	max;	/* exact, in us (before clamping) */
	uint64_t	sum;
};

void		hist_init(struct hist *);
void		hist_add(struct hist *, uint64_t usec);
/* The value (us) of the sample at quantile q (0 < q <= 1); 0 when empty. */
uint64_t	hist_quantile(const struct hist *, double q);
/* The value a single sample v is reported as (for tests). */
uint64_t	hist_repr(uint64_t usec);

#endif
