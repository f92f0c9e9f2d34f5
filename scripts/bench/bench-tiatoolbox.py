#!/usr/bin/env python3
"""bench-tiatoolbox.py — TIAToolbox's PatchPredictor on whole slides with
Eosin's metastasis model, the way its documentation runs a custom model:
a ModelABC subclass (preprocessing, forward with softmax, infer_batch),
an IOPatchPredictorConfig at the model's µm/px with 96 px patches side by
side, and `PatchPredictor.run(patch_mode=False)` with its own tissue mask
(auto_get_mask) writing a zarr of coordinates and probabilities per slide.
Run with the TIAToolbox venv's python (scripts/setup/setup-bench-peers):

    BUILD/bench-venv-tia/bin/python scripts/bench/bench-tiatoolbox.py \
        --model BUILD/bench-peers/model --out-dir OUT SLIDE... \
        [--threads 2] [--batch 64] [--workers 2]

--model is the folder scripts/train/convert-metastasis-torch.py wrote: model.pt
(TorchScript, checked equal to ONNX Runtime) and config.json (patch size,
µm/px, mean and std: Eosin's preprocessing). Prints one JSON line per slide:
tiles analysed, seconds (tissue mask + patches + inference + zarr), the
slide's largest tumour probability and the number of tiles >= 0.5; and
OUT/NAME/tiles.csv (coordinates, tumour probability) after the clock stops.
"""
import argparse
import json
import os
import time

import numpy as np
import torch


def make_model(folder):
    from tiatoolbox.models.models_abc import ModelABC

    cfg = json.load(open(os.path.join(folder, "config.json")))
    norm = next(t["arguments"] for t in cfg["transform"] if t["name"] == "Normalize")
    mean = np.array(norm["mean"], np.float32)
    std = np.array(norm["std"], np.float32)

    class Metastasis(ModelABC):
        """The converted PCamNet; patches come in as uint8 HWC RGB."""

        def __init__(self):
            super().__init__()
            self.net = torch.jit.load(os.path.join(folder, "model.pt"))

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

        @staticmethod
        def preproc(image):
            return ((image.astype(np.float32) / 255 - mean) / std).astype(np.float32)

        @staticmethod
        def postproc(image):
            return np.argmax(image, axis=-1)

        @staticmethod
        def infer_batch(model, batch_data, *, device="cpu"):
            x = torch.as_tensor(batch_data).to(device=device, dtype=torch.float32)
            x = x.permute(0, 3, 1, 2).contiguous()
            model.eval()
            with torch.inference_mode():
                return model(x).cpu().numpy()

    return Metastasis(), cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("slides", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    import tiatoolbox
    import zarr
    from tiatoolbox.models.engine.io_config import IOPatchPredictorConfig
    from tiatoolbox.models.engine.patch_predictor import PatchPredictor

    model, cfg = make_model(a.model)
    size = cfg["patch_size_pixels"]
    io = IOPatchPredictorConfig(
        input_resolutions=[{"units": "mpp", "resolution": cfg["spacing_um_px"]}],
        patch_input_shape=(size, size), stride_shape=(size, size))
    for slide in a.slides:
        name = os.path.splitext(os.path.basename(slide))[0]
        save = os.path.join(a.out_dir, name)
        t0 = time.perf_counter()
        pred = PatchPredictor(model=model, batch_size=a.batch, num_workers=a.workers,
                              device="cpu", verbose=False)
        out = pred.run([slide], patch_mode=False, ioconfig=io, save_dir=save, overwrite=True,
                       output_type="zarr", return_probabilities=True, auto_get_mask=True)
        seconds = time.perf_counter() - t0
        path = next(iter(out.values())) if isinstance(out, dict) else out
        probs = np.asarray(zarr.open(str(path), mode="r")["probabilities"])
        p = probs[:, 1] if len(probs) else np.zeros(0)
        # the tiles as CSV too (after the clock), for scripts/bench/bench-peers to
        # compare with Eosin's tiles.csv: x0, y0, x1, y1 as TIAToolbox gives them
        coords = np.asarray(zarr.open(str(path), mode="r")["coordinates"])
        np.savetxt(os.path.join(save, "tiles.csv"), np.column_stack([coords, p]), delimiter=",",
                   header="x0,y0,x1,y1,tumor", comments="", fmt=["%d"] * 4 + ["%.7f"])
        print(json.dumps({"slide": slide, "tiles": int(len(p)), "seconds": seconds,
                          "max_probability": float(p.max()) if len(p) else 0.0,
                          "tiles_tumour": int((p >= 0.5).sum()),
                          "engine": f"tiatoolbox {tiatoolbox.__version__} + torch {torch.__version__}"}),
              flush=True)


if __name__ == "__main__":
    main()
