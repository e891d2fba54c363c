/* Backprop against central finite differences, for every cost x hidden activation, several depths.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/fixed.h"
#include "nndl/net.h"
#include "nndl/optim.h"
#include "nndl/rng.h"

#define ROWS 4

/* An independent reference: the summed cost of the batch in double precision, by plain loops
 * over the parameters as stored (w row-major [n_out x n_in], then b). Finite differences of this
 * have no float32 rounding noise, so h can be small enough not to straddle ReLU's kink. */
static double act_d(nndl_act a, double z)
{
    return a == NNDL_ACT_SIGMOID ? 1.0 / (1.0 + exp(-z))
           : a == NNDL_ACT_TANH  ? tanh(z)
           : z > 0               ? z
                                 : 0;
}

static double cost_ref(const nndl_net *net, const double *p, const float *x, const uint8_t *y)
{
    double total = 0;
    for (int r = 0; r < ROWS; r++) {
        double a[16], z[16];
        int n = net->sizes[0];
        for (int i = 0; i < n; i++) a[i] = x[r * n + i];
        const double *q = p;
        for (int l = 0; l < net->n_layers; l++) {
            int ni = net->sizes[l], no = net->sizes[l + 1];
            for (int j = 0; j < no; j++) {
                z[j] = q[(size_t)no * ni + j];
                for (int i = 0; i < ni; i++) z[j] += q[(size_t)j * ni + i] * a[i];
            }
            q += (size_t)no * (ni + 1);
            if (net->act[l] == NNDL_ACT_SOFTMAX) {
                double m = z[0], s = 0;
                for (int j = 1; j < no; j++) m = fmax(m, z[j]);
                for (int j = 0; j < no; j++) s += exp(z[j] - m);
                for (int j = 0; j < no; j++) a[j] = exp(z[j] - m) / s;
            } else {
                for (int j = 0; j < no; j++) a[j] = act_d(net->act[l], z[j]);
            }
        }
        int m = net->sizes[net->n_layers];
        for (int j = 0; j < m; j++) {
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

static void gradcheck(const int *sizes, int n_sizes, nndl_act act, nndl_cost cost, uint64_t seed)
{
    nndl_err err;
    nndl_net *net;
    nndl_act acts[8];
    for (int i = 0; i < 8; i++) acts[i] = act;
    cr_assert(eq(int, nndl_net_create(&net, sizes, n_sizes, acts, cost, &err), NNDL_OK));
    cr_assert(eq(int, nndl_net_reserve(net, ROWS, &err), NNDL_OK));
    nndl_net_init(net, NNDL_INIT_NIELSEN, seed);
    float x[ROWS * 16];
    uint8_t y[ROWS];
    for (int i = 0; i < ROWS * sizes[0]; i += 2) {
        double u[2];
        nndl_rng_uniform2(seed, 99, 0, (uint64_t)i, u);
        x[i] = (float)u[0];
        x[i + 1] = (float)u[1];
    }
    for (int r = 0; r < ROWS; r++) y[r] = (uint8_t)((r * 7 + seed) % sizes[n_sizes - 1]);
    double c = nndl_net_backprop(net, x, y, ROWS, NULL);
    double *p = malloc(sizeof(double) * net->n_params);
    for (size_t i = 0; i < net->n_params; i++) p[i] = net->params[i];
    double ref = cost_ref(net, p, x, y);
    cr_expect(lt(dbl, fabs(c - ref), 1e-5 * fabs(ref) + 1e-6), "backprop's cost %g, reference %g",
              c, ref);
    cr_expect(eq(flt, net->grads[net->n_params], (float)c),
              "the cost rides in the gradient's tail");
    float gmax = 0.0f, bound = net->grads[net->n_params + NNDL_EXTRA_BOUND];
    for (size_t i = 0; i < net->n_params; i++) gmax = fmaxf(gmax, fabsf(net->grads[i]));
    cr_expect(gmax <= bound && bound < 1e30f,
              "the bound rider %g is below every |gradient| element (max %g)", bound, gmax);
    const double h = 1e-6;
    int bad = 0;
    for (size_t i = 0; i < net->n_params; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double up = cost_ref(net, p, x, y);
        p[i] = keep - h;
        double down = cost_ref(net, p, x, y);
        p[i] = keep;
        double num = (up - down) / (2.0 * h), ana = net->grads[i];
        /* float32 backprop: relative 1e-3, with a floor so that tiny gradients compare absolutely
         */
        double rel = fabs(num - ana) / fmax(1e-3, fabs(num) + fabs(ana));
        if (rel > 1e-3) {
            bad++;
            cr_log_info("%s/%s param %zu: backprop %g, finite difference %g", nndl_act_name(act),
                        nndl_cost_name(cost), i, ana, num);
        }
    }
    cr_expect(eq(int, bad, 0), "%s hidden, %s cost, %d layers: %d of %zu gradients disagree",
              nndl_act_name(act), nndl_cost_name(cost), n_sizes - 1, bad, net->n_params);
    free(p);
    nndl_net_free(net);
}

static const int depth1[] = {6, 4};
static const int depth2[] = {7, 5, 3};
static const int depth3[] = {8, 6, 5, 4};
static const int depth4[] = {9, 7, 6, 5, 3};

static void all_depths(nndl_act act, nndl_cost cost)
{
    gradcheck(depth1, 2, act, cost, 11);
    gradcheck(depth2, 3, act, cost, 12);
    gradcheck(depth3, 4, act, cost, 13);
    gradcheck(depth4, 5, act, cost, 14);
}

Test(net_grad, quadratic_sigmoid) { all_depths(NNDL_ACT_SIGMOID, NNDL_COST_QUADRATIC); }
Test(net_grad, cross_entropy_sigmoid) { all_depths(NNDL_ACT_SIGMOID, NNDL_COST_CROSS_ENTROPY); }
Test(net_grad, log_likelihood_sigmoid) { all_depths(NNDL_ACT_SIGMOID, NNDL_COST_LOG_LIKELIHOOD); }
Test(net_grad, quadratic_tanh) { all_depths(NNDL_ACT_TANH, NNDL_COST_QUADRATIC); }
Test(net_grad, cross_entropy_tanh) { all_depths(NNDL_ACT_TANH, NNDL_COST_CROSS_ENTROPY); }
Test(net_grad, log_likelihood_tanh) { all_depths(NNDL_ACT_TANH, NNDL_COST_LOG_LIKELIHOOD); }
Test(net_grad, quadratic_relu) { all_depths(NNDL_ACT_RELU, NNDL_COST_QUADRATIC); }
Test(net_grad, cross_entropy_relu) { all_depths(NNDL_ACT_RELU, NNDL_COST_CROSS_ENTROPY); }
Test(net_grad, log_likelihood_relu) { all_depths(NNDL_ACT_RELU, NNDL_COST_LOG_LIKELIHOOD); }

Test(net, quadratic_cost_is_half_squared_error)
{
    nndl_err err;
    nndl_net *net;
    int sizes[] = {2, 3};
    cr_assert(eq(int, nndl_net_create(&net, sizes, 2, NULL, NNDL_COST_QUADRATIC, &err), NNDL_OK));
    float out[] = {0.5f, 0.25f, 1.0f, 0.0f, 1.0f, 0.0f};
    uint8_t y[] = {1, 0};
    /* row 0: (0.25 + 0.5625 + 1)/2 ; row 1: (1 + 1 + 0)/2 */
    cr_expect(ieee_ulp_eq(dbl, nndl_net_cost(net, out, net->zout, y, 2),
                          (0.25 + 0.5625 + 1.0) / 2 + 1.0, 4));
    nndl_net_free(net);
}

Test(net, init_statistics_follow_the_scheme)
{
    nndl_err err;
    nndl_net *net;
    int sizes[] = {400, 300, 10};
    cr_assert(eq(int, nndl_net_create(&net, sizes, 3, NULL, NNDL_COST_QUADRATIC, &err), NNDL_OK));
    for (int scheme = 0; scheme < 2; scheme++) {
        nndl_net_init(net, (nndl_init)scheme, 7);
        const nndl_layer *L = &net->layer[0];
        double s = 0, s2 = 0, n = (double)L->n_in * L->n_out;
        for (size_t i = 0; i < (size_t)n; i++) {
            s += L->w[i];
            s2 += (double)L->w[i] * L->w[i];
        }
        double var = s2 / n - (s / n) * (s / n),
               want = scheme == NNDL_INIT_NIELSEN ? 1.0 / 400 : 1.0;
        cr_expect(lt(dbl, fabs(var / want - 1.0), 0.02), "%s: weight variance %g, expected %g",
                  nndl_init_name((nndl_init)scheme), var, want);
        cr_expect(lt(dbl, fabs(s / n), 4 * sqrt(want / n)), "weight mean %g", s / n);
        double b2 = 0;
        for (int j = 0; j < L->n_out; j++) b2 += (double)L->b[j] * L->b[j];
        cr_expect(lt(dbl, fabs(b2 / L->n_out - 1.0), 0.25), "bias variance %g, expected 1",
                  b2 / L->n_out);
    }
    nndl_net_free(net);
}

Test(net, bad_sizes_are_refused)
{
    nndl_err err;
    nndl_net *net;
    int one[] = {784}, zero[] = {784, 0, 10};
    cr_expect(eq(int, nndl_net_create(&net, one, 1, NULL, NNDL_COST_QUADRATIC, &err), NNDL_EARG));
    cr_expect(eq(int, nndl_net_create(&net, zero, 3, NULL, NNDL_COST_QUADRATIC, &err), NNDL_EARG));
    cr_expect(eq(ptr, net, NULL));
}

/* ---- regularisation: the step follows the gradient of J = C/B + (l2/2n) sum w^2 + (l1/n) sum |w|
 * ---- */

static double penalty_ref(const nndl_net *net, const double *p, double l1, double l2, long n)
{
    double s1 = 0, s2 = 0;
    const double *q = p;
    for (int l = 0; l < net->n_layers; l++) {
        size_t nw = (size_t)net->sizes[l + 1] * net->sizes[l];
        for (size_t i = 0; i < nw; i++) {
            s1 += fabs(q[i]);
            s2 += q[i] * q[i];
        }
        q += nw + net->sizes[l + 1];
    }
    return l2 / (2.0 * n) * s2 + l1 / n * s1;
}

static void gradcheck_reg(const int *sizes, int n_sizes, nndl_act act, nndl_cost cost)
{
    nndl_err err;
    nndl_net *net;
    nndl_act acts[8] = {act, act, act, act, act, act, act, act};
    cr_assert(eq(int, nndl_net_create(&net, sizes, n_sizes, acts, cost, &err), NNDL_OK));
    nndl_net_reserve(net, ROWS, &err);
    nndl_net_init(net, NNDL_INIT_NIELSEN, 21);
    float x[ROWS * 16];
    uint8_t y[ROWS];
    for (int i = 0; i < ROWS * sizes[0]; i++) x[i] = (float)((i * 37 % 101) / 101.0);
    for (int r = 0; r < ROWS; r++) y[r] = (uint8_t)(r % sizes[n_sizes - 1]);
    nndl_sgd o;
    const long n_train = 5;
    cr_assert(eq(int, nndl_sgd_init(&o, net, 0.1, 0.3, 0.7, 0.0, n_train, &err), NNDL_OK));
    nndl_net_backprop(net, x, y, ROWS, NULL);
    float *g = malloc(sizeof(float) * net->n_params);
    nndl_sgd_gradient(&o, net, ROWS, g);
    double *p = malloc(sizeof(double) * net->n_params);
    for (size_t i = 0; i < net->n_params; i++) p[i] = net->params[i];
    double pen = nndl_sgd_penalty(&o, net), pen_ref = penalty_ref(net, p, 0.3, 0.7, n_train);
    cr_expect(lt(dbl, fabs(pen - pen_ref), 1e-6 * pen_ref), "penalty %g, reference %g", pen,
              pen_ref);
    int bad = 0;
    for (size_t i = 0; i < net->n_params; i++) {
        const double h = 1e-6, keep = p[i];
        p[i] = keep + h;
        double up = cost_ref(net, p, x, y) / ROWS + penalty_ref(net, p, 0.3, 0.7, n_train);
        p[i] = keep - h;
        double down = cost_ref(net, p, x, y) / ROWS + penalty_ref(net, p, 0.3, 0.7, n_train);
        p[i] = keep;
        double num = (up - down) / (2 * h);
        if (fabs(num - g[i]) / fmax(1e-3, fabs(num) + fabs(g[i])) > 1e-3) {
            bad++;
            cr_log_info("%s/%s+L1+L2 param %zu: step gradient %g, finite difference %g",
                        nndl_act_name(act), nndl_cost_name(cost), i, g[i], num);
        }
    }
    cr_expect(eq(int, bad, 0), "%s hidden, %s cost with L1 and L2: %d of %zu gradients disagree",
              nndl_act_name(act), nndl_cost_name(cost), bad, net->n_params);
    /* and the step moves along exactly that gradient: w <- w - eta g */
    float *before = malloc(sizeof(float) * net->n_params);
    memcpy(before, net->params, sizeof(float) * net->n_params);
    nndl_sgd_step(&o, net, ROWS);
    int off = 0; /* float subtraction: allow the rounding of w itself */
    for (size_t i = 0; i < net->n_params; i++)
        off += fabs((before[i] - net->params[i]) - 0.1 * g[i]) >
               4 * FLT_EPSILON * fabs(before[i]) + 1e-5 * fabs(0.1 * g[i]);
    cr_expect(eq(int, off, 0), "the step is w - eta g: %d parameters are not", off);
    free(g);
    free(p);
    free(before);
    nndl_sgd_free(&o);
    nndl_net_free(net);
}

Test(net_grad, l1_l2_every_cost_and_activation)
{
    const nndl_act acts[] = {NNDL_ACT_SIGMOID, NNDL_ACT_TANH, NNDL_ACT_RELU};
    const nndl_cost costs[] = {NNDL_COST_QUADRATIC, NNDL_COST_CROSS_ENTROPY,
                               NNDL_COST_LOG_LIKELIHOOD};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            gradcheck_reg(depth2, 3, acts[a], costs[c]);
            gradcheck_reg(depth3, 4, acts[a], costs[c]);
        }
}

Test(optim, momentum_accumulates_velocity)
{
    nndl_err err;
    nndl_net *net;
    int sizes[] = {2, 1};
    cr_assert(eq(int, nndl_net_create(&net, sizes, 2, NULL, NNDL_COST_QUADRATIC, &err), NNDL_OK));
    nndl_sgd o;
    nndl_sgd_init(&o, net, 0.5, 0, 0, 0.9, 100, &err);
    /* summed over a batch of 2: g = 1 */
    for (size_t i = 0; i < net->n_params; i++) net->grads[i] = 2.0f;
    nndl_sgd_step(&o, net, 2); /* v = -0.5, w = -0.5 */
    nndl_sgd_step(&o, net, 2); /* v = 0.9 * -0.5 - 0.5 = -0.95, w = -1.45 */
    cr_expect(ieee_ulp_eq(flt, o.velocity[0], -0.95f, 4));
    cr_expect(ieee_ulp_eq(flt, net->params[0], -1.45f, 4));
    nndl_sgd_free(&o);
    nndl_net_free(net);
}

/* ---- dropout ---- */

Test(dropout, masks_drop_p_and_depend_only_on_the_sample)
{
    int samples[1000];
    for (int i = 0; i < 1000; i++) samples[i] = 3 * i + 1;
    nndl_dropout d = {0.3f, 42, 7, samples, 0.0f};
    float m[200];
    long dropped = 0, total = 0;
    for (int r = 0; r < 1000; r++) {
        nndl_dropout_mask(&d, 1, 200, r, m);
        for (int j = 0; j < 200; j++) {
            dropped += m[j] == 0.0f;
            total++;
            cr_assert(m[j] == 0.0f || fabsf(m[j] - 1.0f / 0.7f) < 1e-6f,
                      "kept units are scaled by 1/(1-p): %g", m[j]);
        }
    }
    double frac = (double)dropped / total;
    cr_expect(lt(dbl, fabs(frac - 0.3), 0.005), "fraction dropped %g, expected 0.3", frac);
    /* the same sample in another batch, at another row, on another rank: the same mask */
    int other[3] = {999, 3 * 17 + 1, 5};
    nndl_dropout d2 = {0.3f, 42, 7, other, 0.0f};
    float a[200], b[200], c[200];
    nndl_dropout_mask(&d, 1, 200, 17, a);
    nndl_dropout_mask(&d2, 1, 200, 1, b);
    for (int j = 0; j < 200; j++) cr_assert(eq(flt, a[j], b[j]), "unit %d", j);
    nndl_dropout_mask(&d, 2, 200, 17, c); /* another layer: another mask */
    int differ = 0;
    for (int j = 0; j < 200; j++) differ += a[j] != c[j];
    cr_expect(gt(int, differ, 40));
    d.epoch = 8; /* another epoch: another mask */
    nndl_dropout_mask(&d, 1, 200, 17, c);
    differ = 0;
    for (int j = 0; j < 200; j++) differ += a[j] != c[j];
    cr_expect(gt(int, differ, 40));
}

/* With the masks fixed, backprop is the gradient of the dropped-out network. */
Test(dropout, backprop_matches_finite_differences_of_the_masked_net)
{
    const nndl_act acts[] = {NNDL_ACT_SIGMOID, NNDL_ACT_TANH, NNDL_ACT_RELU};
    for (int a = 0; a < 3; a++) {
        nndl_err err;
        nndl_net *net;
        nndl_act act[3] = {acts[a], acts[a], acts[a]};
        cr_assert(eq(int, nndl_net_create(&net, depth3, 4, act, NNDL_COST_LOG_LIKELIHOOD, &err),
                     NNDL_OK));
        nndl_net_reserve(net, ROWS, &err);
        nndl_net_init(net, NNDL_INIT_NIELSEN, 5);
        float x[ROWS * 8];
        uint8_t y[ROWS] = {0, 1, 2, 3};
        int samples[ROWS] = {10, 11, 12, 13};
        for (int i = 0; i < ROWS * 8; i++) x[i] = (float)((i * 13 % 17) / 17.0);
        nndl_dropout d = {0.4f, 9, 1, samples, 0.0f};
        nndl_net_backprop(net, x, y, ROWS, &d);
        /* reference: the double forward with the same masks */
        double *p = malloc(sizeof(double) * net->n_params);
        for (size_t i = 0; i < net->n_params; i++) p[i] = net->params[i];
        int bad = 0;
        for (size_t i = 0; i < net->n_params; i++) {
            const double h = 1e-6, keep = p[i];
            double c2[2];
            for (int k = 0; k < 2; k++) {
                p[i] = keep + (k ? -h : h);
                double total = 0;
                for (int r = 0; r < ROWS; r++) {
                    double av[16], z[16];
                    for (int j = 0; j < 8; j++) av[j] = x[r * 8 + j];
                    const double *q = p;
                    for (int l = 0; l < 3; l++) {
                        int ni = depth3[l], no = depth3[l + 1];
                        for (int j = 0; j < no; j++) {
                            z[j] = q[(size_t)no * ni + j];
                            for (int t = 0; t < ni; t++) z[j] += q[(size_t)j * ni + t] * av[t];
                        }
                        q += (size_t)no * (ni + 1);
                        if (l < 2) {
                            float m[16];
                            nndl_dropout_mask(&d, l + 1, no, r, m);
                            for (int j = 0; j < no; j++) av[j] = act_d(acts[a], z[j]) * m[j];
                        } else {
                            double mx = z[0], s = 0;
                            for (int j = 1; j < no; j++) mx = fmax(mx, z[j]);
                            for (int j = 0; j < no; j++) s += exp(z[j] - mx);
                            total += mx + log(s) - z[y[r]];
                        }
                    }
                }
                c2[k] = total;
            }
            p[i] = keep;
            double num = (c2[0] - c2[1]) / (2 * h), ana = net->grads[i];
            if (fabs(num - ana) / fmax(1e-3, fabs(num) + fabs(ana)) > 1e-3) bad++;
        }
        cr_expect(eq(int, bad, 0), "%s with dropout: %d of %zu gradients disagree",
                  nndl_act_name(acts[a]), bad, net->n_params);
        free(p);
        nndl_net_free(net);
    }
}

/* ---- the learning-rate schedule, driven by a scripted validation-accuracy sequence ---- */

Test(schedule, decays_after_patience_and_stops_at_the_min_ratio)
{
    nndl_schedule c = {
        .eta0 = 1.0, .patience = 2, .decay = 4.0, .min_ratio = 16.0, .early_stop = 0};
    nndl_schedule_state s = nndl_schedule_start(&c);
    /* improve, improve, flat x2 -> /4, improve, flat x2 -> /4 = 1/16 (not below 1/16), flat x2 ->
     * 1/64 < 1/16: stop */
    double val[] = {0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69, 0.1, 0.2};
    double eta_after[] = {1, 1, 1, 0.25, 0.25, 0.25, 0.0625, 0.0625, 0.015625};
    int stop_after[] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    for (int e = 0; e < 9; e++) {
        int stop = nndl_schedule_update(&c, &s, val[e]);
        cr_expect(eq(dbl, s.eta, eta_after[e]), "epoch %d: eta %g, expected %g", e + 1, s.eta,
                  eta_after[e]);
        cr_expect(eq(int, stop, stop_after[e]), "epoch %d", e + 1);
    }
    cr_expect(eq(int, s.decays, 3));
    cr_expect(eq(int, nndl_schedule_update(&c, &s, 0.99), 1), "once stopped, stays stopped");
}

Test(schedule, early_stop_and_resume_midway)
{
    nndl_schedule c = {
        .eta0 = 0.5, .patience = 0, .decay = 2.0, .min_ratio = 128.0, .early_stop = 3};
    nndl_schedule_state a = nndl_schedule_start(&c), b;
    double val[] = {0.9, 0.91, 0.905, 0.91, 0.909, 0.95, 0.94};
    int stops = -1;
    for (int e = 0; e < 7 && stops < 0; e++) {
        if (e == 3) b = a; /* a checkpoint: the state is plain numbers */
        if (nndl_schedule_update(&c, &a, val[e])) stops = e + 1;
    }
    cr_expect(eq(int, stops, 5), "three epochs without improvement after 0.91 stop after epoch 5");
    cr_expect(eq(dbl, a.eta, 0.5), "early stop alone leaves eta alone");
    int stops_b = -1;
    for (int e = 3; e < 7 && stops_b < 0; e++)
        if (nndl_schedule_update(&c, &b, val[e])) stops_b = e + 1;
    cr_expect(eq(int, stops_b, 5), "the resumed schedule stops at the same epoch");
}

Test(net, gradient_bound_is_nan_when_an_input_is)
{
    /* a NaN anywhere in the inputs makes the bound NaN: the trainer then scans the gradient itself
     */
    int sizes[] = {6, 5, 3};
    nndl_err err;
    nndl_net *net;
    cr_assert(
        eq(int, nndl_net_create(&net, sizes, 3, NULL, NNDL_COST_CROSS_ENTROPY, &err), NNDL_OK));
    nndl_net_reserve(net, ROWS, &err);
    nndl_net_init(net, NNDL_INIT_NIELSEN, 5);
    float x[ROWS * 6];
    uint8_t y[ROWS] = {0};
    for (int i = 0; i < ROWS * 6; i++) x[i] = 0.25f;
    nndl_net_backprop(net, x, y, ROWS, NULL);
    cr_expect(isfinite(net->grads[net->n_params + NNDL_EXTRA_BOUND]));
    x[7] = NAN;
    nndl_net_backprop(net, x, y, ROWS, NULL);
    cr_expect(isnan(net->grads[net->n_params + NNDL_EXTRA_BOUND]), "bound %g",
              net->grads[net->n_params + NNDL_EXTRA_BOUND]);
    x[7] = INFINITY;
    nndl_net_backprop(net, x, y, ROWS, NULL);
    int not_finite = !(net->grads[net->n_params + NNDL_EXTRA_BOUND] <= 3.4e38f);
    cr_expect(not_finite, "an infinite input: bound not finite");
    nndl_net_free(net);
}

/* ---- the fused step ---- */

/* A case of the fused step's test: a net, a batch of N rows in the fused layout, and the reference,
 * backprop's gradient followed by nndl_sgd_step twice. */
enum { FN = 6 };
typedef struct {
    nndl_net *net;
    int L, sample[FN];
    float *act_b[8], *delta_b[8];
    nndl_batch b;
    uint8_t y[FN];
    nndl_dropout drop;
    nndl_sgd o;
    float *p0, *ref, *vref, g1, gmax;
    double c_ref;
} fcase;

static void fcase_init(fcase *f, const int *sizes, int n_sizes, nndl_act act, nndl_cost cost,
                       float p_drop, double mu)
{
    nndl_err err;
    nndl_act acts[8] = {act, act, act, act, act, act, act, act};
    cr_assert(eq(int, nndl_net_create(&f->net, sizes, n_sizes, acts, cost, &err), NNDL_OK));
    cr_assert(eq(int, nndl_net_reserve(f->net, FN, &err), NNDL_OK));
    nndl_net_init(f->net, NNDL_INIT_NIELSEN, 33);
    f->L = n_sizes - 1;
    size_t np = f->net->n_params;
    for (int l = 0; l <= f->L; l++) f->act_b[l] = malloc(sizeof(float) * FN * sizes[l]);
    for (int l = 0; l < f->L; l++) f->delta_b[l] = malloc(sizeof(float) * FN * sizes[l + 1]);
    f->b = (nndl_batch){f->act_b, f->delta_b, NULL};
    for (int i = 0; i < FN * sizes[0]; i++) f->act_b[0][i] = (float)((i * 37 % 101) / 101.0);
    for (int r = 0; r < FN; r++) {
        f->y[r] = (uint8_t)(r % sizes[f->L]);
        f->sample[r] = 100 + 3 * r;
    }
    f->drop = (nndl_dropout){p_drop, 8, 1, f->sample, 0.0f};
    cr_assert(eq(int, nndl_sgd_init(&f->o, f->net, 0.3, 0.2, 0.7, mu, 5, &err), NNDL_OK));
    f->p0 = malloc(sizeof(float) * np);
    f->ref = malloc(sizeof(float) * np);
    f->vref = calloc(np, sizeof(float));
    memcpy(f->p0, f->net->params, sizeof(float) * np);
    f->c_ref = nndl_net_backprop(f->net, f->act_b[0], f->y, FN, &f->drop);
    f->g1 = nndl_max_abs(f->net->grads, np);
    nndl_sgd_step(&f->o, f->net, FN);
    nndl_net_backprop(f->net, f->act_b[0], f->y, FN, &f->drop);
    f->gmax = fmaxf(f->g1, nndl_max_abs(f->net->grads, np));
    nndl_sgd_step(&f->o, f->net, FN);
    memcpy(f->ref, f->net->params, sizeof(float) * np);
    if (f->o.velocity) memcpy(f->vref, f->o.velocity, sizeof(float) * np);
}

static void fcase_free(fcase *f)
{
    for (int l = 0; l <= f->L; l++) free(f->act_b[l]);
    for (int l = 0; l < f->L; l++) free(f->delta_b[l]);
    free(f->p0);
    free(f->ref);
    free(f->vref);
    nndl_sgd_free(&f->o);
    nndl_net_free(f->net);
}

/* Back to the starting parameters (and a zero velocity). */
static void fcase_rewind(fcase *f)
{
    memcpy(f->net->params, f->p0, sizeof(float) * f->net->n_params);
    if (f->o.velocity) memset(f->o.velocity, 0, sizeof(float) * f->net->n_params);
}

/* How many parameters (and velocities) differ from the reference by more than rounding. */
static int fcase_off(const fcase *f)
{
    int off = 0;
    for (size_t i = 0; i < f->net->n_params; i++) {
        float tol = 16 * FLT_EPSILON * fabsf(f->p0[i]) + 1e-5f * 0.3f * f->gmax;
        off += fabsf(f->net->params[i] - f->ref[i]) > tol;
        if (f->o.velocity) off += fabsf(f->o.velocity[i] - f->vref[i]) > tol;
    }
    return off;
}

/* Two fused steps split by rows: the deltas of the whole batch, then each part's update in turn (as
 * the ranks of a node would run them concurrently). */
static void fcase_by_rows(fcase *f, int parts)
{
    for (int s = 0; s < 2; s++) {
        float bound;
        double c = nndl_net_deltas(f->net, &f->b, f->y, FN, &f->drop, &bound);
        if (s == 0) cr_expect(eq(dbl, c, f->c_ref), "the same cost");
        if (s == 0)
            cr_expect(ge(flt, bound, f->g1), "the bound %g covers the gradient (max %g)", bound,
                      f->g1);
        nndl_fused u;
        cr_assert(nndl_sgd_fused(&f->o, FN, &u));
        for (int k = 0; k < parts; k++)
            cr_expect(eq(int, nndl_net_part_nonfinite(f->net, &f->b, FN, k, parts), 0));
        for (int k = 0; k < parts; k++) nndl_net_update_part(f->net, &f->b, FN, k, parts, &u);
    }
}

/* The bound from each part's maxima over what it wrote (its rows of the output layer, its units of
 * the hidden ones) is nndl_net_bound's value exactly; a NaN in one part's units makes it NaN. */
static void units_bound_by_parts(fcase *f, int parts)
{
    enum { STRIDE = 16 };
    float m[3 * STRIDE];
    cr_assert(le(int, 2 * f->L, STRIDE));
    for (int k = 0; k < parts; k++) {
        int r0 = FN * k / parts, r1 = FN * (k + 1) / parts;
        nndl_net_bound_part(f->net, &f->b, FN, r0, r1 - r0, k, parts, m + STRIDE * k);
    }
    float whole = nndl_net_bound(f->net, &f->b, FN);
    float byparts = nndl_net_bound_parts(f->net, FN, m, STRIDE, parts);
    uint32_t a, b;
    memcpy(&a, &byparts, sizeof a);
    memcpy(&b, &whole, sizeof b);
    cr_expect(eq(u32, a, b),
              "units, %d parts: the bound from the parts' maxima %.9g, from the whole batch %.9g",
              parts, byparts, whole);
    /* a NaN in the last part's units of the first hidden layer's delta */
    float *d = &f->b.delta[0][(size_t)(FN - 1) * f->net->sizes[1] + f->net->sizes[1] - 1],
          keep = *d;
    *d = NAN;
    nndl_net_bound_part(f->net, &f->b, FN, FN * (parts - 1) / parts, FN - FN * (parts - 1) / parts,
                        parts - 1, parts, m + STRIDE * (parts - 1));
    cr_expect(isnan(nndl_net_bound_parts(f->net, FN, m, STRIDE, parts)), "units: a NaN sticks");
    *d = keep;
}

/* The same two steps split by units: the phases a node's ranks run between barriers, here in turn.
 */
static void fcase_by_units(fcase *f, int parts)
{
    for (int s = 0; s < 2; s++) {
        double c = 0.0;
        for (int l = 0; l < f->L - 1; l++)
            for (int k = 0; k < parts; k++)
                nndl_net_forward_units(f->net, &f->b, l, FN, k, parts, &f->drop);
        for (int k = 0; k < parts; k++) { /* each part its rows of the output layer */
            int r0 = FN * k / parts, r1 = FN * (k + 1) / parts;
            c += nndl_net_output_rows(f->net, &f->b, f->y + r0, r0, r1 - r0);
        }
        for (int l = f->L - 1; l >= 1; l--)
            for (int k = 0; k < parts; k++)
                nndl_net_delta_units(f->net, &f->b, l, FN, k, parts, &f->drop);
        if (s == 0) {
            cr_expect(lt(dbl, fabs(c - f->c_ref), 1e-6 * fabs(f->c_ref)),
                      "units: cost %g, backprop's %g", c, f->c_ref);
            cr_expect(ge(flt, nndl_net_bound(f->net, &f->b, FN), f->g1),
                      "units: the bound covers the gradient");
            units_bound_by_parts(f, parts);
        }
        nndl_fused u;
        cr_assert(nndl_sgd_fused(&f->o, FN, &u));
        for (int k = 0; k < parts; k++) nndl_net_update_part(f->net, &f->b, FN, k, parts, &u);
    }
}

/* Deltas kept per layer, then each part's update from them: after two steps, the same parameters
 * (and velocity) as backprop's gradient followed by nndl_sgd_step, split by rows and by units into
 * 1-3 parts; a NaN input makes every part see a non-finite gradient. */
static void fused_matches(const int *sizes, int n_sizes, nndl_act act, nndl_cost cost, float p_drop,
                          double mu)
{
    fcase f;
    fcase_init(&f, sizes, n_sizes, act, cost, p_drop, mu);
    const char *an = nndl_act_name(act), *cn = nndl_cost_name(cost);
    for (int parts = 1; parts <= 3; parts++) {
        fcase_rewind(&f);
        fcase_by_rows(&f, parts);
        cr_expect(eq(int, fcase_off(&f), 0),
                  "%s/%s dropout %g momentum %g, %d parts: values of %zu differ "
                  "from backprop + step",
                  an, cn, p_drop, mu, parts, f.net->n_params);
        fcase_rewind(&f);
        fcase_by_units(&f, parts);
        cr_expect(eq(int, fcase_off(&f), 0),
                  "%s/%s dropout %g momentum %g, split by units into %d parts: "
                  "values of %zu differ from backprop + step",
                  an, cn, p_drop, mu, parts, f.net->n_params);
    }
    f.act_b[0][7] = NAN;
    float bound;
    nndl_net_deltas(f.net, &f.b, f.y, FN, &f.drop, &bound);
    int not_finite = !(bound <= FLT_MAX);
    cr_expect(not_finite, "%s/%s: bound %g", an, cn, bound);
    for (int k = 0; k < 2; k++)
        cr_expect(eq(int, nndl_net_part_nonfinite(f.net, &f.b, FN, k, 2), 1));
    fcase_free(&f);
}

Test(fused, update_equals_backprop_then_step_every_cost_activation_part_and_split)
{
    const nndl_act acts[] = {NNDL_ACT_SIGMOID, NNDL_ACT_TANH, NNDL_ACT_RELU};
    const nndl_cost costs[] = {NNDL_COST_QUADRATIC, NNDL_COST_CROSS_ENTROPY,
                               NNDL_COST_LOG_LIKELIHOOD};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            fused_matches(depth2, 3, acts[a], costs[c], 0.0f, 0.0);
            fused_matches(depth4, 5, acts[a], costs[c], 0.4f, 0.0);
            fused_matches(depth3, 4, acts[a], costs[c], 0.2f, 0.9);
        }
}

Test(fused, a_decay_factor_at_or_below_zero_is_not_fused)
{
    nndl_err err;
    nndl_net *net;
    int sizes[] = {2, 1};
    cr_assert(eq(int, nndl_net_create(&net, sizes, 2, NULL, NNDL_COST_QUADRATIC, &err), NNDL_OK));
    nndl_sgd o;
    nndl_fused u;
    nndl_sgd_init(&o, net, 0.5, 0, 1000, 0, 100, &err); /* decay 1 - 0.5 * 10 < 0 */
    cr_expect(eq(int, nndl_sgd_fused(&o, 10, &u), 0));
    nndl_sgd_free(&o);
    /* with momentum the decay is not a factor */
    nndl_sgd_init(&o, net, 0.5, 0, 1000, 0.9, 100, &err);
    cr_expect(eq(int, nndl_sgd_fused(&o, 10, &u), 1));
    nndl_sgd_free(&o);
    nndl_net_free(net);
}
