/* nndl/topo.h: the machine's topology (hwloc), the binding of each rank to its share of the cores,
 * and oversubscription. */
#ifndef NNDL_TOPO_H
#define NNDL_TOPO_H

#include "nndl/err.h"

typedef struct {
    int cores;                  /* physical cores of the machine (hwloc) */
    int local_rank, local_size; /* this rank among the ranks of its node */
    int oversubscribed;         /* more ranks on the node than cores */
    int bound_by_us;            /* we bound the rank (the launcher had not) */
    char binding[128];          /* the rank's cpuset as a list, e.g. "0" or "0-1" */
} nndl_topo;

/* Before MPI_Init: when the launcher tells how many ranks share this node (mpirun:
 * OMPI_COMM_WORLD_LOCAL_SIZE; srun: SLURM_TASKS_PER_NODE) and they outnumber the cores, ask Open
 * MPI to yield while waiting (OMPI_MCA_mpi_yield_when_idle=1, unless set): busy-polling ranks on
 * shared cores wait for the scheduler in every collective. Returns 1 if it did. */
int nndl_topo_prepare(void);

/* After MPI_Init, given this rank's place on its node: discover the topology, keep the launcher's
 * binding if it set one, else bind to this rank's share of the cores. */
nndl_status nndl_topo_init(nndl_topo *t, int local_rank, int local_size, nndl_err *err);

#endif
