/* session.h: one nndl-train run on every rank: data, network, trainer and run file together.
 * Rank 0 writes the run file; every collective step is taken by all ranks in the same order. */
#ifndef NNDL_CLI_SESSION_H
#define NNDL_CLI_SESSION_H

#include "nndl/runfile.h"
#include "nndl/train.h"
#include "options.h"

typedef struct {
    nndl_images train_file, test_file;
    nndl_split train, val, test;
    char paths[4][4200];   /* train images, train labels, test images, test labels */
    nndl_node_share share; /* one copy of the pixels per node */
} nndl_dataset;

/* Load the dataset o names (one copy per node: node rank 0 reads, the others share it; collective),
 * split it as o says, check --sizes against it. */
nndl_status nndl_dataset_load(nndl_dataset *ds, const nndl_options *o, const nndl_dist *d,
                              nndl_err *err);
void nndl_dataset_free(nndl_dataset *ds);

/* The net the configuration describes, over the data's images (a bad --layers names the flag). */
nndl_status create_net(const nndl_config *c, const nndl_dataset *ds, nndl_net **net, nndl_err *err);

typedef struct {
    nndl_options *o;
    const nndl_dist *d;
    nndl_dataset ds;
    nndl_net *net;
    nndl_step_plan plan; /* the step the trainer runs, resolved once (nndl_trainer_plan) */
    nndl_trainer *tr;
    nndl_run run; /* rank 0's record; the others keep only progress */
    nndl_run_paths paths;
    float *act[NNDL_MAX_SIZES]; /* this rank's probe activations, per probe layer */
    int probe_first, probe_rows;
    int resumed;                     /* continued from a checkpoint */
    double last_row[NNDL_N_METRICS]; /* the last epoch's metrics (for the log) */
    double speed[NNDL_MAX_SIZES];    /* --monitor speed: the last measured, per weight layer */
    int speed_epoch;                 /* its epoch; -1 before any */
    int last_ckpt_epoch;
    long last_ckpt_step;
} nndl_session;

/* Everything before the first epoch: options merged with a resumed run's, data, network, the step
 * plan, parameters (initialised, --init-from or the checkpoint's), the trainer (with hooks), run
 * file started. Collective. */
nndl_status nndl_session_start(nndl_session *s, nndl_options *o, const nndl_dist *d, int argc,
                               char **argv, const nndl_train_hooks *hooks, nndl_err *err);

/* 1 while epochs remain: fewer than --epochs done and the schedule has not stopped training. */
int nndl_session_more(const nndl_session *s);

/* After each epoch: best model, metrics, snapshot, checkpoint, main file. Collective. */
nndl_status nndl_session_epoch_end(nndl_session *s, const nndl_epoch_metrics *m, nndl_err *err);

/* The on_step hook: a mid-epoch checkpoint. Collective. */
nndl_status nndl_session_on_step(nndl_session *s, nndl_err *err);

/* The end: last checkpoint if needed, status in the run file. Collective. */
nndl_status nndl_session_finish(nndl_session *s, nndl_status st, nndl_err *err);

void nndl_session_free(nndl_session *s);

#endif
