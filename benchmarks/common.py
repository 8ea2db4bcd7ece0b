"""What every benchmark shares: the machine, the simulators as processes, the fleet of accounts."""

import os
import platform
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
MAILCHIMP_PORT = 18765
CONTACTS_PORT = 18766
MAILCHIMP_URL = f"http://127.0.0.1:{MAILCHIMP_PORT}/3.0"
CONTACTS_URL = f"http://127.0.0.1:{CONTACTS_PORT}"


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, Python {platform.python_version()}"


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine: the runs, the daemon and both simulators together."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


ROLES = (
    ("mailchimp_simulator", ("simulate-mailchimp",)),
    ("contacts_simulator", ("simulate-contacts",)),
    ("workers", ("importer-dagster worker", "celery")),
    ("daemon_and_runs", ("dagster-daemon", "dagster code-server", "dagster api", "execute_run")),
    ("postgresql", ("postgres",)),
    ("rabbitmq", ("beam.smp", "rabbitmq")),
    ("seaweedfs", ("weed ",)),
    ("redis", ("redis-server",)),
)


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, by the role its command line names.

    A process's own time plus its reaped children's, so the runs that the daemon's code server
    launched and reaped still count. Take two readings and subtract: `role_cpu_s(before, after)`.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys((role for role, _ in ROLES), 0.0)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = next((role for role, markers in ROLES if any(marker in command for marker in markers)), None)
        if role:
            totals[role] += sum(int(value) for value in fields[11:15]) / ticks
    return totals


def role_cpu_s(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """A process that started and ended between the readings counts only if a living parent reaped it."""
    return {f"cpu_s_{role}": round(max(0.0, after[role] - before[role]), 1) for role in after}


def wait_for_line(process: subprocess.Popen, marker: str) -> str:
    for line in process.stdout:
        if marker in line:
            return line.strip()
    raise RuntimeError(f"the simulator exited before printing {marker!r}")


def start_mailchimp(workdir: Path, env: dict | None = None, *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "importer-dagster"), "simulate-mailchimp", "--port", str(MAILCHIMP_PORT), *args],
        stdout=subprocess.PIPE, text=True, cwd=workdir, env=env,
    )
    wait_for_line(process, "Mailchimp simulator on")
    return process


def start_contacts(workdir: Path, api_key: str, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "importer-dagster"), "simulate-contacts", "--port", str(CONTACTS_PORT),
         "--db", str(workdir / "c.sqlite3"), "--api-key", api_key],
        stdout=subprocess.PIPE, text=True, cwd=workdir, env=env,
    )
    wait_for_line(process, "Contacts API simulator on")
    return process


def stop(*processes: subprocess.Popen | None) -> None:
    """TERM, then KILL after 30 s: a process may have been started where TERM is ignored."""
    for process in processes:
        if process:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fleet_environment(workdir: Path, pg_env: dict, accounts: int, start_date: str) -> dict[str, str]:
    """`accounts` accounts of the simulator's fleet world, on the throwaway PostgreSQL instance."""
    from importer_dagster.simulators.mailchimp import fleet_key

    accounts_file = workdir / "accounts.yaml"
    accounts_file.write_text("accounts:\n" + "".join(
        f"  - id: fleet{i}\n    mailchimp_api_key_env: MAILCHIMP_KEY_FLEET{i}\n    contacts_account: fleet{i}\n"
        for i in range(accounts)
    ))
    return {
        **pg_env,
        "IMPORTER_STATE_DIR": str(workdir / "state"),
        "IMPORTER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{pg_env['DAGSTER_PG_DB']}",
        "IMPORTER_START_DATE": start_date,
        "IMPORTER_ACCOUNTS_FILE": str(accounts_file),
        "MAILCHIMP_BASE_URL": MAILCHIMP_URL,
        **{f"MAILCHIMP_KEY_FLEET{i}": fleet_key(i) for i in range(accounts)},
    }


def fleet_list_keys(accounts: int, lists_per_account: int) -> list[str]:
    """The list keys the fleet world serves, in registration order."""
    return [f"fleet{a}.{a * lists_per_account + i:010x}" for a in range(accounts) for i in range(lists_per_account)]
