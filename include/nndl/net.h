/* nndl/net.h: networks of dense and convolutional layers, batched forward and backward with CBLAS.
 *
 * A network of L weight layers maps sizes[0] inputs to sizes[L] outputs (values per sample; a conv
 * layer's input and output are C x H x W images flattened in (channel, row, column) order). All
 * parameters live in ONE contiguous float buffer (params) and all gradients in another (grads) with
 * the same layout: layer 1's weights [n_out x n_in, row-major: a dense layer's units x inputs, a
 * conv layer's filters x (C x k x k)] then its biases [n_out], then layer 2's, and so on. layer[l]
 * and dlayer[l] are views into them (l = 0 is the first weight layer). grads has NNDL_GRAD_EXTRA
 * floats after the n_params gradients, for scalars that travel in the same reduction as the
 * gradient (the batch cost, flags the ranks must agree on).
 *
 * A batch is a matrix of n rows: forward and backward are one GEMM per layer and direction.
 * This module knows nothing of MPI, HDF5 or the terminal.
 */
#ifndef NNDL_NET_H
#define NNDL_NET_H

#include <stddef.h>
#include <stdint.h>

#include "nndl/err.h"

#define NNDL_GRAD_EXTRA  4 /* riders of the gradient reduction, after the n_params gradients: */
#define NNDL_EXTRA_COST  0 /*   the cost summed over the shard */
/* > 0 when a rank was asked to stop (signal): all stop at this step */
#define NNDL_EXTRA_STOP  1
#define NNDL_EXTRA_BOUND 2 /*  a bound on every |gradient element| (see nndl_net_backprop) */

typedef enum { NNDL_ACT_SIGMOID, NNDL_ACT_TANH, NNDL_ACT_RELU, NNDL_ACT_SOFTMAX } nndl_act;
typedef enum { NNDL_COST_QUADRATIC, NNDL_COST_CROSS_ENTROPY, NNDL_COST_LOG_LIKELIHOOD } nndl_cost;
typedef enum { NNDL_INIT_STANDARD, NNDL_INIT_NIELSEN, NNDL_INIT_NETWORK3 } nndl_init;
typedef enum { NNDL_LAYER_DENSE, NNDL_LAYER_CONV } nndl_layer_kind;

#define NNDL_MAX_FILTERS 4096

/* What a weight layer is asked to be (nndl_net_create_layers): dense with `units` outputs, or conv
 * with `units` filters of kernel x kernel (valid, stride 1), then max-pooling pool x pool (1:
 * none). */
typedef struct {
    nndl_layer_kind kind;
    int units, kernel, pool;
} nndl_layer_spec;

/* An image's shape: channels x rows x columns. */
typedef struct {
    int c, h, w;
} nndl_shape;

/* A weight layer. Its GEMMs are those of a dense layer over n·pos rows: a dense layer's rows are
 * the samples (pos = 1), a conv layer's are its output positions (the patches of conv.h). */
typedef struct {
    nndl_layer_kind kind;
    int n_in, n_out;   /* the weight matrix: n_out units (conv: filters), each of n_in weights */
    float *w;          /* [n_out x n_in], row-major: row j holds the weights into output unit j */
    float *b;          /* [n_out] */
    int n_inw, n_outw; /* values per sample in and out (conv: C·H·W and F·Hp·Wp, after pooling) */
    int pos;           /* output positions per sample before pooling: 1 (dense), Ho·Wo (conv) */
    int c, h, wd, k, pool, ho, wo; /* conv: input C x H x W, kernel k, pool p; output Ho x Wo */
} nndl_layer;

/* Optional hooks into backprop, for overlapping the gradient reduction with it (the core never
 * calls MPI itself). Each layer's bias gradient is computed first, then its weight gradient in
 * panels of `panel` rows from the last row up, so the gradients become final from the end of the
 * buffer to its start: ready(ctx, from) says grads[from .. n_params + NNDL_GRAD_EXTRA) are final
 * (the extras, i.e. the cost, from the first call on); progress(ctx) is called between the panels
 * of the other large GEMMs, so that non-blocking reductions can advance. */
typedef struct {
    void *ctx;
    void (*ready)(void *ctx, size_t from);
    void (*progress)(void *ctx);
    int panel; /* rows of a weight-gradient panel, columns of a delta panel (> 0) */
} nndl_backprop_hooks;

typedef struct {
    int n_layers;  /* weight layers L */
    int *sizes;    /* [L + 1] */
    nndl_act *act; /* [L]: activation of each weight layer's output */
    nndl_cost cost;
    size_t n_params;
    float *params;              /* [n_params] */
    float *grads;               /* [n_params + NNDL_GRAD_EXTRA] */
    nndl_layer *layer, *dlayer; /* [L] views into params and grads */
    /* workspace for batches of up to cap rows (nndl_net_reserve) */
    int cap;
    /* a[l]: [cap x sizes[l]] output of weight layer l (a[0] unused: the input is the caller's) */
    float **a;
    float *delta[2]; /* [cap x max width] ping-pong buffers for backprop */
    float **mask;    /* mask[l]: [cap x sizes[l]] dropout scale of hidden layer l: 0 or 1/(1-p) */
    /* [cap x sizes[L]] the output layer's pre-activations (softmax's log-sum-exp) */
    float *zout;
    /* conv layers: col[l] the input's patches [cap·pos x n_in], arg[l] the pooling's argmax
     * [cap x n_outw] (NULL for dense layers); zbuf a conv output before pooling, dcol the patches'
     * gradient, gbuf a layer's input gradient before its pooling's routing */
    float **col, *zbuf, *dcol, *gbuf;
    float *cscratch; /* direct conv layers (conv.h): packed weights or a gradient's transpose */
    int32_t **arg;
    int has_conv;
    const nndl_backprop_hooks *hooks; /* NULL: plain backprop (set by a caller that overlaps) */
} nndl_net;

/* Dropout of hidden units during training (inverted: kept units are scaled by 1/(1-p), so
 * evaluation needs no rescaling). A unit's mask is a function of (seed, epoch, global sample index,
 * layer, unit) only, never of the rank or of the other rows of the batch. */
typedef struct {
    float p; /* drop probability in [0, 1); 0 = off */
    uint64_t seed;
    uint32_t epoch;
    const int *sample; /* [n] the global sample index of each row */
    float p_conv;      /* drop probability of the last conv layer's outputs; 0 = off */
} nndl_dropout;

/* mask[0..width) for row's sample and hidden layer (1-based): 0 or 1/(1-p). */
void nndl_dropout_mask(const nndl_dropout *d, int layer, int width, int row, float *mask);

const char *nndl_act_name(nndl_act a);
const char *nndl_cost_name(nndl_cost c);
const char *nndl_init_name(nndl_init i);
/* Parse a name ("sigmoid", "cross-entropy", "nielsen", ...); return -1 if unknown. */
int nndl_act_parse(const char *s);
int nndl_cost_parse(const char *s);
int nndl_init_parse(const char *s);

/* Create a network of n_layers weight layers spec[0..n_layers) over inputs of shape in, hidden
 * activations act_hidden[0..n_layers-1) (NULL = sigmoid everywhere) and cost. The output activation
 * follows the cost: softmax for log-likelihood, sigmoid otherwise. A conv layer follows the input
 * or another conv layer; its kernel must fit its input and its pool divide the kernel's output. A
 * bad spec is NNDL_EARG naming the layer (as nndl_layer_spec_str writes it). Parameters are zero
 * until nndl_net_init. *out is owned by the caller: free with nndl_net_free. */
nndl_status nndl_net_create_layers(nndl_net **out, nndl_shape in, const nndl_layer_spec *spec,
                                   int n_layers, const nndl_act *act_hidden, nndl_cost cost,
                                   nndl_err *err);

/* The same for a fully connected network of sizes[0..n_sizes) (n_sizes >= 2, each >= 1). */
nndl_status nndl_net_create(nndl_net **out, const int *sizes, int n_sizes,
                            const nndl_act *act_hidden, nndl_cost cost, nndl_err *err);

/* "conv:20x5x5", "pool:2x2" after it, "dense:100": the --layers token(s) of a spec. */
void nndl_layer_spec_str(const nndl_layer_spec *s, char *buf, size_t cap);
void nndl_net_free(nndl_net *net);

/* Draw the parameters from (seed): NNDL_INIT_STANDARD = N(0,1) weights and biases (book ch. 1),
 * NNDL_INIT_NIELSEN = N(0, 1/n_in) weights and N(0,1) biases (book ch. 3), NNDL_INIT_NETWORK3 = the
 * book's network3.py (ch. 6): N(0, 1/fan_out) weights with fan_out = n_out·k²/p² for conv layers
 * and n_out for dense ones, N(0,1) biases, and a softmax output layer all zeros. Each layer's
 * values depend only on (seed, layer index), not on the rest of the network. */
void nndl_net_init(nndl_net *net, nndl_init init, uint64_t seed);

/* Use params [n_params] and grads [n_params + NNDL_GRAD_EXTRA] (e.g. shared memory) from now on:
 * re-points the buffers and the layer views, copies nothing. Returns the buffers used before in
 * *old_params, *old_grads (to give back before nndl_net_free, which frees its own). */
void nndl_net_rebind(nndl_net *net, float *params, float *grads, float **old_params,
                     float **old_grads);

/* Make room for batches of up to rows rows. Allocates; call before training, not in a step. */
nndl_status nndl_net_reserve(nndl_net *net, int rows, nndl_err *err);

/* Forward x [n x sizes[0]] (n <= cap); return the output activations [n x sizes[L]] (workspace). */
const float *nndl_net_forward(nndl_net *net, const float *x, int n);

/* Cost of output rows out [n x sizes[L]] against class labels y [n], SUMMED over the rows. z [n x
 * sizes[L]]: the output layer's pre-activations, which log-likelihood uses (log-softmax by
 * log-sum-exp: no log 0; net->zout after a forward); the other costs read out only (z may be NULL).
 */
double nndl_net_cost(const nndl_net *net, const float *out, const float *z, const uint8_t *y,
                     int n);

/* Forward and backward over x [n x sizes[0]] with labels y [n]: grads = the SUM over the n rows
 * of each row's gradient (not the mean: ranks sum shards, then divide by the global batch).
 * grads[n_params] = the summed cost; grads[n_params + NNDL_EXTRA_BOUND] = max over layers of
 * n · max|delta| · max(max|input|, 1), a bound on every |element| of the gradient (dW = deltaᵀ·A,
 * db = Σ delta), NaN or infinite if a delta or an input is; summed over ranks it bounds the summed
 * gradient. Other extras are zeroed. n = 0 gives zero gradients.
 * drop: dropout of the hidden layers (NULL or p = 0: none). */
double nndl_net_backprop(nndl_net *net, const float *x, const uint8_t *y, int n,
                         const nndl_dropout *drop);

/* ---- the fused step: the update inside the weight-gradient GEMM ----
 * Backprop that keeps every layer's delta, then an update that never writes the gradient:
 * W <- decay·W - step·deltaᵀ·A (one GEMM with beta = decay), b <- b - step·Σ delta, over the rows
 * of one batch. The buffers are the caller's, so that the ranks of a node can write their rows of
 * one batch into shared memory and then each update its part of every layer from the whole batch.
 */
typedef struct {
    /* [L + 1]: act[0] the input rows [n x sizes[0]], act[l] weight layer l-1's output */
    float **act;
    /* [L]: delta[l] = dC/dz of weight layer l's output before pooling [n·pos x n_out] */
    float **delta;
    /* [L]: in[l] = the rows weight layer l's GEMMs read: its input act[l] (dense) or its patches
     * [n·pos x n_in] (conv, unless direct: then NULL and the layer reads act[l]). NULL (the whole
     * array): every layer reads act[l]. */
    float **in;
} nndl_batch;

/* Floats per sample of a batch's act[l], delta[l] and in[l] for weight layer l (in: 0 for dense
 * layers and direct conv layers, which read act[l]). */
void nndl_net_batch_widths(const nndl_net *net, int l, size_t *act, size_t *delta, size_t *in);

/* The update's coefficients (see nndl_sgd_fused). Plain: w <- decay·(w - l1·sgn w) - step·Σ
 * gradient. Momentum (velocity != NULL, laid out as the parameters): v <- mu·v - step·Σ gradient -
 * wd·w - l1·sgn w; w <- w + v. */
typedef struct {
    float step, decay, l1, mu, wd;
    float *velocity;
    /* NULL: conv layers update like dense ones, from the batch's rows. Else conv_slots slots of
     * nndl_net_conv_grad_floats floats, each one rank's rows' gradient of every conv layer
     * (nndl_net_conv_grads), summed in slot order. */
    const float *conv_g;
    int conv_slots;
} nndl_fused;

/* Forward b->act[0] (n <= cap rows) into b->act[1..L] and every delta into b->delta; return the
 * summed cost, and in *bound the bound of nndl_net_backprop. n = 0 computes nothing. */
double nndl_net_deltas(nndl_net *net, const nndl_batch *b, const uint8_t *y, int n,
                       const nndl_dropout *drop, float *bound);

/* Part `part` of `parts` (each layer's output units split evenly) of the gradient over the k rows
 * of b, into net->grads; 1 if any element is NaN or infinite. For steps whose bound does not prove
 * the gradient finite; nothing is updated. */
int nndl_net_part_nonfinite(nndl_net *net, const nndl_batch *b, int k, int part, int parts);

/* Conv layers on the ranks of a node: a part's filters over the whole batch would pack every rank's
 * patches again, so each rank forms every conv layer's gradient over its own n rows of b (b
 * pointing at its first row) into its slot of nndl_net_conv_grad_floats floats, and the update sums
 * the slots (nndl_fused.conv_g). */
size_t nndl_net_conv_grad_floats(const nndl_net *net);
void nndl_net_conv_grads(const nndl_net *net, const nndl_batch *b, int n, float *slot);

/* Update part `part` of `parts` of the parameters from the k >= 1 rows of b with coefficients u. */
void nndl_net_update_part(nndl_net *net, const nndl_batch *b, int k, int part, int parts,
                          const nndl_fused *u);

/* The same step with every GEMM split by units, for the ranks of a node on large layers (each
 * rank's GEMMs then cover the whole batch and its share of the weights, instead of its share of the
 * batch and all of them). The caller orders the phases with barriers; k is the batch's rows, all in
 * b: forward_units(l) for l = 0 .. L-2: units `part` of weight layer l's output (activation,
 * dropout); output_rows: rows [r0, r0 + n) of the output layer, their summed cost and output delta
 * (y: their labels); delta_units(l) for l = L-1 .. 1: units `part` of delta[l - 1]; nndl_net_bound
 * (the bound of nndl_net_backprop, from the whole batch), nndl_net_update_part. Dense layers
 * only: a conv net's conv layers (which come first) run by rows, each rank its own n rows of b (b
 * pointing at its first row): forward_rows(l) for each conv layer l, and delta_rows(l) for l =
 * (the conv layers) .. 1, the delta into a conv layer's output. */
void nndl_net_forward_rows(nndl_net *net, const nndl_batch *b, int l, int n,
                           const nndl_dropout *drop);
void nndl_net_delta_rows(nndl_net *net, const nndl_batch *b, int l, int n,
                         const nndl_dropout *drop);
void nndl_net_forward_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                            const nndl_dropout *drop);
double nndl_net_output_rows(nndl_net *net, const nndl_batch *b, const uint8_t *y, int r0, int n);
void nndl_net_delta_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                          const nndl_dropout *drop);
float nndl_net_bound(const nndl_net *net, const nndl_batch *b, int k);

/* nndl_net_bound without reading what other ranks wrote: bound_part puts part `part`'s maxima,
 * m[2l] = max|delta_l| and m[2l + 1] = max|input of l|, over what that part wrote (a conv layer's
 * and the output layer's delta and a conv layer's output by rows, this rank's len rows from row
 * `first`; a dense hidden layer's by units, over all k rows); after a barrier, bound_parts takes
 * every part's maxima (stride floats apart) and gives nndl_net_bound's value exactly (the maxima
 * are the same numbers). Reading the other ranks' rows made them wait, at their next write, for
 * the invalidation of the lines this rank had read. */
void nndl_net_bound_part(const nndl_net *net, const nndl_batch *all, int k, int first, int len,
                         int part, int parts, float *m);
float nndl_net_bound_parts(const nndl_net *net, int k, const float *m, size_t stride, int parts);

/* A conv net's dense layers split by units keep each rank on its own rows of every weight matrix
 * (the update's), instead of delta_units' columns: dpart_units(l) puts part `part`'s units' share
 * of delta[l]·W_l, over the k rows of the batch, into its slot (stride floats apart, stride >=
 * dpart_floats); after a barrier, dsum_units(l) sums the slots in part order into delta[l - 1]:
 * the part's columns over all k rows (all), or, into a conv layer, the rank's own len rows from row
 * `first` (mine), then the activation's derivative, dropout and pooling as delta_units. */
size_t nndl_net_dpart_floats(const nndl_net *net, int k);
void nndl_net_dpart_units(const nndl_net *net, const nndl_batch *b, int l, int k, int part,
                          int parts, float *slot);
void nndl_net_dsum_units(nndl_net *net, const nndl_batch *all, const nndl_batch *mine, int l, int k,
                         int first, int len, int part, int parts, const float *slots, size_t stride,
                         const nndl_dropout *drop);

/* Evaluate x [n x sizes[0]] (n <= cap): add the summed cost to *cost and the
 * number of rows whose arg-max output equals the label to *correct. */
void nndl_net_evaluate(nndl_net *net, const float *x, const uint8_t *y, int n, double *cost,
                       long *correct);

/* 1 if any of v[0..n) is NaN or infinite (one vectorised pass over the bits). */
int nndl_any_nonfinite(const float *v, size_t n);

/* Arg-max class of each output row: pred[r] for x [n x sizes[0]] (n <= cap). */
void nndl_net_predict(nndl_net *net, const float *x, int n, int *pred);

#endif
