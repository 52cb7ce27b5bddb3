"""ETL over a CSV of sales: chunked fan-out, a loop, a branch, and running stats in a Memory.

`main()` writes a deterministic CSV of sales (seeded random rows, a few of
them deliberately broken) to a temporary directory. The flow `etl(csv, out)`:

- extracts the rows;
- validates and transforms them chunk by chunk, every chunk at once (a
  fan-out; each chunk goes to a simulated validation service that takes a
  couple of milliseconds);
- in a `for` loop over the months, in order, aggregates each month's revenue
  per region (a fan-out inside every iteration) and records it in a
  `kiln.Memory` of running statistics: running total, best month so far;
- branches (`match`) on the share of rejected rows: clean data is loaded
  as it is, a few rejects are written to a quarantine file beside the output,
  too many reject the whole batch;
- loads: writes the clean rows and a JSON summary, and returns the summary.

The Memory is a state token: `record_month` steps are passed the same Memory,
so kiln keeps them in source order even though no value flows between them,
and `load` reads the stats only after the loop has finished with them.

    python examples/etl.py           # compiles this file, runs both, compares
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _build import compiled_module

from kiln import Memory, flow, node

REGIONS = ("north", "south", "east", "west")
PRODUCTS = {"widget": 2.50, "gadget": 12.00, "gizmo": 7.25, "doohickey": 0.99}
FIELDS = ("order_id", "date", "region", "product", "units", "unit_price")


@dataclass(frozen=True, slots=True)
class Sale:
    order_id: int
    month: str  # "2024-03"
    region: str
    product: str
    units: int
    cents: int  # units * unit price, in cents (exact arithmetic, same sum in any order)


@dataclass(frozen=True, slots=True)
class Reject:
    line: int  # 1-based line of the CSV file, the header being line 1
    reason: str


@dataclass(frozen=True, slots=True)
class Checked:
    sales: tuple[Sale, ...]
    rejects: tuple[Reject, ...]


@dataclass(frozen=True, slots=True)
class RegionMonth:
    region: str
    month: str
    orders: int
    cents: int


@dataclass(frozen=True, slots=True)
class Summary:
    status: str  # "loaded", "loaded with quarantine" or "rejected"
    rows: int
    loaded: int
    rejected: int
    revenue_cents: int
    best_month: str
    by_region: tuple[tuple[str, int], ...]  # (region, revenue in cents), largest first
    files: tuple[str, ...]  # written to the output directory


def parse_row(line: int, row: dict[str, str]) -> Sale | Reject:
    """One CSV row to a Sale, or the reason it is not one."""
    region = row["region"].strip().lower()
    if region not in REGIONS:
        return Reject(line, f"unknown region {row['region']!r}")
    if row["product"] not in PRODUCTS:
        return Reject(line, f"unknown product {row['product']!r}")
    try:
        units = int(row["units"])
        cents = round(float(row["unit_price"]) * 100)
    except ValueError:
        return Reject(line, "units or unit_price is not a number")
    if units <= 0:
        return Reject(line, f"units must be positive, got {units}")
    year, month, day = row["date"].split("-")
    if not (year == "2024" and 1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return Reject(line, f"date out of range: {row['date']}")
    return Sale(
        int(row["order_id"]),
        f"{year}-{month}",
        region,
        row["product"],
        units,
        units * cents,
    )


def chunked(
    rows: list[dict[str, str]], size: int
) -> list[tuple[int, list[dict[str, str]]]]:
    """(first line number, rows) for each run of `size` rows."""
    return [
        (start + 2, rows[start : start + size]) for start in range(0, len(rows), size)
    ]


def grade(rejected: int, rows: int) -> str:
    share = rejected / rows if rows else 1.0
    if share == 0:
        return "clean"
    return "some rejects" if share <= 0.05 else "too many rejects"


@node
def extract(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@node
async def validate(
    first_line: int, rows: list[dict[str, str]], latency: float
) -> Checked:
    """Validate and transform one chunk; the sleep stands in for a remote schema service."""
    await asyncio.sleep(latency)
    parsed = [parse_row(first_line + offset, row) for offset, row in enumerate(rows)]
    return Checked(
        tuple(p for p in parsed if isinstance(p, Sale)),
        tuple(p for p in parsed if isinstance(p, Reject)),
    )


@node
async def aggregate(
    sales: list[Sale], month: str, region: str, latency: float
) -> RegionMonth:
    """One region's figures for one month; the sleep stands in for a warehouse query."""
    await asyncio.sleep(latency)
    mine = [s for s in sales if s.month == month and s.region == region]
    return RegionMonth(region, month, len(mine), sum(s.cents for s in mine))


@node
def record_month(stats: Memory, figures: list[RegionMonth]) -> None:
    """Fold one month into the running stats; months must arrive in order."""
    month_cents = sum(f.cents for f in figures)
    stats.revenue_cents += month_cents
    stats.running.append((figures[0].month, stats.revenue_cents))
    for figure in figures:
        stats.by_region[figure.region] = (
            stats.by_region.get(figure.region, 0) + figure.cents
        )
    if month_cents > stats.best_cents:
        stats.best_cents = month_cents
        stats.best_month = figures[0].month


@node
async def quarantine(stats: Memory, out_dir: str, rejects: list[Reject]) -> str:
    """Write the rejected lines for a human to look at; the batch's status."""
    lines = [f"line {r.line}: {r.reason}" for r in rejects]
    path = Path(out_dir, "rejects.txt")
    await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n", encoding="utf-8")
    stats.files.append(path.name)
    return "loaded with quarantine"


@node
async def load(
    out_dir: str, rows: int, sales: list[Sale], stats: Memory, status: str
) -> Summary:
    """Write the clean rows and a summary (unless the batch is rejected); the summary."""
    by_region = sorted(stats.by_region.items(), key=lambda item: (-item[1], item[0]))
    files: list[str] = list(stats.files)
    if status != "rejected":
        clean = Path(out_dir, "sales_clean.csv")
        with clean.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(
                ("order_id", "month", "region", "product", "units", "cents")
            )
            writer.writerows(
                (s.order_id, s.month, s.region, s.product, s.units, s.cents)
                for s in sales
            )
        files.append(clean.name)
    summary = Summary(
        status,
        rows,
        len(sales) if status != "rejected" else 0,
        rows - len(sales),
        stats.revenue_cents,
        stats.best_month,
        tuple(by_region),
        (*files, "summary.json"),
    )
    text = json.dumps(asdict(summary), indent=2)
    await asyncio.to_thread(
        Path(out_dir, "summary.json").write_text, text, encoding="utf-8"
    )
    return summary


@flow
async def etl(
    csv_path: str, out_dir: str, chunk_size: int = 200, latency: float = 0.002
) -> Summary:
    """Extract, validate in chunks, aggregate month by month, branch on quality, load."""
    stats: Memory = Memory({"revenue_cents": 0, "best_cents": -1, "best_month": ""})
    stats.running, stats.by_region, stats.files = [], {}, []
    rows = extract(csv_path)
    checked = [
        await validate(first, chunk, latency)
        for first, chunk in chunked(rows, chunk_size)
    ]
    sales = [sale for part in checked for sale in part.sales]
    rejects = [reject for part in checked for reject in part.rejects]
    for month in sorted({sale.month for sale in sales}):
        figures = [await aggregate(sales, month, region, latency) for region in REGIONS]
        record_month(stats, figures)
    match grade(len(rejects), len(rows)):
        case "clean":
            status = "loaded"
        case "some rejects":
            status = await quarantine(stats, out_dir, rejects)
        case _:
            status = "rejected"
    return await load(out_dir, len(rows), sales, stats, status)


# --- generating the input, and running the example (not part of the compiled module) ---


def write_sales_csv(path: Path, rows: int = 2000, seed: int = 7) -> Path:
    """Seeded random sales; about one row in a hundred is broken in some way."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(FIELDS)
        for order_id in range(1, rows + 1):
            product = rng.choice(sorted(PRODUCTS))
            row = [
                str(order_id),
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                (
                    rng.choice(REGIONS).title()
                    if rng.random() < 0.3
                    else rng.choice(REGIONS)
                ),
                product,
                str(rng.randint(1, 40)),
                f"{PRODUCTS[product]:.2f}",
            ]
            if rng.random() < 0.01:
                column, bad = rng.choice(
                    [(2, "Atlantis"), (4, "-3"), (5, "n/a"), (1, "2024-13-01")]
                )
                row[column] = bad
            writer.writerow(row)
    return path


def main() -> None:
    compiled = compiled_module(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as scratch:
        data = write_sales_csv(Path(scratch, "sales.csv"))
        out, reference_out = Path(scratch, "out"), Path(scratch, "reference")
        out.mkdir()
        reference_out.mkdir()
        started = time.perf_counter()
        summary = compiled.etl(str(data), str(out))
        compiled_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = asyncio.run(etl(str(data), str(reference_out)))
        source_seconds = time.perf_counter() - started
        same_files = all(
            (out / name).read_bytes() == (reference_out / name).read_bytes()
            for name in reference.files
        )
    for field, value in asdict(summary).items():
        print(f"{field:>14}: {value}")
    print(
        f"compiled: {compiled_seconds * 1000:.0f} ms   source (one call at a time): "
        f"{source_seconds * 1000:.0f} ms   speedup: {source_seconds / compiled_seconds:.1f}x"
    )
    if asdict(summary) != asdict(reference) or not same_files:
        raise SystemExit("the compiled flow and the source disagree")
    print("compiled result == source result (and the same files written)")


if __name__ == "__main__":
    main()
