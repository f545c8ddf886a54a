"""`ladarts train`: the DARTS evaluation protocol on a genotype."""

from __future__ import annotations

import argparse

from ladarts.cli.common import GENOTYPE_HELP, add_scale_args, is_main_process, launch_nproc, print_json


def cmd_train(args: argparse.Namespace) -> int:
    from ladarts.space import resolve_genotype
    from ladarts.train import TrainConfig, run_train

    name, genotype = resolve_genotype(args.genotype)
    cfg = TrainConfig(
        genotype=genotype.to_dict(), genotype_name=name, out=args.out, dataset=args.dataset, data_dir=args.data_dir,
        seed=args.seed, channels=args.channels, cells=args.cells, input_size=args.input_size,
        batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, cutout=args.cutout,
        auxiliary_weight=args.auxiliary_weight, drop_path=args.drop_path, threads=args.threads, subset=args.subset,
        label_smoothing=args.label_smoothing, lr_schedule=args.lr_schedule, warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay, protocol=args.protocol, device=args.device, amp=args.amp,
        sync_bn=args.sync_bn, workers=args.workers,
    )
    code = launch_nproc(args, "training", cfg.resolved().batch_size)
    if code is not None:
        return code
    result = run_train(cfg, resume=args.resume, progress=not args.no_progress)
    if not is_main_process():
        return 0
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
    from ladarts.train.protocol import PROTOCOLS, defaults_help

    p = add("train", cmd_train, "train a genotype with the DARTS evaluation protocol")
    p.epilog = (f"Defaults per dataset: {defaults_help()}. SGD momentum 0.9, wd 3e-4, cosine lr, clip 5 for both. "
                "imagenet: the PC-DARTS ImageNet protocol (C48 x 14 cells, 224 px, batch 1024, lr 0.5, 5 warm-up "
                "epochs then linear decay, wd 3e-5, 250 epochs, label smoothing 0.1, auxiliary 0.4, clip 5); "
                "--protocol imagenet-darts for DARTS's (batch 128, lr 0.1 x 0.97 per epoch).")
    p.add_argument("genotype", metavar="GENOTYPE", help=GENOTYPE_HELP + ", or a search run's genotype.json")
    p.add_argument("--dataset", default="digits", choices=["digits", "cifar10", "synthetic", "imagenet"])
    p.add_argument("--data-dir", help="cifar10: the folder holding cifar-10-batches-py; imagenet: a folder with "
                                      "train/ and val/, one subfolder of JPEGs per class (nothing is downloaded)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), help="a named protocol instead of the dataset's defaults")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--channels", type=int)
    p.add_argument("--cells", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--batch-size", type=int, help="the batch of all processes together")
    p.add_argument("--lr", type=float, help="initial learning rate (default from the dataset or protocol)")
    p.add_argument("--lr-schedule", choices=["cosine", "step", "linear"],
                   help="cosine (CIFAR), step (x0.97 per epoch, DARTS ImageNet), linear (PC-DARTS ImageNet)")
    p.add_argument("--warmup-epochs", type=int, help="linear warm-up epochs (step or linear schedule)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--cutout", type=int, help="cutout length in px (0 = off)")
    p.add_argument("--auxiliary-weight", type=float, help="auxiliary head loss weight (0 = no auxiliary head)")
    p.add_argument("--drop-path", type=float, help="final drop-path probability (ramped linearly from 0)")
    p.add_argument("--subset", type=int, help="train on a stratified subset of N training images")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--workers", type=int, help="image decoding processes per rank (imagenet; default: the cores)")
    add_scale_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
