#!/usr/bin/env python3
"""Minimal Docker-registry token issuer for berth integration tests.

Python stdlib only; JWTs are RS256-signed by calling `openssl dgst`.

Endpoints
  GET  /token   Docker token auth (https://distribution.github.io/distribution/spec/auth/token/)
                - Basic auth berth:s3cret  -> token granting the requested scopes
                - no credentials           -> anonymous token with no access
                - wrong credentials        -> 401
  POST /token   OAuth2 password grant (form: grant_type=password, username, password,
                service, scope) -> same token; other grant types -> 400
  GET  /stats   {"token_requests": N, ...}   N counts every /token request (GET or POST),
                whatever its outcome
  POST /stats/reset  resets all counters to 0 (also GET, for convenience)
  GET  /healthz "ok"

Started by scripts/test-env; see --help for options.
"""

import argparse
import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN_TTL = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Issuer:
    def __init__(self, args):
        self.key = args.key
        self.issuer = args.issuer
        self.service = args.service
        self.user = args.user
        self.password = args.password
        with open(args.cert, "rb") as f:
            pem = f.read()
        der = subprocess.run(
            ["openssl", "x509", "-outform", "DER"],
            input=pem, check=True, capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode("ascii")
        self.lock = threading.Lock()
        self.stats = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.stats = {
                "token_requests": 0,
                "tokens_issued": 0,
                "anonymous_tokens": 0,
                "auth_failures": 0,
            }

    def count(self, *keys):
        with self.lock:
            for k in keys:
                self.stats[k] += 1

    def snapshot(self):
        with self.lock:
            return dict(self.stats)

    @staticmethod
    def parse_scope(scope):
        # repository:test/web:pull,push  |  registry:catalog:*
        # The name may contain ':' only for a port-qualified repository (rare); split from both ends.
        parts = scope.split(":")
        if len(parts) < 3:
            return None
        typ = parts[0]
        actions = [a for a in parts[-1].split(",") if a]
        name = ":".join(parts[1:-1])
        return {"type": typ, "name": name, "actions": actions}

    def sign(self, account, scopes):
        now = int(time.time())
        access = []
        if account is not None:
            for s in scopes:
                parsed = self.parse_scope(s)
                if parsed:
                    access.append(parsed)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + TOKEN_TTL,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout
        token = signing_input + "." + b64url(sig)
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL,
            "issued_at": issued_at,
        }


class Handler(BaseHTTPRequestHandler):
    server_version = "berth-test-token-issuer/1"
    issuer: Issuer = None  # set in main()

    def log_message(self, fmt, *args):
        sys.stderr.write(
            "%s %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.address_string(), fmt % args)
        )
        sys.stderr.flush()

    def send_json(self, code, obj, extra_headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def basic_credentials(self):
        """None if no Authorization header, (user, password) otherwise ('' on garbage)."""
        h = self.headers.get("Authorization")
        if not h:
            return None
        if not h.lower().startswith("basic "):
            return ("", "")
        try:
            user, _, pw = base64.b64decode(h[6:].strip()).decode().partition(":")
        except Exception:  # noqa: BLE001 - malformed header counts as bad creds
            return ("", "")
        return (user, pw)

    def issue(self, creds, scopes):
        iss = self.issuer
        if creds is None:
            iss.count("anonymous_tokens")
            self.send_json(200, iss.sign(None, scopes))
            return
        user, pw = creds
        if user != iss.user or pw != iss.password:
            iss.count("auth_failures")
            self.send_json(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username/password"}]},
                {"WWW-Authenticate": 'Basic realm="berth-token-issuer"'},
            )
            return
        iss.count("tokens_issued")
        self.send_json(200, iss.sign(user, scopes))

    def do_GET(self):  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/token":
            self.issuer.count("token_requests")
            q = parse_qs(url.query)
            self.issue(self.basic_credentials(), q.get("scope", []))
        elif url.path == "/stats":
            self.send_json(200, self.issuer.snapshot())
        elif url.path == "/stats/reset":
            self.issuer.reset()
            self.send_json(200, self.issuer.snapshot())
        elif url.path == "/healthz":
            self.send_json(200, "ok")
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path == "/token":
            self.issuer.count("token_requests")
            form = parse_qs(body)
            if form.get("grant_type", [""])[0] != "password":
                self.send_json(400, {"error": "unsupported_grant_type"})
                return
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
            scopes = []
            for s in form.get("scope", []):
                scopes.extend(s.split(" "))
            self.issue(creds, scopes)
        elif url.path == "/stats/reset":
            self.issuer.reset()
            self.send_json(200, self.issuer.snapshot())
        else:
            self.send_json(404, {"error": "not found"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:5001", help="host:port (default %(default)s)")
    p.add_argument("--key", required=True, help="PEM private key used to sign tokens")
    p.add_argument("--cert", required=True, help="PEM certificate of --key (put into the x5c header)")
    p.add_argument("--issuer", default="berth-token-issuer")
    p.add_argument("--service", default="berth-registry")
    p.add_argument("--user", default="berth")
    p.add_argument("--password", default="s3cret")
    args = p.parse_args()

    Handler.issuer = Issuer(args)
    host, _, port = args.listen.rpartition(":")
    httpd = ThreadingHTTPServer((host, int(port)), Handler)
    httpd.daemon_threads = True
    sys.stderr.write("token issuer listening on http://%s/token\n" % args.listen)
    sys.stderr.flush()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
