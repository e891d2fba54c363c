/* Backprop against central finite differences, for every cost x hidden activation, several depths. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>

#include "nndl/net.h"
#include "nndl/rng.h"

#define ROWS 4

/* An independent reference: the summed cost of the batch in double precision, by plain loops
 * over the parameters as stored (w row-major [n_out x n_in], then b). Finite differences of this
 * have no float32 rounding noise, so h can be small enough not to straddle ReLU's kink. */
static double act_d(nndl_act a, double z)
{
    return a == NNDL_ACT_SIGMOID ? 1.0 / (1.0 + exp(-z)) : a == NNDL_ACT_TANH ? tanh(z) : z > 0 ? z : 0;
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
            if (net->cost == NNDL_COST_QUADRATIC) total += 0.5 * (a[j] - t) * (a[j] - t);
            else if (net->cost == NNDL_COST_CROSS_ENTROPY) total -= t ? log(a[j]) : log(1 - a[j]);
            else if (t) total -= log(a[j]);
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
        x[i] = (float)u[0], x[i + 1] = (float)u[1];
    }
    for (int r = 0; r < ROWS; r++) y[r] = (uint8_t)((r * 7 + seed) % sizes[n_sizes - 1]);
    double c = nndl_net_backprop(net, x, y, ROWS);
    double *p = malloc(sizeof(double) * net->n_params);
    for (size_t i = 0; i < net->n_params; i++) p[i] = net->params[i];
    double ref = cost_ref(net, p, x, y);
    cr_expect(lt(dbl, fabs(c - ref), 1e-5 * fabs(ref) + 1e-6), "backprop's cost %g, reference %g", c, ref);
    cr_expect(eq(flt, net->grads[net->n_params], (float)c), "the cost rides in the gradient's tail");
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
        /* float32 backprop: relative 1e-3, with a floor so that tiny gradients compare absolutely */
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
    cr_expect(ieee_ulp_eq(dbl, nndl_net_cost(net, out, y, 2), (0.25 + 0.5625 + 1.0) / 2 + 1.0, 4));
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
        for (size_t i = 0; i < (size_t)n; i++) s += L->w[i], s2 += (double)L->w[i] * L->w[i];
        double var = s2 / n - (s / n) * (s / n), want = scheme == NNDL_INIT_NIELSEN ? 1.0 / 400 : 1.0;
        cr_expect(lt(dbl, fabs(var / want - 1.0), 0.02), "%s: weight variance %g, expected %g",
                  nndl_init_name((nndl_init)scheme), var, want);
        cr_expect(lt(dbl, fabs(s / n), 4 * sqrt(want / n)), "weight mean %g", s / n);
        double b2 = 0;
        for (int j = 0; j < L->n_out; j++) b2 += (double)L->b[j] * L->b[j];
        cr_expect(lt(dbl, fabs(b2 / L->n_out - 1.0), 0.25), "bias variance %g, expected 1", b2 / L->n_out);
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
