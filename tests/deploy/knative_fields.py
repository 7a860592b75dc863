"""What Knative Serving's webhook accepts in a Revision's pod template with the DEFAULT config-features flags.

Read from github.com/knative/serving at commit 98e5ef90aa7033797aa0a61ef97f3ff7e49a3944 (2026-08-21):
pkg/apis/serving/fieldmask.go (PodSpecMask, ContainerMask, SecurityContextMask, PodSecurityContextMask,
CapabilitiesMask, VolumeSourceMask, VolumeProjectionMask, VolumeMountMask, ProbeMask, HandlerMask, *ActionMask,
ContainerPortMask, EnvVarSourceMask), pkg/apis/serving/k8s_validation.go (sidecar probes, ports, read-only mounts,
readiness-probe rules) and pkg/apis/config/features.go (defaultFeaturesConfig). KServe's component keys come from
github.com/kserve/kserve at commit aaac4e294dae2c7b1aa1886447793f3aa1c30912 (2026-08-21):
pkg/apis/serving/v1beta1/component.go (ComponentExtensionSpec), predictor.go, explainer.go, transformer.go.
Knative lets a disallowed field through when it holds a Go zero value (e.g. hostNetwork: false); this module
flags any non-null disallowed key, since a chart has no reason to render one.
"""

from typing import Any

KSERVE_COMPONENT_FIELDS = frozenset({  # ComponentExtensionSpec json names
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy",
})
KSERVE_IMPLEMENTATION_FIELDS = frozenset({  # predictor / explainer / transformer keys that are not PodSpec fields
    "name", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm",
    "paddle", "model", "storageUris", "storageContainerName", "workerSpec", "art",
})
POD_SPEC_FIELDS = frozenset({  # automountServiceAccountToken: only false is kept by the mask
    "serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks",
    "automountServiceAccountToken",
})
POD_SPEC_FLAGS = {  # PodSpec field -> config-features flag (default Disabled) that would allow it
    k: f"kubernetes.podspec-{v}" for k, v in {
        "affinity": "affinity", "topologySpreadConstraints": "topologyspreadconstraints", "hostAliases": "hostaliases",
        "nodeSelector": "nodeselector", "runtimeClassName": "runtimeclassname", "tolerations": "tolerations",
        "securityContext": "securitycontext", "priorityClassName": "priorityclassname", "hostIPC": "hostipc",
        "shareProcessNamespace": "shareprocessnamespace", "schedulerName": "schedulername", "hostPID": "hostpid",
        "initContainers": "init-containers", "dnsPolicy": "dnspolicy", "dnsConfig": "dnsconfig",
        "hostNetwork": "hostnetwork",
    }.items()
}
PROBE_KINDS = frozenset({"livenessProbe", "readinessProbe", "startupProbe"})
CONTAINER_FIELDS = frozenset({
    "name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy", "ports", "resources",
    "securityContext", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts",
}) | PROBE_KINDS
SIDECAR_FIELDS = CONTAINER_FIELDS - PROBE_KINDS  # sidecar probes need multi-container-probing (default Disabled)
STARTUP_PROBE_ON_SERVING_CONTAINER = True
CONTAINER_SECURITY_CONTEXT_FIELDS = frozenset({  # privileged: only false is kept
    "capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation",
    "seccompProfile", "privileged",
})
CAPABILITIES_FIELDS = frozenset({"drop", "add"})
CAPABILITIES_ADD: frozenset[str] = frozenset()  # add needs kubernetes.containerspec-addcapabilities
CAPABILITIES_ADD_WITH_SECURE_POD_DEFAULTS = frozenset({"NET_BIND_SERVICE"})  # exactly ["NET_BIND_SERVICE"]
POD_SECURITY_CONTEXT_FIELDS: frozenset[str] = frozenset()  # default: every pod-level securityContext field is rejected
POD_SECURITY_CONTEXT_FIELDS_WHEN_FLAG = frozenset({
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile",
})
VOLUME_SOURCES = frozenset({"secret", "configMap", "projected", "emptyDir"})  # podspec-volumes-emptydir: Enabled
PROJECTED_SOURCES = frozenset({"secret", "configMap", "serviceAccountToken", "downwardAPI"})
VOLUME_MOUNT_FIELDS = frozenset({"name", "readOnly", "mountPath", "subPath"})
PROBE_FIELDS = frozenset({
    "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
    "terminationGracePeriodSeconds",
})
PROBE_HANDLER = frozenset({"exec", "httpGet", "tcpSocket", "grpc"})
PORT_FIELDS = frozenset({"containerPort", "name", "protocol"})
PORT_NAMES = frozenset({"", "h2c", "http1"})
RESERVED_PORTS = frozenset({8008, 8012, 8013, 8022, 9090, 9091})
ENV_VALUE_FROM_FIELDS = frozenset({"configMapKeyRef", "secretKeyRef"})  # fieldRef etc. need podspec-fieldref

Spec = dict[str, Any]


def _extra(where: str, obj: Spec | None, allowed: frozenset[str], why: str = "not allowed") -> list[str]:
    return [f"{where}.{k}: {why}" for k in sorted(set(obj or {}) - allowed) if (obj or {})[k] is not None]


def _security_context(where: str, sc: Spec | None) -> list[str]:
    out = _extra(where, sc, CONTAINER_SECURITY_CONTEXT_FIELDS)
    sc = sc or {}
    if sc.get("privileged"):
        out.append(f"{where}.privileged: only false is allowed")
    caps = sc.get("capabilities") or {}
    out += _extra(f"{where}.capabilities", caps, CAPABILITIES_FIELDS)
    if set(caps.get("add") or []) - CAPABILITIES_ADD:
        out.append(f"{where}.capabilities.add: needs kubernetes.containerspec-addcapabilities")
    return out


def _probes(where: str, c: Spec, serving: bool) -> list[str]:
    out: list[str] = []
    for kind in sorted(PROBE_KINDS & set(c)):
        probe, at = c[kind] or {}, f"{where}.{kind}"
        if not serving and probe:
            out.append(f"{at}: probes on a non-serving container need multi-container-probing")
            continue
        out += _extra(at, probe, PROBE_FIELDS | PROBE_HANDLER)
        if probe and len(PROBE_HANDLER & set(probe)) != 1:
            out.append(f"{at}: needs exactly one of {sorted(PROBE_HANDLER)}")
        if kind == "readinessProbe" and not probe.get("periodSeconds"):
            out += [f"{at}.{k}: disallowed when periodSeconds is zero" for k in ("failureThreshold", "timeoutSeconds")
                    if probe.get(k)]
    return out


def _container(where: str, c: Spec, serving: bool, volumes: dict[str, Spec]) -> list[str]:
    out = _extra(where, c, CONTAINER_FIELDS)  # sidecar probes (SIDECAR_FIELDS) are reported by _probes
    out += _probes(where, c, serving) + _security_context(f"{where}.securityContext", c.get("securityContext"))
    for i, port in enumerate(c.get("ports") or []):
        out += _extra(f"{where}.ports[{i}]", port, PORT_FIELDS)
        if port.get("name", "") not in PORT_NAMES or port.get("protocol", "TCP") != "TCP":
            out.append(f"{where}.ports[{i}]: name must be empty, h2c or http1 and protocol TCP")
        if port.get("containerPort") in RESERVED_PORTS:
            out.append(f"{where}.ports[{i}].containerPort: {port['containerPort']} is reserved by Knative")
    for i, env in enumerate(c.get("env") or []):
        out += _extra(f"{where}.env[{i}].valueFrom", env.get("valueFrom"), ENV_VALUE_FROM_FIELDS)
    for i, vm in enumerate(c.get("volumeMounts") or []):
        out += _extra(f"{where}.volumeMounts[{i}]", vm, VOLUME_MOUNT_FIELDS)
        if "emptyDir" not in volumes.get(vm.get("name"), {}) and not vm.get("readOnly"):
            out.append(f"{where}.volumeMounts[{i}]: must be readOnly: true for a non-emptyDir volume")
    return out


def _volumes(spec: Spec) -> list[str]:
    out: list[str] = []
    mounted = {vm.get("name") for c in spec.get("containers") or [] for vm in c.get("volumeMounts") or []}
    for i, vol in enumerate(spec.get("volumes") or []):
        where = f"spec.volumes[{i}]"
        out += _extra(where, vol, VOLUME_SOURCES | {"name"}, "volume source not allowed by default")
        if vol.get("name") not in mounted:
            out.append(f"{where}: volume {vol.get('name')!r} is not mounted by any container")
        if (vol.get("emptyDir") or {}).get("medium", "") not in ("", "Memory"):
            out.append(f"{where}.emptyDir.medium: must be empty or Memory")
        for j, src in enumerate((vol.get("projected") or {}).get("sources") or []):
            out += _extra(f"{where}.projected.sources[{j}]", src, PROJECTED_SOURCES)
    return out


def knative_problems(component_spec: dict) -> list[str]:
    """Everything Knative's webhook (default flags) would reject in a KServe component spec (e.g. spec.predictor)."""
    spec = {k: v for k, v in component_spec.items() if k not in KSERVE_COMPONENT_FIELDS | KSERVE_IMPLEMENTATION_FIELDS}
    out = [f"spec.{k}: not allowed" + (f" (needs {POD_SPEC_FLAGS[k]})" if k in POD_SPEC_FLAGS else "")
           for k in sorted(set(spec) - POD_SPEC_FIELDS) if spec[k] is not None]
    if spec.get("automountServiceAccountToken"):
        out.append("spec.automountServiceAccountToken: only false is allowed")
    containers: list[Spec] = spec.get("containers") or []
    with_ports = [c.get("name") for c in containers if c.get("ports")]
    if sum(len(c.get("ports") or []) for c in containers) > 1:
        out.append(f"spec.containers: more than one container port is set ({with_ports}); only one is allowed")
    out += _extra("spec.securityContext", spec.get("securityContext"), POD_SECURITY_CONTEXT_FIELDS_WHEN_FLAG,
                  "not allowed even with kubernetes.podspec-securitycontext")
    no_impl = not (KSERVE_IMPLEMENTATION_FIELDS - {"name"}) & set(component_spec)
    if len(containers) > 1 and not with_ports and no_impl:
        out.append("spec.containers: several containers but none declares ports (the serving one must)")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for i, c in enumerate(containers):
        serving = len(containers) == 1 or bool(c.get("ports"))
        out += _container(f"spec.containers[{i}]", c, serving, volumes)
    return out + _volumes(spec)
