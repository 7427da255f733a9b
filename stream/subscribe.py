"""stream-subscribe (being built: see issue 6). Parses the common options and validates the config."""

from stream.cli import build_parser, load_config_or_exit


def main(argv=None) -> int:
    arguments = build_parser("stream-subscribe", "signstream subscribe daemon").parse_args(argv)
    load_config_or_exit(arguments)
    print("stream-subscribe: config OK; the daemon is not built yet (issue 6)")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
