#!/usr/bin/env python3
"""convert-metastasis-torch.py — the reference metastasis model for the
PyTorch peers of scripts/bench/bench-peers (WSInfer, TIAToolbox), from the ONNX
file Eosin runs, with proof that both compute the same thing.

    BUILD/bench-venv/bin/python scripts/train/convert-metastasis-torch.py \
        --onnx models/metastasis-pcam-small.onnx --card models/metastasis-pcam-small.json \
        --config configs/metastasis.ini --pcam ../shared/data/metastasis/pcam/valid \
        --out-dir BUILD/bench-peers/model

The model exists only as ONNX. scripts/train/train-metastasis.py defines its
architecture (PCamNet); torch.onnx.export folded each BatchNorm into the
convolution before it, so the graph is Conv(+bias) -> ReLU [-> MaxPool]
x 7, GlobalAveragePool, Flatten, Gemm. This script rebuilds that folded
network as a torch module, checks each ONNX node's kind and attributes
against it (a different graph is an error, not a silent mismatch), copies
the initializers in, and compares logits with ONNX Runtime on real PCam
validation patches (both classes); it fails (exit 1) when the largest
absolute difference exceeds --tolerance. Then it writes
  OUT/model.pt       TorchScript (torch.jit.script), reloaded and checked again
  OUT/config.json    WSInfer 0.6 model config: 96 px at the card's µm/px,
                     Resize + ToTensor + Normalize(mean, std) = Eosin's
                     (x/255 - mean) / std on RGB
  OUT/verify.json    what was compared and the differences
Preprocessing is read from the model card and checked equal to
configs/metastasis.ini [model] and [tiling], so every peer sees what Eosin
sees. Generated under BUILD; never committed.
"""
import argparse
import configparser
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from PIL import Image
from torch import nn

# PCamNet's convolutions (train-metastasis.py), in order, and whether a 2x2
# max-pool follows each one.
LAYERS = [(3, 16, True), (16, 32, True), (32, 64, False), (64, 64, True),
          (64, 128, False), (128, 128, True), (128, 256, False)]


class PCamNetFolded(nn.Module):
    """PCamNet with each BatchNorm folded into its convolution, as exported."""

    def __init__(self):
        super().__init__()
        mods = []
        for cin, cout, pool in LAYERS:
            mods += [nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
            if pool:
                mods.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*mods)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_onnx_weights(path, net):
    """Copy the ONNX initializers into @net after checking the graph is PCamNet's."""
    g = onnx.load(path).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    want = []
    for _, _, pool in LAYERS:
        want += ["Conv", "Relu"] + (["MaxPool"] if pool else [])
    want += ["GlobalAveragePool", "Flatten", "Gemm"]
    got = [n.op_type for n in g.node]
    if got != want:
        sys.exit(f"{path}: graph is {got}, expected PCamNet's {want}")
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    ci = 0
    for n in g.node:
        a = attrs(n)
        if n.op_type == "Conv":
            ok = (list(a.get("kernel_shape", [3, 3])) == [3, 3] and list(a.get("strides", [1, 1])) == [1, 1]
                  and list(a.get("pads", [0] * 4)) == [1] * 4 and list(a.get("dilations", [1, 1])) == [1, 1]
                  and a.get("group", 1) == 1 and len(n.input) == 3)
            if not ok:
                sys.exit(f"{path}: Conv {n.name} has {a}, expected 3x3 stride 1 pad 1 with bias")
            conv = convs[ci]
            ci += 1
            for param, name in ((conv.weight, n.input[1]), (conv.bias, n.input[2])):
                if tuple(init[name].shape) != tuple(param.shape):
                    sys.exit(f"{path}: {name} is {init[name].shape}, expected {tuple(param.shape)}")
                param.data.copy_(torch.from_numpy(init[name].copy()))
        elif n.op_type == "MaxPool":
            if list(a["kernel_shape"]) != [2, 2] or list(a.get("strides", [1, 1])) != [2, 2] or \
                    any(a.get("pads", [0] * 4)) or a.get("ceil_mode", 0):
                sys.exit(f"{path}: MaxPool {n.name} has {a}, expected 2x2 stride 2")
        elif n.op_type == "Gemm":
            if a.get("transB", 0) != 1 or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                sys.exit(f"{path}: Gemm has {a}, expected transB=1")
            net.fc.weight.data.copy_(torch.from_numpy(init[n.input[1]].copy()))
            net.fc.bias.data.copy_(torch.from_numpy(init[n.input[2]].copy()))
    return net


def preprocessing(card_path, ini_path):
    """Mean, std, µm/px, size and classes from the card, checked against the task config."""
    card = json.load(open(card_path))
    ini = configparser.ConfigParser(inline_comment_prefixes=("#",))
    ini.read(ini_path)
    floats = lambda s: [float(v) for v in s.split(",")]
    m, t = ini["model"], ini["tiling"]
    checks = {
        "mean": (floats(m["mean"]), card["mean"]),
        "std": (floats(m["std"]), card["std"]),
        "channel_order": (m["channel_order"].strip(), card["channel_order"]),
        "activation": (m["activation"].strip(), card["activation"]),
        "classes": ([c.strip() for c in m["classes"].split(",")], card["classes"]),
        "mpp": (float(t["mpp"]), card["mpp"]),
        "tile_size": (int(t["tile_size"]), card["input"][1]),
    }
    for key, (a, b) in checks.items():
        if a != b:
            sys.exit(f"{ini_path} and {card_path} disagree on {key}: {a} vs {b}")
    if checks["channel_order"][0] != "rgb" or checks["activation"][0] != "softmax":
        sys.exit(f"{ini_path}: expected rgb input and softmax (the peers assume both)")
    if int(t["overlap"]) != 0:
        sys.exit(f"{ini_path}: overlap = {t['overlap']}; the peers tile side by side")
    return card


def pcam_batch(root, per_class):
    """The first @per_class patches of each class (sorted names), uint8 NHWC."""
    images = []
    for label in ("0", "1"):
        d = os.path.join(root, label)
        names = sorted(n for n in os.listdir(d) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        for n in names[:per_class]:
            with Image.open(os.path.join(d, n)) as im:
                images.append(np.asarray(im.convert("RGB")))
    return np.stack(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", default="models/metastasis-pcam-small.onnx")
    ap.add_argument("--card", default="models/metastasis-pcam-small.json")
    ap.add_argument("--config", default="configs/metastasis.ini")
    ap.add_argument("--pcam", default="../shared/data/metastasis/pcam/valid")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()

    card = preprocessing(a.card, a.config)
    torch.set_num_threads(2)
    net = load_onnx_weights(a.onnx, PCamNetFolded()).eval()
    u8 = pcam_batch(a.pcam, a.per_class)
    mean = np.array(card["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(card["std"], np.float32).reshape(1, 3, 1, 1)
    x = ((u8.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std).astype(np.float32)

    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    os.makedirs(a.out_dir, exist_ok=True)
    scripted = torch.jit.script(net)
    path = os.path.join(a.out_dir, "model.pt")
    scripted.save(path + ".tmp")
    os.replace(path + ".tmp", path)
    reloaded = torch.jit.load(path).eval()
    with torch.no_grad():
        outs = {"eager": net(torch.from_numpy(x)).numpy(),
                "torchscript": reloaded(torch.from_numpy(x)).numpy()}
    ref_p = np.exp(ref - ref.max(1, keepdims=True))
    ref_p = ref_p[:, 1] / ref_p.sum(1)
    report = {"patches": len(x), "onnxruntime": ort.__version__, "torch": torch.__version__,
              "tolerance": a.tolerance}
    ok = True
    for name, out in outs.items():
        d = float(np.abs(out - ref).max())
        p = torch.softmax(torch.from_numpy(out), 1)[:, 1].numpy()
        dp = float(np.abs(p - ref_p).max())
        same = int(((p >= 0.5) == (ref_p >= 0.5)).sum())
        report[name] = {"max_abs_logit_diff": d, "max_abs_prob_diff": dp, "same_call": same}
        print(f"{name} vs onnxruntime on {len(x)} PCam patches: max |logit diff| {d:.3g}, "
              f"max |p diff| {dp:.3g}, same call {same}/{len(x)}")
        ok &= d <= a.tolerance
    if not ok:
        os.remove(path)
        sys.exit(f"torch and onnxruntime differ by more than {a.tolerance}: {a.onnx} not converted")

    # WSInfer 0.6's model config (wsinfer_zoo's schema); the transform is
    # applied to the RGB PIL patch it read: Resize to 96 px, ToTensor (x/255),
    # Normalize — what Eosin does to a tile.
    config = {
        "spec_version": "1.0",
        "architecture": "PCamNet (scripts/train/train-metastasis.py), BatchNorm folded",
        "num_classes": len(card["classes"]),
        "class_names": card["classes"],
        "patch_size_pixels": card["input"][1],
        "spacing_um_px": card["mpp"],
        "transform": [
            {"name": "Resize", "arguments": {"size": card["input"][1]}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": card["mean"], "std": card["std"]}},
        ],
    }
    for name, obj in (("config.json", config), ("verify.json", report)):
        with open(os.path.join(a.out_dir, name), "w") as f:
            json.dump(obj, f, indent=2)
    print(f"wrote {path} and {a.out_dir}/config.json")


if __name__ == "__main__":
    main()
