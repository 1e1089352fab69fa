"""Shared fixtures: users and projects in the real database, and a real Celery worker process.

The worker is a separate OS process consuming the real broker (the filesystem transport by default,
Redis in the integration run) and writing to the same test database; tests using it need
``@pytest.mark.django_db(transaction=True)`` so their rows are committed where the worker can see them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def admin_user(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def curator(project):
    return MembershipFactory(project=project, role="curator").user


@pytest.fixture
def annotator(project):
    return MembershipFactory(project=project, role="annotator").user


@pytest.fixture
def outsider(db):
    return UserFactory()


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` in its own process, with the queues and pool the product uses."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", settings.CELERY_QUEUES_ALL,
             "--pool=prefork", "--concurrency=1", "--loglevel=INFO", "--without-heartbeat",
             "--without-gossip", "--without-mingle", f"--hostname=test-worker-{os.getpid()}-{self.starts}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Celery worker did not start:\n{self.log_path.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        """kill -9 the whole worker (main process and pool children), as an OOM killer or a crash would."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def _worker_process(django_db_setup, django_db_blocker):
    from config.celery import app

    env = dict(os.environ, DATABASE_URL=_database_url(), DISTILLERY_VAR_DIR=str(settings.VAR_DIR),
               DISTILLERY_DATA_DIR=str(settings.DATA_DIR), PYTHONUNBUFFERED="1")
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(queue, ignore_errors=True)
        queue.mkdir(parents=True)
    else:
        with app.connection_for_write() as conn:
            for name in settings.CELERY_QUEUES_ALL.split(","):
                conn.default_channel.queue_purge(name) if _queue_exists(conn, name) else None
    log_dir = settings.VAR_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(env, log_dir)
    worker.start()
    yield worker
    worker.stop()


def _queue_exists(conn, name: str) -> bool:
    try:
        conn.default_channel.queue_declare(name, passive=True)
        return True
    except Exception:  # noqa: BLE001 - a missing queue is fine, nothing to purge
        return False


@pytest.fixture
def celery_worker(_worker_process, transactional_db):
    """The session's worker, restarted if a previous test killed it."""
    if not _worker_process.alive:
        _worker_process.start()
    return _worker_process


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll until ``predicate()`` is truthy; the value is returned. Raises with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")
