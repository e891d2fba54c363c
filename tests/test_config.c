/* The step chooser (nndl_config_plan): every "auto" resolved in one place, by the rules
 * docs/parallel.md states; contradictions between explicit flags refused with both named. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "nndl/config.h"

static nndl_config base(void)
{
    return (nndl_config){.eta = 0.5, .batch = 10, .l2 = 0.0}; /* every how-to-run setting at auto */
}

static nndl_step_plan plan(const nndl_config *c, int ranks, int node_ranks, size_t n_params)
{
    nndl_step_plan p;
    nndl_err err;
    nndl_plan_env env = {ranks, node_ranks, n_params, 50000, 0};
    cr_assert(eq(int, nndl_config_plan(c, &env, &p, &err), NNDL_OK), "%s", err.msg);
    return p;
}

Test(plan, auto_is_fused_on_one_rank_and_on_one_node)
{
    nndl_config c = base();
    nndl_step_plan p = plan(&c, 1, 1, 23860);
    cr_expect(eq(int, p.kind, NNDL_STEP_FUSED));
    cr_expect(eq(int, p.shared, 0), "one rank: private buffers");
    p = plan(&c, 2, 2, 23860);
    cr_expect(eq(int, p.kind, NNDL_STEP_FUSED));
    cr_expect(eq(int, p.shared, 1));
    cr_expect(eq(int, p.units, 0), "small nets: split by rows");
    p = plan(&c, 2, 2, 1863690);
    cr_expect(eq(int, p.units, 1), "nets of >= 2^20 parameters: split by units");
    c.split = NNDL_SPLIT_ROWS;
    cr_expect(eq(int, plan(&c, 2, 2, 1863690).units, 0), "--split rows is obeyed");
}

Test(plan, several_nodes_take_the_allreduce_and_overlap_large_nets)
{
    nndl_config c = base();
    nndl_step_plan p = plan(&c, 4, 2, 23860);
    cr_expect(eq(int, p.kind, NNDL_STEP_ALLREDUCE));
    cr_expect(eq(int, p.overlap, 0), "small nets: one blocking reduction");
    cr_expect(strstr(p.why, "several nodes") != NULL, "%s", p.why);
    p = plan(&c, 4, 2, 1863690);
    cr_expect(eq(int, p.overlap, 1), "--overlap auto: large nets across nodes");
    c.reduce = NNDL_REDUCE_SHARED; /* asked, but the machine cannot: falls back, and says so */
    p = plan(&c, 4, 2, 23860);
    cr_expect(eq(int, p.kind, NNDL_STEP_ALLREDUCE));
    cr_expect(strstr(p.why, "--reduce shared cannot be") != NULL, "%s", p.why);
}

Test(plan, explicit_flags_and_the_reproducible_mode)
{
    nndl_config c = base();
    c.reduce = NNDL_REDUCE_MPI;
    cr_expect(eq(int, plan(&c, 1, 1, 100).kind, NNDL_STEP_ALLREDUCE),
              "--reduce mpi at -np 1: the unfused path");
    c = base();
    c.overlap = NNDL_OVERLAP_ON;
    nndl_step_plan p = plan(&c, 2, 2, 100);
    cr_expect(eq(int, p.kind, NNDL_STEP_ALLREDUCE));
    cr_expect(eq(int, p.overlap, 1), "--overlap on within a node");
    c = base();
    c.reproducible = 1;
    cr_expect(eq(int, plan(&c, 3, 3, 100).kind, NNDL_STEP_REPRODUCIBLE));
    c = base();
    c.l2 = 1e6; /* 1 - eta*l2/n <= 0: the fused rule cannot be written as a GEMM */
    cr_expect(eq(int, plan(&c, 1, 1, 100).kind, NNDL_STEP_ALLREDUCE));
    c.momentum = 0.9; /* with momentum the decay is in the velocity: fusable again */
    cr_expect(eq(int, plan(&c, 1, 1, 100).kind, NNDL_STEP_FUSED));
}

Test(plan, contradictions_are_refused_naming_both_flags)
{
    struct {
        nndl_reduce r;
        nndl_split_how s;
        nndl_overlap o;
        int repro;
        const char *msg;
    } bad[] = {
        {NNDL_REDUCE_SHARED, NNDL_SPLIT_AUTO, NNDL_OVERLAP_AUTO, 1,
         "--reduce shared with --reproducible"},
        {NNDL_REDUCE_AUTO, NNDL_SPLIT_AUTO, NNDL_OVERLAP_ON, 1, "--overlap on with --reproducible"},
        {NNDL_REDUCE_SHARED, NNDL_SPLIT_AUTO, NNDL_OVERLAP_ON, 0,
         "--reduce shared with --overlap on"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nndl_config c = base();
        c.reduce = bad[i].r;
        c.split = bad[i].s;
        c.overlap = bad[i].o;
        c.reproducible = bad[i].repro;
        nndl_step_plan p;
        nndl_err err = {0};
        nndl_plan_env env = {2, 2, 100, 50000, 0};
        cr_expect(eq(int, nndl_config_plan(&c, &env, &p, &err), NNDL_EARG), "case %zu", i);
        cr_expect(strstr(err.msg, bad[i].msg) != NULL, "case %zu: '%s' should say '%s'", i, err.msg,
                  bad[i].msg);
    }
}

Test(plan, split_where_no_shared_step_runs_is_unused_and_said)
{
    nndl_config c = base();
    c.reduce = NNDL_REDUCE_MPI;
    /* e.g. stored by a run that --resume now continues with --reduce mpi */
    c.split = NNDL_SPLIT_UNITS;
    nndl_step_plan p = plan(&c, 2, 2, 100);
    cr_expect(eq(int, p.kind, NNDL_STEP_ALLREDUCE));
    cr_expect(strstr(p.why, "--split unused") != NULL, "%s", p.why);
}

Test(plan, conv_nets_split_units_keep_conv_layers_by_rows)
{
    nndl_config c = base();
    nndl_step_plan p;
    nndl_err err;
    nndl_plan_env env = {2, 2, 1863690, 50000, 1}; /* the book's chapter-6 net with FC 1000 */
    cr_assert(eq(int, nndl_config_plan(&c, &env, &p, &err), NNDL_OK));
    cr_expect(eq(int, p.kind, NNDL_STEP_FUSED));
    cr_expect(eq(int, p.units, 1), "--split auto: units for >= 2^20 parameters");
    cr_expect(eq(int, p.conv_rows, 1), "the conv layers stay split by rows");
    char name[160];
    nndl_step_plan_name(&p, name, sizeof name);
    cr_expect(strstr(name, "conv layers by rows") != NULL, "%s", name);
    env.n_params = 86890; /* E: small, rows */
    cr_assert(eq(int, nndl_config_plan(&c, &env, &p, &err), NNDL_OK));
    cr_expect(eq(int, p.units + p.conv_rows, 0), "%s", p.why);
    cr_expect(eq(int, p.replicas, 1), "a conv net split by rows keeps a replica on every rank");
    nndl_step_plan_name(&p, name, sizeof name);
    cr_expect(strstr(name, "parameters replicated") != NULL, "%s", name);
    env.has_conv = 0; /* a dense net of that size: the shared parameters, as before */
    cr_assert(eq(int, nndl_config_plan(&c, &env, &p, &err), NNDL_OK));
    cr_expect(eq(int, p.shared - p.replicas, 1), "%s", p.why);
}

Test(plan, names_for_the_header)
{
    char buf[200];
    nndl_step_plan p = {.kind = NNDL_STEP_FUSED, .shared = 1, .units = 1};
    nndl_step_plan_name(&p, buf, sizeof buf);
    cr_expect(eq(str, buf, "fused (no gradient formed), node-shared, split by units"));
    p = (nndl_step_plan){.kind = NNDL_STEP_ALLREDUCE, .overlap = 1};
    nndl_step_plan_name(&p, buf, sizeof buf);
    cr_expect(eq(str, buf, "gradient + MPI_Allreduce, in buckets overlapping backprop"));
}
