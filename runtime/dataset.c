/* dataset.c — a dataset is an images IDX file and its labels IDX file;
 * this finds the labels and the test set next to a training file by the
 * usual MNIST names, loads and cross-checks the pair, and fills batches.
 *
 * Images stay in their file's type in memory (Fashion-MNIST is 47 MB as
 * uint8 and would be 188 MB as float32); nnrt_batch_fill converts one batch
 * at a time into the model's dtype.
 */
#include "nnrt.h"

#include <ctype.h>
#include <errno.h>
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

/* An array file, IDX or .npy (by its first bytes), open at its data. */
typedef struct Array {
    NnrtStream *in;
    const char *path;
    bool npy;
    NnrtNpyLayout lay;
} Array;

static bool is_npy(NnrtStream *in) {
    const unsigned char *b;
    return nnrt_stream_peek(in, &b) >= 6 && !memcmp(b, "\x93NUMPY", 6);
}

/* The header of the array `in` (which a takes) into out. */
static bool array_header(Array *a, NnrtStream *in, const char *path, NnrtIdx *out, char *err, size_t errlen) {
    *a = (Array){.in = in, .path = path};
    if (!in)
        return false;
    a->npy = is_npy(in);
    return a->npy ? nnrt_npy_header(in, path, out, &a->lay, err, errlen) : nnrt_idx_header(in, out);
}

static bool array_data(Array *a, NnrtIdx *out, char *err, size_t errlen) {
    return a->npy ? nnrt_npy_read_data(a->in, &a->lay, out, err, errlen)
                  : nnrt_idx_read_data(a->in, out, err, errlen);
}

/* Reads both arrays, their headers first: a header may declare gigabytes
 * (a small gzip inflates to them), and the other file's shows it false
 * before any data is read. */
static bool load_arrays(NnrtStream *xs, const char *images, NnrtStream *ys, const char *labels, size_t target_size,
                        NnrtDataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    Array x, y;
    bool ok = array_header(&x, xs, images, &out->images, err, errlen);
    ok = array_header(&y, ys, labels, &out->labels, err, errlen) && ok;
    const NnrtIdx *im = &out->images, *lb = &out->labels;
    ok = ok && headers_agree(images, labels, target_size, im, lb, err, errlen) &&
         array_data(&x, &out->images, err, errlen) && array_data(&y, &out->labels, err, errlen) &&
         nnrt_idx_check_finite(im, images, err, errlen) && nnrt_idx_check_finite(lb, labels, err, errlen);
    nnrt_stream_close(xs);
    nnrt_stream_close(ys);
    if (!ok) {
        nnrt_dataset_free(out);
        return false;
    }
    out->n = im->dims[0];
    out->sample_size = nnrt_idx_sample_size(im);
    out->label_size = target_size ? target_size : 1;
    return true;
}

static bool load_pair(const char *images, const char *labels, size_t target_size, NnrtDataset *out,
                      char *err, size_t errlen) {
    NnrtStream *xs = nnrt_stream_open(images, err, errlen);
    NnrtStream *ys = xs ? nnrt_stream_open(labels, err, errlen) : NULL;
    if (!ys) {
        nnrt_stream_close(xs);
        memset(out, 0, sizeof *out);
        return false;
    }
    return load_arrays(xs, images, ys, labels, target_size, out, err, errlen);
}

bool nnrt_dataset_load_targets(const char *inputs, const char *targets, size_t target_size,
                               NnrtDataset *out, char *err, size_t errlen) {
    return load_pair(inputs, targets, target_size, out, err, errlen);
}

/* Every label an integer in [0, classes) (classes 0: any value). */
static bool check_classes(const NnrtDataset *ds, const char *labels, size_t classes, char *err, size_t errlen) {
    const NnrtIdx *lb = &ds->labels;
    for (size_t i = 0; classes > 0 && i < lb->count; i++) {
        double v = nnrt_idx_get(lb, i);
        if (v != floor(v)) /* also NaN */
            return nnrt_fail(err, errlen, "%s: label %g at index %zu is not an integer", labels, v, i);
        if (v < 0 || v >= (double)classes)
            return nnrt_fail(err, errlen, "%s: label %g at index %zu is out of range for %zu classes", labels, v,
                             i, classes);
    }
    return true;
}

bool nnrt_dataset_load(const char *images, const char *labels, size_t classes,
                       NnrtDataset *out, char *err, size_t errlen) {
    if (!load_pair(images, labels, 0, out, err, errlen))
        return false;
    if (check_classes(out, labels, classes, err, errlen))
        return true;
    nnrt_dataset_free(out);
    return false;
}

/* Zero labels, label_size per sample: the evaluation step wants some,
 * prediction ignores them. */
static bool zero_labels(NnrtDataset *ds, size_t label_size) {
    nnrt_idx_free(&ds->labels);
    size_t n = ds->images.dims[0];
    ds->labels = (NnrtIdx){.type = NNRT_U8, .rank = 2, .dims = {(uint32_t)n, (uint32_t)label_size},
                           .count = n * label_size, .elem_size = 1, .data = calloc(n ? n : 1, label_size)};
    ds->n = n;
    ds->label_size = label_size;
    return ds->labels.data != NULL;
}

/* An array of inputs alone (prediction), its header checked before its
 * data is read: a file of samples of another size is refused before its
 * data (which a header may declare by the gigabyte) is read. */
static bool load_inputs(NnrtStream *in, const char *path, const NnrtWant *w, NnrtDataset *out, char *err,
                        size_t errlen) {
    Array x;
    memset(out, 0, sizeof *out);
    NnrtIdx *im = &out->images;
    bool ok = array_header(&x, in, path, im, err, errlen);
    if (ok && nnrt_idx_sample_size(im) != w->sample_size)
        ok = nnrt_fail(err, errlen, "'%s' holds samples of %zu elements, but the model's input has %zu", path,
                       nnrt_idx_sample_size(im), w->sample_size);
    else if (ok && im->dims[0] == 0)
        ok = nnrt_fail(err, errlen, "%s: the file holds no samples", path);
    ok = ok && array_data(&x, im, err, errlen) && nnrt_idx_check_finite(im, path, err, errlen);
    nnrt_stream_close(in);
    out->sample_size = nnrt_idx_sample_size(im);
    return ok;
}

/* An .npz archive: its members (w->unlabelled: the inputs alone). The
 * archive is read whole, as a zip's members are found from its headers. */
static bool load_npz(const char *path, const NnrtDataSpec *spec, const NnrtWant *w, NnrtDataset *out,
                     char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        return nnrt_fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    unsigned char *zip = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
    bool ok = zip && fread(zip, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
    fclose(f);
    if (!ok) {
        free(zip);
        return nnrt_fail(err, errlen, "%s: cannot read it whole (%zu bytes)", path, (size_t)st.st_size);
    }
    const char *xn = spec->inputs ? spec->inputs : "x", *yn = spec->outputs ? spec->outputs : "y";
    char xname[4352], yname[4352];
    snprintf(xname, sizeof xname, "%s[%s]", path, xn);
    snprintf(yname, sizeof yname, "%s[%s]", path, yn);
    const unsigned char *xd, *yd;
    size_t xl, yl;
    bool xdef, ydef;
    ok = nnrt_npz_member(zip, (size_t)st.st_size, path, xn, &xd, &xl, &xdef, err, errlen) &&
         (w->unlabelled || nnrt_npz_member(zip, (size_t)st.st_size, path, yn, &yd, &yl, &ydef, err, errlen));
    NnrtStream *xs = ok ? nnrt_stream_open_mem(xd, xl, xdef, xname, err, errlen) : NULL;
    NnrtStream *ys = xs && !w->unlabelled ? nnrt_stream_open_mem(yd, yl, ydef, yname, err, errlen) : NULL;
    if (xs && w->unlabelled) {
        ok = load_inputs(xs, xname, w, out, err, errlen);
    } else if (ys) {
        ok = load_arrays(xs, xname, ys, yname, w->classes ? 0 : w->label_size, out, err, errlen);
    } else {
        nnrt_stream_close(xs);
        ok = false;
    }
    free(zip);
    return ok;
}

bool nnrt_dataset_read(const char *path, const char *labels, const NnrtDataSpec *spec, const NnrtWant *w,
                       NnrtClasses *classes, NnrtDataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    NnrtStream *in = nnrt_stream_open(path, err, errlen);
    if (!in)
        return false;
    const unsigned char *b;
    long long nb = nnrt_stream_peek(in, &b);
    if (nb < 0) {
        nnrt_stream_close(in);
        return false;
    }
    /* A table is text: a file that is empty or starts with control bytes
     * is an array, whose reader says what is wrong with it. */
    bool binary = nb == 0;
    for (long long i = 0; i < nb; i++)
        binary |= b[i] < 0x20 && b[i] != '\t' && b[i] != '\n' && b[i] != '\r';
    bool npz = nb >= 4 && !memcmp(b, "PK\3\4", 4), array = !npz && (binary || is_npy(in));
    char found[4096];
    const char *lpath = labels;
    bool ok = true;
    if (npz) {
        nnrt_stream_close(in);
        ok = load_npz(path, spec, w, out, err, errlen);
    } else if (!array) {
        ok = nnrt_csv_read(in, path, spec, !w->unlabelled, w->new_classes, classes, out, err, errlen);
        nnrt_stream_close(in);
        lpath = path;
    } else if (w->unlabelled) {
        ok = load_inputs(in, path, w, out, err, errlen);
    } else if (!lpath && !is_npy(in) && nnrt_find_labels(path, found, sizeof found)) {
        lpath = found;
    }
    if (array && !w->unlabelled) {
        if (!lpath) {
            bool npy = is_npy(in);
            nnrt_stream_close(in);
            return npy ? nnrt_fail(err, errlen, "%s: no labels for it: give them with --target FILE (an .npy or "
                                   "IDX file; --test-target, --val-target for those sets), or use an .npz "
                                   "archive of both", path)
                       : nnrt_fail(err, errlen, "no labels file next to '%s' (expected e.g. "
                                   "train-labels-idx1-ubyte[.gz] beside train-images-idx3-ubyte[.gz])", path);
        }
        NnrtStream *ys = nnrt_stream_open(lpath, err, errlen);
        if (!ys) {
            nnrt_stream_close(in);
            return false;
        }
        ok = load_arrays(in, path, ys, lpath, w->classes ? 0 : w->label_size, out, err, errlen);
    }
    if (ok && out->sample_size != w->sample_size) /* a table's: a label or target column taken as an input? */
        ok = nnrt_fail(err, errlen, "'%s' holds samples of %zu elements, but the model's input has %zu%s", path,
                       out->sample_size, w->sample_size, npz || array ? "" : " (a table's inputs are its columns "
                       "of numbers that --label and --target do not name, or those --features names)");
    else if (ok && w->unlabelled)
        ok = out->images.dims[0] ? zero_labels(out, w->label_size) ||
                                       nnrt_fail(err, errlen, "%s: out of memory", path)
                                 : nnrt_fail(err, errlen, "%s: the file holds no samples", path);
    else if (ok && out->label_size != w->label_size)
        ok = nnrt_fail(err, errlen, "%s: targets of %zu elements per sample, but the model's targets have %zu",
                       lpath ? lpath : path, out->label_size, w->label_size);
    if (ok && w->classes && classes->n > w->classes)
        ok = nnrt_fail(err, errlen, "%s: %zu classes in column '%s', but the model has %zu outputs", path,
                       classes->n, spec->label, w->classes);
    ok = ok && (w->unlabelled || check_classes(out, lpath ? lpath : path, w->classes, err, errlen));
    if (!ok)
        nnrt_dataset_free(out);
    return ok;
}

void nnrt_normalize_fit(const NnrtDataset *ds, double *mean, double *std) {
    size_t k = ds->sample_size;
    for (size_t j = 0; j < k; j++)
        mean[j] = std[j] = 0;
    /* Welford's update, element by element: stable where the values are
     * large and their spread small. */
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < k; j++) {
            double x = nnrt_idx_get(&ds->images, i * k + j), d = x - mean[j];
            mean[j] += d / (double)(i + 1);
            std[j] += d * (x - mean[j]);
        }
    for (size_t j = 0; j < k; j++) {
        std[j] = ds->n ? sqrt(std[j] / (double)ds->n) : 0;
        if (!(std[j] > 0))
            std[j] = 1;
    }
}

bool nnrt_normalize_apply(NnrtDataset *ds, const double *mean, const double *std, char *err, size_t errlen) {
    NnrtIdx *im = &ds->images;
    size_t bytes;
    float *v = __builtin_mul_overflow(im->count, sizeof *v, &bytes) ? NULL : malloc(bytes ? bytes : 1);
    if (!v)
        return nnrt_fail(err, errlen, "out of memory normalizing %zu samples", ds->n);
    size_t k = ds->sample_size;
    for (size_t i = 0; i < im->count; i++)
        v[i] = nnrt_normalized(nnrt_idx_get(im, i), mean[i % k], std[i % k]);
    free(im->data);
    im->data = v;
    im->type = NNRT_F32;
    im->elem_size = sizeof *v;
    return true;
}

char *nnrt_normalize_format(const double *mean, const double *std, size_t n) {
    size_t bytes; /* each line two %a of at most 24 bytes, a blank and a newline */
    char *t = __builtin_mul_overflow(n, 2 * 24 + 2, &bytes) || bytes == SIZE_MAX ? NULL : malloc(bytes + 1);
    if (t)
        t[0] = '\0';
    for (size_t i = 0, at = 0; t && i < n; i++)
        at += (size_t)sprintf(t + at, "%a %a\n", mean[i], std[i]);
    return t;
}

bool nnrt_parse_double(const char **s, char then, double *out) {
    if (!**s || isspace((unsigned char)**s))
        return false;
    char *end;
    *out = strtod(*s, &end);
    if (end == *s || *end != then)
        return false;
    *s = then ? end + 1 : end;
    return true;
}

bool nnrt_normalize_parse(const char *text, size_t n, double *mean, double *std) {
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = nnrt_parse_double(&text, ' ', &mean[i]) && nnrt_parse_double(&text, '\n', &std[i]) && isfinite(mean[i]) &&
             std[i] > 0 && isfinite(std[i]);
    return ok && !*text;
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
    nnrt_classes_free(&ds->target_names);
    nnrt_classes_free(&ds->feature_names);
    ds->n = ds->sample_size = ds->label_size = 0;
}

void nnrt_batch_fill(const NnrtDataset *ds, const uint32_t *idx, size_t b,
                     int dtype_bytes, bool raw_u8, void *x, void *y) {
    size_t ss = ds->sample_size, ls = ds->label_size;
    bool pixels = ds->images.type == NNRT_U8, u8 = pixels || ds->images.type == NNRT_U8_VALUE;
    const unsigned char *bytes = ds->images.data;
    /* uint8 is the common case and worth its own loop: a table of the 256
     * scaled values (pixels; a table's bytes as they are) makes each
     * element a load, where converting it was most of the cost of filling
     * a batch (and copying the bytes, raw_u8, is less). */
    float lutf[256];
    double lutd[256];
    for (int v = 0; u8 && !raw_u8 && v < 256; v++) {
        lutf[v] = pixels ? (float)v * (float)(1.0 / 255) : (float)v;
        lutd[v] = pixels ? v * (1.0 / 255) : v;
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
            else if (ds->images.type == NNRT_F32) /* a table's, an .npy's */
                memcpy(xf + dst, (const float *)ds->images.data + src, ss * sizeof *xf);
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
