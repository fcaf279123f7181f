"""Model health metrics through the HTTP API: confidence, label counts, drift PSI, sampling bounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from function.app import create_app
from function.cli import main
from function.monitoring import CONFIDENCE_BUCKETS, BinWindow
from loader.manifest import FeatureBins, Manifest
from loader.prepost import softmax
from tests.conftest import wait_ready
from tests.models import expected_logits

MODEL = {"model": "lin", "version": "1.0.0", "role": "primary"}


def samples(client: FlaskClient, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` whose labels include ``labels``, keyed by its remaining labels."""
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                found[tuple(sorted((k, v) for k, v in s.labels.items() if k not in labels))] = s.value
    return found


def value(client: FlaskClient, name: str, **labels: str) -> float:
    found = samples(client, name, **{**MODEL, **labels})
    assert len(found) == 1, (name, found)
    return next(iter(found.values()))


def predict(client: FlaskClient, rows: np.ndarray, batch: int = 25) -> None:
    for start in range(0, len(rows), batch):
        response = client.post("/v1/models/lin:predict", json={"instances": rows[start : start + batch].tolist()})
        assert response.status_code == 200, response.get_json()


@pytest.fixture
def reference_store(store_dir: Path, onnx_file: Path, tmp_path: Path, labels_file: Path) -> str:
    """lin@1.0.0 with labels, softmax and a drift reference of 2000 standard-normal rows."""
    np.save(tmp_path / "reference.npy", np.random.default_rng(1).normal(size=(2000, 4)))
    result = CliRunner().invoke(
        main,
        ["publish", str(onnx_file), "--name", "lin", "--version", "1.0.0", "--to", store_dir.as_uri(),
         "--labels", str(labels_file), "--softmax", "--reference", str(tmp_path / "reference.npy")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return store_dir.as_uri()


@pytest.fixture
def serve(make_settings: Callable[..., object], reference_store: str) -> Callable[..., FlaskClient]:
    def factory(**overrides: object) -> FlaskClient:
        settings = make_settings(**{"model_uri": f"{reference_store}/lin", "monitor_sample_every": 1, **overrides})
        client = create_app(settings).test_client()  # type: ignore[arg-type]
        wait_ready(client)
        return client

    return factory


def test_reference_bins_are_quantiles_of_the_sample(reference_store: str, store_dir: Path):
    reference = Manifest.from_json((store_dir / "lin/1.0.0/manifest.json").read_bytes()).reference
    assert reference is not None and reference.rows == 2000
    assert [f.name for f in reference.features] == [f"features[{j}]" for j in range(4)]
    sample = np.load(store_dir.parent / "reference.npy")
    for j, bins in enumerate(reference.features):
        assert bins.edges == pytest.approx(np.quantile(sample[:, j], np.linspace(0.1, 0.9, 9)).tolist())
        assert bins.expected == pytest.approx([0.1] * 10, abs=0.002)
    assert reference.scores is not None and len(reference.scores.edges) == 9


def test_psi_is_near_zero_on_reference_like_data_and_high_on_shifted_data(serve):
    client = serve(monitor_window=1000)
    rng = np.random.default_rng(2)
    predict(client, rng.normal(size=(1000, 4)))
    features = {f: value(client, "modelfn_input_psi", feature=f"features[{f}]") for f in range(4)}
    assert max(features.values()) < 0.1 and value(client, "modelfn_input_psi_max") == max(features.values())
    calm_output = value(client, "modelfn_output_psi")
    assert calm_output < 0.1
    shifted = rng.normal(size=(1000, 4))
    shifted[:, 0] += 5.0  # only feature 0 drifts (feature 2 could not move the scores: its weights are equal)
    predict(client, shifted)
    assert value(client, "modelfn_input_psi", feature="features[0]") > 1.0
    assert value(client, "modelfn_input_psi_max") == value(client, "modelfn_input_psi", feature="features[0]")
    assert all(value(client, "modelfn_input_psi", feature=f"features[{f}]") < 0.1 for f in (1, 2, 3))
    assert value(client, "modelfn_output_psi") > 0.5 > calm_output


def test_confidence_histogram_and_label_counts(serve):
    client = serve()
    x = np.random.default_rng(5).normal(size=(30, 4))
    predict(client, x, batch=10)
    top = softmax(expected_logits(x).astype(np.float64)).max(axis=1)
    buckets = samples(client, "modelfn_prediction_confidence_bucket", **MODEL)
    for le in CONFIDENCE_BUCKETS:
        assert buckets[(("le", str(float(le))),)] == np.sum(top <= le), le
    assert value(client, "modelfn_prediction_confidence_count") == 30
    assert value(client, "modelfn_prediction_confidence_sum") == pytest.approx(top.sum(), rel=1e-5)
    counts = np.bincount(expected_logits(x).argmax(axis=1), minlength=3)
    labels = samples(client, "modelfn_predicted_labels_total", **MODEL)
    assert labels == {(("label", name),): float(n) for name, n in zip("abc", counts, strict=True) if n}


def test_v2_requests_are_observed_too(serve):
    client = serve()
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 4], "data": [0.5] * 12}]}
    assert client.post("/v2/models/lin/infer", json=body).status_code == 200
    assert value(client, "modelfn_monitor_sampled_rows_total") == 3


def test_sampling_every_nth_call(serve):
    client = serve(monitor_sample_every=4)
    predict(client, np.zeros((21, 4)), batch=1)  # calls 0, 4, 8, 12, 16, 20 are sampled
    assert value(client, "modelfn_monitor_sampled_rows_total") == 6
    assert value(client, "modelfn_prediction_confidence_count") == 6


def test_rows_per_sample_and_window_are_bounded(serve):
    client = serve(monitor_max_rows=8, monitor_window=50)
    predict(client, np.random.default_rng(0).normal(size=(200, 4)), batch=20)
    assert value(client, "modelfn_monitor_sampled_rows_total") == 80  # 10 calls x 8 rows
    assert value(client, "modelfn_drift_window_rows") == 50


def test_monitoring_off_exports_no_health_series(serve):
    client = serve(monitor_sample_every=0)
    predict(client, np.zeros((5, 4)))
    assert samples(client, "modelfn_monitor_sampled_rows_total") == {}


def test_bin_window_counts_equal_a_recount_of_the_last_rows():
    edges = [[-1.0, 0.0, 1.0], [0.5]]
    bins = [FeatureBins(name=f"f{i}", edges=e, expected=[1 / (len(e) + 1)] * (len(e) + 1)) for i, e in enumerate(edges)]
    window = BinWindow(bins, size=37)
    rng = np.random.default_rng(9)
    seen = np.zeros((0, 2))
    for n in [5, 30, 1, 37, 80, 3, 36, 2] * 3:
        x = rng.normal(size=(n, 2))
        window.add(x)
        seen = np.vstack([seen, x])[-37:]
        for i, e in enumerate(edges):
            recount = np.bincount(np.searchsorted(e, seen[:, i], side="right"), minlength=len(e) + 1)
            assert window.counts[i, : len(e) + 1].tolist() == recount.tolist()
            assert window.counts[i, len(e) + 1 :].sum() == 0
    assert window.filled == 37


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_references_bin_like_npy(store_dir: Path, onnx_file: Path, tmp_path: Path, suffix: str):
    rows = np.random.default_rng(4).normal(size=(300, 4))
    np.save(tmp_path / "ref.npy", rows)
    if suffix == ".jsonl":
        lines = [json.dumps({"features": r}) if i % 2 else json.dumps(r) for i, r in enumerate(rows.tolist())]
        (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n")
    else:
        pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (optional) is needed for .parquet references")
        import pyarrow as pa

        pq.write_table(pa.table({f"c{j}": rows[:, j] for j in range(4)}), tmp_path / "ref.parquet")
    references = []
    for version, path in (("1.0.0", "ref.npy"), ("1.0.1", f"ref{suffix}")):
        result = CliRunner().invoke(
            main,
            ["publish", str(onnx_file), "--name", "lin", "--version", version, "--to", store_dir.as_uri(),
             "--reference", str(tmp_path / path)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        references.append(Manifest.from_json((store_dir / f"lin/{version}/manifest.json").read_bytes()).reference)
    assert references[0] is not None and references[1] is not None
    assert references[0].features == references[1].features and references[0].scores == references[1].scores


@pytest.mark.parametrize(
    ("content", "words"),
    [("[1, 2]\n", "at least 10 numeric rows"), ("not json\n", "cannot read reference sample"), (None, "must be .npy")],
)
def test_bad_reference_is_a_usage_error(store_dir: Path, onnx_file: Path, tmp_path: Path, content, words):
    path = tmp_path / ("ref.jsonl" if content is not None else "ref.csv")
    path.write_text(content or "1,2,3,4\n")
    result = CliRunner().invoke(
        main, ["publish", str(onnx_file), "--name", "lin", "--version", "1.0.0", "--to", store_dir.as_uri(),
               "--reference", str(path)],
    )  # fmt: skip
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
    assert not (store_dir / "lin").exists()


def test_health_metrics_aggregate_across_gunicorn_workers(tmp_path: Path, reference_store: str):
    from tests.function.test_server import start_server

    server = start_server(tmp_path, f"{reference_store}/lin", MONITOR_SAMPLE_EVERY="1", MONITOR_WINDOW="100")
    try:
        rows = np.random.default_rng(6).normal(size=(40, 32, 4))
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda b: server.post("/v1/models/lin:predict", {"instances": b.tolist()})[0], rows))
        assert codes == [200] * 40
        text = server.get("/metrics")[1].decode()
        families = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
        # Counters and histograms are summed over the workers' files; the PSI gauges take the live maximum.
        assert families["modelfn_prediction_confidence_count"].value == 40 * 32
        assert families["modelfn_monitor_sampled_rows_total"].value == 40 * 32
        assert 0 <= families["modelfn_input_psi_max"].value < 0.5
        assert families["modelfn_drift_window_rows"].value == 100
    finally:
        server.proc.terminate()
        server.proc.wait(30)


def test_non_finite_scores_are_not_observed(published: str, store_dir: Path):
    from prometheus_client import CollectorRegistry, generate_latest

    from function.holder import LoadedModel
    from function.monitoring import Monitor, create_health_metrics
    from loader.artifacts import LocalArtifact
    from loader.cache import FetchStats

    manifest = Manifest.from_json((store_dir / "lin/1.0.0/manifest.json").read_bytes())  # labels + softmax
    registry = CollectorRegistry()
    monitor = Monitor(create_health_metrics(registry), every=1, window=100, max_rows=32)
    model = LoadedModel(LocalArtifact(manifest, store_dir, FetchStats()), runtime=None)  # type: ignore[arg-type]
    logits = np.array([[np.nan, 0.0, 1.0], [0.0, 5.0, 1.0]], dtype=np.float32)
    monitor.observe(model, {"features": np.zeros((2, 4), np.float32)}, {"logits": logits}, "primary")
    text = generate_latest(registry).decode()
    families = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if "role" in s.labels}
    assert families["modelfn_prediction_confidence_count"] == 1
    assert np.isfinite(families["modelfn_prediction_confidence_sum"])
    assert families["modelfn_monitor_sampled_rows_total"] == 2
