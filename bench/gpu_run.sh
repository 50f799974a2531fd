#!/bin/bash
# The GPU throughput run (python -m bench throughput at full size, then bench step_overhead) on a
# machine whose Python lacks hydra-core, omegaconf, antlr4, pycocotools and faster-coco-eval: those
# come as cp312 wheels in .whl/ (pip download ... -d .whl). Results land in $OUT (default ./out).
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:$PWD:/tmp/site LITVISION_ROOT=$PWD PYTHONUNBUFFERED=1
export BENCH_THROUGHPUT_PARTIAL=$OUT/throughput_partial.json WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
python3 -c "import torch,torchvision,lightning,timm,torchmetrics;print(torch.__version__,torchvision.__version__,lightning.__version__,timm.__version__,torchmetrics.__version__, torch.cuda.get_device_name(0))" | tee -a $OUT/gpu.txt
timeout -s INT ${BENCH_LIMIT:-450} python3 -m bench throughput > $OUT/log.txt 2>&1; echo "bench rc=$?"
cp bench/results/throughput.json $OUT/ 2>/dev/null
timeout -s INT 60 python3 -m bench step_overhead > $OUT/overhead.txt 2>&1; echo "overhead rc=$?"
cp bench/results/step_overhead.json $OUT/ 2>/dev/null
grep "ms_per_step" $OUT/overhead.txt | tail -1
grep -v "^ \|^{\|^}\|^\[" $OUT/log.txt | grep -v "Warning\|warn(" | grep "variant\|model/batch\|/128/\|/512/\|/64/\|Error\|rror" | cut -c1-400 | tail -60
