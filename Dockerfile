# lumaweb: one image for web, worker, beat and the simulator (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media

WORKDIR /app
COPY pyproject.toml README.md ./
COPY lumaweb ./lumaweb
COPY generations ./generations
COPY simulator ./simulator
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install . \
 && SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 lumaweb \
 && mkdir -p /data/media /app/.run \
 && chown -R lumaweb /data /app/.run

USER lumaweb
EXPOSE 8000
CMD ["gunicorn", "lumaweb.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "8", "--timeout", "120"]
