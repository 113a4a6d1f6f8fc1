{{/* _scaling.tpl -- who sets a service's replica count: its HPA, a KEDA ScaledObject, or the chart. */}}

{{/* The Kafka topics each consumer group reads (proto/topics.yaml, "consumers"); the group is
     the service's name. upstream-auth reads no topic. */}}
{{- define "instance.consumerTopics" -}}
gateway: [matrix.send]
crypto: [matrix.inbound, matrix.outbound, matrix.todevice, matrix.keys]
authz: [matrix.cleartext]
agent: [agent.turns, matrix.send_failed]
{{- end -}}

{{/* "keda", "hpa" or "" for (dict "root" $ "key" "agent" "svc" VALUES): the autoscaler that owns
     the service's replica count. None while suspended or at replicaCount 0 (an HPA cannot hold
     a Deployment at zero); KEDA over the CPU HPA, as KEDA makes an HPA of its own and two
     would fight over the count. Fails, naming the value, on a count the autoscaler cannot keep. */}}
{{- define "instance.scaler" -}}
{{- $svc := .svc -}}
{{- $path := printf "services.%s" .key -}}
{{- $auto := $svc.autoscaling | default dict -}}
{{- $keda := $svc.keda | default dict -}}
{{- if and $keda.enabled (not (hasKey (include "instance.consumerTopics" . | fromYaml) (kebabcase .key))) -}}
{{- fail (printf "%s.keda.enabled: %s reads no Kafka topic, so consumer lag cannot scale it; use %s.autoscaling" $path (kebabcase .key) $path) -}}
{{- end -}}
{{- if not (or .root.Values.suspended (eq (int $svc.replicaCount) 0)) -}}
{{- $which := "" -}}
{{- $max := 0 -}}
{{- if $keda.enabled -}}
{{- $which = "keda" -}}
{{- $max = $keda.maxReplicas -}}
{{- else if $auto.enabled -}}
{{- $which = "hpa" -}}
{{- $max = $auto.maxReplicas -}}
{{- end -}}
{{- if and $which (gt (int $svc.replicaCount) (int $max)) -}}
{{- fail (printf "%s.replicaCount (%d) is above %s.%s.maxReplicas (%d): the autoscaler's range is replicaCount..maxReplicas" $path (int $svc.replicaCount) $path (ternary "keda" "autoscaling" (eq $which "keda")) (int $max)) -}}
{{- end -}}
{{- $which -}}
{{- end -}}
{{- end -}}

{{/* The Kafka bootstrap servers KEDA asks for lag: keda.bootstrapServers, else bus.url's brokers
     (its ?options are MindRoom's). */}}
{{- define "instance.kedaBootstrap" -}}
{{- $servers := .Values.keda.bootstrapServers -}}
{{- if and (not $servers) (hasPrefix "kafka://" .Values.bus.url) -}}
{{- $servers = trimPrefix "kafka://" .Values.bus.url | splitList "?" | first -}}
{{- end -}}
{{- if not $servers -}}
{{- fail "keda.bootstrapServers is empty and bus.url is not a kafka:// URL: KEDA needs the Kafka brokers to read consumer lag" -}}
{{- end -}}
{{- $servers -}}
{{- end -}}
