/* optim.c: SGD with L1/L2 and momentum, and the learning-rate schedule (see nndl/optim.h). */
#include "nndl/optim.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"

/* ---- the update rule ---- */

nndl_status nndl_sgd_init(nndl_sgd *o, const nndl_net *net, double eta, double l1, double l2,
                          double momentum, long n_train, nndl_err *err)
{
    memset(o, 0, sizeof *o);
    o->eta = eta;
    o->l1 = l1;
    o->l2 = l2;
    o->momentum = momentum;
    o->n_train = n_train > 0 ? n_train : 1;
    o->n_params = net->n_params;
    if (momentum > 0 && !(o->velocity = calloc(net->n_params, sizeof *o->velocity)))
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for the momentum velocity");
    return NNDL_OK;
}

void nndl_sgd_free(nndl_sgd *o)
{
    free(o->velocity);
    o->velocity = NULL;
}

double nndl_sgd_penalty(const nndl_sgd *o, const nndl_net *net)
{
    double s2 = 0.0, s1 = 0.0;
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *L = &net->layer[l];
        for (size_t i = 0; i < (size_t)L->n_out * L->n_in; i++) {
            s2 += (double)L->w[i] * L->w[i];
            s1 += fabs(L->w[i]);
        }
    }
    return o->l2 / (2.0 * o->n_train) * s2 + o->l1 / o->n_train * s1;
}

static inline float sgnf(float w) { return (float)((w > 0.0f) - (w < 0.0f)); }

/* g for the n weights w (with their summed gradients d) or biases (reg = 0) */
static inline float grad_of(float d, float w, float inv_b, float l2n, float l1n, int reg)
{
    return reg ? d * inv_b + l2n * w + l1n * sgnf(w) : d * inv_b;
}

void nndl_sgd_gradient(const nndl_sgd *o, const nndl_net *net, int batch, float *out)
{
    const float inv_b = 1.0f / (float)batch, l2n = (float)(o->l2 / o->n_train),
                l1n = (float)(o->l1 / o->n_train);
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *L = &net->layer[l];
        size_t off = (size_t)(L->w - net->params), nw = (size_t)L->n_out * L->n_in,
               nb = (size_t)L->n_out;
        for (size_t i = 0; i < nw + nb; i++)
            out[off + i] =
                grad_of(net->grads[off + i], net->params[off + i], inv_b, l2n, l1n, i < nw);
    }
}

NNDL_HOT void nndl_sgd_step(nndl_sgd *o, nndl_net *net, int batch)
{
    if (o->l1 == 0 && o->l2 == 0 && !o->velocity) { /* the common case: one BLAS axpy */
        cblas_saxpy((int)net->n_params, (float)(-o->eta / batch), net->grads, 1, net->params, 1);
        return;
    }
    const float inv_b = 1.0f / (float)batch, l2n = (float)(o->l2 / o->n_train),
                l1n = (float)(o->l1 / o->n_train), eta = (float)o->eta, mu = (float)o->momentum;
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *L = &net->layer[l];
        size_t off = (size_t)(L->w - net->params), nw = (size_t)L->n_out * L->n_in,
               nb = (size_t)L->n_out;
        float *restrict w = net->params + off, *restrict d = net->grads + off;
        float *restrict v = o->velocity ? o->velocity + off : NULL;
        /* four branch-free loops (weights/biases x momentum or not), so that the compiler
         * vectorises them */
        if (v) {
            for (size_t i = 0; i < nw; i++)
                w[i] += (v[i] = mu * v[i] - eta * grad_of(d[i], w[i], inv_b, l2n, l1n, 1));
            for (size_t i = nw; i < nw + nb; i++) w[i] += (v[i] = mu * v[i] - eta * d[i] * inv_b);
            /* the book's L2 form, one FMA per weight: w <- (1 - eta l2/n) w - (eta/B) grad */
        } else if (l1n == 0.0f) {
            const float decay = 1.0f - eta * l2n, step = eta * inv_b;
            for (size_t i = 0; i < nw; i++) w[i] = decay * w[i] - step * d[i];
            for (size_t i = nw; i < nw + nb; i++) w[i] -= step * d[i];
        } else {
            for (size_t i = 0; i < nw; i++) w[i] -= eta * grad_of(d[i], w[i], inv_b, l2n, l1n, 1);
            for (size_t i = nw; i < nw + nb; i++) w[i] -= eta * d[i] * inv_b;
        }
    }
}

/* ---- the fused update's coefficients ---- */

/* the fused rule's decay factor without momentum (the same float arithmetic as nndl_sgd_fused) */
static float fused_decay(double eta, double l2, long n_train)
{
    return 1.0f - (float)eta * (float)(l2 / (double)(n_train > 0 ? n_train : 1));
}

int nndl_sgd_fusable(double eta, double l2, double momentum, long n_train)
{
    return momentum > 0 || fused_decay(eta, l2, n_train) > 0.0f;
}

int nndl_sgd_fused(const nndl_sgd *o, int batch, nndl_fused *u)
{
    const float eta = (float)o->eta, l2n = (float)(o->l2 / o->n_train),
                l1n = (float)(o->l1 / o->n_train);
    u->step = eta * (1.0f / (float)batch);
    u->velocity = o->velocity;
    u->mu = (float)o->momentum;
    u->conv_g = NULL;
    u->conv_slots = 0;
    if (o->velocity) {
        u->decay = 1.0f;
        u->wd = eta * l2n;
        u->l1 = eta * l1n;
        return 1;
    }
    u->decay = fused_decay(o->eta, o->l2, o->n_train);
    u->wd = 0.0f;
    u->l1 = u->decay > 0.0f ? eta * l1n / u->decay : 0.0f;
    return u->decay > 0.0f;
}

/* ---- the learning-rate schedule ---- */

nndl_schedule_state nndl_schedule_start(const nndl_schedule *s)
{
    return (nndl_schedule_state){.eta = s->eta0, .best = -1.0};
}

int nndl_schedule_update(const nndl_schedule *s, nndl_schedule_state *st, double val)
{
    if (st->stopped) return 1;
    if (val > st->best) {
        st->best = val;
        st->since_best = st->since_change = 0;
        return 0;
    }
    st->since_best++;
    st->since_change++;
    if (s->early_stop > 0 && st->since_best >= s->early_stop) return st->stopped = 1;
    if (s->patience > 0 && st->since_change >= s->patience) {
        st->eta /= s->decay;
        st->decays++;
        st->since_change = 0; /* give the new rate its own patience */
        if (st->eta < s->eta0 / s->min_ratio) return st->stopped = 1;
    }
    return 0;
}
