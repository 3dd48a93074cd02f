/* test_csv.c — the table reader's numbers (runtime/csv.c): every value, read
 * by the row's fast path (a plain row's short decimals, decimal()) or by the
 * field's (a quoted row: parse_number, decimal() then strtod), is the float
 * of what strtod reads from its text, bit for bit, float32's rounding ties
 * among them (where a double one unit off shows); a table of integers
 * 0..255 is kept as bytes, and widened to float32 at its first other value
 * (-0 among them), its values as strtod reads them either way, in batches
 * too; and a delimiter that can be part of a number is not read as one.
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

int main(void) {
    test_numbers();
    test_bytes();
    test_number_delimiter();
    return check_summary();
}
