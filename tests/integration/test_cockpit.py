"""The Cockpit page (cockpit/) in headless chromium, against a real cockpit-ws
and a real pyctrd on a private bus configured like the system bus.

cockpit-ws runs with a local session (its bridge as root, no login, no TLS)
and finds the page through XDG_DATA_DIRS, pointed at the repository's
cockpit/ directory; the bridge reaches pyctrd through DBUS_SYSTEM_BUS_ADDRESS
and its Varlink socket through a stream channel. Screenshots go to the
test's directory (PYCTRD_SCREENSHOTS=DIR copies them there too, e.g. docs/).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, container_id
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from integration.system_bus import SystemBus, SystemDaemon

pytestmark = pytest.mark.browser

COCKPIT_WS = Path("/usr/lib/cockpit/cockpit-ws")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT = 20.0  # s for the page to show what a test waits for (live changes: 0.5 s)
LIVE = 0.5
LOOP = ["sh", "-c", "trap 'exit 0' TERM; echo hello; "
        "while :; do if [ -e /go ]; then echo after-open; rm /go; fi; sleep 0.05; done"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cockpit:
    bus: SystemBus
    daemon: SystemDaemon
    url: str
    driver: Any
    shots: Path

    def busctl(self, *args: str) -> str:
        out = subprocess.run(["busctl", f"--address={self.bus.address}", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def create(self, name: str, command: list[str], image: str = "busybox") -> str:
        out = self.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                          "CreateContainer", "sasa{sv}", "--", image, str(len(command)), *command,
                          "1", "name", "s", name)
        return out.split('"')[1]

    def container(self, path: str, method: str, *args: str) -> None:
        self.busctl("call", "org.pyctrd1", path, "org.pyctrd1.Container", method, *args)

    def state(self, path: str) -> str:
        out = self.busctl("get-property", "org.pyctrd1", path, "org.pyctrd1.Container",
                          "State")
        return out.split('"')[1]

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        wanted = os.environ.get("PYCTRD_SCREENSHOTS")
        if wanted:
            shutil.copy(path, Path(wanted) / f"cockpit-{name}.png")
        return path

    def row(self, name: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, f'#containers tr[data-name="{name}"]')

    def page_state(self, name: str) -> str | None:
        try:
            return str(self.row(name).find_element(By.CSS_SELECTOR, "td.state").text)
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    def wait(self, what: Any, timeout: float = WAIT, message: str = "") -> float:
        """Poll ``what()`` until true, every 10 ms; the seconds it took."""
        begun = time.monotonic()
        while not what():
            if time.monotonic() - begun > timeout:
                raise AssertionError(f"{message or what} (within {timeout} s)\n"
                                     f"{self.diagnosis()}")
            time.sleep(0.01)
        return time.monotonic() - begun

    def click(self, row_selector: str, button: str) -> None:
        """Click ``button`` in the row; the page may redraw the row under us when
        a live update arrives (a stale element): find it again and retry."""
        def clicked() -> bool:
            try:
                row = self.driver.find_element(By.CSS_SELECTOR, row_selector)
                row.find_element(By.CSS_SELECTOR, f'button[data-action="{button}"]').click()
            except (NoSuchElementException, StaleElementReferenceException):
                return False
            return True
        self.wait(clicked, message=f"no {button} button in {row_selector}")

    def diagnosis(self) -> str:
        """What the page showed as a problem, and the browser's console."""
        problem = self.driver.find_element(By.ID, "problem")
        console = "\n".join(str(entry.get("message"))
                            for entry in self.driver.get_log("browser"))
        return f"page problem: {problem.text!r}\nconsole:\n{console}"


def _start_cockpit_ws(base: Path, bus: SystemBus, port: int) -> subprocess.Popen[bytes]:
    share = base / "share"
    (share / "cockpit").mkdir(parents=True)
    (share / "cockpit" / "pyctrd").symlink_to(REPO / "cockpit")
    home = base / "home"
    runtime = base / "xdg-run"
    for d in (home, runtime):
        d.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "LANG": "C.UTF-8",
           "XDG_DATA_DIRS": f"{share}:/usr/share",
           "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
    log = open(base / "cockpit-ws.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([str(COCKPIT_WS), "--port", str(port), "-a", "127.0.0.1",
                             "--local-session=cockpit-bridge"],
                            env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    log.close()
    deadline = time.monotonic() + WAIT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log_text = (base / "cockpit-ws.log").read_text()
            raise RuntimeError(f"cockpit-ws did not start:\n{log_text}")
        time.sleep(0.05)


def _driver() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Cockpit]:
    for needed in (COCKPIT_WS, Path(CHROMEDRIVER), Path(CHROMIUM)):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: make deps installs cockpit-ws, chromium and "
                        "chromium-driver")
    base = tmp_path_factory.mktemp("cockpit")
    bus = SystemBus(base / "bus")
    daemon = SystemDaemon(base / "pyctrd", bus.address)
    ws: subprocess.Popen[bytes] | None = None
    driver = None
    try:
        daemon.start()
        daemon.image_id, daemon.image_path = daemon.import_image(busybox_tar, "busybox")
        port = free_port()
        ws = _start_cockpit_ws(base, bus, port)
        driver = _driver()
        varlink = daemon.run_root / "io.pyctrd"
        url = f"http://127.0.0.1:{port}/cockpit/@localhost/pyctrd/index.html?varlink={varlink}"
        shots = base / "screenshots"
        shots.mkdir()
        yield Cockpit(bus, daemon, url, driver, shots)
    finally:
        try:
            if driver is not None:
                driver.quit()
            if ws is not None:
                _stop(ws)
            daemon.shutdown()
        finally:
            bus.stop()


def open_page(c: Cockpit) -> None:
    c.driver.get(c.url)
    c.wait(lambda: c.driver.execute_script(
        "return document.body.getAttribute('data-loaded') === 'true'"),
        message="the page did not load pyctrd's objects")


def test_page_lists_follows_and_acts(cockpit: Cockpit) -> None:
    c = cockpit
    existing = c.create("cw-existing", ["true"])
    web = c.create("cw-web", LOOP)
    try:
        open_page(c)
        # the page lists what exists: both containers, the image
        assert c.page_state("cw-existing") == "configured"
        assert c.page_state("cw-web") == "configured"
        images = c.driver.find_elements(By.CSS_SELECTOR, "#images tr[data-reference]")
        assert [i.get_attribute("data-reference") for i in images] == ["busybox"]

        # started by another client: "running" on the page within 500 ms, no reload
        c.container(web, "Start")
        took = c.wait(lambda: c.page_state("cw-web") == "running", timeout=LIVE,
                      message="the page did not show running within 500 ms")
        print(f"running shown {took * 1000:.0f} ms after busctl returned")

        # details: logs followed live over Varlink, figures from GetStats
        c.row("cw-web").click()
        logs = c.driver.find_element(By.ID, "logs")
        c.wait(lambda: "hello" in logs.text, message="the log's first line did not show")
        mountpoint = c.busctl("get-property", "org.pyctrd1", web, "org.pyctrd1.Container",
                              "Mountpoint").split('"')[1]
        (Path(mountpoint) / "go").touch()  # the container prints a line only now
        c.wait(lambda: "after-open" in logs.text,
               message="a line printed after the page opened did not show")
        memory = c.driver.find_element(By.ID, "stat-memory")
        c.wait(lambda: "B" in memory.text, message="no memory figure")
        cpu = c.driver.find_element(By.ID, "stat-cpu")
        c.wait(lambda: "%" in cpu.text, message="no CPU figure")
        graph = c.driver.find_element(By.ID, "cpu-graph")
        c.wait(lambda: int(graph.get_attribute("data-points") or 0) >= 3,
               message="the CPU graph did not grow")
        # the terminal: a command line runs in it (ExecOutput over Varlink), its output shows
        c.driver.find_element(By.ID, "term-input").send_keys("echo hello-term; exit 4")
        c.driver.find_element(By.ID, "term-run").click()
        term = c.driver.find_element(By.ID, "term-output")
        c.wait(lambda: "[exit 4]" in term.text, message="the terminal showed no exit")
        assert "hello-term\n[exit 4]" in term.text, term.text
        c.shot("details")

        # clicking Stop stops it
        c.click('#containers tr[data-name="cw-web"]', "stop")
        c.wait(lambda: c.state(web) == "exited", message="Stop did not stop it")
        c.wait(lambda: c.page_state("cw-web") == "exited", timeout=LIVE * 4)

        # create from the page, with a published port and a restart policy: it
        # appears, running, and its properties say what the form asked for
        host_port = free_port()
        c.driver.find_element(By.ID, "create-image").send_keys("busybox")
        c.driver.find_element(By.ID, "create-name").send_keys("cw-new")
        c.driver.find_element(By.ID, "create-command").send_keys("sleep 1000")
        c.driver.find_element(By.ID, "create-ports").send_keys(f"{host_port}:80")
        Select(c.driver.find_element(By.ID, "create-restart")).select_by_value("on-failure")
        networks = Select(c.driver.find_element(By.ID, "create-network"))
        assert [o.get_attribute("value") for o in networks.options][:2] == ["", "none"]
        c.driver.find_element(By.ID, "create-button").click()
        c.wait(lambda: c.page_state("cw-new") == "running", message="create did not run it")
        new = c.row("cw-new").get_attribute("data-path")
        policy = c.busctl("get-property", "org.pyctrd1", new, "org.pyctrd1.Container",
                          "RestartPolicy")
        assert policy.strip() == 's "on-failure"', policy
        ports = c.busctl("get-property", "org.pyctrd1", new, "org.pyctrd1.Container", "Ports")
        assert ports.strip() == f'a(sqqs) 1 "" {host_port} 80 "tcp"', ports
        c.shot("list")
        # removed from the page: its row goes
        c.click('#containers tr[data-name="cw-new"]', "remove")
        c.wait(lambda: c.page_state("cw-new") is None, message="remove did not remove it")
        # The row goes with InterfacesRemoved, before the removal (the port's
        # teardown too) has finished: wait for the daemon to list it no more.
        c.wait(lambda: '"cw-new"' not in c.busctl("call", "org.pyctrd1", "/org/pyctrd1",
                                                  "org.pyctrd1.Manager", "ListContainers"),
               message="the daemon still lists cw-new")
        problem = c.driver.find_element(By.ID, "problem")
        assert not problem.is_displayed(), problem.text
    finally:
        for path in (existing, web):
            with contextlib.suppress(AssertionError):
                c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                         "RemoveContainer", "sb", container_id(path), "true")


def test_image_remove_from_the_page(cockpit: Cockpit,
                                    make_variant_tar: Any) -> None:
    c = cockpit
    c.daemon.import_image(make_variant_tar("cockpit"), "variant:cockpit")
    open_page(c)
    selector = '#images tr[data-reference="variant:cockpit"]'
    c.click(selector, "remove")
    c.wait(lambda: not c.driver.find_elements(By.CSS_SELECTOR, selector),
           message="the image's row stayed")
    out = c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager", "ListImages")
    assert "variant:cockpit" not in out




@pytest.fixture(scope="module")
def registry(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local docker-registry holding test/pulled:v1: busybox and a layer of 16 MiB
    of incompressible bytes, so the pull has progress to show."""
    from support.registry import Registry, build_layered
    layout = build_layered(busybox_tar, tmp_path_factory.mktemp("cockpit-layered"),
                           [{"etc/big": os.urandom(16 << 20)}])
    reg = Registry(tmp_path_factory.mktemp("cockpit-registry")).start()
    try:
        reg.push(f"oci:{layout}:top", "test/pulled:v1")
        yield reg
    finally:
        reg.stop()


# Every value the jobs table shows, recorded in the page as it redraws (a redraw
# follows each PropertiesChanged), so a fast pull's steps are not missed by polling.
RECORD_PROGRESS = """
window.pyctrdProgress = [];
new MutationObserver(() => {
    for (const td of document.querySelectorAll('#jobs td.progress'))
        window.pyctrdProgress.push(Number(td.getAttribute('data-progress')));
}).observe(document.querySelector('#jobs tbody'), {childList: true, subtree: true});
"""


def test_pull_health_and_networks_live(cockpit: Cockpit, registry: Any) -> None:
    c = cockpit
    reference = f"{registry.host}/test/pulled:v1"
    out = c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                   "CreateContainer", "sasa{sv}", "--", "busybox", "2", "sleep", "1000", "3",
                   "name", "s", "cw-health", "health_cmd", "as", "1", "true",
                   "health_interval", "u", "1")
    healthy = out.split('"')[1]
    network = "cw-net"
    try:
        open_page(c)
        c.container(healthy, "Start")
        cell = '#containers tr[data-name="cw-health"] td.health'

        def health() -> str | None:
            try:
                return str(c.driver.find_element(By.CSS_SELECTOR, cell).text)
            except (NoSuchElementException, StaleElementReferenceException):
                return None
        took = c.wait(lambda: health() == "healthy", message="no healthy shown")
        print(f"healthy shown {took * 1000:.0f} ms after start")
        restarts = c.driver.find_element(
            By.CSS_SELECTOR, '#containers tr[data-name="cw-health"] td.restarts').text
        assert restarts == "0"

        # a network created by another client appears without a reload
        c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                 "CreateNetwork", "sa{sv}", network, "0")
        took = c.wait(lambda: bool(c.driver.find_elements(
            By.CSS_SELECTOR, f'#networks tr[data-name="{network}"]')), timeout=LIVE,
            message="the network did not show within 500 ms")
        print(f"network shown {took * 1000:.0f} ms after busctl returned")

        # pull: a job row with a progress bar, then the new image
        c.driver.execute_script(RECORD_PROGRESS)
        c.driver.find_element(By.ID, "pull-reference").send_keys(reference)
        c.driver.find_element(By.ID, "pull-tls-verify").click()  # plain HTTP registry
        begun = time.monotonic()
        c.driver.find_element(By.ID, "pull-button").click()
        job = f'#jobs tr[data-reference="{reference}"]'
        c.wait(lambda: bool(c.driver.find_elements(By.CSS_SELECTOR, job)),
               message="no job row for the pull")
        image = f'#images tr[data-reference="{reference}"]'
        c.wait(lambda: bool(c.driver.find_elements(By.CSS_SELECTOR, image)), timeout=60,
               message="the pulled image did not show")
        c.wait(lambda: bool(c.driver.find_elements(
            By.CSS_SELECTOR, f'{job}[data-state="completed"]')),
            message="the job did not show completed")
        seen = [float(v) for v in c.driver.execute_script("return window.pyctrdProgress")]
        print(f"pull took {time.monotonic() - begun:.2f} s; progress shown: "
              f"{sorted(set(seen))}")
        assert any(0 < v < 1 for v in seen), seen  # a step between start and end
        assert seen[-1] == 1.0 and seen == sorted(seen), seen
        c.shot("pull")
        problem = c.driver.find_element(By.ID, "problem")
        assert not problem.is_displayed(), problem.text
    finally:
        with contextlib.suppress(AssertionError):
            c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                     "RemoveContainer", "sb", container_id(healthy), "true")
        with contextlib.suppress(AssertionError):
            c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                     "RemoveNetwork", "sb", network, "true")
        with contextlib.suppress(AssertionError):
            c.busctl("call", "org.pyctrd1", "/org/pyctrd1", "org.pyctrd1.Manager",
                     "RemoveImage", "sb", reference, "true")
