#!/usr/bin/env python3
"""cytology-triage-report.py — slide-level triage accuracy of `eosin run
--task configs/cytology.ini` on slides with known diagnosis.

    scripts/reference/cytology-triage-report.py SLIDES_DIR RESULTS_DIR

SLIDES_DIR holds NAME.json from scripts/data/make-lbc-slide (the truth: "class",
one of NL, LSIL, HSIL, SCC); RESULTS_DIR/NAME/report.json holds Eosin's
triage. Prints one line per slide, the confusion matrix (truth rows, triage
columns; NL = NILM), the accuracy over the four categories, abnormal vs
normal sensitivity and specificity, and the AUC of the abnormal score.
Slides without a triage count as errors, and are listed.
"""
import json
import os
import sys

CATS = ["NILM", "LSIL", "HSIL", "SCC"]
TRUTH = {"NL": "NILM", "LSIL": "LSIL", "HSIL": "HSIL", "SCC": "SCC"}


def auc(pos, neg):
    """Probability a positive scores above a negative (ties count half)."""
    if not pos or not neg:
        return float("nan")
    s = 0.0
    for p in pos:
        for n in neg:
            s += 1.0 if p > n else 0.5 if p == n else 0.0
    return s / (len(pos) * len(neg))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    slides, results = sys.argv[1], sys.argv[2]
    rows = []
    for name in sorted(os.listdir(slides)):
        if not name.endswith(".json"):
            continue
        stem = name[:-5]
        truth = TRUTH[json.load(open(os.path.join(slides, name)))["class"]]
        rep = os.path.join(results, stem, "report.json")
        if not os.path.exists(rep):
            rows.append((stem, truth, None, float("nan"), "no report"))
            continue
        s = json.load(open(rep))["scores"]
        t = s["triage"]
        cat = t.get("category") if t.get("assessable") else None
        rows.append((stem, truth, cat, t.get("abnormal", float("nan")),
                     f"{s['cells']} cells, tile {t.get('tile_evidence', {}).get('abnormal', 0):.2f}"
                     f" cell {t.get('cell_evidence', {}).get('abnormal', 0):.2f}"))
    if not rows:
        sys.exit("cytology-triage-report: no slides")
    for stem, truth, cat, ab, note in rows:
        print(f"{stem:10s} truth {truth:5s} triage {str(cat):5s} abnormal {ab:.3f}  {note}")
    cm = [[0] * 5 for _ in CATS]
    for _, truth, cat, _, _ in rows:
        cm[CATS.index(truth)][CATS.index(cat) if cat in CATS else 4] += 1
    print("\ntruth \\ triage " + " ".join(f"{c:>5s}" for c in CATS) + "  none")
    for i, c in enumerate(CATS):
        print(f"{c:15s}" + " ".join(f"{v:5d}" for v in cm[i]))
    n = len(rows)
    correct = sum(cm[i][i] for i in range(4))
    abn = [r for r in rows if r[1] != "NILM"]
    nor = [r for r in rows if r[1] == "NILM"]
    sens = sum(1 for r in abn if r[2] in CATS[1:]) / max(len(abn), 1)
    spec = sum(1 for r in nor if r[2] == "NILM") / max(len(nor), 1)
    a = auc([r[3] for r in abn if r[3] == r[3]], [r[3] for r in nor if r[3] == r[3]])
    print(f"\ncytology triage: {n} slides, 4-category accuracy {correct / n:.3f} ({correct}/{n}); "
          f"abnormal vs NILM: sensitivity {sens:.3f} ({len(abn)} abnormal), specificity "
          f"{spec:.3f} ({len(nor)} normal), AUC {a:.3f}")


if __name__ == "__main__":
    main()
