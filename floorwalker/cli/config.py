"""``floorwalker config check``: every problem of a store's files at once.

A store runs on several files: its store config, the gateway configs that point at it, the
action catalog and the CRM data it names. Each process reads its own and stops at the
first problem; this command reads them all together and lists every problem it finds, one
line each as ``file:line: key: problem`` (``file: key: problem`` where there is no line),
so a person fixes them in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from floorwalker.config import StoreConfig, describe_each, load_store_config
from floorwalker.errors import ConfigError

if TYPE_CHECKING:
    from edge_agent.gateway_config import GatewayFileConfig

app = typer.Typer(help="Check a store's configuration files.", no_args_is_help=True)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: where (line, key where known) and what."""

    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class Checked:
    """What was read, and everything wrong with it."""

    files: list[Path]
    problems: list[Problem]


def _from_error(path: Path, message: str) -> Problem:
    """A :class:`ConfigError`'s line (``path: key: problem`` or ``path:line: ...``) as a Problem."""
    text = message.removeprefix(f"{path}")
    line: int | None = None
    if text.startswith(":") and text[1:].split(":", 1)[0].strip().isdigit():
        number, text = text[1:].split(":", 1)
        line = int(number)
    return Problem(path, line, "", text.removeprefix(":").strip())


def _validate(path: Path, model: type[M], what: str, problems: list[Problem]) -> M | None:
    """``path`` as ``model`` (YAML or JSON, which YAML reads too), every error with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(path, None, "", f"no such {what} file"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, None, "", f"cannot read it as UTF-8 text ({exc})"))
        return None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(path, line, "", f"not valid YAML ({getattr(exc, 'problem', exc)})"))
        return None
    if not isinstance(raw, dict) or node is None:
        problems.append(
            Problem(path, 1, "", f"expected a mapping at the top level, got {type(raw).__name__}")
        )
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(Problem(path, line, key, msg) for line, key, msg in describe_each(exc, node, what))
        return None


def _check_gateway(path: Path, store: StoreConfig | None, store_path: Path, problems: list[Problem]) -> None:
    from edge_agent.gateway_config import GatewayFileConfig, check_against_store, load_gateway_config

    before = len(problems)
    if _validate(path, GatewayFileConfig, "gateway config", problems) is None or len(problems) > before:
        return
    config: GatewayFileConfig = load_gateway_config(path)
    if config.store_config is not None and config.store_config.resolve() != store_path.resolve():
        problems.append(Problem(path, None, "store_config", f"names {config.store_config}, not {store_path}"))
    for ci, cam in enumerate(config.cameras):
        if cam.source.kind == "file" and not cam.source.path.exists():
            problems.append(
                Problem(path, None, f"cameras[{ci}].source.path", f"no such file {cam.source.path}")
            )
        if cam.model.path is not None and not cam.model.path.exists():
            problems.append(
                Problem(path, None, f"cameras[{ci}].model.path", f"no such file {cam.model.path}")
            )
    if store is not None:
        try:
            check_against_store(config, store, path)
        except ConfigError as exc:
            problems.append(_from_error(path, str(exc)))


def _check_crm(path: Path, problems: list[Problem]) -> None:
    from recommender.crm import Member, read_crm

    if path.is_file():  # JSON, which YAML reads too: every member's errors with their lines
        try:
            node = yaml.compose(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            node = None
        members = next((v for k, v in node.value if k.value == "members"), None) if node else None
        if isinstance(node, yaml.MappingNode) and isinstance(members, yaml.SequenceNode):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))["members"]
            for i, (row, row_node) in enumerate(zip(raw, members.value, strict=True)):
                try:
                    Member.model_validate(row)
                except ValidationError as exc:
                    problems.extend(
                        Problem(path, line, f"members[{i}].{key}".rstrip("."), msg)
                        for line, key, msg in describe_each(exc, row_node)
                    )
            return
    try:
        result = read_crm(path)
    except ConfigError as exc:
        problems.append(_from_error(path, str(exc)))
        return
    for error in result.errors:
        file, _, rest = error.partition(": ")
        problems.append(_from_error(Path(file), f"{file}: {rest}"))


def gateway_configs_beside(store_path: Path) -> list[Path]:
    """The gateway configs in the store config's folder whose ``store_config`` names it."""
    found = []
    for path in sorted(store_path.parent.glob("*.y*ml")):
        if path.resolve() == store_path.resolve():
            continue
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        named = raw.get("store_config") if isinstance(raw, dict) and "gateway" in raw else None
        if isinstance(named, str) and (path.parent / named).resolve() == store_path.resolve():
            found.append(path)
    return found


def check_store(store_path: Path, gateway_paths: list[Path]) -> Checked:
    """Every problem of the store config, its gateway configs, catalog and CRM data."""
    from recommender.catalog import DEFAULT_CATALOG, Catalog

    problems: list[Problem] = []
    files = [store_path]
    store: StoreConfig | None = None
    if _validate(store_path, StoreConfig, "store config", problems) is not None:
        store = load_store_config(store_path)
    gateways = list(dict.fromkeys([*gateway_paths, *gateway_configs_beside(store_path)]))
    for gw in gateways:
        files.append(gw)
        _check_gateway(gw, store, store_path, problems)
    if store is None:
        return Checked(files, problems)
    catalog = store.catalog or DEFAULT_CATALOG
    files.append(catalog)
    _validate(catalog, Catalog, "catalog", problems)
    if store.crm is not None:
        files.append(store.crm)
        _check_crm(store.crm, problems)
    for key, value in (
        ("propensity_model", store.propensity_model),
        ("ble_presence.secrets", store.ble_presence.secrets),
        ("ble_presence.survey", store.ble_presence.survey),
    ):
        if value is not None and not value.exists():
            problems.append(Problem(store_path, None, key, f"no such file {value}"))
    return Checked(files, problems)


@app.command("check")
def check(
    store_config: Annotated[Path, typer.Argument(help="The store config (YAML).")],
    gateway_config: Annotated[
        list[Path] | None,
        typer.Option(
            "--gateway-config",
            "-g",
            help="A gateway config to check too (repeat it); those beside the store config "
            "that name it are always checked.",
        ),
    ] = None,
) -> None:
    """Check a store config, its gateway configs, catalog and CRM data; list every problem."""
    result = check_store(store_config, gateway_config or [])
    for problem in result.problems:
        typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
    if result.problems:
        n = len(result.problems)
        typer.echo(f"{n} problem{'s' if n != 1 else ''} in {len(result.files)} files")
        raise typer.Exit(2)
    typer.echo(f"ok: {len(result.files)} files ({', '.join(p.name for p in result.files)})")
