/* err.c: failure reporting for core/ (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HOOKS 8
static void (*hooks[MAX_HOOKS])(void);
static int n_hooks;

int vs_fail(vs_err *e, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int vs_failctx(vs_err *e, const char *fmt, ...)
{
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return -1;
}

void vs_on_bug(void (*hook)(void))
{
    VS_CHECK(n_hooks < MAX_HOOKS);
    hooks[n_hooks++] = hook;
}

_Noreturn void vs_bug(const char *stmt, const char *func, const char *file, int line)
{
    for (int i = n_hooks - 1; i >= 0; i--) hooks[i]();
    fprintf(stderr,
            "visage: internal error: %s failed in %s() at %s:%d\n"
            "This is a bug in visage; please report it with the command that caused it.\n",
            stmt, func, file, line);
    abort();
}

void *vs_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    VS_CHECK(p != NULL);
    return p;
}

void *vs_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    VS_CHECK(p != NULL);
    return p;
}

void *vs_realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    VS_CHECK(p != NULL);
    return p;
}

char *vs_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(vs_malloc(n), s, n);
}
