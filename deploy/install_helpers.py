"""What deploy/install.sh needs Python for: standard library only, run by the target venv's python.

    install_helpers.py wheel-fingerprint WHEEL
        sha256 of the wheel's RECORD (the sha256 of every file in it): equal for equal contents,
        unlike the wheel file itself, whose zip timestamps change with every build.
    install_helpers.py verify-model CARD
        check every file the model card lists against its sha256; print the card's own sha256.
    install_helpers.py write-config DEFAULT_TOML CARD_PATH STATE_DIR OUT
        the shipped defaults with [model] card and [record] out_dir made absolute for the install.
    install_helpers.py check-config CONFIG
        load the config with the installed package (strict: unknown keys, bad values are errors).

Exit status 1 with one line on stderr on any problem.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

# Keys that name a model file next to its sha256 in a card (the card is written by the
# Distillation part; any of these spellings is accepted).
FILE_NAME_KEYS = ("path", "file", "filename", "name")


class InstallError(Exception):
    pass


def wheel_fingerprint(wheel_path: Path) -> str:
    with zipfile.ZipFile(wheel_path) as wheel:
        records = [name for name in wheel.namelist() if name.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise InstallError(f"{wheel_path}: expected one .dist-info/RECORD, found {len(records)}")
        return hashlib.sha256(wheel.read(records[0])).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(node, found: list[tuple[str, str]]) -> None:
    """Every (file name, sha256) pair anywhere in the card, in document order."""
    if isinstance(node, dict):
        if isinstance(node.get("sha256"), str):
            names = [node[key] for key in FILE_NAME_KEYS if isinstance(node.get(key), str)]
            if names:
                found.append((names[0], node["sha256"]))
        for value in node.values():
            _listed_files(value, found)
    elif isinstance(node, list):
        for value in node:
            _listed_files(value, found)


def verify_model(card_path: Path) -> str:
    if not card_path.is_file():
        raise InstallError(f"no model card at {card_path}: pass --model-dir DIR (a directory with "
                           "model_card.json and the .tflite files it lists)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InstallError(f"{card_path}: not a readable JSON model card ({error})") from None
    listed: list[tuple[str, str]] = []
    _listed_files(card, listed)
    if not listed:
        raise InstallError(f"{card_path}: the card lists no files with a sha256; it cannot be verified")
    for name, expected in listed:
        file_path = card_path.parent / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InstallError(f"{card_path}: file name {name!r} must be relative to the card's directory")
        if not file_path.is_file():
            raise InstallError(f"{card_path}: lists {name}, which is missing from {card_path.parent}")
        actual = _sha256_file(file_path)
        if actual != expected.lower():
            raise InstallError(f"{file_path}: sha256 {actual} does not match the card's {expected}")
    return _sha256_file(card_path)


def _set_key(lines: list[str], section: str, key: str, value: str) -> None:
    """Replace ``key = ...`` inside ``[section]``, keeping the comment after it."""
    current = None
    pattern = re.compile(rf"^({re.escape(key)}\s*=\s*)(\"[^\"]*\"|'[^']*')(.*)$")
    for number, line in enumerate(lines):
        header = re.match(r"^\[([^\]]+)\]\s*(#.*)?$", line.strip())
        if header:
            current = header.group(1).strip()
            continue
        if current == section:
            match = pattern.match(line)
            if match:
                lines[number] = f"{match.group(1)}{json.dumps(value)}{match.group(3)}"
                return
    raise InstallError(f"default config has no string key {key!r} in [{section}]")


def write_config(default_toml: Path, card_path: str, state_dir: str, out_path: Path) -> None:
    lines = default_toml.read_text().splitlines()
    _set_key(lines, "model", "card", card_path)
    _set_key(lines, "record", "out_dir", f"{state_dir}/recordings")
    header = ("# Written by deploy/install.sh from the package's stream/default.toml: the model card and\n"
              "# the recordings directory point at the installed locations. Edit signstream.toml; the\n"
              "# installer never overwrites it (it refreshes signstream.toml.default only).\n")
    out_path.write_text(header + "\n".join(lines) + "\n")


def check_config(config_path: Path) -> None:
    from stream.config import ConfigError, load_config

    try:
        load_config(config_path)
    except ConfigError as error:
        raise InstallError(str(error)) from None


def main(arguments: list[str]) -> int:
    try:
        match arguments:
            case ["wheel-fingerprint", wheel]:
                print(wheel_fingerprint(Path(wheel)))
            case ["verify-model", card]:
                print(verify_model(Path(card)))
            case ["write-config", default_toml, card, state_dir, out]:
                write_config(Path(default_toml), card, state_dir, Path(out))
            case ["check-config", config]:
                check_config(Path(config))
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except (InstallError, OSError, zipfile.BadZipFile) as error:
        print(f"install: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
