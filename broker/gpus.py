"""The GPU catalog: one canonical model per physical GPU, and the many names sources give it.

Every source spells GPUs its own way ("A100" with 81920 MiB on AWS, "Nvidia Tesla A100 80GB" on GCP,
"H100 (80 GB SXM5)" on Lambda ...). ``resolve`` maps a source's spelling to a :class:`GpuModel` and never guesses:
a name that fits several models is settled by memory, then by form-factor words (SXM/PCIe/NVL), else None.
The data (specs, aliases, where each figure came from) lives in ``config/gpus.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from broker.domain import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "config" / "gpus.toml"

COMMON = "common"  # aliases every namespace understands; a namespace's own aliases are tried first
CANONICAL = "canonical"
VENDORS = frozenset({"nvidia", "amd", "intel"})
ARCHES = frozenset({"x86_64", "arm64"})
FORM_FACTORS = frozenset({"", "sxm", "pcie", "nvl"})
MEMORY_TOLERANCE = 0.10  # "80 GB" vs 81920 MiB vs 81559 MiB usable all count as 80 GB

# Words that never tell two GPUs apart: vendor and brand names, and "GPU" itself.
_NOISE = re.compile(r"(?<![a-z0-9])(?:nvidia|amd|intel|habana|tesla|geforce|quadro|instinct|gpus?)(?![a-z0-9])")
# Source context around the GPU part of a name (GCP SKU descriptions, scraped price pages, Lambda counts).
_CONTEXT_TAIL = re.compile(r"\s+(?:running in|attached to|in \S+ for \d|with)\s.*$")
_CONTEXT_HEAD = re.compile(r"^(?:commitment v1:\s*)?(?:spot preemptible\s+|preemptible\s+|dws calendar mode\s+)?")
_COUNT_PREFIX = re.compile(r"^\d+\s*x\s+")
_SLICE = re.compile(r"\(\s*\d+\s*gpus?\s+slices?\s*\)")
_MEMORY = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*gi?b(?![a-z0-9])")
# Form-factor words and what they imply. HBM3 (not HBM3e) is what only the SXM H100 reports ("H100 80GB HBM3").
_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![a-z])(?:sxm\d?|hgx|hbm3(?!e))"), "sxm"),
    (re.compile(r"(?<![a-z])pcie"), "pcie"),
    (re.compile(r"(?<![a-z])nvl(?!ink)"), "nvl"),
)
_AZURE_SIZE = re.compile(r"^(N[A-Z]*)\d+")


class UnknownGpu(Exception):
    """A GPU name the catalog cannot place."""


@dataclass(frozen=True, slots=True)
class GpuModel:
    id: str
    family: str
    vendor: str
    memory_gb: float
    bf16_tflops: float  # dense; 0 where the hardware has no BF16 (pre-Ampere)
    fp16_tflops: float  # dense tensor-core FP16 (or the FP32 rate where the GPU has no fast FP16)
    memory_bandwidth_tbs: float
    compute_capability: str | None
    arch: str
    relative_throughput: float  # vs A100-80GB = 1.0; basis documented per model in gpus.toml
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    form_factor: str = ""  # "sxm" / "pcie" / "nvl" where same-named models differ by it; "" otherwise
    source: str = ""  # where the figures come from, with a confidence tag

    def __str__(self) -> str:
        return self.id


def normalise(name: str) -> str:
    """Case, whitespace, punctuation and brand words removed: "NVIDIA Tesla A100-80GB" -> "a10080gb"."""
    return re.sub(r"[^a-z0-9]", "", _NOISE.sub(" ", name.lower()))


def memory_in_gb(value: float | None) -> float | None:
    """GB from a value that may be GB or MiB (no single GPU has 1024 GB, so anything larger is MiB)."""
    if value is None or value <= 0:
        return None
    return value / 1024 if value > 1024 else float(value)


def _forms_in(text: str) -> set[str]:
    return {form for pattern, form in _FORMS if pattern.search(text)}


def _clean(naming: str, raw: str) -> str:
    """The GPU part of a source's string, lower-cased."""
    text = " ".join(raw.split())
    if naming == "aws_family":
        text = text.split(".", 1)[0]  # "p5.48xlarge" -> "p5"
    elif naming == "azure_series":
        text = re.sub(r"^(?:Standard_|Virtual Machines\s+)", "", text)
        text = re.sub(r"\s+(?:Series|Spot|Low Priority)\b.*$", "", text)
        text = _AZURE_SIZE.sub(r"\1", text)  # "NC24ads_A100_v4" -> "NCads_A100_v4": size is not the series
    text = _CONTEXT_HEAD.sub("", text.lower())
    text = _CONTEXT_TAIL.sub("", text)
    text = _SLICE.sub("", text)
    return _COUNT_PREFIX.sub("", text).strip()


class GpuCatalog:
    def __init__(self, models: Iterable[GpuModel], path: Path | None = None) -> None:
        self._models = tuple(models)
        self._by_id = {m.id.lower(): m for m in self._models}
        # namespace -> normalised alias -> models sharing it
        self._aliases: dict[str, dict[str, list[GpuModel]]] = {}
        for model in self._models:
            for namespace, names in model.aliases.items():
                table = self._aliases.setdefault(namespace, {})
                for name in names:
                    bucket = table.setdefault(normalise(name), [])
                    if model not in bucket:
                        bucket.append(model)
        _check_distinguishable(self._aliases, path or Path("<catalog>"))

    @classmethod
    def load(cls, path: Path | None = None) -> GpuCatalog:
        path = path or DEFAULT_PATH
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the GPU catalog ({exc.strerror or exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        entries = data.get("gpu")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{path}: needs at least one [[gpu]] table")
        models = [_parse_model(entry, path, index) for index, entry in enumerate(entries)]
        seen: set[str] = set()
        for model in models:
            if model.id.lower() in seen:
                raise ConfigError(f"{path}: gpu {model.id!r}: id: duplicate canonical id")
            seen.add(model.id.lower())
        return cls(models, path)

    def models(self) -> Sequence[GpuModel]:
        return self._models

    def get(self, model_id: str) -> GpuModel | None:
        return self._by_id.get(model_id.strip().lower())

    def require(self, model_id: str) -> GpuModel:
        model = self.get(model_id)
        if model is None:
            raise UnknownGpu(f"unknown GPU model {model_id!r} (known: {', '.join(m.id for m in self._models)})")
        return model

    def resolve(
        self, naming: str, raw: str, memory_gb: float | None = None, *, hint: str | None = None
    ) -> GpuModel | None:
        """The model a source means by ``raw``, or None when no alias fits or the fit is ambiguous.

        ``memory_gb`` (GB or MiB) settles names shared by models of different memory; a memory size written in
        the name itself ("A100-80GB") takes precedence over it. ``hint`` is any other text of the offer (an
        instance type such as "gpu_1x_h100_pcie") that may carry SXM/PCIe/NVL words.
        """
        if naming == CANONICAL and (model := self.get(raw)) is not None:
            return model
        text = _clean(naming, raw)
        named = _MEMORY.findall(text)
        name_memory = float(named[0]) if named else None
        candidates = self._lookup(naming, normalise(text))
        if not candidates:  # retry without the memory and form-factor words: "H100-SXM-80GB" -> "h100"
            base = _MEMORY.sub(" ", text)
            for pattern, _form in _FORMS:
                base = pattern.sub(" ", base)
            candidates = self._lookup(naming, normalise(base), name_memory)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        memory = name_memory if name_memory is not None else memory_in_gb(memory_gb)
        if memory is not None:
            # a size that fits none of them is not a per-GPU figure (catalogs that store totals): ignore it
            candidates = [m for m in candidates if _fits(memory, m)] or candidates
        if len(candidates) > 1:
            forms = _forms_in(text) | (_forms_in(hint.lower()) if hint else set())
            candidates = [m for m in candidates if m.form_factor in forms] if forms else candidates
        return candidates[0] if len(candidates) == 1 else None

    def matching(self, query: str) -> list[GpuModel]:
        """Models a user means by ``query``: a canonical id, a family ("H100" -> every H100), or any alias."""
        key = normalise(query)
        if not key:
            return []
        hits = {m.id for m in self._models if key in (normalise(m.id), normalise(m.family))}
        for table in self._aliases.values():
            hits.update(m.id for m in table.get(key, ()))
        return [m for m in self._models if m.id in hits]

    def _lookup(self, naming: str, key: str, memory: float | None = None) -> list[GpuModel]:
        """The namespace's own aliases first, then the common ones; ``memory`` (from the name) must fit."""
        if not key:
            return []
        for namespace in (naming, COMMON):
            found = self._aliases.get(namespace, {}).get(key, [])
            if memory is not None:
                found = [m for m in found if _fits(memory, m)]
            if found:
                return list(found)
        return []


def _fits(memory_gb: float, model: GpuModel) -> bool:
    return abs(memory_gb - model.memory_gb) <= MEMORY_TOLERANCE * model.memory_gb


def _check_distinguishable(aliases: Mapping[str, Mapping[str, list[GpuModel]]], path: Path) -> None:
    """A shared alias is fine only if memory or form factor can still tell its models apart."""
    for namespace, table in aliases.items():
        for key, models in table.items():
            for i, a in enumerate(models):
                for b in models[i + 1 :]:
                    close = abs(a.memory_gb - b.memory_gb) <= MEMORY_TOLERANCE * max(a.memory_gb, b.memory_gb)
                    if close and (a.form_factor == b.form_factor or not a.form_factor or not b.form_factor):
                        raise ConfigError(
                            f"{path}: gpu {b.id!r}: aliases.{namespace}: {key!r} is also an alias of {a.id!r} "
                            "and memory/form factor cannot tell them apart"
                        )


_REQUIRED_STR = ("id", "family", "vendor", "arch")
_REQUIRED_NUM = ("memory_gb", "bf16_tflops", "fp16_tflops", "memory_bandwidth_tbs", "relative_throughput")
_OPTIONAL = ("compute_capability", "form_factor", "source", "throughput_basis", "aliases")
_KNOWN = frozenset(_REQUIRED_STR + _REQUIRED_NUM + _OPTIONAL)


def _parse_model(entry: Any, path: Path, index: int) -> GpuModel:
    label = f"gpu #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {label}: must be a table")
    if isinstance(entry.get("id"), str) and entry["id"].strip():
        label = f"gpu {entry['id']!r}"

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{path}: {label}: {key}: {why} (got {entry.get(key)!r})")

    unknown = sorted(set(entry) - _KNOWN)
    if unknown:
        raise ConfigError(f"{path}: {label}: {unknown[0]}: unknown field (known: {', '.join(sorted(_KNOWN))})")
    for key in _REQUIRED_STR:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise bad(key, "must be a non-empty string")
    for key in _REQUIRED_NUM:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(key, "must be a number")
        if value < 0 or (value == 0 and key in ("memory_gb", "memory_bandwidth_tbs", "relative_throughput")):
            raise bad(key, "must be positive")
    if entry["vendor"] not in VENDORS:
        raise bad("vendor", f"must be one of {', '.join(sorted(VENDORS))}")
    if entry["arch"] not in ARCHES:
        raise bad("arch", f"must be one of {', '.join(sorted(ARCHES))}")
    cc = entry.get("compute_capability")
    if entry["vendor"] == "nvidia":
        if not isinstance(cc, str) or not re.fullmatch(r"\d+\.\d+", cc):
            raise bad("compute_capability", 'must be a CUDA compute capability like "9.0" for an NVIDIA GPU')
    elif cc is not None:
        raise bad("compute_capability", "is for NVIDIA GPUs only")
    form = entry.get("form_factor", "")
    if form not in FORM_FACTORS:
        raise bad("form_factor", f"must be one of {sorted(FORM_FACTORS)}")
    for key in ("source", "throughput_basis"):
        if not isinstance(entry.get(key, ""), str):
            raise bad(key, "must be a string")
    return GpuModel(
        id=entry["id"].strip(),
        family=entry["family"].strip(),
        vendor=entry["vendor"],
        memory_gb=float(entry["memory_gb"]),
        bf16_tflops=float(entry["bf16_tflops"]),
        fp16_tflops=float(entry["fp16_tflops"]),
        memory_bandwidth_tbs=float(entry["memory_bandwidth_tbs"]),
        compute_capability=cc,
        arch=entry["arch"],
        relative_throughput=float(entry["relative_throughput"]),
        aliases=_parse_aliases(entry, path, label),
        form_factor=form,
        source=entry.get("source", ""),
    )


def _parse_aliases(entry: Mapping[str, Any], path: Path, label: str) -> Mapping[str, tuple[str, ...]]:
    raw = entry.get("aliases", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {label}: aliases: must be a table of namespace = [names] (got {raw!r})")
    out: dict[str, tuple[str, ...]] = {}
    for namespace, names in raw.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and normalise(n) for n in names):
            raise ConfigError(
                f"{path}: {label}: aliases.{namespace}: must be a list of non-empty names (got {names!r})"
            )
        out[namespace] = tuple(names)
    out[COMMON] = (*out.get(COMMON, ()), entry["id"])  # the canonical id is understood everywhere
    return MappingProxyType(out)
