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
