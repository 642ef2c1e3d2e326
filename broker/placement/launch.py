"""Launch specs for a placement choice: a SkyPilot task YAML and a Kubernetes ``batch/v1`` Job manifest.

Both pin the chosen provider/region/zone/instance type so that what runs is what was priced.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from broker.gpus import GpuCatalog
from broker.placement.schemas import LaunchSpec, Option, PlaceRequest

MANAGED_BY = "gpu-broker"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml is ~20x faster; same output
# the dumper's own resolver: says which strings would read back as str (PyYAML leaves it untyped)
_RESOLVE: Callable[[type[yaml.Node], str, tuple[bool, bool]], str] = yaml.resolver.Resolver().resolve
_STR_TAG = "tag:yaml.org,2002:str"
_WIDTH = 80  # the emitter folds longer lines: the fast path leaves those to it
# Strings PyYAML/libyaml write unquoted when they resolve to str (else in single quotes, unchanged inside):
# no indicator first, no ": " / trailing ":" / trailing space, printable ASCII only, no quotes or "#".
_SAFE = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./=+@()\-: ]*")
# SkyPilot infra names where the broker's provider name differs; CoreWeave is reached through its Kubernetes (CKS).
SKYPILOT_INFRA = {"coreweave": "k8s"}
# Node labels that pin spot capacity, per provider (GKE, AKS); elsewhere Karpenter's well-known label.
SPOT_NODE_LABELS = {
    "gcp": ("cloud.google.com/gke-spot", "true"),
    "azure": ("kubernetes.azure.com/scalesetpriority", "spot"),
}
DEFAULT_SPOT_LABEL = ("karpenter.sh/capacity-type", "spot")
SPOT_TAINTS = {"gcp": "cloud.google.com/gke-spot", "azure": "kubernetes.azure.com/scalesetpriority"}
GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "gpu.intel.com/i915"}
K8S_ARCH = {"x86_64": "amd64", "arm64": "arm64"}

_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def dns_name(name: str, limit: int = 63) -> str:
    """A DNS-1123 label from any job name ("My Job_1" -> "my-job-1")."""
    cleaned = _DNS.sub("-", name.lower()).strip("-")[:limit].strip("-")
    return cleaned or "job"


def label_value(value: str) -> str:
    return _LABEL_VALUE.sub("-", value)[:63].strip("-_.")


def _labels(job: PlaceRequest, option: Option) -> dict[str, str]:
    out = {k: label_value(v) for k, v in job.labels.items() if _LABEL_KEY.match(k)}
    out.update(
        {
            "app.kubernetes.io/name": dns_name(job.name),
            "app.kubernetes.io/managed-by": MANAGED_BY,
            f"{MANAGED_BY}/provider": label_value(option.provider),
        }
    )
    return out


def _shell(job: PlaceRequest) -> str:
    return job.command if isinstance(job.command, str) else shlex.join(job.command)


def _accelerator(option: Option, catalog: GpuCatalog) -> str:
    model = catalog.get(option.gpu_model)
    names = model.aliases.get("skypilot", ()) if model is not None else ()
    return f"{names[0] if names else option.gpu_model}:{option.gpus_per_node}"


def skypilot_task(job: PlaceRequest, option: Option, catalog: GpuCatalog) -> dict[str, Any]:
    infra = "/".join(p for p in (SKYPILOT_INFRA.get(option.provider, option.provider), option.region, option.zone) if p)
    resources: dict[str, Any] = {
        "infra": infra,
        "instance_type": option.instance_type,
        "accelerators": _accelerator(option, catalog),
        "use_spot": option.purchase == "spot",
        "image_id": f"docker:{job.image}",
    }
    if job.cpus is not None:
        resources["cpus"] = f"{job.cpus:g}+"
    if job.memory_gb is not None:
        resources["memory"] = f"{job.memory_gb:g}+"
    if option.purchase == "spot":
        resources["job_recovery"] = {"strategy": "FAILOVER", "max_restarts_on_errors": 0}
    if job.labels:
        resources["labels"] = dict(job.labels)
    task: dict[str, Any] = {"name": dns_name(job.name), "num_nodes": option.nodes, "resources": resources}
    if job.env:
        task["envs"] = dict(job.env)
    if job.command:
        task["run"] = _shell(job)
    return task


def kubernetes_job(job: PlaceRequest, option: Option, catalog: GpuCatalog) -> dict[str, Any]:
    model = catalog.get(option.gpu_model)
    vendor = model.vendor if model is not None else "nvidia"
    arch = model.arch if model is not None else job.arch.value
    gpus_per_pod = -(-job.gpu.count // option.nodes)  # <= gpus_per_node because nodes = ceil(count / per node)
    selector = {
        "node.kubernetes.io/instance-type": option.instance_type,
        "topology.kubernetes.io/region": option.region,
        "kubernetes.io/arch": K8S_ARCH.get(arch, arch),
    }
    if option.zone:
        selector["topology.kubernetes.io/zone"] = option.zone
    resource = GPU_RESOURCE.get(vendor, "nvidia.com/gpu")
    tolerations: list[dict[str, str]] = [{"key": resource, "operator": "Exists", "effect": "NoSchedule"}]
    if option.purchase == "spot":
        key, value = SPOT_NODE_LABELS.get(option.provider, DEFAULT_SPOT_LABEL)
        selector[key] = value
        if option.provider in SPOT_TAINTS:
            tolerations.append({"key": SPOT_TAINTS[option.provider], "operator": "Exists", "effect": "NoSchedule"})
    limits: dict[str, str] = {resource: str(gpus_per_pod)}
    requests: dict[str, str] = {}
    if job.cpus is not None:
        requests["cpu"] = f"{job.cpus:g}"
    if job.memory_gb is not None:
        requests["memory"] = f"{job.memory_gb:g}G"
    container: dict[str, Any] = {
        "name": "main",
        "image": job.image,
        "env": [{"name": k, "value": v} for k, v in job.env.items()]
        + [{"name": "BROKER_NUM_NODES", "value": str(option.nodes)}],
        "resources": {"limits": limits, **({"requests": requests} if requests else {})},
    }
    if isinstance(job.command, str):
        container["command"] = ["/bin/sh", "-c", job.command]
    elif job.command:
        container["command"] = list(job.command)
    labels = _labels(job, option)
    spec: dict[str, Any] = {
        "completions": option.nodes,
        "parallelism": option.nodes,
        # spot reclaims and hardware failures restart pods; allow the expected number and some slack
        "backoffLimit": max(3, int(option.expected_interruptions) + 3),
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": selector,
                "tolerations": tolerations,
                "containers": [container],
            },
        },
    }
    if option.nodes > 1:
        spec["completionMode"] = "Indexed"  # each pod gets JOB_COMPLETION_INDEX as its node rank
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": dns_name(job.name),
            "labels": labels,
            "annotations": {
                f"{MANAGED_BY}/offer-id": str(option.offer_id),
                f"{MANAGED_BY}/expected-cost-usd": str(option.expected_cost_usd),
            },
        },
        "spec": spec,
    }


@functools.lru_cache(maxsize=4096)  # the same provider, region, image ... strings recur in every answer
def _string(value: str) -> str | None:
    if not _SAFE.fullmatch(value) or value.endswith((" ", ":")) or ": " in value:
        return None
    if _RESOLVE(yaml.ScalarNode, value, (True, False)) == _STR_TAG:
        return value
    return f"'{value}'"  # would read back as a number, bool, null ...: quoted


def _scalar(value: object) -> str | None:
    """``value`` as the dumper writes it, or None where that takes more than the simple rules here."""
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    return _string(value) if type(value) is str else None


def _block(data: Mapping[str, Any], indent: int, out: list[str]) -> bool:
    pad = " " * indent
    for key, value in data.items():
        k = _scalar(key)
        if k is None:
            return False
        if isinstance(value, dict):
            if not value or indent + len(k) + 1 > _WIDTH:
                return False
            out.append(f"{pad}{k}:")
            if not _block(value, indent + 2, out):
                return False
            continue
        v = _scalar(value)
        if v is None or indent + len(k) + 2 + len(v) > _WIDTH:
            return False
        out.append(f"{pad}{k}: {v}")
    return True


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML, byte for byte what ``yaml.dump(sort_keys=False)`` writes.

    Nested mappings of plain strings, ints and bools are written directly (yaml.dump's Python representer costs
    ~0.3 ms a task, most of a placement decision); anything else goes through yaml.dump itself.
    """
    out: list[str] = []
    if _block(data, 0, out):
        return "\n".join(out) + "\n"
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)


def launch_spec(job: PlaceRequest, option: Option, catalog: GpuCatalog) -> LaunchSpec:
    task = skypilot_task(job, option, catalog)
    return LaunchSpec(
        skypilot_yaml=dump_yaml(task),
        kubernetes_job=kubernetes_job(job, option, catalog),
    )
