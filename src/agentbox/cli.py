"""`agentbox serve | doctor`: the command line, the only other reader of Settings besides config.py."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import socket
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from agentbox.app import build_app
from agentbox.config import Settings
from agentbox.sandbox import SessionManager, isolation
from agentbox.tls import TlsFiles, ensure_self_signed


def _api_keys(settings: Settings) -> frozenset[str]:
    """The configured keys; without any, one generated once and kept in the data dir."""
    keys = settings.api_key_list()
    if keys:
        return frozenset(keys)
    key_file = settings.data_dir / "api_key"
    if key_file.exists():
        key = key_file.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = "sk-agentbox-" + secrets.token_urlsafe(24)
        key_file.touch(mode=0o600)
        key_file.write_text(key + "\n")
    print(f"API key (from {key_file}): {key}", flush=True)
    return frozenset([key])


def _tls_files(args: argparse.Namespace, settings: Settings) -> TlsFiles | None:
    """The certificate to serve with, if any: the user's own, or our self-signed one."""
    if args.tls_self_signed:
        files = ensure_self_signed(settings.data_dir.resolve() / "tls")
        print(f"TLS certificate (trust it, e.g. REQUESTS_CA_BUNDLE={files.cert}): {files.cert}", flush=True)
        return files
    if args.tls_cert is not None:
        return TlsFiles(cert=args.tls_cert, key=args.tls_key)
    return None


def serve(args: argparse.Namespace) -> int:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sandbox = SessionManager(settings.sandbox_config())
    refusal = sandbox.refusal()
    if refusal:
        print(f"agentbox: {refusal}", file=sys.stderr)
        print("agentbox: AGENTBOX_ALLOW_WEAK_SANDBOX=1 starts it anyway, weaker.", file=sys.stderr)
        return 1
    for name, _, detail in isolation.missing(sandbox.isolation_report()):
        print(f"agentbox: warning: {name} not in force: {detail}", file=sys.stderr)
    keys = _api_keys(settings)
    tls = _tls_files(args, settings)
    # Bind first so port 0 works and the readiness line can name the real port.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it small responses wait out a 40 ms delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    # Listen now: the readiness line comes from the lifespan, before uvicorn would start
    # listening, and a client acting on it must be queued rather than refused.
    sock.listen(2048)
    port = sock.getsockname()[1]
    url = f"{'https' if tls else 'http'}://{args.host}:{port}"
    if not settings.model_base_url:
        print("No model configured (AGENTBOX_MODEL_BASE_URL): runs will fail until one is set.", flush=True)

    def ready() -> None:
        print(f"agentbox ready at {url}/v1 (playground: {url}/)", flush=True)

    app = build_app(settings, keys, on_ready=ready)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


def doctor(_args: argparse.Namespace) -> int:
    settings = Settings()
    manager = SessionManager(settings.sandbox_config())
    weak = False
    for name, in_force, detail in manager.isolation_report():
        print(f"{'ok  ' if in_force else 'MISSING'} {name}: {detail}")
        weak = weak or not in_force
    if weak:
        print("User code would run with weaker isolation than configured.")
    return 1 if weak else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP server")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    tls = serve_cmd.add_mutually_exclusive_group()
    tls.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve HTTPS with a certificate for 127.0.0.1 and localhost, made once under DATA_DIR/tls",
    )
    tls.add_argument("--tls-cert", type=Path, metavar="PATH", help="serve HTTPS with this PEM certificate")
    serve_cmd.add_argument("--tls-key", type=Path, metavar="PATH", help="the PEM private key of --tls-cert")
    serve_cmd.set_defaults(handler=serve)
    doctor_cmd = commands.add_parser("doctor", help="say which sandbox isolation is in force")
    doctor_cmd.set_defaults(handler=doctor)
    args = parser.parse_args(argv)
    if args.command == "serve" and (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    try:
        result: int = args.handler(args)
    except ValidationError as exc:  # a bad AGENTBOX_* value (environment or .env): say which, no traceback
        for error in exc.errors():
            name = "AGENTBOX_" + "_".join(str(p) for p in error["loc"]).upper()
            print(f"agentbox: {name}={error.get('input')!r} is not valid: {error['msg']}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
