# The engine's one image: `saga api`, `saga worker --role R`, `saga db upgrade`, `saga topics
# ensure` are all this image with other arguments (infra/deploy/compose.yaml, infra/deploy/k8s/).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The same installer and lock file as `make install`, so the image runs the versions CI tested.
RUN python -m venv /opt/venv && pip install uv==0.13.9

WORKDIR /app
COPY requirements.lock ./
RUN uv pip sync --python /opt/venv/bin/python requirements.lock

COPY pyproject.toml ./
COPY saga ./saga
COPY events ./events
COPY analytics ./analytics
COPY adapters ./adapters
COPY projections ./projections
COPY api ./api
COPY infra ./infra
COPY bench ./bench
COPY db ./db
COPY schemas ./schemas
# Editable on purpose: events/avro.py reads the published schemas from ../schemas/avro next to
# the package (not package data), so the code has to stay in this tree. --no-deps: every
# dependency is already pinned from the lock above.
RUN uv pip install --python /opt/venv/bin/python --no-deps -e . && saga --help > /dev/null

# A fixed numeric uid lets Kubernetes' runAsNonRoot check it without reading /etc/passwd; its
# home is /tmp, the one writable place when the root filesystem is mounted read-only.
RUN groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin saga
USER 10001:10001

EXPOSE 8080
ENTRYPOINT ["saga"]
CMD ["--help"]
