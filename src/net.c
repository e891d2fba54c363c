/* net.c: fully connected networks on one parameter buffer; batched forward/backward with CBLAS.
 * Shapes: a batch of n rows; A[l] is [n x sizes[l]]; W of layer l is [sizes[l+1] x sizes[l]]. */
#include "nndl/net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "hot.h"
#include "net_int.h"
#include "nndl/fixed.h"
#include "nndl/rng.h"

/* ---- names ---- */

static const char *act_names[] = {"sigmoid", "tanh", "relu", "softmax"};
static const char *cost_names[] = {"quadratic", "cross-entropy", "log-likelihood"};
static const char *init_names[] = {"standard", "nielsen", "network3"};

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
int nndl_init_parse(const char *s) { return parse_name(s, init_names, 3); }

void nndl_layer_spec_str(const nndl_layer_spec *s, char *buf, size_t cap)
{
    if (s->kind == NNDL_LAYER_DENSE)
        snprintf(buf, cap, "dense:%d", s->units);
    else if (s->pool > 1)
        snprintf(buf, cap, "conv:%dx%dx%d,pool:%dx%d", s->units, s->kernel, s->kernel, s->pool,
                 s->pool);
    else
        snprintf(buf, cap, "conv:%dx%dx%d", s->units, s->kernel, s->kernel);
}

/* ---- lifetime ---- */

/* Layer l's shape from its spec and its input (an image of shape *in for a conv layer; for a dense
 * layer only the values count); *in becomes its output's shape. */
static nndl_status layer_shape(nndl_layer *L, const nndl_layer_spec *s, int l, nndl_shape *in,
                               nndl_err *err)
{
    char tok[96];
    nndl_layer_spec_str(s, tok, sizeof tok);
    int n_inw = in->c * in->h * in->w, big = 1 << 24;
    if (s->units < 1 || s->units > (s->kind == NNDL_LAYER_CONV ? NNDL_MAX_FILTERS : big))
        return nndl_fail(err, NNDL_EARG, "layer %d (%s): %d %s is out of range (1 to %d)", l + 1,
                         tok, s->units, s->kind == NNDL_LAYER_CONV ? "filters" : "units",
                         s->kind == NNDL_LAYER_CONV ? NNDL_MAX_FILTERS : big);
    *L = (nndl_layer){.kind = s->kind, .n_out = s->units, .n_inw = n_inw, .pos = 1};
    if (s->kind == NNDL_LAYER_DENSE) {
        L->n_in = n_inw;
        L->n_outw = s->units;
        *in = (nndl_shape){s->units, 1, 1};
        return NNDL_OK;
    }
    int k = s->kernel, p = s->pool;
    if (in->h == 1 && in->w == 1 && l > 0)
        return nndl_fail(err, NNDL_EARG,
                         "layer %d (%s): a conv layer follows the input or another "
                         "conv layer, not a dense one",
                         l + 1, tok);
    if (k < 1 || k > in->h || k > in->w)
        return nndl_fail(err, NNDL_EARG,
                         "layer %d (%s): the %dx%d kernel is larger than its %dx%d input", l + 1,
                         tok, k, k, in->h, in->w);
    int ho = in->h - k + 1, wo = in->w - k + 1;
    if (p < 1 || ho % p || wo % p)
        return nndl_fail(err, NNDL_EARG,
                         "layer %d (%s): pool %dx%d does not divide the %dx%d output "
                         "of the kernel",
                         l + 1, tok, p, p, ho, wo);
    L->c = in->c, L->h = in->h, L->wd = in->w, L->k = k, L->pool = p, L->ho = ho, L->wo = wo;
    L->n_in = in->c * k * k;
    L->pos = ho * wo;
    *in = (nndl_shape){s->units, ho / p, wo / p};
    L->n_outw = in->c * in->h * in->w;
    return NNDL_OK;
}

static void point_views(nndl_layer *v, float *buf, int n_layers)
{
    for (int l = 0; l < n_layers; l++) {
        v[l].w = buf;
        v[l].b = buf + (size_t)v[l].n_out * v[l].n_in;
        buf += (size_t)v[l].n_out * (v[l].n_in + 1);
    }
}

/* The buffers of a net of L layers with n_params parameters (zeroed). */
static nndl_net *alloc_net(int L, size_t n_params)
{
    nndl_net *net = calloc(1, sizeof *net);
    if (!net) return NULL;
    net->n_layers = L;
    net->n_params = n_params;
    net->sizes = malloc(sizeof *net->sizes * (L + 1));
    net->act = malloc(sizeof *net->act * L);
    net->params = calloc(n_params, sizeof *net->params);
    net->grads = calloc(n_params + NNDL_GRAD_EXTRA, sizeof *net->grads);
    net->layer = calloc(L, sizeof *net->layer);
    net->dlayer = calloc(L, sizeof *net->dlayer);
    net->a = calloc(L + 1, sizeof *net->a);
    net->mask = calloc(L + 1, sizeof *net->mask);
    net->col = calloc(L, sizeof *net->col);
    net->arg = calloc(L, sizeof *net->arg);
    if (net->sizes && net->act && net->params && net->grads && net->layer && net->dlayer &&
        net->a && net->mask && net->col && net->arg)
        return net;
    nndl_net_free(net);
    return NULL;
}

nndl_status nndl_net_create_layers(nndl_net **out, nndl_shape in, const nndl_layer_spec *spec,
                                   int L, const nndl_act *act_hidden, nndl_cost cost, nndl_err *err)
{
    *out = NULL;
    if (L < 1) return nndl_fail(err, NNDL_EARG, "a network needs at least one weight layer");
    nndl_layer shape[L];
    size_t n_params = 0;
    nndl_shape cur = in;
    for (int l = 0; l < L; l++) {
        nndl_status st = layer_shape(&shape[l], &spec[l], l, &cur, err);
        if (st != NNDL_OK) return st;
        n_params += (size_t)shape[l].n_out * (shape[l].n_in + 1);
    }
    if (n_params > ((size_t)1 << 31) - NNDL_GRAD_EXTRA)
        return nndl_fail(err, NNDL_EARG,
                         "the network has %zu parameters; at most 2^31 are supported", n_params);
    nndl_net *net = alloc_net(L, n_params);
    if (!net) return nndl_fail(err, NNDL_ENOMEM, "out of memory for %zu parameters", n_params);
    net->cost = cost;
    net->sizes[0] = in.c * in.h * in.w;
    for (int l = 0; l < L; l++) {
        net->layer[l] = net->dlayer[l] = shape[l];
        net->sizes[l + 1] = shape[l].n_outw;
        net->has_conv |= shape[l].kind == NNDL_LAYER_CONV;
        net->act[l] = l == L - 1
                          ? (cost == NNDL_COST_LOG_LIKELIHOOD ? NNDL_ACT_SOFTMAX : NNDL_ACT_SIGMOID)
                      : act_hidden ? act_hidden[l]
                                   : NNDL_ACT_SIGMOID;
    }
    point_views(net->layer, net->params, L);
    point_views(net->dlayer, net->grads, L);
    *out = net;
    return NNDL_OK;
}

nndl_status nndl_net_create(nndl_net **out, const int *sizes, int n_sizes,
                            const nndl_act *act_hidden, nndl_cost cost, nndl_err *err)
{
    *out = NULL;
    if (n_sizes < 2)
        return nndl_fail(err, NNDL_EARG,
                         "a network needs at least 2 sizes (inputs and outputs), got %d", n_sizes);
    nndl_layer_spec spec[n_sizes - 1];
    for (int l = 0; l < n_sizes; l++)
        if (sizes[l] < 1 || sizes[l] > (1 << 24))
            return nndl_fail(err, NNDL_EARG, "layer size %d is out of range (1 to 16777216)",
                             sizes[l]);
    for (int l = 0; l < n_sizes - 1; l++)
        spec[l] = (nndl_layer_spec){NNDL_LAYER_DENSE, sizes[l + 1], 0, 1};
    return nndl_net_create_layers(out, (nndl_shape){sizes[0], 1, 1}, spec, n_sizes - 1, act_hidden,
                                  cost, err);
}

void nndl_net_rebind(nndl_net *net, float *params, float *grads, float **old_params,
                     float **old_grads)
{
    if (old_params) *old_params = net->params;
    if (old_grads) *old_grads = net->grads;
    net->params = params;
    net->grads = grads;
    point_views(net->layer, net->params, net->n_layers);
    point_views(net->dlayer, net->grads, net->n_layers);
}

static void free_workspace(nndl_net *net)
{
    for (int l = 0; l <= net->n_layers; l++) {
        free(net->a[l]);
        net->a[l] = NULL;
        free(net->mask[l]);
        net->mask[l] = NULL;
        if (l < net->n_layers) {
            free(net->col[l]);
            free(net->arg[l]);
            net->col[l] = NULL;
            net->arg[l] = NULL;
        }
    }
    void *bufs[] = {net->delta[0], net->delta[1], net->zout,    net->zbuf,
                    net->dcol,     net->gbuf,     net->cscratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    net->delta[0] = net->delta[1] = net->zout = net->zbuf = net->dcol = net->gbuf = NULL;
    net->cscratch = NULL;
    net->cap = 0;
}

void nndl_net_free(nndl_net *net)
{
    if (!net) return;
    if (net->a && net->mask && net->col && net->arg) free_workspace(net);
    void *owned[] = {net->a,     net->mask,   net->sizes, net->act, net->params, net->grads,
                     net->layer, net->dlayer, net->col,   net->arg, net};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) free(owned[i]);
}

/* malloc of rows x width values of size `size`; 0 on failure (width 0: nothing, success) */
static int grab(void *p, int rows, size_t width, size_t size)
{
    void **q = p;
    if (width == 0) return 1;
    *q = malloc(size * (size_t)rows * width);
    return *q != NULL;
}

nndl_status nndl_net_reserve(nndl_net *net, int rows, nndl_err *err)
{
    if (rows <= net->cap) return NNDL_OK;
    free_workspace(net);
    size_t wmax = 1, zmax = 0, cmax = 0, smax = 0;
    for (int l = 1; l <= net->n_layers; l++)
        wmax = (size_t)net->sizes[l] > wmax ? (size_t)net->sizes[l] : wmax;
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *W = &net->layer[l];
        size_t z = (size_t)W->pos * W->n_out,
               c = W->kind == NNDL_LAYER_CONV ? (size_t)W->pos * W->n_in : 0;
        size_t sc = c && nndl_conv_direct(W) ? nndl_conv_scratch_floats(W) : 0;
        /* dcolᵀ: for the input gradient of a conv layer after the first, unless direct */
        size_t dc = l > 0 && c && !nndl_conv_input_grad_direct(W) ? c : 0;
        wmax = z > wmax ? z : wmax;
        zmax = W->kind == NNDL_LAYER_CONV && z > zmax ? z : zmax;
        cmax = dc > cmax ? dc : cmax;
        smax = sc > smax ? sc : smax;
    }
    int ok = 1;
    for (int l = 1; l <= net->n_layers; l++)
        ok &= grab(&net->a[l], rows, net->sizes[l], sizeof(float));
    for (int i = 0; i < 2; i++) ok &= grab(&net->delta[i], rows, wmax, sizeof(float));
    for (int l = 1; l < net->n_layers; l++)
        if (net->layer[l - 1].kind == NNDL_LAYER_DENSE || net->layer[l].kind == NNDL_LAYER_DENSE)
            ok &= grab(&net->mask[l], rows, net->sizes[l], sizeof(float));
    ok &= grab(&net->zout, rows, net->sizes[net->n_layers], sizeof(float));
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *W = &net->layer[l];
        if (W->kind != NNDL_LAYER_CONV) continue;
        size_t in, unused;
        nndl_net_batch_widths(net, l, &unused, &unused, &in); /* no patches when direct */
        ok &= grab(&net->col[l], rows, in, sizeof(float));
        ok &= grab(&net->arg[l], rows, W->n_outw, sizeof(int32_t));
    }
    ok &=
        grab(&net->zbuf, rows, zmax, sizeof(float)) && grab(&net->dcol, rows, cmax, sizeof(float));
    ok &= grab(&net->gbuf, rows, net->has_conv ? wmax : 0, sizeof(float));
    ok &= grab(&net->cscratch, 1, smax, sizeof(float));
    if (!ok) {
        free_workspace(net);
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for a workspace of %d rows", rows);
    }
    net->cap = rows;
    return NNDL_OK;
}

void nndl_net_batch_widths(const nndl_net *net, int l, size_t *act, size_t *delta, size_t *in)
{
    const nndl_layer *W = &net->layer[l];
    *act = (size_t)net->sizes[l];
    *delta = (size_t)W->pos * W->n_out;
    *in = W->kind == NNDL_LAYER_CONV && !nndl_conv_direct(W) ? (size_t)W->pos * W->n_in : 0;
}

/* The standard deviation of layer l's weights and biases under init (network3.py's rules for
 * NNDL_INIT_NETWORK3: 0 for its softmax layer). */
static void init_scales(const nndl_net *net, int l, nndl_init init, double *ws, double *bs)
{
    const nndl_layer *L = &net->layer[l];
    *bs = 1.0;
    if (init == NNDL_INIT_STANDARD)
        *ws = 1.0;
    else if (init == NNDL_INIT_NIELSEN)
        *ws = 1.0 / sqrt((double)L->n_in);
    else if (l == net->n_layers - 1 && net->act[l] == NNDL_ACT_SOFTMAX)
        *ws = *bs = 0.0;
    else
        *ws = 1.0 /
              sqrt((double)L->n_out * (L->k ? L->k * L->k : 1) / (L->pool ? L->pool * L->pool : 1));
}

void nndl_net_init(nndl_net *net, nndl_init init, uint64_t seed)
{
    for (int l = 0; l < net->n_layers; l++) {
        nndl_layer *L = &net->layer[l];
        size_t nw = (size_t)L->n_out * L->n_in, n = nw + L->n_out; /* w then b: contiguous */
        double wscale, bscale;
        init_scales(net, l, init, &wscale, &bscale);
        for (size_t i = 0; i < n; i += 2) {
            double z[2];
            nndl_rng_normal2(seed, NNDL_STREAM_INIT, (uint32_t)l, i / 2, z);
            for (size_t k = 0; k < 2 && i + k < n; k++)
                L->w[i + k] = (float)(z[k] * (i + k < nw ? wscale : bscale));
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
static void dropout_mask_range(const nndl_dropout *d, float p, int layer, int j0, int j1, int row,
                               float *mask)
{
    const float keep = 1.0f / (1.0f - p);
    const uint64_t base = ((uint64_t)(uint32_t)d->sample[row] << 32) | ((uint64_t)layer << 24);
    for (int j = j0 & ~3; j < j1; j += 4) {
        uint32_t w[4];
        nndl_rng_block(d->seed, NNDL_STREAM_DROPOUT, d->epoch, base + (uint64_t)(j / 4), w);
        for (int k = 0; k < 4; k++)
            if (j + k >= j0 && j + k < j1) /* u in [0,1): dropped if u < p */
                mask[j + k] = (float)((double)w[k] * 0x1p-32) >= p ? keep : 0.0f;
    }
}

void nndl_dropout_mask(const nndl_dropout *d, int layer, int width, int row, float *mask)
{
    dropout_mask_range(d, d->p, layer, 0, width, row, mask);
}

/* The drop probability of weight layer l's output: --dropout on a dense layer that is not the
 * output, --dropout-conv on the last conv layer (the first dense layer's input), else 0. */
static float drop_p(const nndl_net *net, int l, const nndl_dropout *drop)
{
    if (!drop || l >= net->n_layers - 1) return 0.0f;
    if (net->layer[l].kind == NNDL_LAYER_DENSE) return drop->p;
    return net->layer[l + 1].kind == NNDL_LAYER_DENSE ? drop->p_conv : 0.0f;
}

/* The hidden layer after weight layer l takes inverted dropout. */
int net_drops(const nndl_net *net, int l, const nndl_dropout *drop)
{
    return drop_p(net, l, drop) > 0;
}

/* Rows [0, n) of out [n x width] times their dropout masks (into net->mask[l + 1]), units [j0, j1).
 */
static void apply_dropout(nndl_net *net, int l, const nndl_dropout *drop, float *out, int n,
                          int width, int j0, int j1)
{
    float *mk = net->mask[l + 1], p = drop_p(net, l, drop);
    for (int r = 0; r < n; r++) {
        float *zr = out + (size_t)r * width, *mr = mk + (size_t)r * width;
        dropout_mask_range(drop, p, l + 1, j0, j1, r, mr);
        for (int j = j0; j < j1; j++) zr[j] *= mr[j];
    }
}

/* Units [j0, j1) of dense layer l over n rows: z = in·W[j0:j1]ᵀ + b (in [n x n_in], z [n x n_out]),
 * the activation, and on hidden layers inverted dropout (mask rows follow drop->sample). */
void net_dense_forward(nndl_net *net, int l, const float *in, float *z, int n, int j0, int j1,
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
    if (net_drops(net, l, drop)) apply_dropout(net, l, drop, z, n, m, j0, j1); /* inverted */
}

/* Conv layer l over n rows: z = col·Wᵀ (net->zbuf, before pooling; direct, or from its patches in
 * col), pooled plus bias into out [n x n_outw] (the argmax into net->arg[l]), the activation. */
static void conv_forward(nndl_net *net, int l, const float *in, float *out, float *col, int n,
                         const nndl_dropout *drop)
{
    const nndl_layer *W = &net->layer[l];
    if (!nndl_conv_forward_pooled(W, in, n, out, net->arg[l])) {
        if (nndl_conv_direct(W)) {
            nndl_conv_forward(W, in, n, net->zbuf, net->cscratch);
        } else {
            nndl_im2col(W, in, n, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n * W->pos, W->n_out, W->n_in,
                        1.0f, col, W->n_in, W->w, W->n_in, 0.0f, net->zbuf, W->n_out);
        }
        nndl_pool_forward(W, net->zbuf, n, out, net->arg[l]);
    }
    activate(net->act[l], out, n, W->n_outw);
    if (net_drops(net, l, drop)) apply_dropout(net, l, drop, out, n, W->n_outw, 0, W->n_outw);
}

void net_forward_layer(nndl_net *net, int l, const float *in, float *out, float *col, int n,
                       const nndl_dropout *drop)
{
    if (net->layer[l].kind == NNDL_LAYER_CONV)
        conv_forward(net, l, in, out, col ? col : net->col[l], n, drop);
    else
        net_dense_forward(net, l, in, out, n, 0, net->sizes[l + 1], drop);
}

/* Forward x [n x sizes[0]] into a[1..L] ([n x sizes[l]] each): net->a, or a caller's batch; a conv
 * layer's patches into col[l] (net->col, or the caller's). */
const float *net_forward(nndl_net *net, const float *x, int n, const nndl_dropout *drop,
                         float *const *a, float *const *col)
{
    const float *in = x;
    for (int l = 0; l < net->n_layers; l++) {
        net_forward_layer(net, l, in, a[l + 1], col ? col[l] : NULL, n, drop);
        in = a[l + 1];
    }
    return a[net->n_layers];
}

const float *nndl_net_forward(nndl_net *net, const float *x, int n)
{
    return net_forward(net, x, n, NULL, net->a, NULL);
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
void net_output_delta(const nndl_net *net, float *delta, const float *a, const uint8_t *y, int n)
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

/* The larger of bound and layer's bound on its gradient elements, rows · max|delta| ·
 * max(max|input|, 1) over the n·pos rows of its GEMMs (dW = deltaᵀ·A, db = Σ delta; a conv layer's
 * patches hold its input's values): two scans of the (small) batch matrices; a NaN sticks. */
float net_layer_bound(float bound, const float *d, const float *ain, int n, const nndl_layer *W)
{
    return net_bound_of(bound, n * W->pos, nndl_max_abs(d, (size_t)n * W->pos * W->n_out),
                        nndl_max_abs(ain, (size_t)n * W->n_inw));
}

float net_bound_of(float bound, int rows, float md, float ma)
{
    /* a NaN input must give a NaN bound (ReLU hides it from md) */
    float lb = (float)rows * md * (ma <= 1.0f ? 1.0f : ma);
    return isnan(bound) || lb <= bound ? bound : lb;
}

/* d[0..len) ⊙= act'(a) of weight layer l's input (layer l - 1's output), through its dropout mask
 * (from element `at` of net->mask[l]) when that layer drops. */
static void times_input_derivative(const nndl_net *net, int l, float *d, const float *a, size_t at,
                                   size_t len, const nndl_dropout *drop)
{
    if (net_drops(net, l - 1, drop))
        times_dropout_derivative(net->act[l - 1], d, a, net->mask[l] + at, drop_p(net, l - 1, drop),
                                 len);
    else
        times_derivative(net->act[l - 1], d, a, len);
}

/* delta[l - 1] when layer l or l - 1 is conv: g = dC/da_l, through the patches' adjoint for a conv
 * layer l; g ⊙ act'(a_l) (⊙ --dropout-conv's mask), then routed to the positions layer l - 1's
 * pooling took (a conv layer follows only conv layers, so layer l - 1 is conv). */
static void conv_delta_prev(const nndl_net *net, int l, const float *d, float *dprev,
                            const float *a_l, int n, const nndl_dropout *drop,
                            const nndl_backprop_hooks *h)
{
    const nndl_layer *W = &net->layer[l];
    float *g = net->gbuf;
    if (W->kind == NNDL_LAYER_CONV) {
        if (!nndl_conv_input_grad(W, d, n, g, net->cscratch)) {
            /* dcolᵀ = Wᵀ·dᵀ [n_in x n·pos] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, W->n_in, n * W->pos, W->n_out, 1.0f,
                        W->w, W->n_in, d, W->n_out, 0.0f, net->dcol, n * W->pos);
            nndl_col2im(W, net->dcol, n, g);
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, W->n_in, W->n_out, 1.0f, d,
                    W->n_out, W->w, W->n_in, 0.0f, g, W->n_in);
    }
    if (h && h->progress) h->progress(h->ctx);
    net_conv_delta_tail(net, l, g, dprev, a_l, n, drop);
}

void net_conv_delta_tail(const nndl_net *net, int l, float *g, float *dprev, const float *a_l,
                         int n, const nndl_dropout *drop)
{
    times_input_derivative(net, l, g, a_l, 0, (size_t)n * net->sizes[l], drop);
    nndl_pool_backward(&net->layer[l - 1], g, net->arg[l - 1], n, dprev);
}

/* Columns [c_lo, c_hi) of dprev = (d·W_l) ⊙ act'(a_l) [n x n_in] (⊙ the dropout mask), in panels of
 * columns between which the hook's progress runs. a_l is the output of weight layer l - 1. With a
 * conv layer on either side, the whole of dprev (by the caller that asks for column 0). */
void net_delta_prev(const nndl_net *net, int l, const float *d, float *dprev, const float *a_l,
                    int n, int c_lo, int c_hi, const nndl_dropout *drop, int panel,
                    const nndl_backprop_hooks *h)
{
    const nndl_layer *W = &net->layer[l];
    if (W->kind == NNDL_LAYER_CONV || net->layer[l - 1].kind == NNDL_LAYER_CONV) {
        if (c_lo == 0) conv_delta_prev(net, l, d, dprev, a_l, n, drop, h);
        return;
    }
    int m = W->n_in;
    for (int c0 = c_lo; c0 < c_hi; c0 += panel) {
        int c1 = c0 + panel < c_hi ? c0 + panel : c_hi;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c1 - c0, W->n_out, 1.0f, d,
                    W->n_out, W->w + c0, m, 0.0f, dprev + c0, m);
        if (h && h->progress) h->progress(h->ctx);
    }
    net_delta_tail(net, l, dprev, a_l, n, c_lo, c_hi, drop);
}

void net_delta_tail(const nndl_net *net, int l, float *dprev, const float *a_l, int n, int c_lo,
                    int c_hi, const nndl_dropout *drop)
{
    int m = net->layer[l].n_in, whole = c_lo == 0 && c_hi == m;
    /* one pass over the block, or one per row of the columns */
    for (int r = 0; r < (whole ? 1 : n); r++) {
        size_t o = (size_t)r * m + c_lo, len = whole ? (size_t)n * m : (size_t)(c_hi - c_lo);
        times_input_derivative(net, l, dprev + o, a_l + o, o, len, drop);
    }
}

/* sum[j0..j1) = Σ over the k rows of d [k x n_out] (a bias gradient) */
NNDL_HOT void net_column_sums(float *sum, const float *d, int k, int n_out, int j0, int j1)
{
    for (int j = j0; j < j1; j++) sum[j] = 0.0f;
    for (int r = 0; r < k; r++)
        for (int j = j0; j < j1; j++) sum[j] += d[(size_t)r * n_out + j];
}

void net_weight_grad(const nndl_net *net, int l, const float *d, const float *gin, int n, int j0,
                     int j1, float *dw, float *db)
{
    const nndl_layer *W = &net->layer[l];
    if (W->kind == NNDL_LAYER_CONV && nndl_conv_direct(W)) {
        nndl_conv_wgrad(W, gin, d, n, j0, j1, dw, db, net->cscratch);
        return;
    }
    if (db) net_column_sums(db, d, n * W->pos, W->n_out, j0, j1);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, n * W->pos, 1.0f, d + j0,
                W->n_out, gin, W->n_in, 0.0f, dw, W->n_in);
}

/* Layer l's gradient from its delta d over n samples into net->dlayer[l]: the bias gradient, then
 * the weight gradient in panels of rows from the last, each final (the hook told) as soon as
 * written. */
static void layer_gradient(nndl_net *net, int l, const float *d, const float *gin, int n, int panel,
                           const nndl_backprop_hooks *h)
{
    const nndl_layer *W = &net->layer[l];
    nndl_layer *G = &net->dlayer[l];
    int rows = n * W->pos;
    net_column_sums(G->b, d, rows, W->n_out, 0, W->n_out);
    /* dW = deltaᵀ·A_in [n_out x n_in], summed over the rows by the GEMM itself */
    for (int j1 = W->n_out; j1 > 0; j1 -= panel) {
        int j0 = j1 - panel > 0 ? j1 - panel : 0;
        net_weight_grad(net, l, d, gin, n, j0, j1, G->w + (size_t)j0 * W->n_in, NULL);
        if (h && h->ready) h->ready(h->ctx, (size_t)(G->w + (size_t)j0 * W->n_in - net->grads));
    }
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
    drop = net_dropping(drop);
    const float *out = net_forward(net, x, n, drop, net->a, NULL);
    double cost = nndl_net_cost(net, out, net->zout, y, n);
    float *d = net->delta[0], *dprev = net->delta[1];
    net_output_delta(net, d, out, y, n);
    net->grads[net->n_params + NNDL_EXTRA_COST] = (float)cost;
    const nndl_backprop_hooks *h = net->hooks;
    int panel = h && h->panel > 0 ? h->panel : 1 << 30;
    float bound = 0.0f;
    for (int l = L - 1; l >= 0; l--) {
        const float *ain = l == 0 ? x : net->a[l];
        bound = net_layer_bound(bound, d, ain, n, &net->layer[l]);
        layer_gradient(net, l, d, net->col[l] ? net->col[l] : ain, n, panel, h);
        if (l == 0) break;
        net_delta_prev(net, l, d, dprev, net->a[l], n, 0, net->sizes[l], drop, panel, h);
        float *t = d;
        d = dprev;
        dprev = t;
    }
    net->grads[net->n_params + NNDL_EXTRA_BOUND] = bound;
    net->grads[net->n_params + NNDL_EXTRA_COST] = (float)cost;
    return cost;
}

/* ---- evaluation ---- */

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
