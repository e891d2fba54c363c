/* data.c: IDX files through zlib (raw or gzip), splits, and the uint8 -> float batch gather. */
#include "nndl/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "hot.h"
#include "nndl/rng.h"

/* ---- IDX ---- */

static nndl_status read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what,
                              nndl_err *err)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r < 0) {
            int zerr;
            const char *zmsg = gzerror(f, &zerr);
            return nndl_fail(err, NNDL_EFORMAT,
                             "%s: cannot read %s: %s (damaged gzip?); re-fetch the data", path,
                             what, zerr == Z_ERRNO ? strerror(errno) : zmsg);
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got < n)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: truncated: %s needs %zu bytes, found %zu; re-fetch the data", path,
                         what, n, got);
    return NNDL_OK;
}

/* Open path, check its magic and read ndim big-endian dimensions into dims. */
static nndl_status idx_open(gzFile *out, const char *path, uint32_t magic, int ndim, uint32_t *dims,
                            off_t *file_size, const char *hint, nndl_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return nndl_fail(err, errno == ENOENT ? NNDL_EARG : NNDL_EIO, "%s: %s%s%s", path,
                         strerror(errno), hint && *hint ? "; " : "", hint ? hint : "");
    if (!S_ISREG(st.st_mode)) return nndl_fail(err, NNDL_EARG, "%s: not a regular file", path);
    *file_size = st.st_size;
    gzFile f = gzopen(path, "rb");
    if (!f) return nndl_fail(err, NNDL_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(f, 1 << 18);
    unsigned char h[4 + 4 * 3];
    nndl_status s = read_exact(f, path, h, 4, "the IDX magic number", err);
    if (s != NNDL_OK) {
        gzclose(f);
        return s;
    }
    uint32_t m = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (m != magic) {
        gzclose(f);
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: IDX magic 0x%08x, expected 0x%08x (%s); is it the right file? "
                         "re-fetch with tools/fetch-data",
                         path, m, magic,
                         magic == NNDL_IDX_MAGIC_IMAGES ? "ubyte images, 3 dimensions"
                                                        : "ubyte labels, 1 dimension");
    }
    s = read_exact(f, path, h + 4, 4 * (size_t)ndim, "the IDX header", err);
    if (s != NNDL_OK) {
        gzclose(f);
        return s;
    }
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    *out = f;
    return NNDL_OK;
}

/* Before allocating what a header announces: a raw file must hold exactly header + data bytes, and
 * a gzip file cannot inflate beyond 1032 times its size (deflate's maximum ratio). So a damaged or
 * hostile header never makes nndl allocate more than the file could really deliver. */
static nndl_status check_size(gzFile f, const char *path, off_t file_size, size_t header,
                              size_t bytes, const char *what, nndl_err *err)
{
    if (gzdirect(f)) {
        if ((size_t)file_size < header + bytes)
            return nndl_fail(err, NNDL_EFORMAT,
                             "%s: truncated: %s needs %zu bytes, found %lld; re-fetch the data",
                             path, what, bytes, (long long)file_size - (long long)header);
        if ((size_t)file_size > header + bytes)
            return nndl_fail(err, NNDL_EFORMAT,
                             "%s: trailing bytes after the data the header announces; damaged "
                             "file? re-fetch the data",
                             path);
        return NNDL_OK;
    }
    if ((double)bytes > 1032.0 * (double)file_size + 4096.0)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: the header announces %zu bytes of %s, more than a gzip file of %lld "
                         "bytes can hold; damaged file? re-fetch the data",
                         path, bytes, what, (long long)file_size);
    return NNDL_OK;
}

static nndl_status expect_end(gzFile f, const char *path, nndl_err *err)
{
    char c;
    int r = gzread(f, &c, 1);
    if (r > 0)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: trailing bytes after the data the header announces; "
                         "damaged file? re-fetch the data",
                         path);
    if (r < 0) return read_exact(f, path, &c, 1, "the end of the file", err);
    return NNDL_OK;
}

void nndl_images_free(nndl_images *im)
{
    if (!im->shared_pixels) free(im->pixels);
    free(im->labels);
    memset(im, 0, sizeof *im);
}

static nndl_status load_images(nndl_images *im, const char *path, const char *hint, nndl_err *err)
{
    gzFile f = NULL;
    uint32_t d[3] = {0, 0, 0};
    off_t size = 0;
    nndl_status s = idx_open(&f, path, NNDL_IDX_MAGIC_IMAGES, 3, d, &size, hint, err);
    if (s != NNDL_OK) return s;
    if (d[0] == 0 || d[0] > (1u << 28) || d[1] == 0 || d[2] == 0 || d[1] > 4096 || d[2] > 4096) {
        gzclose(f);
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: implausible IDX dimensions %u x %u x %u; re-fetch the data", path,
                         d[0], d[1], d[2]);
    }
    size_t bytes = (size_t)d[0] * d[1] * d[2];
    if ((s = check_size(f, path, size, 16, bytes, "the pixel data", err)) != NNDL_OK) {
        gzclose(f);
        return s;
    }
    im->pixels = malloc(bytes);
    if (!im->pixels) {
        gzclose(f);
        return nndl_fail(err, NNDL_ENOMEM, "%s: out of memory for %zu bytes", path, bytes);
    }
    im->n = (int)d[0];
    im->rows = (int)d[1];
    im->cols = (int)d[2];
    s = read_exact(f, path, im->pixels, bytes, "the pixel data", err);
    if (s == NNDL_OK) s = expect_end(f, path, err);
    gzclose(f);
    return s;
}

static nndl_status load_labels(nndl_images *im, const char *path, const char *hint, nndl_err *err)
{
    gzFile f = NULL;
    uint32_t n = 0;
    off_t size = 0;
    nndl_status s = idx_open(&f, path, NNDL_IDX_MAGIC_LABELS, 1, &n, &size, hint, err);
    if (s != NNDL_OK) return s;
    if (n != (uint32_t)im->n) {
        gzclose(f);
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: %u labels, but the image file has %d images; "
                         "the two files do not belong together",
                         path, n, im->n);
    }
    if ((s = check_size(f, path, size, 8, n, "the labels", err)) != NNDL_OK) {
        gzclose(f);
        return s;
    }
    im->labels = malloc(n ? n : 1);
    if (!im->labels) {
        gzclose(f);
        return nndl_fail(err, NNDL_ENOMEM, "%s: out of memory", path);
    }
    s = read_exact(f, path, im->labels, n, "the labels", err);
    if (s == NNDL_OK) s = expect_end(f, path, err);
    gzclose(f);
    for (uint32_t i = 0; s == NNDL_OK && i < n; i++)
        if (im->labels[i] >= im->n_classes)
            s = nndl_fail(err, NNDL_EFORMAT,
                          "%s: label %u of item %u is out of range (expected 0 to %d)", path,
                          im->labels[i], i, im->n_classes - 1);
    return s;
}

nndl_status nndl_images_load(nndl_images *out, const char *images_path, const char *labels_path,
                             int n_classes, const char *hint, nndl_err *err)
{
    memset(out, 0, sizeof *out);
    out->n_classes = n_classes;
    nndl_status s = load_images(out, images_path, hint, err);
    if (s == NNDL_OK) s = load_labels(out, labels_path, hint, err);
    if (s != NNDL_OK) nndl_images_free(out);
    return s;
}

int nndl_data_find(char *path, size_t cap, const char *dir, const char *base)
{
    struct stat st;
    snprintf(path, cap, "%s/%s.gz", dir, base);
    if (stat(path, &st) == 0) return 1;
    snprintf(path, cap, "%s/%s", dir, base);
    return stat(path, &st) == 0;
}

/* ---- splits ---- */

nndl_status nndl_split_range(nndl_split *s, const nndl_images *src, int first, int n, nndl_err *err)
{
    s->src = src;
    s->n = n;
    s->idx = malloc(sizeof *s->idx * (n > 0 ? n : 1));
    if (!s->idx) return nndl_fail(err, NNDL_ENOMEM, "out of memory for a split of %d rows", n);
    for (int i = 0; i < n; i++) s->idx[i] = first + i;
    return NNDL_OK;
}

nndl_status nndl_split_train_val(nndl_split *train, nndl_split *val, const nndl_images *src,
                                 int n_train, int n_val, int random, uint64_t seed, nndl_err *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (n_train < 1 || n_val < 0 || n_train > src->n - n_val)
        return nndl_fail(err, NNDL_EARG,
                         "cannot take %d training and %d validation samples from %d", n_train,
                         n_val, src->n);
    if (!random) { /* the book: the last n_val rows validate, training takes rows from the start */
        nndl_status s = nndl_split_range(train, src, 0, n_train, err);
        if (s == NNDL_OK) s = nndl_split_range(val, src, src->n - n_val, n_val, err);
        if (s != NNDL_OK) {
            nndl_split_free(train);
            nndl_split_free(val);
        }
        return s;
    }
    int *perm = malloc(sizeof *perm * src->n);
    if (!perm) return nndl_fail(err, NNDL_ENOMEM, "out of memory for a random split");
    nndl_rng_permutation(seed, NNDL_STREAM_SPLIT, 0, perm, src->n);
    nndl_status s = nndl_split_range(val, src, 0, n_val, err);
    if (s == NNDL_OK) s = nndl_split_range(train, src, 0, n_train, err);
    if (s == NNDL_OK) {
        memcpy(val->idx, perm, sizeof *perm * n_val);
        memcpy(train->idx, perm + n_val, sizeof *perm * n_train);
    } else {
        nndl_split_free(train);
        nndl_split_free(val);
    }
    free(perm);
    return s;
}

void nndl_split_free(nndl_split *s)
{
    free(s->idx);
    s->idx = NULL;
    s->n = 0;
}

/* ---- gather ---- */

static void gather_row(const nndl_images *im, int row, float *x)
{
    const int d = im->rows * im->cols;
    const uint8_t *p = im->pixels + (size_t)row * d;
    for (int k = 0; k < d; k++) x[k] = (float)p[k] * (1.0f / 255.0f);
}

NNDL_HOT void nndl_split_gather(const nndl_split *s, const int *order, int n, float *x, uint8_t *y)
{
    const int d = s->src->rows * s->src->cols;
    for (int i = 0; i < n; i++) {
        int row = s->idx[order[i]];
        gather_row(s->src, row, x + (size_t)i * d);
        y[i] = s->src->labels[row];
    }
}

void nndl_split_prefetch(const nndl_split *s, const int *order, int n)
{
    const size_t d = (size_t)s->src->rows * s->src->cols;
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)s->src->pixels + (size_t)s->idx[order[i]] * d;
        for (size_t k = 0; k < d; k += 64) __builtin_prefetch(p + k, 0, 1);
    }
}

NNDL_HOT void nndl_split_gather_range(const nndl_split *s, int first, int n, float *x, uint8_t *y)
{
    const int d = s->src->rows * s->src->cols;
    for (int i = 0; i < n; i++) {
        int row = s->idx[first + i];
        gather_row(s->src, row, x + (size_t)i * d);
        y[i] = s->src->labels[row];
    }
}

void nndl_augment_shift_of(const nndl_augment *a, int sample, int *dx, int *dy)
{
    uint32_t w[4];
    nndl_rng_block(a->seed, NNDL_STREAM_AUGMENT, a->epoch, (uint64_t)(uint32_t)sample, w);
    int k = (int)(((uint64_t)w[0] * 9) >> 32); /* uniform over the 9 moves, (0, 0) included */
    *dx = k % 3 - 1;
    *dy = k / 3 - 1;
}

NNDL_HOT void nndl_split_gather_aug(const nndl_split *s, const int *order, int n, float *x,
                                    uint8_t *y, const nndl_augment *a)
{
    if (!a || !a->shift) {
        nndl_split_gather(s, order, n, x, y);
        return;
    }
    const nndl_images *im = s->src;
    const int R = im->rows, C = im->cols, d = R * C;
    for (int i = 0; i < n; i++) {
        int row = s->idx[order[i]], dx, dy;
        nndl_augment_shift_of(a, order[i], &dx, &dy);
        const uint8_t *p = im->pixels + (size_t)row * d;
        float *o = x + (size_t)i * d;
        for (int r = 0; r < R; r++) {
            int sr = r - dy;
            for (int c = 0; c < C; c++) {
                int sc = c - dx;
                o[r * C + c] = sr >= 0 && sr < R && sc >= 0 && sc < C
                                   ? (float)p[sr * C + sc] * (1.0f / 255.0f)
                                   : 0.0f;
            }
        }
        y[i] = im->labels[row];
    }
}
