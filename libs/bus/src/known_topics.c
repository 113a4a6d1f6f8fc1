/* known_topics.c -- the topics a backend has looked up or created already, so it asks its
 * broker or server about each one once. */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>

const mr_bus_known_topic *Mr_bus_topic_find(const mr_bus_known_topic *list, const char *name)
{
    for (; list; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

mr_code Mr_bus_topic_remember(const mr_bus *b, mr_bus_known_topic **list, const char *name, int partitions,
                              mr_err *err)
{
    mr_bus_known_topic *k = calloc(1, sizeof *k);
    if (!k || !(k->name = strdup(name))) {
        free(k);
        return mr_err_set(err, MR_ENOMEM, "%s: no memory for topic %s", b->url.display, name);
    }
    k->partitions = partitions;
    k->next = *list;
    *list = k;
    return MR_OK;
}

void Mr_bus_topics_free(mr_bus_known_topic *list)
{
    for (mr_bus_known_topic *n; list; list = n) {
        n = list->next;
        free(list->name);
        free(list);
    }
}
