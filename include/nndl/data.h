/* nndl/data.h: IDX image/label files (raw or gzipped), the dataset, splits and batch gathering.
 *
 * Pixels are stored once, as uint8, and scaled to [0, 1] floats only when a batch is gathered.
 * A split (training, validation, test) is a list of row indices into one image set, so the
 * book's 50,000/10,000 split of the training file costs no copy.
 */
#ifndef NNDL_DATA_H
#define NNDL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "nndl/err.h"

#define NNDL_IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define NNDL_IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */

typedef struct {
    int n;             /* images */
    int rows, cols;    /* pixels per image = rows * cols */
    int n_classes;     /* labels are in [0, n_classes) */
    uint8_t *pixels;   /* [n x rows*cols] */
    uint8_t *labels;   /* [n] */
    int shared_pixels; /* pixels belong to a shared-memory window (dist), not to this struct */
} nndl_images;

typedef struct {
    const nndl_images *src;
    int n;
    int *idx; /* [n] rows of src */
} nndl_split;

/* Read an IDX image file and its label file (each raw or gzip: zlib reads both) into *out, and
 * check them: magic numbers, dimensions, lengths (truncated or trailing data), equal counts, and
 * every label < n_classes. hint is appended to errors about missing files (e.g. the command that
 * fetches them). On failure *out is left empty. Free with nndl_images_free. */
nndl_status nndl_images_load(nndl_images *out, const char *images_path, const char *labels_path,
                             int n_classes, const char *hint, nndl_err *err);
void nndl_images_free(nndl_images *im);

/* Find the file named base in dir, as base or base.gz. path receives the one found (or, when
 * neither exists, dir/base). Return 1 if found. */
int nndl_data_find(char *path, size_t cap, const char *dir, const char *base);

/* split = rows [first, first + n) of src. */
nndl_status nndl_split_range(nndl_split *s, const nndl_images *src, int first, int n,
                             nndl_err *err);

/* Split src into train (n_train rows) and val (n_val rows): either the last n_val rows are the
 * validation set (random = 0: the book's split of the MNIST training file) or a seeded random
 * choice (random = 1). Rows beyond n_train + n_val are unused. */
nndl_status nndl_split_train_val(nndl_split *train, nndl_split *val, const nndl_images *src,
                                 int n_train, int n_val, int random, uint64_t seed, nndl_err *err);
void nndl_split_free(nndl_split *s);

/* x[i] = pixels of split row order[i] / 255 and y[i] = its label, for i in [0, n).
 * order holds positions in the split (0 .. s->n - 1). x is [n x rows*cols]. */
void nndl_split_gather(const nndl_split *s, const int *order, int n, float *x, uint8_t *y);

/* Data augmentation while gathering (no stored copy of the expanded set): each image moved by
 * dx, dy in {-1, 0, 1} (zeros shifted in), drawn from (seed, epoch, position in the split), so
 * every rank draws the same shift for a sample. */
typedef struct {
    int shift; /* 0 = off */
    uint64_t seed;
    uint32_t epoch;
} nndl_augment;
void nndl_augment_shift_of(const nndl_augment *a, int sample, int *dx, int *dy);
void nndl_split_gather_aug(const nndl_split *s, const int *order, int n, float *x, uint8_t *y,
                           const nndl_augment *a);

/* Ask the CPU to start loading the pixels of rows order[0..n) (the next batch, while this one is
 * computed): a batch's rows are scattered over the data set, so each costs cache misses. */
void nndl_split_prefetch(const nndl_split *s, const int *order, int n);

/* The same for the contiguous positions [first, first + n) of the split. */
void nndl_split_gather_range(const nndl_split *s, int first, int n, float *x, uint8_t *y);

#endif
