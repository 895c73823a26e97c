"""The shipped price catalogs (prices/*.csv): well-formed for `tollgate prices import`, consistent with each other
where they name the same model (so both import into one database), and covering every model that the examples and the
deployment manifests configure, so a newcomer's first chargeback shows amounts."""
import csv
import glob
import os
from datetime import datetime
from decimal import Decimal

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CATALOGS = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(ROOT, "prices", "*.csv"))}
COLUMNS = ["model", "backend", "deployment", "currency", "effective_from", "input_per_1m", "cached_input_per_1m", "output_per_1m",
           "reasoning_per_1m"]


def rows(name):
    with open(CATALOGS[name], newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_both_catalogs_ship():
    assert {"openai", "azure-openai"} <= set(CATALOGS)


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_catalog_rows_are_valid_versions(name):
    seen = set()
    for row in rows(name):
        assert row["model"] and row["currency"] == "USD", row
        assert row["backend"] == "" and row["deployment"] == "", "catalog rows are model-wide"
        datetime.strptime(row["effective_from"], "%Y-%m-%d")  # midnight UTC: a whole hour
        for column in ("input_per_1m", "output_per_1m"):
            assert Decimal(row[column]) >= 0, row
        if row["cached_input_per_1m"]:
            assert Decimal(row["cached_input_per_1m"]) <= Decimal(row["input_per_1m"]), row
        key = (row["model"], row["effective_from"])
        assert key not in seen, f"{name}: {key} twice"
        seen.add(key)


def test_catalogs_agree_where_they_overlap():
    openai = {(r["model"], r["effective_from"]): r for r in rows("openai")}
    for row in rows("azure-openai"):
        other = openai.get((row["model"], row["effective_from"]))
        if other is not None:
            assert other == row, f"openai and azure-openai differ on {row['model']} from {row['effective_from']}"


def configured_models():
    models = set()
    files = glob.glob(os.path.join(ROOT, "examples", "*.yaml")) + [os.path.join(ROOT, "deploy", "kubernetes", "configmap.yaml")]
    for path in files:
        with open(path) as f:
            for document in yaml.safe_load_all(f):
                if document and document.get("kind") == "ConfigMap":
                    document = yaml.safe_load(document["data"]["tollgate.yaml"])
                for backend in (document or {}).get("backends", []):
                    models |= set(backend.get("models", []))
                    models |= {d["model"] for d in backend.get("deployments", [])}
    return models


def test_every_example_model_has_a_price():
    models = configured_models()
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= models
    for name in ("openai", "azure-openai"):
        priced = {r["model"] for r in rows(name)}
        assert models - priced == set(), f"unpriced in {name}: {sorted(models - priced)}"
