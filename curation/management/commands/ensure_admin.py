"""Create the local admin account once; print its credentials with --show.

Credentials come from DISTILLERY_ADMIN_USER / DISTILLERY_ADMIN_PASSWORD, or a random password is made
on first run and kept in var/admin-credentials.txt (git-ignored) so re-running is safe.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the local admin account if missing (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--show", action="store_true", help="Print the login.")

    def handle(self, *args, show: bool = False, **options):
        cred_file = settings.VAR_DIR / "admin-credentials.txt"
        username = os.environ.get("DISTILLERY_ADMIN_USER", "admin")
        password = os.environ.get("DISTILLERY_ADMIN_PASSWORD")
        if not password and cred_file.exists():
            stored_user, _, stored_pw = cred_file.read_text().strip().partition(":")
            if stored_user == username:
                password = stored_pw
        if not password:
            password = secrets.token_urlsafe(12)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
            cred_file.write_text(f"{username}:{password}\n")
            cred_file.chmod(0o600)
            self.stdout.write(f"Created admin account '{username}'.")
        elif os.environ.get("DISTILLERY_ADMIN_PASSWORD"):
            user.set_password(password)
            user.save(update_fields=["password"])
        if show:
            shown = password if cred_file.exists() or os.environ.get("DISTILLERY_ADMIN_PASSWORD") else "(unchanged)"
            self.stdout.write(f"  Log in as: {username} / {shown}")
