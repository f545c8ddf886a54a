"""Reports: the measured-vs-predicted table and cell drawings. Presentation only: nothing here measures."""

from ladarts.report.cells import draw_genotype
from ladarts.report.table import build_rows, to_markdown, to_text

__all__ = ["build_rows", "draw_genotype", "to_markdown", "to_text"]
