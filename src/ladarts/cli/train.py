"""`ladarts train`: the DARTS evaluation protocol on a genotype."""

from __future__ import annotations

import argparse

from ladarts.cli.common import GENOTYPE_HELP, print_json


def cmd_train(args: argparse.Namespace) -> int:
    from ladarts.space import resolve_genotype
    from ladarts.train import TrainConfig, run_train

    name, genotype = resolve_genotype(args.genotype)
    cfg = TrainConfig(
        genotype=genotype.to_dict(), genotype_name=name, out=args.out, dataset=args.dataset, data_dir=args.data_dir,
        seed=args.seed, channels=args.channels, cells=args.cells, input_size=args.input_size,
        batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, cutout=args.cutout,
        auxiliary_weight=args.auxiliary_weight, drop_path=args.drop_path, threads=args.threads, subset=args.subset,
    )
    result = run_train(cfg, resume=args.resume, progress=not args.no_progress)
    rep = result.report
    if args.json:
        print_json(rep)
    else:
        print(f"{name}: test accuracy {100 * result.test_acc:.2f}% after {result.epochs} epochs "
              f"({rep['train_seconds_total']:.0f} s); {rep['params'] / 1e6:.3f} M params, {rep['macs'] / 1e6:.1f} M MACs")
        print(f"ONNX export {rep['onnx']['path']}: max relative error vs PyTorch {rep['onnx']['max_rel_error']:.2e}")
        print(f"run folder: {result.out}")
    return 0


def register(add) -> None:
    from ladarts.train.protocol import defaults_help

    p = add("train", cmd_train, "train a genotype with the DARTS evaluation protocol")
    p.epilog = f"Defaults per dataset: {defaults_help()}. SGD momentum 0.9, wd 3e-4, cosine lr, clip 5 for both."
    p.add_argument("genotype", metavar="GENOTYPE", help=GENOTYPE_HELP + ", or a search run's genotype.json")
    p.add_argument("--dataset", default="digits", choices=["digits", "cifar10", "synthetic"])
    p.add_argument("--data-dir", help="for cifar10: the folder holding cifar-10-batches-py (nothing is downloaded)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--channels", type=int)
    p.add_argument("--cells", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--cutout", type=int, help="cutout length in px (0 = off)")
    p.add_argument("--auxiliary-weight", type=float, help="auxiliary head loss weight (0 = no auxiliary head)")
    p.add_argument("--drop-path", type=float, help="final drop-path probability (ramped linearly from 0)")
    p.add_argument("--subset", type=int, help="train on a stratified subset of N training images")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
