"""``python -m rsmamba`` and the ``rsmamba`` script: the command line, its Ctrl-C one line from the first
instant (while its libraries load, a traceback of the imports) to the last (a second Ctrl-C during the
interpreter's teardown printed 'Exception ignored in ...')."""

import signal
import sys


def run() -> int:
    try:
        from rsmamba.cli import main
    except KeyboardInterrupt:
        print("rsmamba: interrupted", file=sys.stderr)
        return 130
    code = main()
    if code in (130, 143):  # said once already; the process only tears down from here
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(run())
