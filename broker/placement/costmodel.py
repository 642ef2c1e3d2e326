"""The placement cost formulas and their parameters (config/placement.toml, config/egress.toml).

Formulas follow shared/reference/cost-models.md: Young/Daly checkpoint interval (§3.1), Daly's exact expected wall
time under exponential failures (§3.3), spot effective cost (§3.4), gang hazard n·λ (§2.2), tiered egress (§7).
Floats on purpose: this runs in the placement hot loop; the engine turns the few reported figures into Decimal.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.domain import ConfigError
from broker.placement.schemas import HeldCommitment

HOURS_PER_MONTH = 730.0  # the billing month storage prices are quoted for
_MAX_EXPONENT = 700.0  # math.exp overflows just above 709: beyond this the job never finishes in expectation
_STRICT = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- formulas


def young_interval_h(write_h: float, mtbf_h: float) -> float:
    """Young (1974): tau* = sqrt(2·C·M)."""
    return math.sqrt(2.0 * write_h * mtbf_h)


def daly_interval_h(write_h: float, mtbf_h: float) -> float:
    """Daly (2006) higher-order optimum; infinite when nothing fails (no periodic checkpoint pays off)."""
    if math.isinf(mtbf_h):
        return math.inf
    if write_h >= 2.0 * mtbf_h:
        return mtbf_h
    x = write_h / (2.0 * mtbf_h)
    return math.sqrt(2.0 * write_h * mtbf_h) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - write_h


def wall_hours(work_h: float, rate_per_h: float, write_h: float, restart_h: float, interval_h: float) -> float:
    """Expected billed wall time of ``work_h`` useful hours (Daly 2006, exponential failures, restarts may fail).

    E[T] = M·e^{R/M}·(e^{(τ+C)/M} - 1)·T/τ with M = 1/λ; its limits where λ = 0 (T·(1+C/τ)) or τ → 0 with C = 0
    (continuous, free checkpoints: T·e^{λR}). Returns inf when the job would, in expectation, never finish.
    """
    if math.isinf(interval_h):  # no periodic checkpoints: only possible when nothing fails
        return work_h if rate_per_h <= 0 else math.inf
    if rate_per_h <= 0:
        return work_h * (1.0 + write_h / interval_h) if interval_h > 0 else work_h
    if interval_h <= 0:
        if write_h > 0:
            return math.inf
        exponent = rate_per_h * restart_h
        return work_h * math.exp(exponent) if exponent < _MAX_EXPONENT else math.inf
    exponent = rate_per_h * (interval_h + write_h)
    if exponent + rate_per_h * restart_h >= _MAX_EXPONENT:
        return math.inf
    return math.exp(rate_per_h * restart_h) * math.expm1(exponent) * work_h / (rate_per_h * interval_h)


def wall_factor_floor(rate_per_h: float, write_h: float, restart_h: float) -> float:
    """A lower bound of ``wall_hours(1, λ, C, R, τ)`` over every interval τ, increasing in λ (placement's pruning).

    From e^x - 1 >= x + x²/2: E[T]/T >= e^{λR}·(1 + λC + λτ/2 + (C + λC²/2)/τ), whose minimum over τ > 0 is
    e^{λR}·(1 + λC + sqrt(λC·(2 + λC))). Exact where C = 0 (e^{λR}) or λ = 0 (1).
    """
    if rate_per_h <= 0:
        return 1.0
    exponent = rate_per_h * restart_h
    if exponent >= _MAX_EXPONENT:
        return math.inf
    x = rate_per_h * write_h
    return math.exp(exponent) * (1.0 + x + math.sqrt(x * (2.0 + x)))


def failure_free_hours(work_h: float, write_h: float, interval_h: float) -> float:
    """Useful work plus checkpoint writes: what the run costs if nothing is interrupted."""
    if math.isinf(interval_h) or interval_h <= 0:
        return work_h
    return work_h * (1.0 + write_h / interval_h)


@dataclass(frozen=True, slots=True)
class RunEstimate:
    interval_h: float  # checkpoint interval used (inf: none)
    wall_h: float  # billed running hours
    interruptions: float  # expected count over the run
    makespan_h: float  # wall + waiting for capacity after spot interruptions + data transfer


def estimate_run(
    work_h: float,
    rate_per_h: float,
    spot_rate_per_h: float,
    write_h: float,
    restart_h: float,
    interval_h: float | None,
    wait_h: float,
    transfer_h: float,
) -> RunEstimate:
    """One option's run: ``interval_h`` None = Young/Daly auto. ``spot_rate_per_h`` is the part of the rate that
    is capacity reclaim (after it the job waits ``wait_h`` for capacity); hardware failures restart at once."""
    mtbf_h = 1.0 / rate_per_h if rate_per_h > 0 else math.inf
    tau = daly_interval_h(write_h, mtbf_h) if interval_h is None else interval_h
    wall = wall_hours(work_h, rate_per_h, write_h, restart_h, tau)
    interruptions = rate_per_h * wall if rate_per_h > 0 else 0.0
    waited = spot_rate_per_h * wall * wait_h if spot_rate_per_h > 0 else 0.0
    return RunEstimate(tau, wall, interruptions, wall + waited + transfer_h)


# ---------------------------------------------------------------- configuration


def band_key(label: str) -> str:
    """Normalise an interruption-band label ("< 5%", "5-10 %", ">20%") so provider spellings compare equal."""
    return label.replace(" ", "").replace("%", "").lower()


class InterruptionSection(BaseModel):
    model_config = _STRICT

    default_rate_per_hour: float = Field(ge=0)
    provider_rate_per_hour: dict[str, float] = Field(default_factory=dict)
    bands: dict[str, float] = Field(default_factory=dict)
    hardware_failure_rate_per_gpu_hour: float = Field(default=0, ge=0)
    spot_wait_minutes: float = Field(default=0, ge=0)


class CheckpointSection(BaseModel):
    model_config = _STRICT

    write_minutes: float = Field(ge=0)
    restart_minutes: float = Field(ge=0)
    size_gb: float = Field(default=0, ge=0)
    copies: int = Field(default=2, ge=1)


class StorageSection(BaseModel):
    model_config = _STRICT

    default_usd_per_gb_month: float = Field(ge=0)
    providers: dict[str, float] = Field(default_factory=dict)


class TransferSection(BaseModel):
    model_config = _STRICT

    gbps: float = Field(gt=0)


class JurisdictionSection(BaseModel):
    model_config = _STRICT

    blocs: dict[str, list[str]] = Field(default_factory=dict)
    region_is_country: list[str] = Field(default_factory=list)  # providers whose region names are ISO codes
    regions: dict[str, dict[str, str]] = Field(default_factory=dict)  # provider -> {region glob: ISO country}


class ArchSection(BaseModel):
    model_config = _STRICT

    arm64_models: list[str] = Field(default_factory=list)  # catalog ids/families whose hosts are arm64


class LimitsSection(BaseModel):
    model_config = _STRICT

    max_nodes: int = Field(default=64, ge=1)


class CommitmentsSection(BaseModel):
    model_config = _STRICT

    held: list[HeldCommitment] = Field(default_factory=list)


class PlacementFile(BaseModel):
    model_config = _STRICT

    interruption: InterruptionSection
    checkpoint: CheckpointSection
    storage: StorageSection
    transfer: TransferSection
    jurisdictions: JurisdictionSection = Field(default_factory=JurisdictionSection)
    arch: ArchSection = Field(default_factory=ArchSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    commitments: CommitmentsSection = Field(default_factory=CommitmentsSection)


class Tier(BaseModel):
    model_config = _STRICT

    up_to_gb: float | None = Field(default=None, gt=0)  # None: unbounded (the last tier)
    usd_per_gb: float = Field(ge=0)


class EgressRates(BaseModel):
    model_config = _STRICT

    same_region_usd_per_gb: float = Field(default=0, ge=0)
    inter_region_usd_per_gb: float = Field(ge=0)
    internet: list[Tier] = Field(min_length=1)
    # marginal: each tier prices its own slice (AWS, Azure); whole_volume: the tier reached prices it all (GCP)
    tier_mode: Literal["marginal", "whole_volume"] = "marginal"

    def internet_usd(self, gb: float) -> float:
        if gb <= 0:
            return 0.0
        if self.tier_mode == "whole_volume":
            for tier in self.internet:
                if tier.up_to_gb is None or gb <= tier.up_to_gb:
                    return gb * tier.usd_per_gb
            return gb * self.internet[-1].usd_per_gb
        cost, floor = 0.0, 0.0
        for tier in self.internet:
            top = gb if tier.up_to_gb is None else min(gb, tier.up_to_gb)
            if top > floor:
                cost += (top - floor) * tier.usd_per_gb
                floor = top
            if floor >= gb:
                return cost
        return cost + (gb - floor) * self.internet[-1].usd_per_gb


class EgressFile(BaseModel):
    model_config = _STRICT

    default: EgressRates
    providers: dict[str, EgressRates] = Field(default_factory=dict)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: dict[str, Any], path: Path) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from exc


@dataclass(frozen=True, slots=True, eq=False)
class PlacementConfig:
    placement: PlacementFile
    egress: EgressFile
    _bands: dict[str, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_bands", {band_key(k): v for k, v in self.placement.interruption.bands.items()})

    @classmethod
    def load(cls, placement_path: Path | str, egress_path: Path | str) -> PlacementConfig:
        p, e = Path(placement_path), Path(egress_path)
        cfg = cls(_validate(PlacementFile, _read_toml(p), p), _validate(EgressFile, _read_toml(e), e))
        unknown = sorted(
            f"{bloc}:{code}"
            for bloc, codes in cfg.placement.jurisdictions.blocs.items()
            for code in codes
            if len(code) != 2 or not code.isupper()
        )
        if unknown:
            raise ConfigError(f"{p}: jurisdictions.blocs: members must be ISO country codes (bad: {unknown})")
        return cfg

    # -- interruption priors
    def band_rate(self, label: str) -> float | None:
        return self._bands.get(band_key(label))

    def provider_rate(self, provider: str) -> float:
        i = self.placement.interruption
        return i.provider_rate_per_hour.get(provider, i.default_rate_per_hour)

    # -- egress
    def rates(self, provider: str) -> EgressRates:
        return self.egress.providers.get(provider, self.egress.default)

    def egress_usd(self, src_provider: str, src_region: str, dst_provider: str, dst_region: str, gb: float) -> float:
        """Moving ``gb`` from the data's location to an option: the source provider bills the egress."""
        if gb <= 0:
            return 0.0
        src = self.rates(src_provider)
        if src_provider == dst_provider:
            rate = src.same_region_usd_per_gb if src_region == dst_region else src.inter_region_usd_per_gb
            return gb * rate
        return src.internet_usd(gb)

    def storage_usd_per_gb_month(self, provider: str) -> float:
        s = self.placement.storage
        return s.providers.get(provider, s.default_usd_per_gb_month)

    # -- jurisdictions
    def country_of(self, provider: str, region: str) -> str | None:
        j = self.placement.jurisdictions
        if provider in j.region_is_country and len(region) == 2 and region.isalpha():
            return region.upper()
        table = j.regions.get(provider, {})
        if region in table:
            return table[region]
        for pattern, country in table.items():
            if fnmatch.fnmatchcase(region, pattern):
                return country
        return None

    def in_jurisdictions(self, country: str | None, wanted: list[str]) -> bool:
        """``wanted`` holds ISO country codes or bloc names (EU, EEA ...); an unmapped region is never inside."""
        if country is None:
            return False
        blocs = self.placement.jurisdictions.blocs
        return any(w.upper() == country or country in blocs.get(w.upper(), ()) for w in wanted)
