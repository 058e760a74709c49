{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "keyward.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keyward.labels" -}}
{{ include "keyward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "keyward.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* cluster and proxy modes: names of the parts. */}}
{{- define "keyward.hsm.name" -}}{{ include "keyward.fullname" . | trunc 59 | trimSuffix "-" }}-hsm{{- end -}}
{{- define "keyward.hsm.headless" -}}{{ include "keyward.fullname" . | trunc 50 | trimSuffix "-" }}-hsm-headless{{- end -}}
{{- define "keyward.proxy.name" -}}{{ include "keyward.fullname" . | trunc 57 | trimSuffix "-" }}-proxy{{- end -}}

{{- define "keyward.hsm.selectorLabels" -}}
{{ include "keyward.selectorLabels" . }}
app.kubernetes.io/component: hsm
{{- end -}}

{{- define "keyward.proxy.selectorLabels" -}}
{{ include "keyward.selectorLabels" . }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "keyward.copyImage" -}}
{{ .Values.copyImage.repository }}:{{ .Values.copyImage.tag }}
{{- end -}}

{{/* Secrets: an existing one named in values, else the chart's. */}}
{{- define "keyward.sealSecret" -}}{{ default (printf "%s-seal" (include "keyward.hsm.name" .)) .Values.hsm.seal.existingSecret }}{{- end -}}
{{- define "keyward.adminSecret" -}}{{ default (printf "%s-admin" (include "keyward.hsm.name" .)) .Values.hsm.admin.existingSecret }}{{- end -}}
{{- define "keyward.apiTlsSecret" -}}{{ default (printf "%s-api-tls" (include "keyward.hsm.name" .)) .Values.hsm.apiTls.existingSecret }}{{- end -}}
{{- define "keyward.proxyUserSecret" -}}{{ default (printf "%s-proxy-user" (include "keyward.fullname" .)) .Values.hsm.proxyUser.existingSecret }}{{- end -}}
{{- define "keyward.postgresSecret" -}}{{ default (printf "%s-postgresql" (include "keyward.hsm.name" .)) .Values.postgresql.existingSecret }}{{- end -}}

{{/* The Secret (key ca.crt) with the CA the proxies trust for the HSM nodes' API. */}}
{{- define "keyward.hsmCaSecret" -}}
{{- if eq .Values.mode "cluster" -}}
{{ include "keyward.apiTlsSecret" . }}
{{- else -}}
{{ default (printf "%s-hsm-ca" (include "keyward.fullname" .)) .Values.hsm.ca.existingSecret }}
{{- end -}}
{{- end -}}

{{/* The HSM nodes' API URLs the proxies try in turn. */}}
{{- define "keyward.hsmServers" -}}
{{- if and (eq .Values.mode "cluster") (not .Values.hsm.servers) -}}
{{ list (printf "https://%s.%s.svc:%d" (include "keyward.hsm.name" .) .Release.Namespace (int .Values.hsm.port)) | toJson }}
{{- else -}}
{{ .Values.hsm.servers | toJson }}
{{- end -}}
{{- end -}}

{{/* The data directory of an HSM node (a folder below the volume: keyward wants it 0700). */}}
{{- define "keyward.hsm.dataDir" -}}/var/lib/keyward/data{{- end -}}
