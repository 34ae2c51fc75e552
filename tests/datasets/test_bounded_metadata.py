"""A hostile metadata file costs bounded work and a bounded report (issue 20, finding 1 and item 8).

Through the real dataset preparation (`prepare_dataset` on a ZIP): metadata.jsonl / metadata.csv
are read for at most MAX_METADATA_ROWS rows, warnings are kept up to MAX_WARNINGS with their total
counted, the report file has a size cap, and no reader loads a report over it.

Measured on this box (2 shared cores), the issue's input (3 images and a metadata.jsonl of 4.2
million one-digit lines, a 2.3 MB ZIP) under tracemalloc: before, 321 s, 1.35 GB traced peak
(2.3 GB max RSS) and a 276 MB dataset_report.json; now 1.05 s, 42 MB traced peak (359 MB max RSS,
mostly imports) and a 64 KB report holding 1000 warnings and `warnings_total` 10001.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from loraforge.datasets.metadata_files import FIELD_LIMIT, MAX_METADATA_ROWS
from loraforge.datasets.prepare import prepare_dataset
from loraforge.datasets.report import DatasetReport, ReportTooLarge, read_report, summarize
from loraforge.datasets.warning_log import MAX_WARNINGS
from tests.support import samples


def _prepare(tmp_path: Path, metadata_name: str, metadata: str) -> tuple[dict, float]:
    entries: dict[str, bytes | str] = {f"p{i}.png": samples.png(seed=i) for i in range(3)}
    entries[metadata_name] = metadata
    archive = samples.make_zip(tmp_path / "set.zip", entries)
    started = time.perf_counter()
    prepare_dataset(archive, tmp_path / "work", trigger_word="TOK", resolution=64)
    return read_report(tmp_path / "work" / "dataset_report.json"), time.perf_counter() - started


def _digit_lines(count: int) -> str:
    rnd = random.Random(0)  # random digits: the ZIP's ratio check refuses a file of one repeated line
    return "".join(f"{rnd.randrange(10)}\n" for _ in range(count))


def test_bad_metadata_lines_just_under_the_row_cap_are_all_counted(tmp_path: Path) -> None:
    report, _ = _prepare(tmp_path, "metadata.jsonl", _digit_lines(MAX_METADATA_ROWS))
    assert report["warnings_total"] == MAX_METADATA_ROWS
    assert len(report["warnings"]) == MAX_WARNINGS
    assert report["warnings"][-1] == f"metadata.jsonl line {MAX_WARNINGS} was skipped: not a JSON object"
    assert not any("were read" in w for w in report["warnings"])
    assert summarize(report)["counts"]["warnings"] == MAX_METADATA_ROWS
    assert len(report["kept"]) == 3


def test_millions_of_bad_metadata_lines_stop_at_the_row_cap(tmp_path: Path) -> None:
    report, seconds = _prepare(tmp_path, "metadata.jsonl", _digit_lines(4_200_000))
    assert report["warnings_total"] == MAX_METADATA_ROWS + 1  # each read line, then "only its first ..."
    assert len(report["warnings"]) == MAX_WARNINGS
    assert (tmp_path / "work" / "dataset_report.json").stat().st_size < 200_000
    assert seconds < 30, seconds  # 1 s here; 321 s before
    summary = summarize(report)
    assert summary["counts"]["warnings"] == MAX_METADATA_ROWS + 1 and len(summary["warnings"]) == 100


def test_rows_past_the_cap_are_not_read_even_when_they_name_images(tmp_path: Path) -> None:
    rows = _digit_lines(MAX_METADATA_ROWS) + json.dumps({"file_name": "p0.png", "text": "TOK late"}) + "\n"
    report, _ = _prepare(tmp_path, "metadata.jsonl", rows)
    assert report["warnings_total"] == MAX_METADATA_ROWS + 1
    assert {k["caption_source"] for k in report["kept"]} == {"trigger_word"}


def test_a_json_line_nested_too_deep_is_a_warning_not_an_internal_error(tmp_path: Path) -> None:
    rows = "[" * 100_000 + "]" * 100_000 + "\n" + json.dumps({"file_name": "p1.png", "text": "TOK ok"}) + "\n"
    report, _ = _prepare(tmp_path, "metadata.jsonl", rows)
    assert "metadata.jsonl line 1 was skipped: nested too deep to read" in report["warnings"]
    assert {k["source"]: k["caption"] for k in report["kept"]}["p1.png"] == "TOK ok"


@pytest.mark.parametrize("extra", [0, 1])
def test_a_csv_field_at_and_over_the_field_limit(tmp_path: Path, extra: int) -> None:
    # 131072 characters: the csv module's limit; one more was an uncaught csv.Error, an internal
    # error whose traceback reached error_message (item 8).
    long = "TOK " + "x" * (FIELD_LIMIT - 4 + extra)
    text = f'file_name,text\np0.png,TOK first\np1.png,"{long}"\np2.png,TOK third\n'
    report, _ = _prepare(tmp_path, "metadata.csv", text)
    captions = {k["source"]: (k["caption"], k["caption_source"]) for k in report["kept"]}
    assert captions["p0.png"] == ("TOK first", "metadata")
    if extra:
        assert any(w.startswith("metadata.csv line 3: could not be read as CSV (field larger than field limit")
                   and "rows after it were skipped" in w for w in report["warnings"]), report["warnings"]
        assert captions["p1.png"][1] == captions["p2.png"][1] == "trigger_word"
    else:
        assert captions["p1.png"][0].startswith("TOK xxx") and len(captions["p1.png"][0]) == 2000
        assert captions["p2.png"] == ("TOK third", "metadata")


def test_a_report_over_its_cap_is_cut_and_a_reader_refuses_one_over_it(tmp_path: Path) -> None:
    report = DatasetReport(source="s.zip", trigger_word="TOK", instance_prompt=None, resolution=64,
                           face_crop=False, auto_caption=False, min_images=2)
    for i in range(MAX_WARNINGS):
        report.warnings.append(f"warning {i} " + "w" * 900)
    path = report.write(tmp_path / "r.json", max_bytes=2_000_000)  # about 1 MB: under the cap, whole
    assert len(read_report(path)["warnings"]) == MAX_WARNINGS and "truncated" not in read_report(path)
    path = report.write(tmp_path / "r.json", max_bytes=500_000)  # over: the list is halved until it fits
    cut = read_report(path)
    assert path.stat().st_size <= 500_000 and cut["truncated"] is True
    assert cut["warnings_total"] == MAX_WARNINGS and 0 < len(cut["warnings"]) < MAX_WARNINGS
    size = path.stat().st_size
    assert read_report(path, max_bytes=size)["warnings_total"] == MAX_WARNINGS
    with pytest.raises(ReportTooLarge):
        read_report(path, max_bytes=size - 1)
