#!/usr/bin/env bash
# The GPU check for the trainer, as one short script for a lent GPU machine (not run by CI):
# all-mpnet-base-v2 from the PyPI parts, batch 4096 with gradient caching, bf16, a few hundred steps on the
# ESCO-derived pairs, then the dev ranking before/after, peak GPU memory and step time, as JSON in $OUT.
# Usage: OUT=/tmp/out bash benchmarks/gpu_train_check.sh [MAX_STEPS]
set -euo pipefail
steps="${1:-60}"
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
python -m pip install -q -e ".[train]"           # the machine's CUDA torch is used as it is
bash benchmarks/get_mpnet.sh /tmp/models >/dev/null
home="$(mktemp -d)"
dev=../shared/data/bench/skillextract_house_validation.jsonl
python - "$steps" "$home" "$dev" "$out" <<'PY'
import json, sys, time, torch
from jobskills.config import load_settings
from trainer.train import TrainConfig, train
steps, home, dev, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
settings = load_settings({"home": home}, env={})
torch.cuda.reset_peak_memory_stats()
t = time.time()
rep = train(settings, TrainConfig(base="/tmp/models/all-mpnet-base-v2", out=f"{home}/mpnet-context", batch_size=4096,
                                  mini_batch_size=256, max_steps=steps, eval_steps=max(1, steps // 3), dev=dev,
                                  device="cuda", reindex=False))
res = {"steps": rep.steps, "seconds": rep.seconds, "s_per_step": rep.seconds / max(1, rep.steps),
       "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30, "precision": rep.precision,
       "before": rep.before, "after": rep.after, "device": torch.cuda.get_device_name(0), "wall": time.time() - t}
json.dump(res, open(f"{out}/gpu_train_check.json", "w"), indent=2)
print(json.dumps(res, indent=2))
PY
