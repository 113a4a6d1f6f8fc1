{{/* _upstream_auth.tpl -- upstream-auth's own settings (public URL, owner, API key, OAuth
     providers) as env entries, checked at render time. */}}

{{/* An env entry read from a Secret's key: (list NAME SECRET KEY). The Secret is not optional,
     so a missing key stops the pod from starting rather than the service from working. */}}
{{- define "instance.secretKeyEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 | quote }}
      key: {{ index . 2 | quote }}
{{- end -}}

{{/* The variables as a YAML list, in the order of the service's README. Rendering fails,
     naming the value, on a provider listed twice and on a provider without a callback URL
     (no redirectUrl and no publicUrl), both of which stop the service at start. */}}
{{- define "instance.upstreamAuthEnv" -}}
{{- $v := .Values -}}
{{- $secret := include "mindroom.secretName" . -}}
{{- $names := list -}}
{{- $plain := list -}}
{{- $refs := list -}}
{{- range $i, $p := $v.oauth.providers -}}
{{- $at := printf "oauth.providers[%d]" $i -}}
{{- if has $p.name $names -}}
{{- fail (printf "%s.name %q is listed twice" $at $p.name) -}}
{{- end -}}
{{- if and (not $p.redirectUrl) (not $v.publicUrl) -}}
{{- fail (printf "%s (%s) has no redirectUrl, so publicUrl must be set: the callback is <publicUrl>/api/oauth/%s/callback" $at $p.name $p.name) -}}
{{- end -}}
{{- $names = append $names $p.name -}}
{{- $var := printf "MINDROOM_OAUTH_%s_" (upper $p.name) -}}
{{- $plain = concat $plain (list
      (list (print $var "AUTHORIZE_URL") $p.authorizeUrl)
      (list (print $var "TOKEN_URL") $p.tokenUrl)
      (list (print $var "CLIENT_ID") $p.clientId)
      (list (print $var "REDIRECT_URL") $p.redirectUrl)) -}}
{{- $ref := $p.clientSecret | default dict -}}
{{- $refs = append $refs (list (print $var "CLIENT_SECRET") ($ref.secretName | default $secret)
      ($ref.key | default (print $var "CLIENT_SECRET"))) -}}
{{- end -}}
{{- with $v.apiKey.secretName -}}
{{- $refs = prepend $refs (list "MINDROOM_API_KEY" . ($v.apiKey.key | default "MINDROOM_API_KEY")) -}}
{{- end -}}
{{- include "mindroom.env" (concat (list
      (list "MINDROOM_PUBLIC_URL" $v.publicUrl)
      (list "MINDROOM_OWNER_USER_ID" $v.ownerUserId)
      (list "MINDROOM_OAUTH_PROVIDERS" (join "," $names))) $plain) }}
{{- range $refs }}
{{ include "instance.secretKeyEnv" . }}
{{- end }}
{{- end -}}
