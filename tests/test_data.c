/* The IDX reader on good files (raw and gzip) and on each kind of bad file; splits and gathers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nndl/data.h"

static char dir[] = "/tmp/nndl-test-data-XXXXXX";

static void setup(void) { cr_assert(mkdtemp(dir) != NULL); }
static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect(eq(int, system(cmd), 0));
}

static void be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* An IDX image file of n images of r x c pixels (pixel k of image i = (i + k) % 256), with
 * magic, count and extra/missing bytes adjustable; gzip = 1 writes it compressed. */
static const char *write_images(const char *name, uint32_t magic, int n, int r, int c, int extra,
                                int gzip)
{
    static char path[4][512];
    static int turn;
    char *p = path[turn++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    size_t bytes = 16 + (size_t)n * r * c + extra;
    unsigned char *buf = calloc(1, bytes + 16);
    be32(buf, magic);
    be32(buf + 4, n);
    be32(buf + 8, r);
    be32(buf + 12, c);
    for (size_t k = 16; k < bytes; k++)
        buf[k] = (unsigned char)(((k - 16) / (r * c) + (k - 16) % (r * c)) % 256);
    if (gzip) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, buf, (unsigned)bytes);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(buf, 1, bytes, f);
        fclose(f);
    }
    free(buf);
    return p;
}

static const char *write_labels(const char *name, uint32_t magic, int n, int count, int bad_at,
                                int gzip)
{
    static char path[2][512];
    static int turn;
    char *p = path[turn++ % 2];
    snprintf(p, 512, "%s/%s", dir, name);
    unsigned char *buf = calloc(1, 8 + (size_t)count);
    be32(buf, magic);
    be32(buf + 4, n);
    for (int i = 0; i < count; i++) buf[8 + i] = (unsigned char)(i % 10);
    if (bad_at >= 0) buf[8 + bad_at] = 10;
    if (gzip) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, buf, 8 + count);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(buf, 1, 8 + (size_t)count, f);
        fclose(f);
    }
    free(buf);
    return p;
}

static nndl_status load(nndl_images *im, const char *imgs, const char *labs, nndl_err *err)
{
    return nndl_images_load(im, imgs, labs, 10, "fetch them with tools/fetch-data mnist", err);
}

TestSuite(idx, .init = setup, .fini = teardown);

Test(idx, reads_raw_and_gzip_alike)
{
    for (int gz = 0; gz < 2; gz++) {
        nndl_images im;
        nndl_err err;
        const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, 0, gz);
        const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 5, -1, gz);
        cr_assert(eq(int, load(&im, i, l, &err), NNDL_OK), "%s", err.msg);
        cr_expect(eq(int, im.n, 5));
        cr_expect(eq(int, im.rows, 3));
        cr_expect(eq(int, im.cols, 4));
        cr_expect(eq(u8, im.pixels[2 * 12 + 5], 7), "pixel 5 of image 2");
        cr_expect(eq(u8, im.labels[4], 4));
        nndl_images_free(&im);
    }
}

#define EXPECT_FAIL(st, code, substr)                                                              \
    do {                                                                                           \
        cr_expect(eq(int, (st), (code)), "status for: %s", err.msg);                               \
        cr_expect(strstr(err.msg, (substr)) != NULL, "message '%s' should mention '%s'", err.msg,  \
                  (substr));                                                                       \
    } while (0)

Test(idx, missing_file_names_path_and_fix)
{
    nndl_images im;
    nndl_err err;
    char p[600];
    snprintf(p, sizeof p, "%s/nope", dir);
    EXPECT_FAIL(load(&im, p, p, &err), NNDL_EARG, "nope");
    cr_expect(strstr(err.msg, "tools/fetch-data mnist") != NULL, "%s", err.msg);
}

Test(idx, wrong_magic)
{
    nndl_images im;
    nndl_err err;
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 5, -1, 0);
    EXPECT_FAIL(load(&im, l, l, &err), NNDL_EFORMAT, "IDX magic 0x00000801, expected 0x00000803");
    const char *i = write_images("img", 0x00000d03, 5, 3, 4, 0, 1);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT, "IDX magic 0x00000d03");
}

Test(idx, truncated_images_and_labels)
{
    nndl_images im;
    nndl_err err;
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 5, -1, 0);
    const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, -7, 0);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT,
                "truncated: the pixel data needs 60 bytes, found 53");
    i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, 0, 1);
    l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 3, -1, 1);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT,
                "truncated: the labels needs 5 bytes, found 3");
    FILE *f = fopen(l, "wb");
    fwrite("\0\0\x08", 1, 3, f); /* not even a header */
    fclose(f);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT, "IDX magic number");
}

Test(idx, trailing_bytes)
{
    nndl_images im;
    nndl_err err;
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 5, -1, 0);
    const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, 3, 0);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT, "trailing bytes");
}

Test(idx, counts_that_disagree)
{
    nndl_images im;
    nndl_err err;
    const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, 0, 0);
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 6, 6, -1, 0);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT, "6 labels, but the image file has 5 images");
}

Test(idx, label_out_of_range)
{
    nndl_images im;
    nndl_err err;
    const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 5, 3, 4, 0, 0);
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 5, 5, 3, 0);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT,
                "label 10 of item 3 is out of range (expected 0 to 9)");
}

Test(idx, damaged_gzip)
{
    nndl_images im;
    nndl_err err;
    const char *i = write_images("img.gz", NNDL_IDX_MAGIC_IMAGES, 50, 8, 8, 0, 1);
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 50, 50, -1, 0);
    FILE *f = fopen(i, "r+b");
    fseek(f, 30, SEEK_SET);
    fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, f);
    fclose(f);
    nndl_status st = load(&im, i, l, &err);
    cr_expect(eq(int, st, NNDL_EFORMAT), "%s", err.msg);
}

Test(idx, implausible_dimensions)
{
    nndl_images im;
    nndl_err err;
    const char *i = write_images("img", NNDL_IDX_MAGIC_IMAGES, 0, 3, 4, 0, 0);
    const char *l = write_labels("lab", NNDL_IDX_MAGIC_LABELS, 0, 0, -1, 0);
    EXPECT_FAIL(load(&im, i, l, &err), NNDL_EFORMAT, "implausible IDX dimensions");
}

Test(idx, finds_plain_or_gz)
{
    char p[600];
    write_images("a-idx3-ubyte.gz", NNDL_IDX_MAGIC_IMAGES, 1, 1, 1, 0, 1);
    cr_expect(eq(int, nndl_data_find(p, sizeof p, dir, "a-idx3-ubyte"), 1));
    cr_expect(strstr(p, "a-idx3-ubyte.gz") != NULL, "%s", p);
    cr_expect(eq(int, nndl_data_find(p, sizeof p, dir, "b-idx3-ubyte"), 0));
}

Test(split, book_split_random_split_and_gather)
{
    nndl_images im = {.n = 10, .rows = 1, .cols = 2, .n_classes = 10};
    uint8_t px[20], lab[10];
    for (int i = 0; i < 20; i++) px[i] = (uint8_t)(i * 10);
    for (int i = 0; i < 10; i++) lab[i] = (uint8_t)i;
    im.pixels = px;
    im.labels = lab;
    nndl_split tr, va;
    nndl_err err;
    cr_assert(eq(int, nndl_split_train_val(&tr, &va, &im, 6, 3, 0, 1, &err), NNDL_OK));
    cr_expect(eq(int, tr.idx[5], 5));
    cr_expect(eq(int, va.idx[0], 7), "the last 3 rows validate");
    float x[4];
    uint8_t y[2];
    int order[] = {2, 0};
    nndl_split_gather(&va, order, 2, x, y);
    cr_expect(eq(u8, y[0], 9));
    cr_expect(eq(flt, x[1], 190.0f / 255.0f));
    nndl_split_free(&tr);
    nndl_split_free(&va);
    cr_assert(eq(int, nndl_split_train_val(&tr, &va, &im, 7, 3, 1, 5, &err), NNDL_OK));
    int seen[10] = {0};
    for (int i = 0; i < 7; i++) seen[tr.idx[i]]++;
    for (int i = 0; i < 3; i++) seen[va.idx[i]]++;
    for (int i = 0; i < 10; i++) cr_expect(eq(int, seen[i], 1), "row %d used once", i);
    nndl_split_free(&tr);
    nndl_split_free(&va);
    cr_expect(eq(int, nndl_split_train_val(&tr, &va, &im, 8, 3, 0, 1, &err), NNDL_EARG));
}
