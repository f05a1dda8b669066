"""The studio's pages. Views translate HTTP into service calls and render templates."""

from __future__ import annotations

from django.shortcuts import render

from generations.models import Generation


def gallery(request):
    generations = Generation.objects.select_related("created_by").order_by("-created_at")[:100]
    return render(request, "generations/gallery.html", {"generations": generations})
