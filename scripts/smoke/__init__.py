"""Run the rendered manifests the way a cluster would, on this machine (`make deploy-smoke`).

network    pods in network namespaces, Services as addresses on the host (kube-proxy's part)
kubelet    containers under bubblewrap as their uid, read-only root, the pod's volumes; probes
workloads  rendered InferenceServices / Deployments / StatefulSets -> pods, KServe's injections
monitor    a real Prometheus scraping what the ServiceMonitors select, the rendered rules
"""
