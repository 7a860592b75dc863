{{/* Fields shared by the predictor and transformer component specs. */}}
{{- define "recommender.componentSpec" -}}
{{- $as := .Values.inferenceService.autoscaling -}}
serviceAccountName: {{ include "recommender.serviceAccountName" . }}
minReplicas: {{ $as.minReplicas }}
maxReplicas: {{ $as.maxReplicas }}
scaleMetric: {{ $as.metric }}
scaleTarget: {{ $as.target }}
{{- if $as.containerConcurrency }}
containerConcurrency: {{ $as.containerConcurrency }}
{{- end }}
timeout: {{ .Values.inferenceService.timeoutSeconds }}
{{- if .Values.canary.storageUri }}
# Canary: the new revision (canary.storageUri) gets this share, the last fully rolled-out one the rest.
canaryTrafficPercent: {{ .Values.canary.trafficPercent }}
{{- end }}
labels:
  {{- include "recommender.selectorLabels" . | nindent 2 }}
securityContext:
  {{- include "recommender.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* Readiness and liveness probes on the KServe V2 health endpoints. Args: port, root. */}}
{{- define "recommender.probes" -}}
{{- $p := .root.Values.probes -}}
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: {{ .port }}
  initialDelaySeconds: {{ $p.readinessInitialDelaySeconds }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .port }}
  initialDelaySeconds: {{ $p.livenessInitialDelaySeconds }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end }}

{{/*
Layout of the InferenceService: "inprocess" (one container, the transformer holding the models),
"collocated" (one pod, two containers) or "separate" (two pods).
*/}}
{{- define "recommender.layout" -}}
{{- if .Values.inferenceService.inProcess -}}inprocess{{- else if .Values.inferenceService.collocated -}}collocated{{- else -}}separate{{- end -}}
{{- end }}

{{/*
Transformer container body (without the name). Args: root, predictorHost ("" lets KServe
inject --predictor_host in the separate-pod layout), collocated, inProcess. Collocated, the hop
to the predictor is gRPC V2 on localhost (measured cheaper than REST, docs/serving.md); in
separate pods it is REST V2 through the host KServe injects; in process there is no hop (the
container is the InferenceService's predictor, with the predictor's resources).
*/}}
{{- define "recommender.transformerContainer" -}}
{{- $v := .root.Values -}}
image: {{ include "recommender.image" .root }}
imagePullPolicy: {{ $v.image.pullPolicy }}
command: ["python", "-m", "predictors.transformer"]
args:
  - --model_name={{ $v.model.name }}
  {{- if .inProcess }}
  - --collocated
  {{- else }}
  {{- if .predictorHost }}
  - --predictor_host={{ .predictorHost }}
  {{- end }}
  - --predictor_protocol={{ ternary "grpc-v2" "v2" (.collocated | default false) }}
  {{- end }}
  - --model_dir=/mnt/models
  - --http_port={{ $v.transformer.httpPort }}
  - --grpc_port={{ $v.transformer.grpcPort }}
  {{- if .collocated }}
  - --enable_predictor_health_check
  {{- end }}
  {{- with $v.transformer.extraArgs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  {{- if not .collocated }}
  # The transformer reads the bundle too (popularity fallback, item titles).
  - name: STORAGE_URI
    value: {{ include "recommender.storageUri" .root | quote }}
  {{- end }}
  {{- if .inProcess }}
  # KServe reads the predictor's protocol from PROTOCOL on custom containers.
  - name: PROTOCOL
    value: v2
  {{- end }}
  {{- include "recommender.transformerEnv" .root | nindent 2 }}
  {{- with $v.transformer.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - configMapRef:
      name: {{ include "recommender.fullname" .root }}
ports:
  - name: http1
    containerPort: {{ $v.transformer.httpPort }}
    protocol: TCP
{{ include "recommender.probes" (dict "port" (int $v.transformer.httpPort) "root" .root) }}
resources:
  {{- toYaml (ternary $v.predictor.resources $v.transformer.resources (.inProcess | default false)) | nindent 2 }}
securityContext:
  {{- include "recommender.containerSecurityContext" .root | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}
