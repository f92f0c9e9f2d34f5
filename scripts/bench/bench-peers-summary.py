#!/usr/bin/env python3
"""bench-peers-summary.py — the table scripts/bench/bench-peers prints: for Eosin
and each peer, tiles analysed, wall and CPU seconds per slide, slides/hour,
tiles/s and how many times Eosin's wall time each one took; WSInfer's
phases; and, so
the comparison is of the same computation, how the peers' tile
probabilities agree with Eosin's on the tiles both analysed (same level-0
position). Writes RUN/../summary.json.

    bench-peers-summary.py RUN

RUN is BUILD/bench-peers/run as scripts/bench/bench-peers leaves it: RUN/NAME.time
holds the wall, user and system seconds of each tool's whole run (process
start to exit) over all the slides, /usr/bin/time -f '%e %U %S'.
Needs numpy and pandas (the bench venv's python).
"""
import csv
import json
import os
import sys

import numpy as np
import pandas as pd


def agreement(eosin, other, x, y, p, scale=1):
    """Tiles in common (same level-0 x, y: @other's times @scale), max and
    mean |p diff|, same call."""
    other = other.rename(columns={x: "x", y: "y", p: "p"})[["x", "y", "p"]]
    other[["x", "y"]] = (other[["x", "y"]] * scale).round().astype(int)
    m = eosin.merge(other, on=["x", "y"])
    if not len(m):
        return None
    d = (m["tumor"] - m["p"]).abs()
    same = ((m["tumor"] >= 0.5) == (m["p"] >= 0.5)).mean()
    return {"common": len(m), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "same_call": float(same)}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    run = sys.argv[1]
    wall, cpu = {}, {}
    for k in ("eosin", "peer", "wsinfer", "tiatoolbox"):
        path = os.path.join(run, k + ".time")
        if os.path.exists(path):
            e, u, s = (float(v) for v in open(path).read().split()[-3:])
            wall[k], cpu[k] = e, u + s

    rows = list(csv.DictReader(open(os.path.join(run, "eosin", "batch-summary.csv"))))
    names = [r["name"] for r in rows]
    n = len(names)
    tiles = {"eosin": sum(int(r["tiles"]) for r in rows)}
    slide_s = {"eosin": [float(r["seconds"]) for r in rows]}
    peer = [json.loads(line) for line in open(os.path.join(run, "peer.jsonl"))]
    tiles["peer"] = sum(p["tiles"] for p in peer)
    slide_s["peer"] = [p["seconds"] for p in peer]
    ws = json.load(open(os.path.join(run, "wsinfer.json")))
    tiles["wsinfer"] = sum(ws["tiles"].values())
    if "tiatoolbox" in wall:
        tia = [json.loads(line) for line in open(os.path.join(run, "tiatoolbox.jsonl"))]
        tiles["tiatoolbox"] = sum(t["tiles"] for t in tia)
        slide_s["tiatoolbox"] = [t["seconds"] for t in tia]

    agree = {}
    size = json.load(open(os.path.join(run, "..", "model", "config.json")))["patch_size_pixels"]
    for name in names:
        e = pd.read_csv(os.path.join(run, "eosin", name, "tiles.csv"))
        # TIAToolbox's coordinates are at the read resolution (the model's
        # µm/px), the others' at level 0: Eosin's tile width over the model's
        # patch size is the factor between them
        level0_per_px = e["width"].iloc[0] / size
        e = e[["x", "y", "tumor"]]
        w = pd.read_csv(os.path.join(run, "wsinfer", "model-outputs-csv", name + ".csv"))
        agree.setdefault("wsinfer", {})[name] = agreement(e, w, "minx", "miny", "prob_tumor")
        t = os.path.join(run, "tiatoolbox", name, "tiles.csv")
        if os.path.exists(t):
            agree.setdefault("tiatoolbox", {})[name] = agreement(
                e, pd.read_csv(t), "x0", "y0", "tumor", level0_per_px)

    print(f"\nbench-peers: {n} slides, {os.cpu_count()} cores; seconds are the wall time of each "
          "tool's whole run (process start to exit) / slides")
    print(f"{'':12} {'tiles/slide':>11} {'s/slide':>8} {'slides/h':>9} {'tiles/s':>8} "
          f"{'x Eosin time':>12} {'CPU s/slide':>11} {'x Eosin CPU':>11}")
    for k, v in wall.items():
        per = v / n
        print(f"{k:12} {tiles[k] / n:11.0f} {per:8.1f} {3600 / per:9.0f} {tiles[k] / v:8.0f} "
              f"{v / wall['eosin']:11.2f}x {cpu[k] / n:11.1f} {cpu[k] / cpu['eosin']:10.2f}x")
    s = ws["seconds"]
    print(f"WSInfer phases (all slides): tissue + patching {s.get('patching', 0):.1f} s, inference "
          f"{s.get('inference', 0):.1f} s, GeoJSON {s.get('geojson', 0):.1f} s; in-process "
          f"{s['total']:.1f} s of {wall['wsinfer']:.1f} s wall")
    for k, per in agree.items():
        for name, a in per.items():
            if a is None:
                print(f"{k} vs Eosin on {name}: no tile at the same position")
            else:
                print(f"{k} vs Eosin on {name}: {a['common']} tiles in common, |p(tumour) diff| "
                      f"max {a['max_abs_diff']:.3g} mean {a['mean_abs_diff']:.3g}, same call "
                      f"{100 * a['same_call']:.1f} %")
    load = {k: open(os.path.join(run, "load-" + k)).read().split()
            for k in ("before", "after") if os.path.exists(os.path.join(run, "load-" + k))}
    if load:
        print("load average (1, 5, 15 min) " +
              ", ".join(f"{k}: {' '.join(v)}" for k, v in load.items()))
    out = {"slides": n, "load_average": load, "names": names, "wall_s": wall, "cpu_s": cpu,
           "tiles": tiles, "slide_s": slide_s,
           "wsinfer_phases_s": s, "agreement_with_eosin": agree}
    with open(os.path.join(run, "..", "summary.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
