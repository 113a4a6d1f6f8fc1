{{/* _instance.tpl -- the instance chart's own helpers: its ConfigMap's name and digest. */}}

{{- define "instance.configMapName" -}}
{{- default (printf "%s-config" (include "mindroom.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{/* Empty for an existing ConfigMap: the chart cannot see its content. */}}
{{- define "instance.configChecksum" -}}
{{- if not .Values.existingConfigMap -}}
{{- toYaml .Values.config | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* A bus or store URL with the instance's namespace: (dict "url" URL "what" "bus.url" "root" $)
     gives URL?prefix=<tenant.prefix> (&prefix= after other options); URL alone without a prefix
     or without a URL (one kept in the Secret carries its own). */}}
{{- define "instance.prefixedUrl" -}}
{{- $prefix := .root.Values.tenant.prefix -}}
{{- if and .url $prefix -}}
{{- if regexMatch "[?&]prefix=" .url -}}
{{- fail (printf "%s has a ?prefix= and tenant.prefix is set: give the prefix once, in tenant.prefix" .what) -}}
{{- end -}}
{{- printf "%s%sprefix=%s" .url (ternary "&" "?" (contains "?" .url)) $prefix -}}
{{- else -}}
{{- .url -}}
{{- end -}}
{{- end -}}

{{/* A Kafka topic or consumer group as the bus names it under tenant.prefix: "<prefix>.<name>". */}}
{{- define "instance.kafkaName" -}}
{{- if .root.Values.tenant.prefix -}}
{{- printf "%s.%s" .root.Values.tenant.prefix .name -}}
{{- else -}}
{{- .name -}}
{{- end -}}
{{- end -}}
