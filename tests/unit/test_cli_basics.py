"""What a newcomer meets first: ``--version``, the help of every command, the progress and
closing lines of ``simulate --out`` and ``evaluate``, and ``report outcomes`` finding the demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from floorwalker import __version__
from floorwalker.cli import app
from floorwalker.config import load_store_config
from simulators.day import simulate_day
from simulators.evaluate import score
from simulators.trace import Header, TraceReader, load_truth, write_trace
from tests.conftest import DEMO_STORE

runner = CliRunner()


def test_version_alone_prints_the_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__


def test_nothing_at_all_shows_the_help_and_options_without_a_command_say_so() -> None:
    bare = runner.invoke(app, [])
    assert "Usage: " in bare.output and "config" in bare.output
    options_only = runner.invoke(app, ["--log-level", "debug"])
    assert options_only.exit_code == 2
    assert "Usage: " in options_only.stdout
    assert options_only.stderr.strip() == "error: missing command (see the list above)"


def _command_paths() -> Iterator[list[str]]:
    root = typer.main.get_command(app)

    def walk(cmd: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(root, [])


@pytest.mark.parametrize("path", list(_command_paths()), ids=lambda p: " ".join(p) or "floorwalker")
def test_no_flag_shows_a_value_placeholder(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


def test_options_with_values_keep_their_placeholder() -> None:
    result = runner.invoke(app, ["report", "outcomes", "--help"], terminal_width=200)
    assert "<path>" in result.output and "<str>" in result.output


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A two-hour simulated day, and a recording of no outputs (no broker needed)."""
    config = load_store_config(DEMO_STORE)
    assert config.crm is not None
    folder = tmp_path_factory.mktemp("day")
    trace, truth = simulate_day(config, None, hours=2, visitors=60, seed=3).write(folder)
    outputs = folder / "outputs.jsonl"
    write_trace(outputs, Header(config.store, "record", 0.0), [])
    return trace, truth, outputs


def test_simulate_day_reports_each_stage_to_the_end() -> None:
    config = load_store_config(DEMO_STORE)
    seen: list[tuple[str, float]] = []
    simulate_day(config, None, hours=0.5, visitors=20, seed=1, on_progress=lambda s, d: seen.append((s, d)))
    stages = list(dict.fromkeys(s for s, _ in seen))
    assert stages == ["shoppers", "sensors"]
    for stage in stages:
        done = [d for s, d in seen if s == stage]
        assert done == sorted(done) and done[-1] == 1.0 and all(0 <= d <= 1 for d in done)


def test_simulate_out_shows_progress_bars(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["simulate", "--out", str(tmp_path), "--hours", "0.5", "--visitors", "20", "--presence", "model"]
    )
    assert result.exit_code == 0, result.output
    for stage in ("shoppers", "sensors", "writing"):
        assert any(line.startswith(stage) and "100%" in line for line in result.stderr.splitlines()), stage
    assert "trace  " in result.stdout


def test_evaluate_ends_with_readable_lines_and_json_on_request(
    day: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    trace, truth, outputs = day
    args = ["evaluate", str(trace), "--truth", str(truth), "--outputs", str(outputs)]
    result = runner.invoke(app, [*args, "--report", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "entries", "checkouts", "member", "prompts", "dead", "latency", "report",
    ]  # fmt: skip
    assert "{" not in result.stdout
    assert lines[0].startswith("entries") and " reported, " in lines[0] and " true (" in lines[0]
    assert any(line.startswith("scoring") and "100%" in line for line in result.stderr.splitlines())

    as_json = runner.invoke(app, [*args, "--report", str(tmp_path / "b"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout)
    assert summary == json.loads((tmp_path / "b" / "summary.json").read_text())


def test_the_report_says_the_hours_asked_for(day: tuple[Path, Path, Path]) -> None:
    trace, truth_path, _ = day
    truth = load_truth(truth_path)
    report = score(list(TraceReader(trace)), truth, [])
    assert report.open_hours == 2
    assert report.span_text.startswith("2 h of arrivals")
    assert len(report.hours) >= 2  # the hourly columns run on while the last shoppers leave


def test_report_outcomes_says_where_the_services_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "outcomes"])
    assert result.exit_code == 2
    assert "make demo" in result.stderr and "--run-dir" in result.stderr
    assert "Traceback" not in result.output
