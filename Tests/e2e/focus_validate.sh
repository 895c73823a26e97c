#!/usr/bin/env bash
# Generates a FOCUS export from a test database (the hand-worked October and November of FocusExportTests: pay-as-you-go,
# committed/PTU, unpriced and correction rows) and validates it with the PyPI focus-validator.
#
# focus-validator 1.0.0 is the newest that installs on Python 3.11; it validates FOCUS 1.0. Our export follows FOCUS 1.2,
# whose column set includes every column 1.0 requires; four of them are spelled the pre-1.0 way by this validator
# (Provider, Publisher, InvoiceIssuer, ResourceID for ProviderName, PublisherName, InvoiceIssuerName, ResourceId), so a
# copy of the file with those four headers renamed, plus ChargeType (the pre-1.0 name of ChargeCategory, which one of
# its rules reads), is what gets validated. No value is changed.
#
# Usage: Tests/e2e/focus_validate.sh   (from the package root; uses .build like `swift test`)
# Env:   FOCUS_VENV (default /tmp/tollgate-focus-venv), SKIP_BUILD=1 to reuse an existing test build.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${FOCUS_VENV:-/tmp/tollgate-focus-venv}"
if [ ! -x "$VENV/bin/focus-validator" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet focus-validator 'multimethod<1.11'
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
EXPORT="$WORK/focus-export.csv"

TOLLGATE_FOCUS_EXPORT="$EXPORT" swift test ${SKIP_BUILD:+--skip-build} --filter FocusExportTests >"$WORK/swift-test.log" 2>&1 || {
    cat "$WORK/swift-test.log"; echo "focus_validate: generating the export failed" >&2; exit 1; }
[ -s "$EXPORT" ] || { echo "focus_validate: no export was written" >&2; exit 1; }

# The validator's rules use pre-1.0-GA names for five columns: rename four headers and add ChargeType as a copy of
# ChargeCategory (its SkuPriceId rule reads ChargeType). Values are not touched.
python3 - "$EXPORT" "$WORK/focus-for-validator-1.0.csv" <<'PY'
import csv, sys
renames = {"ProviderName": "Provider", "PublisherName": "Publisher", "InvoiceIssuerName": "InvoiceIssuer", "ResourceId": "ResourceID"}
with open(sys.argv[1], newline="") as src, open(sys.argv[2], "w", newline="") as dst:
    reader = csv.DictReader(src)
    fields = [renames.get(f, f) for f in reader.fieldnames] + ["ChargeType"]
    writer = csv.DictWriter(dst, fieldnames=fields)
    writer.writeheader()
    for row in reader:
        out = {renames.get(k, k): v for k, v in row.items()}
        out["ChargeType"] = row["ChargeCategory"]
        writer.writerow(out)
PY

ROWS=$(($(wc -l <"$EXPORT") - 1))
# The validator reads its currency list from a path relative to the working directory: run it from its package's parent.
SITE="$("$VENV/bin/python" -c 'import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))')"
VERSION="$("$VENV/bin/pip" show focus-validator | awk '/^Version:/ {print $2}')"
set +e
(cd "$SITE" && "$VENV/bin/focus-validator" --data-file "$WORK/focus-for-validator-1.0.csv" --validate-version 1.0) >"$WORK/validator.log" 2>&1
STATUS=$?
set -e
cat "$WORK/validator.log"
if [ $STATUS -ne 0 ] || grep -qi "failed" "$WORK/validator.log"; then
    echo "focus_validate: FAILED (focus-validator $VERSION, FOCUS 1.0 rules, $ROWS rows)" >&2
    exit 1
fi
echo "focus_validate: passed (focus-validator $VERSION against FOCUS 1.0 rules; export columns follow FOCUS 1.2; $ROWS rows)"
