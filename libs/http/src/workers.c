/* workers.c -- the threads a pooled server runs waiting handlers on, off its polling threads.
 * A thread starts when a job comes and none is idle (up to max); started threads stay until the
 * server stops, so a burst pays for thread creation once. Jobs are linked through their own
 * node, so queueing one never allocates and cannot fail. */
#include "http_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include "mindroom/thread_name.h"

struct http_workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t *threads;
    unsigned max, live, idle;
    bool stopping;
    http_job *head, *tail;
};

static void *worker_main(void *arg)
{
    http_workers *w = arg;
    mr_thread_name("http-handler");
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping) {
            w->idle++;
            pthread_cond_wait(&w->wake, &w->lock);
            w->idle--;
        }
        http_job *j = w->head;
        if (!j)
            break;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        j->run(j);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Called with the lock held. */
static bool start_thread(http_workers *w)
{
    if (pthread_create(&w->threads[w->live], NULL, worker_main, w) != 0)
        return false;
    w->live++;
    return true;
}

http_workers *http_workers_new(unsigned max)
{
    http_workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->max = max ? max : 1;
    w->threads = calloc(w->max, sizeof *w->threads);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    /* One thread from the start: a job queued when no more can be started still runs. */
    if (!w->threads || !start_thread(w)) {
        http_workers_free(w);
        return NULL;
    }
    return w;
}

void http_workers_submit(http_workers *w, http_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    /* A thread that cannot be started now only means the job waits for a busy one. */
    if (w->idle == 0 && w->live < w->max)
        start_thread(w);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void http_workers_free(http_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    unsigned live = w->live;
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < live; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->threads);
    free(w);
}
