from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.gpus import GpuCatalog
from broker.placement import PlacementConfig, place
from broker.placement.launch import _DUMPER, _block, dump_yaml, skypilot_task
from tests.placement.conftest import NOW, index, offer, request


def test_skypilot_task_and_kubernetes_job_for_a_spot_multi_node_choice(
    catalog: GpuCatalog, cfg: PlacementConfig
) -> None:
    spot = offer(
        "gcp",
        "us-central1",
        "a2-ultragpu-8g",
        "spot",
        zone="us-central1-a",
        hourly=12.0,
        attrs={"interruption_rate_per_hour": 0.1},
    )
    job = request(name="Train LLM_v2", gpu={"count": 16}, cpus=90, memory_gb=1000, labels={"team": "nlp research"})
    d = place(job, index(spot), catalog, cfg, NOW)

    task = yaml.safe_load(d.launch.skypilot_yaml)
    assert task["num_nodes"] == 2
    res = task["resources"]
    assert res["infra"] == "gcp/us-central1/us-central1-a"
    assert res["instance_type"] == "a2-ultragpu-8g" and res["accelerators"] == "A100-80GB:8"
    assert res["use_spot"] is True and res["image_id"] == "docker:nvcr.io/nvidia/pytorch:24.05-py3"
    assert res["cpus"] == "90+" and res["memory"] == "1000+"
    assert task["envs"] == {"WANDB_MODE": "offline"} and task["run"] == "python train.py --epochs 3"

    k8s = d.launch.kubernetes_job
    assert k8s["apiVersion"] == "batch/v1" and k8s["kind"] == "Job"
    assert k8s["metadata"]["name"] == "train-llm-v2"
    spec = k8s["spec"]
    assert spec["completions"] == spec["parallelism"] == 2 and spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {
        "node.kubernetes.io/instance-type": "a2-ultragpu-8g",
        "topology.kubernetes.io/region": "us-central1",
        "topology.kubernetes.io/zone": "us-central1-a",
        "kubernetes.io/arch": "amd64",
        "cloud.google.com/gke-spot": "true",
    }
    (container,) = pod["containers"]
    assert container["image"] == "nvcr.io/nvidia/pytorch:24.05-py3"
    assert container["command"] == ["python", "train.py", "--epochs", "3"]
    assert {"name": "WANDB_MODE", "value": "offline"} in container["env"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert container["resources"]["requests"] == {"cpu": "90", "memory": "1000G"}
    assert spec["template"]["metadata"]["labels"]["team"] == "nlp-research"
    # the manifest survives a YAML round trip unchanged (what kubectl apply reads)
    assert yaml.safe_load(yaml.safe_dump(k8s)) == k8s


def test_amd_on_demand_single_node_with_a_shell_command(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    mi = offer("crusoe", "us-east1-a", "mi300x-192gb.8x", gpu="MI300X", gpus=8, hourly=27.6)
    job = request(
        gpu={"count": 4, "models": ["MI300X"], "vendor": "amd"},
        command="torchrun train.py && echo done",
        work={"reference_gpu": "A100-80GB"},
    )
    d = place(job, index(mi), catalog, cfg, NOW)
    task = yaml.safe_load(d.launch.skypilot_yaml)
    assert task["resources"]["use_spot"] is False and "job_recovery" not in task["resources"]
    assert task["run"] == "torchrun train.py && echo done"
    pod = d.launch.kubernetes_job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["/bin/sh", "-c", "torchrun train.py && echo done"]
    assert pod["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "4"}
    assert "karpenter.sh/capacity-type" not in pod["nodeSelector"]
    assert "completionMode" not in d.launch.kubernetes_job["spec"]


_TEXT = st.text(alphabet=st.sampled_from("aZ09_-./:=+@() #'\"!,?*&|%~\té"), max_size=12)
_TRICKY = st.sampled_from(
    [
        "yes",
        "No",
        "true",
        "null",
        "~",
        "1.5",
        "12:30",
        "0x1F",
        "1_000",
        ".inf",
        "-1",
        "on",
        "=",
        "<<",
        "1e5",
        "H100:8",
        "docker:nvcr.io/x:1",
        "a: b",
        "a:",
        "a #b",
        "- x",
        "",
        " a",
        "a ",
        "2024-01-01",
        "x" * 90,
    ]
)
_STRINGS = st.one_of(_TRICKY, _TEXT, st.from_regex(r"[a-z][a-z0-9 ./:-]{0,40}", fullmatch=True))


@settings(max_examples=400, deadline=None)
@given(
    name=_STRINGS,
    value=_STRINGS,
    env=st.dictionaries(_STRINGS, _STRINGS, max_size=3),
    nodes=st.integers(min_value=0, max_value=10_000),
    spot=st.booleans(),
)
def test_fast_yaml_writes_what_yaml_dump_writes(
    name: str, value: str, env: dict[str, str], nodes: int, spot: bool
) -> None:
    task = {
        "name": name,
        "num_nodes": nodes,
        "resources": {"infra": value, "use_spot": spot, "labels": env},
        "run": value,
    }
    if not env:
        del task["resources"]["labels"]  # type: ignore[attr-defined]
    expected = yaml.dump(task, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)
    assert dump_yaml(task) == expected


def test_fast_yaml_covers_the_usual_task(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    d = place(request(), index(offer()), catalog, cfg, NOW)
    task = skypilot_task(request(), d.choice, catalog)
    out: list[str] = []
    assert _block(task, 0, out)  # no fallback for an ordinary request
    assert d.launch.skypilot_yaml == yaml.dump(task, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)
