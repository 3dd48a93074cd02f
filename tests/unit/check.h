/* check.h — the unit tests' one assertion. CHECK(cond) counts the check,
 * prints FAIL with the place and the condition when it does not hold, and
 * returns it (so a test can stop early); check_summary() prints the closing
 * line "N passed, M failed" and gives main's exit status. Header-only: each
 * unit test is a program of its own. */
#ifndef NNC_TEST_CHECK_H
#define NNC_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int passed, failed;

static inline bool check(bool ok, const char *what, const char *file, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}
#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif
