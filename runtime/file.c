/* file.c — what every runtime file that reports errors or writes outputs
 * shares: the error formatter, and the one atomic write path.
 *
 * An output (report, log, plot, checkpoint) is written to a temporary file
 * beside its target, flushed, fsynced, renamed over the target, and the
 * directory is fsynced so the rename itself is durable. A kill at any moment
 * leaves either the old file or the new one, never a mix; on any error the
 * temporary file is removed and the target is untouched.
 */
#define _GNU_SOURCE
#include "nnrt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
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

bool nnrt_atomic_begin(NnrtAtomic *a, const char *path, char *err, size_t errlen) {
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len = strlen(path);
    *a = (NnrtAtomic){.path = path, .tmp = malloc(len + sizeof suffix)};
    if (!a->tmp)
        return nnrt_fail(err, errlen, "%s: out of memory", path);
    memcpy(a->tmp, path, len);
    memcpy(a->tmp + len, suffix, sizeof suffix);
    int fd = mkstemp(a->tmp);
    a->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!a->f) {
        nnrt_fail(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(a->tmp);
        }
        free(a->tmp);
        a->tmp = NULL;
        return false;
    }
    fchmod(fd, 0644); /* mkstemp makes it 0600; outputs are as shareable as any other file */
    errno = 0;
    return true;
}

/* The directory holding path, synced so the rename is on disk too. */
static bool sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return false;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

bool nnrt_atomic_end(NnrtAtomic *a, bool keep, const char *what, char *err, size_t errlen) {
    int saved = keep ? 0 : (errno ? errno : EIO);
    if (!saved && (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0))
        saved = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !saved)
        saved = errno;
    if (!saved && rename(a->tmp, a->path) != 0)
        saved = errno;
    if (saved) {
        unlink(a->tmp);
        nnrt_fail(err, errlen, "%s: cannot write %s: %s", a->path, what, strerror(saved));
    } else if (!sync_dir(a->path)) {
        saved = errno ? errno : EIO;
        nnrt_fail(err, errlen, "%s: cannot sync its directory: %s", a->path, strerror(saved));
    }
    free(a->tmp);
    *a = (NnrtAtomic){0};
    return !saved;
}
