#!/usr/bin/python3
"""train-cytology.py — train Eosin's reference cervical-cytology models.

Two small CNNs, each checked by group-wise cross-validation (a patient's or
an image's fields never sit on both sides of a split) and then trained on
everything and exported to ONNX with its model card's numbers as JSON:

  --task field   the LBC field/tile classifier: NL, LSIL, HSIL, SCC on
                 ../shared/data/cytology/lbc (707 fields of 43 groups),
                 3 folds stratified by class over `group`. The outer 15 %
                 of every field is cut away first: the abnormal fields are
                 rotated copies with streaked borders, the NL ones are not,
                 and a model would learn the border. Fields are taken at
                 0.7 µm/px (estimated; see models/cytology-field.md) and
                 shown to the network at 1.4 µm/px, 128 px = 179 µm, which
                 is the slide pipeline's tile.
  --task cell    the single-cell classifier: the 7 Herlev classes on
                 ../shared/data/cytology/herlev/train (716 cells), 5 folds
                 over the source image (cells cut from one image stay
                 together); 64 px input. Normal vs abnormal is the sum of
                 the four dysplasia/carcinoma classes.

    scripts/train/train-cytology.py --task field --out models/cytology-field.onnx
    scripts/train/train-cytology.py --task cell  --out models/cytology-cell.onnx

--folds-dir DIR also writes each fold's model (DIR/fold-K.onnx) and which
groups it held out (DIR/folds.json), so scripts/bench/bench-cytology can triage
mosaic slides of a group with a model that never saw that group.

Seeded, single-process; Debian's python3-torch, python3-pil, python3-numpy.
No downloads.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

# (v / 255 - MEAN) / STD, written into configs/cytology.ini
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)

FIELD_CLASSES = ["NL", "LSIL", "HSIL", "SCC"]
CELL_CLASSES = ["normal_superficiel", "normal_intermediate", "normal_columnar",
                "light_dysplastic", "moderate_dysplastic", "severe_dysplastic",
                "carcinoma_in_situ"]
CELL_ABNORMAL = [3, 4, 5, 6]

FIELD_MPP = 0.7    # assumed µm/px of the 512 x 512 LBC fields
FIELD_BORDER = 0.15
FIELD_SCALE = 2    # the network sees FIELD_MPP * FIELD_SCALE µm/px
FIELD_INPUT = 128
CELL_INPUT = 64


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CytoNet(nn.Module):
    """Four conv + pool stages (16-32-64-96), a 128-channel conv, global average
    pool, dropout, linear: about 66 MMAC at 128 px, 17 at 64 px."""

    def __init__(self, n_classes):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16), nn.MaxPool2d(2),
            conv_bn(16, 32), nn.MaxPool2d(2),
            conv_bn(32, 64), nn.MaxPool2d(2),
            conv_bn(64, 96), nn.MaxPool2d(2),
            conv_bn(96, 128),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(128, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


def load_fields(root):
    """LBC fields, border cut, at FIELD_MPP * FIELD_SCALE µm/px: uint8 NHWC,
    labels, groups, paths."""
    rows = [l.rstrip("\n").split(",") for l in open(os.path.join(root, "labels.csv"))][1:]
    rows.sort(key=lambda r: r[0])
    xs, ys, gs, ps = [], [], [], []
    for path, label, group, _ in rows:
        im = Image.open(os.path.join(root, path)).convert("RGB")
        w, h = im.size
        b = int(round(FIELD_BORDER * w))
        im = im.crop((b, b, w - b, h - b))
        side = int(round(im.size[0] / FIELD_SCALE))
        xs.append(np.asarray(im.resize((side, side), Image.BOX)))
        ys.append(FIELD_CLASSES.index(label))
        gs.append(group)
        ps.append(path)
    return np.stack(xs), np.array(ys), gs, ps


def load_cells(root):
    """Herlev cells at CELL_INPUT px: uint8 NHWC, labels, groups (source image), paths."""
    xs, ys, gs, ps = [], [], [], []
    for k, cls in enumerate(CELL_CLASSES):
        d = os.path.join(root, cls)
        for name in sorted(os.listdir(d)):
            im = Image.open(os.path.join(d, name)).convert("RGB")
            xs.append(np.asarray(im.resize((CELL_INPUT, CELL_INPUT), Image.BOX)))
            ys.append(k)
            # rotated_0_<image>-<cell>.jpg: cells of one image are one group
            stem = name.split("_", 2)[-1].rsplit("-", 1)[0]
            gs.append(stem)
            ps.append(os.path.join(cls, name))
    return np.stack(xs), np.array(ys), gs, ps


def group_folds(y, groups, k, seed):
    """Fold index per sample: whole groups to folds, class by class, largest
    group first to the fold holding the fewest samples of that class."""
    rng = np.random.default_rng(seed)
    fold_of_group = {}
    counts = np.zeros((k, y.max() + 1), int)
    for c in range(y.max() + 1):
        gsize = {}
        for yi, g in zip(y, groups):
            if yi == c:
                gsize[g] = gsize.get(g, 0) + 1
        order = sorted(gsize, key=lambda g: (-gsize[g], rng.random()))
        for g in order:
            f = int(np.argmin(counts[:, c] + rng.random(k) * 1e-3))
            fold_of_group[g] = f
            counts[f, c] += gsize[g]
    return np.array([fold_of_group[g] for g in groups])


def to_float(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0


def normalise(x):
    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - m) / s


def augment(x, gen):
    """Dihedral orientation, per-channel gain (Pap stains vary between labs),
    brightness and contrast; x float NCHW in [0,1]."""
    n = x.shape[0]
    t = torch.rand(n, generator=gen) < 0.5
    x = torch.where(t[:, None, None, None], x.transpose(2, 3), x)
    for dim in (2, 3):
        f = torch.rand(n, generator=gen) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(dim), x)
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.16
    bright = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.16
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.3
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x * gain - mean) * contrast + mean + bright).clamp(0, 1)


def random_crops(x, size, gen):
    """A random size x size window of each image (uint8 NHWC -> float NCHW)."""
    n, h, w, _ = x.shape
    out = np.empty((n, size, size, 3), np.uint8)
    oy = torch.randint(0, h - size + 1, (n,), generator=gen).numpy()
    ox = torch.randint(0, w - size + 1, (n,), generator=gen).numpy()
    for i in range(n):
        out[i] = x[i, oy[i]:oy[i] + size, ox[i]:ox[i] + size]
    return to_float(out)


def centre_crops(x, size):
    h, w = x.shape[1:3]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return to_float(np.ascontiguousarray(x[:, y0:y0 + size, x0:x0 + size]))


def train(x, y, n_classes, size, epochs, seed, log="", weighting="inverse"):
    """One model on x/y (class-weighted cross-entropy, AdamW one-cycle);
    @weighting: class weights by inverse frequency, or its square root
    (milder: fewer normal fields sacrificed to the rare classes)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CytoNet(n_classes)
    freq = np.bincount(y, minlength=n_classes).astype(float)
    w = freq.sum() / (n_classes * np.maximum(freq, 1))
    weight = torch.tensor(np.sqrt(w) if weighting == "sqrt" else w, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batch = 32
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    yt = torch.from_numpy(y)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=gen).numpy()
        total = 0.0
        for s in range(0, len(y), batch):
            idx = perm[s:s + batch]
            xb = random_crops(x[idx], size, gen) if x.shape[1] > size else to_float(x[idx])
            xb = normalise(augment(xb, gen))
            loss = F.cross_entropy(model(xb), yt[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"{log}epoch {ep + 1}/{epochs} loss {total / len(y):.4f}", file=sys.stderr)
    model.eval()
    return model


@torch.no_grad()
def predict(model, x, size):
    xb = centre_crops(x, size) if x.shape[1] > size else to_float(x)
    out = []
    for s in range(0, len(xb), 128):
        out.append(F.softmax(model(normalise(xb[s:s + 128])), dim=1))
    return torch.cat(out).numpy()


def metrics(y, p, names):
    pred = p.argmax(1)
    k = len(names)
    cm = np.zeros((k, k), int)
    for a, b in zip(y, pred):
        cm[a, b] += 1
    recall = {names[c]: float(cm[c, c] / max(cm[c].sum(), 1)) for c in range(k)}
    return {"balanced_accuracy": float(np.mean(list(recall.values()))),
            "accuracy": float((pred == y).mean()), "recall": recall,
            "confusion": cm.tolist()}


def export(model, size, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(model, dummy, path, opset_version=13, input_names=["image"],
                      output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["field", "cell"], required=True)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=0, help="default: 30 (field), 40 (cell)")
    ap.add_argument("--folds", type=int, default=0, help="default: 3 (field), 5 (cell)")
    ap.add_argument("--folds-dir", default=None)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--class-weight", choices=["inverse", "sqrt"], default="inverse")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "..")  # scripts/train/ -> the checkout
    shared = os.path.join(root, "..", "shared", "data", "cytology")
    t0 = time.time()
    if args.task == "field":
        data = args.data or os.path.join(shared, "lbc")
        x, y, groups, paths = load_fields(data)
        names, size = FIELD_CLASSES, FIELD_INPUT
        epochs, k = args.epochs or 30, args.folds or 3
    else:
        data = args.data or os.path.join(shared, "herlev", "train")
        x, y, groups, paths = load_cells(data)
        names, size = CELL_CLASSES, CELL_INPUT
        epochs, k = args.epochs or 40, args.folds or 5
    print(f"{args.task}: {len(y)} images, {len(set(groups))} groups, "
          f"{np.bincount(y).tolist()} per class", file=sys.stderr)
    fold = group_folds(y, groups, k, args.seed)
    oof = np.zeros((len(y), len(names)))
    per_fold = []
    for f in range(k):
        tr, te = fold != f, fold == f
        m = train(x[tr], y[tr], len(names), size, epochs, args.seed + f, f"fold {f + 1}/{k} ",
                  args.class_weight)
        oof[te] = predict(m, x[te], size)
        per_fold.append(metrics(y[te], oof[te], names)["balanced_accuracy"])
        if args.folds_dir:
            export(m, size, os.path.join(args.folds_dir, f"fold-{f}.onnx"))
    cv = metrics(y, oof, names)
    cv["per_fold_balanced_accuracy"] = per_fold
    if args.task == "cell":
        pa = oof[:, CELL_ABNORMAL].sum(1)
        ya = np.isin(y, CELL_ABNORMAL)
        pr = pa >= 0.5
        cv["binary"] = {"abnormal_recall": float(pr[ya].mean()),
                        "normal_recall": float((~pr[~ya]).mean()),
                        "balanced_accuracy": float((pr[ya].mean() + (~pr[~ya]).mean()) / 2)}
    if args.folds_dir:
        with open(os.path.join(args.folds_dir, "folds.json"), "w") as fh:
            json.dump({"classes": names, "fold_of_group": {g: int(fold[i]) for i, g in
                                                           enumerate(groups)}}, fh, indent=1)
    final = train(x, y, len(names), size, epochs, args.seed + 100, "final ", args.class_weight)
    export(final, size, args.out)
    card = {
        "model": os.path.basename(args.out), "task": args.task,
        "architecture": "CytoNet (scripts/train/train-cytology.py)",
        "data": os.path.relpath(os.path.abspath(data), root),
        "images": int(len(y)), "groups": len(set(groups)),
        "per_class": dict(zip(names, np.bincount(y, minlength=len(names)).tolist())),
        "input": [3, size, size], "channel_order": "rgb", "mean": MEAN, "std": STD,
        "classes": names, "activation": "softmax", "seed": args.seed, "epochs": epochs,
        "class_weight": args.class_weight,
        "folds": k, "cv": cv, "train_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__, "threads": args.threads,
    }
    if args.task == "field":
        card.update({"field_mpp_assumed": FIELD_MPP, "mpp": FIELD_MPP * FIELD_SCALE,
                     "border_cut": FIELD_BORDER})
    with open(os.path.splitext(args.out)[0] + ".json", "w") as fh:
        json.dump(card, fh, indent=1)
    print(json.dumps({"task": args.task, "cv_balanced_accuracy": cv["balanced_accuracy"],
                      "recall": cv["recall"], "binary": cv.get("binary"),
                      "seconds": card["train_seconds"]}))


if __name__ == "__main__":
    main()
