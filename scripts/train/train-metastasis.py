#!/usr/bin/python3
"""train-metastasis.py — train Eosin's reference metastasis patch classifier.

Trains a small CNN on PatchCamelyon patches (96x96 RGB at ~0.97 µm/px, label
1 = tumour in the centre 32x32), selects the epoch with the best validation
AUC, exports it to ONNX (batch axis dynamic) and writes the model card's
numbers as JSON. Seeded and single-process so that one command reproduces the
card on 2 CPU cores in well under an hour:

    scripts/train/train-metastasis.py --data ../shared/data/metastasis/pcam \
        --out models/metastasis-pcam-small.onnx

Augmentation follows what makes patch classifiers survive other labs' slides:
the eight dihedral orientations (tissue has no "up"), stain jitter in
haematoxylin-eosin-DAB optical-density space (Tellez et al. 2019: scale and
shift each stain's concentration) and brightness/contrast jitter.

Uses Debian's python3-torch, python3-torchvision (not needed), python3-pil and
python3-numpy. No downloads.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
import torch.nn.functional as F

# one AUC for training and for checking `eosin predict`: scripts/reference/pcam_auc.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from pcam_auc import auc  # noqa: E402

# Normalisation written into configs/metastasis.ini: (x/255 - MEAN) / STD.
MEAN = (0.70, 0.54, 0.70)
STD = (0.20, 0.25, 0.20)

# Ruifrok-Johnston H&E-DAB stain matrix (rows: stain OD vectors, as skimage's
# rgb_from_hed), used to jitter each stain's concentration.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


def load_split(root):
    """All patches of root/{0,1}/*.jpg, in sorted order, as uint8 NHWC + labels."""
    images, labels = [], []
    for label in (0, 1):
        d = os.path.join(root, str(label))
        names = sorted(n for n in os.listdir(d) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        for n in names:
            with Image.open(os.path.join(d, n)) as im:
                a = np.asarray(im.convert("RGB"))
            if a.shape != (96, 96, 3):
                sys.exit(f"{d}/{n}: expected 96x96 RGB, got {a.shape}")
            images.append(a)
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class PCamNet(nn.Module):
    """VGG-style: 96 -> 48 -> 24 -> 12 -> 6, then global average pool.
    ~0.09 GMAC per patch: it trains on 2 CPU cores in well under an hour and
    a 20k x 20k 40x slide stays a few minutes on a CPU."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16), nn.MaxPool2d(2),
            conv_bn(16, 32), nn.MaxPool2d(2),
            conv_bn(32, 64), conv_bn(64, 64), nn.MaxPool2d(2),
            conv_bn(64, 128), conv_bn(128, 128), nn.MaxPool2d(2),
            conv_bn(128, 256),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(256, 2))

    def forward(self, x):
        return self.head(self.features(x))


def augment(x, gen):
    """x: float NCHW in [0,1]. Random dihedral orientation, HED stain jitter,
    brightness/contrast; per sample, driven by @gen for reproducibility."""
    n = x.shape[0]
    # orientation: transpose half, then flip H and W independently = 8 cases
    t = torch.rand(n, generator=gen) < 0.5
    x = torch.where(t[:, None, None, None], x.transpose(2, 3), x)
    fh = torch.rand(n, generator=gen) < 0.5
    x = torch.where(fh[:, None, None, None], x.flip(2), x)
    fw = torch.rand(n, generator=gen) < 0.5
    x = torch.where(fw[:, None, None, None], x.flip(3), x)
    # stain: OD -> HED concentrations, c' = c * a + b, back to RGB
    od = -torch.log(x.clamp(min=1.0 / 255))
    hed = torch.einsum("nchw,cd->ndhw", od, HED_FROM_RGB)
    a = 1 + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.10
    b = (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.10
    hed = hed * a + b
    od = torch.einsum("ndhw,dc->nchw", hed, RGB_FROM_HED)
    x = torch.exp(-od)
    # brightness / contrast
    br = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    ct = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.3
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - m) * ct + m + br
    return x.clamp(0, 1)


def normalise(x):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_float(batch_u8):
    return torch.from_numpy(batch_u8).permute(0, 3, 1, 2).float() / 255.0


def evaluate(model, images, labels, batch=256):
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = normalise(to_float(images[i:i + batch]))
            probs.append(torch.softmax(model(x), dim=1)[:, 1].numpy())
    p = np.concatenate(probs)
    return auc(labels, p), float(((p >= 0.5) == (labels == 1)).mean()), p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/metastasis/pcam")
    ap.add_argument("--out", default="models/metastasis-pcam-small.onnx")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only N training patches (smoke test)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    xtr, ytr = load_split(os.path.join(args.data, "train"))
    xva, yva = load_split(os.path.join(args.data, "valid"))
    if args.limit:
        keep = rng.permutation(len(xtr))[:args.limit]
        xtr, ytr = xtr[keep], ytr[keep]
    print(f"loaded {len(xtr)} train, {len(xva)} valid patches in {time.time() - t0:.0f} s", flush=True)

    model = PCamNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(xtr) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    best = (-1.0, 0, 0.0, None)
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t1 = time.time()
        perm = rng.permutation(len(xtr))
        total, seen = 0.0, 0
        for i in range(0, len(perm) - args.batch + 1, args.batch):
            idx = np.sort(perm[i:i + args.batch])
            x = normalise(augment(to_float(xtr[idx]), gen))
            y = torch.from_numpy(ytr[idx])
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        va_auc, va_acc, _ = evaluate(model, xva, yva)
        history.append({"epoch": epoch, "train_loss": total / seen, "valid_auc": va_auc,
                        "valid_accuracy": va_acc, "seconds": time.time() - t1})
        print(f"epoch {epoch}: loss {total / seen:.4f}  valid AUC {va_auc:.4f}  acc {va_acc:.4f}"
              f"  ({time.time() - t1:.0f} s)", flush=True)
        if va_auc > best[0]:
            best = (va_auc, epoch, va_acc, {k: v.clone() for k, v in model.state_dict().items()})

    model.load_state_dict(best[3])
    model.eval()
    va_auc, va_acc, _ = evaluate(model, xva, yva)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.onnx.export(model, normalise(to_float(xva[:2])), args.out, opset_version=13,
                      input_names=["patch"], output_names=["logits"],
                      dynamic_axes={"patch": {0: "N"}, "logits": {0: "N"}})
    card = {
        "model": os.path.basename(args.out), "architecture": "PCamNet (scripts/train/train-metastasis.py)",
        "data": "PatchCamelyon train (20,000) / valid (3,000) subsets in ../shared/data/metastasis/pcam, CC0",
        "input": [3, 96, 96], "mpp": 0.97, "channel_order": "rgb", "mean": MEAN, "std": STD,
        "classes": ["normal", "tumor"], "activation": "softmax",
        "seed": args.seed, "epochs": args.epochs, "selected_epoch": best[1],
        "valid_auc": va_auc, "valid_accuracy": va_acc, "history": history,
        "train_seconds": time.time() - t0, "torch": torch.__version__, "threads": args.threads,
    }
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(card, f, indent=2)
    print(f"selected epoch {best[1]}: valid AUC {va_auc:.4f}, accuracy {va_acc:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
