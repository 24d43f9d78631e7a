/* job.h: long work (extract, train, convert) runs as a job on a worker thread. The job publishes
 * its status (a job-specific struct) under a mutex, and takes commands (pause, resume, stop) that
 * it polls between units of work. A job never touches the terminal: the CLI prints snapshots of
 * its status, the workbench draws them. */
#ifndef VS_JOB_H
#define VS_JOB_H

#include <pthread.h>
#include <stddef.h>

#include "err.h"

typedef enum job_state { JOB_RUNNING, JOB_PAUSED, JOB_DONE, JOB_FAILED, JOB_STOPPED } job_state;
/* SAVE asks a job that keeps state (the trainer) to save it now; other jobs ignore it. */
typedef enum job_cmd { JOB_CMD_PAUSE, JOB_CMD_RESUME, JOB_CMD_STOP, JOB_CMD_SAVE } job_cmd;

typedef struct job job;
/* The work: returns 0 when done (or stopped on request), -1 with e filled on failure. */
typedef int (*job_fn)(job *j, void *arg, vs_err *e);

struct job {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_fn fn;
    void *arg;
    void *status; /* status_size bytes, written by job_publish under mu */
    size_t status_size;
    job_state state;
    int stop_requested, pause_requested, save_requested;
    vs_err err;
};

/* Starts fn(j, arg) on a new thread; status points to a buffer of status_size bytes that
 * job_publish fills and job_snapshot copies out. */
void job_start(job *j, job_fn fn, void *arg, void *status, size_t status_size);

/* From the job: publish a new status; returns non-zero when the job should stop now. Blocks
 * while paused. */
int job_publish(job *j, const void *status);
int job_should_stop(job *j);
/* From the job: non-zero once after each JOB_CMD_SAVE (the request is cleared). */
int job_take_save(job *j);

/* From outside: */
void job_command(job *j, job_cmd c);
job_state job_snapshot(job *j, void *status_out); /* copies the status, returns the state */

/* Joins the thread; returns 0 if the job finished or was stopped, -1 with its error. */
int job_wait(job *j, vs_err *e);

#endif
