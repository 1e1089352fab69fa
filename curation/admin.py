"""The Django admin for curation. Large tables use raw-id widgets, indexed filters and no full counts."""

from __future__ import annotations

from django.contrib import admin

from curation import models


class LargeTableAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 1
    raw_id_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "candidates_per_prompt", "reviews_required", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    raw_id_fields = ["user"]
    search_fields = ["user__username", "project__name"]
