{{/* _names.tpl -- resource names, labels and env lists every MindRoom chart uses. */}}

{{/* The chart's name, or .Values.nameOverride. */}}
{{- define "mindroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-qualified name; the release name alone when it already contains the chart's. */}}
{{- define "mindroom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: (dict "root" $ "component" "upstream-auth"). The fullname is
     shortened, not the component, so a long release name still gives distinct DNS labels. */}}
{{- define "mindroom.componentName" -}}
{{- $max := int (sub 62 (len .component)) -}}
{{- printf "%s-%s" (include "mindroom.fullname" .root | trunc $max | trimSuffix "-") .component -}}
{{- end -}}

{{/* Labels a selector matches on: (dict "root" $ "component" NAME). */}}
{{- define "mindroom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mindroom.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of a resource: (dict "root" $ "component" NAME). */}}
{{- define "mindroom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mindroom.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | default .root.Chart.Version | replace "+" "_" | trunc 63 | quote }}
app.kubernetes.io/part-of: mindroom
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* The Secret the services read their secrets from (envFrom): .Values.secrets.existingSecret,
     or "<fullname>-secrets". The chart never creates it: secrets stay out of values files. */}}
{{- define "mindroom.secretName" -}}
{{- default (printf "%s-secrets" (include "mindroom.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Env entries from a list of (name value) pairs, as a YAML list; pairs with an empty value
     are left out, so the service's own default applies. Values are quoted: Kubernetes takes
     only strings. */}}
{{- define "mindroom.env" -}}
{{- range $kv := . }}
{{- $val := index $kv 1 }}
{{- if and (not (kindIs "invalid" $val)) (ne (toString $val) "") }}
- name: {{ index $kv 0 }}
  value: {{ toString $val | quote }}
{{- end }}
{{- end }}
{{- end -}}
