/* pf_serve.c -- mr_platform_serve: settings, the Kubernetes client, the routes and the reconcile
 * loop, until the runtime stops. */
#include "platform.h"
#include "pf_internal.h"

#include <stdio.h>

#include "mindroom/log.h"

int mr_platform_serve(const mr_runtime *rt)
{
    pf_service svc = {.rt = rt};
    mr_err err = {0};
    mr_code rc = pf_settings_load(rt, &svc.settings, &err);
    if (rc == MR_EINVAL) {
        /* As mr_service_main prints a bad setting; messages name variables, never secrets. */
        fprintf(stderr, "mindroom-%s: %s\n", rt->service, err.msg);
        return 2;
    }
    if (rc == MR_OK)
        rc = pf_kube_open(&svc.settings, &svc.kube, &err);
    if (rc != MR_OK) {
        mr_log_error(PF_COMPONENT, "%s", err.msg);
        pf_settings_free(&svc.settings);
        return rc == MR_EINVAL ? 2 : 1;
    }
    pthread_mutex_init(&svc.lock, NULL);
    for (size_t i = 0; i < PF_LOCK_STRIPES; i++)
        pthread_mutex_init(&svc.stripes[i], NULL);
    mr_log_info(PF_COMPONENT, "instances in namespace %s from chart %s, API %s", svc.settings.ns, svc.settings.chart,
                svc.settings.kube_url);
    mr_runtime_set_http_handler(rt, pf_routes_handle, &svc);
    /* The first pass finishes whatever a previous run left half done and brings every instance
     * to this run's settings (a rotated INSTANCE_SECRET_*); later ones repair drift. */
    pf_reconcile(&svc);
    mr_log_info(PF_COMPONENT, "first reconcile pass done");
    while (!mr_runtime_sleep(rt, (int)svc.settings.reconcile_ms))
        pf_reconcile(&svc);
    mr_runtime_set_http_handler(rt, NULL, NULL);
    pthread_mutex_destroy(&svc.lock);
    for (size_t i = 0; i < PF_LOCK_STRIPES; i++)
        pthread_mutex_destroy(&svc.stripes[i]);
    pf_kube_close(svc.kube);
    pf_settings_free(&svc.settings);
    return 0;
}
