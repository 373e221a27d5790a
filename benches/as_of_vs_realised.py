"""Scenario files as of a date against what happened next: the equal-weight volatility
(annualised, pooled daily returns) and the mean pairwise correlation of daily returns of each
file, and of the `window` trading days after the file's `scengen.as_of` close in a price panel.

    python3 benches/as_of_vs_realised.py data/sp500_20_prices.parquet FILE...

Needs DuckDB (`pip install duckdb`), which reads the Parquet files; it is not a dependency of
scengen. Returns are log returns; the price panel has a `date` column and one per asset.
"""
import math
import sys

import duckdb


def stats(rows):
    """EW volatility (annualised) and mean pairwise correlation of rows of daily returns."""
    n, k = len(rows), len(rows[0])
    ew = [sum(r) / k for r in rows]
    m = sum(ew) / n
    vol = math.sqrt(sum((x - m) ** 2 for x in ew) / (n - 1) * 252)
    means = [sum(r[a] for r in rows) / n for a in range(k)]
    dev = [[r[a] - means[a] for a in range(k)] for r in rows]
    sd = [math.sqrt(sum(d[a] ** 2 for d in dev) / n) for a in range(k)]
    total, pairs = 0.0, 0
    for a in range(k):
        for b in range(a + 1, k):
            total += sum(d[a] * d[b] for d in dev) / n / (sd[a] * sd[b])
            pairs += 1
    return vol, total / pairs


def main():
    prices, files = sys.argv[1], sys.argv[2:]
    for f in files:
        meta = dict(
            (k.decode(), v.decode())
            for k, v in duckdb.sql(f"select key, value from parquet_kv_metadata('{f}')").fetchall()
        )
        as_of, window = meta["scengen.as_of"], int(meta["scengen.window"])
        cols = [c for c in duckdb.sql(f"select * from '{f}' limit 0").columns if c not in ("regime", "path", "step")]
        rows = duckdb.sql(f"select {', '.join(cols)} from '{f}'").fetchall()
        quoted = ", ".join(f'"{c}"' for c in cols)
        p = duckdb.sql(
            f"select {quoted} from '{prices}' where date >= (select max(date) from '{prices}' where date <= DATE '{as_of}') order by date limit {window + 1}"
        ).fetchall()
        real = [[math.log(b / a) for a, b in zip(p[d], p[d + 1])] for d in range(len(p) - 1)]
        s_vol, s_corr = stats(rows)
        r_vol, r_corr = stats(real)
        print(f"{f}: as of {as_of}, regime {meta['scengen.regime']}: "
              f"EW volatility {100 * s_vol:.1f}% (realised next {len(real)} days {100 * r_vol:.1f}%), "
              f"mean correlation {s_corr:.3f} (realised {r_corr:.3f})")


main()
