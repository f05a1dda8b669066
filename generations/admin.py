from django.contrib import admin

from generations.models import ApiToken, Generation, StatusEvent


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "status", "state", "note")


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("short_prompt", "status", "state", "aspect_ratio", "created_by", "created_at",
                    "posts_sent")
    list_filter = ("status", "aspect_ratio", "kind")
    search_fields = ("user_prompt", "prompt", "remote_id", "id")
    date_hierarchy = "created_at"
    raw_id_fields = ("parent", "created_by")
    readonly_fields = ("id", "remote_id", "posts_sent", "attempts", "created_at", "submitted_at",
                       "completed_at", "last_polled_at", "status_changed_at", "poll_lease")
    inlines = [StatusEventInline]
    list_select_related = ("created_by",)

    @admin.display(description="prompt")
    def short_prompt(self, obj: Generation) -> str:
        return obj.user_prompt[:80]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
