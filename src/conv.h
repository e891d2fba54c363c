/* conv.h: the data movements of a convolutional layer (conv.c), for net.c (not a public header).
 *
 * A conv layer (nndl/net.h) is a GEMM over patches: its input [n x C·H·W] (NCHW, one row per
 * sample) becomes col [n·pos x C·k·k] (one row per output position, pos = Ho·Wo, valid and stride
 * 1), and z = col·Wᵀ [n·pos x F] is the layer's output before pooling, one row per position (NHWC).
 * Pooling takes the max of each p x p block, adds the filter's bias and writes the output in NCHW
 * order, the layout the next layer (and PyTorch) reads; it keeps where each max came from for
 * backprop.
 *
 * On AVX-512 (kernels up to 8 x 8) the same products are computed by direct kernels that form no
 * patch matrix: im2col, the GEMMs' packing of it and dcolᵀ took a third of a conv step. Each sum is
 * one FMA per term in a fixed order: the forward over the taps (c, ky, kx), the weight gradient
 * over the rows, the input gradient over the filters and then col2im's order (the order OpenBLAS's
 * kernel used for the book's second layer, whose digests it kept). */
#ifndef NNDL_CONV_H
#define NNDL_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "nndl/net.h"

/* col [n·pos x n_in] = the k x k patches of in [n x C·H·W], in (c, ky, kx) order, the order of a
 * row of w. */
void nndl_im2col(const nndl_layer *L, const float *in, int n, float *col);

/* g [n x C·H·W] = the sum of each patch back into its input positions: the adjoint of
 * nndl_im2col, from dcolᵀ [n_in x n·pos] (column s·pos + position), so that each (c, ky, kx) adds
 * Wo-wide runs of an output row at once (g is overwritten). */
void nndl_col2im(const nndl_layer *L, const float *dcolt, int n, float *g);

/* out [n x F·Hp·Wp] (NCHW) = max over each pool x pool block of z [n·pos x F] (NHWC), plus b[f];
 * arg [n x F·Hp·Wp] = the position (within the sample's pos) of each max, the first in row order.
 */
void nndl_pool_forward(const nndl_layer *L, const float *z, int n, float *out, int32_t *arg);

/* D [n·pos x F] = dz [n x F·Hp·Wp] routed back to the positions arg recorded, zero elsewhere. */
void nndl_pool_backward(const nndl_layer *L, const float *dz, const int32_t *arg, int n, float *D);

/* Direct convolution (AVX-512, kernels up to 8 x 8): the same products as the patches' GEMMs
 * without forming the patches. nndl_conv_direct says whether this machine and layer use it (then a
 * conv layer's GEMMs read its input, not patches). scratch: nndl_conv_scratch_floats(L) floats. */
int nndl_conv_direct(const nndl_layer *L);
size_t nndl_conv_scratch_floats(const nndl_layer *L);
/* z [n·pos x F] (NHWC, before pooling and bias) = the convolution of in [n x C·H·W] with L->w. */
void nndl_conv_forward(const nndl_layer *L, const float *in, int n, float *z, float *scratch);
/* A conv layer with 2 x 2 pooling whose output rows are 16 to 32 wide (the book's first): the
 * convolution, pooling and bias into out and arg as nndl_pool_forward writes them, without z, and
 * 1; or 0 (nothing done) for a layer it does not serve. */
int nndl_conv_forward_pooled(const nndl_layer *L, const float *in, int n, float *out, int32_t *arg);
/* g [n x C·H·W] = the input gradient of a conv layer from d [n·pos x F] (what the dcolᵀ GEMM and
 * nndl_col2im give), without dcolᵀ, and 1; or 0 (nothing done) for a layer it does not serve
 * (more than 64 positions, or k x position vectors beyond the registers). */
int nndl_conv_input_grad(const nndl_layer *L, const float *d, int n, float *g, float *scratch);
/* Whether nndl_conv_input_grad serves this layer (else dcolᵀ and col2im, in net->dcol). */
int nndl_conv_input_grad_direct(const nndl_layer *L);
/* dw [(j1 - j0) x n_in] = Σ over the n·pos rows of d[row][j]·patch(row) for filters [j0, j1):
 * deltaᵀ·col without col (d [n·pos x F], in [n x C·H·W]); db[j0, j1) = Σ rows d[row][j] (the
 * bias gradient, as net_column_sums adds it), unless NULL. */
void nndl_conv_wgrad(const nndl_layer *L, const float *in, const float *d, int n, int j0, int j1,
                     float *dw, float *db, float *scratch);

#endif
