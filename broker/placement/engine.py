"""Placement: from a job and the current offers to the cheapest feasible option by expected effective cost.

Speed comes from work done once per (index, catalog, config): offers are grouped into *buckets* that share
everything group-level checks need (GPU model, provider, region, purchase kind, host arch) and each bucket is
sorted by price per GPU-hour. A request then
  1. settles the acceptable models and rules whole buckets in or out (counts by reason, no per-offer work);
  2. walks the eligible buckets cheapest-first through a heap keyed by a lower bound of each offer's cost
     (count · $/GPU-h · work hours + the bucket's egress), evaluating offers one by one;
  3. stops once the next bound exceeds the k-th best expected cost found: nothing left can enter the answer.
So ``rejected`` counts every offer ruled out by group, and per-offer reasons for the offers examined; offers past
the bound are not examined (``Decision.examined`` says how many were). When nothing is feasible every offer has been
examined, so ``Infeasible.rejected`` is complete.

Held commitments: a committed offer (reserved, savings plan, committed use, contract) is a candidate only when
the user holds it: ``attrs["held_commitment"]`` is true, or a ``held_commitments`` entry of the request or of
config/placement.toml matches it. Its marginal price is 0 for up to ``unused_instances`` (or
``attrs["unused_quantity"]``) nodes, because the commitment is paid whether used or not (SkyPilot's optimizer
costs unused reservations at 0 too); nodes beyond that pay the list price (else the committed rate). With no
unused count given the commitment is taken to be idle.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from broker.domain import COMMITTED_PURCHASES, Availability, Purchase
from broker.gpus import GpuCatalog, GpuModel, UnknownGpu
from broker.offers.index import IndexedOffer, OfferIndex
from broker.placement.costmodel import HOURS_PER_MONTH, PlacementConfig, estimate_run
from broker.placement.launch import launch_spec
from broker.placement.schemas import (
    Breakdown,
    Decision,
    HeldCommitment,
    Option,
    PlaceRequest,
    RejectReason,
)

_CENT4 = Decimal("0.0001")
_SPOT, _COMMITTED, _OTHER = 0, 1, 2
_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}


class Infeasible(Exception):
    """No offer satisfies the job; ``rejected`` counts the offers by the first reason that ruled each out."""

    def __init__(self, message: str, rejected: dict[str, int]) -> None:
        super().__init__(message)
        self.rejected = rejected


# ---------------------------------------------------------------- per-index preparation


@dataclass(frozen=True, slots=True)
class _Prep:
    offer: IndexedOffer
    gpu_hourly: float
    node_rate: float  # spot interruptions per node-hour (0 off spot)
    rate_source: str  # where node_rate came from, for the answer's reasons
    confirmed_ts: float


@dataclass(frozen=True, slots=True)
class _Bucket:
    model: GpuModel
    provider: str
    region: str
    kind: int
    arch: str
    country: str | None
    offers: tuple[_Prep, ...]  # cheapest per GPU-hour first
    has_held_attr: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    buckets: Mapping[str, tuple[_Bucket, ...]]  # catalog model id -> buckets
    model_sizes: Mapping[str, int]
    unplaceable: int  # offers whose GPU is unknown or not in this catalog
    total: int


_CACHE: list[tuple[OfferIndex, GpuCatalog, PlacementConfig, _Prepared]] = []


def warm(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    """Prepare ``index`` ahead of the first request (call it right after swapping a new index in)."""
    _prepared(index, catalog, cfg)


def _prepared(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig) -> _Prepared:
    for idx, cat, conf, prep in _CACHE:
        if idx is index and cat is catalog and conf is cfg:
            return prep
    prep = _prepare(index, catalog, cfg)
    _CACHE.insert(0, (index, catalog, cfg, prep))
    del _CACHE[2:]  # the live index and the one being swapped in
    return prep


def offer_arch(offer: IndexedOffer, model: GpuModel, cfg: PlacementConfig) -> str:
    raw = offer.attrs.get("arch")
    if isinstance(raw, str) and raw.lower() in _ARCH_ALIASES:
        return _ARCH_ALIASES[raw.lower()]
    arm = cfg.placement.arch.arm64_models
    if model.id in arm or model.family in arm:
        return "arm64"
    return model.arch


def spot_rate(offer: IndexedOffer, cfg: PlacementConfig) -> tuple[float, str]:
    """Interruptions per node-hour: the offer's own measured rate, else its band's, else the provider prior."""
    attrs = offer.attrs
    measured = attrs.get("interruption_rate_per_hour")
    if isinstance(measured, int | float) and not isinstance(measured, bool) and measured >= 0:
        return float(measured), "measured for this offer"
    band = attrs.get("interruption_band")
    if isinstance(band, str) and (rate := cfg.band_rate(band)) is not None:
        return rate, f"interruption band {band}"
    return cfg.provider_rate(offer.key.provider), f"{offer.key.provider} prior"


def _kind(purchase: str) -> int:
    if purchase == Purchase.SPOT:
        return _SPOT
    return _COMMITTED if purchase in COMMITTED_PURCHASES else _OTHER


def _prepare(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig) -> _Prepared:
    groups: dict[tuple[str, str, str, int, str], list[_Prep]] = {}
    models: dict[str, GpuModel] = {}
    unplaceable = 0
    for model_id, offers in index.by_gpu.items():
        model = catalog.get(model_id)
        for o in offers:
            if model is None or not o.gpu_known or o.gpu_count <= 0:
                unplaceable += 1
                continue
            models[model.id] = model
            kind = _kind(o.key.purchase)
            rate, source = spot_rate(o, cfg) if kind == _SPOT else (0.0, "")
            key = (model.id, o.key.provider, o.key.region, kind, offer_arch(o, model, cfg))
            groups.setdefault(key, []).append(
                _Prep(o, o.hourly_usd / o.gpu_count, rate, source, o.last_confirmed_at.timestamp())
            )
    buckets: dict[str, list[_Bucket]] = {}
    sizes: dict[str, int] = {}
    for (model_id, provider, region, kind, arch), preps in groups.items():
        preps.sort(key=lambda p: (p.gpu_hourly, p.offer.offer_id))
        bucket = _Bucket(
            models[model_id],
            provider,
            region,
            kind,
            arch,
            cfg.country_of(provider, region),
            tuple(preps),
            any(p.offer.attrs.get("held_commitment") is True for p in preps),
        )
        buckets.setdefault(model_id, []).append(bucket)
        sizes[model_id] = sizes.get(model_id, 0) + len(preps)
    return _Prepared({k: tuple(v) for k, v in buckets.items()}, sizes, unplaceable, len(index.offers))


# ---------------------------------------------------------------- per-request settings


@dataclass(frozen=True, slots=True)
class _Job:
    req: PlaceRequest
    count: int
    work_h: Mapping[str, float]  # model id -> hours on it
    write_h: float
    restart_h: float
    interval_h: float | None  # None: Young/Daly per option
    ckpt_gb: float
    copies: int
    hw_rate: float  # per GPU-hour
    wait_h: float
    max_nodes: int
    now_ts: float
    req_max_age_s: float
    max_age_s: Mapping[str, float]
    max_hourly: float
    max_total: float
    deadline_h: float
    held: tuple[HeldCommitment, ...]


_MATCHES: dict[tuple[int, str], tuple[GpuCatalog, list[GpuModel]]] = {}


def _model_list(catalog: GpuCatalog, query: str, field: str) -> list[GpuModel]:
    # catalog.matching normalises every model's names on each call: memoise per catalog object
    hit = _MATCHES.get((id(catalog), query))
    if hit is not None and hit[0] is catalog:
        found = hit[1]
    else:
        found = catalog.matching(query)
        if len(_MATCHES) > 4096:
            _MATCHES.clear()
        _MATCHES[(id(catalog), query)] = (catalog, found)
    if not found:
        raise UnknownGpu(f"{field}: {query!r} matches no GPU model in the catalog")
    return found


def _work_hours(req: PlaceRequest, catalog: GpuCatalog, models: Sequence[GpuModel]) -> dict[str, float]:
    refs = _model_list(catalog, req.work.reference_gpu, "work.reference_gpu")
    if len({m.relative_throughput for m in refs}) > 1:
        names = ", ".join(m.id for m in refs)
        raise UnknownGpu(f"work.reference_gpu: {req.work.reference_gpu!r} is ambiguous ({names}): name one model")
    ref = refs[0]
    override: dict[str, float] = {}
    for key, factor in req.work.speedups.items():
        for m in _model_list(catalog, key, f"work.speedups.{key}"):
            if m.id not in override or catalog.get(key) is m:  # an exact id beats a family
                override[m.id] = factor
    return {m.id: req.work.hours / override.get(m.id, m.relative_throughput / ref.relative_throughput) for m in models}


def _job(
    req: PlaceRequest,
    catalog: GpuCatalog,
    cfg: PlacementConfig,
    models: Sequence[GpuModel],
    now: datetime,
    index: OfferIndex,
) -> _Job:
    ck, dflt, c = req.checkpoint, cfg.placement.checkpoint, req.constraints
    stateless = req.workload == "inference"  # serving loses no work on interruption: only the restart
    interval = None if ck.interval_minutes == "auto" else float(ck.interval_minutes) / 60.0
    return _Job(
        req=req,
        count=req.gpu.count,
        work_h=_work_hours(req, catalog, models),
        write_h=0.0 if stateless else (ck.write_minutes if ck.write_minutes is not None else dflt.write_minutes) / 60,
        restart_h=(ck.restart_minutes if ck.restart_minutes is not None else dflt.restart_minutes) / 60.0,
        interval_h=None if stateless else interval,
        ckpt_gb=0.0 if stateless else (ck.size_gb if ck.size_gb is not None else dflt.size_gb),
        copies=dflt.copies,
        hw_rate=cfg.placement.interruption.hardware_failure_rate_per_gpu_hour,
        wait_h=cfg.placement.interruption.spot_wait_minutes / 60.0,
        max_nodes=cfg.placement.limits.max_nodes,
        now_ts=now.timestamp(),
        req_max_age_s=c.max_price_age_minutes * 60.0 if c.max_price_age_minutes else math.inf,
        max_age_s={s: a.total_seconds() for s, a in index.max_age.items()},
        max_hourly=float(c.max_hourly_usd) if c.max_hourly_usd is not None else math.inf,
        max_total=float(c.max_total_usd) if c.max_total_usd is not None else math.inf,
        deadline_h=c.deadline_hours if c.deadline_hours is not None else math.inf,
        held=(*req.held_commitments, *cfg.placement.commitments.held),
    )


def _gpu_reason(req: PlaceRequest, model: GpuModel, allowed: set[str] | None) -> RejectReason | None:
    g = req.gpu
    if allowed is not None and model.id not in allowed:
        return RejectReason.WRONG_GPU
    if g.min_memory_gb is not None and model.memory_gb < g.min_memory_gb:
        return RejectReason.WRONG_GPU
    if g.min_compute_capability is not None and (
        model.compute_capability is None or float(model.compute_capability) < g.min_compute_capability
    ):
        return RejectReason.WRONG_GPU
    if g.vendor is not None and model.vendor != g.vendor:
        return RejectReason.NOT_PORTABLE  # e.g. a CUDA image on an AMD GPU
    return None


def _matches(h: HeldCommitment, o: IndexedOffer, with_type: bool) -> bool:
    k = o.key
    return (
        h.provider == k.provider
        and (h.purchase is None or h.purchase == k.purchase)
        and (h.region is None or h.region == k.region)
        and (not with_type or h.instance_type is None or h.instance_type == k.instance_type)
    )


def _bucket_reason(job: _Job, b: _Bucket, cfg: PlacementConfig) -> RejectReason | None:
    req, c = job.req, job.req.constraints
    if b.arch != req.arch:
        return RejectReason.NOT_PORTABLE
    if (c.providers and b.provider not in c.providers) or b.provider in c.exclude_providers:
        return RejectReason.CONSTRAINT
    if c.regions and b.region not in c.regions:
        return RejectReason.CONSTRAINT
    if c.jurisdictions and not cfg.in_jurisdictions(b.country, c.jurisdictions):
        return RejectReason.CONSTRAINT
    if b.kind == _SPOT and not req.spot_allowed:
        return RejectReason.CONSTRAINT
    if (
        b.kind == _COMMITTED
        and not b.has_held_attr
        and not any(_matches(h, b.offers[0].offer, with_type=False) for h in job.held)
    ):
        return RejectReason.CONSTRAINT
    return None


# ---------------------------------------------------------------- per-offer evaluation


@dataclass(frozen=True, slots=True)
class _Eval:
    cost: float
    prep: _Prep
    bucket: _Bucket
    nodes: int
    hourly: float  # all nodes, marginal
    free_nodes: int  # nodes on idle held commitments
    rate: float  # gang interruptions per hour
    interval_h: float
    wall_h: float
    ff_h: float  # failure-free hours (work + checkpoint writes)
    interruptions: float
    makespan_h: float
    egress: float
    storage: float
    transfer_h: float


def _held_price(job: _Job, p: _Prep, nodes: int) -> tuple[float, int] | None:
    """(hourly for all nodes, nodes that cost nothing) on a held commitment, None if it is not held."""
    o = p.offer
    entries = [h for h in job.held if _matches(h, o, with_type=True)]
    if not entries and o.attrs.get("held_commitment") is not True:
        return None
    unused: int | None = None
    raw = o.attrs.get("unused_quantity")
    if isinstance(raw, int) and not isinstance(raw, bool):
        unused = raw
    for h in entries:
        if h.unused_instances is not None:
            unused = h.unused_instances if unused is None else max(unused, h.unused_instances)
    free = nodes if unused is None else min(nodes, max(unused, 0))
    overflow_rate = o.list_hourly_usd if o.list_hourly_usd is not None else o.hourly_usd
    return (nodes - free) * overflow_rate, free


def _evaluate(
    job: _Job, b: _Bucket, p: _Prep, egress: float, transfer_h: float, cfg: PlacementConfig
) -> _Eval | RejectReason:
    o, req = p.offer, job.req
    gpn = o.gpu_count
    nodes = -(-job.count // gpn)
    if nodes > job.max_nodes:
        return RejectReason.CONSTRAINT
    if req.cpus is not None and o.vcpus is not None and o.vcpus < req.cpus:
        return RejectReason.CONSTRAINT
    if req.memory_gb is not None and o.memory_gb is not None and o.memory_gb < req.memory_gb:
        return RejectReason.CONSTRAINT
    if nodes > 1 and req.interconnect is not None:
        ic = req.interconnect
        fabric = o.attrs.get("interconnect")
        if ic.fabrics and not (isinstance(fabric, str) and fabric.lower() in ic.fabrics):
            return RejectReason.CONSTRAINT
        gbps = o.attrs.get("network_gbps")
        if ic.min_gbps is not None and not (isinstance(gbps, int | float) and gbps >= ic.min_gbps):
            return RejectReason.CONSTRAINT
    free = 0
    if b.kind == _COMMITTED:
        held = _held_price(job, p, nodes)
        if held is None:
            return RejectReason.CONSTRAINT
        hourly, free = held
    else:
        hourly = nodes * o.hourly_usd
    age = job.now_ts - p.confirmed_ts
    if age > job.req_max_age_s or age > job.max_age_s.get(o.source, math.inf):
        return RejectReason.STALE_PRICE
    if o.availability is Availability.UNAVAILABLE or (
        job.req.constraints.require_available and o.availability is not Availability.AVAILABLE
    ):
        return RejectReason.UNAVAILABLE
    if o.available_quantity is not None and o.available_quantity < nodes:
        return RejectReason.UNAVAILABLE
    if hourly > job.max_hourly:
        return RejectReason.OVER_BUDGET
    spot = nodes * p.node_rate
    rate = spot + nodes * gpn * job.hw_rate
    work_h = job.work_h[b.model.id]
    run = estimate_run(work_h, rate, spot, job.write_h, job.restart_h, job.interval_h, job.wait_h, transfer_h)
    if math.isinf(run.wall_h):
        return RejectReason.MISSES_DEADLINE  # interrupted faster than it can progress: it never finishes
    storage = job.ckpt_gb * job.copies * cfg.storage_usd_per_gb_month(b.provider) * run.makespan_h / HOURS_PER_MONTH
    cost = hourly * run.wall_h + egress + storage
    if cost > job.max_total:
        return RejectReason.OVER_BUDGET
    if run.makespan_h > job.deadline_h:
        return RejectReason.MISSES_DEADLINE
    ff = min(run.wall_h, work_h * (1.0 + job.write_h / run.interval_h)) if 0 < run.interval_h < math.inf else work_h
    return _Eval(
        cost,
        p,
        b,
        nodes,
        hourly,
        free,
        rate,
        run.interval_h,
        run.wall_h,
        ff,
        run.interruptions,
        run.makespan_h,
        egress,
        storage,
        transfer_h,
    )


def _egress(job: _Job, b: _Bucket, cfg: PlacementConfig) -> tuple[float, float]:
    """(USD, hours) to bring the job's input data to the bucket's region."""
    data = job.req.data
    if data is None or data.size_gb <= 0 or (data.provider == b.provider and data.region == b.region):
        return 0.0, 0.0
    usd = cfg.egress_usd(data.provider, data.region, b.provider, b.region, data.size_gb)
    return usd, data.size_gb * 8.0 / (cfg.placement.transfer.gbps * 3600.0)


# ---------------------------------------------------------------- the search


@dataclass(slots=True)
class _Search:
    rejected: dict[str, int]
    examined: int
    best: list[tuple[float, float, int, int, _Eval]]  # max-heap via negated keys, size <= keep


def _search(job: _Job, prep: _Prepared, catalog: GpuCatalog, cfg: PlacementConfig, keep: int) -> _Search:
    req = job.req
    rejected = {r.value: 0 for r in RejectReason}
    allowed: set[str] | None = None
    if req.gpu.models:
        allowed = {m.id for q in req.gpu.models for m in _model_list(catalog, q, "gpu.models")}
    rejected[RejectReason.WRONG_GPU] += prep.unplaceable
    heap: list[tuple[float, int, int, _Bucket, float, float, float]] = []
    seq = 0
    for model_id, buckets in prep.buckets.items():
        model = buckets[0].model
        reason = _gpu_reason(req, model, allowed) if model_id in job.work_h else RejectReason.WRONG_GPU
        if reason is not None:
            rejected[reason] += prep.model_sizes[model_id]
            continue
        per_hour_bound = job.count * job.work_h[model_id]
        for b in buckets:
            reason = _bucket_reason(job, b, cfg)
            if reason is not None:
                rejected[reason] += len(b.offers)
                continue
            egress, transfer_h = _egress(job, b, cfg)
            factor = 0.0 if b.kind == _COMMITTED else per_hour_bound  # held commitments may cost nothing
            heap.append((factor * b.offers[0].gpu_hourly + egress, seq, 0, b, factor, egress, transfer_h))
            seq += 1
    heapq.heapify(heap)
    best: list[tuple[float, float, int, int, _Eval]] = []
    examined = 0
    while heap:
        bound, _, i, b, factor, egress, transfer_h = heap[0]
        if len(best) >= keep and bound > -best[0][0]:
            break
        p = b.offers[i]
        if i + 1 < len(b.offers):
            nxt = b.offers[i + 1]
            heapq.heapreplace(heap, (factor * nxt.gpu_hourly + egress, seq, i + 1, b, factor, egress, transfer_h))
            seq += 1
        else:
            heapq.heappop(heap)
        examined += 1
        ev = _evaluate(job, b, p, egress, transfer_h, cfg)
        if isinstance(ev, RejectReason):
            rejected[ev] += 1
            continue
        entry = (-ev.cost, -ev.makespan_h, -p.offer.offer_id, seq, ev)
        seq += 1
        if len(best) < keep:
            heapq.heappush(best, entry)
        elif entry > best[0]:
            heapq.heapreplace(best, entry)
    return _Search(rejected, examined, best)


def _candidate_models(req: PlaceRequest, catalog: GpuCatalog) -> list[GpuModel]:
    if req.gpu.models:
        seen: dict[str, GpuModel] = {}
        for q in req.gpu.models:
            for m in _model_list(catalog, q, "gpu.models"):
                seen.setdefault(m.id, m)
        return list(seen.values())
    return list(catalog.models())


def place(job: PlaceRequest, index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig, now: datetime) -> Decision:
    """The cheapest feasible option by expected cost, up to ``job.alternatives`` runners-up, and launch specs.

    Raises ``Infeasible`` when nothing fits, ``UnknownGpu`` when a GPU named in the request is not in the catalog.
    """
    prep = _prepared(index, catalog, cfg)
    settings = _job(job, catalog, cfg, _candidate_models(job, catalog), now, index)
    found = _search(settings, prep, catalog, cfg, job.alternatives + 1)
    if not found.best:
        summary = ", ".join(f"{k} {v}" for k, v in found.rejected.items() if v) or "no offers in the index"
        raise Infeasible(f"no offer fits the job ({summary})", found.rejected)
    ranked = [e[4] for e in sorted(found.best, reverse=True)]
    options = [_option(e, settings, cfg, now) for e in ranked]
    return Decision(
        choice=options[0],
        alternatives=options[1:],
        rejected=found.rejected,
        examined=found.examined,
        launch=launch_spec(job, options[0], catalog),
    )


def evaluate_all(
    job: PlaceRequest, index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig, now: datetime
) -> list[Option]:
    """Every feasible option, cheapest first, without the cost bound (for audits and tests; slow on big indexes)."""
    prep = _prepared(index, catalog, cfg)
    settings = _job(job, catalog, cfg, _candidate_models(job, catalog), now, index)
    found = _search(settings, prep, catalog, cfg, keep=len(index.offers) + 1)
    return [_option(e[4], settings, cfg, now) for e in sorted(found.best, reverse=True)]


# ---------------------------------------------------------------- the answer


def _usd(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(_CENT4, rounding=ROUND_HALF_EVEN)


def _option(e: _Eval, job: _Job, cfg: PlacementConfig, now: datetime) -> Option:
    o, b = e.prep.offer, e.bucket
    total = _usd(e.cost)
    interruptions = _usd(e.hourly * (e.wall_h - e.ff_h))
    egress, storage = _usd(e.egress), _usd(e.storage)
    compute = total - interruptions - egress - storage  # carries the rounding so the parts sum exactly
    gpn = o.gpu_count
    if b.kind == _COMMITTED:
        overflow = o.list_hourly_usd if o.list_hourly_usd is not None else o.hourly_usd
        hourly = Decimal(repr(overflow)) * (e.nodes - e.free_nodes)
    else:
        hourly = Decimal(repr(o.hourly_usd)) * e.nodes
    return Option(
        offer_id=o.offer_id,
        provider=o.key.provider,
        region=o.key.region,
        zone=o.key.zone,
        instance_type=o.key.instance_type,
        purchase=o.key.purchase,
        term=o.key.term,
        gpu_model=b.model.id,
        gpus_per_node=gpn,
        nodes=e.nodes,
        hourly_usd=hourly,
        price_observed_at=o.last_confirmed_at,
        availability=o.availability,
        work_hours=job.work_h[b.model.id],
        expected_hours=e.wall_h,
        expected_makespan_hours=e.makespan_h,
        expected_interruptions=e.interruptions,
        interruption_rate_per_hour=e.rate,
        checkpoint_interval_minutes=e.interval_h * 60.0 if 0 < e.interval_h < math.inf else None,
        expected_cost_usd=total,
        breakdown=Breakdown(compute=compute, interruptions=interruptions, egress=egress, checkpoint_storage=storage),
        reasons=_reasons(e, job, now),
        demo=o.demo,
    )


def _reasons(e: _Eval, job: _Job, now: datetime) -> list[str]:
    o, b, req = e.prep.offer, e.bucket, job.req
    work_h = job.work_h[b.model.id]
    out = [
        f"{b.model.id} does the job in {work_h:.3g} h of work ({req.work.hours / work_h:.3g}x the "
        f"{req.work.reference_gpu} reference)"
    ]
    if e.nodes > 1:
        out.append(f"{e.nodes} nodes of {o.gpu_count} GPUs; losing any node interrupts the whole job")
    elif o.gpu_count > job.count:
        out.append(f"the instance has {o.gpu_count} GPUs and the job uses {job.count}: the idle ones are paid for")
    if b.kind == _SPOT:
        extra = (e.wall_h / work_h - 1.0) * 100.0
        out.append(
            f"spot: {e.rate:.3g} interruptions/h for the gang ({e.prep.rate_source}), about "
            f"{e.interruptions:.3g} expected; lost work and restarts add {extra:.3g}% run time"
        )
    elif b.kind == _COMMITTED:
        out.append(f"held commitment: {e.free_nodes} of {e.nodes} nodes use idle committed capacity at no extra cost")
    else:
        out.append(f"{o.key.purchase.replace('_', ' ')}: not reclaimed; only rare hardware failures interrupt it")
    if 0 < e.interval_h < math.inf:
        out.append(f"checkpoint every {e.interval_h * 60:.3g} min")
    if e.egress > 0 and req.data is not None:
        out.append(
            f"moving {req.data.size_gb:g} GB from {req.data.location} costs ${e.egress:,.2f} and {e.transfer_h:.2g} h"
        )
    elif req.data is not None and req.data.size_gb > 0:
        out.append(f"input data ({req.data.location}) moves free of charge here")
    age_min = (now - o.last_confirmed_at) / timedelta(minutes=1)
    out.append(f"price confirmed {age_min:.0f} min ago by {o.source}")
    if o.availability is Availability.UNKNOWN:
        out.append("availability unknown: the provider does not publish capacity")
    return out
