"""``broker usage import FILE``: a FOCUS usage CSV into usage records, all rows or none."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.domain import utcnow
from broker.gpus import GpuCatalog
from broker.usage import focus, repository
from broker.usage.models import UsageRecord
from broker.usage.service import digest

MAX_LISTED_ERRORS = 50


class ImportRejected(Exception):
    """Some rows did not validate: nothing was stored. ``errors`` holds (line, reason) for every bad row."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        shown = "; ".join(f"line {n}: {msg}" for n, msg in errors[:MAX_LISTED_ERRORS])
        more = f"; and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        super().__init__(f"{len(errors)} row(s) failed validation, nothing was imported: {shown}{more}")


@dataclass(slots=True)
class ImportResult:
    imported: int = 0
    already_stored: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)


def _resolver(catalog: GpuCatalog) -> focus.GpuResolve:
    def resolve(name: str) -> str | None:
        model = catalog.get(name) or catalog.resolve("canonical", name)
        if model is None:
            hits = catalog.matching(name)
            model = hits[0] if len(hits) == 1 else None
        return model.id if model is not None else None

    return resolve


def import_focus(engine: Engine, catalog: GpuCatalog, text: str) -> ImportResult:
    with Session(engine) as session:
        seen_cache: dict[tuple[str, str], tuple[str, int] | None] = {}

        def lookup(provider: str, instance_type: str) -> tuple[str, int] | None:
            key = (provider, instance_type)
            if key not in seen_cache:
                seen_cache[key] = repository.instance_gpus(session, [key]).get(key)
            return seen_cache[key]

        bill = focus.parse(text, lookup, _resolver(catalog))
        if bill.errors:
            raise ImportRejected(bill.errors)
        result = ImportResult(skipped=bill.skipped)
        records: list[UsageRecord] = []
        occurrences: dict[str, int] = {}
        for row in bill.rows:
            fields = dict(row.fields)
            content_hash = digest({k: v for k, v in fields.items() if k != "report_id"})
            report_id = fields.pop("report_id") or f"focus:{content_hash[:40]}"
            occurrences[report_id] = occurrences.get(report_id, 0) + 1
            if occurrences[report_id] > 1:  # the same charge twice in one bill: keep both
                report_id = f"{report_id}#{occurrences[report_id]}"
            records.append(
                UsageRecord(
                    report_id=report_id, content_hash=content_hash, origin="focus", received_at=utcnow(), **fields
                )
            )
        stored = repository.existing_report_ids(session, [r.report_id for r in records])
        fresh = [r for r in records if r.report_id not in stored]
        result.already_stored = len(records) - len(fresh)
        session.add_all(fresh)
        session.commit()  # one transaction: every row or none
        result.imported = len(fresh)
        return result
