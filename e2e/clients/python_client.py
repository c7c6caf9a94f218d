"""Python's HTTP clients pointed at the forward proxy, for the real-client tests
(e2e/tests/real_clients.rs): `requests` (pinned into .venv by scripts/setup.sh) and the
standard library's `urllib.request`, configured the way their users configure them, with the
credentials inside the proxy URL.

It builds the proxy URL itself, percent-encoding user and password unless told not to, so the
test can show both what works and what an unencoded password does. It prints one JSON object:
{"status": <int>, "body": <text>} for any HTTP answer, or {"error": <type>, "message": <text>}
when the client raised. The password never appears in the output, even inside an error message.
"""

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request


def proxy_url(host, user, password, encode):
    """http://user:password@host, the form every client here reads; `http` because the proxy
    listener speaks plain HTTP, also for the CONNECT that carries HTTPS."""
    if encode:
        # safe="": every reserved character (@ : / ? # % space ...) becomes %XX.
        user = urllib.parse.quote(user, safe="")
        password = urllib.parse.quote(password, safe="")
    return f"http://{user}:{password}@{host}"


def with_requests(url, proxy, ca, timeout):
    import requests

    r = requests.get(
        url,
        proxies={"http": proxy, "https": proxy},
        verify=ca if ca else True,
        timeout=timeout,
    )
    return r.status_code, r.text


def with_urllib(url, proxy, ca, timeout):
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})]
    if ca:
        context = ssl.create_default_context(cafile=ca)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        # A 407 to a plain-HTTP request is an answer, not a failure of the client.
        return e.code, e.read().decode("utf-8", "replace")


CLIENTS = {"requests": with_requests, "urllib": with_urllib}


def redact(text, secrets):
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--client", choices=sorted(CLIENTS), required=True)
    p.add_argument("--proxy", required=True, help="proxy host:port")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument(
        "--unencoded",
        action="store_true",
        help="put user and password into the proxy URL as they are (the mistake)",
    )
    p.add_argument("--ca", help="CA certificate (PEM) that signs the HTTPS upstream")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("url", help="the URL to GET through the proxy")
    args = p.parse_args()

    proxy = proxy_url(args.proxy, args.user, args.password, not args.unencoded)
    secrets = [args.password, urllib.parse.quote(args.password, safe="")]
    try:
        status, body = CLIENTS[args.client](args.url, proxy, args.ca, args.timeout)
        out = {"status": status, "body": body}
    except Exception as e:  # the test judges every failure; report it rather than crash
        out = {"error": type(e).__name__, "message": redact(str(e), secrets)}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
