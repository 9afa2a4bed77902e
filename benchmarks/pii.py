"""PII recognizers: recall and precision per kind on the labelled corpus, and what is left after redaction.

    python benchmarks/pii.py [--per-kind 320] [--seed 13] [--show-misses 5]

The corpus (``dataflywheel.synth.pii_corpus``) is customer-service text with at least ``--per-kind`` entities
of each kind in varied formats, and negatives beside them (order numbers, SKUs, tracking numbers, dates,
prices, product names, versions, Luhn-invalid card-like numbers, IBANs with a wrong checksum). Each text is
treated as one record: detection, then the same value found elsewhere in it (as in ingestion).

Counting: a labelled entity is found when a finding of its kind overlaps it (recall); a finding is right when
it overlaps a labelled entity of its kind (precision). "Leaked" counts entities whose text is still in the
masked text (a partial find that left part of a value counts there). "Negatives flagged" counts labelled
negatives any finding touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dataflywheel.privacy.detect import detect_group
from dataflywheel.privacy.redact import _apply
from dataflywheel.synth.pii_corpus import KINDS, generate_corpus, pii_log_records


def ingest_rates(records: int) -> None:
    """Records/s of ``load_file`` into SQLite per redaction mode: synthetic traffic (no PII, 4.6 KB records)
    and records full of PII (e-mail, phone and name in the user turn and the tool call)."""
    from dataflywheel.ingest.jsonl import load_file
    from dataflywheel.logstore import open_log_store
    from dataflywheel.settings import load_settings
    from dataflywheel.synth.generator import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        files = {"synthetic traffic": Path(tmp) / "synth.jsonl", "records with PII": Path(tmp) / "pii.jsonl"}
        files["synthetic traffic"].write_text(
            "\n".join(json.dumps(r) for r in generate(SynthConfig(records=records, seed=2, duplicate_rate=0)))
        )
        files["records with PII"].write_text("\n".join(json.dumps(r) for r in pii_log_records(records, seed=2)))
        print(f"\ningest {records:,} records (load_file into SQLite):\n")
        print("| data | off | mask | pseudonymize |")
        print("|---|---|---|---|")
        for label, path in files.items():
            rates = []
            for mode in ("off", "mask", "pseudonymize"):
                settings = load_settings(home=Path(tmp) / f"{mode}-{path.stem}", privacy={"redact": mode})
                with open_log_store(settings) as store:
                    start = time.perf_counter()
                    report = load_file(store, path)
                    rates.append(report.store.added / (time.perf_counter() - start))
            print(f"| {label} | " + " | ".join(f"{r:,.0f}/s" for r in rates) + " |")


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=320)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--held-out", action="store_true", help="the templates the recognizers were not tuned on (written after)"
    )
    parser.add_argument("--ingest", type=int, default=0, help="also time ingestion of this many records per mode")
    parser.add_argument("--show-misses", type=int, default=0, help="print this many misses and false finds per kind")
    args = parser.parse_args()

    corpus = generate_corpus(per_kind=args.per_kind, seed=args.seed, held_out=args.held_out)
    start = time.perf_counter()
    found = [detect_group([item.text])[0] for item in corpus]
    elapsed = time.perf_counter() - start

    gold, hit, predicted, right, leaked = Counter[str](), Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    negatives, negatives_flagged = Counter[str](), Counter[str]()
    misses: dict[str, list[str]] = {k: [] for k in KINDS}
    false: dict[str, list[str]] = {k: [] for k in KINDS}
    for item, findings in zip(corpus, found, strict=True):
        masked = _apply(item.text, findings, [f"<{f.kind.value.upper()}>" for f in findings])
        for span in item.entities:
            gold[span.label] += 1
            if any(f.kind.value == span.label and _overlaps(f.start, f.end, span.start, span.end) for f in findings):
                hit[span.label] += 1
            elif len(misses[span.label]) < args.show_misses:
                misses[span.label].append(f"{item.text[span.start : span.end]!r} in {item.text!r}")
            if item.text[span.start : span.end] in masked:
                leaked[span.label] += 1
        for f in findings:
            predicted[f.kind.value] += 1
            if any(s.label == f.kind.value and _overlaps(f.start, f.end, s.start, s.end) for s in item.entities):
                right[f.kind.value] += 1
            elif len(false[f.kind.value]) < args.show_misses:
                false[f.kind.value].append(f"{f.text!r} in {item.text!r}")
        for span in item.negatives:
            negatives[span.label] += 1
            if any(_overlaps(f.start, f.end, span.start, span.end) for f in findings):
                negatives_flagged[span.label] += 1

    which = "held-out" if args.held_out else "tuned"
    print(
        f"corpus ({which} templates): {len(corpus)} texts, seed {args.seed}; "
        f"detection {len(corpus) / elapsed:,.0f} texts/s\n"
    )
    print("| kind | entities | recall | precision | leaked after mask |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        recall = hit[kind] / gold[kind] if gold[kind] else float("nan")
        precision = right[kind] / predicted[kind] if predicted[kind] else float("nan")
        print(f"| {kind} | {gold[kind]} | {recall:.3f} | {precision:.3f} | {leaked[kind]} |")
    total_gold, total_hit = sum(gold.values()), sum(hit.values())
    total_pred, total_right = sum(predicted.values()), sum(right.values())
    print(
        f"| all | {total_gold} | {total_hit / total_gold:.3f} | {total_right / total_pred:.3f} "
        f"| {sum(leaked.values())} |"
    )
    print("\nnegatives flagged: " + ", ".join(f"{k} {negatives_flagged[k]}/{n}" for k, n in sorted(negatives.items())))
    if args.ingest:
        ingest_rates(args.ingest)
    if args.show_misses:
        for kind in KINDS:
            for line in misses[kind]:
                print(f"MISS  {kind}: {line}")
            for line in false[kind]:
                print(f"FALSE {kind}: {line}")


if __name__ == "__main__":
    main()
