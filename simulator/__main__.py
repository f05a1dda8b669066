"""`python -m simulator --port 8001 [flags]`: run the simulator."""

import argparse

from .server import Config, add_arguments, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local stand-in for the UmamiAI Luma API (or Luma's own, --dialect luma), "
        "with fault injection. "
        "Listens on 127.0.0.1 unless --host says otherwise.",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        config = Config.from_options(vars(options))
    except ValueError as exc:
        parser.error(str(exc))
    serve(config)


if __name__ == "__main__":
    main()
