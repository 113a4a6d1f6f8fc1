{{/* _workload.tpl -- the Deployment, Service and ServiceAccount of one mindroom-<service> binary. */}}

{{/* The service account pods run as: .Values.serviceAccount.name, else the fullname when the
     chart creates it, else the namespace's "default". */}}
{{- define "mindroom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mindroom.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mindroom.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "mindroom.serviceAccountName" . }}
  labels:
    {{- include "mindroom.labels" (dict "root" . "component" "serviceaccount") | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- /* The services do not call the Kubernetes API; no token unless someone asks for one. */}}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- end }}
{{- end -}}

{{/* The image of a component: svc.image.repository, else "[image.registry/]mindroom-<component>";
     the tag from svc.image.tag, image.tag, then the chart's appVersion. */}}
{{- define "mindroom.image" -}}
{{- $img := .svc.image | default dict -}}
{{- $repo := $img.repository | default (printf "mindroom-%s" .component) -}}
{{- if and .root.Values.image.registry (not $img.repository) -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (toString ($img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion)) -}}
{{- end -}}

{{/* A Deployment running mindroom-<component>. Arguments, as a dict:
     root       the chart's context ($)
     component  the service's name as in its binary, e.g. "upstream-auth"
     svc        the service's values: replicaCount, port, image, resources, extraEnv,
                podAnnotations, nodeSelector, tolerations, affinity
     env        the service's environment, a list of {name, value|valueFrom}
     configMap  the ConfigMap holding config.yaml, or "" for a service without one
     checksum   a digest of that configuration, so a change restarts the pods
     secretChecksum  optional: a digest of the Secret the pods read, so a changed Secret
                restarts them too (a Secret's change alone does not)
     replicas   optional: the replica count to render instead of svc.replicaCount; "none"
                leaves spec.replicas out, for a Deployment an autoscaler owns (an applied
                count would undo the autoscaler's on every upgrade)
     serviceAccountName, automountToken  optional: the pod's own service account and token
                mount instead of the chart's, for the one service that calls the Kubernetes API
     files      optional: (dict "configMap" NAME "mountPath" DIR), a ConfigMap of other files the
                service reads, mounted read-only at DIR
   Pods spread over .Values.topologySpread.topologyKey when .Values.topologySpread.enabled. */}}
{{- define "mindroom.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $sel := dict "root" $root "component" .component -}}
{{- $args := list "--listen" (printf "0.0.0.0:%v" .svc.port) -}}
{{- if .configMap -}}
{{- $args = concat $args (list "--config" "/etc/mindroom/config.yaml") -}}
{{- end -}}
{{- /* The runtime keeps its storage directory beside the config unless told; that is the
       read-only ConfigMap mount here. */ -}}
{{- $runtime := include "mindroom.env" (list
      (list "MINDROOM_STORAGE_PATH" "/var/lib/mindroom")
      (list "LOG_LEVEL" $v.log.level)
      (list "LOG_FORMAT" $v.log.format)) | fromYamlArray -}}
{{- $env := concat $runtime .env ($v.extraEnv | default list) (.svc.extraEnv | default list) -}}
{{- $replicas := .svc.replicaCount -}}
{{- if hasKey . "replicas" -}}
{{- $replicas = .replicas -}}
{{- end -}}
{{- $saName := include "mindroom.serviceAccountName" $root -}}
{{- $automount := $v.serviceAccount.automountToken -}}
{{- if hasKey . "serviceAccountName" -}}
{{- $saName = .serviceAccountName -}}
{{- $automount = .automountToken -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mindroom.componentName" $sel }}
  labels:
    {{- include "mindroom.labels" $sel | nindent 4 }}
spec:
  {{- if ne (toString $replicas) "none" }}
  replicas: {{ $replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "mindroom.selectorLabels" $sel | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mindroom.labels" $sel | nindent 8 }}
      {{- if or .checksum .secretChecksum .svc.podAnnotations $v.podAnnotations }}
      annotations:
        {{- with .checksum }}
        checksum/config: {{ . }}
        {{- end }}
        {{- with .secretChecksum }}
        checksum/secret: {{ . }}
        {{- end }}
        {{- with merge (deepCopy (.svc.podAnnotations | default dict)) ($v.podAnnotations | default dict) }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      serviceAccountName: {{ $saName }}
      automountServiceAccountToken: {{ $automount }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "mindroom.image" . | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: [{{ printf "mindroom-%s" .component | quote }}]
          args:
            {{- toYaml $args | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .svc.port }}
              protocol: TCP
          {{- with $env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          envFrom:
            - secretRef:
                name: {{ include "mindroom.secretName" $root }}
                optional: {{ $v.secrets.optional }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $v.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml .svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- if .configMap }}
            - name: config
              mountPath: /etc/mindroom
              readOnly: true
            {{- end }}
            {{- /* The root filesystem is read-only; these two are the writable places. */}}
            {{- with .files }}
            - name: files
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
            - name: data
              mountPath: /var/lib/mindroom
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- if .configMap }}
        - name: config
          configMap:
            name: {{ .configMap }}
        {{- end }}
        {{- with .files }}
        - name: files
          configMap:
            name: {{ .configMap }}
        {{- end }}
        - name: data
          {{- if $v.storage.existingClaim }}
          persistentVolumeClaim:
            claimName: {{ $v.storage.existingClaim }}
          {{- else }}
          emptyDir:
            sizeLimit: {{ $v.storage.sizeLimit }}
          {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
      {{- with .svc.nodeSelector | default $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .svc.tolerations | default $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .svc.affinity | default $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpread }}
      {{- if .enabled }}
      {{- /* Replicas on different nodes (and zones, with a zone key): one node's loss
             takes one replica, and the PodDisruptionBudget keeps drains to one at a time. */}}
      topologySpreadConstraints:
        - maxSkew: {{ .maxSkew }}
          topologyKey: {{ .topologyKey }}
          whenUnsatisfiable: {{ .whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "mindroom.selectorLabels" $sel | nindent 14 }}
      {{- end }}
      {{- end }}
{{- end -}}

{{/* A ClusterIP (or svc.service.type) Service in front of a component's "http" port:
     (dict "root" $ "component" NAME "svc" VALUES). */}}
{{- define "mindroom.service" -}}
{{- $sel := dict "root" .root "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mindroom.componentName" $sel }}
  labels:
    {{- include "mindroom.labels" $sel | nindent 4 }}
  {{- with .svc.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .svc.service.type }}
  selector:
    {{- include "mindroom.selectorLabels" $sel | nindent 4 }}
  ports:
    - name: http
      port: {{ .svc.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}
