"""Container health check: exit 0 when the service's /readyz answers 200.

Used by the Dockerfile HEALTHCHECK (the slim image has no curl). Reads SANET_PORT like the
service does, so the check follows the port the container was started with.
"""

import os
import sys
import urllib.request


def main() -> int:
    """Return 0 when /readyz answers 200 within two seconds, else 1."""
    url = f"http://127.0.0.1:{os.environ.get('SANET_PORT', '8000')}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
