"""The feature specification: which neighbours, which degrees, which channels."""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import asdict, dataclass, fields

CHANNELS = ("all", "like", "unlike")  # their order is the kernels' channel code 0, 1, 2
DEFAULT_DEGREES = (4, 6, 8)  # the reference study's, with shipped Y_lm code (_ylm_4_6_8.py)
_LABEL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class FeatureSpec:
    """Describes the per-atom Steinhardt features of one neighbour definition; serialisable to JSON.

    Neighbours are either all atoms within ``cutoff`` (Å) or, with ``num_neighbors = N``
    (and ``cutoff=None``), the N nearest ones, or with ``relative_cutoff`` too, all atoms
    within ``relative_cutoff * l_i``.  The local length ``l_i`` (Å) of atom i is its mean
    distance to its N nearest atoms, or for a ``cutoff`` spec to its neighbours within the
    cutoff (0 without any).  For every channel (``all`` neighbours, ``like`` neighbours of
    the centre's species, ``unlike`` ones) and every degree ``l`` the spec yields
    ``q{l}_{channel}``; optional extras are the Lechner-Dellago average
    ``qbar{l}_{channel}``, the normalised third-order invariant ``w{l}_{channel}``, the
    neighbour count ``n_{channel}`` and ``radial`` columns ``r1 .. r{radial}``: the distance
    to the k-th nearest atom (any species, whether a neighbour or not) divided by ``l_i``
    (0 where there is no k-th atom or ``l_i`` is 0).  ``label`` names the definition inside
    a :class:`FeatureSet`, where it prefixes the column names (``"{label}.q6_all"``).
    """

    cutoff: float | None = 4.0
    num_neighbors: int | None = None
    degrees: tuple[int, ...] = DEFAULT_DEGREES
    channels: tuple[str, ...] = CHANNELS
    averaged: bool = False
    wigner: bool = False
    counts: bool = False
    relative_cutoff: float | None = None
    radial: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "degrees", tuple(int(v) for v in self.degrees))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        if (self.cutoff is None) == (self.num_neighbors is None):
            raise ValueError("FeatureSpec needs exactly one of cutoff (Å) or num_neighbors")
        if self.cutoff is not None:
            object.__setattr__(self, "cutoff", _positive("cutoff", self.cutoff, "distance in Å"))
        if self.num_neighbors is not None:
            object.__setattr__(self, "num_neighbors", _count("num_neighbors", self.num_neighbors, 1))
        if self.relative_cutoff is not None:
            if self.num_neighbors is None:
                raise ValueError("relative_cutoff needs num_neighbors = N (its local length is the mean distance "
                                 "to the N nearest atoms) and no cutoff")
            object.__setattr__(self, "relative_cutoff",
                               _positive("relative_cutoff", self.relative_cutoff, "multiple of the local length"))
        object.__setattr__(self, "radial", _count("radial", self.radial, 0))
        if not isinstance(self.label, str) or (self.label and not _LABEL.fullmatch(self.label)):
            raise ValueError(f"label must be letters, digits, '_' or '-', got {self.label!r}")
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
    def specs(self) -> tuple[FeatureSpec, ...]:
        """The neighbour definitions: this spec alone (the interface of :class:`FeatureSet`)."""
        return (self,)

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
        return names + [f"r{k}" for k in range(1, self.radial + 1)]

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
            raise ValueError(f"FeatureSpec does not know the field(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """A spec from :meth:`to_json`'s output; ValueError for unknown fields or invalid values."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class FeatureSet:
    """Several neighbour definitions in one model, each a :class:`FeatureSpec` with its own
    channels and extras and a unique ``label`` that prefixes its column names
    (``"{label}.q6_all"``); columns come definition by definition, in the given order."""

    specs: tuple[FeatureSpec, ...]

    def __post_init__(self) -> None:
        specs = tuple(self.specs)
        if not specs or not all(isinstance(s, FeatureSpec) for s in specs):
            raise ValueError(f"a FeatureSet needs one or more FeatureSpecs, got {self.specs!r}")
        labels = [s.label for s in specs]
        if not all(labels):
            raise ValueError(f"every definition of a FeatureSet needs a label, got labels {labels}")
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(f"the labels of a FeatureSet must be unique, {repeated} repeat")
        object.__setattr__(self, "specs", specs)

    @property
    def needs_species(self) -> bool:
        """True if a channel of any definition filters neighbours by chemical species."""
        return any(s.needs_species for s in self.specs)

    @property
    def feature_names(self) -> list[str]:
        """Column names of :func:`compute_features`' output, in order."""
        return [f"{s.label}.{name}" for s in self.specs for name in s.feature_names]

    def to_dict(self) -> dict:
        """``{"sets": [spec dicts]}``, JSON-ready."""
        return {"sets": [s.to_dict() for s in self.specs]}

    def to_json(self) -> str:
        """The set as JSON, keys sorted: what a model file stores in its metadata."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSet:
        """A set from :meth:`to_dict`'s output; ValueError names what is wrong."""
        if set(data) != {"sets"} or not isinstance(data["sets"], list):
            raise ValueError(f"a FeatureSet dict is {{'sets': [spec dicts]}}, got the key(s) {sorted(data)}")
        return cls(tuple(FeatureSpec.from_dict(dict(d)) for d in data["sets"]))

    @classmethod
    def from_json(cls, text: str) -> FeatureSet:
        """A set from :meth:`to_json`'s output; ValueError names what is wrong."""
        return cls.from_dict(json.loads(text))


def spec_from_dict(data: dict) -> FeatureSpec | FeatureSet:
    """The :class:`FeatureSet` (a dict with ``sets``) or :class:`FeatureSpec` that ``data`` describes."""
    return (FeatureSet if "sets" in data else FeatureSpec).from_dict(data)


def spec_from_json(text: str) -> FeatureSpec | FeatureSet:
    """The :class:`FeatureSet` or :class:`FeatureSpec` of a model file's ``atomclass.spec`` JSON."""
    return spec_from_dict(json.loads(text))


def _positive(name: str, value, what: str) -> float:
    """``value`` as a positive, finite float, else ValueError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 < number < math.inf:
        raise ValueError(f"{name} must be a positive, finite {what}, got {value!r}")
    return number


def _count(name: str, value, smallest: int) -> int:
    """``value`` as an integer >= ``smallest``, else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer() \
            or value < smallest:
        raise ValueError(f"{name} must be an integer of at least {smallest}, got {value!r}")
    return int(value)
