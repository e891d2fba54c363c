/* runfile_int.h: what runfile.c and ckpt.c share (not a public header). */
#ifndef NNDL_RUNFILE_INT_H
#define NNDL_RUNFILE_INT_H

#include <cjson/cJSON.h>

#include "h5util.h"
#include "nndl/runfile.h"

/* Load dir/MANIFEST.json (a new empty manifest if it does not exist and create is set). */
nndl_status manifest_load(const nndl_run_paths *p, int create, cJSON **out, nndl_err *err);
/* Write it atomically. */
nndl_status manifest_save(const nndl_run_paths *p, cJSON *m, nndl_err *err);
/* Add the configuration object to a manifest that has none yet. */
void manifest_set_config(cJSON *m, const char *config_json);
/* Record name's SHA-256 (computed here) under "files" and save; path = dir/name. */
nndl_status manifest_add_file(const nndl_run_paths *p, const char *config_json, const char *name,
                              nndl_err *err);
/* Check dir/name against its recorded SHA-256 before HDF5 opens it. */
nndl_status manifest_verify(const nndl_run_paths *p, cJSON *m, const char *name, nndl_err *err);

/* Check the main file against the SHA-256 the manifest recorded when nndl last wrote it. */
nndl_status manifest_verify_main(const nndl_run_paths *p, nndl_err *err);

/* The shape of weight layer L's weights: [n_out x n_in] (dense) or [F x C x k x k] (conv); the
 * rank. */
int layer_dims(const nndl_layer *L, hsize_t *dims);

/* The probes whose outputs of weight layer l are recorded: all of them, or a conv layer's first
 * few. */
int probe_rows_of(const nndl_run *r, const nndl_net *net, int l);

/* The shape of one probe's recorded output of weight layer l (a conv layer's F x Hp x Wp); the
 * rank. */
int probe_dims(const nndl_net *net, int l, hsize_t *dims);

/* Write the parameters of buf (laid out as net's) as GROUP/layer_K/{weights,biases}. */
herr_t write_layers(hid_t f, const char *group, const nndl_net *net, const float *buf, int gzip);
/* /best (the best epoch's parameters and attributes) and /metrics/NAME: the same in checkpoints
 * and in the main file. */
herr_t write_best(hid_t f, const nndl_run *r, const nndl_net *net);
herr_t write_metrics(hid_t f, const nndl_run *r);
herr_t write_speed(hid_t f, const nndl_run *r);

/* The snapshot epochs and the probes (indices, labels, layers) into group g, under names[0..3]. */
herr_t write_probes(hid_t g, const nndl_run *r, const char *const names[4]);

/* Read them into buf; shapes must match net (-2 otherwise). */
herr_t read_layers(hid_t f, const char *group, const nndl_net *net, float *buf);

#endif
