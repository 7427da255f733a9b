"""A study file (TOML) and its expansion into runs.

    [study]
    name = "synth-v6"
    out = "runs/synth-v6"              # each run's directory is OUT/<run name>
    description = "..."                # optional

    [data]                             # data sets by name: a directory, or a table with the
    synth-v6 = "data/synth-v6"         # command that builds it (named in the error when missing)
    lis-myo = { path = "data/lis-myo", build = "python -m train.datasets lis-myo ... --out data/lis-myo" }

    [[group]]                          # one or more; each expands into runs
    name = "within"
    command = "train.distill"          # a known command, or any python module (then `artefact`)
    data = "synth-v6"                  # or a list of names: one more axis ({data_name} in `runs`)
    runs = "within-s{seed}"            # the run directories' names, from the axes
    options = { protocol = "within", cache = "runs/cache" }   # --protocol within --cache runs/cache
    grid = { seed = [0, 1, 2] }        # every combination of the axes (options of the command)
    zip = { }                          # axes that vary together (equal lengths), crossed with grid;
                                       # an axis named _x is not an option: it only names runs ({_x})
    after = []                         # groups whose runs must be done first (their cards are inputs)
    gpus = 0                           # per run, for Ray

Option values: a string (``{axis}``, ``{out}`` (the study's directory), ``{data}`` (the data set's
directory), ``{data_name}`` and ``{run_dir}`` are filled in), a
number, true (a flag alone) or false (left out), or a list (joined with commas: ``alpha =
[0.9, 0.3]`` is ``--alpha 0.9,0.3``). ``args`` adds positional arguments (templates too). A known
command's options are checked against its own argument parser before anything runs. Relative paths
are relative to the directory the study is run from (the repository root, as in the docs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import io
import itertools
import re
import string
import tomllib
from pathlib import Path


class SpecError(ValueError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Command:
    """What the study knows about one of the project's commands."""

    module: str
    out_arguments: tuple[str, ...]  # where the run writes (templates of {run_dir})
    data_option: str | None  # the option the data set is given with
    artefact: str  # written last: the run is complete when it exists (and the study's marker)
    table: str  # which results table its runs go in (train.study.table)
    parser: str | None = None  # "module:function" returning its argparse parser, to check options


COMMANDS = {
    "train.distill": Command("train.distill", ("--out", "{run_dir}"), "--data", "model_card.json", "distill",
                             "train.distill.__main__:build_parser"),
    "train.distill.sweep": Command("train.distill.sweep", ("--out", "{run_dir}/sweep.json"), "--data", "sweep.json",
                                   "sweep", "train.distill.sweep:build_parser"),
    "train.adapt.evaluate": Command("train.adapt.evaluate", ("--out", "{run_dir}/calibration.json"), "--data",
                                    "calibration.json", "calibration", "train.adapt.evaluate:build_parser"),
}
STUDY_KEYS = {"name", "out", "description"}
GROUP_KEYS = {"name", "command", "data", "runs", "options", "args", "grid", "zip", "after", "gpus", "artefact",
              "stdout"}
DATA_KEYS = {"path", "build"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclasses.dataclass(frozen=True)
class DataSet:
    name: str
    path: Path  # absolute
    build: str | None = None


@dataclasses.dataclass(frozen=True)
class Run:
    """One task: ``python -m MODULE ARGUMENTS`` writing into its own directory."""

    name: str
    group: str
    module: str
    arguments: tuple[str, ...]  # complete but for {run_dir}, filled in where the run executes
    options: tuple[tuple[str, str | None], ...]  # the settings, as given (None: a flag): part of the key
    positional: tuple[str, ...]
    data: DataSet | None
    artefact: str  # relative to the run directory
    stdout: str | None  # the command's standard output is this artefact (not the log)
    table: str
    gpus: float
    after: tuple[str, ...]
    axes: tuple[tuple[str, object], ...]  # this run's point of the grid

    def argv(self, run_directory: Path) -> list[str]:
        return [part.replace("{run_dir}", str(run_directory)) for part in self.arguments]


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    out: Path  # absolute
    description: str
    source: Path
    root: Path  # the commands' working directory; relative paths in the file are relative to it
    data: dict[str, DataSet]
    groups: tuple[str, ...]
    runs: tuple[Run, ...]

    def directory(self, run: Run) -> Path:
        return self.out / run.name


def _fail(source: Path, where: str, message: str) -> SpecError:
    return SpecError(f"{source}: {where}: {message}")


def _check_keys(source: Path, where: str, table: dict, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(source, where, f"unknown key {key!r}{hint}; allowed: {', '.join(sorted(allowed))}")


def _text(source: Path, where: str, value, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, where, f"{key} must be a non-empty string, got {value!r}")
    return value


def _format_value(source: Path, where: str, key: str, value, fields: dict) -> str | None:
    """One option value as its command-line text (None: a flag without value)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return _fill(source, where, key, value, fields)
    if isinstance(value, list) and value and all(isinstance(item, (int, float, str)) and not isinstance(item, bool)
                                                 for item in value):
        return ",".join(_format_value(source, where, key, item, fields) for item in value)
    raise _fail(source, where, f"option {key!r} = {value!r}: give a string, a number, true/false or a non-empty "
                               "list of numbers or strings")


def _fill(source: Path, where: str, key: str, template: str, fields: dict) -> str:
    """``template`` with its ``{names}`` filled in; ``{run_dir}`` stays for the executor."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = [name for name in names if name != "run_dir" and name not in fields]
    if unknown:
        raise _fail(source, where, f"{key} = {template!r}: {{{unknown[0]}}} is not an axis or field here "
                                   f"(known: {', '.join(sorted([*fields, 'run_dir']))})")
    try:
        return template.format_map({**{name: str(value) for name, value in fields.items()}, "run_dir": "{run_dir}"})
    except (ValueError, IndexError) as error:
        raise _fail(source, where, f"{key} = {template!r}: {error} (write literal braces as {{{{ }}}})") from None


def _data_sets(source: Path, table, root: Path) -> dict[str, DataSet]:
    if not isinstance(table, dict):
        raise _fail(source, "[data]", "must be a table of name = directory")
    found = {}
    for name, value in table.items():
        if not NAME.match(name):
            raise _fail(source, f"[data] {name}", "a data set's name is letters, digits, '.', '_' or '-'")
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict):
            raise _fail(source, f"[data] {name}", "give a directory, or a table with path (and build)")
        _check_keys(source, f"[data] {name}", value, DATA_KEYS)
        path = Path(_text(source, f"[data] {name}", value.get("path"), "path"))
        build = value.get("build")
        if build is not None:
            _text(source, f"[data] {name}", build, "build")
        found[name] = DataSet(name, (root / path).resolve(), build)
    return found


def _axes(source: Path, where: str, grid, zipped) -> list[dict]:
    """The points of a group: every combination of ``grid`` crossed with the rows of ``zip``."""
    for label, table in (("grid", grid), ("zip", zipped)):
        if not isinstance(table, dict):
            raise _fail(source, where, f"{label} must be a table of axis = [values]")
        for axis, values in table.items():
            if not isinstance(values, list) or not values:
                raise _fail(source, where, f"{label}.{axis} must be a non-empty list of values, got {values!r}")
    both = set(grid) & set(zipped)
    if both:
        raise _fail(source, where, f"axis {sorted(both)[0]!r} is in both grid and zip; keep it in one")
    lengths = {axis: len(values) for axis, values in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise _fail(source, where, f"zip axes must have equal lengths, got {lengths}")
    rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] if zipped else [{}]
    points = []
    for combination in itertools.product(*grid.values()):
        for row in rows:
            points.append({**dict(zip(grid, combination)), **row})
    return points


def _check_with_parser(source: Path, where: str, command: Command, argv: list[str]) -> None:
    """Parse the run's argv with the command's own parser: unknown options and bad values now, not hours in."""
    module_name, function = command.parser.split(":")
    parser = getattr(importlib.import_module(module_name), function)()
    parser.exit_on_error = False
    parser.allow_abbrev = False  # a spec spells options out: --teacher-epoch is a typo, not --teacher-epochs
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            parser.parse_args([part.replace("{run_dir}", "RUN_DIR") for part in argv])
    except (argparse.ArgumentError, SystemExit, ValueError) as error:
        detail = (str(error) if isinstance(error, argparse.ArgumentError) else captured.getvalue().strip()
                  .splitlines()[-1] if captured.getvalue().strip() else str(error))
        raise _fail(source, where, f"python -m {command.module} refuses these options: {detail}") from None


def _group_runs(source: Path, position: int, group: dict, data_sets: dict, out: Path, root: Path) -> list[Run]:
    where = f"[[group]] #{position + 1}"
    if not isinstance(group, dict):
        raise _fail(source, where, "must be a table")
    _check_keys(source, where, group, GROUP_KEYS)
    name = _text(source, where, group.get("name"), "name")
    if not NAME.match(name):
        raise _fail(source, where, f"name {name!r}: letters, digits, '.', '_' or '-'")
    where = f"[[group]] {name!r}"
    module = _text(source, where, group.get("command"), "command")
    if not MODULE.match(module):
        raise _fail(source, where, f"command {module!r} must be a python module name (e.g. train.distill)")
    command = COMMANDS.get(module)
    if command is None:
        if importlib.util.find_spec(module) is None:
            raise _fail(source, where, f"command {module!r}: no such module (known: {', '.join(COMMANDS)}, or any "
                                       "importable module with an `artefact`)")
        artefact = group.get("artefact") or group.get("stdout")
        if not artefact:
            raise _fail(source, where, f"command {module!r} is not one the study knows: say which file in the run "
                                       "directory it writes last (artefact = ...), or stdout = FILE to keep its output")
        command = Command(module, (), None, _text(source, where, artefact, "artefact"), "files")
    elif "artefact" in group or "stdout" in group:
        raise _fail(source, where, f"{module} writes {command.artefact}; artefact and stdout are for other commands")
    stdout = group.get("stdout")
    if stdout is not None and Path(_text(source, where, stdout, "stdout")).name != stdout:
        raise _fail(source, where, f"stdout = {stdout!r}: a file name inside the run directory")
    data_names = group.get("data", [])
    data_names = [data_names] if isinstance(data_names, str) else data_names
    if not isinstance(data_names, list) or not all(isinstance(item, str) for item in data_names):
        raise _fail(source, where, "data must be a data set's name or a list of names")
    for data_name in data_names:
        if data_name not in data_sets:
            raise _fail(source, where, f"data {data_name!r} is not in [data] (known: {', '.join(data_sets) or 'none'})")
    if command.data_option and not data_names:
        raise _fail(source, where, f"{module} needs data = NAME (a data set of [data])")
    options = group.get("options", {})
    grid, zipped = group.get("grid", {}), group.get("zip", {})
    if not isinstance(options, dict):
        raise _fail(source, where, "options must be a table of option = value")
    reserved = {"out"} | ({command.data_option.lstrip("-")} if command.data_option else set())
    for key in [*options, *(grid if isinstance(grid, dict) else {}), *(zipped if isinstance(zipped, dict) else {})]:
        if key in reserved and command.out_arguments:
            raise _fail(source, where, f"option {key!r} is set by the study (the run directory and data = NAME)")
        if not re.match(r"^_?[A-Za-z0-9][A-Za-z0-9_-]*$", key) or (key.startswith("_") and key in options):
            raise _fail(source, where, f"option {key!r}: write it as the command line spells it, without the dashes")
    if set(options) & (set(grid) | set(zipped)):
        raise _fail(source, where, f"option {sorted(set(options) & (set(grid) | set(zipped)))[0]!r} is both fixed "
                                   "(options) and an axis (grid/zip)")
    positional = group.get("args", [])
    if not isinstance(positional, list) or not all(isinstance(item, str) for item in positional):
        raise _fail(source, where, "args must be a list of strings")
    after = group.get("after", [])
    after = [after] if isinstance(after, str) else after
    if not isinstance(after, list) or not all(isinstance(item, str) for item in after):
        raise _fail(source, where, "after must be a group's name or a list of names")
    gpus = group.get("gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0:
        raise _fail(source, where, f"gpus must be a number >= 0, got {gpus!r}")
    template = group.get("runs")
    points = _axes(source, where, grid, zipped)
    axis_names = [*grid, *zipped]
    if len(data_names) > 1:
        points = [{"data": data_name, **point} for data_name in data_names for point in points]
        axis_names = ["data", *axis_names]
    elif data_names:
        points = [{"data": data_names[0], **point} for point in points]
    if template is None:
        template = name + "".join("-{data_name}" if axis == "data" else f"-{axis}{{{axis}}}" for axis in axis_names)
    runs = []
    for point in points:
        data = data_sets[point["data"]] if "data" in point else None
        fields = {**{key: value for key, value in point.items() if key != "data"}, "out": out}
        if data is not None:
            fields["data"], fields["data_name"] = data.path, data.name
        run_name = _fill(source, where, "runs", _text(source, where, template, "runs"), fields)
        if not NAME.match(run_name) or "{run_dir}" in run_name:
            raise _fail(source, where, f"runs = {template!r} gives {run_name!r}: a directory name of letters, "
                                       "digits, '.', '_' or '-'")
        settings = []
        for key, value in [*options.items(), *((axis, point[axis]) for axis in [*grid, *zipped])]:
            if value is False or key.startswith("_"):  # "_name": an axis that only names runs
                continue
            settings.append((key, _format_value(source, where, key, value, fields)))
        argv = [*command.out_arguments]
        if command.data_option:
            argv += [command.data_option, str(data.path)]
        for key, value in settings:
            argv += [f"--{key}"] + ([] if value is None else [value])
        filled = [_fill(source, where, "args", item, fields) for item in positional]
        argv += filled
        if command.parser:
            _check_with_parser(source, where, command, argv)
        runs.append(Run(name=run_name, group=name, module=module, arguments=tuple(argv), options=tuple(settings),
                        positional=tuple(filled), data=data, artefact=stdout or command.artefact, stdout=stdout,
                        table=command.table, gpus=float(gpus), after=tuple(after),
                        axes=tuple((key, value) for key, value in point.items())))
    return runs


def load_study(path: str | Path, root: str | Path | None = None) -> Study:
    """Read, check and expand a study file (SpecError on anything wrong, naming the key)."""
    source = Path(path)
    root = Path.cwd() if root is None else Path(root)
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{source}: no such study file (the studies of docs/RESULTS.md are in studies/)") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source}: not valid TOML: {error}") from None
    _check_keys(source, "top level", document, {"study", "data", "group"})
    header = document.get("study")
    if not isinstance(header, dict):
        raise _fail(source, "[study]", "missing: give [study] name = ... and out = ...")
    _check_keys(source, "[study]", header, STUDY_KEYS)
    name = _text(source, "[study]", header.get("name"), "name")
    out = (root / _text(source, "[study]", header.get("out"), "out")).resolve()
    description = header.get("description", "")
    data_sets = _data_sets(source, document.get("data", {}), root)
    groups = document.get("group")
    if not isinstance(groups, list) or not groups:
        raise _fail(source, "[[group]]", "a study needs at least one [[group]] of runs")
    runs, names = [], []
    for position, group in enumerate(groups):
        expanded = _group_runs(source, position, group, data_sets, out, root)
        group_name = expanded[0].group
        if group_name in names:
            raise _fail(source, f"[[group]] {group_name!r}", "two groups have this name")
        for earlier in expanded[0].after:
            if earlier not in names:
                raise _fail(source, f"[[group]] {group_name!r}", f"after = {earlier!r}: not a group before this one")
        names.append(group_name)
        runs.extend(expanded)
    seen = {}
    for run in runs:
        if run.name in seen:
            raise _fail(source, f"[[group]] {run.group!r}", f"run name {run.name!r} is also a run of group "
                                                           f"{seen[run.name]!r}: make `runs` name each point of the "
                                                           "grid apart (use every axis)")
        seen[run.name] = run.group
    return Study(name=name, out=out, description=str(description), source=source.resolve(), root=root.resolve(),
                 data=data_sets, groups=tuple(names), runs=tuple(runs))
