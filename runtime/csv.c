/* csv.c — tables as CSV files (plain or gzip, by content: nnrt_stream): a
 * header row naming the columns (or none, columns then named by their
 * position from 0), the delimiter given or detected from the first line,
 * RFC 4180 quoting, CRLF or LF. One column may be the class of each row
 * (--label: integers, or names mapped to indices in sorted order), or some
 * may be regression targets (--target A,B); the inputs are the other
 * numeric columns in file order, or those --features names, in its order.
 *
 * Keras users come with tables, and a table this big (Fashion-MNIST as CSV
 * is 60,000 rows of 785 numbers, 130 MB of text) must load about as fast
 * as the IDX files: the file is parsed in blocks as it streams in, each
 * block's rows in parts on the thread pool while the next block is read
 * (parse()), a plain row (no quotes, short numbers) by one loop over its
 * fields in the read buffer (plain_row), any other by a byte loop with no
 * per-field allocation, and numbers of up to 15 digits converted exactly without
 * strtod (decimal(): strtod was most of the time). Inputs that are all
 * integers 0..255 (pixels) are kept as bytes, as the IDX files keep them.
 * Every error names the file, the line and the column.
 */
#define _GNU_SOURCE /* memrchr */
#include "nnrt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Far above any table this is for; far below what exhausts memory. */
#define CSV_MAX_COLUMNS (1 << 20)
#define CSV_MAX_FIELD (1 << 20)
#define CSV_CHUNK (1 << 20)  /* the first read: the header, the delimiter detected */
#define CSV_BLOCK (2 << 20)  /* each later read */
#define CSV_PART (256 << 10) /* the rows one job of the thread pool parses */
#define CSV_MAX_PARTS (2 * CSV_BLOCK / CSV_PART) /* of a block and the rest of the one before */

typedef enum { ROLE_SKIP, ROLE_FEATURE, ROLE_LABEL, ROLE_TARGET, ROLE_UNDECIDED } Role;

/* A growing array of elements of `size` bytes. */
typedef struct Vec {
    void *p;
    size_t n, cap, size;
} Vec;

/* Room for k more elements at the end, counted in (NULL: out of memory). */
static void *vec_grow(Vec *v, size_t k) {
    if (v->n + k > v->cap) {
        size_t cap = v->cap ? v->cap : 1024, bytes;
        while (cap < v->n + k)
            if (__builtin_mul_overflow(cap, 2, &cap))
                return NULL;
        void *p = __builtin_mul_overflow(cap, v->size, &bytes) ? NULL : realloc(v->p, bytes);
        if (!p)
            return NULL;
        v->p = p;
        v->cap = cap;
    }
    v->n += k;
    return (char *)v->p + (v->n - k) * v->size;
}

static bool vec_push(Vec *v, const void *x, size_t k) {
    if (!k) /* nothing: v->p may still be NULL, which no offset may be added to */
        return true;
    void *at = vec_grow(v, k);
    if (at)
        memcpy(at, x, k * v->size);
    return at != NULL;
}

typedef struct Csv {
    const char *path;
    const NnrtDataSpec *cols;
    bool need_labels;
    char delim;
    bool fast; /* plain rows read by plain_row: a delimiter no number holds */
    char *err;
    size_t errlen;
    /* The columns, from the header or the first row. */
    size_t ncols, names_cap;
    char **names;
    Role *role;
    size_t *slot; /* a feature's or target's position in its row */
    size_t *run;  /* an input's count of inputs from it on in consecutive columns and slots (find_runs) */
    size_t *by_name; /* the columns sorted by name (then position): find_column's */
    size_t nfeatures, ntargets;
    size_t label_col; /* ncols: none */
    /* Where the parser is. */
    long line, field_line;
    size_t col, field_col, line_start_col;
    bool header_done;
    /* The values. x holds bytes while every input is an integer 0..255
     * (x_bytes), as Fashion-MNIST's pixels are: a quarter of the memory
     * float32 takes (47 MB, not 188), converted when batches are made. */
    Vec x, y, label_text, label_at; /* float or byte, float, char, size_t (offsets into label_text) */
    bool x_bytes, row_bytes; /* row_bytes: every input of this row so far */
    float *row_x, *row_y;
    Vec label_line; /* long: the line of each label, for a message about it later */
    size_t rows;
} Csv;

/* "PATH:LINE:COL: WHAT in column 'NAME'SEP FIELD" at the field being read. */
static bool located(Csv *c, const char *sep, const char *what, const char *field) {
    const char *name = c->header_done && c->col < c->ncols ? c->names[c->col] : NULL;
    char where[256] = "";
    if (name)
        snprintf(where, sizeof where, " in column '%.200s'", name);
    return nnrt_fail(c->err, c->errlen, "%s:%ld:%zu: %s%s%s%.60s%s", c->path, c->field_line, c->field_col, what,
                     where, sep, field ? field : "", field && strlen(field) > 60 ? "..." : "");
}

/* [-+]digits[.digits] at *p with 1 to 15 digits: its value, *p moved past
 * it. Such a number is a 15-digit integer divided by a power of ten up to
 * 1e15, both exact in a double, so the one rounding of the division gives
 * what strtod gives (Clinger's fast path), at a fraction of its cost. False
 * for anything else (more digits, an exponent, no digit). The text ends in
 * a byte that is not a digit (a NUL, or a row's '\n'), which ends the loops
 * without a bound to check. */
static inline bool decimal(const char **p, double *v) {
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
                                   1e14, 1e15};
    const char *s = *p;
    bool neg = *s == '-';
    s += *s == '-' || *s == '+';
    uint64_t m = 0; /* wraps past 19 digits, which are refused below */
    int digits = 0, frac = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        m = m * 10 + (uint64_t)(*s - '0');
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits++, frac++)
            m = m * 10 + (uint64_t)(*s - '0');
    if (digits == 0 || digits > 15)
        return false;
    double x = frac ? (double)m / pow10[frac] : (double)m; /* most fields are integers: no division */
    *v = neg ? -x : x;
    *p = s;
    return true;
}

/* The whole field s as a number (blanks around it allowed): decimal(), or
 * strtod for what it does not take (exponents, long numbers, inf, nan). */
static bool parse_number(const char *s, double *v) {
    while (*s == ' ')
        s++;
    const char *q = s;
    if (decimal(&q, v)) {
        while (*q == ' ')
            q++;
        if (!*q)
            return true;
    }
    if (!*s)
        return false;
    char *e;
    *v = strtod(s, &e);
    while (*e == ' ')
        e++;
    return e != s && !*e;
}

/* The len bytes at name against a column's name, as strcmp orders them. */
static int name_cmp(const char *name, size_t len, const char *col) {
    size_t n = strlen(col);
    int k = memcmp(name, col, len < n ? len : n);
    return k ? k : len < n ? -1 : len > n;
}

/* qsort_r's: columns by name, then position. */
static int cmp_columns(const void *a, const void *b, void *names) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int k = strcmp(((char **)names)[i], ((char **)names)[j]);
    return k ? k : i < j ? -1 : i > j;
}

/* The first column (in file order) named by the len bytes at name (a
 * header name, or a position), by bisection: a checkpoint names each of a
 * wide table's inputs. With unused, the first not given a role yet: a
 * header may name two inputs alike (two empty names), which the
 * checkpoint lists in their order. Where none is, the message says why the
 * option names it after the header's columns. */
static bool find_column(Csv *c, const char *name, size_t len, bool unused, const char *option, const char *why,
                        size_t *out) {
    size_t lo = 0, hi = c->ncols;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (name_cmp(name, len, c->names[c->by_name[mid]]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (unused && lo + 1 < c->ncols && c->role[c->by_name[lo]] != ROLE_UNDECIDED &&
           !name_cmp(name, len, c->names[c->by_name[lo + 1]]))
        lo++;
    if (lo < c->ncols && !name_cmp(name, len, c->names[c->by_name[lo]])) {
        *out = c->by_name[lo];
        return true;
    }
    char shown[128];
    snprintf(shown, sizeof shown, "%.*s", len > 100 ? 100 : (int)len, name);
    if (c->cols->no_header)
        return nnrt_fail(c->err, c->errlen, "%s: %s '%s': the file has %zu columns, numbered from 0 (no header)",
                         c->path, option, shown, c->ncols);
    char list[512] = "";
    for (size_t i = 0, used = 0; i < c->ncols && used + 1 < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s'%s'", i ? ", " : "", c->names[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    return nnrt_fail(c->err, c->errlen, "%s: %s '%s' is not a column of the header (%s)%s", c->path, option, shown,
                     list, why);
}

/* Sets the role of the column the len bytes at name name (unused: as
 * find_column); a column named twice, or given two roles, is an error. A missing column is an error
 * only where the labels are needed (prediction reads tables with or
 * without them). */
static bool assign_one(Csv *c, const char *name, size_t len, bool unused, Role r, const char *option,
                       const char *why, bool required, size_t *count) {
    size_t col;
    if (!find_column(c, name, len, unused, option, why, &col))
        return !required;
    if (c->role[col] != ROLE_UNDECIDED)
        return nnrt_fail(c->err, c->errlen, "%s: column '%s' is named twice (%s and another option)", c->path,
                         c->names[col], option);
    c->role[col] = c->need_labels || r == ROLE_FEATURE ? r : ROLE_SKIP; /* prediction: no labels */
    c->slot[col] = (*count)++;
    if (r == ROLE_LABEL && c->need_labels)
        c->label_col = col;
    return true;
}

/* The columns a list "a,b,c" names (assign_one each). */
static bool assign(Csv *c, const char *list, Role r, const char *option, bool required, size_t *count) {
    const char *why = c->cols->kept && r != ROLE_FEATURE ? "; the weights were trained on it: name this table's "
                                                           "with --label or --target" : "";
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!assign_one(c, p, len, false, r, option, why, required, count))
            return false;
        p = comma ? comma + 1 : p + len;
    }
    return true;
}

/* The header (or, with no header, the first row's count) is known: each
 * column's role. Columns no option names are inputs (decided on the first
 * row: a column that does not hold a number there, an id or a name, is
 * skipped) unless --features lists the inputs. */
static bool set_roles(Csv *c) {
    c->role = calloc(c->ncols, sizeof *c->role);
    c->slot = calloc(c->ncols, sizeof *c->slot);
    c->by_name = calloc(c->ncols, sizeof *c->by_name);
    if (!c->role || !c->slot || !c->by_name)
        return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
    for (size_t i = 0; i < c->ncols; i++) {
        c->role[i] = ROLE_UNDECIDED;
        c->by_name[i] = i;
    }
    qsort_r(c->by_name, c->ncols, sizeof *c->by_name, cmp_columns, c->names);
    c->label_col = c->ncols;
    const NnrtDataSpec *o = c->cols;
    const NnrtClasses *named = o->no_header ? NULL : o->feature_names; /* positions name no input */
    size_t nlabel = 0;
    if (!assign(c, o->label, ROLE_LABEL, "--label", c->need_labels, &nlabel) ||
        !assign(c, o->targets, ROLE_TARGET, "--target", c->need_labels, &c->ntargets) ||
        !assign(c, o->features, ROLE_FEATURE, "--features", true, &c->nfeatures))
        return false;
    for (size_t i = 0; named && i < named->n; i++)
        if (!assign_one(c, named->names[i], strlen(named->names[i]), true, ROLE_FEATURE, "input",
                        "; the inputs are found by the names the training table gave them: name this table's "
                        "with --features", true, &c->nfeatures))
            return false;
    if (nlabel > 1)
        return nnrt_fail(c->err, c->errlen, "%s: --label names one column, the class of each row", c->path);
    for (size_t i = 0; i < c->ncols; i++)
        if (c->role[i] == ROLE_UNDECIDED && (o->features || named))
            c->role[i] = ROLE_SKIP;
    c->row_x = calloc(c->ncols, sizeof *c->row_x);
    c->row_y = calloc(c->ncols, sizeof *c->row_y);
    return c->row_x && c->row_y ? true : nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
}

/* A field of the header: a column's name. */
static bool header_field(Csv *c, const char *s, size_t len) {
    if (c->ncols >= CSV_MAX_COLUMNS)
        return located(c, "", "more than 1048576 columns", NULL);
    if (c->ncols == c->names_cap) { /* doubling: a header of a million columns is not a million copies */
        size_t cap = c->names_cap ? 2 * c->names_cap : 64;
        char **names = realloc(c->names, cap * sizeof *names);
        if (!names)
            return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
        c->names = names;
        c->names_cap = cap;
    }
    if (!(c->names[c->ncols] = malloc(len + 1)))
        return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
    memcpy(c->names[c->ncols], s, len + 1);
    c->ncols++;
    return true;
}

/* A class of the label column (len bytes at s), kept as text until all
 * are seen (label_indices). */
static bool label_field(Csv *c, const char *s, size_t len) {
    if (!len)
        return located(c, "", "a missing class", NULL);
    if (memchr(s, '\n', len))
        return located(c, "", "a class name with a line break", NULL);
    size_t at = c->label_text.n;
    return (vec_push(&c->label_text, s, len) && vec_push(&c->label_text, "", 1) && vec_push(&c->label_at, &at, 1) &&
            vec_push(&c->label_line, &c->field_line, 1)) ||
           nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
}

/* A value an input keeps as a byte: an integer 0..255, not -0 (whose
 * sign a byte would lose). */
static bool is_byte(double v) { return v >= 0 && v <= 255 && v == (int)v && !signbit(v); }

/* Column col's number v into the row's targets or inputs; *bytes stays
 * true while every input is a byte. */
static void put_number(Csv *c, Role r, size_t col, double v, bool *bytes) {
    if (r == ROLE_TARGET) {
        c->row_y[c->slot[col]] = (float)v;
    } else {
        c->row_x[c->slot[col]] = (float)v;
        *bytes &= is_byte(v);
    }
}

/* A field of a data row. */
static bool data_field(Csv *c, const char *s, size_t len) {
    if (c->col >= c->ncols)
        return located(c, "", "more fields than the header's columns", NULL);
    Role r = c->role[c->col];
    double v;
    if (r == ROLE_UNDECIDED) { /* the first row decides */
        r = c->role[c->col] = parse_number(s, &v) ? ROLE_FEATURE : ROLE_SKIP;
        if (r == ROLE_FEATURE)
            c->slot[c->col] = c->nfeatures++;
    }
    switch (r) {
    case ROLE_SKIP:
    case ROLE_UNDECIDED:
        return true;
    case ROLE_LABEL:
        return label_field(c, s, len);
    case ROLE_FEATURE:
    case ROLE_TARGET:
        if (!len)
            return located(c, "", "a missing value", NULL);
        if (!parse_number(s, &v))
            return located(c, ": ", "not a number", s);
        if (!(fabs(v) <= 3.4028234663852886e38))
            return located(c, ": ", "not a finite float32", s);
        put_number(c, r, c->col, v, &c->row_bytes);
        return true;
    }
    return true;
}

/* x's bytes as floats, in place: from the last, each float written over
 * bytes already read. */
static bool widen_inputs(Csv *c) {
    size_t n = c->x.n, bytes;
    float *f = __builtin_mul_overflow(n, sizeof *f, &bytes) ? NULL : realloc(c->x.p, bytes ? bytes : 1);
    if (!f)
        return false;
    for (size_t i = n; i-- > 0;)
        f[i] = ((const unsigned char *)f)[i];
    c->x = (Vec){.p = f, .n = n, .cap = n, .size = sizeof *f};
    c->x_bytes = false;
    return true;
}

/* The row's inputs (row_x) onto x: as bytes while every row's are
 * (is_byte), else as float32 from this row on, the bytes before widened. */
static bool push_inputs(Csv *c) {
    const float *v = c->row_x;
    size_t k = c->nfeatures;
    bool bytes = c->x_bytes && c->row_bytes;
    c->row_bytes = true; /* for the next row */
    if (!k) /* an error once the rows are read */
        return true;
    if (c->x_bytes && !bytes && !widen_inputs(c))
        return false;
    if (!bytes)
        return vec_push(&c->x, v, k);
    unsigned char *b = vec_grow(&c->x, k);
    for (size_t i = 0; b && i < k; i++)
        b[i] = (unsigned char)v[i];
    return b != NULL;
}

/* Each input's run: the inputs from it on in consecutive columns and
 * slots, which byte_run reads in one loop (all of Fashion-MNIST's 784).
 * Known once the first data row has decided the roles. */
static bool find_runs(Csv *c) {
    if (!(c->run = calloc(c->ncols, sizeof *c->run)))
        return false;
    for (size_t i = c->ncols; i-- > 0;)
        if (c->role[i] == ROLE_FEATURE)
            c->run[i] = i + 1 < c->ncols && c->role[i + 1] == ROLE_FEATURE && c->slot[i + 1] == c->slot[i] + 1
                            ? c->run[i + 1] + 1
                            : 1;
    return true;
}

/* The end of a data row, its fields all seen: counted, and its values
 * stored (its inputs are already, where plain_row wrote them as bytes). */
static bool data_row(Csv *c, bool inputs_stored) {
    if (c->col < c->ncols)
        return nnrt_fail(c->err, c->errlen, "%s:%ld: a short row: %zu field%s, but the %s has %zu", c->path,
                         c->field_line, c->col, c->col == 1 ? "" : "s",
                         c->cols->no_header ? "first row" : "header", c->ncols);
    if (c->rows >= UINT32_MAX)
        return nnrt_fail(c->err, c->errlen, "%s:%ld: more than %u rows", c->path, c->line, (unsigned)UINT32_MAX);
    c->rows++;
    return ((c->run || find_runs(c)) && (inputs_stored || push_inputs(c)) &&
            vec_push(&c->y, c->row_y, c->ntargets)) ||
           nnrt_fail(c->err, c->errlen, "%s: out of memory at row %zu", c->path, c->rows);
}

/* The end of a row: its fields all seen. The first row with no header
 * gives the count of columns, named by position, and is data too. */
static bool end_row(Csv *c) {
    if (!c->header_done) {
        c->header_done = true;
        char **first = c->names;
        if (c->cols->no_header) {
            if (!(c->names = calloc(c->ncols, sizeof *c->names)))
                return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
            for (size_t i = 0; i < c->ncols; i++)
                if (!(c->names[i] = malloc(24)))
                    return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
                else
                    snprintf(c->names[i], 24, "%zu", i);
        }
        bool ok = set_roles(c);
        for (c->col = 0; ok && c->cols->no_header && c->col < c->ncols; c->col++)
            ok = data_field(c, first[c->col], strlen(first[c->col]));
        if (c->cols->no_header) {
            for (size_t i = 0; i < c->ncols; i++)
                free(first[i]);
            free(first);
        }
        if (!ok || !c->cols->no_header)
            return ok;
    }
    return data_row(c, false);
}

static bool end_field(Csv *c, char *fb, size_t len) {
    fb[len] = '\0';
    bool ok = c->header_done ? data_field(c, fb, len) : header_field(c, fb, len);
    c->col++;
    return ok;
}

/* An input of 1 to 3 digits up to 255 at s, a pixel: its value, and
 * where it ends (NULL: not a pixel). Its length is found by branches: a
 * length computed without them made each field's start wait on the digits
 * of the one before, a chain of loads, and the branches predict well
 * (Fashion-MNIST's pixels are mostly a lone 0). Reading it as CSV (--eval,
 * one thread) took 0.44 s of CPU with byte_run computing the length, 0.27 s
 * so (0.35 s before byte_run). */
static inline const char *pixel(const char *s, unsigned *v) {
    unsigned t;
    if ((*v = (unsigned char)*s++ - 48u) > 9) /* '0' */
        return NULL;
    if ((t = (unsigned char)*s - 48u) <= 9) {
        *v = *v * 10 + t;
        if ((t = (unsigned char)*++s - 48u) <= 9)
            *v = *v * 10 + t, s++;
    }
    return *v <= 255 ? s : NULL;
}

/* k inputs at s, pixels each followed by the delimiter, the last by it or
 * the line's end: into out as bytes. Where the last ends, or NULL if one
 * is not a pixel. */
static const char *byte_run(const char *s, const char *eol, char d, unsigned char *out, size_t k) {
    for (size_t i = 0;; i++) {
        unsigned v;
        if (!(s = pixel(s, &v)))
            return NULL;
        out[i] = (unsigned char)v;
        if (i + 1 == k)
            return s == eol || *s == d ? s : NULL;
        if (*s++ != d)
            return NULL;
    }
}

/* The fields of a plain row from s to its line's end eol: inputs, targets
 * and a label (*label, *label_len) taken, inputs written to b as bytes
 * where b is not NULL, else to row_x (*bytes: each a byte). False where the
 * row is not plain. */
static bool plain_fields(Csv *c, const char *s, const char *eol, unsigned char *b, const char **label,
                         size_t *label_len, bool *bytes) {
    const char d = c->delim;
    for (size_t col = 0; col < c->ncols; col++) {
        if (col && (s == eol || *s++ != d))
            return false;
        Role r = c->role[col];
        if (r == ROLE_FEATURE && b) {
            if (!(s = byte_run(s, eol, d, b + c->slot[col], c->run[col])))
                return false;
            col += c->run[col] - 1;
            continue;
        }
        switch (r) {
        case ROLE_FEATURE:
        case ROLE_TARGET: {
            unsigned small;
            const char *e = pixel(s, &small);
            if (r == ROLE_FEATURE && e && (e == eol || *e == d)) {
                c->row_x[c->slot[col]] = (float)small;
                s = e;
                break;
            }
            double v;
            if (!decimal(&s, &v))
                return false;
            put_number(c, r, col, v, bytes);
            break;
        }
        case ROLE_LABEL:
        case ROLE_SKIP: {
            const char *f = s;
            while (s < eol && *s != d && *s != '"' && *s != '\r')
                s++;
            if ((s < eol && *s != d) || (r == ROLE_LABEL && s == f))
                return false;
            if (r == ROLE_LABEL)
                *label = f, *label_len = (size_t)(s - f);
            break;
        }
        case ROLE_UNDECIDED:
            return false;
        }
    }
    return s == eol;
}

/* A whole data row at p (before end) when it is plain: its line within
 * the buffer, no quote and no '\r' but one before the '\n', each input and
 * target a number decimal() takes, each field ended by the delimiter, the
 * last by the line's end. Its values stored and the row ended (data_row);
 * the bytes it took, newline included. 0 for any other row (one the
 * buffer's end cuts, a blank line, a quote, a long number, an error), which
 * the byte loop reads: this is the loop over Fashion-MNIST's 47 million
 * fields, with no state to keep between them. While the table's inputs are
 * bytes, the row's are written to x as bytes where they are read, a run of
 * them in one loop (byte_run), not through row_x as floats. */
static size_t plain_row(Csv *c, const char *p, const char *end, bool *ok) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    const char *eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl, *label = NULL;
    size_t label_len = 0;
    if (p == eol || !c->run)
        return 0;
    unsigned char *b = c->x_bytes && c->nfeatures ? vec_grow(&c->x, c->nfeatures) : NULL;
    bool bytes = true; /* every input of the row */
    if (b && !plain_fields(c, p, eol, b, &label, &label_len, &bytes)) {
        c->x.n -= c->nfeatures; /* read again through row_x: "1.0", or a number not a byte, which widens x */
        b = NULL;
        label = NULL;
    }
    if (!b && !plain_fields(c, p, eol, NULL, &label, &label_len, &bytes))
        return 0;
    c->row_bytes = bytes;
    c->field_line = c->line;
    c->col = c->ncols;
    *ok = (!label || label_field(c, label, label_len)) && data_row(c, b != NULL);
    return (size_t)(nl + 1 - p);
}

/* The delimiter of the first line (the one of ',', ';', tab and '|' that
 * occurs most often outside quotes; ',' if none does). */
static char detect(const char *p, size_t n) {
    static const char cand[] = {',', ';', '\t', '|'};
    size_t count[4] = {0};
    bool quoted = false;
    for (size_t i = 0; i < n && (quoted || p[i] != '\n'); i++) {
        quoted ^= p[i] == '"';
        for (int k = 0; k < 4 && !quoted; k++)
            count[k] += p[i] == cand[k];
    }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (count[k] > count[best])
            best = k;
    return cand[best];
}

/* The byte loop's state, kept from one piece of text to the next. */
typedef struct Lexer {
    enum { START, PLAIN, QUOTED, QUOTE } st;
    char *fb;        /* the field's text (up to CSV_MAX_FIELD) */
    size_t len, pos; /* fb's length; the byte's column in its line */
} Lexer;

/* The byte loop over n bytes at buf: states of RFC 4180, '\r' outside
 * quotes dropped, blank lines skipped, a plain row at a row's start taken
 * whole (plain_row). */
static bool scan(Csv *c, Lexer *lx, const char *buf, size_t n) {
    const char d = c->delim;
    char *fb = lx->fb;
    size_t len = lx->len, pos = lx->pos;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++, pos++) {
        char ch = buf[i];
        if (lx->st == START) {
            c->field_line = c->line;
            c->field_col = pos;
            size_t used;
            if (c->col == 0 && c->header_done && c->fast && (used = plain_row(c, buf + i, buf + n, &ok))) {
                i += used - 1; /* to the row's '\n' */
                c->col = 0;
                c->line++;
                pos = 0;
                continue;
            }
            if (ch == '"') {
                lx->st = QUOTED;
                continue;
            }
            if (ch == '\r') /* of a line's end, or a stray one: dropped */
                continue;
            if (ch == '\n' && c->col == 0) { /* a blank line */
                c->line++;
                pos = 0;
                continue;
            }
            lx->st = PLAIN;
        }
        if (lx->st == PLAIN) { /* copied byte by byte: most fields are a few bytes, too short for memcpy */
            size_t j = i;
            char b;
            while (j < n && (b = buf[j]) != d && b != '\n' && b != '\r' && len < CSV_MAX_FIELD)
                fb[len++] = buf[j++];
            if (len == CSV_MAX_FIELD) {
                ok = located(c, "", "a field longer than 1 MiB", NULL);
                break;
            }
            pos += j - i;
            i = j;
            if (i == n)
                break;
            ch = buf[i];
        }
        if (lx->st == QUOTED) {
            if (ch == '"')
                lx->st = QUOTE;
            else if (len == CSV_MAX_FIELD)
                ok = located(c, "", "a field longer than 1 MiB", NULL);
            else
                fb[len++] = ch;
            if (ch == '\n') {
                c->line++;
                pos = 0;
            }
            continue;
        }
        if (lx->st == QUOTE && ch == '"') { /* "" in a quoted field: a quote */
            if (len == CSV_MAX_FIELD)
                ok = located(c, "", "a field longer than 1 MiB", NULL);
            else
                fb[len++] = '"';
            lx->st = QUOTED;
            continue;
        }
        if (ch == '\r')
            continue;
        if (ch != d && ch != '\n') { /* lx->st == QUOTE */
            c->field_col = pos;
            char shown[2] = {ch, 0};
            ok = located(c, ": ", "a character after a field's closing quote", shown);
            break;
        }
        ok = end_field(c, fb, len) && (ch != '\n' || end_row(c));
        len = 0;
        lx->st = START;
        if (ch == '\n') {
            c->col = 0;
            c->line++;
            pos = 0;
        }
    }
    lx->len = len;
    lx->pos = pos;
    return ok;
}

/* The end of the text: a quote still open is an error, a last line with
 * no newline a row. */
static bool scan_end(Csv *c, Lexer *lx) {
    if (lx->st == QUOTED)
        return located(c, "", "a quote that is never closed", NULL);
    if (lx->st != START || c->col > 0)
        return end_field(c, lx->fb, lx->len) && end_row(c);
    return true;
}

/* Whole rows of a block, parsed on the thread pool into a Csv of their
 * own: a copy of the table's, sharing its columns (names, roles, slots, only
 * read once the first data row has decided them), with its own values, its
 * lines counted from 1 and its own message. */
typedef struct Part {
    Csv c;
    Lexer lx;
    const char *text;
    size_t n;
    bool ok;
    float *row_x, *row_y; /* the part's own, kept from block to block, as is lx.fb */
    char err[256];
} Part;

static void parts_free(Part *part);

/* CSV_MAX_PARTS parts with their buffers (NULL: out of memory). */
static Part *parts_new(const Csv *c) {
    Part *part = calloc(CSV_MAX_PARTS, sizeof *part);
    bool ok = part;
    for (size_t k = 0; ok && k < CSV_MAX_PARTS; k++)
        ok = (part[k].row_x = calloc(c->ncols, sizeof(float))) && (part[k].row_y = calloc(c->ncols, sizeof(float))) &&
             (part[k].lx.fb = malloc(CSV_MAX_FIELD + 1));
    if (ok)
        return part;
    parts_free(part);
    return NULL;
}

static void parts_free(Part *part) {
    for (size_t k = 0; part && k < CSV_MAX_PARTS; k++) {
        free(part[k].row_x);
        free(part[k].row_y);
        free(part[k].lx.fb);
        free(part[k].c.x.p);
        free(part[k].c.y.p);
        free(part[k].c.label_text.p);
        free(part[k].c.label_at.p);
        free(part[k].c.label_line.p);
    }
    free(part);
}

/* v emptied, for elements of `size` bytes, its memory kept. */
static Vec vec_empty(Vec v, size_t size) {
    v.cap = v.size ? v.cap * v.size / size : 0;
    v.n = 0;
    v.size = size;
    return v;
}

/* Part p to parse n bytes at text as c's rows: its values' memory kept
 * from the block before (fresh memory for each block's parts was 2% of
 * the time, in page faults). */
static void part_start(Part *p, const Csv *c, const char *text, size_t n) {
    Csv kept = p->c;
    p->c = *c;
    p->c.err = p->err;
    p->c.errlen = sizeof p->err;
    p->c.row_x = p->row_x;
    p->c.row_y = p->row_y;
    p->c.line = 1;
    p->c.rows = 0;
    p->c.x = vec_empty(kept.x, c->x_bytes ? 1 : sizeof(float));
    p->c.row_bytes = true;
    p->c.y = vec_empty(kept.y, sizeof(float));
    p->c.label_text = vec_empty(kept.label_text, 1);
    p->c.label_at = vec_empty(kept.label_at, sizeof(size_t));
    p->c.label_line = vec_empty(kept.label_line, sizeof(long));
    p->lx = (Lexer){.st = START, .fb = p->lx.fb, .pos = 1};
    p->text = text;
    p->n = n;
}

/* The rows of n bytes at text (ending in a newline) in parts of about
 * CSV_PART bytes, cut after a newline: the same parts whatever the number
 * of threads. Their count. */
static size_t cut(const Csv *c, Part *part, const char *text, size_t n) {
    size_t k = 0;
    for (size_t at = 0; at < n; k++) {
        size_t stop = n;
        if (n - at > CSV_PART) /* text[n - 1] is a newline: found */
            stop = (size_t)((const char *)memchr(text + at + CSV_PART, '\n', n - at - CSV_PART) + 1 - text);
        part_start(&part[k], c, text + at, stop - at);
        at = stop;
    }
    return k;
}

/* Part p's values after the rows before it, its labels' lines made the
 * file's (false: out of memory). */
static bool merge(Csv *c, Part *p) {
    Csv *q = &p->c;
    if (c->x_bytes && !q->x_bytes && !widen_inputs(c))
        return false;
    if (c->x_bytes || !q->x_bytes) { /* the same type (c widened above where the part's are floats) */
        if (!vec_push(&c->x, q->x.p, q->x.n))
            return false;
    } else if (q->x.n) { /* the part's bytes as the table's floats */
        float *f = vec_grow(&c->x, q->x.n);
        if (!f)
            return false;
        for (size_t i = 0; i < q->x.n; i++)
            f[i] = ((const unsigned char *)q->x.p)[i];
    }
    size_t *at = q->label_at.p, text = c->label_text.n;
    long *line = q->label_line.p;
    for (size_t i = 0; i < q->label_at.n; i++) {
        at[i] += text;
        line[i] += c->line - 1;
    }
    if (!vec_push(&c->y, q->y.p, q->y.n) || !vec_push(&c->label_text, q->label_text.p, q->label_text.n) ||
        !vec_push(&c->label_at, at, q->label_at.n) || !vec_push(&c->label_line, line, q->label_line.n))
        return false;
    c->rows += q->rows;
    c->line += q->line - 1;
    return true;
}

/* Part p's rows after those before it: its values moved over or, where
 * its parse failed (or its rows would pass the limit), its text read again
 * by the byte loop after them, which reports the error with its line and
 * column in the file. Parts are taken in order: the error is the file's
 * first. */
static bool take_part(Csv *c, Lexer *lx, Part *p) {
    bool ok;
    if (p->ok && c->rows + p->c.rows <= UINT32_MAX) {
        ok = merge(c, p) || nnrt_fail(c->err, c->errlen, "%s: out of memory at row %zu", c->path, c->rows);
        lx->pos = 1; /* after the part's last newline */
    } else {
        ok = scan(c, lx, p->text, p->n);
    }
    return ok;
}

/* One call of the thread pool: index 0 reads the next block (where there
 * is one: `in`), the text after the rows first, while the others parse a
 * part each. */
typedef struct Job {
    Part *part;
    NnrtStream *in;
    const char *rest;
    size_t nrest;
    char *next;
    long long got;
} Job;

static void run_job(void **slots, int64_t begin, int64_t end) {
    Job *j = slots[0];
    for (int64_t i = begin; i < end; i++)
        if (j->in && i == 0) {
            memcpy(j->next, j->rest, j->nrest);
            j->got = nnrt_stream_read(j->in, j->next + j->nrest, CSV_BLOCK);
        } else {
            Part *p = &j->part[i - (j->in != NULL)];
            p->ok = scan(&p->c, &p->lx, p->text, p->n);
        }
}

/* The text is read in blocks. A block's rows (up to its last newline; the
 * rest goes on to the next block) are parsed on the thread pool in parts
 * once the first data row has decided the columns' roles, while the next
 * block is read (inflated, from a .gz), where no quote is in them: a quoted
 * field may hold a newline, which is then no row's end, so a block with a
 * quote is read by the byte loop alone, whose state goes on from block to
 * block. The parts' rows land in order, so the values and the error are
 * those of one loop over the file, whatever the number of threads. */
static bool parse(Csv *c, NnrtStream *in) {
    /* plain_row reads up to 2 bytes past a row's newline */
    char *cur = calloc(2 * CSV_BLOCK + 4, 1), *next = calloc(2 * CSV_BLOCK + 4, 1);
    Lexer lx = {.st = START, .fb = malloc(CSV_MAX_FIELD + 1), .pos = 1};
    Part *part = NULL;
    long long r = cur && next && lx.fb ? nnrt_stream_read(in, cur, CSV_CHUNK) : -1;
    if (r < 0) {
        if (!(cur && next && lx.fb))
            nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
        free(cur);
        free(next);
        free(lx.fb);
        return false;
    }
    c->line = 1;
    size_t len = (size_t)r, off = 0;
    bool ok = true, eof = r < CSV_CHUNK;
    if (len >= 3 && !memcmp(cur, "\xef\xbb\xbf", 3)) /* a UTF-8 byte order mark, as Excel writes */
        off = 3;
    c->delim = c->cols->delimiter ? c->cols->delimiter : detect(cur + off, len - off);
    c->fast = !strchr("0123456789.+-", c->delim); /* decimal() would read such a delimiter as the number's */
    while (ok) {
        /* The block's rows: to its last newline (none: all of it, a row
         * longer than a block, but at the file's end). */
        const char *nl = len > off ? memrchr(cur + off, '\n', len - off) : NULL;
        size_t end = nl ? (size_t)(nl + 1 - cur) : eof ? off : len, nparts = 0;
        if (c->header_done && c->rows && lx.st == START && c->col == 0 && end > off &&
            !memchr(cur + off, '"', end - off)) {
            if (part || (part = parts_new(c)))
                nparts = cut(c, part, cur + off, end - off);
            else
                ok = nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
        }
        Job j = {.part = part, .in = eof ? NULL : in, .rest = cur + end, .nrest = len - end, .next = next};
        if (nparts)
            nnrt_parallel_for(run_job, (void *[]){&j}, (int64_t)nparts + !eof);
        else if (ok && (ok = scan(c, &lx, cur + off, end - off)) && !eof)
            run_job((void *[]){&j}, 0, 1);
        for (size_t k = 0; k < nparts; k++)
            ok = ok && take_part(c, &lx, &part[k]);
        if (ok && eof)
            ok = scan(c, &lx, cur + end, len - end) && scan_end(c, &lx);
        if (!ok || eof)
            break;
        if (j.got < 0) { /* the stream's message */
            ok = false;
            break;
        }
        char *t = cur;
        cur = next;
        next = t;
        len = j.nrest + (size_t)j.got;
        off = 0;
        eof = j.got < CSV_BLOCK;
    }
    parts_free(part);
    free(cur);
    free(next);
    free(lx.fb);
    return ok;
}

/* Whole-field integer in int32 range. */
static bool parse_int(const char *s, int32_t *v) {
    double d;
    if (!parse_number(s, &d) || d != floor(d) || d < INT32_MIN || d > INT32_MAX || strpbrk(s, ".eE"))
        return false;
    *v = (int32_t)d;
    return true;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The classes of the label column as indices: by the names known
 * (classes->n > 0, from training); else integers as they are; else, with
 * new_classes (a training table), the names seen, sorted, become classes.
 * Another table's names without the training table's would be numbered by
 * whichever names it happens to hold: an error. */
static bool label_indices(Csv *c, NnrtClasses *classes, bool new_classes, int32_t *out) {
    const char *text = c->label_text.p;
    const size_t *at = c->label_at.p;
    const long *line = c->label_line.p;
    size_t n = c->label_at.n;
    if (!classes->n) {
        bool ints = true;
        for (size_t i = 0; ints && i < n; i++)
            ints = parse_int(text + at[i], &out[i]);
        if (ints)
            return true;
        if (!new_classes) {
            size_t i = 0;
            while (parse_int(text + at[i], &out[i]))
                i++;
            return nnrt_fail(c->err, c->errlen, "%s:%ld: class '%.60s' in column '%s' is a name, but there are no "
                             "names of the training table's classes to number it by (train on a table with "
                             "--label, or --load a checkpoint saved so)", c->path, line[i], text + at[i],
                             c->names[c->label_col]);
        }
        char **all = malloc(n * sizeof *all);
        if (!all)
            return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
        for (size_t i = 0; i < n; i++)
            all[i] = (char *)text + at[i];
        qsort(all, n, sizeof *all, cmp_names);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!k || strcmp(all[k - 1], all[i]))
                all[k++] = all[i];
        classes->names = calloc(k, sizeof *classes->names);
        for (size_t i = 0; classes->names && i < k; i++)
            if ((classes->names[classes->n] = strdup(all[i])))
                classes->n++;
        free(all);
        if (classes->n < k)
            return nnrt_fail(c->err, c->errlen, "%s: out of memory", c->path);
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = text + at[i];
        char **hit = bsearch(&name, classes->names, classes->n, sizeof *classes->names, cmp_names);
        if (!hit) {
            char list[256] = "";
            for (size_t k = 0, used = 0; k < classes->n && used + 1 < sizeof list; k++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", classes->names[k]);
                used += w > 0 ? (size_t)w : 0;
            }
            return nnrt_fail(c->err, c->errlen, "%s:%ld: class '%.60s' in column '%s' was not seen in training "
                             "(its classes: %s)", c->path, line[i], name, c->names[c->label_col], list);
        }
        out[i] = (int32_t)(hit - classes->names);
    }
    return true;
}

/* The names of the n columns of role r, in their slots' order (false: out
 * of memory). */
static bool column_names(const Csv *c, Role r, size_t n, NnrtClasses *out) {
    if (!(out->names = calloc(n ? n : 1, sizeof *out->names)))
        return false;
    out->n = n;
    bool ok = true;
    for (size_t i = 0; i < c->ncols; i++)
        if (c->role[i] == r)
            ok &= (out->names[c->slot[i]] = strdup(c->names[i])) != NULL;
    return ok;
}

/* Does a column of role r have a name holding a line break? */
static bool names_break(const Csv *c, Role r) {
    for (size_t i = 0; i < c->ncols; i++)
        if (c->role[i] == r && strchr(c->names[i], '\n'))
            return true;
    return false;
}

/* A training table's target columns' names, which --predict writes as its
 * header and a checkpoint keeps one a line (as class names): each must be
 * non-empty and hold no line break. */
static bool targets_nameable(const Csv *c, const NnrtClasses *t) {
    for (size_t i = 0; i < t->n; i++) {
        if (!t->names[i][0])
            return nnrt_fail(c->err, c->errlen, "%s:1: --target's column %zu has no name in the header: name it, "
                             "as --predict names its columns after the targets'", c->path, i + 1);
        if (strchr(t->names[i], '\n'))
            return nnrt_fail(c->err, c->errlen, "%s:1: --target's column %zu has a line break in its name, which a "
                             "checkpoint cannot keep (it keeps the names one a line)", c->path, i + 1);
    }
    return true;
}

/* v (k values per row) as an NnrtIdx [rows, k] (rank 1 when flat) taking v's memory. */
static void take(Vec *v, size_t rows, size_t k, NnrtIdxType t, bool flat, NnrtIdx *out) {
    *out = (NnrtIdx){.type = t, .rank = flat ? 1 : 2, .dims = {(uint32_t)rows, (uint32_t)k}, .count = rows * k,
                     .elem_size = v->size, .data = v->p};
    if (!out->data)
        out->data = malloc(1);
    *v = (Vec){0};
}

bool nnrt_csv_read(NnrtStream *in, const char *path, const NnrtDataSpec *cols, bool need_labels, bool new_classes,
                   NnrtClasses *classes, NnrtDataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    Csv c = {.path = path, .cols = cols, .need_labels = need_labels, .err = err, .errlen = errlen,
             .x = {.size = 1}, .x_bytes = true, .row_bytes = true, .y = {.size = sizeof(float)},
             .label_text = {.size = 1}, .label_at = {.size = sizeof(size_t)}, .label_line = {.size = sizeof(long)}};
    bool ok = true;
    if (need_labels && !cols->label == !cols->targets)
        ok = nnrt_fail(err, errlen, "%s: a table needs %s", path, cols->label ? "--label or --target, not both"
                       : "--label COLUMN (the class of each row) or --target COLUMN[,COLUMN...] (regression)");
    ok = ok && parse(&c, in);
    if (ok && !c.rows)
        ok = nnrt_fail(err, errlen, "%s: no rows of data", path);
    if (ok && !c.nfeatures)
        ok = nnrt_fail(err, errlen, "%s: no column of numbers is left for the inputs", path);
    Vec lab = {.size = sizeof(int32_t)};
    if (ok && c.label_col < c.ncols) {
        lab.p = malloc(c.rows * sizeof(int32_t));
        ok = lab.p ? label_indices(&c, classes, new_classes, lab.p)
                   : nnrt_fail(err, errlen, "%s: out of memory", path);
    }
    /* The names of a header's inputs (a later table's are found by them;
     * positions, with no header, are not names), unless one holds a line
     * break: a checkpoint keeps them one a line, and the inputs are then
     * read by position. A training table's targets' names (--predict's
     * columns). */
    bool header = !cols->no_header, targets = header && new_classes && c.ntargets && need_labels;
    if (ok && ((header && !names_break(&c, ROLE_FEATURE) &&
                !column_names(&c, ROLE_FEATURE, c.nfeatures, &out->feature_names)) ||
               (targets && !column_names(&c, ROLE_TARGET, c.ntargets, &out->target_names))))
        ok = nnrt_fail(err, errlen, "%s: out of memory", path);
    ok = ok && (!targets || targets_nameable(&c, &out->target_names));
    if (!ok) {
        nnrt_classes_free(&out->feature_names);
        nnrt_classes_free(&out->target_names);
    }
    if (ok) {
        take(&c.x, c.rows, c.nfeatures, c.x_bytes ? NNRT_U8_VALUE : NNRT_F32, false, &out->images);
        if (c.label_col < c.ncols)
            take(&lab, c.rows, 1, NNRT_I32, true, &out->labels);
        else if (c.ntargets)
            take(&c.y, c.rows, c.ntargets, NNRT_F32, false, &out->labels);
        out->n = c.rows;
        out->sample_size = c.nfeatures;
        out->label_size = c.label_col < c.ncols ? 1 : c.ntargets;
    }
    free(lab.p);
    free(c.x.p);
    free(c.y.p);
    free(c.label_text.p);
    free(c.label_at.p);
    free(c.label_line.p);
    for (size_t i = 0; i < c.ncols; i++)
        free(c.names[i]);
    free(c.names);
    free(c.role);
    free(c.slot);
    free(c.run);
    free(c.by_name);
    free(c.row_x);
    free(c.row_y);
    return ok;
}

void nnrt_classes_free(NnrtClasses *cl) {
    for (size_t i = 0; i < cl->n; i++)
        free(cl->names[i]);
    free(cl->names);
    *cl = (NnrtClasses){0};
}
