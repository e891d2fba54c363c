/* nndl/dist.h: data parallelism over MPI ranks.
 *
 * Every global mini-batch of B samples is cut into P shards whose sizes differ by at most one
 * (P > B leaves some ranks an empty shard). Each rank sums its shard's gradient; one allreduce
 * sums the shards; every rank then applies the same update. Only this module and the programs
 * call MPI.
 */
#ifndef NNDL_DIST_H
#define NNDL_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "nndl/config.h"
#include "nndl/data.h"
#include "nndl/err.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
} nndl_dist;

/* Shard of rank r out of P over n items: [*first, *first + *len). Pure arithmetic, no MPI. */
void nndl_dist_shard(int n, int P, int r, int *first, int *len);

/* Use comm (errors return instead of aborting, so nndl can say why). */
nndl_status nndl_dist_init(nndl_dist *d, MPI_Comm comm, nndl_err *err);

/* In-place SUM of buf[0..n) over all ranks. */
nndl_status nndl_dist_sum_floats(const nndl_dist *d, float *buf, size_t n, nndl_err *err);
nndl_status nndl_dist_sum_doubles(const nndl_dist *d, double *buf, int n, nndl_err *err);
/* In-place exact SUM of int64 (the reproducible mode's fixed-point gradient) and MAX of floats. */
nndl_status nndl_dist_sum_int64(const nndl_dist *d, int64_t *buf, size_t n, nndl_err *err);
nndl_status nndl_dist_max_floats(const nndl_dist *d, float *buf, int n, nndl_err *err);

/* Non-blocking in-place SUMs (MPI_Iallreduce), for reductions that overlap backprop: start them in
 * the same order on every rank, let them advance with nndl_dist_progress, finish with
 * nndl_dist_wait. */
#define NNDL_MAX_BUCKETS 64
typedef struct {
    MPI_Request req[NNDL_MAX_BUCKETS];
    int n, rc; /* rc: the first MPI error */
} nndl_dist_pending;
void nndl_dist_isum_floats(const nndl_dist *d, float *buf, size_t n, nndl_dist_pending *p);
void nndl_dist_progress(nndl_dist_pending *p);
nndl_status nndl_dist_wait(nndl_dist_pending *p, nndl_err *err);

/* Broadcast bytes from rank 0 (MPI_Bcast). */
nndl_status nndl_dist_bcast(const nndl_dist *d, void *buf, size_t bytes, nndl_err *err);

/* Broadcast a malloc'ed string from rank 0: on the other ranks *s is replaced by a new copy. */
nndl_status nndl_dist_bcast_str(const nndl_dist *d, char **s, nndl_err *err);

/* Agree on failure: every rank passes its own status; all return the same worst status. The
 * failing rank (the lowest-numbered one with the worst status) keeps its message in err; the
 * others get "rank K failed" and *reporter (if not NULL) says whether this rank should print.
 * Collective: every rank must call it at the same point. */
nndl_status nndl_dist_agree(const nndl_dist *d, nndl_status st, nndl_err *err, int *reporter);

/* ---- one copy of the data set per node ----
 * The ranks of a node (MPI_Comm_split_type SHARED; the environment variable NNDL_PSEUDO_NODES=K
 * splits it further by rank % K, so one machine can test the several-node path) keep ONE copy of
 * the pixels in an MPI shared-memory window: node rank 0 reads the files, the others map its copy.
 */
typedef struct {
    MPI_Comm node;
    int node_rank, node_size;
    MPI_Win win[2];
    int n_win;
    int ready; /* node is a communicator to free (a zeroed struct is not) */
} nndl_node_share;

nndl_status nndl_dist_node_init(const nndl_dist *d, nndl_node_share *ns, nndl_err *err);

/* How many ranks of d share this node (as nndl_dist_node_init counts them). COLLECTIVE. */
nndl_status nndl_dist_node_ranks(const nndl_dist *d, int *node_ranks, nndl_err *err);

/* Collective over the node: node rank 0 has loaded *im (with status st); afterwards every rank of
 * the node has the same header and labels and points at one shared copy of the pixels. A failure on
 * node rank 0 is returned on every rank of the node (its message stays on node rank 0). */
nndl_status nndl_dist_share_images(nndl_node_share *ns, nndl_images *im, nndl_status st,
                                   nndl_err *err);

/* Collective over the node: free the windows and the communicator. */
void nndl_dist_node_free(nndl_node_share *ns);

/* ---- the node-shared step (all ranks on one node) ----
 * The parameters (and momentum's velocity) are one copy shared by the node, and so is one batch's
 * activations and deltas: every
 * rank writes its rows, then updates its part of every layer from the whole batch (the fused step
 * of nndl/net.h), so no gradient is ever reduced or copied and the update is split P ways. The
 * riders (cost, stop flag, bound) are each rank's slot of a small window, read by all. */
typedef struct {
    nndl_node_share ns; /* the node communicator (honours NNDL_PSEUDO_NODES) */
    MPI_Win wp, wg, wb;
    int ready;
    float *params;                      /* [n_params], shared */
    float *velocity;                    /* [n_params] after them (momentum), or NULL */
    float *batch;                       /* [n_batch], shared: the batch's activations and deltas */
    float *slot[NNDL_MAX_SHARED_RANKS]; /* each rank's riders [n_riders], shared */
} nndl_dist_shared;

/* Collective. *usable = 0 (nothing allocated) unless every rank of d is on this node and there are
 * at most NNDL_MAX_SHARED_RANKS. Node rank 0 copies params0 (and velocity0, the momentum's
 * velocity, if not NULL) into the shared copy; n_params 0 shares no parameters (params0 unread). */
nndl_status nndl_dist_shared_init(const nndl_dist *d, nndl_dist_shared *s, const float *params0,
                                  size_t n_params, const float *velocity0, size_t n_riders,
                                  size_t n_batch, int *usable, nndl_err *err);
/* A memory fence and a barrier over the node: every rank's writes before it are seen by all after.
 */
nndl_status nndl_dist_shared_sync(nndl_dist_shared *s, nndl_err *err);
void nndl_dist_shared_free(nndl_dist_shared *s); /* collective */

#endif
