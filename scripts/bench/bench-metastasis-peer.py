#!/usr/bin/env python3
"""bench-metastasis-peer.py — the peer Eosin's metastasis pipeline is timed
against: the way WSInfer and TIAToolbox run a patch classifier over a slide,
in Python. OpenSlide (openslide-python) reads 96 px patches at 0.97 µm/px
side by side with the same tissue rule as configs/metastasis.ini, a reader
thread fills batches while ONNX Runtime (the python3 on PATH, PyPI
onnxruntime) runs the same ONNX model on the main thread, and the slide
probability is the highest tile probability averaged over 3 x 3 tiles — the
same scoring job, without the overlay TIFFs and lesion files Eosin also
writes. Prints one JSON line per slide.

    scripts/bench/bench-metastasis-peer.py models/metastasis-pcam-small.onnx SLIDE... \
        [--threads 2] [--batch 64]
"""
import argparse
import json
import math
import queue
import threading
import time

import numpy as np
import onnxruntime as ort
import openslide

TILE, STRIDE, MPP = 96, 96, 0.97
MEAN = np.array([0.70, 0.54, 0.70], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.20, 0.25, 0.20], np.float32).reshape(1, 3, 1, 1)


def otsu(values):
    hist, edges = np.histogram(values, bins=256, range=(0, 1))
    p = hist / max(1, hist.sum())
    w = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1 - w), 1e-12)
    return edges[np.argmax(between) + 1]


def tissue_mask(slide, thumb_mpp=16.0, min_sat=0.07):
    """Saturation above max(Otsu, min_sat) on a thumbnail; (mask, level-0 px per mask px)."""
    mpp = float(slide.properties[openslide.PROPERTY_NAME_MPP_X])
    w, h = slide.dimensions
    scale = thumb_mpp / mpp
    thumb = np.asarray(slide.get_thumbnail((max(1, int(w / scale)), max(1, int(h / scale))))
                       .convert("RGB"), np.float32) / 255
    mx, mn = thumb.max(axis=2), thumb.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    mask = sat > max(otsu(sat.ravel()), min_sat)
    return mask, w / mask.shape[1]


def plan(slide, min_fraction=0.25):
    mpp = float(slide.properties[openslide.PROPERTY_NAME_MPP_X])
    want = MPP / mpp
    level = slide.get_best_level_for_downsample(want * 1.05)
    ds = slide.level_downsamples[level]
    read = int(round(TILE * want / ds))       # pixels to read at that level
    tile0, stride0 = TILE * want, STRIDE * want
    w, h = slide.dimensions
    cols = 1 if w <= tile0 else math.ceil((w - tile0) / stride0) + 1
    rows = 1 if h <= tile0 else math.ceil((h - tile0) / stride0) + 1
    mask, mscale = tissue_mask(slide)
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tiles = []
    for r in range(rows):
        for c in range(cols):
            x, y = c * stride0, r * stride0
            x0, y0 = int(x / mscale), int(y / mscale)
            x1 = min(mask.shape[1], max(x0 + 1, int(math.ceil((x + tile0) / mscale))))
            y1 = min(mask.shape[0], max(y0 + 1, int(math.ceil((y + tile0) / mscale))))
            x0, y0 = min(x0, mask.shape[1] - 1), min(y0, mask.shape[0] - 1)
            frac = (integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]) / \
                   max(1, (x1 - x0) * (y1 - y0))
            if frac >= min_fraction:
                tiles.append((c, r, int(x), int(y)))
    return tiles, cols, rows, level, read


def run(model, path, threads, batch):
    t0 = time.perf_counter()
    slide = openslide.OpenSlide(path)
    tiles, cols, rows, level, read = plan(slide)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    q = queue.Queue(maxsize=4)

    def reader():
        for i in range(0, len(tiles), batch):
            part = tiles[i:i + batch]
            arr = np.empty((len(part), TILE, TILE, 3), np.uint8)
            for k, (_, _, x, y) in enumerate(part):
                im = slide.read_region((x, y), level, (read, read)).convert("RGB")
                if read != TILE:
                    im = im.resize((TILE, TILE))
                arr[k] = np.asarray(im)
            q.put(arr)
        q.put(None)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    probs = []
    while (arr := q.get()) is not None:
        x = (arr.transpose(0, 3, 1, 2).astype(np.float32) / 255 - MEAN) / STD
        logits = sess.run(None, {name: x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append(e[:, 1] / e.sum(axis=1))
    th.join()
    p = np.concatenate(probs) if probs else np.zeros(0)
    # the heatmap: one cell per tile, averaged over 3 x 3 tiles (tissue only)
    heat = np.full((rows + 2, cols + 2), np.nan)
    for (c, r, _, _), v in zip(tiles, p):
        heat[r + 1, c + 1] = v
    ok = ~np.isnan(heat)
    val = np.where(ok, heat, 0)
    s = sum(val[1 + dy:rows + 1 + dy, 1 + dx:cols + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    n = sum(ok[1 + dy:rows + 1 + dy, 1 + dx:cols + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    smooth = np.where(ok[1:-1, 1:-1], s / np.maximum(n, 1), -1)
    return {"slide": path, "tiles": len(tiles), "seconds": time.perf_counter() - t0,
            "probability": float(smooth.max()) if len(p) else 0.0,
            "engine": f"openslide-python {openslide.__version__} + onnxruntime {ort.__version__}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("slides", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    for s in a.slides:
        print(json.dumps(run(a.model, s, a.threads, a.batch)), flush=True)


if __name__ == "__main__":
    main()
