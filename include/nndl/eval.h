/* nndl/eval.h: evaluation of a network on a data split, sharded over a group of ranks.
 *
 * A function of a net, a split and a rank group: the validation pass, the --monitor passes, the
 * probes of the weight history and nndl-eval all use it, with no trainer. Each rank takes a
 * contiguous shard of the split and runs it through the net in blocks of NNDL_EVAL_BLOCK rows.
 */
#ifndef NNDL_EVAL_H
#define NNDL_EVAL_H

#include "nndl/data.h"
#include "nndl/dist.h"
#include "nndl/net.h"

#define NNDL_EVAL_BLOCK      1024 /* rows per evaluation GEMM: a fully connected net's */
#define NNDL_EVAL_BLOCK_CONV 64   /* a net with conv layers': each row's patches take more room */

/* Rows per evaluation block for net. */
int nndl_eval_rows(const nndl_net *net);

/* Accuracy (a fraction) and mean cost of net on s. COLLECTIVE over d. */
nndl_status nndl_eval_split(nndl_net *net, const nndl_split *s, const nndl_dist *d,
                            double *accuracy, double *cost, nndl_err *err);

/* The confusion matrix of net on s: conf[true * m + predicted] counts, m = the output width (conf
 * has m * m doubles). COLLECTIVE over d. */
nndl_status nndl_eval_confusion(nndl_net *net, const nndl_split *s, const nndl_dist *d,
                                double *conf, nndl_err *err);

/* The outputs of weight layers layer[0..n) (1-based) for positions [first, first + rows) of s:
 * out[k] is [rows x sizes[layer[k]]]. This rank only (no communication). */
nndl_status nndl_eval_activations(nndl_net *net, const nndl_split *s, int first, int rows,
                                  const int *layer, int n, float *const *out, nndl_err *err);

/* Chapter 5's speed of learning: speed[l] = ||(1/n) Σ ∂C/∂b^l|| (Euclidean) for every weight layer
 * l (input side first), the sum over positions [0, n) of s, the cost the net's own, no dropout, no
 * regularisation (the book's fig/generate_gradient.py). Each rank backprops its shard of the n
 * samples; one reduction. Changes nothing of the net but its workspace. COLLECTIVE over d. */
nndl_status nndl_eval_speed(nndl_net *net, const nndl_split *s, int n, const nndl_dist *d,
                            double *speed, nndl_err *err);

#endif
