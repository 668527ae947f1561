"""``python -m model``: inspect archs, classify photos, export TorchScript/ONNX, quantize INT8."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.compile import ALL_BACKENDS, compile_model, prepare
from model.postprocess import labels_for, probabilities, top_k
from model.preprocess import preprocess
from model.sanet import arch_spec, count_parameters, create_model, list_models, random_init
from model.scripting import script_module

log = logging.getLogger("model")


def _load(weights: str | None, arch: str) -> tuple[torch.nn.Module, str | None]:
    """The network and its weights' sha256 (None: random init, the service's seed)."""
    if weights:
        net, info = load_checkpoint(weights, arch=None if arch == "auto" else arch)
        return net, info.sha256
    name = "sanet50" if arch == "auto" else arch
    log.warning(
        "no --weights given: %s is RANDOMLY INITIALISED, its predictions mean nothing", name
    )
    return random_init(name), None


def cmd_info(args: argparse.Namespace) -> int:
    spec = arch_spec(args.arch)
    net = create_model(args.arch)
    sa = sum(p.numel() for n, p in net.named_parameters() if ".sa." in n)
    print(f"{spec.name}: {spec.description}")
    print(f"  blocks per stage : {spec.layers}")
    print(f"  parameters       : {count_parameters(net):,} (SA: {sa:,})")
    print(f"  SA groups        : {spec.sa_groups}")
    print("  input            : 3x224x224, resize 256, center crop 224, ImageNet mean/std")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    net, _ = _load(args.weights, args.arch)
    compiled = compile_model(net, args.backend)
    for image in args.images:
        batch = preprocess(Path(image).read_bytes()).unsqueeze(0)
        probs = probabilities(compiled(batch))[0]
        print(image)
        for pred in top_k(probs, args.top_k, labels_for(probs.numel())):
            print(f"  {pred.probability:7.2%}  {pred.class_index:4d}  {pred.label}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    net, _ = _load(args.weights, args.arch)
    module = prepare(net, fold=not args.no_fold)
    out = Path(args.out)
    if args.format == "torchscript":
        scripted = script_module(module)
        torch.jit.save(scripted, str(out))
    else:
        from model.onnx_backend import export_onnx

        export_onnx(module, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {args.format})")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """INT8-quantize into the cache the service reads (same key: arch + weights sha256)."""
    import json

    from model.export_cache import cache_key, default_cache_dir
    from model.quantize import int8_engine
    from model.sanet import arch_of

    net, sha256 = _load(args.weights, args.arch)  # random init: the service's seed and key
    key = cache_key(arch_of(net), sha256)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    _, report = int8_engine(
        net,
        calibration_dir=args.calibration,
        min_agreement=args.min_agreement,
        threads=args.threads,
        cache_dir=cache,
        cache_key=key,
    )
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Where the network looked for one image: the top-k and an overlay PNG of the map."""
    from model.explain import Explainer, overlay_png
    from model.preprocess import crop, normalize

    net, _ = _load(args.weights, args.arch)
    pixels = crop(Path(args.image).read_bytes())
    batch = normalize(torch.from_numpy(pixels).unsqueeze(0))
    (found,) = Explainer(net).explain(batch, args.method, [args.target])
    for pred in top_k(found.probabilities, args.top_k, labels_for(found.probabilities.numel())):
        print(f"  {pred.probability:7.2%}  {pred.class_index:4d}  {pred.label}")
    out = Path(args.out or Path(args.image).with_suffix(f".{args.method}.png").name)
    out.write_bytes(overlay_png(pixels, found.heatmap))
    print(f"wrote {out} ({args.method} for class {found.target})")
    return 0


def _add_explain(sub: argparse._SubParsersAction, arch_help: str) -> None:
    from model.explain import METHODS

    e = sub.add_parser("explain", help="Grad-CAM or SA attention overlay for one image")
    e.add_argument("image")
    e.add_argument("--weights", help="checkpoint (.pth.tar or state_dict)")
    e.add_argument("--arch", default="auto", choices=["auto", *list_models()], help=arch_help)
    e.add_argument("--method", default="gradcam", choices=METHODS)
    e.add_argument("--target", type=int, default=None, help="class index (default: top-1)")
    e.add_argument("--top-k", type=int, default=5)
    e.add_argument("--out", help="overlay PNG (default: IMAGE.METHOD.png here)")
    e.set_defaults(func=cmd_explain)


def _add_quantize(sub: argparse._SubParsersAction, arch_help: str) -> None:
    q = sub.add_parser("quantize", help="INT8 model for SANET_PRECISION=int8 (cached)")
    q.add_argument("--weights", help="checkpoint (.pth.tar or state_dict)")
    q.add_argument("--arch", default="auto", choices=["auto", *list_models()], help=arch_help)
    q.add_argument("--calibration", required=True, help="folder of representative images")
    q.add_argument("--cache-dir", help="default: the service's SANET_CACHE_DIR default")
    q.add_argument("--min-agreement", type=float, default=0.99, help="0 disables the gate")
    q.add_argument("--threads", type=int, default=None)
    q.set_defaults(func=cmd_quantize)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe an architecture")
    info.add_argument("arch", choices=list_models())
    info.set_defaults(func=cmd_info)
    arch_help = "architecture (default: inferred from the checkpoint, sanet50 without one)"
    predict = sub.add_parser("predict", help="top-k labels for image files")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--weights", help="checkpoint (.pth.tar or state_dict)")
    predict.add_argument("--arch", default="auto", choices=["auto", *list_models()], help=arch_help)
    predict.add_argument("--backend", default="torchscript", choices=ALL_BACKENDS)
    predict.add_argument("--top-k", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    export = sub.add_parser("export", help="write a frozen TorchScript or ONNX file")
    export.add_argument("--weights", help="checkpoint (.pth.tar or state_dict)")
    export.add_argument("--arch", default="auto", choices=["auto", *list_models()], help=arch_help)
    export.add_argument("--format", default="torchscript", choices=["torchscript", "onnx"])
    export.add_argument("--no-fold", action="store_true", help="keep BN/SA unfolded")
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_export)
    _add_quantize(sub, arch_help)
    _add_explain(sub, arch_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:  # the CLI's single place to turn errors into a message
        from model.errors import ModelError

        if isinstance(exc, ModelError | OSError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
