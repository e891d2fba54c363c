/* eval.c: evaluation of a net on a split, sharded over the ranks (see nndl/eval.h). */
#include "nndl/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nndl_eval_rows(const nndl_net *net)
{
    return net->has_conv ? NNDL_EVAL_BLOCK_CONV : NNDL_EVAL_BLOCK;
}

/* A block's scratch: the inputs and labels of nndl_eval_rows(net) rows of s; the net's workspace
 * too.
 */
typedef struct {
    float *x;
    uint8_t *y;
} block;

static nndl_status block_init(block *b, nndl_net *net, const nndl_split *s, nndl_err *err)
{
    const int B = nndl_eval_rows(net);
    size_t d = (size_t)s->src->rows * s->src->cols;
    b->x = malloc(sizeof *b->x * B * d);
    b->y = malloc(B);
    nndl_status st =
        b->x && b->y
            ? nndl_net_reserve(net, B, err)
            : nndl_fail(err, NNDL_ENOMEM, "out of memory for an evaluation block of %d rows", B);
    if (st != NNDL_OK) {
        free(b->x);
        free(b->y);
    }
    return st;
}

static void block_free(block *b)
{
    free(b->x);
    free(b->y);
}

nndl_status nndl_eval_split(nndl_net *net, const nndl_split *s, const nndl_dist *d,
                            double *accuracy, double *cost, nndl_err *err)
{
    const int B = nndl_eval_rows(net);
    int first, len;
    nndl_dist_shard(s->n, d->size, d->rank, &first, &len);
    double sums[2] = {0.0, 0.0}; /* cost, correct */
    long correct = 0;
    block b;
    nndl_status st = block_init(&b, net, s, err);
    for (int i = 0; st == NNDL_OK && i < len; i += B) {
        int k = len - i < B ? len - i : B;
        nndl_split_gather_range(s, first + i, k, b.x, b.y);
        nndl_net_evaluate(net, b.x, b.y, k, &sums[0], &correct);
    }
    if (st == NNDL_OK) block_free(&b);
    sums[1] = (double)correct;
    st = nndl_dist_agree(d, st, err, NULL); /* every rank joins the reduction below, or none */
    if (st == NNDL_OK) st = nndl_dist_sum_doubles(d, sums, 2, err);
    if (st != NNDL_OK) return st;
    *accuracy = s->n ? sums[1] / s->n : 0.0;
    *cost = s->n ? sums[0] / s->n : 0.0;
    return NNDL_OK;
}

nndl_status nndl_eval_confusion(nndl_net *net, const nndl_split *s, const nndl_dist *d,
                                double *conf, nndl_err *err)
{
    const int B = nndl_eval_rows(net);
    int first, len, m = net->sizes[net->n_layers];
    int *pred = malloc(sizeof *pred * B);
    block b = {NULL, NULL};
    nndl_status st =
        pred ? block_init(&b, net, s, err) : nndl_fail(err, NNDL_ENOMEM, "out of memory");
    memset(conf, 0, sizeof *conf * m * m);
    nndl_dist_shard(s->n, d->size, d->rank, &first, &len);
    for (int i = 0; st == NNDL_OK && i < len; i += B) {
        int k = len - i < B ? len - i : B;
        nndl_split_gather_range(s, first + i, k, b.x, b.y);
        nndl_net_predict(net, b.x, k, pred);
        for (int r = 0; r < k; r++) conf[b.y[r] * m + pred[r]] += 1.0;
    }
    if (pred && st == NNDL_OK) block_free(&b);
    free(pred);
    st = nndl_dist_agree(d, st, err, NULL);
    return st == NNDL_OK ? nndl_dist_sum_doubles(d, conf, m * m, err) : st;
}

nndl_status nndl_eval_activations(nndl_net *net, const nndl_split *s, int first, int rows,
                                  const int *layer, int n, float *const *out, nndl_err *err)
{
    const int B = nndl_eval_rows(net);
    block b;
    nndl_status st = block_init(&b, net, s, err);
    for (int i = 0; st == NNDL_OK && i < rows; i += B) {
        int k = rows - i < B ? rows - i : B;
        nndl_split_gather_range(s, first + i, k, b.x, b.y);
        nndl_net_forward(net, b.x, k);
        for (int j = 0; j < n; j++) {
            int w = net->sizes[layer[j]];
            memcpy(out[j] + (size_t)i * w, net->a[layer[j]], sizeof(float) * (size_t)k * w);
        }
    }
    if (st == NNDL_OK) block_free(&b);
    return st;
}

nndl_status nndl_eval_speed(nndl_net *net, const nndl_split *s, int n, const nndl_dist *d,
                            double *speed, nndl_err *err)
{
    const int B = nndl_eval_rows(net), L = net->n_layers;
    int first, len, units = 0;
    for (int l = 0; l < L; l++) units += net->layer[l].n_out;
    nndl_dist_shard(n, d->size, d->rank, &first, &len);
    double *sum = calloc((size_t)units, sizeof *sum);
    block b = {NULL, NULL};
    nndl_status st = sum ? block_init(&b, net, s, err)
                         : nndl_fail(err, NNDL_ENOMEM, "out of memory for the speed of learning");
    for (int i = 0; st == NNDL_OK && i < len; i += B) {
        int k = len - i < B ? len - i : B;
        nndl_split_gather_range(s, first + i, k, b.x, b.y);
        nndl_net_backprop(net, b.x, b.y, k, NULL); /* grads: the sums over the k rows */
        double *at = sum;
        for (int l = 0; l < L; l++) {
            const nndl_layer *G = &net->dlayer[l];
            for (int j = 0; j < net->layer[l].n_out; j++) *at++ += G->b[j];
        }
    }
    if (sum && st == NNDL_OK) block_free(&b);
    st = nndl_dist_agree(d, st, err, NULL); /* every rank joins the reduction below, or none */
    if (st == NNDL_OK) st = nndl_dist_sum_doubles(d, sum, units, err);
    const double *at = sum;
    for (int l = 0; st == NNDL_OK && l < L; l++) {
        double q = 0.0;
        for (int j = 0; j < net->layer[l].n_out; j++, at++) q += (*at / n) * (*at / n);
        speed[l] = sqrt(q);
    }
    free(sum);
    return st;
}
