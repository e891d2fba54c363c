/* Conv and conv-pool layers: backprop against central finite differences of an independent
 * double-precision forward pass written with plain loops (direct convolution, max-pooling), for
 * every activation and cost, with L2; the fused step (deltas kept, the update inside the GEMM,
 * split by units) against backprop + nndl_sgd_step; bad layer specs. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/fixed.h"
#include "nndl/net.h"
#include "nndl/optim.h"
#include "nndl/rng.h"

#include "conv.h" /* the direct kernels, against plain loops */

#define ROWS 3
#define MAXV 512

static double act_d(nndl_act a, double z)
{
    return a == NNDL_ACT_SIGMOID ? 1.0 / (1.0 + exp(-z))
           : a == NNDL_ACT_TANH  ? tanh(z)
           : z > 0               ? z
                                 : 0;
}

/* One conv layer on one sample: in [C x H x W] -> out [F x Ho/p x Wo/p] (bias after the max, then
 * the activation), as network3.py computes it. */
static void conv_ref(const nndl_layer *L, nndl_act act, const double *w, const double *in,
                     double *out)
{
    int F = L->n_out, p = L->pool, hp = L->ho / p, wp = L->wo / p;
    for (int f = 0; f < F; f++)
        for (int py = 0; py < hp; py++)
            for (int px = 0; px < wp; px++) {
                double best = -INFINITY;
                for (int oy = py * p; oy < py * p + p; oy++)
                    for (int ox = px * p; ox < px * p + p; ox++) {
                        double z = 0;
                        for (int c = 0; c < L->c; c++)
                            for (int ky = 0; ky < L->k; ky++)
                                for (int kx = 0; kx < L->k; kx++)
                                    z += w[((f * L->c + c) * L->k + ky) * L->k + kx] *
                                         in[(c * L->h + oy + ky) * L->wd + ox + kx];
                        best = fmax(best, z);
                    }
                double b = w[(size_t)F * L->n_in + f];
                out[(f * hp + py) * wp + px] = act_d(act, best + b);
            }
}

/* Inverted dropout of weight layer l's output for row r, as nndl applies it: --dropout (drop->p) on
 * hidden dense layers, --dropout-conv (drop->p_conv) on the last conv layer. */
static void drop_ref(const nndl_net *net, const nndl_dropout *drop, int l, int r, double *a)
{
    if (!drop || l == net->n_layers - 1) return;
    int conv = net->layer[l].kind == NNDL_LAYER_CONV;
    if (conv && net->layer[l + 1].kind == NNDL_LAYER_CONV) return;
    nndl_dropout d = *drop;
    d.p = conv ? drop->p_conv : drop->p;
    if (!(d.p > 0)) return;
    float mask[MAXV];
    nndl_dropout_mask(&d, l + 1, net->sizes[l + 1], r, mask);
    for (int j = 0; j < net->sizes[l + 1]; j++) a[j] *= mask[j];
}

static double cost_ref(const nndl_net *net, const double *p, const float *x, const uint8_t *y,
                       const nndl_dropout *drop)
{
    double total = 0;
    for (int r = 0; r < ROWS; r++) {
        double a[MAXV], z[MAXV];
        for (int i = 0; i < net->sizes[0]; i++) a[i] = x[r * net->sizes[0] + i];
        const double *q = p;
        for (int l = 0; l < net->n_layers; l++) {
            const nndl_layer *L = &net->layer[l];
            int no = net->sizes[l + 1];
            if (L->kind == NNDL_LAYER_CONV) {
                conv_ref(L, net->act[l], q, a, z);
                memcpy(a, z, sizeof(double) * no);
            } else {
                for (int j = 0; j < no; j++) {
                    z[j] = q[(size_t)no * L->n_in + j];
                    for (int i = 0; i < L->n_in; i++) z[j] += q[(size_t)j * L->n_in + i] * a[i];
                }
                if (net->act[l] == NNDL_ACT_SOFTMAX) {
                    double m = z[0], s = 0;
                    for (int j = 1; j < no; j++) m = fmax(m, z[j]);
                    for (int j = 0; j < no; j++) s += exp(z[j] - m);
                    for (int j = 0; j < no; j++) a[j] = exp(z[j] - m) / s;
                } else {
                    for (int j = 0; j < no; j++) a[j] = act_d(net->act[l], z[j]);
                }
            }
            drop_ref(net, drop, l, r, a);
            q += (size_t)L->n_out * (L->n_in + 1);
        }
        for (int j = 0; j < net->sizes[net->n_layers]; j++) {
            double t = j == y[r];
            if (net->cost == NNDL_COST_QUADRATIC)
                total += 0.5 * (a[j] - t) * (a[j] - t);
            else if (net->cost == NNDL_COST_CROSS_ENTROPY)
                total -= t ? log(a[j]) : log(1 - a[j]);
            else if (t)
                total -= log(a[j]);
        }
    }
    return total;
}

static nndl_net *make(nndl_shape in, const nndl_layer_spec *spec, int n, nndl_act act,
                      nndl_cost cost, uint64_t seed, float *x, uint8_t *y)
{
    nndl_err err;
    nndl_net *net;
    nndl_act acts[8] = {act, act, act, act, act, act, act, act};
    cr_assert(eq(int, nndl_net_create_layers(&net, in, spec, n, acts, cost, &err), NNDL_OK), "%s",
              err.msg);
    cr_assert(eq(int, nndl_net_reserve(net, ROWS, &err), NNDL_OK));
    nndl_net_init(net, NNDL_INIT_NIELSEN, seed);
    int d = net->sizes[0];
    for (int i = 0; i < ROWS * d; i += 2) {
        double u[2];
        nndl_rng_uniform2(seed, 99, 0, (uint64_t)i, u);
        x[i] = (float)u[0];
        if (i + 1 < ROWS * d) x[i + 1] = (float)u[1];
    }
    for (int r = 0; r < ROWS; r++) y[r] = (uint8_t)((r * 7 + seed) % net->sizes[n]);
    return net;
}

/* ---- gradients against finite differences (with the L2 term the step follows) ---- */

static void gradcheck(nndl_shape in, const nndl_layer_spec *spec, int n, nndl_act act,
                      nndl_cost cost, uint64_t seed, const nndl_dropout *drop)
{
    float x[ROWS * MAXV];
    uint8_t y[ROWS];
    nndl_net *net = make(in, spec, n, act, cost, seed, x, y);
    double c = nndl_net_backprop(net, x, y, ROWS, drop);
    size_t np = net->n_params;
    double *p = malloc(sizeof(double) * np);
    for (size_t i = 0; i < np; i++) p[i] = net->params[i];
    double ref = cost_ref(net, p, x, y, drop);
    cr_expect(lt(dbl, fabs(c - ref), 1e-5 * fabs(ref) + 1e-6), "backprop's cost %g, reference %g",
              c, ref);
    float gmax = 0.0f, bound = net->grads[np + NNDL_EXTRA_BOUND];
    for (size_t i = 0; i < np; i++) gmax = fmaxf(gmax, fabsf(net->grads[i]));
    cr_expect(gmax <= bound && bound < 1e30f, "the bound %g covers every |gradient| (max %g)",
              bound, gmax);
    /* the gradient the step follows: the mean over the rows plus the L2 term (l2 / n) w on weights
     */
    nndl_sgd o;
    nndl_err err;
    const double l2 = 0.7, n_train = 5;
    cr_assert(eq(int, nndl_sgd_init(&o, net, 0.1, 0.0, l2, 0.0, (long)n_train, &err), NNDL_OK));
    float *g = malloc(sizeof(float) * np);
    nndl_sgd_gradient(&o, net, ROWS, g);
    const double h = 1e-6;
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        double keep = p[i], pen[2];
        for (int s = 0; s < 2; s++) {
            p[i] = keep + (s ? -h : h);
            double w2 = 0;
            size_t off = 0;
            for (int l = 0; l < net->n_layers; l++) { /* weights only, not biases */
                size_t nw = (size_t)net->layer[l].n_out * net->layer[l].n_in;
                for (size_t k = 0; k < nw; k++) w2 += p[off + k] * p[off + k];
                off += nw + net->layer[l].n_out;
            }
            pen[s] = cost_ref(net, p, x, y, drop) / ROWS + l2 / (2 * n_train) * w2;
        }
        p[i] = keep;
        double num = (pen[0] - pen[1]) / (2 * h),
               rel = fabs(num - g[i]) / fmax(1e-3, fabs(num) + fabs(g[i]));
        if (rel > 1e-3) {
            bad++;
            cr_log_info("%s/%s param %zu: backprop %g, finite difference %g", nndl_act_name(act),
                        nndl_cost_name(cost), i, g[i], num);
        }
    }
    cr_expect(eq(int, bad, 0), "%s, %s: %d of %zu gradients disagree", nndl_act_name(act),
              nndl_cost_name(cost), bad, np);
    free(g);
    free(p);
    nndl_sgd_free(&o);
    nndl_net_free(net);
}

/* conv 3 filters 3x3 on 1x6x6, pool 2x2 -> 3x2x2, dense 4 */
static const nndl_layer_spec conv_pool[] = {{NNDL_LAYER_CONV, 3, 3, 2},
                                            {NNDL_LAYER_DENSE, 4, 0, 1}};
/* two conv-pool layers, then a hidden dense layer (the book's shape, small): 1x9x9 -> 2x4x4 ->
 * 3x2x2 */
static const nndl_layer_spec two_conv[] = {{NNDL_LAYER_CONV, 2, 2, 2},
                                           {NNDL_LAYER_CONV, 3, 3, 1},
                                           {NNDL_LAYER_DENSE, 5, 0, 1},
                                           {NNDL_LAYER_DENSE, 3, 0, 1}};

/* pool 3x3 (the general pooling path; 2x2 has its own): conv 2 filters 2x2 on 2x7x7 -> 2x6x6 ->
 * 2x2x2, conv 2 filters 2x2 (the delta routed through the first layer's pooling), dense 3 */
static const nndl_layer_spec pool3[] = {
    {NNDL_LAYER_CONV, 2, 2, 3}, {NNDL_LAYER_CONV, 2, 2, 1}, {NNDL_LAYER_DENSE, 3, 0, 1}};

/* an input row wider than 16 into the second conv layer (its col2im in more than one vector of
 * 16): conv 1 filter 2x2 on 1x21x21 -> 1x20x20, conv 2 filters 3x3 -> 2x18x18, pool 2 -> 2x9x9 */
static const nndl_layer_spec wide[] = {
    {NNDL_LAYER_CONV, 1, 2, 1}, {NNDL_LAYER_CONV, 2, 3, 2}, {NNDL_LAYER_DENSE, 3, 0, 1}};

/* more filters than a vector of 16 (the AVX-512 pooling's masked tail, col2im over 18 input
 * channels): conv 18 filters 3x3 on 1x8x8 -> 18x6x6, pool 2 -> 18x3x3, conv 17 filters 2x2 */
static const nndl_layer_spec many[] = {
    {NNDL_LAYER_CONV, 18, 3, 2}, {NNDL_LAYER_CONV, 17, 2, 1}, {NNDL_LAYER_DENSE, 3, 0, 1}};

static void all_costs(nndl_act act)
{
    const nndl_cost costs[] = {NNDL_COST_QUADRATIC, NNDL_COST_CROSS_ENTROPY,
                               NNDL_COST_LOG_LIKELIHOOD};
    /* with --dropout and --dropout-conv: the gradient of the masked net */
    static const int samples[ROWS] = {17, 4, 923};
    const nndl_dropout drop = {0.3f, 11, 2, samples, 0.4f};
    for (int c = 0; c < 3; c++) {
        gradcheck((nndl_shape){1, 6, 6}, conv_pool, 2, act, costs[c], 21 + c, NULL);
        gradcheck((nndl_shape){1, 9, 9}, two_conv, 4, act, costs[c], 31 + c, NULL);
        gradcheck((nndl_shape){2, 7, 7}, pool3, 3, act, costs[c], 51 + c, NULL);
        /* (seed 61 put two of a pool cell's values within the finite-difference step of each other
         * for sigmoid/log-likelihood, where the max has no derivative: the Debug build picked the
         * other winner and disagreed by 1e-3; with 101 every gradient is within 1e-4 in both) */
        gradcheck((nndl_shape){1, 21, 21}, wide, 3, act, costs[c], 101 + c, NULL);
        gradcheck((nndl_shape){1, 8, 8}, many, 3, act, costs[c], 111 + c, NULL);
        gradcheck((nndl_shape){1, 9, 9}, two_conv, 4, act, costs[c], 71 + c, &drop);
        gradcheck((nndl_shape){1, 6, 6}, conv_pool, 2, act, costs[c], 81 + c, &drop);
    }
}

Test(conv_grad, sigmoid) { all_costs(NNDL_ACT_SIGMOID); }
Test(conv_grad, tanh) { all_costs(NNDL_ACT_TANH); }
Test(conv_grad, relu) { all_costs(NNDL_ACT_RELU); }

/* ---- the fused step on conv layers ---- */

/* The conv gradients of `parts` ranks' rows, each into its slot (as the node-shared step does). */
static float *conv_slots(const nndl_net *net, const nndl_batch *b, int parts)
{
    size_t stride = nndl_net_conv_grad_floats(net);
    float *g = malloc(sizeof(float) * stride * parts);
    for (int k = 0; k < parts; k++) {
        int r0 = ROWS * k / parts, r1 = ROWS * (k + 1) / parts;
        float *act[9], *delta[8], *in[8];
        for (int l = 0; l < net->n_layers; l++) {
            size_t a, d, c;
            nndl_net_batch_widths(net, l, &a, &d, &c);
            act[l] = b->act[l] + (size_t)r0 * net->sizes[l];
            delta[l] = b->delta[l] + (size_t)r0 * d;
            in[l] = b->in[l] ? b->in[l] + (size_t)r0 * c : NULL;
        }
        nndl_batch mine = {act, delta, in};
        nndl_net_conv_grads(net, &mine, r1 - r0, g + stride * k);
    }
    return g;
}

/* Two fused steps (deltas of the whole batch; each of `parts` parts updated in turn; with slots,
 * the conv layers from each part's rows' gradient) from the net's parameters p0; return how many
 * parameters (and velocities) differ from ref (and vref). */
static int fused_off(nndl_net *net, nndl_sgd *o, const float *x, const uint8_t *y, const float *p0,
                     const float *ref, const float *vref, int parts, int slots, float tol)
{
    int L = net->n_layers;
    float *act[9], *delta[8], *in[8];
    for (int l = 0; l <= L; l++) act[l] = malloc(sizeof(float) * ROWS * net->sizes[l]);
    for (int l = 0; l < L; l++) {
        size_t a, d, c;
        nndl_net_batch_widths(net, l, &a, &d, &c);
        delta[l] = malloc(sizeof(float) * ROWS * d);
        in[l] = c ? malloc(sizeof(float) * ROWS * c) : NULL;
    }
    nndl_batch b = {act, delta, in};
    memcpy(act[0], x, sizeof(float) * ROWS * net->sizes[0]);
    memcpy(net->params, p0, sizeof(float) * net->n_params);
    if (o->velocity) memset(o->velocity, 0, sizeof(float) * net->n_params);
    for (int s = 0; s < 2; s++) {
        float bound;
        nndl_net_deltas(net, &b, y, ROWS, NULL, &bound);
        nndl_fused u;
        cr_assert(nndl_sgd_fused(o, ROWS, &u));
        for (int k = 0; k < parts; k++)
            cr_expect(eq(int, nndl_net_part_nonfinite(net, &b, ROWS, k, parts), 0));
        float *g = slots ? conv_slots(net, &b, parts) : NULL;
        u.conv_g = g;
        u.conv_slots = parts;
        for (int k = 0; k < parts; k++) nndl_net_update_part(net, &b, ROWS, k, parts, &u);
        free(g);
    }
    int off = 0;
    for (size_t i = 0; i < net->n_params; i++) {
        off += fabsf(net->params[i] - ref[i]) > tol + 16 * FLT_EPSILON * fabsf(p0[i]);
        if (o->velocity)
            off += fabsf(o->velocity[i] - vref[i]) > tol + 16 * FLT_EPSILON * fabsf(p0[i]);
    }
    for (int l = 0; l <= L; l++) free(act[l]);
    for (int l = 0; l < L; l++) {
        free(delta[l]);
        free(in[l]);
    }
    return off;
}

static void fused_matches(nndl_act act, double mu)
{
    float x[ROWS * MAXV];
    uint8_t y[ROWS];
    nndl_err err;
    nndl_net *net =
        make((nndl_shape){1, 9, 9}, two_conv, 4, act, NNDL_COST_LOG_LIKELIHOOD, 41, x, y);
    size_t np = net->n_params;
    nndl_sgd o;
    cr_assert(eq(int, nndl_sgd_init(&o, net, 0.3, 0.2, 0.7, mu, 5, &err), NNDL_OK));
    float *p0 = malloc(sizeof(float) * np), *ref = malloc(sizeof(float) * np),
          *vref = calloc(np, sizeof(float));
    memcpy(p0, net->params, sizeof(float) * np);
    float gmax = 0.0f;
    for (int s = 0; s < 2; s++) {
        nndl_net_backprop(net, x, y, ROWS, NULL);
        gmax = fmaxf(gmax, nndl_max_abs(net->grads, np));
        nndl_sgd_step(&o, net, ROWS);
    }
    memcpy(ref, net->params, sizeof(float) * np);
    if (o.velocity) memcpy(vref, o.velocity, sizeof(float) * np);
    for (int parts = 1; parts <= 3; parts++)
        for (int slots = 0; slots <= 1; slots++)
            cr_expect(eq(int,
                         fused_off(net, &o, x, y, p0, ref, vref, parts, slots, 1e-5f * 0.3f * gmax),
                         0),
                      "%s momentum %g, %d parts%s: the fused step differs from backprop + step",
                      nndl_act_name(act), mu, parts, slots ? ", conv gradients by rows" : "");
    free(p0);
    free(ref);
    free(vref);
    nndl_sgd_free(&o);
    nndl_net_free(net);
}

/* ---- the direct kernels (AVX-512) against plain double loops ---- */

/* z = the layer's convolution of x (ROWS samples) and dW[j0, F) = Σ d ⊗ patches, by
 * nndl_conv_forward and nndl_conv_wgrad, each element within 1e-5 of the sum of its terms' sizes.
 */
static void direct_check(nndl_shape in, int F, int k, uint64_t seed)
{
    const nndl_layer_spec spec[] = {{NNDL_LAYER_CONV, F, k, 1}, {NNDL_LAYER_DENSE, 3, 0, 1}};
    size_t d_in = (size_t)in.c * in.h * in.w;
    float *x = malloc(sizeof(float) * ROWS * d_in);
    uint8_t y[ROWS];
    nndl_net *net = make(in, spec, 2, NNDL_ACT_SIGMOID, NNDL_COST_QUADRATIC, seed, x, y);
    const nndl_layer *L = &net->layer[0];
    cr_assert(nndl_conv_direct(L), "this machine has AVX-512 (checked by the caller)");
    size_t rows = (size_t)ROWS * L->pos, nz = rows * F, nw = (size_t)F * L->n_in;
    float *z = malloc(sizeof(float) * nz), *d = malloc(sizeof(float) * nz);
    float *dw = malloc(sizeof(float) * nw),
          *scratch = malloc(sizeof(float) * nndl_conv_scratch_floats(L));
    for (size_t i = 0; i < nz; i++) d[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    int j0 = F > 1 ? 1 : 0; /* a range of filters that does not start at 0 */
    nndl_conv_forward(L, x, ROWS, z, scratch);
    float *db = malloc(sizeof(float) * F);
    nndl_conv_wgrad(L, x, d, ROWS, j0, F, dw, db, scratch);
    for (int f = j0; f < F; f++) { /* the bias gradient: the column sums of d, in row order */
        float sum = 0.0f;
        for (size_t r = 0; r < rows; r++) sum += d[r * F + f];
        cr_assert(eq(flt, db[f], sum), "db[%d] = %g, expected %g (F %d)", f, db[f], sum, F);
    }
    free(db);
    const int hw = in.h * in.w;
    for (int f = 0; f < F; f++)
        for (int t = 0; t < L->n_in; t++) { /* dW[f][t] */
            int c = t / (k * k), ky = t / k % k, kx = t % k;
            double sum = 0, size = 0;
            for (size_t r = 0; r < rows; r++) {
                int s = (int)(r / L->pos), p = (int)(r % L->pos), oy = p / L->wo, ox = p % L->wo;
                double term = (double)d[r * F + f] *
                              x[(size_t)s * d_in + (size_t)c * hw + (oy + ky) * in.w + ox + kx];
                sum += term;
                size += fabs(term);
            }
            if (f >= j0)
                cr_assert(fabs(dw[(size_t)(f - j0) * L->n_in + t] - sum) <= 1e-5 * size + 1e-7,
                          "dW[%d][%d] = %g, expected %g (%dx%dx%d, F %d, k %d)", f, t,
                          dw[(size_t)(f - j0) * L->n_in + t], sum, in.c, in.h, in.w, F, k);
        }
    for (size_t r = 0; r < rows; r++)
        for (int f = 0; f < F; f++) { /* z[r][f] */
            int s = (int)(r / L->pos), p = (int)(r % L->pos), oy = p / L->wo, ox = p % L->wo;
            double sum = 0, size = 0;
            for (int t = 0; t < L->n_in; t++) {
                int c = t / (k * k), ky = t / k % k, kx = t % k;
                double term = (double)L->w[(size_t)f * L->n_in + t] *
                              x[(size_t)s * d_in + (size_t)c * hw + (oy + ky) * in.w + ox + kx];
                sum += term;
                size += fabs(term);
            }
            cr_assert(fabs(z[r * F + f] - sum) <= 1e-5 * size + 1e-7,
                      "z[%zu][%d] = %g, expected %g (%dx%dx%d, F %d, k %d)", r, f, z[r * F + f],
                      sum, in.c, in.h, in.w, F, k);
        }
    free(scratch);
    free(dw);
    free(d);
    free(z);
    free(x);
    nndl_net_free(net);
}

/* The pooled kernel (positions as lanes, pooling in registers) against the direct forward and
 * nndl_pool_forward: the same outputs and argmaxes, bit for bit; with zero weights every cell is a
 * four-way tie, which the first position in row order must win. */
static void pooled_check(nndl_shape in, int F, int k, int zero)
{
    const nndl_layer_spec spec[] = {{NNDL_LAYER_CONV, F, k, 2}, {NNDL_LAYER_DENSE, 3, 0, 1}};
    float *x = malloc(sizeof(float) * ROWS * in.c * in.h * in.w);
    uint8_t y[ROWS];
    nndl_net *net = make(in, spec, 2, NNDL_ACT_SIGMOID, NNDL_COST_QUADRATIC, 7, x, y);
    nndl_layer *L = &net->layer[0];
    if (zero) memset(L->w, 0, sizeof(float) * L->n_out * L->n_in);
    size_t nout = (size_t)ROWS * L->n_outw;
    float *o1 = malloc(sizeof(float) * nout), *o2 = malloc(sizeof(float) * nout);
    float *z = malloc(sizeof(float) * ROWS * L->pos * F);
    float *scratch = malloc(sizeof(float) * nndl_conv_scratch_floats(L));
    int32_t *a1 = malloc(sizeof(int32_t) * nout), *a2 = malloc(sizeof(int32_t) * nout);
    cr_assert(nndl_conv_forward_pooled(L, x, ROWS, o1, a1), "%dx%d rows take the pooled kernel",
              L->ho, L->wo);
    nndl_conv_forward(L, x, ROWS, z, scratch);
    nndl_pool_forward(L, z, ROWS, o2, a2);
    for (size_t i = 0; i < nout; i++) {
        cr_assert(eq(flt, o1[i], o2[i]), "out[%zu] %g != %g (F %d, k %d)", i, o1[i], o2[i], F, k);
        cr_assert(eq(i32, a1[i], a2[i]), "arg[%zu] %d != %d (F %d, k %d)", i, a1[i], a2[i], F, k);
        if (zero) { /* the cell's top-left position */
            int cell = (int)(i % (size_t)(L->n_outw / F)), wp = L->wo / 2;
            cr_assert(eq(i32, a1[i], cell / wp * 2 * L->wo + cell % wp * 2));
        }
    }
    free(a2);
    free(a1);
    free(scratch);
    free(z);
    free(o2);
    free(o1);
    free(x);
    nndl_net_free(net);
}

/* The input gradient without dcolᵀ against plain double loops (each g within 1e-5 of the sum of
 * its terms' sizes); `serves` says whether the layer fits the kernel (else it must decline). */
static void input_grad_check(nndl_shape in, int F, int k, int serves)
{
    const nndl_layer_spec spec[] = {{NNDL_LAYER_CONV, F, k, 1}, {NNDL_LAYER_DENSE, 3, 0, 1}};
    size_t d_in = (size_t)in.c * in.h * in.w;
    float *x = malloc(sizeof(float) * ROWS * d_in);
    uint8_t y[ROWS];
    nndl_net *net = make(in, spec, 2, NNDL_ACT_SIGMOID, NNDL_COST_QUADRATIC, 11, x, y);
    const nndl_layer *L = &net->layer[0];
    size_t nd = (size_t)ROWS * L->pos * F;
    float *d = malloc(sizeof(float) * nd), *g = malloc(sizeof(float) * ROWS * d_in);
    float *scratch = malloc(sizeof(float) * nndl_conv_scratch_floats(L));
    for (size_t i = 0; i < nd; i++) d[i] = (float)((i * 2246822519u) % 1000) / 500.0f - 1.0f;
    int did = nndl_conv_input_grad(L, d, ROWS, g, scratch);
    cr_assert(eq(int, did, serves), "%dx%dx%d, F %d, k %d: served %d", in.c, in.h, in.w, F, k, did);
    for (size_t i = 0; did && i < ROWS * d_in; i++) {
        int s = (int)(i / d_in), c = (int)(i % d_in) / (in.h * in.w);
        int yy = (int)(i % (size_t)(in.h * in.w)) / in.w, xx = (int)(i % (size_t)in.w);
        double sum = 0, size = 0;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                int oy = yy - ky, ox = xx - kx;
                if (oy < 0 || oy >= L->ho || ox < 0 || ox >= L->wo) continue;
                for (int f = 0; f < F; f++) {
                    double term = (double)L->w[(size_t)f * L->n_in + (c * k + ky) * k + kx] *
                                  d[((size_t)s * L->pos + (size_t)oy * L->wo + ox) * F + f];
                    sum += term;
                    size += fabs(term);
                }
            }
        cr_assert(fabs(g[i] - sum) <= 1e-5 * size + 1e-7, "g[%zu] = %g, expected %g (F %d, k %d)",
                  i, g[i], sum, F, k);
    }
    free(scratch);
    free(g);
    free(d);
    free(x);
    nndl_net_free(net);
}

Test(conv_direct, equals_plain_loops)
{
    const nndl_layer_spec probe[] = {{NNDL_LAYER_CONV, 1, 5, 1}, {NNDL_LAYER_DENSE, 3, 0, 1}};
    nndl_err err;
    nndl_net *net;
    cr_assert(eq(int,
                 nndl_net_create_layers(&net, (nndl_shape){1, 28, 28}, probe, 2, NULL,
                                        NNDL_COST_QUADRATIC, &err),
                 NNDL_OK));
    int direct = nndl_conv_direct(&net->layer[0]);
    nndl_net_free(net);
    /* without AVX-512 (or in the sanitizer and clang builds) every conv layer takes im2col + GEMM,
     * which the gradient checks cover: nothing here to check */
    if (!direct) return;
    direct_check((nndl_shape){1, 28, 28}, 20, 5, 1);  /* the book's first layer: 3 blocks of 8 */
    direct_check((nndl_shape){20, 12, 12}, 40, 5, 2); /* its second: 3 vectors of filters */
    direct_check((nndl_shape){3, 13, 11}, 50, 3, 3);  /* two blocks of filters, 1 + 1 vector */
    direct_check((nndl_shape){2, 9, 10}, 17, 8, 4);   /* k 8, positions one at a time */
    direct_check((nndl_shape){1, 20, 20}, 33, 1, 5);  /* k 1 */
    pooled_check((nndl_shape){1, 28, 28}, 20, 5, 0);  /* the book's first layer: rows of 24 */
    pooled_check((nndl_shape){2, 21, 21}, 7, 4, 0);   /* rows of 18, filters 5 + 2 */
    pooled_check((nndl_shape){1, 33, 33}, 3, 2, 0);   /* rows of 32 */
    pooled_check((nndl_shape){1, 28, 28}, 20, 5, 1);  /* ties */
    input_grad_check((nndl_shape){20, 12, 12}, 40, 5, 1); /* the book's second layer */
    input_grad_check((nndl_shape){3, 9, 11}, 7, 3, 1);    /* 63 positions in 4 vectors */
    input_grad_check((nndl_shape){2, 6, 6}, 17, 2, 1);    /* 25 positions */
    input_grad_check((nndl_shape){1, 20, 20}, 3, 8, 0);   /* 169 positions: declined */
}

Test(conv_fused, equals_backprop_then_step)
{
    const nndl_act acts[] = {NNDL_ACT_SIGMOID, NNDL_ACT_TANH, NNDL_ACT_RELU};
    for (int a = 0; a < 3; a++) {
        fused_matches(acts[a], 0.0);
        fused_matches(acts[a], 0.9);
    }
}

/* ---- shapes and bad specs ---- */

Test(conv_shape, the_books_net)
{
    nndl_layer_spec s[] = {{NNDL_LAYER_CONV, 20, 5, 2},
                           {NNDL_LAYER_CONV, 40, 5, 2},
                           {NNDL_LAYER_DENSE, 100, 0, 1},
                           {NNDL_LAYER_DENSE, 10, 0, 1}};
    nndl_net *net;
    nndl_err err;
    cr_assert(eq(int,
                 nndl_net_create_layers(&net, (nndl_shape){1, 28, 28}, s, 4, NULL,
                                        NNDL_COST_LOG_LIKELIHOOD, &err),
                 NNDL_OK));
    int want[] = {784, 20 * 12 * 12, 40 * 4 * 4, 100, 10};
    for (int l = 0; l <= 4; l++) cr_expect(eq(int, net->sizes[l], want[l]), "sizes[%d]", l);
    cr_expect(eq(int, net->layer[1].n_in, 20 * 25), "conv 2 reads 20 channels x 5 x 5");
    cr_expect(eq(sz, net->n_params, (size_t)20 * 26 + 40 * 501 + 100 * 641 + 10 * 101));
    nndl_net_free(net);
}

Test(conv_shape, bad_specs_name_the_layer)
{
    struct {
        nndl_layer_spec s[2];
        int n;
        const char *msg;
    } bad[] = {
        {{{NNDL_LAYER_CONV, 4, 30, 1}, {NNDL_LAYER_DENSE, 10, 0, 1}},
         2,
         "kernel is larger than its 28x28 input"},
        {{{NNDL_LAYER_CONV, 4, 5, 5}, {NNDL_LAYER_DENSE, 10, 0, 1}},
         2,
         "pool 5x5 does not divide the 24x24"},
        {{{NNDL_LAYER_DENSE, 30, 0, 1}, {NNDL_LAYER_CONV, 4, 3, 1}}, 2, "not a dense one"},
        {{{NNDL_LAYER_CONV, 0, 5, 1}, {NNDL_LAYER_DENSE, 10, 0, 1}},
         2,
         "0 filters is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nndl_net *net = NULL;
        nndl_err err = {0};
        cr_expect(eq(int,
                     nndl_net_create_layers(&net, (nndl_shape){1, 28, 28}, bad[i].s, bad[i].n, NULL,
                                            NNDL_COST_LOG_LIKELIHOOD, &err),
                     NNDL_EARG));
        cr_expect(strstr(err.msg, bad[i].msg) != NULL, "'%s' should say '%s'", err.msg, bad[i].msg);
    }
}
