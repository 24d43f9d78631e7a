/* frame_queue.c: a bounded frame queue (see frame_queue.h). */
#include "frame_queue.h"

#include <pthread.h>
#include <stdlib.h>

#include "err.h"

struct frame_queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    fq_item *items;
    int cap, head, count;
    int closed, cancelled;
};

frame_queue *fq_new(int capacity)
{
    VS_CHECK(capacity >= 1);
    frame_queue *q = vs_calloc(1, sizeof *q);
    q->items = vs_calloc((size_t)capacity, sizeof *q->items);
    q->cap = capacity;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->changed, NULL);
    return q;
}

void fq_free(frame_queue *q)
{
    if (!q) return;
    for (int i = 0; i < q->count; i++) {
        img_free(q->items[(q->head + i) % q->cap].frame);
        free(q->items[(q->head + i) % q->cap].data);
    }
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->mu);
    free(q->items);
    free(q);
}

int fq_push(frame_queue *q, fq_item it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->cancelled) pthread_cond_wait(&q->changed, &q->mu);
    int rc = -1;
    if (!q->cancelled) {
        VS_CHECK(!q->closed);
        q->items[(q->head + q->count) % q->cap] = it;
        q->count++;
        rc = 0;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int fq_pop(frame_queue *q, fq_item *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed && !q->cancelled) pthread_cond_wait(&q->changed, &q->mu);
    int rc;
    if (q->cancelled) {
        rc = -1;
    } else if (q->count == 0) {
        rc = 0;
    } else {
        *it = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        rc = 1;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void fq_close(frame_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

void fq_cancel(frame_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->cancelled = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}
