/*
 * placement.c: weighted rendezvous hashing.
 *
 * For user u and backend b with weight w, h = hash(u, b) maps to a uniform
 * x in (0, 1) and the score is -w / ln(x); the highest score wins.  Each
 * backend then wins a share of users proportional to its weight, and adding
 * a backend only takes users from the others in proportion (no reshuffle).
 *
 * Controllers on different machines must agree bit for bit, so the logarithm
 * is computed here from basic IEEE-754 operations (which are exactly
 * rounded everywhere) instead of libm's log(), whose last bit may differ
 * between libraries; the build disables FMA contraction for the same reason.
 */
#include <math.h>
#include <string.h>

#include "placement.h"

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL
#define LN2		0.6931471805599453094

int
placement_eligible(const struct backend *b, const char *tag)
{
	return b->state == BACKEND_UP && b->weight > 0 && !b->failed &&
	    strcmp(b->tag, tag) == 0;
}

/* The murmur3 finalizer: spreads FNV's weak low bits over the whole word. */
static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint64_t
placement_hash(const char *user, size_t userlen, const char *backend)
{
	uint64_t h = FNV_OFFSET;
	size_t i;

	for (i = 0; i < userlen; i++) {
		h ^= (unsigned char)user[i];
		h *= FNV_PRIME;
	}
	/* A separator that cannot occur in either string keeps ("ab","c")
	 * apart from ("a","bc"). */
	h ^= 0xff;
	h *= FNV_PRIME;
	for (i = 0; backend[i] != '\0'; i++) {
		h ^= (unsigned char)backend[i];
		h *= FNV_PRIME;
	}
	return mix64(h);
}

/* ln(x) for x in (0, 1], from +, -, *, / only: deterministic everywhere. */
static double
det_log(double x)
{
	double m, s, s2, term, sum;
	int e, k;

	m = frexp(x, &e);		/* x = m * 2^e, m in [0.5, 1): exact */
	if (m < 0.70710678118654752440) {
		m *= 2.0;		/* exact */
		e--;
	}
	/* m in [0.707, 1.414): ln m = 2 atanh(s), |s| < 0.172 */
	s = (m - 1.0) / (m + 1.0);
	s2 = s * s;
	term = s;
	sum = 0.0;
	for (k = 1; k < 28; k += 2) {	/* s^29 < 1e-22: past double precision */
		sum += term / (double)k;
		term *= s2;
	}
	return 2.0 * sum + (double)e * LN2;
}

double
placement_score(uint64_t hash, unsigned weight)
{
	double x;

	if (weight == 0)
		return 0.0;
	/* 53 random bits, offset by half a step: x is never 0 or 1. */
	x = ((double)(hash >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	return -(double)weight / det_log(x);
}

size_t
placement_rank(const char *user, size_t userlen, const char *tag,
    struct backend *const *backends, size_t nbackends, long skip,
    long *out, size_t nout)
{
	double best[8];
	size_t n = 0, i, j;

	if (nout > sizeof(best) / sizeof(best[0]))
		nout = sizeof(best) / sizeof(best[0]);
	for (i = 0; i < nbackends; i++) {
		const struct backend *b = backends[i];
		double sc;

		if (b == NULL || (long)i == skip || !placement_eligible(b, tag))
			continue;
		sc = placement_score(placement_hash(user, userlen, b->name),
		    b->weight);
		/* Insertion into the short sorted list; ties go to the
		 * smaller name so the order never depends on slot order. */
		for (j = n; j > 0; j--) {
			if (best[j - 1] > sc || (best[j - 1] == sc &&
			    strcmp(backends[out[j - 1]]->name, b->name) < 0))
				break;
			if (j < nout) {
				best[j] = best[j - 1];
				out[j] = out[j - 1];
			}
		}
		if (j < nout) {
			best[j] = sc;
			out[j] = (long)i;
			if (n < nout)
				n++;
		}
	}
	return n;
}
