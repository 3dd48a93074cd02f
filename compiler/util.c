/* util.c — the arena every compiler object lives in, die() for internal
 * bugs, overflow-checked size arithmetic and allocation, and the edit
 * distance behind "did you mean".
 *
 * The arena is a list of chunks, bump-allocated and freed all at once: a
 * compilation (or a REPL entry) allocates freely and never frees piecemeal.
 */
#include "nnc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: internal error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

bool size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
bool size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Running out of memory is not a bug in nnc but a model too large for the
 * machine (or a ulimit): an error and exit status 2, like any other
 * resource the user has to provide, not die()'s abort. */
static _Noreturn void out_of_memory(size_t bytes) {
    fprintf(stderr, "nnc: error: out of memory: cannot allocate %zu bytes\n", bytes);
    exit(EXIT_USAGE);
}

void *xrealloc(void *p, size_t count, size_t elem) {
    size_t bytes;
    if (!size_mul(count, elem, &bytes))
        die("allocation of %zu x %zu bytes overflows", count, elem);
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q)
        out_of_memory(bytes);
    return q;
}

void *xcalloc(size_t count, size_t elem) {
    size_t bytes;
    if (!size_mul(count, elem, &bytes))
        die("allocation of %zu x %zu bytes overflows", count, elem);
    void *q = calloc(bytes ? bytes : 1, 1);
    if (!q)
        out_of_memory(bytes);
    return q;
}

void *xcalloc64(size_t count, size_t elem) {
    size_t bytes;
    if (!size_mul(count, elem, &bytes) || bytes > SIZE_MAX - 64)
        die("allocation of %zu x %zu bytes overflows", count, elem);
    bytes = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple; 64 for 0 */
    void *q = aligned_alloc(64, bytes ? bytes : 64);
    if (!q)
        out_of_memory(bytes);
    return memset(q, 0, bytes ? bytes : 64);
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n, 1);
    memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------- arena */

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
};

/* Chunks start small and double up to CHUNK_SIZE: the REPL keeps an arena
 * per entry that defines a name, most of them a few hundred bytes. */
enum { CHUNK_FIRST = 1024, CHUNK_SIZE = 64 * 1024 };

Arena *arena_new(void) {
    Arena *a = xrealloc(NULL, 1, sizeof *a);
    a->head = NULL;
    return a;
}

void arena_free(Arena *a) {
    if (!a)
        return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t size) {
    size_t rounded;
    if (!size_add(size, 15, &rounded))
        die("arena allocation of %zu bytes overflows", size);
    rounded &= ~(size_t)15;
    Chunk *c = a->head;
    if (!c || c->size - c->used < rounded) {
        size_t grown = c ? (c->size < CHUNK_SIZE / 2 ? 2 * c->size : CHUNK_SIZE) : CHUNK_FIRST;
        size_t cap = rounded > grown ? rounded : grown, bytes;
        if (!size_add(cap, sizeof(Chunk), &bytes))
            die("arena allocation of %zu bytes overflows", size);
        c = xrealloc(NULL, bytes, 1);
        c->size = cap;
        c->used = 0;
        /* A big allocation gets its own chunk behind the current one, so the
         * current chunk's free space is not wasted. */
        if (a->head && rounded > grown) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += rounded;
    memset(p, 0, size);
    return p;
}

void *arena_array(Arena *a, size_t count, size_t elem) {
    size_t bytes;
    if (!size_mul(count, elem, &bytes))
        die("arena array of %zu x %zu bytes overflows", count, elem);
    return arena_alloc(a, bytes);
}

void *arena_grow(Arena *a, void *v, int n, int *cap, size_t elem, int first) {
    if (n < *cap)
        return v;
    if (*cap > INT_MAX / 2)
        die("arena array of more than %d elements", INT_MAX / 2);
    *cap = *cap ? 2 * *cap : first;
    void *w = arena_array(a, (size_t)*cap, elem);
    if (n)
        memcpy(w, v, (size_t)n * elem);
    return w;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("arena_printf: bad format '%s'", fmt);
    char *s = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---------------------------------------------------------------- names */

int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) /* no sensible suggestion for long names */
        return 1 << 20;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *closest_name(const char *s, const char *const *cands) {
    const char *best = NULL;
    int best_d = 1 << 20;
    for (; *cands; cands++) {
        int d = edit_distance(s, *cands);
        if (d < best_d) {
            best_d = d;
            best = *cands;
        }
    }
    /* Close means at most a third of the name changed (and at least one edit allowed). */
    int len = (int)strlen(s);
    int limit = len / 3 > 1 ? len / 3 : 1;
    if (len >= 4 && limit < 2)
        limit = 2;
    return best_d <= limit ? best : NULL;
}
