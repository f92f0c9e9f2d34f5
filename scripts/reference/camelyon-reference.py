#!/usr/bin/python3
"""camelyon-reference.py OUTDIR — random CAMELYON16-style cases and their
scores computed independently of Eosin, the way the challenge's
Evaluation_FROC.py does (scipy's distance_transform_edt and
binary_fill_holes, scikit-image's label and regionprops, numpy.interp; this
is our own code following ../shared/notes/camelyon-evaluation.md, not the
challenge's). Each case OUTDIR/caseN/ has truth/<slide>_mask.png (level 5),
pred/<slide>.csv, pred/camelyon-slides.csv and expected.txt (FROC score and
slide AUC, repr precision); tests/test-eval.c runs `eosin_eval_camelyon16`
on each and must agree to 1e-9.
"""
import os
import sys

import numpy as np
from PIL import Image
from scipy import ndimage as nd
from skimage import measure

OUT = sys.argv[1]
L, RES = 5, 0.243


def eval_mask(m):
    d = nd.distance_transform_edt(255 - m)
    b = d < 75 / (RES * 2 ** L * 2)
    return measure.label(nd.binary_fill_holes(b), connectivity=2)


def itc_labels(lab):
    props = measure.regionprops(lab)
    return [i + 1 for i, p in enumerate(props) if p.major_axis_length < 275 / (RES * 2 ** L)]


def case(rng, k):
    d = os.path.join(OUT, f"case{k}")
    os.makedirs(os.path.join(d, "truth"), exist_ok=True)
    os.makedirs(os.path.join(d, "pred"), exist_ok=True)
    fp_all, tp_all, n_tum, names, labels, slide_p = [], [], 0, [], [], []
    for s in range(5):
        name = f"slide_{s}"
        tumour = s < 3
        h, w = 120, 160
        m = np.zeros((h, w), np.uint8)
        if tumour:
            for _ in range(rng.integers(2, 6)):
                r, c = rng.integers(5, h - 5), rng.integers(5, w - 5)
                rr, cc = rng.integers(1, 25, 2)
                m[max(r - rr, 0):r + rr, max(c - cc, 0):c + cc] = 255
            Image.fromarray(m).save(os.path.join(d, "truth", f"{name}_mask.png"))
        n_det = int(rng.integers(0, 12))
        # probabilities on a coarse grid so ties and float32 effects occur
        probs = np.round(rng.uniform(0, 1, n_det), 2)
        xs = rng.integers(0, w * 32, n_det)
        ys = rng.integers(0, h * 32, n_det)
        with open(os.path.join(d, "pred", f"{name}.csv"), "w") as f:
            for p, x, y in zip(probs, xs, ys):
                f.write(f"{p},{x},{y}\n")
        if tumour:
            lab = eval_mask(m)
            itc = itc_labels(lab)
            tp = np.zeros((lab.max(),), dtype=np.float32)
            for p, x, y in zip(probs, xs, ys):
                hit = lab[int(y / 32), int(x / 32)]
                if hit == 0:
                    fp_all.append(float(p))
                elif hit not in itc and p > tp[hit - 1]:
                    tp[hit - 1] = p
            tp_all.extend(tp.tolist())
            n_tum += lab.max() - len(itc)
        else:
            fp_all.extend(float(p) for p in probs)
        names.append(name)
        labels.append(tumour)
        slide_p.append(float(np.round(rng.uniform(0, 1), 1)))
    with open(os.path.join(d, "pred", "camelyon-slides.csv"), "w") as f:
        for n, p in zip(names, slide_p):
            f.write(f"{n},{p}\n")
    if n_tum == 0:
        return False
    # FROC as the challenge: thresholds = unique values but the smallest
    tp_all32 = np.asarray(tp_all, dtype=np.float32)
    allp = sorted(set(fp_all + list(tp_all32)))
    fps, tps = [], []
    for t in allp[1:]:
        fps.append((np.asarray(fp_all) >= t).sum())
        tps.append((tp_all32 >= t).sum())
    fps.append(0)
    tps.append(0)
    fps = np.asarray(fps) / 5.0
    sens = np.asarray(tps) / float(n_tum)
    score = float(np.mean(np.interp([.25, .5, 1, 2, 4, 8], fps[::-1], sens[::-1])))
    pos = [p for p, t in zip(slide_p, labels) if t]
    neg = [p for p, t in zip(slide_p, labels) if not t]
    auc = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))
    with open(os.path.join(d, "expected.txt"), "w") as f:
        f.write(f"{score!r} {auc!r}\n")
    return True


rng = np.random.default_rng(16)
made = 0
k = 0
while made < 8:
    made += case(rng, k)
    k += 1
with open(os.path.join(OUT, "cases.txt"), "w") as f:
    for i in range(k):
        if os.path.exists(os.path.join(OUT, f"case{i}", "expected.txt")):
            f.write(f"case{i}\n")
print(f"camelyon-reference: {made} random cases in {OUT}")
