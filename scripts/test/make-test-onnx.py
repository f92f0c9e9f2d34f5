#!/usr/bin/python3
"""make-test-onnx.py OUTDIR — small ONNX models for the loader tests, built
node by node with Debian's python3-onnx (no downloads, fixed random weights):

  tiny-cnn.onnx    Conv+BN+Relu, MaxPool, grouped Conv+BN+Clip, residual Add,
                   1x1 Conv, GlobalAveragePool, Flatten, Gemm, Softmax
                   (N x 3 x 32 x 32 -> N x 2; the batch axis is symbolic)
  tiny-unet.onnx   encoder/decoder: Conv, MaxPool, ConvTranspose, Concat,
                   Pad, Resize, HardSwish, HardSigmoid, Mul, Sigmoid,
                   Reshape, Identity, Dropout, Constant (-> N x 1 x 32 x 32)
  tiny-softmax-*  Softmax with its default axis at opset 11 (the input
                   coerced to 2-D at axis 1) and 13 (the last axis alone)
  tiny-resize-*   Resize by non-integer scales (1.5, 0.7) in every mode and
                   coordinate_transformation_mode Eosin supports, and by sizes
(their ONNX Runtime outputs are scripts/reference/onnx-reference.py's; ort-ops.tsv lists
them for the test that runs them on every backend) and one broken model per
failure the loader must name (bad-*.onnx), listed with the words its error
must contain in bad-models.tsv.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def w(name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)


def pos(name, n):
    return numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), name)


def i64(name, vals):
    return numpy_helper.from_array(np.array(vals, dtype=np.int64), name)


def model(nodes, inits, out_shape, opset=13, in_shape=("N", 3, 32, 32), in_type=TensorProto.FLOAT,
          out_name="y"):
    g = helper.make_graph(
        nodes, "eosin-test",
        [helper.make_tensor_value_info("x", in_type, list(in_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                             producer_name="eosin-make-test-onnx")


def bn(prefix, c):
    return [pos(prefix + "_s", c), w(prefix + "_b", c), w(prefix + "_m", c), pos(prefix + "_v", c)]


def tiny_cnn(opset=13):
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["b1"], epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2_w"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("BatchNormalization", ["c2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["b2"]),
        helper.make_node("Clip", ["b2", "zero", "six"], ["r2"]),
        helper.make_node("Add", ["r2", "p1"], ["a2"]),
        helper.make_node("Conv", ["a2", "c3_w", "c3_b"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    inits = [w("c1_w", 8, 3, 3, 3), w("c1_b", 8), *bn("bn1", 8), w("c2_w", 8, 4, 3, 3), *bn("bn2", 8),
             numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array(6, np.float32), "six"),
             w("c3_w", 16, 8, 1, 1), w("c3_b", 16), w("fc_w", 2, 16), w("fc_b", 2)]
    return model(nodes, inits, ["N", 2], opset=opset), nodes, inits


def tiny_unet():
    nodes = [
        helper.make_node("Conv", ["x", "e1_w", "e1_b"], ["e1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["e1"], ["e1a"]),
        helper.make_node("MaxPool", ["e1a"], ["d1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["d1", "e2_w"], ["e2"], kernel_shape=[3, 3]),
        helper.make_node("Pad", ["e2", "pads"], ["e2p"], mode="constant"),
        helper.make_node("ConvTranspose", ["e2p", "u1_w", "u1_b"], ["u1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["u1", "e1a"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "o_w"], ["o"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("HardSigmoid", ["o"], ["gate"]),
        helper.make_node("Mul", ["o", "gate"], ["og"]),
        helper.make_node("MaxPool", ["og"], ["small"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["small", "", "scales"], ["big"], mode="nearest"),
        helper.make_node("Dropout", ["big"], ["dr"]),
        helper.make_node("Identity", ["dr"], ["id"]),
        helper.make_node("Constant", [], ["shape"], value=i64("shape_v", [0, 1, 32, 32])),
        helper.make_node("Reshape", ["id", "shape"], ["rs"]),
        helper.make_node("Sigmoid", ["rs"], ["y"]),
    ]
    inits = [w("e1_w", 4, 3, 3, 3), w("e1_b", 4), w("e2_w", 8, 4, 3, 3), i64("pads", [0, 0, 1, 1, 0, 0, 1, 1]),
             w("u1_w", 8, 4, 2, 2), w("u1_b", 4), w("o_w", 1, 8, 3, 3),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return model(nodes, inits, ["N", 1, 32, 32], opset=14)


def ort_ops(out):
    """Single-op models whose answers come from ONNX Runtime, not from
    Eosin's reference: where the reference itself was wrong (issue 16)."""
    names = []

    def op(name, nodes, inits, in_shape, out_shape, opset):
        save(model(nodes, inits, out_shape, opset=opset, in_shape=in_shape), out, name + ".onnx")
        names.append(name)

    f32 = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)
    sm = ("N", 3, 4, 5)
    # opset <= 12: default axis 1, softmax over C*H*W together
    op("tiny-softmax-opset11", [helper.make_node("Softmax", ["x"], ["y"])], [], sm, list(sm), 11)
    # ... and an explicit axis: over H*W together
    op("tiny-softmax-opset11-axis2", [helper.make_node("Softmax", ["x"], ["y"], axis=2)], [], sm, list(sm), 11)
    # opset 13: default axis -1, over W alone
    op("tiny-softmax-opset13", [helper.make_node("Softmax", ["x"], ["y"])], [], sm, list(sm), 13)
    # 7x9 by 1.5 x 0.7 -> 10x6: floor(in * scale), mapped back by 1/scale
    # (not by in/out: 7/10 and 9/6 differ from 1/1.5 and 1/0.7)
    rs = ("N", 2, 7, 9)
    scales = f32("sc", [1, 1, 1.5, 0.7])
    ro = ["N", 2, 10, 6]
    for mode, coord, nearest in [("linear", "half_pixel", None), ("linear", "asymmetric", None),
                                 ("linear", "pytorch_half_pixel", None), ("linear", "align_corners", None),
                                 ("nearest", "half_pixel", "round_prefer_floor"),
                                 ("nearest", "asymmetric", "floor"),
                                 ("nearest", "half_pixel", "round_prefer_ceil"),
                                 ("nearest", "pytorch_half_pixel", "ceil"),
                                 ("nearest", "align_corners", "round_prefer_floor")]:
        kw = {"nearest_mode": nearest} if nearest else {}
        op(f"tiny-resize-{mode}-{coord}" + (f"-{nearest}" if nearest else ""),
           [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode=mode,
                             coordinate_transformation_mode=coord, **kw)], [scales], rs, ro, 13)
    # opset 11, where roi is a required (empty) input
    op("tiny-resize-linear-asymmetric-opset11",
       [helper.make_node("Resize", ["x", "roi", "sc"], ["y"], mode="linear",
                         coordinate_transformation_mode="asymmetric")],
       [f32("roi", []), scales], rs, ro, 11)
    # 10 x 0.7f is 7 in float (ONNX Runtime's size), 6.99999988 in double
    op("tiny-resize-size-in-float", [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear")],
       [scales], ("N", 2, 7, 10), ["N", 2, 10, 7], 13)
    # sizes instead of scales: the scale is then out/in (batch 3, as ONNX
    # Runtime is run)
    op("tiny-resize-sizes-linear-half-pixel",
       [helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear")],
       [i64("sz", [3, 2, 11, 6])], rs, [3, 2, 11, 6], 13)
    with open(os.path.join(out, "ort-ops.tsv"), "w") as f:
        for n in names:
            f.write(n + "\n")


def save(m, out, name, check=True):
    if check:
        onnx.checker.check_model(m)
        # ONNX's own shape inference, as the reference for Eosin's:
        # name <TAB> dims, "N" for the batch axis, "?" where ONNX gives up
        inferred = onnx.shape_inference.infer_shapes(m)
        with open(os.path.join(out, name.replace(".onnx", ".shapes.tsv")), "w") as f:
            for v in list(inferred.graph.value_info) + list(inferred.graph.output):
                dims = [str(d.dim_value) if d.HasField("dim_value") else
                        ("N" if d.dim_param == "N" else "?") for d in v.type.tensor_type.shape.dim]
                f.write(v.name + "\t" + ",".join(dims) + "\n")
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cnn, nodes, inits = tiny_cnn()
    save(cnn, out, "tiny-cnn.onnx")
    save(tiny_unet(), out, "tiny-unet.onnx")
    ort_ops(out)

    bad = []  # (file, words the error must contain)
    data = cnn.SerializeToString()
    with open(os.path.join(out, "bad-truncated.onnx"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    bad.append(("bad-truncated.onnx", "corrupt or truncated"))
    with open(os.path.join(out, "bad-garbage.onnx"), "wb") as f:
        f.write(b"\xff\xfe this is not protobuf \x00\x01" * 10)
    bad.append(("bad-garbage.onnx", "corrupt or truncated"))

    save(tiny_cnn(opset=9)[0], out, "bad-opset.onnx", check=False)
    bad.append(("bad-opset.onnx", "opset 9 is not supported"))

    n2 = list(nodes)
    n2[2] = helper.make_node("Erf", ["b1"], ["r1"], name="erf_node")
    save(model(n2, inits, ["N", 2]), out, "bad-op.onnx", check=False)
    bad.append(("bad-op.onnx", "node erf_node: operator Erf is not supported"))

    save(model(nodes, [i for i in inits if i.name != "c2_w"], ["N", 2]), out, "bad-missing.onnx", check=False)
    bad.append(("bad-missing.onnx", "input 'c2_w' is produced by no node"))

    n3 = list(nodes)
    n3[3] = helper.make_node("MaxPool", ["a2"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="loop_pool")
    save(model(n3, inits, ["N", 2]), out, "bad-cycle.onnx", check=False)
    bad.append(("bad-cycle.onnx", "cycle"))

    i2 = [i for i in inits if i.name != "c1_w"] + [w("c1_w", 8, 5, 3, 3)]
    save(model(nodes, i2, ["N", 2]), out, "bad-dims.onnx", check=False)
    bad.append(("bad-dims.onnx", "do not fit 3 input channels"))

    huge = onnx.TensorProto(name="c1_w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20, 3, 3])
    i3 = [i for i in inits if i.name != "c1_w"] + [huge]
    save(model(nodes, i3, ["N", 2]), out, "bad-huge.onnx", check=False)
    bad.append(("bad-huge.onnx", "initializer 'c1_w': dimension"))

    short = onnx.TensorProto()
    short.CopyFrom(w("c1_w", 8, 3, 3, 3))
    short.raw_data = short.raw_data[:100]
    i4 = [i for i in inits if i.name != "c1_w"] + [short]
    save(model(nodes, i4, ["N", 2]), out, "bad-short-data.onnx", check=False)
    bad.append(("bad-short-data.onnx", "216 float values expected"))

    save(model(nodes, inits, ["N", 2], in_type=TensorProto.INT32), out, "bad-dtype.onnx", check=False)
    bad.append(("bad-dtype.onnx", "only float32"))

    save(model(nodes, inits, ["N", 2], in_shape=("N", 3, "H", "W")), out, "bad-dynamic.onnx", check=False)
    bad.append(("bad-dynamic.onnx", "dimension 2 ('H') cannot be resolved"))

    # Resize modes Eosin does not implement: refused, never approximated
    sc = numpy_helper.from_array(np.array([1, 1, 1.5, 1.5], np.float32), "sc")
    for name, kw, words in [
            ("bad-resize-cubic.onnx", {"mode": "cubic"}, "node up (Resize): mode cubic is not supported"),
            ("bad-resize-crop.onnx", {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
             "node up (Resize): coordinate_transformation_mode tf_crop_and_resize")]:
        save(model([helper.make_node("Resize", ["x", "", "sc"], ["y"], name="up", **kw)], [sc],
                   ["N", 3, 48, 48]), out, name, check=False)
        bad.append((name, words))

    with open(os.path.join(out, "bad-models.tsv"), "w") as f:
        for name, words in bad:
            f.write(f"{name}\t{words}\n")


if __name__ == "__main__":
    main()
