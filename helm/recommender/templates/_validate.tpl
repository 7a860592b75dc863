{{/*
Checks across values that values.schema.json cannot express; each failure names the values and
what KServe / Knative would do with them (its webhook rejects them, or the pods never start).
Included once, from inferenceservice.yaml.
*/}}
{{- define "recommender.validate" -}}
{{- $v := .Values -}}
{{- $isvc := include "recommender.isvcName" . -}}
{{- $knative := eq (include "recommender.knative" .) "true" -}}
{{- $mode := $v.inferenceService.deploymentMode -}}
{{- $as := $v.inferenceService.autoscaling -}}
{{- $metric := include "recommender.scaleMetric" . -}}
{{- $layout := include "recommender.layout" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $isvc) -}}
{{- fail (printf "InferenceService name %q is not a DNS-1035 label (lower-case letters, digits, '-', starting with a letter): set inferenceService.name" $isvc) -}}
{{- end -}}
{{- if and $knative (not (has $metric (list "concurrency" "rps"))) -}}
{{- fail (printf "inferenceService.autoscaling.metric %q: deploymentMode %s (Knative) scales on concurrency or rps" $metric $mode) -}}
{{- end -}}
{{- if and (not $knative) (not (has $metric (list "cpu" "memory"))) -}}
{{- fail (printf "inferenceService.autoscaling.metric %q: deploymentMode %s (HPA) scales on cpu or memory" $metric $mode) -}}
{{- end -}}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) -}}
{{- fail (printf "inferenceService.autoscaling: minReplicas %d > maxReplicas %d" (int $as.minReplicas) (int $as.maxReplicas)) -}}
{{- end -}}
{{- if and (not $knative) (eq (int $as.minReplicas) 0) -}}
{{- fail (printf "inferenceService.autoscaling.minReplicas 0 (scale to zero) needs Knative; deploymentMode is %s" $mode) -}}
{{- end -}}
{{- $ports := dict "transformer.httpPort" $v.transformer.httpPort "transformer.grpcPort" $v.transformer.grpcPort -}}
{{- if eq $layout "collocated" -}}
{{- $_ := set $ports "predictor.collocatedHttpPort" $v.predictor.collocatedHttpPort -}}
{{- $_ := set $ports "predictor.collocatedGrpcPort" $v.predictor.collocatedGrpcPort -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $name := keys $ports | sortAlpha -}}
{{- $p := toString (get $ports $name) -}}
{{- if hasKey $seen $p -}}
{{- fail (printf "%s and %s are both %s: the containers of one pod share its ports" (get $seen $p) $name $p) -}}
{{- end -}}
{{- $_ := set $seen $p $name -}}
{{- end -}}
{{- if and (ne $layout "collocated") (eq (int $v.predictor.httpPort) (int $v.predictor.grpcPort)) -}}
{{- fail (printf "predictor.httpPort and predictor.grpcPort are both %d" (int $v.predictor.httpPort)) -}}
{{- end -}}
{{- if and $knative (not $v.knative.podSpecScheduling) (or $v.nodeSelector $v.tolerations $v.affinity) -}}
{{- fail "nodeSelector / tolerations / affinity: Knative rejects them unless its flags kubernetes.podspec-nodeselector / -tolerations / -affinity are enabled; enable them and set knative.podSpecScheduling=true (docs/deploy.md)" -}}
{{- end -}}
{{- with $v.experiment.id -}}
{{- if eq $layout "inprocess" -}}
{{- fail "experiment: each arm needs its own predictor; inferenceService.inProcess has none (use collocated or separate pods)" -}}
{{- end -}}
{{- if not $v.mlflow.trackingUri -}}
{{- fail "experiment: mlflow.trackingUri is required (the transformer checks every arm's model in the registry at start)" -}}
{{- end -}}
{{- if not $v.experiment.arms -}}
{{- fail "experiment.arms: at least one arm besides experiment.control" -}}
{{- end -}}
{{- $total := float64 $v.experiment.control.share -}}
{{- range $v.experiment.arms -}}
{{- if not .storageUri -}}
{{- fail (printf "experiment.arms[%s].storageUri is required (the bundle its predictor serves)" .name) -}}
{{- end -}}
{{- $total = addf $total .share -}}
{{- end -}}
{{- if ne (round $total 6) 1.0 -}}
{{- fail (printf "experiment: the shares of control and arms sum to %v, not 1" $total) -}}
{{- end -}}
{{- end -}}
{{- end }}
