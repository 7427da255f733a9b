"""`make demo`: the live pipeline on the synthetic signer (being built: issue 6)."""


def main() -> int:
    from stream.config import load_config

    config = load_config(None)
    print(f"signstream demo: config OK (model card {config.model.card}); the daemons land with issue 6")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
