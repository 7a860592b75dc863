"""Rendered manifests -> the pods and Services a cluster would run for them.

What the control plane adds is added here too, where the servers depend on it: KServe's pod
labels (serving.kserve.io/inferenceservice, component), its model volume at /mnt/models
filled by the storage initializer from STORAGE_URI, ``--predictor_host`` for a separate
transformer and the <isvc>-predictor / -transformer Services (port 80); Knative's PORT /
K_SERVICE environment on the serving container; StatefulSet claims; the kubelet's /etc/hosts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoke.kubelet import Container, Mount, expand

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:3.11-slim's PATH
MODEL_VOLUME = "kserve-provision-location"


class PodError(RuntimeError):
    """The pod could not be created as rendered (what the kubelet reports as a config error)."""


@dataclass
class Image:
    """How an image runs here: its filesystem binds, ENV, WORKDIR and USER."""

    binds: list[tuple[str, str]]
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int


def dockerfile_runtime(dockerfile: Path) -> tuple[dict[str, str], str, tuple[int, int]]:
    """ENV, WORKDIR and USER of the Dockerfile's last stage (the image the pods run)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    stage = text.split("\nFROM ")[-1]
    env: dict[str, str] = {"PATH": BASE_PATH}
    workdir, user = "/", (0, 0)
    for line in stage.splitlines():
        words = line.strip().split(None, 1)
        if not words or len(words) < 2:
            continue
        if words[0] == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", words[1]):
                env[key] = value.replace("$PATH", env.get("PATH", BASE_PATH))
        elif words[0] == "WORKDIR":
            workdir = words[1].strip()
        elif words[0] == "USER":
            u, _, g = words[1].strip().partition(":")
            user = (int(u), int(g or u))
    return env, workdir, user


@dataclass
class Cluster:
    """Everything the pods of one layout share: secrets, config maps, claims, the model store."""

    root: Path
    namespace: str
    images: dict[str, Image]  # image reference prefix -> how it runs
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    storage: Callable[[str], Path] | None = None  # storageUri -> a local bundle directory

    def image(self, ref: str) -> Image | None:
        return next((img for prefix, img in self.images.items() if ref.startswith(prefix)), None)

    def claim(self, name: str) -> Path:
        path = self.root / "pvc" / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        return path


@dataclass
class Pod:
    name: str
    kind: str  # InferenceService/<component>, Deployment, StatefulSet, Pod
    labels: dict[str, str]
    spec: dict[str, Any]  # the pod spec (containers, volumes, securityContext...)
    knative: bool = False
    model_uri: str | None = None  # KServe storage initializer source
    model_containers: tuple[str, ...] = ()
    extra_args: dict[str, list[str]] = field(default_factory=dict)  # container -> args KServe appends
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)  # volume name -> claim (StatefulSet templates)
    skipped: list[str] = field(default_factory=list)  # containers with no local stand-in for their image


def pods_of(documents: list[dict], namespace: str) -> list[Pod]:
    pods: list[Pod] = []
    for d in documents:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "InferenceService":
            pods += isvc_pods(d, namespace)
        elif kind in ("Deployment", "StatefulSet"):
            tmpl = d["spec"]["template"]
            claims = {c["metadata"]["name"]: f"{c['metadata']['name']}-{name}-0"
                      for c in d["spec"].get("volumeClaimTemplates", [])}
            pods.append(Pod(f"{name}-0", kind, dict(tmpl["metadata"].get("labels", {})), tmpl["spec"], claims=claims))
    return pods


def isvc_pods(isvc: dict, namespace: str) -> list[Pod]:
    name = isvc["metadata"]["name"]
    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Serverless")
    knative = mode in ("Serverless", "Knative")
    out = []
    for comp in ("predictor", "transformer"):
        spec = isvc["spec"].get(comp)
        if not spec:
            continue
        containers = spec["containers"]
        labels = {**spec.get("labels", {}), "serving.kserve.io/inferenceservice": name, "component": comp}
        uri = next((e.get("value") for c in containers for e in c.get("env", []) if e["name"] == "STORAGE_URI"), None)
        pod = Pod(f"{name}-{comp}-00001", f"InferenceService/{comp}", labels, spec, knative=knative,
                  model_uri=uri, model_containers=tuple(c["name"] for c in containers
                                                       if c["name"] in ("kserve-container", "transformer-container")
                                                       or any(e["name"] == "STORAGE_URI" for e in c.get("env", []))))
        serving = next((c for c in containers if c.get("ports")), containers[0])
        if knative:
            port = str(serving.get("ports", [{}])[0].get("containerPort", 8080))
            pod.extra_env[serving["name"]] = {"PORT": port, "K_SERVICE": f"{name}-{comp}",
                                              "K_CONFIGURATION": f"{name}-{comp}", "K_REVISION": pod.name}
        if comp == "transformer" and not any(a.startswith("--predictor_host") for a in serving.get("args", [])):
            pod.extra_args[serving["name"]] = [f"--predictor_host={name}-predictor.{namespace}"]
        out.append(pod)
    return out


def _volume_dirs(pod: Pod, pod_dir: Path, cluster: Cluster) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for vol in pod.spec.get("volumes", []):
        path = pod_dir / "volumes" / vol["name"]
        if "emptyDir" in vol:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
        elif "configMap" in vol or "secret" in vol:
            ref = vol.get("configMap", {}).get("name") or vol.get("secret", {}).get("secretName")
            data = cluster.config_maps.get(ref) if "configMap" in vol else cluster.secrets.get(ref)
            if data is None:
                kind = "ConfigMap" if "configMap" in vol else "Secret"
                raise PodError(f"volume {vol['name']}: {kind} {ref} not found")
            path.mkdir(parents=True, exist_ok=True)
            for key, value in data.items():
                (path / key).write_text(value)
        elif "persistentVolumeClaim" in vol:
            path = cluster.claim(vol["persistentVolumeClaim"]["claimName"])
        else:
            raise PodError(f"volume {vol['name']}: kind {sorted(vol)} not emulated")
        out[vol["name"]] = path
    for vol, claim in pod.claims.items():
        out[vol] = cluster.claim(claim)
    if pod.model_uri is not None:
        if cluster.storage is None:
            raise PodError("no model store for STORAGE_URI")
        path = pod_dir / "volumes" / MODEL_VOLUME
        shutil.copytree(cluster.storage(pod.model_uri), path, dirs_exist_ok=True)  # the storage initializer
        out[MODEL_VOLUME] = path
    return out


def _environment(c: dict, cluster: Cluster, extra: dict[str, str]) -> dict[str, str]:
    """The kubelet's environment of container ``c`` (without the image's ENV)."""
    env: dict[str, str] = dict(extra)
    for ref in c.get("envFrom", []):
        if "configMapRef" in ref:
            source, what = cluster.config_maps.get(ref["configMapRef"]["name"]), "ConfigMap"
            name = ref["configMapRef"]["name"]
        else:
            source, what = cluster.secrets.get(ref["secretRef"]["name"]), "Secret"
            name = ref["secretRef"]["name"]
        if source is None:
            raise PodError(f"container {c['name']}: envFrom {what} {name} not found")
        env.update(source)
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom", {})
        ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
        store = cluster.secrets if "secretKeyRef" in vf else cluster.config_maps
        if ref is None or ref["key"] not in store.get(ref["name"], {}):
            raise PodError(f"container {c['name']}: env {e['name']} from {ref} not found")
        env[e["name"]] = store[ref["name"]][ref["key"]]
    return env


def containers_of(pod: Pod, pod_dir: Path, hosts: Path, cluster: Cluster, init: bool = False) -> list[Container]:
    """The pod's (init) containers resolved to what runs: argv, env, uid, mounts, probes."""
    volumes = _volume_dirs(pod, pod_dir, cluster) if not init else {}
    out = []
    pod_sc = pod.spec.get("securityContext", {})
    for c in pod.spec.get("initContainers" if init else "containers", []):
        image = cluster.image(c["image"])
        if image is None:
            pod.skipped.append(f"{c['name']} ({c['image']}: no local stand-in)")
            continue
        sc = c.get("securityContext", {})
        uid = int(sc.get("runAsUser", pod_sc.get("runAsUser", image.uid)))
        gid = int(sc.get("runAsGroup", pod_sc.get("runAsGroup", image.gid)))
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
            raise PodError(f"container {c['name']}: runAsNonRoot but the image runs as root")
        kube_env = _environment(c, cluster, pod.extra_env.get(c["name"], {}))
        argv = [expand(str(a), kube_env) for a in c.get("command", []) + c.get("args", [])]
        argv += pod.extra_args.get(c["name"], [])
        mounts = [Mount(volumes[m["name"]], m["mountPath"], bool(m.get("readOnly"))) for m in c.get("volumeMounts", [])]
        if c["name"] in pod.model_containers:
            mounts.append(Mount(volumes[MODEL_VOLUME], "/mnt/models", True))
        mounts.append(Mount(hosts, "/etc/hosts", True))
        ports = {p.get("name", ""): int(p["containerPort"]) for p in c.get("ports", [])}
        out.append(Container(
            name=c["name"], argv=argv, env={**image.env, **kube_env}, workdir=c.get("workingDir", image.workdir),
            uid=uid, gid=gid, read_only_root=bool(sc.get("readOnlyRootFilesystem")), mounts=mounts,
            binds=image.binds, ports=ports, probes={k: c[k] for k in ("startupProbe", "readinessProbe",
                                                                        "livenessProbe") if k in c},
            log=pod_dir / f"{c['name']}.log"))
    return out


@dataclass
class Service:
    name: str
    namespace: str
    selector: dict[str, str]
    ports: list[tuple[int, int | str]]  # (port, targetPort)
    headless: bool = False

    def names(self) -> list[str]:
        n, ns = self.name, self.namespace
        return [n, f"{n}.{ns}", f"{n}.{ns}.svc", f"{n}.{ns}.svc.cluster.local"]


def services_of(documents: list[dict], namespace: str) -> list[Service]:
    out = []
    for d in documents:
        if d["kind"] == "Service":
            spec = d["spec"]
            out.append(Service(d["metadata"]["name"], namespace, spec.get("selector", {}),
                               [(p["port"], p.get("targetPort", p["port"])) for p in spec["ports"]],
                               headless=spec.get("clusterIP") == "None"))
        elif d["kind"] == "InferenceService":  # what KServe creates (through Knative or plain Services)
            name = d["metadata"]["name"]
            comps = [c for c in ("predictor", "transformer") if c in d["spec"]]
            for comp in comps:
                sel = {"serving.kserve.io/inferenceservice": name, "component": comp}
                out.append(Service(f"{name}-{comp}", namespace, sel, [(80, "serving")]))
            sel = {"serving.kserve.io/inferenceservice": name, "component": comps[-1]}
            out.append(Service(name, namespace, sel, [(80, "serving")]))
    return out


def hosts_file(path: Path, hostname: str, pod_ip: str, names: dict[str, str]) -> Path:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost", f"{pod_ip}\t{hostname}"]
    lines += [f"{addr}\t{name}" for name, addr in names.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def project_image(repo_image_dir: Path, dockerfile: Path, venv: Path) -> Image:
    env, workdir, (uid, gid) = dockerfile_runtime(dockerfile)
    base = Path(os.path.realpath(venv / "bin" / "python")).parents[2]  # the venv's interpreter prefix
    return Image(binds=[(str(base), str(base)), (str(venv), "/opt/venv"), (str(repo_image_dir), workdir)],
                 env=env, workdir=workdir, uid=uid, gid=gid)
