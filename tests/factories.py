"""factory_boy factories over the real models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from curation.hashing import messages_hash, text_hash
from curation.models import Completion, Membership, Project, Prompt


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    guidelines = "Prefer short, correct answers."


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    text = factory.Sequence(lambda n: f"What is {n} + {n}?")
    messages = factory.LazyAttribute(lambda p: [{"role": "user", "content": p.text}])
    content_hash = factory.LazyAttribute(lambda p: messages_hash(p.messages))


class CompletionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Completion

    prompt = factory.SubFactory(PromptFactory)
    text = factory.Sequence(lambda n: f"The answer is {n}.")
    text_hash = factory.LazyAttribute(lambda c: text_hash(c.text))
    source = "teacher-model"
    finish_reason = Completion.FinishReason.STOP
    length = factory.LazyAttribute(lambda c: len(c.text))
