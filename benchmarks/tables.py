"""Markdown tables the benchmark scripts print and write (shared by the scripts here)."""


def metric_table(rows) -> str:
    """``[(metric, value), ...]`` -> a two-column markdown table, the metric column aligned."""
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'metric':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k:<{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)
