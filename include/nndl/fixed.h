/* nndl/fixed.h: exact, order-independent sums of float vectors (the --reproducible mode).
 *
 * Floating-point addition is not associative, so a gradient summed over P ranks depends on P.
 * Here each term (one fixed chunk's gradient) is rounded ONCE to a multiple of 2^-k, held as an
 * int64, and the terms are added as integers: integer addition is exact and associative, so the
 * sum is the same for any grouping, any order, any rank count (MPI_SUM over MPI_INT64_T).
 *
 * The exponent k is chosen from the largest |term element| M over all terms (agreed by an
 * MPI_MAX, itself exact) and the number of terms n: with M < 2^e and c = ceil(log2 n),
 * k = min(50, 62 - c) - e. Every term then lies in (-2^50, 2^50) and the sum of n terms in
 * (-2^62, 2^62): no overflow, by construction. Rounding: x·2^k is exact in double (a float times
 * a power of two) and is rounded to the nearest integer (ties to even): an error of at most
 * 2^-(k+1) <= 2^-51 · M per term (for n <= 4096), far below float's own 2^-24 for every element
 * within 2^27 of the largest. The sum is read back as (float)((double)sum · 2^-k): two
 * deterministic roundings.
 * Pure arithmetic: no MPI. */
#ifndef NNDL_FIXED_H
#define NNDL_FIXED_H

#include <stddef.h>
#include <stdint.h>

/* The exponent k for terms whose elements are at most max_abs in magnitude, n_terms of them. */
int nndl_fixed_exponent(float max_abs, long n_terms);

/* acc[i] += round(x[i] · 2^k), i < n. x must be finite and within the max_abs k was chosen for. */
void nndl_fixed_add(int64_t *acc, const float *x, size_t n, int k);

/* out[i] = acc[i] · 2^-k rounded to float. */
void nndl_fixed_read(float *out, const int64_t *acc, size_t n, int k);

/* max |x[i]| (0 for n = 0); +inf if an element is infinite, a NaN if one is NaN (check m <=
 * FLT_MAX). */
float nndl_max_abs(const float *x, size_t n);

#endif
