"""`python -m simulator --port 8001 [flags]`: run the simulator."""

import argparse

from .server import Config, add_arguments, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local stand-in for the UmamiAI Luma API, with fault injection.",
    )
    add_arguments(parser)
    options = parser.parse_args(argv)
    try:
        config = Config.from_options(vars(options))
    except ValueError as exc:
        parser.error(str(exc))
    serve(config)


if __name__ == "__main__":
    main()
