"""Reports: the measured-vs-predicted table and cell drawings."""

from ladarts.report.cells import draw_genotype
from ladarts.report.table import build_rows, measure_genotypes, to_markdown, to_text

__all__ = ["build_rows", "draw_genotype", "measure_genotypes", "to_markdown", "to_text"]
