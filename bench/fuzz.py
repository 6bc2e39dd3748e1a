"""Fuzzing with atheris: each decoder of signed input, for a set time, from its seed corpus.

The targets are the table in ``tests/fuzz/targets.py`` (the hypothesis fuzz tests use the
same table, the same properties and the same mutations): peer events (``unseal``), site
events (``unseal_as(SITE_EVENTS, ...)``), the site hub's client frames, presence@2
documents, invited-network credentials and revocations. Every input must be read as
something a seed was read as, or refused with the target's typed error; an input that breaks
either rule is a *finding*.

Each target runs in its own process (``--worker``) under libFuzzer for ``--seconds``:
``hereabouts`` is instrumented for coverage, the corpus starts from the genuinely signed
seeds, and half the mutations are libFuzzer's own (bytes), half ours (JSON-level: duplicate
and reordered keys, added fields, changed values, deep nesting, unicode tricks). A finding
does not stop the run: the worker writes the first input of each kind of finding to
``--findings DIR`` (``<target>-<kind>-<hash>.bin`` and a ``.txt`` saying what broke) and
keeps going. libFuzzer's own stops (an input slower than ``--input-timeout`` seconds, memory
past ``--rss-limit-mb``, a crash of the harness) are findings too; the run then resumes with
the corpus gathered so far until the time is spent.

Reported per target: executions, executions per second, coverage (libFuzzer's ``cov``
edges and ``ft`` features, at start and end), corpus units added, findings. Exit status 1
when anything was found. ``DIR/summary.json`` holds the same figures.

Run: ``make fuzz`` or ``.venv/bin/python bench/fuzz.py [--seconds 60] [--targets a,b]
[--findings DIR] [--corpus DIR]`` (needs the ``fuzz`` extra: ``pip install -e '.[fuzz]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
MAX_RESTARTS = 5
"""Runs of one target after libFuzzer stopped on an input: past this, the same stop keeps
coming back and more time would not tell more."""


# --- the worker: one target under libFuzzer --------------------------------------------------


def worker(name: str, findings: Path, libfuzzer_args: list[str]) -> None:
    import random

    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["hereabouts"]):
        from tests.fuzz import targets
    from tests.fuzz.mutations import RandomChoices, mutate

    target = targets.BY_NAME[name]
    corpus = targets.corpus(target)
    seen: dict[str, dict[str, float]] = {}  # key -> inputs, seconds to the first
    summary = findings / f"{name}.findings.json"
    started = time.monotonic()
    written = [0.0]  # when the counts were last written: libFuzzer exits without warning

    def record(finding: targets.Finding, data: bytes) -> None:
        first = finding.key not in seen
        if first:
            seen[finding.key] = {"inputs": 0, "first_after_s": round(time.monotonic() - started, 1)}
        seen[finding.key]["inputs"] += 1
        if first:
            stem = f"{name}-{finding.kind}-{targets.seed_signature(data)}"
            (findings / f"{stem}.bin").write_bytes(data)
            cause = finding.__cause__
            trace = "".join(traceback.format_exception(cause)) if cause is not None else ""
            (findings / f"{stem}.txt").write_text(f"{finding}\n\n{trace}")
        if first or time.monotonic() - written[0] > 1:
            summary.write_text(json.dumps(seen, indent=1, sort_keys=True))
            written[0] = time.monotonic()

    def test_one_input(data: bytes) -> None:
        try:
            targets.check(target, data)
        except targets.Finding as finding:
            record(finding, data)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(data, corpus.seeds, RandomChoices(rng), corpus.vocabulary)[:max_size]

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input, custom_mutator=mutator)
    atheris.Fuzz()


# --- the driver: every target, one process each -------------------------------------------


_STATUS = re.compile(
    r"^#(\d+)\s+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)\s+cov: (\d+) ft: (\d+) corp: (\d+)/"
)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


def parse_log(text: str) -> dict[str, int]:
    """Figures from libFuzzer's output: the first and last status lines, the final stats."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        status = _STATUS.match(line)
        if status:
            runs, kind, cov, ft, corp = status.groups()
            if kind == "INITED" and "cov_start" not in out:
                out.update(cov_start=int(cov), ft_start=int(ft), corpus_start=int(corp))
            out.update(runs=int(runs), cov=int(cov), ft=int(ft), corpus=int(corp))
        stat = _STAT.match(line)
        if stat:
            out[stat.group(1)] = int(stat.group(2))
    return out


def run_target(
    name: str, seconds: float, findings: Path, corpus_dir: Path, input_timeout: int,
    rss_limit_mb: int,
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.fuzz import targets

    target = targets.BY_NAME[name]
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for seed in targets.corpus(target).seeds:
        (corpus_dir / f"seed-{targets.seed_signature(seed)}").write_bytes(seed)
    artifacts = findings / f"{name}-libfuzzer-"
    totals: dict[str, Any] = {"target": name, "executions": 0, "seconds": 0.0, "stops": []}
    deadline = time.monotonic() + seconds
    for _ in range(MAX_RESTARTS + 1):
        remaining = int(deadline - time.monotonic())
        if remaining < 2:
            break
        args = [
            sys.executable, __file__, "--worker", name, "--findings", str(findings), "--",
            f"-max_total_time={remaining}", f"-timeout={input_timeout}",
            f"-rss_limit_mb={rss_limit_mb}", f"-max_len={target.max_size + 1024}",
            f"-artifact_prefix={artifacts}", "-print_final_stats=1", str(corpus_dir),
        ]
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as log_file:
            try:
                process = subprocess.run(
                    args, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
                    timeout=remaining + 120,
                )
                code: int | str = process.returncode
            except subprocess.TimeoutExpired:
                code = "killed: did not stop in time"
            log_file.seek(0)
            output = log_file.read()
        elapsed = time.monotonic() - started
        figures = parse_log(output)
        totals["executions"] += figures.get("number_of_executed_units", figures.get("runs", 0))
        totals["seconds"] += elapsed
        for key in ("cov_start", "ft_start", "corpus_start"):
            totals.setdefault(key, figures.get(key))
        for key in ("cov", "ft", "corpus", "peak_rss_mb"):
            if key in figures:
                totals[key] = figures[key]
        totals["new_units"] = totals.get("new_units", 0) + figures.get("new_units_added", 0)
        if code == 0:
            break
        reason = next(
            (line.strip() for line in output.splitlines() if "ERROR: libFuzzer" in line
             or "Uncaught Python exception" in line),
            f"worker exited with {code}",
        )
        totals["stops"].append(reason)
        (findings / f"{name}-stop-{len(totals['stops'])}.log").write_text(output[-20_000:])
    found_file = findings / f"{name}.findings.json"
    totals["findings"] = json.loads(found_file.read_text()) if found_file.exists() else {}
    totals["artifacts"] = sorted(
        p.name for p in findings.iterdir() if p.name.startswith(f"{name}-libfuzzer-")
    )
    totals["exec_per_s"] = round(totals["executions"] / max(totals["seconds"], 1e-9))
    return totals


def report(rows: list[dict[str, Any]]) -> str:
    """A table; counts of violating inputs are those written in the last second or more."""
    head = (f"{'target':<12} {'execs':>10} {'execs/s':>8} {'cov':>11} {'ft':>13} "
            f"{'+units':>7} {'findings':>8} {'stops':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cov = f"{r.get('cov_start', '?')}→{r.get('cov', '?')}"
        ft = f"{r.get('ft_start', '?')}→{r.get('ft', '?')}"
        lines.append(
            f"{r['target']:<12} {r['executions']:>10,} {r['exec_per_s']:>8,} {cov:>11} {ft:>13} "
            f"{r.get('new_units', 0):>7} {len(r['findings']):>8} {len(r['stops']):>5}"
        )
        for key, found in sorted(r["findings"].items()):
            lines.append(f"    finding {key}: {found['inputs']:,} input(s) or more, the first "
                         f"after {found['first_after_s']:g} s")
        for stop in r["stops"]:
            lines.append(f"    libFuzzer stopped: {stop}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument("--targets", default="", help="comma-separated names (default: all)")
    parser.add_argument("--findings", type=Path, default=None,
                        help="where findings go (default: a new /tmp/hereabouts-fuzz-* dir)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="keep each target's corpus in DIR/<target> across runs")
    parser.add_argument("--input-timeout", type=int, default=10,
                        help="seconds one input may take before it is a finding (default 10)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    findings = args.findings or Path(tempfile.mkdtemp(prefix="hereabouts-fuzz-", dir="/tmp"))
    findings.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.worker, findings, args.libfuzzer)
        return 0

    try:
        import atheris  # noqa: F401
    except ImportError:
        print("bench/fuzz.py needs atheris: .venv/bin/pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from tests.fuzz.targets import TARGETS

    names = [n for n in args.targets.split(",") if n] or [t.name for t in TARGETS]
    unknown = set(names) - {t.name for t in TARGETS}
    if unknown:
        print(f"unknown target(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="hereabouts-fuzz-corpus-"))
    rows = []
    try:
        for name in names:
            print(f"fuzzing {name} for {args.seconds:g} s ...", file=sys.stderr, flush=True)
            corpus_dir = (args.corpus or scratch) / name
            rows.append(run_target(name, args.seconds, findings, corpus_dir,
                                   args.input_timeout, args.rss_limit_mb))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {
        "seconds_per_target": args.seconds,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "targets": rows,
    }
    (findings / "summary.json").write_text(json.dumps(summary, indent=2))
    print(report(rows))
    print(f"findings and summary in {findings}")
    found = any(r["findings"] or r["stops"] for r in rows)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
