#!/usr/bin/env python3
"""bench-wsinfer.py — WSInfer's own `wsinfer run`, unchanged, with the time
of each of its phases: tissue segmentation + patching, model inference, and
writing GeoJSON. Run with the bench venv's python (scripts/setup/setup-bench-peers):

    BUILD/bench-venv/bin/python scripts/bench/bench-wsinfer.py REGISTRY.json -- \
        --backend openslide run --wsi-dir DIR --results-dir OUT \
        --model-path model.pt --config config.json --batch-size 64 --num-workers 2

Everything after `--` goes to WSInfer's command line as it is. Two things
are not WSInfer's default, and neither touches what it computes:
  * its CLI downloads the model-zoo registry (a list of hub models) when it
    is imported, to offer them as --model choices; no network is reachable
    here, so the registry is read from REGISTRY.json instead (an empty
    one serves: this run uses a local --model-path and --config);
  * the three phase functions `wsinfer run` calls are wrapped in timers.
Prints, after WSInfer's own output, one JSON line:
  {"wsinfer": VERSION, "torch": ..., "seconds": {"patching": s,
   "inference": s, "geojson": s, "total": s}, "tiles": {SLIDE: n, ...}}
with the tiles read back from WSInfer's per-slide CSVs.
"""
import csv
import json
import os
import sys
import time


def main():
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit(__doc__.split("\n\n")[1])
    registry, args = sys.argv[1], sys.argv[3:]
    t_start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import wsinfer_zoo.client as zoo

    load = zoo.load_registry
    zoo.load_registry = lambda registry_file=None: load(registry_file or registry)

    import torch
    import wsinfer
    import wsinfer.cli.infer as infer
    from wsinfer.cli.cli import cli

    seconds = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    infer.segment_and_patch_directory_of_slides = timed(
        "patching", infer.segment_and_patch_directory_of_slides)
    infer.run_inference = timed("inference", infer.run_inference)
    infer.write_geojsons = timed("geojson", infer.write_geojsons)
    cli.main(args=args, prog_name="wsinfer", standalone_mode=False)
    seconds["total"] = time.perf_counter() - t_start

    results = args[args.index("--results-dir") + 1]
    tiles = {}
    out = os.path.join(results, "model-outputs-csv")
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name)) as f:
            tiles[os.path.splitext(name)[0]] = sum(1 for _ in csv.reader(f)) - 1
    print(json.dumps({"wsinfer": wsinfer.__version__, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "seconds": seconds, "tiles": tiles}),
          flush=True)


if __name__ == "__main__":
    main()
