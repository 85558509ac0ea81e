"""`agentbox serve | doctor | exec`: the command line, the only other reader of Settings besides config.py."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from agentbox.client.http import Client, ServerError
from agentbox.client.terminal import run_cell
from agentbox.config import Settings

if TYPE_CHECKING:
    from agentbox.tls import TlsFiles

# The server's modules (app, sandbox, uvicorn) are imported by the commands that use them: they
# take over a second to import, which `agentbox exec` would pay on every cell.

DEFAULT_URL = "http://127.0.0.1:8000"  # where `agentbox serve` listens by default


def _key_file(settings: Settings) -> Path:
    return settings.data_dir / "api_key"


def _api_keys(settings: Settings) -> frozenset[str]:
    """The configured keys; without any, one generated once and kept in the data dir."""
    keys = settings.api_key_list()
    if keys:
        return frozenset(keys)
    key_file = _key_file(settings)
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
    from agentbox.tls import TlsFiles, ensure_self_signed

    if args.tls_self_signed:
        files = ensure_self_signed(settings.data_dir.resolve() / "tls")
        print(f"TLS certificate (trust it, e.g. REQUESTS_CA_BUNDLE={files.cert}): {files.cert}", flush=True)
        return files
    if args.tls_cert is not None:
        return TlsFiles(cert=args.tls_cert, key=args.tls_key)
    return None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from agentbox import logs
    from agentbox.app import build_app
    from agentbox.errors import SandboxUnavailable, StoreUnavailable
    from agentbox.llm.catalog import ModelsFileError
    from agentbox.sandbox import SessionManager, isolation

    settings = Settings()
    logs.configure(settings.log_format)
    sandbox = SessionManager(settings.sandbox_config())
    refusal = None if settings.fleet else sandbox.refusal()  # a fleet's nodes check their own hosts
    if refusal:
        print(f"agentbox: {refusal}", file=sys.stderr)
        print("agentbox: AGENTBOX_ALLOW_WEAK_SANDBOX=1 starts it anyway, weaker.", file=sys.stderr)
        return 1
    for name, _, detail in [] if settings.fleet else isolation.missing(sandbox.isolation_report()):
        if settings.log_format == "json":  # every stderr line a JSON object
            logging.getLogger("agentbox").warning("%s not in force: %s", name, detail)
        else:
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
    if not settings.model_base_url and settings.models_file is None:
        print(
            "No model configured (AGENTBOX_MODEL_BASE_URL or AGENTBOX_MODELS_FILE): runs will fail "
            "until one is set.",
            flush=True,
        )

    def ready() -> None:
        print(f"agentbox ready at {url}/v1 (playground: {url}/)", flush=True)

    try:
        app = build_app(settings, keys, on_ready=ready)
    except ModelsFileError as exc:  # a typo in the models file: say where, no traceback
        print(f"agentbox: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, SandboxUnavailable) as exc:  # the bucket does not answer; a fleet lacks one
        print(f"agentbox: {exc.message}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        # JSON mode: uvicorn's own records go through our JSON handler, not its text one.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=5,
        # Ours must outlast the clients' idle expiry: at uvicorn's 5 s, the same as httpx's, a
        # request sent as the server closed the connection was answered with a reset (BENCHMARKS.md).
        timeout_keep_alive=settings.keep_alive_s,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


def doctor(_args: argparse.Namespace) -> int:
    from agentbox.sandbox import SessionManager

    settings = Settings()
    manager = SessionManager(settings.sandbox_config())
    weak = False
    for name, in_force, detail in manager.isolation_report():
        print(f"{'ok  ' if in_force else 'MISSING'} {name}: {detail}")
        weak = weak or not in_force
    if weak:
        print("User code would run with weaker isolation than configured.")
    return 1 if weak else 0


def _client_key(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The key `exec` sends, and where it came from (for the message when the server refuses it)."""
    if args.api_key:
        return args.api_key, "--api-key"
    if key := os.environ.get("AGENTBOX_API_KEY", "").strip():
        return key, "AGENTBOX_API_KEY"
    if keys := settings.api_key_list():
        return keys[0], "AGENTBOX_API_KEYS"
    key_file = _key_file(settings)
    try:
        return key_file.read_text().strip(), str(key_file)
    except FileNotFoundError:
        return "", ""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _read_code(args: argparse.Namespace) -> str:
    if args.code is not None:
        code: str = args.code
        return code
    if args.file == "-":
        return sys.stdin.read()
    return Path(args.file).read_text()


def exec_code(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        code = _read_code(args)
        key, source = _client_key(args, settings)
    except OSError as exc:
        print(f"agentbox: cannot read {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not key:
        print(f"agentbox: no API key: set AGENTBOX_API_KEY (none in {_key_file(settings)})", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("AGENTBOX_URL") or DEFAULT_URL
    with Client(url, key) as client:
        try:
            return run_cell(client, code, container_id=args.container, timeout_s=args.timeout)
        except ServerError as exc:
            hint = f" (the key came from {source})" if exc.status == 401 else ""
            print(f"agentbox: {exc}{hint}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:
            return 130


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
    exec_cmd = commands.add_parser(
        "exec",
        help="run Python through a running server, printing its output as it comes",
        description="Run one cell in a container of a running agentbox server. Exit status: 0 the cell "
        "ran, 1 it raised (or timed out, was interrupted or killed), 2 usage, 3 the server could not run it.",
    )
    exec_cmd.add_argument("file", nargs="?", metavar="FILE", help="the code to run; - reads it from stdin")
    exec_cmd.add_argument("-c", dest="code", metavar="CODE", help="the code to run, given inline")
    exec_cmd.add_argument(
        "--container", metavar="ID", help="run in this container, keeping its variables (default: a new one)"
    )
    exec_cmd.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="the cell's wall clock (default: the server's)"
    )
    exec_cmd.add_argument("--url", help=f"the server (default: AGENTBOX_URL, else {DEFAULT_URL})")
    exec_cmd.add_argument(
        "--api-key",
        help="default: AGENTBOX_API_KEY, else the first of AGENTBOX_API_KEYS, else DATA_DIR/api_key",
    )
    exec_cmd.set_defaults(handler=exec_code)
    args = parser.parse_args(argv)
    if args.command == "serve" and (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.command == "exec" and (args.file is None) == (args.code is None):
        exec_cmd.error("give the code as FILE, - (stdin) or -c CODE: exactly one")
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
