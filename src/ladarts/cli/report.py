"""`ladarts report`: measured latency beside predicted latency, params, MACs and accuracy; cell drawings."""

from __future__ import annotations

import argparse
from pathlib import Path

from ladarts.cli.common import GENOTYPE_HELP, add_network_args, network_config_from_args, print_json


def _entries(targets: list[str], args: argparse.Namespace) -> list[dict]:
    from ladarts.space import Genotype, network_config, resolve_genotype

    entries = []
    for t in targets:
        if (Path(t) / "report.json").is_file():  # a finished training run
            import json

            rep = json.loads((Path(t) / "report.json").read_text())
            net = dict(rep["network"], auxiliary=False)
            entries.append({"name": Path(t).name, "genotype": Genotype.from_dict(rep["genotype"]),
                            "network": network_config(**net), "test_acc": rep.get("test_acc")})
        else:
            name, g = resolve_genotype(t)
            entries.append({"name": name, "genotype": g, "network": network_config_from_args(args)})
    return entries


def cmd_report(args: argparse.Namespace) -> int:
    from ladarts.hardware import Platform
    from ladarts.io import atomic_write_json, atomic_write_text
    from ladarts.report import build_rows, draw_genotype, to_markdown, to_text

    entries = _entries(args.targets, args)

    def platform_for(net):
        return Platform(device=args.device, runtime=args.runtime, threads=args.threads,
                        batch_size=args.batch_size, network=net)

    platform_for(entries[0]["network"])  # validate the platform flags before any work
    lpm = None
    if args.lpm:
        from ladarts.predict import LPM

        lpm = LPM.load(args.lpm, expect_platform=platform_for(entries[0]["network"]).key,
                       allow_platform_mismatch=args.allow_platform_mismatch)
    rows = build_rows(entries, platform_for, lpm, args.pairs, args.db)
    if args.out:
        out = Path(args.out)
        atomic_write_json(out / "report.json", {"rows": rows, "lpm": args.lpm, "pairs": args.pairs})
        atomic_write_text(out / "report.md", to_markdown(rows))
        for e in entries:
            draw_genotype(e["genotype"], out / f"cells_{e['name']}.png", title=e["name"])
    if args.json:
        print_json(rows)
    elif args.markdown:
        print(to_markdown(rows), end="")
    else:
        print(to_text(rows))
        print(f"platform: {rows[0]['platform']}; measured = drift-corrected median of {args.pairs} interleaved pairs")
    return 0


def register(add) -> None:
    p = add("report", cmd_report, "measured and predicted latency, params, MACs and accuracy of runs or genotypes")
    p.add_argument("targets", nargs="+", metavar="RUN_OR_GENOTYPE",
                   help="a finished `ladarts train` run folder, or " + GENOTYPE_HELP)
    p.add_argument("--lpm", help="LPM folder: adds the predicted latency")
    p.add_argument("--allow-platform-mismatch", action="store_true", help="use an LPM fitted on another platform")
    p.add_argument("--runtime", default="torch", help="torch or onnxruntime")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--pairs", type=int, default=20, help="interleaved timing pairs (default 20)")
    p.add_argument("--db", help="latency database whose calibration to reuse (default: a fresh calibration)")
    add_network_args(p)
    p.add_argument("--out", help="folder for report.json, report.md and the cell drawings")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true")
