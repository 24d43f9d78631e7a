/* err.h: the two kinds of failure in visage.
 * Bad input (missing file, corrupt model, full disk) is returned as -1 with a message in a vs_err
 * that names the file and the cause; core/ never exits. A broken invariant is a bug: VS_CHECK
 * reports statement, function and file:line, runs the registered cleanup hooks and aborts. */
#ifndef VS_ERR_H
#define VS_ERR_H

#include <stddef.h>

typedef struct vs_err {
    char msg[1024];
} vs_err;

/* Sets e->msg from the format (e may be NULL) and returns -1, so callers can `return vs_fail(...)`.
 */
int vs_fail(vs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in e with "prefix: " (used to add context on the way up). */
int vs_failctx(vs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus /* the CUDA backend includes this from C++ */
[[noreturn]]
#else
_Noreturn
#endif
void vs_bug(const char *stmt, const char *func, const char *file, int line);

/* Hooks run before a bug aborts (restore the terminal, remove temporary files). */
void vs_on_bug(void (*hook)(void));

#define VS_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) vs_bug(#cond, __func__, __FILE__, __LINE__);                                  \
    } while (0)

/* Allocation failure is treated as a bug: visage has no sensible way to go on without memory. */
void *vs_malloc(size_t n);
void *vs_calloc(size_t n, size_t size);
void *vs_realloc(void *p, size_t n);
char *vs_strdup(const char *s);

#endif
