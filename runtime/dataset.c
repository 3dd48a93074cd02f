/* dataset.c — a dataset is an images IDX file and its labels IDX file;
 * this finds the labels and the test set next to a training file by the
 * usual MNIST names, loads and cross-checks the pair, and fills batches.
 *
 * Images stay in their file's type in memory (Fashion-MNIST is 47 MB as
 * uint8 and would be 188 MB as float32); nnrt_batch_fill converts one batch
 * at a time into the model's dtype.
 */
#include "nnrt.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Replaces the first `from` in s (at or after `start`) with `to`, in place;
 * s has room for `cap` bytes. False if `from` does not occur or it would
 * not fit. */
static bool replace_first(char *s, size_t cap, size_t start, const char *from, const char *to) {
    char *p = strstr(s + start, from);
    if (!p)
        return false;
    size_t flen = strlen(from), tlen = strlen(to), rest = strlen(p + flen);
    if ((size_t)(p - s) + tlen + rest + 1 > cap)
        return false;
    memmove(p + tlen, p + flen, rest + 1);
    memcpy(p, to, tlen);
    return true;
}

/* Tries `cand` as it is, then with ".gz" added or removed; the first that
 * exists goes to out. */
static bool try_both_compressions(const char *cand, char *out, size_t outlen) {
    char other[4096];
    size_t n = strlen(cand);
    if (ends_with(cand, ".gz"))
        snprintf(other, sizeof other, "%.*s", (int)(n - 3), cand);
    else if ((size_t)snprintf(other, sizeof other, "%s.gz", cand) >= sizeof other)
        other[0] = '\0';
    const char *tries[2] = {cand, other};
    for (int i = 0; i < 2; i++) {
        if (tries[i][0] && is_file(tries[i]) && strlen(tries[i]) < outlen) {
            memcpy(out, tries[i], strlen(tries[i]) + 1);
            return true;
        }
    }
    return false;
}

/* Where the base name starts: after the last '/'. */
static size_t base_offset(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash + 1 - path) : 0;
}

bool nnrt_find_labels(const char *images_path, char *out, size_t outlen) {
    char cand[4096];
    if (strlen(images_path) >= sizeof cand)
        return false;
    strcpy(cand, images_path);
    size_t base = base_offset(cand);
    bool changed = replace_first(cand, sizeof cand, base, "images", "labels");
    /* "idxN" with N a digit (the images' rank) becomes "idx1". */
    for (char *p = strstr(cand + base, "idx"); p; p = strstr(p + 3, "idx")) {
        if (p[3] >= '2' && p[3] <= '9') {
            p[3] = '1';
            changed = true;
            break;
        }
    }
    return changed && try_both_compressions(cand, out, outlen);
}

bool nnrt_find_test(const char *train_images_path, char *out, size_t outlen) {
    static const char *const test_names[] = {"t10k", "test"};
    for (int i = 0; i < 2; i++) {
        char cand[4096];
        if (strlen(train_images_path) >= sizeof cand)
            return false;
        strcpy(cand, train_images_path);
        if (!replace_first(cand, sizeof cand, base_offset(cand), "train", test_names[i]))
            return false;
        if (try_both_compressions(cand, out, outlen))
            return true;
    }
    return false;
}

bool nnrt_idx_check_finite(const NnrtIdx *idx, const char *path, char *err, size_t errlen) {
    if (idx->type != NNRT_F32 && idx->type != NNRT_F64)
        return true;
    size_t per = nnrt_idx_sample_size(idx);
    for (size_t i = 0; i < idx->count; i++) {
        double v = nnrt_idx_get(idx, i);
        if (!(fabs(v) <= FLT_MAX))
            return nnrt_fail(err, errlen, "%s: sample %zu holds %g (element %zu), not a finite float32", path,
                             i / per, v, i % per);
    }
    return true;
}

/* The headers of a pair of files agree: with target_size 0 the labels are
 * one per sample (rank 1), else targets of target_size elements per sample. */
static bool headers_agree(const char *images, const char *labels, size_t target_size, const NnrtIdx *im,
                          const NnrtIdx *lb, char *err, size_t errlen) {
    if (!target_size && lb->rank != 1)
        return nnrt_fail(err, errlen, "%s: labels must be rank 1 (one per sample), but the file has "
                         "rank %d", labels, lb->rank);
    if (target_size && nnrt_idx_sample_size(lb) != target_size)
        return nnrt_fail(err, errlen, "%s: targets of %zu elements per sample, but the model's targets have %zu",
                         labels, nnrt_idx_sample_size(lb), target_size);
    if (im->dims[0] == 0)
        return nnrt_fail(err, errlen, "%s: the file holds no samples", images);
    if (im->dims[0] != lb->dims[0])
        return nnrt_fail(err, errlen, "%s holds %u samples but %s holds %u %s", images,
                         (unsigned)im->dims[0], labels, (unsigned)lb->dims[0], target_size ? "targets" : "labels");
    return true;
}

/* Reads both files, their headers first: a header may declare gigabytes
 * (a small gzip inflates to them), and the other file's shows it false
 * before any data is read. */
static bool load_pair(const char *images, const char *labels, size_t target_size, NnrtDataset *out,
                      char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    NnrtIdxFile *imf = nnrt_idx_open(images, &out->images, err, errlen);
    NnrtIdxFile *lbf = imf ? nnrt_idx_open(labels, &out->labels, err, errlen) : NULL;
    const NnrtIdx *im = &out->images, *lb = &out->labels;
    bool ok = imf && lbf && headers_agree(images, labels, target_size, im, lb, err, errlen) &&
              nnrt_idx_read_data(imf, &out->images, err, errlen) &&
              nnrt_idx_read_data(lbf, &out->labels, err, errlen) &&
              nnrt_idx_check_finite(im, images, err, errlen) && nnrt_idx_check_finite(lb, labels, err, errlen);
    nnrt_idx_close(imf);
    nnrt_idx_close(lbf);
    if (!ok) {
        nnrt_dataset_free(out);
        return false;
    }
    out->n = im->dims[0];
    out->sample_size = nnrt_idx_sample_size(im);
    out->label_size = target_size ? target_size : 1;
    return true;
}

bool nnrt_dataset_load_targets(const char *inputs, const char *targets, size_t target_size,
                               NnrtDataset *out, char *err, size_t errlen) {
    return load_pair(inputs, targets, target_size, out, err, errlen);
}

bool nnrt_dataset_load(const char *images, const char *labels, size_t classes,
                       NnrtDataset *out, char *err, size_t errlen) {
    if (!load_pair(images, labels, 0, out, err, errlen))
        return false;
    const NnrtIdx *lb = &out->labels;
    bool ok = true;
    for (size_t i = 0; ok && classes > 0 && i < lb->count; i++) {
        double v = nnrt_idx_get(lb, i);
        if (v != floor(v)) /* also NaN */
            ok = nnrt_fail(err, errlen, "%s: label %g at index %zu is not an integer", labels, v, i);
        else if (v < 0 || v >= (double)classes)
            ok = nnrt_fail(err, errlen, "%s: label %g at index %zu is out of range for %zu classes",
                      labels, v, i, classes);
    }
    if (!ok)
        nnrt_dataset_free(out);
    return ok;
}

/* An IDX array of float64 [n, k] holding a copy of v. */
static bool idx_of(size_t n, size_t k, const double *v, NnrtIdx *out) {
    size_t count;
    if (n > UINT32_MAX || k > UINT32_MAX || __builtin_mul_overflow(n, k, &count) || count > SIZE_MAX / 8)
        return false;
    *out = (NnrtIdx){.type = NNRT_F64, .rank = 2, .dims = {(uint32_t)n, (uint32_t)k}, .count = count,
                     .elem_size = 8, .data = malloc(count ? count * 8 : 1)};
    if (out->data)
        memcpy(out->data, v, count * 8);
    return out->data != NULL;
}

bool nnrt_dataset_from_memory(size_t n, const double *x, size_t sample_size, const double *y,
                              size_t label_size, NnrtDataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!idx_of(n, sample_size, x, &out->images) || !idx_of(n, label_size, y, &out->labels)) {
        nnrt_dataset_free(out);
        return nnrt_fail(err, errlen, "out of memory for %zu samples of inline data", n);
    }
    out->n = n;
    out->sample_size = sample_size;
    out->label_size = label_size;
    return true;
}

void nnrt_dataset_free(NnrtDataset *ds) {
    nnrt_idx_free(&ds->images);
    nnrt_idx_free(&ds->labels);
    ds->n = ds->sample_size = ds->label_size = 0;
}

void nnrt_batch_fill(const NnrtDataset *ds, const uint32_t *idx, size_t b,
                     int dtype_bytes, bool raw_u8, void *x, void *y) {
    size_t ss = ds->sample_size, ls = ds->label_size;
    bool u8 = ds->images.type == NNRT_U8;
    const unsigned char *bytes = ds->images.data;
    /* uint8 is the common case and worth its own loop: a table of the 256
     * scaled values makes each pixel a load, where converting it was most of
     * the cost of filling a batch (and copying the bytes, raw_u8, is less). */
    float lutf[256];
    double lutd[256];
    for (int v = 0; u8 && !raw_u8 && v < 256; v++) {
        lutf[v] = (float)v * (float)(1.0 / 255);
        lutd[v] = v * (1.0 / 255);
    }
    for (size_t i = 0; i < b; i++) {
        size_t src = (size_t)idx[i] * ss, dst = i * ss;
        /* Samples are shuffled: ask for the next one's lines now, while this
         * one is converted, or each starts with cache misses. */
        if (u8 && i + 1 < b)
            for (size_t k = 0; k < ss; k += 64)
                __builtin_prefetch(bytes + (size_t)idx[i + 1] * ss + k);
        if (raw_u8) {
            memcpy((unsigned char *)x + dst, bytes + src, ss);
        } else if (dtype_bytes == 4) {
            float *xf = x;
            if (u8)
                for (size_t k = 0; k < ss; k++)
                    xf[dst + k] = lutf[bytes[src + k]];
            else
                for (size_t k = 0; k < ss; k++)
                    xf[dst + k] = (float)nnrt_idx_get(&ds->images, src + k);
        } else {
            double *xd = x;
            if (u8)
                for (size_t k = 0; k < ss; k++)
                    xd[dst + k] = lutd[bytes[src + k]];
            else
                for (size_t k = 0; k < ss; k++)
                    xd[dst + k] = nnrt_idx_get(&ds->images, src + k);
        }
        for (size_t k = 0; k < ls; k++) {
            double v = nnrt_idx_get(&ds->labels, (size_t)idx[i] * ls + k);
            if (dtype_bytes == 4)
                ((float *)y)[i * ls + k] = (float)v;
            else
                ((double *)y)[i * ls + k] = v;
        }
    }
}
