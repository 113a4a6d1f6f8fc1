/* thread_name.h -- names the calling thread after its role, so `top -H`, `ps -L`, perf and gdb
 * tell a sync loop from a send lane or the bus journal's writer. */
#ifndef MINDROOM_THREAD_NAME_H
#define MINDROOM_THREAD_NAME_H

/* Linux keeps 15 bytes of a thread's name: a longer one is cut there. A name that cannot be
 * set leaves the one the thread had (its process's), which changes nothing but the listing. */
void mr_thread_name(const char *name);

#endif
