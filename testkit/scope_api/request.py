"""One HTTP request with urllib: request.py METHOD URL BODY [HEADER: VALUE]...

Prints "<status> <body as hex>"; an HTTP error status is printed like any other, and a server
that does not answer (not listening yet) as status 0.
"""

import sys
import urllib.error
import urllib.request

method, url, body = sys.argv[1:4]
headers = dict(h.split(": ", 1) for h in sys.argv[4:])
data = body.encode() if method in ("POST", "PUT") else None
request = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, payload = response.status, response.read()
except urllib.error.HTTPError as error:
    status, payload = error.code, error.read()
except (urllib.error.URLError, ConnectionError) as error:
    status, payload = 0, str(error).encode()
print(status, payload.hex())
