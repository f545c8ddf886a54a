"""Published genotypes as data, and resolving what a user names as a genotype.

Pairs are ``(primitive, input)``, two per node, as in the DARTS and PC-DARTS reference repositories.
"""

from __future__ import annotations

import os
from pathlib import Path

from ladarts.errors import UserInputError
from ladarts.space.genotype import MAX_TEXT_CHARS, Genotype, parse_darts_text

_C4 = [2, 3, 4, 5]

_ZOO_DATA: dict[str, dict] = {
    "DARTS_V1": {
        "normal": [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                   ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        "normal_concat": _C4,
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        "reduce_concat": _C4,
    },
    "DARTS_V2": {
        "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        "normal_concat": _C4,
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        "reduce_concat": _C4,
    },
    "PC_DARTS_cifar": {
        "normal": [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                   ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        "normal_concat": _C4,
        "reduce": [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
                   ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
        "reduce_concat": _C4,
    },
    "PC_DARTS_image": {
        "normal": [("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
                   ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
        "normal_concat": _C4,
        "reduce": [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
                   ("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 3)],
        "reduce_concat": _C4,
    },
    "NASNet": {
        "normal": [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                   ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                   ("sep_conv_3x3", 1), ("skip_connect", 1)],
        "normal_concat": [2, 3, 4, 5, 6],
        "reduce": [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                   ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                   ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        "reduce_concat": [4, 5, 6],
    },
    "AmoebaNet": {
        "normal": [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
                   ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
                   ("skip_connect", 0), ("avg_pool_3x3", 1)],
        "normal_concat": [4, 5, 6],
        "reduce": [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
                   ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                   ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        "reduce_concat": [3, 4, 6],
    },
}

#: name → Genotype. ``DARTS`` is the reference repo's alias for DARTS_V2, ``PCDARTS`` for PC_DARTS_cifar.
ZOO: dict[str, Genotype] = {name: Genotype(**fields) for name, fields in _ZOO_DATA.items()}
ALIASES = {"DARTS": "DARTS_V2", "PCDARTS": "PC_DARTS_cifar"}


def parse_genotype_text(text: str) -> Genotype:
    """A genotype from text: JSON (``{"normal": ...}``) or the DARTS text form (``Genotype(...)``)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return Genotype.from_json(stripped)
    return parse_darts_text(stripped)


def resolve_genotype(spec: str) -> tuple[str, Genotype]:
    """What a user names as GENOTYPE: a zoo name, a JSON or DARTS-text file, or the text itself.

    Returns a display name and the genotype. Raises :class:`UserInputError` with one clear line otherwise.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UserInputError("empty genotype: give a zoo name, a JSON file, or Genotype(...) text")
    name = ALIASES.get(spec, spec)
    if name in ZOO:
        return name, ZOO[name]
    lowered = {k.lower(): k for k in ZOO}
    if spec.lower() in lowered:
        return lowered[spec.lower()], ZOO[lowered[spec.lower()]]
    stripped = spec.strip()
    if stripped.startswith("{") or "Genotype(" in stripped:
        return "custom", parse_genotype_text(stripped)
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        if path.stat().st_size > MAX_TEXT_CHARS:
            raise UserInputError(f"{spec}: file is too large to be a genotype")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserInputError(f"{spec}: cannot read genotype file ({e.__class__.__name__})") from None
        try:
            return path.stem, parse_genotype_text(text)
        except UserInputError as e:
            raise UserInputError(f"{spec}: {e}") from None
    if path.exists():
        raise UserInputError(f"{spec}: not a file")
    raise UserInputError(
        f"unknown genotype {spec!r:.80}: not a zoo name ({', '.join(ZOO)}), not a file, "
        "not JSON nor Genotype(...) text"
    )
