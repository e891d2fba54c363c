/* nndl/runfile.h: the HDF5 run file (layout: docs/runfile.md).
 *
 * runs/NAME.h5 is the file users open. It is small and always replaced whole (temporary, fsync,
 * rename), and it reaches the bulky, write-once files in runs/NAME.h5.d/ through virtual datasets
 * (weight histories, probe activations) and an external link (/checkpoint), so h5py and h5dump
 * read the run as one file:
 *   MANIFEST.json          format version, configuration, SHA-256 of every file below
 *   ckpt-EEEEEE-SSSSSSSS.h5  checkpoints (after E epochs and S steps of the next), the last K kept
 *   hist-EEEEEE.h5         one weight snapshot (written by rank 0)
 *   act-EEEEEE.h5          the probe activations of that snapshot (parallel HDF5: each rank its
 * rows) Every file is written under a temporary name and renamed when complete, so a kill at any
 * instant leaves the previous state readable. Only this module calls HDF5.
 */
#ifndef NNDL_RUNFILE_H
#define NNDL_RUNFILE_H

#include <mpi.h>
#include <stdint.h>

#include "nndl/net.h"
#include "nndl/safeio.h"
#include "nndl/train.h"

#define NNDL_FORMAT_VERSION                                                                        \
    2 /* 2: conv layers (4-D weights, layer attributes kind, kernel, pool) */

enum {
    NNDL_M_EPOCH,
    NNDL_M_TRAIN_COST,
    NNDL_M_VAL_ACCURACY,
    NNDL_M_VAL_COST,
    NNDL_M_LEARNING_RATE,
    NNDL_M_SECONDS,
    NNDL_M_SAMPLES_PER_S,
    NNDL_M_EVAL_SECONDS,
    NNDL_M_TRAIN_ACCURACY,
    NNDL_M_TRAIN_FULL_COST,
    NNDL_M_TEST_ACCURACY,
    NNDL_M_TEST_COST,
    NNDL_N_METRICS
};
extern const char *const nndl_metric_names[NNDL_N_METRICS];

/* Everything a run records besides the network's parameters and the training state
 * (nndl_train_state): enough, with them, to resume. */
typedef struct {
    /* identity: fixed for the run (strings are malloc'ed) */
    char *config_json; /* keys = nndl-train's long flag names without the dashes */
    char *command_line, *host, *start_time, *dataset, *dataset_sha256_json;
    int world_size; /* ranks of the run's latest launch */
    /* per-epoch metrics, NaN where not measured */
    int n_epochs, cap_epochs;
    double *metrics[NNDL_N_METRICS];
    /* snapshots (weight history + probe activations) */
    int n_snaps, cap_snaps;
    int *snap_epoch;
    /* --monitor speed: the speed of learning of each of speed_layers weight layers at the start
     * (epoch 0) and after each epoch: speed[k * speed_layers + l] at speed_epoch[k] */
    int n_speed, cap_speed, speed_layers;
    int *speed_epoch;
    double *speed;
    /* probes */
    int n_probe;
    int *probe_index; /* global row in the training IDX file */
    uint8_t *probe_label;
    int n_probe_layers;
    int probe_layers[64];  /* 1-based weight layers whose outputs are recorded */
    int probe_conv;        /* a conv layer's outputs are recorded for the first probe_conv probes */
    int image_h, image_w;  /* and their images are kept, [probe_conv x image_h x image_w] */
    uint8_t *probe_images; /* NULL when the net has no conv layer */
    /* best epoch by validation accuracy */
    int best_epoch;
    double best_val, best_test;
    float *best_params; /* [n_params], NULL until an epoch completes */
    /* how the run ended */
    const char *status; /* "running", "completed", "stopped", "failed" */
    int exit_status;
} nndl_run;

void nndl_run_free(nndl_run *r);
/* Append one epoch's metrics (m[NNDL_N_METRICS]). */
nndl_status nndl_run_add_epoch(nndl_run *r, const double *m, nndl_err *err);
nndl_status nndl_run_add_snapshot(nndl_run *r, int epoch, nndl_err *err);
/* Append the speeds v[0 .. layers) of epoch (layers: the net's weight layers, every time). */
nndl_status nndl_run_add_speed(nndl_run *r, int epoch, const double *v, int layers, nndl_err *err);

/* Paths of a run: dir = main + ".d" */
typedef struct {
    char main[4096], dir[4200];
} nndl_run_paths;
void nndl_run_paths_of(nndl_run_paths *p, const char *main);

/* ---- writing (rank 0 unless said) ---- */

/* Write the checkpoint of run + net + the training state as dir/ckpt-E-S.h5 (atomically) and record
 * it in the manifest, keeping the newest keep checkpoints. */
nndl_status nndl_runfile_checkpoint(const nndl_run_paths *p, const nndl_run *r, const nndl_net *net,
                                    const nndl_train_state *state, int keep, nndl_err *err);

/* Write the weight snapshot of epoch E as dir/hist-E.h5 (gzip level 0-9, 0 = none). */
nndl_status nndl_runfile_history(const nndl_run_paths *p, int epoch, const nndl_net *net, int gzip,
                                 nndl_err *err);

/* COLLECTIVE over comm: write the probe activations of snapshot E as dir/act-E.h5 with parallel
 * HDF5. act[k] holds this rank's rows [first, first + rows) of layer probe_layers[k]'s output. */
nndl_status nndl_runfile_activations(MPI_Comm comm, const nndl_run_paths *p, int epoch,
                                     const nndl_run *r, const nndl_net *net, float *const *act,
                                     int first, int rows, nndl_err *err);

/* Rewrite the main file from run + net (atomically), keeping any /eval results it had, and record
 * its SHA-256 in the manifest. state gives the epoch and step it was written at. */
nndl_status nndl_runfile_write_main(const nndl_run_paths *p, const nndl_run *r, const nndl_net *net,
                                    const nndl_train_state *state, nndl_err *err);

/* ---- reading ---- */

/* Read the manifest: check it is an nndl run of a format this build reads; return its
 * configuration JSON (malloc'ed) and the newest checkpoint whose SHA-256 matches (ckpt[0] = 0
 * when there is none: the run was killed before its first checkpoint). */
nndl_status nndl_runfile_open(const nndl_run_paths *p, char **config_json, char *ckpt, size_t cap,
                              nndl_err *err);

/* Load a checkpoint (already verified) into run, net (created by the caller from the config) and
 * state: state->velocity is the caller's buffer of state->n_velocity floats (NULL and 0 without
 * momentum); the checkpoint's velocity must then be that long. */
nndl_status nndl_runfile_load_checkpoint(const char *path, nndl_run *r, nndl_net *net,
                                         nndl_train_state *state, nndl_err *err);

/* Load /model/layer_K/{weights,biases} of any HDF5 file into net, reading it in an isolated child
 * (HDF5 may crash on damaged files); shapes must match net. */
nndl_status nndl_runfile_load_model(const char *path, nndl_net *net, nndl_err *err);

/* Store a confusion matrix [n x n] (rows = true label) with its accuracy and cost as
 * /eval/SPLIT in the main file (rewritten atomically; manifest updated). */
nndl_status nndl_runfile_store_eval(const nndl_run_paths *p, const char *split,
                                    const int64_t *confusion, int n, double accuracy, double cost,
                                    int epoch, nndl_err *err);

/* Copy a run into one self-contained HDF5 file: virtual datasets become real ones, the external
 * link becomes a group, no companion files needed. */
nndl_status nndl_runfile_pack(const nndl_run_paths *p, const char *out, nndl_err *err);

#endif
