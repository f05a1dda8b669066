# lumaweb: one image for web, worker, beat and the simulator (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media

WORKDIR /app

# Dependencies first, exactly as locked, every file checked against its sha256 (scripts/lock
# makes the lock): this layer is rebuilt only when the lock changes.
COPY requirements/app.lock requirements/app.lock
RUN pip install --require-hashes -r requirements/app.lock

# The product and nothing else: no tests/, no development tools, no docs. A top-level package
# that production runs gets its own COPY line here (and its place in pyproject.toml's
# [tool.setuptools.packages.find]).
COPY pyproject.toml README.md manage.py ./
COPY lumaweb ./lumaweb
COPY generations ./generations
COPY simulator ./simulator
COPY templates ./templates
COPY static ./static
# The project itself, built by the locked setuptools, adding no dependency of its own.
RUN pip install --no-deps --no-build-isolation . \
 && rm -rf build ./*.egg-info \
 && SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 lumaweb \
 && mkdir -p /data/media /app/.run \
 && chown -R lumaweb /data /app/.run

USER lumaweb
EXPOSE 8000
# --keep-alive 75: connections from a proxy (compose's nginx keeps its upstream connections
# idle for 60 s) or a browser polling every 2-5 s are reused rather than closed after 2 s
# (gunicorn's default), a new TCP handshake per poll.
CMD ["gunicorn", "lumaweb.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "8", "--timeout", "120", "--keep-alive", "75"]
