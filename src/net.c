/* net.c: fully connected networks on one parameter buffer; batched forward/backward with CBLAS.
 * Shapes: a batch of n rows; A[l] is [n x sizes[l]]; W of layer l is [sizes[l+1] x sizes[l]]. */
#include "nndl/net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "nndl/fixed.h"
#include "nndl/rng.h"

/* ---- names ---- */

static const char *act_names[] = {"sigmoid", "tanh", "relu", "softmax"};
static const char *cost_names[] = {"quadratic", "cross-entropy", "log-likelihood"};
static const char *init_names[] = {"standard", "nielsen"};

static int parse_name(const char *s, const char **names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}
const char *nndl_act_name(nndl_act a) { return act_names[a]; }
const char *nndl_cost_name(nndl_cost c) { return cost_names[c]; }
const char *nndl_init_name(nndl_init i) { return init_names[i]; }
/* softmax only follows the cost */
int nndl_act_parse(const char *s) { return parse_name(s, act_names, 3); }
int nndl_cost_parse(const char *s) { return parse_name(s, cost_names, 3); }
int nndl_init_parse(const char *s) { return parse_name(s, init_names, 2); }

/* ---- lifetime ---- */

static void point_views(nndl_layer *v, float *buf, const int *sizes, int n_layers)
{
    for (int l = 0; l < n_layers; l++) {
        v[l] = (nndl_layer){sizes[l], sizes[l + 1], buf, buf + (size_t)sizes[l + 1] * sizes[l]};
        buf += (size_t)sizes[l + 1] * (sizes[l] + 1);
    }
}

nndl_status nndl_net_create(nndl_net **out, const int *sizes, int n_sizes,
                            const nndl_act *act_hidden, nndl_cost cost, nndl_err *err)
{
    *out = NULL;
    if (n_sizes < 2)
        return nndl_fail(err, NNDL_EARG,
                         "a network needs at least 2 sizes (inputs and outputs), got %d", n_sizes);
    size_t n_params = 0;
    for (int l = 0; l < n_sizes; l++) {
        if (sizes[l] < 1 || sizes[l] > (1 << 24))
            return nndl_fail(err, NNDL_EARG, "layer size %d is out of range (1 to 16777216)",
                             sizes[l]);
        if (l > 0) n_params += (size_t)sizes[l] * (sizes[l - 1] + 1);
    }
    if (n_params > ((size_t)1 << 31) - NNDL_GRAD_EXTRA)
        return nndl_fail(err, NNDL_EARG,
                         "the network has %zu parameters; at most 2^31 are supported", n_params);
    int L = n_sizes - 1;
    nndl_net *net = calloc(1, sizeof *net);
    if (!net) return nndl_fail(err, NNDL_ENOMEM, "out of memory for the network");
    net->n_layers = L;
    net->cost = cost;
    net->n_params = n_params;
    net->sizes = malloc(sizeof *net->sizes * n_sizes);
    net->act = malloc(sizeof *net->act * L);
    net->params = calloc(n_params, sizeof *net->params);
    net->grads = calloc(n_params + NNDL_GRAD_EXTRA, sizeof *net->grads);
    net->layer = malloc(sizeof *net->layer * L);
    net->dlayer = malloc(sizeof *net->dlayer * L);
    net->a = calloc(L + 1, sizeof *net->a);
    net->mask = calloc(L + 1, sizeof *net->mask);
    if (!net->sizes || !net->act || !net->params || !net->grads || !net->layer || !net->dlayer ||
        !net->a || !net->mask) {
        nndl_net_free(net);
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for %zu parameters", n_params);
    }
    memcpy(net->sizes, sizes, sizeof *sizes * n_sizes);
    for (int l = 0; l < L - 1; l++) net->act[l] = act_hidden ? act_hidden[l] : NNDL_ACT_SIGMOID;
    net->act[L - 1] = cost == NNDL_COST_LOG_LIKELIHOOD ? NNDL_ACT_SOFTMAX : NNDL_ACT_SIGMOID;
    point_views(net->layer, net->params, sizes, L);
    point_views(net->dlayer, net->grads, sizes, L);
    *out = net;
    return NNDL_OK;
}

void nndl_net_rebind(nndl_net *net, float *params, float *grads, float **old_params,
                     float **old_grads)
{
    if (old_params) *old_params = net->params;
    if (old_grads) *old_grads = net->grads;
    net->params = params;
    net->grads = grads;
    point_views(net->layer, net->params, net->sizes, net->n_layers);
    point_views(net->dlayer, net->grads, net->sizes, net->n_layers);
}

static void free_workspace(nndl_net *net)
{
    for (int l = 0; l <= net->n_layers; l++) {
        free(net->a[l]);
        net->a[l] = NULL;
        if (net->mask) {
            free(net->mask[l]);
            net->mask[l] = NULL;
        }
    }
    free(net->delta[0]);
    free(net->delta[1]);
    free(net->zout);
    net->delta[0] = net->delta[1] = net->zout = NULL;
    net->cap = 0;
}

void nndl_net_free(nndl_net *net)
{
    if (!net) return;
    if (net->a) free_workspace(net);
    void *owned[] = {net->a,     net->mask,  net->sizes,  net->act, net->params,
                     net->grads, net->layer, net->dlayer, net};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) free(owned[i]);
}

nndl_status nndl_net_reserve(nndl_net *net, int rows, nndl_err *err)
{
    if (rows <= net->cap) return NNDL_OK;
    free_workspace(net);
    int wmax = 1;
    for (int l = 1; l <= net->n_layers; l++) wmax = net->sizes[l] > wmax ? net->sizes[l] : wmax;
    int ok = 1;
    for (int l = 1; l <= net->n_layers; l++)
        ok &= (net->a[l] = malloc(sizeof(float) * rows * net->sizes[l])) != NULL;
    for (int i = 0; i < 2; i++) ok &= (net->delta[i] = malloc(sizeof(float) * rows * wmax)) != NULL;
    for (int l = 1; l < net->n_layers; l++)
        ok &= (net->mask[l] = malloc(sizeof(float) * rows * net->sizes[l])) != NULL;
    ok &= (net->zout = malloc(sizeof(float) * rows * net->sizes[net->n_layers])) != NULL;
    if (!ok) {
        free_workspace(net);
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for a workspace of %d rows", rows);
    }
    net->cap = rows;
    return NNDL_OK;
}

void nndl_net_init(nndl_net *net, nndl_init init, uint64_t seed)
{
    for (int l = 0; l < net->n_layers; l++) {
        nndl_layer *L = &net->layer[l];
        size_t nw = (size_t)L->n_out * L->n_in, n = nw + L->n_out; /* w then b: contiguous */
        double wscale = init == NNDL_INIT_NIELSEN ? 1.0 / sqrt((double)L->n_in) : 1.0;
        for (size_t i = 0; i < n; i += 2) {
            double z[2];
            nndl_rng_normal2(seed, NNDL_STREAM_INIT, (uint32_t)l, i / 2, z);
            for (size_t k = 0; k < 2 && i + k < n; k++)
                L->w[i + k] = (float)(z[k] * (i + k < nw ? wscale : 1.0));
        }
    }
}

/* ---- forward ---- */

/* a = act(a) in place over n rows of width m; one pass. */
NNDL_HOT static void activate(nndl_act act, float *a, int n, int m)
{
    size_t nm = (size_t)n * m;
    switch (act) {
    case NNDL_ACT_SIGMOID:
        for (size_t i = 0; i < nm; i++) a[i] = 1.0f / (1.0f + nndl_vexpf(-a[i]));
        break;
    case NNDL_ACT_TANH:
        for (size_t i = 0; i < nm; i++) a[i] = nndl_vtanhf(a[i]);
        break;
    case NNDL_ACT_RELU:
        for (size_t i = 0; i < nm; i++) a[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case NNDL_ACT_SOFTMAX:
        for (int r = 0; r < n; r++) {
            float *z = a + (size_t)r * m, zmax = z[0], sum = 0.0f;
            /* shift: exp never overflows */
            for (int j = 1; j < m; j++) zmax = z[j] > zmax ? z[j] : zmax;
            for (int j = 0; j < m; j++) z[j] = nndl_vexpf(z[j] - zmax);
            for (int j = 0; j < m; j++) sum += z[j]; /* in order */
            float inv = 1.0f / sum;
            for (int j = 0; j < m; j++) z[j] *= inv;
        }
        break;
    }
}

/* mask[j0..j1) of row's sample: the RNG's blocks of 4 units that cover them */
static void dropout_mask_range(const nndl_dropout *d, int layer, int j0, int j1, int row,
                               float *mask)
{
    const float keep = 1.0f / (1.0f - d->p);
    const uint64_t base = ((uint64_t)(uint32_t)d->sample[row] << 32) | ((uint64_t)layer << 24);
    for (int j = j0 & ~3; j < j1; j += 4) {
        uint32_t w[4];
        nndl_rng_block(d->seed, NNDL_STREAM_DROPOUT, d->epoch, base + (uint64_t)(j / 4), w);
        for (int k = 0; k < 4; k++)
            if (j + k >= j0 && j + k < j1) /* u in [0,1): dropped if u < p */
                mask[j + k] = (float)((double)w[k] * 0x1p-32) >= d->p ? keep : 0.0f;
    }
}

void nndl_dropout_mask(const nndl_dropout *d, int layer, int width, int row, float *mask)
{
    dropout_mask_range(d, layer, 0, width, row, mask);
}

/* Units [j0, j1) of weight layer l over n rows: z = in·W[j0:j1]ᵀ + b (in [n x n_in], z [n x
 * n_out]), the activation, and on hidden layers inverted dropout (mask rows follow drop->sample).
 */
static void layer_forward(nndl_net *net, int l, const float *in, float *z, int n, int j0, int j1,
                          const nndl_dropout *drop)
{
    const nndl_layer *W = &net->layer[l];
    int m = W->n_out, whole = j0 == 0 && j1 == m;
    /* Z = A·Wᵀ + b: copy b into every row first so that the GEMM adds onto it (beta = 1). */
    for (int r = 0; r < n; r++)
        memcpy(z + (size_t)r * m + j0, W->b + j0, sizeof *z * (size_t)(j1 - j0));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, j1 - j0, W->n_in, 1.0f, in, W->n_in,
                W->w + (size_t)j0 * W->n_in, W->n_in, 1.0f, z + j0, m);
    /* the output layer, whole */
    if (net->act[l] == NNDL_ACT_SOFTMAX) memcpy(net->zout, z, sizeof *z * (size_t)n * m);
    if (whole)
        activate(net->act[l], z, n, m);
    else
        for (int r = 0; r < n; r++) activate(net->act[l], z + (size_t)r * m + j0, 1, j1 - j0);
    if (drop && drop->p > 0 && l < net->n_layers - 1) { /* hidden layer: inverted dropout */
        float *mk = net->mask[l + 1];
        for (int r = 0; r < n; r++) {
            float *zr = z + (size_t)r * m, *mr = mk + (size_t)r * m;
            dropout_mask_range(drop, l + 1, j0, j1, r, mr);
            for (int j = j0; j < j1; j++) zr[j] *= mr[j];
        }
    }
}

/* Forward x [n x sizes[0]] into a[1..L] ([n x sizes[l]] each): net->a, or a caller's batch. */
static const float *forward(nndl_net *net, const float *x, int n, const nndl_dropout *drop,
                            float *const *a)
{
    const float *in = x;
    for (int l = 0; l < net->n_layers; l++) {
        layer_forward(net, l, in, a[l + 1], n, 0, net->sizes[l + 1], drop);
        in = a[l + 1];
    }
    return a[net->n_layers];
}

const float *nndl_net_forward(nndl_net *net, const float *x, int n)
{
    return forward(net, x, n, NULL, net->a);
}

/* ---- cost ---- */

double nndl_net_cost(const nndl_net *net, const float *out, const float *z, const uint8_t *y, int n)
{
    int m = net->sizes[net->n_layers];
    double c = 0.0;
    /* -log softmax(z)_y = log-sum-exp(z) - z_y: no log(0) */
    if (net->cost == NNDL_COST_LOG_LIKELIHOOD) {
        for (int r = 0; r < n; r++) {
            const float *zr = z + (size_t)r * m;
            double zmax = zr[0], s = 0.0;
            for (int j = 1; j < m; j++) zmax = fmax(zmax, zr[j]);
            for (int j = 0; j < m; j++) s += exp((double)zr[j] - zmax);
            c += zmax + log(s) - zr[y[r]];
        }
        return c;
    }
    for (int r = 0; r < n; r++) {
        const float *a = out + (size_t)r * m;
        for (int j = 0; j < m; j++) {
            double t = j == y[r], aj = a[j];
            switch (net->cost) {
            case NNDL_COST_QUADRATIC: c += 0.5 * (aj - t) * (aj - t); break;
            case NNDL_COST_CROSS_ENTROPY:
                /* clamp: a float sigmoid saturates to exactly 0 or 1, where the log would be -inf
                 */
                c -= t ? log(fmax(aj, 1e-12)) : log(fmax(1.0 - aj, 1e-12));
                break;
            case NNDL_COST_LOG_LIKELIHOOD: break; /* below, from the pre-activations */
            }
        }
    }
    return c;
}

/* ---- backward ---- */

/* d *= act'(a), with the derivative written in terms of the activation a itself. */
NNDL_HOT static void times_derivative(nndl_act act, float *d, const float *a, size_t nm)
{
    switch (act) {
    case NNDL_ACT_SIGMOID:
        for (size_t i = 0; i < nm; i++) d[i] *= a[i] * (1.0f - a[i]);
        break;
    case NNDL_ACT_TANH:
        for (size_t i = 0; i < nm; i++) d[i] *= 1.0f - a[i] * a[i];
        break;
    case NNDL_ACT_RELU:
        for (size_t i = 0; i < nm; i++) d[i] = a[i] > 0.0f ? d[i] : 0.0f;
        break;
    case NNDL_ACT_SOFTMAX: break; /* only as output with log-likelihood, where delta = a - y */
    }
}

/* delta = dC/dz of the output layer for each row. */
static void output_delta(const nndl_net *net, float *delta, const float *a, const uint8_t *y, int n)
{
    int m = net->sizes[net->n_layers];
    size_t nm = (size_t)n * m;
    memcpy(delta, a, sizeof *delta * nm);
    for (int r = 0; r < n; r++) delta[(size_t)r * m + y[r]] -= 1.0f; /* a - y, y one-hot */
    /* cross-entropy with sigmoid and log-likelihood with softmax cancel act'(z): delta = a - y */
    if (net->cost == NNDL_COST_QUADRATIC)
        times_derivative(net->act[net->n_layers - 1], delta, a, nm);
}

/* d = d ⊙ mask ⊙ act'(h), where a = h ⊙ mask is what the layer passed on (h = a (1 - p) where
 * kept). */
NNDL_HOT static void times_dropout_derivative(nndl_act act, float *d, const float *a,
                                              const float *mask, float p, size_t nm)
{
    for (size_t i = 0; i < nm; i++) {
        if (mask[i] == 0.0f) {
            d[i] = 0.0f;
            continue;
        }
        float h = a[i] * (1.0f - p), g = act == NNDL_ACT_SIGMOID ? h * (1.0f - h)
                                         : act == NNDL_ACT_TANH  ? 1.0f - h * h
                                                                 : (h > 0.0f ? 1.0f : 0.0f);
        d[i] *= mask[i] * g;
    }
}

/* The larger of bound and layer's bound on its gradient elements, n · max|delta| · max(max|input|,
 * 1) (dW = deltaᵀ·A, db = Σ delta): two scans of the (small) batch matrices; a NaN sticks. */
static float layer_bound(float bound, const float *d, const float *ain, int n, const nndl_layer *W)
{
    float md = nndl_max_abs(d, (size_t)n * W->n_out), ma = nndl_max_abs(ain, (size_t)n * W->n_in);
    /* a NaN input must give a NaN bound (ReLU hides it from md) */
    float lb = (float)n * md * (ma <= 1.0f ? 1.0f : ma);
    return isnan(bound) || lb <= bound ? bound : lb;
}

/* Columns [c_lo, c_hi) of dprev = (d·W_l) ⊙ act'(a_l) [n x n_in] (⊙ the dropout mask), in panels of
 * columns between which the hook's progress runs. a_l is the output of weight layer l - 1. */
static void delta_prev(const nndl_net *net, int l, const float *d, float *dprev, const float *a_l,
                       int n, int c_lo, int c_hi, const nndl_dropout *drop, int panel,
                       const nndl_backprop_hooks *h)
{
    const nndl_layer *W = &net->layer[l];
    int m = W->n_in, whole = c_lo == 0 && c_hi == m;
    for (int c0 = c_lo; c0 < c_hi; c0 += panel) {
        int c1 = c0 + panel < c_hi ? c0 + panel : c_hi;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c1 - c0, W->n_out, 1.0f, d,
                    W->n_out, W->w + c0, m, 0.0f, dprev + c0, m);
        if (h && h->progress) h->progress(h->ctx);
    }
    /* one pass over the block, or one per row of the columns */
    for (int r = 0; r < (whole ? 1 : n); r++) {
        size_t o = (size_t)r * m + c_lo, len = whole ? (size_t)n * m : (size_t)(c_hi - c_lo);
        if (drop && drop->p > 0)
            times_dropout_derivative(net->act[l - 1], dprev + o, a_l + o, net->mask[l] + o, drop->p,
                                     len);
        else
            times_derivative(net->act[l - 1], dprev + o, a_l + o, len);
    }
}

/* sum[j0..j1) = Σ over the k rows of d [k x n_out] (a bias gradient) */
static void column_sums(float *sum, const float *d, int k, int n_out, int j0, int j1)
{
    for (int j = j0; j < j1; j++) sum[j] = 0.0f;
    for (int r = 0; r < k; r++)
        for (int j = j0; j < j1; j++) sum[j] += d[(size_t)r * n_out + j];
}

double nndl_net_backprop(nndl_net *net, const float *x, const uint8_t *y, int n,
                         const nndl_dropout *drop)
{
    int L = net->n_layers;
    memset(net->grads + net->n_params, 0, sizeof(float) * NNDL_GRAD_EXTRA);
    if (n == 0) { /* a rank with an empty shard still joins the reduction, with zeros */
        memset(net->grads, 0, sizeof(float) * net->n_params);
        return 0.0;
    }
    if (drop && !(drop->p > 0)) drop = NULL;
    const float *out = forward(net, x, n, drop, net->a);
    double cost = nndl_net_cost(net, out, net->zout, y, n);
    float *d = net->delta[0], *dprev = net->delta[1];
    output_delta(net, d, out, y, n);
    net->grads[net->n_params + NNDL_EXTRA_COST] = (float)cost;
    const nndl_backprop_hooks *h = net->hooks;
    int panel = h && h->panel > 0 ? h->panel : 1 << 30;
    float bound = 0.0f;
    for (int l = L - 1; l >= 0; l--) {
        const nndl_layer *W = &net->layer[l];
        nndl_layer *G = &net->dlayer[l];
        const float *ain = l == 0 ? x : net->a[l];
        bound = layer_bound(bound, d, ain, n, W);
        column_sums(G->b, d, n, W->n_out, 0, W->n_out);
        /* dW = deltaᵀ·A_in [n_out x n_in], summed over the rows by the GEMM itself; in panels of
         * rows from the last, each final as soon as it is written */
        for (int j1 = W->n_out; j1 > 0; j1 -= panel) {
            int j0 = j1 - panel > 0 ? j1 - panel : 0;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, n, 1.0f, d + j0,
                        W->n_out, ain, W->n_in, 0.0f, G->w + (size_t)j0 * W->n_in, W->n_in);
            if (h && h->ready) h->ready(h->ctx, (size_t)(G->w + (size_t)j0 * W->n_in - net->grads));
        }
        if (l == 0) break;
        delta_prev(net, l, d, dprev, net->a[l], n, 0, W->n_in, drop, panel, h);
        float *t = d;
        d = dprev;
        dprev = t;
    }
    net->grads[net->n_params + NNDL_EXTRA_BOUND] = bound;
    net->grads[net->n_params + NNDL_EXTRA_COST] = (float)cost;
    return cost;
}

/* ---- the fused step ---- */

/* Output units [*j0, *j1) of a layer of n_out that part `part` of `parts` owns. */
static void part_units(int n_out, int part, int parts, int *j0, int *j1)
{
    *j0 = (int)((long long)n_out * part / parts);
    *j1 = (int)((long long)n_out * (part + 1) / parts);
}

double nndl_net_deltas(nndl_net *net, const nndl_batch *b, const uint8_t *y, int n,
                       const nndl_dropout *drop, float *bound)
{
    *bound = 0.0f;
    if (n == 0) return 0.0;
    if (drop && !(drop->p > 0)) drop = NULL;
    int L = net->n_layers;
    const float *out = forward(net, b->act[0], n, drop, b->act);
    double cost = nndl_net_cost(net, out, net->zout, y, n);
    output_delta(net, b->delta[L - 1], out, y, n);
    for (int l = L - 1; l > 0; l--)
        delta_prev(net, l, b->delta[l], b->delta[l - 1], b->act[l], n, 0, net->sizes[l], drop,
                   1 << 30, NULL);
    *bound = nndl_net_bound(net, b, n);
    return cost;
}

/* ---- the fused step split by units: the ranks of a node share the work of every GEMM ---- */

void nndl_net_forward_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                            const nndl_dropout *drop)
{
    int j0, j1;
    part_units(net->layer[l].n_out, part, parts, &j0, &j1);
    if (j1 > j0 && k > 0) layer_forward(net, l, b->act[l], b->act[l + 1], k, j0, j1, drop);
}

double nndl_net_output_rows(nndl_net *net, const nndl_batch *b, const uint8_t *y, int r0, int n)
{
    int L = net->n_layers, m = net->sizes[L];
    if (n == 0) return 0.0;
    float *z = b->act[L] + (size_t)r0 * m;
    layer_forward(net, L - 1, b->act[L - 1] + (size_t)r0 * net->sizes[L - 1], z, n, 0, m, NULL);
    double cost = nndl_net_cost(net, z, net->zout, y, n);
    output_delta(net, b->delta[L - 1] + (size_t)r0 * m, z, y, n);
    return cost;
}

void nndl_net_delta_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                          const nndl_dropout *drop)
{
    int c0, c1;
    part_units(net->sizes[l], part, parts, &c0, &c1);
    if (c1 > c0 && k > 0)
        delta_prev(net, l, b->delta[l], b->delta[l - 1], b->act[l], k, c0, c1, drop, 1 << 30, NULL);
}

float nndl_net_bound(const nndl_net *net, const nndl_batch *b, int k)
{
    float bound = 0.0f;
    for (int l = 0; l < net->n_layers && k > 0; l++)
        bound = layer_bound(bound, b->delta[l], b->act[l], k, &net->layer[l]);
    return bound;
}

int nndl_net_part_nonfinite(nndl_net *net, const nndl_batch *b, int k, int part, int parts)
{
    int bad = 0;
    for (int l = 0; l < net->n_layers && !bad; l++) {
        const nndl_layer *W = &net->layer[l];
        nndl_layer *G = &net->dlayer[l];
        int j0, j1;
        part_units(W->n_out, part, parts, &j0, &j1);
        if (j1 == j0) continue;
        const float *d = b->delta[l];
        column_sums(G->b, d, k, W->n_out, j0, j1);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, k, 1.0f, d + j0,
                    W->n_out, b->act[l], W->n_in, 0.0f, G->w + (size_t)j0 * W->n_in, W->n_in);
        bad = nndl_any_nonfinite(G->w + (size_t)j0 * W->n_in, (size_t)(j1 - j0) * W->n_in) ||
              nndl_any_nonfinite(G->b + j0, (size_t)(j1 - j0));
    }
    return bad;
}

NNDL_HOT static void l1_shrink(float *w, size_t n, float c)
{
    for (size_t i = 0; i < n; i++) w[i] -= c * (float)((w[i] > 0.0f) - (w[i] < 0.0f));
}

NNDL_HOT static void bias_step(float *restrict bias, const float *restrict d, int k, int n_out,
                               int j0, int j1, float step)
{
    for (int r = 0; r < k; r++) {
        const float *dr = d + (size_t)r * n_out;
        for (int j = j0; j < j1; j++) bias[j] -= step * dr[j];
    }
}

/* Momentum: v <- mu v - step·deltaᵀA (the GEMM), then v -= wd w + l1 sgn w and w += v over the
 * part. */
NNDL_HOT static void momentum_apply(float *restrict w, float *restrict v, size_t n, float wd,
                                    float l1)
{
    for (size_t i = 0; i < n; i++) {
        v[i] -= wd * w[i] + l1 * (float)((w[i] > 0.0f) - (w[i] < 0.0f));
        w[i] += v[i];
    }
}

void nndl_net_update_part(nndl_net *net, const nndl_batch *b, int k, int part, int parts,
                          const nndl_fused *u)
{
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *W = &net->layer[l];
        int j0, j1;
        part_units(W->n_out, part, parts, &j0, &j1);
        if (j1 == j0) continue;
        size_t nw = (size_t)(j1 - j0) * W->n_in;
        float *w = W->w + (size_t)j0 * W->n_in;
        if (u->velocity) { /* the GEMM writes the velocity; the weights follow it */
            float *v = u->velocity + (W->w - net->params) + (size_t)j0 * W->n_in;
            float *vb = u->velocity + (W->b - net->params);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, k, -u->step,
                        b->delta[l] + j0, W->n_out, b->act[l], W->n_in, u->mu, v, W->n_in);
            momentum_apply(w, v, nw, u->wd, u->l1);
            for (int j = j0; j < j1; j++) vb[j] *= u->mu;
            bias_step(vb, b->delta[l], k, W->n_out, j0, j1, u->step);
            for (int j = j0; j < j1; j++) W->b[j] += vb[j];
            continue;
        }
        if (u->l1 != 0.0f) l1_shrink(w, nw, u->l1);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, k, -u->step,
                    b->delta[l] + j0, W->n_out, b->act[l], W->n_in, u->decay, w, W->n_in);
        bias_step(W->b, b->delta[l], k, W->n_out, j0, j1, u->step);
    }
}

static int argmax(const float *a, int m)
{
    int best = 0;
    for (int j = 1; j < m; j++) best = a[j] > a[best] ? j : best;
    return best;
}

void nndl_net_evaluate(nndl_net *net, const float *x, const uint8_t *y, int n, double *cost,
                       long *correct)
{
    if (n <= 0) return;
    const float *out = nndl_net_forward(net, x, n);
    int m = net->sizes[net->n_layers];
    *cost += nndl_net_cost(net, out, net->zout, y, n);
    for (int r = 0; r < n; r++) *correct += argmax(out + (size_t)r * m, m) == y[r];
}

void nndl_net_predict(nndl_net *net, const float *x, int n, int *pred)
{
    if (n <= 0) return;
    const float *out = nndl_net_forward(net, x, n);
    int m = net->sizes[net->n_layers];
    for (int r = 0; r < n; r++) pred[r] = argmax(out + (size_t)r * m, m);
}

NNDL_HOT int nndl_any_nonfinite(const float *v, size_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)v;
    uint32_t bad = 0;
    /* exponent all ones */
    for (size_t i = 0; i < n; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
    return bad != 0;
}
