"""`ddbsnap` and `python -m ddbsnap`: the command line, run in this process."""

import signal
import sys

from . import _native


def main() -> None:
    # The command line handles Ctrl-C itself (it closes the open file, saves a checkpoint and
    # exits with 130); Python's handler would then raise KeyboardInterrupt over its exit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_native.main(["ddbsnap", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
