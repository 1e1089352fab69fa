"""A local teacher's relative path lives in the data dir, for generation, training and evaluation alike."""

import pytest

from curation.models import Teacher
from curation.services.generation import teacher_client
from evaluation.services import _teacher_spec
from training.selectors import teacher_folder


@pytest.mark.django_db
def test_relative_teacher_paths_resolve_in_the_data_dir_everywhere(project, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    (tmp_path / "models" / "t").mkdir(parents=True)
    teacher = Teacher.objects.create(project=project, name="t", kind=Teacher.Kind.LOCAL, model_path="models/t")

    assert teacher.local_path == tmp_path / "models" / "t"
    assert teacher_folder(teacher) == teacher.local_path
    assert _teacher_spec(project, teacher.pk)["path"] == str(teacher.local_path)
    assert teacher_client(teacher).path == teacher.local_path


@pytest.mark.django_db
def test_a_gguf_teacher_path_joins_folder_and_file(project, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    teacher = Teacher(project=project, name="g", kind=Teacher.Kind.LOCAL, model_path="/abs/dir", gguf_file="m.gguf")
    assert str(teacher.local_path) == "/abs/dir/m.gguf"
