/* repl_term.c — the REPL's input: where an entry ends, and the terminal.
 *
 * An entry is a line, or more while a brace stays open: a model block
 * goes on until its '}' closes (the continuation prompt says so). Commands
 * (':...') are one line each.
 *
 * On a terminal, libedit (BSD-licensed, like nnc's MIT) does the editing:
 * emacs keys, history kept in ~/.nnc_history, Tab completing the session's
 * names and the commands. Ctrl-C at the prompt drops the line being typed;
 * during an entry it asks a training run to stop after its step, a
 * computation between its loops, a compilation at once (jit.c) (the
 * runtime's interrupt request), and the prompt comes back. Ctrl-D leaves.
 * Without a terminal (a pipe, a test) the lines are read as they are, with
 * no prompt, and the exit status says whether every entry succeeded.
 */
#include "nnc.h"

#include <errno.h>
#include <histedit.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How many braces the line leaves open (comments skipped). Only braces:
 * an unclosed '(' is more often a typo, better reported at once. */
static int open_braces(const char *s, size_t n) {
    int depth = 0;
    for (size_t i = 0; i < n && s[i] != '#'; i++)
        depth += s[i] == '{' ? 1 : s[i] == '}' ? -1 : 0;
    return depth;
}

/* An entry being put together from lines. */
typedef struct Pending {
    char *text;
    size_t len, cap;
    int depth;
    bool dropped; /* longer than a source file may be: its lines are only counted until it ends */
} Pending;

/* Adds a line; true if the entry is complete (and not dropped). An entry
 * that outgrows NNC_MAX_SOURCE_BYTES is reported once and dropped, the
 * rest of it skipped: an endless line or unclosed block holds no more
 * memory than a file may. */
static bool pending_add(Repl *r, Pending *p, const char *line, size_t n) {
    size_t need;
    if (!p->dropped && (!size_add(p->len, n, &need) || !size_add(need, 2, &need) || need > NNC_MAX_SOURCE_BYTES)) {
        diag_plain(repl_diag(r), "an entry is limited to %zu MiB, as a source file is: dropped",
                   NNC_MAX_SOURCE_BYTES >> 20);
        p->dropped = true;
        p->len = 0;
    }
    bool command = p->depth == 0 && n && line[strspn(line, " \t")] == ':';
    if (p->dropped) {
        p->depth += command ? 0 : open_braces(line, n);
        if (p->depth <= 0) {
            p->dropped = false;
            p->depth = 0;
        }
        return false;
    }
    if (need > p->cap) {
        p->cap = need * 2;
        p->text = xrealloc(p->text, p->cap, 1);
    }
    memcpy(p->text + p->len, line, n);
    p->len += n;
    if (!p->len || p->text[p->len - 1] != '\n')
        p->text[p->len++] = '\n';
    p->depth += command ? 0 : open_braces(line, n);
    return p->depth <= 0;
}

/* ---------------------------------------------------------------- scripted */

static int read_scripted(Repl *r) {
    Pending p = {0};
    char *line = NULL;
    size_t cap = 0;
    bool failed = false;
    ssize_t n;
    while (!repl_done(r) && (n = getline(&line, &cap, stdin)) >= 0) {
        if (!pending_add(r, &p, line, (size_t)n)) {
            failed |= p.dropped;
            continue;
        }
        failed |= !repl_eval(r, "<stdin>", p.text, p.len);
        p.len = 0;
        p.depth = 0;
    }
    if (p.len && !repl_done(r)) /* an unclosed block at the end: its errors say so */
        failed |= !repl_eval(r, "<stdin>", p.text, p.len);
    free(line);
    free(p.text);
    return failed ? EXIT_INVALID_MODEL : EXIT_OK;
}

/* ---------------------------------------------------------------- the terminal */

static void on_sigint(int sig) {
    (void)sig;
    nnrt_interrupt();
}

typedef struct Term {
    Repl *r;
    Pending p;
} Term;

static char *prompt(EditLine *el) {
    Term *t;
    el_get(el, EL_CLIENTDATA, &t);
    return t->p.len ? "...  " : "nnc> ";
}

/* Tab: completes the word before the cursor from the session's names and
 * the commands; several candidates: their common prefix, or the list. */
static unsigned char complete(EditLine *el, int ch) {
    (void)ch;
    Term *t;
    el_get(el, EL_CLIENTDATA, &t);
    const LineInfo *li = el_line(el);
    const char *start = li->cursor;
    while (start > li->buffer && (start[-1] == '_' || start[-1] == '-' || start[-1] == ':' || start[-1] == '.' ||
                                  (start[-1] >= 'a' && start[-1] <= 'z') || (start[-1] >= 'A' && start[-1] <= 'Z') ||
                                  (start[-1] >= '0' && start[-1] <= '9')))
        start--;
    size_t n = (size_t)(li->cursor - start);
    const char **names;
    int count = repl_names(t->r, &names), matches = 0;
    const char *first = NULL;
    size_t common = 0;
    for (int i = 0; i < count; i++) {
        if (strncmp(names[i], start, n) != 0 || (names[i][0] == ':') != (start[0] == ':'))
            continue;
        if (!matches++) {
            first = names[i];
            common = strlen(first);
        } else {
            size_t k = 0;
            while (k < common && names[i][k] == first[k])
                k++;
            common = k;
        }
    }
    unsigned char result = CC_ERROR;
    if (matches && common > n) {
        char *ins = xcalloc(common - n + 2, 1);
        memcpy(ins, first + n, common - n);
        if (matches == 1)
            ins[common - n] = ' ';
        result = el_insertstr(el, ins) == 0 ? CC_REFRESH : CC_ERROR;
        free(ins);
    } else if (matches > 1) {
        fputc('\n', stdout);
        for (int i = 0; i < count; i++)
            if (strncmp(names[i], start, n) == 0 && (names[i][0] == ':') == (start[0] == ':'))
                printf("%s  ", names[i]);
        fputc('\n', stdout);
        result = CC_REDISPLAY;
    }
    free(names);
    return result;
}

static const char *history_path(char *buf, size_t n) {
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    snprintf(buf, n, "%s/.nnc_history", home);
    return buf;
}

static int read_terminal(Repl *r) {
    Term t = {.r = r};
    EditLine *el = el_init("nnc", stdin, stdout, stderr);
    History *h = history_init();
    if (!el || !h)
        die("libedit: cannot initialise the terminal");
    HistEvent ev;
    history(h, &ev, H_SETSIZE, 1000);
    history(h, &ev, H_SETUNIQUE, 1);
    char path[4096];
    const char *hist = history_path(path, sizeof path);
    if (hist)
        history(h, &ev, H_LOAD, hist); /* none yet is fine */
    el_set(el, EL_CLIENTDATA, &t);
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_PROMPT, prompt);
    el_set(el, EL_HIST, history, h);
    /* The wide form: el_set's copies the two strings into memory el_end
     * never frees (160 bytes, which LeakSanitizer reported on every exit);
     * el_wset keeps these, which live as long as the program. */
    el_wset(el, EL_ADDFN, L"nnc-complete", L"complete a name or command", complete);
    el_set(el, EL_BIND, "^I", "nnc-complete", NULL);
    el_source(el, NULL); /* ~/.editrc, if the user has one */
    /* Ctrl-C: no SA_RESTART, so it ends the read at the prompt. */
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    printf("nnc %s: :help lists the commands, Ctrl-D leaves\n", NNC_VERSION);
    while (!repl_done(r)) {
        nnrt_clear_interrupt();
        int n;
        errno = 0;
        const char *line = el_gets(el, &n);
        if (!line && nnrt_interrupted()) { /* Ctrl-C at the prompt: drop the entry */
            fputc('\n', stdout);
            t.p.len = 0;
            t.p.depth = 0;
            continue;
        }
        if (!line || n <= 0)
            break;
        if (!pending_add(r, &t.p, line, (size_t)n))
            continue;
        if (t.p.len > 1) {
            t.p.text[t.p.len - 1] = 0;
            history(h, &ev, H_ENTER, t.p.text);
            t.p.text[t.p.len - 1] = '\n';
        }
        repl_eval(r, "<stdin>", t.p.text, t.p.len);
        t.p.len = 0;
        t.p.depth = 0;
    }
    if (!repl_done(r))
        fputc('\n', stdout);
    if (hist)
        history(h, &ev, H_SAVE, hist);
    sigaction(SIGINT, &old, NULL);
    history_end(h);
    el_end(el);
    free(t.p.text);
    return EXIT_OK;
}

int repl_main(Repl *r) {
    /* Results and diagnostics (stderr) appear in the order they happen. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    return isatty(STDIN_FILENO) ? read_terminal(r) : read_scripted(r);
}
