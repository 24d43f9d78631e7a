/* job.c: worker-thread jobs with a published status and a command queue (see job.h). */
#include "job.h"

#include <string.h>

static void *job_main(void *p)
{
    job *j = p;
    vs_err e = {{0}};
    int rc = j->fn(j, j->arg, &e);
    pthread_mutex_lock(&j->mu);
    if (rc) {
        j->state = JOB_FAILED;
        j->err = e;
    } else {
        j->state = j->stop_requested ? JOB_STOPPED : JOB_DONE;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

void job_start(job *j, job_fn fn, void *arg, void *status, size_t status_size)
{
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->fn = fn, j->arg = arg;
    j->status = status, j->status_size = status_size;
    j->state = JOB_RUNNING;
    VS_CHECK(pthread_create(&j->thread, NULL, job_main, j) == 0);
}

int job_should_stop(job *j)
{
    pthread_mutex_lock(&j->mu);
    while (j->pause_requested && !j->stop_requested) {
        j->state = JOB_PAUSED;
        pthread_cond_wait(&j->cv, &j->mu);
    }
    j->state = JOB_RUNNING;
    int stop = j->stop_requested;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

int job_publish(job *j, const void *status)
{
    pthread_mutex_lock(&j->mu);
    memcpy(j->status, status, j->status_size);
    pthread_mutex_unlock(&j->mu);
    return job_should_stop(j);
}

void job_command(job *j, job_cmd c)
{
    pthread_mutex_lock(&j->mu);
    switch (c) {
    case JOB_CMD_PAUSE: j->pause_requested = 1; break;
    case JOB_CMD_RESUME: j->pause_requested = 0; break;
    case JOB_CMD_STOP: j->stop_requested = 1; break;
    case JOB_CMD_SAVE: j->save_requested = 1; break;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int job_take_save(job *j)
{
    pthread_mutex_lock(&j->mu);
    int s = j->save_requested;
    j->save_requested = 0;
    pthread_mutex_unlock(&j->mu);
    return s;
}

job_state job_snapshot(job *j, void *status_out)
{
    pthread_mutex_lock(&j->mu);
    if (status_out) memcpy(status_out, j->status, j->status_size);
    job_state s = j->state;
    pthread_mutex_unlock(&j->mu);
    return s;
}

int job_wait(job *j, vs_err *e)
{
    pthread_join(j->thread, NULL);
    int rc = 0;
    if (j->state == JOB_FAILED) {
        if (e) *e = j->err;
        rc = -1;
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    return rc;
}
