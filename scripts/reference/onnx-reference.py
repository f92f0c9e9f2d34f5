#!/usr/bin/env python3
"""onnx-reference.py DIR — reference outputs of the test models in DIR from
ONNX Runtime (PyPI onnxruntime, installed by scripts/setup/install), the independent
implementation Eosin's backends are checked against.

For each MODEL.onnx writes MODEL.in.f32 (a fixed random batch of 3, NCHW
float32, little-endian) and MODEL.out.f32 (ONNX Runtime's first output for it).
"""
import glob
import os
import sys

import numpy as np
import onnxruntime as ort

BATCH = 3


def main():
    d = sys.argv[1]
    opts = ort.SessionOptions()
    # no graph rewrites: the reference is the model as written
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for path in sorted(glob.glob(os.path.join(d, "tiny-*.onnx"))):
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        shape = [BATCH] + [int(v) for v in inp.shape[1:]]
        x = np.random.default_rng(42).standard_normal(shape).astype(np.float32)
        y = s.run(None, {inp.name: x})[0].astype(np.float32)
        stem = path[:-len(".onnx")]
        x.tofile(stem + ".in.f32")
        y.tofile(stem + ".out.f32")


if __name__ == "__main__":
    main()
