#!/usr/bin/python3
"""make-test-cnn.py OUTDIR — models whose answers the tests can compute by
hand, for the cnn analyzer and `eosin predict` (Debian's python3-onnx and
python3-pil; nothing downloaded):

  colour-classifier.onnx  N x 3 x 64 x 64 -> GlobalAveragePool -> Flatten ->
                          Gemm (2 x identity; BGR in, so classes blue/green/red) -> logits
                          p = softmax(2 * mean of the normalised channels)
  inf-classifier.onnx, nan-classifier.onnx
                          finite weights whose products overflow: logits of
                          +-infinity / NaN (inf + -inf) at run time
  colour-segmenter.onnx   N x 3 x 64 x 64 -> 1x1 Conv (3 -> 2: "dark" = bias
                          minus the sum of channels, "light" = 0) ->
                          AveragePool 2x2 -> N x 2 x 32 x 32 logits
  patches/                PNG and JPEG patches in nested folders (64 x 64, and
                          a few 80 x 80 that predict must resize), with
                          patches-ref.csv: the classifier's probabilities for
                          the 64 x 64 ones, computed here in float64 with the
                          preprocessing of tests/test-cnn.c (mean, std, BGR).
  bad-patches/            one good patch and one file that is not an image.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(11)
S = 64
# the preprocessing the tests configure: [model] mean/std/channel_order = bgr
MEAN = np.array([0.3, 0.4, 0.5])   # in the network's (BGR) order
STD = np.array([0.5, 0.4, 0.6])


def save(graph, name):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="eosin-make-test-cnn")
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, name))


def arr(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, S, S])
save(helper.make_graph(
    [helper.make_node("GlobalAveragePool", ["image"], ["g"]),
     helper.make_node("Flatten", ["g"], ["f"]),
     helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1)],
    "colour-classifier", [x], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
    [arr("w", 2 * np.eye(3)), arr("b", np.zeros(3))]), "colour-classifier.onnx")

# The classifier with finite weights that overflow at run time
# (tests/test-reliability.c): the channel means times 1e30 twice are
# +-infinity; inf-classifier's logits are those, nan-classifier's are
# inf + -inf = NaN. Eosin must refuse such outputs, never score them.
big = [helper.make_node("GlobalAveragePool", ["image"], ["g"]),
       helper.make_node("Flatten", ["g"], ["f"]),
       helper.make_node("Mul", ["f", "k"], ["f1"]),
       helper.make_node("Mul", ["f1", "k"], ["f2"])]
for name, tail in [("inf-classifier", [helper.make_node("Gemm", ["f2", "w", "b"], ["logits"], transB=1)]),
                   ("nan-classifier", [helper.make_node("Mul", ["f2", "m1"], ["neg"]),
                                       helper.make_node("Add", ["f2", "neg"], ["nan"]),
                                       helper.make_node("Gemm", ["nan", "w", "b"], ["logits"], transB=1)])]:
    save(helper.make_graph(
        big + tail, name, [x], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [arr("k", [1e30]), arr("m1", [-1.0]), arr("w", np.eye(3)), arr("b", np.zeros(3))]),
        name + ".onnx")

w = np.zeros((2, 3, 1, 1))
w[0, :, 0, 0] = -1.0
save(helper.make_graph(
    [helper.make_node("Conv", ["image", "w", "b"], ["c"], kernel_shape=[1, 1]),
     helper.make_node("AveragePool", ["c"], ["maps"], kernel_shape=[2, 2], strides=[2, 2])],
    "colour-segmenter", [x], [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["N", 2, 32, 32])],
    [arr("w", w), arr("b", [0.5, 0.0])]), "colour-segmenter.onnx")


def classify(rgb):
    """The classifier in float64 on one H x W x 3 uint8 patch."""
    v = rgb.astype(np.float64) / 255.0
    bgr = v[..., ::-1]
    z = 2 * ((bgr - MEAN) / STD).mean(axis=(0, 1))
    e = np.exp(z - z.max())
    return e / e.sum()


rows = []
for i in range(24):
    sub = ["tumour", "normal", os.path.join("normal", "deeper")][i % 3]
    os.makedirs(os.path.join(OUT, "patches", sub), exist_ok=True)
    base = rng.integers(0, 256, 3)
    img = np.clip(base + rng.normal(0, 40, (S, S, 3)), 0, 255).astype(np.uint8)
    rel = os.path.join(sub, f"p{i:02d}.png")
    Image.fromarray(img).save(os.path.join(OUT, "patches", rel))
    rows.append((rel, classify(img)))
for i in range(3):
    img = rng.integers(0, 256, (80, 80, 3)).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(OUT, "patches", f"big{i}.jpg"), quality=90)
with open(os.path.join(OUT, "patches-ref.csv"), "w") as f:
    f.write("path,blue,green,red\n")  # the network works in BGR
    for rel, p in sorted(rows):
        f.write(rel + "," + ",".join(f"{v:.9f}" for v in p) + "\n")

os.makedirs(os.path.join(OUT, "bad-patches"), exist_ok=True)
Image.fromarray(rng.integers(0, 256, (S, S, 3)).astype(np.uint8)).save(os.path.join(OUT, "bad-patches", "good.png"))
with open(os.path.join(OUT, "bad-patches", "broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n this is not really a png")
print(f"make-test-cnn: models and {len(rows) + 3} patches in {OUT}")
