#!/usr/bin/env python3
"""bench-inference-peers.py MODEL.onnx BATCH RUNS ort|torch|export — the peers of
bench-inference on the same model, batch and thread count: ONNX Runtime
(PyPI onnxruntime, the python3 on PATH) and PyTorch eager (Debian's
python3-torch, run with /usr/bin/python3). `export` writes ResNet-18
(torchvision, random weights, 1000 classes) at 224x224 to MODEL.onnx.
Each prints one JSON line; for ONNX Runtime with the ISA its MLAS kernels
dispatch to: AVX-512F where the CPU has it, AVX2 when bench-inference runs
it under its CPUID shim (which hides AVX-512 from cpuid, so MLAS takes its
AVX2 kernels as on a CPU without it)."""
import ctypes
import json
import os
import resource
import sys
import time

path, batch, runs, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
threads = os.cpu_count()

if mode == "export":
    import torch
    import torchvision.models as tvm
    torch.manual_seed(0)
    m = tvm.resnet18().eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(m, x, path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    sys.exit(0)


def mlas_isa():
    """The ISA MLAS picks: it reads cpuid itself (no switch caps it), so
    AVX2 only under the shim, else what the CPU has."""
    try:
        if ctypes.c_int.in_dll(ctypes.CDLL(None), "bench_cpuid_masked").value:
            return "avx2"
    except ValueError:
        pass
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags and "fma" in flags else "avx"


if mode == "ort":
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
    run = lambda: s.run(None, {"x": x})
    engine = f"onnxruntime-{ort.__version__}"
    isa = mlas_isa()
else:
    import torch
    import torchvision.models as tvm
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = tvm.resnet18().eval()
    x = torch.rand(batch, 3, 224, 224) * 2 - 1

    def run():
        with torch.no_grad():
            return model(x)
    engine = f"pytorch-{torch.__version__}-eager"
    isa = "native"

run()  # warm-up
t0 = time.monotonic()
for _ in range(runs):
    run()
sec = time.monotonic() - t0
print(json.dumps({"engine": engine, "isa": isa, "batch": batch, "runs": runs,
                  "images_per_s": round(batch * runs / sec, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
