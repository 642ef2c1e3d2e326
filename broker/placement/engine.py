"""Placement: from a job and the current offers to the cheapest feasible option by expected effective cost.

Speed comes from work done once per (index, catalog, config) in :func:`warm`: offers are grouped into *buckets*
that share everything the group-level checks need (GPU model, host arch, purchase kind, availability, spot-rate
class, provider, region, GPUs per node), each sorted by price per GPU-hour. The buckets of one model, arch, kind,
rate class and node size form a *stream* (one bucket per region and availability, cheapest bucket first); the
streams of one model, arch, kind and rate class form a *group*. A request is a best-first branch and bound:
  1. whole models and groups are ruled in or out at once by GPU, arch, the model's deadline floor, purchase kind
     and availability (counted by reason, no per-offer work); each group left goes on a heap under a lower bound
     of any of its offers' expected cost: per view of its streams (step 2), GPUs paid for · $/GPU-h · work hours ·
     wall-time floor + the view's egress. The floor (costmodel.wall_factor_floor) is that of the rate class's
     lower edge, so the classes of spot capacity that is dear to run sort late without being looked at;
  2. a popped group splits its streams by the request's region rules and by where each region is relative to the
     input data (same region / same provider / elsewhere: one egress each). These *views* are cached per
     (constraint shape, data location) with the index, so region checks run once per region and shape;
  3. a popped view yields its next bucket (its own rate floor and deadline floor), a popped bucket its next offer,
     which is evaluated in full;
  4. the walk stops once the next bound exceeds the k-th best expected cost (or the budget): nothing left can enter
     the answer. Offers never reached are reported as ``not_examined``, so
     ``sum(rejected) + feasible + not_examined`` is every offer in the index.

Rejection reasons follow the order of the checks, coarse to fine: unknown/wrong GPU, not portable, the model
cannot meet the deadline even uninterrupted, purchase kind (spot not allowed, commitment not held), availability,
provider/region/jurisdiction, the stream's and the bucket's deadline floors, then per offer: size/interconnect/held
capacity, stale price, too few available, hourly budget, total budget, deadline. Which offers get a reason depends
on how far the walk went; ``evaluate_all`` (every offer, one at a time, no bounds) is the reference it is tested
against.

Held commitments: a committed offer (reserved, savings plan, committed use, contract) is a candidate only when
the user holds it: ``attrs["held_commitment"]`` is true, or a ``held_commitments`` entry of the request or of
config/placement.toml matches it. Its marginal price is 0 for up to ``unused_instances`` (or
``attrs["unused_quantity"]``) nodes, because the commitment is paid whether used or not (SkyPilot's optimizer
costs unused reservations at 0 too); nodes beyond that pay the list price (else the committed rate). With no
unused count given the commitment is taken to be idle.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from broker.domain import COMMITTED_PURCHASES, Availability, Purchase
from broker.gcpause import gc_paused
from broker.gpus import GpuCatalog, GpuModel, UnknownGpu
from broker.offers.index import IndexedOffer, OfferIndex
from broker.pacing import pause_point, release
from broker.placement.costmodel import HOURS_PER_MONTH, PlacementConfig, estimate_run, wall_factor_floor
from broker.placement.launch import launch_spec
from broker.placement.schemas import (
    Breakdown,
    Decision,
    HeldCommitment,
    Option,
    PlaceRequest,
    RejectReason,
)

_SPOT, _COMMITTED, _OTHER = 0, 1, 2
_AVAIL = {Availability.AVAILABLE: 0, Availability.UNKNOWN: 1, Availability.UNAVAILABLE: 2}
_AVAILABLE, _UNKNOWN, _UNAVAILABLE = 0, 1, 2
_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
# Spot offers are split into rate classes at the configured band and provider rates (most offers sit exactly
# on one), so that each class's lower edge is a tight, request-cacheable wall-time floor for all of it.
# Bounds are taken a hair low so that float rounding never prunes an option that ties the k-th best.
_SLACK = 1.0 - 1e-9
_BIG = 1e300  # caps an infinite floor so that 0 · floor stays 0 (free held capacity)
_SHAPE_CACHE_LIMIT = 1024

_WRONG_GPU = RejectReason.WRONG_GPU.value
_NOT_PORTABLE = RejectReason.NOT_PORTABLE.value
_CONSTRAINT = RejectReason.CONSTRAINT.value
_STALE = RejectReason.STALE_PRICE.value
_UNAVAILABLE_R = RejectReason.UNAVAILABLE.value
_OVER_BUDGET = RejectReason.OVER_BUDGET.value
_DEADLINE = RejectReason.MISSES_DEADLINE.value


class Infeasible(Exception):
    """No offer satisfies the job; ``rejected`` counts offers by the first check that ruled each out and
    ``not_examined`` those skipped because their lowest possible cost is over the budget."""

    def __init__(self, message: str, rejected: dict[str, int], not_examined: int = 0) -> None:
        super().__init__(message)
        self.rejected = rejected
        self.not_examined = not_examined


# ---------------------------------------------------------------- per-index preparation


@dataclass(frozen=True, slots=True)
class _Prep:
    offer: IndexedOffer
    gpu_hourly: float
    node_rate: float  # spot interruptions per node-hour (0 off spot)
    rate_source: str  # where node_rate came from, for the answer's reasons
    confirmed_ts: float
    max_age_s: float  # the source's allowed price age (inf: no limit)


# (model, arch, kind, availability, rate class, provider, region, GPUs per node, committed purchase, held)
_BucketKey = tuple[str, str, int, int, int, str, str, int, str, bool]


@dataclass(frozen=True, slots=True)
class _Bucket:
    model: GpuModel
    provider: str
    region: str
    rk: tuple[str, str]  # (provider, region): the key of region-level caches
    kind: int
    avail: int
    purchase: str  # committed buckets hold one purchase type (held entries may name it); "" otherwise
    held_attr: bool  # committed offers marked held by their source
    country: str | None
    storage_rate: float  # checkpoint storage, USD per GB-month
    rate_min: float  # lowest node_rate in the bucket
    gpn: int  # GPUs per node: with the job's GPU count it fixes the nodes, the GPUs paid for and the gang rate
    prices: tuple[float, ...]  # USD per GPU-hour, ascending
    offers: tuple[_Prep, ...]  # in the same order
    key: _BucketKey  # what _prepare grouped its offers by: a reload gives it again to the offers it keeps


# Where a bucket is relative to the job's data: the egress formula (costmodel.egress_usd) depends on nothing finer,
# so one view per relation shares one egress and transfer time whatever the data size.
_HERE, _SAME_PROVIDER, _ELSEWHERE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _View:
    """Buckets of a stream that pass a request's region checks and share one egress, cheapest bucket first."""

    relation: int  # to the data's location (_HERE when no data moves)
    mins: tuple[float, ...]  # each bucket's cheapest USD per GPU-hour
    buckets: tuple[_Bucket, ...]
    rest: tuple[int, ...]  # offers in buckets[i:]


def _view(buckets: Sequence[_Bucket], relation: int = _HERE) -> _View:
    rest = [0] * len(buckets)
    total = 0
    for i in range(len(buckets) - 1, -1, -1):
        total += len(buckets[i].offers)
        rest[i] = total
    return _View(relation, tuple(b.prices[0] for b in buckets), tuple(buckets), tuple(rest))


@dataclass(frozen=True, slots=True)
class _Stream:
    """The non-committed buckets of one model, arch, kind and rate class: one per region and availability."""

    sid: int  # key of the per-request-shape view caches
    gpn: int
    whole: _View  # the other buckets, no egress: the view for a request that restricts nothing and moves no data


@dataclass(frozen=True, slots=True)
class _Group:
    """The non-committed offers of one model, arch, kind and rate class: a stream per GPUs per node."""

    gid: int  # key of the per-request-shape bound caches
    spot: bool
    edge: float  # lower edge of the rate class: every offer in it is interrupted at least this often
    size: int
    unavailable: int  # offers marked unavailable: never searched, only counted
    live: tuple[_Stream, ...]  # streams with offers to search
    searched: int  # offers in the live streams
    cheapest: float  # USD per GPU-hour, over the live streams
    max_gpn: int  # over the live streams: the fewest nodes, the lowest gang rate
    # (GPUs per node, relation, cheapest USD per GPU-hour) per stream: its bound terms when nothing is filtered
    whole_terms: tuple[tuple[int, int, float], ...]


@dataclass(frozen=True, slots=True)
class _ArchPrep:
    size: int
    groups: tuple[_Group, ...]
    committed: tuple[_Bucket, ...]  # every committed bucket (walked when the request holds commitments)
    held_attr: tuple[_Bucket, ...]  # committed buckets marked held by their source
    unheld_size: int  # offers in committed buckets not marked held


@dataclass(frozen=True, slots=True)
class _ModelPrep:
    model: GpuModel
    size: int
    arches: Mapping[str, _ArchPrep]


@dataclass(slots=True)
class _Prepared:
    models: Mapping[str, _ModelPrep]
    unplaceable: int  # offers whose GPU is unknown or not in this catalog
    total: int
    # per (constraint shape, data location): region verdicts, egress per region, and each stream's views with
    # the rejected regions' offer count. Computed on first use, kept with the index.
    shapes: dict[tuple[Any, ...], _Shape] = field(default_factory=dict)


@dataclass(slots=True)
class _Shape:
    """Per (region constraints, availability rule, data location): what each region is to the request."""

    require_available: bool
    data: tuple[str, str] | None  # (provider, region) of the input data when some moves
    relation: dict[tuple[str, str], int] = field(default_factory=dict)  # region -> relation, -1: ruled out
    # stream id -> (offers of unknown availability left out, offers in regions ruled out, views)
    views: dict[int, tuple[int, int, tuple[_View, ...]]] = field(default_factory=dict)
    # group id -> (GPUs per node, relation, cheapest USD per GPU-hour) of each view of its streams
    terms: dict[int, tuple[tuple[int, int, float], ...]] = field(default_factory=dict)


_CACHE: list[tuple[OfferIndex, GpuCatalog, PlacementConfig, _Prepared]] = []


def warm(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    """Prepare ``index`` ahead of the first request (call it right after swapping a new index in)."""
    _prepared(index, catalog, cfg)


def _prepared(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig) -> _Prepared:
    # by the offers, not the index: an index freshened by polls that changed no offer shares them, and the
    # preparation with them (its newer confirmations are read per request, from the index)
    cached = next(
        (
            prep
            for idx, cat, conf, prep in _CACHE
            if idx.offers is index.offers and idx.max_age is index.max_age and cat is catalog and conf is cfg
        ),
        None,
    )
    if cached is not None:
        return cached
    # the offers a reload kept (broker.offers.repository.load_current reuses unchanged ones) keep their preparation
    earlier = next(
        (prep for idx, cat, conf, prep in _CACHE if cat is catalog and conf is cfg and idx.max_age == index.max_age),
        None,
    )
    with gc_paused():
        prepared = _prepare(index, catalog, cfg, _per_offer(earlier) if earlier is not None else _Reuse())
    _CACHE.insert(0, (index, catalog, cfg, prepared))
    # keep the live index and the one being swapped in; free the older one in slices (broker.pacing.release).
    # Nothing here may still refer to it (a loop variable would): its containers would then go at return, whole.
    evicted = [part for old_index, _, _, old_prep in _CACHE[2:] for part in _parts(old_index, old_prep)]
    del _CACHE[2:]
    release(evicted)
    return prepared


def _buckets(prep: _Prepared) -> Iterator[tuple[str, _Bucket]]:
    """Every bucket a preparation keeps, with its arch (those of unavailable offers are only counted)."""
    for model in prep.models.values():
        for arch, ap in model.arches.items():
            for group in ap.groups:
                for stream in group.live:
                    for bucket in stream.whole.buckets:
                        yield arch, bucket
            for bucket in ap.committed:
                yield arch, bucket


def _parts(index: OfferIndex, prep: _Prepared) -> Iterator[object]:
    """The per-offer objects of an index and its preparation: the bulk of what freeing them frees."""
    for _, bucket in _buckets(prep):
        yield from bucket.offers
    yield from index.offers


@dataclass(frozen=True, slots=True)
class _Reuse:
    """A previous preparation, per offer id: each offer's preparation and its bucket's key. Plain dicts of objects
    that exist anyway (ids, preparations, one key per bucket), so that dropping them after use frees nothing
    much. A hit counts only when the preparation's offer is the very object being prepared."""

    preps: dict[int, _Prep] = field(default_factory=dict)
    keys: dict[int, _BucketKey] = field(default_factory=dict)


def _per_offer(prep: _Prepared) -> _Reuse:
    out = _Reuse()
    for _, b in _buckets(prep):
        for p in b.offers:
            out.preps[p.offer.offer_id] = p
            out.keys[p.offer.offer_id] = b.key
    return out


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


def _prep_offer(o: IndexedOffer, kind: int, index: OfferIndex, cfg: PlacementConfig) -> _Prep:
    rate, source = spot_rate(o, cfg) if kind == _SPOT else (0.0, "")
    age = index.max_age.get(o.source)
    return _Prep(
        o,
        o.hourly_usd / o.gpu_count,
        rate,
        source,
        o.last_confirmed_at.timestamp(),
        age.total_seconds() if age is not None else math.inf,
    )


def _rate_edges(cfg: PlacementConfig) -> tuple[float, ...]:
    i = cfg.placement.interruption
    rates = {*i.bands.values(), *i.provider_rate_per_hour.values(), i.default_rate_per_hour}
    return tuple(sorted(r for r in rates if r > 0))


def _prepare(index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig, reuse: _Reuse) -> _Prepared:
    edges = (0.0, *_rate_edges(cfg))
    keyed: dict[_BucketKey, list[_Prep]] = {}
    models: dict[str, GpuModel] = {}
    unplaceable = 0
    for model_key, offers in index.by_gpu.items():
        model = catalog.get(model_key)
        for n, o in enumerate(offers):
            if not n & 127:
                pause_point()
            if model is None or not o.gpu_known or o.gpu_count <= 0:
                unplaceable += 1
                continue
            models[model.id] = model
            earlier = reuse.preps.get(o.offer_id)
            if earlier is not None and earlier.offer is o:
                p, key = earlier, reuse.keys[o.offer_id]
            else:
                kind = _kind(o.key.purchase)
                p = _prep_offer(o, kind, index, cfg)
                committed = kind == _COMMITTED
                key = (
                    model.id,
                    offer_arch(o, model, cfg),
                    kind,
                    _AVAIL[o.availability],
                    bisect.bisect_right(edges, p.node_rate) - 1 if kind == _SPOT else 0,
                    o.key.provider,
                    o.key.region,
                    o.gpu_count,
                    o.key.purchase if committed else "",
                    committed and o.attrs.get("held_commitment") is True,
                )
            keyed.setdefault(key, []).append(p)
    countries: dict[tuple[str, str], str | None] = {}
    per_arch: dict[tuple[str, str], dict[tuple[int, int, int], list[_Bucket]]] = {}
    for key, preps in keyed.items():
        pause_point()
        model_id, arch, kind, avail, rclass, provider, region, gpn, purchase, held = key
        if len(preps) > 1:  # most buckets hold one offer
            preps.sort(key=lambda p: (p.gpu_hourly, p.offer.offer_id))
        rk = (provider, region)
        if rk not in countries:
            countries[rk] = cfg.country_of(provider, region)
        bucket = _Bucket(
            models[model_id],
            provider,
            region,
            rk,
            kind,
            avail,
            purchase,
            held,
            countries[rk],
            cfg.storage_usd_per_gb_month(provider),
            min([p.node_rate for p in preps]) if len(preps) > 1 else preps[0].node_rate,
            gpn,
            tuple(p.gpu_hourly for p in preps),
            tuple(preps),
            key,
        )
        per_arch.setdefault((model_id, arch), {}).setdefault((kind, rclass, gpn), []).append(bucket)
    out: dict[str, dict[str, _ArchPrep]] = {}
    sids = itertools.count()
    for (model_id, arch), by_stream in per_arch.items():
        out.setdefault(model_id, {})[arch] = _arch_prep(by_stream, edges, sids)
    prepared = {
        model_id: _ModelPrep(models[model_id], sum(a.size for a in arches.values()), arches)
        for model_id, arches in out.items()
    }
    return _Prepared(prepared, unplaceable, len(index.offers))


def _arch_prep(
    by_stream: Mapping[tuple[int, int, int], list[_Bucket]], edges: Sequence[float], sids: Iterator[int]
) -> _ArchPrep:
    """One model's buckets on one arch: committed ones apart, the rest as groups of streams."""
    per_group: dict[tuple[int, int], list[list[_Bucket]]] = {}
    committed: list[_Bucket] = []
    for (kind, rclass, _), buckets in sorted(by_stream.items()):
        if kind == _COMMITTED:
            committed.extend(buckets)
        else:
            per_group.setdefault((kind, rclass), []).append(buckets)
    groups = tuple(
        _group(next(sids), kind == _SPOT, edges[rclass] if kind == _SPOT else 0.0, per_gpn, sids)
        for (kind, rclass), per_gpn in per_group.items()
    )
    return _ArchPrep(
        sum(g.size for g in groups) + sum(len(b.offers) for b in committed),
        groups,
        tuple(committed),
        tuple(b for b in committed if b.held_attr),
        sum(len(b.offers) for b in committed if not b.held_attr),
    )


def _group(gid: int, spot: bool, edge: float, per_gpn: Sequence[list[_Bucket]], sids: Iterator[int]) -> _Group:
    live: list[_Stream] = []
    for buckets in per_gpn:
        searched = sorted((b for b in buckets if b.avail != _UNAVAILABLE), key=lambda b: (b.prices[0], b.rk, b.avail))
        if searched:
            live.append(_Stream(next(sids), searched[0].gpn, _view(searched)))
    return _Group(
        gid,
        spot,
        edge,
        sum(len(b.offers) for bs in per_gpn for b in bs),
        sum(len(b.offers) for bs in per_gpn for b in bs if b.avail == _UNAVAILABLE),
        tuple(live),
        sum(st.whole.rest[0] for st in live),
        min((st.whole.mins[0] for st in live), default=math.inf),
        max((st.gpn for st in live), default=1),
        tuple((st.gpn, _HERE, st.whole.mins[0]) for st in live),
    )


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
    index: OfferIndex
    confirmed_ts: Mapping[str, float]  # per source: confirmed by a poll after the offers were loaded
    req_max_age_s: float
    max_hourly: float
    max_total: float
    deadline_h: float
    held: tuple[HeldCommitment, ...]
    spot_allowed: bool
    require_available: bool


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
        index=index,
        confirmed_ts={source: at.timestamp() for source, at in index.confirmed.items()},
        req_max_age_s=c.max_price_age_minutes * 60.0 if c.max_price_age_minutes else math.inf,
        max_hourly=float(c.max_hourly_usd) if c.max_hourly_usd is not None else math.inf,
        max_total=float(c.max_total_usd) if c.max_total_usd is not None else math.inf,
        deadline_h=c.deadline_hours if c.deadline_hours is not None else math.inf,
        held=(*req.held_commitments, *cfg.placement.commitments.held),
        spot_allowed=req.spot_allowed,
        require_available=c.require_available,
    )


def _allowed_models(req: PlaceRequest, catalog: GpuCatalog) -> set[str] | None:
    if not req.gpu.models:
        return None
    return {m.id for q in req.gpu.models for m in _model_list(catalog, q, "gpu.models")}


def _gpu_reason(req: PlaceRequest, model: GpuModel, allowed: set[str] | None) -> str | None:
    g = req.gpu
    if allowed is not None and model.id not in allowed:
        return _WRONG_GPU
    if g.min_memory_gb is not None and model.memory_gb < g.min_memory_gb:
        return _WRONG_GPU
    if g.min_compute_capability is not None and (
        model.compute_capability is None or float(model.compute_capability) < g.min_compute_capability
    ):
        return _WRONG_GPU
    if g.vendor is not None and model.vendor != g.vendor:
        return _NOT_PORTABLE  # e.g. a CUDA image on an AMD GPU
    return None


def _matches(h: HeldCommitment, provider: str, purchase: str, region: str) -> bool:
    return (
        h.provider == provider
        and (h.purchase is None or h.purchase == purchase)
        and (h.region is None or h.region == region)
    )


def _region_ok(job: _Job, provider: str, region: str, country: str | None, cfg: PlacementConfig) -> bool:
    c = job.req.constraints
    if (c.providers and provider not in c.providers) or provider in c.exclude_providers:
        return False
    if c.regions and region not in c.regions:
        return False
    return not c.jurisdictions or cfg.in_jurisdictions(country, c.jurisdictions)


def _egress(job: _Job, provider: str, region: str, cfg: PlacementConfig) -> tuple[float, float]:
    """(USD, hours) to bring the job's input data to the region."""
    data = job.req.data
    if data is None or data.size_gb <= 0 or (data.provider == provider and data.region == region):
        return 0.0, 0.0
    usd = cfg.egress_usd(data.provider, data.region, provider, region, data.size_gb)
    return usd, data.size_gb * 8.0 / (cfg.placement.transfer.gbps * 3600.0)


def _shape(job: _Job, prep: _Prepared) -> _Shape | None:
    """The caches for the request's region constraints, data location and availability rule; None: no such."""
    c, data = job.req.constraints, job.req.data
    regions = (tuple(c.providers), tuple(c.exclude_providers), tuple(c.regions), tuple(c.jurisdictions))
    moved = (data.provider, data.region) if data is not None and data.size_gb > 0 else None
    if moved is None and not any(regions) and not job.require_available:
        return None
    key = (regions, moved, job.require_available)
    hit = prep.shapes.get(key)
    if hit is None:
        if len(prep.shapes) >= _SHAPE_CACHE_LIMIT:
            prep.shapes.clear()
        hit = prep.shapes[key] = _Shape(job.require_available, moved)
    return hit


# ---------------------------------------------------------------- per-offer evaluation


@dataclass(frozen=True, slots=True)
class _Eval:
    cost: float
    prep: _Prep
    model: GpuModel
    kind: int
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


def _held_price(job: _Job, o: IndexedOffer, nodes: int) -> tuple[float, int] | None:
    """(hourly for all nodes, nodes that cost nothing) on a held commitment, None if it is not held."""
    k = o.key
    entries = [
        h
        for h in job.held
        if _matches(h, k.provider, k.purchase, k.region)
        and (h.instance_type is None or h.instance_type == k.instance_type)
    ]
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
    job: _Job,
    model: GpuModel,
    kind: int,
    storage_rate: float,
    p: _Prep,
    work_h: float,
    egress: float,
    transfer_h: float,
) -> _Eval | str:
    """One offer that passed the group-level checks: its expected run and cost, or why it is ruled out."""
    o, req = p.offer, job.req
    gpn = o.gpu_count
    nodes = -(-job.count // gpn)
    if nodes > job.max_nodes:
        return _CONSTRAINT
    if req.cpus is not None and o.vcpus is not None and o.vcpus < req.cpus:
        return _CONSTRAINT
    if req.memory_gb is not None and o.memory_gb is not None and o.memory_gb < req.memory_gb:
        return _CONSTRAINT
    if nodes > 1 and req.interconnect is not None:
        ic = req.interconnect
        fabric = o.attrs.get("interconnect")
        if ic.fabrics and not (isinstance(fabric, str) and fabric.lower() in ic.fabrics):
            return _CONSTRAINT
        gbps = o.attrs.get("network_gbps")
        if ic.min_gbps is not None and not (isinstance(gbps, int | float) and gbps >= ic.min_gbps):
            return _CONSTRAINT
    free = 0
    if kind == _COMMITTED:
        held = _held_price(job, o, nodes)
        if held is None:
            return _CONSTRAINT
        hourly, free = held
    else:
        hourly = nodes * o.hourly_usd
    confirmed = job.confirmed_ts.get(o.source, 0.0)
    age = job.now_ts - (confirmed if confirmed > p.confirmed_ts else p.confirmed_ts)
    if age > job.req_max_age_s or age > p.max_age_s:
        return _STALE
    if o.available_quantity is not None and o.available_quantity < nodes:
        return _UNAVAILABLE_R
    if hourly > job.max_hourly:
        return _OVER_BUDGET
    spot = nodes * p.node_rate
    rate = spot + nodes * gpn * job.hw_rate
    run = estimate_run(work_h, rate, spot, job.write_h, job.restart_h, job.interval_h, job.wait_h, transfer_h)
    if math.isinf(run.wall_h):
        return _DEADLINE  # interrupted faster than it can progress: it never finishes
    storage = job.ckpt_gb * job.copies * storage_rate * run.makespan_h / HOURS_PER_MONTH
    cost = hourly * run.wall_h + egress + storage
    if cost > job.max_total:
        return _OVER_BUDGET
    if run.makespan_h > job.deadline_h:
        return _DEADLINE
    ff = min(run.wall_h, work_h * (1.0 + job.write_h / run.interval_h)) if 0 < run.interval_h < math.inf else work_h
    return _Eval(
        cost,
        p,
        model,
        kind,
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


# ---------------------------------------------------------------- the search

_MODEL, _STREAM, _BUCKET = 0, 1, 2
_Entry = tuple[float, int, int, Any, int, tuple[float, ...]]
_Ranked = tuple[float, float, int, _Eval]  # negated (cost, makespan, offer id): a max-heap of the best so far


@dataclass(slots=True)
class _Search:
    rejected: dict[str, int]
    examined: int
    feasible: int
    not_examined: int
    best: list[_Ranked]


class _Walk:
    """One request's branch and bound over the prepared index."""

    def __init__(self, job: _Job, prep: _Prepared, cfg: PlacementConfig) -> None:
        self.job, self.prep, self.cfg = job, prep, cfg
        self.rejected = {r.value: 0 for r in RejectReason}
        self.heap: list[_Entry] = []
        self.seq = itertools.count()
        self.hw_floor = job.count * job.hw_rate  # every option runs >= count GPUs
        self.floors: dict[tuple[int, float], float] = {}
        self.shape = _shape(job, prep)
        self.moves: list[tuple[float, float] | None] = [(0.0, 0.0), None, None]  # per relation
        self.egress = [0.0, 0.0, 0.0]  # egress USD per relation (what group bounds add)
        if (data := job.req.data) is not None and data.size_gb > 0:
            self.egress = [self.moved(rel)[0] for rel in (_HERE, _SAME_PROVIDER, _ELSEWHERE)]
        self.paid: dict[tuple[int, float], float] = {}  # (GPUs per node, rate) -> GPUs paid x wall-time floor

    def floor(self, nodes: int, node_rate: float) -> float:
        """The least billed hours per work hour of ``nodes`` nodes at ``node_rate`` reclaims per node-hour."""
        key = (nodes, node_rate)
        hit = self.floors.get(key)
        if hit is None:
            job = self.job
            rate = nodes * node_rate + self.hw_floor
            hit = self.floors[key] = min(wall_factor_floor(rate, job.write_h, job.restart_h), _BIG)
        return hit

    def push(self, bound: float, tag: int, node: Any, i: int, ctx: tuple[float, ...]) -> None:
        heapq.heappush(self.heap, (bound, next(self.seq), tag, node, i, ctx))

    def expand(self, g: _Group, work_h: float) -> None:
        """A group reached by the walk: its streams' region checks and deadline floors, then their views."""
        job, rejected = self.job, self.rejected
        for st in g.live:
            unknown, outside, views = self.views(st)
            rejected[_UNAVAILABLE_R] += unknown
            rejected[_CONSTRAINT] += outside
            nodes = -(-job.count // st.gpn)
            floor = self.floor(nodes, g.edge)
            late = work_h * floor * (1.0 + nodes * g.edge * job.wait_h) * _SLACK > job.deadline_h
            factor = nodes * st.gpn * work_h * _SLACK  # GPUs paid for x hours of work
            fm = factor * floor
            for v in views:
                if late:  # even the lowest rate of the stream cannot finish in time
                    rejected[_DEADLINE] += v.rest[0]
                    continue
                egress, transfer_h = self.moved(v.relation)
                self.push(fm * v.mins[0] + egress, _STREAM, v, 0, (fm, work_h, factor, egress, transfer_h))

    def relation(self, b: _Bucket) -> int:
        """The bucket's region relative to the data, -1 when the request rules the region out."""
        shape = self.shape
        if shape is None:
            return _HERE
        rel = shape.relation.get(b.rk)
        if rel is None:
            if not _region_ok(self.job, b.provider, b.region, b.country, self.cfg):
                rel = -1
            elif shape.data is None or shape.data == b.rk:
                rel = _HERE
            else:
                rel = _SAME_PROVIDER if shape.data[0] == b.provider else _ELSEWHERE
            shape.relation[b.rk] = rel
        return rel

    def moved(self, relation: int) -> tuple[float, float]:
        """(egress USD, transfer hours) to any region in the relation."""
        hit = self.moves[relation]
        if hit is None:
            data = self.job.req.data
            assert data is not None  # only _HERE (pre-filled) without data
            # egress_usd tells regions apart only by equality with the data's: "" stands for any other one
            provider = data.provider if relation == _SAME_PROVIDER else ""
            hit = self.moves[relation] = _egress(self.job, provider, "", self.cfg)
        return hit

    def group_bound(self, g: _Group, work_h: float) -> float:
        """The least bound that expanding the group would push: per view of its streams, the GPUs paid for x
        work hours x the wall-time floor x the view's cheapest price, plus the view's egress. It is exact at the
        view level (region rules and data location applied), so a group is opened only when one of its views
        would be next. 0 when the request leaves the group no view: opened at once, its offers counted by reason.
        """
        terms = self.terms(g)
        if not terms:
            return 0.0
        per, edge, paid, egress = work_h * _SLACK, g.edge, self.paid, self.egress
        best = math.inf
        for gpn, rel, price in terms:
            factor = paid.get((gpn, edge))
            if factor is None:
                nodes = -(-self.job.count // gpn)
                factor = paid[gpn, edge] = nodes * gpn * self.floor(nodes, edge)
            bound = per * factor * price + egress[rel]
            if bound < best:
                best = bound
        return best

    def terms(self, g: _Group) -> tuple[tuple[int, int, float], ...]:
        shape = self.shape
        if shape is None:
            return g.whole_terms
        hit = shape.terms.get(g.gid)
        if hit is None:
            hit = shape.terms[g.gid] = tuple(
                (st.gpn, v.relation, v.mins[0]) for st in g.live for v in self.views(st)[2]
            )
        return hit

    def views(self, st: _Stream) -> tuple[int, int, tuple[_View, ...]]:
        """The stream's buckets the request allows, split by egress; and the offers left out by availability
        and by region."""
        shape = self.shape
        if shape is None:
            return 0, 0, (st.whole,) if st.whole.buckets else ()
        hit = shape.views.get(st.sid)
        if hit is not None:
            return hit
        unknown = outside = 0
        groups: tuple[list[_Bucket], list[_Bucket], list[_Bucket]] = ([], [], [])
        skip_unknown = shape.require_available
        for b in st.whole.buckets:
            if skip_unknown and b.avail == _UNKNOWN:
                unknown += len(b.offers)
                continue
            rel = self.relation(b)
            if rel < 0:
                outside += len(b.offers)
            else:
                groups[rel].append(b)
        views = tuple(_view(bs, rel) for rel, bs in enumerate(groups) if bs)
        hit = shape.views[st.sid] = (unknown, outside, views)
        return hit

    def seed(self, catalog: GpuCatalog) -> None:
        """Rule whole models, streams, regions and committed buckets in or out; the rest go on the heap."""
        job, req, rejected = self.job, self.job.req, self.rejected
        allowed = _allowed_models(req, catalog)
        rejected[_WRONG_GPU] += self.prep.unplaceable
        base_floor = self.floor(0, 0.0) * _SLACK
        arch = str(req.arch)
        heap, spot_allowed = self.heap, job.spot_allowed
        for model_id, mp in self.prep.models.items():
            reason = _gpu_reason(req, mp.model, allowed) if model_id in job.work_h else _WRONG_GPU
            if reason is not None:
                rejected[reason] += mp.size
                continue
            ap = mp.arches.get(arch)
            inside = ap.size if ap is not None else 0
            rejected[_NOT_PORTABLE] += mp.size - inside
            if ap is None:
                continue
            work_h = job.work_h[model_id]
            if work_h * base_floor > job.deadline_h:  # too slow even with nothing interrupting it
                rejected[_DEADLINE] += inside
                continue
            for g in ap.groups:  # one kind and rate class: opened when its bound comes up
                if g.spot and not spot_allowed:
                    rejected[_CONSTRAINT] += g.size
                    continue
                rejected[_UNAVAILABLE_R] += g.unavailable
                if not g.live:
                    continue
                # a quick bound first (i = 0): the exact one is worked out only for groups that come up
                nodes = -(-job.count // g.max_gpn)
                quick = work_h * _SLACK * job.count * self.floor(nodes, g.edge) * g.cheapest
                heap.append((quick, next(self.seq), _MODEL, g, 0, (work_h,)))
            if job.held:
                candidates = ap.committed
            else:
                rejected[_CONSTRAINT] += ap.unheld_size
                candidates = ap.held_attr
            for b in candidates:
                if not b.held_attr and not any(_matches(h, b.provider, b.purchase, b.region) for h in job.held):
                    rejected[_CONSTRAINT] += len(b.offers)
                    continue
                if b.avail == _UNAVAILABLE or (job.require_available and b.avail == _UNKNOWN):
                    rejected[_UNAVAILABLE_R] += len(b.offers)
                    continue
                rel = self.relation(b)
                if rel < 0:
                    rejected[_CONSTRAINT] += len(b.offers)
                    continue
                # held capacity may cost nothing: the bound is the egress
                self.open(b, work_h, 0.0, *self.moved(rel))
        heapq.heapify(self.heap)

    def open(self, b: _Bucket, work_h: float, factor: float, egress: float, transfer_h: float) -> None:
        """A bucket reached by the walk: its deadline floor, then onto the heap with its own rate floor.

        ``factor`` is GPUs paid for x work hours (0 on held commitments, whose capacity may cost nothing)."""
        job = self.job
        nodes = -(-job.count // b.gpn)
        floor = self.floor(nodes, b.rate_min)
        # makespan >= wall + waits for capacity after each reclaim + transfer
        if work_h * floor * (1.0 + nodes * b.rate_min * job.wait_h) * _SLACK + transfer_h > job.deadline_h:
            self.rejected[_DEADLINE] += len(b.offers)
            return
        fm = factor * floor
        self.push(fm * b.prices[0] + egress, _BUCKET, b, 0, (fm, egress, transfer_h, work_h))

    def run(self, keep: int) -> _Search:
        job, heap, rejected = self.job, self.heap, self.rejected
        best: list[_Ranked] = []
        limit = job.max_total  # a bound over the budget cannot be within it
        examined = feasible = 0
        while heap:
            bound, _, tag, node, i, ctx = heap[0]
            if bound > limit:
                break
            if tag == _MODEL:
                if i == 0:  # the quick bound came up: replace it by the exact one, which may sort later
                    heapq.heapreplace(heap, (self.group_bound(node, ctx[0]), next(self.seq), _MODEL, node, 1, ctx))
                    continue
                heapq.heappop(heap)
                self.expand(node, ctx[0])
                continue
            if tag == _STREAM:
                v: _View = node
                if i + 1 < len(v.mins):
                    heapq.heapreplace(heap, (ctx[0] * v.mins[i + 1] + ctx[3], next(self.seq), _STREAM, v, i + 1, ctx))
                else:
                    heapq.heappop(heap)
                self.open(v.buckets[i], ctx[1], ctx[2], ctx[3], ctx[4])
                continue
            b: _Bucket = node
            fm, egress, transfer_h, work_h = ctx
            if i + 1 < len(b.prices):
                heapq.heapreplace(heap, (fm * b.prices[i + 1] + egress, next(self.seq), _BUCKET, b, i + 1, ctx))
            else:
                heapq.heappop(heap)
            examined += 1
            ev = _evaluate(job, b.model, b.kind, b.storage_rate, b.offers[i], work_h, egress, transfer_h)
            if isinstance(ev, str):
                rejected[ev] += 1
                continue
            feasible += 1
            entry = (-ev.cost, -ev.makespan_h, -ev.prep.offer.offer_id, ev)
            if len(best) < keep:
                heapq.heappush(best, entry)
            elif entry > best[0]:
                heapq.heapreplace(best, entry)
            if len(best) >= keep:
                limit = min(job.max_total, -best[0][0])
        left = 0
        for _, _, tag, node, i, _ in heap:
            left += _left(tag, node, i)
        return _Search(rejected, examined, feasible, left, best)


def _left(tag: int, node: Any, i: int) -> int:
    """Offers not yet reached under a heap entry."""
    if tag == _MODEL:
        return int(node.searched)
    if tag == _STREAM:
        return int(node.rest[i])
    return len(node.offers) - i


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
    walk = _Walk(settings, prep, cfg)
    walk.seed(catalog)
    found = walk.run(job.alternatives + 1)
    if not found.best:
        summary = ", ".join(f"{k} {v}" for k, v in found.rejected.items() if v) or "no offers in the index"
        if found.not_examined:
            summary += f"; {found.not_examined} more cost over max_total_usd at their lowest"
        raise Infeasible(f"no offer fits the job ({summary})", found.rejected, found.not_examined)
    ranked = [e[3] for e in sorted(found.best, reverse=True)]
    options = [_option(e, settings, now) for e in ranked]
    return Decision(
        choice=options[0],
        alternatives=options[1:],
        rejected=found.rejected,
        examined=found.examined,
        feasible=found.feasible,
        not_examined=found.not_examined,
        launch=launch_spec(job, options[0], catalog),
    )


def evaluate_all(
    job: PlaceRequest, index: OfferIndex, catalog: GpuCatalog, cfg: PlacementConfig, now: datetime
) -> list[Option]:
    """Every feasible option, cheapest first: one offer at a time, no grouping and no bounds.

    The reference that ``place`` is tested against (and an audit tool); slow on big indexes.
    """
    settings = _job(job, catalog, cfg, _candidate_models(job, catalog), now, index)
    req = settings.req
    allowed = _allowed_models(req, catalog)
    found: list[_Ranked] = []
    for o in index.offers:
        model = catalog.get(o.gpu_model)
        if model is None or not o.gpu_known or o.gpu_count <= 0 or model.id not in settings.work_h:
            continue
        if _gpu_reason(req, model, allowed) is not None or offer_arch(o, model, cfg) != req.arch:
            continue
        kind = _kind(o.key.purchase)
        if kind == _SPOT and not settings.spot_allowed:
            continue
        if o.availability is Availability.UNAVAILABLE or (
            settings.require_available and o.availability is not Availability.AVAILABLE
        ):
            continue
        provider, region = o.key.provider, o.key.region
        if not _region_ok(settings, provider, region, cfg.country_of(provider, region), cfg):
            continue
        egress, transfer_h = _egress(settings, provider, region, cfg)
        p = _prep_offer(o, kind, index, cfg)
        storage_rate = cfg.storage_usd_per_gb_month(provider)
        ev = _evaluate(settings, model, kind, storage_rate, p, settings.work_h[model.id], egress, transfer_h)
        if not isinstance(ev, str):
            found.append((-ev.cost, -ev.makespan_h, -o.offer_id, ev))
    return [_option(e[3], settings, now) for e in sorted(found, reverse=True)]


# ---------------------------------------------------------------- the answer


def _usd(value: float) -> Decimal:
    # to 1/100 of a cent: formatting rounds the float itself (correctly, to nearest), in one step
    return Decimal(f"{value:.4f}")


def _option(e: _Eval, job: _Job, now: datetime) -> Option:
    o = e.prep.offer
    total = _usd(e.cost)
    interruptions = _usd(e.hourly * (e.wall_h - e.ff_h))
    egress, storage = _usd(e.egress), _usd(e.storage)
    compute = total - interruptions - egress - storage  # carries the rounding so the parts sum exactly
    gpn = o.gpu_count
    if e.kind == _COMMITTED:
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
        gpu_model=e.model.id,
        gpus_per_node=gpn,
        nodes=e.nodes,
        hourly_usd=hourly,
        price_observed_at=job.index.confirmed_at(o),
        availability=o.availability,
        work_hours=job.work_h[e.model.id],
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
    o, req = e.prep.offer, job.req
    work_h = job.work_h[e.model.id]
    out = [
        f"{e.model.id} does the job in {work_h:.3g} h of work ({req.work.hours / work_h:.3g}x the "
        f"{req.work.reference_gpu} reference)"
    ]
    if e.nodes > 1:
        out.append(f"{e.nodes} nodes of {o.gpu_count} GPUs; losing any node interrupts the whole job")
    elif o.gpu_count > job.count:
        out.append(f"the instance has {o.gpu_count} GPUs and the job uses {job.count}: the idle ones are paid for")
    if e.kind == _SPOT:
        extra = (e.wall_h / work_h - 1.0) * 100.0
        out.append(
            f"spot: {e.rate:.3g} interruptions/h for the gang ({e.prep.rate_source}), about "
            f"{e.interruptions:.3g} expected; lost work and restarts add {extra:.3g}% run time"
        )
    elif e.kind == _COMMITTED:
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
    age_min = (now - job.index.confirmed_at(o)) / timedelta(minutes=1)
    out.append(f"price confirmed {age_min:.0f} min ago by {o.source}")
    if o.availability is Availability.UNKNOWN:
        out.append("availability unknown: the provider does not publish capacity")
    return out
