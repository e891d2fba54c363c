/* dist.c: shards and the reductions of data-parallel training (see nndl/dist.h). */
#include "nndl/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- shards and the communicator ---- */

void nndl_dist_shard(int n, int P, int r, int *first, int *len)
{
    int base = n / P, rem = n % P;
    *first = r * base + (r < rem ? r : rem);
    *len = base + (r < rem);
}

static nndl_status mpi_fail(nndl_err *err, int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    return nndl_fail(err, NNDL_EMPI, "%s failed: %s", what, s);
}

nndl_status nndl_dist_init(nndl_dist *d, MPI_Comm comm, nndl_err *err)
{
    int rc;
    d->comm = comm;
    if ((rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
        (rc = MPI_Comm_rank(comm, &d->rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(comm, &d->size)) != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI communicator setup");
    return NNDL_OK;
}

/* ---- reductions ---- */

nndl_status nndl_dist_sum_floats(const nndl_dist *d, float *buf, size_t n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK : mpi_fail(err, rc, "MPI_Allreduce of the gradient");
}

nndl_status nndl_dist_sum_doubles(const nndl_dist *d, double *buf, int n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK : mpi_fail(err, rc, "MPI_Allreduce of the metrics");
}

void nndl_dist_isum_floats(const nndl_dist *d, float *buf, size_t n, nndl_dist_pending *p)
{
    if (p->rc != MPI_SUCCESS || p->n >= NNDL_MAX_BUCKETS) {
        if (p->rc == MPI_SUCCESS) p->rc = MPI_ERR_OTHER;
        return;
    }
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, d->comm, &p->req[p->n]);
    if (rc == MPI_SUCCESS)
        p->n++;
    else
        p->rc = rc;
}

void nndl_dist_progress(nndl_dist_pending *p)
{
    int done;
    if (p->n > 0 && p->rc == MPI_SUCCESS) {
        int rc = MPI_Testall(p->n, p->req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) p->rc = rc;
    }
}

nndl_status nndl_dist_wait(nndl_dist_pending *p, nndl_err *err)
{
    int rc = p->rc;
    if (p->n > 0) {
        int w = MPI_Waitall(p->n, p->req, MPI_STATUSES_IGNORE);
        if (rc == MPI_SUCCESS) rc = w;
    }
    p->n = 0;
    p->rc = MPI_SUCCESS;
    return rc == MPI_SUCCESS ? NNDL_OK : mpi_fail(err, rc, "MPI_Iallreduce of a gradient bucket");
}

nndl_status nndl_dist_sum_int64(const nndl_dist *d, int64_t *buf, size_t n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK
                             : mpi_fail(err, rc, "MPI_Allreduce of the fixed-point gradient");
}

nndl_status nndl_dist_max_floats(const nndl_dist *d, float *buf, int n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_MAX, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK
                             : mpi_fail(err, rc, "MPI_Allreduce of the gradient's ranges");
}

/* ---- agreement and broadcasts ---- */

nndl_status nndl_dist_agree(const nndl_dist *d, nndl_status st, nndl_err *err, int *reporter)
{
    struct {
        int value, rank;
    } in = {(int)st, d->rank}, out = in;
    if (d->size > 1) {
        int rc = MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MAXLOC, d->comm); /* ties: lowest rank */
        if (rc != MPI_SUCCESS) {
            if (reporter) *reporter = 1;
            return mpi_fail(err, rc, "MPI_Allreduce agreeing on errors");
        }
    }
    if (reporter) *reporter = out.value != NNDL_OK && out.rank == d->rank;
    if (out.value != NNDL_OK && out.rank != d->rank) {
        nndl_fail(err, (nndl_status)out.value, "rank %d failed (it reports why)", out.rank);
        if (err) err->silent = 1;
    }
    return (nndl_status)out.value;
}

nndl_status nndl_dist_bcast(const nndl_dist *d, void *buf, size_t bytes, nndl_err *err)
{
    /* MPI counts are int: send in pieces of 1 GiB */
    for (size_t off = 0; d->size > 1 && off < bytes;) {
        int n = bytes - off > (1u << 30) ? (1 << 30) : (int)(bytes - off);
        int rc = MPI_Bcast((char *)buf + off, n, MPI_BYTE, 0, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
        off += (size_t)n;
    }
    return NNDL_OK;
}

nndl_status nndl_dist_bcast_str(const nndl_dist *d, char **s, nndl_err *err)
{
    long long n = d->rank == 0 && *s ? (long long)strlen(*s) : -1;
    nndl_status st = nndl_dist_bcast(d, &n, sizeof n, err);
    if (st != NNDL_OK) return st;
    if (d->rank == 0) return n < 0 ? NNDL_OK : nndl_dist_bcast(d, *s, (size_t)n, err);
    free(*s);
    *s = NULL;
    if (n < 0) return NNDL_OK;
    if (!(*s = malloc((size_t)n + 1))) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    (*s)[n] = 0;
    return nndl_dist_bcast(d, *s, (size_t)n, err);
}

/* ---- one copy of the data set per node ---- */

nndl_status nndl_dist_node_init(const nndl_dist *d, nndl_node_share *ns, nndl_err *err)
{
    memset(ns, 0, sizeof *ns);
    ns->node = MPI_COMM_NULL;
    MPI_Comm node;
    int rc = MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_split_type(SHARED)");
    const char *pseudo = getenv("NNDL_PSEUDO_NODES");
    int k = pseudo ? atoi(pseudo) : 0;
    if (k > 1) { /* tests: pretend the machine is k nodes */
        MPI_Comm split;
        rc = MPI_Comm_split(node, d->rank % k, d->rank, &split);
        MPI_Comm_free(&node);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_split (NNDL_PSEUDO_NODES)");
        node = split;
    }
    MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    ns->node = node;
    ns->ready = 1;
    MPI_Comm_rank(node, &ns->node_rank);
    MPI_Comm_size(node, &ns->node_size);
    return NNDL_OK;
}

nndl_status nndl_dist_node_ranks(const nndl_dist *d, int *node_ranks, nndl_err *err)
{
    nndl_node_share ns;
    nndl_status st = nndl_dist_node_init(d, &ns, err);
    *node_ranks = st == NNDL_OK ? ns.node_size : 1;
    nndl_dist_node_free(&ns);
    return st;
}

nndl_status nndl_dist_share_images(nndl_node_share *ns, nndl_images *im, nndl_status st,
                                   nndl_err *err)
{
    long long hdr[5] = {st, im->n, im->rows, im->cols, im->n_classes};
    int rc = MPI_Bcast(hdr, 5, MPI_LONG_LONG, 0, ns->node);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast of the data header");
    if (hdr[0] != NNDL_OK) {
        if (ns->node_rank != 0)
            nndl_fail(err, (nndl_status)hdr[0],
                      "the data loader of this node failed (it reports why)");
        return (nndl_status)hdr[0];
    }
    size_t bytes = (size_t)hdr[1] * (size_t)hdr[2] * (size_t)hdr[3];
    if (ns->node_rank != 0) {
        memset(im, 0, sizeof *im);
        im->n = (int)hdr[1];
        im->rows = (int)hdr[2];
        im->cols = (int)hdr[3];
        im->n_classes = (int)hdr[4];
        if (!(im->labels = malloc((size_t)im->n)))
            return nndl_fail(err, NNDL_ENOMEM, "out of memory for labels");
    }
    if ((rc = MPI_Bcast(im->labels, im->n, MPI_UNSIGNED_CHAR, 0, ns->node)) != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Bcast of the labels");
    /* alone on the node: keep the private copy */
    if (ns->node_size == 1 || ns->n_win == 2) return NNDL_OK;
    void *base = NULL;
    MPI_Win win;
    rc = MPI_Win_allocate_shared(ns->node_rank == 0 ? (MPI_Aint)bytes : 0, 1, MPI_INFO_NULL,
                                 ns->node, &base, &win);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Win_allocate_shared for the data set");
    ns->win[ns->n_win++] = win;
    MPI_Aint size;
    int disp;
    uint8_t *shared;
    MPI_Win_shared_query(win, 0, &size, &disp, &shared);
    if (ns->node_rank == 0) {
        memcpy(shared, im->pixels, bytes);
        free(im->pixels);
    }
    im->pixels = shared;
    im->shared_pixels = 1;
    rc = MPI_Barrier(ns->node); /* the copy is complete before anyone reads it */
    return rc == MPI_SUCCESS ? NNDL_OK
                             : mpi_fail(err, rc, "MPI_Barrier after sharing the data set");
}

void nndl_dist_node_free(nndl_node_share *ns)
{
    if (!ns->ready) return;
    for (int i = 0; i < ns->n_win; i++) MPI_Win_free(&ns->win[i]);
    MPI_Comm_free(&ns->node);
    ns->n_win = 0;
    ns->ready = 0;
}

/* ---- the node-shared reduction ---- */

nndl_status nndl_dist_shared_init(const nndl_dist *d, nndl_dist_shared *s, const float *params0,
                                  size_t n_params, const float *velocity0, size_t n_riders,
                                  size_t n_batch, int *usable, nndl_err *err)
{
    memset(s, 0, sizeof *s);
    *usable = 0;
    nndl_status st = nndl_dist_node_init(d, &s->ns, err);
    if (st != NNDL_OK) return st;
    if (s->ns.node_size != d->size || d->size > NNDL_MAX_SHARED_RANKS) {
        nndl_dist_node_free(&s->ns);
        return NNDL_OK;
    }
    MPI_Comm node = s->ns.node;
    int r = s->ns.node_rank, rc;
    float *mine;
    size_t n_state = velocity0 ? 2 * n_params : n_params;
    rc = MPI_Win_allocate_shared(r == 0 ? (MPI_Aint)(sizeof(float) * n_state) : 0, sizeof(float),
                                 MPI_INFO_NULL, node, &mine, &s->wp);
    if (rc == MPI_SUCCESS)
        rc = MPI_Win_allocate_shared((MPI_Aint)(sizeof(float) * n_riders), sizeof(float),
                                     MPI_INFO_NULL, node, &mine, &s->wg);
    if (rc == MPI_SUCCESS)
        rc = MPI_Win_allocate_shared(r == 0 ? (MPI_Aint)(sizeof(float) * n_batch) : 0,
                                     sizeof(float), MPI_INFO_NULL, node, &mine, &s->wb);
    if (rc != MPI_SUCCESS) {
        nndl_dist_node_free(&s->ns);
        return mpi_fail(err, rc, "MPI_Win_allocate_shared (the node-shared parameters and batch)");
    }
    MPI_Aint size;
    int unit;
    MPI_Win_shared_query(s->wp, 0, &size, &unit, &s->params);
    MPI_Win_shared_query(s->wb, 0, &size, &unit, &s->batch);
    for (int k = 0; k < s->ns.node_size; k++)
        MPI_Win_shared_query(s->wg, k, &size, &unit, &s->slot[k]);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->wp);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->wg);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->wb);
    s->velocity = velocity0 ? s->params + n_params : NULL;
    if (r == 0 && n_params) memcpy(s->params, params0, sizeof(float) * n_params);
    if (r == 0 && velocity0) memcpy(s->velocity, velocity0, sizeof(float) * n_params);
    s->ready = 1;
    *usable = 1;
    return nndl_dist_shared_sync(s, err);
}

nndl_status nndl_dist_shared_sync(nndl_dist_shared *s, nndl_err *err)
{
    MPI_Win_sync(s->wp);
    MPI_Win_sync(s->wg);
    MPI_Win_sync(s->wb);
    int rc = MPI_Barrier(s->ns.node);
    MPI_Win_sync(s->wp);
    MPI_Win_sync(s->wg);
    MPI_Win_sync(s->wb);
    return rc == MPI_SUCCESS ? NNDL_OK
                             : mpi_fail(err, rc, "MPI_Barrier of the node-shared reduction");
}

void nndl_dist_shared_free(nndl_dist_shared *s)
{
    if (!s->ready) return;
    MPI_Win_unlock_all(s->wp);
    MPI_Win_unlock_all(s->wg);
    MPI_Win_unlock_all(s->wb);
    MPI_Win_free(&s->wp);
    MPI_Win_free(&s->wg);
    MPI_Win_free(&s->wb);
    nndl_dist_node_free(&s->ns);
    s->ready = 0;
}
