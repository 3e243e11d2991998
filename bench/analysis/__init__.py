"""Analysis of stored runs: compare, paired tests, significance, rescoring, rarity, efficiency, plots, report."""
