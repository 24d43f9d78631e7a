/* frame_queue.h: a bounded queue of decoded frames between threads (decoding, swapping,
 * encoding run at the same time and no one runs ahead of the others by more than its capacity).
 * The producer closes it when done; anyone may cancel it, which fails every push and pop from
 * then on (an error or a stop on one side stops the others). */
#ifndef VS_FRAME_QUEUE_H
#define VS_FRAME_QUEUE_H

#include <stdint.h>

#include "image.h"

typedef struct fq_item {
    img *frame; /* owned by the queue while in it */
    int64_t index, pts;
    void *data; /* what else the two sides pass with it (malloc'd; also owned by the queue) */
} fq_item;

typedef struct frame_queue frame_queue;

frame_queue *fq_new(int capacity);
/* Frees the queue and any frames (and data) still in it. */
void fq_free(frame_queue *q);

/* Waits while full: 0 (the queue took the item), or -1 when cancelled (the caller keeps it). */
int fq_push(frame_queue *q, fq_item it);
/* Waits while empty: 1 with an item, 0 when closed and empty, -1 when cancelled. */
int fq_pop(frame_queue *q, fq_item *it);
/* No more pushes: pops take what is left, then get 0. */
void fq_close(frame_queue *q);
void fq_cancel(frame_queue *q);

#endif
