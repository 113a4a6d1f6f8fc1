{{/* _trusted_upstream.tpl -- trusted upstream auth values as environment variables, checked at render time. */}}

{{/* "true" when a value is true or the string "true" (any case), else "false": the documented
     values are quoted strings ("true"), while --set gives booleans. */}}
{{- define "mindroom.truthy" -}}
{{- if kindIs "bool" . -}}
{{- . -}}
{{- else -}}
{{- eq (lower (toString .)) "true" -}}
{{- end -}}
{{- end -}}

{{/* The trustedUpstreamAuth values as a YAML list of env entries. Arguments, as a dict:
     values  the trustedUpstreamAuth map
     path    its values path, named in failures ("trustedUpstreamAuth")
     prefix  the variables' prefix ("MINDROOM_TRUSTED_UPSTREAM_")
   Rendering fails, naming the value, on settings the runtime would refuse or misread:
   no user ID header while enabled, a template without exactly one {localpart}, a template
   without the email header it derives from, strict JWT mode without its four settings. */}}
{{- define "mindroom.trustedUpstreamEnv" -}}
{{- $t := .values | default dict -}}
{{- $p := .path -}}
{{- $enabled := include "mindroom.truthy" $t.enabled -}}
{{- $requireJwt := include "mindroom.truthy" $t.requireJwt -}}
{{- if and (eq $enabled "true") (not $t.userIdHeader) -}}
{{- fail (printf "%s.userIdHeader is required when %s.enabled is true" $p $p) -}}
{{- end -}}
{{- with $t.emailToMatrixUserIdTemplate -}}
{{- if ne (len (splitList "{localpart}" .)) 2 -}}
{{- fail (printf "%s.emailToMatrixUserIdTemplate must contain exactly one {localpart} placeholder, got %q" $p .) -}}
{{- end -}}
{{- if not $t.emailHeader -}}
{{- fail (printf "%s.emailToMatrixUserIdTemplate is set without %s.emailHeader: the Matrix localpart is derived from the trusted email header" $p $p) -}}
{{- end -}}
{{- end -}}
{{- if eq $requireJwt "true" -}}
{{- $missing := list -}}
{{- range $k := list "jwtHeader" "jwksUrl" "jwtAudience" "jwtIssuer" -}}
{{- if not (get $t $k) -}}
{{- $missing = append $missing (printf "%s.%s" $p $k) -}}
{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "%s.requireJwt is true, so %s must be set too" $p (join ", " $missing)) -}}
{{- end -}}
{{- end -}}
{{- /* Value key, variable suffix; in the order the settings are documented. */ -}}
{{- $env := list
    (list (printf "%sAUTH_ENABLED" .prefix) $enabled)
    (list (printf "%sREQUIRE_JWT" .prefix) $requireJwt) -}}
{{- range $kv := list
    (list "userIdHeader" "USER_ID_HEADER")
    (list "emailHeader" "EMAIL_HEADER")
    (list "matrixUserIdHeader" "MATRIX_USER_ID_HEADER")
    (list "emailToMatrixUserIdTemplate" "EMAIL_TO_MATRIX_USER_ID_TEMPLATE")
    (list "jwtHeader" "JWT_HEADER")
    (list "jwksUrl" "JWKS_URL")
    (list "jwtAudience" "JWT_AUDIENCE")
    (list "jwtIssuer" "JWT_ISSUER")
    (list "jwtEmailClaim" "JWT_EMAIL_CLAIM")
    (list "jwtUserIdClaim" "JWT_USER_ID_CLAIM")
    (list "jwtMatrixUserIdClaim" "JWT_MATRIX_USER_ID_CLAIM") -}}
{{- $env = append $env (list (printf "%s%s" $.prefix (index $kv 1)) (get $t (index $kv 0))) -}}
{{- end -}}
{{- include "mindroom.env" $env -}}
{{- end -}}

{{/* The headers nginx forward auth copies from mindroom-upstream-auth's /auth/verify answer onto
     the request it forwards (services/upstream-auth/README.md, Forward auth). */}}
{{- define "mindroom.forwardAuthHeaders" -}}
X-MindRoom-Auth-User-Id,X-MindRoom-Auth-Email,X-MindRoom-Auth-Matrix-User-Id,X-MindRoom-Auth-Method
{{- end -}}

{{/* An nginx Ingress whose every request first passes forward auth at mindroom-upstream-auth's
     /auth/verify; nginx then sets the X-MindRoom-Auth-* headers of that answer on the request it
     forwards, replacing any a client sent. Arguments, as a dict:
     root       the chart's context ($)
     name       the Ingress's name
     component  the labels' component
     ingress    className, host, tlsSecretName, annotations (more; the forward-auth ones win)
     authUrl    the /auth/verify URL nginx asks
     paths      a list of (dict "path" P "service" NAME "port" N), each a Prefix route */}}
{{- define "mindroom.forwardAuthIngress" -}}
{{- $i := .ingress -}}
{{- $forwardAuth := dict
      "nginx.ingress.kubernetes.io/auth-url" .authUrl
      "nginx.ingress.kubernetes.io/auth-response-headers" (include "mindroom.forwardAuthHeaders" .) -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ .name }}
  labels:
    {{- include "mindroom.labels" (dict "root" .root "component" .component) | nindent 4 }}
  annotations:
    {{- merge $forwardAuth ($i.annotations | default dict) | toYaml | nindent 4 }}
spec:
  {{- with $i.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $i.tlsSecretName }}
  tls:
    - secretName: {{ . }}
      {{- with $i.host }}
      hosts: [{{ . | quote }}]
      {{- end }}
  {{- end }}
  rules:
    - {{- with $i.host }}
      host: {{ . | quote }}
      {{- end }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: Prefix
            backend:
              service:
                name: {{ .service }}
                port:
                  number: {{ .port }}
          {{- end }}
{{- end -}}
