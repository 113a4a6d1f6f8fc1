/* kafka_lib.c -- binds the librdkafka functions the Kafka bus calls (kafka_lib.h). */
#define MR_RDK_NO_RENAME
#include "kafka_lib.h"

#include <pthread.h>

#include "mindroom/dl.h"

#define MR_RDK_DEFINE(f) __typeof__(&f) mr_rdk_##f;
MR_RDK_FUNCS(MR_RDK_DEFINE)

#define MR_RDK_SYM(f) {#f, (void **)&mr_rdk_##f},
static const mr_dl_sym syms[] = {MR_RDK_FUNCS(MR_RDK_SYM)};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static mr_err result;

static void load(void)
{
    if (mr_dl_load(MR_RDK_SONAME, MR_RDK_PACKAGE, syms, sizeof syms / sizeof syms[0], &result) != MR_OK)
        mr_err_prefix(&result, "the Kafka bus");
}

mr_code Mr_bus_kafka_lib_load(mr_err *err)
{
    pthread_once(&once, load);
    if (result.code != MR_OK && err)
        *err = result;
    return result.code;
}
