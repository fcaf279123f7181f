"""The artifact manifest: what a published model version is, byte for byte."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loader import uri as _uri
from loader.errors import InvalidURI, ManifestInvalid, first_problem

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
# "by-path": files at <name>/<version>/<path> (manifests written before content addressing);
# "by-digest": files at <name>/_blobs/sha256/<hex>, so a racing publisher can never overwrite them.
Layout = Literal["by-path", "by-digest"]


class Framework(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch_export"


class Precision(StrEnum):
    """The dtype a torch model's floating weights and activations run in (inputs/outputs keep the signature's)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"


# Open Inference Protocol (KServe V2) datatypes we can carry in JSON.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
]


def validate_name(name: str) -> str:
    """Name rule as a pydantic-friendly ValueError."""
    try:
        return _uri.validate_name(name)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from None


def validate_ref(ref: str) -> str:
    """Version/alias rule as a pydantic-friendly ValueError."""
    try:
        return _uri.validate_ref(ref)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One named tensor: V2 datatype and shape (-1 marks a dynamic dimension)."""

    name: str = Field(min_length=1, max_length=256)
    datatype: Datatype
    shape: list[int]

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError("dimensions are positive, or -1 for dynamic")
        return shape


class FileEntry(_Strict):
    """A file of the artifact, relative to the version directory."""

    path: str = Field(pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]*$", max_length=512)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if any(seg in ("", ".", "..") for seg in path.split("/")) or path == MANIFEST_FILE:
            raise ValueError("file paths are relative, without '.', '..' or empty segments")
        return path


class PreProcessing(_Strict):
    """Applied to the first input of /v1 requests: ``(x * scale - mean) / std``."""

    scale: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    @field_validator("std")
    @classmethod
    def _nonzero(cls, std: list[float] | None) -> list[float] | None:
        if std is not None and any(s == 0 for s in std):
            raise ValueError("std must not contain 0")
        return std


class PostProcessing(_Strict):
    """Applied to the first output of /v1 responses."""

    softmax: bool = False
    labels: list[str] | None = None
    top_k: int | None = Field(None, ge=1)


def _absent(value: object) -> bool:
    return value is None


class GateResult(_Strict):
    """One publish gate (``accuracy>=0.95``), the measured value and whether it held."""

    gate: str = Field(max_length=200)
    value: float | None
    passed: bool


class Evaluation(_Strict):
    """What ``modelfn publish --eval`` measured on an evaluation set, and the gates it checked."""

    dataset_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    examples: int = Field(ge=1)
    metrics: dict[str, float]
    gates: list[GateResult] = Field(default_factory=list)
    passed: bool = Field(description="At least one gate, and every gate held")


class Provenance(_Strict):
    """When and from what the artifact was made; metadata is free-form (git sha, dataset...)."""

    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, str] = Field(default_factory=dict)
    # Omitted when absent so manifests without it stay byte-identical (and readable by older servers).
    evaluation: Evaluation | None = Field(None, exclude_if=_absent)


class FeatureBins(_Strict):
    """Reference distribution of one feature: interior bin edges and the share of rows in each bin."""

    name: str = Field(min_length=1, max_length=256)
    edges: list[float] = Field(min_length=1)
    expected: list[float]

    @model_validator(mode="after")
    def _shape(self) -> FeatureBins:
        if len(self.expected) != len(self.edges) + 1 or any(b < a for a, b in itertools.pairwise(self.edges)):
            raise ValueError("edges must ascend and expected must have one share per bin (len(edges) + 1)")
        return self


class Reference(_Strict):
    """Per-feature reference bins (quantiles) of the first input, and of the model's top scores, for drift."""

    sample_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=1)
    features: list[FeatureBins] = Field(min_length=1)
    scores: FeatureBins | None = None


class Manifest(_Strict):
    """Schema-versioned description of one immutable model version."""

    schema_version: Literal[1] = 1
    name: str
    version: str
    framework: Framework
    precision: Precision = Field(Precision.FP32, description="torch only: weights cast to this dtype at load")
    model_file: str = Field(description="The entry file the runtime loads (one of files)")
    files: list[FileEntry] = Field(min_length=1)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    preprocess: PreProcessing = Field(default_factory=PreProcessing)
    postprocess: PostProcessing = Field(default_factory=PostProcessing)
    provenance: Provenance = Field(default_factory=Provenance)
    layout: Layout = Field("by-path", description="Where the files live in the store (see Layout)")
    reference: Reference | None = Field(None, exclude_if=_absent)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return validate_name(name)

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        return validate_ref(version)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("file paths must be unique")
        if self.model_file not in paths:
            raise ValueError("model_file must be one of files")
        for group in (self.inputs, self.outputs):
            names = [t.name for t in group]
            if len(set(names)) != len(names):
                raise ValueError("tensor names must be unique")
        if self.precision is not Precision.FP32 and self.framework is Framework.ONNX:
            raise ValueError("precision applies to torch models; an ONNX model runs in the dtypes of its graph")
        labels = self.postprocess.labels
        if labels is not None and self.outputs[0].shape[-1] not in (-1, len(labels)):
            raise ValueError("labels must match the last dimension of the first output")
        return self

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys) so the manifest's own digest is stable."""
        # fp32 is left out so older servers (extra="forbid") still read manifests that do not use precision.
        exclude = {"precision"} if self.precision is Precision.FP32 else None
        return json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and validate, raising ManifestInvalid with the first problem."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ManifestInvalid(f"invalid manifest: {first_problem(exc, 'manifest')}") from None


class Candidate(_Strict):
    """A second version an alias sends a share of its traffic to: ``canary`` answers, ``shadow`` only runs."""

    version: str
    share: float = Field(gt=0, le=100, description="percent of requests")
    mode: Literal["canary", "shadow"]

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        return validate_ref(version)


class AliasRecord(_Strict):
    """``<name>/aliases/<alias>.json``: the version an alias points at (its primary) and an optional candidate."""

    version: str
    candidate: Candidate | None = None
    seq: int = Field(default=0, ge=0, description="the history entry this record was written from (0: none)")
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        return validate_ref(version)

    @model_validator(mode="after")
    def _distinct(self) -> AliasRecord:
        if self.candidate is not None and self.candidate.version == self.version:
            raise ValueError("the candidate must be another version than the primary")
        return self

    def target(self) -> tuple[str, Candidate | None]:
        """What the alias serves, without bookkeeping (seq, time): equal targets serve the same."""
        return self.version, self.candidate


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()
