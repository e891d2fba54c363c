/* safeio.c: atomic file replacement, SHA-256 and isolated reads (see nndl/safeio.h). */
#include "nndl/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-256 ---- */

nndl_status nndl_sha256_file(const char *path, char hex[NNDL_SHA256_HEX], nndl_err *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return nndl_fail(err, NNDL_EIO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    nndl_status st = NNDL_OK;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        st = nndl_fail(err, NNDL_ENOMEM, "SHA-256 setup failed");
    static __thread unsigned char buf[1 << 16];
    ssize_t n;
    while (st == NNDL_OK && (n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            st = nndl_fail(err, NNDL_EIO, "%s: read failed: %s", path, strerror(errno));
        } else {
            EVP_DigestUpdate(ctx, buf, (size_t)n);
        }
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (st == NNDL_OK) EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    close(fd);
    for (unsigned i = 0; st == NNDL_OK && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return st;
}

void nndl_sha256_bytes(const void *data, size_t len, char hex[NNDL_SHA256_HEX])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", i < mdlen ? md[i] : 0);
}

/* ---- atomic writes ---- */

static nndl_status fsync_path(const char *path, int dir, nndl_err *err)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return nndl_fail(err, NNDL_EIO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return nndl_fail(err, NNDL_EIO, "%s: fsync failed: %s", path, strerror(e));
    return NNDL_OK;
}

nndl_status nndl_commit_file(const char *tmp, const char *final, nndl_err *err)
{
    nndl_status st = fsync_path(tmp, 0, err);
    if (st != NNDL_OK) return st;
    if (rename(tmp, final) != 0)
        return nndl_fail(err, NNDL_EIO, "rename %s -> %s failed: %s", tmp, final, strerror(errno));
    char d[4096];
    snprintf(d, sizeof d, "%s", final);
    return fsync_path(dirname(d), 1, err);
}

nndl_status nndl_write_file_atomic(const char *path, const void *data, size_t len, nndl_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return nndl_fail(err, NNDL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return nndl_fail(err, NNDL_EIO, "%s: write failed: %s", tmp, strerror(e));
        }
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return nndl_fail(err, NNDL_EIO, "%s: close failed: %s", tmp, strerror(e));
    }
    nndl_status st = nndl_commit_file(tmp, path, err);
    if (st != NNDL_OK) unlink(tmp);
    return st;
}

/* ---- reading ---- */

nndl_status nndl_read_file(const char *path, size_t max, char **out, size_t *len, nndl_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return nndl_fail(err, errno == ENOENT ? NNDL_EARG : NNDL_EIO, "%s: %s", path,
                         strerror(errno));
    struct stat st; /* allocate what the file holds (growing if it is longer), never max up front */
    size_t cap = fstat(fileno(f), &st) == 0 && st.st_size >= 0 && (size_t)st.st_size < max
                     ? (size_t)st.st_size + 1
                     : max + 1;
    size_t n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0 && (n += r) == cap && cap <= max) {
        size_t next = cap * 2 > max + 1 ? max + 1 : cap * 2;
        char *b = realloc(buf, next + 1);
        if (!b) free(buf);
        buf = b;
        cap = next;
    }
    if (!buf) {
        fclose(f);
        return nndl_fail(err, NNDL_ENOMEM, "out of memory reading %s", path);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return nndl_fail(err, NNDL_EIO, "%s: read failed", path);
    }
    if (n > max) {
        free(buf);
        return nndl_fail(err, NNDL_EFORMAT, "%s: larger than %zu bytes: not the expected file",
                         path, max);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return NNDL_OK;
}

nndl_status nndl_check_writable_dir(const char *dir, const char *what, nndl_err *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return nndl_fail(err, NNDL_EARG,
                         "%s: directory %s does not exist (%s); create it first (mkdir -p %s)",
                         what, dir, strerror(errno), dir);
    if (!S_ISDIR(st.st_mode))
        return nndl_fail(err, NNDL_EARG, "%s: %s is not a directory", what, dir);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.nndl-write-test.%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return nndl_fail(err, NNDL_EARG,
                         "%s: cannot create files in %s: %s; choose a writable directory", what,
                         dir, strerror(errno));
    close(fd);
    unlink(probe);
    return NNDL_OK;
}

/* ---- isolated reads: a forked child with a time limit ---- */

static int write_all(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        done += (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes before the deadline; return bytes read. */
static size_t read_until(int fd, void *buf, size_t n, const struct timespec *deadline,
                         int *timed_out)
{
    size_t got = 0;
    while (got < n) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double left =
            (double)(deadline->tv_sec - t.tv_sec) + 1e-9 * (double)(deadline->tv_nsec - t.tv_nsec);
        if (left <= 0) {
            *timed_out = 1;
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    return got;
}

nndl_status nndl_isolated(nndl_isolated_fn fn, void *arg, void *out, size_t cap, double seconds,
                          const char *what, nndl_err *err)
{
    const char *limit = getenv("NNDL_READER_TIMEOUT"); /* seconds; tests and fuzzers shorten it */
    if (limit && atof(limit) > 0) seconds = atof(limit);
    int fds[2];
    if (pipe(fds) != 0) return nndl_fail(err, NNDL_EIO, "pipe failed: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return nndl_fail(err, NNDL_EIO, "fork failed: %s", strerror(errno));
    }
    /* child: the risky read; send the error record then the result; no atexit handlers */
    if (pid == 0) {
        close(fds[0]);
        /* a crash ends the child by its signal, quietly: not through the parent's handlers (a
         * fuzzer's, a sanitizer's) that would report it as the parent's own */
        int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
        for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) signal(fatal[i], SIG_DFL);
        alarm((unsigned)seconds + 2);
        nndl_err e = {0};
        e.code = fn(arg, out, cap, &e);
        if (write_all(fds[1], &e, sizeof e) != 0 ||
            (e.code == NNDL_OK && write_all(fds[1], out, cap) != 0))
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)seconds;
    nndl_err e;
    int timed_out = 0;
    size_t got = read_until(fds[0], &e, sizeof e, &deadline, &timed_out);
    if (got == sizeof e && e.code == NNDL_OK)
        got += read_until(fds[0], out, cap, &deadline, &timed_out);
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timed_out)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: reading it did not finish within %.0f s (HDF5 hangs on some damaged "
                         "files): the file is damaged or not an HDF5 file",
                         what, seconds);
    if (WIFSIGNALED(status))
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: reading it crashed the reader (signal %d; HDF5 crashes on some "
                         "damaged files): the file is damaged or not an HDF5 file",
                         what, WTERMSIG(status));
    if (got < sizeof e)
        return nndl_fail(err, NNDL_EIO, "%s: the isolated reader ended without an answer", what);
    e.msg[sizeof e.msg - 1] = 0;
    if (e.code != NNDL_OK) return nndl_fail(err, e.code, "%s", e.msg);
    if (got != sizeof e + cap)
        return nndl_fail(err, NNDL_EIO, "%s: the isolated reader's answer was cut short", what);
    return NNDL_OK;
}
