#!/usr/bin/python3
"""make-test-ops.py OUTDIR — one ONNX model per operator case, for the test
that runs every op alone on every backend against the plain-C reference
(as ggml's test-backend-ops does). Each model has one float input "x"
(batch 2) and the op's other operands as fixed random initializers; a few
cases are an op plus the activation or addition a backend fuses into it,
because fusion is where backends go wrong. ops.tsv lists the cases.
Built with Debian's python3-onnx; nothing is downloaded.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
cases = []


def t(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def i64(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.int64), name)


def f32(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.float32), name)


def case(name, nodes, inits, in_shape, out_shape, opset=13):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="eosin-make-test-ops")
    onnx.checker.check_model(m)
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    cases.append(name)


N, C, H = 2, 8, 12
X = (N, C, H, H)
node = helper.make_node

# convolutions, in the shapes networks use them
case("conv3x3", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
     [t("w", 16, C, 3, 3), t("b", 16)], X, (N, 16, H, H))
case("conv-stride2-asym-pad", [node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])],
     [t("w", 16, C, 3, 3)], X, (N, 16, 6, 6))
case("conv-grouped", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4)],
     [t("w", 8, 2, 3, 3), t("b", 8)], X, (N, 8, H, H))
case("conv-depthwise", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], group=C)],
     [t("w", C, 1, 5, 5), t("b", C)], X, (N, C, H, H))
case("conv-dilated", [node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2])],
     [t("w", 4, C, 3, 3)], X, (N, 4, H, H))
case("conv7x7-stride2", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3])],
     [t("w", 16, C, 7, 7, scale=0.1), t("b", 16)], X, (N, 16, 6, 6))
case("conv1x1", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1])], [t("w", 24, C, 1, 1), t("b", 24)], X,
     (N, 24, H, H))
case("conv-relu", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                   node("Relu", ["c"], ["y"])], [t("w", 16, C, 3, 3), t("b", 16)], X, (N, 16, H, H))
case("conv-clip6", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
                    node("Clip", ["c", "lo", "hi"], ["y"])],
     [t("w", 16, C, 1, 1, scale=3), t("b", 16), f32("lo", 0.0), f32("hi", 6.0)], X, (N, 16, H, H))
case("conv-add-residual", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                           node("Add", ["c", "x"], ["y"])], [t("w", C, C, 3, 3), t("b", C)], X, X)
case("conv-add-relu", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                       node("Add", ["x", "c"], ["a"]), node("Relu", ["a"], ["y"])],
     [t("w", C, C, 3, 3), t("b", C)], X, X)
case("conv-relu-add", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                       node("Relu", ["c"], ["r"]), node("Add", ["r", "x"], ["y"])],
     [t("w", C, C, 3, 3), t("b", C)], X, X)
# 3x3 convolutions wide enough for the CPU backend's Winograd F(4x4, 3x3):
# output sizes that leave partial tiles, a chunk's last rows, an 8-channel
# last panel, a residual sum after and before an activation, Clip, a folded
# asymmetric Pad, no bias, and weights large enough that all threads share
# each chunk
WX = (N, 64, 15, 13)
case("conv3x3-wide", [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
     [t("w", 72, 64, 3, 3, scale=0.1), t("b", 72)], WX, (N, 72, 15, 13))
case("conv3x3-wide-add-relu", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                               node("Add", ["x", "c"], ["a"]), node("Relu", ["a"], ["y"])],
     [t("w", 64, 64, 3, 3, scale=0.1), t("b", 64)], WX, WX)
case("conv3x3-wide-pad-clip", [node("Pad", ["x", "p"], ["q"], mode="constant"),
                               node("Conv", ["q", "w"], ["c"], kernel_shape=[3, 3]),
                               node("Clip", ["c", "lo", "hi"], ["y"])],
     [i64("p", [0, 0, 2, 1, 0, 0, 0, 1]), t("w", 64, 64, 3, 3, scale=0.1), f32("lo", 0.0), f32("hi", 1.0)],
     WX, (N, 64, 15, 13))
case("conv3x3-wide-relu-add", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                               node("Relu", ["c"], ["r"]), node("Add", ["r", "x"], ["y"])],
     [t("w", 64, 64, 3, 3, scale=0.1), t("b", 64)], WX, WX)
# 256 channels: 128 tiles in shared chunks of 108, the second ending in 2
# rows short of a register block
case("conv3x3-wide-shared", [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                             node("Relu", ["c"], ["y"])],
     [t("w", 256, 256, 3, 3, scale=0.03), t("b", 256)], (N, 256, 29, 29), (N, 256, 29, 29))
case("conv-transpose", [node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
     [t("w", C, 4, 2, 2), t("b", 4)], X, (N, 4, 2 * H, 2 * H))
case("conv-transpose-pad", [node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                 pads=[1, 1, 1, 1], output_padding=[1, 1])],
     [t("w", C, 4, 3, 3)], X, (N, 4, 2 * H, 2 * H))

# elementwise
case("relu", [node("Relu", ["x"], ["y"])], [], X, X)
case("clip", [node("Clip", ["x", "lo", "hi"], ["y"])], [f32("lo", -0.2), f32("hi", 0.3)], X, X)
case("sigmoid", [node("Sigmoid", ["x"], ["y"])], [], X, X)
case("hardsigmoid", [node("HardSigmoid", ["x"], ["y"], alpha=0.2, beta=0.5)], [], X, X)
case("hardswish", [node("HardSwish", ["x"], ["y"])], [], X, X, opset=14)
case("add-same", [node("Add", ["x", "x"], ["y"])], [], X, X)
case("add-const", [node("Add", ["x", "k"], ["y"])], [t("k", N, C, H, H)], X, X)
case("add-channel", [node("Add", ["x", "k"], ["y"])], [t("k", 1, C, 1, 1)], X, X)
case("mul-channel", [node("Mul", ["x", "k"], ["y"])], [t("k", 1, C, 1, 1)], X, X)
case("mul-scalar", [node("Mul", ["x", "k"], ["y"])], [f32("k", [1.7])], X, X)
case("mul-se", [node("GlobalAveragePool", ["x"], ["g"]), node("Sigmoid", ["g"], ["s"]),
                node("Mul", ["x", "s"], ["y"])], [], X, X)

# pooling
case("maxpool3x3-s2-p1", [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
     [], X, (N, C, 6, 6))
case("maxpool-ceil", [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
     [], (N, C, 12, 12), (N, C, 6, 6))
case("avgpool-pad-exclude", [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1],
                                  pads=[1, 1, 1, 1])], [], X, X)
case("avgpool-pad-include", [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1], count_include_pad=1)], [], X, (N, C, 6, 6))
case("avgpool2x2", [node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [], X, (N, C, 6, 6))
case("global-avgpool", [node("GlobalAveragePool", ["x"], ["y"])], [], X, (N, C, 1, 1))

# shape and the classifier head
case("concat", [node("Concat", ["x", "x2"], ["y"], axis=1), ], [t("x2", N, 4, H, H)], X, (N, C + 4, H, H))
case("concat-self", [node("Relu", ["x"], ["r"]), node("Concat", ["x", "r", "x"], ["y"], axis=1)], [], X,
     (N, 3 * C, H, H))
case("flatten", [node("Flatten", ["x"], ["y"], axis=1)], [], X, (N, C * H * H))
case("reshape", [node("Reshape", ["x", "s"], ["y"])], [i64("s", [N, -1])], X, (N, C * H * H))
# (Eosin's models take images, so 2-D operands come from a Flatten)
V = (N, 4, 4, 4)
flat = node("Flatten", ["x"], ["f"], axis=1)
case("gemm", [flat, node("Gemm", ["f", "w", "b"], ["y"], transB=1)], [t("w", 10, 64), t("b", 10)], V, (N, 10))
case("gemm-notrans-alpha", [flat, node("Gemm", ["f", "w", "b"], ["y"], alpha=0.5, beta=2.0)],
     [t("w", 64, 10), t("b", 10)], V, (N, 10))
case("matmul", [flat, node("MatMul", ["f", "w"], ["y"])], [t("w", 64, 10)], V, (N, 10))
case("softmax", [flat, node("Softmax", ["f"], ["y"], axis=1)], [], V, (N, 64))
case("softmax-channels", [node("Softmax", ["x"], ["y"], axis=1)], [], X, X)
case("resize-nearest", [node("Resize", ["x", "", "sc"], ["y"], mode="nearest")],
     [f32("sc", [1, 1, 2, 2])], X, (N, C, 2 * H, 2 * H))
case("resize-linear-half-pixel", [node("Resize", ["x", "", "sc"], ["y"], mode="linear")],
     [f32("sc", [1, 1, 2, 2])], X, (N, C, 2 * H, 2 * H))
case("resize-linear-align", [node("Resize", ["x", "", "sc"], ["y"], mode="linear",
                                  coordinate_transformation_mode="align_corners")],
     [f32("sc", [1, 1, 2, 2])], X, (N, C, 2 * H, 2 * H))
case("pad", [node("Pad", ["x", "p"], ["y"], mode="constant")], [i64("p", [0, 0, 1, 2, 0, 0, 3, 1])], X,
     (N, C, H + 4, H + 3))
case("identity-dropout", [node("Identity", ["x"], ["i"]), node("Dropout", ["i"], ["y"])], [], X, X)

with open(os.path.join(OUT, "ops.tsv"), "w") as f:
    for c in cases:
        f.write(c + "\n")
print(f"make-test-ops: {len(cases)} single-op models in {OUT}")
