/* net_int.h: what net.c and fused.c share (not a public header). Shapes as in nndl/net.h. */
#ifndef NNDL_NET_INT_H
#define NNDL_NET_INT_H

#include "nndl/net.h"

/* 1 if the hidden layer after weight layer l takes inverted dropout (a dense layer, not the
 * output). */
int net_drops(const nndl_net *net, int l, const nndl_dropout *drop);

/* Units [j0, j1) of dense layer l over n rows: z = in·W[j0:j1]ᵀ + b, the activation, dropout. */
void net_dense_forward(nndl_net *net, int l, const float *in, float *z, int n, int j0, int j1,
                       const nndl_dropout *drop);

/* Weight layer l over n rows: in [n x sizes[l]] -> out [n x sizes[l + 1]] (a conv layer's patches
 * into col, or net->col[l] when NULL). */
void net_forward_layer(nndl_net *net, int l, const float *in, float *out, float *col, int n,
                       const nndl_dropout *drop);

/* Forward x [n x sizes[0]] into a[1..L]; conv layers' patches into col[l] (NULL: net->col). */
const float *net_forward(nndl_net *net, const float *x, int n, const nndl_dropout *drop,
                         float *const *a, float *const *col);

/* delta = dC/dz of the output layer for each of n rows of output a. */
void net_output_delta(const nndl_net *net, float *delta, const float *a, const uint8_t *y, int n);

/* Columns [c_lo, c_hi) of delta[l - 1] from delta[l] (see net.c). */
void net_delta_prev(const nndl_net *net, int l, const float *d, float *dprev, const float *a_l,
                    int n, int c_lo, int c_hi, const nndl_dropout *drop, int panel,
                    const nndl_backprop_hooks *h);

/* drop, or NULL when it drops nothing. */
static inline const nndl_dropout *net_dropping(const nndl_dropout *drop)
{
    return drop && (drop->p > 0 || drop->p_conv > 0) ? drop : NULL;
}

/* The tail of net_delta_prev once the columns [c_lo, c_hi) of dprev hold d·W_l: times act'(a_l)
 * (and the dropout mask). */
void net_delta_tail(const nndl_net *net, int l, float *dprev, const float *a_l, int n, int c_lo,
                    int c_hi, const nndl_dropout *drop);

/* Into conv layer l - 1's output: g = d·W_l [n x sizes[l]] (overwritten) times act'(a_l) (and
 * --dropout-conv's mask), then through the max-pooling into dprev [n x the conv layer's positions
 * x filters]. */
void net_conv_delta_tail(const nndl_net *net, int l, float *g, float *dprev, const float *a_l,
                         int n, const nndl_dropout *drop);

/* max(bound, layer W's bound on its gradient elements over n samples); a NaN sticks. */
float net_layer_bound(float bound, const float *d, const float *ain, int n, const nndl_layer *W);
/* The larger of bound and rows · md · max(ma, 1), from the maxima md = max|delta|, ma = max|input|
 * (net_layer_bound's rule; a NaN sticks). */
float net_bound_of(float bound, int rows, float md, float ma);

/* sum[j0..j1) = Σ over the k rows of d [k x n_out] */
void net_column_sums(float *sum, const float *d, int k, int n_out, int j0, int j1);

/* dw [(j1 - j0) x n_in] = deltaᵀ·A of weight layer l for units [j0, j1) over n samples' rows (d
 * [n·pos x n_out]): A = gin, the layer's input (dense or direct conv) or its patches (conv); and
 * unless NULL db[j0, j1) = the bias gradient (net_column_sums). */
void net_weight_grad(const nndl_net *net, int l, const float *d, const float *gin, int n, int j0,
                     int j1, float *dw, float *db);

#endif
