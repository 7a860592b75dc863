{{/* Fields shared by every InferenceService component spec. Args: root, storageUri (canary only). */}}
{{- define "recommender.componentSpec" -}}
{{- $v := .Values -}}
{{- $as := $v.inferenceService.autoscaling -}}
serviceAccountName: {{ include "recommender.serviceAccountName" . }}
minReplicas: {{ $as.minReplicas }}
maxReplicas: {{ $as.maxReplicas }}
scaleMetric: {{ include "recommender.scaleMetric" . }}
scaleTarget: {{ include "recommender.scaleTarget" . }}
{{- if $as.containerConcurrency }}
containerConcurrency: {{ $as.containerConcurrency }}
{{- end }}
timeout: {{ $v.inferenceService.timeoutSeconds }}
labels:
  {{- include "recommender.selectorLabels" . | nindent 2 }}
{{- include "recommender.podSecurityContext" . }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $v.tmpSizeLimit }}
{{- end }}

{{/*
Startup, readiness and liveness probes on the KServe V2 health endpoints. Args: port, root,
sidecar (a container of the pod that is not the one serving its port: in Knative mode it gets
probes only with knative.multiContainerProbing, since Knative rejects them otherwise).
*/}}
{{- define "recommender.probes" -}}
{{- $p := .root.Values.probes -}}
{{- $knative := eq (include "recommender.knative" .root) "true" -}}
{{- if not (and .sidecar $knative (not .root.Values.knative.multiContainerProbing)) }}
startupProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .port }}
  periodSeconds: {{ $p.startupPeriodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.startupFailureThreshold }}
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: {{ .port }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .port }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end }}
{{- end }}

{{/*
Layout of the InferenceService: "inprocess" (one container, the transformer holding the models),
"collocated" (one pod, two containers) or "separate" (two pods).
*/}}
{{- define "recommender.layout" -}}
{{- if .Values.inferenceService.inProcess -}}inprocess{{- else if .Values.inferenceService.collocated -}}collocated{{- else -}}separate{{- end -}}
{{- end }}

{{/* The volume mounts of every server container: /tmp is the only writable path. */}}
{{- define "recommender.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/*
Predictor container body (without the name). Args: root, httpPort, grpcPort, storageUri,
sidecar (collocated: the transformer-container serves the pod's port, this one declares none).
*/}}
{{- define "recommender.predictorContainer" -}}
{{- $v := .root.Values -}}
image: {{ include "recommender.image" .root }}
imagePullPolicy: {{ $v.image.pullPolicy }}
command: ["python", "-m", "predictors.predictor"]
args:
  - --model_name={{ $v.model.name }}
  - --model_dir=/mnt/models
  - --http_port={{ .httpPort }}
  - --grpc_port={{ .grpcPort }}
  {{- with $v.predictor.extraArgs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  # Triggers KServe's storage initializer: the bundle is downloaded to /mnt/models.
  - name: STORAGE_URI
    value: {{ .storageUri | quote }}
  # KServe reads the predictor's protocol from PROTOCOL on custom containers.
  - name: PROTOCOL
    value: v2
  # The ranker's trending counts come from the online store the consumer writes.
  {{- include "recommender.redisEnv" .root | nindent 2 }}
  {{- with $v.predictor.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - configMapRef:
      name: {{ include "recommender.fullname" .root }}
{{- if not .sidecar }}
ports:
  - name: http1
    containerPort: {{ .httpPort }}
    protocol: TCP
{{- end }}
{{- include "recommender.probes" (dict "port" .httpPort "root" .root "sidecar" .sidecar) }}
resources:
  {{- toYaml $v.predictor.resources | nindent 2 }}
securityContext:
  {{- include "recommender.containerSecurityContext" .root | nindent 2 }}
{{ include "recommender.volumeMounts" .root }}
{{- end }}

{{/*
AB_EXPERIMENT of the transformer (JSON, recsys/online/experiment.py): the control arm is this
release's predictor (localhost in the collocated pod, KServe's predictor Service in separate
pods), every other arm the predictor of its own InferenceService <isvc>-<arm>.
*/}}
{{- define "recommender.experimentJson" -}}
{{- $v := .Values -}}
{{- $isvc := include "recommender.isvcName" . -}}
{{- $control := ternary (printf "localhost:%d" (int $v.predictor.collocatedHttpPort)) (printf "%s-predictor.%s" $isvc .Release.Namespace) (eq (include "recommender.layout" .) "collocated") -}}
{{- $arms := list (dict "name" $v.experiment.control.name "model" (toString $v.experiment.control.model) "predictor_host" $control "share" $v.experiment.control.share) -}}
{{- range $v.experiment.arms -}}
{{- $arms = append $arms (dict "name" .name "model" (toString .model) "predictor_host" (printf "%s-%s-predictor.%s" $isvc .name $.Release.Namespace) "share" .share) -}}
{{- end -}}
{{- dict "id" $v.experiment.id "arms" $arms | toJson -}}
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
  {{- include "recommender.redisEnv" .root | nindent 2 }}
  {{- if $v.experiment.id }}
  - name: AB_EXPERIMENT
    value: {{ include "recommender.experimentJson" .root | quote }}
  - name: MLFLOW_TRACKING_URI
    value: {{ $v.mlflow.trackingUri | quote }}
  {{- end }}
  {{- with $v.transformer.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - configMapRef:
      name: {{ include "recommender.fullname" .root }}
  {{- if and $v.experiment.id $v.mlflow.existingSecret }}
  - secretRef:
      name: {{ $v.mlflow.existingSecret }}
  {{- end }}
ports:
  - name: http1
    containerPort: {{ $v.transformer.httpPort }}
    protocol: TCP
{{- include "recommender.probes" (dict "port" (int $v.transformer.httpPort) "root" .root "sidecar" false) }}
resources:
  {{- toYaml (ternary $v.predictor.resources $v.transformer.resources (.inProcess | default false)) | nindent 2 }}
securityContext:
  {{- include "recommender.containerSecurityContext" .root | nindent 2 }}
{{ include "recommender.volumeMounts" .root }}
{{- end }}
