/* file.c — what every runtime file that reports errors or writes outputs
 * shares: the error formatter, the checks of an output's path, the one
 * atomic write path, and the signal handler that cleans up after it.
 *
 * An output (report, log, plot, checkpoint, predictions) is written to a
 * temporary file beside its target, flushed, fsynced, renamed over the
 * target, and the directory is fsynced so the rename itself is durable. A
 * kill at any moment leaves either the old file or the new one, never a mix;
 * on any error the temporary file is removed and the target is untouched.
 *
 * The target is the file the path names: a symlink is followed (the new file
 * is renamed over the symlink's target, beside it, and the symlink stays);
 * anything but a regular file (a device, a FIFO, a directory) is refused, as
 * renaming over it would replace it with a regular file. The new file keeps
 * the mode of the one it replaces; a new one gets 0666 less the umask, as
 * any other program's output.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP would leave the temporary file of a
 * write in progress behind. nnrt_signals_install sets a handler that removes
 * it (unlink is async-signal-safe; the path is published through a lock-free
 * atomic pointer, which a handler may read) and then dies of the signal, as
 * the default action would. SIGXFSZ is ignored, so a write past the file
 * size limit fails with EFBIG like a full disk, and is reported as one.
 */
#define _GNU_SOURCE
#include "nnrt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool nnrt_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* ---------------------------------------------------------------- signals */

/* The temporary file being written, NULL when none: outputs are written one
 * after another, so there is at most one. */
static char *_Atomic pending_tmp;
static volatile sig_atomic_t sigint_stops;

static void on_signal(int sig) {
    if (sig == SIGINT && sigint_stops && !nnrt_interrupt_requested) {
        nnrt_interrupt(); /* the training loop stops after its step */
        return;
    }
    char *tmp = atomic_load(&pending_tmp);
    if (tmp)
        unlink(tmp);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* blocked until the handler returns, then the default action */
}

void nnrt_signals_install(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        /* An ignored signal stays ignored (nohup, a background job's SIGINT). */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGXFSZ, SIG_IGN);
}

void nnrt_sigint_stops_training(bool on) { sigint_stops = on; }

/* ---------------------------------------------------------------- output paths */

/* Where an output goes: the file its path names, symlinks followed. */
typedef struct Target {
    char *path; /* the canonical directory (realpath) + "/" + the name */
    char *dir;
    bool exists;
    struct stat st; /* when it exists */
} Target;

static void target_free(Target *t) {
    free(t->path);
    free(t->dir);
    *t = (Target){0};
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
           : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The path a symlink at `link` points to, relative targets taken from the
 * link's directory. malloc'd; NULL with errno set. */
static char *read_link(const char *link, size_t size_hint) {
    size_t cap = size_hint + 2;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf)
            return NULL;
        ssize_t n = readlink(link, buf, cap);
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if ((size_t)n < cap) { /* not truncated (the link may have changed since lstat) */
            buf[n] = 0;
            const char *slash = strrchr(link, '/');
            if (buf[0] == '/' || !slash)
                return buf;
            size_t dlen = (size_t)(slash - link) + 1;
            char *joined = malloc(dlen + (size_t)n + 1);
            if (joined) {
                memcpy(joined, link, dlen);
                memcpy(joined + dlen, buf, (size_t)n + 1);
            }
            free(buf);
            return joined;
        }
        free(buf);
        if (cap > SIZE_MAX / 2) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        cap *= 2;
    }
}

/* Resolves an output path to its target and checks that it can be written:
 * the target is a regular file or not there yet, and its directory exists
 * and is writable (the temporary file is made there). Messages begin with
 * `label` (the path, or the option and the path). */
static bool resolve(const char *path, const char *label, Target *t, char *err, size_t errlen) {
    *t = (Target){0};
    char *cur = strdup(path);
    int hops = 0;
    while (cur) {
        if (lstat(cur, &t->st) != 0) {
            if (errno != ENOENT && errno != ENOTDIR) { /* those two: said of the directory below */
                int e = errno;
                free(cur);
                return nnrt_fail(err, errlen, "%s: cannot write it: %s", label, strerror(e));
            }
            break; /* not there yet: it will be created */
        }
        if (!S_ISLNK(t->st.st_mode)) {
            t->exists = true;
            break;
        }
        if (++hops > 40) { /* the kernel's limit */
            free(cur);
            return nnrt_fail(err, errlen, "%s: cannot write it: %s", label, strerror(ELOOP));
        }
        char *next = read_link(cur, (size_t)t->st.st_size);
        free(cur);
        cur = next;
    }
    if (!cur)
        return nnrt_fail(err, errlen, "%s: cannot write it: %s", label, strerror(errno));
    char *slash = strrchr(cur, '/');
    const char *name = slash ? slash + 1 : cur;
    if ((t->exists && !S_ISREG(t->st.st_mode)) || !*name || !strcmp(name, ".") || !strcmp(name, "..")) {
        nnrt_fail(err, errlen, "%s: is %s; nnc writes its outputs only to regular files", label,
                  t->exists ? file_kind(t->st.st_mode) : "a directory");
        free(cur);
        return false;
    }
    if (slash)
        *slash = 0;
    t->dir = realpath(slash ? (slash == cur ? "/" : cur) : ".", NULL);
    struct stat ds;
    int e = !t->dir ? errno : stat(t->dir, &ds) != 0 ? errno : !S_ISDIR(ds.st_mode) ? ENOTDIR
            : access(t->dir, W_OK | X_OK) != 0 ? errno : 0;
    if (e) {
        nnrt_fail(err, errlen, "%s: cannot write in its directory: %s", label, strerror(e));
        free(cur);
        target_free(t);
        return false;
    }
    size_t dlen = strlen(t->dir), nlen = strlen(name);
    t->path = malloc(dlen + nlen + 2);
    if (t->path) {
        memcpy(t->path, t->dir, dlen);
        t->path[dlen] = '/';
        memcpy(t->path + dlen + 1, name, nlen + 1);
    }
    free(cur);
    if (!t->path) {
        target_free(t);
        return nnrt_fail(err, errlen, "%s: out of memory", label);
    }
    return true;
}

bool nnrt_check_run_files(const NnrtRunFile *f, size_t n, char *err, size_t errlen) {
    Target *t = calloc(n ? n : 1, sizeof *t);
    if (!t)
        return nnrt_fail(err, errlen, "out of memory");
    bool ok = true;
    /* Inputs are only looked at (stat follows symlinks): one that is not
     * there is reported when it is read. */
    for (size_t i = 0; ok && i < n; i++) {
        if (f[i].output) {
            char label[4200];
            snprintf(label, sizeof label, "%s %s", f[i].option, f[i].path);
            ok = resolve(f[i].path, label, &t[i], err, errlen);
        } else {
            t[i].exists = stat(f[i].path, &t[i].st) == 0;
        }
    }
    for (size_t i = 0; ok && i < n; i++)
        for (size_t j = 0; ok && j < i; j++) {
            if ((!f[i].output && !f[j].output) || (f[i].shared && f[i].shared == f[j].shared))
                continue;
            bool same = t[i].exists && t[j].exists
                            ? t[i].st.st_dev == t[j].st.st_dev && t[i].st.st_ino == t[j].st.st_ino
                            : t[i].path && t[j].path && !strcmp(t[i].path, t[j].path);
            if (same && f[i].output && f[j].output)
                ok = nnrt_fail(err, errlen, "%s %s and %s %s are one file: each output needs its own",
                               f[j].option, f[j].path, f[i].option, f[i].path);
            else if (same) {
                const NnrtRunFile *out = f[i].output ? &f[i] : &f[j], *in = out == &f[i] ? &f[j] : &f[i];
                ok = nnrt_fail(err, errlen, "%s %s would overwrite %s %s, an input of the run",
                               out->option, out->path, in->option, in->path);
            }
        }
    for (size_t i = 0; i < n; i++)
        target_free(&t[i]);
    free(t);
    return ok;
}

/* ---------------------------------------------------------------- atomic writes */

static mode_t new_file_mode(void) {
    mode_t mask = umask(0); /* the only way to read it; no other thread makes files meanwhile */
    umask(mask);
    return 0666 & ~mask;
}

bool nnrt_atomic_begin(NnrtAtomic *a, const char *path, char *err, size_t errlen) {
    static const char suffix[] = ".tmp.XXXXXX";
    *a = (NnrtAtomic){.name = path};
    Target t;
    if (!resolve(path, path, &t, err, errlen))
        return false;
    size_t len = strlen(t.path);
    a->path = t.path;
    a->mode = t.exists ? t.st.st_mode & 07777 : new_file_mode();
    a->tmp = malloc(len + sizeof suffix);
    free(t.dir);
    if (!a->tmp) {
        free(a->path);
        return nnrt_fail(err, errlen, "%s: out of memory", path);
    }
    memcpy(a->tmp, a->path, len);
    memcpy(a->tmp + len, suffix, sizeof suffix);
    /* Published before it is made: a signal in any thread while mkstemp
     * runs then finds the template (no such file) or the file's name. */
    atomic_store(&pending_tmp, a->tmp);
    int fd = mkstemp(a->tmp); /* 0600 until it is complete */
    a->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!a->f) {
        nnrt_fail(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(a->tmp);
        }
        atomic_store(&pending_tmp, NULL);
        free(a->tmp);
        free(a->path);
        *a = (NnrtAtomic){0};
        return false;
    }
    errno = 0;
    return true;
}

/* The directory holding path, synced so the rename is on disk too. */
static bool sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return false;
    *strrchr(copy, '/') = 0; /* path is canonical: "/dir/name" */
    int fd = open(*copy ? copy : "/", O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Ends the write; with f (and success) the file stays open in *f, now
 * the target's, for appending. */
static bool finish(NnrtAtomic *a, bool keep, const char *what, FILE **f, char *err, size_t errlen) {
    int saved = keep ? 0 : (errno ? errno : EIO);
    if (!saved && (fflush(a->f) != 0 || ferror(a->f) || fchmod(fileno(a->f), a->mode) != 0 ||
                   fsync(fileno(a->f)) != 0))
        saved = errno ? errno : EIO;
    bool stays_open = !saved && f;
    if (!stays_open && fclose(a->f) != 0 && !saved)
        saved = errno;
    if (!saved && rename(a->tmp, a->path) != 0)
        saved = errno;
    if (saved) {
        unlink(a->tmp);
        nnrt_fail(err, errlen, "%s: cannot write %s: %s", a->name, what, strerror(saved));
    } else if (!sync_dir(a->path)) {
        saved = errno ? errno : EIO;
        nnrt_fail(err, errlen, "%s: cannot sync its directory: %s", a->name, strerror(saved));
    }
    atomic_store(&pending_tmp, NULL); /* after the rename: a signal until then removes the file */
    if (stays_open && saved)
        fclose(a->f);
    else if (stays_open)
        *f = a->f;
    free(a->tmp);
    free(a->path);
    *a = (NnrtAtomic){0};
    return !saved;
}

bool nnrt_atomic_end(NnrtAtomic *a, bool keep, const char *what, char *err, size_t errlen) {
    return finish(a, keep, what, NULL, err, errlen);
}

bool nnrt_atomic_end_open(NnrtAtomic *a, bool keep, const char *what, FILE **f, char *err, size_t errlen) {
    return finish(a, keep, what, f, err, errlen);
}
