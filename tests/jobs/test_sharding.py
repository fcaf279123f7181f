"""Sharding is exact: for every format, the union of N parts equals the inline output, record for record."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from function.events.formats import Line, iter_lines, iter_npy_rows
from function.jobs.shards import Shard, owned_lines, parse_shard
from function.jsonio import dumps_line
from tests.jobs.conftest import merged, run_all

ROWS = [[5.1, 3.5, 1.4, 0.2], [1, 2, 3, 4], [0.5, -1, 2.25, 8], [7, 7, 7, 7], [-3, 0, 1e-3, 2]]


def jsonl_bytes() -> bytes:
    """Lines of different lengths, blank lines, CRLF, a V2 request line and a last line without newline."""
    parts = [json.dumps(ROWS[0]), "", json.dumps(ROWS[1]) + "\r", "   ", json.dumps(ROWS[2])]
    parts += [json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": ROWS[3]}]})]
    parts += [json.dumps(r) + ("\r" if i % 2 else "") for i, r in enumerate(ROWS * 3)]
    return ("\n".join(parts) + "\n" + json.dumps(ROWS[4])).encode()


def as_json(records: list) -> list:
    """What the output writer makes of inline records: strict JSON (numpy arrays as lists, NaN as null)."""
    return [json.loads(dumps_line(r)) for r in records]


def line_offsets(data: bytes) -> dict[int, int]:
    """1-based line number -> byte offset of its first byte (computed independently of the job code)."""
    offsets, position = {}, 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        offsets[number] = position
        position += len(raw) + 1
    return offsets


def test_every_line_is_owned_by_exactly_one_shard_for_every_n():
    data = b"a\nbb\r\n\nccc\n" + b"d" * 17 + b"\n\r\ne"  # includes a line longer than most shards
    starts = sorted(line_offsets(data).values())
    for count in range(1, len(data) + 3):  # up to N > bytes: many empty shards
        owned = []
        for index in range(count):
            start, end = Shard(index, count).span(len(data))
            if start < end:
                base = max(start - 1, 0)
                chunks = (data[i : i + 3] for i in range(base, len(data), 3))  # chunk edges everywhere too
                owned += [offset for offset, _ in owned_lines(chunks, base, start, end, 1000)]
        assert owned == starts, count


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 40])
def test_jsonl_parts_equal_the_inline_output(count, tmp_path, job_settings, inline):
    data = jsonl_bytes()
    (tmp_path / "in.jsonl").write_bytes(data)
    expected = [r for batch in inline.jsonl(iter_lines([data], 10_000)) for r in batch]
    offsets = line_offsets(data)
    expected = [{"offset": offsets[r.pop("line")], **r} for r in expected]
    got = run_all(job_settings(), (tmp_path / "in.jsonl").as_uri(), tmp_path / "out", count)
    assert got == as_json(expected)  # parts are JSON; inline records may hold numpy arrays
    assert len(got) == 20 and any("outputs" in r for r in got)


def csv_bytes(crlf: bool, trailing_newline: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    lines = ["a,b,c,d", *(",".join(str(v) for v in r) for r in ROWS * 4)]
    lines.insert(3, "")  # a blank line is not a record
    text = end.join(lines) + (end if trailing_newline else "")
    return text.encode()


@pytest.mark.parametrize("count", [1, 2, 5, 13, 30])
@pytest.mark.parametrize(("crlf", "trailing"), [(False, True), (True, False), (True, True)])
def test_csv_parts_equal_the_inline_output(count, crlf, trailing, tmp_path, job_settings, inline):
    data = csv_bytes(crlf, trailing)
    (tmp_path / "in.csv").write_bytes(data)
    table = pacsv.read_csv(io.BytesIO(data))
    rows = [list(r.values()) for r in table.to_pylist()]
    expected = [r["prediction"] for b in inline.jsonl([Line(i, row) for i, row in enumerate(rows)]) for r in b]
    record_starts = [o for n, o in line_offsets(data).items() if n > 1 and data[o:].split(b"\n")[0].strip()]
    got = run_all(job_settings(), (tmp_path / "in.csv").as_uri(), tmp_path / "out", count)
    assert [r["prediction"] for r in got] == expected
    assert [r["offset"] for r in got] == record_starts
    assert len(got) == 20


@pytest.mark.parametrize("count", [1, 2, 3, 6, 25])
def test_npy_parts_equal_the_inline_output_exactly(count, tmp_path, job_settings, inline):
    array = np.arange(22 * 4, dtype=np.float32).reshape(22, 4) / 10
    buffer = io.BytesIO()
    np.save(buffer, array)
    (tmp_path / "in.npy").write_bytes(buffer.getvalue())
    expected = [r for b in inline.npy(iter_npy_rows([buffer.getvalue()], 3)) for r in b]
    assert run_all(job_settings(), (tmp_path / "in.npy").as_uri(), tmp_path / "out", count) == expected


@pytest.mark.parametrize("count", [1, 2, 3, 4, 9])
def test_parquet_row_groups_equal_the_inline_output(count, tmp_path, job_settings, inline):
    values = (np.arange(10 * 4, dtype=np.float32).reshape(10, 4) / 7).tolist()
    pq.write_table(pa.table({"features": values}), tmp_path / "in.parquet", row_group_size=3)  # 4 groups
    expected = [r for b in inline.jsonl([Line(i, v) for i, v in enumerate(values)]) for r in b]
    expected = [{"row": r.pop("line"), **r} for r in expected]
    assert run_all(job_settings(), (tmp_path / "in.parquet").as_uri(), tmp_path / "out", count) == expected


def test_parquet_columns_per_feature_are_one_vector(tmp_path, job_settings, inline):
    table = pa.table({f"f{i}": [r[i] for r in ROWS] for i in range(4)})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)
    expected = [r["prediction"] for b in inline.jsonl([Line(i, r) for i, r in enumerate(ROWS)]) for r in b]
    got = run_all(job_settings(), (tmp_path / "in.parquet").as_uri(), tmp_path / "out", 2)
    assert [r["prediction"] for r in got] == expected
    assert [r["row"] for r in got] == list(range(5))


def test_parquet_output_holds_the_same_predictions(tmp_path, job_settings):
    data = jsonl_bytes()
    (tmp_path / "in.jsonl").write_bytes(data)
    as_jsonl = run_all(job_settings(), (tmp_path / "in.jsonl").as_uri(), tmp_path / "a", 3)
    run_all(job_settings(batch_output_format="parquet"), (tmp_path / "in.jsonl").as_uri(), tmp_path / "b", 3)
    tables = [pq.read_table(tmp_path / "b" / f"{Shard(i, 3).name}.parquet") for i in range(3)]
    rows = [row for t in tables for row in t.to_pylist()]
    assert [r["position"] for r in rows] == [r["offset"] for r in as_jsonl]
    singles = [r.get("prediction", {k: v for k, v in r.items() if k != "offset"}) for r in as_jsonl]
    assert [json.loads(r["prediction"]) for r in rows] == singles


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_rerunning_a_shard_writes_the_same_bytes(fmt, tmp_path, job_settings):
    (tmp_path / "in.jsonl").write_bytes(jsonl_bytes())
    settings = job_settings(batch_output_format=fmt)
    run_all(settings, (tmp_path / "in.jsonl").as_uri(), tmp_path / "out", 3)
    part = tmp_path / "out" / f"{Shard(1, 3).name}.{fmt}"
    first = part.read_bytes()
    part.unlink()
    run_all(settings, (tmp_path / "in.jsonl").as_uri(), tmp_path / "out", 3)
    assert part.read_bytes() == first and first


def test_a_prefix_input_shards_every_object(tmp_path, job_settings, inline):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.jsonl").write_bytes(jsonl_bytes())
    np.save(tmp_path / "in" / "a.npy", np.ones((4, 4), dtype=np.float32))
    (tmp_path / "in" / "notes.txt").write_text("not an input")
    got = run_all(job_settings(), (tmp_path / "in").as_uri(), tmp_path / "out", 2)
    assert sorted({r["object"] for r in got}) == ["a.npy", "b.jsonl"]
    assert len([r for r in got if r["object"] == "a.npy"]) == 4
    assert len([r for r in got if r["object"] == "b.jsonl"]) == 20
    success = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert [s["key"] for s in success["sources"]] == ["a.npy", "b.jsonl"] and success["records"] == 24


def test_a_prefix_input_never_reads_its_own_outputs(tmp_path, job_settings):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.jsonl").write_bytes(jsonl_bytes())
    first = run_all(job_settings(), (tmp_path / "in").as_uri(), tmp_path / "in" / "out", 2)
    again = run_all(job_settings(), (tmp_path / "in").as_uri(), tmp_path / "in" / "out", 2)  # parts now exist
    assert first == again and {r["object"] for r in again} == {"b.jsonl"}


def test_success_manifest_only_when_all_parts_exist(tmp_path, job_settings):
    from function.jobs.runner import run_shard

    (tmp_path / "in.jsonl").write_bytes(jsonl_bytes())
    out = tmp_path / "out"
    for index in (0, 2):
        run_shard(job_settings(), (tmp_path / "in.jsonl").as_uri(), out.as_uri(), Shard(index, 3))
    assert not (out / "_SUCCESS").exists()
    run_shard(job_settings(), (tmp_path / "in.jsonl").as_uri(), out.as_uri(), Shard(1, 3))
    success = json.loads((out / "_SUCCESS").read_text())
    assert success["count"] == 3 and success["records"] == len(merged(out, 3)) == 20
    assert success["model"] == "lin" and success["model_version"] == "1.0.0"
    assert [p["name"] for p in success["parts"]] == [f"{Shard(i, 3).name}.jsonl" for i in range(3)]
    assert success["sources"][0]["size"] == len(jsonl_bytes()) and success["sources"][0]["version"]


@pytest.mark.parametrize(("text", "ok"), [("0/1", True), ("3/4", True), ("4/4", False), ("x/2", False), ("1/0", False)])
def test_shard_syntax(text, ok):
    if ok:
        assert parse_shard(text).name.startswith("part-")
    else:
        with pytest.raises(ValueError):
            parse_shard(text)


def test_parts_from_different_source_versions_never_make_a_success(tmp_path, job_settings):
    import os

    from function.jobs.runner import run_shard
    from function.jobs.status import read_statuses, summary
    from loader.stores import open_store

    source, out = tmp_path / "in.jsonl", tmp_path / "out"
    source.write_bytes(jsonl_bytes())
    run_shard(job_settings(), source.as_uri(), out.as_uri(), Shard(0, 2))
    source.write_bytes(jsonl_bytes())  # replaced between shards: a new version (mtime)
    os.utime(source, ns=(1, 1))
    run_shard(job_settings(), source.as_uri(), out.as_uri(), Shard(1, 2))
    assert not (out / "_SUCCESS").exists()
    run_shard(job_settings(), source.as_uri(), out.as_uri(), Shard(0, 2))  # rerun the stale part
    assert json.loads((out / "_SUCCESS").read_text())["sources"][0]["version"] == "1"
    assert summary(read_statuses(open_store(out.as_uri())))["done"] == 2


def test_parquet_columns_named_after_a_multi_input_models_inputs(tmp_path, make_settings, store_dir):
    from tests.models import publish_model, two_input_onnx

    publish_model(store_dir.as_uri(), two_input_onnx(tmp_path / "two.onnx"), name="two")
    a, b = [[1.0, 2.0], [0.5, 0.5], [3.0, -1.0]], [[1.0, 1.0], [2.0, 4.0], [1.0, 1.0]]
    table = pa.table({"b": b, "count": [1, 2, 3], "a": a, "note": ["x", "y", "z"]})  # any column order
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=1)
    settings = make_settings(model_uri=f"{store_dir.as_uri()}/two", events_batch_size=2)
    got = run_all(settings, (tmp_path / "in.parquet").as_uri(), tmp_path / "out", 2)
    assert [r["row"] for r in got] == [0, 1, 2]
    assert [r["prediction"] for r in got] == pytest.approx([3.0, 3.0, 2.0])  # dot(a, b) per row
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    from function.jobs.runner import run_shard
    from loader.errors import InferenceInputError

    with pytest.raises(InferenceInputError, match="name a column after each"):
        run_shard(settings, (tmp_path / "bad.csv").as_uri(), (tmp_path / "o2").as_uri(), Shard(0, 1))
    report = json.loads((tmp_path / "o2" / f"{Shard(0, 1).name}.error.json").read_text())
    assert report["permanent"] and "name a column" in report["error"]
