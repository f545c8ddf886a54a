"""`ladarts report`: measured latency beside predicted latency, params, MACs and accuracy; cell drawings."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ladarts.cli.common import (
    GENOTYPE_HELP,
    RUNTIME_HELP,
    add_network_args,
    network_config_from_args,
    print_json,
)
from ladarts.errors import LadartsWarning, UserInputError


_NETWORK_FLAGS = ("channels", "cells", "classes", "input_size", "in_channels")


def _entries(targets: list[str], args: argparse.Namespace, lpm_network: dict | None) -> list[dict]:
    """A finished training run carries its network; a genotype is measured on the flags' network, or, when no
    network flag is given, on the LPM's network (so that the prediction and the measurement are of one network)."""
    from ladarts.space import Genotype, NetworkConfig, network_config, resolve_genotype

    flags_given = args.network != "cifar" or any(getattr(args, f) is not None for f in _NETWORK_FLAGS)
    default_net = (NetworkConfig(**lpm_network) if lpm_network and not flags_given
                   else network_config_from_args(args))
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
            entries.append({"name": name, "genotype": g, "network": default_net})
    return entries


def cmd_report(args: argparse.Namespace) -> int:
    from ladarts.hardware import Platform, measure_genotypes
    from ladarts.io import atomic_write_json, atomic_write_text
    from ladarts.report import build_rows, draw_genotype, to_markdown, to_text

    if not 1 <= args.pairs <= 10_000:
        raise UserInputError(f"--pairs must be in 1..10000, got {args.pairs}")
    lpm = None
    if args.lpm:
        from ladarts.predict import LPM

        lpm = LPM.load(args.lpm)
    entries = _entries(args.targets, args, (lpm.meta.get("network") if lpm is not None else None))
    platforms = [Platform(device=args.device, runtime=args.runtime, threads=args.threads,
                          batch_size=args.batch_size, network=e["network"]) for e in entries]  # validated first
    mismatched = []
    if lpm is not None:
        mismatched = [e["name"] for e, p in zip(entries, platforms) if p.key != lpm.platform_key]
        if mismatched and not args.allow_platform_mismatch:
            i = next(i for i, e in enumerate(entries) if e["name"] == mismatched[0])
            raise UserInputError(f"{mismatched[0]} is measured on {platforms[i].key}, but the LPM was fitted on "
                                 f"{lpm.platform_key}: measure it on the LPM's network and settings, or pass "
                                 "--allow-platform-mismatch to show the prediction marked as such")
        if mismatched:
            warnings.warn(f"the LPM was fitted on {lpm.platform_key}; its predictions for "
                          f"{', '.join(mismatched)} are for another platform (marked *)", LadartsWarning, stacklevel=1)
    # the LPM's platform scale unless a database is named: measured and predicted are then on one scale
    lpm_ms = (lpm.meta.get("platform") or {}).get("ref_ms") if lpm is not None and not args.db else None
    timings = []
    for e, p in zip(entries, platforms):
        scale = lpm_ms if lpm is not None and p.key == lpm.platform_key else None
        timings += measure_genotypes([e["genotype"]], p, args.pairs, args.db, ref_ms=scale)
    rows = build_rows(entries, timings, [p.key for p in platforms], lpm)
    for r in rows:
        r["lpm_platform_mismatch"] = r["name"] in mismatched
        if r["lpm_platform_mismatch"]:
            r["name"] = f"{r['name']} *"
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
        keys = sorted({r["platform"] for r in rows})
        print(f"platform{'s' if len(keys) > 1 else ''}: {'; '.join(keys)}")
        if mismatched:
            print(f"* predicted by an LPM of another platform ({lpm.platform_key})")
    return 0


def register(add) -> None:
    p = add("report", cmd_report, "measured and predicted latency, params, MACs and accuracy of runs or genotypes")
    p.add_argument("targets", nargs="+", metavar="RUN_OR_GENOTYPE",
                   help="a finished `ladarts train` run folder, or " + GENOTYPE_HELP)
    p.add_argument("--lpm", help="LPM folder: adds the predicted latency")
    p.add_argument("--allow-platform-mismatch", action="store_true", help="use an LPM fitted on another platform")
    p.add_argument("--runtime", default="torch", help=RUNTIME_HELP)
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--pairs", type=int, default=20, help="interleaved timing pairs (default 20)")
    p.add_argument("--db", help="latency database whose platform scale to use (default: the LPM's scale, else a "
                                "fresh calibration)")
    add_network_args(p)
    p.add_argument("--out", help="folder for report.json, report.md and the cell drawings")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true")
