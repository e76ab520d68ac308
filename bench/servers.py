"""Start and stop the bench's local servers: nginx (from the system's packages) with a
generated configuration, or rawserver.py, each in its own process and pinned to one CPU."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
{user}worker_processes 1;
{affinity}daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile {files};
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    types {{
        application/octet-stream bin;
        text/plain txt;
        application/json json;
        text/html html;
    }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types text/plain application/json;
{temp_paths}    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


def free_port() -> int:
    """A port nobody listens on now: bind port 0 and let the kernel choose."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"server not listening on port {port} after {timeout} s")


def process_tree_cpu(pid: int) -> float:
    """user+sys CPU seconds of ``pid`` and its direct children (nginx's worker)."""
    pids = [pid, *_children(pid)]
    total = 0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    stats_supported: bool = False
    _cpu_at: float = field(default=0.0, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return process_tree_cpu(self.proc.pid)

    def stats(self) -> dict[str, float | None]:
        """rawserver.py only: time.monotonic() of the first request and the request count."""
        with urllib.request.urlopen(self.base + "/__stats", timeout=10) as answer:
            result: dict[str, float | None] = json.load(answer)
            return result

    def reset(self) -> None:
        urllib.request.urlopen(self.base + "/__reset", timeout=10).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def nginx_version() -> str | None:
    nginx = _nginx_binary()
    if nginx is None:
        return None
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr
    match = re.search(r"nginx/(\S+)", out)
    return match.group(1) if match else "unknown"


def _nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _temp_paths(nginx: str, tmp: Path) -> str:
    """Temp folders inside ``tmp`` (the compiled-in ones may not be writable), only for the
    modules this build has."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    lines = [f"    client_body_temp_path {tmp}/client_body;\n"]
    for module in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in built:
            lines.append(f"    {module}_temp_path {tmp}/{module};\n")
    return "".join(lines)


def start_nginx(root: Path, tmp: Path, taskset: list[str]) -> Server | None:
    """nginx serving ``root`` on a free port, or None when nginx is not installed."""
    nginx = _nginx_binary()
    if nginx is None:
        return None
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = ""
    if os.geteuid() == 0:  # workers would run as nobody; keep the owner of the files
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if files == resource.RLIM_INFINITY:
        files = 65536
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user=user,
            affinity="worker_cpu_affinity 1;\n" if taskset else "",
            tmp=tmp,
            port=port,
            root=root.resolve(),
            temp_paths=_temp_paths(nginx, tmp),
            files=files,
            connections=max(1024, files // 2),
        )
    )
    log = tmp / "nginx.stderr"
    argv = [*taskset, nginx, "-p", str(tmp), "-c", str(conf)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_listening(port, proc)
    except RuntimeError as exc:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"nginx: {exc}: {log.read_text()[-2000:]}") from exc
    version = nginx_version()
    return Server(f"nginx {version}", port, proc, log)


def start_raw(root: Path, tmp: Path, taskset: list[str], delay: float = 0.0) -> Server:
    """rawserver.py serving ``root``, each response held ``delay`` seconds."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"rawserver-{port}.stderr"
    argv = [*taskset, sys.executable, str(BENCH / "rawserver.py"), "--root", str(root)]
    argv += ["--port", str(port), "--delay", str(delay)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_listening(port, proc)
    except RuntimeError as exc:
        raise RuntimeError(f"rawserver.py: {exc}: {log.read_text()[-2000:]}") from exc
    loop = "uvloop" if _has_uvloop() else "asyncio"
    name = f"rawserver.py ({loop}" + (f", {delay * 1000:g} ms delay)" if delay else ")")
    return Server(name, port, proc, log, stats_supported=True)


def start_static(root: Path, tmp: Path, taskset: list[str]) -> Server:
    """nginx when installed, else rawserver.py."""
    return start_nginx(root, tmp, taskset) or start_raw(root, tmp, taskset)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
