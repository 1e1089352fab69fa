"""The attacks a curator account could try, each refused with a clear message.

Real server paths (the upload folder, the data dir), real HTTP on loopback (a tiny http.server in a thread
that records what reaches it), the real services behind the API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from curation.jobs.services import job_resume
from curation.markdown import render_markdown
from curation.models import GenerationJob, ImportJob, JobStatus, ServerResource, Teacher
from curation.selectors.access import SERVER_SHELL, is_operator
from curation.services import generation as gen
from curation.services.imports import import_job_run
from curation.services.trust import server_resource_register
from curation.teachers import GenerationParams, OpenAICompatibleTeacher, TeacherError
from evaluation import services as evaluation_services
from tests.evaluation.helpers import make_heldout_version, sft_records
from tests.factories import PromptFactory, UserFactory

pytestmark = pytest.mark.django_db
MARKER = "INTERNAL-BODY-7f3a"  # what an internal service answers; it must never reach a curator


class Listener:
    """A loopback HTTP server: each path answers as scripted and every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                listener.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                          "body": self.rfile.read(length)})
                status, headers, body = listener.routes.get(self.path.split("?")[0], (404, {}, b"no route"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def chat_ok(self, path: str = "/v1/chat/completions") -> None:
        body = {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}
        self.routes[path] = (200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def internal():
    """A second loopback service, the kind an attacker wants the server to reach for them."""
    server = Listener()
    server.routes["/secret"] = (200, {}, MARKER.encode())
    yield server
    server.close()


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def teacher_data(project, **extra) -> dict:
    return {"name": "t", "kind": "openai-compatible", "model_name": "m", "project": project.slug, **extra}


# --- code execution: uploads are not code, and only operators name task folders -----------------------------

def test_uploaded_python_and_task_yaml_cannot_be_evaluated(project, curator):
    client = api(curator)
    evil_py = b"import os\ndef score(*a):\n    os.system('touch /tmp/pwned')\n"
    task_yaml = b"task: pwn\ndataset_path: json\nmetric_list:\n  - metric: !function evil.score\n"
    stored = []
    for name, content in (("evil.py", evil_py), ("tasks.yaml", task_yaml)):
        created = client.post("/api/v1/imports/", {"project": project.slug, "file": SimpleUploadedFile(name, content)},
                              format="multipart")
        assert created.status_code == 201, created.content
        job = ImportJob.objects.get(pk=created.json()["id"])
        path = Path(job.file.path)
        stored.append(path)
        # A random name, no extension lm-eval loads, outside the data dir where models and evaluations live.
        assert path.exists() and name.split(".")[0] not in path.name and path.suffix == ".upload"
        assert Path(settings.MEDIA_ROOT) in path.parents and Path(settings.DATA_DIR) not in path.parents
        import_job_run(job.pk)  # the import finishes (it fails: neither is JSONL) ...
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and not path.exists() and not job.file  # ... and the upload is gone
        with pytest.raises(ValidationError, match="no longer kept on the server: upload it again"):
            job_resume(job=job, enqueue=False)
        assert str(settings.MEDIA_ROOT) not in job.message and str(settings.VAR_DIR) not in job.message

    version, _ = make_heldout_version(project, sft_records())
    ServerResource.objects.create(kind="model", name="student", path=str(settings.DATA_DIR))
    for folder in (stored[0].parent, Path(settings.MEDIA_ROOT), Path("/"), Path(settings.DATA_DIR)):
        refused = client.post("/api/v1/evaluation-runs/", {
            "project": project.slug, "dataset_version": version.number, "models": [{"kind": "hf", "path": "student"}],
            "tasks": [str(folder)]}, format="json")
        assert refused.status_code == 400
        assert "Task folders are picked from those an operator registered" in refused.json()["tasks"][0]
    # Nor can an operator make the upload folder (or anything holding it) a task folder.
    for folder in (Path(settings.MEDIA_ROOT), Path(settings.MEDIA_ROOT) / "imports", Path(settings.MEDIA_ROOT).parent):
        folder.mkdir(parents=True, exist_ok=True)
        with pytest.raises(ValidationError, match="holds uploaded files"):
            server_resource_register(actor=SERVER_SHELL, kind="tasks", name="uploads", path=str(folder))


def test_registered_task_folders_are_picked_by_name(project, curator, tmp_path):
    folder = tmp_path / "house-tasks"
    folder.mkdir()
    with pytest.raises(PermissionDenied, match="Only an operator"):
        server_resource_register(actor=curator, kind="tasks", name="house", path=str(folder))
    server_resource_register(actor=SERVER_SHELL, kind="tasks", name="house", path=str(folder))
    version, _ = make_heldout_version(project, sft_records())
    ServerResource.objects.create(kind="model", name="student", path=str(tmp_path))
    run = evaluation_services.evaluation_run_create(
        project=project, created_by=curator, dataset_version=version, models=[{"kind": "hf", "path": "student"}],
        tasks=["heldout", "house", "arc_easy"], enqueue=False)
    # Folders are stored resolved, names as names: the worker never looks a name up in its own cwd.
    assert run.tasks == ["heldout", str(folder.resolve()), "arc_easy"]


def test_a_curator_picks_registered_models_and_never_types_a_path(project, curator, tmp_path):
    with pytest.raises(ValidationError, match="Pick a model an operator registered"):
        gen.teacher_register(actor=curator, project=project, name="x", kind=Teacher.Kind.LOCAL, model_path="/etc")
    (tmp_path / "config.json").write_text("{}")
    server_resource_register(actor=SERVER_SHELL, kind="model", name="tiny", path=str(tmp_path))
    teacher = gen.teacher_register(actor=curator, project=project, name="x", kind=Teacher.Kind.LOCAL, model_path="tiny")
    assert teacher.local_path == tmp_path


def test_operator_is_a_superuser_or_holds_the_permission(project, curator):
    assert not is_operator(curator) and is_operator(SERVER_SHELL) and not is_operator(None)
    curator.user_permissions.add(Permission.objects.get(codename="operate_server"))
    curator = type(curator).objects.get(pk=curator.pk)  # permissions are cached per instance
    assert is_operator(curator)
    assert is_operator(UserFactory(is_superuser=True)) and not is_operator(UserFactory(is_staff=True))


# --- secrets: keys only from allowlisted variables, set by operators ----------------------------------------

@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "PATH"])
def test_no_one_can_name_a_variable_outside_the_allowlist(project, curator, admin_user, name, settings, listener):
    settings.TEACHER_ALLOWED_HOSTS = ["127.0.0.1"]
    data = teacher_data(project, base_url=f"{listener.url}/v1", api_key_env=name)
    refused = api(curator).post("/api/v1/teachers/", data, format="json")
    assert refused.status_code == 403 and "Only an operator can give a teacher an API key" in refused.json()["detail"]
    refused = api(admin_user).post("/api/v1/teachers/", data, format="json")
    assert refused.status_code == 400
    assert refused.json()["api_key_env"] == ["API keys can only come from environment variables matching: "
                                             "DISTILLERY_KEY_*."]
    version, _ = make_heldout_version(project, sft_records())
    refused = api(curator).post("/api/v1/evaluation-runs/", {
        "project": project.slug, "dataset_version": version.number, "tasks": ["heldout"],
        "models": [{"kind": "api", "path": f"{listener.url}/v1/chat/completions", "api_model": "m",
                    "api_key_env": name}]}, format="json")
    assert refused.status_code == 403
    assert listener.requests == []


def test_a_teacher_row_naming_a_secret_sends_nothing(project, settings, listener, monkeypatch):
    """A row written before the allowlist (or by hand) is refused again when the job runs."""
    settings.TEACHER_ALLOWED_HOSTS = ["127.0.0.1"]
    listener.chat_ok()
    teacher = Teacher.objects.create(project=project, name="old", kind=Teacher.Kind.OPENAI,
                                     base_url=f"{listener.url}/v1", model_name="m", api_key_env="SECRET_KEY")
    monkeypatch.setenv("SECRET_KEY", "the-real-secret")
    PromptFactory(project=project)
    job = gen.generation_job_create(project=project, teacher=teacher, n=1, enqueue=False)
    assert gen.generation_job_run(job_id=job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert "API keys can only come from environment variables matching" in job.error
    assert listener.requests == [] and "the-real-secret" not in job.error
    with pytest.raises(Exception, match="not one API keys may come from"):
        evaluation_services._model_env({"label": "x", "kind": "api", "path": f"{listener.url}/v1",
                                        "api_key_env": "SECRET_KEY"})


def test_an_allowlisted_key_reaches_the_operators_host(project, settings, listener, monkeypatch):
    settings.TEACHER_ALLOWED_HOSTS = [f"127.0.0.1:{listener.port}"]
    listener.chat_ok()
    monkeypatch.setenv("DISTILLERY_KEY_VLLM", "k-123")
    teacher = gen.teacher_register(actor=SERVER_SHELL, project=project, name="vllm", kind=Teacher.Kind.OPENAI,
                                   base_url=f"{listener.url}/v1", model_name="m", api_key_env="DISTILLERY_KEY_VLLM")
    PromptFactory(project=project)
    job = gen.generation_job_create(project=project, teacher=teacher, n=1, enqueue=False)
    assert gen.generation_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    assert [r["auth"] for r in listener.requests] == ["Bearer k-123"]


# --- SSRF: private addresses, redirects, echoed bodies, port-scan oracle --------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/v1", "http://localhost:{port}/v1", "http://[::1]:{port}/v1", "http://10.0.0.7/v1",
    "http://192.168.1.1/v1", "http://169.254.169.254/latest/meta-data", "http://0.0.0.0:{port}/v1",
    "http://224.0.0.1/v1", "http://[::ffff:127.0.0.1]:{port}/v1", "file:///etc/passwd", "http://user:pw@example.com/v1",
])
def test_private_addresses_are_refused_unless_the_operator_allowed_them(project, curator, listener, url):
    url = url.format(port=listener.port)
    refused = api(curator).post("/api/v1/teachers/", teacher_data(project, base_url=url), format="json")
    assert refused.status_code == 400, refused.content
    message = refused.json()["base_url"][0]
    assert ("only an operator can allow such a host (DISTILLERY_TEACHER_HOSTS)" in message
            or "http:// or https://" in message or "Credentials inside the URL" in message)
    assert listener.requests == []


def test_an_allowed_host_may_be_private(project, curator, listener, settings):
    settings.TEACHER_ALLOWED_HOSTS = [f"127.0.0.1:{listener.port}"]
    created = api(curator).post("/api/v1/teachers/", teacher_data(project, base_url=f"{listener.url}/v1"),
                                format="json")
    assert created.status_code == 201
    other_port = api(curator).post("/api/v1/teachers/",
                                   teacher_data(project, name="u", base_url=f"http://127.0.0.1:{listener.port + 1}/v1"),
                                   format="json")
    assert other_port.status_code == 400  # the allowance names a port: the host's other ports stay closed


def test_the_client_checks_the_address_it_dials(listener):
    """The check runs at connect time too (a name can resolve elsewhere later): nothing reaches the listener."""
    listener.chat_ok()
    client = OpenAICompatibleTeacher(base_url=f"{listener.url}/v1", model="m", max_retries=0)
    with pytest.raises(TeacherError, match="only an operator can allow such a host"):
        list(client.generate(["hi"], GenerationParams()))
    assert listener.requests == []


def test_redirects_are_not_followed(listener, internal):
    listener.routes["/v1/chat/completions"] = (302, {"Location": f"{internal.url}/secret"}, b"")
    client = OpenAICompatibleTeacher(base_url=f"{listener.url}/v1", model="m", max_retries=0,
                                     allowed_hosts=["127.0.0.1"])
    with pytest.raises(TeacherError, match="HTTP 302, a redirect; redirects are not followed"):
        list(client.generate(["hi"], GenerationParams()))
    assert len(listener.requests) == 1 and internal.requests == []


def test_the_evaluation_child_follows_no_redirect(listener, internal):
    """lm-eval's API models post with requests; the harness child turns redirects off before they run."""
    listener.routes["/v1/chat/completions"] = (307, {"Location": f"{internal.url}/secret"}, b"")
    code = ("from evaluation.harness.__main__ import _no_redirects; _no_redirects(); import requests\n"
            f"try:\n    requests.post('{listener.url}/v1/chat/completions', json={{}})\n"
            "except requests.TooManyRedirects:\n    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=settings.BASE_DIR)
    assert out.stdout.strip() == "refused", out.stderr
    assert internal.requests == []


@pytest.mark.parametrize("status, content_type, body", [
    (400, "text/plain", MARKER.encode()),
    (401, "application/json", json.dumps({"error": MARKER}).encode()),
    (200, "text/html", f"<html>{MARKER}</html>".encode()),
    (200, "application/json", json.dumps({"unexpected": MARKER}).encode()),
])
def test_response_bodies_are_never_echoed(project, listener, settings, status, content_type, body):
    settings.TEACHER_ALLOWED_HOSTS = ["127.0.0.1"]
    listener.routes["/v1/chat/completions"] = (status, {"Content-Type": content_type}, body)
    teacher = gen.teacher_register(actor=SERVER_SHELL, project=project, name="t", kind=Teacher.Kind.OPENAI,
                                   base_url=f"{listener.url}/v1", model_name="m",
                                   default_params={"max_retries": 0})
    PromptFactory(project=project)
    job = gen.generation_job_create(project=project, teacher=teacher, n=1, enqueue=False)
    assert gen.generation_job_run(job_id=job.pk) == JobStatus.FAILED
    error = GenerationJob.objects.get(pk=job.pk).error
    assert error and MARKER not in error
    assert (f"HTTP {status}" in error) if status != 200 else ("not JSON" in error or "not a chat completion" in error)


def test_refused_and_silent_ports_give_the_same_message(listener):
    """Telling "connection refused" from "timed out" would make the teacher a port scanner."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers
    messages = []
    for port in (closed_port, silent.getsockname()[1]):
        client = OpenAICompatibleTeacher(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0,
                                         timeout=0.5, allowed_hosts=["127.0.0.1"])
        with pytest.raises(TeacherError) as raised:
            list(client.generate(["hi"], GenerationParams()))
        messages.append(str(raised.value).replace(str(port), "PORT"))
    silent.close()
    assert messages[0] == messages[1] and "no answer from the server" in messages[0]


# --- uploads, pages, API hardening ---------------------------------------------------------------------------

def test_uploads_are_capped_without_revealing_paths(project, curator, settings):
    settings.UPLOAD_MAX_BYTES = 10
    refused = api(curator).post("/api/v1/imports/", {"project": project.slug,
                                                     "file": SimpleUploadedFile("a.jsonl", b"x" * 11)},
                                format="multipart")
    assert refused.status_code == 400 and "larger than the upload limit (10\xa0bytes)" in refused.json()["file"][0]
    assert str(settings.VAR_DIR) not in refused.content.decode() and not ImportJob.objects.exists()


def test_global_teachers_server_details_are_for_operators(project, curator, admin_user, settings):
    Teacher.objects.create(name="shared", kind=Teacher.Kind.LOCAL, model_path="/srv/models/secret-70b")
    Teacher.objects.create(project=project, name="own", kind=Teacher.Kind.OPENAI, base_url="https://api.example/v1",
                           model_name="m")
    seen = {t["name"]: t for t in api(curator).get("/api/v1/teachers/").json()["results"]}
    assert seen["shared"]["model_path"] == "" and seen["own"]["base_url"] == "https://api.example/v1"
    seen = {t["name"]: t for t in api(admin_user).get("/api/v1/teachers/").json()["results"]}
    assert seen["shared"]["model_path"] == "/srv/models/secret-70b"


@pytest.mark.parametrize("method, url, body", [
    ("get", "/api/v1/training-runs/x/", None),
    ("get", "/api/v1/evaluation-runs/x/results/", None),
    ("get", "/api/v1/evaluation-runs/99999999999999999999/samples/", None),
    ("post", "/api/v1/generation-jobs/x/cancel/", None),
    ("post", "/api/v1/generation-jobs/1e3/resume/", None),
    ("get", "/api/v1/dataset-versions/-1/", None),
    ("post", "/api/v1/dataset-versions/freeze/", {"project": "{slug}", "seed": 2**40}),
    ("post", "/api/v1/generation-jobs/", {"project": "{slug}", "teacher": "t", "max_new_tokens": 2**40}),
    ("post", "/api/v1/generation-jobs/", {"project": "{slug}", "teacher": "t", "selection": {"mode": "ids",
                                                                                             "ids": [2**70]}}),
    ("post", "/api/v1/evaluation-runs/", {"project": "{slug}", "models": [{"teacher_id": "x"}]}),
    ("post", "/api/v1/training-runs/", {"dataset_version": 2**70}),
])
def test_malformed_ids_and_numbers_are_404_or_400(project, curator, method, url, body):
    Teacher.objects.create(project=project, name="t", kind=Teacher.Kind.OPENAI, base_url="https://a.example/v1",
                           model_name="m")
    if body:
        body = {k: (v.format(slug=project.slug) if isinstance(v, str) else v) for k, v in body.items()}
    response = getattr(api(curator), method)(url, body, format="json")
    assert response.status_code == (400 if body else 404), response.content


def test_docs_need_login_and_load_nothing_from_elsewhere(client, user):
    assert client.get("/api/docs/").status_code == 302
    client.force_login(user)
    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in page and "https://" not in page and "//cdn" not in page
    assert client.get("/api/docs/?script=").status_code == 200
    from django.contrib.staticfiles import finders

    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert finders.find("drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js")


def test_every_page_has_a_content_security_policy(client, curator, project):
    client.force_login(curator)
    for url in ("/", f"/p/{project.slug}/", "/accounts/login/"):
        policy = client.get(url).headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "img-src 'self' data:" in policy


def test_markdown_images_load_nothing():
    html = str(render_markdown("look ![pixel](https://tracker.example/p.gif?u=1) here"))
    assert "<img" not in html and 'href="https://tracker.example/p.gif?u=1"' in html


def test_login_is_rate_limited_with_a_clear_message(client, settings):
    UserFactory(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content
    api_login = client.post("/api/v1/auth/login/", {"username": "alice", "password": "wrong"})
    assert api_login.status_code == 429


def test_deploy_check_is_clean_with_debug_off(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "0", "SECRET_KEY": "x" * 60 + "-not-a-dev-key-9f8e7d6c",
           "ALLOWED_HOSTS": "distillery.example", "DISTILLERY_VAR_DIR": str(tmp_path), "PYTHONPATH": str(settings.BASE_DIR)}
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                         cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout


def test_the_admin_door_gets_the_same_rules(client, project, tmp_path):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_teacher", "change_teacher",
                                                                         "view_teacher", "view_serverresource",
                                                                         "add_serverresource"]))
    form = {"name": "local", "kind": "local", "engine": "transformers", "project": project.pk, "model_path": "/etc", "gguf_file": "",
            "base_url": "", "model_name": "", "api_key_env": "", "default_params": "{}"}
    client.force_login(staff)
    refused = client.post("/admin/curation/teacher/add/", form)
    assert refused.status_code == 200 and b"Pick a model an operator registered" in refused.content
    refused = client.post("/admin/curation/teacher/add/", {**form, "kind": "openai-compatible", "model_path": "",
                                                           "base_url": "http://169.254.169.254/v1", "model_name": "m"})
    assert b"only an operator can allow such a host" in refused.content and not Teacher.objects.exists()
    assert client.get("/admin/curation/serverresource/").status_code == 403  # staff, but not an operator

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    (tmp_path / "config.json").write_text("{}")
    created = client.post("/admin/curation/teacher/add/", {**form, "model_path": str(tmp_path)})
    assert created.status_code == 302 and Teacher.objects.get().local_path == tmp_path
    refused = client.post("/admin/curation/serverresource/add/", {"kind": "tasks", "name": "up", "note": "",
                                                                  "path": str(settings.MEDIA_ROOT)})
    assert b"This path holds uploaded files" in refused.content
    created = client.post("/admin/curation/serverresource/add/", {"kind": "model", "name": "m", "note": "",
                                                                  "path": str(tmp_path)})
    assert created.status_code == 302 and ServerResource.objects.get().created_by.is_superuser
