/* publishers.c -- each publishing thread's own delivery failures, so a flush reports the caller's.
 *
 * A message carries its publisher's record; a failure found later (a Redis error reply, a Kafka
 * delivery report, served by whichever thread reads it) lands there, and only that thread's next
 * flush returns it. A record lives until the bus closes (threads are few and long-lived); a new
 * thread that reuses a finished one's ID inherits a failure that thread never flushed, which
 * errs on the side of an error rather than a silent loss.
 */
#include "bus_internal.h"

#include <stdlib.h>

struct mr_bus_publisher {
    pthread_t thread;
    mr_err failure; /* its first failure since its last flush */
    struct mr_bus_publisher *next;
};

void Mr_bus_publishers_init(mr_bus_publishers *ps)
{
    pthread_mutex_init(&ps->mu, NULL);
    ps->list = NULL;
}

void Mr_bus_publishers_free(mr_bus_publishers *ps)
{
    for (mr_bus_publisher *p = ps->list, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    ps->list = NULL;
    pthread_mutex_destroy(&ps->mu);
}

/* Called with ps->mu held. */
static mr_bus_publisher *find(mr_bus_publishers *ps, pthread_t self)
{
    for (mr_bus_publisher *p = ps->list; p; p = p->next)
        if (pthread_equal(p->thread, self))
            return p;
    return NULL;
}

mr_bus_publisher *Mr_bus_publisher_self(mr_bus_publishers *ps)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&ps->mu);
    mr_bus_publisher *p = find(ps, self);
    if (!p && (p = calloc(1, sizeof *p))) {
        p->thread = self;
        p->next = ps->list;
        ps->list = p;
    }
    pthread_mutex_unlock(&ps->mu);
    return p;
}

void Mr_bus_publisher_failed(mr_bus_publishers *ps, mr_bus_publisher *p, const mr_err *why)
{
    pthread_mutex_lock(&ps->mu);
    if (p->failure.code == MR_OK)
        p->failure = *why;
    pthread_mutex_unlock(&ps->mu);
}

mr_code Mr_bus_publisher_take(mr_bus_publishers *ps, mr_err *err)
{
    pthread_mutex_lock(&ps->mu);
    mr_bus_publisher *p = find(ps, pthread_self());
    mr_code rc = p ? p->failure.code : MR_OK;
    if (rc != MR_OK) {
        if (err)
            *err = p->failure;
        mr_err_clear(&p->failure);
    }
    pthread_mutex_unlock(&ps->mu);
    return rc;
}
