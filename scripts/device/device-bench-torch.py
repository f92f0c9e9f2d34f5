#!/usr/bin/env python3
"""device-bench-torch.py — the peers of Eosin's CUDA throughput in
scripts/device-check, on the same card in the same call.

    device-bench-torch.py export RESNET18.onnx   ResNet-18 (torchvision, random
                                                 weights, seed 0) for bench-inference
    device-bench-torch.py bench METASTASIS.onnx  one JSON line per engine, model,
                                                 batch (64, 256) and precision

ResNet-18 at 224x224: PyTorch eager and torch.compile, fp32 and fp16 (autocast
off: the model and input in half). The metastasis model: onnx2torch is not on
the GPU machine, so its peer is ONNX Runtime's CUDA execution provider on the
same .onnx (fp32; fp16 rows only where ORT runs a half copy: not done here).
images/s is batch * runs / time, after warm-up, synchronised, input on the GPU.
"""
import json
import sys
import time


def export(path):
    import torch
    import torchvision.models as tvm
    torch.manual_seed(0)
    m = tvm.resnet18().eval()
    x = torch.randn(1, 3, 224, 224)
    kw = dict(opset_version=13, input_names=["x"], output_names=["y"],
              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    try:
        torch.onnx.export(m, x, path, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(m, x, path, **kw)


def timed(fn, runs, sync):
    fn(); fn(); sync()
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    sync()
    return time.perf_counter() - t0


def bench(meta):
    import torch
    import torchvision.models as tvm
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []
    for prec in ("fp32", "fp16"):
        dt = torch.float32 if prec == "fp32" else torch.float16
        m = tvm.resnet18().eval().to(dev, dt)
        for mode in ("eager", "compile"):
            f = m if mode == "eager" else torch.compile(m)
            for batch in (64, 256):
                x = torch.randn(batch, 3, 224, 224, device=dev, dtype=dt)
                runs = 20
                try:
                    with torch.inference_mode():
                        s = timed(lambda: f(x), runs, torch.cuda.synchronize)
                    r = {"engine": "torch-" + mode, "model": "resnet18", "batch": batch,
                         "precision": prec, "images_per_s": round(batch * runs / s, 1)}
                except Exception as e:  # torch.compile may lack a compiler
                    r = {"engine": "torch-" + mode, "model": "resnet18", "batch": batch,
                         "precision": prec, "error": str(e)[:200]}
                print(json.dumps(r), flush=True)
    try:
        import numpy as np
        import onnxruntime as ort
        sess = ort.InferenceSession(meta, providers=["CUDAExecutionProvider"])
        name = sess.get_inputs()[0].name
        shape = sess.get_inputs()[0].shape
        hw = [d if isinstance(d, int) else 96 for d in shape[2:]]
        for batch in (64, 256):
            x = np.random.default_rng(1).standard_normal((batch, 3, *hw)).astype(np.float32)
            runs = 20
            s = timed(lambda: sess.run(None, {name: x}), runs, lambda: None)
            print(json.dumps({"engine": "ort-cuda", "model": "metastasis", "batch": batch,
                              "precision": "fp32", "providers": sess.get_providers(),
                              "images_per_s": round(batch * runs / s, 1)}), flush=True)
    except Exception as e:
        print(json.dumps({"engine": "ort-cuda", "model": "metastasis", "batch": 0,
                          "precision": "fp32", "error": str(e)[:200]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "export":
        export(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "bench":
        bench(sys.argv[2])
    else:
        sys.exit(__doc__)
