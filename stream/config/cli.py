"""What every console script shares: --config, --log-level, logging set-up, exit status 2 on a bad
config (one line on stderr, no traceback)."""

from __future__ import annotations

import argparse
import logging
import sys

from stream.config import Config, ConfigError, load_config

EXIT_CONFIG_ERROR = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML config file (default: the shipped stream/default.toml)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                        help="override [logging] level from the config")
    return parser


def load_config_or_exit(arguments: argparse.Namespace) -> Config:
    """Load the config named on the command line; on any problem print one line and exit 2."""
    try:
        config = load_config(arguments.config)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    setup_logging(arguments.log_level or config.logging.level)
    return config


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
