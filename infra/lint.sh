#!/usr/bin/env bash
# Lint the SAM template offline, the way CloudFormation will see it:
#   1. install aws-sam-translator and cfn-lint if missing;
#   2. translate the SAM template to plain CloudFormation with aws-sam-translator (any SAM
#      error - unknown event type, invalid property, ... - is printed and fails the lint);
#   3. run cfn-lint on the translated template; errors AND warnings fail the lint.
#
# Usage: infra/lint.sh [TEMPLATE [TRANSLATED]]
#   TEMPLATE    default: infra/template.yaml next to this script
#   TRANSLATED  where to keep the translated CloudFormation JSON (for checks that read it)
# No AWS credentials or network access are needed (apart from pip, the first time).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="${1:-$here/template.yaml}"
if [[ ! -f "$template" ]]; then
    echo "lint: no such template: $template" >&2
    exit 2
fi

python="${PYTHON:-python3}"

# 1. Tools.
if ! "$python" -c 'import samtranslator, cfnlint' >/dev/null 2>&1; then
    echo "lint: installing aws-sam-translator and cfn-lint with pip"
    "$python" -m pip install --quiet aws-sam-translator cfn-lint \
        || "$python" -m pip install --quiet --user --break-system-packages aws-sam-translator cfn-lint
fi
"$python" - <<'PY'
import cfnlint.version, samtranslator
print(f"lint: aws-sam-translator {samtranslator.__version__}, cfn-lint {cfnlint.version.__version__}")
PY

workdir="$(mktemp -d "${TMPDIR:-/tmp}/prmsync-lint.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT
translated="$workdir/$(basename "${template%.*}").translated.json"

# 2. SAM -> CloudFormation.
echo "lint: translating $template with aws-sam-translator"
# SAM asks boto for a region (it only picks the partition of generated ARNs): pin one so the
# lint needs no AWS configuration.
AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
"$python" - "$template" "$translated" <<'PY'
import json
import sys

from cfnlint.decode import cfn_yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

source, target = sys.argv[1], sys.argv[2]


class OfflinePolicyLoader:
    """Stands in for ManagedPolicyLoader, which would call IAM. The template names AWS
    managed policies only through SAM itself (AWSLambdaBasicExecutionRole), which SAM
    turns into an ARN without the loader."""

    def load(self):
        return {}


try:
    # cfn-lint's decoder understands the short intrinsic tags (!Ref, !Sub, !GetAtt, ...).
    # The JSON round trip turns its position-carrying nodes into plain dicts and strings.
    sam = json.loads(json.dumps(cfn_yaml.load(source)))
except Exception as error:  # YAML syntax, duplicate keys, unknown tags
    print(f"lint: {source} is not a valid YAML template: {error}", file=sys.stderr)
    sys.exit(1)

# `sam build` / `sam package` replace a local CodeUri (here the workspace root, built by
# cargo-lambda) with an S3 location before the transform runs; do the same with a placeholder.
def placeholder_code_uri(properties, where):
    code_uri = properties.get("CodeUri")
    if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
        properties["CodeUri"] = f"s3://prmsync-lint-placeholder/{where}.zip"

placeholder_code_uri(sam.get("Globals", {}).get("Function", {}), "globals")
for logical_id, resource in sam.get("Resources", {}).items():
    if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
        placeholder_code_uri(resource.setdefault("Properties", {}), logical_id)

try:
    cfn = transform(sam, {}, OfflinePolicyLoader())
except InvalidDocumentException as error:
    print(f"lint: SAM translation failed for {source}:", file=sys.stderr)
    for cause in error.causes:
        print(f"  - {cause.message}", file=sys.stderr)
    sys.exit(1)
except Exception as error:
    print(f"lint: SAM translation failed for {source}: {type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(1)

with open(target, "w") as out:
    json.dump(cfn, out, indent=1)

def count_types(resources):
    counts = {}
    for resource in resources.values():
        counts[resource.get("Type", "?")] = counts.get(resource.get("Type", "?"), 0) + 1
    return ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))

print(f"lint: SAM template: {len(sam.get('Resources', {}))} resources ({count_types(sam.get('Resources', {}))})")
print(f"lint: translated: {len(cfn['Resources'])} resources, {len(cfn.get('Parameters', {}))} parameters, "
      f"{len(cfn.get('Outputs', {}))} outputs")
PY

# 3. cfn-lint on the translated template. Exit code bits: 1 fatal, 2 error, 4 warning,
# 8 informational. Warnings fail too: keep the template clean.
echo "lint: running cfn-lint on the translated template"
set +e
"$python" -c 'from cfnlint.runner import main; main()' -- "$translated"
status=$?
set -e
if (( status & 7 )); then
    # Keep the translated template: cfn-lint's line numbers point into it.
    trap - EXIT
    echo "lint: cfn-lint reported problems (exit $status) in the translation of $template;" \
        "the translated template is kept at $translated" >&2
    exit 1
fi

if [[ -n "${2:-}" ]]; then
    cp "$translated" "$2"
fi
echo "lint: $template: template OK"
