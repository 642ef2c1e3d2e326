"""Placement: the cheapest feasible option for a job by expected effective cost (``POST /v1/place``).

Pure computation over the in-memory :class:`~broker.offers.index.OfferIndex`; no I/O besides loading config.
"""

from broker.placement.costmodel import PlacementConfig
from broker.placement.engine import Infeasible, evaluate_all, place, warm
from broker.placement.schemas import Decision, Option, PlaceRequest, RejectReason

__all__ = [
    "Decision",
    "Infeasible",
    "Option",
    "PlaceRequest",
    "PlacementConfig",
    "RejectReason",
    "evaluate_all",
    "place",
    "warm",
]
