#!/usr/bin/env python3
"""`python3 -m moto.server`, same arguments, handling one request at a time.

moto's DynamoDB is not safe under concurrent requests: TransactWriteItems deep-copies every
table it touches (to roll back on failure) while other request threads write to it, and
fails with `RuntimeError: dictionary changed size during iteration` (an HTML 500 the SDK
cannot parse). Real DynamoDB isolates transactions; serialising the requests gives the same
result here. Used by scripts/bench-lambda.py, whose sync-worker runs four chunks at once."""
import threading

import moto.server
from werkzeug.serving import run_simple as _run_simple

_lock = threading.Lock()


def _serial(app):
    def serial_app(environ, start_response):
        with _lock:
            it = app(environ, start_response)
            try:
                return [b"".join(it)]
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()
    return serial_app


def run_simple(host, port, app, **kw):
    _run_simple(host, port, _serial(app), **kw)


moto.server.run_simple = run_simple

if __name__ == "__main__":
    moto.server.main()
