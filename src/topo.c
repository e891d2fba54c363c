/* topo.c: hwloc topology and rank binding (see nndl/topo.h). */
#include "nndl/topo.h"

#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cores_of_machine(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return 0;
    int n = hwloc_topology_load(topo) == 0 ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) : 0;
    hwloc_topology_destroy(topo);
    return n;
}

int nndl_topo_prepare(void)
{
    const char *s = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!s) s = getenv("SLURM_TASKS_PER_NODE"); /* "8", or "4(x2)": the first node's count */
    int local = s ? atoi(s) : 0, cores = cores_of_machine();
    const char *cpus = getenv("SLURM_CPUS_ON_NODE");
    /* the allocation's share */
    if (cpus && atoi(cpus) > 0 && atoi(cpus) < cores) cores = atoi(cpus);
    if (local > cores && cores > 0 && !getenv("OMPI_MCA_mpi_yield_when_idle")) {
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
        return 1;
    }
    return 0;
}

nndl_status nndl_topo_init(nndl_topo *t, int local_rank, int local_size, nndl_err *err)
{
    memset(t, 0, sizeof *t);
    t->local_rank = local_rank;
    t->local_size = local_size;
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0)
        return nndl_fail(err, NNDL_EIO, "hwloc could not read the machine's topology");
    t->cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    t->oversubscribed = local_size > t->cores;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    hwloc_const_bitmap_t all = hwloc_topology_get_topology_cpuset(topo);
    if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) hwloc_bitmap_copy(set, all);
    if (hwloc_bitmap_isequal(set, all) && !t->oversubscribed && t->cores > 0) {
        /* not bound by the launcher: this rank's share of the cores */
        int per = t->cores / local_size, first = local_rank * per;
        hwloc_bitmap_zero(set);
        for (int c = first; c < first + per; c++) {
            hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)c);
            if (core) hwloc_bitmap_or(set, set, core->cpuset);
        }
        if (!hwloc_bitmap_iszero(set) && hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0)
            t->bound_by_us = 1;
        else
            hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS);
    }
    hwloc_bitmap_list_snprintf(t->binding, sizeof t->binding, set);
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
    return NNDL_OK;
}
