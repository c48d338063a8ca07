"""The feature specification: which neighbours, which degrees, which channels."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

CHANNELS = ("all", "like", "unlike")


@dataclass(frozen=True)
class FeatureSpec:
    """Describes the per-atom Steinhardt features; serialisable to JSON.

    Neighbours are either all atoms within ``cutoff`` (Å) or the ``num_neighbors``
    nearest ones; exactly one of the two is set.  For every channel (``all``
    neighbours, ``like`` neighbours of the centre's species, ``unlike`` ones) and
    every degree ``l`` the spec yields ``q{l}_{channel}``; optional extras are the
    Lechner-Dellago average ``qbar{l}_{channel}``, the normalised third-order
    invariant ``w{l}_{channel}`` and the neighbour count ``n_{channel}``.
    """

    cutoff: float | None = 4.0
    num_neighbors: int | None = None
    degrees: tuple[int, ...] = (4, 6, 8)
    channels: tuple[str, ...] = CHANNELS
    averaged: bool = False
    wigner: bool = False
    counts: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "degrees", tuple(int(v) for v in self.degrees))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        if (self.cutoff is None) == (self.num_neighbors is None):
            raise ValueError("FeatureSpec needs exactly one of cutoff (Å) or num_neighbors")
        if self.cutoff is not None:
            cutoff = float(self.cutoff)
            if not cutoff > 0.0 or cutoff != cutoff or cutoff == float("inf"):
                raise ValueError(f"cutoff must be a positive, finite distance in Å, got {self.cutoff!r}")
            object.__setattr__(self, "cutoff", cutoff)
        if self.num_neighbors is not None and int(self.num_neighbors) < 1:
            raise ValueError(f"num_neighbors must be at least 1, got {self.num_neighbors!r}")
        if not self.degrees or any(not 1 <= v <= 16 for v in self.degrees):
            raise ValueError(f"degrees must be integers from 1 to 16, got {self.degrees!r}")
        if len(set(self.degrees)) != len(self.degrees):
            raise ValueError(f"degrees repeat: {self.degrees!r}")
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(
                f"unknown or repeated channel(s) {unknown or list(self.channels)}; "
                f"choose from {', '.join(CHANNELS)}"
            )

    @property
    def needs_species(self) -> bool:
        """True if a channel filters neighbours by chemical species."""
        return any(c != "all" for c in self.channels)

    @property
    def feature_names(self) -> list[str]:
        """Column names of :func:`compute_features`' output, in order."""
        kinds = ["q"] + (["qbar"] if self.averaged else []) + (["w"] if self.wigner else [])
        names = [f"{k}{l}_{c}" for k in kinds for c in self.channels for l in self.degrees]
        if self.counts:
            names += [f"n_{c}" for c in self.channels]
        return names

    def to_dict(self) -> dict:
        """The fields as a plain, JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["degrees"] = list(self.degrees)
        d["channels"] = list(self.channels)
        return d

    def to_json(self) -> str:
        """The spec as JSON, keys sorted: what a model file stores in its metadata."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        """A spec from :meth:`to_dict`'s output (or a configuration's ``[features]`` table);
        ValueError names unknown fields or invalid values."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"FeatureSpec does not know the field(s) {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """A spec from :meth:`to_json`'s output; ValueError for unknown fields or invalid values."""
        return cls.from_dict(json.loads(text))
