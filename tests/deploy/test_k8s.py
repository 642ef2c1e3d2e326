"""Kubernetes manifests: schema-valid (kubernetes-validate, offline schemas, strict: unknown fields fail) and
consistent with each other and with the image (names, labels, ports, probes, commands, config)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from broker.cli.main import cli
from broker.health.endpoints import healthz, readyz
from broker.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.29"  # the oldest Kubernetes the manifests promise to work on


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return out


DOCS = _docs()


def _one(kind: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _validator() -> Any:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (dev dependency: pip install kubernetes-validate)",
    )
    return kv


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{n}:{d['kind']}" for n, d in DOCS])
def test_manifest_is_schema_valid(name: str, doc: dict[str, Any]) -> None:
    kv = _validator()
    kv.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    kv = _validator()
    bad = copy.deepcopy(_one("Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)
    bad = copy.deepcopy(_one("Deployment"))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)


def test_expected_objects_are_there() -> None:
    kinds = sorted(d["kind"] for _, d in DOCS)
    assert {"ConfigMap", "Deployment", "Job", "Secret", "Service"} <= set(kinds)


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def test_deployment_has_several_hardened_replicas_with_probes() -> None:
    dep = _one("Deployment")
    assert dep["spec"]["replicas"] >= 2
    pod = _pod(dep)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] in healthz.paths
    assert c["readinessProbe"]["httpGet"]["path"] in readyz.paths
    # the probes' named port is the container's, and the server listens on it
    port = next(p for p in c["ports"] if p["name"] == c["readinessProbe"]["httpGet"]["port"])["containerPort"]
    args = c["args"]
    assert args[:3] == ["serve", "--host", "0.0.0.0"]
    assert int(args[args.index("--port") + 1]) == port
    assert "limits" in c["resources"] and "requests" in c["resources"]


def test_service_selects_the_deployments_pods_on_its_port() -> None:
    dep, svc = _one("Deployment"), _one("Service")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in _pod(dep)["containers"][0]["ports"]}
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in port_names or p["targetPort"] == 8000


def test_job_runs_the_migration_command_with_the_same_image_and_settings() -> None:
    job, dep = _one("Job"), _one("Deployment")
    (jc,) = _pod(job)["containers"]
    (dc,) = _pod(dep)["containers"]
    assert jc["args"] == ["db", "upgrade"]
    assert CliRunner().invoke(cli, [*jc["args"], "--help"]).exit_code == 0
    assert jc["image"] == dc["image"]
    assert jc["envFrom"] == dc["envFrom"]
    assert _pod(job)["restartPolicy"] in ("Never", "OnFailure")
    assert _pod(job)["securityContext"]["runAsNonRoot"] is True


def test_secret_and_configmap_references_resolve() -> None:
    secret, cm = _one("Secret"), _one("ConfigMap")
    for obj in (_one("Deployment"), _one("Job")):
        pod = _pod(obj)
        (c,) = pod["containers"]
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in c["envFrom"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in c["volumeMounts"]:
            vol = volumes[mount["name"]]
            if "configMap" in vol:
                assert vol["configMap"]["name"] == cm["metadata"]["name"]
                assert mount["subPath"] in cm["data"]
                env = {e["name"]: e["value"] for e in c.get("env", [])}
                assert env["BROKER_CONFIG"] == mount["mountPath"]
    assert "BROKER_DATABASE_URL" in secret["stringData"]


def test_configmap_broker_toml_is_valid_settings(tmp_path: Path) -> None:
    """The ConfigMap's broker.toml, placed where the image puts it (beside the shipped catalog and rate cards)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config = tmp_path / "config" / "broker.toml"
    config.write_text(_one("ConfigMap")["data"]["broker.toml"], encoding="utf-8")
    settings = load_settings({"BROKER_CONFIG": str(config), "BROKER_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.server.auth is True, "a cluster deployment serves beyond loopback: auth stays on"
    assert settings.sources, "no sources configured"
    from adapters.base import registered_kinds

    for cfg in settings.sources.values():
        assert cfg.kind in registered_kinds(), cfg
