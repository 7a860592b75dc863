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

{{/* Redis host: the bundled helm/redis release, or an external one. */}}
{{- define "recommender.redisHost" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" }}
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

{{/* "true" when KServe runs the InferenceService on Knative (Serverless, named Knative since 0.16). */}}
{{- define "recommender.knative" -}}
{{- has .Values.inferenceService.deploymentMode (list "Serverless" "Knative") -}}
{{- end }}

{{/* Scale metric and target after the mode's defaults ("" / 0 in values). */}}
{{- define "recommender.scaleMetric" -}}
{{- $m := .Values.inferenceService.autoscaling.metric -}}
{{- if $m }}{{ $m }}{{ else }}{{ ternary "concurrency" "cpu" (eq (include "recommender.knative" .) "true") }}{{ end -}}
{{- end }}
{{- define "recommender.scaleTarget" -}}
{{- $t := int .Values.inferenceService.autoscaling.target -}}
{{- if $t }}{{ $t }}{{ else }}{{ get (dict "concurrency" 8 "rps" 100 "cpu" 80 "memory" 80) (include "recommender.scaleMetric" .) }}{{ end -}}
{{- end }}

{{/* Pod-level security context, where the platform accepts one (see values: knative). */}}
{{- define "recommender.podSecurityContext" -}}
{{- if or (ne (include "recommender.knative" .) "true") .Values.knative.podSpecSecurityContext }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
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

{{/* The model the servers load: the canary's storageUri while a canary runs, else model.storageUri. */}}
{{- define "recommender.storageUri" -}}
{{- $uri := required "model.storageUri is required: the artifact URI of the MLflow `champion` version (see docs/deploy.md)" .Values.model.storageUri -}}
{{- with .Values.canary.storageUri -}}
{{- if ne (include "recommender.knative" $) "true" -}}
{{- fail (printf "canary.storageUri: KServe canaries (canaryTrafficPercent) need deploymentMode Serverless, not %s" $.Values.inferenceService.deploymentMode) -}}
{{- end -}}
{{- $uri = . -}}
{{- end -}}
{{- $uri -}}
{{- end }}

{{/* REDIS_URL (and the password it expands) for a container: the Secret is read by the kubelet. */}}
{{- define "recommender.redisEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "recommender.redisSecretName" . }}
      key: {{ include "recommender.redisSecretKey" . }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%d/%d" (include "recommender.redisHost" .) (int .Values.redisConnection.port) (int .Values.redisConnection.db) | quote }}
{{- end }}

{{/* Annotations of every InferenceService of the release: mode and autoscaling. */}}
{{- define "recommender.isvcAnnotations" -}}
{{- $as := .Values.inferenceService.autoscaling -}}
serving.kserve.io/deploymentMode: {{ .Values.inferenceService.deploymentMode }}
{{- if eq (include "recommender.knative" .) "true" }}
# Knative autoscaling (KPA): the scale metric and its target per replica.
autoscaling.knative.dev/metric: {{ include "recommender.scaleMetric" . | quote }}
autoscaling.knative.dev/target: {{ include "recommender.scaleTarget" . | quote }}
autoscaling.knative.dev/min-scale: {{ $as.minReplicas | quote }}
autoscaling.knative.dev/max-scale: {{ $as.maxReplicas | quote }}
{{- else }}
serving.kserve.io/autoscalerClass: hpa
{{- end }}
{{- with .Values.inferenceService.annotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
