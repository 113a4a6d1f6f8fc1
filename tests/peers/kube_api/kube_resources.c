/* kube_resources.c -- the resources mr-test-kube-api serves: what the platform applies and
 * reads, with the group, version, kind and scope the real apiserver gives them. */
#include "kube.h"

#include <stdio.h>
#include <string.h>

const kube_resource kube_resources[] = {
    {"", "v1", "namespaces", "namespace", "Namespace", "ns", false, true},
    {"", "v1", "configmaps", "configmap", "ConfigMap", "cm", true, false},
    {"", "v1", "secrets", "secret", "Secret", NULL, true, false},
    {"", "v1", "services", "service", "Service", "svc", true, true},
    {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", "sa", true, false},
    {"apps", "v1", "deployments", "deployment", "Deployment", "deploy", true, true},
    {"autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler",
     "HorizontalPodAutoscaler", "hpa", true, true},
    {"policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", "pdb", true, true},
    {"networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", "ing", true, true},
    {"networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", "netpol", true, false},
    {"rbac.authorization.k8s.io", "v1", "roles", "role", "Role", NULL, true, false},
    {"rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", NULL, true, false},
    {"keda.sh", "v1alpha1", "scaledobjects", "scaledobject", "ScaledObject", "so", true, true},
};
const size_t kube_n_resources = sizeof kube_resources / sizeof kube_resources[0];

const kube_resource *kube_resource_find(const char *group, const char *version, const char *name)
{
    for (size_t i = 0; i < kube_n_resources; i++) {
        const kube_resource *r = &kube_resources[i];
        if (strcmp(r->group, group) == 0 && strcmp(r->version, version) == 0 && strcmp(r->name, name) == 0)
            return r;
    }
    return NULL;
}

void kube_qualified(const kube_resource *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", r->name, *r->group ? "." : "", r->group);
}

void kube_api_version(const kube_resource *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", r->group, *r->group ? "/" : "", r->version);
}
