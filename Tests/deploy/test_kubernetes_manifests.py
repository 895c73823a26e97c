"""deploy/kubernetes: every manifest validates against the Kubernetes schemas (kubernetes-validate ships them; no
cluster), and the pieces the deployment guide promises are wired together: probes on /readyz and /healthz, resources,
a grace period longer than the drain, the spool on a per-pod volume, the ConfigMap and Secrets mounted, PDB, HPA."""
import glob
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIRECTORY = os.path.join(ROOT, "deploy", "kubernetes")
KUBERNETES_VERSION = "1.30.0"


def manifests():
    return sorted(f for f in glob.glob(os.path.join(DIRECTORY, "*.yaml")) if not f.endswith("kustomization.yaml"))


def documents():
    docs = []
    for path in manifests():
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def by_kind(kind):
    found = [d for d in documents() if d["kind"] == kind]
    assert found, f"no {kind} in deploy/kubernetes"
    return found


@pytest.mark.parametrize("path", manifests(), ids=os.path.basename)
def test_manifest_validates_against_the_kubernetes_schema(path):
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION, path],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kustomization_lists_every_manifest():
    with open(os.path.join(DIRECTORY, "kustomization.yaml")) as f:
        listed = set(yaml.safe_load(f)["resources"])
    assert listed == {os.path.basename(p) for p in manifests()}


def test_statefulset_drains_and_keeps_its_spool():
    (workload,) = by_kind("StatefulSet")
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    # The kubelet must not kill a drain that is on time.
    assert pod["terminationGracePeriodSeconds"] > int(env["TOLLGATE_SHUTDOWN_DELAY_SECONDS"]) + int(env["TOLLGATE_DRAIN_TIMEOUT_SECONDS"])
    # The spool (data dir) is on the per-pod persistent volume.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in workload["spec"]["volumeClaimTemplates"]}
    assert mounts["spool"] == env["TOLLGATE_DATA_DIR"] and "spool" in claims
    # tollgate.yaml from the ConfigMap, credentials from Secrets.
    configmaps = {c["metadata"]["name"]: c for c in by_kind("ConfigMap")}
    config_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert config_volume["configMap"]["name"] in configmaps
    assert "tollgate.yaml" in configmaps[config_volume["configMap"]["name"]]["data"]
    assert env["TOLLGATE_CONFIG"] == mounts["config"] + "/tollgate.yaml"
    secrets = {s["metadata"]["name"]: s for s in by_kind("Secret")}
    referenced = {e["secretRef"]["name"] for e in container["envFrom"]}
    assert referenced <= set(secrets)
    provided = set().union(*(secrets[n]["stringData"] for n in referenced))
    assert {"DATABASE_URL", "TOLLGATE_ADMIN_TOKEN"} <= provided
    assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_pdb_service_and_hpa_select_the_pods():
    (workload,) = by_kind("StatefulSet")
    labels = workload["spec"]["template"]["metadata"]["labels"]
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    for service in by_kind("Service"):
        assert service["spec"]["selector"].items() <= labels.items()
    assert workload["spec"]["serviceName"] in {s["metadata"]["name"] for s in by_kind("Service")}
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": workload["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2, "one pod cannot be drained without an outage"
