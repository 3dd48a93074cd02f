/* test_csv.c — the table reader's numbers (runtime/csv.c): every value, read
 * by the row's fast path (a plain row's short decimals, decimal()) or by the
 * field's (a quoted row: parse_number, decimal() then strtod), is the float
 * of what strtod reads from its text, bit for bit, float32's rounding ties
 * among them (where a double one unit off shows); and a delimiter that can
 * be part of a number is not read as one.
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
            const float *x = ds.images.data;
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
                float want = (float)strtod(text + at[i], NULL);
                if (memcmp(&want, &x[i], sizeof want) && bad++ < 5)
                    printf("  %s%s: '%s' read as %.9g, strtod gives %.9g\n", quoted ? "quoted" : "plain",
                           crlf ? " crlf" : "", text + at[i], x[i], want);
            }
            CHECK(bad == 0);
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
            CHECK(!memcmp(ds.images.data, cases[k].want, sizeof cases[k].want));
            nnrt_dataset_free(&ds);
        }
    }
    const char *three = "1.5\n2.25.5\n";
    NnrtDataset ds;
    CHECK(!read_table(three, strlen(three), '.', &ds));
}

int main(void) {
    test_numbers();
    test_number_delimiter();
    return check_summary();
}
