# The `helm test` Job's check (templates/tests/readyz.yaml): GET READYZ_URL until it answers 200
# (exit 0) or READYZ_TIMEOUT_S pass (exit 1 with the last answer or error). Standard library only.
import os
import sys
import time
import urllib.request

url = os.environ["READYZ_URL"]
deadline = time.monotonic() + float(os.environ["READYZ_TIMEOUT_S"])
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            print(f"{url}: {response.status}")
            sys.exit(0)
    except OSError as error:  # URLError, HTTPError (a 503 while not ready), timeouts
        if time.monotonic() >= deadline:
            sys.exit(f"{url}: no 200 within {os.environ['READYZ_TIMEOUT_S']} s; last: {error}")
    time.sleep(2)
