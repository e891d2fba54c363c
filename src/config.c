/* config.c: the step chooser (see nndl/config.h). */
#include "nndl/config.h"

#include <stdio.h>
#include <string.h>

#include "nndl/optim.h"

/* ---- contradictions between flags given explicitly ---- */

static nndl_status contradictions(const nndl_config *c, nndl_err *err)
{
    if (c->reproducible && c->reduce == NNDL_REDUCE_SHARED)
        return nndl_fail(err, NNDL_EARG,
                         "--reduce shared with --reproducible: the reproducible mode sums exact "
                         "fixed-point gradients with MPI; drop --reduce shared");
    if (c->reproducible && c->overlap == NNDL_OVERLAP_ON)
        return nndl_fail(err, NNDL_EARG,
                         "--overlap on with --reproducible: the reproducible mode reduces once per "
                         "step, after every chunk; drop --overlap on");
    if (c->reduce == NNDL_REDUCE_SHARED && c->overlap == NNDL_OVERLAP_ON)
        return nndl_fail(
            err, NNDL_EARG,
            "--reduce shared with --overlap on: the overlap is the MPI reduction's, and "
            "the shared step reduces nothing; drop one of them (on --resume, give the "
            "other one as auto)");
    return NNDL_OK; /* --split where no shared step runs is moot: the plan says it is unused */
}

/* ---- the chooser ---- */

nndl_status nndl_config_plan(const nndl_config *c, const nndl_plan_env *env, nndl_step_plan *p,
                             nndl_err *err)
{
    memset(p, 0, sizeof *p);
    nndl_status st = contradictions(c, err);
    if (st != NNDL_OK) return st;
    int large = env->n_params >= NNDL_LARGE_NET;
    if (c->reproducible) {
        p->kind = NNDL_STEP_REPRODUCIBLE;
        snprintf(p->why, sizeof p->why, "--reproducible%s",
                 c->split != NNDL_SPLIT_AUTO ? "; --split unused" : "");
        return NNDL_OK;
    }
    int fusable = nndl_sgd_fusable(c->eta, c->l2, c->momentum, env->n_train);
    int one_node = env->node_ranks == env->ranks && env->ranks <= NNDL_MAX_SHARED_RANKS;
    if (c->reduce != NNDL_REDUCE_MPI && c->overlap != NNDL_OVERLAP_ON && fusable &&
        (env->ranks == 1 || one_node)) {
        p->kind = NNDL_STEP_FUSED;
        p->shared = env->ranks > 1;
        p->units =
            p->shared && (c->split == NNDL_SPLIT_UNITS || (c->split == NNDL_SPLIT_AUTO && large));
        p->conv_rows = p->units && env->has_conv;
        p->replicas = p->shared && !p->units && env->has_conv;
        const char *split =
            !p->shared ? (c->split != NNDL_SPLIT_AUTO ? "; --split unused on one rank" : "")
            : c->split != NNDL_SPLIT_AUTO ? ""
            : large                       ? "; --split auto: units (>= 2^20 parameters)"
                                          : "; --split auto: rows (< 2^20 parameters)";
        snprintf(p->why, sizeof p->why, "%s%s",
                 c->reduce == NNDL_REDUCE_AUTO ? "--reduce auto: fused wherever it can"
                                               : "--reduce shared",
                 split);
        return NNDL_OK;
    }
    p->kind = NNDL_STEP_ALLREDUCE;
    int several_nodes = env->node_ranks < env->ranks;
    p->overlap = env->ranks > 1 && (c->overlap == NNDL_OVERLAP_ON ||
                                    (c->overlap == NNDL_OVERLAP_AUTO && large && several_nodes));
    const char *why = c->reduce == NNDL_REDUCE_MPI    ? "--reduce mpi"
                      : c->overlap == NNDL_OVERLAP_ON ? "--overlap on"
                      : !fusable      ? "the update cannot be fused (1 - eta*l2/n <= 0)"
                      : several_nodes ? "the ranks span several nodes"
                                      : "more ranks than one node shares";
    snprintf(p->why, sizeof p->why, "%s%s%s%s",
             c->reduce == NNDL_REDUCE_SHARED ? "--reduce shared cannot be: " : "", why,
             c->split != NNDL_SPLIT_AUTO ? "; --split unused" : "",
             env->ranks == 1 || c->overlap != NNDL_OVERLAP_AUTO ? ""
             : p->overlap ? "; --overlap auto: on (>= 2^20 parameters, several nodes)"
                          : "; --overlap auto: off (only for >= 2^20 parameters across nodes)");
    return NNDL_OK;
}

void nndl_step_plan_name(const nndl_step_plan *p, char *buf, size_t cap)
{
    switch (p->kind) {
    case NNDL_STEP_REPRODUCIBLE:
        snprintf(buf, cap, "reproducible (fixed chunks, exact fixed-point sums)");
        break;
    case NNDL_STEP_FUSED:
        snprintf(buf, cap, "fused (no gradient formed), %s",
                 !p->shared    ? "one rank"
                 : p->units    ? (p->conv_rows ? "node-shared, split by units (conv layers by rows)"
                                               : "node-shared, split by units")
                 : p->replicas ? "node-shared, split by rows, parameters replicated"
                               : "node-shared, split by rows");
        break;
    case NNDL_STEP_ALLREDUCE:
        snprintf(buf, cap, "gradient + MPI_Allreduce%s",
                 p->overlap ? ", in buckets overlapping backprop" : "");
        break;
    }
}

/* ---- the model ---- */

int nndl_config_depth(const nndl_config *c)
{
    return c->n_layers > 0 ? c->n_layers : c->n_sizes - 1;
}

int nndl_config_outputs(const nndl_config *c)
{
    return c->n_layers > 0 ? c->layers[c->n_layers - 1].units : c->sizes[c->n_sizes - 1];
}

nndl_status nndl_config_net(const nndl_config *c, nndl_shape data, nndl_net **out, nndl_err *err)
{
    if (c->n_layers == 0) return nndl_net_create(out, c->sizes, c->n_sizes, c->act, c->cost, err);
    return nndl_net_create_layers(out, data, c->layers, c->n_layers, c->act, c->cost, err);
}

void nndl_config_layers_str(const nndl_config *c, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    for (int l = 0; l < c->n_layers && used < cap; l++) {
        char tok[96];
        nndl_layer_spec_str(&c->layers[l], tok, sizeof tok);
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", l ? "," : "", tok);
    }
}
