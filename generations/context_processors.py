"""Values every page shows: the running-jobs count, demo mode, the cost of one generation."""

from django.conf import settings

from generations.models import Generation


def studio(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"demo_mode": settings.LUMA_DEMO_MODE}
    return {
        "demo_mode": settings.LUMA_DEMO_MODE,
        "tokens_per_generation": settings.LUMA_TOKENS_PER_GENERATION,
        "running_jobs": Generation.objects.in_flight().count,  # lazy: only if a page shows it
    }
