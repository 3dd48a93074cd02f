/* test_csv.c — the table reader's numbers (runtime/csv.c): every value, read
 * by the row's fast path (a plain row's short decimals, decimal()) or by the
 * field's (a quoted row: parse_number, decimal() then strtod), is the float
 * of what strtod reads from its text, bit for bit, float32's rounding ties
 * among them (where a double one unit off shows); a table of integers
 * 0..255 is kept as bytes, and widened to float32 at its first other value
 * (-0 among them), its values as strtod reads them either way, in batches
 * too; and a delimiter that can be part of a number is not read as one.
 * Tables of megabytes are read in blocks, whose rows are parsed in parts on
 * the thread pool: the values, the class names' lines and the first error
 * in the file, at its line and column, are those of one loop over the
 * file, with a quoted newline where a part would be cut, and with the
 * inputs listed out of order. ctest runs this at 2 threads and at 1 (the
 * argument).
 */
#include "nnrt.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COLS 8
#define ROWS 40000 /* 320,000 values, about 3.5 MB: tables cut by the reader's 1 MiB chunks */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next(void) { /* xorshift64 */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Numbers as tables hold them, and the edges of decimal(): 15 digits (its
 * longest) and 16 (strtod's), signs, a bare point at either end, leading
 * zeros, powers of ten, exponents, float32's rounding ties. */
static const char *const edge[] = {
    "0", "-0", "+0", "0.0", "-0.0", "00", "007", "1", "-1", "255", "0.5", ".5", "5.", "-.5", "+.25", "0.1",
    "0.2", "0.3", "-0.1", "999999999999999", "-999999999999999", "9999999999999999", "99999999999999.9",
    "0.000000000000001", "0.0000000000000001", "123456789012345", "1234567890123456", "12345678901234.5",
    "1.00000000000001", "1.000000000000001", "9007199254740992", "9007199254740993", "16777216", "16777217",
    "16777219", "33554433", "0.30000000000000004", "1e5", "1E-3", "-2.5e+2", "3.4028234663852886e38",
    "1.17549435e-38", "7.0064923216240862e-46", "4503599627370497", "0.1000000000000000055511151231257827",
    "100000000000000", "1000000000000000", "0.999999999999999", "0.9999999999999999",
};

/* A float32's halfway point to the next, whose rounding is a tie: a
 * double off by one unit rounds it the other way. From 2^14 to 2^24, where
 * it has at most 15 digits. */
static void random_tie(char *s) {
    int e = 14 + (int)(next() % 10);
    double spacing = ldexp(1, e - 23), f = ldexp(1, e) + (double)(next() % (1u << 23)) * spacing;
    sprintf(s, "%s%.*f", next() % 2 ? "-" : "", 23 - e + 1, f + spacing / 2);
}

/* A random decimal: an optional sign, 0 to 17 digits before an optional
 * point and 0 to 17 after (at least one digit in all). */
static void random_number(char *s) {
    size_t n = 0;
    uint64_t r = next();
    if (r % 4 == 0)
        s[n++] = r % 8 == 0 ? '-' : '+';
    r >>= 3;
    int before = (int)(r % 18), after = (int)((r >> 5) % 18);
    bool point = (r >> 10) % 2 || !before;
    if (!before && !after)
        before = 1;
    for (int i = 0; i < before; i++)
        s[n++] = (char)('0' + next() % 10);
    if (point)
        s[n++] = '.';
    for (int i = 0; i < after && point; i++)
        s[n++] = (char)('0' + next() % 10);
    s[n] = '\0';
}

static char *text; /* the values, NUL-separated */
static size_t *at;

/* The table of the values, each quoted or not, and its rows' ends CRLF or LF. */
static char *table(bool quoted, bool crlf, size_t *len) {
    char *t = malloc((size_t)ROWS * COLS * 48), *p = t;
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t c = 0; c < COLS; c++)
            p += sprintf(p, quoted ? "%s\"%s\"" : "%s%s", c ? "," : "", text + at[r * COLS + c]);
        p += sprintf(p, crlf ? "\r\n" : "\n");
    }
    *len = (size_t)(p - t);
    return t;
}

static bool read_table(const char *t, size_t len, char delimiter, NnrtDataset *ds) {
    char err[512] = "";
    NnrtStream *in = nnrt_stream_open_mem(t, len, false, "t.csv", err, sizeof err);
    NnrtDataSpec spec = {.no_header = true, .delimiter = delimiter};
    NnrtClasses classes = {0};
    bool ok = in && nnrt_csv_read(in, "t.csv", &spec, false, false, &classes, ds, err, sizeof err);
    if (!ok)
        printf("  %s\n", err);
    nnrt_stream_close(in);
    return ok;
}

/* Every value read is the float strtod reads from its text, bit for bit. */
static bool same_values(const NnrtDataset *ds, const char *what) {
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
        float want = (float)strtod(text + at[i], NULL), got = (float)nnrt_idx_get(&ds->images, i);
        if (memcmp(&want, &got, sizeof want) && bad++ < 5)
            printf("  %s: '%s' read as %.9g, strtod gives %.9g\n", what, text + at[i], got, want);
    }
    return bad == 0;
}

static void test_numbers(void) {
    text = malloc((size_t)ROWS * COLS * 40);
    at = malloc((size_t)ROWS * COLS * sizeof *at);
    size_t used = 0, nedge = sizeof edge / sizeof *edge;
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
        at[i] = used;
        if (i < nedge)
            strcpy(text + used, edge[i]);
        else if (i % 4 == 0)
            random_tie(text + used);
        else
            random_number(text + used);
        used += strlen(text + used) + 1;
    }
    for (int variant = 0; variant < 3; variant++) {
        bool quoted = variant == 1, crlf = variant == 2;
        size_t len;
        char *t = table(quoted, crlf, &len);
        NnrtDataset ds;
        if (CHECK(read_table(t, len, 0, &ds)) && CHECK(ds.n == ROWS && ds.sample_size == COLS)) {
            CHECK(ds.images.type == NNRT_F32);
            CHECK(same_values(&ds, quoted ? "quoted" : crlf ? "plain crlf" : "plain"));
            nnrt_dataset_free(&ds);
        }
        free(t);
    }
    free(text);
    free(at);
}

/* Integers 0..255 as tables write them (leading zeros, a sign, a point):
 * bytes, filled into batches as they are, not scaled as pixels are; with
 * one other value near the end (-0, 256, 1.5, 2.5e0, -1: more rows than a
 * chunk holds before it), float32 from the first row. */
static void test_bytes(void) {
    static const char *const form[] = {"%d", "%03d", "+%d", "%d.0", "%d."};
    static const char *const other[] = {NULL, "-0", "256", "1.5", "2.5e0", "-1"};
    text = malloc((size_t)ROWS * COLS * 40);
    at = malloc((size_t)ROWS * COLS * sizeof *at);
    for (size_t k = 0; k < sizeof other / sizeof *other; k++) {
        size_t used = 0;
        for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
            at[i] = used;
            uint64_t r = next();
            if (other[k] && i == (size_t)(ROWS - 3) * COLS + 5)
                strcpy(text + used, other[k]);
            else
                sprintf(text + used, form[r % 8 < 5 ? 0 : r % 8 - 3], (int)((r >> 8) % 256));
            used += strlen(text + used) + 1;
        }
        size_t len;
        char *t = table(false, false, &len);
        NnrtDataset ds;
        if (CHECK(read_table(t, len, 0, &ds)) && CHECK(ds.n == ROWS && ds.sample_size == COLS)) {
            CHECK(ds.images.type == (other[k] ? NNRT_F32 : NNRT_U8_VALUE));
            CHECK(same_values(&ds, other[k] ? other[k] : "bytes"));
            uint32_t rows[3] = {0, ROWS / 2, ROWS - 3};
            float xf[3 * COLS], yf[3];
            double xd[3 * COLS], yd[3];
            nnrt_batch_fill(&ds, rows, 3, 4, false, xf, yf);
            nnrt_batch_fill(&ds, rows, 3, 8, false, xd, yd);
            for (size_t i = 0; i < 3 * COLS; i++) {
                double want = strtod(text + at[rows[i / COLS] * COLS + i % COLS], NULL);
                CHECK(!memcmp(&(float){(float)want}, &xf[i], sizeof(float)) && !memcmp(&want, &xd[i], 8));
            }
            nnrt_dataset_free(&ds);
        }
        free(t);
    }
    free(text);
    free(at);
}

/* With '.' (or '-') the delimiter, "1.5" is two fields, and "2.25.5" three. */
static void test_number_delimiter(void) {
    static const struct {
        char d;
        const char *t;
        float want[4];
    } cases[] = {{'.', "1.5\n2.25\n", {1, 5, 2, 25}}, {'-', "3-4\n5-6\n", {3, 4, 5, 6}}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        NnrtDataset ds;
        if (CHECK(read_table(cases[k].t, strlen(cases[k].t), cases[k].d, &ds)) &&
            CHECK(ds.n == 2 && ds.sample_size == 2)) {
            for (size_t i = 0; i < 4; i++)
                CHECK((float)nnrt_idx_get(&ds.images, i) == cases[k].want[i]);
            nnrt_dataset_free(&ds);
        }
    }
    const char *three = "1.5\n2.25.5\n";
    NnrtDataset ds;
    CHECK(!read_table(three, strlen(three), '.', &ds));
}

/* A table of BIG rows, its columns p0..p13 (bytes: a function of the row
 * and column) and a class 'a' or 'b', with `note` (text, skipped) at the
 * end where notes: n, or "n" quoted where notes is 2. At data row edit_row (from 1; 0: none), column
 * edit_col's field is edit_text instead; *edit_at is its column in the
 * line. About 4 MB: the first chunk, then blocks cut into parts. */
#define BIG 70000
#define BIG_INPUTS 14
static char *big(int notes, size_t nedit, const size_t *edit_row, const int *edit_col, const char *const *edit_text,
                 size_t *edit_at, size_t *len) {
    size_t cap = (size_t)BIG * 82 + 4096;
    for (size_t k = 0; k < nedit; k++)
        cap += strlen(edit_text[k]);
    char *t = malloc(cap), *p = t;
    for (int c = 0; c < BIG_INPUTS; c++)
        p += sprintf(p, "p%d,", c);
    p += sprintf(p, notes ? "class,note\n" : "class\n");
    for (size_t r = 1; r <= BIG; r++) {
        char *line = p;
        for (int c = 0; c <= BIG_INPUTS + (notes > 0); c++) {
            size_t k = 0;
            while (k < nedit && (edit_row[k] != r || edit_col[k] != c))
                k++;
            if (c)
                *p++ = ',';
            if (k < nedit) {
                edit_at[k] = (size_t)(p - line) + 1;
                p += sprintf(p, "%s", edit_text[k]);
            } else if (c < BIG_INPUTS) {
                p += sprintf(p, "%d", (int)((r * 7 + (size_t)c * 13) % 256));
            } else {
                p += sprintf(p, c == BIG_INPUTS ? (r % 3 ? "a" : "b") : notes == 2 ? "\"n\"" : "n");
            }
        }
        *p++ = '\n';
    }
    *len = (size_t)(p - t);
    return t;
}

/* Reads a table with --label class and --features features (NULL: all
 * the other numeric columns): false with the message in err. */
static bool read_big_features(const char *t, size_t len, const char *features, NnrtClasses *classes,
                              NnrtDataset *ds, char *err, size_t errlen) {
    NnrtStream *in = nnrt_stream_open_mem(t, len, false, "t.csv", err, errlen);
    NnrtDataSpec spec = {.label = "class", .features = features};
    bool ok = in && nnrt_csv_read(in, "t.csv", &spec, true, classes->n == 0, classes, ds, err, errlen);
    nnrt_stream_close(in);
    return ok;
}

/* Reads a table with --label class: false with the message in err. */
static bool read_big(const char *t, size_t len, NnrtClasses *classes, NnrtDataset *ds, char *err, size_t errlen) {
    return read_big_features(t, len, NULL, classes, ds, err, errlen);
}

/* Every value and class of big()'s table, in order: bytes, or float32
 * where row 30000's p4 is 1.5; input j is column col[j] (NULL: j). */
static bool big_values(const NnrtDataset *ds, bool half, const int *col, size_t k) {
    if (!CHECK(ds->n == BIG && ds->sample_size == k) ||
        !CHECK(ds->images.type == (half ? NNRT_F32 : NNRT_U8_VALUE)))
        return false;
    size_t bad = 0;
    for (size_t r = 1; r <= BIG; r++) {
        for (size_t j = 0; j < k; j++) {
            size_t c = col ? (size_t)col[j] : j;
            bad += nnrt_idx_get(&ds->images, (r - 1) * k + j) !=
                   (half && r == 30000 && c == 4 ? 1.5 : (double)((r * 7 + c * 13) % 256));
        }
        bad += nnrt_idx_get(&ds->labels, r - 1) != (r % 3 ? 0 : 1);
    }
    return CHECK(bad == 0);
}

/* The table's error is the first in the file, at its line and column. */
static void expect_error(bool notes, size_t nedit, const size_t *row, const int *col, const char *const *text,
                         const char *want_fmt, size_t want_line, size_t want_edit) {
    size_t len, at[4];
    char *t = big(notes, nedit, row, col, text, at, &len), err[512] = "", want[512];
    snprintf(want, sizeof want, want_fmt, want_line, at[want_edit]);
    NnrtClasses classes = {0};
    NnrtDataset ds;
    if (!CHECK(!read_big(t, len, &classes, &ds, err, sizeof err)))
        nnrt_dataset_free(&ds);
    else if (!CHECK(!strcmp(err, want)))
        printf("  got  %s\n  want %s\n", err, want);
    nnrt_classes_free(&classes);
    free(t);
}

static void test_parts(void) {
    size_t len;
    char err[512] = "";
    NnrtClasses classes = {0};
    NnrtDataset ds;
    /* The inputs out of order, p13 left out: runs of inputs in consecutive
     * columns and slots (p0-p4, p5-p7, p8-p12) are read as bytes in one
     * loop each. */
    static const char *const shuffled = "p5,p6,p7,p0,p1,p2,p3,p4,p8,p9,p10,p11,p12";
    static const int shuffled_col[] = {5, 6, 7, 0, 1, 2, 3, 4, 8, 9, 10, 11, 12};
    for (int k = 0; k < 4; k++) { /* 1.5: the parts before it widened, those after it converted */
        bool half = k % 2, shuffle = k / 2;
        size_t at;
        char *t = big(false, half, (size_t[]){30000}, (int[]){4}, (const char *[]){"1.5"}, &at, &len);
        if (CHECK(read_big_features(t, len, shuffle ? shuffled : NULL, &classes, &ds, err, sizeof err))) {
            big_values(&ds, half, shuffle ? shuffled_col : NULL, shuffle ? 13 : BIG_INPUTS);
            CHECK(classes.n == 2 && !strcmp(classes.names[0], "a") && !strcmp(classes.names[1], "b"));
            nnrt_dataset_free(&ds);
        } else {
            printf("  %s\n", err);
        }
        nnrt_classes_free(&classes);
        free(t);
    }

    /* Line r + 1 holds row r. Two errors in one block, in parts parsed
     * side by side: the first in the file is told, whichever thread is
     * done first. */
    expect_error(false, 1, (size_t[]){50000}, (int[]){5}, (const char *[]){"x7"},
                 "t.csv:%zu:%zu: not a number in column 'p5': x7", 50001, 0);
    expect_error(false, 2, (size_t[]){30000, 40000}, (int[]){3, 9}, (const char *[]){"", "x9"},
                 "t.csv:%zu:%zu: a missing value in column 'p3'", 30001, 0);
    expect_error(false, 2, (size_t[]){40000, 30000}, (int[]){9, 3}, (const char *[]){"", "x9"},
                 "t.csv:%zu:%zu: not a number in column 'p3': x9", 30001, 1);

    /* A class the training table's classes lack, told at its line. */
    classes = (NnrtClasses){.names = (char *[]){"a", "b"}, .n = 2};
    size_t at;
    char *t = big(false, 1, (size_t[]){45000}, (int[]){BIG_INPUTS}, (const char *[]){"c"}, &at, &len);
    if (!CHECK(!read_big(t, len, &classes, &ds, err, sizeof err)))
        nnrt_dataset_free(&ds);
    else if (!CHECK(!strcmp(err, "t.csv:45001: class 'c' in column 'class' was not seen in training (its classes: "
                                 "a, b)")))
        printf("  %s\n", err);
    free(t);

    /* A quoted note of 12,000 lines that look like rows, longer than a
     * part: it is one field of one row, wherever the parts would be cut,
     * and its lines are counted in the lines after it. */
    char *note = malloc(12000 * 48 + 3), *q = note;
    *q++ = '"';
    for (int i = 0; i < 12000; i++)
        q += sprintf(q, "%s1,2,3,4,5,6,7,8,9,10,11,12,13,14,a", i ? "\n" : "");
    strcpy(q, "\"");
    classes = (NnrtClasses){0};
    t = big(true, 1, (size_t[]){36000}, (int[]){BIG_INPUTS + 1}, (const char *[]){note}, &at, &len);
    if (CHECK(read_big(t, len, &classes, &ds, err, sizeof err))) {
        big_values(&ds, false, NULL, BIG_INPUTS);
        nnrt_dataset_free(&ds);
    } else {
        printf("  %s\n", err);
    }
    nnrt_classes_free(&classes);
    free(t);
    expect_error(true, 2, (size_t[]){36000, 60000}, (int[]){BIG_INPUTS + 1, 2}, (const char *[]){note, "-"},
                 "t.csv:%zu:%zu: not a number in column 'p2': -", 60001 + 11999, 1);
    free(note);

    /* Random values and errors in random rows: read in parts, and by the
     * byte loop alone where every row holds a quote (a column after the
     * others), the values and the first error are the same, with the
     * inputs in order or out of it (every other trial). */
    static const char *const text[] = {"x7", "", "1.5", "300", "c", "-"};
    for (int trial = 0; trial < 8; trial++) {
        size_t nedit = 1 + next() % 3, row[3], at2[3];
        int col[3];
        const char *edit[3];
        for (size_t k = 0; k < nedit; k++) {
            edit[k] = text[next() % 6];
            row[k] = 1 + next() % BIG;
            col[k] = !strcmp(edit[k], "c") ? BIG_INPUTS : (int)(next() % BIG_INPUTS);
        }
        NnrtDataset got[2];
        NnrtClasses cls[2] = {{0}, {0}};
        char msg[2][512] = {"", ""};
        bool ok[2];
        for (int quoted = 0; quoted < 2; quoted++) {
            char *tq = big(1 + quoted, nedit, row, col, edit, at2, &len);
            ok[quoted] = read_big_features(tq, len, trial % 2 ? shuffled : NULL, &cls[quoted], &got[quoted],
                                           msg[quoted], sizeof msg[quoted]);
            free(tq);
        }
        if (CHECK(ok[0] == ok[1]) && ok[0]) {
            const NnrtIdx *a = &got[0].images, *b = &got[1].images;
            CHECK(a->type == b->type && a->count == b->count && !memcmp(a->data, b->data, a->count * a->elem_size));
            CHECK(!memcmp(got[0].labels.data, got[1].labels.data, BIG * sizeof(int32_t)) && cls[0].n == cls[1].n);
        } else if (!ok[0] && !CHECK(!strcmp(msg[0], msg[1]))) {
            printf("  parts:     %s\n  byte loop: %s\n", msg[0], msg[1]);
        }
        for (int quoted = 0; quoted < 2; quoted++) {
            if (ok[quoted])
                nnrt_dataset_free(&got[quoted]);
            nnrt_classes_free(&cls[quoted]);
        }
    }
}

int main(int argc, char **argv) {
    nnrt_set_threads(argc > 1 ? atoi(argv[1]) : 2);
    test_numbers();
    test_bytes();
    test_number_delimiter();
    test_parts();
    return check_summary();
}
