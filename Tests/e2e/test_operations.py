"""Operations: the production systemd units in deploy/ are valid and current, and one function can be
redeployed under load without losing a request or touching the other functions."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import requests

from conftest import ROOT, wait_until

DEPLOY = os.path.join(ROOT, "deploy")
UNITS = os.path.join(DEPLOY, "systemd")
INSTALLED_BIN = "/usr/lib/atelier/bin/"


def repository_functions():
    return sorted(name for name in os.listdir(os.path.join(ROOT, "Functions"))
                  if os.path.isdir(os.path.join(ROOT, "Functions", name)))


def http_functions():
    return [name for name in repository_functions() if not name.endswith("-cron")]


def unit_files():
    return sorted(name for name in os.listdir(UNITS) if name.endswith((".service", ".socket", ".timer")))


def settings(path, key):
    """The values of one setting in a unit file (every section; enough for these files)."""
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$")
    with open(path) as f:
        return [m.group(1).strip() for m in map(pattern.match, f.read().splitlines()) if m]


def test_systemd_analyze_verify_passes_on_every_unit(stack):
    tool = shutil.which("systemd-analyze")
    # A failure, not a skip: the Debian package "systemd" provides the tool (make test installs it).
    assert tool, "systemd-analyze is not installed (Debian package: systemd)"
    names = unit_files()
    assert names, f"no units in {UNITS}"
    with tempfile.TemporaryDirectory(prefix="units-") as folder:
        # `verify` fails on an ExecStart= binary that does not exist, and the units name the installed
        # path /usr/lib/atelier/bin. In the copies that path becomes this build's BIN_DIR, so the check
        # also proves each unit runs a binary the build really produces. Only a cron function that has
        # no folder in Functions/ yet (its units are written ahead of it) runs /bin/true instead.
        for name in names:
            with open(os.path.join(UNITS, name)) as f:
                text = f.read()

            def binary(match):
                program = match.group(1)
                built = os.path.join(stack.bin_dir, program)
                if not os.path.exists(built) and program.endswith("-cron") \
                        and program not in repository_functions():
                    return "/bin/true"
                return built

            text = re.sub(re.escape(INSTALLED_BIN) + r"([A-Za-z0-9_.-]+)", binary, text)
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        result = subprocess.run([tool, "verify", *names], cwd=folder, capture_output=True, text=True,
                                timeout=120)
    output = (result.stdout + result.stderr).strip()
    # verify exits 0 on some problems (an unknown or misspelt setting is "ignored" with a warning), so any
    # output at all is a failure too.
    assert result.returncode == 0 and output == "", output or f"exit status {result.returncode}"


def test_every_function_has_current_units_and_they_reference_each_other():
    # The committed units are what deploy/generate-units.sh makes from its templates, for every HTTP
    # function of the repository: adding a function means running it again.
    with tempfile.TemporaryDirectory(prefix="generated-") as folder:
        subprocess.run([os.path.join(DEPLOY, "generate-units.sh"), "--out", folder], check=True,
                       capture_output=True, text=True)
        generated = sorted(os.listdir(folder))
        expected = sorted(f"atelier-{name}{suffix}" for name in http_functions()
                          for suffix in (".socket", "@.service"))
        assert generated == expected
        for name in generated:
            with open(os.path.join(folder, name)) as new, open(os.path.join(UNITS, name)) as committed:
                assert committed.read() == new.read(), \
                    f"deploy/systemd/{name} is not what deploy/generate-units.sh writes: run it again"
    present = set(unit_files())
    for name in http_functions():
        socket, service = f"atelier-{name}.socket", f"atelier-{name}@.service"
        assert settings(os.path.join(UNITS, socket), "ListenStream") == [f"/run/atelier/{name}.sock"]
        assert settings(os.path.join(UNITS, socket), "Service") == [f"atelier-{name}@1.service"]
        assert settings(os.path.join(UNITS, service), "Sockets") == [socket]
        assert settings(os.path.join(UNITS, service), "StandardInput") == ["socket"]
        assert settings(os.path.join(UNITS, service), "ExecStart") == [INSTALLED_BIN + name]
    for name in repository_functions():
        if name.endswith("-cron"):
            assert {f"atelier-{name}.service", f"atelier-{name}.timer"} <= present, name
    assert "atelier-migrate.service" in present
    # Every service runs hardened, as the atelier user, with the shared environment file.
    for name in present:
        if not name.endswith(".service"):
            continue
        path = os.path.join(UNITS, name)
        for key, value in [("User", "atelier"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                           ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                           ("ReadWritePaths", "/var/lib/atelier/media"),
                           ("EnvironmentFile", "/etc/atelier/atelier.env")]:
            assert settings(path, key) == [value], (name, key)
        if "@" in name:
            # An idle exit (status 0) stays stopped until the socket starts @1 again; a crash restarts.
            assert settings(path, "Restart") == ["on-failure"], name
            function = name[len("atelier-"):-len("@.service")]
            idle = "0" if function in ("health", "session", "generate") else "60"
            assert settings(path, "Environment") == ["METRICS_DIR=/run/atelier-metrics",
                                                     f"FUNCTION_IDLE_SECONDS={idle}"], name
        if "@" in name or name.endswith("-cron.service"):
            # Counters for /metrics: one tmpfs folder shared by every function and cron of the host.
            assert "METRICS_DIR=/run/atelier-metrics" in settings(path, "Environment"), name
            assert settings(path, "RuntimeDirectory") == ["atelier-metrics"], name
            assert settings(path, "RuntimeDirectoryPreserve") == ["yes"], name


def test_independent_redeploy_loses_no_request(stack):
    health_before = stack.function_pids("health")
    session_before = stack.function_pids("session")
    assert len(health_before) >= 1 and len(session_before) >= 1

    statuses, failures = [], []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 12  # a hard bound, whatever happens to the reload

    def load():
        with requests.Session() as s:
            count = 0
            while not stop.is_set() and count < 20000 and time.monotonic() < deadline:
                count += 1
                try:
                    status = s.get(stack.api("/api/v1/health"), timeout=5).status_code
                except requests.RequestException as error:
                    with lock:
                        failures.append(repr(error))
                    continue
                with lock:
                    statuses.append(status)

    clients = [threading.Thread(target=load) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)  # the load runs before, during and after the reload: about 3 s in all
        stack.stack("reload", "health")
        def all_replaced():
            # The reload is done when none of the old processes is left and as many new ones run.
            now = stack.function_pids("health")
            return len(now) == len(health_before) and not set(now) & set(health_before)

        replaced = wait_until(all_replaced, timeout=8)
        time.sleep(1.5)  # and on the new processes for a while
    finally:
        stop.set()
        for client in clients:
            client.join()

    assert statuses, "no request was made"
    assert not failures and set(statuses) == {200}, \
        ({s: statuses.count(s) for s in set(statuses)}, failures[:5])
    assert replaced, (health_before, stack.function_pids("health"))
    assert stack.function_pids("session") == session_before


def test_make_run_says_which_providers_are_live_and_never_prints_a_secret(stack):
    """`scripts/stack.sh run` (what `make run` starts) prints, once up, where mail, generation, payments
    and media go, so a newcomer knows what they are looking at; the SMTP password is not among it. It
    stops everything on SIGTERM."""
    from conftest import free_port

    run_dir = stack.run_dir.rstrip("/") + "-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "APP_SECRET", "MEDIA_ROOT",
                                "MIGRATIONS_DIR", "SMTP_", "REPLICATE_", "RAZORPAY_", "S3_"))}
    env.update({"RUN_DIR": run_dir, "PORT": str(free_port()), "PG_PORT": str(free_port()),
                "PGBOUNCER_PORT": str(free_port()) if os.environ.get("PGBOUNCER_PORT") else "",
                "REDIS_PORT": str(free_port()), "REDIS_SAVE": "", "PG_FSYNC": "off", "CRON_INTERVALS": " ",
                "SMTP_URL": "smtp://mailer:very-secret-pass@smtp.example.test:587",
                "REPLICATE_API_TOKEN": "r8_not_a_real_token", "REPLICATE_API_BASE": "http://127.0.0.1:9/v1",
                "REPLICATE_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8})
    process = subprocess.Popen([os.path.join(ROOT, "scripts", "stack.sh"), "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Ctrl-C stops everything" in line:
                break
        text = "\n".join(lines)
        assert "Ctrl-C stops everything" in text, text[-3000:]
        said = {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+)\s{2,}(.*)$", text, re.M)}
        assert said["mail"] == "sent through smtp://smtp.example.test:587", said
        assert said["generation"].startswith("Replicate (http://127.0.0.1:9/v1)"), said
        assert said["payments"].startswith("not configured"), said
        assert said["media"].startswith(os.path.join(run_dir, "media")), said
        assert "very-secret-pass" not in text and "r8_not_a_real_token" not in text
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "stop"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(run_dir, ignore_errors=True)


def test_a_stack_runs_from_a_folder_only_its_owner_may_enter(stack):
    """A fresh server's checkout often lives in /root (mode 0700). PostgreSQL runs as the postgres user
    when we are root and cannot enter it: its data and its log then live in a folder it owns, the logs
    folder links to the log, and everything works; `stack.sh purge` removes that data too."""
    from conftest import free_port

    private = tempfile.mkdtemp(prefix="atelier-0700-")
    os.chmod(private, 0o700)
    run_dir = os.path.join(private, "run")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "APP_SECRET", "MEDIA_ROOT",
                                "MIGRATIONS_DIR", "REPLICATE_", "RAZORPAY_", "S3_"))}
    port = free_port()
    env.update({"RUN_DIR": run_dir, "PORT": str(port), "PG_PORT": str(free_port()), "REDIS_PORT": str(free_port()),
                "PGBOUNCER_PORT": str(free_port()) if os.environ.get("PGBOUNCER_PORT") else "",
                "REDIS_SAVE": "", "PG_FSYNC": "off", "CRON_INTERVALS": " ", "PROCESSES": "1"})
    script = os.path.join(ROOT, "scripts", "stack.sh")
    try:
        started = subprocess.run([script, "start"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert r.status_code == 200 and r.json()["database"] == "ok", r.text
        with open(os.path.join(run_dir, "logs", "postgres.log")) as log:
            assert "database system is ready" in log.read()
        data = open(os.path.join(run_dir, "pg.datadir")).read().strip()
    finally:
        subprocess.run([script, "purge"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(private, ignore_errors=True)
    assert not os.path.exists(data), f"purge left PostgreSQL's data in {data}"
