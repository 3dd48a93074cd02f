/* diag.c — the one path for user-facing errors, warnings and notes, and
 * reading source files.
 *
 * Messages look like clang's, because users (and tests) read them that way:
 *
 *     mlp.nn:4:16: error: unknown activation 'relux'; did you mean 'relu'?
 *         dense  512, relux
 *                     ^
 *
 * Columns count bytes. The caret line copies the tabs of the source line so
 * the caret lands under the column whatever the terminal's tab width. Any
 * input must give a bounded amount of output, so a long line is shown as a
 * window around the column, non-printable bytes as '?', and after max_errors
 * errors nothing more is printed (the count goes on: it decides the exit
 * status).
 */
#include "nnc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    DIAG_LINE_WIDTH = 100, /* longer lines are shown as a window this wide */
    DIAG_LINE_LEFT = 50,   /* bytes shown left of the caret in a window */
    DIAG_CLIP = 40,        /* longest quoted user text */
};

void diag_init(Diag *d, FILE *out) {
    d->out = out;
    d->errors = 0;
    d->warnings = 0;
    d->max_errors = 20;
    d->errors_only = false;
}

bool diag_quiet(const Diag *d) { return d->max_errors > 0 && d->errors > d->max_errors; }

static bool diag_printable(unsigned char c) { return c >= 0x20 && c < 0x7f; }

const char *diag_clip(Arena *a, const char *s, size_t len) {
    size_t n = len > DIAG_CLIP ? DIAG_CLIP : len;
    char *q = arena_alloc(a, n + 4);
    for (size_t i = 0; i < n; i++)
        q[i] = diag_printable((unsigned char)s[i]) ? s[i] : '?';
    if (n < len)
        memcpy(q + n, "...", 3);
    return q;
}

/* The source line of `loc`, then a caret under its column. */
static void diag_show_line(Diag *d, Loc loc) {
    const char *text = loc.src->quoted ? loc.src->quoted : loc.src->text;
    size_t len = loc.src->len;
    size_t off = loc.offset < len ? loc.offset : len;
    size_t start = off, end = off;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    while (end < len && text[end] != '\n')
        end++;
    if (end > start && text[end - 1] == '\r')
        end--;
    size_t line_len = end - start, caret = off - start;
    size_t from = 0, to = line_len;
    if (line_len > DIAG_LINE_WIDTH) {
        from = caret > DIAG_LINE_LEFT ? caret - DIAG_LINE_LEFT : 0;
        to = from + DIAG_LINE_WIDTH;
        if (to > line_len) {
            to = line_len;
            from = line_len - DIAG_LINE_WIDTH;
        }
    }
    const char *line = text + start;
    FILE *out = d->out;
    if (from > 0)
        fputs("...", out);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)line[i];
        fputc(c == '\t' || diag_printable(c) ? c : '?', out);
    }
    if (to < line_len)
        fputs("...", out);
    fputc('\n', out);
    if (from > 0)
        fputs("   ", out);
    for (size_t i = from; i < caret && i < to; i++)
        fputc(line[i] == '\t' ? '\t' : ' ', out);
    fputs("^\n", out);
}

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagKind;

static void diag_report(Diag *d, DiagKind kind, const Loc *loc, const char *fmt, va_list ap) {
    static const char *const kind_name[] = {"error", "warning", "note"};
    if (kind == DIAG_ERROR) {
        d->errors++;
        if (d->max_errors > 0 && d->errors == d->max_errors + 1)
            fprintf(d->out, "nnc: note: too many errors; stopping after %d\n", d->max_errors);
    } else if (kind == DIAG_WARNING) {
        d->warnings++;
    }
    if (diag_quiet(d) || (d->errors_only && kind != DIAG_ERROR))
        return;
    if (loc && loc->src)
        fprintf(d->out, "%s:%d:%d: %s: ", loc->src->path, loc->line, loc->col, kind_name[kind]);
    else
        fprintf(d->out, "nnc: %s: ", kind_name[kind]);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    if (loc && loc->src)
        diag_show_line(d, *loc);
    fflush(d->out);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_report(d, DIAG_ERROR, &loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_report(d, DIAG_WARNING, &loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_report(d, DIAG_NOTE, &loc, fmt, ap);
    va_end(ap);
}

void diag_plain(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_report(d, DIAG_ERROR, NULL, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- sources */

/* Reads with fread rather than mmap: it works on pipes and /dev/stdin too,
 * and the text may then outlive the file. */
bool source_read(Arena *a, Diag *d, const char *path, Source *src) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_plain(d, "cannot open '%s': %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        diag_plain(d, "cannot read '%s': %s", path, strerror(errno));
        fclose(f);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        diag_plain(d, "cannot read '%s': %s", path, strerror(EISDIR));
        fclose(f);
        return false;
    }
    size_t cap = S_ISREG(st.st_mode) && (uint64_t)st.st_size < NNC_MAX_SOURCE_BYTES
                     ? (size_t)st.st_size + 1 : 64 * 1024;
    char *buf = xrealloc(NULL, cap, 1);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap, 1);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len > NNC_MAX_SOURCE_BYTES) {
            diag_plain(d, "'%s' is too large: source files are limited to %zu MiB", path,
                       NNC_MAX_SOURCE_BYTES >> 20);
            free(buf);
            fclose(f);
            return false;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        diag_plain(d, "cannot read '%s': %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return false;
    }
    fclose(f);
    *src = (Source){.path = arena_strndup(a, path, strlen(path)), .text = arena_strndup(a, buf, len), .len = len};
    free(buf);
    return true;
}
