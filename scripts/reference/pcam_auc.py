#!/usr/bin/python3
"""pcam_auc.py — AUC and accuracy of an `eosin predict` CSV on a labelled
patch folder whose first path component is the label (PatchCamelyon's
`0/…jpg`, `1/…jpg`), so that the model card's validation numbers can be
reproduced from the engine rather than from PyTorch:

    build/eosin predict --config configs/metastasis.ini \
        ../shared/data/metastasis/pcam/valid -o /tmp/pcam-valid.csv
    scripts/reference/pcam_auc.py /tmp/pcam-valid.csv [--column tumor] [--card models/….json]

With --card it also prints the card's numbers and the differences.

Also a module (hence the underscore): scripts/train/train-metastasis.py
imports its auc(), one AUC for training and for checking the engine.
"""
import argparse
import csv
import json
import sys

import numpy as np


def auc(labels, scores):
    """Mann-Whitney AUC, ties counting half (average ranks)."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    npos, nneg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--column", default="tumor")
    ap.add_argument("--card")
    a = ap.parse_args()
    labels, scores = [], []
    with open(a.csv, newline="") as f:
        for row in csv.DictReader(f):
            first = row["path"].split("/")[0]
            if first not in ("0", "1"):
                sys.exit(f"{a.csv}: path {row['path']} does not start with 0/ or 1/")
            labels.append(int(first))
            scores.append(float(row[a.column]))
    y, p = np.array(labels), np.array(scores)
    if len(set(labels)) < 2:
        sys.exit(f"{a.csv}: needs patches of both labels")
    result = {"patches": len(y), "auc": auc(y, p), "accuracy": float(((p >= 0.5) == (y == 1)).mean())}
    print(f"{a.csv}: {result['patches']} patches, AUC {result['auc']:.4f}, "
          f"accuracy {result['accuracy']:.4f}")
    if a.card:
        with open(a.card) as f:
            card = json.load(f)
        print(f"model card: AUC {card['valid_auc']:.4f}, accuracy {card['valid_accuracy']:.4f}; "
              f"difference AUC {result['auc'] - card['valid_auc']:+.5f}, "
              f"accuracy {result['accuracy'] - card['valid_accuracy']:+.5f}")


if __name__ == "__main__":
    main()
