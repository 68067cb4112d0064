"""A private PulseAudio daemon for tests: null sinks instead of a sound card.

The daemon runs in the foreground as a child of the test (`--daemonize=no`), with its own
runtime dir, home and state dir under one temp folder, and loads only what the startup script
lists (`-n -F script`): the native protocol on a socket in that folder and the named null sinks.
No default.pa is read, so module-suspend-on-idle (which would pause the sinks' clocks) is never
loaded, and nothing from a system or user PulseAudio is touched. Clients reach it through
`client_env()`: PULSE_SERVER names the socket, autospawn is off, so a client never falls back
to (or starts) another server.

With `rescue_streams=False` a stream whose sink or source goes away is killed, as a stream on
an unplugged device is on Windows, macOS or bare ALSA; by default PulseAudio moves it to the
default device instead (the daemon's own daemon.conf, in its config dir, says which). A stream
also follows the default device when its own device *was* the default: a test that unplugs a
device makes another one the default first.

Works as root too: PulseAudio only warns that it is "not intended to be run as root".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PulseError(RuntimeError):
    pass


def pulseaudio_installed() -> bool:
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "paplay", "parecord"))


class PulseServer:
    """`with PulseServer(["room", "earpiece"]) as pulse:` — a daemon with those null sinks."""

    def __init__(self, sinks: list[str], startup_timeout_s: float = 15.0, rescue_streams: bool = True) -> None:
        self.sinks = sinks
        self.rescue_streams = rescue_streams
        self.startup_timeout_s = startup_timeout_s
        # Short path: a unix socket path must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="cluelypro-pulse-"))
        self.runtime_dir = self.root / "runtime"
        self.socket = self.runtime_dir / "native"
        self.log_path = self.root / "pulseaudio.log"
        self._process: subprocess.Popen[bytes] | None = None

    # --- environments ----------------------------------------------------------------------------

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for any client (pactl, paplay, PortAudio via the ALSA 'pulse' PCM)."""
        env = dict(os.environ)
        env.update(
            PULSE_SERVER=f"unix:{self.socket}",
            PULSE_RUNTIME_PATH=str(self.runtime_dir),
            PULSE_CLIENTCONFIG=str(self.root / "client.conf"),
            PULSE_COOKIE=str(self.root / "cookie"),
        )
        for name in ("PULSE_SINK", "PULSE_SOURCE"):
            env.pop(name, None)
        env.update(extra)
        return env

    def _daemon_env(self) -> dict[str, str]:
        env = self.client_env()
        home = self.root / "home"
        env.update(
            HOME=str(home),
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            XDG_CONFIG_HOME=str(home / ".config"),
            PULSE_STATE_PATH=str(self.root / "state"),
        )
        return env

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> PulseServer:
        for folder in (self.runtime_dir, self.root / "home", self.root / "state"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / "client.conf").write_text("autospawn = no\n")
        config_dir = self.root / "home" / ".config" / "pulse"  # XDG_CONFIG_HOME of the daemon
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "daemon.conf").write_text(f"rescue-streams = {'yes' if self.rescue_streams else 'no'}\n")
        script = self.root / "startup.pa"
        lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}"]
        lines += [f"load-module module-null-sink sink_name={name}" for name in self.sinks]
        script.write_text("\n".join(lines) + "\n")
        command = [
            "pulseaudio",
            "-n",
            "-F",
            str(script),
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--no-cpu-limit",
            "--log-target=stderr",
            "--log-level=info",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                env=self._daemon_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._process.poll() is not None:
                raise PulseError(f"pulseaudio exited with code {self._process.returncode}:\n{self.log_tail()}")
            probe = subprocess.run(["pactl", "info"], env=self.client_env(), capture_output=True, timeout=10)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise PulseError(f"pulseaudio did not answer within {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)
        # Nothing may suspend the null sinks (only loaded by a default.pa, which -n skips).
        if "module-suspend-on-idle" in self.pactl("list", "short", "modules"):
            self.pactl("unload-module", "module-suspend-on-idle")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- helpers ---------------------------------------------------------------------------------

    def pactl(self, *args: str) -> str:
        result = subprocess.run(["pactl", *args], env=self.client_env(), capture_output=True, text=True, timeout=20)
        if result.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def unload_sink(self, name: str) -> None:
        """Unplug a null sink (and its monitor source): its module goes."""
        for line in self.pactl("list", "short", "modules").splitlines():
            index, module, *arguments = line.split("\t")
            if module == "module-null-sink" and f"sink_name={name}" in " ".join(arguments).split():
                self.pactl("unload-module", index)
                return
        raise PulseError(f"no null sink {name} to unload")

    def load_sink(self, name: str) -> None:
        """Plug a null sink (back) in, under the same name."""
        self.pactl("load-module", "module-null-sink", f"sink_name={name}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
