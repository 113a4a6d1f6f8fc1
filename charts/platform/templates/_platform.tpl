{{/* _platform.tpl -- names the platform's objects share. */}}

{{/* The namespace instances are applied in: platform.instanceNamespace, else the release's. */}}
{{- define "platform.instanceNamespace" -}}
{{- default .Release.Namespace .Values.platform.instanceNamespace -}}
{{- end -}}

{{/* The platform's own service account: the only one bound to the instance Role, so no other
     pod of the release can write instances. */}}
{{- define "platform.serviceAccountName" -}}
{{- include "mindroom.componentName" (dict "root" . "component" "platform") -}}
{{- end -}}
