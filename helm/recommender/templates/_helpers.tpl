{{/* Chart name, truncated to 63 characters (DNS label limit). */}}
{{- define "recommender.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, 63 characters at most. If the release name already contains the
chart name it is used alone.
*/}}
{{- define "recommender.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "recommender.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "recommender.labels" -}}
helm.sh/chart: {{ include "recommender.chart" . }}
{{ include "recommender.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: movielens-recommender
{{- end }}

{{/* Selector labels: stable across upgrades, so never the chart version. */}}
{{- define "recommender.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recommender.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* InferenceService name (also the prefix of the Services KServe creates). */}}
{{- define "recommender.isvcName" -}}
{{- default (include "recommender.fullname" .) .Values.inferenceService.name | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/* Service account for the serving pods. */}}
{{- define "recommender.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recommender.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Redis host: the bundled bitnami release, or an external one. */}}
{{- define "recommender.redisHost" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis-master" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "redisConnection.host is required when redis.enabled=false" .Values.redisConnection.host }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the Redis password. */}}
{{- define "recommender.redisSecretName" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecret }}
{{- else }}
{{- .Values.redisConnection.existingSecret }}
{{- end }}
{{- end }}

{{/* Key inside that Secret. */}}
{{- define "recommender.redisSecretKey" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else }}
{{- .Values.redisConnection.existingSecretPasswordKey }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by every pod of the chart. */}}
{{- define "recommender.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* Container-level security context shared by every container of the chart. */}}
{{- define "recommender.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Image reference. */}}
{{- define "recommender.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Environment shared by the transformer (and the collocated pod): configuration from the
ConfigMap, the Redis password from its Secret, REDIS_URL built from both.
*/}}
{{- define "recommender.transformerEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "recommender.redisSecretName" . }}
      key: {{ include "recommender.redisSecretKey" . }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%d/%d" (include "recommender.redisHost" .) (int .Values.redisConnection.port) (int .Values.redisConnection.db) | quote }}
{{- end }}

{{/* The model the servers load: the canary's storageUri while a canary runs, else model.storageUri. */}}
{{- define "recommender.storageUri" -}}
{{- $uri := required "model.storageUri is required: the artifact URI of the MLflow `champion` version (see docs/deploy.md)" .Values.model.storageUri -}}
{{- with .Values.canary.storageUri -}}
{{- if not (has $.Values.inferenceService.deploymentMode (list "Serverless" "Knative")) -}}
{{- fail (printf "canary.storageUri: KServe canaries (canaryTrafficPercent) need deploymentMode Serverless, not %s" $.Values.inferenceService.deploymentMode) -}}
{{- end -}}
{{- $uri = . -}}
{{- end -}}
{{- $uri -}}
{{- end }}
