"""`ddbsnap` and `python -m ddbsnap`: the command line, run in this process."""

import sys

from . import _native


def main() -> None:
    sys.exit(_native.main(["ddbsnap", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
